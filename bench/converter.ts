/**
 * CDA → FHIR conversion throughput, per corpus document, in process on the current thread.
 * For the reference document (LDL-SES, target ≥ 500 conversions/s) the time is also split:
 * XML parse alone, conversion without the schema check, and the schema check alone.
 */
import { convertCda } from '../gateway/cda/convert.js';
import { parseXml } from '../gateway/cda/xml.js';
import { validateBundle } from '../gateway/fhir/validate.js';
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
  return results;
}

/** Yields to the event loop between long synchronous loops (timers, signals). */
function tick(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}
