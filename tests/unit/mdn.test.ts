/**
 * MDNs (RFC 8098, ANS volet "Transmission au LPS…" v1.1.3) and DSNs (RFC 3464) built by
 * gateway/mail, read back with our MIME parser; the signed form checked by `openssl cms -verify`.
 */
import { execFileSync } from 'node:child_process';
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ERROR_CATALOGUE, type ErrorCode } from '../../gateway/errors.js';
import { buildDsn, dsnStatus, type DsnInput } from '../../gateway/mail/dsn.js';
import {
  ANS_ERROR_LABELS,
  buildMdn,
  mdnDecision,
  readOriginalHeaders,
  signMdn,
  type MdnInput,
  type OriginalHeaders,
} from '../../gateway/mail/mdn.js';
import { canonicalCrlf, decodedHeader, headerValue, parseMessage, type MimePart } from '../../gateway/mail/mime.js';
import type { Identity } from '../../gateway/smime/index.js';

const SUBJECT = 'XDM/1.0/DDM+ECHOGRAPHIE ABDOMINOPELVIENNE CORSE FIGATELLIX 12/10/1988';
const SENDER = 'serviceY@chb.mssante.fr';
const GATEWAY = 'serviceY_auto@chb.mssante.fr';

/** An MSSanté message as a sending LPS writes it: 8-bit text, an IHE_XDM.zip, a read-receipt request. */
const ORIGINAL = Buffer.from(
  [
    'Return-Path: <serviceY@chb.mssante.fr>',
    'Date: Mon, 19 Feb 2024 23:01:00 +0100',
    `From: Service Y <${SENDER}>`,
    `To: ${GATEWAY}`,
    'Message-ID: <20240219230100.23456@chb.mssante.fr>',
    `Subject: ${SUBJECT}`,
    `Disposition-Notification-To: ${SENDER}`,
    'X-MSS-INS: O',
    'MIME-Version: 1.0',
    'Content-Type: multipart/mixed; boundary="ZZZ"',
    '',
    '--ZZZ',
    'Content-Type: text/plain; charset=utf-8',
    'Content-Transfer-Encoding: 8bit',
    '',
    'Compte rendu d’échographie ci-joint.',
    '--ZZZ',
    'Content-Type: application/zip; name="IHE_XDM.zip"',
    'Content-Transfer-Encoding: base64',
    'Content-Disposition: attachment; filename="IHE_XDM.zip"',
    '',
    Buffer.from('PK\x03\x04 not really a zip').toString('base64'),
    '--ZZZ--',
    '',
  ].join('\r\n'),
  'utf8',
);

const headers: OriginalHeaders = readOriginalHeaders(parseMessage(ORIGINAL));

function input(outcome: MdnInput['outcome'], over: Partial<OriginalHeaders> = {}, options?: MdnInput['options']): MdnInput {
  return {
    original: { headers: { ...headers, ...over }, raw: ORIGINAL },
    gateway: { address: GATEWAY, reportingUa: 'pfi.chb.mssante.fr; passerelle' },
    outcome,
    ...(options === undefined ? {} : { options }),
  };
}

/** The fields of a message/disposition-notification or message/delivery-status body, group by group. */
function fieldGroups(part: MimePart): Array<Record<string, string>> {
  return part.content
    .toString('utf8')
    .split(/\r\n\r\n/)
    .filter((g) => g.trim() !== '')
    .map((g) => Object.fromEntries(g.replace(/\r\n[ \t]+/g, ' ').split('\r\n').filter((l) => l !== '').map((l) => {
      const i = l.indexOf(':');
      return [l.slice(0, i).toLowerCase(), l.slice(i + 1).trim()];
    })));
}

function child(part: MimePart, i: number): MimePart {
  const c = part.children[i];
  if (c === undefined) throw new Error(`no part ${i}`);
  return c;
}

/** One catalogue code for each ANS code the catalogue uses. */
const byAnsCode = new Map<number, ErrorCode>();
for (const [code, def] of Object.entries(ERROR_CATALOGUE) as Array<[ErrorCode, (typeof ERROR_CATALOGUE)[ErrorCode]]>) {
  if (!byAnsCode.has(def.mdn)) byAnsCode.set(def.mdn, code);
}

describe('buildMdn: success', () => {
  const mdn = buildMdn(input({ ok: true }, { originalRecipient: `rfc822;${GATEWAY}` }, { date: new Date(Date.UTC(2024, 1, 20)) }));
  if (mdn === undefined) throw new Error('an MDN is due');
  const root = parseMessage(mdn.raw);

  it('goes to the Disposition-Notification-To address with the null reverse-path (RFC 8098 §3)', () => {
    expect(mdn.envelope).toEqual({ from: '', to: SENDER });
    expect(headerValue(root, 'To')).toBe(SENDER);
    expect(headerValue(root, 'From')).toBe(GATEWAY);
  });

  it('is a three-part multipart/report; report-type=disposition-notification', () => {
    expect(root.contentType.mediaType).toBe('multipart/report');
    expect(root.contentType.params['report-type']).toBe('disposition-notification');
    expect(root.children.map((c) => c.contentType.mediaType)).toEqual(['text/plain', 'message/disposition-notification', 'message/rfc822']);
    expect(root.defects).toEqual([]);
  });

  it('reports processed, with the identifying fields the volet asks for', () => {
    const [fields] = fieldGroups(child(root, 1));
    expect(fields).toEqual({
      'reporting-ua': 'pfi.chb.mssante.fr; passerelle',
      'original-recipient': `rfc822;${GATEWAY}`,
      'final-recipient': `rfc822;${GATEWAY}`,
      'original-message-id': '<20240219230100.23456@chb.mssante.fr>',
      disposition: 'automatic-action/MDN-sent-automatically; processed',
    });
  });

  it('keeps the original subject, marks itself auto-replied and threads to the original', () => {
    expect(decodedHeader(root, 'Subject')).toBe(SUBJECT);
    expect(headerValue(root, 'Auto-Submitted')).toBe('auto-replied');
    expect(headerValue(root, 'In-Reply-To')).toBe('<20240219230100.23456@chb.mssante.fr>');
    expect(headerValue(root, 'Date')).toBe('Tue, 20 Feb 2024 00:00:00 +0000');
    expect(headerValue(root, 'Message-ID')).toMatch(/^<[0-9a-f]{32}@chb\.mssante\.fr>$/);
  });

  it('returns the original whole, byte for byte, labelled 8bit', () => {
    const returned = child(root, 2);
    expect(headerValue(returned, 'Content-Transfer-Encoding')).toBe('8bit');
    expect(returned.content.equals(ORIGINAL)).toBe(true);
    expect(returned.message && headerValue(returned.message, 'Message-ID')).toBe('<20240219230100.23456@chb.mssante.fr>');
    expect(returned.message?.children.map((c) => c.filename)).toEqual([undefined, 'IHE_XDM.zip']);
  });

  it('omits Original-Recipient when the original did not name one (RFC 8098 §3.2.3)', () => {
    const other = buildMdn(input({ ok: true }));
    const [fields] = fieldGroups(child(parseMessage(other?.raw ?? Buffer.alloc(0)), 1));
    expect(fields).not.toHaveProperty('original-recipient');
  });
});

describe('buildMdn: failures', () => {
  it.each([...byAnsCode.entries()])('ANS %i (from %s): KO subject, processed/error and Error: code^label', (ans, code) => {
    const mdn = buildMdn(input({ ok: false, code }));
    const root = parseMessage(mdn?.raw ?? Buffer.alloc(0));
    const label = ANS_ERROR_LABELS[ans] ?? '';
    const asciiLabel = label.normalize('NFD').replace(/[\u0300-\u036f]/g, '');

    expect(decodedHeader(root, 'Subject')).toBe(`[KO Intégration système !][${ans}] ${SUBJECT}`);
    const [fields] = fieldGroups(child(root, 1));
    expect(fields?.disposition).toBe('automatic-action/MDN-sent-automatically; processed/error');
    expect(fields?.error).toBe(`${ans}^${asciiLabel}`);
    // RFC 8098 §7: the machine-readable part is US-ASCII.
    expect(child(root, 1).content.every((byte) => byte < 0x80)).toBe(true);

    const text = child(root, 0).content.toString('utf8');
    expect(text).toContain(`${ans}^${label}`);
    expect(text).toContain(code);
    expect(child(root, 2).content.equals(ORIGINAL)).toBe(true);
  });

  it('covers every catalogue code with an ANS label', () => {
    for (const code of Object.keys(ERROR_CATALOGUE) as ErrorCode[]) {
      const root = parseMessage(buildMdn(input({ ok: false, code }))?.raw ?? Buffer.alloc(0));
      expect(fieldGroups(child(root, 1))[0]?.error).toMatch(/^90[0-6]\^\S/);
    }
  });

  it('writes the legacy form processed/Error: code^label when asked (volet ≤ 1.1.2)', () => {
    const root = parseMessage(buildMdn(input({ ok: false, code: 'IDENTITY_COLLISION' }, {}, { errorPlacement: 'disposition' }))?.raw ?? Buffer.alloc(0));
    const [fields] = fieldGroups(child(root, 1));
    const error = `904^L'INS transmis ne correspond pas exactement a celui stocke dans la base du consommateur`;
    expect(fields?.disposition).toBe(`automatic-action/MDN-sent-automatically; processed/Error: ${error}`);
    expect(fields?.error).toBe(error);
  });

  it('puts the detail in the human part only', () => {
    const root = parseMessage(buildMdn(input({ ok: false, code: 'XDM_HASH_MISMATCH', detail: 'DOC0001.XML: hash differs' }))?.raw ?? Buffer.alloc(0));
    expect(child(root, 0).content.toString('utf8')).toContain('Détail : DOC0001.XML: hash differs');
    expect(child(root, 1).content.toString('utf8')).not.toContain('DOC0001');
  });

  it('lets no line break of the original reach its own header', () => {
    const mdn = buildMdn(input({ ok: false, code: 'MIME_NO_DOCUMENT' }, { subject: 'hello\r\nBcc: victim@example.org', messageId: '<a@b>\r\nBcc: x@y' }));
    const root = parseMessage(mdn?.raw ?? Buffer.alloc(0));
    expect(headerValue(root, 'Bcc')).toBeUndefined();
    expect(fieldGroups(child(root, 1))[0]).not.toHaveProperty('bcc');
  });
});

describe('mdnDecision: when no MDN is sent', () => {
  const mdnReport = 'multipart/report; report-type=disposition-notification; boundary=x';
  const cases: Array<[string, Partial<OriginalHeaders>, string]> = [
    ['no Disposition-Notification-To', { dispositionNotificationTo: undefined }, 'not-requested'],
    ['an address other than the return path (RFC 8098 §2.1)', { dispositionNotificationTo: 'someone.else@chb.mssante.fr' }, 'return-path-differs'],
    ['a different local part case', { dispositionNotificationTo: 'servicey@chb.mssante.fr' }, 'return-path-differs'],
    ['several addresses', { dispositionNotificationTo: `${SENDER}, other@chb.mssante.fr` }, 'several-addresses'],
    ['a null return path', { returnPath: '<>' }, 'null-return-path'],
    ['no return path at all', { returnPath: undefined }, 'null-return-path'],
    ['an MDN', { contentType: mdnReport }, 'report'],
    ['a DSN', { contentType: 'multipart/report; report-type=delivery-status; boundary=y' }, 'report'],
    ['an auto-replied message (RFC 3834 §2)', { autoSubmitted: 'auto-replied' }, 'auto-submitted'],
    ['an auto-generated message', { autoSubmitted: 'auto-generated' }, 'auto-submitted'],
  ];
  it.each(cases)('%s', (_name, over, reason) => {
    expect(mdnDecision({ ...headers, ...over })).toEqual({ send: false, reason });
    expect(buildMdn(input({ ok: true }, over))).toBeUndefined();
  });

  it('answers when the same mailbox is written differently (display name, domain case, envelope form)', () => {
    expect(mdnDecision({ ...headers, dispositionNotificationTo: `"Service Y" <serviceY@CHB.MSSante.fr>`, returnPath: SENDER })).toEqual({ send: true, to: 'serviceY@CHB.MSSante.fr' });
    expect(mdnDecision({ ...headers, autoSubmitted: 'no' })).toEqual({ send: true, to: SENDER });
  });
});

describe('buildDsn', () => {
  const dsnInput = (over: Partial<DsnInput> = {}, envelope: Partial<DsnInput['envelope']> = {}): DsnInput => ({
    original: { headers: { ...headers, dispositionNotificationTo: undefined }, raw: ORIGINAL },
    envelope: { from: SENDER, recipients: [{ address: GATEWAY, originalRecipient: `rfc822;${GATEWAY}` }], envid: 'ENV-42', ...envelope },
    reportingMta: 'gw.chb.mssante.fr',
    postmaster: 'MAILER-DAEMON@gw.chb.mssante.fr',
    failure: { code: 'CDA_NOT_WELL_FORMED' },
    arrivalDate: new Date(Date.UTC(2024, 1, 19, 22, 1)),
    ...over,
  });

  it('is a multipart/report; report-type=delivery-status to the reverse-path, from <>', () => {
    const dsn = buildDsn(dsnInput());
    expect(dsn?.envelope).toEqual({ from: '', to: SENDER });
    const root = parseMessage(dsn?.raw ?? Buffer.alloc(0));
    expect(root.contentType.mediaType).toBe('multipart/report');
    expect(root.contentType.params['report-type']).toBe('delivery-status');
    expect(root.children.map((c) => c.contentType.mediaType)).toEqual(['text/plain', 'message/delivery-status', 'text/rfc822-headers']);
    expect(decodedHeader(root, 'Subject')).toBe(`[KO Intégration système !][906] ${SUBJECT}`);
    expect(headerValue(root, 'Auto-Submitted')).toBe('auto-replied');

    const [perMessage, recipient, ...rest] = fieldGroups(child(root, 1));
    expect(rest).toEqual([]);
    expect(perMessage).toEqual({ 'reporting-mta': 'dns; gw.chb.mssante.fr', 'original-envelope-id': 'ENV-42', 'arrival-date': 'Mon, 19 Feb 2024 22:01:00 +0000' });
    expect(recipient).toEqual({
      'original-recipient': `rfc822;${GATEWAY}`,
      'final-recipient': `rfc822;${GATEWAY}`,
      action: 'failed',
      status: '5.6.0',
      'diagnostic-code': `smtp; 554 5.6.0 CDA_NOT_WELL_FORMED: ${ERROR_CATALOGUE.CDA_NOT_WELL_FORMED.message}`,
    });
    const returned = child(root, 2).content.toString('utf8');
    expect(returned).toContain('Message-ID: <20240219230100.23456@chb.mssante.fr>');
    expect(returned).not.toContain('IHE_XDM.zip');
  });

  it('returns the full message for RET=FULL', () => {
    const root = parseMessage(buildDsn(dsnInput({}, { ret: 'FULL' }))?.raw ?? Buffer.alloc(0));
    expect(child(root, 2).contentType.mediaType).toBe('message/rfc822');
    expect(child(root, 2).content.equals(ORIGINAL)).toBe(true);
  });

  it('reports only the recipients whose NOTIFY asks for failures (RFC 3461 §4.1)', () => {
    const dsn = buildDsn(dsnInput({}, {
      recipients: [
        { address: 'a@gw.fr', notify: ['NEVER'] },
        { address: 'b@gw.fr', notify: ['SUCCESS'] },
        { address: 'c@gw.fr', notify: ['FAILURE', 'DELAY'] },
        { address: 'd@gw.fr' },
      ],
    }));
    const groups = fieldGroups(child(parseMessage(dsn?.raw ?? Buffer.alloc(0)), 1)).slice(1);
    expect(groups.map((g) => g['final-recipient'])).toEqual(['rfc822;c@gw.fr', 'rfc822;d@gw.fr']);
    expect(buildDsn(dsnInput({}, { recipients: [{ address: 'a@gw.fr', notify: ['NEVER'] }] }))).toBeUndefined();
  });

  it('is never sent for a null reverse-path, nor about an MDN or a DSN', () => {
    expect(buildDsn(dsnInput({}, { from: '' }))).toBeUndefined();
    expect(buildDsn(dsnInput({}, { from: '<>' }))).toBeUndefined();
    for (const reportType of ['disposition-notification', 'delivery-status']) {
      const original = { headers: { ...headers, contentType: `multipart/report; report-type=${reportType}; boundary=b` }, raw: ORIGINAL };
      expect(buildDsn(dsnInput({ original }))).toBeUndefined();
    }
  });

  it('maps the catalogue to permanent enhanced status codes', () => {
    expect(dsnStatus('CDA_TOO_LARGE')).toBe('5.3.4');
    expect(dsnStatus('SMIME_SIGNATURE_INVALID')).toBe('5.7.7');
    expect(dsnStatus('SMIME_DECRYPT_FAILED')).toBe('5.7.5');
    expect(dsnStatus('AUTH_FORBIDDEN')).toBe('5.7.1');
    expect(dsnStatus('STORE_UNAVAILABLE')).toBe('5.3.0');
    for (const code of Object.keys(ERROR_CATALOGUE) as ErrorCode[]) expect(dsnStatus(code)).toMatch(/^5\.\d{1,3}\.\d{1,3}$/);
  });
});

describe('signMdn (RFC 8551 §3.5)', () => {
  let dir: string;
  let identity: Identity;
  const openssl = (...args: string[]): Buffer => execFileSync('/usr/bin/openssl', args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'mdn-sign-'));
    openssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'gw.key', '-out', 'gw.pem', '-days', '2', '-subj', '/CN=gateway',
      '-addext', `subjectAltName=email:${GATEWAY}`, '-addext', 'keyUsage=critical,digitalSignature', '-addext', 'extendedKeyUsage=emailProtection');
    identity = { certificate: new X509Certificate(readFileSync(join(dir, 'gw.pem'))), privateKey: createPrivateKey(readFileSync(join(dir, 'gw.key'))) };
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('wraps the report in multipart/signed that openssl verifies, headers outside, report inside', () => {
    const mdn = buildMdn(input({ ok: false, code: 'IDENTITY_AMBIGUOUS' }));
    if (mdn === undefined) throw new Error('an MDN is due');
    const signed = signMdn(mdn.raw, identity);
    const root = parseMessage(signed);
    expect(root.contentType.mediaType).toBe('multipart/signed');
    expect(root.contentType.params).toMatchObject({ protocol: 'application/pkcs7-signature', micalg: 'sha-256' });
    expect(headerValue(root, 'Subject')).toBe(headerValue(parseMessage(mdn.raw), 'Subject'));
    expect(headerValue(root, 'Auto-Submitted')).toBe('auto-replied');
    expect(headerValue(root, 'MIME-Version')).toBe('1.0');

    const inner = child(root, 0);
    expect(inner.contentType.mediaType).toBe('multipart/report');
    expect(inner.children).toHaveLength(3);
    expect(child(inner, 2).content.equals(ORIGINAL)).toBe(true);
    expect(child(root, 1).contentType.mediaType).toBe('application/pkcs7-signature');

    writeFileSync(join(dir, 'signed.eml'), signed);
    const content = openssl('cms', '-verify', '-noverify', '-in', 'signed.eml');
    expect(canonicalCrlf(content).equals(inner.raw)).toBe(true);
  });

  it('fails verification once a byte of the signed part changes', () => {
    const mdn = buildMdn(input({ ok: true }));
    const signed = Buffer.from(signMdn(mdn?.raw ?? Buffer.alloc(0), identity));
    const at = signed.indexOf('Final-Recipient: rfc822;serviceY_auto');
    signed[at + 'Final-Recipient: rfc822;'.length] = 'S'.charCodeAt(0);
    writeFileSync(join(dir, 'tampered.eml'), signed);
    expect(() => openssl('cms', '-verify', '-noverify', '-in', 'tampered.eml')).toThrow();
  });
});
