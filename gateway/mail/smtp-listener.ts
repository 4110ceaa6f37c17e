/**
 * The SMTP door (CONTRACT.md "SMTP"): mail for `smtp.domains` is journaled, and `250` is answered
 * only once the journal has committed it — the acceptance of RFC 5321 §6.1 ("it MUST NOT lose
 * the message") is the journal commit. What could not be stored gets a 4xx (the sender retries,
 * §4.2.5); what will never succeed (size, unknown recipient) a 5xx.
 *
 * No authentication: MSSanté operators relay to us over TLS (DOMAIN.md §2). STARTTLS (RFC 3207)
 * when a certificate is given, TLS ≥ 1.2.
 */
import { hostname } from 'node:os';
import { SMTPServer, type SMTPServerAddress, type SMTPServerDataStream, type SMTPServerSession } from 'smtp-server';
import type { AddressInfo } from 'node:net';
import type { Journal } from '../../adapters/journal/port.js';
import { ERROR_CATALOGUE } from '../errors.js';
import { errorFields, type Logger } from '../log.js';
import { MemoryBudget } from '../util/memory-budget.js';

export interface SmtpListenerDeps {
  journal: Journal;
  /** Recipient domains that are ours (compared case-insensitively, RFC 5321 §2.4). */
  domains: string[];
  /** Largest message accepted, in bytes (RFC 1870 SIZE). */
  maxBytes: number;
  /**
   * Bytes of incoming messages held in memory at once, all sessions together, until their
   * journal commit (default 256 MiB; never less than maxBytes). Beyond it a message is deferred
   * with 452 and the sender retries later (RFC 5321 §4.5.3.1.10, RFC 1870 §6.2).
   */
  maxBufferedBytes?: number;
  tls?: { key: Buffer; cert: Buffer };
  /** Wakes the local pipeline after a commit. */
  onAppended: () => void;
  log: Logger;
  /** Name in the greeting and in the Received field (default: the host name). */
  name?: string;
  /** How long close() lets open sessions finish before cutting them (default 5 s). */
  closeTimeoutMs?: number;
}

export interface SmtpListener {
  /** Resolves with the port actually bound (0 picks a free one). */
  listen(port: number, host: string): Promise<number>;
  close(): Promise<void>;
}

/**
 * RFC 5321 §4.5.3.1.8: a server MUST accept at least 100 recipients. Beyond that a 452 makes the
 * client send the rest in another transaction (smtp-server answers it).
 */
const MAX_RECIPIENTS = 100;
/** Where the Message-ID is looked for: the header section, bounded (RFC 5322 §2.1). */
const HEADER_SCAN_BYTES = 64 * 1024;

/**
 * One header field's value from the header section (RFC 5322 §2.2: up to the first empty line;
 * §2.2.3: folded lines unfolded), bounded and with control characters dropped: it goes to meta.
 */
export function headerValue(head: Buffer, fieldName: string): string | undefined {
  const text = head.toString('latin1');
  const end = text.search(/\r?\n\r?\n/);
  const lines = (end < 0 ? text : text.slice(0, end)).split(/\r?\n/);
  const wanted = `${fieldName.toLowerCase()}:`;
  for (let i = 0; i < lines.length; i++) {
    if (!(lines[i] ?? '').toLowerCase().startsWith(wanted)) continue;
    let value = (lines[i] ?? '').slice(wanted.length);
    for (let j = i + 1; j < lines.length && /^[ \t]/.test(lines[j] ?? ''); j++) value += lines[j];
    const clean = [...value].map((c) => (c < ' ' || c === '\x7f' ? ' ' : c)).join('').trim().slice(0, 998);
    return clean || undefined;
  }
  return undefined;
}

/** An error with the SMTP reply code and the RFC 3463 enhanced status code in its text. */
function reply(code: number, text: string): Error & { responseCode: number } {
  return Object.assign(new Error(text), { responseCode: code });
}

/** The domain of a mailbox (after the last @), lower-cased; undefined when there is none. */
function domainOf(address: string): string | undefined {
  const at = address.lastIndexOf('@');
  return at < 0 ? undefined : address.slice(at + 1).toLowerCase().replace(/^\[|\]$/g, '');
}

/** Only what is safe in a header field and a log line: the HELO argument is whatever the client sent. */
function token(value: string | undefined, max = 255): string {
  return (value ?? '').replace(/[^A-Za-z0-9.:_\-[\]]/g, '_').slice(0, max) || 'unknown';
}

/** RFC 5322 §3.3 date-time in UTC, "+0000" rather than the obsolete "GMT" (§4.3). */
function rfc5322Date(d: Date): string {
  return `${d.toUTCString().slice(0, 25)} +0000`;
}

/**
 * RFC 5321 §4.4: the server that delivers the message MUST insert a Return-Path (the envelope
 * sender, which the MDN rules compare with Disposition-Notification-To, DOMAIN.md §2) and every
 * server inserts a Received trace field. No "for <address>" clause: with several recipients it
 * would disclose them to each other (§7.2).
 */
function traceFields(session: SMTPServerSession, from: string, serverName: string, at: Date): Buffer {
  const helo = token(session.hostNameAppearsAs || undefined);
  const ip = token(session.remoteAddress);
  const remote = ip.includes(':') ? `IPv6:${ip}` : ip; // §4.1.3 address literals
  const protocol = token(session.transmissionType, 16); // RFC 3848: ESMTP, ESMTPS…
  // smtp-server has checked the address syntax; this only guarantees the field cannot be broken.
  const path = [...from].filter((c) => c > ' ' && c !== '<' && c !== '>' && c !== '\x7f').join('');
  return Buffer.from(
    `Return-Path: <${path}>\r\n` +
    `Received: from ${helo} ([${remote}])\r\n\tby ${token(serverName)} with ${protocol} id ${token(session.id)};\r\n\t${rfc5322Date(at)}\r\n`,
    'latin1',
  );
}

const DEFAULT_MAX_BUFFERED_BYTES = 256 * 1024 * 1024;
/** INTAKE_BUSY of the catalogue, with its RFC 3463 status: insufficient system storage. */
const INTAKE_BUSY = { code: ERROR_CATALOGUE.INTAKE_BUSY.smtp, text: '4.3.1 Insufficient system storage, try again later' };

export function createSmtpListener(deps: SmtpListenerDeps): SmtpListener {
  const { journal, log } = deps;
  const domains = new Set(deps.domains.map((d) => d.toLowerCase()));
  const serverName = deps.name ?? hostname();
  // Each message is held until its commit; the sum over sessions is what bounds memory
  // (maxClients × maxBytes would not), so a message that would pass it waits.
  const budget = new MemoryBudget(Math.max(deps.maxBufferedBytes ?? DEFAULT_MAX_BUFFERED_BYTES, deps.maxBytes));

  const onMailFrom = (address: SMTPServerAddress, session: SMTPServerSession, callback: (err?: Error | null) => void): void => {
    // RFC 1870 §6.2: a declared SIZE that cannot be taken now is a 452, not a 552.
    const declared = Number((address.args && address.args.SIZE) ?? NaN);
    if (Number.isFinite(declared) && declared <= deps.maxBytes && !budget.fits(declared)) {
      log.warn('smtp message deferred: memory budget', { session: session.id, declared, held: budget.used, budget: budget.limit, code: 'INTAKE_BUSY' });
      callback(reply(INTAKE_BUSY.code, INTAKE_BUSY.text));
      return;
    }
    callback();
  };

  const onRcptTo = (address: SMTPServerAddress, session: SMTPServerSession, callback: (err?: Error | null) => void): void => {
    try {
      const domain = domainOf(address.address);
      // §4.5.1: "Postmaster" without a domain MUST be accepted.
      const ours = domain === undefined ? address.address.toLowerCase() === 'postmaster' : domains.has(domain);
      if (!ours) {
        log.info('smtp recipient refused', { session: session.id, domain: domain ?? null, code: 550 });
        callback(reply(550, '5.1.1 Recipient address rejected: not a domain served here'));
        return;
      }
      callback();
    } catch (err) {
      log.error('smtp RCPT hook failed', { session: session.id, ...errorFields(err) });
      callback(reply(451, '4.3.0 Local error, try again later'));
    }
  };

  const onData = (stream: SMTPServerDataStream, session: SMTPServerSession, callback: (err?: Error | null, message?: string) => void): void => {
    const chunks: Buffer[] = [];
    let bytes = 0;
    /** What this message holds of the budget. */
    let mine = 0;
    let oversized = false;
    let deferred = false;
    let settled = false;
    const drop = (): void => {
      chunks.length = 0;
      budget.give(mine);
      mine = 0;
    };
    const finish = (err: Error | null, message?: string): void => {
      if (settled) return;
      settled = true;
      drop();
      callback(err, message);
    };
    stream.on('data', (chunk: Buffer) => {
      bytes += chunk.length;
      // RFC 1870 §6.3: over the limit the message is refused with 552; keep reading (the client
      // sends to the end anyway) but hold nothing: memory stays bounded by maxBytes.
      if (oversized || deferred) return;
      if (bytes > deps.maxBytes || stream.sizeExceeded) {
        oversized = true;
        drop();
        return;
      }
      if (!budget.take(chunk.length)) {
        deferred = true;
        drop();
        return;
      }
      mine += chunk.length;
      chunks.push(chunk);
    });
    // The connection went away mid-message (smtp-server destroys the stream): nothing was
    // accepted, nothing is stored (§4.1.1.4: only the final "." completes the transaction).
    stream.once('error', () => finish(reply(451, '4.3.0 Message not received in full')));
    stream.once('close', () => {
      if (!stream.readableEnded) finish(reply(451, '4.3.0 Message not received in full'));
    });
    stream.once('end', () => {
      if (oversized) {
        log.info('smtp message refused: too large', { session: session.id, bytes, limit: deps.maxBytes, code: 552 });
        finish(reply(552, `5.3.4 Message size exceeds fixed maximum message size (${deps.maxBytes} bytes)`));
        return;
      }
      if (deferred) {
        log.warn('smtp message deferred: memory budget', { session: session.id, bytes, budget: budget.limit, code: 'INTAKE_BUSY' });
        finish(reply(INTAKE_BUSY.code, INTAKE_BUSY.text));
        return;
      }
      // Past this point the handler owns the promise; its failures end up in finish().
      void commit(session, chunks, bytes).then(
        (id) => finish(null, `2.0.0 Ok: queued as ${id}`),
        (err: unknown) => {
          log.error('smtp message not journaled', { session: session.id, bytes, code: 451, ...errorFields(err) });
          finish(reply(451, '4.3.0 Local error in processing: message not stored, try again later'));
        },
      );
    });
  };

  async function commit(session: SMTPServerSession, chunks: readonly Buffer[], bytes: number): Promise<string> {
    const env = session.envelope;
    const from = env.mailFrom ? env.mailFrom.address : '';
    const trace = traceFields(session, from, serverName, new Date());
    // One copy: the trace fields and the chunks straight into the journaled buffer.
    const raw = Buffer.concat([trace, ...chunks], trace.length + bytes);
    const messageId = headerValue(raw.subarray(trace.length, trace.length + HEADER_SCAN_BYTES), 'message-id');
    const entry = await journal.append({
      kind: 'message',
      door: 'smtp',
      // RFC 5321 §4.5.5: the null reverse-path (bounces, MDNs) has no address.
      submitter: from || '<>',
      contentType: 'message/rfc822',
      raw,
      meta: {
        mailFrom: from,
        rcptTo: env.rcptTo.map((r) => r.address),
        remoteAddress: session.remoteAddress,
        helo: session.hostNameAppearsAs || null,
        tls: Boolean(session.secure),
        smtpSession: session.id,
        // The raw bytes start with our trace fields; the sender's message follows them.
        traceBytes: trace.length,
        ...(messageId ? { messageId } : {}),
      },
    });
    log.info('smtp message journaled', { session: session.id, entry: entry.id, bytes, recipients: env.rcptTo.length, code: 250 });
    try {
      deps.onAppended();
    } catch (err) {
      // Committed is committed: a failing wake-up must not turn the 250 into an error.
      log.warn('smtp onAppended failed', { entry: entry.id, ...errorFields(err) });
    }
    return entry.id;
  }

  const server = new SMTPServer({
    name: serverName,
    banner: 'passerelle',
    logger: false,
    size: deps.maxBytes,
    authOptional: true,
    // AUTH is not offered (operators relay); without a certificate, no STARTTLS either.
    disabledCommands: deps.tls ? ['AUTH'] : ['AUTH', 'STARTTLS'],
    ...(deps.tls ? { key: deps.tls.key, cert: deps.tls.cert, minVersion: 'TLSv1.2' as const } : {}),
    maxRecipients: MAX_RECIPIENTS,
    // Enhanced status codes (RFC 3463) are written into the reply texts above.
    hideENHANCEDSTATUSCODES: true,
    disableReverseLookup: true,
    maxClients: 200,
    socketTimeout: 60_000,
    closeTimeout: deps.closeTimeoutMs ?? 5_000,
    onMailFrom,
    onRcptTo,
    onData,
  });
  // An 'error' event without a listener would throw: a TLS handshake gone wrong, a reset socket.
  server.on('error', (err: Error) => log.warn('smtp connection error', errorFields(err)));

  let closing: Promise<void> | undefined;
  return {
    listen: (port, host) => new Promise<number>((resolve, reject) => {
      const onError = (err: Error): void => reject(err);
      server.server.once('error', onError);
      server.listen(port, host, () => {
        server.server.off('error', onError);
        const bound = (server.server.address() as AddressInfo).port;
        log.info('smtp listening', { port: bound, starttls: Boolean(deps.tls), maxBytes: deps.maxBytes });
        resolve(bound);
      });
    }),
    close: () => (closing ??= new Promise<void>((resolve) => {
      if (!server.server.listening) {
        resolve();
        return;
      }
      server.close(() => resolve());
    })),
  };
}
