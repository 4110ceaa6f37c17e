/**
 * The gateway's S/MIME setting (CONTRACT.md `smime.*`) made ready for the pipeline: its own
 * identity (certificate + private key, to decrypt and to sign acknowledgements), the trust store
 * (anchors + CRLs) and the policy. Files that cannot be read are CONFIG_INVALID at start, not a
 * surprise on the first message.
 */
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { Config } from '../config.js';
import { PasserelleError } from '../errors.js';
import type { MailSecurity } from '../pipeline/mail-stages.js';
import { TrustStore, type Identity } from '../smime/index.js';

function read(path: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    throw new PasserelleError('CONFIG_INVALID', `smime: cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`);
  }
}

export function loadIdentity(certificate: string, privateKey: string): Identity {
  try {
    return { certificate: new X509Certificate(read(certificate)), privateKey: createPrivateKey(read(privateKey)) };
  } catch (err) {
    if (err instanceof PasserelleError) throw err;
    throw new PasserelleError('CONFIG_INVALID', `smime: ${certificate} / ${privateKey} is not a PEM certificate and private key`);
  }
}

export function loadMailSecurity(smime: Config['smime']): MailSecurity {
  const identity = smime.certificate && smime.privateKey ? loadIdentity(smime.certificate, smime.privateKey) : undefined;
  const trust = smime.trustAnchors.length ? TrustStore.fromFiles(smime.trustAnchors, smime.crls) : undefined;
  return { identity, trust, policy: { requireSignature: smime.requireSignature, requireEncryption: smime.requireEncryption, plainDomains: smime.plainDomains } };
}
