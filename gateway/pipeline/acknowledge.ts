/**
 * Acknowledgements to the sender of a mail (issue "MSSanté mail channel" §3): once a mail entry is
 * final, an MDN (RFC 8098, in the ANS format) when the sender asked for one, else — on failure —
 * a DSN (RFC 3464). The acknowledgement is itself a journal entry (kind `acknowledgement`), sent
 * by the `send` stage and retried like any transient failure, so a relay outage loses nothing.
 * The original attached is the message as received (still encrypted when it came encrypted).
 */
import { X509Certificate } from 'node:crypto';
import type { Entry } from '../../adapters/journal/port.js';
import type { MailSender, SmtpEnvelope } from '../../adapters/smtp/port.js';
import { buildDsn } from '../mail/dsn.js';
import { buildMdn, mailboxes, readOriginalHeaders, signMdn, type OriginalHeaders, type OutgoingMail } from '../mail/mdn.js';
import { parseHeader } from '../mail/mime.js';
import { encryptMime } from '../mail/smime-wrap.js';
import { rfc822Names } from '../smime/certificate.js';
import type { Identity } from '../smime/index.js';
import type { Stage } from './stages.js';

export interface AckSettings {
  /** The application mailbox to speak for when neither the envelope nor the identity names one. */
  address: string;
  /** Host name: the DSN's Reporting-MTA, the MDN's Reporting-UA (RFC 8098 §3.2.1 ua-name). */
  reportingMta: string;
  /** Signs MDNs (RFC 8551 multipart/signed) when present. */
  identity: Identity | undefined;
}

const text = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);

/** The certificate the sender signed with, as the unwrap stage recorded it. */
function senderCertificate(entry: Entry): X509Certificate | undefined {
  const pem = text((entry.result.mail as { signerCertificate?: unknown } | undefined)?.signerCertificate);
  try {
    return pem ? new X509Certificate(pem) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The application mailbox the acknowledgement speaks for (the MDN's Final-Recipient, RFC 8098
 * §3.2.4): the address the message was delivered to — among several, the one the gateway's
 * certificate names —, else the certificate's own address, else the configured one. The MDN's
 * From is that mailbox when the certificate names it, else the certificate's address: a receiver
 * compares From with the MDN's signer (RFC 8550 §3).
 */
function mailboxFor(rcpt: readonly string[], headers: OriginalHeaders, settings: AckSettings): { mailbox: string; from: string } {
  const named = settings.identity ? rfc822Names(settings.identity.certificate) : [];
  const isNamed = (a: string): boolean => named.some((n) => n.toLowerCase() === a.toLowerCase());
  const delivered = rcpt.length ? rcpt : mailboxes(headers.to ?? '');
  const mailbox = delivered.find(isNamed) ?? rcpt[0] ?? named[0] ?? settings.address;
  return { mailbox, from: isNamed(mailbox) ? mailbox : named[0] ?? mailbox };
}

/** The MDN or DSN due for a final mail entry, or undefined (none asked, none allowed, no address to answer). */
export function acknowledgementFor(entry: Entry, raw: Buffer, settings: AckSettings): OutgoingMail | undefined {
  const envelopeFrom = text(entry.meta.mailFrom);
  let root;
  try {
    root = parseHeader(raw); // the header fields are all an acknowledgement reads of the original
  } catch {
    root = undefined;
  }
  // An unreadable header (a field beyond the parser's limits) addresses no MDN; a sender over SMTP
  // still learns of the failure by a DSN to its envelope reverse-path, without the original's header.
  const headers: OriginalHeaders = root ? readOriginalHeaders(root, envelopeFrom) : { returnPath: envelopeFrom };
  const original = { headers, raw: root ? raw : Buffer.alloc(0) };
  const ok = entry.state === 'delivered';
  const failure = { code: entry.errorCode ?? 'INTERNAL_ERROR', detail: entry.error ?? undefined } as const;
  // SMTP RCPT TO, as the listener recorded it (none for IMAP and POST /messages).
  const rcpt = Array.isArray(entry.meta.rcptTo) ? (entry.meta.rcptTo as unknown[]).filter((r): r is string => typeof r === 'string') : [];
  const { mailbox, from } = mailboxFor(rcpt, headers, settings);
  const mdn = buildMdn({ original, gateway: { address: mailbox, from, reportingUa: `${settings.reportingMta}; passerelle` }, outcome: ok ? { ok: true } : { ok: false, ...failure } });
  if (mdn) {
    // Signed with the gateway's identity, then encrypted to the sender when its certificate is
    // known from its signature: the MDN carries the original message (RFC 8551 §3.6 signed then enveloped).
    const signed = settings.identity ? signMdn(mdn.raw, settings.identity) : mdn.raw;
    const recipient = senderCertificate(entry);
    try {
      return { envelope: mdn.envelope, raw: recipient ? encryptMime(signed, [recipient]) : signed };
    } catch {
      return { envelope: mdn.envelope, raw: signed }; // a certificate not for encryption (key usage): signed only
    }
  }
  if (ok) return undefined;
  const domain = mailbox.split('@')[1] ?? 'localhost';
  return buildDsn({
    original,
    envelope: { from: envelopeFrom ?? headers.returnPath ?? '', recipients: (rcpt.length ? rcpt : [mailbox]).map((address) => ({ address })) },
    reportingMta: settings.reportingMta, postmaster: `MAILER-DAEMON@${domain}`, failure,
  });
}

/** The one stage of an acknowledgement entry: hand it to the relay. */
export function sendStage(sender: MailSender): Stage {
  return {
    name: 'send',
    reached: 'delivered',
    async run(work) {
      const envelope = work.entry.meta.envelope as SmtpEnvelope;
      const result = await sender.send(envelope, work.raw);
      return { relay: { response: result.response, ...(result.messageId ? { messageId: result.messageId } : {}) }, for: work.entry.meta.for ?? null };
    },
  };
}
