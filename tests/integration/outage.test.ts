/**
 * A neighbour outage is never a verdict on the document: with the SRIR down, the entry goes back
 * to the journal with SRIR_UNAVAILABLE and a backoff, again and again; once the SRIR answers,
 * the same entry is delivered.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Koa from 'koa';
import { afterAll, describe, expect, it } from 'vitest';
import { createSrirMock, loadSrirFixture } from '../../adapters/srir/mock.js';
import { loadConfig } from '../../gateway/config.js';
import { silentLogger } from '../../gateway/log.js';
import { start, type RunningGateway } from '../../gateway/server.js';
import { corpusDocument } from '../support/corpus.js';
import { close, freePort, type Running } from '../support/loopback.js';

let gateway: RunningGateway | undefined;
let srir: Running | undefined;
afterAll(async () => {
  await gateway?.close();
  if (srir) await close(srir);
});

describe('SRIR outage', () => {
  it('retries with backoff while the SRIR is down, then delivers', async () => {
    const port = await freePort();
    const config = loadConfig({
      env: {}, cwd: mkdtempSync(join(tmpdir(), 'passerelle-outage-')),
      overrides: {
        http: { port: 0, host: '127.0.0.1' }, smtp: { port: 0 },
        srir: { baseUrl: `http://127.0.0.1:${port}/fhir`, timeoutMs: 500 },
        pipeline: { pollMs: 20, retryBaseMs: 100, retryMaxMs: 300 },
        clients: [{ id: 'sender', token: 'outage-sender-token-0001', role: 'sender' }],
      },
    });
    gateway = await start(config, silentLogger);
    const res = await fetch(`${gateway.url}/documents`, {
      method: 'POST', headers: { authorization: 'Bearer outage-sender-token-0001', 'content-type': 'application/xml' },
      body: corpusDocument('LDL-SES_2022.01.xml'),
    });
    expect(res.status).toBe(202);
    const { id } = (await res.json()) as { id: string };

    const history = async (): Promise<{ outcome: string; errorCode?: string }[]> => gateway?.journal.history(id) ?? [];
    for (let i = 0; i < 200 && (await history()).filter((h) => h.outcome === 'retry').length < 2; i++) await new Promise((r) => setTimeout(r, 50));
    const retries = (await history()).filter((h) => h.outcome === 'retry');
    expect(retries.length).toBeGreaterThanOrEqual(2);
    expect(retries.every((h) => h.errorCode === 'SRIR_UNAVAILABLE')).toBe(true);
    expect((await gateway.journal.get(id))?.state).toBe('converted');

    // The SRIR comes back on its address.
    const app = new Koa();
    const mock = createSrirMock(loadSrirFixture(), '/fhir');
    app.use(mock.routes());
    srir = await new Promise<Running>((resolve) => {
      const server = app.listen(port, '127.0.0.1', () => resolve({ server, origin: `http://127.0.0.1:${port}` }));
    });
    for (let i = 0; i < 200 && (await gateway.journal.get(id))?.state !== 'delivered'; i++) await new Promise((r) => setTimeout(r, 50));
    const entry = await gateway.journal.get(id);
    expect(entry?.state).toBe('delivered');
    expect(entry?.errorCode).toBeNull();
  });
});
