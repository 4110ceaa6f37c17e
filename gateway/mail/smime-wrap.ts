/**
 * A whole message made into an S/MIME enveloped message (RFC 8551 §3.3): the routing fields stay
 * in the clear header, the rest — the Content-* fields, any other field, the body — is the MIME
 * entity that is encrypted and carried as
 * `application/pkcs7-mime; smime-type=enveloped-data; name=smime.p7m`, base64, CRLF line ends.
 *
 * The split is the one signMdn (mdn.ts) makes for multipart/signed, with the rule turned round:
 * signMdn moves the Content-* fields inside and keeps everything else outside; here a field stays
 * outside only if transport or threading needs it, so a field nobody listed (an X-MSS-* header,
 * say) is encrypted rather than leaked. For what the gateway sends — an MDN or a DSN, signed by
 * signMdn — both rules give the same split.
 */
import type { X509Certificate } from 'node:crypto';
import { encryptEnveloped, type EncryptOptions } from '../smime/index.js';
import { wrapBase64 } from './mdn.js';
import { canonicalCrlf, splitHeaderFields } from './mime.js';

const CRLF = '\r\n';

/**
 * Header fields left in the clear, lower case. What MTAs and the receiving client need before
 * decrypting: originator and destination fields (RFC 5322 §3.6.2–§3.6.3), Subject and Date
 * (§3.6.1, §3.6.5), identification and threading (§3.6.4), MIME-Version (RFC 2045 §4; the outer
 * message is MIME), Auto-Submitted (RFC 3834 §5: loop prevention works on the outer header),
 * Disposition-Notification-To (RFC 8098 §2.1: an MDN request is read from the outer header, as
 * readOriginalHeaders does for S/MIME), and trace fields (RFC 5322 §3.6.7) that belong to the
 * transport, not to the content. Nothing outside is protected: RFC 8551 §3.1 secures the MIME
 * entity, not the RFC 822 header, so the Subject stays visible (MSSanté's subject convention
 * needs it so). Fields beyond these go inside, where RFC 2045 §9 lets a MIME reader ignore them
 * and a reader that looks (readMssHeaders reads the inner message once unwrapped) finds them.
 */
export const CLEAR_FIELDS: ReadonlySet<string> = new Set([
  'from', 'sender', 'reply-to', 'to', 'cc',
  'subject', 'date', 'message-id', 'in-reply-to', 'references',
  'mime-version', 'auto-submitted', 'disposition-notification-to',
  'return-path', 'received',
]);

/**
 * The message `entity` (header and body; LF or CRLF line ends) encrypted for `recipients`, as an
 * RFC 8551 §3.3 message: clear routing fields, then the application/pkcs7-mime entity. With
 * `cipher: 'aes-256-gcm'` the smime-type is authEnveloped-data (RFC 8551 §3.2.2, RFC 5083).
 */
export function encryptMime(entity: Buffer, recipients: readonly X509Certificate[], options: EncryptOptions = {}): Buffer {
  // RFC 8551 §3.1.1: the entity is put in canonical form (CRLF) before it is secured.
  const canonical = canonicalCrlf(entity);
  const end = canonical.indexOf('\r\n\r\n');
  if (end < 0) throw new TypeError('encryptMime: the message has no header/body separator');
  const fields = splitHeaderFields(canonical.subarray(0, end + 2).toString('latin1'));
  const body = canonical.subarray(end + 4);
  const isClear = (f: string): boolean => CLEAR_FIELDS.has(f.slice(0, f.indexOf(':')).trim().toLowerCase());

  // The inner entity: the remaining fields, the blank line, the body, byte for byte — a
  // multipart/signed inside stays verifiable. No Content-Type left means text/plain (RFC 2045 §5.2).
  const inner = Buffer.concat([Buffer.from(fields.filter((f) => !isClear(f)).join('') + CRLF, 'latin1'), body]);
  const der = encryptEnveloped(inner, recipients, options);

  const outer = fields.filter(isClear);
  if (!outer.some((f) => /^mime-version\s*:/i.test(f))) outer.push(`MIME-Version: 1.0${CRLF}`);
  const smimeType = options.cipher === 'aes-256-gcm' ? 'authEnveloped-data' : 'enveloped-data';
  return Buffer.concat([
    Buffer.from(outer.join(''), 'latin1'),
    Buffer.from(
      // RFC 8551 §3.3 (§3.4 for authEnveloped-data): type, smime-type, name and filename smime.p7m, base64.
      `Content-Type: application/pkcs7-mime; smime-type=${smimeType};${CRLF} name="smime.p7m"${CRLF}` +
        `Content-Transfer-Encoding: base64${CRLF}` +
        `Content-Disposition: attachment; filename="smime.p7m"${CRLF}${CRLF}` +
        `${wrapBase64(der)}${CRLF}`,
      'ascii',
    ),
  ]);
}

