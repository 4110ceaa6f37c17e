/**
 * The built-in mock ROR (mounted by the gateway at /fixtures/ror/fhir): the Organization,
 * HealthcareService and Location resources of a FHIR Bundle, served read-only the way the ROR FHIR
 * API serves them (DOMAIN.md §6; IG fhir-repertoire-offre-ressources-sante, CapabilityStatement
 * `ror-serveur-prod` and the SearchParameter instances of input/fsh/instances), FHIR R4 JSON only.
 *
 * - `GET /metadata`: a CapabilityStatement of what is served here.
 * - `GET /Organization?…`: `_id`, `identifier` (token), `type` (token).
 * - `GET /HealthcareService?…`: `_id`, `identifier`, `intervention-zone` (SearchParameter
 *   ror-sp-healthcareservice-intervention-zone: the codeTerritorialDivision of the
 *   ror-territorial-division extension), `organization` (reference to the providing Organization),
 *   `organization.type` (chained: the providing Organization's type), `location.commune-cog`
 *   (chained: SearchParameter ror-sp-location-commune-cog, extension ror-commune-cog).
 * - `GET /Location?…`: `_id`, `identifier`, `commune-cog`.
 * - `_include=Organization:partof`, `HealthcareService:organization`, `HealthcareService:location`,
 *   and `_include:iterate=Organization:partof` (the whole chain internal unit → EG → EJ).
 * - Token parameters (search.html#token): `system|code`, `code`, `|code`, `system|`; comma = OR,
 *   a repeated parameter = AND; `\|`, `\,`, `\$` escapes. Zone and COG codes are matched on the code
 *   alone, whatever the system: the ROR's published examples write commune codes in three code
 *   systems (TRE_R13-CommuneOM, TRE-R13-Commune, JDV_J124-Commune). FINESS and SIREN/SIRET systems
 *   are matched in their http and https spellings (the IG writes both).
 * - Paging: `_count` (default 50, at most 200 — ROR's page size — and 0 for the total only) and
 *   `next`/`previous` links with `_offset`. Included resources ride with the page of their match
 *   and are not counted (search.html#include).
 * - `GET /{type}/{id}`: a read.
 * - Errors are OperationOutcomes: 400 for a parameter, modifier or `_include` not listed above
 *   (search.html#errors allows a server to refuse what it does not support; ROR does), 404 for an
 *   unknown resource or resource type.
 */
import { readFileSync } from 'node:fs';
import Router from '@koa/router';
import type { ParameterizedContext } from 'koa';
import type {
  Bundle, BundleEntry, BundleLink, CapabilityStatement, CapabilityStatementRestResource, CodeableConcept, HealthcareService, Identifier, Location, Organization,
} from '@medplum/fhirtypes';
import { PasserelleError } from '../../gateway/errors.js';
import { outcome } from '../../gateway/fhir/outcome.js';
import { validateResource } from '../../gateway/fhir/validate.js';
import { packageFile } from '../../gateway/util/package-root.js';
import { interventionZones, referencedId, ROR_MAX_PAGE, ROR_SD } from './client.js';
import { splitEscaped } from '../../gateway/fhir/escaping.js';

const FHIR_JSON = 'application/fhir+json; charset=utf-8';
const FHIR_ID = /^[A-Za-z0-9\-.]{1,64}$/;
const DEFAULT_COUNT = 50;
const TYPES = ['Organization', 'HealthcareService', 'Location'] as const;
type RorType = (typeof TYPES)[number];
type RorResource = Organization | HealthcareService | Location;

/** Location.extension: COG code of the commune where the place is (current and older URL). */
const COMMUNE_COG_URLS = new Set([`${ROR_SD}ror-commune-cog`, `${ROR_SD}ror-location-commune-cog`]);

/** Identifier systems written with http in some IG pages and https in others. */
const SYSTEM_ALIASES: Readonly<Record<string, string>> = {
  'http://finess.esante.gouv.fr': 'https://finess.esante.gouv.fr',
  'http://sirene.fr': 'https://sirene.fr',
};
const canonicalSystem = (s: string): string => SYSTEM_ALIASES[s] ?? s;

/** The parameters each type understands; anything else is refused with 400. */
const SEARCH_PARAMS: Readonly<Record<RorType, readonly string[]>> = {
  Organization: ['_id', 'identifier', 'type'],
  HealthcareService: ['_id', 'identifier', 'intervention-zone', 'organization', 'organization.type', 'location.commune-cog'],
  Location: ['_id', 'identifier', 'commune-cog'],
};
const INCLUDES: Readonly<Record<RorType, readonly string[]>> = {
  Organization: ['Organization:partof'],
  HealthcareService: ['HealthcareService:organization', 'HealthcareService:location'],
  Location: [],
};

/** The built-in sample (fixtures/ror/ror.bundle.json), or the Bundle at `path`, checked. */
export function loadRorFixture(path?: string): Bundle {
  const file = path ?? packageFile('fixtures', 'ror', 'ror.bundle.json');
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new PasserelleError('CONFIG_INVALID', `ror.fixture: cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? 'error'}).`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new PasserelleError('CONFIG_INVALID', `ror.fixture: ${file} is not JSON (${(err as Error).message}).`);
  }
  return checkFixture(json, file);
}

/**
 * A Bundle whose entries are Organizations, HealthcareServices and Locations with valid, distinct
 * ids; Organizations and Locations pass the FHIR R4 schema (HealthcareService is outside the schema
 * subset the gateway emits: its shape is checked here), and every HealthcareService.providedBy
 * names an Organization of the Bundle (a DAC service whose organization is missing cannot be routed to).
 */
function checkFixture(json: unknown, where: string): Bundle {
  const fail = (why: string): PasserelleError => new PasserelleError('CONFIG_INVALID', `ror.fixture: ${where}: ${why}`);
  if (typeof json !== 'object' || json === null || Array.isArray(json) || (json as { resourceType?: unknown }).resourceType !== 'Bundle') {
    throw fail('not a FHIR Bundle (resourceType "Bundle" expected).');
  }
  const bundle = json as Bundle;
  if (bundle.entry !== undefined && !Array.isArray(bundle.entry)) throw fail('Bundle.entry is not an array.');
  const ids = new Set<string>();
  const entries = bundle.entry ?? [];
  entries.forEach((entry, i) => {
    const r = (entry as BundleEntry | null)?.resource as RorResource | undefined;
    if (typeof r !== 'object' || r === null || !(TYPES as readonly string[]).includes(r.resourceType)) {
      throw fail(`entry ${i} is not an Organization, HealthcareService or Location.`);
    }
    if (typeof r.id !== 'string' || !FHIR_ID.test(r.id)) throw fail(`entry ${i}: the ${r.resourceType} has no valid id (it is the id served at ${r.resourceType}/{id}).`);
    if (ids.has(`${r.resourceType}/${r.id}`)) throw fail(`entry ${i}: ${r.resourceType} id "${r.id}" is used twice.`);
    ids.add(`${r.resourceType}/${r.id}`);
    const issues = r.resourceType === 'HealthcareService' ? serviceIssues(r) : validateResource(r).map((s) => `${s.path || '/'}: ${s.message}`);
    if (issues.length) throw fail(`entry ${i} (${r.resourceType}/${r.id}): ${issues.slice(0, 3).join('; ')}.`);
  });
  for (const [i, entry] of entries.entries()) {
    const r = entry.resource as RorResource;
    if (r.resourceType !== 'HealthcareService' || !r.providedBy) continue;
    const org = referencedId(r.providedBy.reference, 'Organization');
    if (!org || !ids.has(`Organization/${org}`)) throw fail(`entry ${i} (HealthcareService/${r.id as string}): providedBy does not name an Organization of the fixture.`);
  }
  return bundle;
}

/** The shape a HealthcareService must have for the searches served here. */
function serviceIssues(s: HealthcareService): string[] {
  const issues: string[] = [];
  const arrayOrAbsent = (name: keyof HealthcareService): void => {
    if (s[name] !== undefined && !Array.isArray(s[name])) issues.push(`${name} must be an array`);
  };
  arrayOrAbsent('extension');
  arrayOrAbsent('identifier');
  arrayOrAbsent('location');
  arrayOrAbsent('type');
  if (s.providedBy !== undefined && typeof s.providedBy?.reference !== 'string') issues.push('providedBy must be a Reference with a reference');
  for (const e of s.extension ?? []) if (typeof e?.url !== 'string') issues.push('an extension has no url');
  return issues;
}

/** A token search value: system undefined = any system, '' = no system; code '' = any code (`system|`). */
interface Token { system?: string; code: string }

class BadRequest extends Error {}

const unescape = (s: string): string => s.replace(/\\(.)/g, '$1');

function tokens(raw: string): Token[] {
  return splitEscaped(raw, ',').map((alternative) => {
    const parts = splitEscaped(alternative, '|', 2);
    if (parts.length === 1) return { code: unescape(parts[0] as string) };
    return { system: unescape(parts[0] as string), code: unescape(parts[1] as string) };
  });
}

function identifierMatches(ids: readonly Identifier[] | undefined, t: Token): boolean {
  return (ids ?? []).some((id) => {
    if (t.system === '' ? id.system !== undefined : t.system !== undefined && canonicalSystem(id.system ?? '') !== canonicalSystem(t.system)) return false;
    return t.code === '' || id.value === t.code;
  });
}

function conceptMatches(concepts: readonly CodeableConcept[] | undefined, t: Token): boolean {
  return (concepts ?? []).some((cc) => (cc.coding ?? []).some((c) => {
    if (t.system === '' ? c.system !== undefined : t.system !== undefined && c.system !== t.system) return false;
    return t.code === '' || c.code === t.code;
  }));
}

/** COG codes of a Location (ror-commune-cog), codes only. */
function communeCog(location: Location | undefined): string[] {
  return (location?.extension ?? [])
    .filter((e) => COMMUNE_COG_URLS.has(e.url))
    .flatMap((e) => e.valueCodeableConcept?.coding ?? [])
    .map((c) => c.code?.toUpperCase())
    .filter((c): c is string => !!c);
}

type Ctx = ParameterizedContext;

class Served {
  readonly byType: Record<RorType, Map<string, RorResource>> = { Organization: new Map(), HealthcareService: new Map(), Location: new Map() };

  constructor(bundle: Bundle) {
    for (const entry of bundle.entry ?? []) {
      const r = entry.resource as RorResource;
      this.byType[r.resourceType].set(r.id as string, r);
    }
  }

  organization(reference: string | undefined): Organization | undefined {
    const id = referencedId(reference, 'Organization');
    return id ? (this.byType.Organization.get(id) as Organization | undefined) : undefined;
  }

  location(reference: string | undefined): Location | undefined {
    const id = referencedId(reference, 'Location');
    return id ? (this.byType.Location.get(id) as Location | undefined) : undefined;
  }

  /** Whether a resource satisfies one value (OR of its comma-separated alternatives) of one parameter. */
  matches(type: RorType, r: RorResource, name: string, raw: string): boolean {
    const alternatives = tokens(raw);
    const any = (test: (t: Token) => boolean): boolean => alternatives.some(test);
    switch (name) {
      case '_id':
        return any((t) => t.system === undefined && r.id === t.code);
      case 'identifier':
        return any((t) => identifierMatches(r.identifier, t));
      case 'type':
        return any((t) => conceptMatches((r as Organization).type, t));
      case 'intervention-zone': {
        const codes = interventionZones(r as HealthcareService).map((z) => z.code);
        return any((t) => codes.includes(t.code.toUpperCase()));
      }
      case 'organization': {
        const id = referencedId((r as HealthcareService).providedBy?.reference, 'Organization');
        return any((t) => t.system === undefined && (id === t.code || `Organization/${id ?? ''}` === t.code));
      }
      case 'organization.type': {
        const org = this.organization((r as HealthcareService).providedBy?.reference);
        return any((t) => conceptMatches(org?.type, t));
      }
      case 'location.commune-cog': {
        const codes = ((r as HealthcareService).location ?? []).flatMap((l) => communeCog(this.location(l.reference)));
        return any((t) => codes.includes(t.code.toUpperCase()));
      }
      case 'commune-cog': {
        const codes = communeCog(r as Location);
        return any((t) => codes.includes(t.code.toUpperCase()));
      }
      default:
        throw new BadRequest(`unsupported search parameter '${name}' for ${type}`);
    }
  }

  /** Resources brought by the _include / _include:iterate directives for these matches (not the matches themselves). */
  included(matches: readonly RorResource[], include: ReadonlySet<string>, iterate: ReadonlySet<string>): RorResource[] {
    const key = (r: RorResource): string => `${r.resourceType}/${r.id as string}`;
    const seen = new Set(matches.map(key));
    const out: RorResource[] = [];
    const add = (r: RorResource | undefined): void => {
      if (r && !seen.has(key(r))) {
        seen.add(key(r));
        out.push(r);
      }
    };
    const follow = (r: RorResource, directives: ReadonlySet<string>): void => {
      if (r.resourceType === 'HealthcareService') {
        if (directives.has('HealthcareService:organization')) add(this.organization(r.providedBy?.reference));
        if (directives.has('HealthcareService:location')) for (const l of r.location ?? []) add(this.location(l.reference));
      }
      if (r.resourceType === 'Organization' && directives.has('Organization:partof')) add(this.organization(r.partOf?.reference));
    };
    for (const r of matches) {
      follow(r, include);
      follow(r, iterate);
    }
    // :iterate applies again to what was included (search.html#revinclude), until nothing new comes.
    for (let i = 0; i < out.length && iterate.size; i++) follow(out[i] as RorResource, iterate);
    return out;
  }
}

/** A Router serving the ROR resources of `fixture` under `prefix` (e.g. '/fixtures/ror/fhir'). */
export function createRorMock(fixture: Bundle, prefix: string): Router {
  const directory = new Served(checkFixture(fixture, 'fixture'));
  const router = new Router({ prefix });
  const base = (ctx: Ctx): string => `${ctx.protocol}://${ctx.host}${prefix}`; // Koa 3: ctx.origin is the Origin header
  const send = (ctx: Ctx, status: number, body: object): void => {
    ctx.status = status;
    ctx.type = FHIR_JSON;
    ctx.body = body;
  };
  const isRorType = (t: string): t is RorType => (TYPES as readonly string[]).includes(t);

  router.get('/metadata', (ctx) => send(ctx, 200, capabilityStatement(base(ctx))));

  router.get('/:type', (ctx) => {
    const type = ctx.params.type ?? '';
    if (!isRorType(type)) {
      send(ctx, 404, outcome('NOT_FOUND', `This mock ROR serves Organization, HealthcareService and Location only.`));
      return;
    }
    try {
      send(ctx, 200, search(directory, type, ctx.URL.searchParams, base(ctx)));
    } catch (err) {
      if (!(err instanceof BadRequest)) throw err;
      send(ctx, 400, outcome('REQUEST_INVALID', err.message));
    }
  });

  router.get('/:type/:id', (ctx) => {
    const type = ctx.params.type ?? '';
    const id = ctx.params.id ?? '';
    const found = isRorType(type) ? directory.byType[type].get(id) : undefined;
    if (found) send(ctx, 200, found);
    else send(ctx, 404, outcome('NOT_FOUND', `${isRorType(type) ? type : 'resource'}/${FHIR_ID.test(id) ? id : '?'} is not known.`));
  });

  return router;
}

function nonNegativeInteger(name: string, raw: string): number {
  if (!/^\d{1,9}$/.test(raw)) throw new BadRequest(`${name} must be a non-negative integer`);
  return Number(raw);
}

function search(directory: Served, type: RorType, params: URLSearchParams, base: string): Bundle {
  let count = DEFAULT_COUNT;
  let offset = 0;
  const include = new Set<string>();
  const iterate = new Set<string>();
  const filters: [string, string][] = [];
  for (const [name, value] of params) {
    if (name === '_count') count = Math.min(nonNegativeInteger(name, value), ROR_MAX_PAGE);
    else if (name === '_offset') offset = nonNegativeInteger(name, value);
    else if (name === '_format') {
      if (!/json/.test(value)) throw new BadRequest('only JSON is served (_format=json)');
    } else if (name === '_include' || name === '_include:iterate') {
      // Organization:partof may be iterated from services too (service → EG → EJ).
      const allowed = name === '_include:iterate' ? [...INCLUDES[type], 'Organization:partof'] : INCLUDES[type];
      for (const v of value.split(',')) {
        if (!allowed.includes(v)) throw new BadRequest(`unsupported ${name} '${v}' for ${type}`);
        (name === '_include' ? include : iterate).add(v);
      }
    } else if (SEARCH_PARAMS[type].includes(name)) {
      if (!value) throw new BadRequest(`${name} has no value`);
      filters.push([name, value]);
    }
    else throw new BadRequest(`unsupported search parameter '${name}' for ${type}`);
  }

  const matches = [...directory.byType[type].values()].filter((r) => filters.every(([name, value]) => directory.matches(type, r, name, value)));
  const page = matches.slice(offset, offset + count);
  const entry: BundleEntry[] = [
    ...page.map((r) => ({ fullUrl: `${base}/${r.resourceType}/${r.id as string}`, resource: r, search: { mode: 'match' as const } })),
    ...directory.included(page, include, iterate).map((r) => ({ fullUrl: `${base}/${r.resourceType}/${r.id as string}`, resource: r, search: { mode: 'include' as const } })),
  ];

  const link = (at: number): string => {
    const q = new URLSearchParams([...params].filter(([n]) => n !== '_offset' && n !== '_count'));
    q.set('_count', String(count));
    if (at) q.set('_offset', String(at));
    return `${base}/${type}?${q.toString()}`;
  };
  const links: BundleLink[] = [{ relation: 'self', url: link(offset) }];
  if (count > 0 && offset + count < matches.length) links.push({ relation: 'next', url: link(offset + count) });
  if (count > 0 && offset > 0) links.push({ relation: 'previous', url: link(Math.max(0, offset - count)) });
  return { resourceType: 'Bundle', type: 'searchset', total: matches.length, link: links, ...(entry.length ? { entry } : {}) };
}

function capabilityStatement(base: string): CapabilityStatement {
  const token = (name: string, documentation: string): { name: string; type: 'token' | 'reference'; documentation: string } => ({ name, type: 'token', documentation });
  const resource: CapabilityStatementRestResource[] = [
    {
      type: 'Organization',
      profile: `${ROR_SD}ror-organization`,
      interaction: [{ code: 'read' }, { code: 'search-type' }],
      searchInclude: [...INCLUDES.Organization],
      searchParam: [token('_id', 'Logical id'), token('identifier', 'FINESS, SIREN/SIRET, idNatSt…'), token('type', 'Organization.type, e.g. TRE-R66 category 606 (DAC)')],
    },
    {
      type: 'HealthcareService',
      profile: `${ROR_SD}ror-healthcareservice`,
      interaction: [{ code: 'read' }, { code: 'search-type' }],
      searchInclude: [...INCLUDES.HealthcareService],
      searchParam: [
        token('_id', 'Logical id'),
        token('identifier', 'identifiantOffre'),
        token('intervention-zone', 'codeTerritorialDivision of the ror-territorial-division extension (matched on the code)'),
        { name: 'organization', type: 'reference', documentation: 'The providing Organization' },
        token('organization.type', 'Type of the providing Organization'),
        token('location.commune-cog', 'COG code of the commune of the service location (matched on the code)'),
      ],
    },
    {
      type: 'Location',
      profile: `${ROR_SD}ror-location`,
      interaction: [{ code: 'read' }, { code: 'search-type' }],
      searchParam: [token('_id', 'Logical id'), token('identifier', 'Identifier'), token('commune-cog', 'COG code of the commune (ror-commune-cog; matched on the code)')],
    },
  ];
  return {
    resourceType: 'CapabilityStatement',
    status: 'active',
    date: '2025-01-01',
    kind: 'instance',
    software: { name: 'passerelle mock ROR' },
    implementation: { description: 'Built-in mock of the ROR FHIR API (read-only sample data)', url: base },
    fhirVersion: '4.0.1',
    format: ['application/fhir+json', 'json'],
    rest: [{ mode: 'server', resource }],
  };
}
