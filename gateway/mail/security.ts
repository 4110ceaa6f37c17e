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
import type { Logger } from '../log.js';
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

/** `log` hears of CRL files reloaded (or not) and of CRLs already out of date at start. */
export function loadMailSecurity(smime: Config['smime'], log?: Logger): MailSecurity {
  const identity = smime.certificate && smime.privateKey ? loadIdentity(smime.certificate, smime.privateKey) : undefined;
  const outOfDate = (file: string, nextUpdate: Date | undefined): void =>
    log?.warn('CRL out of date: mail signed under its CA waits for a current one', { file, nextUpdate: nextUpdate?.toISOString() });
  const trust = smime.trustAnchors.length
    ? TrustStore.fromFiles(smime.trustAnchors, smime.crls, {
      onCrlEvent: (e) => {
        if (e.kind === 'reloaded') log?.info('CRL file reloaded', { file: e.path, crls: e.crls });
        else if (e.kind === 'older-kept-newer') log?.warn('CRL file holds an older CRL than the one in use: the newer one kept', { file: e.path });
        else if (e.kind === 'reload-failed') log?.warn('CRL file not reloaded, its last valid CRLs kept', { file: e.path, detail: e.detail });
        else outOfDate(e.path, e.nextUpdate);
      },
    })
    : undefined;
  for (const stale of trust?.staleCrls() ?? []) outOfDate(stale.path, stale.nextUpdate);
  return { identity, trust, policy: { requireSignature: smime.requireSignature, requireEncryption: smime.requireEncryption, plainDomains: smime.plainDomains } };
}
