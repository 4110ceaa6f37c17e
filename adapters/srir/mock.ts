/**
 * The built-in mock SRIR that integrators test against (mounted by the gateway at
 * /fixtures/srir/fhir): the Patients of a FHIR Bundle served as an IHE PIXm Manager (ITI-83) and
 * PDQm Patient Demographics Supplier (ITI-78), FHIR R4 JSON only, read-only.
 *
 * - `GET /metadata`: a CapabilityStatement of what is served here.
 * - `GET /Patient/$ihe-pix?sourceIdentifier=system|value[&targetSystem=uri…]` (ITI-83
 *   §2:3.83.4.1.2): 400 when sourceIdentifier is missing, repeated or not `system|value`, and
 *   400 `code-invalid` "sourceIdentifier Assigning Authority not found" for an unknown domain
 *   (§2:3.83.4.2.2.3); 403 `code-invalid` "targetSystem not found" for an unknown targetSystem
 *   (§2:3.83.4.2.2.4); 404 `not-found` "sourceIdentifier Patient Identifier not found"
 *   (§2:3.83.4.2.2.2); otherwise Parameters with one targetIdentifier per other business
 *   identifier (the source identifier itself is never returned; only the targetSystem domains when
 *   given) and one targetId per Patient (§2:3.83.4.2.2.1).
 * - `GET /Patient?…` (ITI-78 §2:3.78.4.1.2): `family`, `given` (string: by default a prefix match
 *   insensitive to case and accents, FHIR search.html#string; hyphens and apostrophes count as
 *   spaces, as in the RNIV comparison form of gateway/identity/traits.ts; `:exact` compares the
 *   whole string as written), `birthdate` (date with eq|ne|lt|gt|le|ge prefixes at day, month or
 *   year precision), `gender`, `identifier` (token `system|value`, `value`, `|value`, or `system|`
 *   for a domain: an unknown domain answers 404 "targetSystem not found", §2:3.78.4.1.3 Case 4, and
 *   the returned identifiers are limited to the requested domains, Case 2), `_id`, `active`.
 *   Repeated parameters are AND, comma-separated values OR (search.html#combining). Unknown
 *   parameters are ignored and left out of the self link (search.html#errors); an unsupported
 *   modifier is refused (400). A searchset Bundle with `total`, `_count` (default 20, at most 100;
 *   0 gives the total only) and `next` links (`_offset`).
 * - `GET /Patient/{id}` (§2:3.78.4.3): the Patient, or 404 with an OperationOutcome.
 * The identifier domains are the four INS OIDs and every identifier system of the fixture.
 * The sample fixture's regional identifier system is MOCK_REGIONAL_SYSTEM, an OID under the
 * `joint-iso-itu-t(2) example(999)` arc that ITU-T X.660 | ISO/IEC 9834-1 reserve for examples:
 * it can never name a real assigning authority.
 */
import { readFileSync } from 'node:fs';
import Router from '@koa/router';
import type { ParameterizedContext } from 'koa';
import type {
  Bundle, BundleEntry, BundleLink, CapabilityStatement, Identifier, OperationOutcome, OperationOutcomeIssue, Parameters, ParametersParameter, Patient,
} from '@medplum/fhirtypes';
import { PasserelleError } from '../../gateway/errors.js';
import { validateBundle } from '../../gateway/fhir/validate.js';
import { normaliseTrait, INS_SYSTEMS } from '../../gateway/identity/traits.js';
import { packageFile } from '../../gateway/util/package-root.js';

/** The regional identifier system ("IPP régional") of the sample fixture: fictional, see the header. */
export const MOCK_REGIONAL_SYSTEM = 'urn:oid:2.999.1.1';

const FHIR_JSON = 'application/fhir+json; charset=utf-8';
const FHIR_ID = /^[A-Za-z0-9\-.]{1,64}$/;
const DEFAULT_COUNT = 20;
const MAX_COUNT = 100;

/** The built-in sample, or the Bundle at `path`, checked: a Bundle whose entries are Patients with distinct ids. */
export function loadSrirFixture(path?: string): Bundle {
  const file = path ?? packageFile('fixtures', 'srir', 'patients.bundle.json');
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new PasserelleError('CONFIG_INVALID', `srir.fixture: cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? 'error'}).`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new PasserelleError('CONFIG_INVALID', `srir.fixture: ${file} is not JSON (${(err as Error).message}).`);
  }
  return checkFixture(json, file);
}

function checkFixture(json: unknown, where: string): Bundle {
  const fail = (why: string): PasserelleError => new PasserelleError('CONFIG_INVALID', `srir.fixture: ${where}: ${why}`);
  if (typeof json !== 'object' || json === null || (json as { resourceType?: unknown }).resourceType !== 'Bundle') {
    throw fail('not a FHIR Bundle (resourceType "Bundle" expected).');
  }
  const issues = validateBundle(json);
  if (issues.length) throw fail(`not a valid FHIR R4 Bundle: ${issues.slice(0, 3).map((i) => `${i.path || '/'}: ${i.message}`).join('; ')}.`);
  const bundle = json as Bundle;
  const ids = new Set<string>();
  (bundle.entry ?? []).forEach((entry, i) => {
    const r = entry.resource;
    if (r?.resourceType !== 'Patient') throw fail(`entry ${i} is not a Patient (a Bundle of Patients expected).`);
    if (!r.id || !FHIR_ID.test(r.id)) throw fail(`entry ${i}: the Patient has no valid id (it is the id served at Patient/{id}).`);
    if (ids.has(r.id)) throw fail(`entry ${i}: Patient id "${r.id}" is used twice.`);
    ids.add(r.id);
  });
  return bundle;
}

type Ctx = ParameterizedContext;

/** A Router serving the Patients of `fixture` under `prefix` (e.g. '/fixtures/srir/fhir'). */
export function createSrirMock(fixture: Bundle, prefix: string): Router {
  const patients = (checkFixture(fixture, 'fixture').entry ?? []).map((e) => e.resource as Patient);
  const domains = new Set<string>(INS_SYSTEMS);
  for (const p of patients) for (const id of p.identifier ?? []) if (id.system) domains.add(id.system);
  const byId = new Map(patients.map((p) => [p.id as string, p]));
  const router = new Router({ prefix });

  // Koa 3's ctx.origin is the Origin request header; the server's own origin is protocol + host.
  const base = (ctx: Ctx): string => `${ctx.protocol}://${ctx.host}${prefix}`;
  const send = (ctx: Ctx, status: number, body: object): void => {
    ctx.status = status;
    ctx.type = FHIR_JSON;
    ctx.body = body;
  };

  router.get('/metadata', (ctx) => send(ctx, 200, capabilityStatement(base(ctx))));

  // One route for both: `$ihe-pix` may arrive percent-encoded (%24ihe-pix) and would land here anyway.
  router.get('/Patient/:id', (ctx) => {
    const id = ctx.params.id ?? '';
    if (id === '$ihe-pix') {
      const [status, body] = pix(patients, domains, ctx.URL.searchParams);
      send(ctx, status, body);
      return;
    }
    const p = byId.get(id);
    if (p) send(ctx, 200, p);
    else send(ctx, 404, outcome('error', 'not-found', `Patient/${FHIR_ID.test(id) ? id : '?'} is not known.`));
  });

  router.get('/Patient', (ctx) => {
    const [status, body] = search(patients, domains, ctx.URL.searchParams, base(ctx));
    send(ctx, status, body);
  });

  return router;
}

function outcome(severity: OperationOutcomeIssue['severity'], code: OperationOutcomeIssue['code'], diagnostics: string): OperationOutcome {
  return { resourceType: 'OperationOutcome', issue: [{ severity, code, diagnostics }] };
}

type Answer = [number, object];

function pix(patients: Patient[], domains: Set<string>, params: URLSearchParams): Answer {
  const sources = params.getAll('sourceIdentifier');
  const source = sources.length === 1 ? /^([^|]+)\|(.+)$/.exec(sources[0] as string) : null;
  if (!source) return [400, outcome('error', 'required', 'sourceIdentifier is required once, as system|value (ITI-83).')];
  const [, system, value] = source as unknown as [string, string, string];
  if (!domains.has(system)) return [400, outcome('error', 'code-invalid', 'sourceIdentifier Assigning Authority not found')];
  const targets = params.getAll('targetSystem').flatMap((t) => t.split(',')).map((t) => t.trim()).filter(Boolean);
  if (targets.some((t) => !domains.has(t))) return [403, outcome('error', 'code-invalid', 'targetSystem not found')];

  const matches = patients.filter((p) => (p.identifier ?? []).some((id) => id.system === system && id.value === value));
  if (!matches.length) return [404, outcome('error', 'not-found', 'sourceIdentifier Patient Identifier not found')];
  const parameter: ParametersParameter[] = [];
  const seen = new Set<string>();
  for (const p of matches) {
    for (const id of p.identifier ?? []) {
      if (!id.system || !id.value || (id.system === system && id.value === value)) continue;
      if (targets.length && !targets.includes(id.system)) continue;
      const key = `${id.system}|${id.value}`;
      if (seen.has(key)) continue;
      seen.add(key);
      parameter.push({ name: 'targetIdentifier', valueIdentifier: { ...(id.use ? { use: id.use } : {}), system: id.system, value: id.value } });
    }
  }
  for (const p of matches) parameter.push({ name: 'targetId', valueReference: { reference: `Patient/${p.id as string}` } });
  const body: Parameters = { resourceType: 'Parameters', parameter };
  return [200, body];
}

type Filter = (p: Patient) => boolean;

class BadRequest extends Error {}

/** FHIR string search: prefix after normalisation, or `:exact` whole-string equality. */
function stringFilter(values: string[], exact: boolean, of: (p: Patient) => string[]): Filter {
  const wanted = exact ? values : values.map(normaliseTrait);
  return (p) => of(p).some((s) => wanted.some((w) => (exact ? s === w : normaliseTrait(s).startsWith(w))));
}

/** A date's range at its precision: YYYY, YYYY-MM or YYYY-MM-DD (lexical bounds). */
function dateRange(value: string): [string, string] | undefined {
  const m = /^(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?$/.exec(value);
  if (!m) return undefined;
  const [, y, mo, d] = m;
  if (d) return [value, value];
  if (mo) return [`${y}-${mo}-01`, `${y}-${mo}-31`];
  return [`${y}-01-01`, `${y}-12-31`];
}

/** FHIR date search (search.html#date) on Patient.birthDate, for the prefixes that make sense on a date. */
function dateFilter(raw: string): Filter {
  const m = /^(eq|ne|lt|gt|le|ge)?(.+)$/.exec(raw);
  const q = m?.[2] ? dateRange(m[2]) : undefined;
  if (!m || !q) throw new BadRequest(`birthdate must be [eq|ne|lt|gt|le|ge]YYYY[-MM[-DD]].`);
  const prefix = m[1] ?? 'eq';
  return (p) => {
    const t = p.birthDate ? dateRange(p.birthDate) : undefined;
    if (!t) return false;
    const eq = t[0] >= q[0] && t[1] <= q[1];
    switch (prefix) {
      case 'ne': return !eq;
      case 'lt': return t[0] < q[0];
      case 'gt': return t[1] > q[1];
      case 'le': return t[0] <= q[1];
      case 'ge': return t[1] >= q[0];
      default: return eq;
    }
  };
}

function search(patients: Patient[], domains: Set<string>, params: URLSearchParams, base: string): Answer {
  const filters: Filter[] = [];
  const used = new URLSearchParams();
  const requestedDomains = new Set<string>();
  let count = DEFAULT_COUNT;
  let offset = 0;
  try {
    for (const [key, rawValue] of params) {
      const [name, modifier] = key.split(':', 2) as [string, string | undefined];
      const values = rawValue.split(',').map((v) => v.trim()).filter(Boolean);
      const known = ['family', 'given', 'birthdate', 'gender', 'identifier', '_id', 'active', '_count', '_offset'];
      if (!known.includes(name)) continue;
      const stringParam = name === 'family' || name === 'given';
      if (modifier !== undefined && !(stringParam && modifier === 'exact')) throw new BadRequest(`the modifier :${modifier} is not supported on ${name}.`);
      if (!values.length) continue;
      switch (name) {
        case 'family':
          filters.push(stringFilter(values, modifier === 'exact', (p) => (p.name ?? []).map((n) => n.family ?? '').filter(Boolean)));
          break;
        case 'given':
          filters.push(stringFilter(values, modifier === 'exact', (p) => (p.name ?? []).flatMap((n) => n.given ?? [])));
          break;
        case 'birthdate': {
          const ors = values.map(dateFilter);
          filters.push((p) => ors.some((f) => f(p)));
          break;
        }
        case 'gender': {
          const codes = values.map((v) => v.replace(/^http:\/\/hl7\.org\/fhir\/administrative-gender\|/, ''));
          filters.push((p) => p.gender !== undefined && codes.includes(p.gender));
          break;
        }
        case 'identifier': {
          const ors: Filter[] = [];
          for (const v of values) {
            const bar = v.indexOf('|');
            const system = bar < 0 ? undefined : v.slice(0, bar);
            const value = bar < 0 ? v : v.slice(bar + 1);
            if (system && !value) {
              if (!domains.has(system)) return [404, outcome('warning', 'not-found', 'targetSystem not found')];
              requestedDomains.add(system);
            }
            ors.push((p) => (p.identifier ?? []).some((id) =>
              (system === undefined || (system === '' ? !id.system : id.system === system)) && (!value || id.value === value)));
          }
          filters.push((p) => ors.some((f) => f(p)));
          break;
        }
        case '_id':
          filters.push((p) => p.id !== undefined && values.includes(p.id));
          break;
        case 'active':
          if (values.some((v) => v !== 'true' && v !== 'false')) throw new BadRequest('active must be true or false.');
          filters.push((p) => values.includes(String(p.active ?? true)));
          break;
        case '_count':
        case '_offset': {
          const n = Number(values[0]);
          if (!Number.isInteger(n) || n < 0) throw new BadRequest(`${name} must be a non-negative integer.`);
          if (name === '_count') count = Math.min(n, MAX_COUNT);
          else offset = n;
          continue; // paging parameters are set on each link below
        }
      }
      used.append(key, rawValue);
    }
  } catch (err) {
    if (err instanceof BadRequest) return [400, outcome('error', 'invalid', err.message)];
    throw err;
  }

  const matches = patients.filter((p) => filters.every((f) => f(p)));
  const page = count === 0 ? [] : matches.slice(offset, offset + count);
  const link = (at: number): string => {
    const q = new URLSearchParams(used);
    q.set('_count', String(count));
    if (at) q.set('_offset', String(at));
    return `${base}/Patient?${q.toString()}`;
  };
  const links: BundleLink[] = [{ relation: 'self', url: link(offset) }];
  if (count > 0 && offset + count < matches.length) links.push({ relation: 'next', url: link(offset + count) });
  const entry: BundleEntry[] = page.map((p) => ({
    fullUrl: `${base}/Patient/${p.id as string}`,
    resource: requestedDomains.size ? onlyDomains(p, requestedDomains) : p,
    search: { mode: 'match' },
  }));
  const bundle: Bundle = { resourceType: 'Bundle', type: 'searchset', total: matches.length, link: links, ...(entry.length ? { entry } : {}) };
  return [200, bundle];
}

/** ITI-78 Case 2: only the identifiers of the requested domains are returned. */
function onlyDomains(p: Patient, domains: Set<string>): Patient {
  const identifier: Identifier[] = (p.identifier ?? []).filter((id) => id.system !== undefined && domains.has(id.system));
  return { ...p, identifier };
}

function capabilityStatement(base: string): CapabilityStatement {
  const param = (name: string, type: 'string' | 'token' | 'date' | 'number', documentation: string): NonNullable<NonNullable<CapabilityStatement['rest']>[number]['searchParam']>[number] =>
    ({ name, type, documentation });
  return {
    resourceType: 'CapabilityStatement',
    status: 'active',
    date: new Date().toISOString().slice(0, 10),
    kind: 'instance',
    software: { name: 'passerelle mock SRIR' },
    implementation: { description: 'Mock regional identity server (IHE PIXm ITI-83 and PDQm ITI-78, read-only) serving fixture Patients', url: base },
    fhirVersion: '4.0.1',
    format: ['application/fhir+json'],
    rest: [{
      mode: 'server',
      documentation: 'PIXm Patient Identifier Cross-reference Manager ($ihe-pix) and PDQm Patient Demographics Supplier (search, read) over the fixture Patients.',
      resource: [{
        type: 'Patient',
        supportedProfile: ['https://hl7.fr/ig/fhir/core/StructureDefinition/fr-core-patient', 'https://hl7.fr/ig/fhir/core/StructureDefinition/fr-core-patient-ins'],
        interaction: [{ code: 'read' }, { code: 'search-type' }],
        searchParam: [
          param('_id', 'token', 'Logical id of the Patient'),
          param('active', 'token', 'Whether the Patient record is active'),
          param('family', 'string', 'Family name: prefix, case and accent insensitive; :exact supported'),
          param('given', 'string', 'Given name: prefix, case and accent insensitive; :exact supported'),
          param('birthdate', 'date', 'Birth date, with eq|ne|lt|gt|le|ge'),
          param('gender', 'token', 'male | female | other | unknown'),
          param('identifier', 'token', 'system|value, value, or system| for a domain'),
          param('_count', 'number', `Page size (default ${DEFAULT_COUNT}, at most ${MAX_COUNT})`),
        ],
        operation: [{ name: 'ihe-pix', definition: 'https://profiles.ihe.net/ITI/PIXm/OperationDefinition/IHE.PIXm.pix' }],
      }],
    }],
  };
}
