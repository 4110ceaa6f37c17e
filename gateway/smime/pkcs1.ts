/**
 * RSA PKCS#1 v1.5 key transport unwrapping with implicit rejection.
 *
 * Why not `privateDecrypt` with RSA_PKCS1_PADDING: Node 20 refuses it (Marvin attack,
 * CVE-2023-46809) and we keep it that way — no security revert flag. The padding check of
 * RFC 8017 §7.2.2 is a Bleichenbacher oracle unless neither its result nor its timing shows.
 * So we do raw RSA (RSA_NO_PADDING), check the padding without branching on secret bytes, and
 * on any failure go on with a synthetic key — what RFC 3218 §2.3 recommends for CMS and what
 * OpenSSL ≥ 3.2 does (draft-irtf-cfrg-rsa-guidance "implicit rejection"): the synthetic key
 * is a PRF of the ciphertext under a secret derived from the private exponent, so the same
 * ciphertext always gives the same key and nobody without the private key can predict it.
 * Content decryption then fails like it would for a wrong key: one error, one path.
 *
 * JavaScript gives no hard constant-time guarantee; the code below at least has no
 * data-dependent branch or index between the raw decryption and the content decryption.
 */
import { constants, createHash, createHmac, privateDecrypt, type KeyObject } from 'node:crypto';

const kdkSecrets = new WeakMap<KeyObject, Buffer>();

/** SHA-256 of the private exponent: the key of the key-derivation key (as the draft does). */
function kdkSecret(privateKey: KeyObject): Buffer {
  let s = kdkSecrets.get(privateKey);
  if (!s) {
    const d = privateKey.export({ format: 'jwk' }).d;
    if (typeof d !== 'string') throw new TypeError('RSA private key without private exponent');
    s = createHash('sha256').update(Buffer.from(d, 'base64url')).digest();
    kdkSecrets.set(privateKey, s);
  }
  return s;
}

/** 1 when x is 0, else 0 (0 ≤ x < 2^31). */
const isZero = (x: number): number => ((x - 1) >>> 31) & 1;
/** 1 when a ≥ b, else 0 (0 ≤ a, b < 2^31). */
const atLeast = (a: number, b: number): number => 1 ^ (((a - b) >>> 31) & 1);

/** The content-encryption key of `keyLength` octets: the real one, or the synthetic one. */
export function unwrapPkcs1(encryptedKey: Buffer, privateKey: KeyObject, keyLength: number): Buffer {
  const k = Math.ceil((privateKey.asymmetricKeyDetails?.modulusLength ?? 0) / 8);
  // The ciphertext is public: a wrong length needs no secrecy, but still takes the synthetic path.
  const c = encryptedKey.length <= k ? Buffer.concat([Buffer.alloc(k - encryptedKey.length), encryptedKey]) : encryptedKey;
  const kdk = createHmac('sha256', kdkSecret(privateKey)).update(c).digest();
  const synthetic = createHmac('sha256', kdk).update(`CMS CEK ${keyLength}`).digest();

  let em: Buffer;
  try {
    em = privateDecrypt({ key: privateKey, padding: constants.RSA_NO_PADDING }, c);
  } catch {
    em = Buffer.alloc(k); // c ≥ n or wrong length: public facts, padding check below fails
  }

  // RFC 8017 §7.2.2 step 3: EM = 0x00 || 0x02 || PS (≥ 8 nonzero) || 0x00 || M
  let good = isZero(em[0] ?? 1) & isZero((em[1] ?? 0) ^ 2);
  let found = 0;
  let sep = 0;
  for (let i = 2; i < em.length; i++) {
    const z = isZero(em[i] as number) & (found ^ 1);
    sep |= -z & i;
    found |= z;
  }
  good &= found & atLeast(sep, 10) & isZero((em.length - sep - 1) ^ keyLength) & isZero(em.length ^ k);

  const mask = -good & 0xff;
  const out = Buffer.alloc(keyLength);
  const offset = Math.max(0, em.length - keyLength);
  for (let j = 0; j < keyLength; j++) {
    out[j] = ((em[offset + j] ?? 0) & mask) | ((synthetic[j % synthetic.length] as number) & ~mask & 0xff);
  }
  return out;
}
