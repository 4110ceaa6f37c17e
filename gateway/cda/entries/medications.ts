/**
 * Treatments → FHIR R4 MedicationStatement (sections 10160-0 "Traitements", 10183-2 "Traitements à
 * la sortie", 18610-6 "Traitements administrés", 42346-7 "Traitements à l'admission"; CI-SIS
 * FR-Traitement 1.2.250.1.213.1.1.3.42 = IHE PCC Medications 1.3.6.1.4.1.19376.1.5.3.1.4.7, with
 * FR-Produit-de-sante in consumable/manufacturedProduct).
 *
 * MedicationStatement (not MedicationAdministration) for every treatment section: these entries
 * state that a treatment was or is to be taken over a period, with a frequency — not one
 * administration event. Both moods the CI-SIS allows are read: EVN (taken) and INT (to take).
 *
 * R4: status 1..1 (required binding), medication[x] 1..1 → medicationCodeableConcept from the
 * product code, else its name; when neither is given, the concept carries data-absent-reason.
 * Dosage: doseQuantity (IVL_PQ with equal bounds is one dose), rateQuantity, maxDoseQuantity
 * (RTO → maxDosePerPeriod), routeCode, approachSiteCode, the first effectiveTime (IVL_TS →
 * effective[x]), PIVL_TS → timing.repeat frequency/period, EIVL_TS → timing.repeat.when, SXPR_TS
 * (an interval intersected with those) → the same with timing.repeat.boundsPeriod,
 * precondition → asNeeded, split doses (entryRelationship COMP substanceAdministration) → one
 * Dosage each with a sequence.
 */
import type { CodeableConcept, Dosage, DosageDoseAndRate, MedicationStatement, Period, Quantity, Range, TimingRepeat } from '@medplum/fhirtypes';
import type { ConversionContext, Ref } from '../context.js';
import { concept, isAnswer, isNull } from '../datatypes.js';
import { dateTime, effective, period } from '../time.js';
import { attr, child, children, pathOf, text, type XElement } from '../xml.js';
import {
  author, commentText, describe, entryText, identifiers, isNegated, mood, notMapped, requiredConcept, statementOf,
  statusOf, templates, xsiType,
} from './common.js';
import { finiteQuantity, ratioOf } from './observations.js';
import { own } from '../../util/own.js';

const SOURCES = ['Patient', 'Practitioner', 'PractitionerRole', 'RelatedPerson', 'Organization'] as const;
const PLANNED = new Set(['INT', 'RQO', 'PRMS', 'PRP', 'ARQ', 'APT']);

/** CDA ActStatus → MedicationStatement.status. */
const STATUS: Readonly<Record<string, MedicationStatement['status']>> = {
  active: 'active',
  completed: 'completed',
  aborted: 'stopped',
  cancelled: 'not-taken',
  suspended: 'on-hold',
  held: 'on-hold',
  nullified: 'entered-in-error',
  new: 'intended',
};

type PeriodUnit = NonNullable<TimingRepeat['periodUnit']>;
/** The UCUM units FHIR Timing takes (units-of-time). */
const TIMING_UNITS: ReadonlySet<string> = new Set<PeriodUnit>(['s', 'min', 'h', 'd', 'wk', 'mo', 'a']);
/**
 * French spellings seen instead of UCUM in PIVL_TS periods, the ANS examples included (DLU-EHPAD-FLUDR
 * writes `unit="J"`), and the unit they mean. Upper-case UCUM (`D`, `H`) is handled by lower-casing.
 */
const FRENCH_TIME_UNITS: Readonly<Record<string, PeriodUnit>> = {
  j: 'd', jour: 'd', jours: 'd', sem: 'wk', semaine: 'wk', semaines: 'wk', mois: 'mo', an: 'a', ans: 'a', 'année': 'a', 'années': 'a',
  heure: 'h', heures: 'h', mn: 'min',
};

/** A PIVL_TS period unit as FHIR Timing's; a non-UCUM spelling whose meaning is plain is read and reported. */
function timingUnit(ctx: ConversionContext, unit: string, el: XElement): PeriodUnit | undefined {
  if (TIMING_UNITS.has(unit)) return unit as PeriodUnit;
  const lower = unit.toLowerCase();
  const meant = TIMING_UNITS.has(lower) ? (lower as PeriodUnit) : own(FRENCH_TIME_UNITS, lower);
  if (meant) ctx.report.info('UNIT_REPAIRED', `Time unit "${unit}" read as UCUM "${meant}".`, el);
  return meant;
}
const WHEN = new Set([
  'MORN', 'MORN.early', 'MORN.late', 'NOON', 'AFT', 'AFT.early', 'AFT.late', 'EVE', 'EVE.early', 'EVE.late', 'NIGHT',
  'PHS', 'HS', 'WAKE', 'C', 'CM', 'CD', 'CV', 'AC', 'ACM', 'ACD', 'ACV', 'PC', 'PCM', 'PCD', 'PCV',
]);

/** The product of a substanceAdministration: manufacturedMaterial (or the older manufacturedLabeledDrug). */
export function productOf(sa: XElement): XElement | undefined {
  const mp = child(child(sa, 'consumable'), 'manufacturedProduct');
  return child(mp, 'manufacturedMaterial') ?? child(mp, 'manufacturedLabeledDrug');
}

/**
 * The product as a CodeableConcept (code with translations and originalText, else the name), or
 * the data-absent-reason extension when the CDA names nothing (reported).
 */
export function productConcept(ctx: ConversionContext, sa: XElement, what: string): CodeableConcept {
  const material = productOf(sa);
  const nameEl = child(material, 'name');
  const name = isNull(nameEl) ? undefined : text(nameEl);
  const codeEl = child(material, 'code');
  const cc = concept(ctx, codeEl);
  if (cc && !cc.text && name) cc.text = name;
  if (cc) return cc;
  // Neither code nor name: nullFlavor of the code, or of the name, tells why.
  return requiredConcept(ctx, codeEl ?? (isNull(nameEl) ? nameEl : undefined), name, what, material ?? sa);
}

function quantityOrRange(el: XElement | undefined): { quantity?: Quantity; range?: Range } {
  if (!el || isNull(el)) return {};
  const q = finiteQuantity(el);
  if (q) return { quantity: q };
  const low = finiteQuantity(child(el, 'low'));
  const high = finiteQuantity(child(el, 'high'));
  if (low && high && low.value === high.value && low.unit === high.unit) return { quantity: low };
  const r: Range = {};
  if (low) r.low = low;
  if (high) r.high = high;
  return r.low || r.high ? { range: r } : {};
}

/** The effectiveTime that states the treatment's duration (IVL_TS or TS: the first one, per CI-SIS). */
function durationTime(sa: XElement): XElement | undefined {
  const first = children(sa, 'effectiveTime')[0];
  const type = xsiType(first);
  return first && (!type || type === 'IVL_TS' || type === 'TS') && !child(first, 'period') && !child(first, 'event') ? first : undefined;
}

/**
 * PIVL_TS / EIVL_TS effectiveTimes → Timing.repeat, and SXPR_TS (CI-SIS "toutes les 8 h pendant
 * 2 jours": an IVL_TS intersected with PIVL_TS / EIVL_TS) → the same plus boundsPeriod; what
 * cannot be read is reported.
 */
function repeatOf(ctx: ConversionContext, sa: XElement, sectionCode: string | undefined): TimingRepeat | undefined {
  const repeat: TimingRepeat = {};
  const duration = durationTime(sa);
  for (const et of children(sa, 'effectiveTime')) {
    if (et === duration || isNull(et)) continue;
    const type = timingType(et);
    if (!type) continue; // an empty <effectiveTime operator="A"/> says nothing
    if (type === 'SXPR_TS') {
      const comps = children(et, 'comp').map((comp) => ({ comp, type: timingType(comp) }));
      // Data Types R1 §2.24 SXPR: each component after the first combines with the set so far by
      // its operator; only intersections ("A") describe one Timing.
      if (!comps.length || comps.slice(1).some(({ comp }) => (attr(comp, 'operator') ?? 'I') !== 'A') || comps.some(({ type }) => !type)) {
        notMapped(ctx, 'Administration timing (SXPR_TS) other than an interval intersected with periods or events', sectionCode, et);
        continue;
      }
      for (const { comp, type: compType } of comps) {
        if (compType === 'IVL_TS') {
          const bounds = boundsOf(ctx, comp, sectionCode);
          if (bounds) repeat.boundsPeriod = bounds;
        } else {
          readRepeat(ctx, comp, compType, repeat, sectionCode);
        }
      }
      continue;
    }
    readRepeat(ctx, et, type, repeat, sectionCode);
  }
  return Object.keys(repeat).length ? repeat : undefined;
}

/**
 * A later effectiveTime that is a point in time, not a timing (CI-SIS child health certificate:
 * `<effectiveTime operator="A" value="…"/>`, "Date de l'injection"): the one administration's
 * date, for a treatment whose duration says nothing.
 */
function administrationInstant(ctx: ConversionContext, sa: XElement): string | undefined {
  const point = children(sa, 'effectiveTime').slice(1).find((et) => !timingType(et) && attr(et, 'value'));
  return point && dateTime(ctx, point);
}

/** Whether a FHIR date/dateTime falls after another (an end of year, month or day precision lasts to its end). */
function after(end: string, reference: string | undefined): boolean {
  if (!reference) return false;
  const last = end.length === 4 ? `${end}-12-31T23:59:59Z` : end.length === 7 ? `${end}-28T23:59:59Z` : end.length === 10 ? `${end}T23:59:59Z` : end;
  const t = Date.parse(last);
  const r = Date.parse(reference);
  return Number.isFinite(t) && Number.isFinite(r) && t > r;
}

/** The GTS type of an effectiveTime or SXPR_TS component: xsi:type, else guessed from its children. */
function timingType(et: XElement): string | undefined {
  return xsiType(et) ?? (child(et, 'period') ? 'PIVL_TS' : child(et, 'event') ? 'EIVL_TS' : child(et, 'low') || child(et, 'high') ? 'IVL_TS' : undefined);
}

/** Days per UCUM unit of an interval width the bounds are computed from (fixed lengths only). */
const WIDTH_UNIT_DAYS: Readonly<Record<string, number>> = { d: 1, wk: 7 };

/**
 * An SXPR_TS interval → Timing.repeat.boundsPeriod: low and high, or low and a width in days or
 * weeks (a day-precision low: the interval [low, low + width) ends the day before, inclusive).
 */
function boundsOf(ctx: ConversionContext, ivl: XElement, sectionCode: string | undefined): Period | undefined {
  const bounds = period(ctx, ivl);
  const width = child(ivl, 'width');
  if (!bounds?.start || bounds.end || !width) return bounds;
  const days = Number(attr(width, 'value')) * (own(WIDTH_UNIT_DAYS, attr(width, 'unit')?.trim()) ?? NaN);
  if (/^\d{4}-\d{2}-\d{2}$/.test(bounds.start) && Number.isInteger(days) && days >= 1 && days <= 366 * 100) {
    const end = new Date(Date.parse(`${bounds.start}T00:00:00Z`) + (days - 1) * 86_400_000);
    bounds.end = end.toISOString().slice(0, 10);
  } else {
    notMapped(ctx, `Administration interval width (${attr(width, 'value') ?? '?'} ${attr(width, 'unit') ?? ''}) from a start of that precision`, sectionCode, width);
  }
  return bounds;
}

/** One PIVL_TS or EIVL_TS into Timing.repeat (reported when FHIR Timing cannot hold it). */
function readRepeat(ctx: ConversionContext, et: XElement, type: string | undefined, repeat: TimingRepeat, sectionCode: string | undefined): void {
  if (type === 'PIVL_TS') {
    const p = child(et, 'period');
    const value = Number(attr(p, 'value'));
    const unit = attr(p, 'unit')?.trim() ?? '';
    const freq = child(et, 'frequency');
    if (freq) {
      // PIVL_TS frequency form (Data Types R2): numerator times per denominator period.
      const n = Number(attr(child(freq, 'numerator'), 'value'));
      const denominator = child(freq, 'denominator');
      const d = Number(attr(denominator, 'value'));
      const du = Number.isInteger(n) && n > 0 && n < 2 ** 31 && Number.isFinite(d) && d > 0 ? timingUnit(ctx, attr(denominator, 'unit')?.trim() ?? '', denominator ?? et) : undefined;
      if (du) {
        repeat.frequency = n;
        repeat.period = d;
        repeat.periodUnit = du;
        return;
      }
    } else {
      const pu = Number.isFinite(value) && value > 0 ? timingUnit(ctx, unit, p ?? et) : undefined;
      if (pu) {
        repeat.frequency = 1;
        repeat.period = value;
        repeat.periodUnit = pu;
        return;
      }
    }
    notMapped(ctx, 'Administration frequency (PIVL_TS) with a period or unit FHIR Timing cannot hold', sectionCode, et);
  } else if (type === 'EIVL_TS') {
    const code = attr(child(et, 'event'), 'code')?.trim();
    if (code && WHEN.has(code)) {
      (repeat.when ??= []).push(code as NonNullable<TimingRepeat['when']>[number]);
      return;
    }
    notMapped(ctx, `Administration event (EIVL_TS ${code ?? 'without code'})`, sectionCode, et);
  } else {
    notMapped(ctx, `Administration timing of type ${type ?? 'unknown'}`, sectionCode, et);
  }
}

/** One Dosage from a substanceAdministration (the statement itself or a split-dose part). */
function dosageOf(ctx: ConversionContext, sa: XElement, sectionCode: string | undefined): Dosage | undefined {
  const d: Dosage = {};
  // The statement's narrative is its dosage line, unless it points to a checklist answer ("Oui").
  const t = entryText(ctx, sa);
  if (t && !isAnswer(t)) d.text = t;
  const repeat = repeatOf(ctx, sa, sectionCode);
  if (repeat) d.timing = { repeat };
  const precondition = child(child(sa, 'precondition'), 'criterion');
  if (precondition) {
    const reason = concept(ctx, child(precondition, 'value')) ?? (entryText(ctx, precondition) ? { text: entryText(ctx, precondition) } : undefined);
    if (reason) d.asNeededCodeableConcept = reason;
    else d.asNeededBoolean = true;
  }
  const site = concept(ctx, child(sa, 'approachSiteCode'));
  if (site) d.site = site;
  const route = concept(ctx, child(sa, 'routeCode'));
  if (route) d.route = route;
  const dose = quantityOrRange(child(sa, 'doseQuantity'));
  const rate = quantityOrRange(child(sa, 'rateQuantity'));
  const dr: DosageDoseAndRate = {};
  if (dose.quantity) dr.doseQuantity = dose.quantity;
  else if (dose.range) dr.doseRange = dose.range;
  if (rate.quantity) dr.rateQuantity = rate.quantity;
  else if (rate.range) dr.rateRange = rate.range;
  if (Object.keys(dr).length) d.doseAndRate = [dr];
  const maxEl = child(sa, 'maxDoseQuantity');
  const max = ratioOf(maxEl);
  // The period of a maximum dose is a time: "J" there is a day (ANS DLU), not UCUM's joule.
  const per = max?.denominator?.code;
  if (max?.denominator && per && !TIMING_UNITS.has(per)) {
    const meant = timingUnit(ctx, per, child(maxEl, 'denominator') ?? sa);
    if (meant) max.denominator = { ...max.denominator, unit: meant, system: 'http://unitsofmeasure.org', code: meant };
  }
  if (max) d.maxDosePerPeriod = max;
  return Object.keys(d).length ? d : undefined;
}

function statementStatus(ctx: ConversionContext, sa: XElement): MedicationStatement['status'] {
  if (isNegated(sa)) return 'not-taken';
  const code = statusOf(sa);
  // A prescription (moodCode INT…) "completed" is the prescribing done, not the treatment taken to
  // its end: a discharge prescription running past the document's date is still to be taken.
  if (code === 'completed' && PLANNED.has(mood(sa))) return 'intended';
  const s = own(STATUS, code);
  if (s) return s;
  if (PLANNED.has(mood(sa))) return 'intended';
  ctx.report.warn('ENTRY_INCOMPLETE', code ? `statusCode "${code}" is not an ActStatus; MedicationStatement.status unknown.` : 'No statusCode; MedicationStatement.status unknown.', sa);
  return 'unknown';
}

const INSTRUCTIONS = '1.3.6.1.4.1.19376.1.5.3.1.4.3';

export function mapMedicationStatement(ctx: ConversionContext, sa: XElement, sectionCode: string | undefined): Ref[] {
  const ms: MedicationStatement = {
    resourceType: 'MedicationStatement',
    status: statementStatus(ctx, sa),
    medicationCodeableConcept: productConcept(ctx, sa, 'Medication (manufacturedMaterial code and name)'),
    subject: ctx.patient ?? {},
  };
  const ids = identifiers(ctx, sa);
  if (ids.length) ms.identifier = ids;
  if (ctx.encounter) ms.context = ctx.encounter;
  const eff = effective(ctx, durationTime(sa));
  if (eff.dateTime) ms.effectiveDateTime = eff.dateTime;
  else if (eff.period) ms.effectivePeriod = eff.period;
  const by = author(ctx, sa, SOURCES);
  if (by.time) ms.dateAsserted = by.time;
  if (by.ref) ms.informationSource = by.ref;
  const dosages: Dosage[] = [];
  const main = dosageOf(ctx, sa, sectionCode);
  if (main) dosages.push(main);
  // Without an interval of its own, the treatment lasts as long as its timing's bounds (SXPR_TS).
  const bounds = main?.timing?.repeat?.boundsPeriod;
  if (bounds && !ms.effectiveDateTime && !ms.effectivePeriod) ms.effectivePeriod = bounds;
  const instant = administrationInstant(ctx, sa);
  if (instant && !ms.effectiveDateTime && !ms.effectivePeriod) ms.effectiveDateTime = instant;
  // IHE PCC writes "completed" on every recorded treatment (the statement is complete); one whose
  // period runs past the document's own date is still being taken when the document is written
  // (a discharge letter's treatments): R4 completed would say it was no longer taken.
  if (ms.status === 'completed' && ms.effectivePeriod?.end && after(ms.effectivePeriod.end, dateTime(ctx, child(ctx.document, 'effectiveTime')))) ms.status = 'active';

  for (const rel of children(sa, 'entryRelationship')) {
    const st = statementOf(rel);
    if (!st) continue;
    const typeCode = attr(rel, 'typeCode');
    const note = commentText(ctx, st);
    if (note) {
      (ms.note ??= []).push({ text: note });
    } else if (st.name === 'substanceAdministration' && typeCode === 'COMP') {
      // IHE PCC split / tapered dose (…4.7.1 sub-entries): one Dosage per part, in order.
      const part = dosageOf(ctx, st, sectionCode);
      if (part) dosages.push(part);
    } else if (st.name === 'act' && (templates(st).includes(INSTRUCTIONS) || attr(child(st, 'code'), 'code') === 'PINSTRUCT')) {
      const t = entryText(ctx, st);
      if (t && dosages[0]) dosages[0].patientInstruction = t;
      else if (t) dosages.push({ patientInstruction: t });
      else notMapped(ctx, 'Empty patient instructions', sectionCode, st);
    } else if (typeCode === 'RSON' && (st.name === 'observation' || st.name === 'act')) {
      const reason = concept(ctx, child(st, 'value')) ?? concept(ctx, child(st, 'code')) ?? (entryText(ctx, st) ? { text: entryText(ctx, st) } : undefined);
      if (reason) (ms.reasonCode ??= []).push(reason);
      else notMapped(ctx, 'Treatment reason without code or text', sectionCode, st);
    } else {
      notMapped(ctx, `${describe(st)} related to a treatment (entryRelationship ${typeCode ?? ''})`, sectionCode, st);
    }
  }
  if (dosages.length > 1) dosages.forEach((d, i) => { d.sequence = i + 1; });
  if (dosages.length) ms.dosage = dosages;
  return [ctx.add(ms, pathOf(sa))];
}
