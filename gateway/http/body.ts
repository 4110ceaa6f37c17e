/**
 * Reads a request body with a hard size limit, counting while it streams: an oversized upload is
 * refused (INPUT_TOO_LARGE) as soon as the limit is crossed, never buffered whole.
 */
import type { IncomingMessage } from 'node:http';
import { PasserelleError } from '../errors.js';

export async function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > limit) {
    req.resume(); // drain so the connection can answer
    throw new PasserelleError('INPUT_TOO_LARGE', `the body (${declared} bytes) exceeds the limit of ${limit} bytes`);
  }
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > limit) {
      req.resume();
      throw new PasserelleError('INPUT_TOO_LARGE', `the body exceeds the limit of ${limit} bytes`);
    }
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks, size);
}
