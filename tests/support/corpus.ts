/**
 * The reference corpus (real ANS CDA documents) lives in ../shared/corpus/cda beside the clone; it
 * is never copied into the repository. Tests that need it fail loudly when it is absent.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const CORPUS_DIR = process.env.PASSERELLE_CORPUS ?? resolve(REPO_ROOT, '..', 'shared', 'corpus', 'cda');

/** The corpus documents by file name; throws (failing the test) when the folder is missing or empty. */
export function loadCorpus(): Map<string, Buffer> {
  if (!existsSync(CORPUS_DIR)) {
    throw new Error(`CORPUS MISSING: ${CORPUS_DIR} does not exist. Clone ../shared beside the repository (or set PASSERELLE_CORPUS).`);
  }
  const files = readdirSync(CORPUS_DIR).filter((f) => f.toLowerCase().endsWith('.xml')).sort();
  if (!files.length) throw new Error(`CORPUS EMPTY: no .xml file in ${CORPUS_DIR}.`);
  return new Map(files.map((f) => [f, readFileSync(join(CORPUS_DIR, f))]));
}

export function corpusDocument(name: string): Buffer {
  const doc = loadCorpus().get(name);
  if (!doc) throw new Error(`CORPUS INCOMPLETE: ${name} is not in ${CORPUS_DIR}.`);
  return doc;
}
