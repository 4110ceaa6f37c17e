/**
 * FR-Transfert-du-patient (CI-SIS 1.2.250.1.213.1.1.3.28 = IHE PCC Patient Transfer
 * 1.3.6.1.4.1.19376.1.5.3.1.1.25.1.4.1, LOINC 80413-8), as the DLU writes it: the patient leaves
 * the establishment of the document's encounter for the one of the participant DST. That
 * establishment becomes a Location, set as the document Encounter's hospitalization.destination
 * (R4: "Location/organization to which the patient is discharged"). The transfer's own times stay
 * in the narrative: R4 Encounter has no field for them short of a second Encounter, whose class
 * the CDA does not give. Without a document Encounter or a destination, the act is reported.
 *
 * FR-Disposition (CI-SIS 1.2.250.1.213.1.1.3.97 = IHE PCC Encounter Disposition
 * 1.3.6.1.4.1.19376.1.5.3.1.1.10.4.2), in the DLU's section 11302-7 "Etablissement de santé de
 * préférence": an intent (moodCode INT), the establishment the resident would be taken to. Its
 * participant (DST, else RCV, else ORG) becomes the same kind of Location, listed in the section
 * whose code says what it is; it is no encounter's destination, since nothing happened yet.
 *
 * The establishment's identifier is its participantRole/id; the ANS DLU example also writes the
 * FINESS number of the destination in the participant's templateId (root 1.2.250.1.71.4.2.2, the
 * FINESS OID, with an extension): read as an identifier too, since it is the establishment's key.
 */
import type { Location } from '@medplum/fhirtypes';
import { organizationIdentifiers } from '../actors.js';
import type { ConversionContext, Ref } from '../context.js';
import { address, concept, contactPoint } from '../datatypes.js';
import { attr, child, children, pathOf, text, type XElement } from '../xml.js';
import { describe, notMapped, templates } from './common.js';

const TRANSFER_TEMPLATES = ['1.2.250.1.213.1.1.3.28', '1.3.6.1.4.1.19376.1.5.3.1.1.25.1.4.1'];
const DISPOSITION_TEMPLATES = ['1.2.250.1.213.1.1.3.97', '1.3.6.1.4.1.19376.1.5.3.1.1.10.4.2'];
const FINESS_OID = '1.2.250.1.71.4.2.2';

export function isPatientTransfer(st: XElement): boolean {
  return st.name === 'act' && (templates(st).some((t) => TRANSFER_TEMPLATES.includes(t)) || attr(child(st, 'code'), 'code') === '80413-8');
}

export function isDisposition(st: XElement): boolean {
  return st.name === 'act' && templates(st).some((t) => DISPOSITION_TEMPLATES.includes(t));
}

export function mapDisposition(ctx: ConversionContext, act: XElement, sectionCode: string | undefined): Ref[] {
  const participants = children(act, 'participant').filter((p) => child(p, 'participantRole'));
  const participant = ['DST', 'RCV', 'ORG'].map((type) => participants.find((p) => attr(p, 'typeCode') === type)).find((p) => p !== undefined);
  const loc = participant && establishment(ctx, participant);
  if (!loc) {
    notMapped(ctx, `${describe(act)} (disposition) without an establishment named by identifier, name or address`, sectionCode, act);
    return [];
  }
  return [ctx.add(loc, pathOf(act))];
}

export function mapPatientTransfer(ctx: ConversionContext, act: XElement, sectionCode: string | undefined): Ref[] {
  const participant = children(act, 'participant').find((p) => attr(p, 'typeCode') === 'DST' && child(p, 'participantRole'));
  const role = child(participant, 'participantRole');
  const encounter = ctx.resolve(ctx.encounter);
  if (!participant || !role || encounter?.resourceType !== 'Encounter') {
    notMapped(ctx, `${describe(act)} (patient transfer) without ${role ? 'a document encounter' : 'a destination'}`, sectionCode, act);
    return [];
  }
  const loc = establishment(ctx, participant);
  if (!loc) {
    notMapped(ctx, `${describe(act)} (patient transfer) whose destination has no identifier, name or address`, sectionCode, act);
    return [];
  }
  // The kind of unit the patient goes to (CI-SIS: a translation of the act code, from
  // JDV_TypeService: "unité de soins intensifs néonatals") is a type of the destination too.
  for (const t of children(child(act, 'code'), 'translation')) {
    const unit = concept(ctx, t);
    if (unit) (loc.type ??= []).push(unit);
  }
  const ref = ctx.add(loc, pathOf(act));
  encounter.hospitalization = { ...encounter.hospitalization, destination: ref };
  return [ref];
}

/** The establishment a participant's role names, as a Location; undefined without identifier, name or address. */
function establishment(ctx: ConversionContext, participant: XElement): Location | undefined {
  const role = child(participant, 'participantRole');
  const loc: Location = { resourceType: 'Location' };
  // As an organisation's: an IDNST (1 + FINESS…) also gives the plain FINESS number.
  const ids = organizationIdentifiers(ctx, [
    ...children(role, 'id'),
    ...children(participant, 'templateId').filter((t) => attr(t, 'root') === FINESS_OID && attr(t, 'extension')),
  ]);
  if (ids.length) loc.identifier = ids;
  const name = text(child(child(role, 'playingEntity'), 'name'));
  if (name) loc.name = name;
  const type = concept(ctx, child(role, 'code'));
  if (type) loc.type = [type];
  const addr = address(child(role, 'addr'));
  if (addr) loc.address = addr;
  const telecom = children(role, 'telecom').map(contactPoint).filter((c) => c !== undefined);
  if (telecom.length) loc.telecom = telecom;
  return ids.length || name || addr ? loc : undefined;
}
