/**
 * Property: whatever is done to a valid CDA document, `convertCda` either returns a document Bundle
 * whose first entry is the Composition, or throws a PasserelleError with a catalogue code that
 * blames the input (never INTERNAL_ERROR, never FHIR_OUTPUT_INVALID, never another exception).
 *
 * Mutations work on the parsed-and-reserialised text (delete / duplicate / rename / swap elements,
 * replace attribute values, add nullFlavor, replace text, huge values, drop namespaces) and on raw
 * bytes (truncate, flip, insert). A failure is a converter bug: the minimal counterexample is
 * printed by fast-check, and the exact failing bytes are written to the OS temp folder.
 *
 * FC_SEED / FC_RUNS (environment) replay a seed or change the number of runs per document.
 */
import { writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { convertCda } from '../../gateway/cda/convert.js';
import { parseXml, pathOf, type XElement } from '../../gateway/cda/xml.js';
import { ERROR_CATALOGUE, PasserelleError } from '../../gateway/errors.js';
import { listElements, loadCorpus, serialise, syntheticCda, type ElementEdits } from '../support/hostile.js';

const RUNS = Number(process.env.FC_RUNS ?? 150);
const SEED = process.env.FC_SEED === undefined ? undefined : Number(process.env.FC_SEED);
/** A safety bound on one conversion (catches quadratic or exponential behaviour, not slowness). */
const MAX_MS_PER_CONVERSION = 5_000;

// ---- the oracle ----

/** Throws (failing the property) unless the outcome of converting `bytes` is acceptable. */
function checkConversion(bytes: Uint8Array, label: string, describe: () => string = () => ''): void {
  const t0 = performance.now();
  let outcome: ReturnType<typeof convertCda> | undefined;
  let error: unknown;
  try {
    outcome = convertCda(bytes);
  } catch (err) {
    error = err;
  }
  const ms = performance.now() - t0;
  const fail = (why: string): never => {
    // One file per document, overwritten while fast-check shrinks: the last one is the minimal input.
    const file = join(tmpdir(), `passerelle-counterexample-${label}.xml`);
    try {
      writeFileSync(file, bytes);
    } catch {
      // best effort only
    }
    const what = describe();
    throw new Error(`${why}\n${what ? `mutation: ${what}\n` : ''}(input of ${bytes.byteLength} bytes written to ${file})`);
  };
  if (ms > MAX_MS_PER_CONVERSION) fail(`conversion took ${ms.toFixed(0)} ms`);
  if (error !== undefined) {
    if (!(error instanceof PasserelleError)) {
      fail(`threw a non-PasserelleError: ${error instanceof Error ? error.stack ?? error.message : String(error)}`);
      return;
    }
    if (!Object.prototype.hasOwnProperty.call(ERROR_CATALOGUE, error.code)) fail(`unknown error code ${String(error.code)}`);
    if (error.code === 'INTERNAL_ERROR' || error.code === 'FHIR_OUTPUT_INVALID') {
      fail(`${error.code}: ${error.message}${error.location ? ` at ${error.location}` : ''}`);
    }
    return;
  }
  const { bundle, report } = outcome as NonNullable<typeof outcome>;
  if (bundle?.resourceType !== 'Bundle' || bundle.type !== 'document') fail(`not a document Bundle: type ${String(bundle?.type)}`);
  if (bundle.entry?.[0]?.resource?.resourceType !== 'Composition') {
    fail(`first entry is ${String(bundle.entry?.[0]?.resource?.resourceType)}, not Composition`);
  }
  if (report?.resourceType !== 'OperationOutcome') fail('the report is not an OperationOutcome');
}

// ---- mutations ----

const NULL_FLAVORS = ['UNK', 'NI', 'NA', 'ASKU', 'NAV', 'NASK', 'MSK', 'OTH', 'NINF', 'PINF', 'TRC', 'QS', 'INV', 'DER'];

const ATTR_NAMES = [
  'code', 'codeSystem', 'displayName', 'value', 'root', 'extension', 'nullFlavor', 'xsi:type', 'mediaType', 'representation',
  'unit', 'use', 'classCode', 'moodCode', 'typeCode', 'qualifier', 'ID', 'inversionInd', 'negationInd', 'operator',
];

const ELEMENT_NAMES = [
  'ClinicalDocument', 'component', 'structuredBody', 'nonXMLBody', 'section', 'entry', 'observation', 'organizer', 'act',
  'substanceAdministration', 'procedure', 'encounter', 'observationMedia', 'entryRelationship', 'value', 'code', 'id', 'text',
  'title', 'effectiveTime', 'low', 'high', 'center', 'width', 'recordTarget', 'patientRole', 'patient', 'name', 'given', 'family',
  'author', 'assignedAuthor', 'time', 'custodian', 'legalAuthenticator', 'reference', 'table', 'tr', 'td', 'content',
  'renderMultiMedia', 'paragraph', 'list', 'item', 'templateId', 'statusCode', 'translation', 'originalText', 'addr', 'telecom',
];

const STRANGE_VALUES = [
  '', ' ', '\t', '0', '-1', '1e309', 'NaN', 'Infinity', '99999999999999999999999999', '0.000000000000000000001', '1,5',
  '2024', '202401', '20240230', '20241332', '2024-01-15', '20240115250000', '20240115103000+9999', '20240115103000-',
  '20240115103000.123456789+0100', '19000101', '00000101', '99991231235959', 'T', '1.2.250.1.213.1.4.8', '1.2.250.1.213.1.4.10',
  '2.16.840.1.113883.6.1', '2.16.840.1.113883.5.4', 'urn:oid:', 'urn:uuid:', 'urn:uuid:00000000-0000-0000-0000-000000000000',
  'http://', 'tel:', 'mailto:', '#', '#missing-id', 'B64', 'TXT', 'application/pdf', 'text/plain', 'image/jpeg', 'text/xml',
  'PQ', 'CD', 'CE', 'CV', 'CO', 'IVL_TS', 'IVL_PQ', 'TS', 'ST', 'ED', 'II', 'INT', 'BL', 'REAL', 'RTO', 'ANY', 'SXCM_TS',
  'PIVL_TS', 'EIVL_TS', 'hl7:PQ', 'xs:string', 'true', 'false', 'EVN', 'INT', 'RQO', 'COMP', 'SUBJ', 'REFR', 'RSON',
  '__proto__', 'constructor', 'toString', 'hasOwnProperty', 'valueOf', '{}', '[]', '"', "'", '<', '&', ']]>', '\u00a0', '\u200b', '\ufeff',
  'é', '😀', '\u0085', '\u2028',
  ...NULL_FLAVORS,
];

const attrValue = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom(...STRANGE_VALUES) },
  { weight: 2, arbitrary: fc.string({ maxLength: 24 }) },
  { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 12 }) },
  { weight: 1, arbitrary: fc.stringMatching(/^[0-9]{1,20}(\.[0-9]{1,6})?([+-][0-9]{0,5})?$/) },
);

const textValue = fc.oneof(
  fc.constantFrom('', ' ', 'JVBERi0xLjQK', 'JVBERi0', 'not base64!', 'AAAA', '====', '\u00a0', '&', '<', 'UNK'),
  fc.string({ maxLength: 40 }),
  fc.base64String({ maxLength: 64 }),
);

/** A long run of one pattern (100 KB to 1 MB): quadratic code shows up, linear code does not. */
const hugeValue = fc
  .record({
    unit: fc.constantFrom('9', 'a', ' ', '1.', '-', '0+', '&', 'é', '\u00a0', 'A=', '#', '%PDF-'),
    size: fc.integer({ min: 100_000, max: 1_000_000 }),
  })
  .map(({ unit, size }) => ({ unit, size, toString: () => `${JSON.stringify(unit)} × ${size}` }));

type TreeMutation =
  | { kind: 'delete'; i: number }
  | { kind: 'duplicate'; i: number }
  | { kind: 'setAttr'; site: number; value: string }
  | { kind: 'newAttr'; i: number; name: string; value: string }
  | { kind: 'nullFlavor'; i: number; flavor: string }
  | { kind: 'swapNames'; i: number; j: number }
  | { kind: 'rename'; i: number; name: string }
  | { kind: 'text'; i: number; value: string }
  | { kind: 'hugeAttr'; site: number; huge: { unit: string; size: number } }
  | { kind: 'hugeText'; i: number; huge: { unit: string; size: number } };

type ByteMutation =
  | { kind: 'truncate'; at: number }
  | { kind: 'flip'; at: number; xor: number }
  | { kind: 'insert'; at: number; bytes: Uint8Array }
  | { kind: 'deleteBytes'; at: number; length: number };

interface Mutation {
  /** Mutate the original bytes (byte mutations only) rather than the reserialised tree. */
  original: boolean;
  tree: TreeMutation[];
  dropNamespaces: 'default' | 'all' | undefined;
  bytes: ByteMutation[];
}

/** A fraction in [0, 1), as an integer so that it shrinks towards the start of the document. */
const FRACTION = 1_000_000;
const fraction = fc.integer({ min: 0, max: FRACTION - 1 });

/**
 * Elements are drawn uniformly, attribute values by attribute: most elements of a CDA are narrative
 * markup without attributes, so drawing (element, attribute) pairs reaches the coded values.
 */
function mutationArb(elementCount: number, attrCount: number): fc.Arbitrary<Mutation> {
  const i = fc.integer({ min: 0, max: elementCount - 1 });
  const site = fc.integer({ min: 0, max: Math.max(0, attrCount - 1) });
  const tree: fc.Arbitrary<TreeMutation> = fc.oneof(
    fc.record({ kind: fc.constant('delete' as const), i }),
    fc.record({ kind: fc.constant('duplicate' as const), i }),
    fc.record({ kind: fc.constant('setAttr' as const), site, value: attrValue }),
    fc.record({ kind: fc.constant('newAttr' as const), i, name: fc.constantFrom(...ATTR_NAMES), value: attrValue }),
    fc.record({ kind: fc.constant('nullFlavor' as const), i, flavor: fc.constantFrom(...NULL_FLAVORS) }),
    fc.record({ kind: fc.constant('swapNames' as const), i, j: i }),
    fc.record({ kind: fc.constant('rename' as const), i, name: fc.constantFrom(...ELEMENT_NAMES) }),
    fc.record({ kind: fc.constant('text' as const), i, value: textValue }),
    fc.record({ kind: fc.constant('hugeAttr' as const), site, huge: hugeValue }),
    fc.record({ kind: fc.constant('hugeText' as const), i, huge: hugeValue }),
  );
  const bytes: fc.Arbitrary<ByteMutation> = fc.oneof(
    fc.record({ kind: fc.constant('truncate' as const), at: fraction }),
    fc.record({ kind: fc.constant('flip' as const), at: fraction, xor: fc.integer({ min: 1, max: 255 }) }),
    fc.record({ kind: fc.constant('insert' as const), at: fraction, bytes: fc.uint8Array({ minLength: 1, maxLength: 8 }) }),
    fc.record({ kind: fc.constant('deleteBytes' as const), at: fraction, length: fc.integer({ min: 1, max: 64 }) }),
  );
  return fc.oneof(
    { weight: 6, arbitrary: fc.record({
      original: fc.constant(false),
      tree: fc.array(tree, { minLength: 1, maxLength: 4 }),
      dropNamespaces: fc.option(fc.constantFrom('default' as const, 'all' as const), { freq: 8, nil: undefined }),
      bytes: fc.constant<ByteMutation[]>([]),
    }) },
    { weight: 2, arbitrary: fc.record({
      original: fc.constant(true),
      tree: fc.constant<TreeMutation[]>([]),
      dropNamespaces: fc.constant(undefined),
      bytes: fc.array(bytes, { minLength: 1, maxLength: 4 }),
    }) },
    { weight: 2, arbitrary: fc.record({
      original: fc.constant(false),
      tree: fc.array(tree, { maxLength: 2 }),
      dropNamespaces: fc.constant(undefined),
      bytes: fc.array(bytes, { minLength: 1, maxLength: 2 }),
    }) },
  );
}

function huge({ unit, size }: { unit: string; size: number }): string {
  return unit.repeat(Math.max(1, Math.floor(size / unit.length)));
}

interface Subject {
  original: Buffer;
  root: XElement;
  elements: XElement[];
  /** Every attribute of the document: [element index, attribute name]. */
  attrSites: [number, string][];
}

function applyMutation(subject: Subject, m: Mutation): Buffer {
  let bytes: Buffer;
  if (m.original) {
    bytes = subject.original;
  } else {
    const edits = new Map<number, ElementEdits>();
    const edit = (i: number): ElementEdits => {
      let e = edits.get(i);
      if (!e) edits.set(i, (e = {}));
      return e;
    };
    const setAttr = (i: number, name: string, value: string): void => {
      const e = edit(i);
      e.setAttrs = { ...e.setAttrs, [name]: value };
    };
    const bySite = (site: number): [number, string] => subject.attrSites[site] ?? [0, 'nullFlavor'];
    for (const t of m.tree) {
      switch (t.kind) {
        case 'delete': edit(t.i).remove = true; break;
        case 'duplicate': edit(t.i).duplicate = true; break;
        case 'setAttr': setAttr(...bySite(t.site), t.value); break;
        case 'newAttr': setAttr(t.i, t.name, t.value); break;
        case 'nullFlavor': setAttr(t.i, 'nullFlavor', t.flavor); break;
        case 'swapNames': {
          const a = subject.elements[t.i]?.name ?? 'x';
          const b = subject.elements[t.j]?.name ?? 'x';
          edit(t.i).rename = b;
          edit(t.j).rename = a;
          break;
        }
        case 'rename': edit(t.i).rename = t.name; break;
        case 'text': edit(t.i).text = t.value; break;
        case 'hugeAttr': setAttr(...bySite(t.site), huge(t.huge)); break;
        case 'hugeText': edit(t.i).text = huge(t.huge); break;
      }
    }
    bytes = Buffer.from(serialise(subject.root, { edits, dropNamespaces: m.dropNamespaces }), 'utf8');
  }
  for (const b of m.bytes) {
    const at = Math.floor((b.at / FRACTION) * bytes.length);
    switch (b.kind) {
      case 'truncate': bytes = bytes.subarray(0, at); break;
      case 'flip': {
        if (!bytes.length) break;
        const copy = Buffer.from(bytes);
        copy[at] = (copy[at] as number) ^ b.xor;
        bytes = copy;
        break;
      }
      case 'insert': bytes = Buffer.concat([bytes.subarray(0, at), b.bytes, bytes.subarray(at)]); break;
      case 'deleteBytes': bytes = Buffer.concat([bytes.subarray(0, at), bytes.subarray(at + b.length)]); break;
    }
  }
  return bytes;
}

/** The mutation in words, with element paths and attribute names (for the failure message). */
function describeMutation(subject: Subject, m: Mutation): string {
  const where = (i: number): string => {
    const el = subject.elements[i];
    return el ? pathOf(el) : `element #${i}`;
  };
  const attrAt = (site: number): string => {
    const [i, name] = subject.attrSites[site] ?? [0, 'nullFlavor'];
    return `${where(i)}/@${name}`;
  };
  const short = (v: string): string => JSON.stringify(v.length > 60 ? `${v.slice(0, 60)}…(${v.length} chars)` : v);
  const parts = m.tree.map((t) => {
    switch (t.kind) {
      case 'delete': return `delete ${where(t.i)}`;
      case 'duplicate': return `duplicate ${where(t.i)}`;
      case 'setAttr': return `set ${attrAt(t.site)} = ${short(t.value)}`;
      case 'newAttr': return `set ${where(t.i)}/@${t.name} = ${short(t.value)}`;
      case 'nullFlavor': return `set ${where(t.i)}/@nullFlavor = "${t.flavor}"`;
      case 'swapNames': return `swap names of ${where(t.i)} and ${where(t.j)}`;
      case 'rename': return `rename ${where(t.i)} to <${t.name}>`;
      case 'text': return `text of ${where(t.i)} = ${short(t.value)}`;
      case 'hugeAttr': return `set ${attrAt(t.site)} = ${JSON.stringify(t.huge.unit)} × ${t.huge.size} chars`;
      case 'hugeText': return `text of ${where(t.i)} = ${JSON.stringify(t.huge.unit)} × ${t.huge.size} chars`;
    }
    return '';
  });
  if (m.dropNamespaces) parts.push(`drop namespace declarations (${m.dropNamespaces})`);
  if (m.original) parts.unshift('on the original bytes');
  else if (m.bytes.length) parts.push('then, on the reserialised bytes:');
  for (const b of m.bytes) parts.push(`${b.kind} at ${(b.at / FRACTION * 100).toFixed(2)} %${b.kind === 'flip' ? ` xor 0x${b.xor.toString(16)}` : ''}${b.kind === 'insert' ? ` bytes ${Buffer.from(b.bytes).toString('hex')}` : ''}${b.kind === 'deleteBytes' ? ` ${b.length} bytes` : ''}`);
  return parts.join('; ');
}

function subjectOf(original: Buffer): Subject {
  const root = parseXml(original);
  const elements = listElements(root);
  const attrSites = elements.flatMap((el, i) => Object.keys(el.attrs).map((name): [number, string] => [i, name]));
  return { original, root, elements, attrSites };
}

// ---- the properties ----

function runProperty(name: string, original: Buffer): void {
  const subject = subjectOf(original);
  const label = name.replace(/\.xml$/i, '').replace(/[^A-Za-z0-9_.-]/g, '_');
  fc.assert(
    fc.property(mutationArb(subject.elements.length, subject.attrSites.length), (m) => {
      checkConversion(applyMutation(subject, m), label, () => describeMutation(subject, m));
    }),
    { numRuns: RUNS, ...(SEED === undefined ? {} : { seed: SEED }) },
  );
}

const corpus = loadCorpus();
const synthetic = Buffer.from(syntheticCda(), 'utf8');

describe('the unmutated inputs convert', () => {
  it('the synthetic CDA and its reserialisation', () => {
    checkConversion(synthetic, 'synthetic');
    expect(convertCda(Buffer.from(serialise(parseXml(synthetic)), 'utf8')).bundle.type).toBe('document');
  });

  for (const [name, bytes] of corpus) {
    it(`${name} and its reserialisation`, () => {
      expect(convertCda(bytes).bundle.type).toBe('document');
      expect(convertCda(Buffer.from(serialise(parseXml(bytes)), 'utf8')).bundle.type).toBe('document');
    });
  }
});

describe('mutated inputs convert or are refused with a catalogue code', () => {
  it('synthetic CDA', () => {
    runProperty('synthetic', synthetic);
  });

  for (const [name, bytes] of corpus) {
    it(name, () => {
      runProperty(name, bytes);
    });
  }
});
