/**
 * CDA ED values (observationMedia/value, nonXMLBody/text, ED observation values) read as FHIR
 * base64Binary. CDA R2 data types: mediaType defaults to text/plain, representation to TXT.
 * Base64 is read after stripping whitespace (published documents wrap it with newlines and tabs).
 */
import { attr, type XElement } from './xml.js';

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

export interface Payload {
  contentType: string;
  /** base64, never empty (FHIR ele-1). */
  data: string;
}

/** The payload of an ED value; undefined when it has a nullFlavor, no content, or B64 that is not base64. */
export function readPayload(value: XElement): Payload | undefined {
  if (attr(value, 'nullFlavor') !== undefined) return undefined;
  const contentType = attr(value, 'mediaType')?.trim() || 'text/plain';
  const raw = value.children.filter((c): c is string => typeof c === 'string').join('');
  if ((attr(value, 'representation') ?? 'TXT') !== 'B64') {
    const t = raw.trim();
    return t ? { contentType, data: Buffer.from(t, 'utf8').toString('base64') } : undefined;
  }
  const data = raw.replace(/\s+/g, '');
  if (!data || data.length % 4 !== 0 || !BASE64.test(data)) return undefined;
  return { contentType, data };
}

/** A PDF starts with `%PDF-` once decoded (ISO 32000-1 §7.5.2). */
export function isPdf(data: string): boolean {
  return Buffer.from(data.slice(0, 8), 'base64').subarray(0, 5).toString('latin1') === '%PDF-';
}

/** Bytes that base64 text decodes to. */
export function decodedSize(data: string): number {
  const padding = data.endsWith('==') ? 2 : data.endsWith('=') ? 1 : 0;
  return (data.length / 4) * 3 - padding;
}
