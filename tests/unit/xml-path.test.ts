/**
 * pathOf caches paths and sibling steps; it must give what a plain walk to the top gives, for every
 * element, whatever the order of the questions (the converter asks in document order, reports in
 * any order).
 */
import { describe, expect, it } from 'vitest';
import { HL7_NS, parseXml, pathOf, type XElement } from '../../gateway/cda/xml.js';
import { loadCorpus } from '../support/hostile.js';

/** The uncached reference: walk up to the ClinicalDocument (or the root), indexing same-named siblings. */
function plainPath(el: XElement): string {
  const steps: string[] = [];
  for (let cur: XElement | undefined = el; cur; cur = cur.parent) {
    let step = cur.name;
    if (cur.parent) {
      const same = cur.parent.children.filter((c): c is XElement => typeof c !== 'string' && c.name === cur?.name);
      if (same.length > 1) step += `[${same.indexOf(cur) + 1}]`;
    }
    steps.unshift(step);
    if (cur.name === 'ClinicalDocument' && cur.ns === HL7_NS) break;
  }
  return `/${steps.join('/')}`;
}

function allElements(root: XElement): XElement[] {
  const out: XElement[] = [root];
  for (let i = 0; i < out.length; i++) {
    for (const c of (out[i] as XElement).children) if (typeof c !== 'string') out.push(c);
  }
  return out;
}

describe('pathOf', () => {
  it.each([...loadCorpus()].map(([name, bytes]) => [name, bytes]))('%s: every element, deepest first', (_name, bytes) => {
    const elements = allElements(parseXml(bytes as Buffer)).reverse();
    for (const el of elements) expect(pathOf(el)).toBe(plainPath(el));
  });

  it('a wrapped ClinicalDocument among same-named siblings, asked top-down', () => {
    const doc = '<ClinicalDocument xmlns="urn:hl7-org:v3"><component><section/><section><entry/><entry/></section></component></ClinicalDocument>';
    const root = parseXml(Buffer.from(`<wrap><x/>${doc}${doc}</wrap>`));
    for (const el of allElements(root)) expect(pathOf(el)).toBe(plainPath(el));
    expect(pathOf(allElements(root).find((e) => e.name === 'entry') as XElement)).toBe('/ClinicalDocument[1]/component/section[2]/entry[1]');
  });
});
