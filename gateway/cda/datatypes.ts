/**
 * CDA R2 data types → FHIR R4 data types (II, CD/CE/CV, AD, TEL, PN/ON, PQ), per DOMAIN.md §4 and
 * the HL7 "C-CDA on FHIR" data type maps. `nullFlavor` never becomes an invented value: the
 * element is omitted (callers state a data-absent-reason where FHIR requires one).
 */
import type { Address, CodeableConcept, Coding, ContactPoint, HumanName, Identifier, Quantity } from '@medplum/fhirtypes';
import type { ConversionContext } from './context.js';
import { OID, UUID, systemUri } from './terminology.js';
import { attr, child, children, elements, text, type XElement } from './xml.js';
import { own } from '../util/own.js';

export function isNull(el: XElement | undefined): boolean {
  return !el || attr(el, 'nullFlavor') !== undefined;
}

/**
 * II → Identifier: root+extension → system `urn:oid:root`, value extension; a lone UUID root →
 * `urn:ietf:rfc:3986` + `urn:uuid:` (lower case); a lone OID root → `urn:ietf:rfc:3986` + `urn:oid:`.
 */
export function identifier(ctx: ConversionContext, el: XElement | undefined): Identifier | undefined {
  if (!el || isNull(el)) return undefined;
  const root = attr(el, 'root')?.trim();
  const ext = attr(el, 'extension')?.trim();
  if (!root) return ext ? { value: ext } : undefined;
  const isUuid = UUID.test(root);
  if (!isUuid && !OID.test(root)) {
    // A root that names no namespace (e.g. "xxxx" placeholders) gives no system; the value stays.
    ctx.report.warn('ID_INVALID', `Identifier root "${root}" is neither an OID nor a UUID.`, el);
    return ext ? { value: ext } : undefined;
  }
  if (ext) {
    return { system: isUuid ? `urn:uuid:${root.toLowerCase()}` : `urn:oid:${root}`, value: ext };
  }
  return { system: 'urn:ietf:rfc:3986', value: isUuid ? `urn:uuid:${root.toLowerCase()}` : `urn:oid:${root}` };
}

/** A stable text key of an II (for deduplication and id salts). */
export function idKey(el: XElement | undefined): string | undefined {
  if (!el || isNull(el)) return undefined;
  const root = attr(el, 'root')?.trim().toLowerCase();
  const ext = attr(el, 'extension')?.trim();
  return root ? `${root}|${ext ?? ''}` : undefined;
}

/** CD → Coding (the code itself, without translations). */
export function coding(el: XElement | undefined): Coding | undefined {
  if (!el) return undefined;
  const code = attr(el, 'code')?.trim();
  if (!code || attr(el, 'nullFlavor')) return undefined;
  const c: Coding = {};
  const system = systemUri(attr(el, 'codeSystem')?.trim());
  if (system) c.system = system;
  const version = attr(el, 'codeSystemVersion');
  if (version) c.version = version;
  c.code = code;
  const display = attr(el, 'displayName')?.replace(/\s+/g, ' ').trim(); // attribute values wrapped over lines keep their runs of spaces
  if (display) c.display = display;
  return c;
}

/** administrativeGenderCode (HL7 v3 AdministrativeGender, with the unknowns of NullFlavor) → FHIR gender. */
const GENDER: Readonly<Record<string, 'male' | 'female' | 'other' | 'unknown'>> = { M: 'male', F: 'female', UN: 'other', U: 'unknown', UNK: 'unknown' };

export function administrativeGender(person: XElement | undefined): 'male' | 'female' | 'other' | 'unknown' | undefined {
  return own(GENDER, attr(child(person, 'administrativeGenderCode'), 'code'));
}

/** CD → CodeableConcept: the code, its translations, and originalText (resolving `#id` references). */
export function concept(ctx: ConversionContext, el: XElement | undefined): CodeableConcept | undefined {
  if (!el) return undefined;
  const codings: Coding[] = [];
  const main = coding(el);
  if (main) codings.push(main);
  for (const t of children(el, 'translation')) {
    const c = coding(t);
    if (c) codings.push(c);
  }
  // A qualifier with a value and no name says which one (CI-SIS FR-Habitus-Mode-de-vie: "11345-6
  // Autre élément social" qualified "77318-4 Allaitement au sein"): a more specific coding of the
  // same concept, which R4 CodeableConcept admits beside it. Named qualifiers (laterality…) are not.
  const specific = children(el, 'qualifier').filter((q) => !child(q, 'name')).map((q) => coding(child(q, 'value'))).filter((c) => c !== undefined);
  codings.push(...specific);
  const cc: CodeableConcept = {};
  if (codings.length) cc.coding = codings;
  const original = originalText(ctx, el);
  if (original) cc.text = original;
  else if (specific.length && main?.display) cc.text = [main.display, ...specific.map((c) => c.display ?? c.code)].join(' : ');
  return cc.coding || cc.text ? cc : undefined;
}

/** The text of `originalText`, following `<reference value="#id"/>` into the narrative. */
export function originalText(ctx: ConversionContext, el: XElement | undefined): string | undefined {
  const ot = child(el, 'originalText');
  if (!ot) return undefined;
  const target = narrativeTarget(ctx, child(ot, 'reference'));
  if (target) return namingText(target);
  // Written in place (or after a reference that resolves nowhere): a placeholder such as "-" says nothing.
  const own = text(ot);
  return own !== undefined && /[\p{L}\p{N}]/u.test(own) ? own : undefined;
}

/**
 * The section-narrative element a `reference/@value` points to. `#id` is the CDA form; a bare `id`
 * (seen in published ANS examples) is accepted too. Only targets inside a section narrative count,
 * so that an observationMedia ID never yields base64 as text.
 */
export function narrativeTarget(ctx: ConversionContext, ref: XElement | undefined): XElement | undefined {
  const value = attr(ref, 'value')?.trim();
  if (!value) return undefined;
  const id = value.startsWith('#') ? value.slice(1) : value;
  if (!id || /[:/]/.test(id)) return undefined;
  const target = ctx.byNarrativeId(id);
  return target && inNarrative(target) ? target : undefined;
}

/** Whether an element is inside a section's narrative block (`section/text`), not in an entry. */
function inNarrative(el: XElement): boolean {
  for (let cur = el.parent; cur; cur = cur.parent) {
    if (cur.name === 'text' && cur.parent?.name === 'section') return true;
    if (cur.name === 'section' || cur.name === 'entry') return false;
  }
  return false;
}

/**
 * Answers a checklist cell holds (DLU, CSE: "Soins palliatifs | non"): when a reference points
 * there, the cell is the answer, not the name of what was asked.
 */
const ANSWER = /^(?:oui|non|yes|no|vrai|faux|true|false|néant|neant|aucun|aucune|inconnu|nsp|x|-)\.?$/i;

export function isAnswer(t: string): boolean {
  return ANSWER.test(t.trim());
}

/**
 * The label of the table cell an answer is in: the text of its row's other cells that are not
 * answers too (a vaccine's "2 mois | 4 mois" columns), then its column's header — the first row
 * of the table holding more than one cell — when that is not an answer: tables are written both
 * ways ("Vaccin contre la coqueluche | Oui" and, transposed, "1ère dose | Oui" under a row of
 * vaccine names).
 */
export function rowLabel(target: XElement): string | undefined {
  let cell: XElement | undefined = target;
  while (cell && cell.name !== 'td' && cell.name !== 'th') cell = cell.parent;
  const row = cell?.parent?.name === 'tr' ? cell.parent : undefined;
  if (!cell || !row) return undefined;
  const label = cellsOf(row)
    .filter((c) => c !== cell)
    .map((c) => text(c)?.trim())
    .filter((t): t is string => t !== undefined && t !== '' && !isAnswer(t));
  const header = headerRow(row);
  const column = header && header !== row ? cellAt(header, columnOf(row, cell)) : undefined;
  const title = column && text(column)?.trim();
  if (title && !isAnswer(title)) label.push(title);
  return label.join(' — ') || undefined;
}

function cellsOf(row: XElement): XElement[] {
  return row.children.filter((c): c is XElement => typeof c !== 'string' && (c.name === 'td' || c.name === 'th'));
}

const span = (cell: XElement): number => Math.max(1, Number(cell.attrs.colspan) || 1);

function columnOf(row: XElement, cell: XElement): number {
  let column = 0;
  for (const c of cellsOf(row)) {
    if (c === cell) return column;
    column += span(c);
  }
  return column;
}

function cellAt(row: XElement, column: number): XElement | undefined {
  let at = 0;
  for (const c of cellsOf(row)) {
    if (column < at + span(c)) return c;
    at += span(c);
  }
  return undefined;
}

/** The first row of the row's table (thead first) with more than one cell: a title row spanning the table is not a header. */
function headerRow(row: XElement): XElement | undefined {
  const table = row.parent?.name === 'table' ? row.parent : row.parent?.parent;
  if (table?.name !== 'table') return undefined;
  const groups = table.children.filter((c): c is XElement => typeof c !== 'string');
  const rows = [...groups.filter((g) => g.name === 'thead'), ...groups.filter((g) => g.name !== 'thead')]
    .flatMap((g) => (g.name === 'tr' ? [g] : g.children.filter((c): c is XElement => typeof c !== 'string' && c.name === 'tr')));
  return rows.find((r) => cellsOf(r).length > 1);
}

/** What a narrative element says to name a concept: its text, unless a bare answer (then its row's label, if any). */
export function namingText(target: XElement): string | undefined {
  const t = text(target);
  return t === undefined || !isAnswer(t) ? t : rowLabel(target);
}

const ADDRESS_USE: Readonly<Record<string, Address['use']>> = {
  H: 'home', HP: 'home', HV: 'home', WP: 'work', DIR: 'work', PUB: 'work', TMP: 'temp', BAD: 'old', OLD: 'old',
};

/** AD → Address: houseNumber + streetName (or streetAddressLine) → line, county → district. */
export function address(el: XElement | undefined): Address | undefined {
  if (!el || isNull(el)) return undefined;
  const a: Address = {};
  const use = firstUse(attr(el, 'use'), ADDRESS_USE);
  if (use) a.use = use;
  if (attr(el, 'use')?.split(/\s+/).includes('PHYS')) a.type = 'physical';
  const lines: string[] = [];
  const street = [text(child(el, 'houseNumber')), text(child(el, 'houseNumberNumeric')), text(child(el, 'buildingNumberSuffix')),
    text(child(el, 'streetNameType')), text(child(el, 'streetNameBase')), text(child(el, 'streetName'))]
    .filter(Boolean).join(' ');
  for (const part of elements(el)) {
    const v = text(part);
    if (!v) continue;
    switch (part.name) {
      case 'streetAddressLine': case 'additionalLocator': case 'unitID': case 'unitType': case 'careOf':
      case 'deliveryAddressLine': case 'postBox': case 'deliveryInstallationType': case 'deliveryInstallationArea':
      case 'deliveryMode': case 'deliveryModeIdentifier': case 'precinct':
        lines.push(v);
        break;
      case 'city': a.city = v; break;
      case 'postalCode': a.postalCode = v; break;
      case 'county': a.district = v; break;
      case 'state': a.state = v; break;
      case 'country': a.country = v; break;
      default: break;
    }
  }
  if (street) lines.unshift(street);
  if (lines.length) a.line = lines;
  if (!elements(el).length) {
    const t = text(el);
    if (t) a.text = t;
  }
  return Object.keys(a).some((k) => k !== 'use' && k !== 'type') ? a : undefined;
}

const TELECOM_USE: Readonly<Record<string, ContactPoint['use']>> = {
  H: 'home', HP: 'home', HV: 'home', WP: 'work', DIR: 'work', PUB: 'work', MC: 'mobile', PG: 'mobile', TMP: 'temp', BAD: 'old',
};

/** TEL → ContactPoint by URL scheme (tel, fax, mailto, http/https); unknown schemes keep the raw value. */
export function contactPoint(el: XElement | undefined): ContactPoint | undefined {
  if (!el || isNull(el)) return undefined;
  const raw = attr(el, 'value')?.trim();
  if (!raw) return undefined;
  const cp: ContactPoint = {};
  const m = /^([a-zA-Z][a-zA-Z0-9+.-]*):(.*)$/.exec(raw);
  const scheme = m?.[1]?.toLowerCase();
  const rest = (m?.[2] ?? raw).trim();
  switch (scheme) {
    case 'tel': cp.system = 'phone'; cp.value = rest; break;
    case 'fax': cp.system = 'fax'; cp.value = rest; break;
    case 'mailto': cp.system = 'email'; cp.value = rest; break;
    case 'http': case 'https': cp.system = 'url'; cp.value = raw; break;
    default: cp.system = 'other'; cp.value = raw; break;
  }
  if (!cp.value) return undefined;
  const use = firstUse(attr(el, 'use'), TELECOM_USE);
  if (use) cp.use = use;
  return cp;
}

function firstUse<T>(uses: string | undefined, map: Readonly<Record<string, T>>): T | undefined {
  for (const u of uses?.split(/\s+/) ?? []) {
    const v = own(map, u);
    if (v) return v;
  }
  return undefined;
}

/** PN/EN without qualifier handling (practitioners, related persons): family, given, prefix, suffix. */
export function humanName(el: XElement | undefined): HumanName | undefined {
  if (!el || isNull(el)) return undefined;
  const n: HumanName = {};
  const parts = elements(el);
  if (!parts.length) {
    const t = text(el);
    return t ? { text: t } : undefined;
  }
  const family = parts.filter((p) => p.name === 'family').map(text).filter(isText);
  if (family.length) n.family = family.join(' ');
  const given = parts.filter((p) => p.name === 'given').map(text).filter(isText);
  if (given.length) n.given = given;
  const prefix = parts.filter((p) => p.name === 'prefix').map(text).filter(isText);
  if (prefix.length) n.prefix = prefix;
  const suffix = parts.filter((p) => p.name === 'suffix').map(text).filter(isText);
  if (suffix.length) n.suffix = suffix;
  return n.family || n.given || n.prefix || n.suffix ? n : undefined;
}

export function isText(v: string | undefined): v is string {
  return v !== undefined && v !== '';
}

/** PQ → Quantity (UCUM units). A value that is not a decimal is refused (returns undefined). */
export function quantity(el: XElement | undefined): Quantity | undefined {
  if (!el || isNull(el)) return undefined;
  const raw = attr(el, 'value')?.trim();
  if (!raw || !/^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$/.test(raw)) return undefined;
  const q: Quantity = { value: Number(raw) };
  const unit = attr(el, 'unit')?.trim();
  if (unit && unit !== '1') {
    q.unit = unit;
    q.system = 'http://unitsofmeasure.org';
    q.code = unit;
  }
  return q;
}
