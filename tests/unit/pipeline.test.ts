/**
 * The worker's bookkeeping, over a real SQLite journal and scripted stages (fakes of our own ports):
 * each stage's outcome recorded, transient failures retried with backoff, permanent ones
 * quarantined, crashes never escaping, attempts bounded.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { openJournal } from '../../adapters/journal/open.js';
import type { Journal } from '../../adapters/journal/port.js';
import type { Config } from '../../gateway/config.js';
import { PasserelleError } from '../../gateway/errors.js';
import { silentLogger } from '../../gateway/log.js';
import { retryDelayMs } from '../../gateway/pipeline/backoff.js';
import type { Stage, StageNeighbours } from '../../gateway/pipeline/stages.js';
import { Pipeline } from '../../gateway/pipeline/worker.js';

const settings: Config['pipeline'] = { concurrency: 1, leaseMs: 10_000, pollMs: 20, retryBaseMs: 1000, retryMaxMs: 60_000, maxAttempts: 3, maxWorkingBytes: 1024 * 1024 * 1024 };
const neighbours = {} as StageNeighbours;
const ok = (name: string, reached: Stage['reached'], result: Record<string, unknown> = {}): Stage => ({ name, reached, run: () => Promise.resolve(result) });
const failing = (name: string, err: unknown): Stage => ({ name, reached: 'identified', run: () => Promise.reject(err) });

let journal: Journal;
beforeEach(async () => {
  journal = await openJournal('sqlite::memory:');
});
afterEach(async () => {
  await journal.close();
});

const submit = async (): Promise<string> => (await journal.append({ kind: 'document', door: 'http', submitter: 't', contentType: 'application/xml', raw: Buffer.from('<x/>') })).id;
const pipeline = (stages: Stage[], extra: Partial<Config['pipeline']> = {}): Pipeline =>
  new Pipeline({ ...neighbours, journal, log: silentLogger, settings: { ...settings, ...extra }, stages, mail: { identity: undefined, trust: undefined, policy: { requireSignature: true, requireEncryption: false, plainDomains: [] } } });

describe('pipeline worker', () => {
  it('records every stage with its state, duration and result, and ends delivered', async () => {
    const id = await submit();
    const p = pipeline([ok('convert', 'converted', { documentKey: 'k' }), ok('route', 'delivered', { bundles: ['Bundle/1'] })]);
    expect(await p.runOnce()).toBe(true);
    const entry = await journal.get(id);
    expect(entry?.state).toBe('delivered');
    expect(entry?.result).toEqual({ documentKey: 'k', bundles: ['Bundle/1'] });
    const history = await journal.history(id);
    expect(history.map((h) => [h.state, h.outcome, h.stage])).toEqual([
      ['received', 'receive', undefined], ['converted', 'ok', 'convert'], ['delivered', 'ok', 'route'],
    ]);
    expect(history.every((h) => h.stage === undefined || typeof h.durationMs === 'number')).toBe(true);
    expect(await p.runOnce()).toBe(false);
  });

  it('quarantines a permanent failure with its code and stops there', async () => {
    const id = await submit();
    let after = 0;
    const p = pipeline([ok('convert', 'converted'), failing('identify', new PasserelleError('IDENTITY_COLLISION', 'birthDate differs')), { name: 'x', reached: 'delivered', run: () => Promise.resolve({ n: ++after }) }]);
    await p.runOnce();
    const entry = await journal.get(id);
    expect(entry).toMatchObject({ state: 'quarantined', errorCode: 'IDENTITY_COLLISION', error: 'birthDate differs' });
    expect(after).toBe(0);
  });

  it('retries a transient failure later, keeping the state reached, never as a verdict', async () => {
    const id = await submit();
    const p = pipeline([ok('convert', 'converted'), failing('identify', new PasserelleError('SRIR_UNAVAILABLE'))]);
    const before = Date.now();
    await p.runOnce();
    const entry = await journal.get(id);
    expect(entry).toMatchObject({ state: 'converted', errorCode: 'SRIR_UNAVAILABLE', attempts: 1 });
    expect(Date.parse(entry?.notBefore ?? '')).toBeGreaterThanOrEqual(before + 500);
    expect(await p.runOnce()).toBe(false); // not claimable before its time
    expect((await journal.history(id)).at(-1)).toMatchObject({ outcome: 'retry', stage: 'identify', errorCode: 'SRIR_UNAVAILABLE' });
  });

  it('turns an unexpected exception into INTERNAL_ERROR and gives up after maxAttempts', async () => {
    const id = await submit();
    const p = pipeline([failing('convert', new TypeError('boom'))], { retryBaseMs: 10, retryMaxMs: 10 });
    for (let i = 0; i < 3; i++) {
      await new Promise((r) => setTimeout(r, 25));
      expect(await p.runOnce()).toBe(true);
    }
    const entry = await journal.get(id);
    expect(entry).toMatchObject({ state: 'failed', errorCode: 'INTERNAL_ERROR', attempts: 3 });
    expect(entry?.error).not.toContain('boom'); // internal messages stay internal
  });

  it('runs loops that pick up new entries when notified, and stops gracefully', async () => {
    const p = pipeline([ok('route', 'delivered')], { pollMs: 60_000 });
    p.start();
    const id = await submit();
    p.notify();
    for (let i = 0; i < 100 && (await journal.get(id))?.state !== 'delivered'; i++) await new Promise((r) => setTimeout(r, 10));
    await p.stop();
    expect((await journal.get(id))?.state).toBe('delivered');
  });

  /** A last stage that takes 30 ms and counts how many entries are in it at once. */
  const counting = (name: string): { stage: Stage; peak: () => number; reset: () => void } => {
    let [active, peak] = [0, 0];
    const stage: Stage = {
      name, reached: 'delivered',
      async run() {
        peak = Math.max(peak, ++active);
        await new Promise((r) => setTimeout(r, 30));
        active--;
        return {};
      },
    };
    return { stage, peak: () => peak, reset: () => ([active, peak] = [0, 0]) };
  };

  it('keeps the entries in process within pipeline.maxWorkingBytes (10 times their size), one larger than it alone', async () => {
    const { stage: slow, peak, reset } = counting('route');
    /** Runs entries of these raw sizes with 4 loops; returns the most that were in process at once. */
    const peakFor = async (sizes: number[]): Promise<number> => {
      reset();
      const ids = await Promise.all(sizes.map(async (n) => (await journal.append({ kind: 'document', door: 'http', submitter: 't', contentType: 'application/xml', raw: Buffer.alloc(n, 0x20) })).id));
      const p = pipeline([slow], { concurrency: 4, maxWorkingBytes: 15_000 });
      p.start();
      for (let i = 0; i < 300 && (await journal.counts()).delivered < ids.length; i++) await new Promise((r) => setTimeout(r, 10));
      await p.stop();
      for (const id of ids) expect((await journal.get(id))?.state).toBe('delivered');
      return peak();
    };
    expect(await peakFor([100, 100, 100, 100])).toBe(4); // 1 000 bytes each: all fit
    await journal.close();
    journal = await openJournal('sqlite::memory:');
    expect(await peakFor([1000, 1000, 1000, 1000])).toBe(1); // 10 000 each: one at a time
    await journal.close();
    journal = await openJournal('sqlite::memory:');
    expect(await peakFor([2000, 100])).toBe(1); // 20 000 > the budget: runs, alone
  });

  it('grows an entry\'s share once its documents are known (30 times their size), as a zip inflates them', async () => {
    const { stage: convert, peak } = counting('convert');
    // 100 raw bytes that inflate into a 400-byte document: 12 000 bytes of a 15 000 budget each.
    const inflate: Stage = {
      name: 'extract', reached: 'extracted',
      run(work) {
        work.documents = [{ raw: Buffer.alloc(400, 0x20), source: 'zip', info: {} }];
        return Promise.resolve({});
      },
    };
    const ids = await Promise.all([1, 2, 3].map(async () => (await journal.append({ kind: 'message', door: 'http', submitter: 't', contentType: 'message/rfc822', raw: Buffer.alloc(100, 0x20) })).id));
    const p = pipeline([inflate, convert], { concurrency: 3, maxWorkingBytes: 15_000 });
    p.start();
    for (let i = 0; i < 300 && (await journal.counts()).delivered < ids.length; i++) await new Promise((r) => setTimeout(r, 10));
    await p.stop();
    for (const id of ids) expect((await journal.get(id))?.state).toBe('delivered');
    expect(peak()).toBe(1); // 1 000 bytes each when claimed: all three would have converted at once
  });
});

describe('retry delay', () => {
  it('grows exponentially, is capped, and keeps at least half the bound', () => {
    expect(retryDelayMs(1, 1000, 60_000, () => 0)).toBe(500);
    expect(retryDelayMs(1, 1000, 60_000, () => 1)).toBe(1000);
    expect(retryDelayMs(4, 1000, 60_000, () => 1)).toBe(8000);
    expect(retryDelayMs(40, 1000, 60_000, () => 1)).toBe(60_000);
  });
});
