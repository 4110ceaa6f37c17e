/**
 * The `passerelle` command line. Each sub-command lives in its own file; this one dispatches and
 * turns usage mistakes into exit code 1 (exit 2 is reserved for unusable input, per CONTRACT.md).
 */
import { convertCommand } from './convert.js';
import { PKI_USAGE, pkiCommand } from './pki.js';
import { SEND_USAGE, sendCommand } from './send.js';
import { startCommand } from './start.js';

const USAGE = `Usage:
  passerelle convert FILE... [--out-dir DIR] [--report-dir DIR]
      CDA R2 → FHIR R4 document Bundle. One file: the Bundle on stdout. With --out-dir:
      DIR/<name>.json per input and one summary line per file. Exit 2 when any input is unusable
      (its OperationOutcome is written in place of the Bundle).
  passerelle start [--config FILE]
      The gateway server (HTTP, SMTP, IMAP, workers).
${PKI_USAGE.replace(/^Usage:\n/, '')}
${SEND_USAGE.replace(/^Usage:\n/, '')}
  passerelle help`;

export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'convert':
      return convertCommand(rest);
    case 'start':
      return startCommand(rest);
    case 'pki':
      return pkiCommand(rest);
    case 'send':
      return sendCommand(rest);
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      process.stdout.write(`${USAGE}\n`);
      return command === undefined ? 1 : 0;
    default:
      process.stderr.write(`passerelle: unknown command "${command}"\n${USAGE}\n`);
      return 1;
  }
}
