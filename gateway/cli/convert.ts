/**
 * `passerelle convert FILE… [--out-dir DIR] [--report-dir DIR]` (CONTRACT.md): converts in one
 * process, file after file, so that a folder of documents takes seconds.
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { parseArgs } from 'node:util';
import { convertCda } from '../cda/convert.js';
import { PasserelleError } from '../errors.js';
import { outcomeFromError } from '../fhir/outcome.js';

/** `<file name without .xml>.json` */
export function outputName(file: string): string {
  return `${basename(file).replace(/\.xml$/i, '')}.json`;
}

export async function convertCommand(args: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args,
      allowPositionals: true,
      options: { 'out-dir': { type: 'string' }, 'report-dir': { type: 'string' } },
    });
  } catch (err) {
    process.stderr.write(`passerelle convert: ${(err as Error).message}\n`);
    return 1;
  }
  const files = parsed.positionals;
  const outDir = parsed.values['out-dir'];
  const reportDir = parsed.values['report-dir'];
  if (!files.length) {
    process.stderr.write('passerelle convert: no input file\n');
    return 1;
  }
  if (files.length > 1 && !outDir) {
    process.stderr.write('passerelle convert: several files need --out-dir DIR\n');
    return 1;
  }
  if (outDir) await mkdir(outDir, { recursive: true });
  if (reportDir) await mkdir(reportDir, { recursive: true });

  let failed = 0;
  for (const file of files) {
    const started = performance.now();
    let output: unknown;
    let summary: string;
    let report: unknown;
    try {
      const bytes = await readFile(file).catch((err: NodeJS.ErrnoException) => {
        throw new PasserelleError('INPUT_UNREADABLE', `Cannot read ${file}: ${err.code ?? err.message}`);
      });
      const result = convertCda(bytes);
      output = result.bundle;
      report = result.report;
      const warnings = result.report.issue.filter((i) => i.severity === 'warning').length;
      summary = `ok ${file} entries=${result.bundle.entry?.length ?? 0} warnings=${warnings}`;
    } catch (err) {
      failed++;
      output = outcomeFromError(err);
      report = output;
      const code = err instanceof PasserelleError ? err.code : 'INTERNAL_ERROR';
      summary = `error ${file} code=${code}`;
      if (!(err instanceof PasserelleError)) process.stderr.write(`passerelle convert: ${file}: unexpected ${(err as Error).name}\n`);
    }
    const ms = (performance.now() - started).toFixed(1);
    const json = `${JSON.stringify(output, null, 2)}\n`;
    if (outDir) {
      const target = join(outDir, outputName(file));
      await writeFile(target, json);
      process.stdout.write(`${summary} -> ${target} ms=${ms}\n`);
    } else {
      process.stdout.write(json);
    }
    if (reportDir) await writeFile(join(reportDir, outputName(file).replace(/\.json$/, '.report.json')), `${JSON.stringify(report, null, 2)}\n`);
  }
  return failed ? 2 : 0;
}
