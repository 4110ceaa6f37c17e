/**
 * Verifying SignedData (RFC 5652 §5.6): detached (multipart/signed, RFC 8551 §3.5.3) or opaque
 * (application/pkcs7-mime; smime-type=signed-data, §3.5.2). A signer is accepted only when its
 * signature, algorithms, certificate path, validity, revocation, usage and address all pass;
 * the result says which check failed, with its catalogue code.
 */
import { createHash, timingSafeEqual, verify, type KeyObject, type X509Certificate } from 'node:crypto';
import { PasserelleError, type ErrorCode } from '../errors.js';
import { checkRsaKey, digestAlgorithm, refused, signatureScheme } from './algorithms.js';
import { certificateFromDer, identifies } from './certificate.js';
import { parseContentInfo, type SignedData, type SignerInfo } from './cms.js';
import { malformed, oid, octets, TAG, time, type Tlv } from './der.js';
import { OID } from './oids.js';
import { checkSigningUsage, matchingEmail, type TrustStore } from './trust.js';

export interface VerifyExpectation {
  /** The bare From address of the message. */
  readonly from: string;
  /** The reception time: CRLs must be current then, and the signing time defaults to it. */
  readonly at?: Date;
  /** Accept SHA-1 digests and signatures (legacy senders). Default false. */
  readonly allowSha1?: boolean;
}

export interface VerifiedSigner {
  readonly certificate: X509Certificate;
  /** The subjectAltName address that matched From. */
  readonly email: string;
  readonly subject: string;
}

export type VerificationResult =
  | { readonly ok: true; readonly content: Buffer; readonly signer: VerifiedSigner; readonly signingTime: Date | undefined }
  | { readonly ok: false; readonly code: ErrorCode; readonly detail: string };

/** A signingTime this far ahead of the reception time is not a clock difference. */
const CLOCK_SKEW_MS = 5 * 60_000;

export function verifySigned(input: { der: Buffer; detachedContent?: Buffer }, trust: TrustStore, expect: VerifyExpectation): VerificationResult {
  try {
    const cms = parseContentInfo(input.der);
    if (cms.kind !== 'signed') throw malformed('expected SignedData');
    // §5.2: eContent absent means the content is supplied by other means; both at once is ambiguous.
    if (cms.eContent && input.detachedContent) throw malformed('both encapsulated and detached content');
    const signed = cms.eContent ?? input.detachedContent;
    if (!signed) throw malformed('detached signature without its content');
    if (cms.signerInfos.length === 0) throw malformed('no SignerInfo');
    let certificates: X509Certificate[];
    try {
      certificates = cms.certificates.map(certificateFromDer);
    } catch {
      throw malformed('unreadable certificate in SignedData');
    }
    // Several signers: one that passes every check is enough; otherwise report the first failure.
    let firstFailure: PasserelleError | undefined;
    for (const si of cms.signerInfos) {
      try {
        return { ok: true, content: signed, ...checkSigner(cms, si, signed, certificates, trust, expect) };
      } catch (e) {
        if (!(e instanceof PasserelleError)) throw e;
        firstFailure ??= e;
      }
    }
    throw firstFailure as PasserelleError;
  } catch (e) {
    if (e instanceof PasserelleError) return { ok: false, code: e.code, detail: e.message };
    throw e;
  }
}

const invalid = (detail: string): PasserelleError => new PasserelleError('SMIME_SIGNATURE_INVALID', detail);

function single(values: readonly Tlv[] | undefined, name: string): Tlv | undefined {
  if (!values) return undefined;
  // RFC 5652 §11.1–§11.3: contentType, messageDigest and signingTime have exactly one value.
  if (values.length !== 1) throw malformed(`${name} attribute must have one value`);
  return values[0];
}

function checkSigner(
  cms: SignedData, si: SignerInfo, signed: Buffer, certificates: readonly X509Certificate[], trust: TrustStore, expect: VerifyExpectation,
): { signer: VerifiedSigner; signingTime: Date | undefined } {
  const allowSha1 = expect.allowSha1 ?? false;
  const hash = digestAlgorithm(si.digestAlgorithm, allowSha1);
  const scheme = signatureScheme(si.signatureAlgorithm, hash, allowSha1);
  const certificate = certificates.find((c) => identifies(si.sid, c));
  if (!certificate) throw new PasserelleError('SMIME_SIGNER_NOT_TRUSTED', 'the signer certificate is not in the message');
  let publicKey: KeyObject;
  try {
    publicKey = certificate.publicKey;
  } catch {
    throw refused('signer key of an unsupported type');
  }
  checkRsaKey(publicKey, 'signer');

  let covered = signed;
  let signingTime: Date | undefined;
  if (si.signedAttrs) {
    // §5.4: the signature covers the DER of signedAttrs; messageDigest binds the content to it.
    const attrs = si.signedAttrs.byType;
    const ct = single(attrs.get(OID.contentType), 'contentType');
    const md = single(attrs.get(OID.messageDigest), 'messageDigest');
    const st = single(attrs.get(OID.signingTime), 'signingTime');
    if (!ct || !md) throw malformed('signedAttrs without contentType or messageDigest (RFC 5652 §5.3)');
    if (oid(ct) !== cms.eContentType) throw invalid('contentType attribute differs from eContentType');
    const digest = createHash(hash).update(signed).digest();
    const claimed = md.tag === TAG.OCTET_STRING ? octets(md) : Buffer.alloc(0);
    if (claimed.length !== digest.length || !timingSafeEqual(claimed, digest)) throw invalid('messageDigest does not match the content');
    signingTime = st ? time(st) : undefined;
    covered = si.signedAttrs.der;
  } else if (cms.eContentType !== OID.data) {
    throw malformed('signedAttrs required for a content type other than id-data (RFC 5652 §5.3)');
  }

  let good: boolean;
  try {
    good = verify(scheme.hash, covered, { key: publicKey, padding: scheme.padding, saltLength: scheme.saltLength }, si.signature);
  } catch {
    good = false;
  }
  if (!good) throw invalid("the signature does not verify with the signer's key");

  const now = expect.at ?? new Date();
  if (signingTime && signingTime.getTime() > now.getTime() + CLOCK_SKEW_MS) throw invalid('signingTime is in the future');
  trust.validate(certificate, certificates, signingTime ?? now, now);
  checkSigningUsage(certificate);
  const email = matchingEmail(certificate, expect.from);
  return { signer: { certificate, email, subject: certificate.subject }, signingTime };
}
