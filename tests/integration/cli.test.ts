/**
 * `passerelle convert` as a user runs it: the real executable (bin/passerelle.js over the build
 * made by `npm test`), real files, exit codes and outputs per CONTRACT.md.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { Bundle, OperationOutcome } from '@medplum/fhirtypes';
import { describe, expect, it } from 'vitest';
import { CORPUS_DIR, loadCorpus, REPO_ROOT } from '../support/corpus.js';
import { validateWithStructureDefinitions } from '../support/fhir-validator.js';

const run = promisify(execFile);
const BIN = join(REPO_ROOT, 'bin', 'passerelle.js');

async function passerelle(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [BIN, ...args], { maxBuffer: 64 * 1024 * 1024 });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

describe('passerelle convert', () => {
  it('converts the corpus into one valid Bundle per document, one summary line each', async () => {
    const files = [...loadCorpus().keys()].map((f) => join(CORPUS_DIR, f));
    const out = mkdtempSync(join(tmpdir(), 'passerelle-out-'));
    const { code, stdout } = await passerelle('convert', ...files, '--out-dir', out);
    expect(code).toBe(0);
    expect(stdout.trim().split('\n')).toHaveLength(files.length);
    expect(readdirSync(out).sort()).toEqual([...loadCorpus().keys()].map((f) => f.replace(/\.xml$/, '.json')).sort());
    for (const f of readdirSync(out)) {
      const bundle = JSON.parse(readFileSync(join(out, f), 'utf8')) as Bundle;
      expect(bundle.type).toBe('document');
      expect(validateWithStructureDefinitions(bundle)).toEqual([]);
    }
  });

  it('writes one Bundle to stdout for one file', async () => {
    const { code, stdout } = await passerelle('convert', join(REPO_ROOT, 'fixtures', 'cda', 'level1-pdf.xml'));
    expect(code).toBe(0);
    expect((JSON.parse(stdout) as Bundle).entry?.[0]?.resource?.resourceType).toBe('Composition');
  });

  it('exits 2 and writes the OperationOutcome in place of the Bundle for unusable input', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'passerelle-in-'));
    writeFileSync(join(dir, 'broken.xml'), '<ClinicalDocument xmlns="urn:hl7-org:v3"><id');
    const out = join(dir, 'out');
    const good = join(REPO_ROOT, 'fixtures', 'cda', 'level1-pdf.xml');
    const { code, stdout } = await passerelle('convert', good, join(dir, 'broken.xml'), '--out-dir', out);
    expect(code).toBe(2);
    expect(stdout).toMatch(/^ok .*level1-pdf\.xml/m);
    expect(stdout).toMatch(/^error .*broken\.xml code=CDA_NOT_WELL_FORMED/m);
    const outcome = JSON.parse(readFileSync(join(out, 'broken.json'), 'utf8')) as OperationOutcome;
    expect(outcome.issue[0]?.details?.coding?.[0]?.code).toBe('CDA_NOT_WELL_FORMED');

    const single = await passerelle('convert', join(dir, 'missing.xml'));
    expect(single.code).toBe(2);
    expect((JSON.parse(single.stdout) as OperationOutcome).issue[0]?.details?.coding?.[0]?.code).toBe('INPUT_UNREADABLE');
  });

  it('exits 1 on usage errors', async () => {
    expect((await passerelle('convert')).code).toBe(1);
    expect((await passerelle('convert', 'a.xml', 'b.xml')).code).toBe(1);
    expect((await passerelle('convert', '--bogus', 'a.xml')).code).toBe(1);
    expect((await passerelle('frobnicate')).code).toBe(1);
  });
});
