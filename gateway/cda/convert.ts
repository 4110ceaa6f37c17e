/**
 * CDA R2 → FHIR R4 document Bundle: a pure function of the bytes. Throws a PasserelleError (with
 * its catalogue code) for a document that cannot become a Bundle; everything else noteworthy goes
 * into the report. The Bundle follows FHIR R4 "Documents" (§3.3): type document, identifier,
 * timestamp, Composition first, `urn:uuid:` fullUrls; it is schema-checked before it is returned.
 */
import { createHash } from 'node:crypto';
import type { Bundle, BundleEntry, Composition, OperationOutcome, Resource } from '@medplum/fhirtypes';
import { PasserelleError } from '../errors.js';
import { validateBundle } from '../fhir/validate.js';
import { mapStructuredBody } from './body.js';
import { ConversionContext } from './context.js';
import { identifier, idKey } from './datatypes.js';
import { mapHeader } from './header.js';
import { mapNonXmlBody, mapObservationMedia, mapSource } from './media.js';
import { mapPatient, patientSalt } from './patient.js';
import { instant, zoneOf } from './time.js';
import { at, attr, child, findFirst, HL7_NS, parseXml, pathOf, DEFAULT_XML_LIMITS, type XElement, type XmlLimits } from './xml.js';

export interface ConvertOptions {
  limits?: Partial<XmlLimits>;
  /** Check the Bundle against the FHIR R4 JSON Schema before returning it (default true). */
  validate?: boolean;
}

export interface ConversionResult {
  bundle: Bundle;
  report: OperationOutcome;
}

export function convertCda(bytes: Uint8Array, options: ConvertOptions = {}): ConversionResult {
  const root = parseXml(bytes, { ...DEFAULT_XML_LIMITS, ...options.limits });
  const doc = findClinicalDocument(root);
  const patientRole = at(doc, 'recordTarget', 'patientRole');
  if (!patientRole) throw new PasserelleError('CDA_PATIENT_MISSING', undefined, '/ClinicalDocument/recordTarget');

  const idEl = child(doc, 'id');
  const documentKey = idKey(idEl) ?? `sha256|${createHash('sha256').update(bytes).digest('hex')}`;
  const ctx = new ConversionContext(documentKey, patientSalt(patientRole), doc);
  if (doc !== root) ctx.report.info('CDA_WRAPPED', `ClinicalDocument found inside <${root.name}>.`, pathOf(doc));
  if (doc.ns !== HL7_NS) ctx.report.warn('CDA_NO_NAMESPACE', 'ClinicalDocument has no urn:hl7-org:v3 namespace.', pathOf(doc));
  // bdl-9: a document Bundle has an identifier with both system and value.
  let bundleIdentifier = identifier(ctx, idEl);
  if (!bundleIdentifier?.system || !bundleIdentifier.value) {
    ctx.report.warn('CDA_ID_MISSING', 'ClinicalDocument/id is missing or has no root; identifier derived from the bytes.', pathOf(doc));
    bundleIdentifier = { system: 'urn:ietf:rfc:3986', value: `urn:uuid:${ctx.uuid('document-id')}` };
  }
  ctx.documentZone = zoneOf(attr(child(doc, 'effectiveTime'), 'value'));

  const { ref: patientRef, patient } = mapPatient(ctx, patientRole);
  const component = child(doc, 'component');
  const structured = child(component, 'structuredBody');
  const nonXml = child(component, 'nonXMLBody');
  if (!structured && !nonXml) throw new PasserelleError('CDA_BODY_MISSING', undefined, '/ClinicalDocument/component');
  if (structured) mapObservationMedia(ctx, structured);

  const { composition, ref: compositionRef } = mapHeader(ctx, doc, patient);
  const timestamp = instant(ctx, child(doc, 'effectiveTime'));
  if (!timestamp) throw new PasserelleError('CDA_VALUE_INVALID', 'ClinicalDocument/effectiveTime is not precise enough for Bundle.timestamp.', '/ClinicalDocument/effectiveTime');
  const sections = structured ? mapStructuredBody(ctx, structured) : [mapNonXmlBody(ctx, doc, nonXml as XElement, timestamp, composition)];
  if (sections.length) composition.section = sections;
  mapSource(ctx, bytes, compositionRef, timestamp);

  const bundle = assemble(ctx, bundleIdentifier, timestamp, composition, patientRef.reference as string);
  if (options.validate !== false) {
    const issues = validateBundle(bundle);
    if (issues.length) {
      const first = issues.slice(0, 5).map((i) => `${i.path}: ${i.message}`).join('; ');
      throw new PasserelleError('FHIR_OUTPUT_INVALID', `Bundle fails the FHIR R4 schema: ${first}`);
    }
  }
  return { bundle, report: ctx.report.toOperationOutcome() };
}

/** The ClinicalDocument, at the root or wrapped in another document (e.g. an XSLT stylesheet). */
function findClinicalDocument(root: XElement): XElement {
  if (root.name === 'ClinicalDocument' && (root.ns === HL7_NS || root.ns === '')) return root;
  const found = findFirst(root, 'ClinicalDocument', HL7_NS);
  if (found) return found;
  throw new PasserelleError('CDA_NOT_A_CLINICAL_DOCUMENT', `The root element is <${root.name}> and no HL7 ClinicalDocument is inside.`);
}

/** Composition first, Patient second, then every other resource in the order it was emitted. */
function assemble(ctx: ConversionContext, identifier: NonNullable<Bundle['identifier']>, timestamp: string, composition: Composition, patientUrl: string): Bundle {
  const first = ctx.emitted.filter((e) => e.resource === composition);
  const second = ctx.emitted.filter((e) => e.fullUrl === patientUrl);
  const rest = ctx.emitted.filter((e) => e.resource !== composition && e.fullUrl !== patientUrl);
  const entry: BundleEntry[] = [...first, ...second, ...rest].map((e) => ({ fullUrl: e.fullUrl, resource: ordered(e.resource) }));
  return {
    resourceType: 'Bundle',
    id: ctx.uuid('Bundle'),
    identifier,
    type: 'document',
    timestamp,
    entry,
  };
}

/** resourceType, id, meta, extension first: the JSON reads like FHIR examples. */
function ordered(resource: Resource): Resource {
  const { resourceType, id, meta, extension, ...rest } = resource as Resource & { extension?: unknown };
  return { resourceType, id, ...(meta ? { meta } : {}), ...(extension ? { extension } : {}), ...rest } as Resource;
}
