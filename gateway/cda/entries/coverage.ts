/**
 * Social coverage → FHIR R4 Coverage (coverage.html). The CDA writes it as a Coverage Entry (IHE
 * PCC 1.3.6.1.4.1.19376.1.5.3.1.4.17, CCD 2.16.840.1.113883.10.20.1.20, CI-SIS
 * FR-Couverture-sociale 1.2.250.1.213.1.1.3.61; section 48768-6 "Couvertures sociales"), an act in
 * the definition mood holding one Payer Entry per insurer (IHE PCC 1.3.6.1.4.1.19376.1.5.3.1.4.18,
 * CI-SIS FR-Organisme-assurance-maladie 1.2.250.1.213.1.1.3.94) — each becomes one Coverage:
 *
 *   payer act id / code (JDV_CouvertureSociale_CISIS: PUMa, CSS…) → identifier / type
 *   performer/assignedEntity (the insurer)                       → payor (Organization)
 *   participant HLD (the insured person: subscriber)               → subscriber (RelatedPerson),
 *                                                                    subscriberId (its id's extension)
 *   the document's patient                                         → beneficiary
 *
 * Coverage.status is required and the CDA has no such state: a coverage the document lists for
 * its patient is taken as `active`. A payer act naming no insurer cannot fill the required payor
 * and is reported.
 */
import type { Coverage } from '@medplum/fhirtypes';
import { fillMissing, organizationRef, relatedPersonRef } from '../actors.js';
import type { ConversionContext, Ref } from '../context.js';
import { concept } from '../datatypes.js';
import { attr, child, children, pathOf, type XElement } from '../xml.js';
import { describe, identifiers, notMapped, statementOf, templates } from './common.js';

const COVERAGE_TEMPLATES = ['1.3.6.1.4.1.19376.1.5.3.1.4.17', '2.16.840.1.113883.10.20.1.20', '1.2.250.1.213.1.1.3.61'];
const PAYERS_SECTION = '48768-6';

export function isCoverage(st: XElement, sectionCode: string | undefined): boolean {
  return st.name === 'act' && (sectionCode === PAYERS_SECTION || templates(st).some((t) => COVERAGE_TEMPLATES.includes(t)));
}

export function mapCoverage(ctx: ConversionContext, act: XElement, sectionCode: string | undefined): Ref[] {
  const payers = children(act, 'entryRelationship').map(statementOf).filter((st) => st?.name === 'act') as XElement[];
  const refs: Ref[] = [];
  for (const payer of payers) {
    const ref = mapPayer(ctx, payer);
    if (ref) refs.push(ref);
    else notMapped(ctx, `${describe(payer)} (social coverage) naming no insurer`, sectionCode, payer);
  }
  if (!payers.length) notMapped(ctx, `${describe(act)} (social coverage) without a payer entry`, sectionCode, act);
  return refs;
}

function mapPayer(ctx: ConversionContext, payer: XElement): Ref | undefined {
  const assigned = child(child(payer, 'performer'), 'assignedEntity');
  // The insurer is the represented organisation; an entity written without one stands for itself.
  const payor = organizationRef(ctx, child(assigned, 'representedOrganization')) ?? organizationRef(ctx, assigned);
  if (!payor || !ctx.patient) return undefined;
  // CI-SIS examples write the insurer's address and phone on the entity, not the organisation.
  const insurer = ctx.resolve(payor);
  if (insurer?.resourceType === 'Organization') fillMissing(insurer, assigned);
  const c: Coverage = { resourceType: 'Coverage', status: 'active', beneficiary: ctx.patient, payor: [payor] };
  const ids = identifiers(ctx, payer);
  if (ids.length) c.identifier = ids;
  const type = concept(ctx, child(payer, 'code'));
  if (type) c.type = type;
  const holder = children(payer, 'participant').find((p) => attr(p, 'typeCode') === 'HLD');
  const role = child(holder, 'participantRole');
  if (role) {
    const subscriber = relatedPersonRef(ctx, role, child(role, 'playingEntity'), []);
    if (subscriber) c.subscriber = subscriber;
    const subscriberId = attr(child(role, 'id'), 'extension')?.trim();
    if (subscriberId) c.subscriberId = subscriberId;
  }
  return ctx.add(c, pathOf(payer));
}
