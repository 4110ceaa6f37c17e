/**
 * The gateway's own encryption (gateway/smime/encrypt.ts, gateway/mail/smime-wrap.ts) read by
 * the real `openssl cms -decrypt` (OpenSSL 3), and by our own decryptEnveloped. The test PKI is
 * made with `openssl ca` in a temp dir at test time (tests/support/openssl-pki.ts). No fixture files.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildMdn, signMdn } from '../../gateway/mail/mdn.js';
import { CLEAR_FIELDS, encryptMime } from '../../gateway/mail/smime-wrap.js';
import { contentCipher, keyTransport } from '../../gateway/smime/algorithms.js';
import { parseContentInfo } from '../../gateway/smime/cms.js';
import { decryptEnveloped, encryptEnveloped, type EncryptOptions } from '../../gateway/smime/index.js';
import { OID } from '../../gateway/smime/oids.js';
import { testPki, type LeafOptions } from '../support/openssl-pki.js';
import { codeOf } from '../support/rejection.js';

const pki = testPki('smime-encrypt-');
const { openssl, temp, certOf, identityOf } = pki;

/** An encryption certificate: as the shared leaf, without nonRepudiation. */
function leaf(name: string, email: string, o: Omit<LeafOptions, 'email'> = {}): void {
  pki.leaf(name, { email, keyUsage: 'digitalSignature, keyEncipherment', ...o });
}

/** `openssl cms -decrypt` of DER CMS, or of an S/MIME message (`inform` SMIME), with the named recipient's key. */
function opensslDecrypt(input: Buffer, recipient: string, inform: 'DER' | 'SMIME' = 'DER'): Buffer {
  return openssl('cms', '-decrypt', '-binary', '-inform', inform, '-in', temp(input), '-recip', `${recipient}.pem`, '-inkey', `${recipient}.key`);
}


beforeAll(() => {
  pki.init({ serial: '2000' });
  leaf('gateway', 'passerelle@dac.mssante.test');
  leaf('alice', 'alice.martin@cabinet.mssante.test');
  leaf('bob', 'bob.durand@clinique.mssante.test', { bits: 3072 });
  leaf('carol', 'carol@ehpad.mssante.test');
  leaf('grace', 'grace@pharmacie.mssante.test', { bits: 1024 });
  leaf('signonly', 'signonly@labo.mssante.test', { keyUsage: 'digitalSignature, nonRepudiation' });
  openssl('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'ec.key', '-out', 'ec.pem', '-subj', '/CN=ec', '-days', '30');
});

afterAll(() => pki.remove());

const CDA_MESSAGE = Buffer.from([
  'Content-Type: multipart/mixed; boundary="xdm"',
  '',
  '--xdm',
  'Content-Type: text/plain; charset=utf-8',
  'Content-Transfer-Encoding: 8bit',
  '',
  'Compte rendu de sortie (document de test, patient fictif, accentué).',
  '--xdm--',
  '',
].join('\r\n'));

const COMBINATIONS: Required<EncryptOptions>[] = [
  { cipher: 'aes-256-cbc', keyTransport: 'rsa-oaep' },
  { cipher: 'aes-256-cbc', keyTransport: 'rsa-pkcs1' },
  { cipher: 'aes-256-gcm', keyTransport: 'rsa-oaep' },
  { cipher: 'aes-256-gcm', keyTransport: 'rsa-pkcs1' },
];

describe('encryptEnveloped → openssl cms -decrypt and decryptEnveloped', () => {
  for (const options of COMBINATIONS) {
    it(`${options.cipher} × ${options.keyTransport}`, () => {
      const der = encryptEnveloped(CDA_MESSAGE, [certOf('gateway')], options);
      expect(opensslDecrypt(der, 'gateway').equals(CDA_MESSAGE)).toBe(true);
      expect(decryptEnveloped(der, identityOf('gateway')).equals(CDA_MESSAGE)).toBe(true);

      // The structure says what was asked for, as our own reader and algorithm policy see it.
      const cms = parseContentInfo(der);
      if (cms.kind !== 'enveloped') throw new Error('not enveloped');
      const gcm = options.cipher === 'aes-256-gcm';
      expect(cms.authenticated).toBe(gcm);
      expect(cms.contentType).toBe(OID.data);
      expect(cms.contentEncryptionAlgorithm.oid).toBe(gcm ? OID.aes256Gcm : OID.aes256Cbc);
      expect(contentCipher(cms.contentEncryptionAlgorithm)).toMatchObject(gcm ? { iv: expect.any(Buffer), tagLength: 16 } : { tagLength: 0 });
      expect(cms.mac?.length).toBe(gcm ? 16 : undefined);
      const [ri] = cms.recipients;
      expect(ri?.rid.kind).toBe('issuerSerial');
      expect(keyTransport(ri!.keyEncryptionAlgorithm)).toEqual(options.keyTransport === 'rsa-oaep' ? { kind: 'oaep', hash: 'sha256' } : { kind: 'pkcs1' });
    });
  }

  it('defaults: EnvelopedData, AES-256-CBC, RSAES-OAEP with SHA-256 and MGF1-SHA-256 (openssl reads the parameters so)', () => {
    const der = encryptEnveloped(CDA_MESSAGE, [certOf('gateway')]);
    const printed = openssl('cms', '-cmsout', '-print', '-inform', 'DER', '-in', temp(der)).toString('latin1');
    expect(printed).toContain('pkcs7-envelopedData');
    expect(printed).toContain('aes-256-cbc');
    expect(printed).toMatch(/algorithm: rsaesOaep[\s\S]*sha256[\s\S]*mgf1[\s\S]*sha256/);
    expect(opensslDecrypt(der, 'gateway').equals(CDA_MESSAGE)).toBe(true);
  });

  it('a fresh key and IV for every message', () => {
    const a = encryptEnveloped(CDA_MESSAGE, [certOf('gateway')]);
    const b = encryptEnveloped(CDA_MESSAGE, [certOf('gateway')]);
    expect(a.equals(b)).toBe(false);
    const ivOf = (der: Buffer): string => {
      const cms = parseContentInfo(der);
      if (cms.kind !== 'enveloped') throw new Error('not enveloped');
      return contentCipher(cms.contentEncryptionAlgorithm).iv.toString('hex');
    };
    expect(ivOf(a)).not.toBe(ivOf(b));
  });

  it('large binary content (multi-octet DER lengths) and empty content', () => {
    const big = Buffer.alloc(300_000);
    for (let i = 0; i < big.length; i++) big[i] = (i * 7919) & 0xff;
    for (const options of COMBINATIONS) {
      const der = encryptEnveloped(big, [certOf('gateway')], options);
      expect(opensslDecrypt(der, 'gateway').equals(big)).toBe(true);
      expect(decryptEnveloped(der, identityOf('gateway')).equals(big)).toBe(true);
    }
    for (const cipher of ['aes-256-cbc', 'aes-256-gcm'] as const) {
      const der = encryptEnveloped(Buffer.alloc(0), [certOf('gateway')], { cipher });
      expect(opensslDecrypt(der, 'gateway').length).toBe(0);
      expect(decryptEnveloped(der, identityOf('gateway')).length).toBe(0);
    }
  });
});

describe('several recipients', () => {
  for (const options of COMBINATIONS) {
    it(`each opens it, with openssl and with decryptEnveloped; others cannot (${options.cipher} × ${options.keyTransport})`, () => {
      const recipients = ['gateway', 'alice', 'bob']; // bob's key is RSA-3072
      const der = encryptEnveloped(CDA_MESSAGE, recipients.map(certOf), options);
      const cms = parseContentInfo(der);
      expect(cms.kind === 'enveloped' && cms.recipients.length).toBe(3);
      for (const r of recipients) {
        expect(opensslDecrypt(der, r).equals(CDA_MESSAGE)).toBe(true);
        expect(decryptEnveloped(der, identityOf(r)).equals(CDA_MESSAGE)).toBe(true);
      }
      expect(codeOf(() => decryptEnveloped(der, identityOf('carol')))).toBe('SMIME_NOT_RECIPIENT');
      expect(() => opensslDecrypt(der, 'carol')).toThrow();
    });
  }
});

describe('recipient certificates that are refused', () => {
  it('RSA-1024, alone or beside a good recipient: SMIME_ALGORITHM_REFUSED, nothing produced', () => {
    for (const options of COMBINATIONS) {
      expect(codeOf(() => encryptEnveloped(CDA_MESSAGE, [certOf('grace')], options))).toBe('SMIME_ALGORITHM_REFUSED');
      expect(codeOf(() => encryptEnveloped(CDA_MESSAGE, [certOf('gateway'), certOf('grace')], options))).toBe('SMIME_ALGORITHM_REFUSED');
    }
    expect(codeOf(() => encryptMime(Buffer.from('Subject: x\r\n\r\nbody\r\n'), [certOf('grace')]))).toBe('SMIME_ALGORITHM_REFUSED');
  });

  it('an EC key (no RSA key transport); a keyUsage without keyEncipherment; no recipient at all', () => {
    expect(codeOf(() => encryptEnveloped(CDA_MESSAGE, [certOf('ec')]))).toBe('SMIME_ALGORITHM_REFUSED');
    expect(codeOf(() => encryptEnveloped(CDA_MESSAGE, [certOf('signonly')]))).toBe('SMIME_SIGNER_USAGE');
    expect(() => encryptEnveloped(CDA_MESSAGE, [])).toThrow(TypeError);
  });
});

// --- MIME: encryptMime ---------------------------------------------------------------------

const GATEWAY_ADDRESS = 'passerelle@dac.mssante.test';
const ALICE = 'alice.martin@cabinet.mssante.test';

const ORIGINAL = Buffer.from([
  `From: ${ALICE}`,
  `To: ${GATEWAY_ADDRESS}`,
  'Subject: XDM/1.0/DDM+CR de sortie DUPONT Jean 01/02/1960',
  'Message-ID: <orig-1@cabinet.mssante.test>',
  `Disposition-Notification-To: ${ALICE}`,
  'MIME-Version: 1.0',
  ...CDA_MESSAGE.toString('utf8').split('\r\n'),
].join('\r\n'));

/** An MDN as the acknowledgement stage makes it: buildMdn, then signMdn with the gateway's identity. */
function signedMdn(): Buffer {
  const mdn = buildMdn({
    original: {
      headers: { messageId: '<orig-1@cabinet.mssante.test>', from: ALICE, to: GATEWAY_ADDRESS, subject: 'CR de sortie', dispositionNotificationTo: ALICE, returnPath: ALICE },
      raw: ORIGINAL,
    },
    gateway: { address: GATEWAY_ADDRESS, reportingUa: 'passerelle; passerelle-test' },
    outcome: { ok: false, code: 'MIME_NO_DOCUMENT' },
  });
  if (!mdn) throw new Error('no MDN due');
  return signMdn(mdn.raw, identityOf('gateway'));
}

/** Header block and body of a message (CRLF). */
function split(message: Buffer): { header: string; body: Buffer } {
  const end = message.indexOf('\r\n\r\n');
  return { header: message.subarray(0, end + 2).toString('latin1'), body: message.subarray(end + 4) };
}

const fieldNames = (header: string): string[] => header.split('\r\n').filter((l) => /^[^\s:]+:/.test(l)).map((l) => l.slice(0, l.indexOf(':')).toLowerCase());

describe('encryptMime', () => {
  it('signMdn then encryptMime: openssl decrypts it and verifies the signature inside (-noverify)', () => {
    const signed = signedMdn();
    for (const cipher of ['aes-256-cbc', 'aes-256-gcm'] as const) {
      const message = encryptMime(signed, [certOf('alice')], { cipher });
      const { header } = split(message);

      // The clear header: the routing fields of the MDN, then the RFC 8551 §3.3 (§3.4) entity fields.
      const smimeType = cipher === 'aes-256-gcm' ? 'authEnveloped-data' : 'enveloped-data';
      expect(header).toMatch(new RegExp(`^Content-Type: application/pkcs7-mime; smime-type=${smimeType};\\r\\n name="smime\\.p7m"\\r\\n`, 'm'));
      expect(header).toContain('Content-Transfer-Encoding: base64\r\n');
      expect(header).toContain('Content-Disposition: attachment; filename="smime.p7m"\r\n');
      const names = fieldNames(header);
      for (const n of ['date', 'from', 'to', 'subject', 'message-id', 'in-reply-to', 'references', 'auto-submitted', 'mime-version']) expect(names).toContain(n);
      expect(names.filter((n) => n.startsWith('content-'))).toEqual(['content-type', 'content-transfer-encoding', 'content-disposition']);
      expect(names.filter((n) => n === 'mime-version')).toHaveLength(1);
      expect(message.toString('latin1')).not.toContain('multipart/report'); // the MDN is inside only
      // base64 in lines of at most 76, CRLF only (RFC 2045 §6.8).
      expect(message.toString('latin1')).not.toMatch(/[^\r]\n/);
      for (const line of split(message).body.toString('latin1').split('\r\n')) expect(line.length).toBeLessThanOrEqual(76);

      // openssl reads the S/MIME message (not only the DER) and gives back the signed entity...
      const inner = opensslDecrypt(message, 'alice', 'SMIME');
      expect(inner.equals(decryptEnveloped(Buffer.from(split(message).body.toString('latin1'), 'base64'), identityOf('alice')))).toBe(true);
      const innerHeader = split(inner).header;
      expect(innerHeader).toMatch(/^Content-Type: multipart\/signed; protocol="application\/pkcs7-signature";/);
      expect(fieldNames(innerHeader)).toEqual(['content-type']);
      // ...byte for byte the body signMdn produced behind its clear fields
      expect(split(inner).body.equals(split(signed).body)).toBe(true);

      // ...whose signature openssl verifies (signature only: -noverify skips the chain).
      const verified = openssl('cms', '-verify', '-noverify', '-inform', 'SMIME', '-in', temp(inner));
      expect(verified.toString('latin1')).toMatch(/^Content-Type: multipart\/report; report-type=disposition-notification;/);
      // and a changed byte inside the signed part fails the same verification
      const tampered = Buffer.from(inner.toString('latin1').replace('processed/error', 'processed/errox'), 'latin1');
      expect(tampered.equals(inner)).toBe(false);
      expect(() => openssl('cms', '-verify', '-noverify', '-inform', 'SMIME', '-in', temp(tampered))).toThrow();
    }
  });

  it('encrypts every field not needed for routing; canonicalises LF to CRLF; adds MIME-Version when missing', () => {
    const message = Buffer.from([
      `From: ${ALICE}`,
      `To: ${GATEWAY_ADDRESS},`,
      ' carol@ehpad.mssante.test', // folded: the continuation stays with its field
      'Subject: =?utf-8?q?Compte_rendu?=',
      'X-MSS-INS: O',
      'Content-Type: text/plain; charset=utf-8',
      '',
      'Corps du message.',
      '',
    ].join('\n'));
    const out = encryptMime(message, [certOf('gateway'), certOf('bob')]);
    const { header, body } = split(out);
    expect(fieldNames(header)).toEqual(['from', 'to', 'subject', 'mime-version', 'content-type', 'content-transfer-encoding', 'content-disposition']);
    expect(header).toContain(`To: ${GATEWAY_ADDRESS},\r\n carol@ehpad.mssante.test\r\n`);
    expect(header).not.toContain('X-MSS-INS');

    for (const r of ['gateway', 'bob']) {
      const inner = opensslDecrypt(out, r, 'SMIME');
      expect(inner.toString('latin1')).toBe('X-MSS-INS: O\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nCorps du message.\r\n');
      expect(decryptEnveloped(Buffer.from(body.toString('latin1'), 'base64'), identityOf(r)).equals(inner)).toBe(true);
    }
    expect(CLEAR_FIELDS.has('x-mss-ins')).toBe(false);
  });

  it('PKCS#1 v1.5 key transport through encryptMime, for old receivers', () => {
    const out = encryptMime(signedMdn(), [certOf('gateway')], { keyTransport: 'rsa-pkcs1' });
    const inner = opensslDecrypt(out, 'gateway', 'SMIME');
    expect(() => openssl('cms', '-verify', '-noverify', '-inform', 'SMIME', '-in', temp(inner))).not.toThrow();
  });

  it('a message without a header/body separator is a programming error', () => {
    expect(() => encryptMime(Buffer.from('Subject: no body'), [certOf('gateway')])).toThrow(TypeError);
  });
});
