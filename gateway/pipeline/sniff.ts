/**
 * Content sniffing: what is posted as a CDA document, or found as one in a mail, must at least look
 * like XML. A PDF, a JSON body, an empty or binary body gets INPUT_NOT_CDA at once instead of a
 * parse error later (WHATWG MIME Sniffing §7 patterns: "%PDF-", a UTF-8/16 BOM, "<").
 */
import { PasserelleError } from '../errors.js';

/** `what` names the input in the error's detail: "the body" (HTTP), else a document of a mail. */
export function assertLooksLikeXml(bytes: Uint8Array, what = 'the body'): void {
  let i = 0;
  if (bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf) i = 3;
  else if ((bytes[0] === 0xfe && bytes[1] === 0xff) || (bytes[0] === 0xff && bytes[1] === 0xfe)) return; // UTF-16: the parser decides
  while (i < bytes.length && (bytes[i] === 0x20 || bytes[i] === 0x09 || bytes[i] === 0x0a || bytes[i] === 0x0d)) i++;
  if (i >= bytes.length) throw new PasserelleError('INPUT_NOT_CDA', `${what} is empty`);
  const first = bytes[i];
  if (first === 0x3c) return; // '<'
  const head = Buffer.from(bytes.subarray(i, i + 5)).toString('latin1');
  if (head === '%PDF-') throw new PasserelleError('INPUT_NOT_CDA', `${what} is a PDF document, not a CDA: wrap it in a CDA level-1 document (nonXMLBody)`);
  if (first === 0x7b || first === 0x5b) throw new PasserelleError('INPUT_NOT_CDA', `${what} is JSON, not a CDA XML document`);
  throw new PasserelleError('INPUT_NOT_CDA', `${what} does not start with an XML tag`);
}
