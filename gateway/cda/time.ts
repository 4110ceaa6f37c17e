/**
 * CDA TS (HL7 v3 ISO 8601 basic form `YYYYMMDDHHMMSS.UUUU[+|-ZZzz]`) → FHIR date / dateTime / instant.
 *
 * FHIR R4 §2.24.0.1: a dateTime with hours SHALL carry seconds... and a zone; an instant needs both.
 * Repairs are made only when unambiguous and always reported: missing seconds (`:00`), short offsets
 * (`+100` → `+01:00`), a missing zone (the document's own zone, else Europe/Paris on that date).
 */
import type { Period } from '@medplum/fhirtypes';
import type { ConversionContext } from './context.js';
import { attr, child, type XElement } from './xml.js';

interface ParsedTs {
  date: string; // YYYY, YYYY-MM or YYYY-MM-DD
  time?: string; // HH:MM:SS[.fff]
  zone?: string; // +HH:MM
  repaired: string[];
}

const TS = /^(\d{4})(\d{2})?(\d{2})?(?:(\d{2})(\d{2})?(\d{2})?(\.\d{1,9})?)?(?:([+-])(\d{1,4}))?$/;

function parseTs(raw: string): ParsedTs | undefined {
  const m = TS.exec(raw.trim());
  if (!m) return undefined;
  const [, y, mo, d, h, mi, s, frac, sign, off] = m;
  const repaired: string[] = [];
  // Year 0000 does not exist (ISO 8601 proleptic years start at 1 here; FHIR's date pattern excludes it).
  if (+(y as string) === 0) return undefined;
  if (mo && (+mo < 1 || +mo > 12)) return undefined;
  if (d && (+d < 1 || +d > daysIn(+(y as string), +(mo as string)))) return undefined;
  if (!mo && d) return undefined;
  let date = y as string;
  if (mo) date += `-${mo}`;
  if (d) date += `-${d}`;
  const out: ParsedTs = { date, repaired };
  if (h) {
    if (!d || +h > 23 || (mi && +mi > 59) || (s && +s > 60)) return undefined;
    if (!mi || !s) repaired.push('seconds added');
    out.time = `${h}:${mi ?? '00'}:${s ?? '00'}${frac ?? ''}`;
  }
  if (sign && off) {
    let hh: string;
    let mm: string;
    if (off.length === 4) [hh, mm] = [off.slice(0, 2), off.slice(2)];
    else if (off.length === 3) [hh, mm] = [`0${off[0]}`, off.slice(1)];
    else [hh, mm] = [off.padStart(2, '0'), '00'];
    if (off.length !== 4) repaired.push(`offset ${sign}${off} read as ${sign}${hh}${mm}`);
    if (+hh > 14 || +mm > 59) return undefined;
    out.zone = `${sign}${hh}:${mm}`;
  }
  return out;
}

function daysIn(year: number, month: number): number {
  return new Date(Date.UTC(year, month, 0)).getUTCDate();
}

const parisFormat = new Intl.DateTimeFormat('en-US', { timeZone: 'Europe/Paris', timeZoneName: 'longOffset' });

/** The offset of Europe/Paris at that local date and time (`+01:00` or `+02:00`). */
export function parisOffset(date: string, time = '12:00:00'): string {
  const probe = new Date(`${date}T${time.slice(0, 8)}Z`);
  if (Number.isNaN(probe.getTime())) return '+01:00';
  const name = parisFormat.formatToParts(probe).find((p) => p.type === 'timeZoneName')?.value ?? 'GMT+01:00';
  const m = /GMT([+-]\d{2}:\d{2})/.exec(name);
  return m?.[1] ?? '+00:00';
}

/** Reads the zone of the document's effectiveTime, to be used for times written without one. */
export function zoneOf(raw: string | undefined): string | undefined {
  return raw ? parseTs(raw)?.zone : undefined;
}

type Precision = 'date' | 'dateTime' | 'instant';

function convert(ctx: ConversionContext, el: XElement, raw: string, precision: Precision): string | undefined {
  const ts = parseTs(raw);
  if (!ts) {
    ctx.report.warn('TIME_INVALID', `Unreadable timestamp "${raw}".`, el);
    return undefined;
  }
  if (ts.repaired.length) ctx.report.info('TIME_REPAIRED', `"${raw}": ${ts.repaired.join(', ')}.`, el);
  if (precision === 'date') return ts.date;
  let time = ts.time;
  if (precision === 'instant' && !time) {
    if (ts.date.length < 10) {
      ctx.report.warn('TIME_INVALID', `"${raw}" is not precise enough for an instant.`, el);
      return undefined;
    }
    time = '00:00:00';
    ctx.report.info('TIME_REPAIRED', `"${raw}" has no time; midnight assumed for an instant.`, el);
  }
  if (!time) return ts.date;
  let zone = ts.zone;
  if (!zone) {
    zone = ctx.documentZone ?? parisOffset(ts.date, time);
    ctx.report.info('TIME_ZONE_ASSUMED', `"${raw}" has no zone; ${zone} assumed.`, el);
  }
  return `${ts.date}T${time}${zone}`;
}

/** TS `@value` → FHIR dateTime (or date when the precision is a day or less). */
export function dateTime(ctx: ConversionContext, el: XElement | undefined): string | undefined {
  const v = attr(el, 'value');
  return el && v ? convert(ctx, el, v, 'dateTime') : undefined;
}

export function date(ctx: ConversionContext, el: XElement | undefined): string | undefined {
  const v = attr(el, 'value');
  return el && v ? convert(ctx, el, v, 'date') : undefined;
}

export function instant(ctx: ConversionContext, el: XElement | undefined): string | undefined {
  const v = attr(el, 'value');
  return el && v ? convert(ctx, el, v, 'instant') : undefined;
}

/** FHIR instant needs seconds and a zone: only a full dateTime qualifies (a converted one, unchanged). */
export function toInstant(dt: string): string | undefined {
  return /T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/.test(dt) ? dt : undefined;
}

/** IVL_TS (low/high, or a single value / center) → Period. */
export function period(ctx: ConversionContext, el: XElement | undefined): Period | undefined {
  if (!el) return undefined;
  const p: Period = {};
  const single = attr(el, 'value') ? el : child(el, 'center');
  if (single) {
    const v = dateTime(ctx, single);
    if (v) p.start = p.end = v;
  } else {
    const start = dateTime(ctx, child(el, 'low'));
    const end = dateTime(ctx, child(el, 'high'));
    if (start) p.start = start;
    if (end) p.end = end;
  }
  if (p.start && p.end && p.start !== p.end && Date.parse(p.start) > Date.parse(p.end)) {
    ctx.report.warn('TIME_INVALID', `Period ends (${p.end}) before it starts (${p.start}); end left out.`, el);
    delete p.end;
  }
  return p.start || p.end ? p : undefined;
}

/** Either a dateTime (TS with @value) or a Period (IVL_TS), as CDA effectiveTime is used both ways. */
export function effective(ctx: ConversionContext, el: XElement | undefined): { dateTime?: string; period?: Period } {
  if (!el) return {};
  if (attr(el, 'value')) {
    const v = dateTime(ctx, el);
    return v ? { dateTime: v } : {};
  }
  const p = period(ctx, el);
  return p ? { period: p } : {};
}
