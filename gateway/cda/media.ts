/**
 * Embedded media: observationMedia → Binary (linked from the narrative's renderMultiMedia), the
 * level-1 nonXMLBody → Binary + DocumentReference + one Composition section (IHE XDS-SD,
 * CI-SIS "document non structuré"), and the source CDA itself → Binary + Provenance (role source).
 *
 * A payload that claims to be a PDF must start with the `%PDF-` magic.
 */
import type { Binary, Composition, CompositionSection, DocumentReference, Provenance } from '@medplum/fhirtypes';
import { PasserelleError } from '../errors.js';
import type { ConversionContext, Ref } from './context.js';
import { concept } from './datatypes.js';
import { escapeAttr, escapeText } from './narrative.js';
import { isPdf, readPayload } from './payload.js';
import { attr, child, pathOf, text, type XElement } from './xml.js';

/** Turns every observationMedia of the body into a Binary, indexed by its ID for renderMultiMedia. */
export function mapObservationMedia(ctx: ConversionContext, body: XElement): void {
  const stack: XElement[] = [body];
  while (stack.length) {
    const el = stack.pop() as XElement;
    if (el.name === 'observationMedia') {
      mapOneMedia(ctx, el);
      continue;
    }
    for (let i = el.children.length - 1; i >= 0; i--) {
      const c = el.children[i];
      if (c !== undefined && typeof c !== 'string') stack.push(c);
    }
  }
}

function mapOneMedia(ctx: ConversionContext, media: XElement): void {
  const value = child(media, 'value');
  if (!value) return;
  const payload = readPayload(value);
  if (!payload) {
    ctx.report.warn('MEDIA_TYPE_MISMATCH', 'observationMedia value is not valid base64; left out.', media);
    return;
  }
  if (payload.contentType === 'application/pdf' && !isPdf(payload.data)) {
    ctx.report.warn('MEDIA_TYPE_MISMATCH', 'observationMedia claims application/pdf but has no %PDF magic.', media);
  }
  const binary: Binary = { resourceType: 'Binary', contentType: payload.contentType, data: payload.data };
  const ref = ctx.add(binary, pathOf(media));
  const id = attr(media, 'ID');
  const title = text(child(media, 'text')) ?? text(child(value, 'reference'));
  if (id && ref.reference) ctx.media.set(id, { url: ref.reference, ...(title ? { title } : {}) });
}

/**
 * nonXMLBody → Binary + DocumentReference, and the Composition section that points to them. The
 * DocumentReference is the document itself: it carries the Composition's authors, custodian and
 * encounter, so that a reader of it alone knows whose it is.
 */
export function mapNonXmlBody(ctx: ConversionContext, doc: XElement, body: XElement, date: string, composition: Composition): CompositionSection {
  const value = child(body, 'text');
  if (!value) throw new PasserelleError('CDA_BODY_MISSING', 'nonXMLBody has no text element.', pathOf(body));
  const title = text(child(doc, 'title')) ?? 'Document';
  const docRef: DocumentReference = {
    resourceType: 'DocumentReference',
    status: 'current',
    subject: ctx.patient,
    date,
    content: [],
  };
  const type = concept(ctx, child(doc, 'code'));
  if (type) docRef.type = type;
  if (composition.author.length) docRef.author = composition.author;
  if (composition.custodian) docRef.custodian = composition.custodian;
  if (ctx.encounter) docRef.context = { encounter: [ctx.encounter] };
  const external = attr(child(value, 'reference'), 'value');
  let url: string;
  let contentType = attr(value, 'mediaType')?.trim() || 'text/plain';
  if (external && !value.children.some((c) => typeof c === 'string' && c.trim())) {
    ctx.report.warn('BODY_REFERENCE_EXTERNAL', 'nonXMLBody references an external document.', value);
    url = external;
  } else {
    const payload = readPayload(value);
    if (!payload) throw new PasserelleError('CDA_EMBEDDED_DOCUMENT_INVALID', 'nonXMLBody is not valid base64.', pathOf(value));
    if (payload.contentType === 'application/pdf' && !isPdf(payload.data)) {
      throw new PasserelleError('CDA_EMBEDDED_DOCUMENT_INVALID', 'nonXMLBody claims application/pdf but has no %PDF magic.', pathOf(value));
    }
    contentType = payload.contentType;
    const binary = ctx.add({ resourceType: 'Binary', contentType, data: payload.data }, pathOf(value));
    url = binary.reference ?? '';
  }
  docRef.content = [{ attachment: { contentType, url, title } }];
  const ref = ctx.add(docRef, pathOf(body));
  return {
    title,
    ...(type ? { code: type } : {}),
    text: {
      status: 'generated',
      div: `<div xmlns="http://www.w3.org/1999/xhtml"><p>Document joint (${escapeText(contentType)}) : <a href="${escapeAttr(url)}">${escapeText(title)}</a></p></div>`,
    },
    entry: [ref],
  };
}

/** The source CDA kept as a Binary, with a Provenance naming it as the source of the Composition. */
export function mapSource(ctx: ConversionContext, bytes: Uint8Array, composition: Ref, recorded: string): void {
  // A Buffer view of the bytes, not a copy (Buffer.from(bytes) would copy the whole document).
  const data = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64');
  const binary = ctx.add({ resourceType: 'Binary', contentType: 'application/hl7-cda+xml', data }, 'source');
  const converter = ctx.add({
    resourceType: 'Device',
    deviceName: [{ name: 'passerelle CDA → FHIR converter', type: 'user-friendly-name' }],
  }, 'converter');
  const provenance: Provenance = {
    resourceType: 'Provenance',
    target: [composition],
    recorded,
    activity: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/iso-21089-lifecycle', code: 'transform', display: 'Transform/Translate Record Lifecycle Event' }] },
    agent: [{
      type: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/provenance-participant-type', code: 'assembler' }] },
      who: converter,
    }],
    entity: [{ role: 'source', what: binary }],
  };
  ctx.add(provenance, 'provenance');
}
