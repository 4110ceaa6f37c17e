/**
 * The saxes-based XML reader the converter used before gateway/cda/xml-reader.ts, kept verbatim
 * (decode included) as the reference of the differential test tests/unit/xml-reader.test.ts.
 * Not used by the gateway.
 */
import { isUtf8 } from 'node:buffer';
import { TextDecoder } from 'node:util';
import { SaxesParser, type SaxesTagNS } from 'saxes';
import { HL7_NS, type XElement, type XmlLimits, type XNode } from '../../gateway/cda/xml.js';
import { PasserelleError } from '../../gateway/errors.js';

const NO_ATTRS: Readonly<Record<string, string>> = Object.freeze({});
const NO_CHILDREN: XNode[] = Object.freeze([]) as unknown as XNode[];
const NON_SPACE = /[^ \t\r\n]/;

type Building = { -readonly [K in keyof XElement]: XElement[K] };

function appendChild(parent: XElement, node: XNode): void {
  const p = parent as Building;
  if (p.children === NO_CHILDREN) p.children = [node];
  else p.children.push(node);
}

/** Parses bytes into the element tree of the document element. */
export function parseXmlWithSaxes(input: Uint8Array, limits: XmlLimits): XElement {
  if (input.byteLength > limits.maxBytes) {
    throw new PasserelleError('CDA_TOO_LARGE', `The document is ${input.byteLength} bytes; the limit is ${limits.maxBytes}.`);
  }
  const text = decode(input);
  // CDA R2 is XML 1.0. saxes would switch to XML 1.1 rules for another version, which admits
  // control characters through character references (`&#1;`): refuse rather than follow.
  const version = /^\uFEFF?<\?xml\s+version\s*=\s*["']([^"']*)["']/.exec(text)?.[1];
  if (version !== undefined && version !== '1.0') {
    throw new PasserelleError('CDA_NOT_WELL_FORMED', `XML version "${version.slice(0, 10)}" is not 1.0.`);
  }
  const parser = new SaxesParser({ xmlns: true, position: true });
  let root: XElement | undefined;
  const stack: XElement[] = [];
  let inNarrative = 0;
  let elements = 0;
  let failure: PasserelleError | undefined;

  const fail = (error: PasserelleError): void => {
    failure ??= error;
    throw error;
  };

  parser.on('doctype', () => fail(new PasserelleError('CDA_DTD_FORBIDDEN', undefined, `line ${parser.line}`)));
  parser.on('opentag', (tag: SaxesTagNS) => {
    if (++elements > limits.maxElements) {
      fail(new PasserelleError('CDA_TOO_MANY_ELEMENTS', `More than ${limits.maxElements} elements.`));
    }
    if (stack.length >= limits.maxDepth) {
      fail(new PasserelleError('CDA_TOO_DEEP', `Elements nest deeper than ${limits.maxDepth}.`, `line ${parser.line}`));
    }
    let attrs: Record<string, string> | undefined;
    // Keyed by the name as written (`xsi:type`); namespace declarations are not attributes here.
    for (const name in tag.attributes) {
      if (name === 'xmlns' || name.startsWith('xmlns:')) continue;
      (attrs ??= {})[name] = (tag.attributes[name] as { value: string }).value;
    }
    const parent = stack[stack.length - 1];
    const el: XElement = { name: tag.local, ns: tag.uri, attrs: attrs ?? NO_ATTRS, children: NO_CHILDREN, parent };
    if (tag.local === 'text' && tag.uri === HL7_NS) inNarrative++;
    if (parent) appendChild(parent, el);
    else root = el;
    stack.push(el);
  });
  parser.on('closetag', () => {
    const el = stack.pop();
    if (el?.name === 'text' && el.ns === HL7_NS) inNarrative--;
  });
  const onText = (t: string): void => {
    // Whitespace between elements only means something inside a narrative block (between inline
    // elements); elsewhere it is indentation, and keeping it would double the tree's size.
    if (inNarrative === 0 && !NON_SPACE.test(t)) return;
    const parent = stack[stack.length - 1];
    if (parent) appendChild(parent, t);
  };
  parser.on('text', onText);
  parser.on('cdata', onText);

  try {
    parser.write(text).close();
  } catch (err) {
    if (failure) throw failure;
    const message = err instanceof Error ? err.message : String(err);
    throw new PasserelleError('CDA_NOT_WELL_FORMED', message.split('\n')[0]);
  }
  if (!root) throw new PasserelleError('CDA_NOT_WELL_FORMED', 'No document element.');
  return root;
}

/**
 * Decodes the bytes per the XML declaration (XML 1.0 §4.3.3): a BOM wins, then `encoding=`, else
 * UTF-8. Decoding is fatal: bytes that are not of the declared encoding make the document unreadable.
 */
function decode(input: Uint8Array): string {
  let encoding = 'utf-8';
  let start = 0;
  if (input[0] === 0xef && input[1] === 0xbb && input[2] === 0xbf) start = 3;
  else if (input[0] === 0xfe && input[1] === 0xff) encoding = 'utf-16be';
  else if (input[0] === 0xff && input[1] === 0xfe) encoding = 'utf-16le';
  else {
    const head = Buffer.from(input.subarray(0, 200)).toString('latin1');
    const m = /^<\?xml[^>]*?encoding\s*=\s*["']([A-Za-z0-9._-]+)["']/.exec(head);
    if (m?.[1]) encoding = m[1].toLowerCase();
  }
  if (encoding === 'utf-8' || encoding === 'utf8') {
    // Fast path for the common case: a native validity check, then a plain decode.
    const body = start ? input.subarray(start) : input;
    const buf = Buffer.from(body.buffer, body.byteOffset, body.byteLength);
    if (!isUtf8(buf)) throw new PasserelleError('CDA_NOT_WELL_FORMED', 'The bytes are not valid utf-8.');
    return buf.toString('utf8');
  }
  let decoder: TextDecoder;
  try {
    decoder = new TextDecoder(encoding, { fatal: true });
  } catch {
    throw new PasserelleError('CDA_NOT_WELL_FORMED', `Unsupported character encoding "${encoding}".`);
  }
  try {
    return decoder.decode(start ? input.subarray(start) : input);
  } catch {
    throw new PasserelleError('CDA_NOT_WELL_FORMED', `The bytes are not valid ${encoding}.`);
  }
}
