/**
 * The development PKI (`passerelle pki init DIR`, CONTRACT.md): a CA, its CRL, the gateway's
 * certificate (TLS server for STARTTLS and S/MIME identity) and two sender certificates, all RSA
 * 2048 with SHA-256 — what the gateway's own S/MIME policy accepts (DOMAIN.md §2). Made with
 * Node's crypto only: no openssl binary, no node-forge, at run time.
 *
 * Never for production: MSSanté trusts IGC-Santé only, and these keys sit unencrypted on disk.
 */
import { generateKeyPair, X509Certificate, createPrivateKey, type KeyObject } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { fieldsOf, subjectKeyIdentifier } from '../smime/certificate.js';
import { children, content, ctx, Fields, oid, readRoot, raw, TAG, unsignedBytes } from '../smime/der.js';
import { OID } from '../smime/oids.js';
import {
  buildCertificate, buildCrl, fromPem, KEY_PURPOSE, keyIdentifier, name, randomSerial, toPem, type AltName, type KeyUsage,
} from './x509-write.js';

const generate = promisify(generateKeyPair);

const DAY = 86_400_000;
/**
 * A development CRL outlives a working session by far: the gateway (like `openssl verify
 * -crl_check`) refuses a CRL past its nextUpdate (RFC 5280 §6.3.3 (a)), and nobody re-signs a
 * dev CRL on a schedule. `revoke` re-issues it.
 */
const CRL_VALIDITY_DAYS = 365;
/** Backdated so that a clock a little behind does not see "not yet valid" certificates. */
const SKEW_MS = 60 * 60 * 1000;

export const SENDER_EMAILS = ['sender1@hopital.test', 'sender2@hopital.test'] as const;
export const GATEWAY_EMAIL = 'passerelle@passerelle.test';

export interface KeyPairFiles { certificate: string; key: string }
export interface DevPkiFiles {
  ca: KeyPairFiles;
  crl: string;
  gateway: KeyPairFiles;
  senders: (KeyPairFiles & { email: string })[];
}

/** The file names, fixed so that configuration examples (smime.trustAnchors: ["ca.pem"], crls: ["ca.crl.pem"]) stay true. */
export function devPkiFiles(dir: string): DevPkiFiles {
  const d = resolve(dir);
  const pair = (n: string): KeyPairFiles => ({ certificate: join(d, `${n}.pem`), key: join(d, `${n}.key.pem`) });
  return {
    ca: pair('ca'),
    crl: join(d, 'ca.crl.pem'),
    gateway: pair('gateway'),
    senders: SENDER_EMAILS.map((email, i) => ({ email, ...pair(`sender${i + 1}`) })),
  };
}

/** Every path, in a stable order (for printing). */
export function listFiles(files: DevPkiFiles): string[] {
  return [
    files.ca.certificate, files.ca.key, files.crl, files.gateway.certificate, files.gateway.key,
    ...files.senders.flatMap((s) => [s.certificate, s.key]),
  ];
}

export class PkiExistsError extends Error {
  constructor(readonly file: string) {
    super(`${file} already exists: refusing to replace a CA (every certificate it issued would become untrusted)`);
    this.name = 'PkiExistsError';
  }
}

async function rsaKey(): Promise<{ publicKey: KeyObject; privateKey: KeyObject }> {
  return generate('rsa', { modulusLength: 2048, publicExponent: 0x10001 });
}

const keyPem = (k: KeyObject): string => k.export({ type: 'pkcs8', format: 'pem' }).toString();

async function writeKey(path: string, key: KeyObject): Promise<void> {
  await writeFile(path, keyPem(key), { mode: 0o600 });
  await chmod(path, 0o600); // mode only applies when the file is created
}

export interface InitOptions {
  /** Replace an existing PKI in `dir`. */
  force?: boolean;
  now?: Date;
}

export async function initDevPki(dir: string, options: InitOptions = {}): Promise<{ files: DevPkiFiles }> {
  const files = devPkiFiles(dir);
  if (!options.force && existsSync(files.ca.certificate)) throw new PkiExistsError(files.ca.certificate);
  await mkdir(resolve(dir), { recursive: true, mode: 0o700 });
  const now = options.now ?? new Date();
  const notBefore = new Date(now.getTime() - SKEW_MS);

  const [caKeys, gwKeys, ...senderKeys] = await Promise.all([rsaKey(), rsaKey(), ...SENDER_EMAILS.map(rsaKey)]);
  if (!caKeys || !gwKeys) throw new Error('key generation failed');
  const caName = name({ country: 'FR', organization: 'Passerelle (development)', commonName: 'Passerelle development CA' });
  const caKeyId = keyIdentifier(caKeys.publicKey.export({ type: 'spki', format: 'der' }));

  const issue = (subject: string, publicKey: KeyObject, keyUsage: KeyUsage[], extKeyUsage: string[], altNames: AltName[]): Buffer =>
    buildCertificate({
      serial: randomSerial(), issuer: caName, issuerKeyId: caKeyId,
      subject: name({ country: 'FR', organization: 'Passerelle (development)', commonName: subject }),
      notBefore, notAfter: new Date(now.getTime() + 2 * 365 * DAY),
      publicKey, ca: false, keyUsage, extKeyUsage, altNames,
    }, caKeys.privateKey);

  const ca = buildCertificate({
    serial: randomSerial(), issuer: caName, subject: caName, issuerKeyId: caKeyId,
    notBefore, notAfter: new Date(now.getTime() + 10 * 365 * DAY),
    publicKey: caKeys.publicKey, ca: true, keyUsage: ['keyCertSign', 'cRLSign'],
  }, caKeys.privateKey);
  // Gateway: TLS server (RSA key exchange needs keyEncipherment) and S/MIME (RFC 8550 §4.4.2).
  const gateway = issue('passerelle.test', gwKeys.publicKey, ['digitalSignature', 'keyEncipherment'], [KEY_PURPOSE.serverAuth, KEY_PURPOSE.emailProtection],
    [{ dns: 'localhost' }, { ip: '127.0.0.1' }, { ip: '::1' }, { email: GATEWAY_EMAIL }]);
  const crl = buildCrl({
    issuer: caName, issuerKeyId: caKeyId, thisUpdate: notBefore, nextUpdate: new Date(now.getTime() + CRL_VALIDITY_DAYS * DAY), number: 1,
  }, caKeys.privateKey);

  await writeFile(files.ca.certificate, toPem('CERTIFICATE', ca));
  await writeKey(files.ca.key, caKeys.privateKey);
  await writeFile(files.crl, toPem('X509 CRL', crl));
  await writeFile(files.gateway.certificate, toPem('CERTIFICATE', gateway));
  await writeKey(files.gateway.key, gwKeys.privateKey);
  for (const [i, s] of files.senders.entries()) {
    const keys = senderKeys[i];
    if (!keys) throw new Error('key generation failed');
    const cert = issue(s.email, keys.publicKey, ['digitalSignature', 'keyEncipherment'], [KEY_PURPOSE.emailProtection], [{ email: s.email }]);
    await writeFile(s.certificate, toPem('CERTIFICATE', cert));
    await writeKey(s.key, keys.privateKey);
  }
  return { files };
}

/** The PKI in `dir`, created if absent (first start: CONTRACT.md "a development PKI created on first start"). */
export async function ensureDevPki(dir: string): Promise<{ files: DevPkiFiles; created: boolean }> {
  const files = devPkiFiles(dir);
  if (listFiles(files).every((f) => existsSync(f))) return { files, created: false };
  if (existsSync(files.ca.certificate)) throw new PkiExistsError(files.ca.certificate);
  return { ...(await initDevPki(dir)), created: true };
}

/** RFC 5280 §5.3.1 reason codes `revoke` accepts. */
export const CRL_REASONS = { unspecified: 0, keyCompromise: 1, affiliationChanged: 3, superseded: 4, cessationOfOperation: 5 } as const;
export type CrlReason = keyof typeof CRL_REASONS;

/**
 * Adds the certificate in `certFile` to the CA's CRL in `dir` and re-signs it: earlier entries
 * are carried over byte for byte, the CRL number goes up (RFC 5280 §5.2.3). Idempotent.
 * Returns the revoked serial (hex).
 */
export async function revoke(dir: string, certFile: string, options: { reason?: CrlReason; now?: Date } = {}): Promise<{ serial: string; crl: string; alreadyRevoked: boolean }> {
  const files = devPkiFiles(dir);
  const ca = new X509Certificate(await readFile(files.ca.certificate));
  const caKey = createPrivateKey(await readFile(files.ca.key));
  const cert = new X509Certificate(await readFile(certFile));
  if (!cert.checkIssued(ca) || !cert.verify(ca.publicKey)) throw new Error(`${certFile} was not issued by the CA in ${dir}`);
  const serial = fieldsOf(cert).serial;

  const old = readCrl(fromPem((await readFile(files.crl)).toString('latin1'), 'X509 CRL'));
  const alreadyRevoked = old.serials.includes(serial.toString('hex'));
  const now = options.now ?? new Date();
  const reason = options.reason && options.reason !== 'unspecified' ? CRL_REASONS[options.reason] : undefined;
  const caKeyId = subjectKeyIdentifier(ca) ?? keyIdentifier(ca.publicKey.export({ type: 'spki', format: 'der' }));
  const crl = buildCrl({
    issuer: fieldsOf(ca).subject, issuerKeyId: caKeyId,
    thisUpdate: now, nextUpdate: new Date(now.getTime() + CRL_VALIDITY_DAYS * DAY), number: old.number + 1,
    carried: old.entries,
    revoked: alreadyRevoked ? [] : [{ serial, at: now, ...(reason !== undefined ? { reason } : {}) }],
  }, caKey);
  await writeFile(files.crl, toPem('X509 CRL', crl));
  return { serial: serial.toString('hex'), crl: files.crl, alreadyRevoked };
}

/** The parts of our own CRL that a re-issue carries over (§5.1.2): the entries, and the cRLNumber (§5.2.3). */
function readCrl(der: Buffer): { entries: Buffer[]; serials: string[]; number: number } {
  const [tbsTlv] = children(readRoot(der));
  if (!tbsTlv) throw new Error('empty CRL');
  const tbs = new Fields(tbsTlv, 'TBSCertList');
  tbs.optional(TAG.INTEGER);
  tbs.next(TAG.SEQUENCE, 'signature');
  tbs.next(TAG.SEQUENCE, 'issuer');
  tbs.any('thisUpdate');
  if (!tbs.optional(TAG.UTC_TIME)) tbs.optional(TAG.GENERALIZED_TIME); // nextUpdate
  const list = tbs.optional(TAG.SEQUENCE);
  const entries = list ? children(list) : [];
  let number = 0;
  const exts = tbs.optional(ctx(0, true));
  for (const e of exts ? children(children(exts)[0] ?? exts) : []) {
    const [id, ...rest] = children(e);
    const value = rest[rest.length - 1];
    if (id && value && oid(id) === OID.crlNumber) number = Number.parseInt(content(readRoot(content(value))).toString('hex') || '0', 16);
  }
  return {
    entries: entries.map(raw),
    serials: entries.map((e) => unsignedBytes(content(children(e)[0] ?? e)).toString('hex')),
    number,
  };
}
