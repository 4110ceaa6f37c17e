/**
 * Reads a request body with a hard size limit, counting while it streams: an oversized upload is
 * refused (INPUT_TOO_LARGE) as soon as the limit is crossed, never buffered whole. With a memory
 * budget, the bytes are taken from it as they arrive (INTAKE_BUSY when it is spent, the
 * declared Content-Length checked first); the caller gives `body.length` back once done.
 */
import type { IncomingMessage } from 'node:http';
import { PasserelleError } from '../errors.js';
import type { MemoryBudget } from '../util/memory-budget.js';

export async function readBody(req: IncomingMessage, limit: number, budget?: MemoryBudget): Promise<Buffer> {
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > limit) {
    req.resume(); // drain so the connection can answer
    throw new PasserelleError('INPUT_TOO_LARGE', `the body (${declared} bytes) exceeds the limit of ${limit} bytes`);
  }
  if (budget && Number.isFinite(declared) && !budget.fits(declared)) {
    req.resume();
    throw new PasserelleError('INTAKE_BUSY');
  }
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let failed = false;
    // On refusal the rest of the body is still read, and dropped: the client that is still
    // sending gets the answer instead of a reset connection.
    const fail = (err: unknown): void => {
      if (failed) return;
      failed = true;
      chunks.length = 0;
      budget?.give(size);
      reject(err);
    };
    req.on('data', (chunk: Buffer) => {
      if (failed) return;
      if (size + chunk.length > limit) fail(new PasserelleError('INPUT_TOO_LARGE', `the body exceeds the limit of ${limit} bytes`));
      else if (budget && !budget.take(chunk.length)) fail(new PasserelleError('INTAKE_BUSY'));
      else {
        size += chunk.length;
        chunks.push(chunk);
      }
    });
    req.once('end', () => {
      if (!failed) resolve(Buffer.concat(chunks, size));
    });
    const cutOff = (): void => fail(new PasserelleError('REQUEST_INVALID', 'the request body was cut off'));
    req.once('error', cutOff);
    req.once('close', () => {
      if (!req.complete) cutOff();
    });
  });
}
