/**
 * A small, strict, bounded reader for the DER/BER that CMS (RFC 5652) travels in.
 *
 * Why BER at all: RFC 5652 §1.1 allows BER for everything but the signed attributes, and
 * OpenSSL (like most mail clients) streams S/MIME output with indefinite lengths and
 * chunked OCTET STRINGs. So indefinite lengths are accepted — only on constructed elements
 * (X.690 §8.1.3.6) — and every other liberty is refused: high tag numbers (unused by CMS),
 * lengths over 4 octets, anything running past its parent, nesting deeper than MAX_DEPTH.
 * Every failure is SMIME_MALFORMED; nothing here allocates more than the input.
 */
import { PasserelleError } from '../errors.js';

/** CMS nests about a dozen levels; certificates parsed separately start again at 0. */
const MAX_DEPTH = 40;

export const TAG = {
  BOOLEAN: 0x01,
  INTEGER: 0x02,
  BIT_STRING: 0x03,
  OCTET_STRING: 0x04,
  NULL: 0x05,
  OID: 0x06,
  UTF8_STRING: 0x0c,
  IA5_STRING: 0x16,
  UTC_TIME: 0x17,
  GENERALIZED_TIME: 0x18,
  SEQUENCE: 0x30,
  SET: 0x31,
} as const;

/** Context-specific tag octet: [n] IMPLICIT primitive, or [n] constructed (EXPLICIT or IMPLICIT SEQUENCE/SET). */
export const ctx = (n: number, constructed: boolean): number => 0x80 | (constructed ? 0x20 : 0) | n;

export interface Tlv {
  readonly buf: Buffer;
  /** The identifier octet (class | constructed | number). */
  readonly tag: number;
  readonly constructed: boolean;
  readonly start: number;
  readonly contentStart: number;
  /** For an indefinite length: the offset of the end-of-contents octets. */
  readonly contentEnd: number;
  readonly end: number;
  readonly depth: number;
}

export function malformed(detail: string): PasserelleError {
  return new PasserelleError('SMIME_MALFORMED', detail);
}

/** Reads the one element at `offset`, not past `limit`. */
export function readTlv(buf: Buffer, offset = 0, limit = buf.length, depth = 0): Tlv {
  if (depth > MAX_DEPTH) throw malformed('ASN.1 nesting too deep');
  let p = offset;
  if (p + 2 > limit) throw malformed('truncated ASN.1 header');
  const tag = buf[p++] as number;
  if ((tag & 0x1f) === 0x1f) throw malformed('high-tag-number form not used by CMS');
  const constructed = (tag & 0x20) !== 0;
  const first = buf[p++] as number;
  if (first === 0x80) {
    if (!constructed) throw malformed('indefinite length on a primitive element');
    // X.690 §8.1.3.6: contents run until the end-of-contents octets 00 00.
    let q = p;
    for (;;) {
      if (q + 2 > limit) throw malformed('indefinite length without end-of-contents');
      if (buf[q] === 0 && buf[q + 1] === 0) break;
      q = readTlv(buf, q, limit, depth + 1).end;
    }
    return { buf, tag, constructed, start: offset, contentStart: p, contentEnd: q, end: q + 2, depth };
  }
  let length = first;
  if (first & 0x80) {
    const n = first & 0x7f;
    if (n > 4) throw malformed('ASN.1 length over 4 octets');
    if (p + n > limit) throw malformed('truncated ASN.1 length');
    length = 0;
    for (let i = 0; i < n; i++) length = length * 256 + (buf[p++] as number);
  }
  if (p + length > limit) throw malformed('ASN.1 element runs past its container (truncated?)');
  return { buf, tag, constructed, start: offset, contentStart: p, contentEnd: p + length, end: p + length, depth };
}

/** Reads a whole buffer as exactly one element: trailing bytes are refused. */
export function readRoot(buf: Buffer): Tlv {
  const t = readTlv(buf);
  if (t.end !== buf.length) throw malformed('trailing bytes after the ASN.1 element');
  return t;
}

export function children(t: Tlv): Tlv[] {
  if (!t.constructed) throw malformed('expected a constructed element');
  const out: Tlv[] = [];
  for (let p = t.contentStart; p < t.contentEnd;) {
    const c = readTlv(t.buf, p, t.contentEnd, t.depth + 1);
    out.push(c);
    p = c.end;
  }
  return out;
}

export const raw = (t: Tlv): Buffer => t.buf.subarray(t.start, t.end);
export const content = (t: Tlv): Buffer => t.buf.subarray(t.contentStart, t.contentEnd);

export function expectTag(t: Tlv | undefined, tag: number, what: string): Tlv {
  if (!t) throw malformed(`missing ${what}`);
  if (t.tag !== tag) throw malformed(`${what}: unexpected tag 0x${t.tag.toString(16)}`);
  return t;
}

/**
 * Walks the fields of a SEQUENCE in order, with OPTIONAL fields recognised by their tag.
 * `done()` refuses unexpected trailing fields.
 */
export class Fields {
  private readonly items: Tlv[];
  private i = 0;

  constructor(t: Tlv, readonly what: string) {
    this.items = children(t);
  }

  next(tag: number, what: string): Tlv {
    return expectTag(this.items[this.i++], tag, `${this.what}.${what}`);
  }

  /** Any tag (a CHOICE); the caller dispatches on it. */
  any(what: string): Tlv {
    const t = this.items[this.i++];
    if (!t) throw malformed(`missing ${this.what}.${what}`);
    return t;
  }

  optional(tag: number): Tlv | undefined {
    const t = this.items[this.i];
    if (t?.tag !== tag) return undefined;
    this.i++;
    return t;
  }

  done(): void {
    if (this.i !== this.items.length) throw malformed(`${this.what}: unexpected trailing field`);
  }
}

/**
 * OCTET STRING contents, joining BER constructed chunks (X.690 §8.7.3) — how streamed CMS
 * carries eContent and encryptedContent. Works under an IMPLICIT tag too.
 */
export function octets(t: Tlv): Buffer {
  if (!t.constructed) return content(t);
  return Buffer.concat(children(t).map((c) => {
    if ((c.tag & 0xdf) !== TAG.OCTET_STRING) throw malformed('constructed OCTET STRING with a non-OCTET STRING chunk');
    return octets(c);
  }));
}

export function integerBytes(t: Tlv): Buffer {
  expectTag(t, TAG.INTEGER, 'INTEGER');
  const v = content(t);
  if (v.length === 0) throw malformed('empty INTEGER');
  return v;
}

/** Small non-negative INTEGER (versions, lengths). */
export function smallInteger(t: Tlv): number {
  const v = integerBytes(t);
  if (v.length > 4 || ((v[0] as number) & 0x80) !== 0) throw malformed('INTEGER out of range');
  return v.reduce((n, b) => n * 256 + b, 0);
}

/** A serial number as unsigned magnitude, so 00 81 and 81 compare equal (RFC 5280 §4.1.2.2 serials are positive). */
export function unsignedBytes(v: Buffer): Buffer {
  let i = 0;
  while (i < v.length - 1 && v[i] === 0) i++;
  return v.subarray(i);
}

export function oid(t: Tlv): string {
  expectTag(t, TAG.OID, 'OBJECT IDENTIFIER');
  const v = content(t);
  if (v.length === 0 || v.length > 64) throw malformed('bad OBJECT IDENTIFIER length');
  const arcs: number[] = [];
  let n = 0;
  for (let i = 0; i < v.length; i++) {
    const b = v[i] as number;
    if (n === 0 && b === 0x80) throw malformed('non-minimal OID arc');
    n = n * 128 + (b & 0x7f);
    if (n > Number.MAX_SAFE_INTEGER / 128) throw malformed('OID arc too large');
    if ((b & 0x80) === 0) {
      if (arcs.length === 0) arcs.push(n < 80 ? Math.floor(n / 40) : 2, n < 80 ? n % 40 : n - 80);
      else arcs.push(n);
      n = 0;
    } else if (i === v.length - 1) throw malformed('truncated OID');
  }
  return arcs.join('.');
}

export function bitString(t: Tlv): { bytes: Buffer; unusedBits: number } {
  expectTag(t, TAG.BIT_STRING, 'BIT STRING');
  const v = content(t);
  const unused = v[0];
  if (unused === undefined || unused > 7) throw malformed('bad BIT STRING');
  return { bytes: v.subarray(1), unusedBits: unused };
}

/** UTCTime / GeneralizedTime as RFC 5280 §4.1.2.5 profiles them (Z, seconds present). */
export function time(t: Tlv): Date {
  const s = content(t).toString('latin1');
  const m = t.tag === TAG.UTC_TIME
    ? /^(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z$/.exec(s)
    : t.tag === TAG.GENERALIZED_TIME ? /^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(?:\.\d+)?Z$/.exec(s) : null;
  if (!m) throw malformed('bad time value');
  let year = Number(m[1]);
  // RFC 5280 §4.1.2.5.1: two-digit years 50–99 are 19xx, 00–49 are 20xx.
  if (t.tag === TAG.UTC_TIME) year += year >= 50 ? 1900 : 2000;
  const d = new Date(Date.UTC(year, Number(m[2]) - 1, Number(m[3]), Number(m[4]), Number(m[5]), Number(m[6])));
  if (Number.isNaN(d.getTime())) throw malformed('bad time value');
  return d;
}
