/**
 * MailSender over nodemailer's SMTP transport, in raw mode: the message goes out exactly as
 * built (nodemailer adds no header to a `raw` message) with the envelope we give, not one
 * guessed from the header — the null reverse-path of an MDN or DSN is not in any header.
 *
 * TLS: STARTTLS whenever the relay offers it (RFC 3207), the certificate checked, TLS 1.2 at
 * least (MSSanté trust space); `required` refuses a relay that does not offer it. One connection
 * per message: acknowledgements are few, and nothing lingers between them.
 */
import type { ConnectionOptions } from 'node:tls';
import { createTransport } from 'nodemailer';
import { MailSendError, type MailSender, type SendResult, type SmtpEnvelope } from './port.js';

export interface SmtpRelayOptions {
  readonly host: string;
  readonly port: number;
  /** 'opportunistic' (default): STARTTLS when offered; 'required': fail without it; 'implicit': TLS from the first byte (port 465). */
  readonly tls?: 'opportunistic' | 'required' | 'implicit';
  /** CA, client certificate for mutual authentication, servername… merged over `minVersion: 'TLSv1.2'`. */
  readonly tlsOptions?: ConnectionOptions;
  /** EHLO name. */
  readonly clientName?: string;
  readonly timeouts?: { readonly connectMs?: number; readonly greetingMs?: number; readonly socketMs?: number };
}

export function createNodemailerSender(options: SmtpRelayOptions): MailSender {
  const mode = options.tls ?? 'opportunistic';
  const transporter = createTransport({
    host: options.host,
    port: options.port,
    secure: mode === 'implicit',
    requireTLS: mode === 'required',
    tls: { minVersion: 'TLSv1.2', ...options.tlsOptions },
    ...(options.clientName === undefined ? {} : { name: options.clientName }),
    connectionTimeout: options.timeouts?.connectMs ?? 30_000,
    greetingTimeout: options.timeouts?.greetingMs ?? 30_000,
    socketTimeout: options.timeouts?.socketMs ?? 120_000,
    logger: false,
    debug: false,
  });
  const where = `${options.host}:${options.port}`;

  return {
    async send(envelope: SmtpEnvelope, raw: Buffer): Promise<SendResult> {
      const to = typeof envelope.to === 'string' ? [envelope.to] : [...envelope.to];
      let info;
      try {
        info = await transporter.sendMail({
          raw,
          envelope: {
            // false is nodemailer's spelling of the null reverse-path: MAIL FROM:<>
            from: envelope.from === '' ? false : envelope.from,
            to,
            // RFC 6152: 8-bit content is declared as such when the relay offers 8BITMIME.
            use8BitMime: hasEightBit(raw),
          },
        });
      } catch (err) {
        throw toSendError(err, where);
      }
      const messageId = messageIdOf(raw);
      return {
        response: info.response,
        ...(messageId === undefined ? {} : { messageId }),
        ...(info.rejected.length > 0 ? { rejected: info.rejected.map(String) } : {}),
      };
    },
    close(): Promise<void> {
      transporter.close();
      return Promise.resolve();
    },
  };
}

interface NodemailerError {
  code?: unknown;
  responseCode?: unknown;
  response?: unknown;
  command?: unknown;
  message?: unknown;
}

/** Classifies a failure; the detail names the relay and its reply, never the message. */
function toSendError(err: unknown, where: string): MailSendError {
  const e = (typeof err === 'object' && err !== null ? err : {}) as NodemailerError;
  const smtpCode = typeof e.responseCode === 'number' ? e.responseCode : undefined;
  const code = typeof e.code === 'string' ? e.code : 'EUNKNOWN';
  const command = typeof e.command === 'string' ? e.command : '';
  const reply = typeof e.response === 'string' ? e.response : typeof e.message === 'string' ? e.message : String(err);
  const detail = `SMTP relay ${where}${command === '' ? '' : ` at ${command}`}: ${code} ${reply.replace(/[\r\n]+/g, ' ').slice(0, 300)}`;
  // RFC 5321 §4.2.1: a 5yz reply is a permanent refusal — of this message only when it answers
  // the mail transaction (MAIL, RCPT, DATA). A 5yz to the greeting, EHLO, STARTTLS or AUTH says
  // the relay or our configuration is wrong: the message is intact and may go once that is fixed.
  // An envelope or a size nodemailer refuses before asking (EENVELOPE, EMESSAGE) will not change.
  const transaction = command === 'MAIL FROM' || command === 'RCPT TO' || command === 'DATA';
  const permanent = smtpCode !== undefined ? smtpCode >= 500 && transaction : code === 'EENVELOPE' || code === 'EMESSAGE';
  return new MailSendError(detail, permanent, smtpCode);
}

function hasEightBit(raw: Buffer): boolean {
  for (const byte of raw) if (byte >= 0x80) return true;
  return false;
}

/** The Message-ID field of the header block, unfolded. */
function messageIdOf(raw: Buffer): string | undefined {
  const text = raw.toString('latin1');
  const end = text.search(/\r?\n\r?\n/);
  const head = (end < 0 ? text : text.slice(0, end)).replace(/\r?\n[ \t]+/g, ' ');
  const match = /^message-id[ \t]*:[ \t]*(.*)$/im.exec(head);
  const value = match?.[1]?.trim();
  return value === undefined || value === '' ? undefined : value;
}
