/**
 * Any folder of CDA documents, e.g. an integrator's own or the full ANS example set:
 * `PASSERELLE_EXTRA_CORPUS=/path/to/cda npx vitest run tests/conformance/extra-corpus.test.ts`.
 * Every document must convert (or be refused with a catalogue code other than a converter defect)
 * and every Bundle must pass the independent validator. Runs only when the variable is set.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { convertCda } from '../../gateway/cda/convert.js';
import { PasserelleError } from '../../gateway/errors.js';
import { validateWithStructureDefinitions } from '../support/fhir-validator.js';

const dir = process.env.PASSERELLE_EXTRA_CORPUS;

describe.runIf(dir)('extra corpus', () => {
  const files = dir ? readdirSync(dir).filter((f) => f.toLowerCase().endsWith('.xml')).sort() : [];
  it('is not empty', () => expect(files.length).toBeGreaterThan(0));
  for (const file of files) {
    it(file, () => {
      let result;
      try {
        result = convertCda(readFileSync(join(dir as string, file)));
      } catch (err) {
        expect(err).toBeInstanceOf(PasserelleError);
        expect(['INTERNAL_ERROR', 'FHIR_OUTPUT_INVALID']).not.toContain((err as PasserelleError).code);
        return;
      }
      expect(validateWithStructureDefinitions(result.bundle)).toEqual([]);
    });
  }
});
