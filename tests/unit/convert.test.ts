/**
 * Header facts and quirks on the synthetic documents of fixtures/cda, asserted one by one (the
 * golden files pin the whole output; these say what each part must be).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Bundle, Composition, Encounter, Organization, Patient, Practitioner, PractitionerRole, RelatedPerson, Resource } from '@medplum/fhirtypes';
import { describe, expect, it } from 'vitest';
import { convertCda } from '../../gateway/cda/convert.js';
import { REPO_ROOT } from '../support/corpus.js';

const fixture = (name: string): Buffer => readFileSync(join(REPO_ROOT, 'fixtures', 'cda', name));
const all = <T extends Resource>(bundle: Bundle, type: T['resourceType']): T[] =>
  (bundle.entry ?? []).map((e) => e.resource).filter((r): r is T => r?.resourceType === type);
const get = <T extends Resource>(bundle: Bundle, ref: string | undefined): T => bundle.entry?.find((e) => e.fullUrl === ref)?.resource as T;
const codes = (outcome: { issue: { details?: { coding?: { code?: string }[] } }[] }): string[] =>
  outcome.issue.map((i) => i.details?.coding?.[0]?.code ?? '');

describe('synthetic discharge letter', () => {
  const { bundle } = convertCda(fixture('ldl-synthetic.xml'));
  const composition = bundle.entry?.[0]?.resource as Composition;
  const patient = bundle.entry?.[1]?.resource as Patient;

  it('builds the Bundle header from the document id and effectiveTime', () => {
    expect(bundle.identifier).toEqual({ system: 'urn:oid:1.2.250.1.999.1.1', value: 'LDL-0001-v2' });
    expect(bundle.timestamp).toBe('2024-03-15T14:30:00+01:00');
    expect(bundle.entry?.every((e) => /^urn:uuid:[0-9a-f-]{36}$/.test(e.fullUrl ?? ''))).toBe(true);
  });

  it('maps the Composition header', () => {
    expect(composition.identifier).toEqual({ system: 'urn:oid:1.2.250.1.999.1.2', value: 'LDL-0001' });
    expect(composition.extension?.[0]).toEqual({ url: 'http://hl7.org/fhir/5.0/StructureDefinition/extension-Composition.version', valueString: '2' });
    expect(composition.relatesTo).toEqual([{ code: 'replaces', targetIdentifier: { system: 'urn:oid:1.2.250.1.999.1.1', value: 'LDL-0001-v1' } }]);
    expect(composition.confidentiality).toBe('N');
    expect(composition.language).toBe('fr-FR');
    expect(composition.attester?.[0]?.mode).toBe('legal');
    expect(composition.event?.[0]?.period).toEqual({ start: '2024-03-10T09:15:00+01:00', end: '2024-03-15T14:30:00+01:00' });
  });

  it('types the INS and keeps the IPPs as PI', () => {
    expect(patient.identifier?.[0]).toMatchObject({ use: 'official', system: 'urn:oid:1.2.250.1.213.1.4.8', value: '295109912611193' });
    expect(patient.identifier?.[0]?.type?.coding?.[0]?.code).toBe('INS-NIR');
    expect(patient.identifier?.filter((i) => i.type?.coding?.[0]?.code === 'PI').map((i) => i.value)).toEqual(['IPP-778899', 'IPP-GHT-42']);
  });

  it('splits birth and used names', () => {
    expect(patient.name?.[0]).toMatchObject({ use: 'official', family: 'FICTIF-ESSAI', given: ['ANNE'] });
    expect(patient.name?.[0]?.extension?.[0]?.valueString).toBe('ANNE MARIE CLAIRE');
    expect(patient.name?.[1]).toMatchObject({ use: 'usual', family: 'MARTIN', given: ['Annie'] });
  });

  it('maps the general practitioner and guardians', () => {
    const gp = get<PractitionerRole>(bundle, patient.generalPractitioner?.[0]?.reference);
    expect(get<Practitioner>(bundle, gp.practitioner?.reference).name?.[0]?.family).toBe('TRAITANT');
    const related = all<RelatedPerson>(bundle, 'RelatedPerson');
    expect(related.find((r) => r.name?.[0]?.given?.[0] === 'Paul')?.relationship?.[0]?.coding?.[0]?.code).toBe('GUARD');
    // The brother named as emergency contact and as next of kin is one person with both roles.
    const luc = related.filter((r) => r.name?.[0]?.given?.[0] === 'Luc');
    expect(luc).toHaveLength(1);
    expect(luc[0]?.relationship?.flatMap((r) => r.coding?.map((c) => c.code))).toEqual(expect.arrayContaining(['C', 'N', 'BRO']));
  });

  it('deduplicates the author, legal authenticator and custodian', () => {
    expect(all<Organization>(bundle, 'Organization')).toHaveLength(1);
    const soignante = all<Practitioner>(bundle, 'Practitioner').filter((p) => p.name?.[0]?.family === 'SOIGNANTE');
    expect(soignante).toHaveLength(1);
    expect(soignante[0]?.identifier?.map((i) => i.value)).toEqual(['810000000019', '10000000019']);
    const author = get<PractitionerRole>(bundle, composition.author[0]?.reference);
    expect(author.code?.[0]?.coding?.[0]).toMatchObject({ code: '10' });
    expect(author.specialty?.[0]?.coding?.[0]).toMatchObject({ code: 'SM26' });
    expect(composition.attester?.[0]?.party?.reference).toBe(composition.author[0]?.reference);
    const custodian = get<Organization>(bundle, composition.custodian?.reference);
    expect(custodian.identifier?.map((i) => i.value)).toEqual(['1060000019', '060000019']);
  });

  it('maps the encounter with its class, location and provider', () => {
    const encounter = get<Encounter>(bundle, composition.encounter?.reference);
    expect(encounter.class).toMatchObject({ system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: 'IMP' });
    expect(encounter.identifier?.[0]?.value).toBe('SEJ-2024-0042');
    expect(encounter.location?.[0]?.location.reference).toBeTruthy();
    expect(encounter.serviceProvider?.reference).toBe(composition.custodian?.reference);
  });

  it('keeps nested sections and links renderMultiMedia to the Binary', () => {
    const exam = composition.section?.find((s) => s.title === 'Examen clinique');
    expect(exam?.section?.map((s) => s.title)).toEqual(['Général', 'Neurologique']);
    const annex = composition.section?.find((s) => s.title === 'Documents joints');
    const href = /href="(urn:uuid:[^"]+)"/.exec(annex?.text?.div ?? '')?.[1];
    expect(get<Resource>(bundle, href).resourceType).toBe('Binary');
  });

  it('keeps the source CDA with a Provenance', () => {
    const source = all<Resource & { contentType: string; data: string }>(bundle, 'Binary').find((b) => b.contentType === 'application/hl7-cda+xml');
    expect(Buffer.from(source?.data ?? '', 'base64').equals(fixture('ldl-synthetic.xml'))).toBe(true);
    const provenance = all<Resource & { entity: { role: string; what: { reference: string } }[] }>(bundle, 'Provenance')[0];
    expect(provenance?.entity[0]).toEqual({ role: 'source', what: { reference: bundle.entry?.find((e) => e.resource === source)?.fullUrl } });
  });
});

describe('quirks', () => {
  const { bundle, report } = convertCda(fixture('quirks-wrapped.xml'));
  const composition = bundle.entry?.[0]?.resource as Composition;
  const patient = bundle.entry?.[1]?.resource as Patient;

  it('finds the document inside <xsl:stylesheet> and reports it', () => {
    expect(codes(report)).toContain('CDA_WRAPPED');
  });

  it('repairs a timestamp without seconds and with a short offset', () => {
    expect(bundle.timestamp).toBe('2024-07-01T10:30:00+01:00');
    expect(codes(report)).toContain('TIME_REPAIRED');
  });

  it('lower-cases an upper-case UUID root', () => {
    expect(bundle.identifier).toEqual({ system: 'urn:ietf:rfc:3986', value: 'urn:uuid:5f0c2a9e-3b7d-4c1a-9e2b-abcdef012345' });
  });

  it('types an NIA as temporary and keeps a Corsican birthplace code', () => {
    expect(patient.identifier?.[0]).toMatchObject({ use: 'temp', value: '253072B07300470' });
    expect(patient.identifier?.[0]?.type?.coding?.[0]?.code).toBe('INS-NIA');
    expect(patient.birthDate).toBe('1953-07');
    const birthPlace = patient.extension?.find((e) => e.url.endsWith('patient-birthPlace'));
    expect(birthPlace?.valueAddress?.extension?.[0]?.valueCoding?.code).toBe('2B033');
    expect(codes(report)).not.toContain('INS_KEY_INVALID');
  });

  it('keeps MASQUE_PS as a security label next to the v3 code', () => {
    expect(composition.confidentiality).toBe('N');
    expect(composition.meta?.security?.map((c) => c.code)).toEqual(['MASQUE_PS', 'N']);
  });

  it('states the absent encounter class instead of inventing one', () => {
    const encounter = get<Encounter>(bundle, composition.encounter?.reference);
    expect(encounter.class.extension?.[0]).toEqual({ url: 'http://hl7.org/fhir/StructureDefinition/data-absent-reason', valueCode: 'unknown' });
    expect(encounter.period).toEqual({ start: '2024-07-01' });
    expect(codes(report)).toContain('ENCOUNTER_CLASS_ABSENT');
  });

  it('takes a device author and reads base64 wrapped with tabs', () => {
    const device = get<Resource & { deviceName: { name: string }[] }>(bundle, composition.author[0]?.reference);
    expect(device.resourceType).toBe('Device');
    expect(device.deviceName.map((d) => d.name)).toEqual(['DPI-EHPAD', 'SoinsPlus 4.2']);
    const pdf = all<Resource & { contentType: string; data: string }>(bundle, 'Binary').find((b) => b.contentType === 'application/pdf');
    expect(Buffer.from(pdf?.data ?? '', 'base64').subarray(0, 5).toString()).toBe('%PDF-');
  });

  it('removes javascript: links and reports unresolved media', () => {
    const div = composition.section?.[1]?.text?.div ?? '';
    expect(div).not.toContain('javascript');
    expect(div).toContain('href="https://example.test/protocole"');
    expect(codes(report)).toEqual(expect.arrayContaining(['NARRATIVE_CHANGED', 'MEDIA_REFERENCE_UNRESOLVED']));
  });

  it('gives a time without zone the document zone', () => {
    expect(JSON.stringify(bundle)).toContain('2024-07-01T10:00:00+01:00');
    expect(codes(report)).toContain('TIME_ZONE_ASSUMED');
  });
});

describe('identity of resources', () => {
  it('two patients in the same document template never share an id', () => {
    const a = convertCda(fixture('level1-pdf.xml')).bundle;
    const other = fixture('level1-pdf.xml').toString('utf8').replace('260058815400233', '295109912611193');
    const b = convertCda(Buffer.from(other)).bundle;
    const idsA = new Set(a.entry?.map((e) => e.fullUrl));
    expect(b.entry?.some((e) => idsA.has(e.fullUrl))).toBe(false);
  });
});
