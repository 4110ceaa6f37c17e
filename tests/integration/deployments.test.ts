/**
 * The deployments an operator runs beyond the embedded default, each with real processes:
 * two gateways sharing one PostgreSQL (journal and store), every document delivered exactly once
 * whichever process took it; and a gateway storing into an external FHIR server, here a second
 * passerelle in store-only mode, read back through that server.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Bundle } from '@medplum/fhirtypes';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { withDocumentId } from '../support/cda-variants.js';
import { corpusDocument } from '../support/corpus.js';
import { spawnGateway, type GatewayProcess } from '../support/gateway-process.js';
import { settledEntry } from '../support/settled.js';

const PG_SERVER = 'postgres://postgres@127.0.0.1:5432';
const DATABASE = `passerelle_deploy_${randomBytes(4).toString('hex')}`;
const SENDER = 'deploy-sender-token-000000001';
const ADMIN = 'deploy-admin-token-0000000001';
const PTA = 'deploy-pta-token-000000000001';
/** DAC Paris Ouest of the built-in ROR sample: covers the corpus patient's 75007 PARIS. */
const PARIS_DAC = '750990038';
const clients = [
  { id: 'sender', token: SENDER, role: 'sender' },
  { id: 'ops', token: ADMIN, role: 'admin' },
  { id: 'pta-paris', token: PTA, role: 'pta', organization: PARIS_DAC },
];
const template = corpusDocument('LDL-SES_2022.01.xml').toString('utf8');
const processes: GatewayProcess[] = [];

async function sql(database: string, text: string): Promise<void> {
  const client = new pg.Client({ connectionString: `${PG_SERVER}/${database}` });
  await client.connect();
  try {
    await client.query(text);
  } finally {
    await client.end();
  }
}

function config(name: string, settings: Record<string, unknown>): string {
  const dir = mkdtempSync(join(tmpdir(), `passerelle-${name}-`));
  const file = join(dir, 'config.json');
  writeFileSync(file, JSON.stringify({ http: { port: 0, host: '127.0.0.1' }, smtp: { port: 0 }, dataDir: dir, clients, log: { level: 'info' }, pipeline: { pollMs: 50 }, ...settings }));
  return file;
}

async function post(url: string, documentId: string): Promise<string> {
  const res = await fetch(`${url}/documents`, { method: 'POST', headers: { authorization: `Bearer ${SENDER}`, 'content-type': 'application/hl7-cda+xml' }, body: withDocumentId(template, documentId) });
  expect(res.status).toBe(202);
  return ((await res.json()) as { id: string }).id;
}

const settle = (url: string, id: string): Promise<{ state: string; bundles: string[]; history: { outcome: string; state: string }[] }> => settledEntry(url, id, ADMIN, 30_000);

beforeAll(async () => {
  await sql('postgres', `CREATE DATABASE ${DATABASE}`);
});
afterAll(async () => {
  await Promise.all(processes.map((p) => p.kill('SIGTERM')));
  await sql('postgres', `DROP DATABASE IF EXISTS ${DATABASE} WITH (FORCE)`);
});

describe('two gateways sharing one PostgreSQL', () => {
  it('delivers every document exactly once, whichever process claims it', async () => {
    const settings = { database: `${PG_SERVER}/${DATABASE}`, pipeline: { concurrency: 2, pollMs: 20 } };
    const [a, b] = await Promise.all([spawnGateway(config('pg-a', settings)), spawnGateway(config('pg-b', settings))]);
    processes.push(a, b);
    const ids = await Promise.all(Array.from({ length: 60 }, (_, n) => post(n % 2 ? a.url : b.url, `pg-${n}`)));
    const entries = await Promise.all(ids.map((id) => settle(a.url, id)));
    for (const entry of entries) {
      expect(entry.state).toBe('delivered');
      expect(entry.history.filter((h) => h.state === 'delivered')).toHaveLength(1);
      expect(entry.history.filter((h) => h.outcome === 'ok' && h.state === 'converted')).toHaveLength(1);
    }
    // Both processes worked, and the shared store holds each document once, readable through either.
    const delivered = (p: GatewayProcess): number => p.logs.filter((l) => l.msg === 'entry delivered').length;
    expect(delivered(a)).toBeGreaterThan(0);
    expect(delivered(b)).toBeGreaterThan(0);
    expect(delivered(a) + delivered(b)).toBe(60);
    const count = (await (await fetch(`${b.url}/fhir/Bundle?_summary=count`, { headers: { authorization: `Bearer ${PTA}` } })).json()) as Bundle;
    expect(count.total).toBe(60);
  }, 120_000);
});

describe('a gateway storing into an external FHIR server', () => {
  it('stores through a FHIR transaction on a store-only passerelle, once, routed', async () => {
    const server = await spawnGateway(config('store-only', { store: { storeOnly: true } }));
    processes.push(server);
    const gateway = await spawnGateway(config('external', { store: { fhirBaseUrl: `${server.url}/fhir`, fhirToken: ADMIN } }));
    processes.push(gateway);
    const first = await settle(gateway.url, await post(gateway.url, 'ext-1'));
    const again = await settle(gateway.url, await post(gateway.url, 'ext-1'));
    expect(first.state).toBe('delivered');
    expect(again.state).toBe('delivered');
    // On the external server itself: one Bundle, tagged for the Paris DAC.
    const found = (await (await fetch(`${server.url}/fhir/Bundle?_count=10`, { headers: { authorization: `Bearer ${ADMIN}` } })).json()) as Bundle;
    expect(found.total).toBe(1);
    const stored = found.entry?.[0]?.resource as Bundle;
    expect(stored.identifier?.value).toBe('ext-1');
    expect(stored.meta?.tag?.some((t) => t.code === PARIS_DAC)).toBe(true);
    // And through the gateway's own PTA API, which reads the external store.
    const pulled = (await (await fetch(`${gateway.url}/fhir/Bundle`, { headers: { authorization: `Bearer ${PTA}` } })).json()) as Bundle;
    expect(pulled.entry?.map((e) => (e.resource as Bundle).identifier?.value)).toEqual(['ext-1']);
  }, 120_000);
});
