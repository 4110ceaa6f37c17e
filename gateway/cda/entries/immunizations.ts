/**
 * Vaccinations → FHIR R4 Immunization (section 11369-6 "Vaccinations"; CI-SIS FR-Vaccination
 * 1.2.250.1.213.1.1.3.44 = IHE PCC Immunizations 1.3.6.1.4.1.19376.1.5.3.1.4.12, a
 * substanceAdministration whose consumable is the vaccine).
 *
 * R4: status 1..1 (completed | entered-in-error | not-done), vaccineCode 1..1, occurrence[x] 1..1.
 * Immunization.status has no "unknown": when the CDA gives no status, the primitive carries the
 * data-absent-reason extension (`_status`), as it does for a missing occurrence
 * (`_occurrenceDateTime`) — JSON form of a primitive with extensions only (R4 json.html §2.6.2).
 */
import type { Element, Immunization, ImmunizationPerformer, ImmunizationReaction } from '@medplum/fhirtypes';
import { organizationRef } from '../actors.js';
import type { ConversionContext, Ref } from '../context.js';
import { concept } from '../datatypes.js';
import { attr, child, children, pathOf, text, type XElement } from '../xml.js';
import {
  absent, author, commentText, describe, identifiers, isNegated, mood, notMapped, performers, pointInTime, statementOf, statusOf,
} from './common.js';
import { finiteQuantity, mapObservation } from './observations.js';
import { productConcept, productOf } from './medications.js';
import { own } from '../../util/own.js';

/** An Immunization whose status or occurrence may be stated absent (JSON `_element`). */
type ImmunizationOut = Omit<Immunization, 'status'> & {
  status?: Immunization['status'];
  _status?: Element;
  _occurrenceDateTime?: Element;
};

const STATUS: Readonly<Record<string, Immunization['status']>> = {
  completed: 'completed',
  nullified: 'entered-in-error',
  aborted: 'not-done',
  cancelled: 'not-done',
};

const DOSE_NUMBER = '30973-2';
const PERFORMER_TYPES = ['Practitioner', 'PractitionerRole', 'Organization'] as const;

export function mapImmunization(ctx: ConversionContext, sa: XElement, sectionCode: string | undefined): Ref[] {
  if (mood(sa) !== 'EVN') {
    // A planned vaccination is an ImmunizationRecommendation, which this converter does not emit.
    notMapped(ctx, `Planned ${describe(sa)}`, sectionCode, sa);
    return [];
  }
  const im: ImmunizationOut = {
    resourceType: 'Immunization',
    vaccineCode: productConcept(ctx, sa, 'Vaccine (manufacturedMaterial code and name)'),
    patient: ctx.patient ?? {},
  };
  const code = statusOf(sa);
  const status = isNegated(sa) ? 'not-done' : own(STATUS, code);
  if (status) {
    im.status = status;
  } else {
    im._status = absent();
    ctx.report.warn('ENTRY_INCOMPLETE', `${code ? `statusCode "${code}"` : 'No statusCode'}: Immunization.status stated absent.`, sa);
  }
  const ids = identifiers(ctx, sa);
  if (ids.length) im.identifier = ids;
  if (ctx.encounter) im.encounter = ctx.encounter;
  const et = children(sa, 'effectiveTime')[0];
  const occurrence = pointInTime(ctx, et);
  if (occurrence) {
    im.occurrenceDateTime = occurrence;
  } else {
    const nf = attr(et, 'nullFlavor');
    im._occurrenceDateTime = absent(nf);
    if (nf) ctx.report.info('VALUE_NULL_FLAVOR', `Vaccination date has nullFlavor ${nf}; stated as data-absent-reason.`, et ?? sa);
    else ctx.report.warn('ENTRY_INCOMPLETE', 'No vaccination date: Immunization.occurrence stated absent.', et ?? sa);
  }
  const by = author(ctx, sa, []);
  if (by.time) im.recorded = by.time;
  const material = productOf(sa);
  const lot = text(child(material, 'lotNumberText'));
  if (lot) im.lotNumber = lot;
  const manufacturer = organizationRef(ctx, child(child(child(sa, 'consumable'), 'manufacturedProduct'), 'manufacturerOrganization'));
  if (manufacturer) im.manufacturer = manufacturer;
  const site = concept(ctx, child(sa, 'approachSiteCode'));
  if (site) im.site = site;
  const route = concept(ctx, child(sa, 'routeCode'));
  if (route) im.route = route;
  const dose = finiteQuantity(child(sa, 'doseQuantity'));
  if (dose) im.doseQuantity = dose;
  const who: ImmunizationPerformer[] = performers(ctx, sa, PERFORMER_TYPES).map((actor) => ({ actor }));
  if (who.length) im.performer = who;

  // Cast: the R4 JSON allows `_status` in place of `status`; the TypeScript type does not.
  const ref = ctx.add(im as Immunization, pathOf(sa));
  const out: Ref[] = [ref];
  for (const rel of children(sa, 'entryRelationship')) {
    const st = statementOf(rel);
    if (!st) continue;
    const note = commentText(ctx, st);
    if (note) {
      (im.note ??= []).push({ text: note });
    } else if (st.name === 'observation' && attr(child(st, 'code'), 'code') === DOSE_NUMBER) {
      // Dose number (LOINC 30973-2, INT value) → protocolApplied.doseNumberPositiveInt.
      const n = Number(attr(child(st, 'value'), 'value'));
      if (Number.isInteger(n) && n > 0 && n < 2 ** 31) im.protocolApplied = [{ doseNumberPositiveInt: n }];
      else notMapped(ctx, 'Vaccine dose number that is not a positive integer', sectionCode, st);
    } else if (st.name === 'observation' && attr(rel, 'typeCode') === 'CAUS') {
      // A reaction the vaccine caused → Immunization.reaction.detail (an Observation).
      const refs = mapObservation(ctx, st, { sectionCode });
      const detail = refs[0];
      if (!detail) continue;
      const reaction: ImmunizationReaction = { detail };
      const date = pointInTime(ctx, child(st, 'effectiveTime'));
      if (date) reaction.date = date;
      (im.reaction ??= []).push(reaction);
      out.push(...refs);
    } else {
      notMapped(ctx, `${describe(st)} related to a vaccination`, sectionCode, st);
    }
  }
  return out;
}
