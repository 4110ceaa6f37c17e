/**
 * The five real ANS documents (../shared/corpus/cda): every header fact asserted, every Bundle
 * checked by our schema (inside convertCda) and by an independent validator (R4
 * StructureDefinitions via @medplum/core, plus document-Bundle rules).
 */
import type { Bundle, Composition, DiagnosticReport, DocumentReference, Encounter, MedicationStatement, Organization, Patient, Practitioner, PractitionerRole, Resource } from '@medplum/fhirtypes';
import { describe, expect, it } from 'vitest';
import { convertCda } from '../../gateway/cda/convert.js';
import { corpusDocument, loadCorpus } from '../support/corpus.js';
import { validateWithStructureDefinitions } from '../support/fhir-validator.js';

interface Facts {
  ins: { type: string; value: string };
  ipp: string;
  birthFamily: string;
  birthGivenList: string;
  firstGiven: string;
  birthDate: string;
  gender: Patient['gender'];
  birthplaceInsee: string;
  authorRpps: string;
  authorFamily: string;
  custodianFiness: string;
  custodianName: string;
  typeCode: string;
  timestamp: string;
  sections: number;
  binaries: number;
}

const FACTS: Record<string, Facts> = {
  'LDL-SES_2022.01.xml': {
    ins: { type: 'INS-NIR-TEST', value: '279035121518989' }, ipp: '1234567890121',
    birthFamily: 'PAT-TROIS', birthGivenList: 'DOMINIQUE MARIE-LOUISE', firstGiven: 'DOMINIQUE', birthDate: '1979-03-28', gender: 'female',
    birthplaceInsee: '51215', authorRpps: '801234567897', authorFamily: 'DAVID', custodianFiness: '1750803447',
    custodianName: 'Hôpital Européen Georges Pompidou', typeCode: '11490-0', timestamp: '2019-12-03T13:30:00+01:00', sections: 9, binaries: 1,
  },
  'DLU-EHPAD-FLUDT_2022.01.xml': {
    ins: { type: 'INS-NIR-TEST', value: '279035121518989' }, ipp: '1234567890121',
    birthFamily: 'PAT-TROIS', birthGivenList: 'DOMINIQUE MARIE-LOUISE', firstGiven: 'DOMINIQUE', birthDate: '1979-03-28', gender: 'female',
    birthplaceInsee: '51215', authorRpps: '801234567897', authorFamily: 'BOILEAU', custodianFiness: '1750803447',
    custodianName: 'EHPAD DE BOULOGNE-BILLANCOURT', typeCode: '74207-2', timestamp: '2020-03-27T15:35:00+01:00', sections: 7, binaries: 1,
  },
  'CSE-MDE_2023.01.xml': {
    ins: { type: 'INS-NIR', value: '222127505611201' }, ipp: '1234567890121',
    birthFamily: 'DECOURCY', birthGivenList: 'Ruth Isabelle', firstGiven: 'Ruth', birthDate: '2022-12-25', gender: 'female',
    birthplaceInsee: '75056', authorRpps: '801234567897', authorFamily: 'MULLER', custodianFiness: '2801234567',
    custodianName: 'Centre de santé du Belvédère', typeCode: '29274-8', timestamp: '2023-01-06T11:36:23+01:00', sections: 1, binaries: 1,
  },
  'BIO-CR-BIO_2024.01_TSH_1.xml': {
    ins: { type: 'INS-NIR-TEST', value: '279035121518989' }, ipp: '1234567890121',
    birthFamily: 'PAT-TROIS', birthGivenList: 'DOMINIQUE MARIE-LOUISE', firstGiven: 'DOMINIQUE', birthDate: '1979-03-28', gender: 'female',
    birthplaceInsee: '51215', authorRpps: '801234534765', authorFamily: 'CAMPARINI', custodianFiness: '1120459876',
    custodianName: 'Laboratoire des charmes', typeCode: '11502-2', timestamp: '2021-04-01T17:10:00+01:00', sections: 2, binaries: 2,
  },
  'DOC_NON_STRUCTURE_CDA-R2-N1.xml': {
    ins: { type: 'INS-NIR-TEST', value: '279035121518989' }, ipp: '1234567890121',
    birthFamily: 'PAT-TROIS', birthGivenList: 'DOMINIQUE MARIE-LOUISE', firstGiven: 'DOMINIQUE', birthDate: '1979-03-28', gender: 'female',
    birthplaceInsee: '51215', authorRpps: '801234534765', authorFamily: 'CAMPARINI', custodianFiness: '1120459876',
    custodianName: 'Laboratoire des charmes', typeCode: '11502-2', timestamp: '2021-04-01T13:47:45+01:00', sections: 1, binaries: 2,
  },
};

function resolve<T extends Resource>(bundle: Bundle, reference: string | undefined): T {
  const entry = bundle.entry?.find((e) => e.fullUrl === reference);
  if (!entry?.resource) throw new Error(`unresolved reference ${reference}`);
  return entry.resource as T;
}

describe('ANS corpus', () => {
  it('holds the five reference documents', () => {
    expect([...loadCorpus().keys()].sort()).toEqual(Object.keys(FACTS).sort());
  });

  for (const [file, facts] of Object.entries(FACTS)) {
    describe(file, () => {
      const { bundle, report } = convertCda(corpusDocument(file));
      const composition = bundle.entry?.[0]?.resource as Composition;
      const patient = resolve<Patient>(bundle, composition.subject?.reference);

      it('is a document Bundle passing the independent validator', () => {
        expect(bundle.type).toBe('document');
        expect(bundle.timestamp).toBe(facts.timestamp);
        expect(bundle.identifier?.system).toBeTruthy();
        expect(composition.resourceType).toBe('Composition');
        expect(bundle.entry?.[1]?.resource?.resourceType).toBe('Patient');
        expect(validateWithStructureDefinitions(bundle)).toEqual([]);
        expect(report.resourceType).toBe('OperationOutcome');
      });

      it('carries the patient identity', () => {
        const ins = patient.identifier?.find((i) => i.type?.coding?.[0]?.code === facts.ins.type);
        expect(ins?.value).toBe(facts.ins.value);
        expect(patient.meta?.profile?.[0]).toMatch(/fr-core-patient-ins$/);
        expect(patient.identifier?.some((i) => i.value === facts.ipp && i.type?.coding?.[0]?.code === 'PI')).toBe(true);
        const official = patient.name?.find((n) => n.use === 'official');
        expect(official?.family).toBe(facts.birthFamily);
        expect(official?.given).toEqual([facts.firstGiven]);
        expect(official?.extension?.[0]?.valueString).toBe(facts.birthGivenList);
        expect(patient.birthDate).toBe(facts.birthDate);
        expect(patient.gender).toBe(facts.gender);
        const birthPlace = patient.extension?.find((e) => e.url.endsWith('patient-birthPlace'));
        expect(birthPlace?.valueAddress?.extension?.[0]?.valueCoding?.code).toBe(facts.birthplaceInsee);
      });

      it('carries author, custodian, type and sections', () => {
        const role = resolve<PractitionerRole>(bundle, composition.author[0]?.reference);
        const practitioner = resolve<Practitioner>(bundle, role.practitioner?.reference);
        expect(practitioner.identifier?.find((i) => i.system === 'urn:oid:1.2.250.1.71.4.2.1')?.value).toBe(facts.authorRpps);
        expect(practitioner.name?.[0]?.family).toBe(facts.authorFamily);
        const custodian = resolve<Organization>(bundle, composition.custodian?.reference);
        expect(custodian.identifier?.find((i) => i.system === 'urn:oid:1.2.250.1.71.4.2.2')?.value).toBe(facts.custodianFiness);
        expect(custodian.name).toBe(facts.custodianName);
        expect(composition.type.coding?.[0]).toMatchObject({ system: 'http://loinc.org', code: facts.typeCode });
        expect(composition.section).toHaveLength(facts.sections);
        const binaries = bundle.entry?.filter((e) => e.resource?.resourceType === 'Binary') ?? [];
        expect(binaries).toHaveLength(facts.binaries);
        expect(binaries.some((b) => (b.resource as { contentType: string }).contentType === 'application/hl7-cda+xml')).toBe(true);
      });

      it('is deterministic', () => {
        expect(JSON.stringify(convertCda(corpusDocument(file)).bundle)).toBe(JSON.stringify(bundle));
      });
    });
  }

  it('level-1 document: the PDF becomes Binary + DocumentReference + one section', () => {
    const { bundle } = convertCda(corpusDocument('DOC_NON_STRUCTURE_CDA-R2-N1.xml'));
    const composition = bundle.entry?.[0]?.resource as Composition;
    const docRef = resolve<Resource & { content: { attachment: { url: string; contentType: string } }[] }>(bundle, composition.section?.[0]?.entry?.[0]?.reference);
    expect(docRef.resourceType).toBe('DocumentReference');
    expect(docRef.content[0]?.attachment.contentType).toBe('application/pdf');
    const pdf = resolve<Resource & { data: string }>(bundle, docRef.content[0]?.attachment.url);
    expect(Buffer.from(pdf.data, 'base64').subarray(0, 5).toString('latin1')).toBe('%PDF-');
    // The DocumentReference is the document: whose it is, read alone.
    const { author, custodian, context } = docRef as unknown as DocumentReference;
    expect(author).toEqual(composition.author);
    expect(custodian).toEqual(composition.custodian);
    expect(context?.encounter).toEqual([composition.encounter]);
  });

  it('CR-BIO: the prescriber and the sampler take part in the encounter, with the prescription and sampling times', () => {
    const { bundle } = convertCda(corpusDocument('BIO-CR-BIO_2024.01_TSH_1.xml'));
    const encounter = bundle.entry?.find((e) => e.resource?.resourceType === 'Encounter')?.resource as Encounter;
    const who = (code: string): { family?: string; rpps?: string; period?: unknown; function?: string } => {
      const p = encounter.participant?.find((x) => x.type?.[0]?.coding?.[0]?.code === code);
      const role = resolve<PractitionerRole>(bundle, p?.individual?.reference);
      const practitioner = resolve<Practitioner>(bundle, role.practitioner?.reference);
      return { family: practitioner.name?.[0]?.family, rpps: practitioner.identifier?.[0]?.value, period: p?.period, function: p?.type?.[1]?.coding?.[0]?.code };
    };
    expect(who('REF')).toEqual({ family: 'CHARLES', rpps: '810002422979', period: { end: '2021-01-01T16:05:27+01:00' }, function: undefined });
    expect(who('PRF')).toEqual({ family: 'BLEEDER', rpps: '801234567893', period: { end: '2021-01-04T07:35:00+01:00' }, function: 'PRELV' });
  });

  it('CR-BIO: a chapter without specimens of its own takes the header\'s sampling time, laboratory, validation and order', () => {
    const { bundle } = convertCda(corpusDocument('BIO-CR-BIO_2024.01_TSH_1.xml'));
    const report = bundle.entry?.find((e) => e.resource?.resourceType === 'DiagnosticReport')?.resource as DiagnosticReport;
    expect(report.code.coding?.[0]?.code).toBe('18719-5'); // Biochimie, the serviceEvent of that code names the laboratory
    expect(report.effectiveDateTime).toBe('2021-01-04T07:35:00+01:00'); // participant PRF/PRELV
    expect(report.issued).toBe('2021-01-04T16:05:27+01:00'); // legalAuthenticator/time
    const role = resolve<PractitionerRole>(bundle, report.performer?.[0]?.reference);
    expect(resolve<Organization>(bundle, role.organization?.reference).name).toBe('Laboratoire des charmes');
    expect(resolve<Practitioner>(bundle, role.practitioner?.reference).name?.[0]?.family).toBe('CAMPARINI');
    // The lab order it fulfils (inFulfillmentOf/order/id), as a logical reference.
    expect(report.basedOn).toEqual([{ type: 'ServiceRequest', identifier: { system: 'urn:oid:1.2.250.1.213.1.1.9', value: '2014123456789' } }]);
  });

  it('LDL-SES: a discharge treatment running past the letter\'s date is active, one that ended before it completed', () => {
    const { bundle } = convertCda(corpusDocument('LDL-SES_2022.01.xml'));
    const treatments = (bundle.entry ?? []).filter((e) => e.resource?.resourceType === 'MedicationStatement').map((e) => e.resource as MedicationStatement);
    // The letter is of 2019-12-03; IHE PCC writes "completed" on both.
    expect(treatments.map((m) => `${m.status} ${m.effectivePeriod?.end ?? ''}`).sort()).toEqual(['active 2020-02-02', 'completed 2019-10-29']);
  });

  it('LDL-SES: the admission and discharge modes are also the stay\'s admitSource and dischargeDisposition', () => {
    const { bundle } = convertCda(corpusDocument('LDL-SES_2022.01.xml'));
    const encounter = bundle.entry?.find((e) => e.resource?.resourceType === 'Encounter')?.resource as Encounter;
    expect(encounter.hospitalization?.admitSource?.coding?.[0]?.code).toBe('107724000');
    expect(encounter.hospitalization?.dischargeDisposition?.coding?.[0]?.code).toBe('GEN-092.06.01');
  });

  it('LDL-SES: the same RPPS under two names stays two practitioners, and is reported', () => {
    const { bundle, report } = convertCda(corpusDocument('LDL-SES_2022.01.xml'));
    const practitioners = bundle.entry?.filter((e) => e.resource?.resourceType === 'Practitioner').map((e) => e.resource as Practitioner) ?? [];
    const withRpps = practitioners.filter((p) => p.identifier?.some((i) => i.value === '801234567897'));
    // The example gives one RPPS to its author, its legal authenticator and a recipient.
    expect(withRpps.map((p) => p.name?.[0]?.family).sort()).toEqual(['AUGUIN', 'BOILEAU', 'DAVID']);
    expect(report.issue.some((i) => i.details?.coding?.[0]?.code === 'ACTOR_CONFLICT')).toBe(true);
    const orgs = bundle.entry?.filter((e) => e.resource?.resourceType === 'Organization' && (e.resource as Organization).name === 'Hôpital Européen Georges Pompidou');
    expect(orgs).toHaveLength(1);
  });
});
