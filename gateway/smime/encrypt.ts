/**
 * The gateway's own encryption: CMS EnvelopedData (RFC 5652 §6) with AES-256-CBC (RFC 3565), or
 * AuthEnvelopedData (RFC 5083) with AES-256-GCM (RFC 5084), to one or more recipients by RSA key
 * transport (KeyTransRecipientInfo, §6.2.1). DER throughout, definite lengths, the content
 * inline: what decrypt.ts and `openssl cms -decrypt` both read.
 *
 * Decisions:
 * - key transport RSAES-OAEP with SHA-256 and MGF1-SHA-256 by default (RFC 8551 §2.3 lists
 *   RSAES-OAEP as SHOULD+; RFC 3560 §2.2, §3 for its use in CMS). PKCS#1 v1.5 (RFC 3370 §4.2.1) only
 *   on request, for receivers that cannot do OAEP: encrypting with it is safe, it is decrypting
 *   it that is an oracle (pkcs1.ts), and that side is the receiver's.
 * - content AES-256-CBC in EnvelopedData by default: the gateway knows nothing of a receiver's
 *   capabilities, and RFC 8551 §2.7.1.2 names AES-256 CBC as the choice for a sender that does
 *   not use AES-256 GCM; many mail clients in service still cannot open AuthEnvelopedData.
 *   'aes-256-gcm' gives AuthEnvelopedData, the integrity-protected form, for receivers known to read it.
 * - the recipient is named by issuerAndSerialNumber (version 0 KeyTransRecipientInfo, §6.2.1),
 *   which every receiver understands; subjectKeyIdentifier would need version 2 and a
 *   version 2 EnvelopedData (§6.1).
 * - recipient keys: RSA (not RSASSA-PSS keys, which RFC 4055 §1.2 restricts to signatures) of
 *   at least 2048 bits (RFC 8551 §4.4 key sizes for encryption; checkRsaKey, the floor used for our own keys), whose
 *   keyUsage, when present, allows keyEncipherment (RFC 5280 §4.2.1.3). Whether the certificate
 *   is trusted, valid and the right person's is for whoever picked it (the directory lookup).
 * - a fresh content-encryption key and IV from crypto.randomBytes for every call, so a GCM
 *   nonce is never reused under one key (RFC 5084 §4; NIST SP 800-38D §8).
 */
import { constants, createCipheriv, publicEncrypt, randomBytes, type X509Certificate } from 'node:crypto';
import { PasserelleError } from '../errors.js';
import { checkRsaKey, refused } from './algorithms.js';
import { fieldsOf, keyUsageBits } from './certificate.js';
import { ctx } from './der.js';
import { algorithm, integer, NULL, octetString, oid, sequence, setOf, tlv } from './der-write.js';
import { OID } from './oids.js';

export type ContentEncryption = 'aes-256-cbc' | 'aes-256-gcm';
export type KeyTransportScheme = 'rsa-oaep' | 'rsa-pkcs1';

export interface EncryptOptions {
  /** 'aes-256-cbc' (EnvelopedData, default) or 'aes-256-gcm' (AuthEnvelopedData). */
  readonly cipher?: ContentEncryption;
  /** 'rsa-oaep' (SHA-256, MGF1-SHA-256; default) or 'rsa-pkcs1' (PKCS#1 v1.5, legacy receivers). */
  readonly keyTransport?: KeyTransportScheme;
}

/** AES-256: 32-octet key for both modes. */
const CEK_LENGTH = 32;
/** RFC 3565 §4.1: the CBC parameter is the 16-octet IV. */
const CBC_IV_LENGTH = 16;
/** RFC 5084 §3.2 recommends a 12-octet nonce (the length GCM uses without GHASHing the IV). */
const GCM_NONCE_LENGTH = 12;
/** RFC 5084 §3.2 allows 12–16 octets; the full 16 (what OpenSSL writes too). */
const GCM_TAG_LENGTH = 16;

/**
 * RFC 8017 Appendix A.2.1 / RFC 4055 §2.1, §4.1: sha256Identifier is { id-sha256, NULL } inside
 * RSAES-OAEP-params ("the following algorithm identifiers are used when a NULL parameter MUST be
 * present"), unlike the absent parameters of RFC 5754 §2 elsewhere in CMS. Receivers must take
 * both (RFC 4055 §2.1); OpenSSL reads either.
 */
const SHA256_WITH_NULL = algorithm(OID.sha256, NULL);

/**
 * RSAES-OAEP-params ::= SEQUENCE { hashAlgorithm [0], maskGenAlgorithm [1], pSourceAlgorithm [2] }
 * (RFC 8017 A.2.1): SHA-256, MGF1 over SHA-256; pSourceAlgorithm left out because its value is
 * the DEFAULT (empty label, RFC 3560 §3), and DER omits defaults (X.690 §11.5).
 */
const OAEP_SHA256 = algorithm(OID.rsaesOaep, sequence(
  tlv(ctx(0, true), SHA256_WITH_NULL),
  tlv(ctx(1, true), algorithm(OID.mgf1, SHA256_WITH_NULL)),
));

/** RFC 3370 §4.2.1: rsaEncryption with parameters present and NULL. */
const RSA_PKCS1 = algorithm(OID.rsaEncryption, NULL);

/** RFC 5280 §4.2.1.3 bit 2. */
const KEY_ENCIPHERMENT = 2;

/** DER ContentInfo of an EnvelopedData or AuthEnvelopedData of `content` (an id-data payload) for every recipient. */
export function encryptEnveloped(content: Buffer, recipients: readonly X509Certificate[], options: EncryptOptions = {}): Buffer {
  const cipher = options.cipher ?? 'aes-256-cbc';
  const transport = options.keyTransport ?? 'rsa-oaep';
  if (cipher !== 'aes-256-cbc' && cipher !== 'aes-256-gcm') throw new TypeError(`encryptEnveloped: unknown cipher ${String(cipher)}`);
  if (transport !== 'rsa-oaep' && transport !== 'rsa-pkcs1') throw new TypeError(`encryptEnveloped: unknown key transport ${String(transport)}`);
  if (recipients.length === 0) throw new TypeError('encryptEnveloped: no recipient');
  // Every recipient is checked before anything is encrypted: one bad certificate, no message.
  for (const cert of recipients) checkRecipient(cert);

  const cek = randomBytes(CEK_LENGTH);
  const recipientInfos = setOf(recipients.map((cert) => keyTransRecipientInfo(cert, cek, transport)));

  if (cipher === 'aes-256-cbc') {
    const iv = randomBytes(CBC_IV_LENGTH);
    // RFC 5652 §6.3: PKCS #7 padding, which is Node's (OpenSSL's) default for CBC.
    const c = createCipheriv('aes-256-cbc', cek, iv);
    const encrypted = Buffer.concat([c.update(content), c.final()]);
    const envelopedData = sequence(
      // §6.1: version 0 — no originatorInfo, no unprotectedAttrs, every RecipientInfo version 0.
      integer(0),
      recipientInfos,
      encryptedContentInfo(algorithm(OID.aes256Cbc, octetString(iv)), encrypted),
    );
    return sequence(oid(OID.envelopedData), tlv(ctx(0, true), envelopedData));
  }

  const nonce = randomBytes(GCM_NONCE_LENGTH);
  const c = createCipheriv('aes-256-gcm', cek, nonce, { authTagLength: GCM_TAG_LENGTH });
  // RFC 5083 §2.2: no authAttrs (allowed for id-data content, §2.1), so the AAD is empty.
  const encrypted = Buffer.concat([c.update(content), c.final()]);
  const authEnvelopedData = sequence(
    integer(0), // RFC 5083 §2.1: the version is always 0.
    recipientInfos,
    // RFC 5084 §3.2: GCMParameters { aes-nonce, aes-ICVlen } — 16 differs from the DEFAULT 12, so it is written.
    encryptedContentInfo(algorithm(OID.aes256Gcm, sequence(octetString(nonce), integer(GCM_TAG_LENGTH))), encrypted),
    // RFC 5083 §2.1 mac: the GCM authentication tag (RFC 5084 §3.1).
    octetString(c.getAuthTag()),
  );
  return sequence(oid(OID.authEnvelopedData), tlv(ctx(0, true), authEnvelopedData));
}

function checkRecipient(cert: X509Certificate): void {
  const key = cert.publicKey;
  // RFC 4055 §1.2: an id-RSASSA-PSS public key is for signatures only, never for key transport.
  if (key.asymmetricKeyType !== 'rsa') throw refused(`recipient ${cert.subject}: ${key.asymmetricKeyType ?? 'unknown'} key, RSA key transport only`);
  checkRsaKey(key, `recipient ${cert.subject}`);
  const ku = fieldsOf(cert).extensions.get(OID.keyUsage);
  if (ku && !keyUsageBits(ku)(KEY_ENCIPHERMENT)) {
    // No catalogue code names a recipient certificate's usage; SMIME_SIGNER_USAGE is the nearest (usage of a certificate).
    throw new PasserelleError('SMIME_SIGNER_USAGE', `recipient ${cert.subject}: keyUsage without keyEncipherment (RFC 5280 §4.2.1.3)`);
  }
}

/** RFC 5652 §6.2.1 KeyTransRecipientInfo, version 0 with issuerAndSerialNumber (§10.2.4). */
function keyTransRecipientInfo(cert: X509Certificate, cek: Buffer, transport: KeyTransportScheme): Buffer {
  const f = fieldsOf(cert);
  const encryptedKey = transport === 'rsa-oaep'
    ? publicEncrypt({ key: cert.publicKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256' }, cek)
    : publicEncrypt({ key: cert.publicKey, padding: constants.RSA_PKCS1_PADDING }, cek);
  return sequence(
    integer(0),
    // The issuer Name copied byte for byte from the certificate, as receivers compare it (decrypt.ts, identifies).
    sequence(f.issuer, integer(f.serial)),
    transport === 'rsa-oaep' ? OAEP_SHA256 : RSA_PKCS1,
    octetString(encryptedKey),
  );
}

/**
 * RFC 5652 §6.1 EncryptedContentInfo (RFC 5083 §2.1 uses the same syntax): the content type is
 * id-data (RFC 8551 §3.3: the MIME entity), encryptedContent [0] IMPLICIT OCTET STRING, primitive.
 */
function encryptedContentInfo(contentEncryptionAlgorithm: Buffer, encrypted: Buffer): Buffer {
  return sequence(oid(OID.data), contentEncryptionAlgorithm, tlv(ctx(0, false), encrypted));
}
