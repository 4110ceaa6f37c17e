/**
 * A small XML 1.0 + Namespaces reader: the decoded document in, start tags, end tags and character
 * data out. It replaces a general-purpose SAX parser (saxes) because that one reads a character at
 * a time through a state machine, which made parsing about 40 % of a conversion. Here markup is
 * found with indexOf and each piece is handled whole; text and attribute values are only copied
 * (sliced) unless a quick look finds something to normalise, replace or refuse.
 *
 * It accepts what saxes (xmlns on, XML 1.0) accepts, with the same text pieces, and is checked
 * against it on generated and mutated documents (tests/unit/xml-reader.test.ts). It refuses:
 * - any DOCTYPE, on sight (saxes reads it first), so there is no DTD, no entity declaration;
 * - entity references other than the five predefined ones, character references to non-characters;
 * - characters outside XML 1.0 `Char` anywhere, `]]>` in character data, `<` in attribute values;
 * - malformed markup: names, quotes, `--` in comments, unclosed or mismatched tags, a second root,
 *   text or CDATA outside the root element, an XML declaration that is not first, `<?XML` PIs;
 * - namespace errors: unbound prefixes, `a:b:c` names, `xmlns:p=""`, rebinding `xml`/`xmlns`,
 *   duplicate attributes (also two prefixes for one namespace).
 * UTF-8 input is read through its latin1 view (one character per byte, a cheap one-byte string; a
 * decoded two-byte string of more than 64 K characters is a large-object allocation that cost more
 * than the parse): markup is ASCII, so only the pieces holding bytes above 0x7F are decoded.
 *
 * What it emits, as saxes does: line ends normalised to \n (XML 1.0 §2.11), attribute values
 * normalised (§3.3.3: tab and line ends become spaces), references replaced, one text piece per run
 * of character data between two pieces of markup (comments and PIs split runs), a CDATA section
 * as a piece of its own.
 */
import { PasserelleError } from '../errors.js';

const XML_NAMESPACE = 'http://www.w3.org/XML/1998/namespace';
const XMLNS_NAMESPACE = 'http://www.w3.org/2000/xmlns/';

/** What the reader reports, in document order. */
export interface XmlEvents {
  /**
   * A start tag (an empty-element tag is followed by close()). `attrs` holds the attributes other
   * than namespace declarations, keyed by their name as written (`xsi:type`), in document order.
   */
  open(local: string, uri: string, attrs: Record<string, string> | undefined): void;
  close(): void;
  /** Character data inside the root element (references replaced), or the content of a CDATA section. */
  text(t: string): void;
  /** Whether runs of whitespace between markup are wanted (else they are not even sliced out). */
  keepsWhitespace(): boolean;
}

// XML 1.0 (5th edition) §2.3 NameStartChar / NameChar; Namespaces in XML §3 NCName (no colon).
const NAME_START = ':A-Z_a-z\\u00C0-\\u00D6\\u00D8-\\u00F6\\u00F8-\\u02FF\\u0370-\\u037D\\u037F-\\u1FFF\\u200C\\u200D\\u2070-\\u218F\\u2C00-\\u2FEF\\u3001-\\uD7FF\\uF900-\\uFDCF\\uFDF0-\\uFFFD\\u{10000}-\\u{EFFFF}';
const NAME_REST = `${NAME_START}\\-.0-9\\u00B7\\u0300-\\u036F\\u203F\\u2040`;
/* eslint-disable no-misleading-character-class -- NameChar includes combining marks and U+200D on purpose (§2.3). */
/** Sticky: matched at a position (lastIndex), never searched for. */
const NAME = new RegExp(`[${NAME_START}][${NAME_REST}]*`, 'uy');
const NC_NAME = new RegExp(`[${NAME_START.slice(1)}][${NAME_REST.slice(1)}]*`, 'uy');
/** The same, whole strings (a name decoded from UTF-8 bytes). */
const WHOLE_NAME = new RegExp(`^[${NAME_START}][${NAME_REST}]*$`, 'u');
const WHOLE_NC_NAME = new RegExp(`^[${NAME_START.slice(1)}][${NAME_REST.slice(1)}]*$`, 'u');
/* eslint-enable no-misleading-character-class */
/** XML 1.0 §2.3 S*, sticky: the indentation between tags, skipped natively (a loop is slower there). */
const SPACE_RUN = /[ \t\r\n]*/y;
/**
 * ASCII characters by role in names: NameStartChar, NameChar only, or neither. Names are mostly
 * ASCII: they are scanned with this table, and the regexes above decide only for other characters.
 */
const NAME_START_ASCII = 1;
const NAME_REST_ASCII = 2;
const ASCII_NAME = new Uint8Array(128);
for (let c = 0; c < 128; c++) {
  const ch = String.fromCharCode(c);
  ASCII_NAME[c] = /[:A-Z_a-z]/.test(ch) ? NAME_START_ASCII : /[-.0-9]/.test(ch) ? NAME_REST_ASCII : 0;
}
/**
 * XMLDecl (§2.8) with the checks saxes makes (an EncName, standalone yes/no, in that order), and
 * version 1.0 only: CDA is XML 1.0, and XML 1.1 would admit control characters as references.
 */
const XML_DECL = /<\?xml[ \t\r\n]+version[ \t\r\n]*=[ \t\r\n]*(?:"1\.0"|'1\.0')(?:[ \t\r\n]+encoding[ \t\r\n]*=[ \t\r\n]*(?:"[A-Za-z][A-Za-z0-9._-]*"|'[A-Za-z][A-Za-z0-9._-]*'))?(?:[ \t\r\n]+standalone[ \t\r\n]*=[ \t\r\n]*(?:"(?:yes|no)"|'(?:yes|no)'))?[ \t\r\n]*\?>/y;

const PREDEFINED: Readonly<Record<string, string>> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" };

const LT = 0x3c;
const GT = 0x3e;
const SLASH = 0x2f;
const EQUALS = 0x3d;
const QUOT = 0x22;
const APOS = 0x27;
const QUESTION = 0x3f;
const BANG = 0x21;

/**
 * Below this length a piece is scanned by a loop; from it on, by one of the regexes below: the
 * call costs more than a short loop, the regex scans a long run (a base64 PDF) about 3× faster.
 */
const LONG_PIECE = 64;
/* eslint-disable no-control-regex -- XML 1.0 §2.2 Char: these regexes find the controls it excludes. */
/** Characters that make character data need work (see charDataNeedsWork), for each `beyond`. */
const DATA_WORK_UTF8 = /[&\r\]\x00-\x08\x0B\x0C\x0E-\x1F\x80-\uFFFF]/;
const DATA_WORK_UTF16 = /[&\r\]\x00-\x08\x0B\x0C\x0E-\x1F\uD800-\uFFFF]/;
/** What checkChars must look at closely: controls, surrogates (paired or not), U+FFFE/U+FFFF. */
const MAYBE_NOT_CHAR = /[\x00-\x08\x0B\x0C\x0E-\x1F\uD800-\uDFFF\uFFFE\uFFFF]/;
/* eslint-enable no-control-regex */
/** A byte above 0x7F in the latin1 view of UTF-8. */
const BEYOND_ASCII = /[\x80-\xFF]/;

/** XML 1.0 §2.3 S. */
function isSpace(c: number): boolean {
  return c === 0x20 || c === 0x0a || c === 0x09 || c === 0x0d;
}

/** A control character XML 1.0 §2.2 does not allow (all but tab, LF, CR). */
function isControl(c: number): boolean {
  return c < 0x20 && c !== 0x09 && c !== 0x0a && c !== 0x0d;
}

/**
 * Namespace bindings in scope (§6.1): those an element declares, then its ancestors'. Elements that
 * declare nothing share their parent's scope; nothing is copied, so many declarations stay cheap.
 */
interface Scope {
  readonly bindings: ReadonlyMap<string, string>;
  readonly parent: Scope | undefined;
}

const ROOT_SCOPE: Scope = { bindings: new Map([['xml', XML_NAMESPACE], ['xmlns', XMLNS_NAMESPACE]]), parent: undefined };

function resolve(scope: Scope, prefix: string): string | undefined {
  for (let s: Scope | undefined = scope; s; s = s.parent) {
    const uri = s.bindings.get(prefix);
    if (uri !== undefined) return uri;
  }
  return undefined;
}

/** Reads a whole document, reporting to `events`; throws CDA_NOT_WELL_FORMED or CDA_DTD_FORBIDDEN. */
export class XmlReader {
  private i = 0;
  /** Qualified names of the open elements, to match end tags. */
  private readonly names: string[] = [];
  /** Namespace scope of each open element. */
  private readonly scopes: Scope[] = [];
  private sawRoot = false;
  private closedRoot = false;
  /** Attributes of the start tag being read: names, values and expanded names (arrays reused between tags). */
  private readonly attrNames: string[] = [];
  private readonly attrValues: string[] = [];
  private readonly attrExpanded: string[] = [];
  private attrCount = 0;
  /** Set by nameEnd: the last name scanned has characters beyond ASCII (in a UTF-8 view, to decode). */
  private nameBeyondAscii = false;
  /**
   * Code units from which a piece is not plain ASCII/BMP text to copy: 0x80 when reading the latin1
   * view of UTF-8 bytes (the piece must be decoded), else 0xD800 (surrogates, U+FFFE/U+FFFF to check).
   */
  private readonly beyond: number;

  /**
   * @param s the document, or with `utf8` the latin1 view of those bytes (already validated as UTF-8)
   */
  constructor(
    private readonly s: string,
    private readonly events: XmlEvents,
    private readonly utf8?: Buffer,
  ) {
    this.beyond = utf8 ? 0x80 : 0xd800;
  }

  read(): void {
    const s = this.s;
    // A byte order mark decoded as U+FEFF is not part of the document (§4.3.3, Appendix F).
    if (this.utf8 ? s.startsWith('\u00EF\u00BB\u00BF') : s.charCodeAt(0) === 0xfeff) this.i = this.utf8 ? 3 : 1;
    if (s.startsWith('<?xml', this.i) && (isSpace(s.charCodeAt(this.i + 5)) || s.charCodeAt(this.i + 5) === QUESTION)) {
      this.xmlDeclaration();
    }
    for (;;) {
      const start = this.i;
      SPACE_RUN.lastIndex = start;
      SPACE_RUN.test(s);
      const spaceEnd = SPACE_RUN.lastIndex;
      // Mostly: indentation, then markup.
      if (s.charCodeAt(spaceEnd) === LT) {
        if (spaceEnd > start) this.whitespace(start, spaceEnd);
        this.i = spaceEnd;
        this.markup();
        continue;
      }
      const lt = s.indexOf('<', spaceEnd);
      const stop = lt < 0 ? s.length : lt;
      this.i = stop;
      if (spaceEnd < stop) this.charData(start, spaceEnd, stop);
      else if (spaceEnd > start) this.whitespace(start, spaceEnd);
      if (lt < 0) break;
      this.markup();
    }
    if (!this.sawRoot) this.fail('document must contain a root element.', s.length);
    if (this.names.length) this.fail(`unclosed tag: ${this.names[this.names.length - 1]}`, s.length);
  }

  /** 1-based line of a position, counting line ends as §2.11 normalises them (computed on error only). */
  line(pos: number = this.i): number {
    let line = 1;
    const s = this.s;
    for (let k = 0; k < pos && k < s.length; k++) {
      const c = s.charCodeAt(k);
      if (c === 0x0a || (c === 0x0d && s.charCodeAt(k + 1) !== 0x0a)) line++;
    }
    return line;
  }

  private fail(message: string, pos: number = this.i): never {
    const s = this.s;
    let lineStart = pos;
    while (lineStart > 0 && s.charCodeAt(lineStart - 1) !== 0x0a && s.charCodeAt(lineStart - 1) !== 0x0d) lineStart--;
    throw new PasserelleError('CDA_NOT_WELL_FORMED', `${this.line(pos)}:${pos - lineStart + 1}: ${message}`);
  }

  /** The end of the input where more was needed. */
  private truncated(): never {
    this.fail('unexpected end.', this.s.length);
  }

  /** Index of `token` from `from`, or a failure when the document ends first. */
  private find(token: string, from: number): number {
    const k = this.s.indexOf(token, from);
    if (k < 0) this.truncated();
    return k;
  }

  private skipSpaces(pos: number): number {
    const s = this.s;
    let k = pos;
    while (isSpace(s.charCodeAt(k))) k++;
    return k;
  }

  /** The text of `raw`, the input from `start` on: itself, or decoded from the bytes when it is a UTF-8 view holding bytes above 0x7F. */
  private textOf(raw: string, start: number): string {
    if (!this.utf8) return raw;
    if (raw.length >= LONG_PIECE) return BEYOND_ASCII.test(raw) ? this.utf8.toString('utf8', start, start + raw.length) : raw;
    for (let k = 0; k < raw.length; k++) if (raw.charCodeAt(k) >= 0x80) return this.utf8.toString('utf8', start, start + raw.length);
    return raw;
  }

  /** The text of [start, end). */
  private piece(start: number, end: number): string {
    return this.textOf(this.s.slice(start, end), start);
  }

  /**
   * The end of the Name (§2.3; an NCName when `nc`) at `pos`, or `pos` when no name starts there.
   * ASCII is looked up in a table; past ASCII the regexes decide.
   */
  private nameEnd(pos: number, nc = false): number {
    const s = this.s;
    let k = pos;
    this.nameBeyondAscii = false;
    for (;;) {
      const c = s.charCodeAt(k);
      if (c >= 0x80) break;
      const role = ASCII_NAME[c] ?? 0; // NaN (the end) has no role
      if (role === 0 || (nc && c === 0x3a) || (k === pos && role !== NAME_START_ASCII)) return k;
      k++;
    }
    this.nameBeyondAscii = true;
    if (!this.utf8) {
      const re = nc ? NC_NAME : NAME;
      re.lastIndex = pos;
      return re.test(s) ? re.lastIndex : pos;
    }
    // UTF-8 view: the run of name bytes (ASCII name characters, any byte above 0x7F) is decoded and
    // must be a name as a whole; if not, a character that ends no name follows and the caller fails.
    let end = k;
    for (;;) {
      const c = s.charCodeAt(end);
      if (!(c >= 0x80 || (ASCII_NAME[c] ?? 0) !== 0)) break;
      end++;
    }
    return (nc ? WHOLE_NC_NAME : WHOLE_NAME).test(this.piece(pos, end)) ? end : pos;
  }

  /** Fails at the first character of [start, end) outside XML 1.0 §2.2 Char (comments, PIs: never decoded). */
  private checkRange(start: number, end: number): void {
    const s = this.s;
    for (let k = start; k < end; k++) {
      const c = s.charCodeAt(k);
      if (isControl(c)) this.fail('disallowed character.', k);
      if (c < this.beyond) continue;
      if (!this.utf8) return this.checkChars(s.slice(k, end), k);
      // Valid UTF-8 encodes no surrogate; of the other non-characters, U+FFFE/U+FFFF are EF BF BE/BF.
      if (c === 0xef && s.charCodeAt(k + 1) === 0xbf && (s.charCodeAt(k + 2) & 0xfe) === 0xbe) this.fail('disallowed character.', k);
    }
  }

  /** Fails at the first character of a piece of text outside XML 1.0 §2.2 Char (lone surrogates included). */
  private checkChars(t: string, pos: number): void {
    if (t.length >= LONG_PIECE && !MAYBE_NOT_CHAR.test(t)) return;
    for (let k = 0; k < t.length; k++) {
      const c = t.charCodeAt(k);
      if (c >= 0x20 && c < 0xd800) continue;
      if (c >= 0xd800 && c <= 0xdbff) {
        const next = t.charCodeAt(k + 1);
        if (next >= 0xdc00 && next <= 0xdfff) {
          k++;
          continue;
        }
      }
      if (isControl(c) || (c >= 0xd800 && c < 0xe000) || c === 0xfffe || c === 0xffff) this.fail('disallowed character.', pos + k);
    }
  }

  /** Whether character data needs more than a slice: a reference, a CR, a `]` (of `]]>`?), a control, `beyond`. */
  private charDataNeedsWork(start: number, end: number): boolean {
    const s = this.s;
    if (end - start >= LONG_PIECE) return (this.utf8 ? DATA_WORK_UTF8 : DATA_WORK_UTF16).test(s.slice(start, end));
    for (let k = start; k < end; k++) {
      const c = s.charCodeAt(k);
      if (c === 0x26 || c === 0x0d || c === 0x5d || isControl(c) || c >= this.beyond) return true;
    }
    return false;
  }

  /** Whether an attribute value needs more than a slice: a reference, `<`, a tab or line end, a control, `beyond`. */
  private attrValueNeedsWork(start: number, end: number): boolean {
    const s = this.s;
    for (let k = start; k < end; k++) {
      const c = s.charCodeAt(k);
      if (c === 0x26 || c === 0x3c || c < 0x20 || c >= this.beyond) return true;
    }
    return false;
  }

  // ---- character data ----

  /** Whitespace alone between two pieces of markup (or the end). */
  private whitespace(start: number, end: number): void {
    // Indentation: skipped unless asked for (narrative blocks), and then only line ends to fix.
    if (!this.names.length || !this.events.keepsWhitespace()) return;
    this.events.text(normaliseLineEnds(this.s.slice(start, end)));
  }

  /** Character data [start, stop) up to the next `<` or the end, not only whitespace (it starts at `spaceEnd`). */
  private charData(start: number, spaceEnd: number, stop: number): void {
    const s = this.s;
    // Outside the root element only whitespace may appear (§2.1 document, Misc).
    if (!this.names.length) this.fail('text data outside of root node.', spaceEnd);
    // References, line ends, `]]>` and (in a UTF-8 view) accents are rare in CDA text: one look
    // decides whether to work.
    this.events.text(this.charDataNeedsWork(start, stop) ? this.decodeCharData(this.piece(start, stop), start) : s.slice(start, stop));
  }

  private decodeCharData(raw: string, pos: number): string {
    this.checkChars(raw, pos);
    const bad = raw.indexOf(']]>');
    if (bad >= 0) this.fail('the string "]]>" is disallowed in char data.', pos + bad);
    // Line ends first: a `&#13;` reference is a carriage return that stays one.
    return this.references(normaliseLineEnds(raw), pos);
  }

  /** Replaces the predefined entity references and character references (§4.1, §4.6). */
  private references(t: string, pos: number): string {
    let amp = t.indexOf('&');
    if (amp < 0) return t;
    let out = '';
    let last = 0;
    while (amp >= 0) {
      const semi = t.indexOf(';', amp + 1);
      if (semi < 0) this.fail('malformed entity reference.', pos + amp);
      out += t.slice(last, amp) + this.reference(t.slice(amp + 1, semi), pos + amp);
      last = semi + 1;
      amp = t.indexOf('&', last);
    }
    return out + t.slice(last);
  }

  private reference(name: string, pos: number): string {
    if (name[0] !== '#') {
      const value = Object.hasOwn(PREDEFINED, name) ? PREDEFINED[name] : undefined;
      if (value === undefined) this.fail('undefined entity.', pos);
      return value;
    }
    // `&#x…;` with a lower-case x only (§4.1 CharRef), as saxes reads it.
    let code = NaN;
    if (name[1] === 'x' && /^#x[0-9a-fA-F]+$/.test(name)) code = parseInt(name.slice(2), 16);
    else if (/^#[0-9]+$/.test(name)) code = parseInt(name.slice(1), 10);
    const isChar = code === 0x9 || code === 0xa || code === 0xd || (code >= 0x20 && code <= 0xd7ff)
      || (code >= 0xe000 && code <= 0xfffd) || (code >= 0x10000 && code <= 0x10ffff);
    if (!isChar) this.fail('malformed character entity.', pos);
    return String.fromCodePoint(code);
  }

  // ---- markup ----

  /** At a `<`. */
  private markup(): void {
    const s = this.s;
    const c = s.charCodeAt(this.i + 1);
    if (c === SLASH) this.endTag();
    else if (c === BANG) {
      if (s.startsWith('<!--', this.i)) this.comment();
      else if (s.startsWith('<![CDATA[', this.i)) this.cdata();
      else if (s.startsWith('<!DOCTYPE', this.i)) this.doctype();
      else if (this.i + 2 >= s.length) this.truncated();
      else this.fail('incorrect syntax.');
    } else if (c === QUESTION) this.processingInstruction();
    else this.startTag();
  }

  private startTag(): void {
    const s = this.s;
    const nameEnd = this.nameEnd(this.i + 1);
    if (nameEnd === this.i + 1) {
      if (nameEnd >= s.length) this.truncated();
      this.fail('disallowed character in tag name.', nameEnd);
    }
    // As written in the input, to match the end tag; as text, for the tree.
    const written = s.slice(this.i + 1, nameEnd);
    const qname = this.nameBeyondAscii ? this.textOf(written, this.i + 1) : written;
    if (this.closedRoot) this.fail('documents may contain only one root.');
    this.sawRoot = true;
    this.attrCount = 0;
    let pos = nameEnd;
    let selfClosing = false;
    for (;;) {
      const afterSpace = this.skipSpaces(pos);
      const c = s.charCodeAt(afterSpace);
      if (c === GT) {
        pos = afterSpace + 1;
        break;
      }
      if (c === SLASH) {
        if (s.charCodeAt(afterSpace + 1) !== GT) {
          if (afterSpace + 1 >= s.length) this.truncated();
          this.fail('forward-slash in opening tag not followed by >.', afterSpace + 1);
        }
        pos = afterSpace + 2;
        selfClosing = true;
        break;
      }
      if (afterSpace >= s.length) this.truncated();
      const attrEnd = this.nameEnd(afterSpace);
      if (attrEnd === afterSpace) this.fail(afterSpace === pos ? 'disallowed character in tag name.' : 'disallowed character in attribute name.', afterSpace);
      if (afterSpace === pos) this.fail('no whitespace between attributes.', afterSpace);
      const eq = this.skipSpaces(attrEnd);
      if (s.charCodeAt(eq) !== EQUALS) {
        if (eq >= s.length) this.truncated();
        this.fail('attribute without value.', eq);
      }
      const open = this.skipSpaces(eq + 1);
      const quote = s.charCodeAt(open);
      if (quote !== QUOT && quote !== APOS) {
        if (open >= s.length) this.truncated();
        this.fail('unquoted attribute value.', open);
      }
      const close = this.find(quote === QUOT ? '"' : "'", open + 1);
      this.attrNames[this.attrCount] = this.nameBeyondAscii ? this.piece(afterSpace, attrEnd) : s.slice(afterSpace, attrEnd);
      this.attrValues[this.attrCount] = this.attrValueNeedsWork(open + 1, close) ? this.attributeValue(this.piece(open + 1, close), open + 1) : s.slice(open + 1, close);
      this.attrCount++;
      pos = close + 1;
    }
    this.i = pos;
    this.element(qname, written, selfClosing);
  }

  /** §3.3.3: `<` refused, tab and line ends (a CR LF pair counts once) become spaces, references replaced. */
  private attributeValue(raw: string, pos: number): string {
    this.checkChars(raw, pos);
    const lt = raw.indexOf('<');
    if (lt >= 0) this.fail('disallowed character.', pos + lt);
    return this.references(raw.replace(/\r\n|[\t\n\r]/g, ' '), pos);
  }

  /** Namespaces (§5, §6) of the start tag just read, then the open event. */
  private element(qname: string, written: string, selfClosing: boolean): void {
    const count = this.attrCount;
    const names = this.attrNames;
    const values = this.attrValues;
    const expanded = this.attrExpanded;
    // Declarations first (§6.1: they apply to the element's own name and attributes).
    let declared: Map<string, string> | undefined;
    for (let k = 0; k < count; k++) {
      const name = names[k] as string;
      if (!name.startsWith('xmlns') || (name.length > 5 && name.charCodeAt(5) !== 0x3a)) continue;
      const prefix = name.length === 5 ? '' : name.slice(6);
      if (name.length > 5) this.checkQName(name);
      const uri = (values[k] as string).trim();
      if (prefix !== '' && uri === '') this.fail('invalid attempt to undefine prefix in XML 1.0');
      this.checkBinding(prefix, uri);
      (declared ??= new Map()).set(prefix, uri);
    }
    const parentScope = this.scopes[this.scopes.length - 1] ?? ROOT_SCOPE;
    const scope = declared ? { bindings: declared, parent: parentScope } : parentScope;

    const colon = this.checkQName(qname);
    const prefix = colon < 0 ? '' : qname.slice(0, colon);
    const local = colon < 0 ? qname : qname.slice(colon + 1);
    if (prefix === 'xmlns') this.fail('tags may not have "xmlns" as prefix.');
    const uri = resolve(scope, prefix);
    if (prefix !== '' && uri === undefined) this.fail(`unbound namespace prefix: ${JSON.stringify(prefix)}.`);

    let attrs: Record<string, string> | undefined;
    for (let k = 0; k < count; k++) {
      const name = names[k] as string;
      // The expanded name (§6.3): two attributes may not share namespace and local name.
      const colonAt = this.checkQName(name);
      if (colonAt < 0) expanded[k] = name;
      else {
        const attrPrefix = name.slice(0, colonAt);
        const attrUri = resolve(scope, attrPrefix);
        if (attrUri === undefined) this.fail(`unbound namespace prefix: ${JSON.stringify(attrPrefix)}.`);
        expanded[k] = `{${attrUri}}${name.slice(colonAt + 1)}`;
      }
      // Namespace declarations are not attributes of the tree.
      if (name === 'xmlns' || name.startsWith('xmlns:')) continue;
      (attrs ??= {})[name] = values[k] as string;
    }
    if (count > 1) this.checkDuplicates(count);

    this.events.open(local, uri ?? '', attrs);
    if (selfClosing) {
      this.events.close();
      if (!this.names.length) this.closedRoot = true;
    } else {
      this.names.push(written);
      this.scopes.push(scope);
    }
  }

  /** No two attributes with the same expanded name: pairwise for a few, a set for many. */
  private checkDuplicates(count: number): void {
    const expanded = this.attrExpanded;
    if (count <= 8) {
      for (let k = 1; k < count; k++) {
        for (let j = 0; j < k; j++) if (expanded[j] === expanded[k]) this.fail(`duplicate attribute: ${expanded[k]}.`);
      }
      return;
    }
    const seen = new Set<string>();
    for (let k = 0; k < count; k++) {
      const e = expanded[k] as string;
      if (seen.has(e)) this.fail(`duplicate attribute: ${e}.`);
      seen.add(e);
    }
  }

  /** A QName (§4) has at most one colon, with something on both sides. Returns the colon's index or -1. */
  private checkQName(name: string): number {
    const colon = name.indexOf(':');
    if (colon >= 0 && (colon === 0 || colon === name.length - 1 || name.indexOf(':', colon + 1) >= 0)) {
      this.fail(`malformed name: ${name}.`);
    }
    return colon;
  }

  /** §3: `xml` and `xmlns` keep their namespaces, and no other prefix (nor the default) takes them. */
  private checkBinding(prefix: string, uri: string): void {
    if (prefix === 'xml' && uri !== XML_NAMESPACE) this.fail(`xml prefix must be bound to ${XML_NAMESPACE}.`);
    if (prefix === 'xmlns') this.fail(`xmlns prefix must be bound to ${XMLNS_NAMESPACE}.`);
    if (uri === XMLNS_NAMESPACE) this.fail(`may not assign a prefix to ${XMLNS_NAMESPACE}.`);
    if (uri === XML_NAMESPACE && prefix !== 'xml') this.fail('may not assign the xml namespace to another prefix.');
  }

  /** `</name S?>`, where name is the open element's name as written (§3, element type match). */
  private endTag(): void {
    const s = this.s;
    const open = this.names[this.names.length - 1];
    if (open === undefined) this.fail('unmatched closing tag.');
    if (!s.startsWith(open, this.i + 2)) {
      if (this.i + 2 + open.length > s.length) this.truncated();
      this.fail('unexpected close tag.', this.i + 2);
    }
    const gt = this.skipSpaces(this.i + 2 + open.length);
    if (s.charCodeAt(gt) !== GT) {
      if (gt >= s.length) this.truncated();
      this.fail('disallowed character in closing tag.', gt);
    }
    this.names.pop();
    this.scopes.pop();
    this.i = gt + 1;
    this.events.close();
    if (!this.names.length) this.closedRoot = true;
  }

  /** `<!-- … -->`: no `--` inside (§2.5). */
  private comment(): void {
    const start = this.i + 4;
    const dashes = this.find('--', start);
    if (this.s.charCodeAt(dashes + 2) !== GT) {
      if (dashes + 2 >= this.s.length) this.truncated();
      this.fail('malformed comment.', dashes);
    }
    this.checkRange(start, dashes);
    this.i = dashes + 3;
  }

  /** `<![CDATA[ … ]]>`: character data, only inside the root element (§2.7). */
  private cdata(): void {
    if (!this.names.length) this.fail('text data outside of root node.');
    const start = this.i + 9;
    const end = this.find(']]>', start);
    const content = this.piece(start, end);
    this.checkChars(content, start);
    this.i = end + 3;
    this.events.text(normaliseLineEnds(content));
  }

  private doctype(): never {
    // Inside or after the root element a DOCTYPE is misplaced markup, not a DTD to refuse.
    if (this.sawRoot) this.fail('inappropriately located doctype declaration.');
    throw new PasserelleError('CDA_DTD_FORBIDDEN', undefined, `line ${this.line()}`);
  }

  /** `<?target …?>`, ignored. The target is an NCName; `xml` in any case is reserved (§2.6). */
  private processingInstruction(): void {
    const s = this.s;
    const after = this.nameEnd(this.i + 2, true);
    if (after === this.i + 2) {
      if (after >= s.length) this.truncated();
      this.fail('processing instruction without a target.', after);
    }
    const target = this.piece(this.i + 2, after);
    const c = s.charCodeAt(after);
    if (!isSpace(c) && c !== QUESTION) {
      if (after >= s.length) this.truncated();
      this.fail('disallowed character in processing instruction name.', after);
    }
    if (target.toLowerCase() === 'xml') this.fail('an XML declaration must be at the start of the document.');
    const end = this.find('?>', after);
    this.checkRange(after, end);
    this.i = end + 2;
  }

  private xmlDeclaration(): void {
    XML_DECL.lastIndex = this.i;
    if (!XML_DECL.test(this.s)) {
      if (this.s.indexOf('?>', this.i) < 0) this.truncated();
      this.fail('malformed XML declaration.');
    }
    this.i = XML_DECL.lastIndex;
  }
}

/** §2.11: CR LF and lone CR become LF. */
function normaliseLineEnds(t: string): string {
  if (!t.includes('\r')) return t;
  // CRLF first, natively and without a regex (the common case, 2× faster), then any lone CR.
  const crlf = t.replaceAll('\r\n', '\n');
  return crlf.includes('\r') ? crlf.replaceAll('\r', '\n') : crlf;
}
