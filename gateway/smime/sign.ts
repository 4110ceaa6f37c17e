/**
 * The gateway's own detached signature (for MDNs, RFC 8098 §3, sent as multipart/signed per
 * RFC 8551 §3.5.3): CMS SignedData, DER, SHA-256 with RSA PKCS#1 v1.5, the signer's certificate
 * included, signed attributes contentType, signingTime and messageDigest (RFC 5652 §5.3, §11).
 */
import { constants, createHash, sign } from 'node:crypto';
import { checkRsaKey } from './algorithms.js';
import { fieldsOf } from './certificate.js';
import { ctx } from './der.js';
import { algorithm, integer, NULL, octetString, oid, sequence, setOf, time, tlv } from './der-write.js';
import type { Identity } from './decrypt.js';
import { OID } from './oids.js';

const attribute = (type: string, value: Buffer): Buffer => sequence(oid(type), setOf([value]));

/** The micalg for the multipart/signed Content-Type of what this produces (RFC 8551 §3.5.3.2). */
export const SIGN_MICALG = 'sha-256';

export function signDetached(content: Buffer, identity: Identity, at: Date = new Date()): Buffer {
  checkRsaKey(identity.certificate.publicKey, 'gateway signing key');
  const cert = fieldsOf(identity.certificate);
  const signedAttrs = setOf([
    attribute(OID.contentType, oid(OID.data)),
    attribute(OID.signingTime, time(at)),
    attribute(OID.messageDigest, octetString(createHash('sha256').update(content).digest())),
  ]);
  // §5.4: the signature is over the DER with the universal SET tag; the SignerInfo carries it as [0] IMPLICIT.
  const signature = sign('sha256', signedAttrs, { key: identity.privateKey, padding: constants.RSA_PKCS1_PADDING });
  const implicitAttrs = Buffer.from(signedAttrs);
  implicitAttrs[0] = ctx(0, true);

  const signerInfo = sequence(
    integer(1), // §5.3: version 1 with issuerAndSerialNumber
    sequence(cert.issuer, integer(cert.serial)),
    algorithm(OID.sha256),
    implicitAttrs,
    algorithm(OID.rsaEncryption, NULL),
    octetString(signature),
  );
  const signedData = sequence(
    integer(1), // §5.1: version 1, id-data content, no other certificate or CRL formats
    setOf([algorithm(OID.sha256)]),
    sequence(oid(OID.data)), // detached: no eContent
    tlv(ctx(0, true), identity.certificate.raw),
    setOf([signerInfo]),
  );
  return sequence(oid(OID.signedData), tlv(ctx(0, true), signedData));
}
