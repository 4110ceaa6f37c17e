/**
 * Strict traits: RNIV comparison form, extraction from our converted Patients and from FR Core
 * Patients as an SRIR writes them, and the comparison that tells a collision from a match.
 */
import type { Bundle, Patient } from '@medplum/fhirtypes';
import { describe, expect, it } from 'vitest';
import { convertCda } from '../../gateway/cda/convert.js';
import {
  compareTraits, extractIdentityStatus, extractIns, extractTraits, insIdentifiers, normaliseTrait, normaliseTraits,
} from '../../gateway/identity/traits.js';
import { corpusDocument } from '../support/corpus.js';

const FR = 'https://hl7.fr/ig/fhir/core/StructureDefinition/';

function patientOf(bundle: Bundle): Patient {
  const p = bundle.entry?.find((e) => e.resource?.resourceType === 'Patient')?.resource;
  if (!p) throw new Error('no Patient');
  return p as Patient;
}

/** An FR Core INS Patient written the way an SRIR returns one (upper case, no accents). */
function srirPatient(over: Partial<Patient> = {}): Patient {
  return {
    resourceType: 'Patient',
    id: 'x',
    extension: [
      { url: `${FR}fr-core-identity-reliability`, extension: [{ url: 'identityStatus', valueCoding: { system: 'https://hl7.fr/ig/fhir/core/CodeSystem/fr-core-cs-identity-status', code: 'QUAL' } }] },
      { url: 'http://hl7.org/fhir/StructureDefinition/patient-birthPlace', valueAddress: { extension: [{ url: `${FR}fr-core-address-insee-code`, valueCoding: { code: '51215' } }] } },
    ],
    identifier: [{ use: 'official', system: 'urn:oid:1.2.250.1.213.1.4.10', value: '279035121518989' }],
    name: [{ use: 'official', family: 'PAT-TROIS', given: ['DOMINIQUE'], extension: [{ url: `${FR}fr-core-patient-birth-list-given-name`, valueString: 'DOMINIQUE MARIE-LOUISE' }] }],
    gender: 'female',
    birthDate: '1979-03-28',
    ...over,
  };
}

describe('normaliseTrait (RNIV comparison form)', () => {
  it.each([
    ['Hélène', 'HELENE'],
    ['  Jean-Pierre  ', 'JEAN PIERRE'],
    ["D'Almeida", 'D ALMEIDA'],
    ['D’ALMEIDA', 'D ALMEIDA'],
    ['Marie–Louise', 'MARIE LOUISE'],
    ['françois   xavier', 'FRANCOIS XAVIER'],
    ['Œdipe', 'OEDIPE'],
    ['Lætitia', 'LAETITIA'],
    ['Strauß', 'STRAUSS'],
    ['ÇÀÏÔÙ', 'CAIOU'],
    ['Jean - Pierre', 'JEAN PIERRE'],
    ['\tPAT\u00A0TROIS\n', 'PAT TROIS'],
  ])('%j → %j', (input, expected) => {
    expect(normaliseTrait(input)).toBe(expected);
  });

  it('keeps letters that differ apart', () => {
    expect(normaliseTrait('DUPOND')).not.toBe(normaliseTrait('DUPONT'));
    expect(normaliseTrait('Anne Sophie')).toBe(normaliseTrait('ANNE-SOPHIE'));
  });
});

describe('extractTraits', () => {
  it('reads the converter\'s FR Core Patient of a corpus document', () => {
    const patient = patientOf(convertCda(corpusDocument('LDL-SES_2022.01.xml')).bundle);
    expect(extractTraits(patient)).toEqual({
      birthFamily: 'PAT-TROIS',
      birthGivenNames: 'DOMINIQUE MARIE-LOUISE',
      firstGivenName: 'DOMINIQUE',
      birthDate: '1979-03-28',
      gender: 'female',
      birthPlaceCode: '51215',
    });
    expect(extractIns(patient)).toMatchObject({ system: 'urn:oid:1.2.250.1.213.1.4.10', value: '279035121518989' });
  });

  it('reads an SRIR Patient, and its identity status', () => {
    const p = srirPatient();
    expect(normaliseTraits(extractTraits(p))).toEqual(normaliseTraits(extractTraits(patientOf(convertCda(corpusDocument('DLU-EHPAD-FLUDT_2022.01.xml')).bundle))));
    expect(extractIdentityStatus(p)).toBe('QUAL');
    expect(extractIdentityStatus(srirPatient({ extension: [] }))).toBeUndefined();
  });

  it('falls back: official given parts as the list, a maiden name, FR Core birth-place district', () => {
    const p: Patient = {
      resourceType: 'Patient',
      name: [{ use: 'usual', family: 'MARTIN', given: ['Lou'] }, { use: 'maiden', family: 'Durand', given: ['Louise', 'Anne'] }],
      extension: [{ url: `${FR}fr-core-patient-birth-place`, valueAddress: { district: '2a004', city: 'Ajaccio' } }],
    };
    expect(extractTraits(p)).toEqual({ birthFamily: 'Durand', birthGivenNames: 'Louise Anne', firstGivenName: 'Louise', birthPlaceCode: '2A004' });
  });

  it('returns nothing it does not find', () => {
    expect(extractTraits({ resourceType: 'Patient' })).toEqual({});
    expect(extractIns({ resourceType: 'Patient' })).toBeUndefined();
  });

  it('tells the INS from an NSS on the same OID, and skips a deactivated INS', () => {
    const p: Patient = {
      resourceType: 'Patient',
      identifier: [
        { system: 'urn:oid:1.2.250.1.213.1.4.8', value: '295109912611193', type: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v2-0203', code: 'NH' }] } },
        { system: 'urn:oid:1.2.250.1.213.1.4.8', value: '253072B07300470', use: 'old' },
        { system: 'urn:oid:1.2.3.4', value: '42' },
      ],
    };
    expect(insIdentifiers(p)).toEqual([]);
    p.identifier?.push({ system: 'urn:oid:1.2.250.1.213.1.4.9', value: '260058815400233', use: 'temp' });
    expect(extractIns(p)?.value).toBe('260058815400233');
  });
});

describe('compareTraits', () => {
  const ours = (): Patient => patientOf(convertCda(corpusDocument('LDL-SES_2022.01.xml')).bundle);

  it('finds identical traits identical, whatever the spelling', () => {
    const theirs = srirPatient({
      name: [{ use: 'official', family: 'Pat Trois', given: ['Dominique'], extension: [{ url: `${FR}fr-core-patient-birth-list-given-name`, valueString: 'Dominique Marie Louise' }] }],
    });
    expect(compareTraits(ours(), theirs)).toEqual({ differs: [], missing: [] });
  });

  it('names the traits that differ, not their values', () => {
    const theirs = srirPatient({ birthDate: '1979-03-29', gender: 'male' });
    const result = compareTraits(ours(), theirs);
    expect(result).toEqual({ differs: ['birthDate', 'gender'], missing: [] });
    expect(JSON.stringify(result)).not.toContain('1979');
  });

  it('reports a trait only one side carries as missing, not as different', () => {
    const theirs = srirPatient({ extension: [] });
    expect(compareTraits(ours(), theirs)).toEqual({ differs: [], missing: ['birthPlace'] });
  });

  it('compares the INS when both carry one', () => {
    const theirs = srirPatient({ identifier: [{ system: 'urn:oid:1.2.250.1.213.1.4.8', value: '295109912611193', use: 'official' }] });
    expect(compareTraits(ours(), theirs).differs).toEqual(['ins']);
    expect(compareTraits(ours(), srirPatient({ identifier: [] })).differs).toEqual([]);
  });
});
