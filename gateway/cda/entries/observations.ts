/**
 * CDA observations and organizers → FHIR R4 Observation.
 *
 * Sources: IHE PCC Simple Observation (1.3.6.1.4.1.19376.1.5.3.1.4.13) and CI-SIS
 * FR-Simple-Observation (1.2.250.1.213.1.1.3.48), FR-Signes-vitaux (organizer 1.2.250.1.213.1.1.3.49)
 * with FR-Signe-vital-observe components, the CR-BIO laboratory entries (act
 * 1.3.6.1.4.1.19376.1.3.1 wrapping result observations and battery organizers; in microbiology,
 * isolate organizers whose value is the microorganism identified).
 *
 * FHIR R4 Observation: status and code are 1..1; obs-6 dataAbsentReason only without a value;
 * obs-3 a referenceRange has low, high or text; obs-7 no component code equal to the code. An
 * organizer becomes a panel Observation whose `hasMember` lists one Observation per component
 * (observation.html §2.1.0.3.3 "Grouping").
 */
import type { CodeableConcept, DocumentReference, Observation, ObservationReferenceRange, Quantity, Range, Ratio } from '@medplum/fhirtypes';
import type { ConversionContext, Ref } from '../context.js';
import { concept, isNull, quantity } from '../datatypes.js';
import { dateTime, effective, period, toInstant } from '../time.js';
import { attr, child, children, text, pathOf, type XElement } from '../xml.js';
import {
  absentConcept, author, DAR_SYSTEM, commentText, describe, entryName, entryText, focusOf, identifiers, isNegated, mood, notMapped, performers,
  requiredConcept, statementOf, statusOf, templates, xsiType,
} from './common.js';
import { own } from '../../util/own.js';
import { mapResultsReport } from './reports.js';
import { isSpecimenCollection, mapSpecimen } from './specimens.js';

const OBSERVATION_CATEGORY = 'http://terminology.hl7.org/CodeSystem/observation-category';
const PERFORMER_TYPES = ['Practitioner', 'PractitionerRole', 'Organization', 'CareTeam', 'Patient', 'RelatedPerson'] as const;

export function observationCategory(code: 'vital-signs' | 'laboratory' | 'exam' | 'survey'): CodeableConcept {
  const display = { 'vital-signs': 'Vital Signs', laboratory: 'Laboratory', exam: 'Exam', survey: 'Survey' }[code];
  return { coding: [{ system: OBSERVATION_CATEGORY, code, display }] };
}

export interface ObservationOptions {
  sectionCode: string | undefined;
  category?: CodeableConcept;
  /** effectiveTime of the enclosing organizer, for components that state none. */
  inheritedEffective?: XElement;
}

/** CDA ActStatus → Observation.status (C-CDA on FHIR: active = results not final yet). */
const STATUS: Readonly<Record<string, Observation['status']>> = {
  completed: 'final',
  active: 'preliminary',
  new: 'registered',
  held: 'registered',
  suspended: 'registered',
  aborted: 'cancelled',
  cancelled: 'cancelled',
  nullified: 'entered-in-error',
  obsolete: 'amended',
};

/**
 * Observation.status: from statusCode; when absent, `unknown`, the code R4 defines for "the
 * source does not say which status applies" (it is not an invented status), reported.
 */
export function observationStatus(ctx: ConversionContext, el: XElement): Observation['status'] {
  const code = statusOf(el);
  const status = own(STATUS, code);
  if (status) return status;
  ctx.report.warn('ENTRY_INCOMPLETE', code ? `statusCode "${code}" is not an ActStatus; Observation.status unknown.` : 'No statusCode; Observation.status unknown.', el);
  return 'unknown';
}

/** A finite decimal only (a PQ of 1e400 is a number to JavaScript but no FHIR decimal). */
export function finiteQuantity(el: XElement | undefined): Quantity | undefined {
  const q = quantity(el);
  return q && Number.isFinite(q.value) ? q : undefined;
}

function numberOf(el: XElement | undefined): number | undefined {
  const raw = attr(el, 'value')?.trim();
  if (!raw || !/^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$/.test(raw)) return undefined;
  const n = Number(raw);
  return Number.isFinite(n) ? n : undefined;
}

function rangeOf(el: XElement): Range | undefined {
  const r: Range = {};
  const low = numericQuantity(child(el, 'low'));
  const high = numericQuantity(child(el, 'high'));
  if (low) r.low = low;
  if (high) r.high = high;
  return r.low || r.high ? r : undefined;
}

/**
 * An interval with one bound is a result beyond a limit ("< 1.0 mg/L"): a Quantity with its
 * comparator (R4 Quantity.comparator), a bound being inclusive unless it says `inclusive="false"`
 * (Data Types R1 IVL). A Range with one end would lose which side the value lies.
 */
function boundOf(el: XElement, r: Range): Quantity | undefined {
  const [q, side] = r.high ? [r.high, child(el, 'high')] : [r.low, child(el, 'low')];
  if (!q) return undefined;
  const inclusive = attr(side, 'inclusive')?.trim() !== 'false';
  const comparator: Quantity['comparator'] = r.high ? (inclusive ? '<=' : '<') : (inclusive ? '>=' : '>');
  return { ...q, comparator };
}

/** PQ, or a bare number (INT, REAL) as a unit-less quantity. */
function numericQuantity(el: XElement | undefined): Quantity | undefined {
  const q = finiteQuantity(el);
  if (q) return q;
  const n = numberOf(el);
  return n === undefined || isNull(el) ? undefined : { value: n };
}

export function ratioOf(el: XElement | undefined): Ratio | undefined {
  if (!el) return undefined;
  const r: Ratio = {};
  const numerator = numericQuantity(child(el, 'numerator'));
  const denominator = numericQuantity(child(el, 'denominator'));
  if (numerator) r.numerator = numerator;
  if (denominator) r.denominator = denominator;
  return r.numerator || r.denominator ? r : undefined;
}

type ValueFields = Pick<Observation, 'valueQuantity' | 'valueCodeableConcept' | 'valueString' | 'valueBoolean' | 'valueInteger' | 'valueRange' | 'valueRatio' | 'valueDateTime' | 'valuePeriod' | 'dataAbsentReason'>;

/** The type of a value without xsi:type, guessed from its shape. */
function guessType(v: XElement): string {
  if (attr(v, 'code') || attr(v, 'codeSystem') || child(v, 'originalText')) return 'CD';
  if (child(v, 'numerator')) return 'RTO';
  if (child(v, 'low') || child(v, 'high')) return 'IVL_PQ';
  if (attr(v, 'value') !== undefined) return attr(v, 'unit') ? 'PQ' : 'REAL';
  return 'ST';
}

/**
 * CDA ANY value by xsi:type → Observation.value[x] (C-CDA on FHIR data type map): PQ → Quantity,
 * CD/CE/CV/CO/CS → CodeableConcept, ST/SC/ED (text) → string, BL → boolean, INT → integer,
 * REAL → unit-less Quantity, IVL_PQ → Range, TS → dateTime, IVL_TS → Period, RTO → Ratio.
 * A nullFlavor becomes dataAbsentReason (obs-6); an unreadable value too, with code `error`.
 */
export function observationValue(ctx: ConversionContext, v: XElement, sectionCode: string | undefined): ValueFields {
  const nf = attr(v, 'nullFlavor');
  const type = xsiType(v) ?? guessType(v);
  const out: ValueFields = {};
  switch (type) {
    case 'PQ': {
      const q = finiteQuantity(v);
      if (q) out.valueQuantity = q;
      break;
    }
    case 'REAL': {
      const n = nf ? undefined : numberOf(v);
      if (n !== undefined) out.valueQuantity = { value: n };
      break;
    }
    case 'INT': {
      const raw = attr(v, 'value')?.trim();
      if (!nf && raw && /^[+-]?\d{1,10}$/.test(raw) && Math.abs(Number(raw)) <= 2147483647) out.valueInteger = Number(raw);
      break;
    }
    case 'BL': {
      const raw = attr(v, 'value')?.trim();
      if (!nf && (raw === 'true' || raw === 'false')) out.valueBoolean = raw === 'true';
      break;
    }
    case 'CD': case 'CE': case 'CV': case 'CO': case 'CS': {
      // A coded value with a nullFlavor may still carry the text it could not code (nullFlavor OTH).
      const cc = concept(ctx, v);
      if (cc) out.valueCodeableConcept = cc;
      break;
    }
    case 'ST': case 'SC': {
      const t = nf ? undefined : text(v);
      if (t) out.valueString = t;
      break;
    }
    case 'ED': {
      if (attr(v, 'representation') === 'B64' || attr(v, 'mediaType')) {
        ctx.report.info('ENTRY_NOT_MAPPED', `Encapsulated data (ED ${attr(v, 'mediaType') ?? ''}) as observation value in section ${sectionCode ?? '(no LOINC code)'}: R4 Observation has no attachment value.`, v);
        return out;
      }
      const t = nf ? undefined : text(v);
      if (t) out.valueString = t;
      break;
    }
    case 'TS': {
      const d = dateTime(ctx, v);
      if (d) out.valueDateTime = d;
      break;
    }
    case 'IVL_TS': {
      const p = period(ctx, v);
      if (p) out.valuePeriod = p;
      break;
    }
    case 'IVL_PQ': case 'IVL_INT': case 'IVL_REAL': {
      const r = rangeOf(v);
      const bound = r && !(r.low && r.high) ? boundOf(v, r) : undefined;
      if (bound) out.valueQuantity = bound;
      else if (r) out.valueRange = r;
      break;
    }
    case 'RTO': case 'RTO_PQ_PQ': case 'RTO_INT_INT': case 'RTO_MO_PQ': case 'RTO_QTY_QTY': {
      const r = ratioOf(v);
      if (r) out.valueRatio = r;
      break;
    }
    default:
      ctx.report.info('ENTRY_NOT_MAPPED', `Observation value of type ${type} in section ${sectionCode ?? '(no LOINC code)'}.`, v);
      return out;
  }
  if (Object.keys(out).length === 0) {
    if (nf) {
      out.dataAbsentReason = absentConcept(nf);
    } else {
      out.dataAbsentReason = { coding: [{ system: DAR_SYSTEM, code: 'error' }] };
      ctx.report.warn('ENTRY_INCOMPLETE', `Observation value (${type}) could not be read; dataAbsentReason error.`, v);
    }
  }
  return out;
}

function referenceRanges(ctx: ConversionContext, obs: XElement): ObservationReferenceRange[] {
  const out: ObservationReferenceRange[] = [];
  for (const rr of children(obs, 'referenceRange')) {
    const range = child(rr, 'observationRange');
    if (!range) continue;
    const r: ObservationReferenceRange = {};
    const v = child(range, 'value');
    const ivl = v ? rangeOf(v) : undefined;
    if (ivl?.low) r.low = ivl.low;
    if (ivl?.high) r.high = ivl.high;
    const t = entryText(ctx, range) ?? (v && (xsiType(v) === 'ST') ? text(v) : undefined);
    if (t) r.text = t;
    // The range's interpretation N marks the normal range (referencerange-meaning "normal").
    if (attr(child(range, 'interpretationCode'), 'code') === 'N') {
      r.type = { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/referencerange-meaning', code: 'normal', display: 'Normal Range' }] };
    }
    if (r.low || r.high || r.text) out.push(r); // obs-3
  }
  return out;
}

/**
 * One CDA observation (mood EVN) → Observation, plus the Observations of the observations it
 * nests (entryRelationship), linked by hasMember (derivedFrom for SPRT). Returns all references,
 * the observation's own first.
 */
export function mapObservation(ctx: ConversionContext, obs: XElement, opts: ObservationOptions): Ref[] {
  if (mood(obs) !== 'EVN') {
    notMapped(ctx, `Planned ${describe(obs)}`, opts.sectionCode, obs);
    return [];
  }
  // negationInd: the observation was NOT made, or its finding is absent. R4 Observation has no
  // negation; one shape says plainly what is absent — a problem entry naming its problem in a coded
  // value ("Spina bifida: non" in a child health certificate's examination): it becomes the
  // observation of that finding with the value Absent (R4 Observation notes, absence of a finding).
  // Any other negated observation is reported: flipping its value would be a guess.
  const absent = isNegated(obs) ? absentFinding(ctx, obs) : undefined;
  if (isNegated(obs) && !absent) {
    notMapped(ctx, `Negated ${describe(obs)} (negationInd="true")`, opts.sectionCode, obs);
    return [];
  }
  const narrative = entryName(ctx, obs);
  const o: Observation = {
    resourceType: 'Observation',
    status: observationStatus(ctx, obs),
    code: absent ?? requiredConcept(ctx, child(obs, 'code'), narrative, 'Observation code', obs),
  };
  if (absent && !absent.text && narrative) absent.text = narrative;
  const ids = identifiers(ctx, obs);
  if (ids.length) o.identifier = ids;
  if (opts.category) o.category = [opts.category];
  if (ctx.patient) o.subject = ctx.patient;
  const focus = focusOf(ctx, obs);
  if (focus) o.focus = focus;
  if (ctx.encounter) o.encounter = ctx.encounter;
  const eff = effective(ctx, child(obs, 'effectiveTime'));
  const time = eff.dateTime || eff.period ? eff : effective(ctx, opts.inheritedEffective);
  if (time.dateTime) o.effectiveDateTime = time.dateTime;
  else if (time.period) o.effectivePeriod = time.period;
  const by = author(ctx, obs, PERFORMER_TYPES);
  const who = [...performers(ctx, obs, PERFORMER_TYPES), ...(by.ref ? [by.ref] : [])];
  const unique = who.filter((r, i) => who.findIndex((x) => x.reference === r.reference) === i);
  if (unique.length) o.performer = unique;
  const issued = by.time ? toInstant(by.time) : undefined;
  if (issued) o.issued = issued;
  const device = analysisDevice(ctx, obs);
  if (device) o.device = device;
  const sources = children(obs, 'reference').map((r) => externalDocumentRef(ctx, child(r, 'externalDocument'))).filter((r) => r !== undefined);
  if (sources.length) o.derivedFrom = sources;

  const values = children(obs, 'value');
  if (values.length > 1) {
    ctx.report.info('ENTRY_NOT_MAPPED', `Observation with ${values.length} values in section ${opts.sectionCode ?? '(no LOINC code)'}: only the first is mapped.`, obs);
  }
  if (absent) o.valueCodeableConcept = { coding: [ABSENT] };
  else if (values[0]) Object.assign(o, observationValue(ctx, values[0], opts.sectionCode));
  // A result table's originalText often points at the result's own cell ("4.89 mmol/L"): that
  // restates the value, it does not name the test — the coding's display does.
  if (o.code.coding?.length && o.code.text !== undefined && o.valueQuantity && restatesQuantity(o.code.text, o.valueQuantity)) delete o.code.text;

  const interpretation = children(obs, 'interpretationCode').map((c) => concept(ctx, c)).filter((c) => c !== undefined);
  if (interpretation.length) o.interpretation = interpretation;
  const method = children(obs, 'methodCode').map((c) => concept(ctx, c)).find((c) => c !== undefined);
  if (method) o.method = method;
  const site = children(obs, 'targetSiteCode').map((c) => concept(ctx, c)).find((c) => c !== undefined);
  if (site) o.bodySite = site;
  const ranges = referenceRanges(ctx, obs);
  if (ranges.length) o.referenceRange = ranges;

  const ref = ctx.add(o, pathOf(obs));
  stayMode(ctx, obs, o);
  const nested = mapRelationships(ctx, obs, o, opts);
  return [ref, ...nested];
}

/** CI-SIS FR-Modalite-entree / FR-Modalite-sortie (TA_ASIP ORG-070, ORG-074): how the stay began and ended. */
const STAY_MODES: Readonly<Record<string, 'admitSource' | 'dischargeDisposition'>> = { 'ORG-070': 'admitSource', 'ORG-074': 'dischargeDisposition' };

/**
 * The admission or discharge mode of a discharge letter, an Observation, is also the document
 * Encounter's hospitalization.admitSource / dischargeDisposition, where R4 expects it (the header's
 * dischargeDispositionCode, when given, stays).
 */
function stayMode(ctx: ConversionContext, obs: XElement, o: Observation): void {
  const code = child(obs, 'code');
  const field = attr(code, 'codeSystem') === '1.2.250.1.213.1.1.4.322' ? own(STAY_MODES, attr(code, 'code') ?? '') : undefined;
  const encounter = ctx.resolve(ctx.encounter);
  if (!field || !o.valueCodeableConcept || encounter?.resourceType !== 'Encounter' || encounter.hospitalization?.[field]) return;
  encounter.hospitalization = { ...encounter.hospitalization, [field]: o.valueCodeableConcept };
}

/** "4.89 mmol/L", "< 0,5", "12 %": the quantity's number, then at most its unit (or one unit-like word). */
function restatesQuantity(text: string, q: Quantity): boolean {
  const m = /^\s*(?:[<>≤≥]=?\s*)?([+-]?\d+(?:[.,]\d+)?)\s*(\S*)\s*$/.exec(text);
  return m !== null && Number((m[1] as string).replace(',', '.')) === q.value && (m[2] === '' || !/^\d/.test(m[2] as string));
}

/** SNOMED CT 2667000 |Absent (qualifier value)|: the value of an observation of an absent finding. */
const ABSENT = { system: 'http://snomed.info/sct', code: '2667000', display: 'Absent' } as const;
/** IHE PCC Problem Entry, CI-SIS FR-Probleme. */
const PROBLEM_ENTRY_TEMPLATES = ['1.3.6.1.4.1.19376.1.5.3.1.4.5', '1.2.250.1.213.1.1.3.37'];

/** The finding a negated problem entry says is absent: its coded value; undefined for any other negated observation. */
function absentFinding(ctx: ConversionContext, obs: XElement): CodeableConcept | undefined {
  if (!templates(obs).some((t) => PROBLEM_ENTRY_TEMPLATES.includes(t))) return undefined;
  const value = child(obs, 'value');
  return value && xsiType(value) !== 'ST' ? concept(ctx, value) : undefined;
}

function mapRelationships(ctx: ConversionContext, obs: XElement, o: Observation, opts: ObservationOptions): Ref[] {
  const out: Ref[] = [];
  for (const rel of children(obs, 'entryRelationship')) {
    const st = statementOf(rel);
    if (!st) continue;
    const note = commentText(ctx, st);
    if (note) {
      (o.note ??= []).push({ text: note });
      continue;
    }
    let refs: Ref[] = [];
    if (st.name === 'observation') refs = mapObservation(ctx, st, { sectionCode: opts.sectionCode, ...(opts.category ? { category: opts.category } : {}) });
    else if (st.name === 'organizer') refs = mapOrganizer(ctx, st, { sectionCode: opts.sectionCode, ...(opts.category ? { category: opts.category } : {}) });
    else if (st.name === 'observationMedia') continue; // a Binary of the media module (the narrative's renderMultiMedia shows it); R4 Observation has no Attachment value
    else {
      notMapped(ctx, `${describe(st)} related to an observation (entryRelationship ${attr(rel, 'typeCode') ?? ''})`, opts.sectionCode, st);
      continue;
    }
    const first = refs[0];
    if (!first) continue;
    if (attr(rel, 'typeCode') === 'SPRT') (o.derivedFrom ??= []).push(first);
    else (o.hasMember ??= []).push(first);
    out.push(...refs);
  }
  return out;
}

/** Observation.code.text of an isolate panel, whose CDA organizer carries no code. */
const ISOLATE_TEXT = 'Micro-organisme identifié';

/**
 * The microorganism of an isolate organizer (IHE PaLM Laboratory Isolate Organizer
 * 1.3.6.1.4.1.19376.1.3.1.5, CI-SIS FR-Isolat-microbiologique): the code of its
 * specimen/specimenRole/specimenPlayingEntity (classCode MIC), e.g. SNOMED CT 112283007 Escherichia coli.
 */
function isolateOrganism(ctx: ConversionContext, org: XElement): CodeableConcept | undefined {
  const entity = child(child(child(org, 'specimen'), 'specimenRole'), 'specimenPlayingEntity');
  return entity ? concept(ctx, child(entity, 'code')) : undefined;
}

/**
 * participant DEV (IHE PaLM, CI-SIS DEP-CCU: the detection kit or analyser, `playingDevice/code`)
 * → a Device of that type, one per code in the document, as Observation.device.
 */
function analysisDevice(ctx: ConversionContext, obs: XElement): Ref | undefined {
  const part = children(obs, 'participant').find((p) => attr(p, 'typeCode') === 'DEV');
  const type = concept(ctx, child(child(child(part, 'participantRole'), 'playingDevice'), 'code'));
  if (!type) return undefined;
  const key = `analysis-device:${type.coding?.[0]?.system ?? ''}|${type.coding?.[0]?.code ?? type.text ?? ''}`;
  const known = ctx.get('Device', key);
  return known ? { reference: known.fullUrl } : ctx.add({ resourceType: 'Device', type }, key);
}

/**
 * reference/externalDocument (CDA R2: a document the observation refers to — the DLU's advance
 * directives, kept elsewhere) → a DocumentReference to it (its id; its URL from text/reference) as
 * Observation.derivedFrom. Without an id or a URL there is nothing to point at.
 */
function externalDocumentRef(ctx: ConversionContext, doc: XElement | undefined): Ref | undefined {
  if (!doc) return undefined;
  const ids = identifiers(ctx, doc);
  const url = attr(child(child(doc, 'text'), 'reference'), 'value')?.trim();
  const located = url && /^[a-z][a-z0-9+.-]*:/i.test(url) ? url : undefined;
  if (!ids.length && !located) return undefined;
  const ref: DocumentReference = { resourceType: 'DocumentReference', status: 'current', content: [{ attachment: located ? { url: located } : { title: ids[0]?.value ?? '' } }] };
  if (ids.length) ref.identifier = ids;
  const type = concept(ctx, child(doc, 'code'));
  if (type) ref.type = type;
  if (ctx.patient) ref.subject = ctx.patient;
  return ctx.add(ref, pathOf(doc));
}

/**
 * An organizer (battery, vital-signs cluster) → a panel Observation with one member per
 * component observation (nested organizers become nested panels). Returns the panel first.
 */
export function mapOrganizer(ctx: ConversionContext, org: XElement, opts: ObservationOptions): Ref[] {
  if (mood(org) !== 'EVN') {
    notMapped(ctx, `Planned ${describe(org)}`, opts.sectionCode, org);
    return [];
  }
  const organism = isolateOrganism(ctx, org);
  const codeEl = child(org, 'code');
  const panel: Observation = {
    resourceType: 'Observation',
    status: observationStatus(ctx, org),
    // An isolate organizer has no code of its own (IHE PaLM): what it observes is the microorganism.
    code: organism && (!codeEl || isNull(codeEl)) ? { text: ISOLATE_TEXT } : requiredConcept(ctx, codeEl, entryText(ctx, org), 'Organizer code', org),
  };
  if (organism) panel.valueCodeableConcept = organism;
  const ids = identifiers(ctx, org);
  if (ids.length) panel.identifier = ids;
  if (opts.category) panel.category = [opts.category];
  if (ctx.patient) panel.subject = ctx.patient;
  const focus = focusOf(ctx, org);
  if (focus) panel.focus = focus;
  if (ctx.encounter) panel.encounter = ctx.encounter;
  const eff = effective(ctx, child(org, 'effectiveTime'));
  if (eff.dateTime) panel.effectiveDateTime = eff.dateTime;
  else if (eff.period) panel.effectivePeriod = eff.period;
  const who = [...performers(ctx, org, PERFORMER_TYPES)];
  const by = author(ctx, org, PERFORMER_TYPES);
  if (by.ref && !who.some((r) => r.reference === by.ref?.reference)) who.push(by.ref);
  if (who.length) panel.performer = who;
  // The panel is emitted before its members so that it comes first in the Bundle.
  const ref = ctx.add(panel, pathOf(org));
  const out: Ref[] = [ref];
  const memberOpts: ObservationOptions = { ...opts, inheritedEffective: child(org, 'effectiveTime') ?? opts.inheritedEffective };
  for (const comp of children(org, 'component')) {
    const st = statementOf(comp);
    if (!st) continue;
    const note = commentText(ctx, st);
    if (note) {
      (panel.note ??= []).push({ text: note }); // a comment on the battery (FR-Commentaire-ER)
      continue;
    }
    let refs: Ref[] = [];
    if (st.name === 'observation') refs = mapObservation(ctx, st, memberOpts);
    else if (st.name === 'organizer') refs = mapOrganizer(ctx, st, memberOpts);
    else if (st.name === 'observationMedia') continue; // already a Binary (media module)
    else notMapped(ctx, `${describe(st)} as organizer component`, opts.sectionCode, st);
    const first = refs[0];
    if (first) (panel.hasMember ??= []).push(first);
    out.push(...refs);
  }
  return out;
}

/**
 * A results act (CR-BIO "FR-Resultats-examens-de-biologie-medicale", IHE XD-LAB Laboratory Report
 * Data Processing Entry): a container; its result observations and batteries are mapped, the act
 * itself carries nothing R4 Observation could hold (DiagnosticReport is not emitted). A comment on
 * the act goes to its result when it has one; with several, no one resource holds it: reported.
 * Its specimen collection becomes a Specimen, which every Observation of the act names when it is
 * the act's only one (with several, which result comes from which is not said: they are listed
 * in the section instead).
 */
export function mapResultsAct(ctx: ConversionContext, act: XElement, opts: ObservationOptions): Ref[] {
  const out: Ref[] = [];
  const results: Ref[] = [];
  const specimens: Ref[] = [];
  const comments: Array<{ el: XElement; text: string }> = [];
  for (const rel of children(act, 'entryRelationship')) {
    const st = statementOf(rel);
    if (!st) continue;
    const refs = st.name === 'observation' ? mapObservation(ctx, st, opts) : st.name === 'organizer' ? mapOrganizer(ctx, st, opts) : undefined;
    const note = refs ? undefined : commentText(ctx, st);
    if (refs?.[0]) results.push(refs[0]);
    if (refs) out.push(...refs);
    else if (note) comments.push({ el: st, text: note });
    else if (isSpecimenCollection(st)) specimens.push(mapSpecimen(ctx, st));
    else notMapped(ctx, `${describe(st)} inside a results act`, opts.sectionCode, st);
  }
  if (!out.length) notMapped(ctx, `${describe(act)} without result observations`, opts.sectionCode, act);
  const [specimen] = specimens;
  if (specimens.length === 1 && specimen) {
    for (const ref of out) {
      const r = ctx.resolve(ref);
      if (r?.resourceType === 'Observation' && !r.specimen) r.specimen = specimen;
    }
  }
  if (!results.length) {
    for (const c of comments) notMapped(ctx, 'Comment on a results act without results', opts.sectionCode, c.el);
    return [...out, ...specimens];
  }
  // The act is the report of its results (one chapter of a CR-BIO): a DiagnosticReport, listed first.
  const report = mapResultsReport(ctx, act, {
    results, specimens, comments: comments.map((c) => c.text), sectionCode: opts.sectionCode, laboratory: opts.category?.coding?.[0]?.code === 'laboratory',
  });
  return [report, ...out, ...specimens];
}

/**
 * True when an act holds results: observations or organizers, beside acts (comments) and
 * procedures — IHE XD-LAB's Specimen Collection (1.3.6.1.4.1.19376.1.3.1.2), which the ANS
 * microbiology reports put before the batteries. A concern act holds none of these shapes.
 */
export function isResultsAct(act: XElement): boolean {
  const rels = children(act, 'entryRelationship').map(statementOf).filter((s) => s !== undefined);
  return rels.length > 0 && rels.some((s) => s.name === 'observation' || s.name === 'organizer') &&
    rels.every((s) => s.name === 'observation' || s.name === 'organizer' || s.name === 'act' || s.name === 'procedure');
}
