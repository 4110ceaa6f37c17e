/**
 * The entries of one CDA section → FHIR resources, chosen by the section's LOINC code first (ANS
 * patient-summary map, DOMAIN.md §4), then by the shape of the entry's clinical statement:
 *
 * | section                               | statement                              | resource                          |
 * |---------------------------------------|----------------------------------------|-----------------------------------|
 * | 11450-4, 11348-0                      | concern act / observation              | Condition                         |
 * | 48765-2                               | concern act / observation              | AllergyIntolerance                |
 * | 11369-6                               | substanceAdministration                | Immunization                      |
 * | 18776-5                               | planned act/procedure/observation/…    | one CarePlan (activity.detail)    |
 * | 46264-8                               | supply with device / observation       | Device + DeviceUseStatement       |
 * | 55107-7, 55108-5 (or organizer 55107-7) | observationMedia / ED value          | DocumentReference                 |
 * | 33557-0 (document status)             | —                                      | Composition.status (header)        |
 * | 48768-6 (or coverage entry)           | coverage act with payer acts           | Coverage (one per payer)          |
 * | any other                             | substanceAdministration                | MedicationStatement               |
 * |                                       | procedure (EVN)                        | Procedure                         |
 * |                                       | observation, organizer, results act    | Observation (panel + members)     |
 * |                                       | specimen collection in a results act   | Specimen                          |
 * |                                       | patient transfer act (DLU)             | Location, Encounter destination   |
 * |                                       | disposition act (DLU preferred ES)     | Location                          |
 *
 * Sections are matched on their LOINC code, never on one template OID (published documents carry
 * typo'd section templates). `entry/observationMedia` outside annexes is left to the media module
 * (already a Binary). Whatever is not mapped is reported (ENTRY_NOT_MAPPED), and an unexpected
 * failure of one entry is reported, not thrown: the rest of the document still converts.
 */
import type { CodeableConcept, Reference } from '@medplum/fhirtypes';
import type { ConversionContext } from '../context.js';
import { attr, child, children, text, type XElement } from '../xml.js';
import { mapAllergyEntry } from './allergies.js';
import { ATTACHED_DOCUMENT, isAttachedDocument, mapAnnexEntry } from './annexes.js';
import { isPlanned, mapCarePlan } from './careplan.js';
import { describe, notMapped, relatedSubjectOf, statementOf, templates } from './common.js';
import { isAllergyConcern, isConcernAct } from './concern.js';
import { mapProblemEntry } from './conditions.js';
import { isCoverage, mapCoverage } from './coverage.js';
import { mapDeviceObservation, mapSupply } from './devices.js';
import { mapImmunization } from './immunizations.js';
import { mapMedicationStatement } from './medications.js';
import { isResultsAct, mapObservation, mapOrganizer, mapResultsAct, observationCategory } from './observations.js';
import { mapProcedure } from './procedures.js';
import { isDisposition, isPatientTransfer, mapDisposition, mapPatientTransfer } from './destinations.js';
import { own } from '../../util/own.js';

const PROBLEMS = new Set(['11450-4', '11348-0']);
const ALLERGIES = new Set(['48765-2']);
const IMMUNIZATIONS = new Set(['11369-6']);
const CARE_PLAN = '18776-5';
const DEVICES = '46264-8';
const VITAL_SIGNS = '8716-3';
const ANNEXES = new Set([ATTACHED_DOCUMENT, '55108-5']);
/** LOINC laboratory specialties used as CR-BIO chapter codes (and the generic laboratory studies). */
const LABORATORY = new Set([
  '11502-2', '18716-1', '18717-9', '18718-7', '18719-5', '18720-3', '18721-1', '18722-9', '18723-7', '18724-5',
  '18725-2', '18727-8', '18728-6', '18729-4', '18767-4', '18768-2', '18769-0', '26435-8', '26436-6', '26437-4', '26438-2',
]);
/** Sections whose entries describe the document, not the patient. */
const NOT_CLINICAL: Readonly<Record<string, string>> = {
  '33557-0': 'Document status (read into Composition.status by the header, not a patient observation)',
};

const PROBLEM_CONCERN = '1.3.6.1.4.1.19376.1.5.3.1.4.5.2';
const IMMUNIZATION_TEMPLATES = ['1.3.6.1.4.1.19376.1.5.3.1.4.12', '1.2.250.1.213.1.1.3.44'];
const LAB_TEMPLATES = ['1.3.6.1.4.1.19376.1.3.1', '1.3.6.1.4.1.19376.1.3.1.6', '1.2.250.1.213.1.1.3.21'];

/** Maps the entries of one CDA section to FHIR resources (emitted into ctx); returns the references for Composition.section.entry, in document order. */
export function mapSectionEntries(ctx: ConversionContext, section: XElement, sectionCode: string | undefined): Reference[] {
  const refs: Reference[] = [];
  const planned: XElement[] = [];
  let planSlot = -1;
  const title = text(child(section, 'title'));
  for (const entry of children(section, 'entry')) {
    const st = statementOf(entry);
    if (!st) {
      notMapped(ctx, 'Entry without a clinical statement', sectionCode, entry);
      continue;
    }
    if (sectionCode === CARE_PLAN && isPlanned(st) && st.name !== 'observationMedia' && st.name !== 'organizer') {
      if (planSlot < 0) planSlot = refs.length;
      planned.push(st);
      continue;
    }
    guarded(ctx, st, sectionCode, () => refs.push(...mapStatement(ctx, st, entry, sectionCode, title)));
  }
  if (planned.length) {
    guarded(ctx, section, sectionCode, () => refs.splice(planSlot, 0, mapCarePlan(ctx, section, planned, sectionCode)));
  }
  // A resource appears once in the section even when two entries lead to it.
  const seen = new Set<string>();
  return refs.filter((r) => {
    if (!r.reference || seen.has(r.reference)) return false;
    seen.add(r.reference);
    return true;
  });
}

/** One entry failing unexpectedly must not lose the document: it is reported instead. */
function guarded(ctx: ConversionContext, el: XElement, sectionCode: string | undefined, run: () => void): void {
  try {
    run();
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    ctx.report.warn('ENTRY_NOT_MAPPED', `${describe(el)} in section ${sectionCode ?? '(no LOINC code)'}: mapping failed (${message}).`, el);
  }
}

function categoryFor(sectionCode: string | undefined, st: XElement, entry: XElement): CodeableConcept | undefined {
  if (sectionCode === VITAL_SIGNS) return observationCategory('vital-signs');
  const t = [...templates(entry), ...templates(st)];
  if ((sectionCode && LABORATORY.has(sectionCode)) || t.some((r) => LAB_TEMPLATES.includes(r))) return observationCategory('laboratory');
  return undefined;
}

function mapStatement(ctx: ConversionContext, st: XElement, entry: XElement, sectionCode: string | undefined, title: string | undefined): Reference[] {
  const code = sectionCode ?? '';
  if (st.name === 'observationMedia') {
    // Outside annexes, an observationMedia is an illustration the media module turned into a Binary.
    return ANNEXES.has(code) ? mapAnnexEntry(ctx, st, sectionCode, title) : [];
  }
  if (ANNEXES.has(code) || isAttachedDocument(st)) return mapAnnexEntry(ctx, st, sectionCode, title);
  const notClinical = own(NOT_CLINICAL, code);
  if (notClinical) {
    notMapped(ctx, notClinical, sectionCode, st);
    return [];
  }
  // About the patient's mother, father…: an Observation says so (focus); the other resources mapped
  // here have no R4 element for it, and would state the fact of the patient.
  const related = relatedSubjectOf(st);
  const observation = st.name === 'organizer' || (st.name === 'observation' && !ALLERGIES.has(code) && !PROBLEMS.has(code) && code !== DEVICES);
  if (related && !observation) {
    const who = attr(child(related, 'code'), 'displayName') ?? attr(child(related, 'code'), 'code') ?? 'a related person';
    notMapped(ctx, `${describe(st)} about ${who}, not the patient,`, sectionCode, st);
    return [];
  }
  const category = categoryFor(sectionCode, st, entry);
  const obsOpts = { sectionCode, ...(category ? { category } : {}) };
  switch (st.name) {
    case 'act':
      if (ALLERGIES.has(code) || isAllergyConcern(st)) return mapAllergyEntry(ctx, st, sectionCode);
      if (PROBLEMS.has(code) || templates(st).includes(PROBLEM_CONCERN)) return mapProblemEntry(ctx, st, sectionCode);
      if (isResultsAct(st) && !isConcernAct(st)) return mapResultsAct(ctx, st, obsOpts);
      if (isCoverage(st, sectionCode)) return mapCoverage(ctx, st, sectionCode);
      if (isPatientTransfer(st)) return mapPatientTransfer(ctx, st, sectionCode);
      if (isDisposition(st)) return mapDisposition(ctx, st, sectionCode);
      notMapped(ctx, describe(st), sectionCode, st);
      return [];
    case 'observation':
      if (ALLERGIES.has(code)) return mapAllergyEntry(ctx, st, sectionCode);
      if (PROBLEMS.has(code)) return mapProblemEntry(ctx, st, sectionCode);
      if (code === DEVICES) return mapDeviceObservation(ctx, st, sectionCode);
      return mapObservation(ctx, st, obsOpts);
    case 'organizer':
      return mapOrganizer(ctx, st, obsOpts);
    case 'substanceAdministration':
      if (IMMUNIZATIONS.has(code) || templates(st).some((t) => IMMUNIZATION_TEMPLATES.includes(t))) return mapImmunization(ctx, st, sectionCode);
      return mapMedicationStatement(ctx, st, sectionCode);
    case 'procedure':
      return mapProcedure(ctx, st, sectionCode);
    case 'supply':
      return mapSupply(ctx, st, sectionCode);
    default:
      // encounter (the stay itself is the header's encompassingEncounter), regionOfInterest…
      notMapped(ctx, describe(st), sectionCode, st);
      return [];
  }
}
