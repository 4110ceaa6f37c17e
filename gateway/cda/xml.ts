/**
 * A hardened XML reader for CDA documents: a small non-validating XML 1.0 + Namespaces reader
 * (xml-reader.ts) feeds a light element tree. The document is hostile until proven otherwise:
 * - any DOCTYPE is refused, so there are no DTDs, no external entities and no entity expansion
 *   (billion laughs, XXE); only the five predefined entities and character references are read;
 * - size, nesting depth and element count are bounded while parsing, before memory grows.
 */
import { isUtf8 } from 'node:buffer';
import { TextDecoder } from 'node:util';
import { PasserelleError } from '../errors.js';
import { XmlReader } from './xml-reader.js';

export const HL7_NS = 'urn:hl7-org:v3';
export const XSI_NS = 'http://www.w3.org/2001/XMLSchema-instance';

export interface XElement {
  /** Local name. */
  readonly name: string;
  /** Namespace URI, '' when none. */
  readonly ns: string;
  /** Attributes by local name; namespaced ones other than xmlns as `prefix:local` (e.g. `xsi:type`). */
  readonly attrs: Readonly<Record<string, string>>;
  readonly children: XNode[];
  readonly parent: XElement | undefined;
  /**
   * Memos of pathOf, not document data. They live on the tree so that they go with it: kept in
   * WeakMaps keyed by elements, they made V8's young-generation GC keep every tree alive (it
   * treats the values of such ephemerons as strong), which doubled the cost of a conversion.
   */
  readonly path?: string;
  /** The steps of this element's children that need an index (`component[2]`). */
  readonly indexedSteps?: ReadonlyMap<XElement, string>;
}
export type XNode = XElement | string;

export interface XmlLimits {
  /** Bytes of input (default 50 MB). */
  maxBytes: number;
  /** Element nesting depth (default 256). */
  maxDepth: number;
  /** Elements in the whole document (default 500 000). */
  maxElements: number;
}

/**
 * A 76 KB liaison letter has about 2 000 elements; a 50 MB document is mostly base64. Half a
 * million elements leaves room for very large tables while bounding the tree to ~100 MB.
 */
export const DEFAULT_XML_LIMITS: XmlLimits = {
  maxBytes: 50 * 1024 * 1024,
  maxDepth: 256,
  maxElements: 500_000,
};

/**
 * Shared by every element without attributes or children (most of a CDA): saves two objects each.
 * Being frozen, NO_CHILDREN has its own array kind, on which V8 does not optimise for-of or the
 * array builtins: the helpers below iterate children with an index.
 */
const NO_ATTRS: Readonly<Record<string, string>> = Object.freeze({});
const NO_CHILDREN: XNode[] = Object.freeze([]) as unknown as XNode[];
const NON_SPACE = /[^ \t\r\n]/;

/** The parser's mutable view of an element, to set its children at its end tag. */
type Building = { -readonly [K in keyof XElement]: XElement[K] };

/** Parses bytes into the element tree of the document element. */
export function parseXml(input: Uint8Array, limits: XmlLimits = DEFAULT_XML_LIMITS): XElement {
  if (input.byteLength > limits.maxBytes) {
    throw new PasserelleError('CDA_TOO_LARGE', `The document is ${input.byteLength} bytes; the limit is ${limits.maxBytes}.`);
  }
  const { text, utf8 } = decode(input);
  // CDA R2 is XML 1.0. XML 1.1 rules would admit control characters through character references
  // (`&#1;`): refuse rather than follow (the reader also accepts no other version; this says why).
  const version = /^\uFEFF?<\?xml\s+version\s*=\s*["']([^"']*)["']/.exec(text)?.[1];
  if (version !== undefined && version !== '1.0') {
    throw new PasserelleError('CDA_NOT_WELL_FORMED', `XML version "${version.slice(0, 10)}" is not 1.0.`);
  }
  let root: XElement | undefined;
  const stack: XElement[] = [];
  // The children of the open elements, in document order, from `starts[depth]` on for each: an
  // element takes its own at its end tag, as one array of the right size (a pushed-to array would
  // reserve 17 slots at its second child).
  const pending: XNode[] = [];
  const starts: number[] = [];
  let inNarrative = 0;
  let elements = 0;
  const reader: XmlReader = new XmlReader(text, {
    open(local, uri, attrs) {
      if (++elements > limits.maxElements) {
        throw new PasserelleError('CDA_TOO_MANY_ELEMENTS', `More than ${limits.maxElements} elements.`);
      }
      if (stack.length >= limits.maxDepth) {
        throw new PasserelleError('CDA_TOO_DEEP', `Elements nest deeper than ${limits.maxDepth}.`, `line ${reader.line()}`);
      }
      const parent = stack[stack.length - 1];
      // The HL7 namespace as the constant itself: the many `ns === HL7_NS` tests then compare references.
      const ns = uri === HL7_NS ? HL7_NS : uri;
      const el: XElement = { name: local, ns, attrs: attrs ?? NO_ATTRS, children: NO_CHILDREN, parent, path: undefined, indexedSteps: undefined };
      if (local === 'text' && ns === HL7_NS) inNarrative++;
      if (parent) pending.push(el);
      else root = el;
      stack.push(el);
      starts.push(pending.length);
    },
    close() {
      const el = stack.pop() as Building;
      const start = starts.pop() as number;
      if (pending.length > start) el.children = pending.splice(start);
      if (el.name === 'text' && el.ns === HL7_NS) inNarrative--;
    },
    text(t) {
      // Whitespace between elements only means something inside a narrative block (between inline
      // elements); elsewhere it is indentation, and keeping it would double the tree's size.
      if (inNarrative === 0 && !NON_SPACE.test(t)) return;
      if (stack.length) pending.push(t);
    },
    keepsWhitespace: () => inNarrative > 0,
  }, utf8);
  reader.read();
  if (!root) throw new PasserelleError('CDA_NOT_WELL_FORMED', 'No document element.');
  return root;
}

/**
 * Decodes the bytes per the XML declaration (XML 1.0 §4.3.3): a BOM wins, then `encoding=`, else
 * UTF-8. Decoding is fatal: bytes that are not of the declared encoding make the document unreadable.
 * Valid UTF-8 is not decoded here but handed to the reader with its latin1 view (see xml-reader.ts).
 */
function decode(input: Uint8Array): { text: string; utf8?: Buffer } {
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
    // Fast path for the common case: a native validity check, then a one-byte view of the bytes.
    const body = start ? input.subarray(start) : input;
    const buf = Buffer.from(body.buffer, body.byteOffset, body.byteLength);
    if (!isUtf8(buf)) throw new PasserelleError('CDA_NOT_WELL_FORMED', 'The bytes are not valid utf-8.');
    return { text: buf.toString('latin1'), utf8: buf };
  }
  let decoder: TextDecoder;
  try {
    decoder = new TextDecoder(encoding, { fatal: true });
  } catch {
    throw new PasserelleError('CDA_NOT_WELL_FORMED', `Unsupported character encoding "${encoding}".`);
  }
  try {
    return { text: decoder.decode(start ? input.subarray(start) : input) };
  } catch {
    throw new PasserelleError('CDA_NOT_WELL_FORMED', `The bytes are not valid ${encoding}.`);
  }
}

// ---- navigation helpers (HL7 namespace; documents without a namespace are tolerated) ----

function isHl7(el: XElement): boolean {
  return el.ns === HL7_NS || el.ns === '';
}

/** First child element of that local name in the HL7 namespace. */
export function child(el: XElement | undefined, name: string): XElement | undefined {
  if (!el) return undefined;
  const nodes = el.children;
  for (let i = 0; i < nodes.length; i++) {
    const c = nodes[i] as XNode;
    if (typeof c !== 'string' && c.name === name && isHl7(c)) return c;
  }
  return undefined;
}

/** All child elements of that local name in the HL7 namespace. */
export function children(el: XElement | undefined, name: string): XElement[] {
  if (!el) return [];
  const out: XElement[] = [];
  const nodes = el.children;
  for (let i = 0; i < nodes.length; i++) {
    const c = nodes[i] as XNode;
    if (typeof c !== 'string' && c.name === name && isHl7(c)) out.push(c);
  }
  return out;
}

/** All child elements, any name or namespace. */
export function elements(el: XElement | undefined): XElement[] {
  if (!el) return [];
  const out: XElement[] = [];
  const nodes = el.children;
  for (let i = 0; i < nodes.length; i++) {
    const c = nodes[i] as XNode;
    if (typeof c !== 'string') out.push(c);
  }
  return out;
}

/** Follows a path of local names, first match at each step. */
export function at(el: XElement | undefined, ...path: string[]): XElement | undefined {
  let cur = el;
  for (const name of path) cur = child(cur, name);
  return cur;
}

export function attr(el: XElement | undefined, name: string): string | undefined {
  const v = el?.attrs[name];
  return v === undefined ? undefined : v;
}

/** The text of an element and its descendants, as written. */
export function rawText(el: XElement): string {
  const parts: string[] = [];
  const walk = (e: XElement): void => {
    const nodes = e.children;
    for (let i = 0; i < nodes.length; i++) {
      const c = nodes[i] as XNode;
      if (typeof c === 'string') parts.push(c);
      else walk(c);
    }
  };
  walk(el);
  return parts.join('');
}

/** The concatenated text of an element and its descendants, whitespace collapsed and trimmed. */
export function text(el: XElement | undefined): string | undefined {
  if (!el) return undefined;
  const t = rawText(el).replace(/\s+/g, ' ').trim();
  return t === '' ? undefined : t;
}

/** Depth-first search for the first element of that local name and namespace. */
export function findFirst(el: XElement, name: string, ns: string): XElement | undefined {
  const queue: XElement[] = [el];
  for (let i = 0; i < queue.length; i++) {
    const cur = queue[i] as XElement;
    if (cur.name === name && cur.ns === ns) return cur;
    const nodes = cur.children;
    for (let k = 0; k < nodes.length; k++) {
      const c = nodes[k] as XNode;
      if (typeof c !== 'string') queue.push(c);
    }
  }
  return undefined;
}

/**
 * The path step of a child element: its name, with its index among same-named siblings when it has
 * some (`component[2]`). A parent's indexed steps are computed once, so that reporting every one of
 * n siblings stays linear.
 */
function stepOf(parent: XElement, el: XElement): string {
  let steps = parent.indexedSteps;
  if (!steps) {
    const counts = new Map<string, number>();
    const nodes = parent.children;
    for (let i = 0; i < nodes.length; i++) {
      const c = nodes[i] as XNode;
      if (typeof c !== 'string') counts.set(c.name, (counts.get(c.name) ?? 0) + 1);
    }
    const indexed = new Map<XElement, string>();
    const seen = new Map<string, number>();
    for (let i = 0; i < nodes.length; i++) {
      const c = nodes[i] as XNode;
      if (typeof c === 'string' || (counts.get(c.name) ?? 0) < 2) continue;
      const n = (seen.get(c.name) ?? 0) + 1;
      seen.set(c.name, n);
      indexed.set(c, `${c.name}[${n}]`);
    }
    (parent as Building).indexedSteps = steps = indexed;
  }
  return steps.get(el) ?? el.name;
}

/**
 * An XPath-like location of an element, e.g. `/ClinicalDocument/component/structuredBody/component[2]/section`,
 * from the ClinicalDocument (or the root when there is none above). Paths are remembered on the
 * elements: those reported or keyed in one document share most of their ancestors.
 */
export function pathOf(el: XElement): string {
  // Up to the first ancestor whose path is known (or the ClinicalDocument, or the root)…
  const chain: XElement[] = [];
  let path = '';
  for (let cur: XElement | undefined = el; cur; cur = cur.parent) {
    if (cur.path !== undefined) {
      path = cur.path;
      break;
    }
    chain.push(cur);
    if (cur.name === 'ClinicalDocument' && cur.ns === HL7_NS) break;
  }
  // …then down again, remembering each path on the way.
  for (let i = chain.length - 1; i >= 0; i--) {
    const cur = chain[i] as Building;
    path += `/${cur.parent ? stepOf(cur.parent, cur) : cur.name}`;
    cur.path = path;
  }
  return path;
}
