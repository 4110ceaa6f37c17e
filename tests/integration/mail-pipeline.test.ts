/**
 * Mail through the pipeline (issue "MSSanté mail channel"): messages built at test time the way
 * MSSanté senders build them — an IHE_XDM.zip of a real ANS document, signed then encrypted by the
 * real `openssl cms` with the development PKI — posted to `POST /messages`, unwrapped, extracted
 * and delivered; and hostile variants, each quarantined with its code.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import nodemailer from 'nodemailer';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../gateway/config.js';
import { silentLogger } from '../../gateway/log.js';
import type { ErrorCode } from '../../gateway/errors.js';
import { ansError } from '../../gateway/mail/mdn.js';
import { decodedHeader, parseMessage } from '../../gateway/mail/mime.js';
import { initDevPki, type DevPkiFiles } from '../../gateway/pki/dev-pki.js';
import { start, type RunningGateway } from '../../gateway/server.js';
import { corpusDocument } from '../support/corpus.js';
import { CapturingRelay } from '../support/relay.js';
import { settledEntry } from '../support/settled.js';
import { metadataXml, OTHER_INS, xdm, type DocSpec } from '../support/xdm.js';
import { deflatedZeros } from '../support/zip.js';

const dir = mkdtempSync(join(tmpdir(), 'passerelle-mail-'));
const SENDER = 'mail-sender-token-00000000001';
const LDL = corpusDocument('LDL-SES_2022.01.xml');
/** The corpus patient's INS, and another valid one. */
const [INS_VALUE, OTHER_INS_VALUE] = ['279035121518989', '295109912611193'];
let pki: DevPkiFiles;
let gateway: RunningGateway;
/** The relay the gateway sends MDNs and DSNs through. */
const relay = new CapturingRelay();

function openssl(input: Buffer, ...args: string[]): Buffer {
  const file = join(dir, `in-${Math.random().toString(36).slice(2)}`);
  writeFileSync(file, input);
  return execFileSync('/usr/bin/openssl', [...args, '-in', file], { stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 64 * 1024 * 1024 });
}

/** A multipart/mixed entity carrying the zip, CRLF line ends (RFC 5322 §2.3). */
function entity(zip: Buffer | undefined, extraHeaders = ''): Buffer {
  const b64 = zip ? zip.toString('base64').replace(/.{76}/g, '$&\r\n') : '';
  const lines = [
    `${extraHeaders}Content-Type: multipart/mixed; boundary="b1"`, '', '--b1', 'Content-Type: text/plain; charset=utf-8', '', 'Lettre de liaison ci-jointe.',
    ...(zip ? ['--b1', 'Content-Type: application/zip; name="IHE_XDM.zip"', 'Content-Disposition: attachment; filename="IHE_XDM.zip"', 'Content-Transfer-Encoding: base64', '', b64] : []),
    '--b1--', '',
  ];
  return Buffer.from(lines.join('\r\n'));
}

const headers = (from: string): string => `From: ${from}\r\nTo: bal@passerelle.test\r\nSubject: XDM/1.0/DDM\r\nMessage-ID: <${Math.random().toString(36).slice(2)}@hopital.test>\r\nMIME-Version: 1.0\r\n`;

/** Signed by sender1 (multipart/signed), then encrypted to the gateway (RFC 8551 §3.6 signed then enveloped). */
function signedThenEncrypted(inner: Buffer, from = 'sender1@hopital.test', signer = pki.senders[0]): Buffer {
  const signed = openssl(inner, 'cms', '-sign', '-crlfeol', '-signer', signer?.certificate ?? '', '-inkey', signer?.key ?? '');
  const encrypted = openssl(signed, 'cms', '-encrypt', '-aes256', '-crlfeol', '-recip', pki.gateway.certificate);
  return Buffer.concat([Buffer.from(headers(from)), encrypted]);
}

/** The base64 body of an S/MIME message cut in the middle: a truncated CMS structure. */
function truncated(message: Buffer): Buffer {
  const text = message.toString('latin1');
  const body = text.indexOf('\r\n\r\n', text.indexOf('application/pkcs7-mime')) + 4;
  return Buffer.from(text.slice(0, body + Math.floor((text.length - body) / 2)).replace(/[A-Za-z0-9+/]*$/, '') + '\r\n', 'latin1');
}

/** multipart/signed whose signed text is altered after signing (the attachment's first base64 line). */
function tampered(message: Buffer): Buffer {
  return Buffer.from(message.toString('latin1').replace('Lettre de liaison ci-jointe.', 'Lettre de liaison modifiee.'), 'latin1');
}

const doc = (over: Partial<DocSpec> = {}): DocSpec => ({ id: 'Doc01', uri: 'DOC0001.XML', bytes: LDL, ...over });

beforeAll(async () => {
  const relayPort = await relay.listen();
  pki = (await initDevPki(join(dir, 'pki'))).files;
  const config = loadConfig({
    env: {}, cwd: dir,
    overrides: {
      http: { port: 0, host: '127.0.0.1' }, smtp: { port: 0, domains: ['passerelle.test'], relay: { host: '127.0.0.1', port: relayPort } },
      pipeline: { pollMs: 20 },
      smime: { certificate: pki.gateway.certificate, privateKey: pki.gateway.key, trustAnchors: [pki.ca.certificate], crls: [pki.crl], plainDomains: ['operateur-de-confiance.test'] },
      clients: [{ id: 'mss', token: SENDER, role: 'sender' }],
    },
  });
  gateway = await start(config, silentLogger);
}, 60_000);
afterAll(async () => {
  await gateway.close();
  await relay.close();
});

async function submit(raw: Buffer): Promise<{ id: string; state: string; errorCode?: string; bundles: string[]; result: Record<string, unknown> }> {
  const res = await fetch(`${gateway.url}/messages`, { method: 'POST', headers: { authorization: `Bearer ${SENDER}`, 'content-type': 'message/rfc822' }, body: raw });
  expect(res.status).toBe(202);
  const { id } = (await res.json()) as { id: string };
  return settledEntry(gateway.url, id, SENDER, 10_000);
}

describe('mail through the pipeline', () => {
  it('delivers a signed-then-encrypted message carrying an IHE_XDM.zip', async () => {
    const entry = await submit(signedThenEncrypted(entity(xdm([doc()]))));
    expect(entry.state).toBe('delivered');
    expect(entry.bundles).toHaveLength(1);
    expect(entry.result.mail).toMatchObject({ signed: true, encrypted: true, signer: 'sender1@hopital.test' });
  });

  it('takes the same message over SMTP (STARTTLS), answers 250 once journaled, and delivers it', async () => {
    const raw = signedThenEncrypted(entity(xdm([doc({ bytes: Buffer.from(LDL.toString('utf8').replace('<id root="1.2.250.1.213.1.1.1.29.2022.1.1"/>', '<id root="1.2.250.1.213.1.1.1.29.2022.1.1" extension="smtp"/>')) })])));
    const transport = nodemailer.createTransport({ host: '127.0.0.1', port: gateway.smtpPort, secure: false, requireTLS: true, tls: { ca: readFileSync(pki.ca.certificate), servername: 'localhost' } });
    const info = await transport.sendMail({ envelope: { from: 'sender1@hopital.test', to: ['bal@passerelle.test'] }, raw });
    transport.close();
    const id = /queued as ([0-9a-f-]{36})/.exec(info.response)?.[1] ?? '';
    expect(id).not.toBe('');
    expect((await gateway.journal.get(id))?.door).toBe('smtp');
    for (let i = 0; i < 400 && (await gateway.journal.get(id))?.state !== 'delivered'; i++) await new Promise((r) => setTimeout(r, 25));
    expect((await gateway.journal.get(id))?.state).toBe('delivered');
  });

  it('answers a read-receipt request by an MDN: processed, or the ANS error and subject', async () => {
    const asking = (from: string, inner: Buffer): Buffer => Buffer.concat([Buffer.from(`Return-Path: <${from}>\r\nDisposition-Notification-To: ${from}\r\n`), inner]);
    const ok = await submit(asking('sender2@hopital.test', signedThenEncrypted(entity(xdm([doc({ bytes: Buffer.from(LDL.toString('utf8').replace('<id root="1.2.250.1.213.1.1.1.29.2022.1.1"/>', '<id root="1.2.250.1.213.1.1.1.29.2022.1.1" extension="mdn"/>')) })])), 'sender2@hopital.test', pki.senders[1])));
    expect(ok.state).toBe('delivered');
    const [encrypted] = await relay.to('sender2@hopital.test', 1);
    expect(encrypted?.from).toBe(''); // RFC 8098 §3: null reverse-path
    expect(encrypted?.text).toContain('application/pkcs7-mime'); // encrypted to the sender's certificate
    const mdn = openssl(encrypted?.raw ?? Buffer.alloc(0), 'cms', '-decrypt', '-recip', pki.senders[1]?.certificate ?? '', '-inkey', pki.senders[1]?.key ?? '').toString('utf8');
    expect(mdn).toContain('multipart/signed'); // signed with the gateway's identity
    expect(mdn).toContain('report-type=disposition-notification');
    expect(mdn).toContain('MDN-sent-automatically; processed');

    const ko = await submit(asking('sender2@hopital.test', signedThenEncrypted(entity(undefined), 'sender2@hopital.test', pki.senders[1])));
    expect(ko).toMatchObject({ state: 'quarantined', errorCode: 'MIME_NO_DOCUMENT' });
    const [, koEncrypted] = await relay.to('sender2@hopital.test', 2);
    expect(decodedHeader(parseMessage(koEncrypted?.raw ?? Buffer.alloc(0)), 'subject')).toMatch(/^\[KO Intégration système !\]\[906\]/);
    const koMdn = openssl(koEncrypted?.raw ?? Buffer.alloc(0), 'cms', '-decrypt', '-recip', pki.senders[1]?.certificate ?? '', '-inkey', pki.senders[1]?.key ?? '').toString('utf8');
    expect(koMdn).toMatch(/Error: 906\^/);
  });

  it('over SMTP, the MDN is for the recipient the message was sent to, from the address its signing certificate names', async () => {
    const inner = signedThenEncrypted(entity(xdm([doc({ bytes: Buffer.from(LDL.toString('utf8').replace('<id root="1.2.250.1.213.1.1.1.29.2022.1.1"/>', '<id root="1.2.250.1.213.1.1.1.29.2022.1.1" extension="mailbox"/>')) })])));
    const raw = Buffer.concat([Buffer.from('Disposition-Notification-To: sender1@hopital.test\r\n'), inner]);
    const transport = nodemailer.createTransport({ host: '127.0.0.1', port: gateway.smtpPort, secure: false, requireTLS: true, tls: { ca: readFileSync(pki.ca.certificate), servername: 'localhost' } });
    await transport.sendMail({ envelope: { from: 'sender1@hopital.test', to: ['bal@passerelle.test'] }, raw });
    transport.close();
    const [encrypted] = await relay.to('sender1@hopital.test', 1);
    // The development PKI's gateway certificate names passerelle@passerelle.test, not bal@.
    expect(decodedHeader(parseMessage(encrypted?.raw ?? Buffer.alloc(0)), 'from')).toBe('passerelle@passerelle.test');
    const mdn = openssl(encrypted?.raw ?? Buffer.alloc(0), 'cms', '-decrypt', '-recip', pki.senders[0]?.certificate ?? '', '-inkey', pki.senders[0]?.key ?? '').toString('utf8');
    expect(mdn).toContain('Final-Recipient: rfc822;bal@passerelle.test');
    expect(mdn).toContain('MDN-sent-automatically; processed');
  });

  it('answers over SMTP a message whose header cannot be read by a DSN to the envelope sender', async () => {
    const raw = Buffer.from(`From: sender1@hopital.test\r\nX-Padding: ${'x'.repeat(300 * 1024)}\r\nSubject: test\r\n\r\nbody\r\n`);
    const transport = nodemailer.createTransport({ host: '127.0.0.1', port: gateway.smtpPort, secure: false, requireTLS: true, tls: { ca: readFileSync(pki.ca.certificate), servername: 'localhost' } });
    const info = await transport.sendMail({ envelope: { from: 'unreadable@hopital.test', to: ['bal@passerelle.test'] }, raw });
    transport.close();
    const id = /queued as ([0-9a-f-]{36})/.exec(info.response)?.[1] ?? '';
    for (let i = 0; i < 400 && (await gateway.journal.get(id))?.state !== 'quarantined'; i++) await new Promise((r) => setTimeout(r, 25));
    expect(await gateway.journal.get(id)).toMatchObject({ state: 'quarantined', errorCode: 'MIME_MALFORMED' });
    const [dsn] = await relay.to('unreadable@hopital.test', 1);
    expect(dsn?.from).toBe(''); // RFC 5321 §4.5.5
    expect(dsn?.text).toContain('report-type=delivery-status');
    expect(dsn?.text).toContain('Final-Recipient: rfc822;bal@passerelle.test');
    expect(dsn?.raw.length).toBeLessThan(64 * 1024); // without the unreadable header
  });

  it('answers a failure without read-receipt request by a DSN to the return path', async () => {
    const raw = Buffer.concat([Buffer.from('Return-Path: <dsn-me@hopital.test>\r\n'), signedThenEncrypted(entity(undefined), 'sender1@hopital.test')]);
    expect(await submit(raw)).toMatchObject({ state: 'quarantined', errorCode: 'MIME_NO_DOCUMENT' });
    const [dsn] = await relay.to('dsn-me@hopital.test', 1);
    expect(dsn?.text).toContain('report-type=delivery-status');
    expect(dsn?.text).toContain('Action: failed');
  });

  it('flags X-MSS-* headers that disagree with the documents, without refusing them', async () => {
    const body = xdm([doc({ bytes: Buffer.from(LDL.toString('utf8').replace('<id root="1.2.250.1.213.1.1.1.29.2022.1.1"/>', '<id root="1.2.250.1.213.1.1.1.29.2022.1.1" extension="mss"/>')) })]);
    const raw = Buffer.concat([Buffer.from(headers('secretariat@operateur-de-confiance.test')), entity(body, 'X-MSS-CODECDA: 34133-9^^2.16.840.1.113883.6.1\r\nX-MSS-INS: N\r\n')]);
    const entry = await submit(raw);
    expect(entry.state).toBe('delivered');
    expect(entry.result.mssWarnings).toEqual([
      { header: 'X-MSS-CODECDA', declared: '34133-9', found: '11490-0' },
      { header: 'X-MSS-INS', declared: 'N', found: 'O' },
    ]);
  });

  it('accepts plain mail from a trusted operator domain, refuses it from elsewhere', async () => {
    const plain = (from: string): Buffer => Buffer.concat([Buffer.from(headers(from)), entity(xdm([doc({ bytes: Buffer.from(LDL.toString('utf8').replace('<id root="1.2.250.1.213.1.1.1.29.2022.1.1"/>', '<id root="1.2.250.1.213.1.1.1.29.2022.1.1" extension="plain"/>')) })]))]);
    expect((await submit(plain('secretariat@operateur-de-confiance.test'))).state).toBe('delivered');
    expect(await submit(plain('secretariat@ailleurs.test'))).toMatchObject({ state: 'quarantined', errorCode: 'SMIME_POLICY_VIOLATION' });

    // A PDF alone names no patient: refused, and the detail says why.
    const pdf = Buffer.from('%PDF-1.4\n%%EOF\n').toString('base64');
    const pdfOnly = Buffer.from(headers('secretariat@operateur-de-confiance.test') + ['Content-Type: multipart/mixed; boundary="b1"', '', '--b1',
      'Content-Type: application/pdf; name="CR.pdf"', 'Content-Transfer-Encoding: base64', '', pdf, '--b1--', ''].join('\r\n'));
    const refused = await submit(pdfOnly) as { state: string; errorCode?: string; error?: string };
    expect(refused).toMatchObject({ state: 'quarantined', errorCode: 'MIME_NO_DOCUMENT' });
    expect(refused.error).toMatch(/1 PDF attachment\(s\) and no CDA/);
  });

  it('quarantines each hostile message with its code, keeps its bytes and answers it by MDN or DSN', async () => {
    const cases: [string, Buffer, ErrorCode][] = [
      ['signer is not From', signedThenEncrypted(entity(xdm([doc()])), 'someone@else.test'), 'SMIME_SIGNER_MISMATCH'],
      ['no document', signedThenEncrypted(entity(undefined)), 'MIME_NO_DOCUMENT'],
      ['XDM metadata naming two patients', signedThenEncrypted(entity(xdm([doc({ patientId: OTHER_INS })]))), 'MESSAGE_MULTIPLE_PATIENTS'],
      ['XDM patient differs from the CDA', signedThenEncrypted(entity(xdm([doc()], { metadata: Buffer.from(metadataXml([doc()]).toString('utf8').replaceAll(INS_VALUE, OTHER_INS_VALUE)) }))), 'XDM_PATIENT_MISMATCH'],
      ['masked document', signedThenEncrypted(entity(xdm([doc({ confidentiality: { code: 'MASQUE_PS', scheme: '1.2.250.1.213.1.1.4.13', display: 'Masqué aux PS' } })]))), 'DOCUMENT_MASKED'],
      ['hash mismatch', signedThenEncrypted(entity(xdm([doc({ hash: '0'.repeat(40) })]))), 'XDM_HASH_MISMATCH'],
      ['zip bomb: 1 GB of zeros', signedThenEncrypted(entity(xdm([doc()], { extra: [{ name: 'IHE_XDM/SUBSET01/BOMB.XML', precompressed: deflatedZeros(1024) }] }))), 'XDM_LIMIT_EXCEEDED'],
      ['zip-slip', signedThenEncrypted(entity(xdm([doc()], { extra: [{ name: '../../etc/cron.d/evil', data: Buffer.from('x') }] }))), 'XDM_UNSAFE_ENTRY'],
      ['XXE in METADATA.XML', signedThenEncrypted(entity(xdm([doc()], { metadata: metadataXml([doc()], { prolog: '\n<!DOCTYPE lcm:SubmitObjectsRequest [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>' }) }))), 'XDM_MALFORMED'],
      ['weak algorithm (3DES)', Buffer.concat([Buffer.from(headers('sender1@hopital.test')), openssl(entity(xdm([doc()])), 'cms', '-encrypt', '-des3', '-crlfeol', '-recip', pki.gateway.certificate)]), 'SMIME_ALGORITHM_REFUSED'],
      ['truncated CMS', truncated(signedThenEncrypted(entity(xdm([doc()])))), 'SMIME_MALFORMED'],
      ['tampered signed body', tampered(Buffer.concat([Buffer.from(headers('sender1@hopital.test')), openssl(entity(xdm([doc()])), 'cms', '-sign', '-crlfeol', '-signer', pki.senders[0]?.certificate ?? '', '-inkey', pki.senders[0]?.key ?? '')])), 'SMIME_SIGNATURE_INVALID'],
      ['signed by a sender, encrypted to someone else', Buffer.concat([Buffer.from(headers('sender1@hopital.test')), openssl(entity(xdm([doc()])), 'cms', '-encrypt', '-aes256', '-crlfeol', '-recip', pki.senders[1]?.certificate ?? '')]), 'SMIME_NOT_RECIPIENT'],
    ];
    for (const [i, [name, message, code]] of cases.entries()) {
      // Every other case asks for a read receipt: an MDN with the ANS code answers it, a DSN the others.
      const address = `hostile-${i}@hopital.test`;
      const raw = Buffer.concat([Buffer.from(`Return-Path: <${address}>\r\n${i % 2 === 0 ? `Disposition-Notification-To: ${address}\r\n` : ''}`), message]);
      const entry = await submit(raw);
      expect(entry, name).toMatchObject({ state: 'quarantined', errorCode: code });
      expect((await gateway.journal.raw(entry.id))?.equals(raw), `${name}: original bytes kept`).toBe(true);
      const [ack] = await relay.to(address, 1);
      if (i % 2 === 0) expect(decodedHeader(parseMessage(ack?.raw ?? Buffer.alloc(0)), 'subject'), name).toMatch(new RegExp(`^\\[KO Intégration système !\\]\\[${ansError(code).code}\\]`));
      else expect(ack?.text, name).toMatch(new RegExp(`report-type=delivery-status[\\s\\S]*Action: failed[\\s\\S]*Diagnostic-Code: smtp; 554 [0-9.]+ ${code}:`));
    }
  });
});
