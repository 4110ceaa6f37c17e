/**
 * The ROR directory over its FHIR API (DOMAIN.md §6), with fhir-kit-client.
 *
 *  - Authentication: OAuth 2.0 client credentials (RFC 6749 §4.4). The client authenticates with
 *    HTTP Basic, id and secret form-encoded first (§2.3.1, the method every server must support).
 *    The token is kept until shortly before `expires_in` (a tenth of its life, at most a minute, so a
 *    request never leaves with a token that expires on the way) and fetched again once when ROR
 *    answers 401 (revoked or rotated early). Concurrent requests share one token request.
 *  - Extra headers: whatever `headers` holds goes with every request; the ROR uses
 *    `Ror-Profil-Utilisateur-Code/-System` and `Ror-Role-Metier-Code/-System` to scope what a
 *    consumer sees.
 *  - Every request (token included) is bounded by `timeoutMs`.
 *  - Searches follow `next` links (FHIR R4 http.html#paging) up to `maxPages`, asking `_count` =
 *    200, the largest page ROR serves. A `next` link that leaves the base URL is refused: the bearer
 *    token must not be sent elsewhere.
 *  - Answers are cached per query for `cacheTtlMs`. When ROR is unreachable, times out or answers
 *    5xx (also 408/429 and an unreadable body), the last good answer is served even past its TTL
 *    (at most `maxStaleMs` old), because routing a document with yesterday's directory beats
 *    holding it; with nothing cached the call throws PasserelleError('ROR_UNAVAILABLE') (transient:
 *    the pipeline retries). Other 4xx answers (a request ROR refuses) are not masked by the cache.
 *    `cacheTtlMs: 0` disables fresh hits but keeps the last answer for that fallback.
 *
 * Nothing is logged here; `onStale` lets the caller count or log stale answers. The queries carry
 * structure identifiers and COG codes, never patient data.
 */
import type { Bundle, BundleEntry, CodeableConcept, Extension, HealthcareService, Organization, Resource } from '@medplum/fhirtypes';
import { Client, type FhirResource, type RequestOptions, type SearchParams } from 'fhir-kit-client';
import { PasserelleError } from '../../gateway/errors.js';
import { copyJson } from '../../gateway/util/copy-json.js';
import type { Directory } from './port.js';

/** ROR StructureDefinitions (IG fhir-repertoire-offre-ressources-sante). */
export const ROR_SD = 'https://interop.esante.gouv.fr/ig/fhir/ror/StructureDefinition/';
/** Intervention zone of a HealthcareService (zoneIntervention): sub-extensions typeTerritorialDivision + codeTerritorialDivision. */
export const ROR_TERRITORIAL_DIVISION = `${ROR_SD}ror-territorial-division`;
/** TRE_R66-CategorieEtablissement: the Organization.type slice categorieEtablissement. */
export const TRE_R66 = 'https://mos.esante.gouv.fr/NOS/TRE_R66-CategorieEtablissement/FHIR/TRE-R66-CategorieEtablissement';
/** TRE_R66 606: "Dispositif d'appui à la coordination (DAC)". */
export const DAC_CATEGORY = '606';
export const FINESS_SYSTEM = 'https://finess.esante.gouv.fr';
/** ROR pages hold at most 200 entries. */
export const ROR_MAX_PAGE = 200;

export type ZoneLevel = 'commune' | 'departement' | 'region';

/** JDV_J223-TypeDivisionTerritoriale-ROR (TRE_R201): 1 région, 2 département, 3 commune, 4 territoire de santé. */
export const ZONE_TYPE: Readonly<Record<ZoneLevel, string>> = { region: '1', departement: '2', commune: '3' };

export interface InterventionZone {
  /** typeTerritorialDivision code (1, 2, 3, 4…). */
  type: string;
  /** codeTerritorialDivision code (a COG code for types 1–3). */
  code: string;
  system?: string;
}

/**
 * The intervention zones of a HealthcareService (or Organization). The published examples write the
 * commune code in three code systems (TRE_R13-CommuneOM, TRE-R13-Commune, JDV_J124-Commune) and
 * once a bare `system`/`code` pair instead of `coding`: only codes are read. The older extension
 * `ror-healthcareservice-intervention-zone` (sub-extensions `type`/`code`) is read too.
 */
export function interventionZones(resource: { extension?: Extension[] }): InterventionZone[] {
  const out: InterventionZone[] = [];
  for (const ext of resource.extension ?? []) {
    if (ext.url !== ROR_TERRITORIAL_DIVISION && ext.url !== `${ROR_SD}ror-healthcareservice-intervention-zone`) continue;
    const sub = (...names: string[]): { code?: string; system?: string } | undefined => {
      const value = ext.extension?.find((e) => names.includes(e.url))?.valueCodeableConcept as (CodeableConcept & { system?: unknown; code?: unknown }) | undefined;
      const coding = Array.isArray(value?.coding) ? value.coding.find((c) => typeof c.code === 'string') : undefined;
      if (coding) return { code: coding.code, system: coding.system };
      // Tolerate the malformed example shape { system, code } without `coding`.
      if (typeof value?.code === 'string') return { code: value.code, system: typeof value.system === 'string' ? value.system : undefined };
      return undefined;
    };
    const type = sub('typeTerritorialDivision', 'type')?.code;
    const code = sub('codeTerritorialDivision', 'code');
    if (type && code?.code) out.push({ type: type.trim(), code: code.code.trim().toUpperCase(), ...(code.system ? { system: code.system } : {}) });
  }
  return out;
}

/** FHIR search escaping of a token part (search.html#escaping): `\`, `|`, `,` and `$`. */
export function escapeToken(part: string): string {
  return part.replace(/[\\|,$]/g, (c) => `\\${c}`);
}

/** The logical id in `Organization/123`, `https://host/fhir/Organization/123` or `…/_history/2`. */
export function referencedId(reference: string | undefined, type: string): string | undefined {
  if (!reference) return undefined;
  const m = new RegExp(`(?:^|/)${type}/([A-Za-z0-9.-]{1,64})(?:/_history/[^/]*)?$`).exec(reference);
  return m?.[1];
}

export interface RorOAuthOptions {
  tokenUrl: string;
  clientId: string;
  clientSecret: string;
  scope?: string;
}

export interface RorClientOptions {
  baseUrl: string;
  /** Per request, token request included. Default 5000 ms. */
  timeoutMs?: number;
  /** How long an answer is served from the cache without asking ROR. Default 1 hour. */
  cacheTtlMs?: number;
  oauth?: RorOAuthOptions | null;
  /** Sent with every request, e.g. Ror-Profil-Utilisateur-Code / -System, Ror-Role-Metier-Code / -System. */
  headers?: Record<string, string>;
  /** `_count` asked per page (1–200). Default 200. */
  pageSize?: number;
  /** Pages followed per search before giving up. Default 50 (10 000 entries at 200 per page). */
  maxPages?: number;
  /** How old a cached answer may be and still be served when ROR is down. Default 7 days. */
  maxStaleMs?: number;
  /** Cached queries kept (least recently stored dropped first). Default 5000. */
  maxCacheEntries?: number;
  /** Called when a stale answer is served instead of failing (for logs and metrics). */
  onStale?: (detail: string) => void;
}

/** A failure of one exchange with ROR; `transient` ones may be masked by a stale cache entry. */
class RorFailure extends Error {
  constructor(message: string, readonly transient: boolean) {
    super(message);
  }
}

interface CachedAnswer {
  value: unknown;
  storedAt: number;
}

export class RorClient implements Directory {
  private readonly fhir: Client;
  private readonly base: URL;
  private readonly timeoutMs: number;
  private readonly ttlMs: number;
  private readonly maxStaleMs: number;
  private readonly pageSize: number;
  private readonly maxPages: number;
  private readonly maxEntries: number;
  private readonly oauth: RorOAuthOptions | undefined;
  private readonly onStale: ((detail: string) => void) | undefined;
  private token: { value: string; expiresAt: number } | undefined;
  private tokenRequest: Promise<string> | undefined;
  private readonly cache = new Map<string, CachedAnswer>();
  private readonly inflight = new Map<string, Promise<unknown>>();

  constructor(options: RorClientOptions) {
    this.base = parseHttpUrl(options.baseUrl, 'ror.baseUrl');
    if (options.oauth) parseHttpUrl(options.oauth.tokenUrl, 'ror.oauth.tokenUrl');
    this.timeoutMs = positive(options.timeoutMs, 5000, 'ror.timeoutMs');
    this.ttlMs = nonNegative(options.cacheTtlMs, 3_600_000, 'ror.cacheTtlMs');
    this.maxStaleMs = nonNegative(options.maxStaleMs, 7 * 24 * 3_600_000, 'maxStaleMs');
    this.pageSize = Math.min(positive(options.pageSize, ROR_MAX_PAGE, 'pageSize'), ROR_MAX_PAGE);
    this.maxPages = positive(options.maxPages, 50, 'maxPages');
    this.maxEntries = positive(options.maxCacheEntries, 5000, 'maxCacheEntries');
    this.oauth = options.oauth ?? undefined;
    this.onStale = options.onStale;
    this.fhir = new Client({ baseUrl: options.baseUrl.replace(/\/+$/, ''), customHeaders: { ...(options.headers ?? {}) } });
  }

  organizationsByIdentifier(system: string, value: string): Promise<Organization[]> {
    const identifier = system ? `${escapeToken(system)}|${escapeToken(value)}` : escapeToken(value);
    return this.cached(`Organization?identifier=${identifier}`, async () => {
      const entries = await this.searchAll('Organization', { identifier, _include: 'Organization:partof' });
      // Matches first, then the parents the _include brought, each organization once.
      const ordered = [...entries.filter((e) => e.search?.mode !== 'include'), ...entries.filter((e) => e.search?.mode === 'include')];
      return unique(ordered.map((e) => e.resource).filter((r): r is Organization => r?.resourceType === 'Organization'));
    });
  }

  dacServicesByZone(level: ZoneLevel, code: string): Promise<{ services: HealthcareService[]; organizations: Organization[] }> {
    const wanted = code.trim().toUpperCase();
    return this.cached(`HealthcareService?intervention-zone=${level}:${wanted}`, async () => {
      // The intervention-zone parameter matches the code whatever its level (11 is both the
      // Île-de-France région and the Aude département): the level is checked on the zone itself.
      const entries = await this.searchAll('HealthcareService', {
        'intervention-zone': escapeToken(wanted),
        'organization.type': `${TRE_R66}|${DAC_CATEGORY}`,
        _include: 'HealthcareService:organization',
      });
      const services = unique(entries.map((e) => e.resource).filter((r): r is HealthcareService => r?.resourceType === 'HealthcareService'))
        .filter((s) => interventionZones(s).some((z) => z.type === ZONE_TYPE[level] && z.code === wanted));
      const providers = new Set(services.map((s) => referencedId(s.providedBy?.reference, 'Organization')));
      const organizations = unique(entries.map((e) => e.resource).filter((r): r is Organization => r?.resourceType === 'Organization'))
        .filter((o) => providers.has(o.id));
      return { services, organizations };
    });
  }

  /** Forgets every cached answer (e.g. after an operator changed the directory). */
  clearCache(): void {
    this.cache.clear();
  }

  /** One cached query: fresh hit, else ROR (concurrent callers share the request), else a stale answer. */
  private async cached<T>(key: string, load: () => Promise<T>): Promise<T> {
    const hit = this.cache.get(key);
    const age = hit ? Date.now() - hit.storedAt : Infinity;
    if (hit && age < this.ttlMs) return copyJson(hit.value as T);
    let pending = this.inflight.get(key) as Promise<T> | undefined;
    if (!pending) {
      pending = load().then((value) => {
        this.cache.delete(key); // re-inserted last: the Map's order is the eviction order
        this.cache.set(key, { value, storedAt: Date.now() });
        if (this.cache.size > this.maxEntries) this.cache.delete(this.cache.keys().next().value as string);
        return value;
      }).finally(() => this.inflight.delete(key));
      this.inflight.set(key, pending);
    }
    try {
      return copyJson(await pending);
    } catch (err) {
      if (!(err instanceof RorFailure)) throw err;
      if (err.transient && hit && age < this.ttlMs + this.maxStaleMs) {
        this.onStale?.(`${err.message}; served an answer cached ${Math.round(age / 1000)} s ago`);
        return copyJson(hit.value as T);
      }
      throw new PasserelleError('ROR_UNAVAILABLE', `ROR: ${err.message}${err.transient ? ' and nothing cached to serve instead' : ''}`);
    }
  }

  /** Every entry of every page of a search. */
  private async searchAll(resourceType: string, params: SearchParams): Promise<BundleEntry[]> {
    let page = await this.exchange((options) => this.fhir.resourceSearch({ resourceType, searchParams: { ...params, _count: this.pageSize }, options }));
    const entries = [...(page.entry ?? [])];
    for (let pages = 1; ; pages++) {
      const next = page.link?.find((l) => l.relation === 'next')?.url;
      if (!next) return entries;
      if (pages >= this.maxPages) throw new RorFailure(`${resourceType} search has more than ${this.maxPages} pages`, false);
      if (!this.isUnderBase(next)) throw new RorFailure(`a next link points outside ${this.base.origin}${this.base.pathname}; not followed`, false);
      const current = page;
      page = await this.exchange((options) => this.fhir.nextPage({ bundle: current as unknown as FhirResource & { link: { relation: string; url: string }[] }, options }) ?? Promise.reject(new Error('no next page')));
      entries.push(...(page.entry ?? []));
    }
  }

  private isUnderBase(url: string): boolean {
    try {
      const u = new URL(url, this.base);
      const path = this.base.pathname.replace(/\/+$/, '');
      return u.origin === this.base.origin && (u.pathname === path || u.pathname.startsWith(`${path}/`));
    } catch {
      return false;
    }
  }

  /** One request with the bearer token and the timeout; a 401 gets one new token and one retry. */
  private async exchange(send: (options: RequestOptions) => Promise<FhirResource>): Promise<Bundle> {
    for (let attempt = 0; ; attempt++) {
      const headers: Record<string, string> = {};
      const token = await this.bearer();
      if (token) headers.authorization = `Bearer ${token}`;
      try {
        const result = await send({ headers, signal: AbortSignal.timeout(this.timeoutMs) });
        if (result.resourceType !== 'Bundle') throw new RorFailure(`ROR answered a ${String(result.resourceType)} instead of a Bundle`, true);
        return result as unknown as Bundle;
      } catch (err) {
        if (err instanceof RorFailure) throw err;
        const status = httpStatus(err);
        if (status === 401 && this.oauth && attempt === 0) {
          // Drop the refused token only: a concurrent request may already have fetched a new one.
          if (this.token?.value === token) this.token = undefined;
          continue;
        }
        throw this.failure(err, status);
      }
    }
  }

  private failure(err: unknown, status: number | undefined): RorFailure {
    if (status !== undefined) {
      if (status >= 500 || status === 408 || status === 429) return new RorFailure(`ROR answered HTTP ${status}`, true);
      if (status < 300) return new RorFailure('ROR answered a body that is not JSON', true);
      return new RorFailure(`ROR refused the request (HTTP ${status})`, false);
    }
    return new RorFailure(transportProblem(err, this.timeoutMs), true);
  }

  /** The current access token, fetched when missing or about to expire; undefined without OAuth. */
  private async bearer(): Promise<string | undefined> {
    if (!this.oauth) return undefined;
    if (this.token && Date.now() < this.token.expiresAt) return this.token.value;
    this.tokenRequest ??= this.fetchToken(this.oauth).finally(() => {
      this.tokenRequest = undefined;
    });
    return this.tokenRequest;
  }

  /** RFC 6749 §4.4.2 access token request; §5.1 response. */
  private async fetchToken(oauth: RorOAuthOptions): Promise<string> {
    const form = (s: string): string => new URLSearchParams({ s }).toString().slice(2);
    const body = new URLSearchParams({ grant_type: 'client_credentials', ...(oauth.scope ? { scope: oauth.scope } : {}) });
    let res: Response;
    try {
      res = await fetch(oauth.tokenUrl, {
        method: 'POST',
        headers: {
          'content-type': 'application/x-www-form-urlencoded',
          accept: 'application/json',
          authorization: `Basic ${Buffer.from(`${form(oauth.clientId)}:${form(oauth.clientSecret)}`).toString('base64')}`,
        },
        body: body.toString(),
        signal: AbortSignal.timeout(this.timeoutMs),
      });
    } catch (err) {
      throw new RorFailure(`token endpoint: ${transportProblem(err, this.timeoutMs)}`, true);
    }
    if (!res.ok) {
      await res.body?.cancel();
      const transient = res.status >= 500 || res.status === 429;
      throw new RorFailure(transient ? `the token endpoint answered HTTP ${res.status}` : `the token endpoint refused the client credentials (HTTP ${res.status})`, transient);
    }
    let json: { access_token?: unknown; token_type?: unknown; expires_in?: unknown };
    try {
      json = (await res.json()) as typeof json;
    } catch {
      throw new RorFailure('the token endpoint answered a body that is not JSON', true);
    }
    if (typeof json.access_token !== 'string' || !json.access_token) throw new RorFailure('the token endpoint answered without access_token', false);
    if (typeof json.token_type === 'string' && json.token_type.toLowerCase() !== 'bearer') {
      throw new RorFailure(`the token endpoint issued a ${json.token_type} token, not a Bearer token`, false);
    }
    // expires_in is RECOMMENDED only (§5.1): without it, five minutes.
    const lifetime = typeof json.expires_in === 'number' && json.expires_in > 0 ? json.expires_in * 1000 : 300_000;
    this.token = { value: json.access_token, expiresAt: Date.now() + lifetime - Math.min(60_000, lifetime / 10) };
    return json.access_token;
  }
}

function unique<T extends Resource>(resources: T[]): T[] {
  const seen = new Set<string>();
  return resources.filter((r) => {
    const key = `${r.resourceType}/${r.id ?? JSON.stringify(r)}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

/** fhir-kit-client puts the HTTP status of an error answer in `err.response.status`. */
function httpStatus(err: unknown): number | undefined {
  const status = (err as { response?: { status?: unknown } } | null)?.response?.status;
  return typeof status === 'number' ? status : undefined;
}

function transportProblem(err: unknown, timeoutMs: number): string {
  const e = err as { name?: string; cause?: { code?: string } } | null;
  if (e?.name === 'TimeoutError' || e?.name === 'AbortError') return `no answer within ${timeoutMs} ms`;
  return `cannot reach the server${e?.cause?.code ? ` (${e.cause.code})` : ''}`;
}

function parseHttpUrl(value: string, name: string): URL {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new PasserelleError('CONFIG_INVALID', `${name} is not a URL`);
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new PasserelleError('CONFIG_INVALID', `${name} must be an http(s) URL`);
  return url;
}

function positive(value: number | undefined, fallback: number, name: string): number {
  if (value === undefined) return fallback;
  if (!Number.isFinite(value) || value <= 0) throw new PasserelleError('CONFIG_INVALID', `${name} must be a positive number`);
  return value;
}

function nonNegative(value: number | undefined, fallback: number, name: string): number {
  if (value === undefined) return fallback;
  if (!Number.isFinite(value) || value < 0) throw new PasserelleError('CONFIG_INVALID', `${name} must be zero or more`);
  return value;
}
