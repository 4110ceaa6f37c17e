/**
 * Care plan → one FHIR R4 CarePlan per section 18776-5 ("Plan de soins" / "Suites à donner"; CI-SIS
 * FR-Plan-de-soins 1.2.250.1.213.1.1.2.158 = IHE PCC Care Plan 1.3.6.1.4.1.19376.1.5.3.1.3.31),
 * whose planned entries (FR-Acte, FR-Demande-d-examen-ou-de-suivi, FR-Rencontre, FR-Traitement
 * in an intent mood: INT, RQO, PRMS, PRP, APT, ARQ; a request also in GOL) become activity.detail.
 *
 * R4: CarePlan.status and intent 1..1 (intent is "plan": the section states what is planned, not
 * orders), activity.detail.status 1..1. A planned act's statusCode is the state of the intent:
 * active → not-started (an APT appointment → scheduled), completed → completed, cancelled,
 * aborted → stopped, suspended → on-hold, nullified → entered-in-error; absent → unknown
 * (reported). The CarePlan status follows its activities: any still to do → active; all done or
 * called off → completed; otherwise unknown (reported). A negated intent → doNotPerform.
 */
import type { CarePlan, CarePlanActivity, CarePlanActivityDetail } from '@medplum/fhirtypes';
import type { ConversionContext, Ref } from '../context.js';
import { concept } from '../datatypes.js';
import { period } from '../time.js';
import { attr, child, children, pathOf, text, type XElement } from '../xml.js';
import { actorRef, checklistRow, commentText, describe, entryName, identifiers, isNegated, mood, notMapped, performers, statementOf, statusOf, templates, xsiType } from './common.js';
import { productOf } from './medications.js';
import { own } from '../../util/own.js';

export const PLANNED_MOODS = new Set(['INT', 'RQO', 'PRMS', 'PRP', 'APT', 'ARQ']);

/** IHE PCC Observation Request, CI-SIS FR-Demande-d-examen-ou-de-suivi. */
const REQUEST_TEMPLATES = ['1.3.6.1.4.1.19376.1.5.3.1.1.20.3.1', '1.2.250.1.213.1.1.3.27'];

/**
 * A statement in an intent mood; also an exam or follow-up request in the goal mood (GOL), as
 * the ANS IPS-FR DLU example writes one ("Autre demande d'examen ou de suivi", dated).
 */
export function isPlanned(st: XElement): boolean {
  const m = mood(st);
  return PLANNED_MOODS.has(m) || (m === 'GOL' && templates(st).some((t) => REQUEST_TEMPLATES.includes(t)));
}

const DETAIL_STATUS: Readonly<Record<string, CarePlanActivityDetail['status']>> = {
  active: 'not-started',
  new: 'not-started',
  completed: 'completed',
  cancelled: 'cancelled',
  aborted: 'stopped',
  suspended: 'on-hold',
  held: 'on-hold',
  nullified: 'entered-in-error',
};

const KIND: Readonly<Record<string, CarePlanActivityDetail['kind']>> = {
  procedure: 'ServiceRequest',
  observation: 'ServiceRequest',
  act: 'ServiceRequest',
  encounter: 'Appointment',
  substanceAdministration: 'MedicationRequest',
  supply: 'DeviceRequest',
};

const PERFORMERS = ['Practitioner', 'PractitionerRole', 'Organization', 'RelatedPerson', 'Patient', 'CareTeam', 'HealthcareService', 'Device'] as const;

/** One planned statement → a CarePlan activity: its detail, and its comments (FR-Commentaire-ER) as the activity's progress notes. */
function activityOf(ctx: ConversionContext, st: XElement, sectionCode: string | undefined): CarePlanActivity {
  const code = statusOf(st);
  let status = own(DETAIL_STATUS, code);
  if (status === 'not-started' && mood(st) === 'APT') status = 'scheduled';
  if (!status) {
    ctx.report.warn('ENTRY_INCOMPLETE', `${code ? `statusCode "${code}"` : 'No statusCode'}: CarePlan.activity.detail.status unknown.`, st);
    status = 'unknown';
  }
  const detail: CarePlanActivityDetail = { status };
  // negationInd on an intent: the act is planned NOT to be done (CDA R2 Act.negationInd), which R4
  // says with doNotPerform (a modifier: the activity must not be engaged in).
  if (isNegated(st)) detail.doNotPerform = true;
  const kind = own(KIND, st.name);
  if (kind) detail.kind = kind;
  const narrative = entryName(ctx, st);
  const cc = concept(ctx, child(st, 'code'));
  if (cc) {
    if (!cc.text && narrative) cc.text = narrative;
    detail.code = cc;
  } else if (narrative) {
    detail.code = { text: narrative };
  }
  // An observation request may carry its subject as a text value (FR-Demande-d-examen-ou-de-suivi).
  const value = child(st, 'value');
  const described = st.name === 'observation' && value && (xsiType(value) === 'ST' || !xsiType(value)) ? text(value) : undefined;
  // A checklist row keeps its answer ("Orientation vers une structure… : Non"), which says whether it is planned at all.
  const row = checklistRow(ctx, st);
  const description = described ?? (row ? `${row.label} : ${row.answer}` : narrative);
  if (description) detail.description = description;
  const when = period(ctx, children(st, 'effectiveTime')[0]);
  if (when) detail.scheduledPeriod = when;
  const who = performers(ctx, st, PERFORMERS);
  if (who.length) detail.performer = who;
  if (st.name === 'substanceAdministration') {
    const name = text(child(productOf(st), 'name'));
    const product = concept(ctx, child(productOf(st), 'code')) ?? (name ? { text: name } : undefined);
    if (product) detail.productCodeableConcept = product;
  }
  const activity: CarePlanActivity = { detail };
  for (const rel of children(st, 'entryRelationship')) {
    const inner = statementOf(rel);
    if (!inner) continue;
    const reason = attr(rel, 'typeCode') === 'RSON' ? concept(ctx, child(inner, 'value') ?? child(inner, 'code')) : undefined;
    const note = reason ? undefined : commentText(ctx, inner);
    if (reason) (detail.reasonCode ??= []).push(reason);
    else if (note) (activity.progress ??= []).push({ text: note });
    else notMapped(ctx, `${describe(inner)} related to a planned activity`, sectionCode, inner);
  }
  return activity;
}

function planStatus(activities: CarePlanActivity[]): CarePlan['status'] | undefined {
  const s = activities.map((a) => a.detail?.status);
  if (s.some((x) => x === 'not-started' || x === 'scheduled' || x === 'in-progress' || x === 'on-hold')) return 'active';
  if (s.length && s.every((x) => x === 'entered-in-error')) return 'entered-in-error';
  if (s.length && s.every((x) => x === 'completed' || x === 'cancelled' || x === 'stopped' || x === 'entered-in-error')) return 'completed';
  return undefined;
}

/** The planned statements of one care plan section → one CarePlan. */
export function mapCarePlan(ctx: ConversionContext, section: XElement, planned: XElement[], sectionCode: string | undefined): Ref {
  const activities = planned.map((st) => activityOf(ctx, st, sectionCode));
  let status = planStatus(activities);
  if (!status) {
    ctx.report.warn('ENTRY_INCOMPLETE', 'The planned activities do not tell whether the care plan is active: CarePlan.status unknown.', section);
    status = 'unknown';
  }
  const plan: CarePlan = { resourceType: 'CarePlan', status, intent: 'plan', subject: ctx.patient ?? {} };
  const ids = identifiers(ctx, section);
  if (ids.length) plan.identifier = ids;
  const title = text(child(section, 'title'));
  if (title) plan.title = title;
  if (ctx.encounter) plan.encounter = ctx.encounter;
  const author = actorRef(ctx, child(child(section, 'author'), 'assignedAuthor'), ['Patient', 'Practitioner', 'PractitionerRole', 'Device', 'RelatedPerson', 'Organization', 'CareTeam']);
  if (author) plan.author = author;
  plan.activity = activities;
  return ctx.add(plan, pathOf(section));
}
