/**
 * One contract for every DocumentStore: the built-in store on SQLite (a temp file) and on
 * PostgreSQL (a database of its own on the server at 127.0.0.1:5432, dropped afterwards), and the
 * external-FHIR-server adapter talking over loopback to a real passerelle in store-only mode (the
 * FHIR router over a SQLite store). Documents are real: the corpus converted by convertCda, made
 * distinct by their identifier and document key; each test routes its documents to organizations
 * of its own, so that tests sharing a database never see each other's documents.
 */
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AuditEvent, Bundle } from '@medplum/fhirtypes';
import Koa from 'koa';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeCursor } from '../../adapters/store/cursor.js';
import { FhirServerStore } from '../../adapters/store/fhir-server.js';
import { microsOfInstant } from '../../adapters/store/instant.js';
import { openStore } from '../../adapters/store/open.js';
import type { DocumentStore, PutRequest, Scope, SearchQuery, StoredDocument } from '../../adapters/store/port.js';
import type { SqlStoreOptions } from '../../adapters/store/sql.js';
import { DOCUMENT_STATUS_SYSTEM } from '../../adapters/store/tags.js';
import { convertCda } from '../../gateway/cda/convert.js';
import { PasserelleError } from '../../gateway/errors.js';
import { authenticate } from '../../gateway/http/auth.js';
import { errorHandler } from '../../gateway/http/errors.js';
import { fhirRouter } from '../../gateway/http/fhir-router.js';
import type { AppState } from '../../gateway/http/state.js';
import { corpusDocument } from '../support/corpus.js';
import { validateWithStructureDefinitions } from '../support/fhir-validator.js';

const convert = (name: string): Bundle => convertCda(corpusDocument(name)).bundle;
/** Patient INS-NIR-TEST 1.2.250.1.213.1.4.10|279035121518989, PI urn:oid:1.2.3.4.567.8.9.10|1234567890121, LOINC 11502-2. */
const BIO = convert('BIO-CR-BIO_2024.01_TSH_1.xml');
/** Patient INS-NIR 1.2.250.1.213.1.4.8|222127505611201, PI urn:oid:1.2.3.4.5.6.7.8.9.10|1234567890121, LOINC 29274-8. */
const CSE = convert('CSE-MDE_2023.01.xml');
/** Same patient as BIO, LOINC 11490-0. */
const LDL = convert('LDL-SES_2022.01.xml');

const INS_TEST = { system: 'urn:oid:1.2.250.1.213.1.4.10', value: '279035121518989' };
const INS_CSE = { system: 'urn:oid:1.2.250.1.213.1.4.8', value: '222127505611201' };

const RUN = randomUUID();
let counter = 0;
/** A distinct document made from a corpus Bundle: its own identifier and key. */
function documentOf(base: Bundle, routedTo: string[], extra: Partial<PutRequest> = {}): PutRequest {
  counter += 1;
  const bundle = structuredClone(base);
  bundle.identifier = { system: 'urn:ietf:rfc:3986', value: `urn:uuid:${randomUUID()}` };
  return { bundle, documentKey: `1.2.250.1.999.${RUN}|${counter}`, routedTo, supersedes: [], ...extra };
}
/** An organization of the test's own (identifier system|value, as routing records it). */
const organization = (): string => `urn:oid:1.2.250.1.71.4.2.2|${randomUUID()}`;
const micros = (instant: string): number => {
  const m = microsOfInstant(instant);
  if (m === undefined) throw new Error(`not an instant: ${instant}`);
  return m;
};
const FHIR_INSTANT = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$/;

async function all(store: DocumentStore, query: Omit<SearchQuery, 'count'>, scope: Scope, count = 7): Promise<StoredDocument[]> {
  const found: StoredDocument[] = [];
  let cursor: string | undefined;
  do {
    const page = await store.search({ ...query, count, ...(cursor ? { cursor } : {}) }, scope);
    found.push(...page.documents);
    cursor = page.next;
  } while (cursor);
  return found;
}

const ids = (docs: { id: string }[]): string[] => docs.map((d) => d.id);

async function listen(app: Koa<AppState>): Promise<{ server: http.Server; origin: string }> {
  const handle = app.callback(); // Koa answers its own errors: nothing is left to await
  const server = http.createServer((req, res) => {
    void handle(req, res);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, origin: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
}
const closeServer = (server: http.Server): Promise<void> => new Promise((resolve) => {
  server.closeAllConnections();
  server.close(() => resolve());
});

interface Environment {
  open(options?: SqlStoreOptions): Promise<DocumentStore>;
  teardown(): Promise<void>;
}
interface Backend { name: string; builtIn: boolean; setup(): Promise<Environment> }

function tracked(open: (options?: SqlStoreOptions) => Promise<DocumentStore>, cleanup: () => Promise<void>): Environment {
  const opened: DocumentStore[] = [];
  return {
    async open(options) {
      const store = await open(options);
      opened.push(store);
      return store;
    },
    async teardown() {
      for (const s of opened) await s.close();
      await cleanup();
    },
  };
}

const PG_ADMIN = 'postgres://postgres@127.0.0.1:5432/postgres';

const BACKENDS: Backend[] = [
  {
    name: 'built-in SQLite',
    builtIn: true,
    async setup() {
      const dir = mkdtempSync(join(tmpdir(), 'passerelle-store-'));
      const database = `sqlite:${join(dir, 'passerelle.db')}`;
      return tracked((options) => openStore({ database, fhirBaseUrl: null }, options), () => {
        rmSync(dir, { recursive: true, force: true });
        return Promise.resolve();
      });
    },
  },
  {
    name: 'built-in PostgreSQL',
    builtIn: true,
    async setup() {
      const name = `passerelle_store_${randomUUID().replace(/-/g, '')}`;
      const admin = new pg.Client({ connectionString: PG_ADMIN });
      await admin.connect();
      await admin.query(`CREATE DATABASE ${name}`);
      const database = `postgres://postgres@127.0.0.1:5432/${name}`;
      return tracked((options) => openStore({ database, fhirBaseUrl: null }, options), async () => {
        await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
        await admin.end();
      });
    },
  },
  {
    name: 'external FHIR server (a passerelle in store-only mode)',
    builtIn: false,
    async setup() {
      const dir = mkdtempSync(join(tmpdir(), 'passerelle-peer-'));
      const peerStore = await openStore({ database: `sqlite:${join(dir, 'peer.db')}`, fhirBaseUrl: null });
      const app = new Koa<AppState>();
      app.use(errorHandler(() => undefined));
      app.use(authenticate([{ id: 'gateway', token: 'peer-token', role: 'admin' }]));
      let origin = '';
      const router = fhirRouter({ store: peerStore, baseUrl: () => origin, storeOnly: true });
      app.use(router.routes());
      app.use(router.allowedMethods());
      const listening = await listen(app);
      origin = listening.origin;
      return tracked(() => Promise.resolve(new FhirServerStore({ baseUrl: `${origin}/fhir`, bearerToken: 'peer-token' })), async () => {
        await closeServer(listening.server);
        await peerStore.close();
        rmSync(dir, { recursive: true, force: true });
      });
    },
  },
];

describe.each(BACKENDS)('DocumentStore contract: $name', (backend) => {
  let env: Environment;
  beforeAll(async () => {
    env = await backend.setup();
  });
  afterAll(async () => {
    await env.teardown();
  });

  it('stores a document once per documentKey and reads it back as served', async () => {
    const store = await env.open();
    const org = organization();
    const request = documentOf(BIO, [org]);
    const first = await store.put(request);
    expect(first.created).toBe(true);
    expect(await store.put(request)).toEqual({ id: first.id, created: false });
    // A re-post of the same document with other content is still the same document.
    expect(await store.put({ ...request, bundle: structuredClone(LDL) })).toEqual({ id: first.id, created: false });

    const doc = await store.read(first.id, { organizations: [org] });
    expect(doc).toMatchObject({ id: first.id, versionId: '1', documentKey: request.documentKey, routedTo: [org], status: 'current' });
    const bundle = doc?.bundle as Bundle;
    expect(bundle.id).toBe(first.id);
    expect(bundle.meta?.versionId).toBe('1');
    expect(bundle.meta?.lastUpdated).toBe(doc?.lastUpdated);
    expect(doc?.lastUpdated).toMatch(FHIR_INSTANT);
    expect(bundle.meta?.tag).toContainEqual({ system: DOCUMENT_STATUS_SYSTEM, code: 'current' });
    expect(bundle.identifier).toEqual(request.bundle.identifier);
    expect(bundle.entry).toEqual(request.bundle.entry);
    expect(validateWithStructureDefinitions(bundle)).toEqual([]);
    expect(await store.search({ identifier: request.bundle.identifier as { value: string }, count: 10 }, 'all')).toMatchObject({ total: 1 });
  });

  it('stores one document when two instances put it concurrently', async () => {
    const [a, b] = [await env.open(), await env.open()];
    const org = organization();
    const request = documentOf(CSE, [org]);
    const results = await Promise.all([a.put(request), b.put(request), a.put(request), b.put(request)]);
    expect(results.filter((r) => r.created)).toHaveLength(1);
    expect(new Set(results.map((r) => r.id)).size).toBe(1);
    const found = await b.search({ count: 10 }, { organizations: [org] });
    expect(found.total).toBe(1);
  });

  it('marks replaced documents superseded, whichever arrives first', async () => {
    const store = await env.open();
    const org = organization();
    const scope = { organizations: [org] };
    const original = documentOf(BIO, [org]);
    const a = await store.put(original);
    const before = await store.read(a.id, scope);
    const replacement = documentOf(BIO, [org], { supersedes: [original.documentKey] });
    const b = await store.put(replacement);
    const after = await store.read(a.id, scope);
    expect(after?.status).toBe('superseded');
    expect(after?.bundle.meta?.tag).toContainEqual({ system: DOCUMENT_STATUS_SYSTEM, code: 'superseded' });
    expect(after?.bundle.meta?.tag).not.toContainEqual({ system: DOCUMENT_STATUS_SYSTEM, code: 'current' });
    expect((await store.read(b.id, scope))?.status).toBe('current');
    expect(await store.put(replacement)).toEqual({ id: b.id, created: false });
    if (backend.builtIn) {
      // A new version: pollers see the change, an old ETag no longer matches.
      expect(after?.versionId).toBe('2');
      expect(micros(after?.lastUpdated ?? '')).toBeGreaterThan(micros(before?.lastUpdated ?? ''));
      const changed = await store.search({ lastUpdated: [{ prefix: 'gt', value: (await store.read(b.id, scope))?.lastUpdated ?? '' }], count: 10 }, scope);
      expect(ids(changed.documents)).toEqual([a.id]);
    }

    // The replacement first, the replaced document late: stored superseded.
    const late = documentOf(LDL, [org]);
    const d = await store.put(documentOf(LDL, [org], { supersedes: [late.documentKey] }));
    const c = await store.put(late);
    expect((await store.read(c.id, scope))?.status).toBe('superseded');
    expect((await store.read(d.id, scope))?.status).toBe('current');
  });

  it('searches by identifier, patient identifier (every one), type, tag and lastUpdated', async () => {
    const store = await env.open();
    const org = organization();
    const scope = { organizations: [org] };
    const bio = documentOf(BIO, [org]);
    const cse = documentOf(CSE, [org]);
    const ldl = documentOf(LDL, [org]);
    ldl.bundle.meta = { tag: [{ system: 'urn:test:tag', code: 'urgent' }] };
    const stored: string[] = [];
    for (const r of [bio, cse, ldl]) stored.push((await store.put(r)).id);
    const [idBio, idCse, idLdl] = stored as [string, string, string];
    const find = async (query: Omit<SearchQuery, 'count'>): Promise<string[]> => ids(await all(store, query, scope)).sort();
    const sorted = (...xs: string[]): string[] => [...xs].sort();

    const bioId = bio.bundle.identifier as { system: string; value: string };
    expect(await find({ identifier: bioId })).toEqual([idBio]);
    expect(await find({ identifier: { value: bioId.value } })).toEqual([idBio]);
    expect(await find({ identifier: { system: '', value: bioId.value } })).toEqual([]);
    expect(await find({ identifier: { system: 'urn:other', value: bioId.value } })).toEqual([]);

    expect(await find({ patientIdentifier: INS_TEST })).toEqual(sorted(idBio, idLdl));
    expect(await find({ patientIdentifier: INS_CSE })).toEqual([idCse]);
    expect(await find({ patientIdentifier: { system: 'urn:oid:1.2.3.4.567.8.9.10', value: '1234567890121' } })).toEqual(sorted(idBio, idLdl));
    expect(await find({ patientIdentifier: { value: '1234567890121' } })).toEqual(sorted(idBio, idCse, idLdl));
    expect(await find({ patientIdentifier: { system: INS_CSE.system, value: '' } })).toEqual([idCse]);
    expect(await find({ patientIdentifier: { value: '279035121518988' } })).toEqual([]);

    expect(await find({ type: { system: 'http://loinc.org', value: '11502-2' } })).toEqual([idBio]);
    expect(await find({ type: { value: '29274-8' } })).toEqual([idCse]);
    expect(await find({ type: { system: 'http://snomed.info/sct', value: '29274-8' } })).toEqual([]);
    expect(await find({ patientIdentifier: INS_TEST, type: { system: 'http://loinc.org', value: '11490-0' } })).toEqual([idLdl]);

    expect(await find({ tag: [{ system: 'urn:test:tag', value: 'urgent' }] })).toEqual([idLdl]);
    expect(await find({ tag: [{ system: 'urn:test:tag', value: 'other' }, { value: 'urgent' }] })).toEqual([idLdl]);
    expect(await find({ tag: [{ system: 'urn:test:tag', value: 'other' }] })).toEqual([]);

    const docs = await all(store, {}, scope);
    expect(ids(docs)).toEqual([idBio, idCse, idLdl]);
    const [t1, t2, t3] = docs.map((d) => d.lastUpdated) as [string, string, string];
    expect(micros(t1)).toBeLessThan(micros(t2));
    expect(micros(t2)).toBeLessThan(micros(t3));
    expect(await find({ lastUpdated: [{ prefix: 'gt', value: t1 }] })).toEqual(sorted(idCse, idLdl));
    expect(await find({ lastUpdated: [{ prefix: 'ge', value: t2 }] })).toEqual(sorted(idCse, idLdl));
    expect(await find({ lastUpdated: [{ prefix: 'lt', value: t2 }] })).toEqual([idBio]);
    expect(await find({ lastUpdated: [{ prefix: 'le', value: t2 }] })).toEqual(sorted(idBio, idCse));
    expect(await find({ lastUpdated: [{ prefix: 'eq', value: t2 }] })).toEqual([idCse]);
    expect(await find({ lastUpdated: [{ prefix: 'gt', value: t1 }, { prefix: 'lt', value: t3 }] })).toEqual([idCse]);
    expect(await find({ lastUpdated: [{ prefix: 'ge', value: t1.slice(0, 4) }] })).toEqual(sorted(idBio, idCse, idLdl));
    expect(await find({ lastUpdated: [{ prefix: 'gt', value: t3 }] })).toEqual([]);
  });

  it('shows a reader only what is routed to its organizations', async () => {
    const store = await env.open();
    const [orgA, orgB] = [organization(), organization()];
    const a = await store.put(documentOf(BIO, [orgA]));
    const b = await store.put(documentOf(CSE, [orgB]));
    const ab = await store.put(documentOf(LDL, [orgA, orgB]));
    expect(await store.read(a.id, { organizations: [orgA] })).toBeDefined();
    expect(await store.read(a.id, { organizations: [orgB] })).toBeUndefined();
    expect(await store.read(a.id, { organizations: [] })).toBeUndefined();
    expect((await store.read(a.id, 'all'))?.id).toBe(a.id);
    expect(await store.read(randomUUID(), 'all')).toBeUndefined();
    expect(await store.read('../metadata', 'all')).toBeUndefined();
    expect((await store.read(ab.id, { organizations: [orgB] }))?.routedTo.sort()).toEqual([orgA, orgB].sort());

    expect(ids(await all(store, {}, { organizations: [orgA] })).sort()).toEqual([a.id, ab.id].sort());
    expect(ids(await all(store, {}, { organizations: [orgB] })).sort()).toEqual([b.id, ab.id].sort());
    expect(ids(await all(store, {}, { organizations: [orgA, orgB] })).sort()).toEqual([a.id, b.id, ab.id].sort());
    expect(await store.search({ count: 10 }, { organizations: [] })).toEqual({ total: 0, documents: [] });
    expect((await store.search({ count: 10 }, { organizations: [organization()] })).total).toBe(0);
    const everything = await store.search({ patientIdentifier: INS_CSE, count: 0 }, 'all');
    expect(everything.total).toBeGreaterThanOrEqual(1);
  });

  it('keeps lastUpdated strictly increasing across two instances writing concurrently, even in one millisecond', async () => {
    // A clock stuck in the past: every put happens "in the same millisecond", before the last one.
    const frozen = { now: () => new Date('2001-01-01T00:00:00.000Z') };
    const [a, b] = [await env.open(frozen), await env.open(frozen)];
    const org = organization();
    const requests = Array.from({ length: 30 }, (_, i) => documentOf(i % 3 === 0 ? BIO : CSE, [org]));
    const results = await Promise.all(requests.map((r, i) => (i % 2 ? a : b).put(r)));
    const docs = await all(a, {}, { organizations: [org] });
    expect(ids(docs).sort()).toEqual(results.map((r) => r.id).sort());
    const times = docs.map((d) => micros(d.lastUpdated));
    for (let i = 1; i < times.length; i++) expect(times[i]).toBeGreaterThan(times[i - 1] as number);
    for (const d of docs) expect(d.lastUpdated).toMatch(FHIR_INSTANT);
  });

  it('lets an incremental pull (_lastUpdated=gt<last seen>) miss nothing while two instances write', async () => {
    const [a, b, reader] = [await env.open(), await env.open(), await env.open()];
    const org = organization();
    const scope = { organizations: [org] };
    const written: string[] = [];
    const writer = async (store: DocumentStore, n: number): Promise<void> => {
      for (let i = 0; i < n; i++) written.push((await store.put(documentOf(CSE, [org]))).id);
    };
    const seen: string[] = [];
    let last: string | undefined;
    const poll = async (): Promise<void> => {
      const page = await reader.search({ count: 100, ...(last ? { lastUpdated: [{ prefix: 'gt' as const, value: last }] } : {}) }, scope);
      for (const d of page.documents) {
        seen.push(d.id);
        last = d.lastUpdated;
      }
    };
    let done = false;
    const writing = Promise.all([writer(a, 15), writer(b, 15)]).finally(() => {
      done = true;
    });
    while (!done) {
      await poll();
      await new Promise((r) => setTimeout(r, 2));
    }
    await writing;
    await poll();
    expect(seen.length).toBe(new Set(seen).size);
    expect([...seen].sort()).toEqual([...written].sort());
  });

  it('pages by keyset: documents arriving while a client pages come last, nothing skipped or repeated', async () => {
    const store = await env.open();
    const org = organization();
    const scope = { organizations: [org] };
    const initial: string[] = [];
    for (let i = 0; i < 7; i++) initial.push((await store.put(documentOf(CSE, [org]))).id);
    const first = await store.search({ count: 3 }, scope);
    expect(first.total).toBe(7);
    expect(ids(first.documents)).toEqual(initial.slice(0, 3));
    const arrived: string[] = [];
    for (let i = 0; i < 2; i++) arrived.push((await store.put(documentOf(BIO, [org]))).id);
    const seen = ids(first.documents);
    let cursor = first.next;
    while (cursor) {
      const page = await store.search({ count: 3, cursor }, scope);
      seen.push(...ids(page.documents));
      cursor = page.next;
    }
    expect(seen).toEqual([...initial, ...arrived]);
    await expect(store.search({ count: 3, cursor: 'not a cursor' }, scope)).rejects.toMatchObject({ code: 'REQUEST_INVALID' });
  });

  it('records AuditEvents and finds them by agent and by entity, most recent first', async () => {
    const store = await env.open();
    const agent = `pta-${randomUUID()}`;
    const other = `ops-${randomUUID()}`;
    const [x1, x2] = [`Bundle/${randomUUID()}`, `Bundle/${randomUUID()}`];
    const event = (who: string, what: string, recorded: string): AuditEvent => ({
      resourceType: 'AuditEvent',
      type: { system: 'http://terminology.hl7.org/CodeSystem/audit-event-type', code: 'rest' },
      subtype: [{ system: 'http://hl7.org/fhir/restful-interaction', code: 'read' }],
      action: 'R',
      recorded,
      outcome: '0',
      agent: [{ who: { identifier: { system: 'urn:test:client', value: who } }, altId: who, requestor: true }],
      source: { observer: { display: 'passerelle' } },
      entity: [{ what: { reference: what } }],
    });
    await store.recordAudit(event(agent, x1, '2024-05-01T10:00:00.000Z'));
    await store.recordAudit(event(agent, x2, '2024-05-01T10:00:01.000Z'));
    await store.recordAudit(event(other, x1, '2024-05-01T10:00:02.000Z'));

    const byAgent = await store.searchAudit({ agent, count: 10 });
    expect(byAgent.total).toBe(2);
    expect(byAgent.events.map((e) => e.entity?.[0]?.what?.reference)).toEqual([x2, x1]);
    expect(byAgent.events[0]?.id).toMatch(/^[A-Za-z0-9\-.]{1,64}$/);
    const byEntity = await store.searchAudit({ entity: x1, count: 10 });
    expect(byEntity.events.map((e) => e.agent[0]?.altId)).toEqual([other, agent]);
    expect((await store.searchAudit({ agent, entity: x1, count: 10 })).total).toBe(1);
    expect((await store.searchAudit({ agent, count: 0 })).events).toEqual([]);

    const paged: AuditEvent[] = [];
    let cursor: string | undefined;
    do {
      const page = await store.searchAudit({ agent, count: 1, ...(cursor ? { cursor } : {}) });
      expect(page.total).toBe(2);
      paged.push(...page.events);
      cursor = page.next;
    } while (cursor);
    expect(paged.map((e) => e.entity?.[0]?.what?.reference)).toEqual([x2, x1]);
  });

  it('answers ping', async () => {
    await expect((await env.open()).ping()).resolves.toBeUndefined();
  });
});

describe('built-in store failures', () => {
  it('reports an unreachable PostgreSQL as STORE_UNAVAILABLE', async () => {
    const closed = await new Promise<number>((resolve) => {
      const s = http.createServer().listen(0, '127.0.0.1', () => {
        const { port } = s.address() as AddressInfo;
        s.close(() => resolve(port));
      });
    });
    await expect(openStore({ database: `postgres://postgres@127.0.0.1:${closed}/none`, fhirBaseUrl: null }))
      .rejects.toMatchObject({ code: 'STORE_UNAVAILABLE' });
  });
});

describe('external FHIR server adapter', () => {
  let dir: string;
  let peerStore: DocumentStore;
  let server: http.Server;
  let origin: string;
  const org = organization();

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'passerelle-peer-'));
    peerStore = await openStore({ database: `sqlite:${join(dir, 'peer.db')}`, fhirBaseUrl: null });
    const app = new Koa<AppState>();
    app.use(errorHandler(() => undefined));
    app.use(authenticate([{ id: 'gateway', token: 'peer-token', role: 'admin' }]));
    const router = fhirRouter({ store: peerStore, baseUrl: () => origin, storeOnly: true });
    app.use(router.routes());
    ({ server, origin } = await listen(app));
  });
  afterAll(async () => {
    await closeServer(server);
    await peerStore.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const adapter = (): FhirServerStore => new FhirServerStore({ baseUrl: `${origin}/fhir`, bearerToken: 'peer-token' });

  it('records routing, key and replacements as tags on the server, and hides them from readers', async () => {
    const store = adapter();
    const request = documentOf(BIO, [org], { supersedes: ['some|earlier'] });
    const { id } = await store.put(request);
    const onServer = await peerStore.read(id, 'all');
    expect(onServer?.routedTo).toEqual([org]);
    expect(onServer?.documentKey).toBe(request.documentKey);
    const systems = (onServer?.bundle.meta?.tag ?? []).map((t) => t.system);
    expect(systems).toEqual(expect.arrayContaining([
      'https://passerelle.dev/fhir/CodeSystem/routed-to', 'https://passerelle.dev/fhir/CodeSystem/document-key', 'https://passerelle.dev/fhir/CodeSystem/supersedes',
    ]));
    const read = await store.read(id, { organizations: [org] });
    expect(read?.bundle.meta?.tag).toEqual([{ system: DOCUMENT_STATUS_SYSTEM, code: 'current' }]);
  });

  it('refuses cursors that lead off the server or out of the reader\'s scope', async () => {
    const store = adapter();
    const scope = { organizations: [org] };
    await expect(store.search({ count: 5, cursor: encodeCursor(['http://169.254.169.254/latest/meta-data']) }, scope)).rejects.toMatchObject({ code: 'REQUEST_INVALID' });
    await expect(store.search({ count: 5, cursor: encodeCursor([`${origin}/fhir/Bundle?_count=100`]) }, scope)).rejects.toMatchObject({ code: 'REQUEST_INVALID' });
    await expect(store.search({ count: 5, cursor: encodeCursor([`${origin}/fhir/Bundle?identifier=x&_tag=${encodeURIComponent('https://passerelle.dev/fhir/CodeSystem/routed-to|other')}`]) }, scope))
      .rejects.toMatchObject({ code: 'REQUEST_INVALID' });
  });

  it('reports an unreachable server, or one answering 5xx, as STORE_UNAVAILABLE', async () => {
    const failing = http.createServer((_req, res) => {
      res.writeHead(500, { 'content-type': 'application/fhir+json' });
      res.end('{"resourceType":"OperationOutcome","issue":[]}');
    });
    await new Promise<void>((resolve) => failing.listen(0, '127.0.0.1', resolve));
    const port = (failing.address() as AddressInfo).port;
    const broken = new FhirServerStore({ baseUrl: `http://127.0.0.1:${port}/fhir` });
    const request = documentOf(CSE, [org]);
    for (const call of [() => broken.put(request), () => broken.read(randomUUID(), 'all'), () => broken.search({ count: 1 }, 'all'), () => broken.ping()]) {
      const err: unknown = await call().then(() => undefined, (e: unknown) => e);
      expect(err).toBeInstanceOf(PasserelleError);
      expect(err).toMatchObject({ code: 'STORE_UNAVAILABLE' });
    }
    await closeServer(failing);
    const down = new FhirServerStore({ baseUrl: `http://127.0.0.1:${port}/fhir` });
    await expect(down.put(request)).rejects.toMatchObject({ code: 'STORE_UNAVAILABLE' });
    await expect(down.ping()).rejects.toMatchObject({ code: 'STORE_UNAVAILABLE' });
  });

  it('is refused by the store-only server without an admin token, and for anything but Bundle creates', async () => {
    await expect(new FhirServerStore({ baseUrl: `${origin}/fhir` }).put(documentOf(CSE, [org]))).rejects.toMatchObject({ code: 'STORE_UNAVAILABLE' });
    const post = (body: unknown): Promise<Response> => fetch(`${origin}/fhir`, {
      method: 'POST', headers: { authorization: 'Bearer peer-token', 'content-type': 'application/fhir+json' }, body: JSON.stringify(body),
    });
    const update = await post({ resourceType: 'Bundle', type: 'transaction', entry: [{ resource: CSE, request: { method: 'PUT', url: 'Bundle/x' } }] });
    expect(update.status).toBe(400);
    const untagged = await post({ resourceType: 'Bundle', type: 'transaction', entry: [{ resource: CSE, request: { method: 'POST', url: 'Bundle' } }] });
    expect(untagged.status).toBe(400);
    const batch = await post({ resourceType: 'Bundle', type: 'batch', entry: [] });
    expect(batch.status).toBe(400);
  });
});
