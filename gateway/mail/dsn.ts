/**
 * The Delivery Status Notification (RFC 3464) for a message the gateway accepted over SMTP and
 * then could not take in, when no MDN applies (no Disposition-Notification-To, or one that fails
 * the RFC 8098 §2.1 return-path check). Sent to the envelope's reverse-path (RFC 3461 §6.2),
 * never to a null one, never about a report (RFC 5321 §4.5.5: a DSN is not answered), and only
 * for recipients whose NOTIFY asks for failures (RFC 3461 §4.1).
 *
 * The subject is the ANS failure subject `[KO Intégration système !][<code>] …`, the one the
 * volet gives every failure notification (MDN or "courriel standard"), so a receiving PFI can sort
 * it the same way.
 */
import { ERROR_CATALOGUE, type ErrorCode } from '../errors.js';
import {
  ansError,
  asciiField,
  assemble,
  encodedHeader,
  headersPart,
  isReport,
  koSubject,
  messagePart,
  newMessageId,
  oneLine,
  reportPart,
  reversePath,
  rfc5322Date,
  textPart,
  typedAddress,
  type OriginalHeaders,
  type OutgoingMail,
} from './mdn.js';

const CRLF = '\r\n';

export type DsnNotify = 'SUCCESS' | 'FAILURE' | 'DELAY' | 'NEVER';

export interface DsnRecipient {
  /** The RCPT TO address: Final-Recipient. */
  readonly address: string;
  /** The ORCPT parameter (RFC 3461 §4.2), `rfc822;addr`. */
  readonly originalRecipient?: string | undefined;
  /** The NOTIFY parameter; absent means the default, failures reported (RFC 3461 §4.1). */
  readonly notify?: readonly DsnNotify[] | undefined;
}

export interface DsnInput {
  readonly original: { readonly headers: OriginalHeaders; readonly raw: Buffer };
  /** The SMTP transaction: MAIL FROM ('' for `<>`), its ENVID and RET, and the recipients that failed. */
  readonly envelope: {
    readonly from: string;
    readonly recipients: readonly DsnRecipient[];
    readonly envid?: string | undefined;
    readonly ret?: 'FULL' | 'HDRS' | undefined;
  };
  /** The gateway's host name, for Reporting-MTA (`dns; <name>`). */
  readonly reportingMta: string;
  /** The DSN's From (e.g. `MAILER-DAEMON@<domain>`). */
  readonly postmaster: string;
  readonly failure: { readonly code: ErrorCode; readonly detail?: string | undefined };
  readonly arrivalDate?: Date | undefined;
  readonly options?: { readonly date?: Date; readonly messageId?: string } | undefined;
}

/** The DSN, or undefined when none may be sent. */
export function buildDsn(input: DsnInput): OutgoingMail | undefined {
  const to = reversePath(input.envelope.from);
  if (to === undefined) return undefined;
  if (isReport(input.original.headers.contentType)) return undefined;
  const recipients = input.envelope.recipients.filter(wantsFailure);
  if (recipients.length === 0) return undefined;

  const { code, detail } = input.failure;
  const def = ERROR_CATALOGUE[code];
  const status = dsnStatus(code);
  const diagnostic = asciiField(`smtp; ${def.smtp} ${status} ${code}: ${def.message}`);

  // RFC 3464 §2.2: per-message fields, a blank line, then one group per recipient (§2.3).
  const perMessage = [`Reporting-MTA: dns; ${asciiField(input.reportingMta)}`];
  if (input.envelope.envid !== undefined) perMessage.push(`Original-Envelope-Id: ${asciiField(input.envelope.envid)}`);
  if (input.arrivalDate !== undefined) perMessage.push(`Arrival-Date: ${rfc5322Date(input.arrivalDate)}`);
  const groups = recipients.map((r) => {
    const lines: string[] = [];
    if (r.originalRecipient !== undefined && r.originalRecipient.trim() !== '') lines.push(`Original-Recipient: ${typedAddress(r.originalRecipient)}`);
    lines.push(`Final-Recipient: ${typedAddress(r.address)}`, 'Action: failed', `Status: ${status}`, `Diagnostic-Code: ${diagnostic}`);
    return lines.join(CRLF) + CRLF;
  });
  const deliveryStatus = [perMessage.join(CRLF) + CRLF, ...groups].join(CRLF);

  const ans = ansError(code);
  const messageId = input.original.headers.messageId === undefined ? undefined : oneLine(input.original.headers.messageId);
  const text = [
    "Le message ci-dessous a été reçu par la passerelle mais n'a pas pu être intégré :",
    `${ans.label} (${ans.code}).`,
    '',
    `Code passerelle : ${code} - ${def.message}`,
    ...(detail !== undefined && detail.trim() !== '' && detail !== def.message ? [`Détail : ${detail.replace(/\r\n?|\n/g, `${CRLF}  `)}`] : []),
    ...(messageId === undefined ? [] : [`Message d'origine : ${messageId}`]),
    `Destinataire(s) : ${recipients.map((r) => oneLine(r.address)).join(', ')}`,
    '',
  ].join(CRLF);

  const raw = assemble({
    headers: [
      `Date: ${rfc5322Date(input.options?.date ?? new Date())}`,
      `From: ${oneLine(input.postmaster)}`,
      `To: ${to}`,
      encodedHeader('Subject', koSubject(ans.code, oneLine(input.original.headers.subject ?? ''))),
      `Message-ID: ${input.options?.messageId ?? newMessageId(input.postmaster)}`,
      ...(messageId !== undefined && /^<[^<>\s]+>$/.test(messageId) ? [`In-Reply-To: ${messageId}`, `References: ${messageId}`] : []),
      'Auto-Submitted: auto-replied',
      'MIME-Version: 1.0',
    ],
    reportType: 'delivery-status',
    parts: [
      textPart(text),
      reportPart('delivery-status', deliveryStatus),
      // RFC 3461 §4.3: RET=FULL asks for the whole message, otherwise the headers suffice.
      input.envelope.ret === 'FULL' ? messagePart(input.original.raw) : headersPart(input.original.raw),
    ],
  });
  // RFC 5321 §4.5.5: a DSN is sent with the null reverse-path.
  return { envelope: { from: '', to }, raw };
}

function wantsFailure(r: DsnRecipient): boolean {
  if (r.notify === undefined || r.notify.length === 0) return true;
  return !r.notify.includes('NEVER') && r.notify.includes('FAILURE');
}

/**
 * The RFC 3463 / RFC 5248 enhanced status for a catalogue code, always permanent (class 5):
 * a DSN with `Action: failed` reports a final failure, even one that began as transient and
 * exhausted its retries (RFC 3464 §2.3.3).
 */
export function dsnStatus(code: ErrorCode): string {
  const def = ERROR_CATALOGUE[code];
  if (code === 'SMIME_SIGNATURE_INVALID') return '5.7.7'; // message integrity failure
  if (code.startsWith('SMIME_')) return '5.7.5'; // cryptographic failure
  switch (def.smtp) {
    case 552:
      return '5.3.4'; // message too big for system
    case 530:
      return '5.7.0'; // other security status
    case 550:
      return def.issueType === 'security' ? '5.7.1' : '5.1.1'; // delivery not authorized / bad mailbox
    case 451:
      return '5.3.0'; // other mail system status: ours, not the message's
    default:
      return def.issueType === 'security' ? '5.7.1' : '5.6.0'; // other or undefined media error
  }
}
