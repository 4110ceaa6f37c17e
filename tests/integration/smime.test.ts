/**
 * S/MIME interop with the real `openssl cms` (OpenSSL 3): a test PKI made with `openssl ca`
 * in a temp dir, messages encrypted and signed by openssl, opened by gateway/smime; and the
 * gateway's own signature checked by `openssl cms -verify`. No fixture files, nothing timed.
 */
import { constants, privateDecrypt, publicEncrypt } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PasserelleError, type ErrorCode } from '../../gateway/errors.js';
import { decryptEnveloped, signDetached, TrustStore, verifySigned, type Identity } from '../../gateway/smime/index.js';
import { testPki, yymmdd } from '../support/openssl-pki.js';
import { codeOf } from '../support/rejection.js';

const pki = testPki('smime-');
const { file, openssl, temp, leaf, identityOf } = pki;

const YEAR = 365 * 86_400_000;
let trust: TrustStore;
let gateway: Identity;

beforeAll(() => {
  pki.init();
  const now = Date.now();
  leaf('gateway', { email: 'passerelle@dac.mssante.test', keyUsage: 'digitalSignature, keyEncipherment' });
  leaf('other', { email: 'secretariat@hopital.mssante.test' });
  leaf('alice', { email: 'alice.martin@cabinet.mssante.test' });
  leaf('bob', { email: 'Bob.Durand@Clinique.MSSante.test' });
  leaf('carol', { email: 'carol@ehpad.mssante.test' });
  leaf('dave', { email: 'dave@ssiad.mssante.test', notBefore: new Date(now - 3 * YEAR), notAfter: new Date(now - 2 * YEAR) });
  leaf('erin', { email: 'erin@ssiad.mssante.test', notBefore: new Date(now + YEAR), notAfter: new Date(now + 2 * YEAR) });
  leaf('frank', { email: 'frank@labo.mssante.test', extKeyUsage: 'clientAuth' });
  leaf('grace', { email: 'grace@pharmacie.mssante.test', bits: 1024 });
  leaf('nosign', { email: 'nosign@labo.mssante.test', keyUsage: 'keyEncipherment' });
  openssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'mallory.key', '-out', 'mallory.pem', '-subj', '/CN=mallory', '-days', '30',
    '-addext', 'subjectAltName=email:mallory@evil.test', '-addext', 'extendedKeyUsage=emailProtection');
  openssl('ca', '-config', 'ca.cnf', '-revoke', 'carol.pem', '-crl_reason', 'keyCompromise');
  openssl('ca', '-config', 'ca.cnf', '-gencrl', '-out', 'crl.pem');
  openssl('ca', '-config', 'ca.cnf', '-gencrl', '-out', 'stale-crl.pem',
    '-crl_lastupdate', yymmdd(new Date(now - 60 * 86_400_000)), '-crl_nextupdate', yymmdd(new Date(now - 30 * 86_400_000)));
  trust = TrustStore.fromFiles([file('ca.pem')], [file('crl.pem')]);
  gateway = identityOf('gateway');
});

afterAll(() => pki.remove());

// --- openssl front-ends -------------------------------------------------------------------

type Transport = 'pkcs1' | 'oaep-sha1' | 'oaep-sha256';

function encrypt(content: Buffer, cipher: string, recipients: string[], transport: Transport = 'pkcs1', extra: string[] = []): Buffer {
  const keyopts = transport === 'pkcs1' ? [] : ['-keyopt', 'rsa_padding_mode:oaep', ...(transport === 'oaep-sha256' ? ['-keyopt', 'rsa_oaep_md:sha256'] : [])];
  const recips = recipients.flatMap((r) => ['-recip', `${r}.pem`, ...keyopts]);
  return openssl('cms', '-encrypt', '-binary', '-outform', 'DER', `-${cipher}`, ...extra, '-in', temp(content), ...recips);
}

function signOpaque(content: Buffer, signer: string, extra: string[] = []): Buffer {
  return openssl('cms', '-sign', '-binary', '-nodetach', '-outform', 'DER', '-in', temp(content), '-signer', `${signer}.pem`, '-inkey', `${signer}.key`, ...extra);
}

function signP7s(content: Buffer, signer: string, extra: string[] = []): Buffer {
  return openssl('cms', '-sign', '-binary', '-outform', 'DER', '-in', temp(content), '-signer', `${signer}.pem`, '-inkey', `${signer}.key`, ...extra);
}

/** multipart/signed as openssl writes it for mail (RFC 8551 §3.5.3), CRLF line ends. */
function signMultipart(content: Buffer, signer: string): Buffer {
  return openssl('cms', '-sign', '-binary', '-crlfeol', '-in', temp(content), '-signer', `${signer}.pem`, '-inkey', `${signer}.key`);
}

/** Opaque signed-data as an S/MIME entity: base64 of streamed (BER, indefinite-length) CMS. */
function signOpaqueSmime(content: Buffer, signer: string): Buffer {
  return openssl('cms', '-sign', '-binary', '-crlfeol', '-nodetach', '-stream', '-in', temp(content), '-signer', `${signer}.pem`, '-inkey', `${signer}.key`);
}

/**
 * The two parts of a multipart/signed, the first as its exact bytes: the CRLF before a
 * boundary delimiter belongs to the delimiter (RFC 2046 §5.1.1). Good enough for openssl's output.
 */
function splitSigned(mime: Buffer): { content: Buffer; der: Buffer } {
  const text = mime.toString('latin1');
  const boundary = /boundary="([^"]+)"/.exec(text)?.[1];
  if (!boundary) throw new Error('no boundary');
  const open = `--${boundary}\r\n`;
  const delimiter = `\r\n--${boundary}`;
  const firstStart = text.indexOf(open) + open.length;
  const firstEnd = text.indexOf(delimiter, firstStart);
  const secondStart = firstEnd + delimiter.length + 2;
  const secondEnd = text.indexOf(delimiter, secondStart);
  const second = text.slice(secondStart, secondEnd);
  return { content: mime.subarray(firstStart, firstEnd), der: Buffer.from(second.slice(second.indexOf('\r\n\r\n') + 4), 'base64') };
}

/** The base64 body of a single-part S/MIME entity. */
function smimeBody(mime: Buffer): Buffer {
  const text = mime.toString('latin1');
  return Buffer.from(text.slice(text.indexOf('\r\n\r\n') + 4), 'base64');
}


function errorOf(f: () => unknown): PasserelleError {
  try {
    f();
  } catch (e) {
    if (e instanceof PasserelleError) return e;
    throw e;
  }
  throw new Error('expected a PasserelleError');
}

/** Flips bits of one byte in place. */
function flip(buf: Buffer, at: number, mask: number): void {
  buf.writeUInt8(buf.readUInt8(at) ^ mask, at);
}

const CDA_MESSAGE = Buffer.from([
  'Content-Type: multipart/mixed; boundary="xdm"',
  '',
  '--xdm',
  'Content-Type: text/plain; charset=utf-8',
  'Content-Transfer-Encoding: 8bit',
  '',
  'Compte rendu de sortie (document de test, patient fictif).',
  '--xdm--',
  '',
].join('\r\n'));

const ALICE = 'alice.martin@cabinet.mssante.test';
const verifyFrom = (der: Buffer, from: string, detachedContent?: Buffer, store = trust) =>
  verifySigned({ der, detachedContent }, store, { from, at: new Date() });

// --- interoperability -------------------------------------------------------------------------

describe('openssl cms → decryptEnveloped + verifySigned (sign, then encrypt)', () => {
  const transports: Transport[] = ['pkcs1', 'oaep-sha1', 'oaep-sha256'];
  const ciphers = ['aes128', 'aes256', 'aes-128-gcm', 'aes-256-gcm'];
  for (const transport of transports) {
    for (const cipher of ciphers) {
      it(`${transport} × ${cipher} × detached (multipart/signed)`, () => {
        const signed = signMultipart(CDA_MESSAGE, 'alice');
        const opened = decryptEnveloped(encrypt(signed, cipher, ['gateway'], transport), gateway);
        expect(opened.equals(signed)).toBe(true);
        const { content, der } = splitSigned(opened);
        expect(content.equals(CDA_MESSAGE)).toBe(true);
        const result = verifyFrom(der, ALICE, content);
        expect(result).toMatchObject({ ok: true, signer: { email: ALICE } });
        if (result.ok) {
          expect(result.content.equals(CDA_MESSAGE)).toBe(true);
          expect(result.signingTime).toBeInstanceOf(Date);
          expect(result.signer.subject).toContain('CN=alice');
        }
      });
      it(`${transport} × ${cipher} × opaque (signed-data, streamed BER)`, () => {
        const signed = signOpaqueSmime(CDA_MESSAGE, 'alice');
        const opened = decryptEnveloped(encrypt(signed, cipher, ['gateway'], transport), gateway);
        const result = verifyFrom(smimeBody(opened), ALICE);
        expect(result.ok).toBe(true);
        if (result.ok) expect(result.content.equals(CDA_MESSAGE)).toBe(true);
      });
    }
  }

  it('encrypt, then sign: the signed content is the EnvelopedData', () => {
    const enveloped = encrypt(CDA_MESSAGE, 'aes256', ['gateway']);
    const result = verifyFrom(signOpaque(enveloped, 'alice'), ALICE);
    expect(result.ok).toBe(true);
    if (result.ok) expect(decryptEnveloped(result.content, gateway).equals(CDA_MESSAGE)).toBe(true);
  });

  it('streamed (indefinite-length) EnvelopedData and AuthEnvelopedData', () => {
    for (const cipher of ['aes256', 'aes-256-gcm']) {
      const der = encrypt(CDA_MESSAGE, cipher, ['gateway'], 'pkcs1', ['-stream']);
      expect(der[1]).toBe(0x80); // indefinite length at the top: really BER
      expect(decryptEnveloped(der, gateway).equals(CDA_MESSAGE)).toBe(true);
    }
  });

  it('several recipients; recipient named by subjectKeyIdentifier (-keyid); AES-192', () => {
    expect(decryptEnveloped(encrypt(CDA_MESSAGE, 'aes256', ['other', 'gateway']), gateway).equals(CDA_MESSAGE)).toBe(true);
    expect(decryptEnveloped(encrypt(CDA_MESSAGE, 'aes-256-gcm', ['other', 'gateway'], 'oaep-sha256', ['-keyid']), gateway).equals(CDA_MESSAGE)).toBe(true);
    expect(decryptEnveloped(encrypt(CDA_MESSAGE, 'aes192', ['gateway']), gateway).equals(CDA_MESSAGE)).toBe(true);
  });

  it('signatures: SHA-384, SHA-512, RSA-PSS; From compared case-insensitively', () => {
    for (const extra of [['-md', 'sha384'], ['-md', 'sha512'], ['-keyopt', 'rsa_padding_mode:pss'], ['-md', 'sha512', '-keyopt', 'rsa_padding_mode:pss']]) {
      expect(verifyFrom(signOpaque(CDA_MESSAGE, 'alice', extra), ALICE).ok).toBe(true);
    }
    expect(verifyFrom(signP7s(CDA_MESSAGE, 'bob'), 'bob.durand@clinique.mssante.TEST', CDA_MESSAGE).ok).toBe(true);
  });

  it('SHA-1 is refused unless the legacy option is on; MD5 always', () => {
    const sha1 = signOpaque(CDA_MESSAGE, 'alice', ['-md', 'sha1']);
    expect(verifyFrom(sha1, ALICE)).toMatchObject({ ok: false, code: 'SMIME_ALGORITHM_REFUSED' });
    expect(verifySigned({ der: sha1 }, trust, { from: ALICE, allowSha1: true }).ok).toBe(true);
    const md5 = signOpaque(CDA_MESSAGE, 'alice', ['-md', 'md5']);
    expect(verifySigned({ der: md5 }, trust, { from: ALICE, allowSha1: true })).toMatchObject({ ok: false, code: 'SMIME_ALGORITHM_REFUSED' });
  });
});

describe('signDetached → openssl cms -verify', () => {
  it('produces a detached SignedData that openssl verifies against the CA', () => {
    const mdn = Buffer.from('Content-Type: multipart/report; report-type=disposition-notification\r\n\r\nprocessed\r\n');
    const p7s = signDetached(mdn, gateway);
    expect(() => openssl('cms', '-verify', '-binary', '-inform', 'DER', '-in', temp(p7s), '-content', temp(mdn), '-CAfile', 'ca.pem', '-out', temp(''))).not.toThrow();
    // and a changed byte is caught by openssl too
    const changed = Buffer.from(mdn);
    flip(changed, changed.length - 3, 1);
    expect(() => openssl('cms', '-verify', '-binary', '-inform', 'DER', '-in', temp(p7s), '-content', temp(changed), '-CAfile', 'ca.pem', '-out', temp(''))).toThrow();
    expect(verifyFrom(p7s, 'passerelle@dac.mssante.test', mdn)).toMatchObject({ ok: true });
  });
});

// --- hostile input ---------------------------------------------------------------------------

describe('hostile messages each get their code', () => {
  it('tampered content, detached and opaque', () => {
    const p7s = signP7s(CDA_MESSAGE, 'alice');
    const tampered = Buffer.from(CDA_MESSAGE);
    flip(tampered, tampered.length - 10, 0x20);
    expect(verifyFrom(p7s, ALICE, tampered)).toMatchObject({ ok: false, code: 'SMIME_SIGNATURE_INVALID' });

    const opaque = signOpaque(CDA_MESSAGE, 'alice');
    const at = opaque.indexOf(Buffer.from('patient fictif'));
    expect(at).toBeGreaterThan(0);
    flip(opaque, at, 0x20);
    expect(verifyFrom(opaque, ALICE)).toMatchObject({ ok: false, code: 'SMIME_SIGNATURE_INVALID' });
  });

  it('forged signature value', () => {
    const p7s = signP7s(CDA_MESSAGE, 'alice');
    flip(p7s, p7s.length - 7, 0x01); // inside the RSA signature, the last field of the SignerInfo
    expect(verifyFrom(p7s, ALICE, CDA_MESSAGE)).toMatchObject({ ok: false, code: 'SMIME_SIGNATURE_INVALID' });
  });

  it('signer expired, not yet valid, revoked, untrusted, wrong usage, not the From', () => {
    const cases: [string, string, ErrorCode][] = [
      ['dave', 'dave@ssiad.mssante.test', 'SMIME_SIGNER_EXPIRED'],
      ['erin', 'erin@ssiad.mssante.test', 'SMIME_SIGNER_EXPIRED'],
      ['carol', 'carol@ehpad.mssante.test', 'SMIME_SIGNER_REVOKED'],
      ['mallory', 'mallory@evil.test', 'SMIME_SIGNER_NOT_TRUSTED'],
      ['frank', 'frank@labo.mssante.test', 'SMIME_SIGNER_USAGE'],
      ['nosign', 'nosign@labo.mssante.test', 'SMIME_SIGNER_USAGE'],
      ['alice', 'bob.durand@clinique.mssante.test', 'SMIME_SIGNER_MISMATCH'],
      ['grace', 'grace@pharmacie.mssante.test', 'SMIME_ALGORITHM_REFUSED'],
    ];
    for (const [signer, from, code] of cases) {
      expect({ signer, result: verifyFrom(signP7s(CDA_MESSAGE, signer), from, CDA_MESSAGE) }).toMatchObject({ signer, result: { ok: false, code } });
    }
  });

  it('CRLs: out of date → retried later, missing → not trusted; a forged CRL is refused at load', () => {
    const p7s = signP7s(CDA_MESSAGE, 'alice');
    const stale = TrustStore.fromFiles([file('ca.pem')], [file('stale-crl.pem')]);
    expect(verifyFrom(p7s, ALICE, CDA_MESSAGE, stale)).toMatchObject({ ok: false, code: 'SMIME_CRL_OUT_OF_DATE' });
    expect(stale.staleCrls()).toHaveLength(1);
    const none = TrustStore.fromFiles([file('ca.pem')], []);
    expect(verifyFrom(p7s, ALICE, CDA_MESSAGE, none)).toMatchObject({ ok: false, code: 'SMIME_SIGNER_NOT_TRUSTED' });
    const optional = TrustStore.fromFiles([file('ca.pem')], [], { requireCrl: false });
    expect(verifyFrom(p7s, ALICE, CDA_MESSAGE, optional).ok).toBe(true);

    const crlDer = openssl('crl', '-in', 'crl.pem', '-outform', 'DER');
    const forged = Buffer.from(crlDer);
    flip(forged, forged.length - 5, 1);
    expect(codeOf(() => TrustStore.fromFiles([file('ca.pem')], [temp(forged)]))).toBe('CONFIG_INVALID');
    expect(TrustStore.fromFiles([file('ca.pem')], [temp(crlDer)]).crls[0]?.revoked.size).toBe(1); // DER CRL files too
  });

  it('encrypted to another recipient; weak content cipher (3DES, DES, RC2)', () => {
    expect(codeOf(() => decryptEnveloped(encrypt(CDA_MESSAGE, 'aes256', ['other']), gateway))).toBe('SMIME_NOT_RECIPIENT');
    expect(codeOf(() => decryptEnveloped(encrypt(CDA_MESSAGE, 'des3', ['gateway']), gateway))).toBe('SMIME_ALGORITHM_REFUSED');
    const legacy = ['-provider', 'legacy', '-provider', 'default']; // OpenSSL 3 keeps DES and RC2 there
    expect(codeOf(() => decryptEnveloped(encrypt(CDA_MESSAGE, 'des-cbc', ['gateway'], 'pkcs1', legacy), gateway))).toBe('SMIME_ALGORITHM_REFUSED');
    expect(codeOf(() => decryptEnveloped(encrypt(CDA_MESSAGE, 'rc2-40-cbc', ['gateway'], 'pkcs1', legacy), gateway))).toBe('SMIME_ALGORITHM_REFUSED');
  });

  it('truncated or garbled CMS is SMIME_MALFORMED, at every cut', () => {
    const enveloped = encrypt(CDA_MESSAGE, 'aes-256-gcm', ['gateway']);
    const streamed = encrypt(CDA_MESSAGE, 'aes256', ['gateway'], 'pkcs1', ['-stream']);
    const signed = signOpaque(CDA_MESSAGE, 'alice');
    for (let cut = 0; cut < enveloped.length; cut += 7) expect(codeOf(() => decryptEnveloped(enveloped.subarray(0, cut), gateway))).toBe('SMIME_MALFORMED');
    for (let cut = 0; cut < streamed.length; cut += 7) expect(codeOf(() => decryptEnveloped(streamed.subarray(0, cut), gateway))).toBe('SMIME_MALFORMED');
    for (let cut = 0; cut < signed.length; cut += 11) expect(verifyFrom(signed.subarray(0, cut), ALICE)).toMatchObject({ ok: false, code: 'SMIME_MALFORMED' });
    expect(codeOf(() => decryptEnveloped(Buffer.from('not a CMS message at all'), gateway))).toBe('SMIME_MALFORMED');
    expect(codeOf(() => decryptEnveloped(signed, gateway))).toBe('SMIME_MALFORMED');
    expect(verifyFrom(enveloped, ALICE)).toMatchObject({ ok: false, code: 'SMIME_MALFORMED' });
    expect(verifyFrom(signP7s(CDA_MESSAGE, 'alice'), ALICE)).toMatchObject({ ok: false, code: 'SMIME_MALFORMED' }); // detached, no content
  });
});

describe('every single-byte corruption', () => {
  it('of AuthEnvelopedData: the original content or an SMIME_* error, never anything else', () => {
    const der = encrypt(CDA_MESSAGE, 'aes-256-gcm', ['gateway']);
    for (let i = 0; i < der.length; i++) {
      const bad = Buffer.from(der);
      flip(bad, i, 0x41);
      try {
        expect(decryptEnveloped(bad, gateway).equals(CDA_MESSAGE)).toBe(true); // e.g. the unchecked inner contentType
      } catch (e) {
        expect(e).toBeInstanceOf(PasserelleError);
        expect((e as PasserelleError).code).toMatch(/^SMIME_/);
      }
    }
  });

  it('of SignedData: a structured result, and never "ok" with other content', () => {
    const der = signOpaque(CDA_MESSAGE, 'alice');
    for (let i = 0; i < der.length; i += 2) {
      const bad = Buffer.from(der);
      flip(bad, i, 0x41);
      const result = verifyFrom(bad, ALICE);
      if (result.ok) expect(result.content.equals(CDA_MESSAGE)).toBe(true); // e.g. the digestAlgorithms hint
      else expect(result.code).toMatch(/^SMIME_/);
    }
  });
});

describe('RSA PKCS#1 v1.5 implicit rejection', () => {
  /**
   * Re-encrypts the gateway's RecipientInfo with a chosen encoded message: raw RSA with the
   * gateway's public key, spliced over the original encryptedKey (same length).
   */
  function withEncodedMessage(der: Buffer, edit: (em: Buffer) => Buffer): Buffer {
    const out = Buffer.from(der);
    for (let i = 0; i + 256 <= out.length; i++) {
      // the encryptedKey is the 256-octet OCTET STRING (04 82 01 00) of the KeyTransRecipientInfo
      if (out[i] === 0x04 && out[i + 1] === 0x82 && out[i + 2] === 0x01 && out[i + 3] === 0x00) {
        const c = out.subarray(i + 4, i + 260);
        const em = privateDecrypt({ key: gateway.privateKey, padding: constants.RSA_NO_PADDING }, c);
        publicEncrypt({ key: gateway.certificate.publicKey, padding: constants.RSA_NO_PADDING }, edit(Buffer.from(em))).copy(out, i + 4);
        return out;
      }
    }
    throw new Error('no encryptedKey found');
  }

  it('bad padding, a wrong-length key and a wrong private key all give the same SMIME_DECRYPT_FAILED', () => {
    const der = encrypt(CDA_MESSAGE, 'aes-256-gcm', ['gateway']);
    expect(decryptEnveloped(withEncodedMessage(der, (em) => em), gateway).equals(CDA_MESSAGE)).toBe(true); // the splice itself is sound

    const badType = withEncodedMessage(der, (em) => { em[1] = 0x01; return em; });
    const noSeparator = withEncodedMessage(der, (em) => { em.fill(0x5a, 2); return em; });
    const shortKey = withEncodedMessage(der, (em) => { em[em.length - 33] = 0x5a; em[em.length - 25] = 0x00; return em; }); // 24-octet key for AES-256
    const wrongKey: Identity = { certificate: gateway.certificate, privateKey: identityOf('other').privateKey };

    const errors = [
      errorOf(() => decryptEnveloped(badType, gateway)),
      errorOf(() => decryptEnveloped(noSeparator, gateway)),
      errorOf(() => decryptEnveloped(shortKey, gateway)),
      errorOf(() => decryptEnveloped(der, wrongKey)),
    ];
    for (const e of errors) expect({ code: e.code, message: e.message }).toEqual({ code: 'SMIME_DECRYPT_FAILED', message: errors[0]?.message });
  });

  it('with AES-CBC the synthetic key is deterministic and never yields the content', () => {
    // CBC has no integrity: a random key passes the padding check about 1 time in 256 and gives
    // garbage (RFC 3218 §2.3) — so either outcome is allowed, but never the plaintext, and always the same.
    const der = withEncodedMessage(encrypt(CDA_MESSAGE, 'aes128', ['gateway']), (em) => { em[0] = 0x01; return em; });
    const outcome = (): string => {
      try {
        return decryptEnveloped(der, gateway).toString('hex');
      } catch (e) {
        return (e as PasserelleError).code;
      }
    };
    const first = outcome();
    expect(first).not.toBe(CDA_MESSAGE.toString('hex'));
    expect(outcome()).toBe(first);
  });
});
