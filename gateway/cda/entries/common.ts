/**
 * Helpers shared by the entry mappers: narrative text of an entry, identifiers, author, the
 * data-absent-reason extension, xsi:type, and the reports every mapper writes.
 *
 * Rule of the whole module (FHIR R4 §2.1.0.6 "Missing data", extension data-absent-reason): a
 * value the CDA does not give is never invented. Where FHIR requires it, the element carries the
 * data-absent-reason extension instead (code from the CDA nullFlavor when there is one), and the
 * report says so.
 */
import type { CodeableConcept, Extension, Identifier } from '@medplum/fhirtypes';
import type { ConversionContext, Ref } from '../context.js';
import { personOf, practitionerRoleRef, relatedSubjectRef } from '../actors.js';
import { concept, identifier, isAnswer, namingText, narrativeTarget, rowLabel } from '../datatypes.js';
import { dateTime } from '../time.js';
import { DATA_ABSENT_REASON } from '../terminology.js';
import { attr, child, children, elements, HL7_NS, text, type XElement, type XNode } from '../xml.js';
import { own } from '../../util/own.js';

export const DAR_SYSTEM = 'http://terminology.hl7.org/CodeSystem/data-absent-reason';

/** CDA NullFlavor (HL7 v3) → data-absent-reason code (FHIR R4 ValueSet data-absent-reason). */
const NULL_FLAVOR_TO_DAR: Readonly<Record<string, string>> = {
  UNK: 'unknown',
  NI: 'unknown',
  ASKU: 'asked-unknown',
  NAV: 'temp-unknown',
  NASK: 'not-asked',
  MSK: 'masked',
  NA: 'not-applicable',
  OTH: 'unsupported',
  NINF: 'negative-infinity',
  PINF: 'positive-infinity',
  NP: 'unknown',
  QS: 'unknown',
  TRC: 'unknown',
};

export function darCode(nullFlavor: string | undefined): string {
  return own(NULL_FLAVOR_TO_DAR, nullFlavor) || 'unknown';
}

/** The data-absent-reason extension (for a primitive's `_element` or a complex element itself). */
export function absent(nullFlavor?: string): { extension: Extension[] } {
  return { extension: [{ url: DATA_ABSENT_REASON, valueCode: darCode(nullFlavor) }] };
}

/** A data-absent-reason as a CodeableConcept (Observation.dataAbsentReason). */
export function absentConcept(nullFlavor?: string): CodeableConcept {
  return { coding: [{ system: DAR_SYSTEM, code: darCode(nullFlavor) }] };
}

/**
 * A CodeableConcept that FHIR requires: the code, else the given text alone, else the
 * data-absent-reason extension (reported as VALUE_NULL_FLAVOR or ENTRY_INCOMPLETE).
 */
export function requiredConcept(ctx: ConversionContext, codeEl: XElement | undefined, fallbackText: string | undefined, what: string, where: XElement): CodeableConcept {
  const cc = concept(ctx, codeEl);
  if (cc) {
    if (!cc.text && fallbackText && !cc.coding?.some((c) => c.display)) cc.text = fallbackText;
    return cc;
  }
  if (fallbackText) return { text: fallbackText };
  const nf = attr(codeEl, 'nullFlavor');
  if (nf) ctx.report.info('VALUE_NULL_FLAVOR', `${what} has nullFlavor ${nf}; stated as data-absent-reason.`, codeEl ?? where);
  else ctx.report.warn('ENTRY_INCOMPLETE', `${what} is absent; stated as data-absent-reason.`, where);
  return absent(nf);
}

/**
 * The `xsi:type` of an element, without its prefix. The reader keeps attribute prefixes, not their
 * namespaces, so any prefixed `type` attribute is taken (HL7 CDA defines no other one).
 */
export function xsiType(el: XElement | undefined): string | undefined {
  if (!el) return undefined;
  for (const [name, value] of Object.entries(el.attrs)) {
    if (/^[^:]+:type$/.test(name)) {
      const v = value.trim();
      return v.slice(v.indexOf(':') + 1).toUpperCase();
    }
  }
  return undefined;
}

/** statusCode/@code of an act, trimmed; undefined when absent or nullFlavored. */
export function statusOf(el: XElement): string | undefined {
  return attr(child(el, 'statusCode'), 'code')?.trim() || undefined;
}

export function isNegated(el: XElement): boolean {
  return attr(el, 'negationInd')?.trim() === 'true';
}

export function mood(el: XElement): string {
  return attr(el, 'moodCode')?.trim() || 'EVN';
}

/** Text of the section-narrative element a `reference/@value` points to (narrativeTarget). */
export function referencedNarrative(ctx: ConversionContext, ref: XElement | undefined): string | undefined {
  const target = narrativeTarget(ctx, ref);
  return target && text(target);
}

/** The narrative of an entry (`text`): the referenced narrative, else its own text. */
export function entryText(ctx: ConversionContext, el: XElement | undefined): string | undefined {
  const t = child(el, 'text');
  if (!t) return undefined;
  return referencedNarrative(ctx, child(t, 'reference')) ?? ownText(t);
}

/**
 * An entry whose narrative reference points to an answer in a table row ("Lien avec le médecin de
 * PMI | Oui"): the row's other cells as the label, and the answer.
 */
export function checklistRow(ctx: ConversionContext, el: XElement | undefined): { label: string; answer: string } | undefined {
  const target = narrativeTarget(ctx, child(child(el, 'text'), 'reference'));
  const answer = target && text(target)?.trim();
  const label = answer && isAnswer(answer) ? rowLabel(target) : undefined;
  return answer && label ? { label, answer } : undefined;
}

/** The entry's narrative when it can name a concept (CodeableConcept.text): never a bare answer (see namingText). */
export function entryName(ctx: ConversionContext, el: XElement | undefined): string | undefined {
  const t = child(el, 'text');
  if (!t) return undefined;
  const target = narrativeTarget(ctx, child(t, 'reference'));
  if (target) return namingText(target);
  const own = ownText(t);
  return own === undefined || isAnswer(own) ? undefined : own;
}

/** Text of an element without the text of its `reference` child. */
function ownText(el: XElement): string | undefined {
  const parts: string[] = [];
  const nodes = el.children;
  for (let i = 0; i < nodes.length; i++) {
    const c = nodes[i] as XNode;
    if (typeof c === 'string') parts.push(c);
    else if (c.name !== 'reference') parts.push(text(c) ?? '');
  }
  const t = parts.join('').replace(/\s+/g, ' ').trim();
  return t || undefined;
}

/** The identifiers of an act (`id`); identifier() drops the system of a root that is no OID or UUID. */
export function identifiers(ctx: ConversionContext, el: XElement): Identifier[] {
  return children(el, 'id').map((idEl) => identifier(ctx, idEl)).filter((i) => i !== undefined);
}

/** The resource type behind a reference this conversion emitted. */
function typeOf(ctx: ConversionContext, ref: Ref): string | undefined {
  return ctx.resolve(ref)?.resourceType;
}

/**
 * An actor (author/assignedAuthor, performer/assignedEntity) as a reference, kept only when its
 * resource type is one the target element allows (an assignedAuthor may be a device or an
 * organisation alone).
 */
export function actorRef(ctx: ConversionContext, assigned: XElement | undefined, allowed: readonly string[]): Ref | undefined {
  if (!assigned) return undefined;
  // What practitionerRoleRef will make of it, checked first so that no actor is emitted for nothing.
  const expected = personOf(assigned) ? 'PractitionerRole' : child(assigned, 'assignedAuthoringDevice') ? 'Device' : 'Organization';
  if (!allowed.includes(expected)) return undefined;
  const ref = practitionerRoleRef(ctx, assigned);
  if (!ref) return undefined;
  const type = typeOf(ctx, ref);
  return type && allowed.includes(type) ? ref : undefined;
}

/** The first author of an entry (assignedAuthor) and its time. */
export function author(ctx: ConversionContext, el: XElement, allowed: readonly string[]): { ref?: Ref; time?: string } {
  const a = child(el, 'author');
  if (!a) return {};
  const out: { ref?: Ref; time?: string } = {};
  const ref = actorRef(ctx, child(a, 'assignedAuthor'), allowed);
  if (ref) out.ref = ref;
  const time = dateTime(ctx, child(a, 'time'));
  if (time) out.time = time;
  return out;
}

/** performer/assignedEntity references, in document order. */
export function performers(ctx: ConversionContext, el: XElement, allowed: readonly string[]): Ref[] {
  return children(el, 'performer')
    .map((p) => actorRef(ctx, child(p, 'assignedEntity'), allowed))
    .filter((r): r is Ref => r !== undefined);
}

/** The clinical statement of an entry or entryRelationship (its first HL7 child that is an act). */
export const ACT_NAMES = new Set([
  'observation', 'observationMedia', 'regionOfInterest', 'substanceAdministration', 'supply', 'procedure',
  'encounter', 'organizer', 'act',
]);

export function statementOf(container: XElement): XElement | undefined {
  return elements(container).find((e) => ACT_NAMES.has(e.name) && (e.ns === HL7_NS || e.ns === ''));
}

/** A human name for a statement, for reports: `observation (moodCode INT)`. */
export function describe(el: XElement): string {
  const m = attr(el, 'moodCode');
  const code = attr(child(el, 'code'), 'code');
  return `${el.name}${code ? ` ${code}` : ''}${m && m !== 'EVN' ? ` (moodCode ${m})` : ''}`;
}

/**
 * The relatedSubject a statement is about, when it is not the patient: CDA R2 subject
 * participation on the statement, on an act it is nested in or on its section (or an enclosing
 * one), the nearest one applying (context conduction). A child health certificate states the
 * mother's weight, schooling or pregnancy this way, in the child's document.
 */
export function relatedSubjectOf(el: XElement): XElement | undefined {
  for (let cur: XElement | undefined = el; cur && cur.name !== 'structuredBody'; cur = cur.parent) {
    const related = child(child(cur, 'subject'), 'relatedSubject');
    if (related) return related;
  }
  return undefined;
}

/** Observation.focus for a statement about a relatedSubject (R4: what the observation is about when not its subject). */
export function focusOf(ctx: ConversionContext, el: XElement): Ref[] | undefined {
  const related = relatedSubjectOf(el);
  return related ? [relatedSubjectRef(ctx, related)] : undefined;
}

export function notMapped(ctx: ConversionContext, what: string, sectionCode: string | undefined, el: XElement): void {
  ctx.report.info('ENTRY_NOT_MAPPED', `${what} in section ${sectionCode ?? '(no LOINC code)'} not mapped.`, el);
}

/** templateId roots of an element (CI-SIS, IHE PCC and CCD templates). */
export function templates(el: XElement | undefined): string[] {
  return children(el, 'templateId').map((t) => attr(t, 'root')?.trim() ?? '').filter(Boolean);
}

/** Comment entryRelationship (IHE PCC Comment 1.3.6.1.4.1.19376.1.5.3.1.4.2, LOINC 48767-8) → text. */
export function commentText(ctx: ConversionContext, el: XElement): string | undefined {
  if (el.name !== 'act') return undefined;
  const isComment = templates(el).includes('1.3.6.1.4.1.19376.1.5.3.1.4.2') || attr(child(el, 'code'), 'code') === '48767-8';
  return isComment ? entryText(ctx, el) : undefined;
}

/** The dateTime of a TS element or of the low (else high) of an IVL_TS. */
export function pointInTime(ctx: ConversionContext, el: XElement | undefined): string | undefined {
  if (!el) return undefined;
  if (attr(el, 'value')) return dateTime(ctx, el);
  return dateTime(ctx, child(el, 'low')) ?? dateTime(ctx, child(el, 'center'));
}
