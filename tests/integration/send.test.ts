/**
 * `passerelle send` against a real gateway started in this process (HTTP on loopback, SQLite
 * journal and store in a temporary directory, built-in SRIR and ROR mocks).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { classify, sendCommand, type SendIo } from '../../gateway/cli/send.js';
import { loadConfig } from '../../gateway/config.js';
import { silentLogger } from '../../gateway/log.js';
import { start, type RunningGateway } from '../../gateway/server.js';
import { corpusDocument } from '../support/corpus.js';
import { freePort } from '../support/loopback.js';

const TOKEN = 'send-test-sender-token-0001';
const dir = mkdtempSync(join(tmpdir(), 'passerelle-send-'));
let gateway: RunningGateway;

beforeAll(async () => {
  const config = loadConfig({
    env: {}, cwd: dir,
    overrides: {
      http: { port: 0, host: '127.0.0.1' }, smtp: { port: 0 },
      pipeline: { pollMs: 20 },
      clients: [
        { id: 'sender', token: TOKEN, role: 'sender' },
        { id: 'reader', token: 'send-test-pta-token-0001', role: 'pta', organization: 'x' },
      ],
    },
  });
  gateway = await start(config, silentLogger);
});
afterAll(async () => {
  await gateway.close();
  rmSync(dir, { recursive: true, force: true });
});

function capture(env: NodeJS.ProcessEnv = {}): SendIo & { out: () => string; err: () => string } {
  const out: string[] = [];
  const err: string[] = [];
  return { stdout: (t) => out.push(t), stderr: (t) => err.push(t), env, out: () => out.join(''), err: () => err.join('') };
}

function file(name: string, content: string | Buffer): string {
  const path = join(dir, name);
  writeFileSync(path, content);
  return path;
}

describe('passerelle send', () => {
  it('submits a CDA to POST /documents, follows it to delivered, prints the outcome, exit 0', async () => {
    const io = capture({ PASSERELLE_TOKEN: TOKEN });
    const code = await sendCommand([file('ldl.xml', corpusDocument('LDL-SES_2022.01.xml')), '--url', gateway.url], io);
    expect(io.err()).toMatch(/accepted as /);
    expect(code).toBe(0);
    const outcome = JSON.parse(io.out()) as { id: string; state: string; bundles: string[] };
    expect(outcome.state).toBe('delivered');
    expect(outcome.bundles.length).toBeGreaterThan(0);
    const entry = await gateway.journal.get(outcome.id);
    expect(entry).toMatchObject({ kind: 'document', door: 'http', submitter: 'sender', contentType: 'application/hl7-cda+xml' });
  });

  it('exit 2 when the document ends quarantined (XML that is not a CDA)', async () => {
    const io = capture();
    const code = await sendCommand([file('not-cda.xml', '\ufeff<?xml version="1.0"?>\n<invoice/>'), '--url', gateway.url, '--token', TOKEN], io);
    expect(code).toBe(2);
    expect(JSON.parse(io.out())).toMatchObject({ state: 'quarantined', errorCode: 'CDA_NOT_A_CLINICAL_DOCUMENT' });
  });

  it('submits a mail to POST /messages as message/rfc822, and reports its final state', async () => {
    const mail = 'From: <sender1@hopital.test>\r\nTo: <bal@passerelle.test>\r\nSubject: sans document\r\nMessage-ID: <send.1@hopital.test>\r\n\r\nAucune piece jointe.\r\n';
    const io = capture();
    const code = await sendCommand([file('mail.txt', mail), '--url', `${gateway.url}/`, '--token', TOKEN, '--timeout', '20'], io);
    const outcome = JSON.parse(io.out()) as { id: string; state: string };
    const entry = await gateway.journal.get(outcome.id);
    expect(entry).toMatchObject({ kind: 'message', door: 'http', contentType: 'message/rfc822' });
    expect((await gateway.journal.raw(outcome.id))?.toString('latin1')).toBe(mail); // the bytes, unchanged
    // A mail with no document cannot be delivered: the point here is a final state and its exit code.
    expect(['quarantined', 'failed']).toContain(outcome.state);
    expect(code).toBe(2);
  });

  it('exit 1: usage, unreadable file, unknown content, bad token, nothing listening', async () => {
    const cda = file('again.xml', corpusDocument('LDL-SES_2022.01.xml'));
    const cases: { args: string[]; env?: NodeJS.ProcessEnv; stderr: RegExp }[] = [
      { args: [], stderr: /exactly one FILE/ },
      { args: [cda, cda, '--token', TOKEN], stderr: /exactly one FILE/ },
      { args: [cda], stderr: /no token/ },
      { args: [cda, '--token', TOKEN, '--bogus'], stderr: /Unknown option/ },
      { args: [cda, '--token', TOKEN, '--timeout', '-3'], stderr: /--timeout/ },
      { args: [cda, '--token', TOKEN, '--url', 'ftp://x'], stderr: /--url/ },
      { args: [join(dir, 'missing.xml'), '--token', TOKEN], stderr: /cannot read .*ENOENT/ },
      { args: [file('doc.pdf', '%PDF-1.7\n%\xe2\xe3\n'), '--token', TOKEN], stderr: /neither a mail/ },
      { args: [cda, '--url', gateway.url, '--token', 'wrong-token-wrong-token'], stderr: /answered 401/ },
      { args: [cda, '--url', gateway.url, '--token', 'send-test-pta-token-0001'], stderr: /answered 403/ },
      { args: [cda, '--url', `http://127.0.0.1:${await freePort()}`, '--token', TOKEN], stderr: /cannot reach http:\/\/127\.0\.0\.1:\d+: ECONNREFUSED/ },
    ];
    for (const c of cases) {
      const io = capture(c.env);
      expect(await sendCommand(c.args, io), c.args.join(' ')).toBe(1);
      expect(io.err()).toMatch(c.stderr);
      expect(io.err()).not.toContain(TOKEN);
    }
  });

  it('exit 2 when the gateway refuses the input on submission (an empty mail: 400 MIME_MALFORMED)', async () => {
    const io = capture();
    const code = await sendCommand([file('empty.eml', ''), '--url', gateway.url, '--token', TOKEN], io);
    expect(code).toBe(2);
    expect(io.err()).toMatch(/refused \(400\)/);
    expect(JSON.parse(io.out())).toMatchObject({ resourceType: 'OperationOutcome' });
  });

  it('classifies files: XML, .eml, headers before a blank line, anything else', () => {
    expect(classify('a.xml', Buffer.from('\ufeff  <?xml version="1.0"?><ClinicalDocument/>'))?.path).toBe('/documents');
    expect(classify('a.eml', Buffer.from('whatever'))?.path).toBe('/messages');
    expect(classify('a', Buffer.from('Received: from x\n\tby y; Mon\nFrom: a@b\n\nbody'))?.path).toBe('/messages');
    expect(classify('a', Buffer.from('not a header\n\nbody'))).toBeUndefined();
    expect(classify('a', Buffer.from('From: a@b\nno blank line'))).toBeUndefined();
    expect(classify('a', Buffer.from('%PDF-1.7'))).toBeUndefined();
  });
});
