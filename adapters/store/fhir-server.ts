/**
 * The e-parcours store on an external FHIR R4 server (CONTRACT.md, `store.fhirBaseUrl`), through
 * its REST API only, so any conformant server will do (HAPI, a passerelle in store-only mode…).
 *
 * - put: a `transaction` (http.html#transaction) holding one conditional create of the document
 *   Bundle, `ifNoneExist: _tag=<document-key>|<key>` (http.html#ccreate): a retry, or the same
 *   document from another process, finds the first copy (200) instead of making a second (201).
 *   Routing, document key and replaced keys travel as meta.tag (./tags.ts): Bundle.identifier is
 *   the document's own identifier (bdl-9), not our key, and Bundle has no other slot for them.
 * - read/search: FHIR searches on the server (`_tag` for the reader's organizations, identifier,
 *   chained composition parameters, `_lastUpdated`), then filtered by scope again here, so that a
 *   server ignoring a parameter can never widen what a reader sees.
 * - status: a Bundle is superseded when some stored Bundle carries a `supersedes` tag with its key.
 *   Derived on read with `_summary=count` searches, because marking the earlier Bundle would need
 *   an update this store cannot make atomic with the create on an arbitrary server.
 * - lastUpdated, versionId and ids are the server's: lastUpdated follows the server's commit
 *   order only as far as the server guarantees it (a passerelle in store-only mode does).
 * - Cursors are the server's `next` links (search.html#paging), only ever followed on that server,
 *   and, for a scoped reader, only when they carry the reader's own `_tag` filter or nothing but
 *   the server's paging token.
 *
 * Any network failure, timeout or HTTP error (other than 404/410 on a read) is STORE_UNAVAILABLE.
 */
import { randomUUID } from 'node:crypto';
import type { AuditEvent, Bundle, BundleEntry } from '@medplum/fhirtypes';
import { Client, type FhirResource, type RequestOptions } from 'fhir-kit-client';
import { PasserelleError } from '../../gateway/errors.js';
import { decodeCursor, encodeCursor } from './cursor.js';
import type { AuditQuery, DocumentStore, PutRequest, PutResult, Scope, SearchQuery, SearchResult, StoredDocument, TokenParam } from './port.js';
import {
  DOCUMENT_KEY_SYSTEM, ROUTED_TO_SYSTEM, SUPERSEDES_SYSTEM, decodeKey, encodeKey, forCreate, foreignTags, statusTag, tagCodes,
} from './tags.js';

export interface FhirServerStoreOptions {
  /** The server's service base URL (…/fhir). */
  baseUrl: string;
  bearerToken?: string;
  /** Per request (default 30 s). */
  timeoutMs?: number;
}

const FHIR_ID = /^[A-Za-z0-9\-.]{1,64}$/;
/**
 * Paging tokens that stand for a search the server keeps (HAPI `_getpages`, Azure `ct`, …): such a
 * link carries no filter, and a token of another reader's search cannot be guessed.
 */
const PAGE_TOKENS = new Set(['_getpages', '_pageId', '_page_token', 'ct']);
/** What may accompany a page token without filtering anything. */
const PAGING_ONLY = new Set([...PAGE_TOKENS, '_getpagesoffset', '_count', '_bundletype', '_format', '_pretty', '_total']);
/** Keys per `_summary=count` probe: keeps a POSTed form small for any server. */
const STATUS_CHUNK = 50;

/** FHIR search escaping of a token part (search.html#escaping). */
const escape = (s: string): string => s.replace(/[\\|,$]/g, (c) => `\\${c}`);
const tokenValue = (t: TokenParam): string => (t.system === undefined ? escape(t.value) : `${escape(t.system)}|${escape(t.value)}`);

export class FhirServerStore implements DocumentStore {
  private readonly client: Client;
  private readonly base: string;
  private readonly timeoutMs: number;

  constructor(options: FhirServerStoreOptions) {
    this.base = options.baseUrl.replace(/\/+$/, '');
    this.timeoutMs = options.timeoutMs ?? 30_000;
    this.client = new Client({ baseUrl: this.base, ...(options.bearerToken ? { bearerToken: options.bearerToken } : {}) });
  }

  /** Nothing to create; reachability is ping()'s business, so a server that is down delays no start. */
  init(): Promise<void> {
    return Promise.resolve();
  }

  async put(request: PutRequest): Promise<PutResult> {
    if (!request.documentKey) throw new PasserelleError('REQUEST_INVALID', 'A stored document needs a document key.');
    const key = encodeKey(request.documentKey);
    const resource = forCreate(request.bundle);
    resource.meta = {
      ...resource.meta,
      tag: [
        ...foreignTags(resource.meta?.tag),
        ...[...new Set(request.routedTo)].map((code) => ({ system: ROUTED_TO_SYSTEM, code })),
        { system: DOCUMENT_KEY_SYSTEM, code: key },
        ...[...new Set(request.supersedes)].filter((k) => k !== request.documentKey).map((k) => ({ system: SUPERSEDES_SYSTEM, code: encodeKey(k) })),
      ],
    };
    const transaction: Bundle = {
      resourceType: 'Bundle',
      type: 'transaction',
      entry: [{
        fullUrl: `urn:uuid:${randomUUID()}`,
        resource,
        request: { method: 'POST', url: 'Bundle', ifNoneExist: new URLSearchParams({ _tag: `${DOCUMENT_KEY_SYSTEM}|${key}` }).toString() },
      }],
    };
    const answer = await this.call((options) => this.client.transaction({ body: asResource(transaction), options }));
    const response = answer.entry?.[0]?.response;
    const id = /(?:^|\/)Bundle\/([A-Za-z0-9\-.]{1,64})(?:\/_history\/|$)/.exec(response?.location ?? '')?.[1];
    if (!response || !id) throw new PasserelleError('STORE_UNAVAILABLE', 'The FHIR store answered the transaction without the location of the Bundle.');
    return { id, created: response.status.startsWith('201') };
  }

  async read(id: string, scope: Scope): Promise<StoredDocument | undefined> {
    if (!FHIR_ID.test(id) || isEmpty(scope)) return undefined;
    let resource: FhirResource;
    try {
      resource = await this.client.read({ resourceType: 'Bundle', id, options: this.options() });
    } catch (err) {
      const status = httpStatus(err);
      if (status === 404 || status === 410) return undefined;
      throw unavailable(err);
    }
    const doc = toDocument(resource as unknown as Bundle);
    if (!doc || !inScope(doc, scope)) return undefined;
    const [withStatus] = await this.withStatus([doc]);
    return withStatus;
  }

  async search(query: SearchQuery, scope: Scope): Promise<SearchResult> {
    if (!Number.isSafeInteger(query.count) || query.count < 0) throw new PasserelleError('REQUEST_INVALID', '_count must be a non-negative integer.');
    if (isEmpty(scope)) return { total: 0, documents: [] };
    let page: Bundle;
    if (query.cursor) {
      const url = this.pageUrl(query.cursor, scope);
      page = await this.call((options) => this.client.request(url, { options }));
    } else {
      const searchParams = this.searchParams(query, scope);
      page = await this.call((options) => this.client.resourceSearch({ resourceType: 'Bundle', searchParams, options }));
    }
    const documents = query.count === 0 ? [] : matches(page)
      .map((e) => (e.resource?.resourceType === 'Bundle' ? toDocument(e.resource) : undefined))
      .filter((d): d is StoredDocument => d !== undefined && inScope(d, scope));
    const next = query.count === 0 ? undefined : page.link?.find((l) => l.relation === 'next')?.url;
    return {
      total: page.total ?? documents.length,
      documents: await this.withStatus(documents),
      ...(next ? { next: encodeCursor([next]) } : {}),
    };
  }

  async recordAudit(event: AuditEvent): Promise<void> {
    await this.call((options) => this.client.create({ resourceType: 'AuditEvent', body: asResource(event), options }));
  }

  async searchAudit(query: AuditQuery): Promise<{ total: number; events: AuditEvent[]; next?: string }> {
    if (!Number.isSafeInteger(query.count) || query.count < 0) throw new PasserelleError('REQUEST_INVALID', '_count must be a non-negative integer.');
    let page: Bundle;
    if (query.cursor) {
      const url = this.pageUrl(query.cursor, 'all');
      page = await this.call((options) => this.client.request(url, { options }));
    } else {
      const searchParams: Record<string, string> = query.count === 0 ? { _summary: 'count' } : { _count: String(query.count) };
      if (query.agent !== undefined) searchParams.agent = query.agent;
      if (query.entity !== undefined) searchParams.entity = query.entity;
      page = await this.call((options) => this.client.resourceSearch({ resourceType: 'AuditEvent', searchParams, options }));
    }
    const events = matches(page).map((e) => e.resource).filter((r): r is AuditEvent => r?.resourceType === 'AuditEvent');
    const next = page.link?.find((l) => l.relation === 'next')?.url;
    return { total: page.total ?? events.length, events, ...(next && query.count > 0 ? { next: encodeCursor([next]) } : {}) };
  }

  async ping(): Promise<void> {
    await this.call((options) => this.client.capabilityStatement(options));
  }

  close(): Promise<void> {
    return Promise.resolve();
  }

  private options(): RequestOptions {
    return { signal: AbortSignal.timeout(this.timeoutMs) };
  }

  /** One request; what comes back is taken for a Bundle (every answer this store asks for is one). */
  private async call(request: (options: RequestOptions) => Promise<FhirResource>): Promise<Bundle> {
    try {
      return (await request(this.options())) as unknown as Bundle;
    } catch (err) {
      throw unavailable(err);
    }
  }

  private scopeTag(scope: { organizations: readonly string[] }): string {
    return [...new Set(scope.organizations)].map((o) => `${ROUTED_TO_SYSTEM}|${escape(o)}`).join(',');
  }

  private searchParams(query: SearchQuery, scope: Scope): Record<string, string | string[]> {
    const params: Record<string, string | string[]> = {};
    if (query.identifier) params.identifier = tokenValue(query.identifier);
    if (query.patientIdentifier) params['composition.patient.identifier'] = tokenValue(query.patientIdentifier);
    if (query.type) params['composition.type'] = tokenValue(query.type);
    // Repeated `_tag` parameters are ANDed, the comma-separated values of one are ORed (search.html#combining).
    const tags: string[] = [];
    if (query.tag?.length) tags.push(query.tag.map(tokenValue).join(','));
    if (scope !== 'all') tags.push(this.scopeTag(scope));
    if (tags.length) params._tag = tags;
    if (query.lastUpdated?.length) params._lastUpdated = query.lastUpdated.map((p) => `${p.prefix}${p.value}`);
    params._sort = '_lastUpdated';
    if (query.count === 0) params._summary = 'count';
    else params._count = String(query.count);
    return params;
  }

  /** The server URL a cursor stands for, refused unless it is a page of this server the reader may follow. */
  private pageUrl(cursor: string, scope: Scope): string {
    const [url] = decodeCursor(cursor, ['s']) as [string];
    const invalid = new PasserelleError('REQUEST_INVALID', 'The paging cursor is not one this server issued.');
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch {
      throw invalid;
    }
    const base = new URL(`${this.base}/`);
    if (parsed.origin !== base.origin || !`${parsed.pathname}/`.startsWith(base.pathname)) throw invalid;
    if (scope !== 'all') {
      const names = [...parsed.searchParams.keys()];
      const scoped = parsed.searchParams.getAll('_tag').includes(this.scopeTag(scope));
      const token = names.some((k) => PAGE_TOKENS.has(k)) && names.every((k) => PAGING_ONLY.has(k));
      if (!scoped && !token) throw invalid;
    }
    return url;
  }

  /** Marks the documents some stored Bundle replaces (a `supersedes` tag with their key). */
  private async withStatus(docs: StoredDocument[]): Promise<StoredDocument[]> {
    const superseded = new Set<string>();
    const keys = [...new Set(docs.map((d) => d.documentKey))];
    for (let i = 0; i < keys.length; i += STATUS_CHUNK) {
      const chunk = keys.slice(i, i + STATUS_CHUNK);
      if ((await this.countSuperseding(chunk)) === 0) continue;
      for (const k of chunk) if (chunk.length === 1 || (await this.countSuperseding([k])) > 0) superseded.add(k);
    }
    return docs.map((d) => (superseded.has(d.documentKey)
      ? { ...d, status: 'superseded', bundle: { ...d.bundle, meta: { ...d.bundle.meta, tag: [...foreignTags(d.bundle.meta?.tag), statusTag('superseded')] } } }
      : d));
  }

  private async countSuperseding(keys: string[]): Promise<number> {
    const _tag = keys.map((k) => `${SUPERSEDES_SYSTEM}|${encodeKey(k)}`).join(',');
    // POSTed (search.html#search-post): fifty keys would make a long URL.
    const answer = await this.call((options) => this.client.resourceSearch({
      resourceType: 'Bundle', searchParams: { _tag, _summary: 'count' }, options: { ...options, postSearch: true },
    }));
    return answer.total ?? 0;
  }
}

function isEmpty(scope: Scope): boolean {
  return scope !== 'all' && scope.organizations.length === 0;
}

function inScope(doc: StoredDocument, scope: Scope): boolean {
  return scope === 'all' || doc.routedTo.some((o) => scope.organizations.includes(o));
}

function matches(page: Bundle): BundleEntry[] {
  return (page.entry ?? []).filter((e) => e.search?.mode === undefined || e.search.mode === 'match');
}

/** A server Bundle as a stored document; undefined for a Bundle this store did not put there. */
function toDocument(resource: Bundle): StoredDocument | undefined {
  const tags = resource.meta?.tag;
  const keyCode = tagCodes(tags, DOCUMENT_KEY_SYSTEM)[0];
  const documentKey = keyCode === undefined ? undefined : decodeKey(keyCode);
  const lastUpdated = resource.meta?.lastUpdated;
  if (!resource.id || !documentKey || !lastUpdated) return undefined;
  return {
    id: resource.id,
    versionId: resource.meta?.versionId ?? '1',
    lastUpdated,
    documentKey,
    routedTo: tagCodes(tags, ROUTED_TO_SYSTEM),
    status: 'current',
    bundle: { ...resource, meta: { ...resource.meta, tag: [...foreignTags(tags), statusTag('current')] } },
  };
}

function asResource(resource: Bundle | AuditEvent): FhirResource {
  return resource as unknown as FhirResource;
}

function httpStatus(err: unknown): number | undefined {
  const status = (err as { response?: { status?: unknown } } | null)?.response?.status;
  return typeof status === 'number' ? status : undefined;
}

function unavailable(err: unknown): PasserelleError {
  if (err instanceof PasserelleError) return err;
  const status = httpStatus(err);
  return new PasserelleError('STORE_UNAVAILABLE', status ? `The FHIR store answered HTTP ${status}.` : 'The FHIR store could not be reached.');
}
