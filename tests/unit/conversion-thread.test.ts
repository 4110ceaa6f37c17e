/**
 * The conversion thread (gateway/pipeline/conversion-thread.ts), with a real worker thread running
 * the build's converter (`npm test` builds before it runs the tests): the same Bundles as inline,
 * the catalogue's codes across the thread boundary, a conversion past its heap ended as
 * CDA_TOO_LARGE without harm to the process or to the next document, and the thread's life.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { convertCda } from '../../gateway/cda/convert.js';
import { PasserelleError } from '../../gateway/errors.js';
import { ConversionThread } from '../../gateway/pipeline/conversion-thread.js';
import { corpusDocument, loadCorpus } from '../support/corpus.js';

let thread: ConversionThread | undefined;
afterEach(async () => {
  await thread?.close();
  thread = undefined;
});

const rejection = async (promise: Promise<unknown>): Promise<PasserelleError> => {
  const err = await promise.then(() => undefined, (e: unknown) => e);
  expect(err).toBeInstanceOf(PasserelleError);
  return err as PasserelleError;
};

/** The lab report with its first entry repeated until the document has about `elements` elements. */
function manyElements(elements: number): Buffer {
  const text = corpusDocument('BIO-CR-BIO_2024.01_TSH_1.xml').toString('utf8');
  const start = text.indexOf('<entry');
  const end = text.indexOf('</entry>', start) + '</entry>'.length;
  const entry = text.slice(start, end);
  const copies = Math.ceil(elements / (entry.match(/<[A-Za-z]/g) ?? []).length);
  return Buffer.from(text.slice(0, start) + entry.repeat(copies) + text.slice(start));
}

describe('conversion thread', () => {
  it('gives the Bundle and report the inline conversion gives, for every corpus document', async () => {
    thread = new ConversionThread({ heapMb: 256, minBytes: 0 });
    for (const [name, bytes] of loadCorpus()) {
      const result = await thread.convert(bytes);
      expect(thread.running, name).toBe(true);
      expect(result, name).toEqual(convertCda(bytes));
    }
  });

  it('rejects with the catalogue code, detail and location the converter threw', async () => {
    thread = new ConversionThread({ heapMb: 256, minBytes: 0 });
    const notXml = await rejection(thread.convert(Buffer.from('<ClinicalDocument xmlns="urn:hl7-org:v3"><id')));
    expect(notXml.code).toBe('CDA_NOT_WELL_FORMED');
    const noPatient = await rejection(thread.convert(Buffer.from('<ClinicalDocument xmlns="urn:hl7-org:v3"/>')));
    expect(noPatient).toMatchObject({ code: 'CDA_PATIENT_MISSING', location: '/ClinicalDocument/recordTarget' });
    expect(noPatient.message).toBe(new PasserelleError('CDA_PATIENT_MISSING').message);
  });

  it('ends a conversion that outgrows its heap as CDA_TOO_LARGE, and converts the next document on a new thread', async () => {
    thread = new ConversionThread({ heapMb: 32, minBytes: 0 });
    const huge = manyElements(400_000);
    const err = await rejection(thread.convert(huge));
    expect(err.code).toBe('CDA_TOO_LARGE');
    expect(err.message).toContain(`${huge.length} bytes`);
    expect(thread.running).toBe(false);
    const letter = corpusDocument('LDL-SES_2022.01.xml');
    expect((await thread.convert(letter)).bundle).toEqual(convertCda(letter).bundle);
  });

  it('converts documents asked for together, each into its own Bundle', async () => {
    const one = new ConversionThread({ heapMb: 256, minBytes: 0 });
    thread = one;
    const corpus = [...loadCorpus().values()];
    const results = await Promise.all(corpus.map((bytes) => one.convert(bytes)));
    expect(results.map((r) => r.bundle.identifier)).toEqual(corpus.map((bytes) => convertCda(bytes).bundle.identifier));
  });

  it('converts documents below minBytes inline, starting no thread', async () => {
    thread = new ConversionThread({ heapMb: 256 });
    const letter = corpusDocument('LDL-SES_2022.01.xml');
    expect(await thread.convert(letter)).toEqual(convertCda(letter));
    expect((await rejection(thread.convert(Buffer.from('<a')))).code).toBe('CDA_NOT_WELL_FORMED');
    expect(thread.running).toBe(false);
  });

  it('ends the thread after idleMs without work, and starts it again for the next document', async () => {
    thread = new ConversionThread({ heapMb: 256, minBytes: 0, idleMs: 50 });
    const letter = corpusDocument('LDL-SES_2022.01.xml');
    await thread.convert(letter);
    await vi.waitFor(() => expect(thread?.running).toBe(false), { timeout: 5000 });
    await thread.convert(letter);
    expect(thread.running).toBe(true);
  });

  it('refuses the documents still waiting when closed, as a transient INTERNAL_ERROR', async () => {
    thread = new ConversionThread({ heapMb: 256, minBytes: 0 });
    const letter = corpusDocument('LDL-SES_2022.01.xml');
    const outcomes = Promise.all([thread.convert(letter), thread.convert(letter)].map(rejection));
    await thread.close();
    expect((await outcomes).map((e) => e.code)).toEqual(['INTERNAL_ERROR', 'INTERNAL_ERROR']);
  });
});
