/**
 * The X.509 fields that Node's X509Certificate does not hand back as bytes: issuer and serial
 * exactly as encoded (CMS IssuerAndSerialNumber matching, RFC 5652 §10.2.4), validity as dates,
 * and the extensions (RFC 5280 §4.2) read from their DER rather than from Node's display strings.
 */
import { X509Certificate } from 'node:crypto';
import { bitString, children, content, ctx, expectTag, Fields, oid, raw, readRoot, TAG, time, unsignedBytes, type Tlv } from './der.js';
import type { CertificateId } from './cms.js';
import { OID } from './oids.js';

export interface Extension {
  readonly critical: boolean;
  /** The DER inside extnValue. */
  readonly value: Buffer;
}

export interface CertificateFields {
  /** Serial as unsigned magnitude. */
  readonly serial: Buffer;
  /** Issuer and subject Names, DER as encoded. */
  readonly issuer: Buffer;
  readonly subject: Buffer;
  readonly notBefore: Date;
  readonly notAfter: Date;
  readonly extensions: ReadonlyMap<string, Extension>;
}

const cache = new WeakMap<X509Certificate, CertificateFields>();

/** Certificates met lately, by DER: a sender signs every message with the same one, and Node parses one in ~0.4 ms. */
const byDer = new Map<string, X509Certificate>();
const MAX_CERTIFICATES = 256;

/** The certificate of these DER bytes, parsed once while it stays among the most recently met. Throws on bytes that are no certificate. */
export function certificateFromDer(der: Buffer): X509Certificate {
  const key = der.toString('base64');
  let cert = byDer.get(key);
  if (cert) byDer.delete(key); // re-inserted last: the Map's order is the eviction order
  else cert = new X509Certificate(der);
  byDer.set(key, cert);
  if (byDer.size > MAX_CERTIFICATES) byDer.delete(byDer.keys().next().value as string);
  return cert;
}

/** Parsed once per certificate object. */
export function fieldsOf(cert: X509Certificate): CertificateFields {
  let f = cache.get(cert);
  if (!f) {
    f = parseCertificate(cert.raw);
    cache.set(cert, f);
  }
  return f;
}

function parseCertificate(der: Buffer): CertificateFields {
  // RFC 5280 §4.1: Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm, signatureValue }
  const tbs = new Fields(expectTag(children(readRoot(der))[0], TAG.SEQUENCE, 'tbsCertificate'), 'TBSCertificate');
  tbs.optional(ctx(0, true));
  const serial = unsignedBytes(content(tbs.next(TAG.INTEGER, 'serialNumber')));
  tbs.next(TAG.SEQUENCE, 'signature');
  const issuer = raw(tbs.next(TAG.SEQUENCE, 'issuer'));
  const validity = new Fields(tbs.next(TAG.SEQUENCE, 'validity'), 'Validity');
  const notBefore = time(validity.any('notBefore'));
  const notAfter = time(validity.any('notAfter'));
  validity.done();
  const subject = raw(tbs.next(TAG.SEQUENCE, 'subject'));
  tbs.next(TAG.SEQUENCE, 'subjectPublicKeyInfo');
  tbs.optional(ctx(1, false));
  tbs.optional(ctx(2, false));
  const extensions = new Map<string, Extension>();
  const exts = tbs.optional(ctx(3, true));
  for (const e of exts ? children(expectTag(children(exts)[0], TAG.SEQUENCE, 'extensions')) : []) {
    const ef = new Fields(e, 'Extension');
    const id = oid(ef.next(TAG.OID, 'extnID'));
    const crit = ef.optional(TAG.BOOLEAN);
    const value = content(ef.next(TAG.OCTET_STRING, 'extnValue'));
    ef.done();
    extensions.set(id, { critical: crit !== undefined && content(crit)[0] !== 0, value });
  }
  return { serial, issuer, subject, notBefore, notAfter, extensions };
}

/** RFC 5280 §4.2.1.3 KeyUsage bits, numbered from 0 (digitalSignature) = most significant bit. */
export function keyUsageBits(ext: Extension): (bit: number) => boolean {
  const { bytes } = bitString(readRoot(ext.value));
  return (bit) => (((bytes[bit >> 3] ?? 0) >> (7 - (bit & 7))) & 1) === 1;
}

/** RFC 5280 §4.2.1.12 ExtKeyUsageSyntax. */
export function extKeyUsages(ext: Extension): string[] {
  return children(readRoot(ext.value)).map(oid);
}

/** RFC 5280 §4.2.1.6 GeneralNames: the rfc822Name ([1] IA5String) entries. */
export function rfc822Names(cert: X509Certificate): string[] {
  const ext = fieldsOf(cert).extensions.get(OID.subjectAltName);
  if (!ext) return [];
  return children(readRoot(ext.value))
    .filter((n: Tlv) => n.tag === ctx(1, false))
    .map((n) => content(n).toString('latin1'));
}

/** RFC 5280 §4.2.1.2: the key identifier octets. */
export function subjectKeyIdentifier(cert: X509Certificate): Buffer | undefined {
  const ext = fieldsOf(cert).extensions.get(OID.subjectKeyIdentifier);
  return ext ? content(readRoot(ext.value)) : undefined;
}

/** Does `id` (a RecipientInfo rid or SignerInfo sid) designate `cert`? */
export function identifies(id: CertificateId, cert: X509Certificate): boolean {
  if (id.kind === 'ski') {
    const ski = subjectKeyIdentifier(cert);
    return ski !== undefined && ski.equals(id.ski);
  }
  const f = fieldsOf(cert);
  // RFC 5652 §10.2.4: senders copy the issuer Name from our certificate, so bytes compare.
  return f.serial.equals(id.serial) && f.issuer.equals(id.issuer);
}
