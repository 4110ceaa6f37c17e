/**
 * The SMTP door keeps the journal's promise: a burst of mail sent to a real gateway process over
 * SMTP, SIGKILLed in the middle, restarted on the same data; every message that got its `250` ends
 * delivered exactly once (issue "MSSanté mail channel", Proof).
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Bundle } from '@medplum/fhirtypes';
import nodemailer from 'nodemailer';
import { afterAll, describe, expect, it } from 'vitest';
import { withDocumentId } from '../support/cda-variants.js';
import { corpusDocument } from '../support/corpus.js';
import { spawnGateway, type GatewayProcess } from '../support/gateway-process.js';

const TOTAL = 300;
const KILL_AFTER = 100;
const ADMIN = 'smtp-crash-admin-token-000001';
const dir = mkdtempSync(join(tmpdir(), 'passerelle-smtp-crash-'));
const configFile = join(dir, 'config.json');
writeFileSync(configFile, JSON.stringify({
  http: { port: 0, host: '127.0.0.1' }, smtp: { port: 0, domains: ['passerelle.test'] },
  dataDir: dir,
  // Plain mail from the hospital's domain (the MSSanté trust space): this test is about durability, not S/MIME.
  smime: { plainDomains: ['hopital.test'] },
  pipeline: { concurrency: 2, leaseMs: 2000, pollMs: 50, retryBaseMs: 200, retryMaxMs: 2000 },
  clients: [{ id: 'ops', token: ADMIN, role: 'admin' }],
  log: { level: 'info' },
}));

const template = corpusDocument('LDL-SES_2022.01.xml').toString('utf8');

function message(n: number): Buffer {
  const cda = Buffer.from(withDocumentId(template, `smtp-crash-${n}`)).toString('base64').replace(/.{76}/g, '$&\r\n');
  return Buffer.from([
    'From: secretariat@hopital.test', 'To: bal@passerelle.test', `Subject: lettre ${n}`, `Message-ID: <crash-${n}@hopital.test>`, 'MIME-Version: 1.0',
    'Content-Type: multipart/mixed; boundary="b"', '', '--b', 'Content-Type: text/plain', '', 'Lettre de liaison.',
    '--b', 'Content-Type: application/hl7-cda+xml; name="lettre.xml"', 'Content-Disposition: attachment; filename="lettre.xml"', 'Content-Transfer-Encoding: base64', '', cda, '--b--', '',
  ].join('\r\n'));
}

/** The SMTP port the gateway logged once listening (it starts after HTTP). */
async function smtpPort(g: GatewayProcess): Promise<number> {
  for (let i = 0; i < 200; i++) {
    const port = g.logs.find((l) => l.msg === 'smtp listening')?.port;
    if (typeof port === 'number') return port;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error('the gateway did not log its SMTP port');
}

let gateway: GatewayProcess | undefined;
afterAll(async () => {
  await gateway?.kill('SIGTERM');
});

/** Sends messages from..to-1 over 8 connections; returns the journal id of each 250. */
async function burst(g: GatewayProcess, numbers: number[], accepted: Map<number, string>, onAccepted?: () => void): Promise<void> {
  const queue = [...numbers];
  const port = await smtpPort(g);
  await Promise.all(Array.from({ length: 8 }, async () => {
    const transport = nodemailer.createTransport({ host: '127.0.0.1', port, secure: false, ignoreTLS: true, connectionTimeout: 2000, socketTimeout: 5000 });
    try {
      for (let n = queue.shift(); n !== undefined; n = queue.shift()) {
        try {
          const info = await transport.sendMail({ envelope: { from: 'secretariat@hopital.test', to: ['bal@passerelle.test'] }, raw: message(n) });
          const id = /queued as ([0-9a-f-]{36})/.exec(info.response)?.[1];
          if (id) {
            accepted.set(n, id);
            onAccepted?.();
          }
        } catch {
          // no 250 (the gateway died): the sending MTA keeps the message and tries again later
        }
      }
    } finally {
      transport.close();
    }
  }));
}

describe('SMTP crash safety', () => {
  it('delivers every message that got a 250 exactly once across a SIGKILL', async () => {
    const accepted = new Map<number, string>();
    gateway = await spawnGateway(configFile);
    const first = gateway;
    let killed: Promise<unknown> | undefined;
    const all = Array.from({ length: TOTAL }, (_, n) => n);
    await burst(first, all, accepted, () => {
      if (accepted.size >= KILL_AFTER && !killed) killed = first.kill('SIGKILL');
    });
    await killed;
    expect(accepted.size).toBeGreaterThanOrEqual(KILL_AFTER);

    gateway = await spawnGateway(configFile);
    await burst(gateway, all.filter((n) => !accepted.has(n)), accepted);
    expect(accepted.size).toBe(TOTAL);

    const admin = (path: string): Promise<Response> => fetch(`${gateway?.url ?? ''}${path}`, { headers: { authorization: `Bearer ${ADMIN}` } });
    const deadline = Date.now() + 240_000;
    for (const id of accepted.values()) {
      for (;;) {
        const entry = (await (await admin(`/messages/${id}`)).json()) as { state: string };
        if (entry.state === 'delivered') break;
        expect(['quarantined', 'failed']).not.toContain(entry.state);
        if (Date.now() > deadline) throw new Error(`entry ${id} still ${entry.state}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    const count = (await (await admin('/fhir/Bundle?_summary=count')).json()) as Bundle;
    expect(count.total).toBe(TOTAL);
  }, 300_000);
});
