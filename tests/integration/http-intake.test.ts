/**
 * The HTTP doors' limits, over a real socket: a body over `http.maxBodyBytes` is refused while it
 * streams (declared or not), and the bodies held in memory before their commit never pass
 * `http.maxBufferedBytes` — beyond it a post is deferred with 503 INTAKE_BUSY and Retry-After,
 * nothing journaled, and goes through once there is room. The app is the real one (buildApp) on
 * the real SQLite journal, wrapped only to hold its commits back.
 */
import { request } from 'node:http';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openJournal } from '../../adapters/journal/open.js';
import type { Journal } from '../../adapters/journal/port.js';
import { loadRorFixture } from '../../adapters/ror/mock.js';
import { loadSrirFixture } from '../../adapters/srir/mock.js';
import { openStore } from '../../adapters/store/open.js';
import type { DocumentStore } from '../../adapters/store/port.js';
import { buildApp } from '../../gateway/app.js';
import { loadConfig } from '../../gateway/config.js';
import { silentLogger } from '../../gateway/log.js';
import { createMetrics } from '../../gateway/metrics.js';
import { ControlledJournal } from '../support/controlled-journal.js';
import { close, listen, type Running } from '../support/loopback.js';

const TOKEN = 'http-intake-sender-token-000001';
const MAX_BODY = 300_000;
const MAX_BUFFERED = 500_000;
const dir = mkdtempSync(join(tmpdir(), 'passerelle-http-intake-'));
let journal: Journal;
let store: DocumentStore;
let watched: ControlledJournal;
let server: Running;
let port: number;

beforeAll(async () => {
  journal = await openJournal(`sqlite:${join(dir, 'j.db')}`);
  store = await openStore({ database: `sqlite:${join(dir, 'j.db')}`, fhirBaseUrl: null });
  watched = new ControlledJournal(journal);
  const config = loadConfig({ env: {}, cwd: dir, overrides: { http: { maxBodyBytes: MAX_BODY, maxBufferedBytes: MAX_BUFFERED } } });
  const app = buildApp(config, {
    journal: watched.journal, store, clients: [{ id: 'hospital', token: TOKEN, role: 'sender' }], log: silentLogger,
    metrics: createMetrics(journal), srirFixture: loadSrirFixture(), rorFixture: loadRorFixture(),
  });
  server = await listen(app.callback());
  port = Number(new URL(server.origin).port);
});

afterAll(async () => {
  await close(server);
  await store.close();
  await journal.close();
  rmSync(dir, { recursive: true, force: true });
});

interface Answer { status: number; code?: string; retryAfter?: string; id?: string }

/** POST /messages; `chunked` sends no Content-Length (a body of unknown length). */
function post(body: Buffer, chunked = false): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request({
      host: '127.0.0.1', port, method: 'POST', path: '/messages',
      headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'message/rfc822', ...(chunked ? { 'transfer-encoding': 'chunked' } : { 'content-length': body.length }) },
    }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const json = JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}') as { id?: string; issue?: { details: { coding: { code: string }[] } }[] };
        resolve({
          status: res.statusCode ?? 0, code: json.issue?.[0]?.details.coding[0]?.code, id: json.id,
          ...(res.headers['retry-after'] ? { retryAfter: res.headers['retry-after'] } : {}),
        });
      });
    });
    req.on('error', reject);
    // In 16 KB pieces, as a client streaming a file would.
    for (let i = 0; i < body.length; i += 16_384) req.write(body.subarray(i, i + 16_384));
    req.end();
  });
}

const mail = (kb: number): Buffer => Buffer.from(`From: <a@hopital.test>\r\nSubject: x\r\n\r\n${`${'A'.repeat(76)}\r\n`.repeat(Math.ceil((kb * 1024) / 78))}`);

describe('HTTP intake limits', () => {
  it('refuses a body over http.maxBodyBytes with 413 INPUT_TOO_LARGE, declared or streamed, and journals nothing', async () => {
    const before = watched.appendCalls;
    expect(await post(mail(400))).toMatchObject({ status: 413, code: 'INPUT_TOO_LARGE' });
    expect(await post(mail(400), true)).toMatchObject({ status: 413, code: 'INPUT_TOO_LARGE' });
    expect(watched.appendCalls).toBe(before);
    expect(await post(mail(100))).toMatchObject({ status: 202 });
  });

  it('defers with 503 INTAKE_BUSY and Retry-After what would pass http.maxBufferedBytes, and takes it once there is room', async () => {
    watched.hold();
    const held = post(mail(280)); // its commit waits: ≈ 280 KB held
    for (let i = 0; i < 200 && watched.appendCalls < 2; i++) await new Promise((r) => setTimeout(r, 10));
    const calls = watched.appendCalls;

    const declared = await post(mail(250));
    expect(declared).toMatchObject({ status: 503, code: 'INTAKE_BUSY', retryAfter: '5' });
    const streamed = await post(mail(250), true);
    expect(streamed).toMatchObject({ status: 503, code: 'INTAKE_BUSY' });
    expect(watched.appendCalls).toBe(calls);

    watched.release();
    expect(await held).toMatchObject({ status: 202 });
    // The budget was given back, by the committed post and by the refused ones.
    const retried = await post(mail(250), true);
    expect(retried).toMatchObject({ status: 202 });
    expect(watched.committed.has(retried.id ?? '')).toBe(true);
  });
});
