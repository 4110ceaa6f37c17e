/**
 * The IMAP door wired into the gateway: a mail delivered into a real Dovecot mailbox is polled by
 * `passerelle start` (configuration `imap.mailboxes`), journaled, flagged, and its document
 * delivered like any other.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ImapFlow } from 'imapflow';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../gateway/config.js';
import { silentLogger } from '../../gateway/log.js';
import { start, type RunningGateway } from '../../gateway/server.js';
import { withDocumentId } from '../support/cda-variants.js';
import { corpusDocument } from '../support/corpus.js';
import { removeDovecotDir, startDovecot, type Dovecot } from '../support/dovecot.js';

let dovecot: Dovecot;
let gateway: RunningGateway;

beforeAll(async () => {
  dovecot = await startDovecot();
  gateway = await start(loadConfig({
    env: {}, cwd: mkdtempSync(join(tmpdir(), 'passerelle-imap-gw-')),
    overrides: {
      http: { port: 0, host: '127.0.0.1' }, smtp: { port: null },
      smime: { plainDomains: ['hopital.test'] },
      pipeline: { pollMs: 20 },
      imap: { intervalMs: 1000, mailboxes: [{ id: 'bal', host: '127.0.0.1', port: dovecot.port, secure: false, starttls: false, user: dovecot.user, password: dovecot.password }] },
      clients: [{ id: 'ops', token: 'imap-gw-admin-token-0000001', role: 'admin' }],
    },
  }), silentLogger);
}, 60_000);
afterAll(async () => {
  await gateway.close();
  await dovecot.stop();
  await removeDovecotDir(dovecot);
});

describe('IMAP door', () => {
  it('polls the mailbox, journals the mail, flags it, and delivers its document', async () => {
    const cda = Buffer.from(withDocumentId(corpusDocument('LDL-SES_2022.01.xml').toString('utf8'), 'imap-1')).toString('base64').replace(/.{76}/g, '$&\r\n');
    const raw = Buffer.from([
      'From: secretariat@hopital.test', 'To: bal@passerelle.test', 'Subject: lettre', 'Message-ID: <imap-1@hopital.test>', 'MIME-Version: 1.0',
      'Content-Type: multipart/mixed; boundary="b"', '', '--b', 'Content-Type: application/hl7-cda+xml; name="lettre.xml"', 'Content-Transfer-Encoding: base64', '', cda, '--b--', '',
    ].join('\r\n'));
    const client = new ImapFlow({ host: '127.0.0.1', port: dovecot.port, secure: false, doSTARTTLS: false, auth: { user: dovecot.user, pass: dovecot.password }, logger: false });
    await client.connect();
    try {
      await client.append('INBOX', raw);
      let entry;
      for (let i = 0; i < 400; i++) {
        [entry] = await gateway.journal.list({ limit: 1 });
        if (entry?.state === 'delivered') break;
        await new Promise((r) => setTimeout(r, 50));
      }
      expect(entry).toMatchObject({ door: 'imap', kind: 'message', state: 'delivered' });
      await client.mailboxOpen('INBOX');
      const [message] = await client.fetchAll('1:*', { flags: true });
      expect([...(message?.flags ?? [])]).toContain('$PasserelleJournaled');
    } finally {
      await client.logout();
    }
  });
});
