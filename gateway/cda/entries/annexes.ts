/**
 * Annexed documents → FHIR R4 DocumentReference (sections 55107-7 "Documents ajoutés" and 55108-5
 * "Copie du document"; CI-SIS FR-Document-attache 1.2.250.1.213.1.1.3.18: an organizer coded
 * 55107-7 whose components are FR-Type-document-attache (observation 69764-9, value = the kind of
 * document) and an observationMedia carrying the document, base64).
 *
 * Every observationMedia of such an entry, and every observation value of type ED in base64,
 * becomes a DocumentReference: status current, subject the patient, content.attachment with the
 * declared media type and the data (whitespace stripped: published documents wrap base64 lines).
 * A payload declared application/pdf must start with `%PDF-` once decoded (reported otherwise);
 * a payload that is not base64 at all cannot be an Attachment.data and is left out, reported.
 */
import type { Attachment, CodeableConcept, DocumentReference } from '@medplum/fhirtypes';
import type { ConversionContext, Ref } from '../context.js';
import { concept } from '../datatypes.js';
import { decodedSize, isPdf, readPayload } from '../payload.js';
import { attr, child, elements, pathOf, type XElement } from '../xml.js';
import { describe, entryText, identifiers, notMapped, xsiType } from './common.js';

const DOCUMENT_TYPE = '69764-9';
export const ATTACHED_DOCUMENT = '55107-7';

/** The embedded documents of an entry: observationMedia elements and ED observation values (B64). */
function payloads(st: XElement): { holder: XElement; value: XElement }[] {
  const out: { holder: XElement; value: XElement }[] = [];
  const stack: XElement[] = [st];
  while (stack.length) {
    const el = stack.pop() as XElement;
    if (el.name === 'observationMedia') {
      const value = child(el, 'value');
      if (value) out.push({ holder: el, value });
      continue;
    }
    if (el.name === 'observation') {
      const value = child(el, 'value');
      if (value && xsiType(value) === 'ED' && attr(value, 'representation') === 'B64') out.push({ holder: el, value });
    }
    if (el.name === 'section' || el.name === 'text') continue;
    const kids = elements(el);
    for (let i = kids.length - 1; i >= 0; i--) stack.push(kids[i] as XElement);
  }
  return out;
}

/** The kind of document: the value of the FR-Type-document-attache observation (LOINC 69764-9). */
function documentType(ctx: ConversionContext, st: XElement): { type?: CodeableConcept; title?: string } {
  const stack: XElement[] = [st];
  while (stack.length) {
    const el = stack.pop() as XElement;
    if (el.name === 'observation' && attr(child(el, 'code'), 'code') === DOCUMENT_TYPE) {
      const type = concept(ctx, child(el, 'value'));
      const title = entryText(ctx, el) ?? type?.text ?? type?.coding?.find((c) => c.display)?.display;
      return { ...(type ? { type } : {}), ...(title ? { title } : {}) };
    }
    stack.push(...elements(el));
  }
  return {};
}

export function isAttachedDocument(st: XElement): boolean {
  return st.name === 'organizer' && attr(child(st, 'code'), 'code') === ATTACHED_DOCUMENT;
}

/** An entry of an annexes section (or an FR-Document-attache organizer anywhere) → DocumentReference(s). */
export function mapAnnexEntry(ctx: ConversionContext, st: XElement, sectionCode: string | undefined, sectionTitle: string | undefined): Ref[] {
  const found = payloads(st);
  if (!found.length) {
    notMapped(ctx, `${describe(st)} without an embedded document`, sectionCode, st);
    return [];
  }
  const kind = documentType(ctx, st);
  const out: Ref[] = [];
  for (const { holder, value } of found) {
    const payload = readPayload(value);
    if (!payload) {
      if (attr(value, 'representation') === 'B64' && attr(value, 'nullFlavor') === undefined) {
        const declared = attr(value, 'mediaType')?.trim() || 'text/plain';
        ctx.report.warn('MEDIA_TYPE_MISMATCH', `Embedded document (${declared}) is not valid base64; no DocumentReference made.`, holder);
        notMapped(ctx, 'Embedded document that is not valid base64', sectionCode, holder);
      } else {
        notMapped(ctx, 'Embedded document without content', sectionCode, holder);
      }
      continue;
    }
    const { contentType, data } = payload;
    if (contentType === 'application/pdf' && !isPdf(data)) {
      ctx.report.warn('MEDIA_TYPE_MISMATCH', 'Embedded document claims application/pdf but has no %PDF magic.', holder);
    }
    const id = attr(holder, 'ID');
    const binary = id ? ctx.media.get(id)?.url : undefined;
    // When the media module already holds these bytes as a Binary, point to it rather than carry
    // them twice (R4 Attachment: url or data); otherwise the data travels in the attachment.
    const attachment: Attachment = binary ? { contentType, url: binary, size: decodedSize(data) } : { contentType, data, size: decodedSize(data) };
    const title = entryText(ctx, holder) ?? kind.title ?? sectionTitle;
    if (title) attachment.title = title;
    const doc: DocumentReference = { resourceType: 'DocumentReference', status: 'current', content: [{ attachment }] };
    const ids = identifiers(ctx, holder);
    const own = ids.length ? ids : identifiers(ctx, st);
    if (own.length) doc.identifier = own;
    if (kind.type) doc.type = kind.type;
    if (ctx.patient) doc.subject = ctx.patient;
    if (title) doc.description = title;
    if (ctx.encounter) doc.context = { encounter: [ctx.encounter] };
    out.push(ctx.add(doc, pathOf(holder)));
  }
  return out;
}
