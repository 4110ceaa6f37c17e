/**
 * `passerelle send FILE [--url URL] [--token T] [--timeout SECONDS]` (CONTRACT.md): submits a raw
 * mail (`POST /messages`, message/rfc822) or a CDA document (`POST /documents`) to a running
 * gateway, follows `GET /messages/{id}` to a final state and prints it as JSON.
 *
 * Exit codes: 0 delivered; 2 quarantined, failed or refused on submission; 1 usage, connection,
 * authentication error, or no final state before the timeout.
 */
import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';

export const SEND_USAGE = `Usage:
  passerelle send FILE [--url URL] [--token T] [--timeout SECONDS]
      Submits FILE to a running gateway and prints the outcome (GET /messages/{id}) as JSON.
      A mail (.eml, or headers then a blank line) goes to POST /messages, a CDA (XML) to
      POST /documents. URL defaults to http://127.0.0.1:8080; the token to $PASSERELLE_TOKEN;
      the timeout to 60 s. Exit 0 delivered, 2 quarantined/failed/refused, 1 otherwise.`;

const DEFAULT_URL = 'http://127.0.0.1:8080';
const FINAL = new Set(['delivered', 'quarantined', 'failed']);
const REQUEST_TIMEOUT_MS = 30_000;

export interface SendIo {
  stdout(text: string): void;
  stderr(text: string): void;
  env: NodeJS.ProcessEnv;
}
const processIo: SendIo = { stdout: (t) => process.stdout.write(t), stderr: (t) => process.stderr.write(t), env: process.env };

export type Submission = { path: '/messages'; contentType: 'message/rfc822' } | { path: '/documents'; contentType: 'application/hl7-cda+xml' };

/**
 * What the bytes are. XML first (after a UTF-8 BOM and white space, XML 1.0 §2.8 allows nothing
 * else before the prolog); then a mail: RFC 5322 §2.2 header fields — a name of printable
 * characters but ":" and space, then ":" — up to the first empty line (§2.1).
 */
export function classify(file: string, bytes: Buffer): Submission | undefined {
  const head = bytes.subarray(0, 64 * 1024).toString('latin1').replace(/^\xef\xbb\xbf/, '');
  if (/^\s*</.test(head)) return { path: '/documents', contentType: 'application/hl7-cda+xml' };
  const mail = { path: '/messages', contentType: 'message/rfc822' } as const;
  if (/\.eml$/i.test(file)) return mail;
  const end = head.search(/\r?\n\r?\n/);
  if (end <= 0) return undefined;
  const lines = head.slice(0, end).split(/\r?\n/);
  const field = /^[\x21-\x39\x3b-\x7e]+:/;
  return lines.every((l, i) => field.test(l) || (i > 0 && /^[ \t]/.test(l))) ? mail : undefined;
}

class CliError extends Error {}

/** The cause code of a fetch failure (ECONNREFUSED…), never the URL's credentials or the body. */
function networkReason(err: unknown): string {
  const cause = (err as { cause?: { code?: string; message?: string } }).cause;
  if ((err as Error).name === 'TimeoutError') return 'timed out';
  return cause?.code ?? cause?.message ?? (err as Error).message;
}

export async function sendCommand(args: string[], io: SendIo = processIo): Promise<number> {
  const usage = (problem: string): number => {
    io.stderr(`passerelle send: ${problem}\n${SEND_USAGE}\n`);
    return 1;
  };
  let parsed;
  try {
    parsed = parseArgs({
      args, allowPositionals: true, strict: true,
      options: { url: { type: 'string' }, token: { type: 'string' }, timeout: { type: 'string' } },
    });
  } catch (err) {
    return usage((err as Error).message);
  }
  const [file, ...extra] = parsed.positionals;
  if (!file || extra.length) return usage('exactly one FILE');
  const token = parsed.values.token ?? io.env.PASSERELLE_TOKEN;
  if (!token) return usage('no token: --token T or PASSERELLE_TOKEN');
  const timeoutS = parsed.values.timeout === undefined ? 60 : Number(parsed.values.timeout);
  if (!Number.isFinite(timeoutS) || timeoutS <= 0) return usage('--timeout takes a positive number of seconds');
  let base: URL;
  try {
    base = new URL(parsed.values.url ?? DEFAULT_URL);
    if (base.protocol !== 'http:' && base.protocol !== 'https:') throw new Error('not http');
  } catch {
    return usage('--url must be an http(s) URL');
  }
  const url = (path: string): string => `${base.href.replace(/\/$/, '')}${path}`;

  let bytes: Buffer;
  try {
    bytes = await readFile(file);
  } catch (err) {
    return usage(`cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`);
  }
  const submission = classify(file, bytes);
  if (!submission) return usage(`${file} is neither a mail (header fields, then a blank line) nor an XML document`);

  const auth = { authorization: `Bearer ${token}` };
  try {
    const posted = await call(url(submission.path), { method: 'POST', headers: { ...auth, 'content-type': submission.contentType }, body: bytes });
    const body = await posted.text();
    if (posted.status !== 202) {
      io.stdout(`${pretty(body)}\n`);
      // Auth and routing mistakes are the caller's to fix (1); anything else 4xx is a verdict on the input (2).
      if ([401, 403, 404].includes(posted.status) || posted.status >= 500) {
        io.stderr(`passerelle send: POST ${submission.path} answered ${posted.status}\n`);
        return 1;
      }
      io.stderr(`passerelle send: refused (${posted.status})\n`);
      return 2;
    }
    const { id } = JSON.parse(body) as { id?: unknown };
    if (typeof id !== 'string' || !/^[0-9A-Za-z-]{1,64}$/.test(id)) throw new CliError('the gateway answered 202 without an entry id');
    io.stderr(`passerelle send: accepted as ${id}, waiting for a final state\n`);

    const deadline = Date.now() + timeoutS * 1000;
    let wait = 100;
    for (;;) {
      const res = await call(url(`/messages/${id}`), { headers: auth });
      const text = await res.text();
      if (res.status !== 200) throw new CliError(`GET /messages/${id} answered ${res.status}`);
      const status = JSON.parse(text) as { state?: string };
      if (status.state && FINAL.has(status.state)) {
        io.stdout(`${JSON.stringify(status, null, 2)}\n`);
        return status.state === 'delivered' ? 0 : 2;
      }
      if (Date.now() >= deadline) {
        io.stdout(`${JSON.stringify(status, null, 2)}\n`);
        throw new CliError(`no final state after ${timeoutS} s (still ${status.state ?? 'unknown'})`);
      }
      await new Promise((r) => setTimeout(r, Math.min(wait, Math.max(0, deadline - Date.now()))));
      wait = Math.min(wait * 2, 1000);
    }
  } catch (err) {
    const reason = err instanceof CliError ? err.message
      : err instanceof SyntaxError ? 'the gateway answered something that is not JSON'
      : `cannot reach ${base.origin}: ${networkReason(err)}`;
    io.stderr(`passerelle send: ${reason}\n`);
    return 1;
  }
}

async function call(target: string, init: RequestInit): Promise<Response> {
  return fetch(target, { ...init, signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) });
}

function pretty(text: string): string {
  try {
    return JSON.stringify(JSON.parse(text), null, 2);
  } catch {
    return text;
  }
}
