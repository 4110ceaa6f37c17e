/**
 * Golden files: each synthetic document of fixtures/cda converts to exactly the Bundle and report
 * stored beside it. After a deliberate change, refresh them with
 * `UPDATE_GOLDEN=1 npx vitest run tests/unit/golden.test.ts` and review the diff.
 */
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { convertCda } from '../../gateway/cda/convert.js';
import { REPO_ROOT } from '../support/corpus.js';
import { validateWithStructureDefinitions } from '../support/fhir-validator.js';

const DIR = join(REPO_ROOT, 'fixtures', 'cda');
const update = process.env.UPDATE_GOLDEN === '1';
const fixtures = readdirSync(DIR).filter((f) => f.endsWith('.xml')).sort();

describe('golden files', () => {
  it('has fixtures', () => {
    expect(fixtures.length).toBeGreaterThanOrEqual(3);
  });

  for (const file of fixtures) {
    it(file, () => {
      const { bundle, report } = convertCda(readFileSync(join(DIR, file)));
      expect(validateWithStructureDefinitions(bundle)).toEqual([]);
      const actual = `${JSON.stringify({ bundle, report }, null, 2)}\n`;
      const golden = join(DIR, file.replace(/\.xml$/, '.golden.json'));
      if (update || !existsSync(golden)) {
        if (!update) throw new Error(`No golden file ${golden}: run with UPDATE_GOLDEN=1 and review it.`);
        writeFileSync(golden, actual);
      }
      expect(actual).toBe(readFileSync(golden, 'utf8'));
    });
  }
});
