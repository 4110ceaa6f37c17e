/**
 * The PTA pull API (CONTRACT.md, "HTTP API", /fhir): FHIR R4 REST over the e-parcours store.
 *
 * - `GET /fhir/metadata`, anyone: the CapabilityStatement (http.html#capabilities).
 * - `GET /fhir/Bundle/{id}`, pta (its own) and admin: read (http.html#read) with `ETag: W/"<versionId>"`
 *   and `Last-Modified` (http.html#versioning), `If-None-Match` answered 304 (http.html#cread).
 *   A Bundle routed elsewhere is answered exactly like one that does not exist (404 NOT_FOUND):
 *   a PTA learns nothing about other organizations' documents, not even that they exist.
 * - `GET /fhir/Bundle?…` and `POST /fhir/Bundle/_search`, pta and admin: searchset Bundles
 *   (search.html), `total`, absolute `self`/`next` links (search.html#paging), entries
 *   `search.mode = match`, see fhir-search.ts for the parameters.
 * - `GET /fhir/AuditEvent?agent=&entity=`, admin only.
 * - Store-only mode adds the writes of fhir-transaction.ts.
 *
 * Every read and search by a known client, allowed or not, is recorded as an AuditEvent before
 * the answer leaves (fhir-audit.ts); if a successful read cannot be audited, it is not served.
 * All media are `application/fhir+json` (http.html#mime).
 */
import { randomUUID } from 'node:crypto';
import Router from '@koa/router';
import type { AuditEventEntity, Bundle, BundleEntry, BundleLink, Resource } from '@medplum/fhirtypes';
import type { Middleware, ParameterizedContext } from 'koa';
import { microsOfInstant } from '../../adapters/store/instant.js';
import type { DocumentStore, Scope } from '../../adapters/store/port.js';
import { PasserelleError } from '../errors.js';
import { requireRole } from './auth.js';
import { FHIR_JSON } from './errors.js';
import { auditEvent, queryEntity, resourceEntity, type AuditSubtype } from './fhir-audit.js';
import { readForm } from './fhir-body.js';
import { capabilityStatement } from './fhir-capability.js';
import { isLenient, narrowScope, parseAuditSearch, parseBundleSearch, type Echo, type Params } from './fhir-search.js';
import { auditCreateHandler, transactionHandler } from './fhir-transaction.js';
import type { AppState, ClientIdentity } from './state.js';

export type FhirContext = ParameterizedContext<AppState>;

export interface FhirRouterDeps {
  store: DocumentStore;
  /**
   * The gateway's public base URL (scheme, host and any path prefix, without `/fhir`): links and
   * fullUrls are absolute, under `<baseUrl>/fhir`, the FHIR service base (http.html#general).
   */
  baseUrl: (ctx: FhirContext) => string;
  now?: () => Date;
  /** Also accept the external-store adapter's writes (a passerelle serving as another's FHIR server). */
  storeOnly?: boolean;
}

const FHIR_ID = /^[A-Za-z0-9\-.]{1,64}$/;
const FORM_LIMIT = 64 * 1024;

function send(ctx: FhirContext, status: number, resource: Resource): void {
  ctx.status = status;
  ctx.body = resource;
  ctx.type = FHIR_JSON;
}

/** What a client may read: its organization's Bundles (pta) or all (admin). */
function scopeOf(client: ClientIdentity): Scope {
  if (client.role === 'admin') return 'all';
  return { organizations: client.organization ? [client.organization] : [] };
}

/** RFC 9110 §13.1.2: `*`, or a list of entity tags compared weakly (W/ ignored). */
function noneMatch(header: string, versionId: string): boolean {
  if (!header) return false;
  if (header.trim() === '*') return true;
  return header.split(',').some((tag) => tag.trim().replace(/^W\//, '') === `"${versionId}"`);
}

function httpDate(instant: string): string {
  const micros = microsOfInstant(instant);
  return new Date(micros === undefined ? Date.parse(instant) : Math.floor(micros / 1000)).toUTCString();
}

export function fhirRouter(deps: FhirRouterDeps): Router<AppState> {
  const { store } = deps;
  const now = deps.now ?? (() => new Date());
  const base = (ctx: FhirContext): string => `${deps.baseUrl(ctx).replace(/\/+$/, '')}/fhir`;
  const trails = new WeakMap<object, AuditEventEntity[]>();
  const trail = (ctx: FhirContext): AuditEventEntity[] => trails.get(ctx) ?? [];

  /** Records the AuditEvent of a read or search by a known client, whatever the outcome. */
  const audited = (subtype: AuditSubtype, target?: (ctx: FhirContext) => AuditEventEntity[]): Middleware<AppState> => async (ctx, next) => {
    const client = ctx.state.client;
    if (!client) return next(); // anonymous: refused by requireRole, attributable to no one
    // What was asked for is known before the role check, so a refused attempt names it too.
    const entities: AuditEventEntity[] = target ? target(ctx) : [];
    trails.set(ctx, entities);
    const record = (failure?: unknown): Promise<void> => store.recordAudit(auditEvent({ client, subtype, recorded: now(), entities, failure, address: ctx.ip }));
    try {
      await next();
    } catch (err) {
      // The request's own error is what the client must see; a store too broken to audit a
      // refusal is reported by that error (or by /ready), not by this one.
      await record(err).catch(() => undefined);
      throw err;
    }
    await record();
  };

  const router = new Router<AppState>({ prefix: '/fhir' });

  router.get('/metadata', (ctx) => {
    send(ctx, 200, capabilityStatement({ baseUrl: base(ctx), date: now().toISOString(), storeOnly: deps.storeOnly === true }));
  });

  const requested = (ctx: FhirContext): AuditEventEntity[] => {
    const id = (ctx as FhirContext & { params?: Record<string, string> }).params?.id ?? '';
    return FHIR_ID.test(id) ? [resourceEntity(`Bundle/${id}`)] : [];
  };

  router.get('/Bundle/:id', audited('read', requested), requireRole('pta', 'admin'), async (ctx) => {
    const id = ctx.params.id ?? '';
    const doc = await store.read(id, scopeOf(ctx.state.client as ClientIdentity));
    if (!doc) throw new PasserelleError('NOT_FOUND');
    ctx.set('ETag', `W/"${doc.versionId}"`);
    ctx.set('Last-Modified', httpDate(doc.lastUpdated));
    if (noneMatch(ctx.get('if-none-match'), doc.versionId)) {
      ctx.status = 304;
      return;
    }
    send(ctx, 200, doc.bundle);
  });

  const searchBundles = async (ctx: FhirContext, params: Params): Promise<void> => {
    const parsed = parseBundleSearch(params, isLenient(ctx.get('prefer')));
    const scope = narrowScope(scopeOf(ctx.state.client as ClientIdentity), parsed.routedTo);
    const query = { ...parsed.query, ...(parsed.summaryCount ? { count: 0 } : {}) };
    trail(ctx).push(queryEntity(new URLSearchParams(parsed.echo).toString()));
    const result = await store.search(query, scope);
    const entries: BundleEntry[] = result.documents.map((d) => {
      trail(ctx).push(resourceEntity(`Bundle/${d.id}`));
      return { fullUrl: `${base(ctx)}/Bundle/${d.id}`, resource: d.bundle, search: { mode: 'match' } };
    });
    send(ctx, 200, searchset(ctx, 'Bundle', parsed.echo, result.total, entries, parsed.query.cursor, parsed.summaryCount ? undefined : result.next));
  };

  const searchset = (ctx: FhirContext, type: string, echo: Echo, total: number, entries: BundleEntry[], cursor?: string, next?: string): Bundle => {
    const link = (c?: string): string => `${base(ctx)}/${type}?${new URLSearchParams([...echo, ...(c ? [['_cursor', c] as [string, string]] : [])]).toString()}`;
    const links: BundleLink[] = [{ relation: 'self', url: link(cursor) }];
    if (next) links.push({ relation: 'next', url: link(next) });
    return {
      resourceType: 'Bundle',
      id: randomUUID(),
      meta: { lastUpdated: now().toISOString() },
      type: 'searchset',
      total,
      link: links,
      ...(entries.length ? { entry: entries } : {}),
    };
  };

  router.get('/Bundle', audited('search-type'), requireRole('pta', 'admin'), (ctx) => searchBundles(ctx, new URLSearchParams(ctx.querystring)));

  // search.html#search-post: the parameters may come in the URL and in the form body.
  router.post('/Bundle/_search', audited('search-type'), requireRole('pta', 'admin'), async (ctx) => {
    const form = await readForm(ctx, FORM_LIMIT);
    await searchBundles(ctx, [...new URLSearchParams(ctx.querystring), ...form]);
  });

  router.get('/AuditEvent', audited('search-type'), requireRole('admin'), async (ctx) => {
    const parsed = parseAuditSearch(new URLSearchParams(ctx.querystring), isLenient(ctx.get('prefer')));
    trail(ctx).push(queryEntity(new URLSearchParams(parsed.echo).toString()));
    const result = await store.searchAudit(parsed.summaryCount ? { ...parsed.query, count: 0 } : parsed.query);
    const entries: BundleEntry[] = result.events.map((e) => ({
      fullUrl: `${base(ctx)}/AuditEvent/${e.id ?? ''}`, resource: e, search: { mode: 'match' },
    }));
    send(ctx, 200, searchset(ctx, 'AuditEvent', parsed.echo, result.total, entries, parsed.query.cursor, parsed.summaryCount ? undefined : result.next));
  });

  if (deps.storeOnly) {
    router.post('/', requireRole('admin'), transactionHandler(store));
    router.post('/AuditEvent', requireRole('admin'), auditCreateHandler(store, base));
  }

  return router;
}
