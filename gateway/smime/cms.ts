/**
 * CMS structures (RFC 5652) read from DER/BER: ContentInfo → EnvelopedData (§6),
 * AuthEnvelopedData (RFC 5083 §2.1) or SignedData (§5). Parsing only: no crypto, no policy
 * beyond "is this well-formed". Field names follow the RFC's ASN.1.
 */
import { algorithmIdentifier, type AlgorithmIdentifier } from './algorithms.js';
import { children, content, ctx, Fields, malformed, octets, oid, raw, readRoot, smallInteger, TAG, type Tlv, unsignedBytes } from './der.js';
import { OID } from './oids.js';

/** RFC 5652 §10.2.4 IssuerAndSerialNumber, or §6.2.1/§5.3 [0] SubjectKeyIdentifier. */
export type CertificateId =
  | { readonly kind: 'issuerSerial'; readonly issuer: Buffer; readonly serial: Buffer }
  | { readonly kind: 'ski'; readonly ski: Buffer };

export interface KeyTransRecipient {
  readonly rid: CertificateId;
  readonly keyEncryptionAlgorithm: AlgorithmIdentifier;
  readonly encryptedKey: Buffer;
}

export interface EnvelopedData {
  readonly kind: 'enveloped';
  /** true for AuthEnvelopedData (RFC 5083). */
  readonly authenticated: boolean;
  /** KeyTransRecipientInfo only; other RecipientInfo kinds (kari, kekri, pwri, ori) cannot be ours. */
  readonly recipients: readonly KeyTransRecipient[];
  readonly contentType: string;
  readonly contentEncryptionAlgorithm: AlgorithmIdentifier;
  readonly encryptedContent: Buffer;
  /** AuthEnvelopedData: the DER of authAttrs re-tagged as SET OF (RFC 5083 §2.2, the GCM AAD). */
  readonly authAttrs: Buffer | undefined;
  readonly mac: Buffer | undefined;
}

export interface SignerInfo {
  readonly sid: CertificateId;
  readonly digestAlgorithm: AlgorithmIdentifier;
  /** The attributes by type; and their DER re-tagged as SET OF, what the signature covers (§5.4). */
  readonly signedAttrs: { readonly der: Buffer; readonly byType: ReadonlyMap<string, readonly Tlv[]> } | undefined;
  readonly signatureAlgorithm: AlgorithmIdentifier;
  readonly signature: Buffer;
}

export interface SignedData {
  readonly kind: 'signed';
  readonly eContentType: string;
  /** Absent for a detached signature (§5.2). */
  readonly eContent: Buffer | undefined;
  /** DER of each certificate in the CertificateSet; other CertificateChoices are skipped. */
  readonly certificates: readonly Buffer[];
  readonly signerInfos: readonly SignerInfo[];
}

export function parseContentInfo(der: Buffer): EnvelopedData | SignedData {
  // §3: ContentInfo ::= SEQUENCE { contentType, content [0] EXPLICIT ANY }
  const ci = new Fields(readRoot(der), 'ContentInfo');
  const type = oid(ci.next(TAG.OID, 'contentType'));
  const [body, extra] = children(ci.next(ctx(0, true), 'content'));
  ci.done();
  if (!body || extra) throw malformed('ContentInfo.content must hold one element');
  switch (type) {
    case OID.envelopedData: return parseEnveloped(body, false);
    case OID.authEnvelopedData: return parseEnveloped(body, true);
    case OID.signedData: return parseSigned(body);
    default: throw malformed(`unsupported CMS content type ${type}`);
  }
}

function certificateId(t: Tlv): CertificateId {
  if (t.tag === TAG.SEQUENCE) {
    const f = new Fields(t, 'IssuerAndSerialNumber');
    const issuer = raw(f.next(TAG.SEQUENCE, 'issuer'));
    const serial = unsignedBytes(content(f.next(TAG.INTEGER, 'serialNumber')));
    f.done();
    return { kind: 'issuerSerial', issuer, serial };
  }
  if (t.tag === ctx(0, false)) return { kind: 'ski', ski: content(t) };
  throw malformed('unknown certificate identifier');
}

/** SET OF Attribute → by type (RFC 5652 §5.3). The encoding stays as received. */
function attributes(t: Tlv): Map<string, Tlv[]> {
  const out = new Map<string, Tlv[]>();
  for (const a of children(t)) {
    const f = new Fields(a, 'Attribute');
    const type = oid(f.next(TAG.OID, 'attrType'));
    const values = children(f.next(TAG.SET, 'attrValues'));
    f.done();
    // §5.3: a signed attribute type appears at most once.
    if (out.has(type)) throw malformed(`attribute ${type} repeated`);
    out.set(type, values);
  }
  return out;
}

/** [n] IMPLICIT SET OF Attribute, re-tagged as the universal SET for hashing / AAD. */
function retagAsSet(t: Tlv): Buffer {
  const der = Buffer.from(raw(t));
  der[0] = TAG.SET;
  return der;
}

function parseEnveloped(t: Tlv, authenticated: boolean): EnvelopedData {
  const what = authenticated ? 'AuthEnvelopedData' : 'EnvelopedData';
  const f = new Fields(t, what);
  smallInteger(f.next(TAG.INTEGER, 'version'));
  f.optional(ctx(0, true)); // originatorInfo: certificates we do not need
  const recipients: KeyTransRecipient[] = [];
  const infos = children(f.next(TAG.SET, 'recipientInfos'));
  if (infos.length === 0) throw malformed('no RecipientInfo');
  for (const ri of infos) {
    // §6.2: KeyTransRecipientInfo is the untagged SEQUENCE of the CHOICE.
    if (ri.tag !== TAG.SEQUENCE) continue;
    const r = new Fields(ri, 'KeyTransRecipientInfo');
    smallInteger(r.next(TAG.INTEGER, 'version'));
    const rid = certificateId(r.any('rid'));
    const keyEncryptionAlgorithm = algorithmIdentifier(r.next(TAG.SEQUENCE, 'keyEncryptionAlgorithm'), 'keyEncryptionAlgorithm');
    const encryptedKey = content(r.next(TAG.OCTET_STRING, 'encryptedKey'));
    r.done();
    recipients.push({ rid, keyEncryptionAlgorithm, encryptedKey });
  }
  // §6.1 EncryptedContentInfo / RFC 5083 §2.1 authEncryptedContentInfo (same syntax).
  const eci = new Fields(f.next(TAG.SEQUENCE, 'encryptedContentInfo'), 'EncryptedContentInfo');
  const contentType = oid(eci.next(TAG.OID, 'contentType'));
  const contentEncryptionAlgorithm = algorithmIdentifier(eci.next(TAG.SEQUENCE, 'contentEncryptionAlgorithm'), 'contentEncryptionAlgorithm');
  // [0] IMPLICIT OCTET STRING, primitive (DER) or constructed chunks (BER streaming).
  const ec = eci.optional(ctx(0, false)) ?? eci.optional(ctx(0, true));
  eci.done();
  if (!ec) throw malformed('detached encrypted content is not supported');
  const encryptedContent = octets(ec);
  let authAttrs: Buffer | undefined;
  let mac: Buffer | undefined;
  if (authenticated) {
    const aa = f.optional(ctx(1, true));
    authAttrs = aa ? retagAsSet(aa) : undefined;
    mac = content(f.next(TAG.OCTET_STRING, 'mac'));
    f.optional(ctx(2, true));
  } else {
    f.optional(ctx(1, true)); // unprotectedAttrs
  }
  f.done();
  return { kind: 'enveloped', authenticated, recipients, contentType, contentEncryptionAlgorithm, encryptedContent, authAttrs, mac };
}

function parseSigned(t: Tlv): SignedData {
  const f = new Fields(t, 'SignedData');
  smallInteger(f.next(TAG.INTEGER, 'version'));
  f.next(TAG.SET, 'digestAlgorithms'); // each SignerInfo names its own; the set is a streaming hint
  const eci = new Fields(f.next(TAG.SEQUENCE, 'encapContentInfo'), 'EncapsulatedContentInfo');
  const eContentType = oid(eci.next(TAG.OID, 'eContentType'));
  const wrapped = eci.optional(ctx(0, true));
  eci.done();
  let eContent: Buffer | undefined;
  if (wrapped) {
    const [os, extra] = children(wrapped);
    if (!os || extra || (os.tag & 0xdf) !== TAG.OCTET_STRING) throw malformed('eContent must be one OCTET STRING');
    eContent = octets(os);
  }
  const certSet = f.optional(ctx(0, true));
  // §10.2.1 CertificateChoices: only the plain Certificate (a SEQUENCE) is of use to us.
  const certificates = certSet ? children(certSet).filter((c) => c.tag === TAG.SEQUENCE).map(raw) : [];
  f.optional(ctx(1, true)); // crls: revocation comes from the configured CRLs only
  const signerInfos = children(f.next(TAG.SET, 'signerInfos')).map(parseSignerInfo);
  f.done();
  return { kind: 'signed', eContentType, eContent, certificates, signerInfos };
}

function parseSignerInfo(t: Tlv): SignerInfo {
  const f = new Fields(t, 'SignerInfo');
  smallInteger(f.next(TAG.INTEGER, 'version'));
  const sid = certificateId(f.any('sid'));
  const digestAlgorithm = algorithmIdentifier(f.next(TAG.SEQUENCE, 'digestAlgorithm'), 'digestAlgorithm');
  const sa = f.optional(ctx(0, true));
  const signatureAlgorithm = algorithmIdentifier(f.next(TAG.SEQUENCE, 'signatureAlgorithm'), 'signatureAlgorithm');
  const signature = content(f.next(TAG.OCTET_STRING, 'signature'));
  f.optional(ctx(1, true)); // unsignedAttrs
  f.done();
  const signedAttrs = sa ? { der: retagAsSet(sa), byType: attributes(sa) } : undefined;
  return { sid, digestAlgorithm, signedAttrs, signatureAlgorithm, signature };
}
