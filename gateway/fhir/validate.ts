/**
 * Structural check of every Bundle the converter produces, against schemas/fhir-r4-subset.schema.json
 * (the R4 JSON Schema, https://hl7.org/fhir/R4/json.html#schema, reduced to the resources we emit
 * and corrected by scripts/build-fhir-schema.ts; that script's header lists the corrections).
 *
 * What the schema checks: JSON types, unknown properties (`additionalProperties: false`, the check
 * that catches a misspelled element), primitive formats (id, uri, code, date, dateTime, instant,
 * integer, positiveInt…), code enumerations of required bindings that the schema inlines (status
 * codes), `resourceType`, and elements with a minimum cardinality of 1.
 *
 * What it does NOT check (R4 sections for reference):
 *  - invariants (FHIRPath constraints): document Bundle rules bdl-9/10/11 (bundle.html#invs),
 *    fullUrl uniqueness bdl-7, ele-1 "value or children" (empty objects, empty arrays, `""` for
 *    uri), ext-1, dom-2..5, per-resource rules (obs-6, con-3…);
 *  - at most one type of a choice element (`valueString` together with `valueQuantity` passes);
 *  - maximum cardinality of arrays and terminology bindings other than the inlined enums;
 *  - reference targets (a Reference to the wrong resource type) and whether `urn:uuid:` references
 *    resolve inside the Bundle (bundle.html#references);
 *  - Narrative.div content: only that it is a string, not that it is XHTML in the XHTML namespace
 *    with the allowed elements (narrative.html#xhtml, txt-1/txt-2);
 *  - base64Binary content (Binary.data, Attachment.data), calendar validity (2023-02-30 passes);
 *  - nothing more is lost for contained resources, but they go through ResourceList's `oneOf`
 *    (every emitted type is tried: slower); a failure is re-reported against the resource's own
 *    type. The converter does not emit contained resources.
 * The test suite covers these with an independent validator (tests/support/fhir-validator.ts).
 *
 * Speed: a Bundle is not validated through the `oneOf` of ResourceList, where ajv would try every
 * resource schema per entry. The Bundle shell is validated with `entry[].resource` left open, then
 * each resource against the compiled definition of its own resourceType. Everything is compiled
 * lazily, once per process. `allErrors` is off: each resource reports its first problem only.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { Ajv, type AnySchemaObject, type ErrorObject, type ValidateFunction } from 'ajv';
import { packageFile } from '../util/package-root.js';

export interface SchemaIssue { path: string; message: string }

const SCHEMA_FILE = join('schemas', 'fhir-r4-subset.schema.json');

type JsonObject = Record<string, unknown>;

interface Validators {
  ajv: Ajv;
  schemaId: string;
  /** Resource types the subset defines (its ResourceList). */
  supported: ReadonlySet<string>;
  byType: Map<string, ValidateFunction>;
  shell: ValidateFunction;
}

let validators: Validators | undefined;

function isObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Deep copy with `#/definitions/X` made absolute, so the copy can live in another schema document. */
function absolutize(node: unknown, schemaId: string): unknown {
  if (Array.isArray(node)) return node.map((item) => absolutize(item, schemaId));
  if (!isObject(node)) return node;
  const out: JsonObject = {};
  for (const [key, value] of Object.entries(node)) {
    out[key] = key === '$ref' && typeof value === 'string' && value.startsWith('#') ? schemaId + value : absolutize(value, schemaId);
  }
  return out;
}

/**
 * The Bundle definition with Bundle.entry.resource reduced to "an object": entries are checked
 * one by one afterwards, each against its own resource definition.
 */
function shellSchema(definitions: JsonObject, schemaId: string): AnySchemaObject {
  const bundle = absolutize(definitions.Bundle, schemaId) as JsonObject;
  const entry = absolutize(definitions.Bundle_Entry, schemaId) as JsonObject;
  const bundleProperties = bundle.properties as JsonObject;
  const entryProperties = entry.properties as JsonObject;
  if (!isObject(bundleProperties.entry) || !isObject(entryProperties.resource)) {
    throw new Error(`${SCHEMA_FILE}: unexpected Bundle/Bundle_Entry shape`);
  }
  entryProperties.resource = { type: 'object' };
  bundleProperties.entry = { type: 'array', items: entry };
  return { $id: 'urn:passerelle:fhir-r4-bundle-shell', ...bundle };
}

function load(): Validators {
  if (validators) return validators;
  const schema = JSON.parse(readFileSync(packageFile(SCHEMA_FILE), 'utf8')) as JsonObject;
  const schemaId = schema.$id as string;
  const definitions = schema.definitions as JsonObject;
  const resourceList = (definitions.ResourceList as { oneOf: { $ref: string }[] }).oneOf;
  const supported = new Set(resourceList.map(({ $ref }) => $ref.slice($ref.lastIndexOf('/') + 1)));

  // strictRequired is off because the generated `anyOf: [{required: [status]}, {required: [_status]}]`
  // branches name properties declared one level up; `verbose` gives errors their parentSchema,
  // whose description names the FHIR element (cost only when an error is reported).
  // code.optimize off halves compilation time (~0.35 s instead of ~0.7 s) at no measurable validation cost.
  const ajv = new Ajv({ strict: true, strictRequired: false, allErrors: false, verbose: true, code: { optimize: false } });
  const require = createRequire(import.meta.url);
  ajv.addMetaSchema(require('ajv/dist/refs/json-schema-draft-06.json') as AnySchemaObject);
  // The file was checked against the draft-06 meta-schema when generated; skip it at start-up.
  ajv.addSchema(schema as AnySchemaObject, undefined, undefined, false);
  const shell = ajv.compile(shellSchema(definitions, schemaId));
  validators = { ajv, schemaId, supported, byType: new Map(), shell };
  return validators;
}

function validatorFor(v: Validators, resourceType: string): ValidateFunction | undefined {
  let fn = v.byType.get(resourceType);
  if (!fn && v.supported.has(resourceType)) {
    fn = v.ajv.getSchema(`${v.schemaId}#/definitions/${resourceType}`);
    if (!fn) throw new Error(`${SCHEMA_FILE}: cannot compile ${resourceType}`);
    v.byType.set(resourceType, fn);
  }
  return fn;
}

function messageFor(error: ErrorObject): string {
  const p = error.params as Record<string, unknown>;
  switch (error.keyword) {
    case 'additionalProperties':
      return `unknown property '${String(p.additionalProperty)}' (no such element in FHIR R4)`;
    case 'required':
      return `missing required property '${String(p.missingProperty)}'`;
    case 'type':
      return `must be ${String(p.type)}`;
    case 'const':
      return `must be '${String(p.allowedValue)}'`;
    case 'enum': {
      const allowed = (p.allowedValues as unknown[]).map(String);
      return `not an allowed code (expected one of ${allowed.slice(0, 8).join(', ')}${allowed.length > 8 ? ', …' : ''})`;
    }
    case 'pattern': {
      // The value itself is not echoed: it may be patient data and these messages reach logs.
      const type = /#\/definitions\/([A-Za-z0-9]+)\/pattern$/.exec(error.schemaPath)?.[1];
      return type ? `not a valid FHIR ${type}` : `does not match ${String(p.pattern)}`;
    }
    case 'oneOf':
      return 'matches none (or several) of the resource types the converter emits';
    default:
      return error.message ?? error.keyword;
  }
}

/** Turns ajv errors (instancePath relative to `base`) into issues whose path points at the culprit. */
function toIssues(v: Validators, errors: readonly ErrorObject[], base: string): SchemaIssue[] {
  // With allErrors off, the errors are those of the one failing keyword, preceded by the errors of
  // the branches of a failed anyOf/oneOf (which sit at or below the combinator's instance path):
  // a combinator's issue replaces its branches'.
  const out: { error: ErrorObject; issues: SchemaIssue[] }[] = [];
  for (const error of errors) {
    if (error.keyword === 'anyOf' || error.keyword === 'oneOf') {
      const inside = (e: ErrorObject): boolean => e.instancePath === error.instancePath || e.instancePath.startsWith(`${error.instancePath}/`);
      while (out.length && inside((out[out.length - 1] as { error: ErrorObject }).error)) out.pop();
    }
    out.push({ error, issues: issuesOf(v, error, base) });
  }
  return out.flatMap(({ issues }) => issues);
}

/** A member name as a JSON Pointer segment (RFC 6901 §4). */
const segment = (name: unknown): string => String(name).replace(/~/g, '~0').replace(/\//g, '~1');

function issuesOf(v: Validators, error: ErrorObject, base: string): SchemaIssue[] {
  const at = base + error.instancePath;
  const p = error.params as Record<string, unknown>;
  switch (error.keyword) {
    case 'anyOf': {
      // A generated "min 1" constraint: its description is the element, e.g. "Composition.status 1..1".
      const element = (error.parentSchema as { description?: string } | undefined)?.description;
      if (!element) break;
      const fhirPath = element.split(' ')[0] ?? element;
      return [{ path: `${at}/${fhirPath.slice(fhirPath.lastIndexOf('.') + 1)}`, message: `missing required element ${element}` }];
    }
    case 'oneOf': {
      // ResourceList (contained resources): report against the resource's own type, not every branch.
      const issues = isObject(error.data) ? checkResource(v, error.data, at) : [];
      if (issues.length) return issues;
      break;
    }
    case 'additionalProperties':
      return [{ path: `${at}/${segment(p.additionalProperty)}`, message: messageFor(error) }];
    case 'required':
      return [{ path: `${at}/${segment(p.missingProperty)}`, message: messageFor(error) }];
  }
  return [{ path: at, message: messageFor(error) }];
}

function checkResource(v: Validators, resource: unknown, base: string): SchemaIssue[] {
  if (!isObject(resource)) return [{ path: base, message: 'a resource must be a JSON object' }];
  const { resourceType } = resource;
  if (typeof resourceType !== 'string') return [{ path: `${base}/resourceType`, message: 'missing resourceType' }];
  if (resourceType === 'Bundle') return checkBundle(v, resource, base);
  const fn = validatorFor(v, resourceType);
  if (!fn) return [{ path: `${base}/resourceType`, message: `unsupported resourceType '${resourceType}'` }];
  return fn(resource) ? [] : toIssues(v, fn.errors ?? [], base);
}

/** The shell first, then every entry's resource against its own definition (a nested Bundle likewise). */
function checkBundle(v: Validators, bundle: unknown, base: string): SchemaIssue[] {
  const issues = v.shell(bundle) ? [] : toIssues(v, v.shell.errors ?? [], base);
  if (isObject(bundle) && Array.isArray(bundle.entry)) {
    bundle.entry.forEach((entry: unknown, i) => {
      // A non-object resource is already reported by the shell (`type: object`).
      if (isObject(entry) && isObject(entry.resource)) issues.push(...checkResource(v, entry.resource, `${base}/entry/${i}/resource`));
    });
  }
  return issues;
}

/** Validates a FHIR R4 Bundle against schemas/fhir-r4-subset.schema.json; returns [] when valid. */
export function validateBundle(bundle: unknown): SchemaIssue[] {
  return checkBundle(load(), bundle, '');
}

/** Validates one resource by its resourceType; an unsupported resourceType is itself an issue. */
export function validateResource(resource: unknown): SchemaIssue[] {
  return checkResource(load(), resource, '');
}
