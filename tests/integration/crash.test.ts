/**
 * Nothing accepted is ever lost, nothing is delivered twice: a burst of 1 000 documents posted to a
 * real gateway process, SIGKILLed in the middle, restarted on the same data; every document that
 * got a 202 ends delivered exactly once (ARCHITECTURE.md, "The one idea").
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Bundle } from '@medplum/fhirtypes';
import { afterAll, describe, expect, it } from 'vitest';
import { withDocumentId } from '../support/cda-variants.js';
import { corpusDocument } from '../support/corpus.js';
import { spawnGateway, type GatewayProcess } from '../support/gateway-process.js';

const TOTAL = 1000;
const KILL_AFTER = 300;
const SENDER = 'crash-sender-token-0123456789';
const ADMIN = 'crash-admin-token-0123456789';

const dir = mkdtempSync(join(tmpdir(), 'passerelle-crash-'));
const configFile = join(dir, 'config.json');
writeFileSync(configFile, JSON.stringify({
  http: { port: 0, host: '127.0.0.1' }, smtp: { port: 0 },
  dataDir: dir,
  pipeline: { concurrency: 2, leaseMs: 2000, pollMs: 50, retryBaseMs: 200, retryMaxMs: 2000 },
  clients: [{ id: 'sender', token: SENDER, role: 'sender' }, { id: 'ops', token: ADMIN, role: 'admin' }],
  log: { level: 'info' },
}));

const template = corpusDocument('LDL-SES_2022.01.xml').toString('utf8');
const documentIds = Array.from({ length: TOTAL }, (_, i) => `crash-${i}`);

let gateway: GatewayProcess | undefined;
afterAll(async () => {
  await gateway?.kill('SIGTERM');
});

async function post(url: string, n: number): Promise<string | undefined> {
  try {
    const res = await fetch(`${url}/documents`, {
      method: 'POST',
      headers: { authorization: `Bearer ${SENDER}`, 'content-type': 'application/hl7-cda+xml' },
      body: withDocumentId(template, documentIds[n] as string),
    });
    if (res.status !== 202) return undefined;
    return ((await res.json()) as { id: string }).id;
  } catch {
    return undefined; // the process died under us: not accepted, the sender would retry
  }
}

/** Posts documents from..to-1 with 16 clients in parallel; calls onAccepted after each 202. */
async function burst(url: string, from: number, to: number, accepted: Map<number, string>, onAccepted?: () => void): Promise<void> {
  let next = from;
  const client = async (): Promise<void> => {
    while (next < to) {
      const n = next++;
      const id = await post(url, n);
      if (id) {
        accepted.set(n, id);
        onAccepted?.();
      }
    }
  };
  await Promise.all(Array.from({ length: 16 }, client));
}

const admin = (url: string, path: string): Promise<Response> => fetch(`${url}${path}`, { headers: { authorization: `Bearer ${ADMIN}` } });

describe('crash safety', () => {
  it('delivers every accepted document exactly once across a SIGKILL', async () => {
    const accepted = new Map<number, string>();
    gateway = await spawnGateway(configFile);
    const first = gateway;
    let killed: Promise<unknown> | undefined;
    await burst(first.url, 0, TOTAL, accepted, () => {
      if (accepted.size >= KILL_AFTER && !killed) killed = first.kill('SIGKILL');
    });
    await killed;
    const acceptedBeforeKill = accepted.size;
    expect(acceptedBeforeKill).toBeGreaterThanOrEqual(KILL_AFTER);

    gateway = await spawnGateway(configFile);
    const missing = documentIds.map((_, n) => n).filter((n) => !accepted.has(n));
    for (const n of missing) {
      const id = await post(gateway.url, n);
      if (id) accepted.set(n, id);
    }
    expect(accepted.size).toBe(TOTAL);

    // Wait until no entry is left in a non-final state. A post whose commit landed just before the
    // kill got no 202, so the sender posted it again: two entries, one stored document.
    const deadline = Date.now() + 240_000;
    for (;;) {
      const metrics = await (await fetch(`${gateway.url}/metrics`)).text();
      const states = Object.fromEntries([...metrics.matchAll(/^passerelle_entries\{state="(\w+)"\} (\d+)/gm)].map((m) => [m[1] as string, Number(m[2])]));
      const pending = ['received', 'converted', 'identified', 'resolved'].reduce((n, s) => n + (states[s] ?? 0), 0);
      if (pending === 0 && (states.delivered ?? 0) >= accepted.size) {
        expect((states.quarantined ?? 0) + (states.failed ?? 0)).toBe(0);
        break;
      }
      if (Date.now() > deadline) throw new Error(`not finished: ${JSON.stringify(states)}`);
      await new Promise((r) => setTimeout(r, 500));
    }

    // Every accepted entry delivered, and the store holds each document exactly once.
    for (const id of accepted.values()) {
      const entry = (await (await admin(gateway.url, `/messages/${id}`)).json()) as { state: string; bundles: string[] };
      expect(entry.state).toBe('delivered');
      expect(entry.bundles).toHaveLength(1);
    }
    const seen = new Map<string, number>();
    let page: string | undefined = '/fhir/Bundle?_count=100';
    while (page) {
      const res = await admin(gateway.url, page.replace(/^https?:\/\/[^/]+/, ''));
      expect(res.status).toBe(200);
      const searchset = (await res.json()) as Bundle;
      for (const e of searchset.entry ?? []) {
        const key = (e.resource as Bundle).identifier?.value ?? '';
        seen.set(key, (seen.get(key) ?? 0) + 1);
      }
      page = searchset.link?.find((l) => l.relation === 'next')?.url;
    }
    expect(seen.size).toBe(TOTAL);
    expect([...seen.values()].every((count) => count === 1)).toBe(true);
  }, 300_000);
});
