/**
 * The S/MIME settings in effect: the configured ones, or — when the gateway has no identity of
 * its own — the development PKI under <dataDir>/pki, created on first start (CONTRACT.md,
 * "Setting up and running"), whose CA and CRL then also serve as trust anchor and CRL unless
 * others are configured.
 */
import { join } from 'node:path';
import type { Config } from '../config.js';
import { ensureDevPki } from '../pki/dev-pki.js';

export async function effectiveSmime(config: Readonly<Config>): Promise<{ smime: Config['smime']; createdPki: string | undefined }> {
  const smime = config.smime;
  if (smime.certificate && smime.privateKey) return { smime, createdPki: undefined };
  const dir = join(config.dataDir, 'pki');
  const { files, created } = await ensureDevPki(dir);
  return {
    smime: {
      ...smime,
      certificate: files.gateway.certificate,
      privateKey: files.gateway.key,
      trustAnchors: smime.trustAnchors.length ? smime.trustAnchors : [files.ca.certificate],
      crls: smime.crls.length ? smime.crls : [files.crl],
    },
    createdPki: created ? dir : undefined,
  };
}
