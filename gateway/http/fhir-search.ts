/**
 * The search parameters of the pull API (CONTRACT.md, `GET /fhir/Bundle?…`), parsed strictly:
 * an unknown parameter, an unsupported modifier or prefix, or a malformed value is a 400, so a
 * PTA never believes it filtered when it did not. Modifiers: "a server SHALL reject any search
 * request that contains a search parameter with an unsupported modifier" (search.html#modifiers).
 * Unknown parameters: R4 lets a server ignore them by default (search.html#errors); we answer as
 * under `Prefer: handling=strict` unless the client sends `Prefer: handling=lenient`. Empty
 * parameters are skipped: "Empty parameters are not an error - they are just ignored by the
 * server" (search.html#errors).
 */
import { PasserelleError } from '../errors.js';
import { dateRange } from '../../adapters/store/instant.js';
import type { AuditQuery, DateParam, Scope, SearchQuery, TokenParam } from '../../adapters/store/port.js';
import { ROUTED_TO_SYSTEM } from '../../adapters/store/tags.js';
import { splitEscaped } from '../fhir/escaping.js';

export const DEFAULT_COUNT = 20;
export const MAX_COUNT = 100;

export type Params = Iterable<readonly [string, string]>;
export type Echo = [string, string][];

export interface BundleSearch {
  query: SearchQuery;
  /** `_tag` values naming routed-to organizations: they narrow the reader's scope (narrowScope). */
  routedTo?: string[];
  /** `_summary=count`: the total only (search.html#summary). */
  summaryCount: boolean;
  /** The parameters as applied, for the self and next links (search.html#conformance). */
  echo: Echo;
}

const invalid = (detail: string): PasserelleError => new PasserelleError('REQUEST_INVALID', detail);
const shown = (name: string): string => JSON.stringify(name.slice(0, 80));


const unescape = (s: string): string => s.replace(/\\([\\,|$])/g, '$1');

/** `[system]|[code]`, `|[code]` or `[code]` (search.html#token); a system never holds a `|`, so the first one separates. */
function token(raw: string, name: string): TokenParam {
  const [first, rest] = splitEscaped(raw, '|', 2) as [string, string | undefined];
  const t: TokenParam = rest === undefined ? { value: unescape(first) } : { system: unescape(first), value: unescape(rest) };
  if (!t.value && !t.system) throw invalid(`${name}: a token needs a system or a code.`);
  return t;
}

function singleToken(raw: string, name: string): TokenParam {
  const values = splitEscaped(raw, ',');
  if (values.length > 1) throw invalid(`${name}: a list of values (OR) is supported only for _tag.`);
  return token(raw, name);
}

function dateParam(raw: string): DateParam {
  if (splitEscaped(raw, ',').length > 1) throw invalid('_lastUpdated: a list of values (OR) is not supported; repeat the parameter (AND).');
  const m = /^(eq|ne|gt|lt|ge|le|sa|eb|ap)?(.*)$/.exec(raw) as RegExpExecArray;
  const prefix = (m[1] ?? 'eq') as string;
  if (!['eq', 'gt', 'ge', 'lt', 'le'].includes(prefix)) throw invalid(`_lastUpdated: the prefix ${prefix} is not supported (eq, gt, ge, lt, le).`);
  const value = m[2] as string;
  if (!dateRange(value)) throw invalid('_lastUpdated: not a FHIR date, dateTime or instant (e.g. 2024-05-01T10:00:00.000000Z).');
  return { prefix: prefix as DateParam['prefix'], value };
}

function count(raw: string): number {
  if (!/^\d{1,9}$/.test(raw)) throw invalid('_count must be a non-negative integer.');
  return Math.min(Number(raw), MAX_COUNT);
}

/** `_format` may only ask for what we serve (http.html#mime). */
function format(raw: string): void {
  if (!['json', 'application/json', 'application/fhir+json'].includes(raw.split(';')[0]?.trim() ?? '')) throw invalid('_format: only JSON is served.');
}

interface Reader {
  /** Parameters handled by the caller; return false for an unknown one. */
  (name: string, value: string): boolean;
}

/** Walks the parameters: modifiers refused, empties skipped, unknown names refused unless lenient. */
function walk(params: Params, lenient: boolean, read: Reader): void {
  for (const [name, value] of params) {
    if (value === '') continue;
    if (name.includes(':')) throw invalid(`The modifier of ${shown(name)} is not supported.`);
    if (name === '_format') format(value);
    else if (name === '_pretty') continue;
    else if (!read(name, value) && !lenient) throw invalid(`Unknown search parameter ${shown(name)}.`);
  }
}

export function parseBundleSearch(params: Params, lenient = false): BundleSearch {
  const query: SearchQuery = { count: DEFAULT_COUNT };
  const echo: Echo = [];
  let summaryCount = false;
  let routedTo: string[] | undefined;
  const once = new Set<string>();
  const single = (name: string): void => {
    if (once.has(name)) throw invalid(`${name} may appear only once.`);
    once.add(name);
  };
  walk(params, lenient, (name, value) => {
    switch (name) {
      case 'identifier': single(name); query.identifier = singleToken(value, name); break;
      case 'composition.patient.identifier': single(name); query.patientIdentifier = singleToken(value, name); break;
      case 'composition.type': single(name); query.type = singleToken(value, name); break;
      case '_tag': {
        const tags = splitEscaped(value, ',').map((v) => token(v, name));
        // Routing is what the store knows as routedTo, tagged or not: such a `_tag` narrows the scope.
        if (tags.every((t) => t.system === ROUTED_TO_SYSTEM && t.value)) {
          const orgs = tags.map((t) => t.value);
          routedTo = routedTo ? routedTo.filter((o) => orgs.includes(o)) : orgs;
        } else {
          single(name);
          query.tag = tags;
        }
        break;
      }
      case '_lastUpdated': (query.lastUpdated ??= []).push(dateParam(value)); break;
      case '_count': single(name); query.count = count(value); return true;
      case '_cursor': single(name); query.cursor = value; return true;
      case '_summary':
        single(name);
        if (value === 'count') summaryCount = true;
        else if (value !== 'false') throw invalid('_summary: only count (or false) is supported.');
        break;
      case '_sort': single(name); if (value !== '_lastUpdated') throw invalid('_sort: results are always sorted by _lastUpdated.'); break;
      case '_total': single(name); if (!['none', 'estimate', 'accurate'].includes(value)) throw invalid('_total: none, estimate or accurate.'); break;
      default: return false;
    }
    echo.push([name, value]);
    return true;
  });
  echo.push(['_count', String(query.count)]);
  return { query, summaryCount, echo, ...(routedTo ? { routedTo } : {}) };
}

export interface AuditSearch { query: AuditQuery; summaryCount: boolean; echo: Echo }

/** `GET /fhir/AuditEvent`: agent (a client id), entity (a reference such as Bundle/{id}). */
export function parseAuditSearch(params: Params, lenient = false): AuditSearch {
  const query: AuditQuery = { count: DEFAULT_COUNT };
  const echo: Echo = [];
  let summaryCount = false;
  const once = new Set<string>();
  walk(params, lenient, (name, value) => {
    if (!['agent', 'entity', '_count', '_cursor', '_summary'].includes(name)) return false;
    if (once.has(name)) throw invalid(`${name} may appear only once.`);
    once.add(name);
    if (name === 'agent') query.agent = value;
    else if (name === 'entity') query.entity = value;
    else if (name === '_count') query.count = count(value);
    else if (name === '_cursor') query.cursor = value;
    else if (value === 'count') summaryCount = true;
    else if (value !== 'false') throw invalid('_summary: only count (or false) is supported.');
    if (name !== '_count' && name !== '_cursor') echo.push([name, value]);
    return true;
  });
  echo.push(['_count', String(query.count)]);
  return { query, summaryCount, echo };
}

/** The reader's scope, narrowed to the organizations a routed-to `_tag` names. */
export function narrowScope(scope: Scope, routedTo: readonly string[] | undefined): Scope {
  if (!routedTo) return scope;
  if (scope === 'all') return { organizations: [...routedTo] };
  return { organizations: scope.organizations.filter((o) => routedTo.includes(o)) };
}

/** `Prefer: handling=lenient` (search.html#errors). */
export function isLenient(prefer: string): boolean {
  return /(^|[;,\s])handling\s*=\s*lenient\b/i.test(prefer);
}
