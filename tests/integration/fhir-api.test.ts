/**
 * The PTA pull API over real HTTP on loopback: a Koa app with the gateway's error handler,
 * bearer authentication and the FHIR router over the built-in store (a SQLite temp file), the
 * documents being the corpus converted by convertCda. Who may read what (CONTRACT.md, HTTP API),
 * conditional reads, paging, incremental pulls, strict search parameters, audit.
 */
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AuditEvent, Bundle, CapabilityStatement, OperationOutcome, Resource } from '@medplum/fhirtypes';
import Koa from 'koa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openStore } from '../../adapters/store/open.js';
import type { DocumentStore, PutRequest } from '../../adapters/store/port.js';
import { convertCda } from '../../gateway/cda/convert.js';
import { ERROR_CODE_SYSTEM } from '../../gateway/errors.js';
import { authenticate, type ClientConfig } from '../../gateway/http/auth.js';
import { errorHandler } from '../../gateway/http/errors.js';
import { fhirRouter } from '../../gateway/http/fhir-router.js';
import type { AppState } from '../../gateway/http/state.js';
import { corpusDocument } from '../support/corpus.js';
import { validateWithStructureDefinitions } from '../support/fhir-validator.js';

const convert = (name: string): Bundle => convertCda(corpusDocument(name)).bundle;
const BIO = convert('BIO-CR-BIO_2024.01_TSH_1.xml');
const CSE = convert('CSE-MDE_2023.01.xml');

const ORG = {
  est: 'urn:oid:1.2.250.1.71.4.2.2|dac-est',
  sud: 'urn:oid:1.2.250.1.71.4.2.2|dac-sud',
  paging: 'urn:oid:1.2.250.1.71.4.2.2|dac-paging',
  pull: 'urn:oid:1.2.250.1.71.4.2.2|dac-pull',
};
const CLIENTS: ClientConfig[] = [
  { id: 'pta-est', token: 'token-pta-est', role: 'pta', organization: ORG.est },
  { id: 'pta-sud', token: 'token-pta-sud', role: 'pta', organization: ORG.sud },
  { id: 'pta-paging', token: 'token-pta-paging', role: 'pta', organization: ORG.paging },
  { id: 'pta-pull', token: 'token-pta-pull', role: 'pta', organization: ORG.pull },
  { id: 'pta-nowhere', token: 'token-pta-nowhere', role: 'pta' },
  { id: 'ops', token: 'token-ops', role: 'admin' },
  { id: 'chu-nice', token: 'token-chu-nice', role: 'sender', organization: '060785011' },
];

let counter = 0;
function documentOf(base: Bundle, routedTo: string[], extra: Partial<PutRequest> = {}): PutRequest {
  counter += 1;
  const bundle = structuredClone(base);
  bundle.identifier = { system: 'urn:ietf:rfc:3986', value: `urn:uuid:${randomUUID()}` };
  return { bundle, documentKey: `api-test|${counter}`, routedTo, supersedes: [], ...extra };
}

let dir: string;
let store: DocumentStore;
let server: http.Server;
let origin: string;
const unexpected: unknown[] = [];
let estDoc: PutRequest;
let estId: string;
let sudId: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'passerelle-api-'));
  store = await openStore({ database: `sqlite:${join(dir, 'passerelle.db')}`, fhirBaseUrl: null });
  const app = new Koa<AppState>();
  app.use(errorHandler((err) => unexpected.push(err)));
  app.use(authenticate(CLIENTS));
  const router = fhirRouter({ store, baseUrl: () => origin });
  app.use(router.routes());
  app.use(router.allowedMethods());
  const handle = app.callback(); // Koa answers its own errors: nothing is left to await
  server = http.createServer((req, res) => {
    void handle(req, res);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  estDoc = documentOf(BIO, [ORG.est]);
  estId = (await store.put(estDoc)).id;
  sudId = (await store.put(documentOf(CSE, [ORG.sud]))).id;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  await store.close();
  rmSync(dir, { recursive: true, force: true });
  expect(unexpected).toEqual([]);
});

const tokenOf = (client: string): string => CLIENTS.find((c) => c.id === client)?.token ?? client;
async function get(path: string, as?: string, headers: Record<string, string> = {}): Promise<Response> {
  const url = path.startsWith('http') ? path : `${origin}${path}`;
  return fetch(url, { headers: { ...(as ? { authorization: `Bearer ${tokenOf(as)}` } : {}), ...headers } });
}
async function json<T>(response: Response): Promise<T> {
  expect(response.headers.get('content-type')).toMatch(/^application\/fhir\+json/);
  return (await response.json()) as T;
}
/** Any resource, checked by the tests' independent R4 validator (as the entry of a collection Bundle). */
const validateResource = (resource: Resource): string[] =>
  validateWithStructureDefinitions({ resourceType: 'Bundle', type: 'collection', entry: [{ fullUrl: `urn:uuid:${randomUUID()}`, resource }] });
const errorCode = (outcome: OperationOutcome): string | undefined => {
  const coding = outcome.issue[0]?.details?.coding?.[0];
  return coding?.system === ERROR_CODE_SYSTEM ? coding.code : undefined;
};

describe('GET /fhir/metadata', () => {
  it('serves an R4 CapabilityStatement to anyone', async () => {
    const res = await get('/fhir/metadata');
    expect(res.status).toBe(200);
    const cs = await json<CapabilityStatement>(res);
    expect(cs).toMatchObject({ resourceType: 'CapabilityStatement', fhirVersion: '4.0.1', kind: 'instance', status: 'active' });
    const bundle = cs.rest?.[0]?.resource?.find((r) => r.type === 'Bundle');
    expect(bundle?.interaction?.map((i) => i.code)).toEqual(['read', 'search-type']);
    expect(bundle?.searchParam?.map((p) => p.name)).toEqual(expect.arrayContaining(['identifier', 'composition', '_lastUpdated']));
    expect(cs.rest?.[0]?.resource?.some((r) => r.type === 'AuditEvent')).toBe(true);
    expect(validateResource(cs)).toEqual([]);
  });
});

describe('tenancy', () => {
  type Op = 'read own' | 'read other' | 'search' | 'audit' | 'metadata';
  const path = (op: Op, as: string): string => {
    const own = as === 'pta-sud' ? sudId : estId;
    const other = as === 'pta-sud' ? estId : sudId;
    return { 'read own': `/fhir/Bundle/${own}`, 'read other': `/fhir/Bundle/${other}`, search: '/fhir/Bundle', audit: '/fhir/AuditEvent', metadata: '/fhir/metadata' }[op];
  };
  // [client (undefined: anonymous; 'forged': an unknown token), operation, status, error code]
  const matrix: [string | undefined, Op, number, string?][] = [
    ['pta-est', 'read own', 200], ['pta-est', 'read other', 404, 'NOT_FOUND'], ['pta-est', 'search', 200], ['pta-est', 'audit', 403, 'AUTH_FORBIDDEN'],
    ['pta-sud', 'read own', 200], ['pta-sud', 'read other', 404, 'NOT_FOUND'], ['pta-sud', 'search', 200], ['pta-sud', 'audit', 403, 'AUTH_FORBIDDEN'],
    ['ops', 'read own', 200], ['ops', 'read other', 200], ['ops', 'search', 200], ['ops', 'audit', 200],
    ['chu-nice', 'read own', 403, 'AUTH_FORBIDDEN'], ['chu-nice', 'read other', 403, 'AUTH_FORBIDDEN'], ['chu-nice', 'search', 403, 'AUTH_FORBIDDEN'], ['chu-nice', 'audit', 403, 'AUTH_FORBIDDEN'],
    [undefined, 'read own', 401, 'AUTH_REQUIRED'], [undefined, 'search', 401, 'AUTH_REQUIRED'], [undefined, 'audit', 401, 'AUTH_REQUIRED'], [undefined, 'metadata', 200],
    ['forged', 'read own', 401, 'AUTH_REQUIRED'], ['forged', 'search', 401, 'AUTH_REQUIRED'], ['forged', 'audit', 401, 'AUTH_REQUIRED'], ['forged', 'metadata', 401, 'AUTH_REQUIRED'],
  ];
  it.each(matrix)('%s: %s → %i', async (as, op, status, code) => {
    const res = await get(path(op, as ?? 'anonymous'), as);
    expect(res.status).toBe(status);
    const body = await json<OperationOutcome | Bundle>(res);
    if (code) expect(errorCode(body as OperationOutcome)).toBe(code);
    if (status === 401) expect(res.headers.get('www-authenticate')).toMatch(/^Bearer/);
  });

  it('answers a PTA reading another organization\'s Bundle exactly as for a Bundle that does not exist', async () => {
    const other = await get(`/fhir/Bundle/${sudId}`, 'pta-est');
    const missing = await get(`/fhir/Bundle/${randomUUID()}`, 'pta-est');
    expect(other.status).toBe(404);
    expect(missing.status).toBe(other.status);
    const headers = (r: Response): Record<string, string> => {
      const h = Object.fromEntries(r.headers);
      delete h.date;
      return h;
    };
    expect(headers(other)).toEqual(headers(missing));
    expect(await other.text()).toBe(await missing.text());
  });

  it('searches only within the PTA\'s own Bundles', async () => {
    const est = await json<Bundle>(await get('/fhir/Bundle?_count=100', 'pta-est'));
    expect(est.total).toBe(1);
    expect(est.entry?.map((e) => e.resource?.id)).toEqual([estId]);
    // Asking for another organization's routing tag narrows, never widens.
    const tag = encodeURIComponent(`https://passerelle.dev/fhir/CodeSystem/routed-to|${ORG.sud}`);
    expect((await json<Bundle>(await get(`/fhir/Bundle?_tag=${tag}`, 'pta-est'))).total).toBe(0);
    expect((await json<Bundle>(await get(`/fhir/Bundle?_tag=${tag}`, 'ops'))).entry?.map((e) => e.resource?.id)).toEqual([sudId]);
    expect((await json<Bundle>(await get('/fhir/Bundle', 'pta-nowhere'))).total).toBe(0);
    const all = await json<Bundle>(await get('/fhir/Bundle?_count=100', 'ops'));
    expect(all.entry?.map((e) => e.resource?.id)).toEqual(expect.arrayContaining([estId, sudId]));
  });
});

describe('GET /fhir/Bundle/{id}', () => {
  it('serves the stored document with ETag and Last-Modified, and 304 on If-None-Match', async () => {
    const req = documentOf(BIO, [ORG.est]);
    const { id } = await store.put(req);
    const res = await get(`/fhir/Bundle/${id}`, 'pta-est');
    expect(res.status).toBe(200);
    const bundle = await json<Bundle>(res);
    expect(bundle).toMatchObject({ resourceType: 'Bundle', id, type: 'document', identifier: req.bundle.identifier, meta: { versionId: '1' } });
    expect(validateWithStructureDefinitions(bundle)).toEqual([]);
    expect(res.headers.get('etag')).toBe('W/"1"');
    const lastModified = res.headers.get('last-modified') ?? '';
    expect(new Date(lastModified).getTime()).toBe(Math.floor(Date.parse(bundle.meta?.lastUpdated ?? '') / 1000) * 1000);

    for (const tag of ['W/"1"', '"1"', '*', 'W/"7", W/"1"']) {
      const cached = await get(`/fhir/Bundle/${id}`, 'pta-est', { 'if-none-match': tag });
      expect(cached.status).toBe(304);
      expect(cached.headers.get('etag')).toBe('W/"1"');
      expect(await cached.text()).toBe('');
    }
    expect((await get(`/fhir/Bundle/${id}`, 'pta-est', { 'if-none-match': 'W/"2"' })).status).toBe(200);

    // Replaced: a new version, the old ETag no longer matches.
    await store.put(documentOf(BIO, [ORG.est], { supersedes: [req.documentKey] }));
    const replaced = await get(`/fhir/Bundle/${id}`, 'pta-est', { 'if-none-match': 'W/"1"' });
    expect(replaced.status).toBe(200);
    expect(replaced.headers.get('etag')).toBe('W/"2"');
    expect((await json<Bundle>(replaced)).meta?.tag).toContainEqual({ system: 'https://passerelle.dev/fhir/CodeSystem/document-status', code: 'superseded' });
  });
});

describe('GET /fhir/Bundle?…', () => {
  it('pages through every document by following the next links to the end', async () => {
    const stored: string[] = [];
    for (let i = 0; i < 25; i++) stored.push((await store.put(documentOf(CSE, [ORG.paging]))).id);
    const seen: string[] = [];
    const sizes: number[] = [];
    let url: string | undefined = `${origin}/fhir/Bundle?_count=10`;
    let first = true;
    while (url) {
      const page: Bundle = await json<Bundle>(await get(url, 'pta-paging'));
      expect(page).toMatchObject({ resourceType: 'Bundle', type: 'searchset', total: 25 });
      if (first) {
        // The support validator resolves urn:uuid references against the outer Bundle only; each
        // document resolves its own (bundle.html#references), so it is checked on its own too.
        const own = /^Bundle\.entry\[\d+\]\.resource\.entry\[.*does not resolve to any Bundle\.entry\.fullUrl$/;
        expect(validateWithStructureDefinitions(page).filter((i) => !own.test(i))).toEqual([]);
        expect(validateWithStructureDefinitions(page.entry?.[0]?.resource)).toEqual([]);
      }
      if (first) expect(page.link?.find((l) => l.relation === 'self')?.url).toBe(`${origin}/fhir/Bundle?_count=10`);
      first = false;
      for (const e of page.entry ?? []) {
        expect(e.search?.mode).toBe('match');
        expect(e.fullUrl).toBe(`${origin}/fhir/Bundle/${e.resource?.id}`);
        seen.push(e.resource?.id ?? '');
      }
      sizes.push(page.entry?.length ?? 0);
      url = page.link?.find((l) => l.relation === 'next')?.url;
      if (url) expect(url.startsWith(`${origin}/fhir/Bundle?`)).toBe(true);
    }
    expect(sizes).toEqual([10, 10, 5]);
    expect(seen).toEqual(stored);
  });

  it('caps _count at 100 and defaults to 20', async () => {
    const capped = await json<Bundle>(await get('/fhir/Bundle?_count=5000', 'pta-paging'));
    expect(capped.entry).toHaveLength(25);
    expect(capped.link?.find((l) => l.relation === 'self')?.url).toContain('_count=100');
    const defaulted = await json<Bundle>(await get('/fhir/Bundle', 'pta-paging'));
    expect(defaulted.entry).toHaveLength(20);
  });

  it('answers _summary=count with the total only', async () => {
    const res = await get('/fhir/Bundle?_summary=count', 'pta-paging');
    expect(res.status).toBe(200);
    const bundle = await json<Bundle>(res);
    expect(bundle).toMatchObject({ resourceType: 'Bundle', type: 'searchset', total: 25 });
    expect(bundle.entry).toBeUndefined();
    expect(bundle.link?.map((l) => l.relation)).toEqual(['self']);
    expect(validateResource(bundle)).toEqual([]);
  });

  it('lets a PTA polling _lastUpdated=gt<last seen> miss nothing while two store instances write', async () => {
    const second = await openStore({ database: `sqlite:${join(dir, 'passerelle.db')}`, fhirBaseUrl: null });
    const written: string[] = [];
    const writer = async (s: DocumentStore, n: number): Promise<void> => {
      for (let i = 0; i < n; i++) written.push((await s.put(documentOf(i % 2 ? BIO : CSE, [ORG.pull]))).id);
    };
    const seen: string[] = [];
    let last: string | undefined;
    const poll = async (): Promise<void> => {
      let url: string | undefined = `/fhir/Bundle?_count=7${last ? `&_lastUpdated=gt${encodeURIComponent(last)}` : ''}`;
      while (url) {
        const page: Bundle = await json<Bundle>(await get(url, 'pta-pull'));
        for (const e of page.entry ?? []) {
          seen.push(e.resource?.id ?? '');
          last = e.resource?.meta?.lastUpdated;
        }
        url = page.link?.find((l) => l.relation === 'next')?.url;
      }
    };
    let done = false;
    const writing = Promise.all([writer(store, 20), writer(second, 20)]).finally(() => {
      done = true;
    });
    while (!done) await poll();
    await writing;
    await poll();
    await second.close();
    expect(seen.length).toBe(new Set(seen).size);
    expect([...seen].sort()).toEqual([...written].sort());
  });

  it('searches by identifier, patient identifier and type, in GET and in POST _search', async () => {
    const q = new URLSearchParams({
      identifier: `${estDoc.bundle.identifier?.system}|${estDoc.bundle.identifier?.value}`,
      'composition.patient.identifier': 'urn:oid:1.2.250.1.213.1.4.10|279035121518989',
      'composition.type': 'http://loinc.org|11502-2',
    });
    const byGet = await json<Bundle>(await get(`/fhir/Bundle?${q}`, 'pta-est'));
    expect(byGet.total).toBe(1);
    expect(byGet.entry?.[0]?.resource?.id).toBe(estId);
    const res = await fetch(`${origin}/fhir/Bundle/_search`, {
      method: 'POST',
      headers: { authorization: 'Bearer token-pta-est', 'content-type': 'application/x-www-form-urlencoded' },
      body: q.toString(),
    });
    expect(res.status).toBe(200);
    const byPost = await json<Bundle>(res);
    expect(byPost.entry?.map((e) => e.resource?.id)).toEqual([estId]);
    expect((await json<Bundle>(await get('/fhir/Bundle?composition.type=http://loinc.org|29274-8', 'pta-est'))).total).toBe(0);
  });

  it.each([
    ['an unknown parameter', 'foo=bar'],
    ['an unsupported modifier', 'identifier:exact=x'],
    ['a malformed date', '_lastUpdated=gt2024-13-45'],
    ['a date with garbage', '_lastUpdated=yesterday'],
    ['an unsupported prefix', '_lastUpdated=sa2024-01-01'],
    ['a negative _count', '_count=-1'],
    ['a non-numeric _count', '_count=ten'],
    ['an unsupported _summary', '_summary=true'],
    ['a forged cursor', '_cursor=not-a-cursor'],
    ['a repeated identifier', 'identifier=a&identifier=b'],
    ['an OR list where none is supported', 'composition.type=a,b'],
    ['a sort we do not do', '_sort=-_lastUpdated'],
    ['XML', '_format=xml'],
  ])('refuses %s with 400 REQUEST_INVALID', async (_what, query) => {
    const res = await get(`/fhir/Bundle?${query}`, 'pta-est');
    expect(res.status).toBe(400);
    expect(errorCode(await json<OperationOutcome>(res))).toBe('REQUEST_INVALID');
  });

  it('ignores unknown parameters under Prefer: handling=lenient, and empty ones always', async () => {
    expect((await get('/fhir/Bundle?foo=bar', 'pta-est', { prefer: 'handling=lenient' })).status).toBe(200);
    expect((await get('/fhir/Bundle?identifier=&_count=', 'pta-est')).status).toBe(200);
  });
});

describe('audit', () => {
  it('records every read and search by a client, and serves them to admins only', async () => {
    const missing = randomUUID();
    await get(`/fhir/Bundle/${estId}`, 'pta-est');
    await get(`/fhir/Bundle/${missing}`, 'pta-est');
    await get(`/fhir/Bundle/${sudId}`, 'pta-est');
    await get('/fhir/Bundle?composition.type=http://loinc.org|11502-2', 'pta-est');
    await get(`/fhir/Bundle/${estId}`, 'chu-nice');

    const res = await get('/fhir/AuditEvent?agent=pta-est&_count=100', 'ops');
    expect(res.status).toBe(200);
    const found = await json<Bundle>(res);
    const events = (found.entry ?? []).map((e) => e.resource as AuditEvent);
    for (const e of events.slice(0, 5)) expect(validateResource(e)).toEqual([]);
    const reads = (reference: string): AuditEvent[] => events.filter((e) => e.entity?.some((x) => x.what?.reference === reference) && e.subtype?.[0]?.code === 'read');
    expect(reads(`Bundle/${estId}`)[0]).toMatchObject({
      type: { code: 'rest' }, action: 'R', outcome: '0',
      agent: [{ altId: 'pta-est', requestor: true, role: [{ coding: [{ code: 'pta' }] }] }],
    });
    // Not found and not visible are recorded alike, as the client's failure.
    expect(reads(`Bundle/${missing}`)[0]).toMatchObject({ outcome: '4', outcomeDesc: 'NOT_FOUND' });
    expect(reads(`Bundle/${sudId}`)[0]).toMatchObject({ outcome: '4', outcomeDesc: 'NOT_FOUND' });
    const search = events.find((e) => e.subtype?.[0]?.code === 'search-type' && e.entity?.some((x) => x.what?.reference === `Bundle/${estId}`));
    expect(search).toMatchObject({ action: 'E', outcome: '0' });
    const query = search?.entity?.find((x) => x.query)?.query ?? '';
    expect(Buffer.from(query, 'base64').toString('utf8')).toContain('composition.type=http%3A%2F%2Floinc.org%7C11502-2');

    const byEntity = await json<Bundle>(await get(`/fhir/AuditEvent?entity=Bundle/${estId}&_count=100`, 'ops'));
    const readers = new Set(byEntity.entry?.map((e) => (e.resource as AuditEvent).agent[0]?.altId));
    // Attempts too: pta-sud's (not visible: 404) and the sender's (refused: 403).
    expect(readers).toEqual(new Set(['pta-est', 'pta-sud', 'ops', 'chu-nice']));
    const refused = byEntity.entry?.map((e) => e.resource as AuditEvent).find((e) => e.agent[0]?.altId === 'chu-nice');
    expect(refused).toMatchObject({ outcome: '4', outcomeDesc: 'AUTH_FORBIDDEN' });

    const paged = await json<Bundle>(await get('/fhir/AuditEvent?agent=pta-est&_count=2', 'ops'));
    expect(paged.entry).toHaveLength(2);
    const next = paged.link?.find((l) => l.relation === 'next')?.url ?? '';
    expect(next.startsWith(`${origin}/fhir/AuditEvent?`)).toBe(true);
    expect((await get(next, 'ops')).status).toBe(200);
    expect((await get('/fhir/AuditEvent?unknown=1', 'ops')).status).toBe(400);
  });
});
