/**
 * recordTarget/patientRole → Patient (FR Core `fr-core-patient-ins` when an INS is present, else
 * `fr-core-patient`), per DOMAIN.md §4 and FR Core FRCorePatientINSProfile:
 * - INS identifiers typed INS-NIR / INS-NIA (use temp) / INS-NIR-TEST / INS-NIR-DEMO in
 *   fr-core-cs-v2-0203. The NIR OID is also the NSS's: an NSS is typed `NH`, never INS-NIR; in a
 *   CDA recordTarget the OID .4.8 only carries the INS (CI-SIS volet "Structuration minimale").
 * - names: `BR` (birth) → official name (family + first given), the full birth given-name list in
 *   fr-core-patient-birth-list-given-name; `CL` (used) / `SP` → usual name.
 * - identity status is not set here: only the identity check may establish it (never assume QUAL).
 */
import type { CodeableConcept, Extension, HumanName, Identifier, Patient } from '@medplum/fhirtypes';
import { checkInsKey } from '../identity/ins.js';
import { organizationRef, relatedPersonRef } from './actors.js';
import type { ConversionContext, Ref } from './context.js';
import { address, administrativeGender, concept, contactPoint, identifier, isText } from './datatypes.js';
import {
  FR_CORE_SD, FR_CORE_V2_0203, OID_INS_NIA, OID_INS_NIR, OID_INS_NIR_DEMO, OID_INS_NIR_TEST, TRE_R13, V2_0203,
} from './terminology.js';
import { date } from './time.js';
import { attr, child, children, elements, text, type XElement } from './xml.js';
import { own } from '../util/own.js';

const INS_TYPES: Readonly<Record<string, { code: string; use: Identifier['use'] }>> = {
  [OID_INS_NIR]: { code: 'INS-NIR', use: 'official' },
  [OID_INS_NIA]: { code: 'INS-NIA', use: 'temp' },
  [OID_INS_NIR_TEST]: { code: 'INS-NIR-TEST', use: 'official' },
  [OID_INS_NIR_DEMO]: { code: 'INS-NIR-DEMO', use: 'official' },
};


export interface PatientResult {
  ref: Ref;
  patient: Patient;
}

/** The salt that keeps two patients' resource ids apart: the INS, else the first identifier. */
export function patientSalt(patientRole: XElement): string {
  const ids = children(patientRole, 'id');
  const ins = ids.find((el) => own(INS_TYPES, attr(el, 'root')));
  const first = ins ?? ids[0];
  return `${attr(first, 'root') ?? ''}|${attr(first, 'extension') ?? ''}`;
}

export function mapPatient(ctx: ConversionContext, patientRole: XElement): PatientResult {
  const person = child(patientRole, 'patient');
  const p: Patient = { resourceType: 'Patient' };
  const identifiers: Identifier[] = [];
  let ins: Identifier | undefined;
  for (const el of children(patientRole, 'id')) {
    const id = identifier(ctx, el);
    if (!id) continue;
    const insType = own(INS_TYPES, attr(el, 'root'));
    if (insType && id.value) {
      const typed: Identifier = { use: insType.use, type: { coding: [{ system: FR_CORE_V2_0203, code: insType.code }] }, ...id };
      const check = checkInsKey(id.value);
      if (!check.valid) ctx.report.warn('INS_KEY_INVALID', `INS matricule fails its ${check.reason} check.`, el);
      ins ??= typed;
      identifiers.push(typed);
    } else {
      identifiers.push({ type: { coding: [{ system: V2_0203, code: 'PI' }] }, ...id });
    }
  }
  if (!ins) ctx.report.info('INS_MISSING', 'No INS identifier (OID 1.2.250.1.213.1.4.8 to .11) in patientRole.', patientRole);
  p.meta = { profile: [`${FR_CORE_SD}${ins ? 'fr-core-patient-ins' : 'fr-core-patient'}`] };
  if (identifiers.length) p.identifier = identifiers;

  const names = children(person, 'name').flatMap(patientNames);
  if (names.length) p.name = names;
  const telecom = children(patientRole, 'telecom').map(contactPoint).filter((t) => t !== undefined);
  if (telecom.length) p.telecom = telecom;
  const gender = administrativeGender(person);
  if (gender) p.gender = gender;
  const birthDate = date(ctx, child(person, 'birthTime'));
  if (birthDate) p.birthDate = birthDate;
  const addr = children(patientRole, 'addr').map(address).filter((a) => a !== undefined);
  if (addr.length) p.address = addr;
  const marital = concept(ctx, child(person, 'maritalStatusCode'));
  if (marital) p.maritalStatus = marital;
  const birthPlace = birthPlaceExtension(child(child(person, 'birthplace'), 'place'));
  if (birthPlace) p.extension = [birthPlace];

  const ref = ctx.add(p, 'patient');
  ctx.patient = ref;
  for (const guardian of children(person, 'guardian')) mapGuardian(ctx, guardian, p);
  return { ref, patient: p };
}

/**
 * CI-SIS name parts: `family@BR` birth name, `given` (no qualifier) the birth given names as one
 * string, `given@BR` the first birth given name, `family@CL|SP` and `given@CL` the used ones.
 */
function patientNames(nameEl: XElement): HumanName[] {
  const parts = elements(nameEl);
  if (!parts.length) {
    const t = text(nameEl);
    return t ? [{ text: t }] : [];
  }
  const q = (e: XElement): string[] => (attr(e, 'qualifier') ?? '').split(/\s+/).filter(Boolean);
  const families = parts.filter((e) => e.name === 'family');
  const givens = parts.filter((e) => e.name === 'given');
  const birthFamily = text(families.find((e) => q(e).includes('BR')));
  const usedFamily = text(families.find((e) => q(e).includes('CL') || q(e).includes('SP')));
  const plainFamily = text(families.find((e) => q(e).length === 0));
  const birthList = text(givens.find((e) => q(e).length === 0));
  const firstBirthGiven = text(givens.find((e) => q(e).includes('BR')));
  const usedGiven = text(givens.find((e) => q(e).includes('CL')));
  const prefix = parts.filter((e) => e.name === 'prefix').map(text).filter(isText);
  const suffix = parts.filter((e) => e.name === 'suffix').map(text).filter(isText);
  const out: HumanName[] = [];
  const official = birthFamily ?? (usedFamily ? undefined : plainFamily);
  if (official || firstBirthGiven || birthList) {
    const n: HumanName = { use: 'official' };
    if (birthList) n.extension = [{ url: `${FR_CORE_SD}fr-core-patient-birth-list-given-name`, valueString: birthList }];
    if (official) n.family = official;
    const first = firstBirthGiven ?? birthList?.split(' ')[0];
    if (first) n.given = [first];
    if (prefix.length) n.prefix = prefix;
    if (suffix.length) n.suffix = suffix;
    out.push(n);
  }
  if (usedFamily || usedGiven) {
    const n: HumanName = { use: 'usual' };
    n.family = usedFamily ?? official;
    if (!n.family) delete n.family;
    if (usedGiven) n.given = [usedGiven];
    out.push(n);
  }
  return out;
}

/** birthplace/place/addr: city and INSEE code (county) → patient-birthPlace with fr-core-address-insee-code. */
function birthPlaceExtension(place: XElement | undefined): Extension | undefined {
  const addrEl = child(place, 'addr');
  if (!addrEl) return undefined;
  const a = address(addrEl);
  if (!a) return undefined;
  const insee = text(child(addrEl, 'county'));
  if (insee && /^(\d{5}|2[AB]\d{3})$/i.test(insee)) {
    a.extension = [{ url: `${FR_CORE_SD}fr-core-address-insee-code`, valueCoding: { system: TRE_R13, code: insee.toUpperCase() } }];
    delete a.district;
  }
  return { url: 'http://hl7.org/fhir/StructureDefinition/patient-birthPlace', valueAddress: a };
}

/** guardian → RelatedPerson (relationship GUARD, plus the guardian's own code) or an Organization. */
function mapGuardian(ctx: ConversionContext, guardian: XElement, patient: Patient): void {
  const relationship: CodeableConcept[] = [
    { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v3-RoleCode', code: 'GUARD', display: 'guardian' }] },
  ];
  const code = concept(ctx, child(guardian, 'code'));
  if (code) relationship.push(code);
  const person = child(guardian, 'guardianPerson');
  if (person) {
    relatedPersonRef(ctx, guardian, person, relationship);
    return;
  }
  const org = child(guardian, 'guardianOrganization');
  if (org) {
    const ref = organizationRef(ctx, org);
    if (ref) (patient.contact ??= []).push({ relationship, organization: ref });
  }
}
