/**
 * Entry mapping (gateway/cda/entries): synthetic CI-SIS-style snippets for each mapping, the ANS
 * corpus documents section by section, and randomly damaged documents (hostile input).
 */
import { readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import type {
  AllergyIntolerance, CarePlan, Condition, Coverage, Device, DiagnosticReport, DeviceUseStatement, DocumentReference, Immunization,
  Encounter, Location, MedicationStatement, Observation, Organization, Procedure, Reference, RelatedPerson, Resource, Specimen,
} from '@medplum/fhirtypes';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ConversionContext } from '../../gateway/cda/context.js';
import { coding } from '../../gateway/cda/datatypes.js';
import { mapSectionEntries } from '../../gateway/cda/entries/index.js';
import { mapObservationMedia } from '../../gateway/cda/media.js';
import { child, findFirst, HL7_NS, parseXml, type XElement, type XNode } from '../../gateway/cda/xml.js';
import { validateResource } from '../../gateway/fhir/validate.js';

const PATIENT = 'urn:uuid:0b0c3f2e-6a1d-4d8e-9a55-3e1f7c2b9d01';
const DAR = 'http://hl7.org/fhir/StructureDefinition/data-absent-reason';
const CORPUS_DIR = process.env.PASSERELLE_CORPUS ?? '/work/shared/corpus/cda';

// ---------------------------------------------------------------- helpers

interface Mapped {
  ctx: ConversionContext;
  refs: Reference[];
  resources: Resource[];
  codes: string[];
  diagnostics: string[];
}

function wrap(section: string): string {
  return `<?xml version="1.0" encoding="UTF-8"?>
<ClinicalDocument xmlns="urn:hl7-org:v3" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
  <component><structuredBody><component>${section}</component></structuredBody></component>
</ClinicalDocument>`;
}

/** A section with that LOINC code, narrative and entries, mapped in a fresh context (`setup` may add to it first, as the header would). */
function mapSection(code: string | undefined, entries: string, narrative = '<paragraph>texte</paragraph>', setup?: (ctx: ConversionContext) => void): Mapped {
  const codeXml = code ? `<code code="${code}" codeSystem="2.16.840.1.113883.6.1" codeSystemName="LOINC"/>` : '';
  const root = parseXml(Buffer.from(wrap(`<section><id root="1.2.250.1.999.7" extension="s1"/>${codeXml}<title>Titre</title><text>${narrative}</text>${entries}</section>`)));
  const section = findFirst(root, 'section', HL7_NS) as XElement;
  const ctx = new ConversionContext('doc', 'salt', root);
  ctx.patient = { reference: PATIENT };
  setup?.(ctx);
  const refs = mapSectionEntries(ctx, section, code);
  return result(ctx, refs);
}

function result(ctx: ConversionContext, refs: Reference[]): Mapped {
  return {
    ctx,
    refs,
    resources: ctx.emitted.map((e) => e.resource),
    codes: ctx.report.issues.map((i) => i.details?.coding?.[0]?.code ?? ''),
    diagnostics: ctx.report.issues.map((i) => i.diagnostics ?? ''),
  };
}

function of<T extends Resource>(m: Mapped, type: T['resourceType']): T[] {
  return m.resources.filter((r) => r.resourceType === type) as T[];
}

function one<T extends Resource>(m: Mapped, type: T['resourceType']): T {
  const found = of<T>(m, type);
  expect(found, `one ${type}`).toHaveLength(1);
  return found[0] as T;
}

function urlOf(m: Mapped, r: Resource): string {
  return m.ctx.emitted.find((e) => e.resource === r)?.fullUrl ?? '';
}

/** JSON hygiene FHIR requires (ele-1: no empty element; decimals are finite; no undefined left in). */
function hygiene(value: unknown, path: string, out: string[]): void {
  if (value === undefined) out.push(`${path}: undefined`);
  else if (typeof value === 'number' && !Number.isFinite(value)) out.push(`${path}: ${value}`);
  else if (typeof value === 'string' && value.trim() === '') out.push(`${path}: empty string`);
  else if (Array.isArray(value)) {
    if (!value.length) out.push(`${path}: empty array`);
    value.forEach((v, i) => hygiene(v, `${path}/${i}`, out));
  } else if (value && typeof value === 'object') {
    const entries = Object.entries(value);
    if (!entries.length) out.push(`${path}: empty object`);
    for (const [k, v] of entries) hygiene(v, `${path}/${k}`, out);
  }
}

type Loose = Record<string, unknown>;
const codesOf = (cc: unknown): string[] => ((cc as { coding?: { code?: string }[] } | undefined)?.coding ?? []).map((c) => c.code ?? '');

/** R4 invariants the JSON Schema does not check, for the resources this module emits. */
function invariants(r: Resource): string[] {
  const x = r as unknown as Loose;
  const out: string[] = [];
  const has = (k: string): boolean => x[k] !== undefined;
  const statusRequired = ['Observation', 'MedicationStatement', 'Procedure', 'Immunization', 'DeviceUseStatement', 'CarePlan', 'DocumentReference'];
  if (statusRequired.includes(r.resourceType) && !has('status') && !has('_status')) out.push('status 1..1');
  switch (r.resourceType) {
    case 'Observation': {
      const value = Object.keys(x).some((k) => k.startsWith('value'));
      if (value && has('dataAbsentReason')) out.push('obs-6');
      if (!has('code')) out.push('Observation.code 1..1');
      for (const rr of (x.referenceRange as Loose[] | undefined) ?? []) if (!rr.low && !rr.high && !rr.text) out.push('obs-3');
      break;
    }
    case 'Condition': {
      const verif = codesOf(x.verificationStatus);
      if (verif.includes('entered-in-error') && has('clinicalStatus')) out.push('con-5');
      if (!verif.includes('entered-in-error') && !has('clinicalStatus')) out.push('con-3');
      if ((has('abatementDateTime') || has('abatementPeriod')) && x.clinicalStatus && codesOf(x.clinicalStatus).some((c) => !['inactive', 'resolved', 'remission'].includes(c))) out.push('con-4');
      break;
    }
    case 'AllergyIntolerance': {
      const verif = codesOf(x.verificationStatus);
      if (verif.includes('entered-in-error') && has('clinicalStatus')) out.push('ait-2');
      if (!verif.includes('entered-in-error') && !has('clinicalStatus')) out.push('ait-1');
      for (const re of (x.reaction as Loose[] | undefined) ?? []) if (!Array.isArray(re.manifestation) || !re.manifestation.length) out.push('reaction.manifestation 1..*');
      break;
    }
    case 'MedicationStatement':
      if (!has('medicationCodeableConcept') && !has('medicationReference')) out.push('medication[x] 1..1');
      break;
    case 'Immunization':
      if (!has('occurrenceDateTime') && !has('_occurrenceDateTime') && !has('occurrenceString')) out.push('occurrence[x] 1..1');
      break;
    case 'CarePlan':
      for (const a of (x.activity as Loose[] | undefined) ?? []) {
        const d = a.detail as Loose | undefined;
        if (d && !d.status && !d._status) out.push('activity.detail.status 1..1');
      }
      break;
    case 'DocumentReference':
      for (const c of (x.content as Loose[] | undefined) ?? []) {
        const att = c.attachment as Loose;
        if (att.data && !att.contentType) out.push('att-1');
      }
      break;
  }
  if (r.meta?.profile) out.push('meta.profile must stay empty');
  return out;
}

/** What this module emits (actors and Binary come from other modules, checked by their own tests). */
const ENTRY_TYPES = new Set([
  'Condition', 'AllergyIntolerance', 'MedicationStatement', 'Immunization', 'Procedure', 'Observation', 'CarePlan',
  'Device', 'DeviceUseStatement', 'DocumentReference',
]);

/** Every emitted resource passes the project's R4 schema; this module's also the invariants above and JSON hygiene. */
function expectValid(m: Mapped): void {
  for (const r of m.resources) {
    const issues = validateResource(JSON.parse(JSON.stringify(r)));
    expect(issues, `${r.resourceType} ${JSON.stringify(r).slice(0, 400)}`).toEqual([]);
    if (!ENTRY_TYPES.has(r.resourceType)) continue;
    const problems: string[] = invariants(r);
    hygiene(r, r.resourceType, problems);
    expect(problems, `${r.resourceType} ${JSON.stringify(r).slice(0, 400)}`).toEqual([]);
  }
  const urls = new Set(m.ctx.emitted.map((e) => e.fullUrl));
  for (const ref of m.refs) expect(urls.has(ref.reference ?? '')).toBe(true);
  expect(m.diagnostics.filter((d) => d.includes('mapping failed'))).toEqual([]);
}

const AUTHOR = `<author><time value="20240102103000+0100"/><assignedAuthor>
  <id root="1.2.250.1.71.4.2.1" extension="810000000001"/>
  <assignedPerson><name><family>MARTIN</family><given>Paul</given></name></assignedPerson>
</assignedAuthor></author>`;

// ---------------------------------------------------------------- problems

describe('problems → Condition', () => {
  const concern = (status: string, obs: string): string => `<entry><act classCode="ACT" moodCode="EVN">
    <templateId root="1.3.6.1.4.1.19376.1.5.3.1.4.5.1"/><templateId root="1.3.6.1.4.1.19376.1.5.3.1.4.5.2"/>
    <id root="1.2.3.4" extension="c1"/><code nullFlavor="NA"/><statusCode code="${status}"/>
    <effectiveTime><low value="20200101"/></effectiveTime>
    <entryRelationship typeCode="SUBJ" inversionInd="false">${obs}</entryRelationship></act></entry>`;
  const problem = (extra = '', time = '<low value="20200115"/>'): string => `<observation classCode="OBS" moodCode="EVN">
    <templateId root="1.3.6.1.4.1.19376.1.5.3.1.4.5"/><id root="1.2.3.4" extension="p1"/>
    <code code="282291009" displayName="Diagnostic" codeSystem="2.16.840.1.113883.6.96"/>
    <text><reference value="#pb1"/></text><statusCode code="completed"/>
    <effectiveTime>${time}</effectiveTime>
    <value xsi:type="CD" code="E11" displayName="Diabète de type 2" codeSystem="2.16.840.1.113883.6.3"/>
    ${extra}</observation>`;

  it('maps a problem concern: code from the value, kind as category, onset, recorder, severity, comment', () => {
    const m = mapSection('11450-4', concern('active', problem(`${AUTHOR}
      <entryRelationship typeCode="SUBJ"><observation classCode="OBS" moodCode="EVN"><templateId root="1.3.6.1.4.1.19376.1.5.3.1.4.1"/>
        <code code="SEV" codeSystem="2.16.840.1.113883.5.4"/><statusCode code="completed"/>
        <value xsi:type="CD" code="H" displayName="Sévère" codeSystem="2.16.840.1.113883.5.1063"/></observation></entryRelationship>
      <entryRelationship typeCode="SUBJ" inversionInd="true"><act classCode="ACT" moodCode="EVN"><templateId root="1.3.6.1.4.1.19376.1.5.3.1.4.2"/>
        <code code="48767-8" codeSystem="2.16.840.1.113883.6.1"/><text>Suivi endocrinologue</text><statusCode code="completed"/></act></entryRelationship>`)),
    '<content ID="pb1">Diabète</content>');
    expectValid(m);
    const c = one<Condition>(m, 'Condition');
    expect(c.subject).toEqual({ reference: PATIENT });
    expect(c.code?.coding?.[0]).toMatchObject({ system: 'http://hl7.org/fhir/sid/icd-10', code: 'E11' });
    expect(c.code?.text).toBe('Diabète');
    expect(c.clinicalStatus?.coding?.[0]?.code).toBe('active');
    expect(c.category?.map((cat) => cat.coding?.[0]?.code)).toEqual(['problem-list-item', '282291009']);
    expect(c.onsetDateTime).toBe('2020-01-15');
    expect(c.recordedDate).toBe('2024-01-02T10:30:00+01:00');
    expect(c.recorder?.reference).toMatch(/^urn:uuid:/);
    expect(of(m, 'PractitionerRole')).toHaveLength(1);
    expect(c.severity?.coding?.[0]?.code).toBe('H');
    expect(c.note).toEqual([{ text: 'Suivi endocrinologue' }]);
    expect(m.refs).toEqual([{ reference: urlOf(m, c) }]);
  });

  it('an end date makes the problem resolved with an abatement (con-4)', () => {
    const m = mapSection('11348-0', concern('completed', problem('', '<low value="2019"/><high value="20200301"/>')));
    expectValid(m);
    const c = one<Condition>(m, 'Condition');
    expect(c.clinicalStatus?.coding?.[0]?.code).toBe('resolved');
    expect(c.abatementDateTime).toBe('2020-03-01');
    expect(c.onsetDateTime).toBe('2019');
  });

  it('reads the Problem Status Observation first', () => {
    const status = `<entryRelationship typeCode="REFR"><observation classCode="OBS" moodCode="EVN">
      <templateId root="1.3.6.1.4.1.19376.1.5.3.1.4.1.1"/><code code="33999-4" codeSystem="2.16.840.1.113883.6.1"/>
      <statusCode code="completed"/><value xsi:type="CE" code="277022003" codeSystem="2.16.840.1.113883.6.96"/></observation></entryRelationship>`;
    const m = mapSection('11450-4', concern('active', problem(status)));
    expectValid(m);
    expect(one<Condition>(m, 'Condition').clinicalStatus?.coding?.[0]?.code).toBe('remission');
    expect(m.codes).not.toContain('ENTRY_NOT_MAPPED');
  });

  /** CI-SIS 2024 (IPS-FR): FR-Statut-du-probleme with an HL7 condition-clinical code, FR-Certitude with a condition-ver-status one. */
  const status2024 = (code: string): string => `<entryRelationship typeCode="REFR"><observation classCode="OBS" moodCode="EVN">
      <templateId root="1.3.6.1.4.1.19376.1.5.3.1.4.1.1"/><code code="33999-4" codeSystem="2.16.840.1.113883.6.1"/>
      <statusCode code="completed"/><value xsi:type="CE" code="${code}" codeSystem="2.16.840.1.113883.4.642.4.1074"/></observation></entryRelationship>`;
  const certainty = (code: string): string => `<entryRelationship typeCode="SUBJ" inversionInd="true"><observation classCode="OBS" moodCode="EVN">
      <templateId root="1.3.6.1.4.1.19376.1.5.3.1.4.13"/><templateId root="1.2.250.1.213.1.1.3.171"/>
      <code code="66455-7" displayName="Certitude" codeSystem="2.16.840.1.113883.6.1"/><statusCode code="completed"/>
      <value xsi:type="CD" code="${code}" codeSystem="2.16.840.1.113883.4.642.4.1075"/></observation></entryRelationship>`;

  it('reads the CI-SIS 2024 status codes (HL7 condition-clinical) and FR-Certitude (verification status)', () => {
    const m = mapSection('11450-4', concern('active', problem(`${status2024('recurrence')}${certainty('provisional')}`)));
    expectValid(m);
    const c = one<Condition>(m, 'Condition');
    expect(c.clinicalStatus?.coding?.[0]?.code).toBe('recurrence');
    expect(c.verificationStatus?.coding?.[0]).toEqual({ system: 'http://terminology.hl7.org/CodeSystem/condition-ver-status', code: 'provisional' });
    expect(m.codes).not.toContain('ENTRY_NOT_MAPPED');
  });

  it('keeps no end date beside a recurrence (con-4); a certainty with an unknown value is reported', () => {
    const m = mapSection('11348-0', concern('active', problem(`${status2024('relapse')}${certainty('peut-être')}`, '<low value="2019"/><high value="20200301"/>')));
    expectValid(m);
    const c = one<Condition>(m, 'Condition');
    expect([c.clinicalStatus?.coding?.[0]?.code, c.abatementDateTime, c.verificationStatus]).toEqual(['relapse', undefined, undefined]);
    expect(m.diagnostics.some((d) => d.includes('says relapse: end date left out'))).toBe(true);
    expect(m.diagnostics.some((d) => d.startsWith('observation 66455-7 related to a problem'))).toBe(true);
  });

  it('states an unknown clinical status with data-absent-reason (con-3), negation as refuted', () => {
    const obs = problem().replace('moodCode="EVN">', 'moodCode="EVN" negationInd="true">');
    const m = mapSection('11450-4', `<entry>${obs}</entry>`);
    expectValid(m);
    const c = one<Condition>(m, 'Condition');
    expect(c.clinicalStatus).toEqual({ extension: [{ url: DAR, valueCode: 'unknown' }] });
    expect(c.verificationStatus?.coding?.[0]?.code).toBe('refuted');
    expect(m.codes).toContain('ENTRY_INCOMPLETE');
  });

  it('reads an open completed problem concern by its section: active in 11450-4, inactive in the history 11348-0', () => {
    const completed = concern('completed', problem());
    expect(one<Condition>(mapSection('11450-4', completed), 'Condition').clinicalStatus?.coding?.[0]?.code).toBe('active');
    expect(one<Condition>(mapSection('11348-0', completed), 'Condition').clinicalStatus?.coding?.[0]?.code).toBe('inactive');
    expect(one<Condition>(mapSection('29548-5', completed), 'Condition').clinicalStatus?.extension?.[0]?.valueCode).toBe('unknown');
  });

  it('a problem of the discharge diagnosis section is the encounter\'s diagnosis (role DD)', () => {
    const withEncounter = (ctx: ConversionContext): void => {
      ctx.encounter = ctx.add({ resourceType: 'Encounter', status: 'finished', class: { system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: 'IMP' } } as Encounter, 'encounter');
    };
    const m = mapSection('11535-2', concern('completed', problem()), '<paragraph>x</paragraph>', withEncounter);
    expectValid(m);
    const c = one<Condition>(m, 'Condition');
    expect(c.category?.[0]?.coding?.[0]?.code).toBe('encounter-diagnosis');
    expect(one<Encounter>(m, 'Encounter').diagnosis).toEqual([{ condition: { reference: urlOf(m, c) }, use: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/diagnosis-role', code: 'DD', display: 'Discharge diagnosis' }] } }]);
  });

  it('a nullified problem is entered-in-error without clinical status (con-5)', () => {
    const m = mapSection('11450-4', concern('nullified', problem()));
    expectValid(m);
    const c = one<Condition>(m, 'Condition');
    expect(c.clinicalStatus).toBeUndefined();
    expect(c.verificationStatus?.coding?.[0]?.code).toBe('entered-in-error');
  });

  it('a problem without value takes the narrative; other relationships are reported', () => {
    const obs = `<observation classCode="OBS" moodCode="EVN"><code code="404684003" codeSystem="2.16.840.1.113883.6.96"/>
      <text><reference value="#pb2"/></text><statusCode code="completed"/><effectiveTime><low value="2021"/></effectiveTime>
      <entryRelationship typeCode="CAUS"><procedure classCode="PROC" moodCode="EVN"/></entryRelationship></observation>`;
    const m = mapSection('11450-4', concern('active', obs), '<content ID="pb2">Chute à domicile</content>');
    expectValid(m);
    expect(one<Condition>(m, 'Condition').code).toEqual({ text: 'Chute à domicile' });
    expect(m.diagnostics.some((d) => d.startsWith('procedure related to a problem'))).toBe(true);
  });

  it('a cause of the problem becomes condition-dueTo; a cause stated absent is reported', () => {
    const cause = (code: string, value: string): string => `<entryRelationship typeCode="CAUS" inversionInd="true"><observation classCode="OBS" moodCode="EVN">
      <templateId root="1.3.6.1.4.1.19376.1.5.3.1.4.13"/><code code="${code}" displayName="cause ${code}" codeSystem="2.16.840.1.113883.6.347"/>
      <statusCode code="completed"/>${value}</observation></entryRelationship>`;
    const m = mapSection('11348-0', concern('active', problem(
      cause('NE2Z', '<value xsi:type="BL" value="false"/>') + cause('GEN-1', '<value xsi:type="BL" value="true"/>') + cause('NE61', ''),
    )));
    expectValid(m);
    expect(one<Condition>(m, 'Condition').extension).toEqual([
      { url: 'http://hl7.org/fhir/StructureDefinition/condition-dueTo', valueCodeableConcept: { coding: [{ system: 'http://id.who.int/icd/release/11/mms', code: 'GEN-1', display: 'cause GEN-1' }] } },
      { url: 'http://hl7.org/fhir/StructureDefinition/condition-dueTo', valueCodeableConcept: { coding: [{ system: 'http://id.who.int/icd/release/11/mms', code: 'NE61', display: 'cause NE61' }] } },
    ]);
    expect(m.diagnostics.filter((d) => d.includes('stated absent as the cause of a problem'))).toHaveLength(1);
  });

  it('a simple observation about the problem (SUBJ, SPRT) is an Observation the Condition cites as evidence', () => {
    const about = (typeCode: string, code: string, value: string): string => `<entryRelationship typeCode="${typeCode}"><observation classCode="OBS" moodCode="EVN">
      <templateId root="1.3.6.1.4.1.19376.1.5.3.1.4.13"/><templateId root="1.2.250.1.213.1.1.3.48"/>
      <code code="${code}" displayName="observation ${code}" codeSystem="1.2.250.1.213.1.1.4.322"/><statusCode code="completed"/>${value}</observation></entryRelationship>`;
    const m = mapSection('11348-0', concern('active', problem(
      about('SUBJ', 'ORG-087', '<value xsi:type="INT" value="1"/>') + about('SPRT', 'ORG-099', '<value xsi:type="PQ" value="3" unit="d"/>'),
    )));
    expectValid(m);
    const c = one<Condition>(m, 'Condition');
    const observations = of<Observation>(m, 'Observation');
    expect(observations.map((o) => [o.code.coding?.[0]?.code, o.valueInteger ?? o.valueQuantity?.value])).toEqual([['ORG-087', 1], ['ORG-099', 3]]);
    expect(c.evidence).toEqual(observations.map((o) => ({ detail: [{ reference: urlOf(m, o) }] })));
    expect(m.diagnostics.filter((d) => d.includes('related to a problem'))).toEqual([]);
  });
});

// ---------------------------------------------------------------- allergies

describe('allergies → AllergyIntolerance', () => {
  const allergy = (body: string, concernStatus = 'active'): string => `<entry><act classCode="ACT" moodCode="EVN">
    <templateId root="1.3.6.1.4.1.19376.1.5.3.1.4.5.1"/><templateId root="1.3.6.1.4.1.19376.1.5.3.1.4.5.3"/>
    <id root="1.2.3.5" extension="a1"/><code nullFlavor="NA"/><statusCode code="${concernStatus}"/>
    <effectiveTime><low value="2019"/></effectiveTime>
    <entryRelationship typeCode="SUBJ"><observation classCode="OBS" moodCode="EVN">
      <templateId root="1.3.6.1.4.1.19376.1.5.3.1.4.6"/><id root="1.2.3.5" extension="o1"/>
      ${body}</observation></entryRelationship></act></entry>`;

  it('maps substance, type/category, reaction with severity, onset and recorder', () => {
    const m = mapSection('48765-2', allergy(`<code code="416098002" displayName="allergie médicamenteuse" codeSystem="2.16.840.1.113883.6.96"/>
      <statusCode code="completed"/><effectiveTime><low value="20190501"/></effectiveTime>
      <value xsi:type="CD"><originalText>Urticaire à la pénicilline</originalText></value>
      <participant typeCode="CSM"><participantRole classCode="MANU"><playingEntity classCode="MMAT">
        <code code="J01CE02" displayName="Pénicilline V" codeSystem="2.16.840.1.113883.6.73"/></playingEntity></participantRole></participant>
      ${AUTHOR}
      <entryRelationship typeCode="MFST" inversionInd="true"><observation classCode="OBS" moodCode="EVN">
        <code code="75321-0" codeSystem="2.16.840.1.113883.6.1"/><statusCode code="completed"/>
        <value xsi:type="CD" code="126485001" displayName="Urticaire" codeSystem="2.16.840.1.113883.6.96"/>
        <entryRelationship typeCode="SUBJ"><observation classCode="OBS" moodCode="EVN"><templateId root="1.3.6.1.4.1.19376.1.5.3.1.4.1"/>
          <code code="SEV" codeSystem="2.16.840.1.113883.5.4"/><value xsi:type="CD" code="24484000" codeSystem="2.16.840.1.113883.6.96"/></observation></entryRelationship>
      </observation></entryRelationship>`));
    expectValid(m);
    const a = one<AllergyIntolerance>(m, 'AllergyIntolerance');
    expect(a.patient).toEqual({ reference: PATIENT });
    expect(a.code?.coding?.[0]).toMatchObject({ system: 'http://www.whocc.no/atc', code: 'J01CE02' });
    expect(a.type).toBe('allergy');
    expect(a.category).toEqual(['medication']);
    expect(a.clinicalStatus?.coding?.[0]).toEqual({ system: 'http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical', code: 'active' });
    expect(a.onsetDateTime).toBe('2019-05-01');
    expect(a.recorder?.reference).toMatch(/^urn:uuid:/);
    expect(a.reaction).toEqual([{ manifestation: [{ coding: [{ system: 'http://snomed.info/sct', code: '126485001', display: 'Urticaire' }] }], severity: 'severe' }]);
    expect(a.note).toEqual([{ text: 'Urticaire à la pénicilline' }]);
  });

  it('reports a reaction stated absent (negationInd) instead of listing it', () => {
    const m = mapSection('48765-2', allergy(`<code code="416098002" codeSystem="2.16.840.1.113883.6.96"/><statusCode code="completed"/>
      <value xsi:type="CD" code="J01CE02" codeSystem="2.16.840.1.113883.6.73"/>
      <entryRelationship typeCode="MFST" inversionInd="true"><observation classCode="OBS" moodCode="EVN" negationInd="true"><statusCode code="completed"/>
        <value xsi:type="CD" code="126485001" displayName="Urticaire" codeSystem="2.16.840.1.113883.6.96"/></observation></entryRelationship>
      <entryRelationship typeCode="MFST" inversionInd="true"><observation classCode="OBS" moodCode="EVN"><statusCode code="completed"/>
        <value xsi:type="CD" code="39579001" displayName="Anaphylaxie" codeSystem="2.16.840.1.113883.6.96"/></observation></entryRelationship>`));
    expectValid(m);
    expect(one<AllergyIntolerance>(m, 'AllergyIntolerance').reaction?.map((r) => r.manifestation[0]?.coding?.[0]?.code)).toEqual(['39579001']);
    expect(m.diagnostics.some((d) => d.startsWith('Reaction stated absent'))).toBe(true);
  });

  it('food intolerance with a textual description only; a completed concern is inactive only once it has ended', () => {
    const intolerance = allergy(`<code code="FINT" codeSystem="2.16.840.1.113883.5.4"/><statusCode code="completed"/>
      <value xsi:type="CD"><originalText><reference value="#al1"/></originalText></value>`, 'completed');
    const ended = mapSection('48765-2', intolerance.replace('<effectiveTime><low value="2019"/></effectiveTime>', '<effectiveTime><low value="2019"/><high value="2022"/></effectiveTime>'),
      '<content ID="al1">Lactose</content>');
    expectValid(ended);
    const a = one<AllergyIntolerance>(ended, 'AllergyIntolerance');
    expect(a.code).toEqual({ text: 'Lactose' });
    expect([a.type, a.category]).toEqual(['intolerance', ['food']]);
    expect(a.clinicalStatus?.coding?.[0]?.code).toBe('inactive');
    // Without an end (published ANS documents write "completed" on open concerns): not stated.
    const open = mapSection('48765-2', intolerance, '<content ID="al1">Lactose</content>');
    expectValid(open);
    expect(one<AllergyIntolerance>(open, 'AllergyIntolerance').clinicalStatus?.coding).toBeUndefined();
    expect(open.codes).toContain('ENTRY_INCOMPLETE');
  });

  it('reads the CI-SIS 2024 codes: clinical status, criticality, and a certainty allergies have no code for', () => {
    const m = mapSection('48765-2', allergy(`<code code="ALG" codeSystem="2.16.840.1.113883.5.4"/><statusCode code="completed"/>
      <value xsi:type="CD" code="91935009" displayName="Arachide" codeSystem="2.16.840.1.113883.6.96"/>
      <entryRelationship typeCode="SUBJ" inversionInd="true"><observation classCode="OBS" moodCode="EVN">
        <templateId root="1.3.6.1.4.1.19376.1.5.3.1.4.1.1"/><code code="33999-4" codeSystem="2.16.840.1.113883.6.1"/><statusCode code="completed"/>
        <value xsi:type="CE" code="recurrence" codeSystem="2.16.840.1.113883.4.642.4.1373"/></observation></entryRelationship>
      <entryRelationship typeCode="SUBJ" inversionInd="true"><observation classCode="OBS" moodCode="EVN">
        <code code="82606-5" codeSystem="2.16.840.1.113883.6.1"/><statusCode code="completed"/>
        <value xsi:type="CE" code="high" codeSystem="2.16.840.1.113883.4.642.4.130"/></observation></entryRelationship>
      <entryRelationship typeCode="SUBJ" inversionInd="true"><observation classCode="OBS" moodCode="EVN">
        <templateId root="1.2.250.1.213.1.1.3.171"/><code code="66455-7" codeSystem="2.16.840.1.113883.6.1"/><statusCode code="completed"/>
        <value xsi:type="CD" code="differential" codeSystem="2.16.840.1.113883.4.642.4.1075"/></observation></entryRelationship>
      <entryRelationship typeCode="MFST" inversionInd="true"><observation classCode="OBS" moodCode="EVN"><statusCode code="completed"/>
        <value xsi:type="CD" code="MD90.0" displayName="Nausée" codeSystem="2.16.840.1.113883.6.347"/></observation></entryRelationship>`, 'completed'));
    expectValid(m);
    const a = one<AllergyIntolerance>(m, 'AllergyIntolerance');
    expect(a.reaction?.[0]?.manifestation[0]?.coding?.[0]).toEqual({ system: 'http://id.who.int/icd/release/11/mms', code: 'MD90.0', display: 'Nausée' }); // CIM-11
    expect(a.clinicalStatus?.coding?.[0]?.code).toBe('active'); // no recurrence for an allergy: active again
    expect(a.criticality).toBe('high');
    expect(a.verificationStatus?.coding?.[0]).toEqual({ system: 'http://terminology.hl7.org/CodeSystem/allergyintolerance-verification', code: 'unconfirmed' });
    expect(m.codes).not.toContain('ENTRY_NOT_MAPPED');
  });

  it('an unknown status is stated absent (ait-1)', () => {
    const m = mapSection('48765-2', `<entry><observation classCode="OBS" moodCode="EVN"><code code="ALG" codeSystem="2.16.840.1.113883.5.4"/>
      <value xsi:type="CD" code="91935009" displayName="Arachide" codeSystem="2.16.840.1.113883.6.96"/></observation></entry>`);
    expectValid(m);
    expect(one<AllergyIntolerance>(m, 'AllergyIntolerance').clinicalStatus).toEqual({ extension: [{ url: DAR, valueCode: 'unknown' }] });
    expect(m.codes).toContain('ENTRY_INCOMPLETE');
  });

  it('does not invent an allergy from an observation naming nothing (LDL-SES shape)', () => {
    const m = mapSection('48765-2', allergy(`<code code="416098002" codeSystem="2.16.840.1.113883.6.96"/>
      <text><reference value="#NO-ALL"/></text><statusCode code="completed"/>
      <effectiveTime xsi:type="IVL_TS"><low nullFlavor="UNK"/></effectiveTime>
      <value xsi:type="CD"><originalText><reference value="#"/></originalText></value>`, 'completed'), 'Aucune allergie');
    expect(of(m, 'AllergyIntolerance')).toEqual([]);
    expect(m.refs).toEqual([]);
    expect(m.codes).toEqual(['ENTRY_NOT_MAPPED']);
  });
});

// ---------------------------------------------------------------- medications

describe('treatments → MedicationStatement', () => {
  const treatment = (opts: { mood?: string; status?: string; product?: string; extra?: string } = {}): string => `<entry>
    <substanceAdministration classCode="SBADM" moodCode="${opts.mood ?? 'EVN'}">
      <templateId root="1.2.250.1.213.1.1.3.42"/><id root="1.2.3.6" extension="m1"/>
      <text><reference value="#med1"/></text>${opts.status === undefined ? '<statusCode code="active"/>' : opts.status}
      <effectiveTime xsi:type="IVL_TS"><low value="20240101"/><high value="20240131"/></effectiveTime>
      <effectiveTime xsi:type="PIVL_TS" operator="A" institutionSpecified="true"><period value="8" unit="h"/></effectiveTime>
      <routeCode code="20053000" displayName="Voie orale" codeSystem="0.4.0.127.0.16.1.1.2.1"/>
      <doseQuantity><low value="1" unit="{tbl}"/><high value="1" unit="{tbl}"/></doseQuantity>
      <rateQuantity value="5" unit="mL/h"/>
      <maxDoseQuantity><numerator value="3" unit="g"/><denominator value="1" unit="d"/></maxDoseQuantity>
      <consumable><manufacturedProduct>${opts.product ?? `<manufacturedMaterial>
        <code code="60234100" displayName="DOLIPRANE 1000 mg, comprimé" codeSystem="1.2.250.1.213.2.3.1">
          <translation code="N02BE01" displayName="Paracétamol" codeSystem="2.16.840.1.113883.6.73"/></code>
        <name>DOLIPRANE 1000 mg</name></manufacturedMaterial>`}</manufacturedProduct></consumable>
      ${AUTHOR}${opts.extra ?? ''}
    </substanceAdministration></entry>`;

  it('reads a maximum dose "per J" as per day (ANS DLU), not per joule, and says so', () => {
    const m = mapSection('10183-2', treatment().replace('<denominator value="1" unit="d"/>', '<denominator value="1" unit="J"/>'));
    expectValid(m);
    expect(one<MedicationStatement>(m, 'MedicationStatement').dosage?.[0]?.maxDosePerPeriod?.denominator).toMatchObject({ value: 1, system: 'http://unitsofmeasure.org', code: 'd' });
    expect(m.codes).toContain('UNIT_REPAIRED');
  });

  it('dates a single administration by a later effectiveTime that is a point in time (CSE: date of the injection)', () => {
    const injection = treatment().replace('<effectiveTime xsi:type="IVL_TS"><low value="20240101"/><high value="20240131"/></effectiveTime>', '<effectiveTime xsi:type="IVL_TS"><low nullFlavor="NA"/><high nullFlavor="NA"/></effectiveTime>')
      .replace(/<effectiveTime xsi:type="PIVL_TS"[^]*?<\/effectiveTime>/, '<effectiveTime operator="A" value="202105030830+0200"/>');
    const ms = one<MedicationStatement>(mapSection('10183-2', injection), 'MedicationStatement');
    expect(ms.effectiveDateTime).toBe('2021-05-03T08:30:00+02:00');
    expect(ms.dosage?.[0]?.timing).toBeUndefined();
    // With a duration of its own, the treatment keeps it.
    const dated = treatment().replace(/<effectiveTime xsi:type="PIVL_TS"[^]*?<\/effectiveTime>/, '<effectiveTime operator="A" value="202401030830+0100"/>');
    const kept = one<MedicationStatement>(mapSection('10183-2', dated), 'MedicationStatement');
    expect(kept.effectivePeriod).toEqual({ start: '2024-01-01', end: '2024-01-31' });
    expect(kept.effectiveDateTime).toBeUndefined();
  });

  it('maps product, period, frequency, dose, rate, max dose, route, text and source', () => {
    const m = mapSection('10183-2', treatment(), '<content ID="med1">DOLIPRANE 1 cp toutes les 8 h</content>');
    expectValid(m);
    const ms = one<MedicationStatement>(m, 'MedicationStatement');
    expect(ms.status).toBe('active');
    expect(ms.medicationCodeableConcept?.coding?.map((c) => c.code)).toEqual(['60234100', 'N02BE01']);
    expect(ms.medicationCodeableConcept?.text).toBe('DOLIPRANE 1000 mg');
    expect(ms.effectivePeriod).toEqual({ start: '2024-01-01', end: '2024-01-31' });
    expect(ms.informationSource?.reference).toMatch(/^urn:uuid:/);
    expect(ms.dateAsserted).toBe('2024-01-02T10:30:00+01:00');
    expect(ms.dosage).toEqual([{
      text: 'DOLIPRANE 1 cp toutes les 8 h',
      timing: { repeat: { frequency: 1, period: 8, periodUnit: 'h' } },
      route: { coding: [{ system: 'http://standardterms.edqm.eu', code: '20053000', display: 'Voie orale' }] },
      doseAndRate: [{
        doseQuantity: { value: 1, unit: '{tbl}', system: 'http://unitsofmeasure.org', code: '{tbl}' },
        rateQuantity: { value: 5, unit: 'mL/h', system: 'http://unitsofmeasure.org', code: 'mL/h' },
      }],
      maxDosePerPeriod: {
        numerator: { value: 3, unit: 'g', system: 'http://unitsofmeasure.org', code: 'g' },
        denominator: { value: 1, unit: 'd', system: 'http://unitsofmeasure.org', code: 'd' },
      },
    }]);
  });

  it('reads an SXPR_TS (an interval intersected with a period) as a bounded Timing, and its interval as the treatment period', () => {
    const sxpr = (comps: string): string => treatment().replace(/<effectiveTime xsi:type="IVL_TS">.*?<\/effectiveTime>\s*<effectiveTime xsi:type="PIVL_TS"[^>]*>.*?<\/effectiveTime>/s,
      `<effectiveTime xsi:type="SXPR_TS">${comps}</effectiveTime>`);
    const m = mapSection('10160-0', sxpr(`<comp xsi:type="IVL_TS"><low value="20211201"/><width value="2" unit="d"/></comp>
      <comp xsi:type="PIVL_TS" operator="A"><period value="8" unit="h"/></comp>`));
    expectValid(m);
    const ms = one<MedicationStatement>(m, 'MedicationStatement');
    expect(ms.dosage?.[0]?.timing).toEqual({ repeat: { boundsPeriod: { start: '2021-12-01', end: '2021-12-02' }, frequency: 1, period: 8, periodUnit: 'h' } });
    expect(ms.effectivePeriod).toEqual({ start: '2021-12-01', end: '2021-12-02' });
    expect(m.codes).not.toContain('ENTRY_NOT_MAPPED');
    // A union or an exclusion is not one Timing: reported, nothing half-read.
    const union = mapSection('10160-0', sxpr(`<comp xsi:type="PIVL_TS"><period value="8" unit="h"/></comp>
      <comp xsi:type="PIVL_TS" operator="E"><period value="1" unit="wk"/></comp>`));
    expectValid(union);
    expect(one<MedicationStatement>(union, 'MedicationStatement').dosage?.[0]?.timing).toBeUndefined();
    expect(union.diagnostics.some((d) => d.startsWith('Administration timing (SXPR_TS) other than'))).toBe(true);
  });

  it('18610-6 administered treatments and INT mood are statements too; INT without status is intended', () => {
    const m1 = mapSection('18610-6', treatment({ status: '<statusCode code="aborted"/>' }));
    expectValid(m1);
    expect(one<MedicationStatement>(m1, 'MedicationStatement').status).toBe('stopped');
    const m2 = mapSection('10160-0', treatment({ mood: 'INT', status: '' }));
    expectValid(m2);
    expect(one<MedicationStatement>(m2, 'MedicationStatement').status).toBe('intended');
    // A prescription "completed" is the prescribing done (a discharge prescription): still intended.
    const prescribed = mapSection('10183-2', treatment({ mood: 'INT', status: '<statusCode code="completed"/>' }));
    expect(one<MedicationStatement>(prescribed, 'MedicationStatement').status).toBe('intended');
    expect(one<MedicationStatement>(mapSection('10183-2', treatment({ status: '<statusCode code="completed"/>' })), 'MedicationStatement').status).toBe('completed');
    const m3 = mapSection('10160-0', treatment({ status: '' }));
    expect(one<MedicationStatement>(m3, 'MedicationStatement').status).toBe('unknown');
    expect(m3.codes).toContain('ENTRY_INCOMPLETE');
  });

  it('reads a period unit written in French or upper case as its UCUM unit, reported; refuses an unknown one', () => {
    const every = (period: string): Mapped => mapSection('10160-0', treatment().replace('<period value="8" unit="h"/>', period));
    for (const [period, unit] of [['<period value="1" unit="J"/>', 'd'], ['<period value="2" unit="semaines"/>', 'wk'], ['<period value="1" unit="D"/>', 'd'], ['<period value="6" unit="H"/>', 'h']] as const) {
      const m = every(period);
      expectValid(m);
      expect(one<MedicationStatement>(m, 'MedicationStatement').dosage?.[0]?.timing?.repeat?.periodUnit, period).toBe(unit);
      expect(m.codes, period).toEqual(['UNIT_REPAIRED']);
    }
    const frequency = every('<frequency><numerator value="3"/><denominator value="1" unit="j"/></frequency>');
    expect(one<MedicationStatement>(frequency, 'MedicationStatement').dosage?.[0]?.timing?.repeat).toEqual({ frequency: 3, period: 1, periodUnit: 'd' });
    const unknown = every('<period value="1" unit="lune"/>');
    expect(one<MedicationStatement>(unknown, 'MedicationStatement').dosage?.[0]?.timing).toBeUndefined();
    expect(unknown.codes).toEqual(['ENTRY_NOT_MAPPED']);
  });

  it('falls back to the product name, then to data-absent-reason (DLU-EHPAD shape)', () => {
    const named = mapSection('10160-0', treatment({ product: '<manufacturedMaterial><code nullFlavor="UNK"/><name>Kardégic 75</name></manufacturedMaterial>' }));
    expectValid(named);
    expect(one<MedicationStatement>(named, 'MedicationStatement').medicationCodeableConcept).toEqual({ text: 'Kardégic 75' });
    const unknown = mapSection('10160-0', treatment({ product: '<manufacturedMaterial><code nullFlavor="UNK"/><name nullFlavor="UNK"/></manufacturedMaterial>' }));
    expectValid(unknown);
    expect(one<MedicationStatement>(unknown, 'MedicationStatement').medicationCodeableConcept).toEqual({ extension: [{ url: DAR, valueCode: 'unknown' }] });
    expect(unknown.codes).toContain('VALUE_NULL_FLAVOR');
    const missing = mapSection('10160-0', treatment({ product: '' }));
    expectValid(missing);
    expect(missing.codes).toContain('ENTRY_INCOMPLETE');
  });

  it('reads EIVL_TS, split doses, instructions, reasons, as-needed; reports the rest', () => {
    const extra = `<precondition><criterion><code code="ASSERTION" codeSystem="2.16.840.1.113883.5.4"/>
        <value xsi:type="CD"><originalText>si douleur</originalText></value></criterion></precondition>
      <entryRelationship typeCode="COMP"><substanceAdministration classCode="SBADM" moodCode="INT">
        <effectiveTime xsi:type="EIVL_TS"><event code="ACM"/></effectiveTime><doseQuantity value="2" unit="{tbl}"/>
        <consumable><manufacturedProduct><manufacturedMaterial nullFlavor="NA"/></manufacturedProduct></consumable></substanceAdministration></entryRelationship>
      <entryRelationship typeCode="SUBJ" inversionInd="true"><act classCode="ACT" moodCode="INT">
        <templateId root="1.3.6.1.4.1.19376.1.5.3.1.4.3"/><code code="PINSTRUCT" codeSystem="1.3.6.1.4.1.19376.1.5.3.2"/>
        <text>Prendre avec un grand verre d'eau</text><statusCode code="completed"/></act></entryRelationship>
      <entryRelationship typeCode="RSON"><observation classCode="OBS" moodCode="EVN"><code code="ASSERTION" codeSystem="2.16.840.1.113883.5.4"/>
        <value xsi:type="CD" code="R51" displayName="Céphalée" codeSystem="2.16.840.1.113883.6.3"/></observation></entryRelationship>
      <entryRelationship typeCode="REFR"><supply classCode="SPLY" moodCode="INT"/></entryRelationship>`;
    const m = mapSection('10160-0', treatment({ extra }));
    expectValid(m);
    const ms = one<MedicationStatement>(m, 'MedicationStatement');
    expect(ms.dosage).toHaveLength(2);
    expect(ms.dosage?.[0]?.asNeededCodeableConcept).toEqual({ text: 'si douleur' });
    expect(ms.dosage?.[0]?.patientInstruction).toBe("Prendre avec un grand verre d'eau");
    expect(ms.dosage?.[1]).toMatchObject({ sequence: 2, timing: { repeat: { when: ['ACM'] } } });
    expect(ms.reasonCode?.[0]?.coding?.[0]?.code).toBe('R51');
    expect(m.diagnostics.some((d) => d.startsWith('supply (moodCode INT) related to a treatment'))).toBe(true);
  });

  it('reports a frequency FHIR Timing cannot hold', () => {
    const m = mapSection('10160-0', treatment().replace('<period value="8" unit="h"/>', '<period value="2" unit="fortnight"/>'));
    expectValid(m);
    expect(one<MedicationStatement>(m, 'MedicationStatement').dosage?.[0]?.timing).toBeUndefined();
    expect(m.codes).toContain('ENTRY_NOT_MAPPED');
  });
});

// ---------------------------------------------------------------- immunizations

describe('vaccinations → Immunization', () => {
  const vaccination = (status: string, time: string, extra = ''): string => `<entry><substanceAdministration classCode="SBADM" moodCode="EVN">
    <templateId root="1.3.6.1.4.1.19376.1.5.3.1.4.12"/><id root="1.2.3.7" extension="v1"/>
    <code code="IMMUNIZ" codeSystem="2.16.840.1.113883.5.4"/>${status}${time}
    <routeCode code="IM" codeSystem="2.16.840.1.113883.5.112"/><approachSiteCode code="368209003" displayName="Bras droit" codeSystem="2.16.840.1.113883.6.96"/>
    <doseQuantity value="0.5" unit="mL"/>
    <consumable><manufacturedProduct><manufacturedMaterial>
      <code code="J07BB02" displayName="Vaccin grippe" codeSystem="2.16.840.1.113883.6.73"/><name>VAXIGRIP</name><lotNumberText>L123</lotNumberText>
    </manufacturedMaterial><manufacturerOrganization><name>Sanofi</name></manufacturerOrganization></manufacturedProduct></consumable>
    <performer><assignedEntity><id root="1.2.250.1.71.4.2.1" extension="810000000002"/>
      <assignedPerson><name><family>DURAND</family></name></assignedPerson></assignedEntity></performer>
    ${extra}</substanceAdministration></entry>`;

  it('maps vaccine, date, lot, manufacturer, route, site, dose, performer, dose number, reaction', () => {
    const m = mapSection('11369-6', vaccination('<statusCode code="completed"/>', '<effectiveTime value="20231015"/>', `${AUTHOR}
      <entryRelationship typeCode="SUBJ"><observation classCode="OBS" moodCode="EVN"><code code="30973-2" codeSystem="2.16.840.1.113883.6.1"/>
        <statusCode code="completed"/><value xsi:type="INT" value="2"/></observation></entryRelationship>
      <entryRelationship typeCode="CAUS"><observation classCode="OBS" moodCode="EVN"><code code="ASSERTION" codeSystem="2.16.840.1.113883.5.4"/>
        <statusCode code="completed"/><effectiveTime><low value="20231016"/></effectiveTime>
        <value xsi:type="CD" code="386661006" displayName="Fièvre" codeSystem="2.16.840.1.113883.6.96"/></observation></entryRelationship>`));
    expectValid(m);
    const im = one<Immunization>(m, 'Immunization');
    expect(im.status).toBe('completed');
    expect(im.vaccineCode.coding?.[0]?.code).toBe('J07BB02');
    expect(im.occurrenceDateTime).toBe('2023-10-15');
    expect(im.lotNumber).toBe('L123');
    expect(im.manufacturer?.reference).toMatch(/^urn:uuid:/);
    expect(im.doseQuantity?.value).toBe(0.5);
    expect(im.site?.coding?.[0]?.code).toBe('368209003');
    expect(im.performer?.[0]?.actor.reference).toMatch(/^urn:uuid:/);
    expect(im.protocolApplied).toEqual([{ doseNumberPositiveInt: 2 }]);
    // The author dates the record (Immunization has no recorder): no actor is emitted for nothing.
    expect(im.recorded).toBe('2024-01-02T10:30:00+01:00');
    expect(of(m, 'PractitionerRole')).toHaveLength(1);
    const reaction = one<Observation>(m, 'Observation');
    expect(im.reaction).toEqual([{ detail: { reference: urlOf(m, reaction) }, date: '2023-10-16' }]);
    expect(m.refs[0]).toEqual({ reference: urlOf(m, im) });
  });

  it('states an absent status and date with data-absent-reason; negation is not-done', () => {
    const m = mapSection('11369-6', vaccination('', '<effectiveTime nullFlavor="UNK"/>'));
    expectValid(m);
    const im = one<Immunization>(m, 'Immunization') as unknown as Loose;
    expect(im.status).toBeUndefined();
    expect(im._status).toEqual({ extension: [{ url: DAR, valueCode: 'unknown' }] });
    expect(im._occurrenceDateTime).toEqual({ extension: [{ url: DAR, valueCode: 'unknown' }] });
    expect(m.codes).toEqual(expect.arrayContaining(['ENTRY_INCOMPLETE', 'VALUE_NULL_FLAVOR']));
    const negated = mapSection('11369-6', vaccination('<statusCode code="completed"/>', '<effectiveTime value="2023"/>').replace('moodCode="EVN"', 'moodCode="EVN" negationInd="true"'));
    expect(one<Immunization>(negated, 'Immunization').status).toBe('not-done');
  });
});

// ---------------------------------------------------------------- procedures

describe('acts → Procedure', () => {
  it('an observation inside the act is its result: an Observation partOf the Procedure', () => {
    const m = mapSection('29554-3', `<entry><procedure classCode="PROC" moodCode="EVN"><id root="1.2.3.8" extension="surdite"/>
      <code code="MED-1304" displayName="Dépistage de la surdité" codeSystem="1.2.250.1.213.1.1.4.322"/><statusCode code="completed"/>
      <effectiveTime><low value="20210503"/></effectiveTime>
      <entryRelationship typeCode="COMP"><observation classCode="OBS" moodCode="EVN"><code code="MED-1305" displayName="Résultat du dépistage de la surdité" codeSystem="1.2.250.1.213.1.1.4.322"/>
        <statusCode code="completed"/><value xsi:type="CD" code="MED-179" displayName="Audition à recontrôler" codeSystem="1.2.250.1.213.1.1.4.322"/></observation></entryRelationship>
    </procedure></entry>`);
    expectValid(m);
    const p = one<Procedure>(m, 'Procedure');
    const o = one<Observation>(m, 'Observation');
    expect(o).toMatchObject({ partOf: [{ reference: urlOf(m, p) }], valueCodeableConcept: { coding: [{ code: 'MED-179' }] } });
    expect(m.refs).toEqual([{ reference: urlOf(m, p) }, { reference: urlOf(m, o) }]);
    expect(m.codes).not.toContain('ENTRY_NOT_MAPPED');
  });

  it('maps code, status, period, body site, performer, recorder and reason', () => {
    const m = mapSection('47519-4', `<entry><procedure classCode="PROC" moodCode="EVN"><id root="1.2.3.8" extension="x"/>
      <code code="HHFA016" displayName="Appendicectomie" codeSystem="1.2.250.1.215.300.1"/><statusCode code="completed"/>
      <effectiveTime><low value="20220301101500+0100"/><high value="20220301113000+0100"/></effectiveTime>
      <targetSiteCode code="66754008" codeSystem="2.16.840.1.113883.6.96"/>
      <performer><assignedEntity><id root="1.2.250.1.71.4.2.1" extension="810000000003"/><assignedPerson><name><family>LEROY</family></name></assignedPerson></assignedEntity></performer>
      ${AUTHOR}
      <entryRelationship typeCode="RSON"><observation classCode="OBS" moodCode="EVN"><code code="ASSERTION" codeSystem="2.16.840.1.113883.5.4"/>
        <value xsi:type="CD" code="K35" codeSystem="2.16.840.1.113883.6.3"/></observation></entryRelationship></procedure></entry>`);
    expectValid(m);
    const p = one<Procedure>(m, 'Procedure');
    expect(p.status).toBe('completed');
    expect(p.code?.coding?.[0]?.code).toBe('HHFA016');
    expect(p.performedPeriod).toEqual({ start: '2022-03-01T10:15:00+01:00', end: '2022-03-01T11:30:00+01:00' });
    expect(p.bodySite?.[0]?.coding?.[0]?.code).toBe('66754008');
    expect(p.performer?.[0]?.actor.reference).toMatch(/^urn:uuid:/);
    expect(p.recorder?.reference).toMatch(/^urn:uuid:/);
    expect(p.reasonCode?.[0]?.coding?.[0]?.code).toBe('K35');
  });

  it('cancelled → not-done, missing status → unknown; planned acts and placeholders are reported', () => {
    const cancelled = mapSection('47519-4', '<entry><procedure classCode="PROC" moodCode="EVN"><code code="A" codeSystem="1.2.3"/><statusCode code="cancelled"/></procedure></entry>');
    expect(one<Procedure>(cancelled, 'Procedure').status).toBe('not-done');
    const noStatus = mapSection('47519-4', '<entry><procedure classCode="PROC" moodCode="EVN"><code code="A" codeSystem="1.2.3"/></procedure></entry>');
    expect(one<Procedure>(noStatus, 'Procedure').status).toBe('unknown');
    expect(noStatus.codes).toContain('ENTRY_INCOMPLETE');
    const planned = mapSection('47519-4', '<entry><procedure classCode="PROC" moodCode="INT"><code code="A" codeSystem="1.2.3"/></procedure></entry>');
    expect(planned.resources).toEqual([]);
    expect(planned.codes).toEqual(['ENTRY_NOT_MAPPED']);
    const placeholder = mapSection('30954-2', '<entry><procedure classCode="PROC" moodCode="EVN"><code nullFlavor="NA"/><text><reference value="#xxx"/></text><statusCode code="cancelled"/></procedure></entry>');
    expect(placeholder.resources).toEqual([]);
    expect(placeholder.codes).toEqual(['ENTRY_NOT_MAPPED']);
  });
});

// ---------------------------------------------------------------- observations

describe('observations → Observation', () => {
  const obs = (value: string, extra = '', status = '<statusCode code="completed"/>'): string => `<entry><observation classCode="OBS" moodCode="EVN">
    <id root="1.2.3.9" extension="o"/><code code="X-1" displayName="Mesure" codeSystem="1.2.250.1.213.1.1.4.322"/>${status}
    <effectiveTime value="20240305083000+0100"/>${value}${extra}</observation></entry>`;
  const valueOf = (m: Mapped): Loose => {
    const o = one<Observation>(m, 'Observation') as unknown as Loose;
    return Object.fromEntries(Object.entries(o).filter(([k]) => k.startsWith('value') || k === 'dataAbsentReason'));
  };

  const cases: [string, string, Loose][] = [
    ['PQ', '<value xsi:type="PQ" value="37.5" unit="Cel"/>', { valueQuantity: { value: 37.5, unit: 'Cel', system: 'http://unitsofmeasure.org', code: 'Cel' } }],
    ['CD', '<value xsi:type="CD" code="373066001" displayName="Oui" codeSystem="2.16.840.1.113883.6.96"/>', { valueCodeableConcept: { coding: [{ system: 'http://snomed.info/sct', code: '373066001', display: 'Oui' }] } }],
    ['CE', '<value xsi:type="CE" code="N" codeSystem="2.16.840.1.113883.5.83"/>', { valueCodeableConcept: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation', code: 'N' }] } }],
    ['CD (observation method)', '<value xsi:type="CD" code="107" codeSystem="2.16.840.1.113883.5.84"/>', { valueCodeableConcept: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v3-ObservationMethod', code: '107' }] } }],
    ['ST', '<value xsi:type="ST">  Patient   calme </value>', { valueString: 'Patient calme' }],
    ['ED text', '<value xsi:type="ED">Texte libre</value>', { valueString: 'Texte libre' }],
    ['BL', '<value xsi:type="BL" value="false"/>', { valueBoolean: false }],
    ['INT', '<value xsi:type="INT" value="12"/>', { valueInteger: 12 }],
    ['REAL', '<value xsi:type="REAL" value="1.5"/>', { valueQuantity: { value: 1.5 } }],
    ['IVL_PQ', '<value xsi:type="IVL_PQ"><low value="1" unit="mmol/L"/><high value="2" unit="mmol/L"/></value>', { valueRange: { low: { value: 1, unit: 'mmol/L', system: 'http://unitsofmeasure.org', code: 'mmol/L' }, high: { value: 2, unit: 'mmol/L', system: 'http://unitsofmeasure.org', code: 'mmol/L' } } }],
    ['IVL_PQ, high only ("< 1.0 mg/L")', '<value xsi:type="IVL_PQ"><low nullFlavor="NINF"/><high value="1.0" unit="mg/L" inclusive="false"/></value>', { valueQuantity: { value: 1, unit: 'mg/L', system: 'http://unitsofmeasure.org', code: 'mg/L', comparator: '<' } }],
    ['IVL_PQ, low only', '<value xsi:type="IVL_PQ"><low value="90" unit="mL/min"/></value>', { valueQuantity: { value: 90, unit: 'mL/min', system: 'http://unitsofmeasure.org', code: 'mL/min', comparator: '>=' } }],
    ['TS', '<value xsi:type="TS" value="20240305"/>', { valueDateTime: '2024-03-05' }],
    ['IVL_TS', '<value xsi:type="IVL_TS"><low value="2024"/><high value="2025"/></value>', { valuePeriod: { start: '2024', end: '2025' } }],
    ['RTO', '<value xsi:type="RTO_PQ_PQ"><numerator value="1" unit="mg"/><denominator value="2" unit="mL"/></value>', { valueRatio: { numerator: { value: 1, unit: 'mg', system: 'http://unitsofmeasure.org', code: 'mg' }, denominator: { value: 2, unit: 'mL', system: 'http://unitsofmeasure.org', code: 'mL' } } }],
    ['prefix xs:', '<value xmlns:xs="http://www.w3.org/2001/XMLSchema-instance" xs:type="INT" value="3"/>', { valueInteger: 3 }],
    ['nullFlavor', '<value xsi:type="PQ" nullFlavor="NASK"/>', { dataAbsentReason: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/data-absent-reason', code: 'not-asked' }] } }],
    ['unreadable', '<value xsi:type="PQ" value="beaucoup" unit="kg"/>', { dataAbsentReason: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/data-absent-reason', code: 'error' }] } }],
    ['huge', '<value xsi:type="PQ" value="1e400" unit="kg"/>', { dataAbsentReason: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/data-absent-reason', code: 'error' }] } }],
    ['INT overflow', '<value xsi:type="INT" value="99999999999"/>', { dataAbsentReason: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/data-absent-reason', code: 'error' }] } }],
    ['no value', '', {}],
  ];
  it.each(cases)('value %s', (_name, value, expected) => {
    const m = mapSection('30954-2', obs(value));
    expectValid(m);
    expect(valueOf(m)).toEqual(expected);
  });

  it('maps interpretation, reference range, method, body site, performer and comments', () => {
    const m = mapSection('30954-2', obs('<value xsi:type="PQ" value="7.67" unit="pg/mL"/>', `
      <interpretationCode code="L" displayName="Bas" codeSystem="2.16.840.1.113883.5.83"/>
      <methodCode><originalText>ECL</originalText></methodCode>
      <targetSiteCode code="7771000" codeSystem="2.16.840.1.113883.6.96"/>
      ${AUTHOR}
      <entryRelationship typeCode="SUBJ" inversionInd="true"><act classCode="ACT" moodCode="EVN"><templateId root="1.3.6.1.4.1.19376.1.5.3.1.4.2"/>
        <code code="48767-8" codeSystem="2.16.840.1.113883.6.1"/><text>A contrôler</text></act></entryRelationship>
      <referenceRange><observationRange><value xsi:type="IVL_PQ"><low value="9.30" unit="pg/mL"/><high value="17" unit="pg/mL"/></value>
        <interpretationCode code="N" codeSystem="2.16.840.1.113883.5.83"/></observationRange></referenceRange>
      <referenceRange><observationRange><text>selon âge</text></observationRange></referenceRange>`));
    expectValid(m);
    const o = one<Observation>(m, 'Observation');
    expect(o.status).toBe('final');
    expect(o.effectiveDateTime).toBe('2024-03-05T08:30:00+01:00');
    expect(o.interpretation?.[0]?.coding?.[0]?.code).toBe('L');
    expect(o.method).toEqual({ text: 'ECL' });
    expect(o.bodySite?.coding?.[0]?.code).toBe('7771000');
    expect(o.performer?.[0]?.reference).toMatch(/^urn:uuid:/);
    expect(o.issued).toBe('2024-01-02T10:30:00+01:00');
    expect(o.note).toEqual([{ text: 'A contrôler' }]);
    expect(o.referenceRange?.[0]).toMatchObject({ low: { value: 9.3 }, high: { value: 17 }, type: { coding: [{ code: 'normal' }] } });
    expect(o.referenceRange?.[1]).toEqual({ text: 'selon âge' });
  });

  it('status mapping, unknown when absent, code from narrative or data-absent-reason', () => {
    expect(one<Observation>(mapSection('30954-2', obs('', '', '<statusCode code="active"/>')), 'Observation').status).toBe('preliminary');
    expect(one<Observation>(mapSection('30954-2', obs('', '', '<statusCode code="aborted"/>')), 'Observation').status).toBe('cancelled');
    const none = mapSection('30954-2', obs('', '', ''));
    expect(one<Observation>(none, 'Observation').status).toBe('unknown');
    expect(none.codes).toContain('ENTRY_INCOMPLETE');
    const narrated = mapSection('47420-5', '<entry><observation classCode="OBS" moodCode="EVN"><code nullFlavor="OTH"/><text><reference value="#t"/></text><statusCode code="completed"/></observation></entry>', '<content ID="t">Marche avec aide</content>');
    expectValid(narrated);
    expect(one<Observation>(narrated, 'Observation').code).toEqual({ text: 'Marche avec aide' });
    const absentCode = mapSection('47420-5', '<entry><observation classCode="OBS" moodCode="EVN"><code nullFlavor="UNK"/><statusCode code="completed"/></observation></entry>');
    expectValid(absentCode);
    expect(one<Observation>(absentCode, 'Observation').code).toEqual({ extension: [{ url: DAR, valueCode: 'unknown' }] });
    expect(absentCode.codes).toContain('VALUE_NULL_FLAVOR');
  });

  it('resolves narrative references written without # (published examples do)', () => {
    const m = mapSection('30954-2', '<entry><observation classCode="OBS" moodCode="EVN"><code nullFlavor="NI"/><text><reference value="n1"/></text><statusCode code="completed"/></observation></entry>', '<content ID="n1">Vigilance normale</content>');
    expect(one<Observation>(m, 'Observation').code).toEqual({ text: 'Vigilance normale' });
  });

  it('reports negated and planned observations and extra values', () => {
    const negated = mapSection('30954-2', obs('<value xsi:type="BL" value="true"/>').replace('moodCode="EVN"', 'moodCode="EVN" negationInd="true"'));
    expect(negated.resources).toEqual([]);
    expect(negated.codes).toEqual(['ENTRY_NOT_MAPPED']);
    const planned = mapSection('30954-2', obs('').replace('moodCode="EVN"', 'moodCode="RQO"'));
    expect(planned.resources).toEqual([]);
    const two = mapSection('30954-2', obs('<value xsi:type="INT" value="1"/><value xsi:type="INT" value="2"/>'));
    expect((one<Observation>(two, 'Observation')).valueInteger).toBe(1);
    expect(two.codes).toContain('ENTRY_NOT_MAPPED');
  });

  it('a negated problem entry outside the problem lists is the observation of an absent finding', () => {
    // CSE-CS9 examination: "Spina bifida: non", written as an FR-Probleme with negationInd.
    const m = mapSection('10202-0', `<entry><observation classCode="OBS" moodCode="EVN" negationInd="true">
      <templateId root="1.3.6.1.4.1.19376.1.5.3.1.4.5"/><templateId root="1.2.250.1.213.1.1.3.37"/>
      <code code="282291009" displayName="interprétation diagnostique" codeSystem="2.16.840.1.113883.6.96"/>
      <text><reference value="#sb"/></text><statusCode code="completed"/><effectiveTime><low nullFlavor="UNK"/></effectiveTime>
      <value xsi:type="CD" code="Q05.9" displayName="Spina bifida, sans précision" codeSystem="2.16.840.1.113883.6.3"/></observation></entry>`,
    '<content ID="sb">Spina bifida</content>');
    expectValid(m);
    const o = one<Observation>(m, 'Observation');
    expect(o.code).toEqual({ coding: [{ system: 'http://hl7.org/fhir/sid/icd-10', code: 'Q05.9', display: 'Spina bifida, sans précision' }], text: 'Spina bifida' });
    expect(o.valueCodeableConcept).toEqual({ coding: [{ system: 'http://snomed.info/sct', code: '2667000', display: 'Absent' }] });
    expect(m.codes).not.toContain('ENTRY_NOT_MAPPED');
    // Without a coded value there is nothing to say absent: reported.
    const vague = mapSection('10202-0', `<entry><observation classCode="OBS" moodCode="EVN" negationInd="true">
      <templateId root="1.3.6.1.4.1.19376.1.5.3.1.4.5"/><code code="282291009" codeSystem="2.16.840.1.113883.6.96"/>
      <statusCode code="completed"/><value xsi:type="ST">rien</value></observation></entry>`);
    expect(vague.resources).toEqual([]);
    expect(vague.codes).toEqual(['ENTRY_NOT_MAPPED']);
  });

  it('an organizer becomes a panel with hasMember; members inherit its time; nested observations are members', () => {
    const m = mapSection('8716-3', `<entry><organizer classCode="CLUSTER" moodCode="EVN"><id root="1.2.3.10"/>
      <code code="85353-1" displayName="Signes vitaux" codeSystem="2.16.840.1.113883.6.1"/><statusCode code="completed"/>
      <effectiveTime value="20210211"/>
      <component><observation classCode="OBS" moodCode="EVN"><code code="29463-7" codeSystem="2.16.840.1.113883.6.1"/>
        <statusCode code="completed"/><effectiveTime nullFlavor="NASK"/><value xsi:type="PQ" value="3900" unit="g"/></observation></component>
      <component><observation classCode="OBS" moodCode="EVN"><code code="85354-9" codeSystem="2.16.840.1.113883.6.1"/>
        <statusCode code="completed"/><effectiveTime value="20210211101000+0100"/>
        <entryRelationship typeCode="COMP"><observation classCode="OBS" moodCode="EVN"><code code="8480-6" codeSystem="2.16.840.1.113883.6.1"/>
          <statusCode code="completed"/><value xsi:type="PQ" value="120" unit="mm[Hg]"/></observation></entryRelationship></observation></component>
      <component><procedure classCode="PROC" moodCode="EVN"/></component>
    </organizer></entry>`);
    expectValid(m);
    const all = of<Observation>(m, 'Observation');
    expect(all).toHaveLength(4);
    const [panel, weight, bp, systolic] = all as [Observation, Observation, Observation, Observation];
    expect(panel.code.coding?.[0]?.code).toBe('85353-1');
    expect(panel.hasMember).toEqual([{ reference: urlOf(m, weight) }, { reference: urlOf(m, bp) }]);
    expect(bp.hasMember).toEqual([{ reference: urlOf(m, systolic) }]);
    expect(weight.effectiveDateTime).toBe('2021-02-11');
    expect(all.every((o) => o.category?.[0]?.coding?.[0]?.code === 'vital-signs')).toBe(true);
    expect(m.refs.map((r) => r.reference)).toEqual(all.map((o) => urlOf(m, o)));
    expect(m.diagnostics.some((d) => d.startsWith('procedure as organizer component'))).toBe(true);
  });

  it('a CR-BIO results act yields laboratory observations', () => {
    const m = mapSection('18719-5', `<entry typeCode="DRIV"><templateId root="1.3.6.1.4.1.19376.1.3.1"/>
      <act classCode="ACT" moodCode="EVN"><code code="18719-5" codeSystem="2.16.840.1.113883.6.1"/><statusCode code="completed"/>
        <entryRelationship typeCode="COMP"><observation classCode="OBS" moodCode="EVN"><code code="3016-3" codeSystem="2.16.840.1.113883.6.1"/>
          <statusCode code="completed"/><value xsi:type="PQ" value="1.95" unit="m[IU]/L"/></observation></entryRelationship>
        <entryRelationship typeCode="COMP"><organizer classCode="BATTERY" moodCode="EVN"><code code="24331-1" codeSystem="2.16.840.1.113883.6.1"/>
          <statusCode code="active"/><component><observation classCode="OBS" moodCode="EVN"><code code="2093-3" codeSystem="2.16.840.1.113883.6.1"/>
          <statusCode code="active"/><value xsi:type="PQ" value="5.2" unit="mmol/L"/></observation></component></organizer></entryRelationship>
      </act></entry>`);
    expectValid(m);
    const all = of<Observation>(m, 'Observation');
    expect(all.map((o) => o.code.coding?.[0]?.code)).toEqual(['3016-3', '24331-1', '2093-3']);
    expect(all.every((o) => o.category?.[0]?.coding?.[0]?.code === 'laboratory')).toBe(true);
    expect(all[1]?.status).toBe('preliminary');
  });

  it('lab comments: on a battery → the panel\'s note; on a results act → its DiagnosticReport\'s conclusion', () => {
    const comment = (text: string): string => `<act classCode="ACT" moodCode="EVN"><templateId root="1.3.6.1.4.1.19376.1.5.3.1.4.2"/>
      <code code="48767-8" codeSystem="2.16.840.1.113883.6.1"/><text>${text}</text><statusCode code="completed"/></act>`;
    const battery = `<organizer classCode="BATTERY" moodCode="EVN"><code code="24351-9" codeSystem="2.16.840.1.113883.6.1"/><statusCode code="completed"/>
      <component><observation classCode="OBS" moodCode="EVN"><code code="2885-2" codeSystem="2.16.840.1.113883.6.1"/><statusCode code="completed"/>
        <value xsi:type="PQ" value="70" unit="g/L"/></observation></component>
      <component>${comment('Profil normal')}</component></organizer>`;
    const act = (rels: string): string => `<entry typeCode="DRIV"><templateId root="1.3.6.1.4.1.19376.1.3.1"/>
      <act classCode="ACT" moodCode="EVN"><code code="18719-5" codeSystem="2.16.840.1.113883.6.1"/><statusCode code="completed"/>${rels}</act></entry>`;
    const single = mapSection('18719-5', act(`<entryRelationship typeCode="COMP">${battery}</entryRelationship>
      <entryRelationship typeCode="COMP">${comment('Contrôle dans 3 mois')}</entryRelationship>`));
    expectValid(single);
    const [panel] = of<Observation>(single, 'Observation');
    expect(panel?.note).toEqual([{ text: 'Profil normal' }]);
    expect(one<DiagnosticReport>(single, 'DiagnosticReport').conclusion).toBe('Contrôle dans 3 mois');
    expect(single.codes).not.toContain('ENTRY_NOT_MAPPED');
    const two = mapSection('18719-5', act(`<entryRelationship typeCode="COMP">${battery}</entryRelationship><entryRelationship typeCode="COMP">${battery}</entryRelationship>
      <entryRelationship typeCode="COMP">${comment('Contrôle dans 3 mois')}</entryRelationship>`));
    expectValid(two);
    const report = one<DiagnosticReport>(two, 'DiagnosticReport');
    const panels = of<Observation>(two, 'Observation').filter((o) => o.hasMember);
    expect(report).toMatchObject({
      status: 'final', code: { coding: [{ system: 'http://loinc.org', code: '18719-5' }] }, category: [{ coding: [{ code: 'LAB' }] }],
      subject: { reference: PATIENT }, conclusion: 'Contrôle dans 3 mois',
    });
    expect(report.result).toEqual(panels.map((p) => ({ reference: urlOf(two, p) })));
    expect(two.refs[0]).toEqual({ reference: urlOf(two, report) });
    expect(two.codes).not.toContain('ENTRY_NOT_MAPPED');
  });

  it('a microbiology results act (specimen collection, isolate cluster, susceptibility battery) yields its observations', () => {
    const m = mapSection('18725-2', `<entry typeCode="DRIV"><templateId root="1.3.6.1.4.1.19376.1.3.1"/><templateId root="1.2.250.1.213.1.1.3.21"/>
      <act classCode="ACT" moodCode="EVN"><code code="18725-2" codeSystem="2.16.840.1.113883.6.1"/><statusCode code="completed"/>
        <performer typeCode="PRF"><templateId root="1.2.250.1.213.1.1.3.23"/><time value="202401041050+0100"/><assignedEntity>
          <id root="1.2.250.1.71.4.2.1" extension="801234567833"/><assignedPerson><name><given>Anne</given><family>EXECUTANTE</family></name></assignedPerson>
          <representedOrganization><id root="1.2.250.1.71.4.2.2" extension="1120456733"/><name>LABORATOIRE SOUS-TRAITANT</name></representedOrganization>
        </assignedEntity></performer>
        <participant typeCode="AUTHEN"><time><high value="202401041120+0100"/></time><participantRole><id root="1.2.250.1.71.4.2.1" extension="801234567898"/>
          <playingEntity><name><given>Jean</given><family>DE SANTS</family></name></playingEntity></participantRole></participant>
        <entryRelationship typeCode="COMP"><procedure classCode="PROC" moodCode="EVN"><templateId root="1.3.6.1.4.1.19376.1.3.1.2"/>
          <code code="5201" displayName="EX MICROBIO URINES (ECBU)" codeSystem="1.2.3.4"/><effectiveTime><high value="202401040735+0100"/></effectiveTime>
          <participant typeCode="PRD"><participantRole classCode="SPEC"><id root="1.2.250.1.999.3" extension="E-42"/>
            <playingEntity><code code="UR" displayName="Urine" codeSystem="2.16.840.1.113883.18.311"/></playingEntity></participantRole></participant>
          <entryRelationship typeCode="COMP"><act classCode="ACT" moodCode="EVN"><templateId root="1.3.6.1.4.1.19376.1.3.1.3"/>
            <code code="SPRECEIVE" codeSystem="1.3.5.1.4.1.19376.1.5.3.2"/><effectiveTime value="202401040752+0100"/></act></entryRelationship></procedure></entryRelationship>
        <entryRelationship typeCode="COMP"><organizer classCode="CLUSTER" moodCode="EVN"><templateId root="1.3.6.1.4.1.19376.1.3.1.5"/><statusCode code="completed"/>
          <specimen typeCode="SPC"><specimenRole classCode="SPEC"><specimenPlayingEntity classCode="MIC">
            <code code="112283007" displayName="Escherichia coli (organism)" codeSystem="2.16.840.1.113883.6.96"/></specimenPlayingEntity></specimenRole></specimen>
          <component><observation classCode="OBS" moodCode="EVN"><code code="51480-2" codeSystem="2.16.840.1.113883.6.1"/><statusCode code="completed"/>
            <value xsi:type="PQ" value="100000" unit="/mL"/></observation></component>
          <component><organizer classCode="BATTERY" moodCode="EVN"><code code="18769-0" displayName="Antibiogramme" codeSystem="2.16.840.1.113883.6.1"/><statusCode code="completed"/>
            <component><observation classCode="OBS" moodCode="EVN"><code code="20-8" codeSystem="2.16.840.1.113883.6.1"/><statusCode code="completed"/>
              <value xsi:type="CD" code="S" codeSystem="2.16.840.1.113883.5.83"/></observation></component></organizer></component>
        </organizer></entryRelationship>
      </act></entry>`);
    expectValid(m);
    const all = of<Observation>(m, 'Observation');
    expect(all.map((o) => o.code.coding?.[0]?.code)).toContain('51480-2');
    expect(all.map((o) => o.code.coding?.[0]?.code)).toContain('20-8');
    expect(all.every((o) => o.category?.[0]?.coding?.[0]?.code === 'laboratory')).toBe(true);
    // The specimen collection: a Specimen every result of the act names.
    const specimen = one<Specimen>(m, 'Specimen');
    expect(specimen).toMatchObject({
      identifier: [{ system: 'urn:oid:1.2.250.1.999.3', value: 'E-42' }],
      type: { coding: [{ code: 'UR', display: 'Urine' }] },
      collection: { collectedDateTime: '2024-01-04T07:35:00+01:00' },
      receivedTime: '2024-01-04T07:52:00+01:00',
      subject: { reference: PATIENT },
    });
    expect(all.every((o) => o.specimen?.reference === urlOf(m, specimen))).toBe(true);
    const report = one<DiagnosticReport>(m, 'DiagnosticReport');
    expect(report).toMatchObject({
      specimen: [{ reference: urlOf(m, specimen) }],
      effectiveDateTime: '2024-01-04T07:35:00+01:00', // the specimen's collection
      issued: '2024-01-04T11:20:00+01:00', // the validation (participant AUTHEN's time)
    });
    // The biologist who validated (participant AUTHEN) interprets the results.
    const resolve = (ref: Reference | undefined): Resource | undefined => m.resources.find((r) => urlOf(m, r) === ref?.reference);
    const role = resolve(report.resultsInterpreter?.[0]);
    const biologist = role?.resourceType === 'PractitionerRole' ? resolve(role.practitioner) : undefined;
    expect(biologist).toMatchObject({ resourceType: 'Practitioner', name: [{ family: 'DE SANTS' }] });
    // The laboratory that did the analyses (FR-Laboratoire-executant, a subcontractor here) performs the report.
    const executing = resolve(report.performer?.[0]);
    expect(executing?.resourceType).toBe('PractitionerRole');
    if (executing?.resourceType === 'PractitionerRole') {
      expect(resolve(executing.organization)).toMatchObject({ name: 'LABORATOIRE SOUS-TRAITANT' });
      expect(resolve(executing.practitioner)).toMatchObject({ name: [{ family: 'EXECUTANTE' }] });
    }
    expect(m.codes).not.toContain('ENTRY_NOT_MAPPED');
    // The isolate: a panel whose value is the microorganism, its counts and susceptibilities as members.
    const isolate = all.find((o) => o.valueCodeableConcept) as Observation;
    expect(isolate.code).toEqual({ text: 'Micro-organisme identifié' });
    expect(isolate.valueCodeableConcept?.coding?.[0]).toMatchObject({ system: 'http://snomed.info/sct', code: '112283007' });
    expect(isolate.hasMember).toHaveLength(2);
    expect(m.codes).not.toContain('ENTRY_INCOMPLETE');
  });
});

describe('a document an observation refers to (reference/externalDocument) → Observation.derivedFrom', () => {
  it('points at a DocumentReference with the document\'s id and URL (DLU: the advance directives kept elsewhere)', () => {
    const m = mapSection('42348-3', `<entry><observation classCode="OBS" moodCode="EVN"><code code="42348-3" codeSystem="2.16.840.1.113883.6.1"/>
      <statusCode code="completed"/><value xsi:type="BL" value="true"/>
      <reference typeCode="REFR"><externalDocument classCode="DOC" moodCode="EVN"><id root="FB56FC8D-5DC2-4A75-8681-C307336F60E1"/>
        <text><reference value="ftp://ftp.ihe.net/advancedirectives/durand#124/"/></text></externalDocument></reference></observation></entry>`);
    expectValid(m);
    const doc = one<DocumentReference>(m, 'DocumentReference');
    expect(doc).toMatchObject({ status: 'current', content: [{ attachment: { url: 'ftp://ftp.ihe.net/advancedirectives/durand#124/' } }], identifier: [{ value: 'urn:uuid:fb56fc8d-5dc2-4a75-8681-c307336f60e1' }], subject: { reference: PATIENT } });
    expect(one<Observation>(m, 'Observation').derivedFrom).toEqual([{ reference: urlOf(m, doc) }]);
  });
});

describe('the detection kit of a result (participant DEV) → Observation.device', () => {
  it('gives each result its kit as a Device, one Device per kit in the document', () => {
    const kit = `<participant typeCode="DEV"><participantRole classCode="MANU"><playingDevice>
      <code code="VHEDA1GUR01LX" displayName="ABBOTT - Alinity m HR HPV AMP Kit" codeSystem="1.2.250.1.213.2.3.5"/></playingDevice></participantRole></participant>`;
    const result = (code: string, extra: string): string => `<entry><observation classCode="OBS" moodCode="EVN"><code code="${code}" codeSystem="2.16.840.1.113883.6.1"/>
      <statusCode code="completed"/><value xsi:type="CD" code="260385009" codeSystem="2.16.840.1.113883.6.96"/>${extra}</observation></entry>`;
    const m = mapSection('18725-2', result('77379-6', kit) + result('77400-0', kit) + result('77399-4', ''));
    expectValid(m);
    const [a, b, c] = of<Observation>(m, 'Observation');
    const device = one<Device>(m, 'Device');
    expect(device.type?.coding?.[0]).toMatchObject({ system: 'urn:oid:1.2.250.1.213.2.3.5', code: 'VHEDA1GUR01LX' });
    expect(a?.device?.reference).toBe(urlOf(m, device));
    expect(b?.device?.reference).toBe(urlOf(m, device));
    expect(c?.device).toBeUndefined();
  });
});

describe('facts about the patient\'s mother or father (subject/relatedSubject) → Observation.focus', () => {
  const related = (code: string, display: string, person = ''): string => `<subject typeCode="SBJ"><relatedSubject classCode="PRS">
    <code code="${code}" displayName="${display}" codeSystem="2.16.840.1.113883.5.111"/><telecom value="tel:0147150000" use="H"/>${person}</relatedSubject></subject>`;
  const mother = related('MTH', 'Mère', '<subject><name><family>DUPONT</family><given>Marie</given></name><administrativeGenderCode code="F" codeSystem="2.16.840.1.113883.5.1"/><birthTime value="19890531"/></subject>');
  const observation = (code: string, value: string, subject = ''): string => `<entry><observation classCode="OBS" moodCode="EVN">
    <code code="${code}" codeSystem="2.16.840.1.113883.6.1"/><statusCode code="completed"/>${value}${subject}</observation></entry>`;

  it('points each such Observation at the RelatedPerson, the patient staying its subject; unnamed, the mother is the one already named', () => {
    const m = mapSection('29762-2', [
      observation('74013-4', '<value xsi:type="INT" value="2"/>', mother),
      observation('8302-2', '<value xsi:type="PQ" value="172" unit="cm"/>', related('MTH', 'Mère')),
      observation('11341-5', '<value xsi:type="ST">Ingénieur</value>', related('FTH', 'Père')),
      observation('8302-2', '<value xsi:type="PQ" value="51" unit="cm"/>'),
    ].join(''));
    const observations = of<Observation>(m, 'Observation');
    const people = of<RelatedPerson>(m, 'RelatedPerson');
    expect(observations.every((o) => o.subject?.reference === PATIENT)).toBe(true);
    const [alcohol, height, job, own] = observations.map((o) => o.focus?.map((f) => m.ctx.resolve({ reference: f.reference ?? '' })));
    expect(own).toBeUndefined(); // the child's own height
    expect(people).toHaveLength(2);
    const [mtm, ftm] = people;
    expect(mtm).toMatchObject({ name: [{ family: 'DUPONT', given: ['Marie'] }], gender: 'female', birthDate: '1989-05-31', patient: { reference: PATIENT } });
    expect(mtm?.relationship?.[0]?.coding?.[0]).toMatchObject({ system: 'http://terminology.hl7.org/CodeSystem/v3-RoleCode', code: 'MTH' });
    expect(ftm?.relationship?.[0]?.coding?.[0]?.code).toBe('FTH');
    expect(alcohol?.[0]).toBe(mtm);
    expect(height?.[0]).toBe(mtm);
    expect(job?.[0]).toBe(ftm);
    for (const r of m.resources) expect(validateResource(r), r.resourceType).toEqual([]);
  });

  it('keeps every phone and address the same person is given (home, then mobile), the same place written two ways once', () => {
    const named = (telecom: string, addr: string): string => `<subject typeCode="SBJ"><relatedSubject classCode="PRS"><code code="MTH" codeSystem="2.16.840.1.113883.5.111"/>
      ${addr}<telecom value="${telecom}"/><subject><name><family>DUPONT</family><given>Marie</given></name></subject></relatedSubject></subject>`;
    const m = mapSection('29762-2', [
      observation('8302-2', '<value xsi:type="PQ" value="172" unit="cm"/>', named('tel:0147150000', '<addr><streetAddressLine>24 Avenue de Breteuil</streetAddressLine><streetAddressLine>75007 PARIS</streetAddressLine></addr>')),
      observation('74013-4', '<value xsi:type="INT" value="2"/>', named('tel:0647150100', '<addr><houseNumber>24</houseNumber><streetName>Avenue de Breteuil</streetName><postalCode>75007</postalCode><city>Paris</city></addr>')),
    ].join(''));
    const mother = one<RelatedPerson>(m, 'RelatedPerson');
    expect(mother.telecom?.map((t) => t.value)).toEqual(['0147150000', '0647150100']);
    expect(mother.address).toHaveLength(1);
  });

  it('applies a section\'s subject to its entries (context conduction), and reports what cannot say it', () => {
    const m = mapSection('10162-6', `${mother}${observation('11996-6', '<value xsi:type="INT" value="1"/>')}
      <entry><procedure classCode="PROC" moodCode="EVN"><code code="11466000" displayName="Césarienne" codeSystem="2.16.840.1.113883.6.96"/><statusCode code="completed"/></procedure></entry>`);
    const [gravidity] = of<Observation>(m, 'Observation');
    expect(m.ctx.resolve({ reference: gravidity?.focus?.[0]?.reference ?? '' })?.resourceType).toBe('RelatedPerson');
    expect(of<Procedure>(m, 'Procedure')).toEqual([]);
    expect(m.diagnostics.some((d) => d.includes('procedure 11466000 about Mère, not the patient'))).toBe(true);
  });
});

// ---------------------------------------------------------------- care plan

describe('checklist narratives: the answer cell an entry points to never names the concept', () => {
  const table = `<table><tbody>
    <tr><td>Soins palliatifs</td><td><content ID="q1">non</content></td></tr>
    <tr><td>Orientation vers une structure pluridisciplinaire</td><td><content ID="q2">Non</content></td></tr>
  </tbody></table><paragraph><content ID="q3">oui</content></paragraph>`;
  const procedure = (ref: string, code = '<code code="103735009" codeSystem="2.16.840.1.113883.6.96" displayName="Soins palliatifs"/>'): string => `<entry>
    <procedure classCode="PROC" moodCode="EVN" negationInd="true"><templateId root="1.3.6.1.4.1.19376.1.5.3.1.4.19"/>${code}
      <text><reference value="#${ref}"/></text><statusCode code="completed"/></procedure></entry>`;

  it('takes the label of the answer\'s table row as the concept\'s text', () => {
    const m = mapSection('18776-5', procedure('q1'), table);
    expect(one<Procedure>(m, 'Procedure').code?.text).toBe('Soins palliatifs');
  });

  it('a bare answer outside a table names nothing: the coded concept stays without text, an uncoded act is not mapped', () => {
    const m = mapSection('42545-4', procedure('q3') + procedure('q3', '<code nullFlavor="NA"/>'), table);
    expect(one<Procedure>(m, 'Procedure').code).toEqual({ coding: [{ system: 'http://snomed.info/sct', code: '103735009', display: 'Soins palliatifs' }] });
    expect(m.diagnostics.some((d) => d.startsWith('Procedure naming no act'))).toBe(true);
  });

  it('an originalText pointing to an answer takes the row\'s label; other answer columns stay out of it', () => {
    const vaccines = `<table><tbody><tr><td>Vaccin contre la coqueluche</td><td>Oui</td><td><content ID="v1">Oui</content></td></tr>
      <tr><td>Prématurité inf. à 33 sem</td><td><content ID="p1">Oui</content></td></tr></tbody></table>`;
    const m = mapSection('11348-0', `<entry><observation classCode="OBS" moodCode="EVN"><templateId root="1.3.6.1.4.1.19376.1.5.3.1.4.5"/>
      <code code="282291009" codeSystem="2.16.840.1.113883.6.96"/><statusCode code="completed"/>
      <value xsi:type="CD" code="MED-183" codeSystem="1.2.250.1.213.1.1.4.322"><originalText><reference value="#p1"/></originalText></value></observation></entry>`, vaccines);
    expect(one<Condition>(m, 'Condition').code?.text).toBe('Prématurité inf. à 33 sem');
    const v = mapSection('11369-6', `<entry><substanceAdministration classCode="SBADM" moodCode="EVN"><templateId root="1.3.6.1.4.1.19376.1.5.3.1.4.12"/>
      <statusCode code="completed"/><effectiveTime value="20240101"/><consumable><manufacturedProduct><manufacturedMaterial>
      <code code="J07AJ" codeSystem="2.16.840.1.113883.6.73"><originalText><reference value="#v1"/></originalText></code>
      </manufacturedMaterial></manufacturedProduct></consumable></substanceAdministration></entry>`, vaccines);
    expect(one<Immunization>(v, 'Immunization').vaccineCode.text).toBe('Vaccin contre la coqueluche');
  });

  it('a transposed table (vaccines as columns, doses as rows) adds the column\'s header to the row\'s label', () => {
    const table = `<table><thead><tr><th colspan="3">Vaccinations</th></tr></thead><tbody>
      <tr><td> </td><td>Vaccin contre la coqueluche</td><td>Vaccin contre l'hépatite B</td></tr>
      <tr><td>1ère dose</td><td><content ID="c1">Oui</content></td><td><content ID="h1">Oui</content></td></tr></tbody></table>`;
    const vaccine = (ref: string): string => `<entry><substanceAdministration classCode="SBADM" moodCode="EVN"><templateId root="1.3.6.1.4.1.19376.1.5.3.1.4.12"/>
      <statusCode code="completed"/><effectiveTime value="20240101"/><consumable><manufacturedProduct><manufacturedMaterial>
      <code><originalText><reference value="#${ref}"/></originalText></code></manufacturedMaterial></manufacturedProduct></consumable></substanceAdministration></entry>`;
    const m = mapSection('11369-6', vaccine('c1') + vaccine('h1'), table);
    expect(of<Immunization>(m, 'Immunization').map((i) => i.vaccineCode.text)).toEqual(['1ère dose — Vaccin contre la coqueluche', '1ère dose — Vaccin contre l\'hépatite B']);
  });

  it('an originalText that is only a placeholder ("-", after a reference resolving nowhere) names nothing', () => {
    const m = mapSection('11348-0', `<entry><observation classCode="OBS" moodCode="EVN"><templateId root="1.3.6.1.4.1.19376.1.5.3.1.4.5"/>
      <code code="282291009" codeSystem="2.16.840.1.113883.6.96"/><statusCode code="completed"/>
      <value xsi:type="CD" code="GEN-092.01.13" codeSystem="1.2.250.1.213.1.1.4.322" displayName="Autre(s) accident(s) domestique(s)">
      <originalText><reference value="nowhere"/>-</originalText></value></observation></entry>`);
    expect(one<Condition>(m, 'Condition').code).toEqual({ coding: [{ system: 'urn:oid:1.2.250.1.213.1.1.4.322', code: 'GEN-092.01.13', display: 'Autre(s) accident(s) domestique(s)' }] });
  });

  it('a result whose originalText points at its own value cell keeps the coded name, not the value', () => {
    const cells = `<table><tbody><tr><td>Glycémie à jeun</td><td><content ID="g1">4,89 mmol/L</content></td></tr>
      <tr><td><content ID="g2">Glucose à jeun</content></td><td>0.88 g/L</td></tr></tbody></table>`;
    const result = (ref: string, code: string, value: string, unit: string): string => `<entry><observation classCode="OBS" moodCode="EVN">
      <templateId root="1.3.6.1.4.1.19376.1.3.1.6"/><code code="${code}" codeSystem="2.16.840.1.113883.6.1" displayName="Glucose [${unit}]">
      <originalText><reference value="#${ref}"/></originalText></code><statusCode code="completed"/>
      <value xsi:type="PQ" value="${value}" unit="${unit}"/></observation></entry>`;
    const m = mapSection('18719-5', result('g1', '40193-5', '4.89', 'mmol/L') + result('g2', '53049-3', '0.88', 'g/L'), cells);
    expect(of<Observation>(m, 'Observation').map((o) => o.code)).toEqual([
      { coding: [{ system: 'http://loinc.org', code: '40193-5', display: 'Glucose [mmol/L]' }] },
      { coding: [{ system: 'http://loinc.org', code: '53049-3', display: 'Glucose [g/L]' }], text: 'Glucose à jeun' },
    ]);
  });

  it('a planned activity keeps the answer in its description', () => {
    const m = mapSection('18776-5', `<entry><encounter classCode="ENC" moodCode="ARQ"><templateId root="1.3.6.1.4.1.19376.1.5.3.1.4.14"/>
      <code code="AMB" codeSystem="2.16.840.1.113883.5.4" displayName="Ambulatoire"/><text><reference value="#q2"/></text></encounter></entry>`, table);
    expect(one<CarePlan>(m, 'CarePlan').activity?.[0]?.detail).toMatchObject({
      code: { text: 'Orientation vers une structure pluridisciplinaire' },
      description: 'Orientation vers une structure pluridisciplinaire : Non',
    });
  });
});

describe('care plan → CarePlan', () => {
  it('plans an act NOT to be done (negationInd on the intent) as doNotPerform', () => {
    const m = mapSection('18776-5', `
      <entry><procedure classCode="PROC" moodCode="INT" negationInd="true"><code code="ORG-085" displayName="Vaccination BCG" codeSystem="1.2.250.1.213.1.1.4.322"/><statusCode code="active"/></procedure></entry>
      <entry><procedure classCode="PROC" moodCode="INT"><code code="ORG-086" codeSystem="1.2.250.1.213.1.1.4.322"/><statusCode code="active"/></procedure></entry>`);
    expectValid(m);
    expect(one<CarePlan>(m, 'CarePlan').activity?.map((a) => a.detail?.doNotPerform)).toEqual([true, undefined]);
  });

  it('collects the planned entries of 18776-5 into one CarePlan, in place', () => {
    const m = mapSection('18776-5', `
      <entry><procedure classCode="PROC" moodCode="INT"><code code="ECQH010" displayName="Angioscanner thoracique" codeSystem="1.2.250.1.215.300.1"/>
        <text><reference value="#a1"/></text><statusCode code="active"/><effectiveTime nullFlavor="UNK"/>
        <performer><assignedEntity><id root="1.2.250.1.71.4.2.1" extension="810000000004"/><assignedPerson><name><family>PETIT</family></name></assignedPerson></assignedEntity></performer></procedure></entry>
      <entry><observation classCode="OBS" moodCode="EVN"><code code="X" codeSystem="1.2.3"/><statusCode code="completed"/><value xsi:type="ST">Fait</value></observation></entry>
      <entry><observation classCode="OBS" moodCode="INT"><code code="ORG-064" displayName="Demande d'examen ou de suivi" codeSystem="1.2.250.1.213.1.1.4.322"/>
        <statusCode code="active"/><effectiveTime value="20210101"/><value xsi:type="ST">Suivi par le psychiatre</value></observation></entry>
      <entry><encounter classCode="ENC" moodCode="APT"><code code="AMB" codeSystem="2.16.840.1.113883.5.4"/><statusCode code="active"/><effectiveTime value="20191205"/></encounter></entry>
      <entry><encounter classCode="ENC" moodCode="ARQ"><code code="AMB" codeSystem="2.16.840.1.113883.5.4"/></encounter></entry>
      <entry><act classCode="ACT" moodCode="GOL"><code code="G" codeSystem="1.2.3"/></act></entry>`,
    '<content ID="a1">Angioscanner</content>');
    expectValid(m);
    const plan = one<CarePlan>(m, 'CarePlan');
    expect(plan).toMatchObject({ status: 'active', intent: 'plan', subject: { reference: PATIENT }, title: 'Titre' });
    expect(plan.identifier?.[0]).toEqual({ system: 'urn:oid:1.2.250.1.999.7', value: 's1' });
    const details = plan.activity?.map((a) => a.detail);
    expect(details?.map((d) => [d?.kind, d?.status])).toEqual([
      ['ServiceRequest', 'not-started'], ['ServiceRequest', 'not-started'], ['Appointment', 'scheduled'], ['Appointment', 'unknown'],
    ]);
    expect(details?.[0]?.code?.text).toBe('Angioscanner');
    expect(details?.[0]?.performer?.[0]?.reference).toMatch(/^urn:uuid:/);
    expect(details?.[1]?.description).toBe('Suivi par le psychiatre');
    expect(details?.[1]?.scheduledPeriod).toEqual({ start: '2021-01-01', end: '2021-01-01' });
    // The CarePlan takes the place of the first planned entry; the EVN observation stays an Observation.
    const observation = one<Observation>(m, 'Observation');
    expect(m.refs).toEqual([{ reference: urlOf(m, plan) }, { reference: urlOf(m, observation) }]);
    expect(m.diagnostics.some((d) => d.startsWith('Planned act G'))).toBe(false);
    expect(m.codes).toContain('ENTRY_NOT_MAPPED'); // the GOL act
  });

  it('an exam or follow-up request written in the goal mood is planned too (IPS-FR DLU shape); another goal is reported', () => {
    const m = mapSection('18776-5', `<entry><observation classCode="OBS" moodCode="GOL"><templateId root="1.3.6.1.4.1.19376.1.5.3.1.1.20.3.1"/>
      <templateId root="1.2.250.1.213.1.1.3.27"/><code code="GEN-092.04.20" displayName="Autre demande d'examen ou de suivi" codeSystem="1.2.250.1.213.1.1.4.322"/>
      <statusCode code="active"/><effectiveTime value="20241201"/></observation></entry>
      <entry><observation classCode="OBS" moodCode="GOL"><code code="G" codeSystem="1.2.3"/></observation></entry>`);
    expectValid(m);
    const detail = one<CarePlan>(m, 'CarePlan').activity?.[0]?.detail;
    expect([detail?.kind, detail?.status, detail?.scheduledPeriod]).toEqual(['ServiceRequest', 'not-started', { start: '2024-12-01', end: '2024-12-01' }]);
    expect(m.diagnostics.filter((d) => d.startsWith('Planned observation G (moodCode GOL)'))).toHaveLength(1);
  });

  it('keeps the comments of a planned activity as its progress notes (FR-Commentaire-ER)', () => {
    const m = mapSection('18776-5', `<entry><procedure classCode="PROC" moodCode="INT"><code code="A" codeSystem="1.2.3"/><statusCode code="active"/>
      <entryRelationship typeCode="SUBJ" inversionInd="true"><act classCode="ACT" moodCode="EVN"><templateId root="1.3.6.1.4.1.19376.1.5.3.1.4.2"/>
        <code code="48767-8" codeSystem="2.16.840.1.113883.6.1"/><text><reference value="#c1"/></text><statusCode code="completed"/></act></entryRelationship>
      </procedure></entry>`, '<content ID="c1">À jeun</content>');
    expectValid(m);
    expect(one<CarePlan>(m, 'CarePlan').activity?.[0]?.progress).toEqual([{ text: 'À jeun' }]);
    expect(m.codes).not.toContain('ENTRY_NOT_MAPPED');
  });

  it('a plan whose activities are all done is completed; without statuses it is unknown', () => {
    const done = mapSection('18776-5', '<entry><procedure classCode="PROC" moodCode="INT"><code code="A" codeSystem="1.2.3"/><statusCode code="completed"/></procedure></entry>');
    expect(one<CarePlan>(done, 'CarePlan').status).toBe('completed');
    const unknown = mapSection('18776-5', '<entry><procedure classCode="PROC" moodCode="RQO"><code code="A" codeSystem="1.2.3"/></procedure></entry>');
    expectValid(unknown);
    expect(one<CarePlan>(unknown, 'CarePlan').status).toBe('unknown');
    expect(unknown.codes.filter((c) => c === 'ENTRY_INCOMPLETE')).toHaveLength(2);
  });
});

// ---------------------------------------------------------------- devices

describe('devices → Device + DeviceUseStatement', () => {
  it('a supply with a device participant (LDL-SES shape), UDI read', () => {
    const m = mapSection('46264-8', `<entry><supply classCode="SPLY" moodCode="EVN"><id root="1.2.250.1.213.1.1.9.9" extension="eee"/>
      <effectiveTime xsi:type="IVL_TS"><low value="20181203094914+0100"/></effectiveTime>
      <participant typeCode="DEV"><participantRole classCode="MANU">
        <id root="xxxxxxxx" extension="{01}00844588003288{17}141120{10}7654321D{21}10987654d321"/>
        <playingDevice classCode="DEV" determinerCode="INSTANCE">
          <code code="J010104" displayName="STIMULATEURS CARDIAQUES" codeSystem="1.2.250.1.213.2.68"/>
          <manufacturerModelName>EDORA 8</manufacturerModelName></playingDevice>
        <scopingEntity><desc>BIOTRONIK</desc></scopingEntity></participantRole></participant>${AUTHOR}</supply></entry>`);
    expectValid(m);
    const d = one<Device>(m, 'Device');
    expect(d.type?.coding?.[0]?.code).toBe('J010104');
    expect(d.identifier).toEqual([{ value: '{01}00844588003288{17}141120{10}7654321D{21}10987654d321' }]);
    expect(d.udiCarrier?.[0]?.deviceIdentifier).toBe('00844588003288');
    expect([d.lotNumber, d.serialNumber, d.manufacturer]).toEqual(['7654321D', '10987654d321', 'BIOTRONIK']);
    expect(d.deviceName).toEqual([{ name: 'EDORA 8', type: 'model-name' }]);
    expect(d.patient).toEqual({ reference: PATIENT });
    const dus = one<DeviceUseStatement>(m, 'DeviceUseStatement');
    expect(dus).toMatchObject({ status: 'active', device: { reference: urlOf(m, d) }, timingPeriod: { start: '2018-12-03T09:49:14+01:00' } });
    expect(dus.source?.reference).toMatch(/^urn:uuid:/);
    expect(m.refs).toEqual([{ reference: urlOf(m, d) }, { reference: urlOf(m, dus) }]);
  });

  it('a supply with an end of use is completed; without period or status the status is stated absent', () => {
    const ended = mapSection('46264-8', '<entry><supply classCode="SPLY" moodCode="EVN"><effectiveTime><low value="2018"/><high value="2019"/></effectiveTime><participant typeCode="DEV"><participantRole><playingDevice><code code="D" codeSystem="1.2.3"/></playingDevice></participantRole></participant></supply></entry>');
    expect(one<DeviceUseStatement>(ended, 'DeviceUseStatement').status).toBe('completed');
    const unknown = mapSection('46264-8', '<entry><supply classCode="SPLY" moodCode="EVN"><participant typeCode="DEV"><participantRole><playingDevice><code code="D" codeSystem="1.2.3"/></playingDevice></participantRole></participant></supply></entry>');
    expectValid(unknown);
    expect((one<DeviceUseStatement>(unknown, 'DeviceUseStatement') as unknown as Loose)._status).toEqual({ extension: [{ url: DAR, valueCode: 'unknown' }] });
    const noDevice = mapSection('46264-8', '<entry><supply classCode="SPLY" moodCode="EVN"/></entry>');
    expect(noDevice.resources).toEqual([]);
    expect(noDevice.codes).toEqual(['ENTRY_NOT_MAPPED']);
  });

  it('prosthesis observations (DLU-EHPAD shape): true → device in use, false → Observation', () => {
    const m = mapSection('46264-8', `
      <entry><observation classCode="OBS" moodCode="EVN"><id root="1.2.3.11"/><code code="P0102" displayName="PROTHÈSES DENTAIRES" codeSystem="1.2.250.1.213.2.68"/>
        <statusCode code="completed"/><effectiveTime value="20200327153500+0100"/><value xsi:type="BL" value="true"/>
        <targetSiteCode code="264217000" displayName="supérieur" codeSystem="2.16.840.1.113883.6.96"/></observation></entry>
      <entry><observation classCode="OBS" moodCode="EVN"><code code="Q021003" codeSystem="1.2.250.1.213.2.68"/>
        <statusCode code="completed"/><value xsi:type="BL" value="false"/></observation></entry>
      <entry><observation classCode="OBS" moodCode="EVN"><code code="GEN-092.02.01" displayName="Autre" codeSystem="1.2.250.1.213.1.1.4.322"/>
        <statusCode code="completed"/><value xsi:type="ST">Déambulateur</value></observation></entry>`);
    expectValid(m);
    const devices = of<Device>(m, 'Device');
    const uses = of<DeviceUseStatement>(m, 'DeviceUseStatement');
    expect(devices.map((d) => d.type?.coding?.[0]?.code)).toEqual(['P0102', 'GEN-092.02.01']);
    expect(uses.map((u) => u.status)).toEqual(['active', 'active']);
    expect(uses[0]).toMatchObject({ timingDateTime: '2020-03-27T15:35:00+01:00', bodySite: { coding: [{ code: '264217000' }] } });
    expect(uses[1]?.note).toEqual([{ text: 'Déambulateur' }]);
    expect(one<Observation>(m, 'Observation').valueBoolean).toBe(false);
    expect(m.refs).toHaveLength(5);
  });
});

// ---------------------------------------------------------------- annexes

describe('annexed documents → DocumentReference', () => {
  const pdf = Buffer.from('%PDF-1.4\n%âãÏÓ\n1 0 obj\n<<>>\nendobj\ntrailer\n<<>>\n%%EOF\n').toString('base64');
  const wrapped = pdf.replace(/(.{16})/g, '$1\n\t\t');
  const attached = (mediaType: string, payload: string, code = '55107-7'): string => `<entry><organizer classCode="CLUSTER" moodCode="EVN">
    <templateId root="1.2.250.1.213.1.1.3.18"/><id root="1.2.3.12" extension="d1"/>
    <code code="${code}" displayName="Document attaché" codeSystem="2.16.840.1.113883.6.1"/><statusCode code="completed"/>
    <component><observation classCode="OBS" moodCode="EVN"><code code="69764-9" codeSystem="2.16.840.1.113883.6.1"/>
      <statusCode code="completed"/><value xsi:type="CD" code="11502-2" displayName="CR d'examens biologiques" codeSystem="2.16.840.1.113883.6.1"/></observation></component>
    <component><observationMedia classCode="OBS" moodCode="EVN" ID="doc-1"><value mediaType="${mediaType}" representation="B64">${payload}</value></observationMedia></component>
  </organizer></entry>`;

  it('an FR-Document-attache organizer becomes a DocumentReference with the PDF', () => {
    const m = mapSection('55107-7', attached('application/pdf', wrapped));
    expectValid(m);
    const doc = one<DocumentReference>(m, 'DocumentReference');
    expect(doc.status).toBe('current');
    expect(doc.subject).toEqual({ reference: PATIENT });
    expect(doc.type?.coding?.[0]?.code).toBe('11502-2');
    const att = doc.content[0]?.attachment;
    expect(att).toMatchObject({ contentType: 'application/pdf', data: pdf, title: "CR d'examens biologiques", size: Buffer.from(pdf, 'base64').length });
    expect(m.codes).toEqual([]);
    expect(m.refs).toEqual([{ reference: urlOf(m, doc) }]);
  });

  it('links the Binary the media module made, and works in a 55108-5 section', () => {
    const root = parseXml(Buffer.from(wrap(`<section><code code="55108-5" codeSystem="2.16.840.1.113883.6.1"/><title>Copie</title>
      <text><renderMultiMedia referencedObject="doc-1"/></text>${attached('application/pdf', pdf)}</section>`)));
    const ctx = new ConversionContext('doc', 'salt', root);
    ctx.patient = { reference: PATIENT };
    mapObservationMedia(ctx, findFirst(root, 'structuredBody', HL7_NS) as XElement);
    const m = result(ctx, mapSectionEntries(ctx, findFirst(root, 'section', HL7_NS) as XElement, '55108-5'));
    expectValid(m);
    const binary = one<Resource>(m, 'Binary');
    expect(one<DocumentReference>(m, 'DocumentReference').content[0]?.attachment.url).toBe(urlOf(m, binary));
  });

  it('reports a payload that claims PDF but is not, and refuses one that is not base64', () => {
    const notPdf = mapSection('55107-7', attached('application/pdf', Buffer.from('<html>bonjour</html>').toString('base64')));
    expectValid(notPdf);
    expect(of(notPdf, 'DocumentReference')).toHaveLength(1);
    expect(notPdf.codes).toEqual(['MEDIA_TYPE_MISMATCH']);
    const broken = mapSection('55107-7', attached('application/pdf', '%%% pas du base64 %%%'));
    expect(of(broken, 'DocumentReference')).toEqual([]);
    expect(broken.codes).toEqual(['MEDIA_TYPE_MISMATCH', 'ENTRY_NOT_MAPPED']);
  });

  it('an attached-document organizer is recognised in any section; observationMedia elsewhere is left to the media module', () => {
    const anywhere = mapSection('30954-2', attached('text/plain', Buffer.from('bonjour').toString('base64')));
    expect(one<DocumentReference>(anywhere, 'DocumentReference').content[0]?.attachment.contentType).toBe('text/plain');
    const media = mapSection('30954-2', `<entry><observationMedia ID="img1"><value mediaType="image/png" representation="B64">${Buffer.from('png').toString('base64')}</value></observationMedia></entry>`);
    expect(media.resources).toEqual([]);
    expect(media.codes).toEqual([]);
    // The same inside an observation (FR-Directive-Anticipee carries its PDF so): not reported as unmapped.
    const related = mapSection('42348-3', `<entry><observation classCode="OBS" moodCode="EVN"><code code="42348-3" codeSystem="2.16.840.1.113883.6.1"/>
      <statusCode code="completed"/><entryRelationship typeCode="COMP"><observationMedia ID="pdf1"><value mediaType="application/pdf" representation="B64">JVBERi0xLjQKJSVFT0YK</value></observationMedia></entryRelationship></observation></entry>`);
    expectValid(related);
    expect(related.codes).not.toContain('ENTRY_NOT_MAPPED');
    const direct = mapSection('55107-7', `<entry><observationMedia ID="img2"><value mediaType="image/jpeg" representation="B64">${Buffer.from('jpg').toString('base64')}</value></observationMedia></entry>`);
    expectValid(direct);
    expect(one<DocumentReference>(direct, 'DocumentReference').content[0]?.attachment.title).toBe('Titre');
    const empty = mapSection('55107-7', '<entry><organizer classCode="CLUSTER" moodCode="EVN"><code code="55107-7" codeSystem="2.16.840.1.113883.6.1"/></organizer></entry>');
    expect(empty.codes).toEqual(['ENTRY_NOT_MAPPED']);
  });
});

// ---------------------------------------------------------------- everything else

// ---------------------------------------------------------------- patient transfer (DLU)

describe('patient transfer → the Encounter\'s destination', () => {
  const transfer = `<entry><act classCode="ACT" moodCode="EVN"><templateId root="1.3.6.1.4.1.19376.1.5.3.1.1.25.1.4.1"/><templateId root="1.2.250.1.213.1.1.3.28"/>
    <code code="80413-8" displayName="Transfert du patient" codeSystem="2.16.840.1.113883.6.1"/><statusCode code="completed"/>
    <effectiveTime><low value="20200327153500+0100"/><high value="20200327154500+0100"/></effectiveTime>
    <participant typeCode="DST"><templateId root="1.2.250.1.71.4.2.2" extension="1137051849"/>
      <participantRole classCode="SDLOC"><id root="B0305026-22FA-4619-9CFC-D88DF93B7658"/>
        <code code="SA01" displayName="Etablissement public de santé" codeSystem="1.2.250.1.71.4.2.4"/>
        <addr><houseNumber>38</houseNumber><streetName>Rue Jean Moulin</streetName><postalCode>92000</postalCode><city>NANTERRE</city></addr>
        <telecom value="tel:0175693567" use="WP"/><playingEntity classCode="ENT"><name>CHU DE NANTERRE</name></playingEntity></participantRole></participant>
  </act></entry>`;
  const withEncounter = (ctx: ConversionContext): void => {
    ctx.encounter = ctx.add({ resourceType: 'Encounter', status: 'finished', class: { system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: 'IMP' } } as Encounter, 'encounter');
  };

  it('names the establishment the patient leaves for as the document encounter\'s destination', () => {
    const m = mapSection('42545-4', transfer, '<paragraph>Transfert vers le CHU</paragraph>', withEncounter);
    expectValid(m);
    const destination = one<Location>(m, 'Location');
    expect(destination).toMatchObject({
      name: 'CHU DE NANTERRE',
      identifier: [
        { value: 'urn:uuid:b0305026-22fa-4619-9cfc-d88df93b7658' },
        { system: 'urn:oid:1.2.250.1.71.4.2.2', value: '1137051849', type: { coding: [{ code: 'IDNST' }] } },
        { system: 'https://finess.esante.gouv.fr', value: '137051849' },
      ],
      type: [{ coding: [{ code: 'SA01' }] }],
      address: { city: 'NANTERRE', postalCode: '92000' },
      telecom: [{ system: 'phone', value: '0175693567', use: 'work' }],
    });
    expect(one<Encounter>(m, 'Encounter').hospitalization?.destination).toEqual({ reference: urlOf(m, destination) });
    expect(m.refs).toEqual([{ reference: urlOf(m, destination) }]);
    expect(m.codes).not.toContain('ENTRY_NOT_MAPPED');
  });

  it('adds the kind of unit (the act code\'s translation, CSE) to the destination\'s types', () => {
    const toUnit = transfer.replace('codeSystem="2.16.840.1.113883.6.1"/><statusCode', `codeSystem="2.16.840.1.113883.6.1">
      <translation code="405269005" displayName="unité de soins intensifs néonatals" codeSystem="2.16.840.1.113883.6.96"/></code><statusCode`);
    const destination = one<Location>(mapSection('42545-4', toUnit, '<paragraph>x</paragraph>', withEncounter), 'Location');
    expect(destination.type?.map((t) => t.coding?.[0]?.code)).toEqual(['SA01', '405269005']);
  });

  it('is reported when the document has no encounter to carry it', () => {
    const m = mapSection('42545-4', transfer);
    expect(m.resources).toEqual([]);
    expect(m.diagnostics.some((d) => d.includes('(patient transfer) without a document encounter'))).toBe(true);
  });
});

describe('disposition (DLU preferred establishment) → a Location in its section', () => {
  const participant = (type: string, name: string): string => `<participant typeCode="${type}"><time nullFlavor="NAV"/><participantRole classCode="ROL">
      <id root="1.2.250.1.71.4.2.2" extension="101765376"/>
      <addr><houseNumber>22</houseNumber><streetName>Rue du Paradis</streetName><postalCode>92100</postalCode><city>Boulogne-Billancourt</city></addr>
      <telecom value="tel:0131931902" use="EC"/><playingEntity><name>${name}</name></playingEntity></participantRole></participant>`;
  const disposition = (participants: string): string => `<entry><act classCode="ACT" moodCode="INT">
    <templateId root="1.3.6.1.4.1.19376.1.5.3.1.1.10.4.2"/><templateId root="1.2.250.1.213.1.1.3.97"/><id root="194AE3B0-FA7D-49D6-8C90-86139E9AF5BE"/>
    <code code="11302-7" displayName="Etablissement de santé de préférence" codeSystem="2.16.840.1.113883.6.1"/>
    <statusCode code="normal"/><effectiveTime nullFlavor="NAV"/>${participants}</act></entry>`;

  it('names the establishment of the destination participant, else the receiver, else the organisation', () => {
    const m = mapSection('11302-7', disposition(participant('ORG', 'ORGANISATION') + participant('RCV', 'RECEVEUR') + participant('DST', 'EHPAD DE BOULOGNE')));
    expectValid(m);
    const place = one<Location>(m, 'Location');
    expect(place).toMatchObject({
      name: 'EHPAD DE BOULOGNE',
      identifier: [{ system: 'urn:oid:1.2.250.1.71.4.2.2', value: '101765376' }],
      address: { city: 'Boulogne-Billancourt', postalCode: '92100' },
      telecom: [{ system: 'phone', value: '0131931902' }],
    });
    expect(m.refs).toEqual([{ reference: urlOf(m, place) }]);
    expect(m.codes).not.toContain('ENTRY_NOT_MAPPED');
    expect(one<Location>(mapSection('11302-7', disposition(participant('ORG', 'ORGANISATION') + participant('RCV', 'RECEVEUR'))), 'Location').name).toBe('RECEVEUR');
  });

  it('is reported when no participant names an establishment', () => {
    const m = mapSection('11302-7', disposition('<participant typeCode="DST"><participantRole classCode="ROL"/></participant>'));
    expect(m.resources).toEqual([]);
    expect(m.diagnostics.some((d) => d.includes('(disposition) without an establishment'))).toBe(true);
  });
});

// ---------------------------------------------------------------- social coverage

describe('social coverage → one Coverage per payer', () => {
  const payer = (performer: string): string => `<entryRelationship typeCode="COMP"><act classCode="ACT" moodCode="EVN">
      <templateId root="1.3.6.1.4.1.19376.1.5.3.1.4.18"/><templateId root="1.2.250.1.213.1.1.3.94"/><id root="582BB12C-7B63-11EB-9439-0242AC130011"/>
      <code code="GEN-105" displayName="Protection universelle maladie (PUMa)" codeSystem="1.2.250.1.213.1.1.4.322"/><statusCode code="completed"/>
      ${performer}
      <participant typeCode="HLD"><participantRole classCode="INDIV"><id extension="64579890112345678100" root="1.2.250.1.213.1.4.2"/>
        <telecom value="tel:0147150000" use="H"/><playingEntity><name><family>DECOURCY</family><given>Pierre</given></name></playingEntity></participantRole></participant>
    </act></entryRelationship>`;
  const insurer = `<performer typeCode="PRF"><assignedEntity classCode="ASSIGNED"><id root="582BB12C-7B63-11EB-9439-0242AC130012" extension="999999"/>
      <addr use="H"><streetName>Rue François Mitterrand</streetName><postalCode>75007</postalCode><city>Paris</city></addr><telecom value="tel:0147157896" use="H"/>
      <representedOrganization><name>Caisse nationale d'assurance maladie</name></representedOrganization></assignedEntity></performer>`;
  const coverage = (payers: string): string => `<entry><act classCode="ACT" moodCode="DEF">
    <templateId root="1.3.6.1.4.1.19376.1.5.3.1.4.17"/><templateId root="1.2.250.1.213.1.1.3.61"/><id root="582BB12C-7B63-11EB-9439-0242AC130010"/>
    <code code="48768-6" displayName="Couverture sociale" codeSystem="2.16.840.1.113883.6.1"/><statusCode code="completed"/>${payers}</act></entry>`;

  it('names the insurer as payor, the insured person as subscriber, the patient as beneficiary', () => {
    const m = mapSection('48768-6', coverage(payer(insurer)));
    expectValid(m);
    const c = one<Coverage>(m, 'Coverage');
    const payor = one<Organization>(m, 'Organization');
    const holder = one<RelatedPerson>(m, 'RelatedPerson');
    expect(c).toMatchObject({
      status: 'active',
      beneficiary: { reference: PATIENT },
      payor: [{ reference: urlOf(m, payor) }],
      type: { coding: [{ system: 'urn:oid:1.2.250.1.213.1.1.4.322', code: 'GEN-105' }] },
      subscriber: { reference: urlOf(m, holder) },
      subscriberId: '64579890112345678100',
      identifier: [{ value: 'urn:uuid:582bb12c-7b63-11eb-9439-0242ac130011' }],
    });
    expect(payor).toMatchObject({ name: 'Caisse nationale d\'assurance maladie', address: [{ city: 'Paris' }], telecom: [{ value: '0147157896' }] });
    // As the CI-SIS example writes them, use="H": never an organisation's (org-2, org-3).
    expect([payor.address?.[0]?.use, payor.telecom?.[0]?.use]).toEqual([undefined, undefined]);
    expect(holder).toMatchObject({ name: [{ family: 'DECOURCY' }], patient: { reference: PATIENT } });
    expect(m.refs).toEqual([{ reference: urlOf(m, c) }]);
    expect(m.codes).not.toContain('ENTRY_NOT_MAPPED');
  });

  it('is found by its template outside the payers section, one Coverage per payer', () => {
    const m = mapSection('42545-4', coverage(payer(insurer) + payer(insurer.replace('Caisse nationale', 'Mutuelle'))));
    expectValid(m);
    expect(of<Coverage>(m, 'Coverage')).toHaveLength(2);
    expect(of<Organization>(m, 'Organization').map((o) => o.name)).toEqual(['Caisse nationale d\'assurance maladie', 'Mutuelle d\'assurance maladie']);
  });

  it('a payer without insurer, a coverage without payer: reported, no Coverage without its required payor', () => {
    const m = mapSection('48768-6', coverage(payer('')) + coverage(''));
    expect(of<Coverage>(m, 'Coverage')).toEqual([]);
    expect(m.diagnostics.some((d) => d.includes('(social coverage) naming no insurer'))).toBe(true);
    expect(m.diagnostics.some((d) => d.includes('(social coverage) without a payer entry'))).toBe(true);
  });
});

describe('what is not mapped is reported', () => {
  it('encounters, unknown acts, empty entries, document-status observations', () => {
    const m = mapSection('42545-4', `
      <entry><encounter classCode="ENC" moodCode="EVN"><code code="AMB" codeSystem="2.16.840.1.113883.5.4"/></encounter></entry>
      <entry><act classCode="ACT" moodCode="EVN"><code code="80413-8" codeSystem="2.16.840.1.113883.6.1"/></act></entry>
      <entry/>
      <entry><regionOfInterest/></entry>`);
    expect(m.resources).toEqual([]);
    expect(m.codes).toEqual(['ENTRY_NOT_MAPPED', 'ENTRY_NOT_MAPPED', 'ENTRY_NOT_MAPPED', 'ENTRY_NOT_MAPPED']);
    const status = mapSection('33557-0', '<entry><observation classCode="OBS" moodCode="EVN"><code code="GEN-065" codeSystem="1.2.250.1.213.1.1.4.322"/></observation></entry>');
    expect(status.resources).toEqual([]);
    expect(status.codes).toEqual(['ENTRY_NOT_MAPPED']);
  });

  it('ids are deterministic and a section without code is mapped by shape', () => {
    const entry = '<entry><observation classCode="OBS" moodCode="EVN"><code code="X" codeSystem="1.2.3"/><statusCode code="completed"/></observation></entry>';
    const a = mapSection(undefined, entry);
    const b = mapSection(undefined, entry);
    expect(a.resources[0]?.id).toBeDefined();
    expect(a.resources[0]?.id).toBe(b.resources[0]?.id);
    expect(a.refs).toEqual(b.refs);
  });

  it('nested sections are left to the caller', () => {
    const m = mapSection('30954-2', '<component><section><code code="8716-3" codeSystem="2.16.840.1.113883.6.1"/><entry><observation classCode="OBS" moodCode="EVN"><code code="X" codeSystem="1.2.3"/></observation></entry></section></component>');
    expect(m.resources).toEqual([]);
    expect(m.refs).toEqual([]);
  });
});

// ---------------------------------------------------------------- corpus

function sectionsOf(el: XElement): XElement[] {
  const out: XElement[] = [];
  const walk = (e: XElement): void => {
    if (e.name === 'section') out.push(e);
    for (const c of e.children) if (typeof c !== 'string') walk(c);
  };
  walk(el);
  return out;
}

/** Maps every section of a document, in one context, as the converter does. */
function mapDocument(root: XElement): Mapped & { perSection: Map<string, Reference[]> } {
  const doc = root.name === 'ClinicalDocument' ? root : (findFirst(root, 'ClinicalDocument', HL7_NS) as XElement);
  const ctx = new ConversionContext('doc', 'salt', doc);
  ctx.patient = { reference: PATIENT };
  const body = child(child(doc, 'component'), 'structuredBody');
  if (body) mapObservationMedia(ctx, body);
  const perSection = new Map<string, Reference[]>();
  const refs: Reference[] = [];
  for (const s of sectionsOf(doc)) {
    const loinc = coding(child(s, 'code'));
    const code = loinc?.system === 'http://loinc.org' ? loinc.code : undefined;
    const r = mapSectionEntries(ctx, s, code);
    perSection.set(`${code}#${perSection.size}`, r);
    refs.push(...r);
  }
  return { ...result(ctx, refs), perSection };
}

function loadCorpusDocument(name: string): XElement {
  const path = join(CORPUS_DIR, name);
  if (!existsSync(CORPUS_DIR) || !existsSync(path)) {
    throw new Error(`CDA corpus document ${path} not found: these tests need the ANS example documents in ${CORPUS_DIR} (set PASSERELLE_CORPUS to their folder).`);
  }
  return parseXml(readFileSync(path));
}

const count = (m: Mapped, type: string): number => m.resources.filter((r) => r.resourceType === type).length;

describe('ANS corpus', () => {
  it('LDL-SES_2022.01: every section maps, every resource is valid', () => {
    const m = mapDocument(loadCorpusDocument('LDL-SES_2022.01.xml'));
    expectValid(m);
    expect(count(m, 'Observation')).toBe(10); // 42545-4 simple observations
    expect(of<MedicationStatement>(m, 'MedicationStatement').map((s) => s.medicationCodeableConcept?.text)).toEqual(['SOLIAN 100 mg', 'LEPONEX 100 mg']);
    expect(one<CarePlan>(m, 'CarePlan').activity).toHaveLength(3);
    expect(count(m, 'Device')).toBe(1);
    expect(count(m, 'DeviceUseStatement')).toBe(1);
    // The allergy entry names no substance ("Aucune allergie" in the narrative): reported, not invented.
    expect(count(m, 'AllergyIntolerance')).toBe(0);
    expect(m.diagnostics.some((d) => d.includes('Allergy observation naming no substance'))).toBe(true);
  });

  it('DLU-EHPAD-FLUDT_2022.01: every section maps, every resource is valid', () => {
    const m = mapDocument(loadCorpusDocument('DLU-EHPAD-FLUDT_2022.01.xml'));
    expectValid(m);
    const panel = of<Observation>(m, 'Observation').find((o) => o.code.coding?.[0]?.code === '85353-1');
    expect(panel?.hasMember).toHaveLength(5);
    expect(count(m, 'Device')).toBe(6);
    expect(count(m, 'DeviceUseStatement')).toBe(6);
    const ms = one<MedicationStatement>(m, 'MedicationStatement');
    expect(ms.medicationCodeableConcept).toEqual({ extension: [{ url: DAR, valueCode: 'unknown' }] });
    expect(ms.effectivePeriod?.start).toBe('2020-03-27T12:00:00+01:00');
  });

  it.each(['BIO-CR-BIO_2024.01_TSH_1.xml', 'CSE-MDE_2023.01.xml', 'DOC_NON_STRUCTURE_CDA-R2-N1.xml'])('%s: maps without error', (name) => {
    const m = mapDocument(loadCorpusDocument(name));
    expectValid(m);
    if (name.startsWith('BIO')) {
      expect(of<Observation>(m, 'Observation').filter((o) => o.category?.[0]?.coding?.[0]?.code === 'laboratory')).toHaveLength(2);
      expect(one<DocumentReference>(m, 'DocumentReference').content[0]?.attachment.contentType).toBe('application/pdf');
    }
    if (name.startsWith('CSE')) expect(count(m, 'Observation')).toBe(4);
  });
});

// ---------------------------------------------------------------- hostile input

const JUNK = ['', ' ', 'x', '#', '-1', '0', '1e400', 'NaN', '20201340', '2020022930', '99999999999999999999', 'true ', 'UNK', '+100', '\u00a0', '{01}'];
const XSI_TYPES = ['PQ', 'CD', 'ST', 'BL', 'INT', 'REAL', 'IVL_PQ', 'TS', 'IVL_TS', 'RTO', 'ED', 'PIVL_TS', 'EIVL_TS', 'SXPR_TS', 'ANY', 'hl7:PQ'];

type Mutation =
  | { kind: 'drop'; at: number }
  | { kind: 'nullFlavor'; at: number; flavor: string }
  | { kind: 'attr'; at: number; junk: number }
  | { kind: 'type'; at: number; type: number }
  | { kind: 'duplicate'; at: number }
  | { kind: 'text'; at: number; junk: number };

const mutationArb: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ kind: fc.constant('drop' as const), at: fc.nat() }),
  fc.record({ kind: fc.constant('nullFlavor' as const), at: fc.nat(), flavor: fc.constantFrom('UNK', 'NA', 'NI', 'ASKU', 'OTH', 'MSK') }),
  fc.record({ kind: fc.constant('attr' as const), at: fc.nat(), junk: fc.nat() }),
  fc.record({ kind: fc.constant('type' as const), at: fc.nat(), type: fc.nat() }),
  fc.record({ kind: fc.constant('duplicate' as const), at: fc.nat() }),
  fc.record({ kind: fc.constant('text' as const), at: fc.nat(), junk: fc.nat() }),
);

/** A mutable copy of the tree (parent links rebuilt). */
function copy(el: XElement, parent: XElement | undefined): XElement {
  const out: XElement = { name: el.name, ns: el.ns, attrs: { ...el.attrs }, children: [], parent };
  for (const c of el.children) out.children.push(typeof c === 'string' ? c : copy(c, out));
  return out;
}

function all(el: XElement): XElement[] {
  const out: XElement[] = [el];
  for (const c of el.children) if (typeof c !== 'string') out.push(...all(c));
  return out;
}

function inEntry(el: XElement): boolean {
  for (let cur = el.parent; cur; cur = cur.parent) if (cur.name === 'entry') return true;
  return false;
}

/** Applies the mutations inside the body (the header is other modules' business), or inside entries only. */
function mutate(root: XElement, mutations: Mutation[], entriesOnly = false): XElement {
  const doc = copy(root, undefined);
  for (const mu of mutations) {
    const body = findFirst(doc, 'structuredBody', HL7_NS);
    if (!body) break;
    const nodes = all(body).slice(1).filter((n) => !entriesOnly || inEntry(n));
    const target = nodes[mu.at % Math.max(nodes.length, 1)];
    if (!target?.parent) continue;
    const siblings = target.parent.children;
    const attrs = target.attrs as Record<string, string>;
    switch (mu.kind) {
      case 'drop':
        siblings.splice(siblings.indexOf(target), 1);
        break;
      case 'nullFlavor':
        for (const k of Object.keys(attrs)) if (k !== 'xsi:type') delete attrs[k];
        attrs.nullFlavor = mu.flavor;
        target.children.length = 0;
        break;
      case 'attr': {
        const keys = Object.keys(attrs);
        const key = keys[mu.junk % Math.max(keys.length, 1)] ?? 'value';
        attrs[key] = JUNK[mu.junk % JUNK.length] as string;
        break;
      }
      case 'type':
        attrs['xsi:type'] = XSI_TYPES[mu.type % XSI_TYPES.length] as string;
        break;
      case 'duplicate':
        siblings.splice(siblings.indexOf(target), 0, copy(target, target.parent));
        break;
      case 'text': {
        const t: XNode = JUNK[mu.junk % JUNK.length] as string;
        target.children.push(t);
        break;
      }
    }
  }
  return doc;
}

describe('hostile input', () => {
  for (const name of ['LDL-SES_2022.01.xml', 'DLU-EHPAD-FLUDT_2022.01.xml', 'BIO-CR-BIO_2024.01_TSH_1.xml']) {
    it(`${name}: randomly damaged bodies map without throwing, to valid resources`, () => {
      const original = loadCorpusDocument(name);
      fc.assert(
        fc.property(fc.array(mutationArb, { minLength: 1, maxLength: 12 }), (mutations) => {
          const m = mapDocument(mutate(original, mutations));
          expectValid(m);
        }),
        { numRuns: 150, seed: 20240611 },
      );
    });
  }

  it('a synthetic document with every entry shape, damaged inside its entries', () => {
    const section = (code: string, entries: string): string => `<component><section><code code="${code}" codeSystem="2.16.840.1.113883.6.1"/><title>S</title>
      <text><content ID="n1">texte</content></text>${entries}</section></component>`;
    const obs = (body: string, mood = 'EVN'): string => `<observation classCode="OBS" moodCode="${mood}"><id root="1.2.3"/><code code="C" codeSystem="1.2.3"/>
      <text><reference value="#n1"/></text><statusCode code="completed"/><effectiveTime><low value="2020"/><high value="2021"/></effectiveTime>${body}</observation>`;
    const author = AUTHOR;
    const sa = (mood: string): string => `<substanceAdministration classCode="SBADM" moodCode="${mood}"><id root="1.2.3"/><text><reference value="#n1"/></text><statusCode code="active"/>
      <effectiveTime xsi:type="IVL_TS"><low value="2024"/><high value="2025"/></effectiveTime><effectiveTime xsi:type="PIVL_TS"><period value="12" unit="h"/></effectiveTime>
      <effectiveTime xsi:type="EIVL_TS"><event code="HS"/></effectiveTime><routeCode code="PO" codeSystem="2.16.840.1.113883.5.112"/>
      <doseQuantity><low value="1" unit="mg"/><high value="2" unit="mg"/></doseQuantity><rateQuantity value="1" unit="mL/h"/>
      <maxDoseQuantity><numerator value="3" unit="g"/><denominator value="1" unit="d"/></maxDoseQuantity>
      <consumable><manufacturedProduct><manufacturedMaterial><code code="1" codeSystem="1.2.3"><originalText><reference value="#n1"/></originalText></code><name>X</name><lotNumberText>L</lotNumberText></manufacturedMaterial>
      <manufacturerOrganization><name>Labo</name></manufacturerOrganization></manufacturedProduct></consumable>
      <performer><assignedEntity><id root="1.2.250.1.71.4.2.1" extension="810000000009"/><assignedPerson><name><family>B</family></name></assignedPerson></assignedEntity></performer>${author}
      <precondition><criterion><value xsi:type="CD" code="R" codeSystem="1.2.3"/></criterion></precondition>
      <entryRelationship typeCode="COMP"><substanceAdministration classCode="SBADM" moodCode="INT"><doseQuantity value="1"/></substanceAdministration></entryRelationship>
      <entryRelationship typeCode="RSON">${obs('<value xsi:type="CD" code="R" codeSystem="1.2.3"/>')}</entryRelationship>
      <entryRelationship typeCode="SUBJ"><observation classCode="OBS" moodCode="EVN"><code code="30973-2" codeSystem="2.16.840.1.113883.6.1"/><value xsi:type="INT" value="1"/></observation></entryRelationship>
      <entryRelationship typeCode="CAUS">${obs('<value xsi:type="CD" code="R" codeSystem="1.2.3"/>')}</entryRelationship></substanceAdministration>`;
    const concern = (template: string): string => `<act classCode="ACT" moodCode="EVN"><templateId root="1.3.6.1.4.1.19376.1.5.3.1.4.5.1"/><templateId root="${template}"/>
      <id root="1.2.3"/><code nullFlavor="NA"/><statusCode code="active"/><effectiveTime><low value="2020"/></effectiveTime>${author}
      <entryRelationship typeCode="SUBJ">${obs(`<value xsi:type="CD" code="V" codeSystem="1.2.3"/>${author}
        <participant typeCode="CSM"><participantRole><playingEntity><code code="S" codeSystem="1.2.3"/><name>Subst</name></playingEntity></participantRole></participant>
        <entryRelationship typeCode="MFST">${obs('<value xsi:type="CD" code="M" codeSystem="1.2.3"/>')}</entryRelationship>
        <entryRelationship typeCode="SUBJ"><observation classCode="OBS" moodCode="EVN"><templateId root="1.3.6.1.4.1.19376.1.5.3.1.4.1"/><code code="SEV" codeSystem="2.16.840.1.113883.5.4"/><value xsi:type="CD" code="H" codeSystem="2.16.840.1.113883.5.1063"/></observation></entryRelationship>
        <entryRelationship typeCode="REFR"><observation classCode="OBS" moodCode="EVN"><templateId root="1.3.6.1.4.1.19376.1.5.3.1.4.1.1"/><code code="33999-4" codeSystem="2.16.840.1.113883.6.1"/><value xsi:type="CD" code="55561003" codeSystem="2.16.840.1.113883.6.96"/></observation></entryRelationship>
        <entryRelationship typeCode="SUBJ"><act classCode="ACT" moodCode="EVN"><templateId root="1.3.6.1.4.1.19376.1.5.3.1.4.2"/><text>Note</text></act></entryRelationship>`)}</entryRelationship></act>`;
    const organizer = `<organizer classCode="CLUSTER" moodCode="EVN"><id root="1.2.3"/><code code="85353-1" codeSystem="2.16.840.1.113883.6.1"/><statusCode code="completed"/><effectiveTime value="2021"/>
      <component>${obs('<value xsi:type="PQ" value="1" unit="kg"/><interpretationCode code="N" codeSystem="2.16.840.1.113883.5.83"/><referenceRange><observationRange><value xsi:type="IVL_PQ"><low value="1" unit="kg"/></value></observationRange></referenceRange>')}</component>
      <component><organizer classCode="BATTERY" moodCode="EVN"><code code="P" codeSystem="1.2.3"/><component>${obs('<value xsi:type="IVL_PQ"><low value="1"/><high value="2"/></value>')}</component></organizer></component></organizer>`;
    const supply = `<supply classCode="SPLY" moodCode="EVN"><id root="1.2.3"/><effectiveTime><low value="2020"/></effectiveTime>${author}
      <participant typeCode="DEV"><participantRole><id root="1.2.3" extension="{01}12345678901234{10}LOT"/><playingDevice><code code="D" codeSystem="1.2.3"/><manufacturerModelName>M</manufacturerModelName></playingDevice></participantRole></participant></supply>`;
    const pdf = Buffer.from('%PDF-1.4 fake').toString('base64');
    const annex = `<organizer classCode="CLUSTER" moodCode="EVN"><code code="55107-7" codeSystem="2.16.840.1.113883.6.1"/>
      <component>${obs('<value xsi:type="CD" code="11502-2" codeSystem="2.16.840.1.113883.6.1"/>').replace('code="C"', 'code="69764-9"')}</component>
      <component><observationMedia ID="m1"><value mediaType="application/pdf" representation="B64">${pdf}</value></observationMedia></component></organizer>`;
    const e = (x: string): string => `<entry>${x}</entry>`;
    const sink = parseXml(Buffer.from(wrap([
      section('11450-4', e(concern('1.3.6.1.4.1.19376.1.5.3.1.4.5.2')) + e(obs('<value xsi:type="CD" code="V" codeSystem="1.2.3"/>'))),
      section('48765-2', e(concern('1.3.6.1.4.1.19376.1.5.3.1.4.5.3'))),
      section('10160-0', e(sa('EVN')) + e(sa('INT'))),
      section('11369-6', e(sa('EVN'))),
      section('47519-4', e(`<procedure classCode="PROC" moodCode="EVN"><code code="P" codeSystem="1.2.3"/><statusCode code="completed"/><effectiveTime value="2020"/>
        <targetSiteCode code="S" codeSystem="1.2.3"/>${author}<entryRelationship typeCode="RSON">${obs('')}</entryRelationship></procedure>`)),
      section('8716-3', e(organizer)),
      section('18719-5', e(`<act classCode="ACT" moodCode="EVN"><code code="18719-5" codeSystem="2.16.840.1.113883.6.1"/><entryRelationship typeCode="COMP">${obs('<value xsi:type="ST">x</value>')}</entryRelationship>
        <entryRelationship typeCode="COMP">${organizer}</entryRelationship></act>`)),
      section('18776-5', e(`<procedure classCode="PROC" moodCode="INT"><code code="P" codeSystem="1.2.3"/><statusCode code="active"/><effectiveTime value="2025"/></procedure>`) +
        e(obs('<value xsi:type="ST">Suivi</value>', 'RQO')) + e('<encounter classCode="ENC" moodCode="APT"><code code="AMB" codeSystem="2.16.840.1.113883.5.4"/><statusCode code="active"/></encounter>') + e(sa('INT'))),
      section('46264-8', e(supply) + e(obs('<value xsi:type="BL" value="true"/><targetSiteCode code="T" codeSystem="1.2.3"/>')) + e(obs('<value xsi:type="BL" value="false"/>'))),
      section('55107-7', e(annex)),
      section('30954-2', e(obs('<value xsi:type="RTO"><numerator value="1"/><denominator value="2"/></value>')) + e(obs('<value xsi:type="TS" value="20200101"/>'))),
    ].join(''))));
    const baseline = mapDocument(sink);
    expectValid(baseline);
    for (const type of ENTRY_TYPES) expect(count(baseline, type), type).toBeGreaterThan(0);
    fc.assert(
      fc.property(fc.array(mutationArb, { minLength: 1, maxLength: 8 }), (mutations) => {
        expectValid(mapDocument(mutate(sink, mutations, true)));
      }),
      { numRuns: 300, seed: 7 },
    );
  });

  it('synthetic snippets with every element stripped one at a time', () => {
    const root = parseXml(Buffer.from(wrap(`<section><code code="10160-0" codeSystem="2.16.840.1.113883.6.1"/><text/>
      <entry><substanceAdministration classCode="SBADM" moodCode="EVN"><statusCode code="active"/>
        <effectiveTime xsi:type="IVL_TS"><low value="2024"/></effectiveTime><effectiveTime xsi:type="PIVL_TS"><period value="1" unit="d"/></effectiveTime>
        <doseQuantity value="1"/><consumable><manufacturedProduct><manufacturedMaterial><code code="1" codeSystem="1.2.3"/><name>X</name></manufacturedMaterial></manufacturedProduct></consumable>
      </substanceAdministration></entry></section>`)));
    const count = all(root).length;
    for (let i = 1; i < count; i++) {
      const m = mapDocument(mutate(root, [{ kind: 'drop', at: i }]));
      expectValid(m);
    }
  });
});
