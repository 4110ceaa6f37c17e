/**
 * The Message Disposition Notification (RFC 8098) the gateway returns for an MSSanté message, in
 * the form of the ANS "Volet Transmission au LPS de documents CDA provenant d'un courriel MSSanté"
 * (CI-SIS, annex "Structure du MDN (MSSanté)", v1.1.3; source
 * github.com/ansforge/IG-hl7v2-volet-trans-lps-doc-cda-courriel-mss,
 * input/pagecontent/struct-msg-mdn.md, and error-codes.md for the 900–906 labels):
 *
 * - `multipart/report; report-type=disposition-notification` with three parts in the RFC 6522 §3
 *   order: human text, `message/disposition-notification`, and the original as `message/rfc822`
 *   (optional for RFC 6522, required by the volet: the PFI must be able to resubmit it);
 * - `Disposition: automatic-action/MDN-sent-automatically; processed` on success and
 *   `…; processed/error` with a separate `Error: <code>^<libellé>` field on failure. Versions of
 *   the volet up to 1.1.2 wrote `processed/Error: <code>^<libellé>` inside Disposition; v1.1.3
 *   moved the string, unchanged, to the Error field because the old value breaks the RFC 8098
 *   §3.2.6 grammar (a modifier is a single atom). `errorPlacement: 'disposition'` keeps the old
 *   form for receivers that still read it there;
 * - subject: the original subject on success, `[KO Intégration système !][<code>] <subject>` on
 *   failure.
 *
 * Whether an MDN is due at all is `mdnDecision`. Signing is `signMdn` (multipart/signed, RFC 8551
 * §3.5); encrypting it to the sender is `encryptMime` (gateway/mail/smime-wrap.ts).
 * Nothing here logs; the original's content is copied into the MDN and nowhere else.
 */
import { randomBytes } from 'node:crypto';
import libmime from 'libmime';
import addressparser from 'nodemailer/lib/addressparser';
import { ERROR_CATALOGUE, type ErrorCode } from '../errors.js';
import { signDetached, SIGN_MICALG, type Identity } from '../smime/index.js';
import { canonicalCrlf, decodedHeader, headerValue, splitHeaderFields, type MimePart } from './mime.js';

const CRLF = '\r\n';

/** The header fields of the message being acknowledged, as far as the MDN and DSN rules need them. */
export interface OriginalHeaders {
  readonly messageId?: string | undefined;
  readonly from?: string | undefined;
  readonly to?: string | undefined;
  /** RFC 2047-decoded. */
  readonly subject?: string | undefined;
  readonly dispositionNotificationTo?: string | undefined;
  /**
   * The reverse-path: SMTP MAIL FROM as the gateway saw it (bare address, '' for `<>`), else the
   * Return-Path field the delivering MTA added (RFC 5321 §4.4, `<addr>` or `<>`).
   */
  readonly returnPath?: string | undefined;
  /** Original-Recipient header (RFC 8098 §2.3, `rfc822;addr`) or the SMTP ORCPT; a bare address is taken as rfc822. */
  readonly originalRecipient?: string | undefined;
  /** Content-Type as written: a report is never answered. */
  readonly contentType?: string | undefined;
  readonly autoSubmitted?: string | undefined;
}

/**
 * Reads OriginalHeaders from a parsed message. Give the message whose header the sender wrote: for
 * S/MIME, the outer one carries the routing fields (Disposition-Notification-To, Message-ID).
 */
export function readOriginalHeaders(message: Pick<MimePart, 'headers'>, envelopeFrom?: string): OriginalHeaders {
  return {
    messageId: headerValue(message, 'Message-ID'),
    from: headerValue(message, 'From'),
    to: headerValue(message, 'To'),
    subject: decodedHeader(message, 'Subject'),
    dispositionNotificationTo: headerValue(message, 'Disposition-Notification-To'),
    returnPath: envelopeFrom ?? headerValue(message, 'Return-Path'),
    originalRecipient: headerValue(message, 'Original-Recipient'),
    contentType: headerValue(message, 'Content-Type'),
    autoSubmitted: headerValue(message, 'Auto-Submitted'),
  };
}

// ---- ANS codes ----

/**
 * Labels of the ANS applicationErrorCondition table (volet, error-codes.md). They go in the
 * `Error:` field as written by the volet, except that accents are folded (see asciiField).
 */
export const ANS_ERROR_LABELS: Readonly<Record<number, string>> = {
  900: "Version du document incorrecte lors d'une demande de remplacement/suppression",
  901: 'Auteur non autorisé à remplacer ou supprimer un document',
  902: 'Identifiant patient inconnu',
  903: 'INS non présent dans le document',
  904: "L'INS transmis ne correspond pas exactement à celui stocké dans la base du consommateur",
  905: "L'INS transmis n'est pas complet",
  906: "Erreur 'Autre'",
};

/** The ANS code and label for a catalogue code (906 for anything the table does not know). */
export function ansError(code: ErrorCode): { readonly code: number; readonly label: string } {
  const mdn = ERROR_CATALOGUE[code].mdn;
  const label = ANS_ERROR_LABELS[mdn];
  return label === undefined ? { code: 906, label: ANS_ERROR_LABELS[906] as string } : { code: mdn, label };
}

/** The volet's failure subject prefix (struct-msg-mdn.md, "Objet du MDN"). */
export function koSubject(ansCode: number, subject: string): string {
  return `[KO Intégration système !][${ansCode}] ${subject}`;
}

// ---- whether an MDN is due ----

export type MdnRefusal =
  | 'report' // the original is itself an MDN or a DSN
  | 'auto-submitted'
  | 'not-requested'
  | 'several-addresses'
  | 'null-return-path'
  | 'return-path-differs';

export type MdnDecision = { readonly send: true; readonly to: string } | { readonly send: false; readonly reason: MdnRefusal };

/**
 * RFC 8098 §2.1: the MDN goes to the Disposition-Notification-To address, and is not sent
 * automatically when that address differs from the Return-Path (a forged or forwarded request
 * must not turn the gateway into a mail cannon). With several addresses one at least differs
 * from the single return path, so none is answered. A null return path has nothing to compare.
 */
export function mdnDecision(h: OriginalHeaders): MdnDecision {
  // RFC 8098 §3 (and RFC 3464 for DSNs): reports are never answered, else two gateways loop.
  if (isReport(h.contentType)) return { send: false, reason: 'report' };
  // RFC 3834 §2: no automatic response to a message marked as automatic (Auto-Submitted other than "no").
  if (isAutoSubmitted(h.autoSubmitted)) return { send: false, reason: 'auto-submitted' };
  if (h.dispositionNotificationTo === undefined || h.dispositionNotificationTo.trim() === '') return { send: false, reason: 'not-requested' };
  const requested = mailboxes(h.dispositionNotificationTo);
  if (requested.length === 0) return { send: false, reason: 'not-requested' };
  if (requested.length > 1) return { send: false, reason: 'several-addresses' };
  const returnPath = reversePath(h.returnPath);
  if (returnPath === undefined) return { send: false, reason: 'null-return-path' };
  const to = oneLine(requested[0] as string);
  if (!sameMailbox(to, returnPath)) return { send: false, reason: 'return-path-differs' };
  return { send: true, to };
}

/** multipart/report (any report type: MDN, DSN, their RFC 6533 global forms, feedback reports) or a bare report part. */
export function isReport(contentType: string | undefined): boolean {
  if (contentType === undefined) return false;
  const type = libmime.parseHeaderValue(contentType).value.trim().toLowerCase();
  return type === 'multipart/report' || /^message\/(global-)?(disposition-notification|delivery-status)$/.test(type);
}

function isAutoSubmitted(value: string | undefined): boolean {
  if (value === undefined) return false;
  const keyword = libmime.parseHeaderValue(value).value.trim().toLowerCase();
  return keyword !== '' && keyword !== 'no';
}

/** The addr-specs of an address list (display names, comments and groups dropped). */
export function mailboxes(value: string): string[] {
  return addressparser(value, { flatten: true })
    .map((m) => m.address.trim())
    .filter((a) => a !== '');
}

/** A reverse-path as an address, undefined for the null path `<>` or none at all. */
export function reversePath(value: string | undefined): string | undefined {
  if (value === undefined) return undefined;
  const trimmed = value.trim();
  const inner = trimmed.startsWith('<') && trimmed.endsWith('>') ? trimmed.slice(1, -1).trim() : trimmed;
  if (inner === '') return undefined;
  return mailboxes(inner)[0];
}

/** RFC 5321 §2.4: the local part is case-sensitive, the domain is not. */
export function sameMailbox(a: string, b: string): boolean {
  const split = (s: string): [string, string] => {
    const at = s.lastIndexOf('@');
    return at < 0 ? [s, ''] : [s.slice(0, at), s.slice(at + 1).toLowerCase()];
  };
  const [la, da] = split(a.trim());
  const [lb, db] = split(b.trim());
  return la === lb && da === db;
}

// ---- building ----

export type MdnOutcome = { readonly ok: true } | { readonly ok: false; readonly code: ErrorCode; readonly detail?: string };

export interface MdnOptions {
  /** 'error-field' (volet v1.1.3, RFC 8098 grammar; default) or 'disposition' (volet ≤ 1.1.2: `processed/Error: code^label`). */
  readonly errorPlacement?: 'error-field' | 'disposition';
  readonly date?: Date;
  /** Message-ID of the MDN, `<…>`; a random one at the gateway's domain by default. */
  readonly messageId?: string;
}

export interface MdnInput {
  readonly original: { readonly headers: OriginalHeaders; readonly raw: Buffer };
  /** The application mailbox (BAL applicative) the MDN is produced for, and the RFC 8098 §3.2.1 `ua-name; ua-product`. */
  readonly gateway: {
    readonly address: string;
    readonly reportingUa: string;
    /** The MDN's From when it is not `address`: the address of the certificate that signs the MDN. */
    readonly from?: string;
  };
  readonly outcome: MdnOutcome;
  readonly options?: MdnOptions;
}

/** A message ready for the relay. */
export interface OutgoingMail {
  /** from '' is the null reverse-path `<>`. */
  readonly envelope: { readonly from: string; readonly to: string };
  readonly raw: Buffer;
}

/** The MDN for the original, or undefined when none is due (see mdnDecision). */
export function buildMdn(input: MdnInput): OutgoingMail | undefined {
  const decision = mdnDecision(input.original.headers);
  if (!decision.send) return undefined;
  const h = input.original.headers;
  const { address, reportingUa } = input.gateway;
  const outcome = input.outcome;
  const ans = outcome.ok ? undefined : ansError(outcome.code);
  const errorString = ans === undefined ? undefined : asciiField(`${ans.code}^${ans.label}`);
  const originalMessageId = h.messageId === undefined ? undefined : oneLine(h.messageId);

  const fields: string[] = [`Reporting-UA: ${asciiField(reportingUa)}`];
  // §3.2.3: present only when the original recipient is known (Original-Recipient field or ORCPT).
  if (h.originalRecipient !== undefined && h.originalRecipient.trim() !== '') fields.push(`Original-Recipient: ${typedAddress(h.originalRecipient)}`);
  // §3.2.4 and the volet's table: the application mailbox the MDN is issued for.
  fields.push(`Final-Recipient: rfc822;${oneLine(address)}`);
  // §3.2.5: present if and only if the original had a Message-ID.
  if (originalMessageId !== undefined) fields.push(`Original-Message-ID: ${originalMessageId}`);
  const mode = 'automatic-action/MDN-sent-automatically';
  if (errorString === undefined) {
    fields.push(`Disposition: ${mode}; processed`);
  } else if (input.options?.errorPlacement === 'disposition') {
    fields.push(`Disposition: ${mode}; processed/Error: ${errorString}`, `Error: ${errorString}`);
  } else {
    // §3.2.6 modifier "error", §3.2.7 the diagnostic text in its own field.
    fields.push(`Disposition: ${mode}; processed/error`, `Error: ${errorString}`);
  }
  const notification = fields.join(CRLF) + CRLF;

  const text = outcome.ok || ans === undefined
    ? humanSuccess(originalMessageId)
    : humanFailure(ans, outcome.code, outcome.detail, originalMessageId);

  const subject = oneLine(h.subject ?? '');
  const parts = [
    textPart(text),
    reportPart('disposition-notification', notification),
    messagePart(input.original.raw),
  ];
  const raw = assemble({
    headers: [
      `Date: ${rfc5322Date(input.options?.date ?? new Date())}`,
      `From: ${oneLine(input.gateway.from ?? address)}`,
      `To: ${decision.to}`,
      encodedHeader('Subject', ans === undefined ? subject : koSubject(ans.code, subject)),
      `Message-ID: ${input.options?.messageId ?? newMessageId(address)}`,
      ...threading(originalMessageId),
      // RFC 3834 §5.1: an automatic response; also what stops another responder from answering us.
      'Auto-Submitted: auto-replied',
      'MIME-Version: 1.0',
    ],
    reportType: 'disposition-notification',
    parts,
  });
  // RFC 8098 §3: the MDN's envelope sender MUST be null, so that nothing answers it.
  return { envelope: { from: '', to: decision.to }, raw };
}

function humanSuccess(messageId: string | undefined): string {
  return [
    `Le message${messageId === undefined ? '' : ` ${messageId}`} a été traité automatiquement et intégré.`,
    'The message was processed automatically and integrated.',
    '',
  ].join(CRLF);
}

function humanFailure(ans: { code: number; label: string }, code: ErrorCode, detail: string | undefined, messageId: string | undefined): string {
  // The volet asks for at least the code and label here (struct-msg-mdn.md, première partie).
  const lines = [
    `Le message ci-dessous n'a pas pu être intégré automatiquement pour la raison suivante : ${ans.label}.`,
    '',
    `Erreur : ${ans.code}^${ans.label}`,
    `Code passerelle : ${code} - ${ERROR_CATALOGUE[code].message}`,
  ];
  if (detail !== undefined && detail.trim() !== '' && detail !== ERROR_CATALOGUE[code].message) lines.push(`Détail : ${detail.replace(/\r\n?|\n/g, `${CRLF}  `)}`);
  if (messageId !== undefined) lines.push(`Message d'origine : ${messageId}`);
  lines.push('', "Le message d'origine est joint, entier, pour être corrigé puis soumis à nouveau.", '');
  return lines.join(CRLF);
}

function threading(messageId: string | undefined): string[] {
  // RFC 3834 §3.1.5: a response should carry In-Reply-To and References to what it answers.
  if (messageId === undefined || !/^<[^<>\s]+>$/.test(messageId)) return [];
  return [`In-Reply-To: ${messageId}`, `References: ${messageId}`];
}

// ---- MIME assembly (shared with dsn.ts) ----

export interface ReportMessage {
  readonly headers: readonly string[];
  readonly reportType: 'disposition-notification' | 'delivery-status';
  readonly parts: readonly Part[];
}

/** One body part: its header lines and its body, CRLF line ends. */
export interface Part {
  readonly headers: readonly string[];
  readonly body: Buffer;
}

/** multipart/report (RFC 6522 §3) with a boundary that occurs in no part. */
export function assemble(message: ReportMessage): Buffer {
  const boundary = freshBoundary(message.parts.map((p) => p.body));
  const chunks: Buffer[] = [
    Buffer.from(
      [...message.headers, `Content-Type: multipart/report; report-type=${message.reportType};${CRLF} boundary="${boundary}"`].join(CRLF) + CRLF + CRLF,
      'utf8',
    ),
  ];
  for (const part of message.parts) {
    chunks.push(Buffer.from(`--${boundary}${CRLF}${part.headers.join(CRLF)}${CRLF}${CRLF}`, 'utf8'), part.body, Buffer.from(CRLF, 'ascii'));
  }
  chunks.push(Buffer.from(`--${boundary}--${CRLF}`, 'ascii'));
  return Buffer.concat(chunks);
}

/** Human text, UTF-8, base64: signed content must survive any relay unchanged (RFC 8551 §3.1.2, 7-bit). */
export function textPart(text: string): Part {
  return {
    headers: ['Content-Type: text/plain; charset=utf-8', 'Content-Transfer-Encoding: base64'],
    body: Buffer.from(wrapBase64(Buffer.from(text, 'utf8')), 'ascii'),
  };
}

/**
 * The machine-readable part. Its fields are US-ASCII and 7bit (RFC 8098 §7 / RFC 3464 §6.1
 * registrations); should an address be non-ASCII, the RFC 6533 global type carries it in UTF-8.
 */
export function reportPart(kind: 'disposition-notification' | 'delivery-status', fields: string): Part {
  const ascii = Buffer.byteLength(fields, 'utf8') === fields.length;
  return {
    headers: ascii ? [`Content-Type: message/${kind}`] : [`Content-Type: message/global-${kind}`, 'Content-Transfer-Encoding: 8bit'],
    body: Buffer.from(fields, 'utf8'),
  };
}

/**
 * The original message, whole (the volet: "aucun élément ne doit être perdu"). message/rfc822
 * admits no base64 (RFC 2046 §5.2.1), so the bytes go as they are, with the honest 7bit / 8bit /
 * binary label (RFC 2045 §2.7–2.9); only line ends are made CRLF, the canonical form a
 * signature covers (RFC 8551 §3.1.1).
 */
export function messagePart(raw: Buffer): Part {
  const body = canonicalCrlf(raw);
  return { headers: ['Content-Type: message/rfc822', `Content-Transfer-Encoding: ${transferEncodingOf(body)}`], body };
}

/** text/rfc822-headers (RFC 6522 §4): the original's header block, when only that is returned. */
export function headersPart(raw: Buffer): Part {
  const canonical = canonicalCrlf(raw);
  const end = canonical.indexOf('\r\n\r\n');
  const block = end < 0 ? canonical : canonical.subarray(0, end + 2);
  return { headers: ['Content-Type: text/rfc822-headers', `Content-Transfer-Encoding: ${transferEncodingOf(block)}`], body: block };
}

function transferEncodingOf(body: Buffer): '7bit' | '8bit' | 'binary' {
  let eightBit = false;
  let lineLength = 0;
  for (const byte of body) {
    if (byte === 0x00) return 'binary';
    if (byte === 0x0a) {
      lineLength = 0;
      continue;
    }
    if (byte !== 0x0d && ++lineLength > 998) return 'binary'; // RFC 5322 §2.1.1
    if (byte >= 0x80) eightBit = true;
  }
  return eightBit ? '8bit' : '7bit';
}

export function wrapBase64(bytes: Buffer): string {
  const b64 = bytes.toString('base64');
  const lines: string[] = [];
  for (let i = 0; i < b64.length; i += 76) lines.push(b64.slice(i, i + 76));
  return lines.join(CRLF);
}

function freshBoundary(bodies: readonly Buffer[]): string {
  for (;;) {
    const boundary = `=_passerelle_${randomBytes(18).toString('base64url')}`;
    if (bodies.every((b) => b.indexOf(`--${boundary}`) < 0)) return boundary;
  }
}

/** An unstructured header field, RFC 2047-encoded when not ASCII, folded at 76 (RFC 5322 §2.1.1). */
export function encodedHeader(name: string, value: string): string {
  return libmime.foldLines(`${name}: ${libmime.encodeWords(oneLine(value), 'Q')}`, 76);
}

/** Header values from the original or the configuration: no line break may reach our header (injection). */
export function oneLine(value: string): string {
  return value.replace(/\p{Cc}+/gu, ' ').trim();
}

/** A field of a report part: one line, US-ASCII, accents folded (é → e), anything else as '?'. */
export function asciiField(value: string): string {
  return oneLine(value)
    .normalize('NFD')
    .replace(/[\u0300-\u036f]/g, '')
    .replace(/[^\x20-\x7e]/g, '?');
}

/** `address-type;address` (RFC 8098 §3.2.3); a bare address is rfc822. */
export function typedAddress(value: string): string {
  const v = oneLine(value);
  return /^[A-Za-z0-9-]+;/.test(v) ? v : `rfc822;${v}`;
}

export function rfc5322Date(d: Date): string {
  // toUTCString writes "GMT", an obsolete zone (RFC 5322 §4.3); the numeric form is preferred.
  return d.toUTCString().replace(/GMT$/, '+0000');
}

export function newMessageId(address: string): string {
  const at = address.lastIndexOf('@');
  const domain = at < 0 ? 'localhost' : oneLine(address.slice(at + 1)).replace(/[^A-Za-z0-9.-]/g, '') || 'localhost';
  return `<${randomBytes(16).toString('hex')}@${domain}>`;
}

// ---- signing ----

/**
 * Wraps a whole message (an MDN or a DSN) in multipart/signed, RFC 8551 §3.5: the MIME entity
 * (its Content-* fields and body) becomes the first part, byte for byte as signed, and the
 * detached CMS SignedData of signDetached the second; the message-level fields stay outside.
 * The entity is signed in canonical form, CRLF line ends (§3.1.1).
 */
export function signMdn(raw: Buffer, identity: Identity, at: Date = new Date()): Buffer {
  const canonical = canonicalCrlf(raw);
  const end = canonical.indexOf('\r\n\r\n');
  if (end < 0) throw new TypeError('signMdn: the message has no header/body separator');
  const fields = splitHeaderFields(canonical.subarray(0, end + 2).toString('latin1'));
  const body = canonical.subarray(end + 4);
  const isEntityField = (f: string): boolean => /^content-/i.test(f);
  const entity = Buffer.concat([Buffer.from(fields.filter(isEntityField).join('') + CRLF, 'latin1'), body]);
  const signature = signDetached(entity, identity, at);

  const outer = fields.filter((f) => !isEntityField(f));
  if (!outer.some((f) => /^mime-version\s*:/i.test(f))) outer.push(`MIME-Version: 1.0${CRLF}`);
  const boundary = freshBoundary([entity]);
  return Buffer.concat([
    Buffer.from(outer.join(''), 'latin1'),
    Buffer.from(
      `Content-Type: multipart/signed; protocol="application/pkcs7-signature";${CRLF} micalg=${SIGN_MICALG}; boundary="${boundary}"${CRLF}${CRLF}` +
        `--${boundary}${CRLF}`,
      'ascii',
    ),
    entity,
    Buffer.from(
      `${CRLF}--${boundary}${CRLF}` +
        `Content-Type: application/pkcs7-signature; name="smime.p7s"${CRLF}` +
        `Content-Transfer-Encoding: base64${CRLF}` +
        `Content-Disposition: attachment; filename="smime.p7s"${CRLF}${CRLF}` +
        `${wrapBase64(signature)}${CRLF}--${boundary}--${CRLF}`,
      'ascii',
    ),
  ]);
}

