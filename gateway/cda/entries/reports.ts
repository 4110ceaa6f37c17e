/**
 * A results act → FHIR R4 DiagnosticReport (diagnosticreport.html), beside the Observations it
 * holds. In a CR-BIO the act (IHE PaLM Laboratory Report Data Processing Entry
 * 1.3.6.1.4.1.19376.1.3.1, CI-SIS FR-Resultats-examens-de-biologie-medicale 1.2.250.1.213.1.1.3.21)
 * is one chapter of the report (its code that of the section: 18725-2 Microbiologie…), as the ANS
 * FR Document Core FHIR guide models it with one DiagnosticReport per biology chapter:
 *
 *   act id / code (else the section's LOINC) / statusCode → identifier / code / status
 *   its batteries and results (the top-level Observations) → result
 *   its specimen collections                                → specimen
 *   its comments (FR-Commentaire-ER: "Traitement immédiat") → conclusion (R4 has no note)
 *   performer PRF (FR-Laboratoire-executant: the laboratory that did the analyses, a
 *     subcontractor as the case may be)                    → performer (its person's role there)
 *   participant AUTHEN (FR-Participant: the biologist who validated) → resultsInterpreter, and its
 *     time (the validation) → issued, when it is a full instant
 *   the one specimen's collection time                      → effectiveDateTime (the clinically
 *     relevant time of a lab report)
 *   without specimens of its own, what the header says once for the report (see fromHeader)
 *   the header's inFulfillmentOf/order/id                   → basedOn (a logical reference)
 *
 * DiagnosticReport.code is required: without an act code or a section code it is stated absent.
 */
import type { CodeableConcept, DiagnosticReport } from '@medplum/fhirtypes';
import type { ConversionContext, Ref } from '../context.js';
import { identifier } from '../datatypes.js';
import { LOINC } from '../terminology.js';
import { dateTime, toInstant } from '../time.js';
import { attr, child, children, pathOf, type XElement } from '../xml.js';
import { actorRef, identifiers, performers, requiredConcept, statusOf } from './common.js';
import { own } from '../../util/own.js';

const STATUS: Readonly<Record<string, DiagnosticReport['status']>> = {
  completed: 'final',
  active: 'partial',
  aborted: 'cancelled',
  cancelled: 'cancelled',
  nullified: 'entered-in-error',
};

const INTERPRETERS = ['Practitioner', 'PractitionerRole', 'Organization'] as const;

const LAB: CodeableConcept = { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v2-0074', code: 'LAB', display: 'Laboratory' }] };

export interface ReportParts {
  results: Ref[];
  specimens: Ref[];
  comments: string[];
  sectionCode: string | undefined;
  laboratory: boolean;
}

export function mapResultsReport(ctx: ConversionContext, act: XElement, parts: ReportParts): Ref {
  const codeEl = child(act, 'code');
  const section: CodeableConcept | undefined = parts.sectionCode ? { coding: [{ system: LOINC, code: parts.sectionCode }] } : undefined;
  const code = attr(codeEl, 'code') || !section ? requiredConcept(ctx, codeEl, undefined, 'Results act code', act) : section;
  const r: DiagnosticReport = { resourceType: 'DiagnosticReport', status: own(STATUS, statusOf(act)) ?? 'unknown', code };
  const ids = identifiers(ctx, act);
  if (ids.length) r.identifier = ids;
  if (parts.laboratory) r.category = [LAB];
  if (ctx.patient) r.subject = ctx.patient;
  if (ctx.encounter) r.encounter = ctx.encounter;
  const [specimen, ...others] = parts.specimens.map((ref) => ctx.resolve(ref));
  const collected = specimen?.resourceType === 'Specimen' && !others.length ? specimen.collection?.collectedDateTime : undefined;
  if (collected) r.effectiveDateTime = collected;
  const validator = children(act, 'participant').find((p) => attr(p, 'typeCode') === 'AUTHEN');
  // FR-Participant writes the validation time as the interval's high bound.
  const validated = intervalTime(ctx, child(validator, 'time'));
  const issued = validated && toInstant(validated);
  if (issued) r.issued = issued;
  const executing = performers(ctx, act, INTERPRETERS);
  if (executing.length) r.performer = executing;
  const interpreter = actorRef(ctx, child(validator, 'participantRole'), INTERPRETERS);
  if (interpreter) r.resultsInterpreter = [interpreter];
  if (parts.specimens.length) r.specimen = parts.specimens;
  else fromHeader(ctx, r);
  // The lab order the report fulfils (inFulfillmentOf/order/id, the prescription's number at the
  // laboratory): a logical reference, the ServiceRequest itself not being in the document.
  const orders = children(ctx.document, 'inFulfillmentOf').flatMap((f) => children(child(f, 'order'), 'id')).map((id) => identifier(ctx, id)).filter((i) => i !== undefined);
  if (orders.length) r.basedOn = orders.map((i) => ({ type: 'ServiceRequest', identifier: i }));
  r.result = parts.results;
  if (parts.comments.length) r.conclusion = parts.comments.join('\n');
  return ctx.add(r, pathOf(act));
}

/**
 * What a CR-BIO states once in its header for acts that do not repeat it (no specimen of their
 * own): the sampling time (header participant PRF, functionCode PRELV) → effectiveDateTime; the
 * chapter's executing laboratory (documentationOf/serviceEvent of the chapter's code, its
 * performer) → performer; the validation (legalAuthenticator/time) → issued.
 */
function fromHeader(ctx: ConversionContext, r: DiagnosticReport): void {
  const doc = ctx.document;
  const sampler = children(doc, 'participant').find((p) => attr(p, 'typeCode') === 'PRF' && attr(child(p, 'functionCode'), 'code') === 'PRELV');
  const sampled = intervalTime(ctx, child(sampler, 'time'));
  if (sampled && !r.effectiveDateTime) r.effectiveDateTime = sampled;
  const chapter = r.code.coding?.find((c) => c.system === LOINC)?.code;
  const event = children(doc, 'documentationOf').map((d) => child(d, 'serviceEvent')).find((e) => chapter && attr(child(e, 'code'), 'code') === chapter);
  const laboratory = event ? performers(ctx, event, INTERPRETERS) : [];
  if (laboratory.length && !r.performer) r.performer = laboratory;
  const validated = dateTime(ctx, child(child(doc, 'legalAuthenticator'), 'time'));
  const issued = validated && toInstant(validated);
  if (issued && !r.issued) r.issued = issued;
}

/** A participation time written as a value or as an interval (FR-Participant: its high bound). */
function intervalTime(ctx: ConversionContext, time: XElement | undefined): string | undefined {
  return dateTime(ctx, time) ?? dateTime(ctx, child(time, 'high')) ?? dateTime(ctx, child(time, 'low'));
}
