/**
 * Certificate revocation lists (RFC 5280 §5) read with our DER reader: issuer, validity window,
 * revoked serials, and the signature checked against the issuing CA's key.
 */
import { verify, type X509Certificate } from 'node:crypto';
import { algorithmIdentifier, signatureScheme } from './algorithms.js';
import { fieldsOf, keyUsageBits } from './certificate.js';
import { bitString, children, content, ctx, Fields, malformed, oid, raw, readRoot, TAG, time, unsignedBytes, type Tlv } from './der.js';
import { OID } from './oids.js';

export interface Crl {
  /** The issuer Name, DER as encoded. */
  readonly issuer: Buffer;
  readonly thisUpdate: Date;
  readonly nextUpdate: Date | undefined;
  /** Revoked serials, unsigned magnitude in hex. */
  readonly revoked: ReadonlySet<string>;
  /**
   * §6.3.3 (f)/(g): true when `ca` issued this CRL — its subject is the CRL issuer, its keyUsage
   * (when present) allows cRLSign, and its key verifies the signature. Remembered per CA.
   */
  signedBy(ca: X509Certificate): boolean;
}

/**
 * Extensions we understand well enough to let them be critical. An issuingDistributionPoint or
 * deltaCRLIndicator would make this a partial CRL (§5.2.4, §5.2.5): trusting it as complete
 * would hide revocations, so such CRLs are refused.
 */
const UNDERSTOOD_CRL_EXTENSIONS = new Set<string>([OID.crlNumber, OID.authorityKeyIdentifier]);
const UNDERSTOOD_ENTRY_EXTENSIONS = new Set<string>([OID.crlReason, OID.invalidityDate]);

function checkExtensions(t: Tlv | undefined, understood: ReadonlySet<string>, what: string): void {
  for (const e of t ? children(t) : []) {
    const f = new Fields(e, 'Extension');
    const id = oid(f.next(TAG.OID, 'extnID'));
    const critical = f.optional(TAG.BOOLEAN);
    if (critical && content(critical)[0] !== 0 && !understood.has(id)) throw malformed(`${what}: critical extension ${id} not supported`);
    if (id === OID.deltaCrlIndicator || id === OID.issuingDistributionPoint) throw malformed(`${what}: partial or delta CRLs are not supported`);
  }
}

/** Parses a DER CRL (its signature is checked by `signedBy`, against the CA that will need it). Throws SMIME_MALFORMED. */
export function parseCrl(der: Buffer): Crl {
  // §5.1: CertificateList ::= SEQUENCE { tbsCertList, signatureAlgorithm, signatureValue }
  const cl = new Fields(readRoot(der), 'CertificateList');
  const tbsTlv = cl.next(TAG.SEQUENCE, 'tbsCertList');
  const sigAlg = algorithmIdentifier(cl.next(TAG.SEQUENCE, 'signatureAlgorithm'), 'signatureAlgorithm');
  const { bytes: signature } = bitString(cl.next(TAG.BIT_STRING, 'signatureValue'));
  cl.done();

  const tbs = new Fields(tbsTlv, 'TBSCertList');
  tbs.optional(TAG.INTEGER);
  tbs.next(TAG.SEQUENCE, 'signature');
  const issuer = raw(tbs.next(TAG.SEQUENCE, 'issuer'));
  const thisUpdate = time(tbs.any('thisUpdate'));
  const nu = tbs.optional(TAG.UTC_TIME) ?? tbs.optional(TAG.GENERALIZED_TIME);
  const nextUpdate = nu ? time(nu) : undefined;
  const revoked = new Set<string>();
  const list = tbs.optional(TAG.SEQUENCE);
  for (const entry of list ? children(list) : []) {
    const ef = new Fields(entry, 'revokedCertificate');
    revoked.add(unsignedBytes(content(ef.next(TAG.INTEGER, 'userCertificate'))).toString('hex'));
    time(ef.any('revocationDate'));
    checkExtensions(ef.optional(TAG.SEQUENCE), UNDERSTOOD_ENTRY_EXTENSIONS, 'CRL entry');
    ef.done();
  }
  const exts = tbs.optional(ctx(0, true));
  checkExtensions(exts ? children(exts)[0] : undefined, UNDERSTOOD_CRL_EXTENSIONS, 'CRL');
  tbs.done();

  const scheme = signatureScheme(sigAlg, undefined, false);
  const tbsBytes = raw(tbsTlv);
  const verdicts = new Map<string, boolean>();
  const signedBy = (ca: X509Certificate): boolean => {
    let verdict = verdicts.get(ca.fingerprint256);
    if (verdict === undefined) {
      const f = fieldsOf(ca);
      const ku = f.extensions.get(OID.keyUsage);
      try {
        verdict = f.subject.equals(issuer) && !(ku && !keyUsageBits(ku)(6))
          && verify(scheme.hash, tbsBytes, { key: ca.publicKey, padding: scheme.padding, saltLength: scheme.saltLength }, signature);
      } catch {
        verdict = false;
      }
      verdicts.set(ca.fingerprint256, verdict);
    }
    return verdict;
  };
  return { issuer, thisUpdate, nextUpdate, revoked, signedBy };
}
