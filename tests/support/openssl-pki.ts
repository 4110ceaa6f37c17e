/**
 * A test PKI made with the real `openssl` (OpenSSL 3) in a temp dir at test time: a CA managed by
 * `openssl ca` (so that it can revoke and issue CRLs), leaf certificates issued by it, and a
 * runner for any other openssl command in that dir. No fixture files.
 *
 *   const pki = testPki('smime-');
 *   const { file, openssl, leaf, identityOf } = pki;
 *   beforeAll(() => pki.init());
 *   afterAll(() => pki.remove());
 */
import { execFileSync } from 'node:child_process';
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Identity } from '../../gateway/smime/index.js';

const CA_CONF = `
[ ca ]
default_ca = test_ca
[ test_ca ]
dir = .
database = ./index.txt
new_certs_dir = .
certificate = ./ca.pem
private_key = ./ca.key
serial = ./serial
default_md = sha256
policy = any
unique_subject = no
default_days = 365
default_crl_days = 30
[ any ]
commonName = supplied
`;

/** A date as openssl ca's -startdate, -enddate, -crl_lastupdate… take it (YYYYMMDDHHMMSSZ). */
export const yymmdd = (d: Date): string => d.toISOString().replace(/[-:T]/g, '').replace(/\.\d+Z$/, 'Z');

export interface LeafOptions {
  email: string;
  bits?: number;
  /** Default "digitalSignature, nonRepudiation, keyEncipherment". */
  keyUsage?: string;
  /** Default emailProtection. */
  extKeyUsage?: string;
  /** Both or neither; default 365 days from now. */
  notBefore?: Date;
  notAfter?: Date;
}

export interface CaOptions {
  serial?: string;
  /** The CA's common name (default "Test IGC CA"). */
  name?: string;
  /** An intermediate CA: its certificate is issued by this PKI's CA instead of self-signed. */
  issuedBy?: TestPki;
}

export interface TestPki {
  /** Creates the temp dir and the CA (ca.pem, ca.key, ca.cnf); call in beforeAll. */
  init(options?: CaOptions): void;
  /** Removes the temp dir; call in afterAll. */
  remove(): void;
  /** The path of a file in the PKI's dir. */
  file(name: string): string;
  /** Runs openssl in the PKI's dir, returns its stdout (throws on a non-zero exit). */
  openssl(...args: string[]): Buffer;
  /** Writes bytes to a fresh temp file in the PKI's dir, returns its path. */
  temp(bytes: Buffer | string): string;
  /** A leaf certificate `<name>.pem` and its key `<name>.key`, issued by the test CA with `openssl ca`. */
  leaf(name: string, o: LeafOptions): void;
  certOf(name: string): X509Certificate;
  identityOf(name: string): Identity;
}

/** A test PKI in a temp dir named after `prefix`; its functions can be destructured (they are bound). */
export function testPki(prefix: string): TestPki {
  let dir: string | undefined;
  let counter = 0;
  const home = (): string => {
    if (!dir) throw new Error('test PKI used before init()');
    return dir;
  };
  const file = (name: string): string => join(home(), name);
  const openssl = (...args: string[]): Buffer =>
    execFileSync('/usr/bin/openssl', args, { cwd: home(), stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 64 * 1024 * 1024 });
  const certOf = (name: string): X509Certificate => new X509Certificate(readFileSync(file(`${name}.pem`)));
  return {
    init(options = {}) {
      dir = mkdtempSync(join(tmpdir(), prefix));
      writeFileSync(file('ca.cnf'), CA_CONF);
      writeFileSync(file('index.txt'), '');
      writeFileSync(file('serial'), `${options.serial ?? '1000'}\n`);
      const subject = `/CN=${options.name ?? 'Test IGC CA'}`;
      if (!options.issuedBy) {
        openssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-out', 'ca.pem', '-subj', subject, '-days', '3650',
          '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign');
        return;
      }
      const issuer = options.issuedBy;
      const csr = issuer.temp(openssl('req', '-new', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-subj', subject));
      const ext = issuer.temp(['basicConstraints = critical, CA:TRUE', 'keyUsage = critical, keyCertSign, cRLSign', 'subjectKeyIdentifier = hash', 'authorityKeyIdentifier = keyid'].join('\n'));
      const out = issuer.temp('');
      issuer.openssl('ca', '-batch', '-config', 'ca.cnf', '-notext', '-in', csr, '-out', out, '-extfile', ext, '-days', '1825');
      writeFileSync(file('ca.pem'), readFileSync(out));
    },
    remove() {
      if (dir) rmSync(dir, { recursive: true, force: true });
    },
    file,
    openssl,
    temp(bytes) {
      const p = file(`t${counter++}`);
      writeFileSync(p, bytes);
      return p;
    },
    leaf(name, o) {
      openssl('req', '-new', '-newkey', `rsa:${o.bits ?? 2048}`, '-nodes', '-keyout', `${name}.key`, '-subj', `/CN=${name}`, '-out', `${name}.csr`);
      writeFileSync(file(`${name}.ext`), [
        'basicConstraints = CA:FALSE',
        `keyUsage = critical, ${o.keyUsage ?? 'digitalSignature, nonRepudiation, keyEncipherment'}`,
        `extendedKeyUsage = ${o.extKeyUsage ?? 'emailProtection'}`,
        'subjectKeyIdentifier = hash',
        'authorityKeyIdentifier = keyid',
        `subjectAltName = email:${o.email}`,
      ].join('\n'));
      const dates = o.notBefore && o.notAfter ? ['-startdate', yymmdd(o.notBefore), '-enddate', yymmdd(o.notAfter)] : ['-days', '365'];
      openssl('ca', '-batch', '-config', 'ca.cnf', '-notext', '-in', `${name}.csr`, '-out', `${name}.pem`, '-extfile', `${name}.ext`, ...dates);
    },
    certOf,
    identityOf: (name) => ({ certificate: certOf(name), privateKey: createPrivateKey(readFileSync(file(`${name}.key`))) }),
  };
}
