/**
 * A two-tier PKI as IGC-Santé has one — a root, then issuing CAs that publish their own CRLs —
 * made with the real `openssl ca`: the root alone is the trust anchor, the issuing CA travels in
 * the signature (`openssl cms -sign -certfile`), its CRL is verified with its key when a message
 * brings it, and the root's CRL (ARL) revokes a CA when configured. CRL files are re-read when
 * they change, and an out-of-date one is a transient failure, not a verdict.
 */
import { copyFileSync, writeFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ERROR_CATALOGUE } from '../../gateway/errors.js';
import { TrustStore, verifySigned, type CrlEvent } from '../../gateway/smime/index.js';
import { testPki, yymmdd, type TestPki } from '../support/openssl-pki.js';
import { codeOf } from '../support/rejection.js';

const root = testPki('smime-root-');
const issuing = testPki('smime-issuing-');
const revokedCa = testPki('smime-revoked-ca-');

const ALICE = 'alice@cabinet.mssante.test';
const CAROL = 'carol@ehpad.mssante.test';
const DAN = 'dan@ssiad.mssante.test';
const CONTENT = Buffer.from('Content-Type: text/plain\r\n\r\nLettre de liaison\r\n');
const DAY = 86_400_000;

/** Signed by `name` of `ca`'s PKI, the issuing CA's certificate included, DER. */
const sign = (ca: TestPki, name: string): Buffer =>
  ca.openssl('cms', '-sign', '-binary', '-nodetach', '-outform', 'DER', '-in', ca.temp(CONTENT), '-signer', `${name}.pem`, '-inkey', `${name}.key`, '-certfile', 'ca.pem');

const verify = (der: Buffer, from: string, trust: TrustStore) => verifySigned({ der }, trust, { from, at: new Date() });

beforeAll(() => {
  root.init({ name: 'Test Root CA' });
  issuing.init({ name: 'Test Issuing CA', issuedBy: root, serial: '2000' });
  revokedCa.init({ name: 'Test Revoked CA', issuedBy: root, serial: '3000' });
  issuing.leaf('alice', { email: ALICE });
  issuing.leaf('carol', { email: CAROL });
  revokedCa.leaf('dan', { email: DAN });
  issuing.openssl('ca', '-config', 'ca.cnf', '-revoke', 'carol.pem');
  issuing.openssl('ca', '-config', 'ca.cnf', '-gencrl', '-out', 'crl.pem');
  issuing.openssl('ca', '-config', 'ca.cnf', '-gencrl', '-out', 'stale-crl.pem',
    '-crl_lastupdate', yymmdd(new Date(Date.now() - 60 * DAY)), '-crl_nextupdate', yymmdd(new Date(Date.now() - 30 * DAY)));
  revokedCa.openssl('ca', '-config', 'ca.cnf', '-gencrl', '-out', 'crl.pem');
  root.openssl('ca', '-config', 'ca.cnf', '-revoke', revokedCa.file('ca.pem'));
  root.openssl('ca', '-config', 'ca.cnf', '-gencrl', '-out', 'arl.pem');
});

afterAll(() => {
  for (const pki of [root, issuing, revokedCa]) pki.remove();
});

describe('two-tier PKI: the root as the only anchor', () => {
  it('the issuing CA from the signature, its CRL checked with its key', () => {
    const trust = TrustStore.fromFiles([root.file('ca.pem')], [issuing.file('crl.pem')]);
    const ok = verify(sign(issuing, 'alice'), ALICE, trust);
    expect(ok).toMatchObject({ ok: true, signer: { email: ALICE } });
    expect(verify(sign(issuing, 'carol'), CAROL, trust)).toMatchObject({ ok: false, code: 'SMIME_SIGNER_REVOKED' });
  });

  it("the root's CRL revokes an issuing CA; without it, CA certificates are not revocation-checked", () => {
    const withArl = TrustStore.fromFiles([root.file('ca.pem')], [issuing.file('crl.pem'), revokedCa.file('crl.pem'), root.file('arl.pem')]);
    expect(verify(sign(revokedCa, 'dan'), DAN, withArl)).toMatchObject({ ok: false, code: 'SMIME_SIGNER_REVOKED' });
    expect(verify(sign(issuing, 'alice'), ALICE, withArl).ok).toBe(true);
    const withoutArl = TrustStore.fromFiles([root.file('ca.pem')], [revokedCa.file('crl.pem')]);
    expect(verify(sign(revokedCa, 'dan'), DAN, withoutArl).ok).toBe(true);
  });

  it('an issuing CA configured as an anchor too is still checked against the root CRL', () => {
    const trust = TrustStore.fromFiles([root.file('ca.pem'), revokedCa.file('ca.pem')], [revokedCa.file('crl.pem'), root.file('arl.pem')]);
    expect(verify(sign(revokedCa, 'dan'), DAN, trust)).toMatchObject({ ok: false, code: 'SMIME_SIGNER_REVOKED' });
  });

  it("the signer's issuer needs a CRL; one its key did not sign does not count", () => {
    const none = TrustStore.fromFiles([root.file('ca.pem')], []);
    expect(verify(sign(issuing, 'alice'), ALICE, none)).toMatchObject({ ok: false, code: 'SMIME_SIGNER_NOT_TRUSTED' });
    // The issuing CA's name, another key's signature: loaded (its CA is not known yet), never trusted.
    const impostor = testPki('smime-impostor-');
    try {
      impostor.init({ name: 'Test Issuing CA' }); // same subject, another key
      impostor.openssl('ca', '-config', 'ca.cnf', '-gencrl', '-out', 'crl.pem');
      const trust = TrustStore.fromFiles([root.file('ca.pem')], [impostor.file('crl.pem')]);
      expect(trust.crls).toHaveLength(1);
      expect(verify(sign(issuing, 'alice'), ALICE, trust)).toMatchObject({ ok: false, code: 'SMIME_SIGNER_NOT_TRUSTED' });
      // A CRL naming an anchor must verify with it at load.
      const rootImpostor = testPki('smime-root-impostor-');
      try {
        rootImpostor.init({ name: 'Test Root CA' });
        rootImpostor.openssl('ca', '-config', 'ca.cnf', '-gencrl', '-out', 'crl.pem');
        expect(codeOf(() => TrustStore.fromFiles([root.file('ca.pem')], [rootImpostor.file('crl.pem')]))).toBe('CONFIG_INVALID');
      } finally {
        rootImpostor.remove();
      }
    } finally {
      impostor.remove();
    }
  });
});

describe('CRL files re-read when they change', () => {
  it('out of date → SMIME_CRL_OUT_OF_DATE (transient); a broken file or an older CRL keeps the last valid one; a new one is taken at once', () => {
    expect(ERROR_CATALOGUE.SMIME_CRL_OUT_OF_DATE.transient).toBe(true);
    const path = issuing.file('live-crl.pem');
    copyFileSync(issuing.file('stale-crl.pem'), path);
    const events: CrlEvent[] = [];
    const trust = TrustStore.fromFiles([root.file('ca.pem')], [path], { onCrlEvent: (e) => events.push(e), crlCheckMs: 0 });
    expect(trust.staleCrls()).toEqual([{ path, nextUpdate: expect.any(Date) }]);
    const der = sign(issuing, 'alice');
    expect(verify(der, ALICE, trust)).toMatchObject({ ok: false, code: 'SMIME_CRL_OUT_OF_DATE' });
    expect(verify(der, ALICE, trust)).toMatchObject({ ok: false, code: 'SMIME_CRL_OUT_OF_DATE' });
    expect(events).toEqual([{ kind: 'out-of-date', path, nextUpdate: expect.any(Date) }]); // told once

    writeFileSync(path, '-----BEGIN X509 CRL-----\nnot a CRL\n-----END X509 CRL-----\n');
    expect(verify(der, ALICE, trust)).toMatchObject({ ok: false, code: 'SMIME_CRL_OUT_OF_DATE' });
    expect(events.slice(1)).toEqual([{ kind: 'reload-failed', path, detail: expect.stringContaining('not a readable CRL') }]);
    expect(trust.crls).toHaveLength(1);

    copyFileSync(issuing.file('crl.pem'), path);
    expect(verify(der, ALICE, trust).ok).toBe(true);
    expect(events.at(-1)).toEqual({ kind: 'reloaded', path, crls: 1 });
    expect(verify(sign(issuing, 'carol'), CAROL, trust)).toMatchObject({ ok: false, code: 'SMIME_SIGNER_REVOKED' });
    expect(trust.staleCrls()).toEqual([]);

    // An older CRL put back (a failed download, a restored backup) does not replace the newer one.
    copyFileSync(issuing.file('stale-crl.pem'), path);
    expect(verify(der, ALICE, trust).ok).toBe(true);
    expect(events.at(-1)).toEqual({ kind: 'older-kept-newer', path });
    expect(trust.staleCrls()).toEqual([]);
  });
});
