/**
 * Benchmark entry point: `npm run bench` (builds, then `node dist/bench/run.js [name…]`).
 *
 * stdout: one JSON object per line (NDJSON), one per result, for machines.
 * stderr: a human summary.
 * Exit status: 0 when every target is met, 1 when a target is missed, 2 when the benchmark cannot
 * run (corpus missing, a module failing).
 *
 * To add a benchmark: write a module exporting `async function run(): Promise<BenchResult[]>` and
 * register it in BENCHES below. `node dist/bench/run.js convert` runs only the named ones.
 * Environment: PASSERELLE_CORPUS (corpus folder), PASSERELLE_BENCH_SECONDS (measured seconds per
 * benchmark, default 3).
 */
import { cpus } from 'node:os';
import { pathToFileURL } from 'node:url';
import { run as runConverter } from './converter.js';
import { run as runGateway } from './gateway.js';
import { run as runMail } from './mail.js';
import { BenchSetupError, benchSeconds, corpusDir, type BenchModule, type BenchResult } from './lib.js';

export type { BenchModule, BenchResult } from './lib.js';

/** The registry: name → module. Run in this order. */
export const BENCHES: Readonly<Record<string, BenchModule>> = {
  convert: runConverter,
  gateway: runGateway,
  mail: runMail,
};

export interface RunOutcome {
  results: BenchResult[];
  failures: { bench: string; error: unknown }[];
}

/** Runs the named benchmarks (all when none), writing each result as soon as its module ends. */
export async function runBenches(
  names: readonly string[] = Object.keys(BENCHES),
  write: (line: string) => void = (line) => process.stdout.write(line),
): Promise<RunOutcome> {
  const unknown = names.filter((n) => !(n in BENCHES));
  if (unknown.length) throw new BenchSetupError(`Unknown benchmark(s): ${unknown.join(', ')}. Known: ${Object.keys(BENCHES).join(', ')}.`);
  const outcome: RunOutcome = { results: [], failures: [] };
  for (const name of names) {
    const bench = BENCHES[name] as BenchModule;
    try {
      const results = await bench();
      for (const r of results) write(`${JSON.stringify(r)}\n`);
      outcome.results.push(...results);
    } catch (error) {
      if (error instanceof BenchSetupError) throw error;
      outcome.failures.push({ bench: name, error });
    }
  }
  return outcome;
}

function summary(outcome: RunOutcome): string {
  const lines: string[] = [];
  const cpu = cpus()[0]?.model ?? 'unknown CPU';
  lines.push(`passerelle bench — Node ${process.version}, ${cpu}, ${benchSeconds()} s per measure, corpus ${corpusDir()}`);
  const pad = (s: string, n: number): string => s.padEnd(n);
  const num = (n: number, d = 1): string => n.toFixed(d).padStart(9);
  lines.push(`${pad('bench', 20)} ${pad('document', 36)} ${'KB'.padStart(7)} ${'ops/s'.padStart(9)} ${'mean ms'.padStart(9)} ${'p99 ms'.padStart(9)} ${'RSS MB'.padStart(9)}  target`);
  for (const r of outcome.results) {
    const target = r.target === undefined ? '' : `${r.meetsTarget ? 'OK' : 'MISSED'} (≥ ${r.target}/s)`;
    const error = typeof r.error === 'string' ? `  refused: ${r.error}` : '';
    lines.push(
      `${pad(r.bench, 20)} ${pad(r.document ?? '', 36)} ${((r.bytes ?? 0) / 1024).toFixed(0).padStart(7)} ${num(r.conversionsPerSecond)} ${num(r.meanMs, 3)} ${num(r.p99Ms, 3)} ${num(r.peakRssMB)}  ${target}${error}`,
    );
  }
  const split = splitLine(outcome.results);
  if (split) lines.push(split);
  for (const f of outcome.failures) {
    lines.push(`FAILED ${f.bench}: ${f.error instanceof Error ? f.error.stack ?? f.error.message : String(f.error)}`);
  }
  lines.push(`process peak RSS ${(process.resourceUsage().maxRSS / 1024).toFixed(1)} MB`);
  return `${lines.join('\n')}\n`;
}

/** Where the time of one reference conversion goes: parse, mapping, schema check. */
function splitLine(results: BenchResult[]): string | undefined {
  const find = (bench: string): BenchResult | undefined => results.find((r) => r.bench === bench);
  const parse = find('parse');
  const noValidate = find('convert-no-validate');
  const validate = find('validate');
  const full = results.find((r) => r.bench === 'convert' && r.document === parse?.document);
  if (!parse || !noValidate || !validate || !full) return undefined;
  const pct = (ms: number): string => `${((ms / full.meanMs) * 100).toFixed(0)} %`;
  const mapping = noValidate.meanMs - parse.meanMs;
  return `${full.document}: ${full.meanMs.toFixed(3)} ms per conversion ≈ parse ${parse.meanMs.toFixed(3)} ms (${pct(parse.meanMs)})`
    + ` + mapping ${mapping.toFixed(3)} ms (${pct(mapping)}) + schema check ${validate.meanMs.toFixed(3)} ms (${pct(validate.meanMs)})`;
}

async function main(): Promise<number> {
  const names = process.argv.slice(2);
  let outcome: RunOutcome;
  try {
    outcome = await runBenches(names.length ? names : undefined);
  } catch (error) {
    if (error instanceof BenchSetupError) {
      process.stderr.write(`bench: ${error.message}\n`);
      return 2;
    }
    throw error;
  }
  process.stderr.write(summary(outcome));
  if (outcome.failures.length) return 2;
  // A missed target is a result (meetsTarget: false), not a failure, unless asked to gate on it.
  const missed = outcome.results.some((r) => r.meetsTarget === false);
  return missed && process.env.PASSERELLE_BENCH_STRICT === '1' ? 1 : 0;
}

const invokedDirectly = process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href;
if (invokedDirectly) {
  main().then(
    (code) => {
      process.exitCode = code;
    },
    (error: unknown) => {
      process.stderr.write(`bench: ${error instanceof Error ? error.stack ?? error.message : String(error)}\n`);
      process.exitCode = 2;
    },
  );
}
