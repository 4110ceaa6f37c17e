/**
 * Differential test of the XML reader (gateway/cda/xml-reader.ts behind parseXml) against the
 * saxes-based reader it replaced (tests/support/saxes-reference.ts): on the corpus, on generated
 * documents and on mutated ones, both must build the same tree or refuse with the same code.
 *
 * The one accepted difference: a DOCTYPE before the root element is refused on sight
 * (CDA_DTD_FORBIDDEN), where saxes first reads it and may find it malformed (CDA_NOT_WELL_FORMED).
 *
 * FC_SEED / FC_RUNS (environment) replay a seed or change the number of runs.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { DEFAULT_XML_LIMITS, parseXml, type XElement, type XmlLimits } from '../../gateway/cda/xml.js';
import { PasserelleError } from '../../gateway/errors.js';
import { loadCorpus } from '../support/hostile.js';
import { parseXmlWithSaxes } from '../support/saxes-reference.js';

const RUNS = Number(process.env.FC_RUNS ?? 3000);
const SEED = process.env.FC_SEED === undefined ? undefined : Number(process.env.FC_SEED);
const FIXTURES = join(import.meta.dirname, '../../fixtures/cda');

type Snapshot = { name: string; ns: string; attrs: [string, string][]; children: (Snapshot | string)[] };
type Outcome = { tree: Snapshot } | { error: string };

/** The tree as plain data; also checks that every parent link points to the parent. */
function snapshot(el: XElement, parent?: XElement): Snapshot {
  if (el.parent !== parent) throw new Error(`wrong parent link on <${el.name}>`);
  return {
    name: el.name,
    ns: el.ns,
    attrs: Object.entries(el.attrs),
    children: el.children.map((c) => (typeof c === 'string' ? c : snapshot(c, el))),
  };
}

function outcome(parse: () => XElement): Outcome {
  try {
    return { tree: snapshot(parse()) };
  } catch (err) {
    if (err instanceof PasserelleError) return { error: err.code };
    throw err;
  }
}

/** Same tree, or the same refusal (see the header for the one accepted difference). */
function compare(bytes: Uint8Array, limits: XmlLimits = DEFAULT_XML_LIMITS): void {
  const expected = outcome(() => parseXmlWithSaxes(bytes, limits));
  const actual = outcome(() => parseXml(bytes, limits));
  const input = (): string => JSON.stringify(Buffer.from(bytes).toString('utf8').slice(0, 2000));
  if ('error' in expected && 'error' in actual && expected.error === 'CDA_NOT_WELL_FORMED' && actual.error === 'CDA_DTD_FORBIDDEN') return;
  if ('error' in expected || 'error' in actual) {
    expect(actual, `input: ${input()}`).toEqual(expected);
    return;
  }
  expect(actual, `input: ${input()}`).toEqual(expected);
}

const utf8 = (s: string): Buffer => Buffer.from(s, 'utf8');
const params = (runs: number): fc.Parameters<unknown> => ({ numRuns: runs, ...(SEED !== undefined ? { seed: SEED } : {}) });

describe('XML reader: same trees as saxes on real documents', () => {
  const corpus = [...loadCorpus()];
  const fixtures = readdirSync(FIXTURES).filter((f) => f.endsWith('.xml')).map((f) => [f, readFileSync(join(FIXTURES, f))] as const);
  it.each([...corpus, ...fixtures].map(([name, bytes]) => [name, bytes]))('%s', (_name, bytes) => {
    compare(bytes as Buffer);
  });
});

// ---- hand-picked cases: each rule of the reader, on both sides of the line ----

const CASES: string[] = [
  // declaration, BOM, prolog
  '<?xml version="1.0"?><a/>', '<?xml version="1.0" encoding="UTF-8" standalone="yes"?><a/>', "<?xml version='1.0' ?><a/>",
  '<?xml version="1.0"encoding="UTF-8"?><a/>', '<?xml encoding="UTF-8" version="1.0"?><a/>', '<?xml version="1.0" standalone="maybe"?><a/>',
  '<?xml version="1.0" standalone="yes" encoding="UTF-8"?><a/>', '<?xml?><a/>', '<?xml version="1.0"?><?xml version="1.0"?><a/>',
  ' <?xml version="1.0"?><a/>', '\uFEFF<?xml version="1.0"?><a/>', '\uFEFF\uFEFF<a/>', '<?xml version="1.0" ?><!-- c --><?pi x?> <a/> <!-- c --> ',
  '<?xml version="1.0" encoding="9x"?><a/>', '<?xml version="1.0" ?x><a/>', '<?xml version="1.0"', '<?xml-stylesheet href="x"?><a/>',
  '<?XML version="1.0"?><a/>', '<a><?xml version="1.0"?></a>', '<a><?Xml x?></a>', '<?xmlfoo?><a/>', '<?xml:x?><a/>',
  // processing instructions
  '<a><?pi?></a>', '<a><?pi ?></a>', '<a><?pi x?y??></a>', '<a><? pi?></a>', '<a><?p:i x?></a>', '<a><?pi"x?></a>', '<a><?pi x', '<a><?',
  // DOCTYPE
  '<!DOCTYPE a><a/>', '<!DOCTYPE a [<!ENTITY x "y">]><a>&x;</a>', '<a><!DOCTYPE a></a>', '<a/><!DOCTYPE a>', '<!doctype a><a/>', '<!DOCTYPE',
  // comments
  '<a><!-- x --></a>', '<a><!----></a>', '<a><!-- a -- b --></a>', '<a><!-- x ---></a>', '<a><!--x', '<a><!-></a>', '<a><!- x --></a>',
  'x<!--c-->y', '<a>x<!--c-->y</a>', '<a>x<?p?>y</a>', '<!-- before --><a/><!-- after -->',
  // CDATA
  '<a><![CDATA[x<y>&z;]]></a>', '<a><![CDATA[]]></a>', '<a>x<![CDATA[ ]]>y</a>', '<![CDATA[x]]><a/>', '<a/><![CDATA[x]]>', '<a><![CDATA[x]></a>',
  '<a><![CDATA[a]]]]><![CDATA[>]]></a>', '<a><![cdata[x]]></a>', '<a><![CDATA[\r\n]]></a>',
  // text, references, line ends
  '<a>x &amp; y &lt; &gt; &quot; &apos;</a>', '<a>&#65;&#x41;&#x1F600;</a>', '<a>&#X41;</a>', '<a>&#x;</a>', '<a>&#;</a>', '<a>&;</a>', '<a>&foo;</a>',
  '<a>&amp</a>', '<a>& amp;</a>', '<a>&#0;</a>', '<a>&#xD800;</a>', '<a>&#xFFFE;</a>', '<a>&#x110000;</a>', '<a>&#9;&#10;&#13;</a>', '<a>&#99999999999999999999;</a>',
  '<a>]]></a>', '<a>]]&gt;</a>', '<a>]] ></a>', '<a>]</a>', '<a>x]]>y</a>', '<a>a\r\nb\rc\n</a>', '<a>\r\n</a>', '<text xmlns="urn:hl7-org:v3">\r\n <b/> \r </text>',
  '<a>\u0001</a>', '<a>\u007F\u0085\u2028</a>', '<a>\uFFFE</a>', '<a>\uFFFF</a>', '<a>😀</a>', '<a>\u00A0</a>', 'x<a/>', '<a/>x', '<a/>&amp;', '&#32;<a/>',
  ' \t\r\n<a/> \t\r\n', '<a>  </a>', '<a> <b/> </a>', '<a>x>y</a>',
  // start tags and attributes
  '<a b="1" c=\'2\'/>', '<a b = "1"/>', '<a b="1"c="2"/>', '<a b="1" b="2"/>', '<a b/>', '<a b=1/>', '<a b="<"/>', '<a b=">"/>', '<a b="&lt;&#10;"/>',
  '<a b="x\ty\nz\r\nw\rv"/>', '<a b="&#9;&#10;&#13;"/>', '<a b="&foo;"/>', '<a b="x"', '<a b="x', '<a b', '<a b=', '<a', '<', '<a / >', '<a/ >',
  '<a >x</a >', '<a\n>x</a\n>', '< a/>', '<1a/>', '<-a/>', '<é/>', '<a.b-c_d/>', '<𝒳/>', '<a b="\u0001"/>', '<a b="😀"/>', '<a\u00A0b="1"/>',
  '<a b="1"/c>', '<a __proto__="x" constructor="y" toString="z"/>', '<a __proto__="x" __proto__="y"/>',
  // end tags
  '<a></b>', '<a></a></a>', '</a>', '<a></ a>', '<a></>', '<a><b></a></b>', '<a></a', '<a><b/></a >', '<a></a\t>',
  // structure
  '', ' ', '<a/><b/>', '<a></a><a></a>', 'text', '<a>', '<a><b>', '<a/>\u0000',
  // namespaces
  '<a xmlns="urn:hl7-org:v3"><b/></a>', '<p:a xmlns:p="urn:x"><p:b/><c/></p:a>', '<p:a/>', '<a xmlns:p="urn:x"/><p:b/>',
  '<a xmlns:p="urn:x"><b xmlns:p="urn:y"><p:c/></b><p:c/></a>', '<a xmlns:p=""/>', '<a xmlns=""><b/></a>', '<a xmlns="urn:x"><b xmlns=""/></a>',
  '<a xmlns=" urn:hl7-org:v3 "/>', '<a xmlns:p=" urn:x "><p:b/></a>', '<a xmlns="\u00A0urn:x\u00A0"/>',
  '<xmlns:a/>', '<a xmlns:xmlns="http://www.w3.org/2000/xmlns/"/>', '<a xmlns:xml="http://www.w3.org/XML/1998/namespace"/>', '<a xmlns:xml="urn:x"/>',
  '<a xmlns:p="http://www.w3.org/XML/1998/namespace"/>', '<a xmlns="http://www.w3.org/XML/1998/namespace"/>', '<a xmlns="http://www.w3.org/2000/xmlns/"/>',
  '<a xmlns:p="http://www.w3.org/2000/xmlns/"/>', '<xml:a/>', '<a xml:lang="fr"/>', '<a p:b="1"/>', '<a xmlns:p="urn:x" p:b="1" q:b="2"/>',
  '<a xmlns:p="urn:x" xmlns:q="urn:x" p:b="1" q:b="2"/>', '<a xmlns:p="urn:x" p:b="1" b="2"/>', '<a xmlns:p="urn:x" xmlns:p="urn:y"/>', '<a xmlns="x" xmlns="y"/>',
  '<a:b:c xmlns:a="urn:x"/>', '<:a/>', '<a:/>', '<a :b="1"/>', '<a b:="1"/>', '<a xmlns:="urn:x"/>', '<a b:c:d="1" xmlns:b="urn:x"/>', '<a xmlns:p="urn:x" p:b="1"/>',
  '<p:a xmlns:p="urn:x"></p:a>', '<p:a xmlns:p="urn:x"></a>', '<a xmlns:__proto__="urn:x"><__proto__:b/></a>', '<a xmlns:constructor="urn:x"><constructor:b/></a>',
  '<toString:b/>', '<a xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:type="CD" xsi:nil="true"/>',
  // names and pieces beyond ASCII (UTF-8 input is read through its latin1 view)
  '<é/>', '<aé/>', '<a×/>', '<é×/>', '<a é="1"/>', '<a b×="1"/>', '<aé></aé>', '<aé></ae>', '<é></é >', '<a>é</a>', '<a b="é&amp;"/>',
  '<a b="’\n"/>', '<a>’&lt;\r\n</a>', '<?é x?><a/>', '<a><?é?></a>', '<a><?é×?></a>', '<a><?p:é?></a>', '<a><!-- é --></a>', '<a><![CDATA[é]]></a>',
  '<a>\uFFFE</a>', '<a b="\uFFFF"/>', '<a><!-- \uFFFE --></a>', '<a><?pi \uFFFF?></a>', '<a><![CDATA[\uFFFE]]></a>', '<𝒳 𝒴="1"/>', '<a>\u0085\u2028</a>',
  '<p:é xmlns:p="urn:é"/>', '<é:a xmlns:é="urn:x"/>', '<a xmlns:é="urn:x" é:b="1"/>',
  '\uFEFF<?xml version="1.1"?><a/>', '\uFEFF\uFEFF<?xml version="1.0"?><a/>',
  // narrative whitespace and text splitting
  '<text xmlns="urn:hl7-org:v3"> <content>a</content> <content>b</content> </text>', '<text xmlns="urn:hl7-org:v3"><![CDATA[]]> </text>',
  '<x xmlns="urn:hl7-org:v3"><text> a <!-- c --> b </text> </x>', '<text xmlns="urn:x"> <b/> </text>', '<text xmlns="urn:hl7-org:v3"><text/> <b/> </text>',
];

describe('XML reader: same outcome as saxes on hand-picked cases', () => {
  it.each(CASES.map((c) => [c]))('%j', (xml) => compare(utf8(xml)));

  it('the same limits, at the same element', () => {
    const nested = (n: number): string => `${'<a>'.repeat(n)}${'</a>'.repeat(n)}`;
    compare(utf8(nested(20)), { ...DEFAULT_XML_LIMITS, maxDepth: 20 });
    compare(utf8(nested(21)), { ...DEFAULT_XML_LIMITS, maxDepth: 20 });
    compare(utf8(`<r>${'<a/>'.repeat(9)}</r>`), { ...DEFAULT_XML_LIMITS, maxElements: 10 });
    compare(utf8(`<r>${'<a/>'.repeat(10)}</r>`), { ...DEFAULT_XML_LIMITS, maxElements: 10 });
    // A malformed tag before the limit: not well-formed first; after it: the limit first.
    compare(utf8(`${nested(21).replace('<a><a><a>', '<a><a x><a>')}`), { ...DEFAULT_XML_LIMITS, maxDepth: 20 });
    compare(utf8(`${'<a>'.repeat(21)}<b x></b>`), { ...DEFAULT_XML_LIMITS, maxDepth: 20 });
  });

  it('other encodings', () => {
    const doc = '<?xml version="1.0" encoding="ISO-8859-1"?><a b="é">ç</a>';
    compare(Buffer.from(doc, 'latin1'));
    compare(Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from('<a>é\r\n😀</a>', 'utf16le')]));
    compare(Buffer.from([0xef, 0xbb, 0xbf, ...utf8('<a/>')]));
  });
});

// ---- generated documents ----

const NAMESPACES = ['urn:hl7-org:v3', 'urn:x', '', ' urn:hl7-org:v3 ', 'http://www.w3.org/2001/XMLSchema-instance', 'http://www.w3.org/XML/1998/namespace'];
/** Mostly names that are fine once the root's declarations are in scope; a few that are not. */
const ELEMENT_NAMES = fc.oneof(
  { weight: 60, arbitrary: fc.constantFrom('a', 'b', 'text', 'section', 'content', 'p:c', 'xsi:x', 'é', '_x', 'a.b-c', 'xml:x', '𝒳') },
  { weight: 1, arbitrary: fc.constantFrom('x:y', 'a:b:c', 'xmlns:a', ':a') },
);
const ATTR_NAMES = fc.oneof(
  { weight: 60, arbitrary: fc.constantFrom('id', 'code', 'ID', 'xsi:type', 'p:id', 'xml:lang', '__proto__', 'a') },
  { weight: 1, arbitrary: fc.constantFrom('q:id', 'a:', 'b:c:d') },
);
const NS_DECLARATIONS = fc.oneof(
  { weight: 20, arbitrary: fc.constantFrom('xmlns', 'xmlns:p', 'xmlns:x') },
  { weight: 1, arbitrary: fc.constantFrom('xmlns:xml', 'xmlns:xmlns') },
);
/** Pieces of text and attribute values: plain, references, line ends, and a few that break the rules. */
const SAFE_PIECES = ['x', 'Texte', ' ', '  ', '\n', '\r\n', '\r', '\t', 'é', '’', '😀', '\u00A0', '&amp;', '&lt;', '&gt;', '&quot;', '&apos;', '&#65;', '&#x41;', '&#10;', '&#13;', ']', '>', '-', '?', '='];
const BAD_PIECES = ['&#0;', '&#xFFFE;', '&#X41;', '&nope;', '&', ';', ']]>', '<', '\u0001', '\uFFFF', '--', '?>'];
const pieceArb = fc.oneof({ weight: 150, arbitrary: fc.constantFrom(...SAFE_PIECES) }, { weight: 1, arbitrary: fc.constantFrom(...BAD_PIECES) });
const shortTextArb = fc.array(pieceArb, { maxLength: 6 }).map((p) => p.join(''));
/** Sometimes a long run (as a base64 payload is), so that the reader's scans of long pieces are compared too. */
const textArb = fc.oneof(
  { weight: 6, arbitrary: shortTextArb },
  { weight: 1, arbitrary: fc.tuple(shortTextArb, fc.constantFrom('A'.repeat(70), 'QUJD\r\n'.repeat(20), 'é'.repeat(40)), shortTextArb).map((p) => p.join('')) },
);
const attrArb = fc.tuple(
  fc.oneof(
    { weight: 6, arbitrary: fc.tuple(ATTR_NAMES, textArb) },
    { weight: 1, arbitrary: fc.tuple(NS_DECLARATIONS, fc.oneof({ weight: 20, arbitrary: fc.constantFrom(...NAMESPACES) }, { weight: 1, arbitrary: textArb })) },
  ),
  fc.constantFrom('"', "'"),
  fc.constantFrom('', '', ' ', '\n'),
).map(([[name, value], q, space]) => ({ name, text: ` ${name}${space}=${space}${q}${value.split(q).join('')}${q}` }));
/** Attribute names are usually distinct (a repeated name is one of the errors, not the common case). */
const attrsArb = fc.oneof(
  { weight: 8, arbitrary: fc.uniqueArray(attrArb, { maxLength: 3, selector: (a) => a.name }) },
  { weight: 1, arbitrary: fc.array(attrArb, { maxLength: 3 }) },
).map((attrs) => attrs.map((a) => a.text).join(''));

const misc = fc.oneof(
  { weight: 8, arbitrary: textArb },
  { weight: 1, arbitrary: textArb.map((t) => `<!--${t.replace(/-/g, '')}-->`) },
  { weight: 1, arbitrary: textArb.map((t) => `<![CDATA[${t}]]>`) },
  { weight: 1, arbitrary: fc.constantFrom('<?pi x?>', '<?pi?>', '<!---->', '<!-- - -->', '<![CDATA[]]>') },
);

const { element } = fc.letrec<{ element: string }>((tie) => ({
  element: fc.tuple(
    ELEMENT_NAMES,
    attrsArb,
    fc.array(fc.oneof({ weight: 3, arbitrary: misc }, { weight: 2, arbitrary: tie('element') }), { maxLength: 4, depthIdentifier: 'tree' }),
    fc.boolean(),
  ).map(([name, attrs, children, empty]) => (empty && !children.length ? `<${name}${attrs}/>` : `<${name}${attrs}>${children.join('')}</${name}>`)),
}));

const rootNs = fc.oneof(
  { weight: 10, arbitrary: fc.constantFrom(' xmlns="urn:hl7-org:v3" xmlns:p="urn:x" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"', ' xmlns:p="urn:x" xmlns:xsi="urn:y"') },
  { weight: 1, arbitrary: fc.constant('') },
);
const prolog = fc.oneof(
  { weight: 30, arbitrary: fc.constantFrom('', '<?xml version="1.0" encoding="UTF-8"?>\n', '<?xml version="1.0"?>', '\uFEFF', '<!-- x -->\n', '<?pi?>', ' ') },
  { weight: 1, arbitrary: fc.constantFrom('<!DOCTYPE a>', '<?xml version="1.1"?>', 'x') },
);
const documentArb = fc.tuple(prolog, rootNs, element, fc.constantFrom('', '\n', '<!-- end -->', '<?pi?>', '', '\n', '<!-- end -->', '<?pi?>', ' x')).map(([head, ns, root, tail]) =>
  // The generated root gets the namespace declarations, so that prefixes are usually bound.
  `${head}${root.replace(/^<([^\s/>]+)/, `<$1${ns}`)}${tail}`);

/** Edits anywhere in the text: insert a token, delete or duplicate a stretch, swap one character. */
const TOKENS = ['<', '>', '/', '/>', '</', '&', ';', '"', "'", '=', ' ', '\r', '\n', ':', '!', '?', '-', '[', ']', '<!--', '-->', '<![CDATA[', ']]>', '<?x ', '?>', '<!DOCTYPE', '&#', 'xmlns:q="" ', 'q:', '\u0000', '\uD800', 'é', '😀', '<a>', '</a>', '<b/>'];
type Edit = { at: number; kind: 'insert' | 'delete' | 'duplicate'; token: string; length: number };
const editArb = fc.record({
  at: fc.nat(),
  kind: fc.constantFrom<Edit['kind']>('insert', 'delete', 'duplicate'),
  token: fc.constantFrom(...TOKENS),
  length: fc.integer({ min: 1, max: 12 }),
});

function applyEdits(text: string, edits: Edit[]): string {
  let out = text;
  for (const e of edits) {
    const at = out.length ? e.at % (out.length + 1) : 0;
    if (e.kind === 'insert') out = out.slice(0, at) + e.token + out.slice(at);
    else if (e.kind === 'delete') out = out.slice(0, at) + out.slice(at + e.length);
    else out = out.slice(0, at) + out.slice(at, at + e.length) + out.slice(at);
  }
  return out;
}

describe('XML reader: same outcome as saxes on generated documents', () => {
  it('as generated', () => {
    fc.assert(fc.property(documentArb, (doc) => compare(utf8(doc))), params(RUNS));
  });

  it('as generated, in UTF-16 (read as a string, not through a UTF-8 view)', () => {
    fc.assert(fc.property(documentArb, (doc) => compare(Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(doc, 'utf16le')]))), params(Math.floor(RUNS / 2)));
  });

  it('after random edits', () => {
    fc.assert(fc.property(documentArb, fc.array(editArb, { minLength: 1, maxLength: 3 }), (doc, edits) => compare(utf8(applyEdits(doc, edits)))), params(RUNS));
  });

  it('the corpus after random edits', () => {
    const docs = [...loadCorpus()].map(([, bytes]) => bytes.toString('utf8')).filter((d) => d.length < 200_000);
    fc.assert(
      fc.property(fc.nat({ max: docs.length - 1 }), fc.array(editArb, { minLength: 1, maxLength: 3 }), (n, edits) => compare(utf8(applyEdits(docs[n] as string, edits)))),
      params(Math.max(50, Math.floor(RUNS / 20))),
    );
  });
});
