/**
 * Time in the store: integer microseconds since the epoch, so that lastUpdated can be strictly
 * increasing even when many documents are stored in one millisecond, and FHIR instants with six
 * fractional digits on the way out (datatypes.html#instant allows any number of them).
 * Search values are ranges: a date search value denotes the whole interval its precision covers
 * (search.html#date: "2013-01-14" is the day), and the prefixes compare that interval with the
 * resource's instant.
 */
import type { DateParam } from './port.js';

export const microsOf = (date: Date): number => date.getTime() * 1000;

export function instantOf(micros: number): string {
  const ms = Math.floor(micros / 1000);
  const rest = micros - ms * 1000;
  return `${new Date(ms).toISOString().slice(0, 23)}${String(rest).padStart(3, '0')}Z`;
}

/** µs since the epoch of a FHIR instant (undefined when it is not one). */
export function microsOfInstant(value: string): number | undefined {
  const range = dateRange(value);
  return range && /T.*(Z|[+-]\d\d:\d\d)$/.test(value) ? range.start : undefined;
}

// yyyy[-mm[-dd[Thh:mm[:ss[.f]][tz]]]] (search.html#date; a time without zone is taken as UTC, the
// server's zone, as the spec lets the server decide).
const DATE = /^(\d{4})(?:-(\d{2})(?:-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?(Z|[+-]\d{2}:\d{2})?)?)?)?$/;

/** The interval [start, end) in µs that a date search value denotes; undefined when malformed. */
export function dateRange(value: string): { start: number; end: number } | undefined {
  const m = DATE.exec(value);
  if (!m) return undefined;
  const [, y, mo, d, h, mi, s, frac, tz] = m;
  const year = Number(y);
  const month = mo === undefined ? 1 : Number(mo);
  const day = d === undefined ? 1 : Number(d);
  const hour = h === undefined ? 0 : Number(h);
  const minute = mi === undefined ? 0 : Number(mi);
  const second = s === undefined ? 0 : Number(s);
  if (month < 1 || month > 12 || day < 1 || hour > 23 || minute > 59 || second > 59) return undefined;
  const utc = Date.UTC(year, month - 1, day, hour, minute, second);
  const check = new Date(utc);
  if (check.getUTCFullYear() !== year || check.getUTCMonth() !== month - 1 || check.getUTCDate() !== day) return undefined;
  let offsetMin = 0;
  if (tz && tz !== 'Z') {
    const oh = Number(tz.slice(1, 3));
    const om = Number(tz.slice(4, 6));
    if (oh > 14 || om > 59) return undefined;
    offsetMin = (tz.startsWith('-') ? -1 : 1) * (oh * 60 + om);
  }
  const digits = (frac ?? '').slice(0, 6);
  const start = (utc - offsetMin * 60_000) * 1000 + (digits ? Number(digits.padEnd(6, '0')) : 0);
  let end: number;
  if (frac !== undefined) end = start + 10 ** (6 - digits.length);
  else if (s !== undefined) end = start + 1_000_000;
  else if (mi !== undefined) end = start + 60_000_000;
  else if (d !== undefined) end = start + 86_400_000_000;
  else if (mo !== undefined) end = (Date.UTC(year, month, 1) - offsetMin * 60_000) * 1000;
  else end = (Date.UTC(year + 1, 0, 1) - offsetMin * 60_000) * 1000;
  return { start, end };
}

/**
 * The condition a point in time t must meet for one prefixed search value (search.html#prefix):
 * `t >= min` and/or `t < max`. eq: t inside the interval; gt: after it; ge: from its start on;
 * lt: before it; le: before its end.
 */
export function dateBounds(param: DateParam): { min?: number; max?: number } | undefined {
  const range = dateRange(param.value);
  if (!range) return undefined;
  switch (param.prefix) {
    case 'eq': return { min: range.start, max: range.end };
    case 'gt': return { min: range.end };
    case 'ge': return { min: range.start };
    case 'lt': return { max: range.start };
    case 'le': return { max: range.end };
  }
}
