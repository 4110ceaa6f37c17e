/**
 * Problems → FHIR R4 Condition (sections 11450-4 "Problèmes actifs", 11348-0 "Antécédents
 * médicaux"; CI-SIS FR-Liste-des-problemes concern act wrapping FR-Probleme observations, IHE PCC
 * Problem Concern 1.3.6.1.4.1.19376.1.5.3.1.4.5.2 / Problem Entry …4.5).
 *
 * In FR-Probleme the observation `code` is the kind of problem (SNOMED CT problem, diagnosis,
 * symptom…) and `value` the problem itself (CIM-10…): value → Condition.code, code → an extra
 * category. Invariants kept: con-3 (clinicalStatus present for a problem-list item unless
 * entered-in-error: stated absent with data-absent-reason when the CDA does not give it), con-4
 * (an abatement needs inactive/resolved/remission), con-5 (no clinicalStatus when entered-in-error).
 * A problem of the stay's diagnosis sections (11535-2 discharge, 46241-6 admission: the DLU's
 * FLUDR) is an encounter-diagnosis, listed in the document Encounter's diagnosis with its role.
 *
 * A cause of the problem (entryRelationship CAUS, as the CSE 2024 write the circumstances of an
 * accident: "Choc traumatique: non, Autre accident domestique: oui") becomes the R4 extension
 * condition-dueTo with the cause's code; a cause stated absent (BL false, negationInd) has no R4
 * form and is reported. An observation about the problem (entryRelationship SUBJ or SPRT, an IHE
 * PCC Simple Observation such as the CSE's "Nombre d'hospitalisations: 1" under "Hospitalisations
 * depuis le 9ème mois") becomes an Observation the Condition cites as evidence (evidence.detail).
 */
import type { Condition } from '@medplum/fhirtypes';
import type { ConversionContext, Ref } from '../context.js';
import { concept } from '../datatypes.js';
import { dateTime } from '../time.js';
import { attr, child, children, pathOf, type XElement } from '../xml.js';
import {
  absent, author, commentText, describe, entryName, identifiers, isNegated, mood, notMapped, pointInTime, statementOf, templates, xsiType,
} from './common.js';
import { certainty, clinicalStatus, codeable, concernParts, isCertainty, isConcernAct, isProblemStatus, isSeverity, verification } from './concern.js';
import { own } from '../../util/own.js';
import { mapObservation } from './observations.js';

const CLINICAL = 'http://terminology.hl7.org/CodeSystem/condition-clinical';
const VERIFICATION = 'http://terminology.hl7.org/CodeSystem/condition-ver-status';
const CATEGORY = 'http://terminology.hl7.org/CodeSystem/condition-category';
/** Sections of the stay's diagnoses (LOINC) → their R4 diagnosis-role. */
const STAY_DIAGNOSES: Readonly<Record<string, { code: string; display: string }>> = {
  '11535-2': { code: 'DD', display: 'Discharge diagnosis' },
  '46241-6': { code: 'AD', display: 'Admission diagnosis' },
};
const DUE_TO = 'http://hl7.org/fhir/StructureDefinition/condition-dueTo';
/** IHE PCC Simple Observation, CI-SIS FR-Simple-Observation. */
const SIMPLE_OBSERVATION_TEMPLATES = ['1.3.6.1.4.1.19376.1.5.3.1.4.13', '1.2.250.1.213.1.1.3.48'];
const ACTORS = ['Practitioner', 'PractitionerRole', 'Patient', 'RelatedPerson'] as const;

/** The SNOMED CT kinds of problem of JDV_TypeProbleme / IHE PCC problem codes: they type, they do not name. */
const PROBLEM_KINDS = new Set(['55607006', '404684003', '282291009', '64572001', '418799008', '409586006', '248536006', '75326-9', '29308-4']);

/** A problem entry: a concern act (one Condition per observation) or a bare problem observation. */
export function mapProblemEntry(ctx: ConversionContext, st: XElement, sectionCode: string | undefined): Ref[] {
  if (st.name === 'observation') return mapCondition(ctx, undefined, st, sectionCode);
  if (st.name === 'act' && isConcernAct(st)) {
    const { observations, others } = concernParts(st);
    for (const o of others) notMapped(ctx, `${describe(o)} in a problem concern`, sectionCode, o);
    if (!observations.length) notMapped(ctx, 'Problem concern without problem observation', sectionCode, st);
    return observations.flatMap((o) => mapCondition(ctx, st, o, sectionCode));
  }
  notMapped(ctx, describe(st), sectionCode, st);
  return [];
}

function mapCondition(ctx: ConversionContext, concern: XElement | undefined, obs: XElement, sectionCode: string | undefined): Ref[] {
  if (mood(obs) !== 'EVN') {
    notMapped(ctx, `Planned ${describe(obs)}`, sectionCode, obs);
    return [];
  }
  const c: Condition = { resourceType: 'Condition', subject: ctx.patient ?? {} };
  const ids = identifiers(ctx, obs);
  if (ids.length) c.identifier = ids;

  // A diagnosis of the stay (the discharge or admission diagnosis sections) is the encounter's,
  // not an item of the problem list: R4 category encounter-diagnosis, and the Encounter's diagnosis.
  const role = sectionCode ? own(STAY_DIAGNOSES, sectionCode) : undefined;
  const verif = verification(concern, obs);
  const status = clinicalStatus(concern, obs, sectionCode);
  const effectiveTime = child(obs, 'effectiveTime');
  let abatement = dateTime(ctx, child(effectiveTime, 'high'));
  if (abatement && (status === 'active' || status === 'recurrence' || status === 'relapse')) {
    ctx.report.info('ENTRY_NOT_MAPPED', `Problem has an end date but its status observation says ${status}: end date left out (con-4).`, effectiveTime ?? obs);
    abatement = undefined;
  }
  if (verif !== 'entered-in-error') {
    if (status) {
      c.clinicalStatus = codeable(CLINICAL, status);
    } else {
      // con-3: a problem-list item states its clinical status; the CDA does not give it.
      c.clinicalStatus = absent();
      ctx.report.warn('ENTRY_INCOMPLETE', 'No problem status, end date or concern status: Condition.clinicalStatus stated absent.', obs);
    }
  }
  if (verif) c.verificationStatus = codeable(VERIFICATION, verif);

  c.category = [role
    ? { coding: [{ system: CATEGORY, code: 'encounter-diagnosis', display: 'Encounter Diagnosis' }] }
    : { coding: [{ system: CATEGORY, code: 'problem-list-item', display: 'Problem List Item' }] }];
  const codeEl = child(obs, 'code');
  const kind = concept(ctx, codeEl);
  const kindCode = attr(codeEl, 'code');
  if (kind && kindCode && PROBLEM_KINDS.has(kindCode)) c.category.push(kind);

  const narrative = entryName(ctx, obs);
  const problem = concept(ctx, child(obs, 'value')) ?? (kindCode && !PROBLEM_KINDS.has(kindCode) ? kind : undefined);
  if (problem) {
    if (!problem.text && narrative) problem.text = narrative;
    c.code = problem;
  } else if (narrative) {
    c.code = { text: narrative };
  } else {
    ctx.report.warn('ENTRY_INCOMPLETE', 'Problem observation names no problem (no value, no narrative).', obs);
  }
  const site = children(obs, 'targetSiteCode').map((s) => concept(ctx, s)).filter((s) => s !== undefined);
  if (site.length) c.bodySite = site;
  if (ctx.encounter) c.encounter = ctx.encounter;
  const onset = pointInTime(ctx, effectiveTime);
  if (onset) c.onsetDateTime = onset;
  if (abatement) c.abatementDateTime = abatement;
  const by = author(ctx, obs, ACTORS);
  const byConcern = concern ? author(ctx, concern, ACTORS) : {};
  const recordedDate = by.time ?? byConcern.time;
  if (recordedDate) c.recordedDate = recordedDate;
  const recorder = by.ref ?? byConcern.ref;
  if (recorder) {
    c.recorder = recorder;
    c.asserter = recorder;
  }

  const evidence: Ref[] = [];
  for (const rel of children(obs, 'entryRelationship')) {
    const st = statementOf(rel);
    if (!st) continue;
    const typeCode = attr(rel, 'typeCode');
    const note = commentText(ctx, st);
    if (note) (c.note ??= []).push({ text: note });
    else if (st.name === 'observation' && isProblemStatus(st)) continue; // read by clinicalStatus()
    else if (certainty(st)) continue; // read by verification()
    else if (st.name === 'observation' && isSeverity(st) && concept(ctx, child(st, 'value'))) c.severity = concept(ctx, child(st, 'value'));
    else if (st.name === 'observation' && typeCode === 'CAUS') addCause(ctx, c, st, sectionCode);
    else if (st.name === 'observation' && (typeCode === 'SUBJ' || typeCode === 'SPRT') && !isCertainty(st) && !isSeverity(st)
      && templates(st).some((t) => SIMPLE_OBSERVATION_TEMPLATES.includes(t))) {
      const refs = mapObservation(ctx, st, { sectionCode });
      if (refs[0]) (c.evidence ??= []).push({ detail: [refs[0]] });
      evidence.push(...refs);
    } else notMapped(ctx, `${describe(st)} related to a problem`, sectionCode, st);
  }
  const ref = ctx.add(c, pathOf(obs));
  const encounter = ctx.resolve(ctx.encounter);
  if (role && verif !== 'refuted' && verif !== 'entered-in-error' && encounter?.resourceType === 'Encounter') {
    (encounter.diagnosis ??= []).push({ condition: ref, use: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/diagnosis-role', ...role }] } });
  }
  return [ref, ...evidence];
}

/** A cause (CAUS) → condition-dueTo; stated absent (negationInd, or a boolean value false) it has no R4 form. */
function addCause(ctx: ConversionContext, c: Condition, obs: XElement, sectionCode: string | undefined): void {
  const value = child(obs, 'value');
  const cause = concept(ctx, child(obs, 'code'));
  if (isNegated(obs) || (xsiType(value) === 'BL' && attr(value, 'value') === 'false')) {
    notMapped(ctx, `${describe(obs)} stated absent as the cause of a problem`, sectionCode, obs);
  } else if (cause) {
    (c.extension ??= []).push({ url: DUE_TO, valueCodeableConcept: cause });
  } else {
    notMapped(ctx, `${describe(obs)} (a cause without code) related to a problem`, sectionCode, obs);
  }
}
