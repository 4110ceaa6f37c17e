/**
 * The few DER encoders the gateway's own signatures need (sign.ts). DER, not BER: signed
 * attributes must be DER-encoded to be hashed (RFC 5652 §5.4), and definite lengths keep the
 * output readable by every verifier.
 */
import { TAG } from './der.js';

function length(n: number): Buffer {
  if (n < 0x80) return Buffer.from([n]);
  const bytes: number[] = [];
  for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v & 0xff);
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}

export function tlv(tag: number, ...parts: Buffer[]): Buffer {
  const body = Buffer.concat(parts);
  return Buffer.concat([Buffer.from([tag]), length(body.length), body]);
}

export const sequence = (...parts: Buffer[]): Buffer => tlv(TAG.SEQUENCE, ...parts);

/** DER SET OF: elements sorted by their encodings (X.690 §11.6). */
export function setOf(parts: Buffer[], tag: number = TAG.SET): Buffer {
  return tlv(tag, ...[...parts].sort(Buffer.compare));
}

export const octetString = (v: Buffer): Buffer => tlv(TAG.OCTET_STRING, v);

/** INTEGER from a small non-negative number or from the unsigned magnitude bytes. */
export function integer(v: number | Buffer): Buffer {
  const hex = typeof v === 'number' ? v.toString(16) : '';
  let bytes = typeof v === 'number' ? Buffer.from(hex.length % 2 ? `0${hex}` : hex, 'hex') : v;
  while (bytes.length > 1 && bytes[0] === 0 && ((bytes[1] as number) & 0x80) === 0) bytes = bytes.subarray(1);
  if (((bytes[0] as number) & 0x80) !== 0) bytes = Buffer.concat([Buffer.from([0]), bytes]);
  return tlv(TAG.INTEGER, bytes);
}

export function oid(dotted: string): Buffer {
  const arcs = dotted.split('.').map(Number);
  const out: number[] = [];
  const [a = 0, b = 0, ...rest] = arcs;
  for (const arc of [a * 40 + b, ...rest]) {
    const chunk = [arc & 0x7f];
    for (let v = Math.floor(arc / 128); v > 0; v = Math.floor(v / 128)) chunk.unshift(0x80 | (v & 0x7f));
    out.push(...chunk);
  }
  return tlv(TAG.OID, Buffer.from(out));
}

/** RFC 5652 §11.3: UTCTime through 2049, GeneralizedTime after (as RFC 5280 §4.1.2.5). */
export function time(d: Date): Buffer {
  const iso = d.toISOString().replace(/[-:T]/g, '').replace(/\.\d+Z$/, 'Z');
  const year = d.getUTCFullYear();
  return year >= 1950 && year < 2050
    ? tlv(TAG.UTC_TIME, Buffer.from(iso.slice(2), 'latin1'))
    : tlv(TAG.GENERALIZED_TIME, Buffer.from(iso, 'latin1'));
}

/** AlgorithmIdentifier; parameters absent unless given (RFC 5754 §2 for SHA-2). */
export const algorithm = (dotted: string, params?: Buffer): Buffer => sequence(oid(dotted), ...(params ? [params] : []));

export const NULL = Buffer.from([TAG.NULL, 0]);
