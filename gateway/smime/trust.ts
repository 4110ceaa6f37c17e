/**
 * Trust anchors and CRLs (from PEM/DER files), and the validation of a signer certificate:
 * path building (RFC 5280 §6, simplified), validity at the signing time, revocation by CRL,
 * e-mail signing usage and address (RFC 8550 §3, §4.4).
 *
 * Simplifications, deliberate: every configured certificate is an anchor (IGC-Santé roots and
 * their intermediate CAs are configured together); no policy or name-constraint processing,
 * so a certificate carrying one of those as critical is refused rather than half-understood;
 * no pathLenConstraint (the chains are one or two CAs deep and all configured).
 */
import { readFileSync } from 'node:fs';
import { X509Certificate } from 'node:crypto';
import { PasserelleError, type ErrorCode } from '../errors.js';
import { checkRsaKey } from './algorithms.js';
import { extKeyUsages, fieldsOf, keyUsageBits, rfc822Names } from './certificate.js';
import { parseCrl, type Crl } from './crl.js';
import { OID } from './oids.js';

const MAX_CHAIN = 6;

/** RFC 5280 §4.2: extensions this validation processes, and may therefore be critical. */
const UNDERSTOOD_EXTENSIONS = new Set<string>([
  OID.keyUsage, OID.extKeyUsage, OID.subjectAltName, OID.basicConstraints,
  OID.subjectKeyIdentifier, OID.authorityKeyIdentifier, OID.crlDistributionPoints, OID.authorityInfoAccess,
]);

export interface TrustOptions {
  /** A signer whose issuer has no configured CRL is refused (default true: MSSanté requires CRL checks). */
  readonly requireCrl?: boolean;
}

const fail = (code: ErrorCode, detail: string): PasserelleError => new PasserelleError(code, detail);

function pemBlocks(text: string, label: string): Buffer[] {
  const re = new RegExp(`-----BEGIN ${label}-----([A-Za-z0-9+/=\\s]+)-----END ${label}-----`, 'g');
  return [...text.matchAll(re)].map((m) => Buffer.from((m[1] ?? '').replace(/\s+/g, ''), 'base64'));
}

function readConfigFile(path: string): Buffer {
  try {
    return readFileSync(path);
  } catch (e) {
    throw fail('CONFIG_INVALID', `cannot read ${path}: ${(e as Error).message}`);
  }
}

export class TrustStore {
  private constructor(
    readonly anchors: readonly X509Certificate[],
    readonly crls: readonly Crl[],
    private readonly requireCrl: boolean,
  ) {}

  /** Anchors: PEM files of one or more certificates. CRLs: PEM or DER files. Bad input is CONFIG_INVALID. */
  static fromFiles(anchorFiles: readonly string[], crlFiles: readonly string[], options: TrustOptions = {}): TrustStore {
    const anchors = anchorFiles.flatMap((path) => {
      const text = readConfigFile(path).toString('latin1');
      const ders = pemBlocks(text, 'CERTIFICATE');
      if (ders.length === 0) throw fail('CONFIG_INVALID', `${path}: no PEM certificate`);
      try {
        return ders.map((d) => new X509Certificate(d));
      } catch (e) {
        throw fail('CONFIG_INVALID', `${path}: ${(e as Error).message}`);
      }
    });
    const crls = crlFiles.flatMap((path) => {
      const bytes = readConfigFile(path);
      const text = bytes.toString('latin1');
      const ders = text.includes('-----BEGIN X509 CRL-----') ? pemBlocks(text, 'X509 CRL') : [bytes];
      try {
        return ders.map((d) => parseCrl(d, anchors));
      } catch (e) {
        throw fail('CONFIG_INVALID', `${path}: ${(e as Error).message}`);
      }
    });
    return new TrustStore(anchors, crls, options.requireCrl ?? true);
  }

  /**
   * Builds and checks the path from `signer` to an anchor, using `pool` (the message's
   * certificates) for intermediates. `at` is the signing time (validity), `now` the time the
   * CRLs must be current at. Throws SMIME_SIGNER_* or SMIME_ALGORITHM_REFUSED; returns the path.
   */
  validate(signer: X509Certificate, pool: readonly X509Certificate[], at: Date, now: Date): X509Certificate[] {
    const path = this.buildPath(signer, pool);
    path.forEach((cert, i) => {
      const f = fieldsOf(cert);
      for (const [id, ext] of f.extensions) {
        if (ext.critical && !UNDERSTOOD_EXTENSIONS.has(id)) throw fail('SMIME_SIGNER_NOT_TRUSTED', `unsupported critical extension ${id}`);
      }
      if (i > 0 && !cert.ca) throw fail('SMIME_SIGNER_NOT_TRUSTED', 'an issuer in the path is not a CA (basicConstraints)');
      if (i > 0 && i < path.length - 1) checkRsaKey(cert.publicKey, 'intermediate CA');
      // RFC 5280 §6.1.3 (a)(2), evaluated at the signing time (RFC 8550 §4.1 leaves the time to policy).
      if (at < f.notBefore || at > f.notAfter) {
        throw fail('SMIME_SIGNER_EXPIRED', `${i === 0 ? 'signer' : 'CA'} certificate valid ${f.notBefore.toISOString()}–${f.notAfter.toISOString()}, not at ${at.toISOString()}`);
      }
    });
    for (let i = 0; i < path.length - 1; i++) this.checkRevocation(path[i] as X509Certificate, now);
    return path;
  }

  private buildPath(signer: X509Certificate, pool: readonly X509Certificate[]): X509Certificate[] {
    const issuedBy = (cert: X509Certificate, ca: X509Certificate): boolean => {
      try {
        return cert.checkIssued(ca) && cert.verify(ca.publicKey);
      } catch {
        return false;
      }
    };
    const path = [signer];
    for (let cert = signer; path.length <= MAX_CHAIN;) {
      if (this.anchors.some((a) => a.fingerprint256 === cert.fingerprint256)) return path;
      const anchor = this.anchors.find((a) => issuedBy(cert, a));
      if (anchor) return [...path, anchor];
      const next = pool.find((c) => !path.includes(c) && issuedBy(cert, c));
      if (!next) break;
      path.push(next);
      cert = next;
    }
    throw fail('SMIME_SIGNER_NOT_TRUSTED', 'the signer certificate does not chain to a configured trust anchor');
  }

  /** RFC 5280 §6.3, with complete CRLs only. An out-of-date CRL leaves the status unknown: refused. */
  private checkRevocation(cert: X509Certificate, now: Date): void {
    const f = fieldsOf(cert);
    const crl = this.crls
      .filter((c) => c.issuer.equals(f.issuer) && cert.checkIssued(c.signer))
      .sort((a, b) => b.thisUpdate.getTime() - a.thisUpdate.getTime())[0];
    if (!crl) {
      if (this.requireCrl) throw fail('SMIME_SIGNER_NOT_TRUSTED', 'no CRL configured for the issuer: revocation status unknown');
      return;
    }
    if (crl.revoked.has(f.serial.toString('hex'))) throw fail('SMIME_SIGNER_REVOKED', `certificate serial ${f.serial.toString('hex')} is revoked`);
    if (crl.thisUpdate > now || (crl.nextUpdate && crl.nextUpdate < now)) {
      throw fail('SMIME_SIGNER_NOT_TRUSTED', `the issuer's CRL is out of date (next update ${crl.nextUpdate?.toISOString() ?? '?'}): revocation status unknown`);
    }
  }

  /** For operators: CRLs that are out of date at `now`. */
  staleCrls(now: Date = new Date()): Crl[] {
    return this.crls.filter((c) => c.thisUpdate > now || (c.nextUpdate !== undefined && c.nextUpdate < now));
  }
}

/**
 * RFC 8550 §4.4.2/§4.4.4: keyUsage, when present, has digitalSignature or nonRepudiation;
 * extKeyUsage, when present, has emailProtection (or anyExtendedKeyUsage).
 */
export function checkSigningUsage(cert: X509Certificate): void {
  const f = fieldsOf(cert);
  const ku = f.extensions.get(OID.keyUsage);
  if (ku) {
    const has = keyUsageBits(ku);
    if (!has(0) && !has(1)) throw fail('SMIME_SIGNER_USAGE', 'keyUsage has neither digitalSignature nor nonRepudiation');
  }
  const eku = f.extensions.get(OID.extKeyUsage);
  if (eku) {
    const purposes = extKeyUsages(eku);
    if (!purposes.includes(OID.emailProtection) && !purposes.includes(OID.anyExtendedKeyUsage)) {
      throw fail('SMIME_SIGNER_USAGE', 'extKeyUsage lacks emailProtection');
    }
  }
}

/** RFC 8550 §3: the subjectAltName rfc822Name matching the From address (case-insensitive), if any. */
export function matchingEmail(cert: X509Certificate, from: string): string {
  const wanted = from.trim().toLowerCase();
  const email = rfc822Names(cert).find((n) => n.toLowerCase() === wanted);
  if (email === undefined) throw fail('SMIME_SIGNER_MISMATCH', "no subjectAltName rfc822Name of the signer equals the From address");
  return email;
}
