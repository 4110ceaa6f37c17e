/**
 * Our own MIME split of a raw RFC 5322 / RFC 2045 message, working on the bytes as received.
 *
 * Why not mailparser: it cannot hand back the exact bytes of the first part of a
 * `multipart/signed`, and the signature covers those bytes (RFC 1847 §2.1, RFC 8551 §3.5). Here
 * every part keeps `raw`, a view of the input from its first header byte to the last byte before
 * the CRLF that precedes the next boundary (RFC 2046 §5.1.1: that CRLF belongs to the boundary).
 *
 * The input is hostile: nesting depth, part count and header sizes are bounded, every scan is
 * linear in the size of the part it scans, and no byte is copied except when decoding a
 * transfer encoding. Nothing here logs and nothing is fetched.
 */
import { isUtf8 } from 'node:buffer';
import libmime from 'libmime';
import { PasserelleError } from '../errors.js';

export interface MimeLimits {
  /** Bytes of the whole message (default 100 MB; the SMTP door has its own, smaller, limit). */
  maxBytes: number;
  /** Nesting of multiparts and encapsulated messages (default 32; real mail rarely exceeds 6). */
  maxDepth: number;
  /** Parts in the whole tree (default 1 000). */
  maxParts: number;
  /** Bytes of one part's header block (default 256 KB). */
  maxHeaderBytes: number;
  /** Header fields in one part (default 1 000). */
  maxHeaders: number;
}

export const DEFAULT_MIME_LIMITS: MimeLimits = {
  maxBytes: 100 * 1024 * 1024,
  maxDepth: 32,
  maxParts: 1000,
  maxHeaderBytes: 256 * 1024,
  maxHeaders: 1000,
};

export interface MimeHeader {
  /** The field name as written. */
  readonly name: string;
  /** The unfolded value (RFC 5322 §2.2.3: CRLF before WSP removed), surrounding space trimmed, not decoded. */
  readonly value: string;
  /** The field as received, folding included, without its final line break (a view of the input). */
  readonly raw: Buffer;
}

export interface ContentType {
  /** `type/subtype`, lower case. */
  readonly mediaType: string;
  /** Parameters with lower-case names; RFC 2231 continuations joined and decoded; `name` RFC 2047-decoded. */
  readonly params: Readonly<Record<string, string>>;
  /** True when the header was absent or unreadable and the RFC 2045 §5.2 / RFC 2046 §5.1.5 default applies. */
  readonly defaulted: boolean;
}

export interface ContentDisposition {
  /** `attachment`, `inline`… lower case. */
  readonly type: string;
  readonly params: Readonly<Record<string, string>>;
}

export interface MimePart {
  /** Position in the tree for diagnostics: '' for the root, then '1', '1.2'… (`.m` enters an encapsulated message). */
  readonly path: string;
  readonly depth: number;
  readonly headers: readonly MimeHeader[];
  readonly contentType: ContentType;
  readonly disposition: ContentDisposition | undefined;
  /** Content-Transfer-Encoding, lower case; '7bit' when absent (RFC 2045 §6.1). */
  readonly transferEncoding: string;
  /** From Content-Disposition `filename`, else Content-Type `name`. Untrusted: never use it as a path. */
  readonly filename: string | undefined;
  /** The exact bytes of this entity as received: headers, blank line and body (a view, not a copy). */
  readonly raw: Buffer;
  /** The header block as received, including the blank line that ends it. */
  readonly rawHeaders: Buffer;
  /** The body as received (still transfer-encoded). */
  readonly rawBody: Buffer;
  /** The body with its transfer encoding removed. */
  readonly content: Buffer;
  /** The body parts of a multipart, in order. */
  readonly children: readonly MimePart[];
  /** The parsed encapsulated message of a message/rfc822 (or message/global) part. */
  readonly message: MimePart | undefined;
  /** What was tolerated while reading this part (missing final boundary, bare LF…), for the journal. */
  readonly defects: readonly string[];
}

const CR = 0x0d;
const LF = 0x0a;
const SP = 0x20;
const HT = 0x09;
const DASH = 0x2d;

/** RFC 5322 §3.6.8 ftext (printable ASCII except colon); a space before the colon is tolerated (obs-optional). */
const FIELD_LINE = /^([!-9;-~]+)[ \t]*:/;
/** RFC 2045 §5.1 token "/" token. */
const MEDIA_TYPE = /^[a-z0-9!#$%&'*+.^_`|~-]+\/[a-z0-9!#$%&'*+.^_`|~-]+$/;
/** Longest structured header value given to libmime: RFC 2231 names are long, not this long. */
const MAX_STRUCTURED_HEADER = 64 * 1024;

interface Context {
  readonly limits: MimeLimits;
  parts: number;
}

/** Parses a raw message. Throws PasserelleError('MIME_MALFORMED') when it cannot be read or exceeds a limit. */
export function parseMessage(raw: Buffer, limits: Partial<MimeLimits> = {}): MimePart {
  const ctx: Context = { limits: { ...DEFAULT_MIME_LIMITS, ...limits }, parts: 0 };
  if (raw.length === 0) throw new PasserelleError('MIME_MALFORMED', 'The message is empty.');
  if (raw.length > ctx.limits.maxBytes) {
    throw new PasserelleError('MIME_MALFORMED', `The message is ${raw.length} bytes; the limit is ${ctx.limits.maxBytes}.`);
  }
  const root = parseEntity(raw, '', 0, false, ctx);
  if (root.headers.length === 0) throw new PasserelleError('MIME_MALFORMED', 'The message has no header fields.');
  return root;
}

/**
 * Reads only a message's own header block (RFC 5322 §2.1), for what needs the header fields and
 * not the body: the acknowledgement of an entry the unwrap stage already read whole.
 */
export function parseHeader(raw: Buffer, limits: Partial<MimeLimits> = {}): { readonly headers: readonly MimeHeader[] } {
  const ctx: Context = { limits: { ...DEFAULT_MIME_LIMITS, ...limits }, parts: 0 };
  const { headers } = readHeaderBlock(raw, '', 0, [], ctx);
  if (headers.length === 0) throw new PasserelleError('MIME_MALFORMED', 'The message has no header fields.');
  return { headers };
}

/** End of the line starting at `pos`: index of its LF (or the buffer's end), and where the next line starts. */
function lineAt(buf: Buffer, pos: number): { end: number; next: number } {
  const lf = buf.indexOf(LF, pos);
  if (lf < 0) return { end: buf.length, next: buf.length };
  return { end: lf > pos && buf[lf - 1] === CR ? lf - 1 : lf, next: lf + 1 };
}

function parseEntity(buf: Buffer, path: string, depth: number, inDigest: boolean, ctx: Context): MimePart {
  if (depth > ctx.limits.maxDepth) {
    throw new PasserelleError('MIME_MALFORMED', `Parts nest deeper than ${ctx.limits.maxDepth} levels.`, path);
  }
  if (++ctx.parts > ctx.limits.maxParts) {
    throw new PasserelleError('MIME_MALFORMED', `The message has more than ${ctx.limits.maxParts} parts.`, path);
  }
  const defects: string[] = [];
  const { headers, bodyStart } = readHeaderBlock(buf, path, depth, defects, ctx);
  const rawHeaders = buf.subarray(0, bodyStart);
  const rawBody = buf.subarray(bodyStart);

  const contentType = readContentType(headers, inDigest, defects);
  const disposition = readDisposition(headers, defects);
  const transferEncoding = (firstValue(headers, 'content-transfer-encoding') ?? '7bit').trim().toLowerCase() || '7bit';
  const filename = nonEmpty(disposition?.params['filename']) ?? nonEmpty(contentType.params['name']);

  const content = decodeTransfer(rawBody, transferEncoding, defects);
  const children: MimePart[] = [];
  let message: MimePart | undefined;

  if (contentType.mediaType.startsWith('multipart/')) {
    if (transferEncoding !== '7bit' && transferEncoding !== '8bit' && transferEncoding !== 'binary') {
      // RFC 2045 §6.4 forbids it; when a sender does it anyway, the parts are read from the decoded body.
      defects.push(`multipart body with Content-Transfer-Encoding ${transferEncoding}`);
    }
    const boundary = contentType.params['boundary'];
    if (!boundary) {
      defects.push('multipart without a boundary parameter: read as a single opaque part');
    } else {
      const digest = contentType.mediaType === 'multipart/digest';
      const prefix = path === '' ? '' : `${path}.`;
      for (const range of splitMultipart(content, boundary, defects)) {
        const childPath = `${prefix}${children.length + 1}`;
        children.push(parseEntity(content.subarray(range[0], range[1]), childPath, depth + 1, digest, ctx));
      }
    }
  } else if (contentType.mediaType === 'message/rfc822' || contentType.mediaType === 'message/global') {
    // A forwarded message (RFC 2046 §5.2.1; RFC 6532 §3.7 for message/global): parsed as a message.
    if (content.length > 0) message = parseEntity(content, `${path}${path === '' ? '' : '.'}m`, depth + 1, false, ctx);
  }

  return { path, depth, headers, contentType, disposition, transferEncoding, filename, raw: buf, rawHeaders, rawBody, content, children, message, defects };
}

/** Reads the header block: fields until the first empty line (RFC 5322 §2.1). */
function readHeaderBlock(buf: Buffer, path: string, depth: number, defects: string[], ctx: Context): { headers: MimeHeader[]; bodyStart: number } {
  const headers: MimeHeader[] = [];
  let pos = 0;
  // An mbox "From " separator line before the root headers is not a header field: skip it.
  if (depth === 0 && buf.subarray(0, 5).toString('latin1') === 'From ') {
    pos = lineAt(buf, 0).next;
    defects.push('mbox "From " line before the headers');
  }
  let fieldStart = -1;
  let fieldEnd = -1;
  const flush = (): void => {
    if (fieldStart < 0) return;
    if (headers.length >= ctx.limits.maxHeaders) {
      throw new PasserelleError('MIME_MALFORMED', `A part has more than ${ctx.limits.maxHeaders} header fields.`, path);
    }
    headers.push(readField(buf.subarray(fieldStart, fieldEnd)));
    fieldStart = -1;
  };
  while (pos < buf.length) {
    const { end, next } = lineAt(buf, pos);
    if (end === pos) {
      // The empty line: the body follows it.
      flush();
      return { headers, bodyStart: next };
    }
    const first = buf[pos];
    const continuation = (first === SP || first === HT) && fieldStart >= 0;
    if (!continuation && !FIELD_LINE.test(buf.subarray(pos, Math.min(end, pos + 1000)).toString('latin1'))) {
      // Not a field: the sender forgot the blank line (or this part has no headers). What is left is body.
      flush();
      defects.push(headers.length ? 'header block not ended by an empty line' : 'part without header fields');
      return { headers, bodyStart: pos };
    }
    // Checked before the line is decoded, so that one endless line is refused without being read.
    if (end > ctx.limits.maxHeaderBytes) {
      throw new PasserelleError('MIME_MALFORMED', `A header block exceeds ${ctx.limits.maxHeaderBytes} bytes.`, path);
    }
    if (continuation) {
      fieldEnd = end; // continuation of a folded field
    } else {
      flush();
      fieldStart = pos;
      fieldEnd = end;
    }
    pos = next;
  }
  flush();
  if (headers.length) defects.push('no body: the part ends inside its header block');
  return { headers, bodyStart: buf.length };
}

function readField(bytes: Buffer): MimeHeader {
  // Header bytes are ASCII by RFC 5322; RFC 6532 allows UTF-8; anything else is read as Latin-1 so
  // that no byte is lost.
  const text = bytes.toString(isUtf8(bytes) ? 'utf8' : 'latin1');
  const colon = text.indexOf(':');
  const name = text.slice(0, colon).trim();
  const value = text.slice(colon + 1).replace(/\r?\n(?=[ \t])/g, '').trim();
  return { name, value, raw: bytes };
}

function firstValue(headers: readonly MimeHeader[], lowerName: string): string | undefined {
  for (const h of headers) if (h.name.toLowerCase() === lowerName) return h.value;
  return undefined;
}

function countOf(headers: readonly MimeHeader[], lowerName: string): number {
  let n = 0;
  for (const h of headers) if (h.name.toLowerCase() === lowerName) n++;
  return n;
}

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value.trim() === '' ? undefined : value;
}

/** libmime joins and decodes RFC 2231 continuations; RFC 2047 words in `name`/`filename` (not allowed, common) are decoded here. */
function structured(value: string): { value: string; params: Record<string, string> } {
  const parsed = libmime.parseHeaderValue(value.length > MAX_STRUCTURED_HEADER ? value.slice(0, MAX_STRUCTURED_HEADER) : value);
  const params: Record<string, string> = Object.create(null) as Record<string, string>;
  for (const [key, v] of Object.entries(parsed.params)) {
    const k = key.toLowerCase();
    params[k] = k === 'name' || k === 'filename' ? decodeWords(v) : v;
  }
  return { value: parsed.value.trim().toLowerCase(), params };
}

function readContentType(headers: readonly MimeHeader[], inDigest: boolean, defects: string[]): ContentType {
  // RFC 2045 §5.2 default, or message/rfc822 inside multipart/digest (RFC 2046 §5.1.5).
  const fallback: ContentType = inDigest
    ? { mediaType: 'message/rfc822', params: {}, defaulted: true }
    : { mediaType: 'text/plain', params: { charset: 'us-ascii' }, defaulted: true };
  const value = firstValue(headers, 'content-type');
  if (value === undefined) return fallback;
  if (countOf(headers, 'content-type') > 1) defects.push('several Content-Type fields: the first is used');
  const parsed = structured(value);
  if (!MEDIA_TYPE.test(parsed.value)) {
    defects.push('unreadable Content-Type: the RFC 2045 default applies');
    return fallback;
  }
  return { mediaType: parsed.value, params: parsed.params, defaulted: false };
}

function readDisposition(headers: readonly MimeHeader[], defects: string[]): ContentDisposition | undefined {
  const value = firstValue(headers, 'content-disposition');
  if (value === undefined) return undefined;
  if (countOf(headers, 'content-disposition') > 1) defects.push('several Content-Disposition fields: the first is used');
  const parsed = structured(value);
  return { type: parsed.value, params: parsed.params };
}

/** Decodes RFC 2047 encoded words; an unknown charset or a broken word leaves the text as written. */
export function decodeWords(value: string): string {
  try {
    return libmime.decodeWords(value);
  } catch {
    return value;
  }
}

/**
 * Splits a multipart body into the byte ranges of its parts (RFC 2046 §5.1.1). A delimiter is
 * `--boundary` at the start of a line, followed by `--` (the close delimiter) or by optional
 * transport padding and the end of the line; the line break before it is part of the delimiter,
 * not of the preceding part. Tolerated: LF-only line ends, a missing close delimiter (the last
 * part runs to the end), preamble and epilogue (ignored, as RFC 2046 requires).
 */
function splitMultipart(body: Buffer, boundary: string, defects: string[]): Array<[number, number]> {
  const delimiter = Buffer.from(`--${boundary}`, 'utf8');
  const ranges: Array<[number, number]> = [];
  let partStart = -1;
  let from = 0;
  let closed = false;
  for (;;) {
    const at = body.indexOf(delimiter, from);
    if (at < 0) break;
    from = at + 1;
    if (at > 0 && body[at - 1] !== LF) continue;
    let p = at + delimiter.length;
    const isClose = body[p] === DASH && body[p + 1] === DASH;
    if (!isClose) {
      while (body[p] === SP || body[p] === HT) p++;
      if (p < body.length && body[p] !== CR && body[p] !== LF) continue; // a longer string that starts like the boundary
    }
    // The line break before the delimiter belongs to it.
    let end = at;
    if (end > 0 && body[end - 1] === LF) end--;
    if (end > 0 && body[end - 1] === CR) end--;
    if (partStart >= 0) ranges.push([partStart, Math.max(partStart, end)]);
    if (isClose) {
      closed = true;
      break;
    }
    partStart = lineAt(body, p).next;
    from = partStart;
  }
  if (partStart < 0) {
    defects.push('multipart without any boundary delimiter: no part read');
    return ranges;
  }
  if (!closed) {
    defects.push('multipart without its close delimiter: the last part runs to the end');
    ranges.push([partStart, body.length]);
  }
  return ranges;
}

function decodeTransfer(body: Buffer, encoding: string, defects: string[]): Buffer {
  switch (encoding) {
    case '7bit':
    case '8bit':
    case 'binary':
      return body;
    case 'base64':
      return decodeBase64(body);
    case 'quoted-printable':
      return decodeQuotedPrintable(body);
    default:
      // RFC 2045 §6.4: an unknown encoding means the body is opaque; keep it as received.
      defects.push(`unknown Content-Transfer-Encoding "${encoding.slice(0, 40)}": body kept as received`);
      return body;
  }
}

const B64 = new Int16Array(256).fill(-1);
for (let i = 0; i < 64; i++) B64['ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/'.charCodeAt(i)] = i;
B64[0x2d] = 62; // '-' and '_': the URL-safe alphabet, seen from some senders
B64[0x5f] = 63;
const PAD = 0x3d;

/**
 * Base64 (RFC 2045 §6.8) as written in real mail: characters outside the alphabet (line breaks,
 * spaces, tabs) are ignored, as §6.8 says, and padding in the middle (encoders that pad every
 * line) ends a quantum instead of ending the decoding, which Node's decoder would do.
 */
export function decodeBase64(input: Uint8Array): Buffer {
  // Fast path, Node's native decoder, which skips characters outside the alphabet as §6.8 asks
  // but stops at the first '=': valid when padding only ends the stream.
  const eq = input.indexOf(PAD);
  let paddingOnlyAtEnd = true;
  if (eq >= 0) {
    for (let i = eq; i < input.length; i++) {
      const c = input[i] as number;
      if ((B64[c] as number) >= 0) {
        paddingOnlyAtEnd = false;
        break;
      }
    }
  }
  if (paddingOnlyAtEnd) return decodeInSlices(input) ?? Buffer.from(latin1(input), 'base64');
  const out = Buffer.allocUnsafe(Math.ceil((input.length * 3) / 4));
  let n = 0;
  let acc = 0;
  let bits = 0;
  for (let i = 0; i < input.length; i++) {
    const c = input[i] as number;
    const v = B64[c] as number;
    if (v < 0) {
      if (c === PAD) {
        acc = 0;
        bits = 0;
      }
      continue;
    }
    acc = ((acc << 6) | v) & 0xffffff;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[n++] = (acc >> bits) & 0xff;
    }
  }
  return out.subarray(0, n);
}

const latin1 = (bytes: Uint8Array): string => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('latin1');

/** Characters of base64 text decoded per native call: above ≈ 64 K a string is a large V8 object, whose fresh pages cost more than the decoding. */
const SLICE_CHARS = 48 * 1024;

/**
 * Node's decoder fed slices of whole lines instead of one string of the whole body (≈ 4× faster
 * for a 300 KB body, measured). Only for the layout encoders write, lines of one length that is a
 * multiple of 4 (76 in RFC 2045 §6.8) each ended by CRLF or LF, so that every slice holds whole
 * quanta; each slice's line ends and decoded length are checked, and anything else (a space in a
 * line, a short line before the last slice) answers undefined: the caller then decodes the whole.
 */
function decodeInSlices(input: Uint8Array): Buffer | undefined {
  if (input.length <= SLICE_CHARS) return undefined;
  const lf = input.indexOf(LF);
  const eol = input[lf - 1] === CR ? 2 : 1;
  const width = lf + 1 - eol;
  if (lf < 0 || width <= 0 || width % 4 !== 0) return undefined;
  const stride = width + eol;
  const lines = Math.max(1, Math.floor(SLICE_CHARS / stride));
  const sliceBytes = lines * stride;
  const out = Buffer.allocUnsafe(Math.ceil((input.length * 3) / 4));
  let written = 0;
  let at = 0;
  for (; input.length - at > sliceBytes; at += sliceBytes) {
    for (let end = at + width; end < at + sliceBytes; end += stride) {
      if (input[end + eol - 1] !== LF || (eol === 2 && input[end] !== CR)) return undefined;
    }
    const n = out.write(latin1(input.subarray(at, at + sliceBytes)), written, 'base64');
    if (n !== (lines * width * 3) / 4) return undefined;
    written += n;
  }
  written += out.write(latin1(input.subarray(at)), written, 'base64');
  return out.subarray(0, written);
}

function hexValue(c: number | undefined): number {
  if (c === undefined) return -1;
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  if (c >= 0x41 && c <= 0x46) return c - 0x37;
  if (c >= 0x61 && c <= 0x66) return c - 0x57; // lower case: not canonical (§6.7 rule 1), accepted
  return -1;
}

/**
 * Quoted-printable (RFC 2045 §6.7): `=XX` octets, `=` at line end is a soft break, trailing
 * whitespace on a line is transport padding and is removed (rule 3), a `=` not followed by two hex
 * digits is kept as written (the robustness advice of §6.7 note 1). Line breaks are kept as written.
 */
export function decodeQuotedPrintable(input: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(input.length);
  let n = 0;
  let i = 0;
  while (i < input.length) {
    const c = input[i] as number;
    if (c === PAD) {
      const h = hexValue(input[i + 1]);
      const l = hexValue(input[i + 2]);
      if (h >= 0 && l >= 0) {
        out[n++] = (h << 4) | l;
        i += 3;
        continue;
      }
      // Soft line break: '=' then optional padding then CRLF or LF.
      let j = i + 1;
      while (input[j] === SP || input[j] === HT) j++;
      if (input[j] === CR && input[j + 1] === LF) {
        i = j + 2;
        continue;
      }
      if (input[j] === LF || j >= input.length) {
        i = j + 1;
        continue;
      }
      out[n++] = c;
      i++;
      continue;
    }
    if (c === SP || c === HT) {
      // Whitespace is kept unless only whitespace follows up to the end of the line.
      let j = i;
      while (input[j] === SP || input[j] === HT) j++;
      if (j >= input.length || input[j] === LF || (input[j] === CR && input[j + 1] === LF)) {
        i = j;
        continue;
      }
      while (i < j) out[n++] = input[i++] as number;
      continue;
    }
    out[n++] = c;
    i++;
  }
  return out.subarray(0, n);
}

/**
 * The canonical form of signed content (RFC 8551 §3.1.1, RFC 5751 §3.1.1): lines end in CRLF. A
 * message that travelled through a system storing LF-only lines must be turned back before the
 * signature over it is checked. Returns the input itself when it is already canonical.
 */
export function canonicalCrlf(bytes: Buffer): Buffer {
  let bare = 0;
  for (let i = bytes.indexOf(LF); i >= 0; i = bytes.indexOf(LF, i + 1)) if (i === 0 || bytes[i - 1] !== CR) bare++;
  if (bare === 0) return bytes;
  const out = Buffer.allocUnsafe(bytes.length + bare);
  let n = 0;
  let from = 0;
  for (let i = bytes.indexOf(LF); i >= 0; i = bytes.indexOf(LF, i + 1)) {
    if (i === 0 || bytes[i - 1] !== CR) {
      n += bytes.copy(out, n, from, i);
      out[n++] = CR;
      from = i;
    }
  }
  n += bytes.copy(out, n, from);
  return out.subarray(0, n);
}

// ---- header access ----

/** Values of every field of that name (case-insensitive), unfolded, not decoded. */
export function headerValues(part: Pick<MimePart, 'headers'>, name: string): string[] {
  const lower = name.toLowerCase();
  return part.headers.filter((h) => h.name.toLowerCase() === lower).map((h) => h.value);
}

/** Value of the first field of that name, unfolded, not decoded. */
export function headerValue(part: Pick<MimePart, 'headers'>, name: string): string | undefined {
  return firstValue(part.headers, name.toLowerCase());
}

/** Value of the first field of that name with RFC 2047 encoded words decoded (for unstructured fields: Subject…). */
export function decodedHeader(part: Pick<MimePart, 'headers'>, name: string): string | undefined {
  const v = headerValue(part, name);
  return v === undefined ? undefined : decodeWords(v);
}

// ---- what the message carries ----

export type AttachmentKind = 'xdm' | 'cda' | 'pdf';

export interface Attachment {
  readonly kind: AttachmentKind;
  readonly part: MimePart;
  /** Untrusted: never use it as a path. */
  readonly filename: string | undefined;
  readonly mediaType: string;
  /** The decoded bytes. */
  readonly content: Buffer;
  /** Inside an encapsulated message/rfc822 (a forward), not sent as the message's own attachment. */
  readonly forwarded: boolean;
}

const ZIP_TYPES = new Set(['application/zip', 'application/x-zip-compressed', 'application/x-zip']);
const XML_TYPES = new Set(['text/xml', 'application/xml', 'application/hl7-cda+xml', 'application/hl7-v3+xml']);
const PDF_TYPES = new Set(['application/pdf', 'application/x-pdf']);
const GENERIC_TYPES = new Set(['application/octet-stream', 'application/binary', 'application/unknown']);
const PKCS7_MIME = new Set(['application/pkcs7-mime', 'application/x-pkcs7-mime']);

/**
 * The candidate documents of a message: IHE XDM zips, bare CDA XML, PDFs. Walks multiparts and
 * forwarded messages; does not look inside S/MIME `application/pkcs7-mime` bodies (opaque until
 * decrypted or unwrapped: parse the result again). Classification uses the media type, then the
 * file name, then magic bytes for generic types, because senders label attachments inconsistently
 * and often leave out Content-Disposition.
 */
export function findAttachments(root: MimePart): Attachment[] {
  const found: Attachment[] = [];
  const walk = (part: MimePart, forwarded: boolean): void => {
    if (part.children.length) {
      for (const c of part.children) walk(c, forwarded);
      return;
    }
    if (part.message) {
      walk(part.message, true);
      return;
    }
    const kind = classify(part);
    if (kind) found.push({ kind, part, filename: part.filename, mediaType: part.contentType.mediaType, content: part.content, forwarded });
  };
  walk(root, false);
  return found;
}

function startsWith(bytes: Buffer, magic: string): boolean {
  return bytes.subarray(0, magic.length).toString('latin1') === magic;
}

function classify(part: MimePart): AttachmentKind | undefined {
  const type = part.contentType.mediaType;
  if (type.startsWith('multipart/') || type.startsWith('message/') || PKCS7_MIME.has(type)) return undefined;
  const name = (part.filename ?? '').trim().toLowerCase();
  const generic = GENERIC_TYPES.has(type);
  if (name === 'ihe_xdm.zip' || ZIP_TYPES.has(type)) return 'xdm';
  if (name.endsWith('.zip') && (generic || part.contentType.defaulted)) return 'xdm';
  if (PDF_TYPES.has(type) || ((generic || name.endsWith('.pdf')) && startsWith(part.content, '%PDF-'))) return 'pdf';
  if (generic && startsWith(part.content, 'PK\x03\x04')) return 'xdm';
  const xmlish = XML_TYPES.has(type) || name.endsWith('.xml') || (generic && name === '');
  if (xmlish && isClinicalDocument(part.content)) return 'cda';
  return undefined;
}

/**
 * Whether the bytes hold an HL7 CDA `ClinicalDocument` element: a cheap textual probe, the XML
 * parser decides later. The element may be nested (ANS examples wrap it in `xsl:stylesheet`), so
 * the whole content is searched, in one linear pass.
 */
export function isClinicalDocument(bytes: Buffer): boolean {
  let text: Buffer = bytes;
  if ((bytes[0] === 0xff && bytes[1] === 0xfe) || (bytes[0] === 0xfe && bytes[1] === 0xff)) {
    // UTF-16 XML: re-encode to search it (rare; bounded by the message size).
    const le = bytes[0] === 0xff;
    const body = Buffer.from(bytes.subarray(2, bytes.length - (bytes.length % 2)));
    if (!le) body.swap16();
    text = Buffer.from(body.toString('utf16le'), 'utf8');
  }
  const needle = Buffer.from('ClinicalDocument', 'latin1');
  for (let i = text.indexOf(needle); i >= 0; i = text.indexOf(needle, i + 1)) {
    const before = text[i - 1];
    const after = text[i + needle.length];
    const opens = before === 0x3c || (before === 0x3a && isOpeningPrefix(text, i - 1)); // '<' or '<prefix:'
    const ends = after === 0x3e || after === SP || after === HT || after === CR || after === LF || after === 0x2f;
    if (opens && ends) return true;
  }
  return false;
}

/** Whether the ':' at `colon` ends a `<prefix` (an NCName), as in `<hl7:ClinicalDocument`. */
function isOpeningPrefix(text: Buffer, colon: number): boolean {
  let i = colon - 1;
  const stop = Math.max(0, colon - 64);
  while (i >= stop) {
    const c = text[i] as number;
    if (c === 0x3c) return i < colon - 1;
    const nameChar = (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a) || c === 0x2d || c === 0x2e || c === 0x5f;
    if (!nameChar) return false;
    i--;
  }
  return false;
}

// ---- S/MIME layers, described (the cryptography is gateway/smime/'s) ----

export interface Pkcs7MimeLayer {
  readonly kind: 'pkcs7-mime';
  readonly part: MimePart;
  /** The `smime-type` parameter (RFC 8551 §3.2.2), lower case; undefined when absent (the CMS content type then decides). */
  readonly smimeType: string | undefined;
  /** `application/x-pkcs7-mime`, the pre-RFC 5751 name senders still use (RFC 8551 §3.2.1). */
  readonly legacyType: boolean;
  /** Recognised by its `.p7m` name under a generic media type (RFC 8551 §3.2.1 names the file, not only the type). */
  readonly byFilename: boolean;
  readonly forwarded: boolean;
}

export interface MultipartSignedLayer {
  readonly kind: 'multipart-signed';
  readonly part: MimePart;
  /** The `protocol` parameter, lower case (RFC 1847 §2.1; `application/pkcs7-signature` per RFC 8551 §3.5). */
  readonly protocol: string | undefined;
  /** The `micalg` values, lower case (RFC 8551 §3.5.3.2: `sha-256`…). */
  readonly micalg: string[];
  /** The signed entity: its `raw` is what the signature covers (to be put in CRLF form, see canonicalCrlf). */
  readonly content: MimePart | undefined;
  /** The signature part (`smime.p7s`); its `content` is the DER CMS SignedData. */
  readonly signature: MimePart | undefined;
  /** RFC 1847 §2.1 wants exactly two body parts; anything else is stated here and is for the verifier to refuse. */
  readonly problem: string | undefined;
  readonly forwarded: boolean;
}

export type SecurityLayer = Pkcs7MimeLayer | MultipartSignedLayer;

/** The S/MIME structures of a message, outermost first, without any cryptography. */
export function describeSecurity(root: MimePart): SecurityLayer[] {
  const layers: SecurityLayer[] = [];
  const walk = (part: MimePart, forwarded: boolean): void => {
    const type = part.contentType.mediaType;
    const byFilename = GENERIC_TYPES.has(type) && /\.p7m$/i.test(part.filename?.trim() ?? '');
    if (PKCS7_MIME.has(type) || byFilename) {
      const smimeType = part.contentType.params['smime-type']?.trim().toLowerCase() || undefined;
      layers.push({ kind: 'pkcs7-mime', part, smimeType, legacyType: type === 'application/x-pkcs7-mime', byFilename, forwarded });
      return;
    }
    if (type === 'multipart/signed') {
      const protocol = part.contentType.params['protocol']?.trim().toLowerCase() || undefined;
      const micalg = (part.contentType.params['micalg'] ?? '')
        .split(',')
        .map((m) => m.trim().replace(/^"|"$/g, '').toLowerCase())
        .filter((m) => m !== '');
      const problem = part.children.length === 2 ? undefined : `multipart/signed with ${part.children.length} body parts instead of 2`;
      layers.push({ kind: 'multipart-signed', part, protocol, micalg, content: part.children[0], signature: part.children[1], problem, forwarded });
    }
    for (const c of part.children) walk(c, forwarded);
    if (part.message) walk(part.message, true);
  };
  walk(root, false);
  return layers;
}

/** Header fields with their folding and final CRLF (latin1 keeps the bytes as they are). */
export function splitHeaderFields(block: string): string[] {
  const fields: string[] = [];
  for (const line of block.split(/(?<=\r\n)/)) {
    if (line === '') continue;
    if ((line.startsWith(' ') || line.startsWith('\t')) && fields.length > 0) fields[fields.length - 1] += line;
    else fields.push(line);
  }
  return fields;
}
