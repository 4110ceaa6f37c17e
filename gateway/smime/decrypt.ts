/**
 * Opening EnvelopedData (RFC 5652 §6) and AuthEnvelopedData (RFC 5083) addressed to the
 * gateway: find our KeyTransRecipientInfo, recover the content-encryption key, decrypt.
 *
 * Every failure after the recipient is found is the same SMIME_DECRYPT_FAILED with the same
 * detail — wrong key, bad PKCS#1 padding, bad OAEP, bad CBC padding, bad GCM tag — so the
 * answer is no oracle (RFC 3218 §2.3; RFC 8551 §2.7.1 warnings on MMA).
 */
import { constants, createDecipheriv, privateDecrypt, type KeyObject, type X509Certificate } from 'node:crypto';
import { PasserelleError } from '../errors.js';
import { contentCipher, keyTransport, refused, type ContentCipher } from './algorithms.js';
import { identifies } from './certificate.js';
import { parseContentInfo, type EnvelopedData } from './cms.js';
import { malformed } from './der.js';
import { unwrapPkcs1 } from './pkcs1.js';

export interface Identity {
  readonly certificate: X509Certificate;
  readonly privateKey: KeyObject;
}

const failed = (): PasserelleError => new PasserelleError('SMIME_DECRYPT_FAILED', 'The message could not be decrypted.');

export function decryptEnveloped(der: Buffer, identity: Identity): Buffer {
  const cms = parseContentInfo(der);
  if (cms.kind !== 'enveloped') throw malformed('expected EnvelopedData or AuthEnvelopedData');
  // Checked before any private-key operation: a refused cipher costs us nothing.
  const cipher = contentCipher(cms.contentEncryptionAlgorithm);
  // RFC 5083 §1 / RFC 5084 §1: GCM belongs in AuthEnvelopedData (its tag is the mac), and
  // AuthEnvelopedData needs an authenticated cipher; any other pairing leaves content unauthenticated.
  if (cipher.gcm !== cms.authenticated) throw refused(`${cipher.name} in ${cms.authenticated ? 'AuthEnvelopedData' : 'EnvelopedData'}`);

  const recipient = cms.recipients.find((r) => identifies(r.rid, identity.certificate));
  if (!recipient) throw new PasserelleError('SMIME_NOT_RECIPIENT');
  const transport = keyTransport(recipient.keyEncryptionAlgorithm);

  let cek: Buffer;
  if (transport.kind === 'pkcs1') {
    cek = unwrapPkcs1(recipient.encryptedKey, identity.privateKey, cipher.keyLength);
  } else {
    // RFC 3560 §3: OAEP with MGF1 over the same hash and an empty label. OpenSSL's OAEP decoding
    // is constant-time and reports every decoding failure alike, so failing here, before the
    // content, gives no Manger oracle; v1.5 has no such guarantee, hence pkcs1.ts.
    try {
      cek = privateDecrypt({ key: identity.privateKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: transport.hash }, recipient.encryptedKey);
    } catch {
      throw failed();
    }
    if (cek.length !== cipher.keyLength) throw failed();
  }
  return decryptContent(cms, cipher, cek);
}

function decryptContent(cms: EnvelopedData, cipher: ContentCipher, cek: Buffer): Buffer {
  const mac = cms.mac ?? Buffer.alloc(0);
  if (cipher.gcm && mac.length !== cipher.tagLength) throw malformed('GCM mac length differs from aes-ICVlen');
  try {
    if (cipher.gcm) {
      const d = createDecipheriv(cipher.name as 'aes-256-gcm', cek, cipher.iv, { authTagLength: cipher.tagLength });
      d.setAuthTag(mac);
      // RFC 5083 §2.2: the DER of authAttrs (as SET OF) is the additional authenticated data.
      if (cms.authAttrs) d.setAAD(cms.authAttrs);
      return Buffer.concat([d.update(cms.encryptedContent), d.final()]);
    }
    const d = createDecipheriv(cipher.name, cek, cipher.iv);
    return Buffer.concat([d.update(cms.encryptedContent), d.final()]);
  } catch {
    throw failed();
  }
}
