/**
 * The development PKI, checked by the real OpenSSL (3.x): chain and CRL (`openssl verify
 * -crl_check`), S/MIME use (`openssl cms -sign/-verify/-encrypt/-decrypt`), and revocation — and
 * read back by the gateway's own TrustStore, which is what `start` will load.
 */
import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pkiCommand } from '../../gateway/cli/pki.js';
import { devPkiFiles, ensureDevPki, initDevPki, listFiles, PkiExistsError, revoke, type DevPkiFiles } from '../../gateway/pki/dev-pki.js';
import { TrustStore } from '../../gateway/smime/index.js';

const dir = mkdtempSync(join(tmpdir(), 'passerelle-pki-'));
let files: DevPkiFiles;

function openssl(...args: string[]): string {
  return execFileSync('openssl', args, { cwd: dir, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}
/** Runs openssl expecting failure; returns its stderr + stdout. */
function opensslFails(...args: string[]): string {
  try {
    openssl(...args);
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string };
    return `${e.stdout ?? ''}${e.stderr ?? ''}`;
  }
  throw new Error(`openssl ${args.join(' ')} succeeded`);
}

beforeAll(async () => {
  ({ files } = await initDevPki(dir));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('passerelle pki init', () => {
  it('writes every file, private keys readable by the owner only', () => {
    for (const f of listFiles(files)) expect(statSync(f).size).toBeGreaterThan(0);
    for (const f of [files.ca.key, files.gateway.key, ...files.senders.map((s) => s.key)]) expect(statSync(f).mode & 0o077).toBe(0);
  });

  it('certificates chain to the CA and pass the CRL check', () => {
    for (const cert of [files.gateway.certificate, ...files.senders.map((s) => s.certificate)]) {
      expect(openssl('verify', '-CAfile', files.ca.certificate, '-crl_check', '-CRLfile', files.crl, cert)).toContain(': OK');
    }
    expect(openssl('verify', '-CAfile', files.ca.certificate, '-purpose', 'sslserver', files.gateway.certificate)).toContain(': OK');
    expect(openssl('verify', '-CAfile', files.ca.certificate, '-purpose', 'smimesign', files.senders[0]?.certificate ?? '')).toContain(': OK');
    expect(openssl('crl', '-in', files.crl, '-noout', '-text')).toMatch(/No Revoked Certificates/);
  });

  it('carries the profile asked for: RSA 2048, SHA-256, usages and subjectAltNames', () => {
    const ca = openssl('x509', '-in', files.ca.certificate, '-noout', '-text');
    expect(ca).toMatch(/CA:TRUE/);
    expect(ca).toMatch(/Certificate Sign, CRL Sign/);
    const gw = openssl('x509', '-in', files.gateway.certificate, '-noout', '-text');
    expect(gw).toMatch(/Public-Key: \(2048 bit\)/);
    expect(gw).toMatch(/Signature Algorithm: sha256WithRSAEncryption/);
    expect(gw).toMatch(/TLS Web Server Authentication, E-mail Protection/);
    expect(gw).toMatch(/DNS:localhost/);
    expect(gw).toMatch(/email:passerelle@passerelle.test/);
    const s2 = new X509Certificate(readFileSync(files.senders[1]?.certificate ?? ''));
    expect(s2.subjectAltName).toBe('email:sender2@hopital.test');
    expect(s2.keyUsage).toEqual(['1.3.6.1.5.5.7.3.4']);
    expect(openssl('x509', '-in', files.senders[1]?.certificate ?? '', '-noout', '-text')).toMatch(/Digital Signature, Key Encipherment/);
    // The gateway's own trust store loads the anchor and the CRL (signature and issuer checked).
    expect(TrustStore.fromFiles([files.ca.certificate], [files.crl]).crls).toHaveLength(1);
  });

  it('openssl cms signs with a sender key and encrypts to the gateway; both verify and decrypt', () => {
    const sender = files.senders[0];
    if (!sender) throw new Error('no sender');
    writeFileSync(join(dir, 'content.txt'), 'Content-Type: text/plain\r\n\r\nCompte rendu\r\n');
    openssl('cms', '-sign', '-in', 'content.txt', '-signer', sender.certificate, '-inkey', sender.key, '-md', 'sha256', '-out', 'signed.eml');
    openssl('cms', '-encrypt', '-aes-256-cbc', '-in', 'signed.eml', '-out', 'enveloped.eml', files.gateway.certificate);
    openssl('cms', '-decrypt', '-in', 'enveloped.eml', '-recip', files.gateway.certificate, '-inkey', files.gateway.key, '-out', 'decrypted.eml');
    // `cms -verify` has no -CRLfile: CRLs are found in the store, so the CA file carries the CRL too.
    writeFileSync(join(dir, 'ca-and-crl.pem'), readFileSync(files.ca.certificate, 'utf8') + readFileSync(files.crl, 'utf8'));
    const verified = openssl('cms', '-verify', '-in', 'decrypted.eml', '-CAfile', 'ca-and-crl.pem', '-crl_check', '-purpose', 'smimesign');
    expect(verified).toContain('Compte rendu');
    // The gateway signs too (MDNs): its certificate is for e-mail signature.
    openssl('cms', '-sign', '-in', 'content.txt', '-signer', files.gateway.certificate, '-inkey', files.gateway.key, '-out', 'gw-signed.eml');
    expect(openssl('cms', '-verify', '-in', 'gw-signed.eml', '-CAfile', files.ca.certificate)).toContain('Compte rendu');
  });

  it('revoke re-issues the CRL: the revoked certificate fails -crl_check, the others still pass', async () => {
    const copy = mkdtempSync(join(tmpdir(), 'passerelle-pki-revoke-'));
    try {
      const { files: f } = await initDevPki(copy);
      const [s1, s2] = f.senders;
      if (!s1 || !s2) throw new Error('no senders');
      const first = await revoke(copy, s2.certificate, { reason: 'keyCompromise' });
      expect(first.alreadyRevoked).toBe(false);
      expect(opensslFails('verify', '-CAfile', f.ca.certificate, '-crl_check', '-CRLfile', f.crl, s2.certificate)).toMatch(/certificate revoked/);
      expect(openssl('verify', '-CAfile', f.ca.certificate, '-crl_check', '-CRLfile', f.crl, s1.certificate)).toContain(': OK');
      await revoke(copy, f.gateway.certificate);
      expect((await revoke(copy, s2.certificate)).alreadyRevoked).toBe(true);
      const text = openssl('crl', '-in', f.crl, '-noout', '-text');
      expect(text).toMatch(/X509v3 CRL Number:\s*\n\s*4/);
      expect(text.match(/Serial Number:/g)).toHaveLength(2);
      expect(text).toMatch(/Key Compromise/);
      const trust = TrustStore.fromFiles([f.ca.certificate], [f.crl]);
      expect(trust.crls[0]?.revoked.has(first.serial)).toBe(true);
      // A certificate of another CA is refused.
      await expect(revoke(copy, files.senders[0]?.certificate ?? '')).rejects.toThrow(/not issued by the CA/);
    } finally {
      rmSync(copy, { recursive: true, force: true });
    }
  });

  it('never replaces an existing CA unless forced; ensureDevPki reuses a complete one', async () => {
    await expect(initDevPki(dir)).rejects.toBeInstanceOf(PkiExistsError);
    const before = readFileSync(files.ca.certificate, 'utf8');
    const ensured = await ensureDevPki(dir);
    expect(ensured.created).toBe(false);
    expect(readFileSync(files.ca.certificate, 'utf8')).toBe(before);
  });

  it('the CLI prints the files written and refuses bad usage with exit 1', async () => {
    const target = mkdtempSync(join(tmpdir(), 'passerelle-pki-cli-'));
    const out: string[] = [];
    const err: string[] = [];
    const io = { stdout: (s: string) => out.push(s), stderr: (s: string) => err.push(s) };
    try {
      expect(await pkiCommand(['init', join(target, 'pki')], io)).toBe(0);
      for (const f of listFiles(devPkiFiles(join(target, 'pki')))) expect(out.join('')).toContain(f);
      expect(await pkiCommand(['init', join(target, 'pki')], io)).toBe(1); // exists
      expect(await pkiCommand(['init'], io)).toBe(1);
      expect(await pkiCommand(['frobnicate', 'x'], io)).toBe(1);
      expect(await pkiCommand([], io)).toBe(1);
      expect(err.join('')).toMatch(/Usage/);
    } finally {
      rmSync(target, { recursive: true, force: true });
    }
  });
});
