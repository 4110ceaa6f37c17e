/**
 * Outgoing mail: the gateway hands complete messages (MDNs, DSNs) to the SMTP relay of
 * `smtp.relay`. The message is sent as given, byte for byte: it may be signed, and a relay that
 * rewrote it would break the signature (RFC 8551 §3.1).
 */
import { PasserelleError } from '../../gateway/errors.js';

export interface SmtpEnvelope {
  /** MAIL FROM; '' is the null reverse-path `<>`, which MDNs (RFC 8098 §3) and DSNs (RFC 5321 §4.5.5) use. */
  readonly from: string;
  readonly to: string | readonly string[];
}

export interface SendResult {
  /** The Message-ID of the message sent, read from its header. */
  readonly messageId?: string;
  /** The relay's final reply to DATA. */
  readonly response: string;
  /** Recipients the relay refused while accepting others (RCPT TO rejected). */
  readonly rejected?: readonly string[];
}

export interface MailSender {
  /** Resolves once the relay has taken responsibility (250 after DATA); rejects with MailSendError. */
  send(envelope: SmtpEnvelope, raw: Buffer): Promise<SendResult>;
  close(): Promise<void>;
}

/**
 * A send that failed. `permanent` when the relay refused the mail transaction itself with a 5xx
 * (RFC 5321 §4.2.1: do not repeat it) or nodemailer refused the envelope; otherwise — 4xx,
 * refused connection, timeout, TLS or greeting failure — the message is intact and a later
 * attempt may succeed.
 *
 * SMTP_RELAY_REJECTED when the relay refused the message for good (5xx to MAIL, RCPT or DATA),
 * SMTP_RELAY_UNAVAILABLE (transient, retried) otherwise.
 */
export class MailSendError extends PasserelleError {
  readonly permanent: boolean;
  /** The SMTP reply code, when the relay answered. */
  readonly smtpCode: number | undefined;

  constructor(detail: string, permanent: boolean, smtpCode: number | undefined) {
    super(permanent ? 'SMTP_RELAY_REJECTED' : 'SMTP_RELAY_UNAVAILABLE', detail);
    this.name = 'MailSendError';
    this.permanent = permanent;
    this.smtpCode = smtpCode;
  }
}
