/**
 * `passerelle pki init DIR [--force]` (CONTRACT.md): writes the development PKI and prints the
 * files. `passerelle pki revoke DIR CERT [--reason R]` adds a certificate to the CA's CRL.
 * Exit 1 on a usage error or when DIR already holds a CA.
 */
import { parseArgs } from 'node:util';
import { CRL_REASONS, initDevPki, listFiles, PkiExistsError, revoke, type CrlReason } from '../pki/dev-pki.js';

export const PKI_USAGE = `Usage:
  passerelle pki init DIR [--force]
      Development PKI in DIR: CA (ca.pem, ca.key.pem), its CRL (ca.crl.pem), the gateway's
      certificate and key (gateway.pem, gateway.key.pem), two senders (sender1.pem, sender2.pem…).
  passerelle pki revoke DIR CERT [--reason ${Object.keys(CRL_REASONS).join('|')}]
      Revokes CERT (issued by DIR's CA) and re-signs DIR/ca.crl.pem.`;

export interface Io { stdout(text: string): void; stderr(text: string): void }
const processIo: Io = { stdout: (t) => process.stdout.write(t), stderr: (t) => process.stderr.write(t) };

export async function pkiCommand(args: string[], io: Io = processIo): Promise<number> {
  const usage = (problem: string): number => {
    io.stderr(`passerelle pki: ${problem}\n${PKI_USAGE}\n`);
    return 1;
  };
  let parsed;
  try {
    parsed = parseArgs({ args, allowPositionals: true, strict: true, options: { force: { type: 'boolean' }, reason: { type: 'string' } } });
  } catch (err) {
    return usage((err as Error).message);
  }
  const [action, dir, cert, ...extra] = parsed.positionals;
  try {
    if (action === 'init') {
      if (!dir || cert !== undefined) return usage('init takes exactly one directory');
      const { files } = await initDevPki(dir, { force: parsed.values.force === true });
      io.stdout(`${listFiles(files).join('\n')}\n`);
      return 0;
    }
    if (action === 'revoke') {
      if (!dir || !cert || extra.length) return usage('revoke takes a directory and a certificate file');
      const reason = parsed.values.reason;
      if (reason !== undefined && !Object.hasOwn(CRL_REASONS, reason)) return usage(`unknown reason "${reason}"`);
      const done = await revoke(dir, cert, reason ? { reason: reason as CrlReason } : {});
      io.stdout(`${done.alreadyRevoked ? 'already revoked' : 'revoked'} serial ${done.serial}\n${done.crl}\n`);
      return 0;
    }
    return usage(action ? `unknown action "${action}"` : 'no action');
  } catch (err) {
    if (err instanceof PkiExistsError) {
      io.stderr(`passerelle pki: ${err.message} (--force replaces it)\n`);
      return 1;
    }
    const e = err as NodeJS.ErrnoException;
    io.stderr(`passerelle pki: ${e.code ? `${e.code} ${e.path ?? ''}`.trim() : e.message}\n`);
    return 1;
  }
}
