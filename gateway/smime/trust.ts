/**
 * Trust anchors and CRLs (from PEM/DER files), and the validation of a signer certificate:
 * path building (RFC 5280 §6, simplified), validity at the signing time, revocation by CRL,
 * e-mail signing usage and address (RFC 8550 §3, §4.4).
 *
 * A two-tier PKI such as IGC-Santé (a root, then issuing CAs that publish the CRLs) is configured
 * with the root alone as anchor: the issuing CA comes from the signature's certificates, and its
 * CRL is checked against its key when a message presents it. Configuring the issuing CA as an
 * anchor too is allowed; the path then still goes up to the root among the anchors, so that the
 * root's CRL (ARL), when configured, can revoke it.
 *
 * Revocation (§6.3): the signer's certificate needs a current CRL from its issuer (`requireCrl`);
 * a CA certificate of the path is checked against its issuer's CRL when one is configured (as
 * `openssl verify -crl_check` does, the ARL being optional). A CRL past its nextUpdate leaves the
 * status unknown: SMIME_CRL_OUT_OF_DATE, a transient failure the pipeline retries, because CRL
 * files are re-read when they change — looked at when a signature is checked or the metrics are
 * read, at most every RELOAD_CHECK_MS, and at once when a CRL is missing or out of date; a file
 * that no longer parses keeps its last valid CRLs, and an issuer's CRL is never replaced by an
 * older one.
 *
 * Simplifications, deliberate: no policy or name-constraint processing, so a certificate carrying
 * one of those as critical is refused rather than half-understood; no pathLenConstraint (the
 * chains are one or two CAs deep); no indirect, partial or delta CRLs.
 */
import { readFileSync, statSync } from 'node:fs';
import { X509Certificate } from 'node:crypto';
import { PasserelleError, type ErrorCode } from '../errors.js';
import { checkRsaKey } from './algorithms.js';
import { extKeyUsages, fieldsOf, keyUsageBits, rfc822Names } from './certificate.js';
import { parseCrl, type Crl } from './crl.js';
import { OID } from './oids.js';

const MAX_CHAIN = 6;
/** How often CRL files are looked at for a new version (inode, size, modification time), by default. */
const RELOAD_CHECK_MS = 10_000;

/** RFC 5280 §4.2: extensions this validation processes, and may therefore be critical. */
const UNDERSTOOD_EXTENSIONS = new Set<string>([
  OID.keyUsage, OID.extKeyUsage, OID.subjectAltName, OID.basicConstraints,
  OID.subjectKeyIdentifier, OID.authorityKeyIdentifier, OID.crlDistributionPoints, OID.authorityInfoAccess,
]);

export interface TrustOptions {
  /** A signer whose issuer has no configured CRL is refused (default true: MSSanté requires CRL checks). */
  readonly requireCrl?: boolean;
  /** Told when a CRL file is reloaded or cannot be (no patient data: paths and CA names only). */
  readonly onCrlEvent?: (event: CrlEvent) => void;
  /** How often CRL files are looked at when nothing is missing or out of date (default RELOAD_CHECK_MS). */
  readonly crlCheckMs?: number;
}

export type CrlEvent =
  | { readonly kind: 'reloaded'; readonly path: string; readonly crls: number }
  /** The file holds an older CRL of an issuer than the one in use: the newer one is kept. */
  | { readonly kind: 'older-kept-newer'; readonly path: string }
  | { readonly kind: 'reload-failed'; readonly path: string; readonly detail: string }
  /** A CRL in use has passed its nextUpdate (told once per CRL): mail under its CA waits. */
  | { readonly kind: 'out-of-date'; readonly path: string; readonly nextUpdate: Date | undefined };

/** One configured CRL file and what it held when last read successfully. */
interface CrlFile {
  readonly path: string;
  version: string;
  crls: readonly Crl[];
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

/** What tells a new version of a file: its inode, size and modification time ('' when it cannot be read). */
function versionOf(path: string): string {
  try {
    const st = statSync(path);
    return `${st.ino}:${st.size}:${st.mtimeMs}`;
  } catch {
    return '';
  }
}

/**
 * The CRLs of one file (PEM, one or more, or DER). A CRL issued by an anchor must verify with
 * it now; one issued by another CA is verified when a path brings that CA.
 */
function readCrlFile(path: string, anchors: readonly X509Certificate[]): Crl[] {
  const bytes = readConfigFile(path);
  const text = bytes.toString('latin1');
  const ders = text.includes('-----BEGIN X509 CRL-----') ? pemBlocks(text, 'X509 CRL') : [bytes];
  return ders.map((der) => {
    let crl: Crl;
    try {
      crl = parseCrl(der);
    } catch (e) {
      throw fail('CONFIG_INVALID', `${path}: not a readable CRL (${(e as Error).message})`);
    }
    const named = anchors.filter((a) => fieldsOf(a).subject.equals(crl.issuer));
    if (named.length && !named.some((a) => crl.signedBy(a))) throw fail('CONFIG_INVALID', `${path}: CRL not signed by the trust anchor it names as issuer`);
    return crl;
  });
}

const outOfDate = (crl: Crl, now: Date): boolean => crl.thisUpdate > now || (crl.nextUpdate !== undefined && crl.nextUpdate < now);

export class TrustStore {
  private lastCheck = Date.now();
  /** The CRLs already told out of date (CrlEvent 'out-of-date'). */
  private readonly toldOutOfDate = new WeakSet<Crl>();

  private constructor(
    readonly anchors: readonly X509Certificate[],
    private readonly files: readonly CrlFile[],
    private readonly options: TrustOptions,
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
    const files = crlFiles.map((path) => ({ path, version: versionOf(path), crls: readCrlFile(path, anchors) }));
    return new TrustStore(anchors, files, options);
  }

  /** The CRLs held now. */
  get crls(): Crl[] {
    return this.files.flatMap((f) => f.crls);
  }

  /**
   * Builds and checks the path from `signer` to an anchor, using `pool` (the message's
   * certificates) for intermediates. `at` is the signing time (validity), `now` the time the
   * CRLs must be current at. Throws SMIME_SIGNER_*, SMIME_CRL_OUT_OF_DATE or
   * SMIME_ALGORITHM_REFUSED; returns the path, signer first.
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
    this.reload(false);
    for (let i = 0; i < path.length - 1; i++) this.checkRevocation(path[i] as X509Certificate, path[i + 1] as X509Certificate, i === 0, now);
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
    const isAnchor = (cert: X509Certificate): boolean => this.anchors.some((a) => a.fingerprint256 === cert.fingerprint256);
    const path = [signer];
    for (let cert = signer; path.length <= MAX_CHAIN;) {
      // Among the anchors, go on up to the top one, so that every CA below it can be revocation-checked.
      const next = isAnchor(cert)
        ? this.anchors.find((a) => !path.includes(a) && a.fingerprint256 !== cert.fingerprint256 && issuedBy(cert, a))
        : this.anchors.find((a) => !path.includes(a) && issuedBy(cert, a)) ?? pool.find((c) => !path.includes(c) && issuedBy(cert, c));
      if (!next) {
        if (isAnchor(cert)) return path;
        break;
      }
      path.push(next);
      cert = next;
    }
    throw fail('SMIME_SIGNER_NOT_TRUSTED', 'the signer certificate does not chain to a configured trust anchor');
  }

  /** RFC 5280 §6.3, with complete CRLs only, each signed by the certificate's issuer (`ca`). */
  private checkRevocation(cert: X509Certificate, ca: X509Certificate, required: boolean, now: Date): void {
    const f = fieldsOf(cert);
    const issuerCrls = (): Crl[] => this.crls
      .filter((c) => c.issuer.equals(f.issuer) && c.signedBy(ca))
      .sort((a, b) => b.thisUpdate.getTime() - a.thisUpdate.getTime());
    let crls = issuerCrls();
    if ((required || crls.length) && !crls.some((c) => !outOfDate(c, now))) {
      this.reload(true); // an operator may have just put the new CRL in place
      crls = issuerCrls();
    }
    const serial = f.serial.toString('hex');
    // A revocation listed by any CRL of the issuer stands, even in an older or out-of-date one.
    if (crls.some((c) => c.revoked.has(serial))) throw fail('SMIME_SIGNER_REVOKED', `${required ? 'signer' : 'CA'} certificate serial ${serial} is revoked`);
    const newest = crls[0];
    if (!newest) {
      if (required && this.options.requireCrl !== false) throw fail('SMIME_SIGNER_NOT_TRUSTED', 'no CRL configured for the issuer: revocation status unknown');
      return;
    }
    if (outOfDate(newest, now)) {
      if (!this.toldOutOfDate.has(newest)) {
        this.toldOutOfDate.add(newest);
        const file = this.files.find((f) => f.crls.includes(newest));
        if (file) this.options.onCrlEvent?.({ kind: 'out-of-date', path: file.path, nextUpdate: newest.nextUpdate });
      }
      throw fail('SMIME_CRL_OUT_OF_DATE', `the CRL of ${ca.subject.split('\n').find((l) => l.startsWith('CN=')) ?? 'the issuer'} is out of date (next update ${newest.nextUpdate?.toISOString() ?? '?'}): revocation status unknown`);
    }
  }

  /**
   * Re-reads the CRL files that changed since they were read; `force` looks now, else at most
   * every `crlCheckMs`. A file that cannot be read or parsed keeps its last valid CRLs.
   */
  private reload(force: boolean): void {
    const clock = Date.now();
    if (!force && clock - this.lastCheck < (this.options.crlCheckMs ?? RELOAD_CHECK_MS)) return;
    this.lastCheck = clock;
    for (const file of this.files) {
      const version = versionOf(file.path);
      if (version === file.version) continue;
      file.version = version;
      try {
        // An issuer's CRL is never replaced by an older one (a failed download, a restored backup).
        const held = file.crls;
        const read = readCrlFile(file.path, this.anchors);
        file.crls = read.map((crl) => held.find((h) => h.issuer.equals(crl.issuer) && h.thisUpdate > crl.thisUpdate) ?? crl);
        const olderKept = file.crls.some((crl, i) => crl !== read[i]);
        this.options.onCrlEvent?.(olderKept ? { kind: 'older-kept-newer', path: file.path } : { kind: 'reloaded', path: file.path, crls: file.crls.length });
      } catch (e) {
        this.options.onCrlEvent?.({ kind: 'reload-failed', path: file.path, detail: (e as Error).message });
      }
    }
  }

  /**
   * For monitoring: each CRL file (looked at again if due) and the earliest nextUpdate of the
   * CRLs it holds — the time by which a new one must be in place.
   */
  crlFiles(): { path: string; nextUpdate: Date | undefined }[] {
    this.reload(false);
    return this.files.map((f) => {
      const times = f.crls.map((c) => c.nextUpdate?.getTime()).filter((t): t is number => t !== undefined);
      return { path: f.path, nextUpdate: times.length ? new Date(Math.min(...times)) : undefined };
    });
  }

  /** For operators: the CRLs out of date at `now`, with their file. */
  staleCrls(now: Date = new Date()): { path: string; nextUpdate: Date | undefined }[] {
    return this.files.flatMap((f) => f.crls.filter((c) => outOfDate(c, now)).map((c) => ({ path: f.path, nextUpdate: c.nextUpdate })));
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
