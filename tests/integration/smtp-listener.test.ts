/**
 * The SMTP door against real clients on loopback: nodemailer over STARTTLS (certificates from the
 * development PKI) and a raw socket for what a polite client never sends. The journal is the
 * real SqliteJournal, except where its failure is the point.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { createTransport, type Transporter } from 'nodemailer';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openJournal } from '../../adapters/journal/open.js';
import type { Journal } from '../../adapters/journal/port.js';
import { silentLogger } from '../../gateway/log.js';
import { createSmtpListener, headerValue, type SmtpListener } from '../../gateway/mail/smtp-listener.js';
import { initDevPki, type DevPkiFiles } from '../../gateway/pki/dev-pki.js';
import { ControlledJournal } from '../support/controlled-journal.js';
import { REPO_ROOT } from '../support/corpus.js';

const run = promisify(execFile);
// The test drives collections itself (see peakRssGrowth); the flag must be set before a context asks for gc.
setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

const dir = mkdtempSync(join(tmpdir(), 'passerelle-smtp-'));
let pki: DevPkiFiles;
let journal: Journal;
const listeners: SmtpListener[] = [];
const journals: Journal[] = [];

beforeAll(async () => {
  ({ files: pki } = await initDevPki(join(dir, 'pki')));
  journal = await openJournal(`sqlite:${join(dir, 'j.db')}`);
  journals.push(journal);
});
afterAll(async () => {
  for (const l of listeners) await l.close();
  for (const j of journals) await j.close();
  rmSync(dir, { recursive: true, force: true });
});

const tlsFiles = (): { key: Buffer; cert: Buffer } => ({ key: readFileSync(pki.gateway.key), cert: readFileSync(pki.gateway.certificate) });

async function startListener(options: { journal: Journal; maxBytes?: number; maxBufferedBytes?: number; tls?: boolean; onAppended?: () => void }): Promise<number> {
  const listener = createSmtpListener({
    journal: options.journal, domains: ['passerelle.test', 'Autre.Example'], maxBytes: options.maxBytes ?? 10 * 1024 * 1024,
    ...(options.maxBufferedBytes ? { maxBufferedBytes: options.maxBufferedBytes } : {}),
    ...(options.tls === false ? {} : { tls: tlsFiles() }),
    onAppended: options.onAppended ?? (() => undefined), log: silentLogger, name: 'mx.passerelle.test', closeTimeoutMs: 500,
  });
  listeners.push(listener);
  return listener.listen(0, '127.0.0.1');
}

function transport(port: number): Transporter {
  return createTransport({
    host: '127.0.0.1', port, secure: false, requireTLS: true, name: 'mta.hopital.test',
    tls: { ca: [readFileSync(pki.ca.certificate)], servername: 'localhost' },
    connectionTimeout: 5_000, greetingTimeout: 5_000, socketTimeout: 30_000,
  });
}

const MESSAGE = [
  'From: Dr A <sender1@hopital.test>',
  'To: bal@passerelle.test, autre@autre.example',
  'Subject: XDM/1.0/DDM+CR',
  'Message-ID: <abc.123@hopital.test>',
  'MIME-Version: 1.0',
  'Content-Type: text/plain; charset=utf-8',
  '',
  'Corps du message.',
  '.point en debut de ligne',
  '',
].join('\r\n');

type SmtpError = Error & { responseCode?: number; response?: string; code?: string };
async function rejection(p: Promise<unknown>): Promise<SmtpError> {
  try {
    await p;
  } catch (err) {
    return err as SmtpError;
  }
  throw new Error('expected the send to be refused');
}

/** A line-oriented SMTP client on a raw socket: sends anything, reads whole (multi-line) replies. */
class RawClient {
  private buffer = '';
  private waiters: (() => void)[] = [];
  closed = false;
  private constructor(readonly socket: Socket) {
    socket.on('data', (d: Buffer) => {
      this.buffer += d.toString('latin1');
      this.wake();
    });
    socket.on('close', () => {
      this.closed = true;
      this.wake();
    });
    socket.on('error', () => undefined);
  }
  private wake(): void {
    for (const w of this.waiters.splice(0)) w();
  }
  static async open(port: number): Promise<RawClient> {
    const socket = connect(port, '127.0.0.1');
    await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
    const c = new RawClient(socket);
    await c.reply();
    return c;
  }
  /** The next complete reply ("NNN-…" lines then "NNN …"), or '' once the server closed. */
  async reply(timeoutMs = 5_000): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const m = /^(?:\d{3}-[^\n]*\n)*\d{3}(?: [^\n]*)?\n/.exec(this.buffer);
      if (m) {
        this.buffer = this.buffer.slice(m[0].length);
        return m[0];
      }
      if (this.closed) return '';
      if (Date.now() > deadline) throw new Error(`no reply; buffer: ${JSON.stringify(this.buffer.slice(0, 200))}`);
      await new Promise<void>((resolve) => {
        this.waiters.push(resolve);
        setTimeout(resolve, 50);
      });
    }
  }
  async command(line: string | Buffer): Promise<string> {
    this.write(line);
    return this.reply();
  }
  /** Sends without waiting for the reply. */
  write(line: string | Buffer): void {
    this.socket.write(typeof line === 'string' ? `${line}\r\n` : line);
  }
  end(): void {
    this.socket.destroy();
  }
}

/**
 * nodemailer in a child process, streaming `total` bytes of body it generates on the fly (one
 * reused chunk: the client holds next to nothing either). Prints the outcome as JSON.
 */
const BIG_CLIENT = `
import { createRequire } from 'node:module';
import { readFileSync } from 'node:fs';
import { Readable } from 'node:stream';
const [pkg, port, ca, total] = process.argv.slice(2);
const { createTransport } = createRequire(pkg)('nodemailer');
const chunk = Buffer.from(('A'.repeat(76) + '\\r\\n').repeat(1024));
let sent = 0;
const raw = new Readable({ read() {
  if (sent === 0) this.push(Buffer.from('From: <sender1@hopital.test>\\r\\nSubject: big\\r\\n\\r\\n'));
  if (sent >= Number(total)) { this.push(null); return; }
  sent += chunk.length;
  this.push(chunk);
} });
const t = createTransport({ host: '127.0.0.1', port: Number(port), requireTLS: true, tls: { ca: [readFileSync(ca)], servername: 'localhost' } });
t.sendMail({ envelope: { from: 'sender1@hopital.test', to: ['bal@passerelle.test'] }, raw }).then(
  (info) => console.log(JSON.stringify({ sent, responseCode: 250, response: info.response })),
  (err) => console.log(JSON.stringify({ sent, responseCode: err.responseCode, response: err.response, error: err.code })),
);
`;

/**
 * Peak RSS growth of this process while `fn` runs. Collections are forced every 10 ms: without
 * them V8 lets tens of MB of dead socket buffers pile up (a plain TLS server discarding 50 MB
 * grows by about 30 MB), which would hide the difference between streaming and holding.
 */
async function peakRssGrowth<T>(fn: () => Promise<T>): Promise<{ result: T; growth: number }> {
  gc();
  const baseline = process.memoryUsage.rss();
  let peak = baseline;
  const collector = setInterval(gc, 10);
  const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage.rss())), 5);
  try {
    const result = await fn();
    peak = Math.max(peak, process.memoryUsage.rss());
    return { result, growth: peak - baseline };
  } finally {
    clearInterval(collector);
    clearInterval(sampler);
  }
}

async function bigClient(port: number, total: number): Promise<{ sent: number; responseCode?: number; response?: string }> {
  const script = join(dir, 'big-client.mjs');
  writeFileSync(script, BIG_CLIENT);
  const { stdout } = await run(process.execPath, [script, join(REPO_ROOT, 'package.json'), String(port), pki.ca.certificate, String(total)], { timeout: 60_000 });
  return JSON.parse(stdout) as { sent: number; responseCode?: number; response?: string };
}

describe('SMTP listener', () => {
  it('accepts over STARTTLS, answers 250 only after the journal committed, one entry for several recipients', async () => {
    const watched = new ControlledJournal(journal);
    let woken = 0;
    const port = await startListener({ journal: watched.journal, onAppended: () => woken++ });
    watched.hold();
    let settled = false;
    const sending = transport(port).sendMail({
      envelope: { from: 'sender1@hopital.test', to: ['bal@passerelle.test', 'Other@PASSERELLE.TEST', 'x@autre.example'] },
      raw: MESSAGE,
    }).finally(() => (settled = true));
    // The message is in, the commit is held: no 250 may have been sent.
    for (let i = 0; i < 200 && watched.appendCalls === 0; i++) await new Promise((r) => setTimeout(r, 10));
    expect(watched.appendCalls).toBe(1);
    await new Promise((r) => setTimeout(r, 200));
    expect(settled).toBe(false);
    watched.release();
    const info = await sending;

    const id = /^250 2\.0\.0 Ok: queued as ([0-9a-f-]{36})$/.exec((info.response ?? '').trim())?.[1];
    expect(id).toBeDefined();
    expect(watched.committed.has(id ?? '')).toBe(true);
    expect(woken).toBe(1);
    expect(info.accepted).toHaveLength(3);

    // Durable: another connection to the same SQLite file sees it.
    const reader = await openJournal(`sqlite:${join(dir, 'j.db')}`);
    journals.push(reader);
    const entry = await reader.get(id ?? '');
    expect(entry).toMatchObject({ kind: 'message', door: 'smtp', submitter: 'sender1@hopital.test', contentType: 'message/rfc822', state: 'received' });
    expect(entry?.meta).toMatchObject({
      mailFrom: 'sender1@hopital.test',
      rcptTo: ['bal@passerelle.test', 'Other@passerelle.test', 'x@autre.example'], // smtp-server lower-cases domains
      remoteAddress: '127.0.0.1', helo: 'mta.hopital.test', tls: true, messageId: '<abc.123@hopital.test>',
    });
    expect(JSON.stringify(entry?.meta)).not.toContain('Corps');
    const raw = (await reader.raw(id ?? ''))?.toString('latin1') ?? '';
    // RFC 5321 §4.4 trace fields first, then the message as sent (dot-stuffing undone).
    expect(raw.startsWith('Return-Path: <sender1@hopital.test>\r\nReceived: from mta.hopital.test ([127.0.0.1])\r\n\tby mx.passerelle.test with ESMTPS id ')).toBe(true);
    expect(raw.slice(Number(entry?.meta.traceBytes))).toBe(MESSAGE);
    expect((await reader.list({ limit: 50 })).filter((e) => e.door === 'smtp' && e.meta.messageId === '<abc.123@hopital.test>')).toHaveLength(1);
  });

  it('refuses recipients outside its domains with 550 5.1.1, and keeps the others', async () => {
    const port = await startListener({ journal });
    const only = await rejection(transport(port).sendMail({ envelope: { from: 'sender1@hopital.test', to: ['bal@ailleurs.test'] }, raw: MESSAGE }));
    expect(only.responseCode).toBe(550);
    expect(only.response).toMatch(/^550 5\.1\.1 /);
    const mixed = await transport(port).sendMail({ envelope: { from: 'sender1@hopital.test', to: ['bal@passerelle.test', 'bal@passerelle.test.evil', 'passerelle.test@evil.test'] }, raw: MESSAGE });
    expect(mixed.accepted).toEqual(['bal@passerelle.test']);
    expect(mixed.rejected).toHaveLength(2);
    const id = /queued as (\S+)/.exec(mixed.response ?? '')?.[1] ?? '';
    expect((await journal.get(id))?.meta.rcptTo).toEqual(['bal@passerelle.test']);
  });

  it('answers 451 4.3.0 when the journal cannot commit, and stores nothing', async () => {
    const failing = new Proxy({} as Journal, {
      get: (_t, prop) => (prop === 'append' ? () => Promise.reject(new Error('disk I/O error')) : () => Promise.reject(new Error('unused'))),
    });
    const port = await startListener({ journal: failing });
    const err = await rejection(transport(port).sendMail({ envelope: { from: 'sender1@hopital.test', to: ['bal@passerelle.test'] }, raw: MESSAGE }));
    expect(err.responseCode).toBe(451);
    expect(err.response).toMatch(/^451 4\.3\.0 /);
  });

  it('refuses a 50 MB message with 552 while it streams, without holding it in memory', async () => {
    const maxBytes = 1024 * 1024;
    const watched = new ControlledJournal(journal);
    const port = await startListener({ journal: watched.journal, maxBytes });
    const ehlo = await RawClient.open(port);
    expect(await ehlo.command('EHLO probe.test')).toMatch(new RegExp(`250[- ]SIZE ${maxBytes}\\r?\\n`));
    // RFC 1870 §6.1: a declared size over the limit is refused at MAIL FROM.
    expect(await ehlo.command(`MAIL FROM:<sender1@hopital.test> SIZE=${maxBytes + 1}`)).toMatch(/^552 /);
    ehlo.end();

    // The client runs in its own process so that this process's RSS is the listener's alone. It
    // streams 50 MB without declaring the size (a stream of unknown length): the listener counts.
    const total = 50 * 1024 * 1024;
    const { result, growth } = await peakRssGrowth(() => bigClient(port, total));
    expect(result.sent).toBeGreaterThanOrEqual(total); // the whole message did cross the wire
    expect(result.responseCode).toBe(552);
    expect(result.response).toMatch(/^552 5\.3\.4 /);
    // Holding the message would cost its 50 MB at least; what is allowed here is the 1 MB limit,
    // socket and TLS buffers, and garbage between two collections.
    expect(growth).toBeLessThan(total * 0.4);
    expect(watched.appendCalls).toBe(0);

    // A message just under the limit goes through.
    const small = Buffer.concat([Buffer.from('Subject: ok\r\n\r\n'), Buffer.alloc(maxBytes - 1024, 'b')]);
    const ok = await transport(port).sendMail({ envelope: { from: 'sender1@hopital.test', to: ['bal@passerelle.test'] }, raw: small });
    expect(ok.response).toMatch(/^250 2\.0\.0 /);
  });

  it('defers with 452 4.3.1 a message that would pass the memory held for all sessions, and takes it once there is room', async () => {
    const watched = new ControlledJournal(journal);
    const port = await startListener({ journal: watched.journal, tls: false, maxBytes: 400_000, maxBufferedBytes: 500_000 });
    const body = (kb: number): Buffer => Buffer.from(`From: <sender1@hopital.test>\r\nSubject: lab\r\n\r\n${`${'A'.repeat(76)}\r\n`.repeat(Math.ceil((kb * 1024) / 78))}.\r\n`);
    const open = async (size?: number): Promise<{ c: RawClient; mail: string }> => {
      const c = await RawClient.open(port);
      await c.command('EHLO mta.hopital.test');
      return { c, mail: await c.command(`MAIL FROM:<sender1@hopital.test>${size ? ` SIZE=${size}` : ''}`) };
    };
    const transaction = async (c: RawClient, data: Buffer): Promise<string> => {
      expect(await c.command('RCPT TO:<bal@passerelle.test>')).toMatch(/^250 /);
      expect(await c.command('DATA')).toMatch(/^354 /);
      return c.command(data);
    };

    // A ≈ 300 KB message whose commit is held: its bytes stay in memory.
    watched.hold();
    const a = await open();
    expect(await a.c.command('RCPT TO:<bal@passerelle.test>')).toMatch(/^250 /);
    expect(await a.c.command('DATA')).toMatch(/^354 /);
    a.c.write(body(300));
    for (let i = 0; i < 200 && watched.appendCalls === 0; i++) await new Promise((r) => setTimeout(r, 10));
    expect(watched.appendCalls).toBe(1);

    // RFC 1870 §6.2: a declared size that does not fit now is deferred at MAIL FROM…
    const b = await open(250_000);
    expect(b.mail).toMatch(/^452 4\.3\.1 /);
    // …and an undeclared one once its bytes pass the budget; the connection stays usable.
    expect(await b.c.command('RSET')).toMatch(/^250 /);
    expect(await b.c.command('MAIL FROM:<sender1@hopital.test>')).toMatch(/^250 /);
    expect(await transaction(b.c, body(250))).toMatch(/^452 4\.3\.1 /);
    expect(watched.appendCalls).toBe(1);

    // The held message is committed: room again, and the sender's retry goes through.
    watched.release();
    expect(await a.c.reply()).toMatch(/^250 2\.0\.0 Ok: queued as /);
    expect(await b.c.command('MAIL FROM:<sender1@hopital.test> SIZE=256000')).toMatch(/^250 /);
    expect(await transaction(b.c, body(250))).toMatch(/^250 2\.0\.0 Ok: queued as /);
    expect(watched.committed.size).toBe(2);
    a.c.end();
    b.c.end();
  });

  it('the RSS measurement does see a 50 MB message that is legitimately held (control)', async () => {
    const port = await startListener({ journal, maxBytes: 64 * 1024 * 1024 });
    const total = 50 * 1024 * 1024;
    const { result, growth } = await peakRssGrowth(() => bigClient(port, total));
    expect(result.responseCode).toBe(250);
    expect(growth).toBeGreaterThan(total * 0.8);
  });

  it('without a certificate offers no STARTTLS and no AUTH; with one, STARTTLS only', async () => {
    const plainPort = await startListener({ journal, tls: false });
    const plain = await RawClient.open(plainPort);
    const features = await plain.command('EHLO probe.test');
    expect(features).not.toMatch(/STARTTLS/);
    expect(features).not.toMatch(/AUTH/);
    expect(features).toMatch(/SIZE/);
    plain.end();
    const tlsPort = await startListener({ journal });
    const tls = await RawClient.open(tlsPort);
    const tlsFeatures = await tls.command('EHLO probe.test');
    expect(tlsFeatures).toMatch(/STARTTLS/);
    expect(tlsFeatures).not.toMatch(/AUTH/);
    tls.end();
  });

  it('survives hostile clients: garbage, overlong lines, NULs, broken TLS, a message cut off', async () => {
    const watched = new ControlledJournal(journal);
    const port = await startListener({ journal: watched.journal });

    const c1 = await RawClient.open(port);
    expect(await c1.command('DATA')).toMatch(/^503 /);
    expect(await c1.command('HELO')).toMatch(/^501 /);
    expect(await c1.command('EHLO x')).toMatch(/^250/);
    expect(await c1.command('RCPT TO:<bal@passerelle.test>')).toMatch(/^503 /);
    expect(await c1.command('MAIL FROM:<<<@@>>>')).toMatch(/^5\d\d /);
    expect(await c1.command('MAIL FROM:<>')).toMatch(/^250 /);
    expect(await c1.command('RCPT TO:<bal@>')).toMatch(/^5\d\d /);
    expect(await c1.command('RCPT TO:<@passerelle.test>')).toMatch(/^5\d\d /);
    expect(await c1.command(Buffer.from([0x52, 0x43, 0x50, 0x54, 0x00, 0xff, 0xfe, 0x0d, 0x0a]))).toMatch(/^5\d\d /);
    expect(await c1.command('XYZZY \u00e9\u00e9')).toMatch(/^5\d\d /);
    c1.end();

    const c2 = await RawClient.open(port);
    c2.socket.write(`EHLO ${'a'.repeat(100_000)}\r\n`);
    expect(await c2.reply()).toMatch(/^([45]\d\d |$)/); // refused (421 and closed), or dropped
    c2.end();

    // STARTTLS, then bytes that are not a TLS handshake.
    const c3 = await RawClient.open(port);
    await c3.command('EHLO x');
    expect(await c3.command('STARTTLS')).toMatch(/^220 /);
    c3.socket.write(Buffer.from('this is not a ClientHello\r\n\r\n\x00\x01\x02'));
    await new Promise((r) => setTimeout(r, 100));
    c3.end();

    // A message cut off before its final dot is not stored (RFC 5321 §4.1.1.4).
    const c4 = await RawClient.open(port);
    await c4.command('EHLO x');
    await c4.command('MAIL FROM:<sender1@hopital.test>');
    await c4.command('RCPT TO:<bal@passerelle.test>');
    expect(await c4.command('DATA')).toMatch(/^354 /);
    c4.socket.write('Subject: cut\r\n\r\nhalf a message');
    await new Promise((r) => setTimeout(r, 50));
    c4.end();

    // A null reverse-path (a DSN or an MDN coming back) is accepted, pipelined, submitter "<>".
    const c5 = await RawClient.open(port);
    await c5.command('EHLO x');
    c5.socket.write('MAIL FROM:<>\r\nRCPT TO:<Postmaster>\r\nDATA\r\n');
    expect(await c5.reply()).toMatch(/^250 /);
    expect(await c5.reply()).toMatch(/^250 /);
    expect(await c5.reply()).toMatch(/^354 /);
    expect(await c5.command('Subject: bounce\r\n\r\n..dot\r\n.')).toMatch(/^250 2\.0\.0 Ok: queued as /);
    expect(await c5.command('QUIT')).toMatch(/^221 /);
    c5.end();

    expect(watched.appendCalls).toBe(1);
    const [id] = [...watched.committed];
    const entry = await journal.get(id ?? '');
    expect(entry?.submitter).toBe('<>');
    expect((await journal.raw(id ?? ''))?.toString('latin1').endsWith('Subject: bounce\r\n\r\n.dot\r\n')).toBe(true);

    // Still serving.
    const info = await transport(port).sendMail({ envelope: { from: 'sender2@hopital.test', to: ['bal@passerelle.test'] }, raw: MESSAGE });
    expect(info.response).toMatch(/^250 2\.0\.0 /);
  });

  it('close() stops listening; a second close is harmless', async () => {
    const listener = createSmtpListener({ journal, domains: ['passerelle.test'], maxBytes: 1000, onAppended: () => undefined, log: silentLogger, closeTimeoutMs: 200 });
    const port = await listener.listen(0, '127.0.0.1');
    await listener.close();
    await listener.close();
    await expect(RawClient.open(port)).rejects.toThrow();
  });
});

describe('headerValue', () => {
  it('reads an unfolded field from the header section only, case-insensitively', () => {
    const head = Buffer.from('X: 1\r\nmessage-id:\r\n <a@b>\r\nSubject: s\r\n\r\nMessage-ID: <body@x>\r\n');
    expect(headerValue(head, 'Message-ID')).toBe('<a@b>');
    expect(headerValue(Buffer.from('Subject: s\r\n\r\nMessage-ID: <body@x>\r\n'), 'message-id')).toBeUndefined();
    expect(headerValue(Buffer.from('Message-ID: <a\u0000b@c>\n\n'), 'message-id')).toBe('<a b@c>');
  });
});
