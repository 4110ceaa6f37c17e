/**
 * Specimen collection in a laboratory report → FHIR R4 Specimen (IHE PaLM / XD-LAB Specimen
 * Collection 1.3.6.1.4.1.19376.1.3.1.2, CI-SIS FR-Prelevement 1.2.250.1.213.1.1.3.77): a procedure
 * beside the batteries of a CR-BIO results act.
 *
 * Specimen.type from participant[PRD]/participantRole[SPEC]/playingEntity/code (JDV_HL7_SpecimenType-CISIS),
 * identifier from participantRole/id, collection.collected[x] from effectiveTime (a value; else
 * low and high as a period; else the one bound given, as the ANS examples write the collection
 * time in `high`), collection.bodySite from targetSiteCode, receivedTime from the Specimen
 * Received act (1.3.6.1.4.1.19376.1.3.1.3, CI-SIS FR-Echantillon-date-reception). The procedure's
 * code (the NABM act ordered) has no place in R4 Specimen and stays in the narrative.
 */
import type { Specimen } from '@medplum/fhirtypes';
import type { ConversionContext, Ref } from '../context.js';
import { concept } from '../datatypes.js';
import { dateTime } from '../time.js';
import { attr, child, children, pathOf, type XElement } from '../xml.js';
import { identifiers, statementOf, templates } from './common.js';

const COLLECTION_TEMPLATES = ['1.3.6.1.4.1.19376.1.3.1.2', '1.2.250.1.213.1.1.3.77'];
const RECEIVED_TEMPLATES = ['1.3.6.1.4.1.19376.1.3.1.3', '1.2.250.1.213.1.1.3.107'];

export function isSpecimenCollection(st: XElement): boolean {
  return st.name === 'procedure' && templates(st).some((t) => COLLECTION_TEMPLATES.includes(t));
}

export function mapSpecimen(ctx: ConversionContext, procedure: XElement): Ref {
  const s: Specimen = { resourceType: 'Specimen' };
  if (ctx.patient) s.subject = ctx.patient;
  const role = children(procedure, 'participant')
    .filter((p) => (attr(p, 'typeCode') ?? 'PRD') === 'PRD')
    .map((p) => child(p, 'participantRole'))
    .find((r) => r !== undefined);
  if (role) {
    const ids = identifiers(ctx, role);
    if (ids.length) s.identifier = ids;
    const type = concept(ctx, child(child(role, 'playingEntity'), 'code'));
    if (type) s.type = type;
  }
  const collection: NonNullable<Specimen['collection']> = {};
  const et = child(procedure, 'effectiveTime');
  const at = dateTime(ctx, et);
  const low = dateTime(ctx, child(et, 'low'));
  const high = dateTime(ctx, child(et, 'high'));
  if (at) collection.collectedDateTime = at;
  else if (low && high) collection.collectedPeriod = { start: low, end: high };
  else if (low ?? high) collection.collectedDateTime = low ?? high;
  const site = concept(ctx, child(procedure, 'targetSiteCode'));
  if (site) collection.bodySite = site;
  if (Object.keys(collection).length) s.collection = collection;
  for (const rel of children(procedure, 'entryRelationship')) {
    const st = statementOf(rel);
    if (st?.name === 'act' && templates(st).some((t) => RECEIVED_TEMPLATES.includes(t))) {
      const received = dateTime(ctx, child(st, 'effectiveTime'));
      if (received) s.receivedTime = received;
    }
  }
  return ctx.add(s, pathOf(procedure));
}
