/**
 * Shared pieces of the benchmarks: the result shape, the corpus location and a timing loop
 * (warm-up, then a fixed duration, in process, on the current thread).
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { packageRoot } from '../gateway/util/package-root.js';

/** One line of the NDJSON output. */
export interface BenchResult {
  /** Which benchmark, e.g. `convert`, `parse`, `validate`. */
  bench: string;
  /** The input, when the benchmark runs per document. */
  document?: string;
  bytes?: number;
  iterations: number;
  /** Operations per second over the measured period (conversions, parses or schema checks, per `bench`). */
  conversionsPerSecond: number;
  meanMs: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  /** Highest RSS sampled while this benchmark ran. */
  peakRssMB: number;
  /** Target in operations per second, when one applies. */
  target?: number;
  meetsTarget?: boolean;
  [extra: string]: unknown;
}

/** A benchmark module: runs its measurements and returns one result per line of output. */
export type BenchModule = () => Promise<BenchResult[]>;

export class BenchSetupError extends Error {
  override readonly name = 'BenchSetupError';
}

/** The package root, found the way the gateway finds its schemas and fixtures. */
export { packageRoot };

/** `$PASSERELLE_CORPUS`, else `<package root>/../shared/corpus/cda`. */
export function corpusDir(): string {
  return process.env.PASSERELLE_CORPUS ? resolve(process.env.PASSERELLE_CORPUS) : resolve(packageRoot(), '../shared/corpus/cda');
}

/** The corpus documents, sorted by name. Throws BenchSetupError when the folder is missing or empty. */
export function loadCorpus(): { name: string; bytes: Buffer }[] {
  const dir = corpusDir();
  if (!existsSync(dir)) {
    throw new BenchSetupError(`CDA corpus not found at ${dir}. Set PASSERELLE_CORPUS to the folder of the ANS example documents.`);
  }
  const names = readdirSync(dir).filter((n) => n.toLowerCase().endsWith('.xml')).sort();
  if (!names.length) throw new BenchSetupError(`CDA corpus folder ${dir} holds no .xml document.`);
  return names.map((name) => ({ name, bytes: readFileSync(join(dir, name)) }));
}

/** Seconds of measurement per benchmark (`PASSERELLE_BENCH_SECONDS`, default 3). */
export function benchSeconds(): number {
  const s = Number(process.env.PASSERELLE_BENCH_SECONDS ?? 3);
  return Number.isFinite(s) && s > 0 ? s : 3;
}

export interface TimingOptions {
  /** Warm-up duration in ms (default: a third of the measured duration, at most 1 s). */
  warmupMs?: number;
  /** Measured duration in ms (default: benchSeconds()). */
  durationMs?: number;
}

export interface Timing {
  iterations: number;
  opsPerSecond: number;
  meanMs: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  peakRssMB: number;
}

const RSS_SAMPLE_EVERY_MS = 50;

/**
 * Calls fn repeatedly: warm-up, then for a fixed duration, timing every call. With `prepare`, each
 * call gets a fresh argument built outside the timed section (e.g. a new Bundle to validate).
 * Throughput is computed from the timed sections only.
 */
export function time<T = undefined>(fn: (arg: T) => unknown, options: TimingOptions & { prepare?: () => T } = {}): Timing {
  const durationMs = options.durationMs ?? benchSeconds() * 1000;
  const warmupMs = options.warmupMs ?? Math.min(1000, durationMs / 3);
  const prepare = options.prepare ?? ((): T => undefined as T);
  let sink: unknown;
  const warmEnd = performance.now() + warmupMs;
  do sink = fn(prepare());
  while (performance.now() < warmEnd);

  (globalThis as { gc?: () => void }).gc?.();
  let peakRss = process.memoryUsage.rss();
  let nextSample = performance.now() + RSS_SAMPLE_EVERY_MS;
  const samples: number[] = [];
  let timed = 0;
  const end = performance.now() + durationMs;
  for (;;) {
    const arg = prepare();
    const t0 = performance.now();
    sink = fn(arg);
    const now = performance.now();
    samples.push(now - t0);
    timed += now - t0;
    if (now >= nextSample) {
      const rss = process.memoryUsage.rss();
      if (rss > peakRss) peakRss = rss;
      nextSample = now + RSS_SAMPLE_EVERY_MS;
    }
    if (now >= end) break;
  }
  const rss = process.memoryUsage.rss();
  if (rss > peakRss) peakRss = rss;
  if (sink === Symbol.for('never')) console.error(sink); // keeps the results alive
  samples.sort((a, b) => a - b);
  const pick = (q: number): number => samples[Math.min(samples.length - 1, Math.floor(q * samples.length))] ?? 0;
  return {
    iterations: samples.length,
    opsPerSecond: round((samples.length / timed) * 1000, 1),
    meanMs: round(timed / samples.length, 4),
    p50Ms: round(pick(0.5), 4),
    p99Ms: round(pick(0.99), 4),
    maxMs: round(samples[samples.length - 1] ?? 0, 4),
    peakRssMB: round(peakRss / 1024 / 1024, 1),
  };
}

export function round(n: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(n * f) / f;
}

/** A result line from a timing: the fields in a fixed order, then the extras. */
export function result(bench: string, timing: Timing, extra: Partial<BenchResult> = {}): BenchResult {
  const { document, bytes, target, ...rest } = extra;
  return {
    bench,
    ...(document !== undefined ? { document } : {}),
    ...(bytes !== undefined ? { bytes } : {}),
    conversionsPerSecond: timing.opsPerSecond,
    meanMs: timing.meanMs,
    p50Ms: timing.p50Ms,
    p99Ms: timing.p99Ms,
    maxMs: timing.maxMs,
    iterations: timing.iterations,
    peakRssMB: timing.peakRssMB,
    ...(target !== undefined ? { target, meetsTarget: timing.opsPerSecond >= target } : {}),
    ...rest,
  };
}
