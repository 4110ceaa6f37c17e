/**
 * IHE PCC Concern Entry (1.3.6.1.4.1.19376.1.5.3.1.4.5.1; problem concern …4.5.2, allergy concern
 * …4.5.3; CI-SIS FR-Liste-des-problemes / FR-Liste-des-allergies-et-hypersensibilites): an act that
 * tracks a concern and wraps, through entryRelationship SUBJ, the problem or allergy observations.
 *
 * The clinical status of the FHIR resource is read, in this order, from:
 *  1. the observation's Problem Status Observation (IHE PCC …4.1.1, LOINC 33999-4) — SNOMED CT
 *     active / inactive / resolved / remission, or (CI-SIS 2024 templates, JDV_HL7_ConditionClinical-CISIS
 *     and the allergy one) the HL7 FHIR codes themselves: active, recurrence, relapse, inactive,
 *     remission, resolved;
 *  2. the end of the observation's effectiveTime (a problem that ended is resolved; this also keeps
 *     con-4: an abatement requires an inactive, resolved or remission status);
 *  3. the concern's statusCode (IHE PCC: active = still tracked → active; completed, aborted,
 *     suspended = no longer tracked → inactive, when the concern's effectiveTime says since when:
 *     PCC requires its high bound then. Published ANS documents write "completed" on concerns that
 *     are still open — no high bound, the problem without an end — where it says nothing);
 *  4. the section: a problem in "Pathologies en cours" (LOINC 11450-4, the active problems) is
 *     active; one no longer tracked in the medical history (11348-0, past illnesses) inactive.
 * Nothing else: when none of them says it, the status is stated absent, never guessed.
 *
 * The verification status: nullified → entered-in-error, negationInd → refuted, else the
 * observation's FR-Certitude (CI-SIS 1.2.250.1.213.1.1.3.171, LOINC 66455-7, an HL7
 * condition-ver-status code: unconfirmed, provisional, differential, confirmed, refuted,
 * entered-in-error), else uncertaintyCode UN → unconfirmed.
 */
import type { CodeableConcept } from '@medplum/fhirtypes';
import { attr, child, children, type XElement } from '../xml.js';
import { isNegated, statementOf, statusOf, templates } from './common.js';
import { own } from '../../util/own.js';

export type ClinicalStatus = 'active' | 'recurrence' | 'relapse' | 'inactive' | 'resolved' | 'remission';

const PROBLEM_STATUS_TEMPLATE = '1.3.6.1.4.1.19376.1.5.3.1.4.1.1';
const SEVERITY_TEMPLATE = '1.3.6.1.4.1.19376.1.5.3.1.4.1';
const CERTAINTY_TEMPLATE = '1.2.250.1.213.1.1.3.171';

const STATUS_CODES: Readonly<Record<string, ClinicalStatus>> = {
  // SNOMED CT (IHE PCC, CI-SIS before 2024)
  '55561003': 'active',
  '73425007': 'inactive',
  '413322009': 'resolved',
  '277022003': 'remission',
  // HL7 condition-clinical / allergyintolerance-clinical (CI-SIS 2024)
  active: 'active',
  recurrence: 'recurrence',
  relapse: 'relapse',
  inactive: 'inactive',
  remission: 'remission',
  resolved: 'resolved',
};

export function isConcernAct(el: XElement): boolean {
  if (el.name !== 'act') return false;
  const t = templates(el);
  if (t.some((r) => r.startsWith('1.3.6.1.4.1.19376.1.5.3.1.4.5.'))) return true;
  if (t.includes('2.16.840.1.113883.10.20.1.27')) return true;
  // Without a known template: an act whose SUBJ relationships are observations is a concern.
  const subj = children(el, 'entryRelationship').filter((r) => attr(r, 'typeCode') === 'SUBJ');
  return subj.length > 0 && subj.every((r) => statementOf(r)?.name === 'observation');
}

export function isAllergyConcern(el: XElement): boolean {
  return templates(el).includes('1.3.6.1.4.1.19376.1.5.3.1.4.5.3');
}

/** The SUBJ observations of a concern act (other relationships are returned apart). */
export function concernParts(act: XElement): { observations: XElement[]; others: XElement[] } {
  const observations: XElement[] = [];
  const others: XElement[] = [];
  for (const rel of children(act, 'entryRelationship')) {
    const st = statementOf(rel);
    if (!st) continue;
    if (st.name === 'observation' && (attr(rel, 'typeCode') ?? 'SUBJ') === 'SUBJ') observations.push(st);
    else others.push(st);
  }
  return { observations, others };
}

export function isProblemStatus(obs: XElement): boolean {
  return templates(obs).includes(PROBLEM_STATUS_TEMPLATE) || attr(child(obs, 'code'), 'code') === '33999-4';
}

/** FR-Certitude: how certain a problem or an allergy is (read by verification()). */
export function isCertainty(obs: XElement): boolean {
  return templates(obs).includes(CERTAINTY_TEMPLATE) || attr(child(obs, 'code'), 'code') === '66455-7';
}

export function isSeverity(obs: XElement): boolean {
  return templates(obs).includes(SEVERITY_TEMPLATE) || attr(child(obs, 'code'), 'code') === 'SEV';
}

/** Clinical status per the order above; undefined when the CDA does not say. */
export function clinicalStatus(concern: XElement | undefined, obs: XElement, sectionCode: string | undefined): ClinicalStatus | undefined {
  for (const rel of children(obs, 'entryRelationship')) {
    const st = statementOf(rel);
    if (st?.name === 'observation' && isProblemStatus(st)) {
      const code = attr(child(st, 'value'), 'code')?.trim();
      const s = own(STATUS_CODES, code);
      if (s) return s;
    }
  }
  const high = child(child(obs, 'effectiveTime'), 'high');
  if (attr(high, 'value')) return 'resolved';
  const status = concern ? statusOf(concern) : undefined;
  if (status === 'active') return 'active';
  const closed = status === 'completed' || status === 'aborted' || status === 'suspended';
  if (closed && attr(child(child(concern, 'effectiveTime'), 'high'), 'value')) return 'inactive';
  if (sectionCode === ACTIVE_PROBLEMS && !isNegated(obs)) return 'active';
  if (sectionCode === PAST_ILLNESSES && closed) return 'inactive';
  return undefined;
}

const ACTIVE_PROBLEMS = '11450-4';
const PAST_ILLNESSES = '11348-0';

/** HL7 condition-ver-status (an allergy's verification status has fewer: see the allergy mapping). */
export type Verification = 'unconfirmed' | 'provisional' | 'differential' | 'confirmed' | 'refuted' | 'entered-in-error';

const VERIFICATIONS: ReadonlySet<string> = new Set<Verification>(['unconfirmed', 'provisional', 'differential', 'confirmed', 'refuted', 'entered-in-error']);

/** The value of an FR-Certitude observation, when it is one, not negated, holding a condition-ver-status code. */
export function certainty(obs: XElement): Verification | undefined {
  if (obs.name !== 'observation' || !isCertainty(obs) || isNegated(obs)) return undefined;
  const code = attr(child(obs, 'value'), 'code')?.trim();
  return code !== undefined && VERIFICATIONS.has(code) ? (code as Verification) : undefined;
}

/** The verification status, per the order in the file comment; undefined when the CDA does not say. */
export function verification(concern: XElement | undefined, obs: XElement): Verification | undefined {
  if (statusOf(obs) === 'nullified' || (concern && statusOf(concern) === 'nullified')) return 'entered-in-error';
  if (isNegated(obs)) return 'refuted';
  for (const rel of children(obs, 'entryRelationship')) {
    const st = statementOf(rel);
    const certain = st && certainty(st);
    if (certain) return certain;
  }
  if (attr(child(obs, 'uncertaintyCode'), 'code') === 'UN') return 'unconfirmed';
  return undefined;
}

export function codeable(system: string, code: string): CodeableConcept {
  return { coding: [{ system, code }] };
}
