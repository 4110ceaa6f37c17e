/**
 * Algorithm policy: which AlgorithmIdentifiers the gateway accepts, and what Node needs to run
 * them. Everything not listed is SMIME_ALGORITHM_REFUSED — an allow-list, so a new or exotic
 * OID fails closed.
 *
 * Decisions (RFC 8551 §2):
 * - digests SHA-256/384/512; SHA-1 only when the caller opts in (`allowSha1`, the legacy
 *   option of DOMAIN.md §2 — collisions make SHA-1 signatures forgeable); MD5 never.
 * - signatures RSA PKCS#1 v1.5 and RSASSA-PSS (RFC 4056), key ≥ 2048 bits.
 * - key transport RSA PKCS#1 v1.5 and RSAES-OAEP (RFC 3560) with SHA-1 or SHA-2; OAEP's
 *   SHA-1 is fine (no collision resistance needed) and is OpenSSL's default.
 * - content encryption AES-CBC (RFC 3565) and AES-GCM (RFC 5084); RC2, DES, 3DES refused.
 */
import { constants, type KeyObject } from 'node:crypto';
import { PasserelleError } from '../errors.js';
import { children, content, expectTag, malformed, octets, oid, smallInteger, TAG, type Tlv } from './der.js';
import { OID } from './oids.js';

export interface AlgorithmIdentifier {
  readonly oid: string;
  /** Absent parameters and an explicit NULL both read as undefined. */
  readonly params: Tlv | undefined;
}

export function algorithmIdentifier(t: Tlv | undefined, what: string): AlgorithmIdentifier {
  const [id, params, extra] = children(expectTag(t, TAG.SEQUENCE, what));
  if (extra) throw malformed(`${what}: unexpected field`);
  return { oid: oid(expectTag(id, TAG.OID, what)), params: params && params.tag !== TAG.NULL ? params : undefined };
}

export function refused(detail: string): PasserelleError {
  return new PasserelleError('SMIME_ALGORITHM_REFUSED', detail);
}

export type Hash = 'sha1' | 'sha256' | 'sha384' | 'sha512';

const DIGESTS: Record<string, Hash> = {
  [OID.sha1]: 'sha1', [OID.sha256]: 'sha256', [OID.sha384]: 'sha384', [OID.sha512]: 'sha512',
};

export function digestAlgorithm(alg: AlgorithmIdentifier, allowSha1: boolean): Hash {
  const hash = DIGESTS[alg.oid];
  if (!hash) throw refused(alg.oid === OID.md5 ? 'MD5 digest' : `digest ${alg.oid}`);
  if (hash === 'sha1' && !allowSha1) throw refused('SHA-1 digest (legacy option not enabled)');
  return hash;
}

export interface SignatureScheme {
  readonly hash: Hash;
  readonly padding: number;
  readonly saltLength?: number;
}

const RSA_WITH: Record<string, Hash> = {
  [OID.sha1WithRSA]: 'sha1', [OID.sha256WithRSA]: 'sha256', [OID.sha384WithRSA]: 'sha384', [OID.sha512WithRSA]: 'sha512',
};

/** Reads the [n] EXPLICIT fields of an RSASSA-PSS / RSAES-OAEP parameters SEQUENCE (RFC 8017 A.2.1, A.2.3). */
function explicitFields(params: Tlv | undefined): Map<number, Tlv> {
  const out = new Map<number, Tlv>();
  if (!params) return out;
  for (const f of children(expectTag(params, TAG.SEQUENCE, 'RSA parameters'))) {
    const inner = children(f)[0];
    if ((f.tag & 0xe0) !== 0xa0 || !inner) throw malformed('RSA parameters: bad field');
    out.set(f.tag & 0x1f, inner);
  }
  return out;
}

/** Hash and MGF1 hash of OAEP/PSS; Node ties MGF1 to the main hash, so they must agree. */
function rsaParamsHash(fields: Map<number, Tlv>, allowSha1: boolean): Hash {
  const hashField = fields.get(0);
  const hash = hashField ? digestAlgorithm(algorithmIdentifier(hashField, 'hashAlgorithm'), allowSha1) : digestAlgorithm({ oid: OID.sha1, params: undefined }, allowSha1);
  const mgfField = fields.get(1);
  const mgf = mgfField ? algorithmIdentifier(mgfField, 'maskGenAlgorithm') : { oid: OID.mgf1, params: undefined };
  const mgfHash = mgf.params ? DIGESTS[algorithmIdentifier(mgf.params, 'MGF1 hash').oid] : 'sha1';
  if (mgf.oid !== OID.mgf1 || mgfHash !== hash) throw refused('mask generation other than MGF1 with the same hash');
  return hash;
}

/**
 * The signature algorithm of a SignerInfo (RFC 5652 §5.3) or a CRL. `digest` is the SignerInfo's
 * digestAlgorithm: when the signature OID names a hash too, they must agree (RFC 5754 §3.2).
 */
export function signatureScheme(alg: AlgorithmIdentifier, digest: Hash | undefined, allowSha1: boolean): SignatureScheme {
  if (alg.oid === OID.rsaEncryption) {
    if (!digest) throw refused('rsaEncryption without a digest algorithm');
    return { hash: digest, padding: constants.RSA_PKCS1_PADDING };
  }
  const withHash = RSA_WITH[alg.oid];
  if (withHash) {
    if (withHash === 'sha1' && !allowSha1) throw refused('SHA-1 signature (legacy option not enabled)');
    if (digest && digest !== withHash) throw refused('signature hash differs from the digest algorithm');
    return { hash: withHash, padding: constants.RSA_PKCS1_PADDING };
  }
  if (alg.oid === OID.rsassaPss) {
    // RFC 4056 §3: PSS parameters are required in CMS; defaults apply to absent fields.
    const fields = explicitFields(alg.params);
    const hash = rsaParamsHash(fields, allowSha1);
    if (digest && digest !== hash) throw refused('PSS hash differs from the digest algorithm');
    const salt = fields.get(2);
    const trailer = fields.get(3);
    if (trailer && smallInteger(trailer) !== 1) throw refused('PSS trailer field other than 1');
    return { hash, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: salt ? smallInteger(salt) : 20 };
  }
  throw refused(alg.oid === OID.md5WithRSA ? 'MD5 signature' : `signature algorithm ${alg.oid}`);
}

export type KeyTransport =
  | { readonly kind: 'pkcs1' }
  | { readonly kind: 'oaep'; readonly hash: Hash };

/** RFC 5652 §6.2.1 keyEncryptionAlgorithm; RFC 3560 §3 for OAEP parameters. */
export function keyTransport(alg: AlgorithmIdentifier): KeyTransport {
  if (alg.oid === OID.rsaEncryption) return { kind: 'pkcs1' };
  if (alg.oid === OID.rsaesOaep) {
    const fields = explicitFields(alg.params);
    const hash = rsaParamsHash(fields, true);
    const pSource = fields.get(2);
    if (pSource) {
      const p = algorithmIdentifier(pSource, 'pSourceAlgorithm');
      // RFC 3560 §3: the label is empty in CMS.
      if (p.oid !== OID.pSpecified || (p.params && octets(p.params).length > 0)) throw refused('OAEP with a label');
    }
    return { kind: 'oaep', hash };
  }
  throw refused(`key transport ${alg.oid}`);
}

export interface ContentCipher {
  /** Node cipher name. */
  readonly name: string;
  readonly keyLength: number;
  readonly gcm: boolean;
  readonly iv: Buffer;
  readonly tagLength: number;
}

const AES: Record<string, { name: string; keyLength: number; gcm: boolean }> = {
  [OID.aes128Cbc]: { name: 'aes-128-cbc', keyLength: 16, gcm: false },
  [OID.aes192Cbc]: { name: 'aes-192-cbc', keyLength: 24, gcm: false },
  [OID.aes256Cbc]: { name: 'aes-256-cbc', keyLength: 32, gcm: false },
  [OID.aes128Gcm]: { name: 'aes-128-gcm', keyLength: 16, gcm: true },
  [OID.aes192Gcm]: { name: 'aes-192-gcm', keyLength: 24, gcm: true },
  [OID.aes256Gcm]: { name: 'aes-256-gcm', keyLength: 32, gcm: true },
};

const WEAK: Record<string, string> = { [OID.rc2Cbc]: 'RC2', [OID.desCbc]: 'DES', [OID.desEde3Cbc]: '3DES' };

export function contentCipher(alg: AlgorithmIdentifier): ContentCipher {
  const aes = AES[alg.oid];
  if (!aes) throw refused(`content encryption ${WEAK[alg.oid] ?? alg.oid}`);
  if (!aes.gcm) {
    // RFC 3565 §4.1: the parameter is the 16-octet IV.
    const iv = alg.params ? content(expectTag(alg.params, TAG.OCTET_STRING, 'AES-CBC IV')) : undefined;
    if (iv?.length !== 16) throw malformed('AES-CBC IV must be 16 octets');
    return { ...aes, iv, tagLength: 0 };
  }
  // RFC 5084 §3.2: GCMParameters ::= SEQUENCE { aes-nonce OCTET STRING, aes-ICVlen INTEGER DEFAULT 12 }
  const [nonce, icv, extra] = alg.params ? children(expectTag(alg.params, TAG.SEQUENCE, 'GCMParameters')) : [];
  const iv = content(expectTag(nonce, TAG.OCTET_STRING, 'GCM nonce'));
  const tagLength = icv ? smallInteger(icv) : 12;
  if (extra || iv.length === 0 || iv.length > 64) throw malformed('bad GCMParameters');
  if (tagLength < 12 || tagLength > 16) throw refused('GCM tag shorter than 12 octets');
  return { ...aes, iv, tagLength };
}

/** RFC 8551 §2.2 / §4.3: RSA keys below 2048 bits are refused, for signing and for chains. */
export function checkRsaKey(key: KeyObject, what: string): void {
  if (key.asymmetricKeyType !== 'rsa' && key.asymmetricKeyType !== 'rsa-pss') throw refused(`${what}: ${key.asymmetricKeyType ?? 'unknown'} key`);
  const bits = key.asymmetricKeyDetails?.modulusLength ?? 0;
  if (bits < 2048) throw refused(`${what}: RSA key of ${bits} bits`);
}
