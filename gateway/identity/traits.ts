/**
 * Strict identity traits and INS of a FHIR Patient (ours, converted from a CDA, and the SRIR's),
 * and their comparison the way identity vigilance compares them.
 *
 * Strict traits (DOMAIN.md §5; RNIV 1 "Principes communs", traits stricts; ANS "Référentiel INS"):
 * birth name, birth given names (the full list), birth date, sex, INSEE code of the birth place.
 * Where FR Core puts them (FRCorePatientINSProfile):
 * - birth name: the `official` name's `family` (a `maiden` name when no official one exists);
 * - birth given names: extension fr-core-patient-birth-list-given-name on the official name; without
 *   it, the official `given` parts joined by spaces (FR Core puts only the first given name there);
 * - first given name: the official `given[0]`, else the first word of the list (a search key only);
 * - birth date: `birthDate`; sex: `gender`;
 * - birth place: extension patient-birthPlace whose address carries fr-core-address-insee-code
 *   (what the converter emits), or FR Core's fr-core-patient-birth-place whose `district` holds the
 *   COG code; in both, a 5-character code in `district` is accepted as the INSEE code.
 * INS: an identifier of the INS-NIR / INS-NIA / INS-NIR-TEST / INS-NIR-DEMO OIDs that is not typed
 * `NH` (the social-security number shares the INS-NIR OID, DOMAIN.md §4) and not `use: old` (a
 * deactivated INS, FR Core's comment on identifier[INS-NIR].use).
 *
 * Normalisation for comparison. The RNIV records strict traits in capital letters without
 * diacritics (as the INSi teleservice returns them), while documents carry them as typed: "Pat-Trois",
 * "Hélène", "D'ALMEIDA". Two spellings of the same trait must compare equal, so both sides are
 * reduced to one form before comparing:
 *  1. Unicode NFD, combining marks removed (É → E, Ç → C, Ï → I);
 *  2. upper case (ß becomes SS); ligatures Œ/Æ written out as OE/AE;
 *  3. hyphens (any dash) and apostrophes (straight, typographic, modifier letter) → a space;
 *  4. runs of white space collapsed to one space, leading and trailing space trimmed.
 * Steps 1, 2 and 4 bring a typed value to the RNIV's stored form; step 3 is a comparison rule only:
 * it makes "JEAN-PIERRE" and "JEAN PIERRE" one value, a difference identity vigilance treats as
 * spelling, not as another person. Nothing else is folded (a different letter is a different trait).
 */
import type { Extension, HumanName, Identifier, Patient } from '@medplum/fhirtypes';
import { FR_CORE_SD, OID_INS_NIA, OID_INS_NIR, OID_INS_NIR_DEMO, OID_INS_NIR_TEST, V2_0203 } from '../cda/terminology.js';

export const INS_SYSTEMS: readonly string[] = [OID_INS_NIR, OID_INS_NIA, OID_INS_NIR_TEST, OID_INS_NIR_DEMO].map((oid) => `urn:oid:${oid}`);

const BIRTH_LIST_GIVEN_NAME = `${FR_CORE_SD}fr-core-patient-birth-list-given-name`;
const INSEE_CODE = `${FR_CORE_SD}fr-core-address-insee-code`;
const HL7_BIRTH_PLACE = 'http://hl7.org/fhir/StructureDefinition/patient-birthPlace';
const FR_CORE_BIRTH_PLACE = `${FR_CORE_SD}fr-core-patient-birth-place`;
/** FR Core fr-core-identity-reliability, sub-extension `identityStatus` (PROV | RECUP | VALI | QUAL). */
export const IDENTITY_RELIABILITY_URL = `${FR_CORE_SD}fr-core-identity-reliability`;

export type IdentityStatus = 'PROV' | 'RECUP' | 'VALI' | 'QUAL';
const STATUSES: readonly string[] = ['PROV', 'RECUP', 'VALI', 'QUAL'];

/** The strict traits as written in the Patient (absent when the Patient does not carry them). */
export interface StrictTraits {
  birthFamily?: string;
  birthGivenNames?: string;
  firstGivenName?: string;
  birthDate?: string;
  gender?: NonNullable<Patient['gender']>;
  birthPlaceCode?: string;
}

/** The names of the compared traits, as reported (never with their values). */
export type TraitName = 'birthFamily' | 'birthGivenNames' | 'birthDate' | 'gender' | 'birthPlace' | 'ins';

/** RNIV comparison form of a name (rules in the header). */
export function normaliseTrait(value: string): string {
  return value
    .normalize('NFD')
    .replace(/\p{M}/gu, '')
    .toUpperCase()
    .replace(/Œ/g, 'OE')
    .replace(/Æ/g, 'AE')
    .replace(/[\u002D\u2010-\u2015\u2212\uFE58\uFE63\uFF0D'\u2018\u2019\u02BC\u0060\u00B4]/g, ' ')
    .replace(/\s+/g, ' ')
    .trim();
}

const text = (v: string | undefined): string | undefined => {
  const t = v?.trim();
  return t ? t : undefined;
};

function birthName(patient: Patient): HumanName | undefined {
  const names = patient.name ?? [];
  return names.find((n) => n.use === 'official') ?? names.find((n) => n.use === 'maiden');
}

function stringExtension(extensions: Extension[] | undefined, url: string): string | undefined {
  return text(extensions?.find((e) => e.url === url)?.valueString);
}

function birthPlaceCode(patient: Patient): string | undefined {
  for (const ext of patient.extension ?? []) {
    if (ext.url !== HL7_BIRTH_PLACE && ext.url !== FR_CORE_BIRTH_PLACE) continue;
    const address = ext.valueAddress;
    const coded = text(address?.extension?.find((e) => e.url === INSEE_CODE)?.valueCoding?.code);
    const district = text(address?.district);
    const code = coded ?? (district && /^(\d{5}|2[AB]\d{3})$/i.test(district) ? district : undefined);
    if (code) return code.toUpperCase();
  }
  return undefined;
}

/** The strict traits of a Patient, as written (see normaliseTraits for the comparison form). */
export function extractTraits(patient: Patient): StrictTraits {
  const traits: StrictTraits = {};
  const name = birthName(patient);
  const family = text(name?.family);
  if (family) traits.birthFamily = family;
  const givens = (name?.given ?? []).map(text).filter((g): g is string => g !== undefined);
  const list = stringExtension(name?.extension, BIRTH_LIST_GIVEN_NAME) ?? (givens.length ? givens.join(' ') : undefined);
  if (list) traits.birthGivenNames = list;
  const first = givens[0] ?? list?.split(/\s+/)[0];
  if (first) traits.firstGivenName = first;
  const birthDate = text(patient.birthDate);
  if (birthDate) traits.birthDate = birthDate;
  if (patient.gender) traits.gender = patient.gender;
  const place = birthPlaceCode(patient);
  if (place) traits.birthPlaceCode = place;
  return traits;
}

/** The same traits in comparison form: names normalised, codes upper-cased, dates as written. */
export function normaliseTraits(traits: StrictTraits): StrictTraits {
  const out: StrictTraits = { ...traits };
  if (traits.birthFamily !== undefined) out.birthFamily = normaliseTrait(traits.birthFamily);
  if (traits.birthGivenNames !== undefined) out.birthGivenNames = normaliseTrait(traits.birthGivenNames);
  if (traits.firstGivenName !== undefined) out.firstGivenName = normaliseTrait(traits.firstGivenName);
  if (traits.birthPlaceCode !== undefined) out.birthPlaceCode = traits.birthPlaceCode.trim().toUpperCase();
  return out;
}

function isNssType(id: Identifier): boolean {
  return (id.type?.coding ?? []).some((c) => c.system === V2_0203 && c.code === 'NH');
}

/** The Patient's INS identifiers (all of them, in order), excluding NSS-typed and deactivated ones. */
export function insIdentifiers(patient: Patient): Identifier[] {
  return (patient.identifier ?? []).filter((id) => id.system !== undefined && INS_SYSTEMS.includes(id.system) && !!text(id.value) && !isNssType(id) && id.use !== 'old');
}

/** The Patient's INS (the first INS identifier), or undefined. */
export function extractIns(patient: Patient): (Identifier & { system: string; value: string }) | undefined {
  const id = insIdentifiers(patient)[0];
  return id?.system && id.value ? { ...id, system: id.system, value: id.value.trim() } : undefined;
}

/** The identity status a Patient carries in FR Core's identity-reliability extension, if any. */
export function extractIdentityStatus(patient: Patient): IdentityStatus | undefined {
  for (const ext of patient.extension ?? []) {
    if (ext.url !== IDENTITY_RELIABILITY_URL) continue;
    const code = ext.extension?.find((e) => e.url === 'identityStatus')?.valueCoding?.code;
    if (code && STATUSES.includes(code)) return code as IdentityStatus;
  }
  return undefined;
}

export interface TraitComparison {
  /** Traits both sides carry with different values (a collision when the INS matched). */
  differs: TraitName[];
  /** Traits only one side carries: the identity cannot be declared identical. */
  missing: TraitName[];
}

/**
 * Compares the strict traits of two Patients in RNIV comparison form. The INS is compared too when
 * both carry one: the other Patient must hold one of ours (it may hold an older INS-NIA as well).
 */
export function compareTraits(ours: Patient, theirs: Patient): TraitComparison {
  const a = normaliseTraits(extractTraits(ours));
  const b = normaliseTraits(extractTraits(theirs));
  const result: TraitComparison = { differs: [], missing: [] };
  const check = (name: TraitName, x: string | undefined, y: string | undefined): void => {
    if (x === undefined && y === undefined) return;
    if (x === undefined || y === undefined) result.missing.push(name);
    else if (x !== y) result.differs.push(name);
  };
  check('birthFamily', a.birthFamily, b.birthFamily);
  check('birthGivenNames', a.birthGivenNames, b.birthGivenNames);
  check('birthDate', a.birthDate, b.birthDate);
  check('gender', a.gender, b.gender);
  check('birthPlace', a.birthPlaceCode, b.birthPlaceCode);
  const key = (id: Identifier): string => `${id.system ?? ''}|${id.value?.trim() ?? ''}`;
  const oursIns = insIdentifiers(ours).map(key);
  const theirsIns = insIdentifiers(theirs).map(key);
  if (oursIns.length && theirsIns.length && !oursIns.some((k) => theirsIns.includes(k))) result.differs.push('ins');
  return result;
}
