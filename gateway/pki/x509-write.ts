/**
 * Building X.509 v3 certificates (RFC 5280 §4.1) and v2 CRLs (§5.1) in DER, signed with Node's
 * crypto (sha256WithRSAEncryption, RFC 4055 §5 / RFC 8017). Only what the development PKI needs:
 * RSA keys, Names of C/O/CN, and the extensions S/MIME (RFC 8550 §4.4) and TLS servers use.
 */
import { createHash, randomBytes, sign, type KeyObject } from 'node:crypto';
import { bitString, children, readRoot, TAG } from '../smime/der.js';
import { algorithm, integer, NULL, octetString, oid, sequence, setOf, time, tlv } from '../smime/der-write.js';
import { OID } from '../smime/oids.js';

const PRINTABLE_STRING = 0x13;
const ENUMERATED = 0x0a;

/** RFC 5280 §4.2.1.12 key purposes. */
export const KEY_PURPOSE = {
  serverAuth: '1.3.6.1.5.5.7.3.1',
  clientAuth: '1.3.6.1.5.5.7.3.2',
  emailProtection: OID.emailProtection,
} as const;

/** RFC 5280 §4.2.1.3 KeyUsage bit numbers. */
export const KEY_USAGE = {
  digitalSignature: 0, nonRepudiation: 1, keyEncipherment: 2, dataEncipherment: 3,
  keyAgreement: 4, keyCertSign: 5, cRLSign: 6,
} as const;
export type KeyUsage = keyof typeof KEY_USAGE;

export interface NameParts { country?: string; organization?: string; commonName: string }

const BOOLEAN_TRUE = Buffer.from([TAG.BOOLEAN, 1, 0xff]);

/** BIT STRING with no unused bits (signatures, keys). */
const bits = (bytes: Buffer): Buffer => tlv(TAG.BIT_STRING, Buffer.from([0]), bytes);

/**
 * RFC 5280 §4.1.2.4: countryName is a PrintableString (X.520); the other attributes are
 * UTF8String, which §4.1.2.4 requires of new certificates.
 */
export function name(parts: NameParts): Buffer {
  const rdn = (type: string, value: Buffer): Buffer => setOf([sequence(oid(type), value)]);
  return sequence(
    ...(parts.country ? [rdn('2.5.4.6', tlv(PRINTABLE_STRING, Buffer.from(parts.country, 'latin1')))] : []),
    ...(parts.organization ? [rdn('2.5.4.10', tlv(TAG.UTF8_STRING, Buffer.from(parts.organization, 'utf8')))] : []),
    rdn('2.5.4.3', tlv(TAG.UTF8_STRING, Buffer.from(parts.commonName, 'utf8'))),
  );
}

/** Extension ::= SEQUENCE { extnID, critical BOOLEAN DEFAULT FALSE, extnValue OCTET STRING }; DER omits a FALSE default (X.690 §11.5). */
function extension(id: string, critical: boolean, value: Buffer): Buffer {
  return sequence(oid(id), ...(critical ? [BOOLEAN_TRUE] : []), octetString(value));
}

/** KeyUsage as a DER named-bit BIT STRING: trailing zero bits dropped (X.690 §11.2.2). */
export function keyUsageValue(usages: readonly KeyUsage[]): Buffer {
  const numbers = usages.map((u) => KEY_USAGE[u]);
  const highest = Math.max(...numbers);
  const bytes = Buffer.alloc((highest >> 3) + 1);
  for (const n of numbers) bytes[n >> 3] = (bytes[n >> 3] as number) | (0x80 >> (n & 7));
  return tlv(TAG.BIT_STRING, Buffer.from([bytes.length * 8 - (highest + 1)]), bytes);
}

export type AltName = { email: string } | { dns: string } | { ip: string };

/** GeneralName CHOICE, IMPLICIT tags (RFC 5280 §4.2.1.6): rfc822Name [1], dNSName [2], iPAddress [7]. */
function generalName(n: AltName): Buffer {
  if ('email' in n) return tlv(0x81, Buffer.from(n.email, 'latin1'));
  if ('dns' in n) return tlv(0x82, Buffer.from(n.dns, 'latin1'));
  const ip = n.ip.includes(':') ? ipv6Bytes(n.ip) : Buffer.from(n.ip.split('.').map(Number));
  return tlv(0x87, ip);
}

function ipv6Bytes(ip: string): Buffer {
  const [head = '', tail = ''] = ip.split('::');
  const groups = (s: string): number[] => (s ? s.split(':').map((g) => parseInt(g, 16)) : []);
  const h = groups(head);
  const t = groups(tail);
  const all = ip.includes('::') ? [...h, ...Array<number>(8 - h.length - t.length).fill(0), ...t] : h;
  const out = Buffer.alloc(16);
  all.forEach((g, i) => out.writeUInt16BE(g, i * 2));
  return out;
}

/** RFC 5280 §4.2.1.2 method (1): SHA-1 of the subjectPublicKey BIT STRING value. */
export function keyIdentifier(spki: Buffer): Buffer {
  const key = children(readRoot(spki))[1];
  if (!key) throw new Error('SubjectPublicKeyInfo without a key');
  return createHash('sha1').update(bitString(key).bytes).digest();
}

/** RFC 5280 §4.1.2.2: positive, at most 20 octets; random so that re-issued certificates never collide. */
export function randomSerial(): Buffer {
  const serial = randomBytes(16);
  serial[0] = ((serial[0] as number) & 0x7f) | 0x01;
  return serial;
}

export interface CertificateSpec {
  serial: Buffer;
  /** DER Name of the issuer, byte for byte as in the issuer's own certificate (RFC 5280 §4.1.2.4). */
  issuer: Buffer;
  subject: Buffer;
  notBefore: Date;
  notAfter: Date;
  publicKey: KeyObject;
  /** Key identifier of the issuer's key, for authorityKeyIdentifier (§4.2.1.1). */
  issuerKeyId: Buffer;
  ca: boolean;
  keyUsage: readonly KeyUsage[];
  extKeyUsage?: readonly string[];
  altNames?: readonly AltName[];
}

const SIGNATURE_ALGORITHM = algorithm(OID.sha256WithRSA, NULL); // RFC 4055 §5: parameters NULL

/** Signs a TBS structure and wraps it as Certificate / CertificateList (same shape, §4.1 and §5.1). */
function signed(tbs: Buffer, issuerKey: KeyObject): Buffer {
  return sequence(tbs, SIGNATURE_ALGORITHM, bits(sign('sha256', tbs, issuerKey)));
}

export function buildCertificate(spec: CertificateSpec, issuerKey: KeyObject): Buffer {
  const spki = spec.publicKey.export({ type: 'spki', format: 'der' });
  const extensions = [
    // §4.2.1.9: critical in CA certificates; pathLenConstraint 0 since this CA issues end entities only.
    extension(OID.basicConstraints, true, spec.ca ? sequence(BOOLEAN_TRUE, integer(0)) : sequence()),
    // §4.2.1.3: SHOULD be critical.
    extension(OID.keyUsage, true, keyUsageValue(spec.keyUsage)),
    ...(spec.extKeyUsage?.length ? [extension(OID.extKeyUsage, false, sequence(...spec.extKeyUsage.map(oid)))] : []),
    ...(spec.altNames?.length ? [extension(OID.subjectAltName, false, sequence(...spec.altNames.map(generalName)))] : []),
    extension(OID.subjectKeyIdentifier, false, octetString(keyIdentifier(spki))),
    extension(OID.authorityKeyIdentifier, false, sequence(tlv(0x80, spec.issuerKeyId))),
  ];
  const tbs = sequence(
    tlv(0xa0, integer(2)), // version [0] EXPLICIT v3 (§4.1.2.1: extensions present)
    integer(spec.serial),
    SIGNATURE_ALGORITHM,
    spec.issuer,
    sequence(time(spec.notBefore), time(spec.notAfter)),
    spec.subject,
    spki,
    tlv(0xa3, sequence(...extensions)),
  );
  return signed(tbs, issuerKey);
}

export interface RevokedEntry {
  serial: Buffer;
  at: Date;
  /** RFC 5280 §5.3.1 CRLReason; absent means unspecified (the entry extension is then omitted). */
  reason?: number;
}

export interface CrlSpec {
  issuer: Buffer;
  issuerKeyId: Buffer;
  thisUpdate: Date;
  nextUpdate: Date;
  /** §5.2.3: monotonically increasing. */
  number: number;
  /** DER revokedCertificates entries to carry over unchanged, then the new ones. */
  carried?: readonly Buffer[];
  revoked?: readonly RevokedEntry[];
}

export function revokedEntry(e: RevokedEntry): Buffer {
  const reason = e.reason === undefined ? [] : [sequence(extension(OID.crlReason, false, tlv(ENUMERATED, Buffer.from([e.reason]))))];
  return sequence(integer(e.serial), time(e.at), ...reason);
}

export function buildCrl(spec: CrlSpec, issuerKey: KeyObject): Buffer {
  const entries = [...(spec.carried ?? []), ...(spec.revoked ?? []).map(revokedEntry)];
  const tbs = sequence(
    integer(1), // §5.1.2.1: v2, since crlExtensions are present
    SIGNATURE_ALGORITHM,
    spec.issuer,
    time(spec.thisUpdate),
    time(spec.nextUpdate), // §5.1.2.5: conforming CRL issuers MUST include nextUpdate
    // §5.1.2.6: with no revoked certificate the list MUST be absent, not empty.
    ...(entries.length ? [sequence(...entries)] : []),
    tlv(0xa0, sequence(
      extension(OID.authorityKeyIdentifier, false, sequence(tlv(0x80, spec.issuerKeyId))), // §5.2.1 MUST
      extension(OID.crlNumber, false, integer(spec.number)), // §5.2.3 MUST
    )),
  );
  return signed(tbs, issuerKey);
}

export function toPem(label: 'CERTIFICATE' | 'X509 CRL', der: Buffer): string {
  const b64 = der.toString('base64').replace(/.{64}/g, '$&\n').replace(/\n$/, '');
  return `-----BEGIN ${label}-----\n${b64}\n-----END ${label}-----\n`;
}

export function fromPem(text: string, label: 'CERTIFICATE' | 'X509 CRL'): Buffer {
  const m = new RegExp(`-----BEGIN ${label}-----([A-Za-z0-9+/=\\s]+)-----END ${label}-----`).exec(text);
  if (!m) throw new Error(`no PEM ${label}`);
  return Buffer.from((m[1] ?? '').replace(/\s+/g, ''), 'base64');
}
