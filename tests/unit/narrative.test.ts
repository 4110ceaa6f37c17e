import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { narrativeToXhtml, type NarrativeOptions } from '../../gateway/cda/narrative.js';
import { HL7_NS, parseXml, type XElement } from '../../gateway/cda/xml.js';
import { CORPUS_DIR } from '../support/corpus.js';

const XHTML_NS = 'http://www.w3.org/1999/xhtml';
const DIV = `<div xmlns="${XHTML_NS}">`;

/** The XHTML elements FHIR R4 allows in Narrative.div (txt-1). */
const FHIR_ELEMENTS = new Set(
  'a abbr b big blockquote br caption cite code col colgroup dd del dfn div dl dt em h1 h2 h3 h4 h5 h6 hr i img ins kbd li ol p pre q samp small span strong sub sup table tbody td tfoot th thead tr tt ul var'.split(
    ' ',
  ),
);
/** The attributes this converter may write. */
const OUR_ATTRIBUTES = new Set([
  'id', 'class', 'lang', 'href', 'colspan', 'rowspan', 'scope', 'headers', 'abbr', 'align', 'valign', 'width',
  'border', 'cellpadding', 'cellspacing', 'summary', 'span',
]);

/** XHTML 1.0 nesting this converter guarantees (browsers would otherwise re-parent content). */
const REQUIRED_PARENTS: Record<string, string[]> = {
  li: ['ul', 'ol'],
  tr: ['table', 'thead', 'tbody', 'tfoot'],
  td: ['tr'],
  th: ['tr'],
  thead: ['table'],
  tbody: ['table'],
  tfoot: ['table'],
  caption: ['table'],
  colgroup: ['table'],
  col: ['table', 'colgroup'],
};
const ONLY_CHILDREN: Record<string, string[]> = {
  ul: ['li'],
  ol: ['li'],
  tr: ['td', 'th'],
  thead: ['tr'],
  tbody: ['tr'],
  tfoot: ['tr'],
  table: ['caption', 'col', 'colgroup', 'thead', 'tbody', 'tfoot', 'tr'],
};

interface Issue {
  code: string;
  message: string;
  location: string;
}

function narrative(inner: string, options: NarrativeOptions = {}, textAttrs = ''): { xhtml: string | undefined; issues: Issue[] } {
  const doc = parseXml(Buffer.from(`<text xmlns="${HL7_NS}"${textAttrs}>${inner}</text>`));
  const issues: Issue[] = [];
  const xhtml = narrativeToXhtml(doc, {
    ...options,
    report: (code, message, location) => issues.push({ code, message, location }),
  });
  return { xhtml, issues };
}

/** Converts and returns the inner XHTML (without the div wrapper), after checking the FHIR rules. */
function inner(xml: string, options: NarrativeOptions = {}): string {
  const { xhtml } = narrative(xml, options);
  expect(xhtml).toBeDefined();
  assertFhirXhtml(xhtml as string);
  expect((xhtml as string).startsWith(DIV)).toBe(true);
  return (xhtml as string).slice(DIV.length, -'</div>'.length);
}

/** Well-formed, XHTML namespace, only FHIR elements and our attribute list, some text (txt-1, txt-2). */
function assertFhirXhtml(xhtml: string): void {
  expect(xhtml).not.toMatch(/<!DOCTYPE|<\?/i);
  const root = parseXml(Buffer.from(xhtml));
  expect(root.name).toBe('div');
  let text = '';
  const walk = (el: XElement, inLink = false): void => {
    expect(el.ns, `namespace of <${el.name}>`).toBe(XHTML_NS);
    const parents = REQUIRED_PARENTS[el.name];
    if (parents) expect(parents, `parent of <${el.name}>`).toContain(el.parent?.name);
    const only = ONLY_CHILDREN[el.name];
    if (only) {
      for (const c of el.children) {
        if (typeof c === 'string') expect(c.trim(), `text directly in <${el.name}>`).toBe('');
        else expect(only, `child of <${el.name}>`).toContain(c.name);
      }
    }
    if (el.name === 'a') expect(inLink, 'no <a> inside <a>').toBe(false);
    expect(FHIR_ELEMENTS.has(el.name), `element <${el.name}> allowed in FHIR narrative`).toBe(true);
    for (const [name, value] of Object.entries(el.attrs)) {
      expect(OUR_ATTRIBUTES.has(name), `attribute ${name} on <${el.name}>`).toBe(true);
      if (name === 'href') expect(value).toMatch(/^(https?:|mailto:|tel:|#|urn:uuid:|urn:oid:|[A-Z][A-Za-z]+\/)/i);
    }
    for (const c of el.children) {
      if (typeof c === 'string') text += c;
      else walk(c, inLink || el.name === 'a');
    }
  };
  walk(root);
  expect(text.trim(), 'non-whitespace content (txt-2)').not.toBe('');
}

describe('narrativeToXhtml: absent and empty narratives', () => {
  it('returns undefined without a text element', () => {
    expect(narrativeToXhtml(undefined)).toBeUndefined();
  });

  it.each([
    ['empty', ''],
    ['whitespace', ' \n\t  \n '],
    ['only a br', '<br/>'],
    ['an empty content with an ID', '\n  <content ID="x"/>\n'],
    ['an empty table', '<table><tbody><tr><td> </td></tr></tbody></table>'],
    ['an empty list', '<list><item/></list>'],
  ])('returns undefined for %s (FHIR txt-2)', (_label, xml) => {
    expect(narrative(xml).xhtml).toBeUndefined();
  });
});

describe('narrativeToXhtml: plain-text narratives', () => {
  it('wraps and escapes plain text', () => {
    expect(narrative('Dernier repas pris le 27 mars 2020 à 12h00.').xhtml).toBe(
      `${DIV}Dernier repas pris le 27 mars 2020 à 12h00.</div>`,
    );
    expect(narrative('a &lt; b &amp;&amp; c &gt; d "q" \'s\'').xhtml).toBe(`${DIV}a &lt; b &amp;&amp; c &gt; d "q" 's'</div>`);
  });

  it('keeps the author line breaks as <br/>, drops indentation and collapses blank lines', () => {
    const xml = '\n    Ligne 1\n      Ligne   2\n\n\n    Ligne 3\n  ';
    expect(narrative(xml).xhtml).toBe(`${DIV}Ligne 1<br/>Ligne 2<br/><br/>Ligne 3</div>`);
  });

  it('reads CDATA as text, never as markup', () => {
    const { xhtml } = narrative('<![CDATA[<script>alert(1)</script> & co]]>');
    expect(xhtml).toBe(`${DIV}&lt;script&gt;alert(1)&lt;/script&gt; &amp; co</div>`);
  });

  it('maps the attributes of the text element itself onto the div', () => {
    const { xhtml, issues } = narrative('Texte', {}, ' ID="t1" styleCode="Bold" language="fr-FR" mediaType="text/x-hl7-text+xml"');
    expect(xhtml).toBe(`<div xmlns="${XHTML_NS}" id="t1" class="Bold" lang="fr-FR">Texte</div>`);
    expect(issues).toEqual([]);
  });

  it('keeps non-breaking spaces (French typography) as content', () => {
    expect(narrative('37\u00a0°C').xhtml).toBe(`${DIV}37\u00a0°C</div>`);
  });
});

describe('narrativeToXhtml: element mappings (CDA StrucDoc → XHTML)', () => {
  it('content → span, with ID → id, styleCode → class, language → lang', () => {
    expect(inner('<content ID="poids" styleCode="Bold Italics" language="fr">3900 g</content>')).toBe(
      '<span id="poids" class="Bold Italics" lang="fr">3900 g</span>',
    );
  });

  it('content revised="delete" → del, revised="insert" → ins', () => {
    expect(inner('<content revised="delete">ancien</content> <content revised="insert">nouveau</content>')).toBe(
      '<del>ancien</del> <ins>nouveau</ins>',
    );
  });

  it('paragraph → p, and a paragraph caption becomes a span inside it', () => {
    expect(inner('<paragraph><caption>Titre</caption> Corps du texte </paragraph>')).toBe('<p><span>Titre</span> Corps du texte</p>');
  });

  it('list → ul, ordered list → ol, item → li', () => {
    expect(inner('<list><item>un</item><item>deux</item></list>')).toBe('<ul><li>un</li><li>deux</li></ul>');
    expect(inner('<list listType="ordered"><item>un</item></list>')).toBe('<ol><li>un</li></ol>');
    expect(inner('<list listType="unordered"><item>un</item></list>')).toBe('<ul><li>un</li></ul>');
  });

  it('a list caption is written as a paragraph before the list (ul cannot hold a caption)', () => {
    expect(inner('<list ID="l1"><caption styleCode="Bold">Traitements</caption><item>A</item></list>')).toBe(
      '<p class="Bold">Traitements</p><ul id="l1"><li>A</li></ul>',
    );
  });

  it('nested lists stay nested', () => {
    const xml = `
      <list>
        <item>Niveau 1
          <list listType="ordered">
            <item>Niveau 2 <content styleCode="Bold">gras</content></item>
            <item><list><item>Niveau 3</item></list></item>
          </list>
        </item>
      </list>`;
    expect(inner(xml)).toBe(
      '<ul><li>Niveau 1<ol><li>Niveau 2 <span class="Bold">gras</span></li><li><ul><li>Niveau 3</li></ul></li></ol></li></ul>',
    );
  });

  it('tables keep their structure and safe attributes', () => {
    const xml = `
      <table border="1" width="100%" cellpadding="2" cellspacing="0" summary="Résultats">
        <caption>Biologie</caption>
        <colgroup span="2" width="50%"><col span="1" align="left"/></colgroup>
        <thead align="center"><tr valign="top"><th scope="col" abbr="Ex">Examen</th><th colspan="2">Valeur</th></tr></thead>
        <tfoot><tr><td colspan="3">Fin</td></tr></tfoot>
        <tbody><tr><td rowspan="2" headers="h1 h2" align="right">TSH</td><td>1.9</td></tr></tbody>
      </table>`;
    expect(inner(xml)).toBe(
      '<table summary="Résultats" width="100%" border="1" cellpadding="2" cellspacing="0"><caption>Biologie</caption>' +
        '<colgroup span="2" width="50%"><col span="1" align="left"/></colgroup>' +
        '<thead align="center"><tr valign="top"><th abbr="Ex" scope="col">Examen</th><th colspan="2">Valeur</th></tr></thead>' +
        '<tfoot><tr><td colspan="3">Fin</td></tr></tfoot>' +
        '<tbody><tr><td headers="h1 h2" rowspan="2" align="right">TSH</td><td>1.9</td></tr></tbody></table>',
    );
  });

  it('tables nest inside cells and lists inside tables', () => {
    const xml =
      '<table><tbody><tr><td><table><tbody><tr><td>interne</td></tr></tbody></table></td>' +
      '<td><list><item>a</item></list></td></tr></tbody></table>';
    expect(inner(xml)).toBe(
      '<table><tbody><tr><td><table><tbody><tr><td>interne</td></tr></tbody></table></td><td><ul><li>a</li></ul></td></tr></tbody></table>',
    );
  });

  it('keeps empty cells as open/close pairs, not self-closed', () => {
    expect(inner('<table><tbody><tr><td>a</td><td></td><td/></tr></tbody></table>')).toBe(
      '<table><tbody><tr><td>a</td><td></td><td></td></tr></tbody></table>',
    );
  });

  it('br → <br/>, sub and sup kept', () => {
    expect(inner('H<sub>2</sub>O, m<sup>2</sup><br/>fin')).toBe('H<sub>2</sub>O, m<sup>2</sup><br/>fin');
  });

  it('linkHtml → a with the safe href schemes', () => {
    expect(inner('<linkHtml href="https://esante.gouv.fr/x?a=1&amp;b=2">ANS</linkHtml>')).toBe(
      '<a href="https://esante.gouv.fr/x?a=1&amp;b=2">ANS</a>',
    );
    expect(inner('<linkHtml href="http://example.org">h</linkHtml>')).toBe('<a href="http://example.org">h</a>');
    expect(inner('<linkHtml href="mailto:dr@example.org">m</linkHtml>')).toBe('<a href="mailto:dr@example.org">m</a>');
    expect(inner('<linkHtml href="tel:+33123456789">t</linkHtml>')).toBe('<a href="tel:+33123456789">t</a>');
    expect(inner('<linkHtml href="#poids" ID="l1">voir</linkHtml>')).toBe('<a href="#poids" id="l1">voir</a>');
    expect(inner('<linkHtml href="  HTTPS://EXAMPLE.ORG  ">u</linkHtml>')).toBe('<a href="HTTPS://EXAMPLE.ORG">u</a>');
  });

  it('an empty link shows its target', () => {
    expect(inner('<linkHtml href="https://example.org/"/>')).toBe('<a href="https://example.org/">https://example.org/</a>');
  });

  it('footnote → span, footnoteRef → a href="#IDREF" numbered in document order', () => {
    const xml =
      'Valeur<footnoteRef IDREF="fn2"/> et<footnoteRef IDREF="fn1"/>' +
      '<footnote ID="fn1">Première note</footnote><footnote ID="fn2">Seconde</footnote><footnote>Sans renvoi</footnote>';
    expect(inner(xml)).toBe(
      'Valeur<a href="#fn2">[2]</a> et<a href="#fn1">[1]</a>' +
        '<span id="fn1">[1] Première note</span><span id="fn2">[2] Seconde</span><span>Sans renvoi</span>',
    );
  });

  it('a footnoteRef to a footnote of another section still links to it', () => {
    expect(inner('Voir<footnoteRef IDREF="ailleurs"/>')).toBe('Voir<a href="#ailleurs">[*]</a>');
  });

  it('renderMultiMedia → a link to the Binary the observationMedia became', () => {
    const resolveMedia = (id: string): { url: string; title?: string } | undefined =>
      id === 'doc-1' ? { url: 'urn:uuid:0b0e3c1a-1111-4222-8333-444455556666', title: 'Compte rendu PDF' } : id === 'img-2' ? { url: 'Binary/img2' } : undefined;
    expect(inner('<renderMultiMedia referencedObject="doc-1"/>', { resolveMedia })).toBe(
      '<a href="urn:uuid:0b0e3c1a-1111-4222-8333-444455556666">Compte rendu PDF</a>',
    );
    expect(inner('<renderMultiMedia referencedObject="img-2" ID="m1"/>', { resolveMedia })).toBe(
      '<a href="Binary/img2" id="m1">Document joint</a>',
    );
    expect(inner('<renderMultiMedia referencedObject="img-2"><caption>Radio du thorax</caption></renderMultiMedia>', { resolveMedia })).toBe(
      '<a href="Binary/img2">Radio du thorax</a>',
    );
    // referencedObject is IDREFS: one link per object.
    expect(inner('<renderMultiMedia referencedObject="doc-1 img-2" ID="m2"/>', { resolveMedia })).toBe(
      '<span id="m2"><a href="urn:uuid:0b0e3c1a-1111-4222-8333-444455556666">Compte rendu PDF</a> <a href="Binary/img2">Document joint</a></span>',
    );
  });

  it('an unresolved renderMultiMedia is reported and leaves a visible placeholder', () => {
    const { xhtml, issues } = narrative('<renderMultiMedia referencedObject="absent"/>', { resolveMedia: () => undefined });
    expect(xhtml).toBe(`${DIV}<span>Document joint non disponible</span></div>`);
    expect(issues).toEqual([{ code: 'MEDIA_REFERENCE_UNRESOLVED', message: expect.stringContaining('absent') as string, location: '/text/renderMultiMedia' }]);
    // Without a resolver at all, and without referencedObject.
    expect(narrative('<renderMultiMedia referencedObject="x"><caption>Photo</caption></renderMultiMedia>').xhtml).toBe(`${DIV}<span>Photo</span></div>`);
    expect(narrative('<renderMultiMedia/>').issues.map((i) => i.code)).toEqual(['MEDIA_REFERENCE_UNRESOLVED']);
  });

  it('a media URL that is not a safe reference is not linked', () => {
    const { xhtml, issues } = narrative('<renderMultiMedia referencedObject="m"/>', {
      resolveMedia: () => ({ url: 'javascript:alert(1)', title: 'x' }),
    });
    expect(xhtml).toBe(`${DIV}<span>Document joint non disponible</span></div>`);
    expect(issues[0]?.code).toBe('MEDIA_REFERENCE_UNRESOLVED');
  });

  it('keeps mixed inline content and word spacing, drops layout whitespace', () => {
    const xml = `
      <paragraph>
        Patient <content styleCode="Bold">conscient</content> <content>et éveillé</content>,
        douleur <content ID="d1">avant-bras</content>
        <br/>
        <content ID="d2">cuisse</content>
      </paragraph>
      <table>
        <tbody>
          <tr> <td> a </td> </tr>
        </tbody>
      </table>`;
    expect(inner(xml)).toBe(
      '<p>Patient <span class="Bold">conscient</span> <span>et éveillé</span>, douleur <span id="d1">avant-bras</span><br/><span id="d2">cuisse</span></p>' +
        '<table><tbody><tr><td>a</td></tr></tbody></table>',
    );
  });

  it('accepts narratives in no namespace (documents without the HL7 namespace)', () => {
    const doc = parseXml(Buffer.from('<text><paragraph>Sans <content>namespace</content></paragraph></text>'));
    expect(narrativeToXhtml(doc)).toBe(`${DIV}<p>Sans <span>namespace</span></p></div>`);
  });
});

describe('narrativeToXhtml: hostile content', () => {
  it.each([
    ['javascript:alert(1)'],
    ['JaVaScRiPt:alert(1)'],
    ['  javascript:alert(1)'],
    ['java&#9;script:alert(1)'],
    ['java&#10;script:alert(1)'],
    ['&#x20;&#xA0;javascript:alert(1)'],
    ['javascript&#58;alert(1)'],
    ['vbscript:msgbox(1)'],
    ['data:text/html;base64,PHNjcmlwdD4='],
    ['file:///etc/passwd'],
    ['//evil.example/x'],
    ['relative/document.pdf'],
    ['https:'],
    ['#'],
    ['http://exa&#10;mple.org'],
  ])('drops the unsafe href %j and reports it', (href) => {
    const { xhtml, issues } = narrative(`<linkHtml href="${href}">lien</linkHtml>`);
    expect(xhtml).toBe(`${DIV}<a>lien</a></div>`);
    expect(issues.map((i) => i.code)).toEqual(['NARRATIVE_CHANGED']);
    expect(issues[0]?.location).toBe('/text/linkHtml');
  });

  it('reads character references in href before checking the scheme', () => {
    expect(inner('<linkHtml href="http&#58;//x.org">lien</linkHtml>')).toBe('<a href="http://x.org">lien</a>');
  });

  it('drops event handlers, style and any other attribute, and reports each kind once', () => {
    const xml =
      '<content onclick="alert(1)" style="color:red" ID="ok">a</content><content onclick="x">b</content>' +
      '<table frame="box" onmouseover="x"><tbody><tr><td class="x" style="y">c</td></tr></tbody></table>';
    const { xhtml, issues } = narrative(xml);
    expect(xhtml).toBe(`${DIV}<span id="ok">a</span><span>b</span><table><tbody><tr><td>c</td></tr></tbody></table></div>`);
    expect(issues.map((i) => i.message)).toEqual([
      'Attribute "onclick" of <content> has no FHIR XHTML equivalent and was dropped. (2 occurrences; location of the first)',
      'Attribute "style" of <content> has no FHIR XHTML equivalent and was dropped.',
      'Attribute "frame" of <table> has no FHIR XHTML equivalent and was dropped.',
      'Attribute "onmouseover" of <table> has no FHIR XHTML equivalent and was dropped.',
      'Attribute "class" of <td> has no FHIR XHTML equivalent and was dropped.',
      'Attribute "style" of <td> has no FHIR XHTML equivalent and was dropped.',
    ]);
    expect(issues[0]?.location).toBe('/text/content[1]');
  });

  it('keeps only the text of script-like and unknown elements, reported once per element name', () => {
    const xml =
      '<script>alert(1)</script><script>alert(2)</script><style>p{}</style><iframe src="x"/>' +
      '<object data="x">objet</object><img src="javascript:x"/><a href="javascript:x">pas un lien CDA</a><b>gras</b>';
    const { xhtml, issues } = narrative(xml);
    expect(xhtml).toBe(
      `${DIV}<span>alert(1)</span><span>alert(2)</span><span>p{}</span><span>objet</span><span>pas un lien CDA</span><span>gras</span></div>`,
    );
    expect(issues.map((i) => i.message)).toEqual([
      '<script> is not a CDA narrative element; only its text was kept. (2 occurrences; location of the first)',
      '<style> is not a CDA narrative element; only its text was kept.',
      '<iframe> is not a CDA narrative element; only its text was kept.',
      '<object> is not a CDA narrative element; only its text was kept.',
      '<img> is not a CDA narrative element; only its text was kept.',
      '<a> is not a CDA narrative element; only its text was kept.',
      '<b> is not a CDA narrative element; only its text was kept.',
    ]);
    expect(issues[0]?.location).toBe('/text/script[1]');
  });

  it('treats elements of other namespaces (even XHTML) as unknown', () => {
    const xml =
      `<x:script xmlns:x="${XHTML_NS}">alert(1)</x:script>` +
      '<lab:content xmlns:lab="urn:oid:1.3.6.1.4.1.19376.1.3.2"><content>imbriqué</content></lab:content>';
    const { xhtml, issues } = narrative(xml);
    expect(xhtml).toBe(`${DIV}<span>alert(1)</span><span>imbriqué</span></div>`);
    expect(issues.map((i) => i.message)).toEqual([
      `<{${XHTML_NS}}script> is not a CDA narrative element; only its text was kept.`,
      '<{urn:oid:1.3.6.1.4.1.19376.1.3.2}content> is not a CDA narrative element; only its text was kept.',
    ]);
  });

  it.each([
    ['1abc'],
    ['a b'],
    ['a:b'],
    ['-x'],
    ['x&quot;&gt;&lt;script&gt;'],
    ['.dot'],
    [''],
  ])('drops the invalid ID %j', (id) => {
    const { xhtml, issues } = narrative(`<content ID="${id}">t</content>`);
    expect(xhtml).toBe(`${DIV}<span>t</span></div>`);
    expect(issues.map((i) => i.code)).toEqual(['NARRATIVE_CHANGED']);
  });

  it('accepts NCName IDs with non-ASCII letters, digits, dots and hyphens', () => {
    expect(inner('<content ID="é_1.a-b·c">t</content>')).toBe('<span id="é_1.a-b·c">t</span>');
  });

  it('drops duplicate IDs after the first (ids must be unique in the div)', () => {
    const { xhtml, issues } = narrative('<content ID="x">a</content><content ID="x">b</content>');
    expect(xhtml).toBe(`${DIV}<span id="x">a</span><span>b</span></div>`);
    expect(issues[0]?.message).toContain('duplicate');
  });

  it('drops invalid language tags and table attribute values', () => {
    const xml =
      '<content language="fr&quot; onclick=&quot;x">a</content>' +
      '<table border="1px" width="100; x"><tbody valign="evil"><tr><td colspan="abc" scope="all" headers="1a">b</td></tr></tbody></table>';
    const { xhtml, issues } = narrative(xml);
    expect(xhtml).toBe(`${DIV}<span>a</span><table><tbody><tr><td>b</td></tr></tbody></table></div>`);
    expect(issues).toHaveLength(7);
  });

  it('escapes quotes and markup characters in attribute values (styleCode, summary)', () => {
    const out = inner('<table summary="a &quot;b&quot; &lt;c&gt; &amp; d"><tbody><tr><td styleCode="x&quot;&gt;&lt;y">t</td></tr></tbody></table>');
    expect(out).toBe('<table summary="a &quot;b&quot; &lt;c&gt; &amp; d"><tbody><tr><td class="x&quot;&gt;&lt;y">t</td></tr></tbody></table>');
  });

  it('escapes markup characters in text and never lets ]]> or <!-- through', () => {
    expect(inner('<content>a ]]&gt; b &lt;!-- c --&gt; &lt;?pi?&gt;</content>')).toBe(
      '<span>a ]]&gt; b &lt;!-- c --&gt; &lt;?pi?&gt;</span>',
    );
  });

  it('drops comments and processing instructions of the source', () => {
    expect(inner('<!-- commentaire --><?xml-stylesheet href="x"?><content>a</content>')).toBe('<span>a</span>');
  });

  it('removes control characters and lone surrogates (not XML 1.0 characters), and reports it', () => {
    // The parser refuses these characters, so the tree is built by hand, as a buggy caller might.
    const span: XElement = { name: 'content', ns: HL7_NS, attrs: { styleCode: 'Bo\u0001ld' }, children: ['x\u0000y\u0007z\u001b\u007f\u0085\ud800!'], parent: undefined };
    const text: XElement = { name: 'text', ns: HL7_NS, attrs: {}, children: [span, 'fin\u0008'], parent: undefined };
    const issues: string[] = [];
    const xhtml = narrativeToXhtml(text, { report: (code, message) => issues.push(`${code}: ${message}`) });
    expect(xhtml).toBe(`${DIV}<span class="Bold">xyz!</span>fin</div>`);
    assertFhirXhtml(xhtml as string);
    expect(issues).toEqual(['NARRATIVE_CHANGED: Control or non-XML characters were removed from the narrative. (2 occurrences; location of the first)']);
  });

  it('cleans a media title given by the resolver', () => {
    const out = inner('<renderMultiMedia referencedObject="m"/>', {
      resolveMedia: () => ({ url: 'urn:uuid:1d2c', title: 'Titre\u0000 <b>&amp;\ud800' }),
    });
    expect(out).toBe('<a href="urn:uuid:1d2c">Titre &lt;b&gt;&amp;amp;</a>');
  });

  it('renders misplaced table parts and items as spans', () => {
    const { xhtml, issues } = narrative('<td>cellule</td><item>élément</item><tr><td>x</td></tr><col/>');
    expect(xhtml).toBe(`${DIV}<span>cellule</span><span>élément</span><span><span>x</span></span><span></span></div>`);
    assertFhirXhtml(xhtml as string);
    expect(issues.every((i) => i.code === 'NARRATIVE_CHANGED')).toBe(true);
  });

  it('wraps stray content of lists and table rows in the li/td XHTML requires', () => {
    const { xhtml, issues } = narrative(
      '<list>perdu ? <content>non</content><item>a</item></list>' +
        '<table><tbody><tr>texte <content>libre</content><td>b</td></tr></tbody><content>après</content></table>',
    );
    expect(xhtml).toBe(
      `${DIV}<ul><li>perdu ? <span>non</span></li><li>a</li></ul>` +
        '<table><tbody><tr><td>texte <span>libre</span></td><td>b</td></tr></tbody><tbody><tr><td><span>après</span></td></tr></tbody></table></div>',
    );
    expect(issues.map((i) => i.message)).toEqual([
      'Content directly inside <list> was wrapped in <li>.',
      'Content directly inside <tr> was wrapped in <td>.',
      'Content directly inside <table> was wrapped in <tbody><tr><td>.',
    ]);
  });

  it('gives cells written straight in a row group the row they lack', () => {
    const { xhtml, issues } = narrative('<table><thead><th>T</th></thead><tbody><td>a</td><td>b</td>x</tbody></table>');
    expect(xhtml).toBe(
      `${DIV}<table><thead><tr><th>T</th></tr></thead><tbody><tr><td>a</td><td>b</td></tr><tr><td>x</td></tr></tbody></table></div>`,
    );
    expect(issues.map((i) => i.message)).toEqual([
      'Content directly inside <thead> was wrapped in <tr>.',
      'Content directly inside <tbody> was wrapped in <tr>.',
      'Content directly inside <tbody> was wrapped in <tr><td>.',
    ]);
  });

  it('never nests links: inner links, footnoteRefs and media inside a linkHtml become spans', () => {
    const { xhtml } = narrative(
      '<linkHtml href="https://a.example">lien <linkHtml href="https://b.example">interne</linkHtml><footnoteRef IDREF="f"/>' +
        '<renderMultiMedia referencedObject="m"/></linkHtml><footnote ID="f">note</footnote>',
      { resolveMedia: () => ({ url: 'urn:uuid:1' }) },
    );
    expect(xhtml).toBe(
      `${DIV}<a href="https://a.example">lien <span>interne</span><span>[1]</span><span>Document joint</span></a><span id="f">[1] note</span></div>`,
    );
  });

  it('drops content inside elements that must be empty (br, col)', () => {
    const { xhtml, issues } = narrative('a<br>texte caché</br>b');
    expect(xhtml).toBe(`${DIV}a<br/>b</div>`);
    expect(issues[0]?.message).toContain('<br>');
  });

  it('bounds the report of a hostile narrative and stays fast', () => {
    const many = Array.from({ length: 20_000 }, (_, i) => `<content ID="${i}" x${i % 200}="1">v</content>`).join('');
    const started = performance.now();
    const { xhtml, issues } = narrative(many);
    expect(performance.now() - started).toBeLessThan(2_000);
    expect(xhtml?.length).toBeGreaterThan(20_000 * 14);
    expect(issues.length).toBeLessThanOrEqual(51);
    expect(issues[issues.length - 1]?.message).toContain('not itemised');
  });

  it('copes with deep nesting up to the parser limit', () => {
    const depth = 250;
    const xml = '<content>'.repeat(depth) + 'profond' + '</content>'.repeat(depth);
    const out = inner(xml);
    expect(out).toBe('<span>'.repeat(depth) + 'profond' + '</span>'.repeat(depth));
  });

  it('is deterministic', () => {
    const xml = '<list><item ID="a">x<footnoteRef IDREF="f"/></item></list><footnote ID="f">n</footnote><foo>bar</foo>';
    expect(narrative(xml)).toEqual(narrative(xml));
  });
});

describe('narrativeToXhtml: performance', () => {
  it('converts a large table quickly', () => {
    const rows = Array.from(
      { length: 5_000 },
      (_, i) => `<tr><td><content ID="r${i}" styleCode="Bold">Ligne ${i}</content><br/>détail</td><td align="left">${i} mg</td></tr>`,
    ).join('\n');
    const doc = parseXml(Buffer.from(`<text xmlns="${HL7_NS}"><table border="0"><tbody>${rows}</tbody></table></text>`));
    const started = performance.now();
    const xhtml = narrativeToXhtml(doc);
    expect(performance.now() - started).toBeLessThan(1_000);
    expect(xhtml).toContain('<span id="r4999" class="Bold">Ligne 4999</span>');
  });
});

describe('narrativeToXhtml: property-based', () => {
  const NAMES = [
    'content', 'paragraph', 'list', 'item', 'caption', 'linkHtml', 'br', 'sub', 'sup', 'footnote', 'footnoteRef',
    'renderMultiMedia', 'table', 'thead', 'tbody', 'tfoot', 'tr', 'th', 'td', 'col', 'colgroup', 'script', 'style',
    'iframe', 'object', 'a', 'div', 'unknown',
  ];
  const ATTRS = [
    'ID', 'IDREF', 'styleCode', 'language', 'href', 'referencedObject', 'listType', 'revised', 'onclick', 'style',
    'colspan', 'rowspan', 'scope', 'align', 'valign', 'width', 'headers', 'summary', 'abbr', 'span', 'border',
  ];
  const VALUES = ['x', 'x', 'ordered', 'delete', 'insert', 'javascript:alert(1)', 'https://a.b', '#x', '1', '1a', 'a b', '"><', 'left', 'col', '50%', 'fr-FR', ''];
  const textArb = fc.string({ maxLength: 12 }).map((s) => s.replace(/[^\t\n\r\u0020-\uD7FF\uE000-\uFFFD]/g, ''));
  const escapeXml = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
  const tree = fc.letrec<{ node: string }>((tie) => ({
    node: fc.oneof(
      { depthSize: 'small', withCrossShrink: true },
      textArb.map(escapeXml),
      fc
        .record({
          name: fc.constantFrom(...NAMES),
          attrs: fc.array(fc.tuple(fc.constantFrom(...ATTRS), fc.constantFrom(...VALUES)), { maxLength: 3 }),
          children: fc.array(tie('node'), { maxLength: 4 }),
        })
        .map(({ name, attrs, children }) => {
          const unique = new Map(attrs);
          const a = [...unique].map(([k, v]) => ` ${k}="${escapeXml(v)}"`).join('');
          return `<${name}${a}>${children.join('')}</${name}>`;
        }),
    ),
  }));

  it('always yields well-formed FHIR XHTML or undefined', () => {
    fc.assert(
      fc.property(fc.array(tree.node, { maxLength: 5 }), (nodes) => {
        const { xhtml } = narrative(nodes.join(''), { resolveMedia: (id) => (id === 'x' ? { url: 'urn:uuid:1' } : undefined) });
        if (xhtml !== undefined) assertFhirXhtml(xhtml);
      }),
      { numRuns: 500 },
    );
  });
});

describe('narrativeToXhtml: corpus', () => {
  it('converts every section/text of every corpus document into well-formed FHIR XHTML', () => {
    // Loud on purpose: a missing corpus must fail this test, not skip it silently.
    expect(existsSync(CORPUS_DIR), `CORPUS MISSING: ${CORPUS_DIR} does not exist; the narrative corpus check cannot run`).toBe(true);
    const files = readdirSync(CORPUS_DIR).filter((f) => f.endsWith('.xml')).sort();
    expect(files.length, `CORPUS EMPTY: no .xml file in ${CORPUS_DIR}`).toBeGreaterThan(0);
    let sections = 0;
    for (const file of files) {
      const root = parseXml(readFileSync(join(CORPUS_DIR, file)));
      const texts: XElement[] = [];
      const walk = (el: XElement): void => {
        for (const c of el.children) {
          if (typeof c === 'string') continue;
          if (c.name === 'text' && c.ns === HL7_NS && c.parent?.name === 'section') texts.push(c);
          walk(c);
        }
      };
      walk(root);
      for (const text of texts) {
        const xhtml = narrativeToXhtml(text, { resolveMedia: (id) => ({ url: `urn:uuid:${id}` }) });
        expect(xhtml, `${file}: a section/text gave no narrative`).toBeDefined();
        assertFhirXhtml(xhtml as string);
        sections++;
      }
    }
    expect(sections).toBeGreaterThan(10);
  });
});
