/**
 * CDA → FHIR conversion throughput, per corpus document, in process on the current thread.
 * For the reference document (LDL-SES, target ≥ 500 conversions/s) the time is also split:
 * XML parse alone, conversion without the schema check, and the schema check alone. Last, a
 * document near the XML limits converted inline and on the pipeline's conversion thread, with the
 * longest the event loop waited meanwhile (what SMTP sessions and /health wait).
 */
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { convertCda } from '../gateway/cda/convert.js';
import { parseXml } from '../gateway/cda/xml.js';
import { validateBundle } from '../gateway/fhir/validate.js';
import { ConversionThread } from '../gateway/pipeline/conversion-thread.js';
import { BenchSetupError, loadCorpus, result, time, type BenchResult } from './lib.js';

/** The document the throughput target applies to. */
export const REFERENCE_DOCUMENT = 'LDL-SES_2022.01.xml';
/** Conversions per second required on the reference document. */
export const TARGET_PER_SECOND = 500;

export async function run(): Promise<BenchResult[]> {
  const corpus = loadCorpus();
  const results: BenchResult[] = [];
  for (const { name, bytes } of corpus) {
    // A document the converter refuses is reported, not timed: the benchmark measures conversions.
    try {
      convertCda(bytes);
    } catch (err) {
      const code = (err as { code?: unknown }).code;
      results.push({
        bench: 'convert', document: name, bytes: bytes.byteLength,
        conversionsPerSecond: 0, meanMs: 0, p50Ms: 0, p99Ms: 0, maxMs: 0, iterations: 0, peakRssMB: 0,
        ...(name === REFERENCE_DOCUMENT ? { target: TARGET_PER_SECOND, meetsTarget: false } : {}),
        error: typeof code === 'string' ? code : String(err),
      });
      continue;
    }
    const target = name === REFERENCE_DOCUMENT ? TARGET_PER_SECOND : undefined;
    results.push(result('convert', time(() => convertCda(bytes)), {
      document: name, bytes: bytes.byteLength, ...(target !== undefined ? { target } : {}),
    }));
    await tick();
  }

  const reference = corpus.find((d) => d.name === REFERENCE_DOCUMENT);
  if (!reference) throw new BenchSetupError(`${REFERENCE_DOCUMENT} is not in the corpus: the throughput target cannot be checked.`);
  const { name, bytes } = reference;
  results.push(result('parse', time(() => parseXml(bytes)), { document: name, bytes: bytes.byteLength, operation: 'parseXml' }));
  await tick();
  results.push(result('convert-no-validate', time(() => convertCda(bytes, { validate: false })), {
    document: name, bytes: bytes.byteLength, operation: 'convertCda(bytes, { validate: false })',
  }));
  await tick();
  // A fresh Bundle per call, built outside the timed section: re-validating one object would flatten
  // its concatenated strings once and then measure an unrealistically warm case.
  const entries = convertCda(bytes, { validate: false }).bundle.entry?.length ?? 0;
  results.push(result('validate', time((bundle) => validateBundle(bundle), {
    prepare: () => convertCda(bytes, { validate: false }).bundle,
  }), { document: name, bytes: bytes.byteLength, operation: 'validateBundle(bundle) on a fresh Bundle', entries }));
  await tick();

  const lab = corpus.find((d) => d.name === LARGE_TEMPLATE);
  if (lab) results.push(...(await largeDocument(lab.bytes)));
  return results;
}

const LARGE_TEMPLATE = 'BIO-CR-BIO_2024.01_TSH_1.xml';
const LARGE_ELEMENTS = 400_000;

/**
 * The lab report with its first entry repeated up to ≈ 400 000 elements (the XML limit is 500 000;
 * ≈ 40 MB), converted once inline and once on a ConversionThread (its start included, as the
 * pipeline pays it for the first large document after an idle spell).
 */
async function largeDocument(template: Buffer): Promise<BenchResult[]> {
  const text = template.toString('utf8');
  const start = text.indexOf('<entry');
  const end = text.indexOf('</entry>', start) + '</entry>'.length;
  const entry = text.slice(start, end);
  const copies = Math.ceil(LARGE_ELEMENTS / (entry.match(/<[A-Za-z]/g) ?? []).length);
  const bytes = Buffer.from(text.slice(0, start) + entry.repeat(copies) + text.slice(start));
  const thread = new ConversionThread({ heapMb: 1024, minBytes: 0 });
  try {
    const inline = await watched(() => Promise.resolve(convertCda(bytes)));
    const threaded = await watched(() => thread.convert(bytes));
    return [['inline', inline], ['conversion thread', threaded]].map(([where, m]) => {
      const { ms, maxDelayMs, entries } = m as Watched;
      return {
        bench: 'convert-large', document: `BIO ×${copies} entries, ${where as string}`, bytes: bytes.byteLength, operation: where as string,
        iterations: 1, conversionsPerSecond: Math.round((1000 / ms) * 100) / 100, meanMs: ms, p50Ms: ms, p99Ms: ms, maxMs: ms,
        peakRssMB: Math.round(process.memoryUsage().rss / 2 ** 20), eventLoopMaxDelayMs: maxDelayMs, entries,
      };
    });
  } finally {
    await thread.close();
  }
}

interface Watched { ms: number; maxDelayMs: number; entries: number }

async function watched(convert: () => Promise<ReturnType<typeof convertCda>>): Promise<Watched> {
  const delay = monitorEventLoopDelay({ resolution: 10 });
  delay.enable();
  await new Promise((resolve) => setTimeout(resolve, 50)); // a wait is measured from the sample before it
  const started = performance.now();
  const { bundle } = await convert();
  const ms = Math.round(performance.now() - started);
  await new Promise((resolve) => setTimeout(resolve, 50)); // the histogram samples on a timer: let it see the wait
  delay.disable();
  return { ms, maxDelayMs: Math.round(delay.max / 1e6), entries: bundle.entry?.length ?? 0 };
}

/** Yields to the event loop between long synchronous loops (timers, signals). */
function tick(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}
