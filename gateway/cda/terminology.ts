/**
 * Code systems: CDA names them by OID, FHIR by URI. Where FHIR (terminology.hl7.org), FR Core or the
 * ANS terminologies (MOS/NOS TRE_ tables) define a URI, it is used; any other OID becomes
 * `urn:oid:<oid>` (FHIR R4 §2.1.0.3 "Using Codes in Resources", ANS "Terminologies de santé").
 */
import { own } from '../util/own.js';


const V3 = 'http://terminology.hl7.org/CodeSystem/v3-';
const TRE = (name: string): string => `https://mos.esante.gouv.fr/NOS/${name}/FHIR/${name.replace('_', '-')}`;

const BY_OID: Readonly<Record<string, string>> = {
  '2.16.840.1.113883.6.1': 'http://loinc.org',
  '2.16.840.1.113883.6.96': 'http://snomed.info/sct',
  '2.16.840.1.113883.6.8': 'http://unitsofmeasure.org',
  '2.16.840.1.113883.6.73': 'http://www.whocc.no/atc',
  '2.16.840.1.113883.6.3': 'http://hl7.org/fhir/sid/icd-10',
  '2.16.840.1.113883.6.347': 'http://id.who.int/icd/release/11/mms', // CIM-11 MMS (CI-SIS 2024 reactions, problems)
  '2.16.840.1.113883.6.88': 'http://www.nlm.nih.gov/research/umls/rxnorm',
  '0.4.0.127.0.16.1.1.2.1': 'http://standardterms.edqm.eu',
  '2.16.840.1.113883.5.4': `${V3}ActCode`,
  '2.16.840.1.113883.5.6': `${V3}ActClass`,
  '2.16.840.1.113883.5.1001': `${V3}ActMood`,
  '2.16.840.1.113883.5.14': `${V3}ActStatus`,
  '2.16.840.1.113883.5.1': `${V3}AdministrativeGender`,
  '2.16.840.1.113883.5.25': `${V3}Confidentiality`,
  '2.16.840.1.113883.5.83': `${V3}ObservationInterpretation`,
  '2.16.840.1.113883.5.84': `${V3}ObservationMethod`,
  '2.16.840.1.113883.5.1063': `${V3}ObservationValue`,
  '2.16.840.1.113883.5.88': `${V3}ParticipationFunction`,
  '2.16.840.1.113883.5.90': `${V3}ParticipationType`,
  '2.16.840.1.113883.5.110': `${V3}RoleClass`,
  '2.16.840.1.113883.5.111': `${V3}RoleCode`,
  '2.16.840.1.113883.5.112': `${V3}RouteOfAdministration`,
  '2.16.840.1.113883.5.1008': `${V3}NullFlavor`,
  '2.16.840.1.113883.5.1119': `${V3}AddressUse`,
  '2.16.840.1.113883.5.139': `${V3}TimingEvent`,
  '2.16.840.1.113883.5.7': `${V3}ActPriority`,
  '2.16.840.1.113883.5.8': `${V3}ActReason`,
  '2.16.840.1.113883.5.1052': `${V3}ActSite`,
  '2.16.840.1.113883.5.85': `${V3}orderableDrugForm`,
  '2.16.840.1.113883.5.60': `${V3}LanguageAbilityMode`,
  '2.16.840.1.113883.5.2': `${V3}MaritalStatus`,
  // ANS terminologies (Nomenclatures des Objets de Santé).
  '1.2.250.1.71.1.2.7': TRE('TRE_G15-ProfessionSante'),
  '1.2.250.1.71.4.2.5': TRE('TRE_R38-SpecialiteOrdinale'),
  '1.2.250.1.71.4.2.4': TRE('TRE_R02-SecteurActivite'),
};

/** The URI of a code system given by OID (case of UUID roots normalised), or `urn:oid:`. */
export function systemUri(oid: string | undefined): string | undefined {
  if (!oid) return undefined;
  const known = own(BY_OID, oid);
  if (known) return known;
  if (UUID.test(oid)) return `urn:uuid:${oid.toLowerCase()}`;
  // Digits and dots: an OID, even one with a non-canonical component such as a leading zero.
  if (/^[0-9]+(\.[0-9]+)+$/.test(oid)) return `urn:oid:${oid}`;
  // A codeSystem already written as a URI is kept; anything else names no system at all.
  return /^[a-z][a-z0-9+.-]*:[^\s]+$/i.test(oid) ? oid : undefined;
}

export const UUID = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;
export const OID = /^[0-2](\.(0|[1-9][0-9]*))+$/;

export const LOINC = 'http://loinc.org';
export const ACT_CODE = `${V3}ActCode`;
export const PARTICIPATION_TYPE = `${V3}ParticipationType`;
export const FR_CORE_V2_0203 = 'https://hl7.fr/ig/fhir/core/CodeSystem/fr-core-cs-v2-0203';
export const V2_0203 = 'http://terminology.hl7.org/CodeSystem/v2-0203';
export const TRE_G15 = TRE('TRE_G15-ProfessionSante');
export const TRE_R38 = TRE('TRE_R38-SpecialiteOrdinale');
export const TRE_R13 = TRE('TRE_R13-CommuneOM');
export const DATA_ABSENT_REASON = 'http://hl7.org/fhir/StructureDefinition/data-absent-reason';
/** Base of the FHIR artefacts (extensions, code systems) this project defines. */
export const PASSERELLE_FHIR = 'https://passerelle.dev/fhir';
export const FR_CORE_SD = 'https://hl7.fr/ig/fhir/core/StructureDefinition/';

/** French national identifier OIDs (ANS "Identification des acteurs"). */
export const OID_RPPS_IDNPS = '1.2.250.1.71.4.2.1';
export const OID_IDNST = '1.2.250.1.71.4.2.2';
export const OID_INS_NIR = '1.2.250.1.213.1.4.8';
export const OID_INS_NIA = '1.2.250.1.213.1.4.9';
export const OID_INS_NIR_TEST = '1.2.250.1.213.1.4.10';
export const OID_INS_NIR_DEMO = '1.2.250.1.213.1.4.11';
/** The author-specialty code system whose codes join profession and specialty (`G15_10/SM27`). */
export const OID_AUTHOR_SPECIALTY = '1.2.250.1.213.1.1.4.5';
