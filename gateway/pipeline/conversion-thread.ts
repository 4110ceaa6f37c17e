/**
 * Large documents are converted on a thread of their own. Conversion is synchronous: a 45 MB CDA
 * held the event loop ≈ 2 s (SMTP sessions, /health and the other entries waited) and grew the
 * process's heap, which V8 keeps once grown. On the thread, the event loop only receives the
 * Bundle; the heap the conversion may take is capped (worker resourceLimits), so a document that
 * needs more ends as CDA_TOO_LARGE instead of taking the process down — which, its entry being
 * retried at every restart, would have been for ever. Documents go one at a time; the thread
 * starts with the first one and ends after a while without work, giving its memory back.
 */
import { existsSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import { convertCda, type ConversionResult } from '../cda/convert.js';
import { PasserelleError, type ErrorCode } from '../errors.js';
import { packageFile } from '../util/package-root.js';

export interface ConversionRequest {
  id: number;
  bytes: Uint8Array;
}

export type ConversionReply = { id: number } & (
  | { ok: ConversionResult }
  | { refused: { code: ErrorCode; detail: string; location: string | undefined } }
  | { crashed: { name: string; stack: string } }
);

export interface ConversionThreadOptions {
  /** The thread's heap (V8 old generation) in MB. */
  heapMb: number;
  /** Documents of this size and more go to the thread; smaller ones are converted inline (default 4 MB). */
  minBytes?: number;
  /** The thread ends after this long without a document (default 30 s). */
  idleMs?: number;
}

interface Job {
  id: number;
  bytes: Uint8Array;
  resolve: (result: ConversionResult) => void;
  reject: (err: unknown) => void;
}

/**
 * Below 4 MB a conversion takes tens of milliseconds inline, less than the thread's start (≈ 0.6 s,
 * most of it compiling the FHIR schema once more), which only larger documents make worth paying.
 */
const DEFAULT_MIN_BYTES = 4 * 1024 * 1024;
const DEFAULT_IDLE_MS = 30_000;

/**
 * The thread's script. Under the test runner this module is TypeScript source and Node cannot run
 * its sibling: the thread then runs the build's (`npm test` builds first).
 */
function workerScript(): URL {
  const sibling = new URL('./conversion-worker.js', import.meta.url);
  return existsSync(fileURLToPath(sibling)) ? sibling : pathToFileURL(packageFile('dist', 'gateway', 'pipeline', 'conversion-worker.js'));
}

export class ConversionThread {
  private readonly heapMb: number;
  private readonly minBytes: number;
  private readonly idleMs: number;
  private worker: Worker | undefined;
  private readonly queue: Job[] = [];
  private current: Job | undefined;
  private nextId = 1;
  private idleTimer: NodeJS.Timeout | undefined;

  constructor(options: ConversionThreadOptions) {
    this.heapMb = options.heapMb;
    this.minBytes = options.minBytes ?? DEFAULT_MIN_BYTES;
    this.idleMs = options.idleMs ?? DEFAULT_IDLE_MS;
  }

  /** Converts the document, on the thread when it is large; rejects with its PasserelleError. */
  convert(bytes: Uint8Array): Promise<ConversionResult> {
    if (bytes.byteLength < this.minBytes) {
      try {
        return Promise.resolve(convertCda(bytes));
      } catch (err) {
        return Promise.reject(err as Error);
      }
    }
    return new Promise((resolve, reject) => {
      this.queue.push({ id: this.nextId++, bytes, resolve, reject });
      this.next();
    });
  }

  /** Whether the thread is running (tests). */
  get running(): boolean {
    return this.worker !== undefined;
  }

  /** Ends the thread; documents still waiting are refused as INTERNAL_ERROR (transient: retried). */
  async close(): Promise<void> {
    clearTimeout(this.idleTimer);
    const worker = this.worker;
    this.worker = undefined;
    const pending = [...(this.current ? [this.current] : []), ...this.queue.splice(0)];
    this.current = undefined;
    for (const job of pending) job.reject(new PasserelleError('INTERNAL_ERROR', 'The conversion thread was stopped.'));
    await worker?.terminate();
  }

  private next(): void {
    if (this.current) return;
    const job = this.queue.shift();
    if (!job) {
      this.worker?.unref(); // waiting for work never keeps the process alive
      clearTimeout(this.idleTimer);
      this.idleTimer = setTimeout(() => void this.close(), this.idleMs).unref();
      return;
    }
    clearTimeout(this.idleTimer);
    this.current = job;
    const worker = this.start();
    worker.ref();
    worker.postMessage({ id: job.id, bytes: job.bytes } satisfies ConversionRequest);
  }

  private start(): Worker {
    if (this.worker) return this.worker;
    const worker = new Worker(workerScript(), { resourceLimits: { maxOldGenerationSizeMb: this.heapMb } });
    worker.on('message', (reply: ConversionReply) => this.settle(reply));
    worker.on('error', (err) => this.lost(worker, err));
    worker.on('exit', (code) => this.lost(worker, new Error(`the conversion thread exited with code ${code}`)));
    this.worker = worker;
    return worker;
  }

  private settle(reply: ConversionReply): void {
    const job = this.current;
    if (job?.id !== reply.id) return;
    this.current = undefined;
    if ('ok' in reply) job.resolve(reply.ok);
    else if ('refused' in reply) job.reject(new PasserelleError(reply.refused.code, reply.refused.detail, reply.refused.location));
    else job.reject(Object.assign(new Error(`conversion crashed (${reply.crashed.name})`), { stack: reply.crashed.stack }));
    this.next();
  }

  /** The thread died (out of memory, or a crash outside a conversion): the document in hand fails, the next one starts a new thread. */
  private lost(worker: Worker, err: Error): void {
    if (worker !== this.worker) return; // closed, or already handled by its 'error'
    this.worker = undefined;
    void worker.terminate();
    const job = this.current;
    this.current = undefined;
    if (job) {
      job.reject((err as { code?: string }).code === 'ERR_WORKER_OUT_OF_MEMORY'
        ? new PasserelleError('CDA_TOO_LARGE', `Converting the document (${job.bytes.byteLength} bytes) needs more memory than the ${this.heapMb} MB a conversion may take (pipeline.maxWorkingBytes).`)
        : err);
    }
    this.next();
  }
}
