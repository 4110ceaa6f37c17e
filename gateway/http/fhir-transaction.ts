/**
 * Store-only mode: the writes the external-store adapter (adapters/store/fhir-server.ts) sends,
 * so that one passerelle can be another's FHIR server.
 *
 * `POST /fhir` takes a `transaction` Bundle whose entries are creates of Bundle resources,
 * conditional or not (http.html#transaction, http.html#ccreate). The store's bookkeeping comes
 * from the Bundle's tags (adapters/store/tags.ts). `ifNoneExist` is evaluated as a search; no
 * match → the Bundle is stored (201), one → the existing one is answered (200), several → 412
 * (here STATE_CONFLICT, 409). The store's idempotence on the document key closes the race
 * between that search and the put.
 *
 * Atomicity: every entry is checked before anything is written, so a malformed transaction
 * changes nothing; what can still fail midway is the store itself, and each entry being
 * idempotent, the client's retry of the whole transaction completes it without duplicates.
 *
 * `POST /fhir/AuditEvent` records an audit event (http.html#create; the server assigns the id).
 */
import { randomUUID } from 'node:crypto';
import type { AuditEvent, Bundle, BundleEntry } from '@medplum/fhirtypes';
import type { Middleware } from 'koa';
import type { DocumentStore, PutRequest } from '../../adapters/store/port.js';
import { DOCUMENT_KEY_SYSTEM, ROUTED_TO_SYSTEM, SUPERSEDES_SYSTEM, decodeKey, forCreate, tagCodes } from '../../adapters/store/tags.js';
import { PasserelleError } from '../errors.js';
import { FHIR_JSON } from './errors.js';
import { readResource } from './fhir-body.js';
import { narrowScope, parseBundleSearch, type BundleSearch } from './fhir-search.js';
import type { AppState } from './state.js';

/** A transaction carries whole documents (a PDF-bearing CDA converts to a few MB). */
const TRANSACTION_LIMIT = 64 * 1024 * 1024;
const AUDIT_LIMIT = 1024 * 1024;
const MAX_ENTRIES = 100;

interface Plan { put: PutRequest; criteria?: BundleSearch }

function plan(entry: BundleEntry, index: number): Plan {
  const invalid = (detail: string): PasserelleError => new PasserelleError('REQUEST_INVALID', `entry[${index}]: ${detail}`, `Bundle.entry[${index}]`);
  const request = entry.request;
  if (request?.method !== 'POST' || request.url !== 'Bundle') throw invalid('only creates of Bundle (POST Bundle) are supported.');
  const resource = entry.resource;
  if (resource?.resourceType !== 'Bundle') throw invalid('the resource must be a Bundle.');
  const tags = resource.meta?.tag;
  const keys = tagCodes(tags, DOCUMENT_KEY_SYSTEM);
  const documentKey = keys.length === 1 ? decodeKey(keys[0] as string) : undefined;
  if (!documentKey) throw invalid(`the Bundle needs exactly one valid ${DOCUMENT_KEY_SYSTEM} tag.`);
  const supersedes = tagCodes(tags, SUPERSEDES_SYSTEM).map((c) => {
    const key = decodeKey(c);
    if (!key) throw invalid(`invalid ${SUPERSEDES_SYSTEM} tag.`);
    return key;
  });
  const put: PutRequest = { bundle: forCreate(resource), documentKey, routedTo: tagCodes(tags, ROUTED_TO_SYSTEM), supersedes };
  if (!request.ifNoneExist) return { put };
  const query = request.ifNoneExist.replace(/^\?/, '').replace(/^Bundle\?/, '');
  try {
    return { put, criteria: parseBundleSearch(new URLSearchParams(query)) };
  } catch (err) {
    throw err instanceof PasserelleError ? invalid(`ifNoneExist: ${err.message}`) : err;
  }
}

export function transactionHandler(store: DocumentStore): Middleware<AppState> {
  return async (ctx) => {
    const body = (await readResource(ctx, TRANSACTION_LIMIT)) as unknown as Bundle;
    if (body.resourceType !== 'Bundle' || body.type !== 'transaction') {
      throw new PasserelleError('REQUEST_INVALID', 'POST /fhir takes a Bundle of type transaction.');
    }
    const entries = body.entry ?? [];
    if (!entries.length || entries.length > MAX_ENTRIES) throw new PasserelleError('REQUEST_INVALID', `A transaction holds 1 to ${MAX_ENTRIES} entries.`);
    const plans = entries.map(plan);
    const responses: BundleEntry[] = [];
    for (const p of plans) {
      let id: string | undefined;
      let created = false;
      if (p.criteria) {
        const scope = narrowScope('all', p.criteria.routedTo);
        const found = await store.search({ ...p.criteria.query, count: 2, cursor: undefined }, scope);
        if (found.total > 1) throw new PasserelleError('STATE_CONFLICT', 'ifNoneExist matches several resources.');
        id = found.documents[0]?.id;
      }
      if (!id) ({ id, created } = await store.put(p.put));
      const doc = await store.read(id, 'all');
      if (!doc) throw new PasserelleError('STORE_UNAVAILABLE', 'The stored Bundle could not be read back.');
      responses.push({
        response: {
          status: created ? '201 Created' : '200 OK',
          location: `Bundle/${doc.id}/_history/${doc.versionId}`,
          etag: `W/"${doc.versionId}"`,
          lastModified: doc.lastUpdated,
        },
      });
    }
    ctx.status = 200;
    ctx.body = { resourceType: 'Bundle', id: randomUUID(), type: 'transaction-response', entry: responses } satisfies Bundle;
    ctx.type = FHIR_JSON;
  };
}

export function auditCreateHandler(store: DocumentStore, baseUrl: (ctx: Parameters<Middleware<AppState>>[0]) => string): Middleware<AppState> {
  return async (ctx) => {
    const body = await readResource(ctx, AUDIT_LIMIT);
    if (body.resourceType !== 'AuditEvent') throw new PasserelleError('REQUEST_INVALID', 'POST /fhir/AuditEvent takes an AuditEvent.');
    const event = { ...(body as unknown as AuditEvent), id: randomUUID() };
    await store.recordAudit(event);
    ctx.status = 201;
    ctx.set('Location', `${baseUrl(ctx)}/AuditEvent/${event.id}/_history/1`);
    ctx.body = event;
    ctx.type = FHIR_JSON;
  };
}
