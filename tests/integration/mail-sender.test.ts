/**
 * The nodemailer MailSender against a real SMTP server (smtp-server) on loopback playing the
 * relay: what arrives is captured and compared byte for byte with what was built, the envelope
 * included; relay refusals, timeouts and TLS failures come back as MailSendError.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import net, { type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SMTPServer, type SMTPServerError, type SMTPServerOptions } from 'smtp-server';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createNodemailerSender, type SmtpRelayOptions } from '../../adapters/smtp/nodemailer.js';
import { MailSendError, type MailSender } from '../../adapters/smtp/port.js';
import { buildMdn, readOriginalHeaders } from '../../gateway/mail/mdn.js';
import { headerValue, parseMessage } from '../../gateway/mail/mime.js';
import { rejection } from '../support/rejection.js';

const SENDER = 'serviceY@chb.mssante.fr';
const GATEWAY = 'serviceY_auto@chb.mssante.fr';

/** 8-bit text and lines a naive sender would break: a lone dot, a leading dot (RFC 5321 §4.5.2). */
const ORIGINAL = Buffer.from(
  [
    `Return-Path: <${SENDER}>`,
    `From: ${SENDER}`,
    `To: ${GATEWAY}`,
    'Message-ID: <orig-1@chb.mssante.fr>',
    'Subject: XDM/1.0/DDM+COMPTE RENDU DUPONT Jean 01/02/1960',
    `Disposition-Notification-To: ${SENDER}`,
    'MIME-Version: 1.0',
    'Content-Type: text/plain; charset=utf-8',
    'Content-Transfer-Encoding: 8bit',
    '',
    'Échographie ci-jointe.',
    '.',
    '.ligne qui commence par un point',
    '',
  ].join('\r\n'),
  'utf8',
);

function mdn(): { envelope: { from: string; to: string }; raw: Buffer } {
  const built = buildMdn({
    original: { headers: readOriginalHeaders(parseMessage(ORIGINAL)), raw: ORIGINAL },
    gateway: { address: GATEWAY, reportingUa: 'pfi.chb.mssante.fr; passerelle' },
    outcome: { ok: false, code: 'IDENTITY_AMBIGUOUS' },
  });
  if (built === undefined) throw new Error('an MDN is due');
  return built;
}

interface Captured {
  mailFrom: string | false;
  rcptTo: string[];
  raw: Buffer;
  secure: boolean;
  bodyType: string | undefined;
}

interface Relay {
  port: number;
  received: Captured[];
  server: SMTPServer;
}

const relays: Relay[] = [];
const senders: MailSender[] = [];

function smtpError(message: string, responseCode: number): SMTPServerError {
  return Object.assign(new Error(message), { responseCode });
}

/** A receiving relay on 127.0.0.1 that keeps every message it accepts. */
async function startRelay(options: Partial<SMTPServerOptions> = {}): Promise<Relay> {
  const received: Captured[] = [];
  const server = new SMTPServer({
    authOptional: true,
    logger: false,
    onData(stream, session, callback) {
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', () => {
        received.push({
          mailFrom: session.envelope.mailFrom === false ? false : session.envelope.mailFrom.address,
          rcptTo: session.envelope.rcptTo.map((r) => r.address),
          raw: Buffer.concat(chunks),
          secure: session.secure,
          bodyType: session.envelope.bodyType,
        });
        callback(null);
      });
    },
    ...options,
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const relay = { port: (server.server.address() as AddressInfo).port, received, server };
  relays.push(relay);
  return relay;
}

function sender(port: number, over: Partial<SmtpRelayOptions> = {}): MailSender {
  const s = createNodemailerSender({ host: '127.0.0.1', port, timeouts: { connectMs: 2000, greetingMs: 2000, socketMs: 5000 }, ...over });
  senders.push(s);
  return s;
}

afterEach(async () => {
  await Promise.all(senders.splice(0).map((s) => s.close()));
  await Promise.all(relays.splice(0).map((r) => new Promise<void>((resolve) => r.server.close(() => resolve()))));
});

describe('MailSender over nodemailer, plaintext relay', () => {
  it('delivers the exact bytes with the null reverse-path and the 8BITMIME body type', async () => {
    const relay = await startRelay({ disabledCommands: ['STARTTLS'] });
    const message = mdn();
    const result = await sender(relay.port).send(message.envelope, message.raw);

    expect(relay.received).toHaveLength(1);
    const got = relay.received[0] as Captured;
    expect(got.mailFrom).toBe('');
    expect(got.rcptTo).toEqual([SENDER]);
    expect(got.bodyType).toBe('8bitmime');
    expect(got.raw.equals(message.raw)).toBe(true);
    expect(result.response).toMatch(/^250\b/);
    expect(result.messageId).toBe(headerValue(parseMessage(message.raw), 'Message-ID'));

    // and what arrived reads as the MDN, the original inside unchanged, dotted lines included
    const root = parseMessage(got.raw);
    expect(root.contentType.params['report-type']).toBe('disposition-notification');
    expect(root.children[2]?.content.equals(ORIGINAL)).toBe(true);
  });

  it('uses the given envelope, not the header, and reports recipients the relay refused', async () => {
    const relay = await startRelay({
      disabledCommands: ['STARTTLS'],
      onRcptTo(address, _session, callback) {
        callback(address.address.startsWith('nobody') ? smtpError('5.1.1 no such mailbox', 550) : null);
      },
    });
    const message = mdn();
    const result = await sender(relay.port).send({ from: 'bounces@gw.example', to: ['archive@gw.example', 'nobody@gw.example'] }, message.raw);
    expect(relay.received[0]?.mailFrom).toBe('bounces@gw.example');
    expect(relay.received[0]?.rcptTo).toEqual(['archive@gw.example']);
    expect(result.rejected).toEqual(['nobody@gw.example']);
  });
});

describe('MailSender over nodemailer, STARTTLS', () => {
  let dir: string;
  let key: Buffer;
  let cert: Buffer;

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'relay-tls-'));
    execFileSync('/usr/bin/openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'relay.key', '-out', 'relay.pem', '-days', '2',
      '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1'], { cwd: dir, stdio: 'ignore' });
    key = readFileSync(join(dir, 'relay.key'));
    cert = readFileSync(join(dir, 'relay.pem'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('upgrades when the relay offers STARTTLS and its certificate is trusted', async () => {
    const relay = await startRelay({ key, cert });
    const message = mdn();
    await sender(relay.port, { tls: 'required', tlsOptions: { ca: cert } }).send(message.envelope, message.raw);
    expect(relay.received[0]?.secure).toBe(true);
    expect(relay.received[0]?.raw.equals(message.raw)).toBe(true);
  });

  it('refuses an untrusted relay certificate: transient, nothing delivered', async () => {
    const relay = await startRelay({ key, cert });
    const message = mdn();
    const err = await rejection(sender(relay.port).send(message.envelope, message.raw), MailSendError);
    expect(err.permanent).toBe(false);
    expect(err.code).toBe('SMTP_RELAY_UNAVAILABLE');
    expect(relay.received).toEqual([]);
  });

  it('with tls "required", refuses a relay that does not offer STARTTLS', async () => {
    const relay = await startRelay({ disabledCommands: ['STARTTLS'] });
    const message = mdn();
    const err = await rejection(sender(relay.port, { tls: 'required' }).send(message.envelope, message.raw), MailSendError);
    expect(err.permanent).toBe(false);
    expect(relay.received).toEqual([]);
  });
});

describe('MailSender failures', () => {
  it('a 5xx refusal is permanent and carries the reply code', async () => {
    const relay = await startRelay({
      disabledCommands: ['STARTTLS'],
      onRcptTo(_address, _session, callback) {
        callback(smtpError('5.7.1 relaying denied', 550));
      },
    });
    const message = mdn();
    const err = await rejection(sender(relay.port).send(message.envelope, message.raw), MailSendError);
    expect(err).toMatchObject({ permanent: true, smtpCode: 550, code: 'SMTP_RELAY_REJECTED' });
    expect(err.message).toContain(`127.0.0.1:${relay.port}`);
    expect(err.message).not.toContain('DUPONT');
  });

  it('a 4xx after DATA is transient', async () => {
    const relay = await startRelay({
      disabledCommands: ['STARTTLS'],
      onData(stream, _session, callback) {
        stream.resume();
        stream.on('end', () => callback(smtpError('4.3.0 try later', 451)));
      },
    });
    const message = mdn();
    const err = await rejection(sender(relay.port).send(message.envelope, message.raw), MailSendError);
    expect(err).toMatchObject({ permanent: false, smtpCode: 451 });
  });

  it('a refused connection is transient', async () => {
    const probe = net.createServer();
    await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
    const port = (probe.address() as AddressInfo).port;
    await new Promise<void>((resolve) => probe.close(() => resolve()));
    const message = mdn();
    const err = await rejection(sender(port).send(message.envelope, message.raw), MailSendError);
    expect(err).toMatchObject({ permanent: false, smtpCode: undefined });
  });

  it('a relay that never greets times out, transient', async () => {
    const sockets: net.Socket[] = [];
    const silent = net.createServer((s) => sockets.push(s));
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    try {
      const message = mdn();
      const err = await rejection(sender((silent.address() as AddressInfo).port, { timeouts: { greetingMs: 200 } }).send(message.envelope, message.raw), MailSendError);
      expect(err.permanent).toBe(false);
    } finally {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => silent.close(() => resolve()));
    }
  });
});
