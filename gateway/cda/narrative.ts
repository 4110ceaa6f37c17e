/**
 * CDA R2 section narrative block (`section/text`, StrucDoc.Text) → FHIR R4 narrative XHTML
 * (`Narrative.div`).
 *
 * The narrative is the one part of a CDA document that a receiving system displays as markup, so it
 * is treated as hostile: the output is built from a closed list of element and attribute mappings,
 * never by copying markup through. What FHIR R4 requires of the div (Narrative, xhtml data type):
 * - only the basic XHTML formatting elements (txt-1), no script/style/form/iframe/object, no `on*`
 *   or `style` attributes, no DOCTYPE or processing instructions;
 * - some non-whitespace content (txt-2): a narrative without any becomes `undefined`;
 * - the root is `<div xmlns="http://www.w3.org/1999/xhtml">`.
 *
 * Everything changed on the way (dropped attributes, unsafe links, unknown elements…) is reported,
 * aggregated per kind so that a hostile narrative cannot flood the report.
 */
import type { ReportCode } from './report.js';
import { HL7_NS, pathOf, rawText, text as textOf, type XElement } from './xml.js';

export interface NarrativeOptions {
  /** Resolves a renderMultiMedia referencedObject (the ID of an observationMedia) to the Binary it became. */
  resolveMedia?: (id: string) => { url: string; title?: string } | undefined;
  /** Records something noteworthy (dropped element, unsafe link removed...). location is pathOf(element). */
  report?: (code: string, message: string, location: string) => void;
}

const XHTML_NS = 'http://www.w3.org/1999/xhtml';

/** Link text of a renderMultiMedia whose Binary has no title (French: the documents are French). */
const DEFAULT_MEDIA_LABEL = 'Document joint';
const UNRESOLVED_MEDIA_LABEL = 'Document joint non disponible';

/** Distinct report kinds kept per narrative; beyond that one summary issue (bounds report size and pathOf cost). */
const MAX_REPORT_KINDS = 50;

/** Returns the XHTML `<div xmlns="http://www.w3.org/1999/xhtml">…</div>`, or undefined when the narrative is absent or has no non-whitespace content. */
export function narrativeToXhtml(textEl: XElement | undefined, options: NarrativeOptions = {}): string | undefined {
  if (!textEl) return undefined;
  const converter = new Converter(textEl, options);
  const xhtml = converter.run();
  converter.flushReports();
  return xhtml;
}

// ---------------------------------------------------------------------------------------------
// Character level: XML 1.0 §2.2 characters, escaping, whitespace.

/**
 * Characters to remove: those XML 1.0 §2.2 forbids (C0 controls other than tab/LF/CR, lone
 * surrogates, U+FFFE/U+FFFF), plus DEL and the C1 controls, which XML 1.0 allows but discourages and
 * which have no rendering meaning in a narrative. Linear: a single character class, no backtracking.
 */
const UNWANTED_CHARS = /[^\t\n\r\u0020-\u007E\u00A0-\uD7FF\uE000-\uFFFD\u{10000}-\u{10FFFF}]/gu;
const HAS_UNWANTED_CHAR = /[^\t\n\r\u0020-\u007E\u00A0-\uD7FF\uE000-\uFFFD\u{10000}-\u{10FFFF}]/u;
/** XML whitespace (XML 1.0 §2.3 S); NBSP and other Unicode spaces are content and are kept. */
const XML_SPACES = /[ \t\n\r]+/g;
const NON_WHITESPACE = /\S/;

const TEXT_ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;' };
/** Tab/LF/CR are escaped in attributes so that attribute-value normalisation (XML 1.0 §3.3.3) keeps them. */
const ATTR_ESCAPES: Record<string, string> = {
  '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', '\t': '&#9;', '\n': '&#10;', '\r': '&#13;',
};

export function escapeText(s: string): string {
  return s.replace(/[&<>]/g, (c) => TEXT_ESCAPES[c] ?? c);
}

export function escapeAttr(s: string): string {
  return s.replace(/[&<>"\t\n\r]/g, (c) => ATTR_ESCAPES[c] ?? c);
}

function collapseSpaces(s: string): string {
  return s.replace(XML_SPACES, ' ');
}

/** Trims one collapsed XML space (a loop-free alternative to `/ +$/`, which backtracks). */
function trimSpaceStart(s: string): string {
  return s.startsWith(' ') ? s.slice(1) : s;
}

function trimSpaceEnd(s: string): string {
  return s.endsWith(' ') ? s.slice(0, -1) : s;
}

// ---------------------------------------------------------------------------------------------
// Attribute value checks. Each regex is a plain character class or a group that starts with a
// fixed delimiter, so matching is linear on untrusted input.

/** BCP 47 shape (CDA `language` is a CS holding an RFC 3066/BCP 47 tag, e.g. `fr-FR`). */
const LANGUAGE_TAG = /^[A-Za-z]{1,8}(?:-[A-Za-z0-9]{1,8})*$/;
const INTEGER = /^[0-9]{1,4}$/;
/** HTML 4 %Length: pixels or a percentage. */
const LENGTH = /^[0-9]{1,5}%?$/;
/** A FHIR relative reference (`Binary/abc`), the other shape resolveMedia may return besides urn:uuid. */
/** urn:uuid / urn:oid Bundle fullUrls: no spaces, quotes or controls. */
const URN = /^urn:(?:uuid|oid):[A-Za-z0-9\-.]{1,64}$/i;
const RELATIVE_REFERENCE = /^[A-Z][A-Za-z]{1,63}\/[A-Za-z0-9\-.]{1,64}$/;

/**
 * NCName (Namespaces in XML 1.0 §3: an XML 1.0 5th-edition Name without ':'), which an XHTML `id`
 * must be. Checked code point by code point: linear, and clearer than a class of ranges.
 */
function isNCName(s: string): boolean {
  if (s === '') return false;
  let first = true;
  for (const ch of s) {
    const c = ch.codePointAt(0) as number;
    if (!(isNameStartChar(c) || (!first && isNameExtraChar(c)))) return false;
    first = false;
  }
  return true;
}

function isNameStartChar(c: number): boolean {
  return (
    (c >= 0x41 && c <= 0x5a) || c === 0x5f || (c >= 0x61 && c <= 0x7a) ||
    (c >= 0xc0 && c <= 0xd6) || (c >= 0xd8 && c <= 0xf6) || (c >= 0xf8 && c <= 0x2ff) ||
    (c >= 0x370 && c <= 0x37d) || (c >= 0x37f && c <= 0x1fff) || (c >= 0x200c && c <= 0x200d) ||
    (c >= 0x2070 && c <= 0x218f) || (c >= 0x2c00 && c <= 0x2fef) || (c >= 0x3001 && c <= 0xd7ff) ||
    (c >= 0xf900 && c <= 0xfdcf) || (c >= 0xfdf0 && c <= 0xfffd) || (c >= 0x10000 && c <= 0xeffff)
  );
}

function isNameExtraChar(c: number): boolean {
  return (
    c === 0x2d || c === 0x2e || (c >= 0x30 && c <= 0x39) || c === 0xb7 ||
    (c >= 0x300 && c <= 0x36f) || (c >= 0x203f && c <= 0x2040)
  );
}

type AttrCheck = (value: string) => string | undefined;

const integer: AttrCheck = (v) => (INTEGER.test(v.trim()) ? String(Number(v.trim())) : undefined);
const length: AttrCheck = (v) => (LENGTH.test(v.trim()) ? v.trim() : undefined);
const oneOf =
  (...allowed: string[]): AttrCheck =>
  (v) => {
    const lower = v.trim().toLowerCase();
    return allowed.includes(lower) ? lower : undefined;
  };
const freeText: AttrCheck = (v) => {
  const t = collapseSpaces(v.replace(UNWANTED_CHARS, '')).trim();
  return t === '' ? undefined : t;
};
const idrefs: AttrCheck = (v) => {
  const tokens = v.split(XML_SPACES).filter((t) => t !== '');
  return tokens.length > 0 && tokens.every(isNCName) ? tokens.join(' ') : undefined;
};

/**
 * A table looked up by names read from the document: a Map, so that no name (`constructor`,
 * `__proto__`) reaches Object.prototype, and cheaper than a hasOwn check plus an index.
 */
function lookup<T>(entries: Readonly<Record<string, T>>): ReadonlyMap<string, T> {
  return new Map(Object.entries(entries));
}

/** The table attributes CDA StrucDoc shares with HTML 4 and FHIR keeps, with their value checks. */
const TABLE_ATTR_CHECKS = lookup<AttrCheck>({
  summary: freeText,
  width: length,
  border: integer,
  cellpadding: length,
  cellspacing: length,
  align: oneOf('left', 'center', 'right', 'justify', 'char'),
  valign: oneOf('top', 'middle', 'bottom', 'baseline'),
  abbr: freeText,
  headers: idrefs,
  scope: oneOf('row', 'col', 'rowgroup', 'colgroup'),
  rowspan: integer,
  colspan: integer,
  span: integer,
});

/** Which of them each table element carries (HTML 4.01 §11, the same sets as CDA StrucDoc). */
const TABLE_ATTRS = lookup<readonly string[]>({
  table: ['summary', 'width', 'border', 'cellpadding', 'cellspacing'],
  thead: ['align', 'valign'],
  tbody: ['align', 'valign'],
  tfoot: ['align', 'valign'],
  tr: ['align', 'valign'],
  th: ['abbr', 'headers', 'scope', 'rowspan', 'colspan', 'align', 'valign'],
  td: ['abbr', 'headers', 'scope', 'rowspan', 'colspan', 'align', 'valign'],
  colgroup: ['span', 'width', 'align', 'valign'],
  col: ['span', 'width', 'align', 'valign'],
});

/** The XHTML parent each table part needs; elsewhere it would be invalid XHTML, so it degrades to a span. */
const TABLE_PARENTS = lookup<readonly string[]>({
  thead: ['table'],
  tbody: ['table'],
  tfoot: ['table'],
  colgroup: ['table'],
  col: ['table', 'colgroup'],
  tr: ['table', 'thead', 'tbody', 'tfoot'],
  th: ['tr'],
  td: ['tr'],
});

/** The CDA children each element-only XHTML container accepts as they are. */
const STRUCTURE_CHILDREN = lookup<readonly string[]>({
  table: ['caption', 'col', 'colgroup', 'thead', 'tbody', 'tfoot', 'tr'],
  thead: ['tr'],
  tbody: ['tr'],
  tfoot: ['tr'],
  tr: ['th', 'td'],
  colgroup: ['col'],
  ul: ['item'],
  ol: ['item'],
});

/** What stray content in such a container is wrapped in (colgroup can hold nothing but col: kept as is). */
const STRAY_WRAPPERS = lookup<readonly string[]>({
  table: ['tbody', 'tr', 'td'],
  thead: ['tr', 'td'],
  tbody: ['tr', 'td'],
  tfoot: ['tr', 'td'],
  tr: ['td'],
  ul: ['li'],
  ol: ['li'],
});

/** Attributes every narrative element may carry (CDA StrucDoc ID, language, styleCode), mapped separately. */
const COMMON_ATTRS = new Set(['ID', 'styleCode', 'language']);

/** CDA elements rendered as XHTML blocks: whitespace next to them is insignificant. */
const BLOCK_ELEMENTS = new Set(['paragraph', 'list', 'table', 'br']);

/**
 * How a container treats its text children:
 * - block: whitespace at the edges is insignificant (p, li, td, the div);
 * - inline: every space may matter (span, a, sub…);
 * - structure: only elements belong there (table parts, lists), whitespace text is dropped.
 */
type Mode = 'block' | 'inline' | 'structure';

type Attr = readonly [name: string, value: string];

interface PendingReport {
  code: ReportCode;
  message: string;
  el: XElement;
  count: number;
}

function isHl7(el: XElement): boolean {
  return el.ns === HL7_NS || el.ns === '';
}

function hl7Children(el: XElement, name: string): XElement[] {
  const out: XElement[] = [];
  const nodes = el.children;
  for (let i = 0; i < nodes.length; i++) {
    const c = nodes[i] as XElement | string;
    if (typeof c !== 'string' && c.name === name && isHl7(c)) out.push(c);
  }
  return out;
}

function displayName(el: XElement): string {
  return isHl7(el) ? el.name : `{${el.ns}}${el.name}`;
}

/**
 * A link target is kept only for schemes that cannot run code (FHIR R4 narrative: no active
 * content). The value is trimmed the way browsers do; any control character inside rejects it,
 * because URL parsers drop tabs/newlines, which would let `java\tscript:` slip past a prefix check.
 */
function safeHref(raw: string): string | undefined {
  const v = raw.trim();
  if (v === '') return undefined;
  for (let i = 0; i < v.length; i++) {
    const c = v.charCodeAt(i);
    if (c < 0x20 || (c >= 0x7f && c <= 0x9f)) return undefined;
  }
  if (v.startsWith('#')) return v.length > 1 ? v : undefined;
  const head = v.slice(0, 8).toLowerCase();
  for (const scheme of ['http:', 'https:', 'mailto:', 'tel:']) {
    if (head.startsWith(scheme) && v.length > scheme.length) return v;
  }
  return undefined;
}

/** The Binary reference resolveMedia gives: a Bundle fullUrl, a relative reference, or a safe link. */
function safeMediaUrl(raw: string): string | undefined {
  const v = raw.trim();
  const head = v.slice(0, 9).toLowerCase();
  if (head.startsWith('urn:uuid:') || head.startsWith('urn:oid:')) {
    return URN.test(v) ? v : undefined;
  }
  if (RELATIVE_REFERENCE.test(v)) return v;
  return safeHref(v);
}

class Converter {
  private readonly out: string[] = [];
  private hasText = false;
  private readonly ids = new Set<string>();
  private readonly pending = new Map<string, PendingReport>();
  private overflow: PendingReport | undefined;
  /** Inside an `a`: links cannot nest, so footnoteRef and renderMultiMedia fall back to spans. */
  private inLink = false;
  /** Footnote numbers by ID, computed on the first footnoteRef. */
  private footnotes: Map<string, number> | undefined;

  constructor(
    private readonly root: XElement,
    private readonly options: NarrativeOptions,
  ) {}

  run(): string | undefined {
    const root = this.root;
    this.out.push(`<div xmlns="${XHTML_NS}"`, this.serializeAttrs(this.commonAttrs(root)), '>');
    // mediaType is fixed to text/x-hl7-text+xml by CDA R2; it has no XHTML counterpart.
    this.reportDroppedAttrs(root, ['mediaType']);
    if (root.children.every((c) => typeof c === 'string')) this.plainText(root.children as string[]);
    else this.children(root, 'block', 'div');
    this.out.push('</div>');
    // FHIR txt-2: a narrative must have some non-whitespace content.
    return this.hasText ? this.out.join('') : undefined;
  }

  /**
   * A narrative without markup: text was laid out with line breaks by its author, so lines become
   * `<br/>`-separated (indentation dropped; runs of blank lines kept as one paragraph break).
   */
  private plainText(parts: string[]): void {
    const lines = parts.join('').split(/\r\n|\r|\n/);
    const kept: string[] = [];
    for (const line of lines) {
      const t = trimSpaceEnd(trimSpaceStart(collapseSpaces(this.clean(line, this.root))));
      if (t === '' && (kept.length === 0 || kept[kept.length - 1] === '')) continue;
      kept.push(t);
    }
    while (kept.length > 0 && kept[kept.length - 1] === '') kept.pop();
    kept.forEach((line, i) => {
      if (i > 0) this.out.push('<br/>');
      this.emitText(line);
    });
  }

  // ---- tree walk ----

  /**
   * Converts the children of `el`, whose XHTML counterpart is `tag` (the context decides what a
   * child may become, e.g. `item` is an `li` only inside `ul`/`ol`).
   */
  private children(el: XElement, mode: Mode, tag: string, nodes: readonly (XElement | string)[] = el.children): void {
    if (mode === 'structure') {
      this.structureChildren(el, tag, nodes);
      return;
    }
    for (let i = 0; i < nodes.length; i++) {
      const node = nodes[i] as XElement | string;
      if (typeof node !== 'string') {
        this.element(node, tag);
        continue;
      }
      let t = collapseSpaces(this.clean(node, el));
      // After collapsing, XML whitespace-only text is '' or ' ' (NBSP is content, not layout).
      if (t === '' || t === ' ') {
        // Whitespace between elements is only layout of the CDA source, except between inline
        // elements (`<content>a</content> <content>b</content>`), where it separates words.
        if (t === '') continue;
        if (mode === 'block' && (i === 0 || i === nodes.length - 1)) continue;
        if (this.isBlock(nodes[i - 1]) || this.isBlock(nodes[i + 1])) continue;
        this.out.push(' ');
        continue;
      }
      // Spaces at a block boundary render as nothing; dropping them keeps the output tidy.
      if ((mode === 'block' && i === 0) || this.isBlock(nodes[i - 1])) t = trimSpaceStart(t);
      if ((mode === 'block' && i === nodes.length - 1) || this.isBlock(nodes[i + 1])) t = trimSpaceEnd(t);
      this.emitText(t);
    }
  }

  /**
   * Children of an element-only container (table parts, lists). Whitespace is layout and dropped;
   * anything that does not belong there (text or a `content` straight in a `tr` or `list`) is
   * wrapped in the cell or item XHTML requires, so that no text is lost and the nesting stays valid.
   */
  private structureChildren(el: XElement, tag: string, nodes: readonly (XElement | string)[]): void {
    const fits = STRUCTURE_CHILDREN.get(tag) ?? [];
    const strayWrappers = STRAY_WRAPPERS.get(tag) ?? [];
    // Cells straight in a row group only lack their row.
    const cellWrappers = tag === 'ul' || tag === 'ol' || tag === 'tr' ? strayWrappers : ['tr'];
    let run: (XElement | string)[] = [];
    let wrappers: readonly string[] = strayWrappers;
    const flush = (): void => {
      if (run.length === 0) return;
      const first = run.find((n): n is XElement => typeof n !== 'string') ?? el;
      const fix = wrappers.length > 0 ? `was wrapped in ${wrappers.map((w) => `<${w}>`).join('')}` : 'does not belong there';
      this.note('NARRATIVE_CHANGED', `stray:${tag}:${wrappers.join('')}`, `Content directly inside <${el.name}> ${fix}.`, first);
      for (const w of wrappers) this.out.push('<', w, '>');
      const inner = wrappers[wrappers.length - 1];
      if (inner === 'tr') {
        for (const n of run) if (typeof n !== 'string') this.element(n, 'tr');
      } else {
        this.children(el, 'block', inner ?? tag, run);
      }
      for (let i = wrappers.length - 1; i >= 0; i--) this.out.push('</', wrappers[i] as string, '>');
      run = [];
    };
    for (let i = 0; i < nodes.length; i++) {
      const node = nodes[i] as XElement | string;
      if (typeof node === 'string') {
        if (NON_WHITESPACE.test(node)) {
          if (wrappers !== strayWrappers) flush();
          wrappers = strayWrappers;
          run.push(node);
        } else if (run.length > 0) run.push(node);
        continue;
      }
      if ((isHl7(node) && fits.includes(node.name)) || strayWrappers.length === 0) {
        flush();
        this.element(node, tag);
        continue;
      }
      const isCell = isHl7(node) && (node.name === 'td' || node.name === 'th');
      const needed = isCell ? cellWrappers : strayWrappers;
      if (needed !== wrappers) flush();
      wrappers = needed;
      run.push(node);
    }
    flush();
  }

  private isBlock(node: XElement | string | undefined): boolean {
    return node !== undefined && typeof node !== 'string' && isHl7(node) && BLOCK_ELEMENTS.has(node.name);
  }

  private element(el: XElement, parentTag: string): void {
    if (!isHl7(el)) {
      this.unknown(el);
      return;
    }
    switch (el.name) {
      case 'content': {
        // CDA StrucDoc: content@revised marks tracked changes; XHTML has del/ins for exactly that.
        const revised = el.attrs.revised?.trim();
        const tag = revised === 'delete' ? 'del' : revised === 'insert' ? 'ins' : 'span';
        this.wrap(el, tag, 'inline', [], ['revised']);
        return;
      }
      case 'paragraph':
        this.wrap(el, 'p', 'block');
        return;
      case 'list':
        this.list(el);
        return;
      case 'item':
        if (parentTag === 'ul' || parentTag === 'ol') this.wrap(el, 'li', 'block');
        else this.misplaced(el);
        return;
      case 'caption':
        // A table caption stays a caption; a paragraph/item caption is a label inside its block
        // (list captions are moved out by list()).
        this.wrap(el, parentTag === 'table' ? 'caption' : 'span', 'block');
        return;
      case 'linkHtml':
        this.link(el);
        return;
      case 'br':
        this.voidElement(el, 'br');
        return;
      case 'sub':
      case 'sup':
        this.wrap(el, el.name, 'inline');
        return;
      case 'footnote':
        this.footnote(el);
        return;
      case 'footnoteRef':
        this.footnoteRef(el);
        return;
      case 'renderMultiMedia':
        this.media(el);
        return;
      case 'table':
        this.wrap(el, 'table', 'structure', this.tableAttrs(el));
        return;
      case 'col':
        if (TABLE_PARENTS.get('col')?.includes(parentTag)) this.voidElement(el, 'col', this.tableAttrs(el));
        else this.misplaced(el);
        return;
      case 'thead':
      case 'tbody':
      case 'tfoot':
      case 'colgroup':
      case 'tr':
      case 'th':
      case 'td': {
        if (!TABLE_PARENTS.get(el.name)?.includes(parentTag)) {
          this.misplaced(el);
          return;
        }
        const mode: Mode = el.name === 'th' || el.name === 'td' ? 'block' : 'structure';
        this.wrap(el, el.name, mode, this.tableAttrs(el));
        return;
      }
      default:
        this.unknown(el);
    }
  }

  /** `<tag common-attrs extra-attrs>children</tag>`. */
  private wrap(el: XElement, tag: string, mode: Mode, extra: Attr[] = [], consumed: readonly string[] = []): void {
    const attrs = [...this.commonAttrs(el), ...extra];
    this.reportDroppedAttrs(el, consumed, tag);
    this.out.push('<', tag, this.serializeAttrs(attrs), '>');
    this.children(el, mode, tag);
    this.out.push('</', tag, '>');
  }

  /** Void elements are self-closed (`<br/>`), as XHTML serialised in FHIR expects. */
  private voidElement(el: XElement, tag: string, extra: Attr[] = []): void {
    const attrs = [...this.commonAttrs(el), ...extra];
    this.reportDroppedAttrs(el, [], tag);
    if (el.children.some((c) => typeof c !== 'string' || NON_WHITESPACE.test(c))) {
      this.note('NARRATIVE_CHANGED', `content:${el.name}`, `The content of <${el.name}>, which must be empty, was dropped.`, el);
    }
    this.out.push('<', tag, this.serializeAttrs(attrs), '/>');
  }

  /**
   * CDA list → ul/ol. The list caption cannot go inside ul/ol in XHTML, so it is written as a
   * paragraph just before the list.
   */
  private list(el: XElement): void {
    const tag = el.attrs.listType?.trim() === 'ordered' ? 'ol' : 'ul';
    for (const caption of hl7Children(el, 'caption')) this.wrap(caption, 'p', 'block');
    const attrs = this.commonAttrs(el);
    this.reportDroppedAttrs(el, ['listType'], tag);
    this.out.push('<', tag, this.serializeAttrs(attrs), '>');
    const items = el.children.filter((c) => typeof c === 'string' || !(c.name === 'caption' && isHl7(c)));
    this.children(el, 'structure', tag, items);
    this.out.push('</', tag, '>');
  }

  /** A table part or list item outside its container: its content is kept inline. */
  private misplaced(el: XElement): void {
    this.note('NARRATIVE_CHANGED', `misplaced:${el.name}`, `<${el.name}> outside its container was rendered as a span.`, el);
    this.wrap(el, 'span', 'inline');
  }

  private link(el: XElement): void {
    if (this.inLink) {
      // XHTML forbids an a inside an a (XHTML 1.0 Appendix B): the inner link keeps only its text.
      this.note('NARRATIVE_CHANGED', 'nested-link', 'A link inside a link was rendered as a span.', el);
      this.wrap(el, 'span', 'inline', [], ['href']);
      return;
    }
    const attrs: Attr[] = [];
    const raw = el.attrs.href;
    const href = raw === undefined ? undefined : safeHref(raw);
    if (href !== undefined) attrs.push(['href', href]);
    else if (raw !== undefined) {
      this.note(
        'NARRATIVE_CHANGED',
        'unsafe-href',
        'A linkHtml href that is not http(s), mailto, tel or a #fragment was removed (FHIR narratives carry no active or relative links).',
        el,
      );
    }
    attrs.push(...this.commonAttrs(el));
    this.reportDroppedAttrs(el, ['href'], 'a');
    this.out.push('<a', this.serializeAttrs(attrs), '>');
    const before = this.hasText;
    this.hasText = false;
    this.inLink = true;
    this.children(el, 'inline', 'a');
    this.inLink = false;
    // An empty link would be invisible; its target is the best label there is.
    if (!this.hasText && href !== undefined) this.emitText(href);
    this.hasText ||= before;
    this.out.push('</a>');
  }

  /**
   * footnote → span. When a footnoteRef in this narrative points to it, its number is written in
   * front so that the `[n]` of the reference has something to match.
   */
  private footnote(el: XElement): void {
    const attrs = this.commonAttrs(el);
    this.reportDroppedAttrs(el, [], 'span');
    this.out.push('<span', this.serializeAttrs(attrs), '>');
    const id = el.attrs.ID?.trim();
    const n = id === undefined ? undefined : this.footnoteNumbers().get(id);
    if (n !== undefined) this.emitText(`[${n}] `);
    this.children(el, 'inline', 'span');
    this.out.push('</span>');
  }

  /** footnoteRef (empty in CDA) → `<a href="#IDREF">[n]</a>`; the footnote may be in another section. */
  private footnoteRef(el: XElement): void {
    const idref = el.attrs.IDREF?.trim() ?? '';
    const attrs = this.commonAttrs(el);
    this.reportDroppedAttrs(el, ['IDREF'], 'a');
    if (!isNCName(idref)) {
      this.note('NARRATIVE_CHANGED', 'bad-idref', 'A footnoteRef IDREF that is not an NCName was dropped.', el);
    }
    const n = this.footnoteNumbers().get(idref);
    if (!isNCName(idref) || this.inLink) {
      this.out.push('<span', this.serializeAttrs(attrs), '>');
      this.emitText(n === undefined ? '[*]' : `[${n}]`);
      this.out.push('</span>');
      return;
    }
    this.out.push('<a', this.serializeAttrs([['href', `#${idref}`], ...attrs]), '>');
    this.emitText(n === undefined ? '[*]' : `[${n}]`);
    this.out.push('</a>');
  }

  /** Numbers the footnotes of this narrative that a footnoteRef here points to, in document order. */
  private footnoteNumbers(): Map<string, number> {
    if (this.footnotes) return this.footnotes;
    const refs = new Set<string>();
    const notes: string[] = [];
    const walk = (e: XElement): void => {
      for (const c of e.children) {
        if (typeof c === 'string') continue;
        if (isHl7(c) && c.name === 'footnoteRef' && c.attrs.IDREF) refs.add(c.attrs.IDREF.trim());
        if (isHl7(c) && c.name === 'footnote' && c.attrs.ID) notes.push(c.attrs.ID.trim());
        walk(c);
      }
    };
    walk(this.root);
    this.footnotes = new Map();
    for (const id of notes) {
      if (refs.has(id) && !this.footnotes.has(id)) this.footnotes.set(id, this.footnotes.size + 1);
    }
    return this.footnotes;
  }

  /**
   * renderMultiMedia (CDA StrucDoc: referencedObject is IDREFS of observationMedia) → a link to the
   * Binary each became. An unresolved reference keeps a visible placeholder instead of vanishing.
   */
  private media(el: XElement): void {
    const refs = (el.attrs.referencedObject ?? '').split(XML_SPACES).filter((r) => r !== '');
    const captionEl = hl7Children(el, 'caption')[0];
    const caption = captionEl ? textOf(captionEl) : undefined;
    const attrs = this.commonAttrs(el);
    this.reportDroppedAttrs(el, ['referencedObject'], 'a');
    const links: { href: string | undefined; label: string }[] = [];
    for (const ref of refs) {
      const resolved = this.options.resolveMedia?.(ref);
      const url = resolved ? safeMediaUrl(resolved.url) : undefined;
      if (url !== undefined) {
        const title = resolved?.title === undefined ? undefined : collapseSpaces(resolved.title).trim();
        links.push({ href: url, label: title || caption || DEFAULT_MEDIA_LABEL });
      } else {
        this.note(
          'MEDIA_REFERENCE_UNRESOLVED',
          `media:${ref}`,
          resolved
            ? `renderMultiMedia "${ref}" resolved to a link that is not a safe reference; it was left out.`
            : `renderMultiMedia "${ref}" points to no observationMedia.`,
          el,
        );
        links.push({ href: undefined, label: caption || UNRESOLVED_MEDIA_LABEL });
      }
    }
    if (links.length === 0) {
      this.note('MEDIA_REFERENCE_UNRESOLVED', 'media:', 'renderMultiMedia without referencedObject.', el);
      links.push({ href: undefined, label: caption || UNRESOLVED_MEDIA_LABEL });
    }
    // One link carries the element's own attributes; several share a wrapping span.
    const single = links.length === 1;
    if (!single) this.out.push('<span', this.serializeAttrs(attrs), '>');
    links.forEach((link, i) => {
      if (i > 0) this.out.push(' ');
      const own = single ? attrs : [];
      if (link.href !== undefined && !this.inLink) {
        this.out.push('<a', this.serializeAttrs([['href', link.href], ...own]), '>');
        this.emitText(this.clean(link.label, el));
        this.out.push('</a>');
      } else {
        this.out.push('<span', this.serializeAttrs(own), '>');
        this.emitText(this.clean(link.label, el));
        this.out.push('</span>');
      }
    });
    if (!single) this.out.push('</span>');
  }

  /**
   * Not part of the CDA narrative block (another namespace, or an unknown or script-like name):
   * its markup is not trusted, only its text is kept so that no information is lost.
   */
  private unknown(el: XElement): void {
    const name = displayName(el);
    this.note(
      'NARRATIVE_CHANGED',
      `unknown:${name}`,
      `<${name}> is not a CDA narrative element; only its text was kept.`,
      el,
    );
    const t = collapseSpaces(this.clean(rawText(el), el));
    if (!NON_WHITESPACE.test(t)) return;
    this.out.push('<span>');
    this.emitText(t);
    this.out.push('</span>');
  }

  // ---- attributes ----

  /** ID → id (an NCName, unique in the div), styleCode → class, language → lang. */
  private commonAttrs(el: XElement): Attr[] {
    const attrs: Attr[] = [];
    const rawId = el.attrs.ID;
    if (rawId !== undefined) {
      const id = rawId.trim();
      if (!isNCName(id)) {
        this.note('NARRATIVE_CHANGED', 'bad-id', `An ID that is not a valid XML NCName was dropped.`, el);
      } else if (this.ids.has(id)) {
        this.note('NARRATIVE_CHANGED', 'duplicate-id', `A duplicate ID "${id}" was dropped.`, el);
      } else {
        this.ids.add(id);
        attrs.push(['id', id]);
      }
    }
    const styleCode = el.attrs.styleCode;
    if (styleCode !== undefined) {
      // CDA styleCode values (Bold, Italics, xFRtable…) are kept as-is as CSS class names.
      const classes = collapseSpaces(styleCode.replace(UNWANTED_CHARS, '')).trim();
      if (classes !== '') attrs.push(['class', classes]);
    }
    const language = el.attrs.language;
    if (language !== undefined) {
      const lang = language.trim();
      if (LANGUAGE_TAG.test(lang)) attrs.push(['lang', lang]);
      else this.note('NARRATIVE_CHANGED', 'bad-language', 'A language that is not a language tag was dropped.', el);
    }
    return attrs;
  }

  private tableAttrs(el: XElement): Attr[] {
    const attrs: Attr[] = [];
    for (const name of TABLE_ATTRS.get(el.name) ?? []) {
      const raw = el.attrs[name];
      const check = TABLE_ATTR_CHECKS.get(name);
      if (raw === undefined || !check) continue;
      const value = check(raw);
      if (value !== undefined) attrs.push([name, value]);
      else this.note('NARRATIVE_CHANGED', `bad-attr:${el.name}@${name}`, `Invalid ${name}="${raw.slice(0, 40)}" on <${el.name}> was dropped.`, el);
    }
    return attrs;
  }

  /** Anything not mapped (style, on*, frame, xsi:…) is dropped: FHIR R4 allows no active or styling attributes. */
  private reportDroppedAttrs(el: XElement, consumed: readonly string[], tag = ''): void {
    const kept = TABLE_ATTRS.get(tag) ?? [];
    for (const name of Object.keys(el.attrs)) {
      if (COMMON_ATTRS.has(name) || consumed.includes(name) || kept.includes(name)) continue;
      this.note('NARRATIVE_CHANGED', `attr:${el.name}@${name}`, `Attribute "${name}" of <${el.name}> has no FHIR XHTML equivalent and was dropped.`, el);
    }
  }

  private serializeAttrs(attrs: readonly Attr[]): string {
    let s = '';
    for (const [name, value] of attrs) s += ` ${name}="${escapeAttr(value)}"`;
    return s;
  }

  // ---- output and reports ----

  private emitText(t: string): void {
    if (t === '') return;
    if (!this.hasText && NON_WHITESPACE.test(t)) this.hasText = true;
    this.out.push(escapeText(t));
  }

  /** Removes characters XML 1.0 forbids (and C1 controls); reports it once. */
  private clean(s: string, el: XElement): string {
    if (!HAS_UNWANTED_CHAR.test(s)) return s;
    this.note('NARRATIVE_CHANGED', 'control-chars', 'Control or non-XML characters were removed from the narrative.', el);
    return s.replace(UNWANTED_CHARS, '');
  }

  /** Collects a report, aggregated by kind (first location, occurrence count). */
  private note(code: ReportCode, key: string, message: string, el: XElement): void {
    if (!this.options.report) return;
    const existing = this.pending.get(key);
    if (existing) {
      existing.count++;
      return;
    }
    if (this.pending.size >= MAX_REPORT_KINDS) {
      if (this.overflow) this.overflow.count++;
      else this.overflow = { code: 'NARRATIVE_CHANGED', message: 'Further narrative changes were not itemised.', el, count: 1 };
      return;
    }
    this.pending.set(key, { code, message, el, count: 1 });
  }

  flushReports(): void {
    const report = this.options.report;
    if (!report) return;
    const entries = [...this.pending.values()];
    if (this.overflow) entries.push(this.overflow);
    for (const p of entries) {
      const message = p.count > 1 ? `${p.message} (${p.count} occurrences; location of the first)` : p.message;
      report(p.code, message, pathOf(p.el));
    }
  }
}
