/**
 * The conversion thread's side (conversion-thread.ts): converts each document it is sent and posts
 * back the Bundle and report, or the PasserelleError's code, detail and location — the catalogue
 * crosses the thread boundary as data, since an Error loses its class in a structured clone.
 */
import { parentPort } from 'node:worker_threads';
import { convertCda } from '../cda/convert.js';
import { PasserelleError } from '../errors.js';
import type { ConversionReply, ConversionRequest } from './conversion-thread.js';

const port = parentPort;
if (!port) throw new Error('conversion-worker.js runs as a worker thread');

port.on('message', ({ id, bytes }: ConversionRequest) => {
  let reply: ConversionReply;
  try {
    reply = { id, ok: convertCda(bytes) };
  } catch (err) {
    reply = err instanceof PasserelleError
      ? { id, refused: { code: err.code, detail: err.message, location: err.location } }
      : { id, crashed: { name: err instanceof Error ? err.name : typeof err, stack: err instanceof Error ? err.stack ?? '' : '' } };
  }
  port.postMessage(reply);
});
