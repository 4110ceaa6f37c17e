/**
 * CDA header → Composition (without sections), Encounter and Location, and the actors of the
 * header (author, legal authenticator, custodian, participants, informants, recipients).
 * FHIR R4 Composition (cmp-*) and FR document core (FRCompositionDocument) rules; DOMAIN.md §4.
 */
import type {
  CodeableConcept, Composition, CompositionAttester, CompositionEvent, CompositionRelatesTo, Encounter, EncounterParticipant, Extension, Location, Meta, Patient,
} from '@medplum/fhirtypes';
import { organizationRef, practitionerRoleRef, relatedEntityRef } from './actors.js';
import type { ConversionContext, Ref } from './context.js';
import { PasserelleError } from '../errors.js';
import { address, coding, concept, identifier, isNull } from './datatypes.js';
import { ACT_CODE, DATA_ABSENT_REASON, PARTICIPATION_TYPE, PASSERELLE_FHIR } from './terminology.js';
import { dateTime, period } from './time.js';
import { at, attr, child, children, text, type XElement } from './xml.js';
import { own } from '../util/own.js';

const CONFIDENTIALITY = new Set(['U', 'L', 'M', 'N', 'R', 'V']);
const CONFIDENTIALITY_OID = '2.16.840.1.113883.5.25';
const RELATES: Readonly<Record<string, CompositionRelatesTo['code']>> = { RPLC: 'replaces', APND: 'appends', XFRM: 'transforms' };

/** Maps the header; returns the Composition (to be completed with sections) and its reference. */
export function mapHeader(ctx: ConversionContext, doc: XElement, patient: Patient): { composition: Composition; ref: Ref } {
  const encounter = mapEncounter(ctx, at(doc, 'componentOf', 'encompassingEncounter'));
  if (encounter) ctx.encounter = encounter;

  const authors: Ref[] = [];
  for (const a of children(doc, 'author')) {
    const ref = practitionerRoleRef(ctx, child(a, 'assignedAuthor'));
    if (ref && !authors.some((x) => x.reference === ref.reference)) authors.push(ref);
  }
  const type = concept(ctx, child(doc, 'code'));
  const title = text(child(doc, 'title'));
  const composition: Composition = {
    resourceType: 'Composition',
    status: 'final',
    type: type ?? { text: title ?? 'Document' },
    subject: ctx.patient,
    date: documentDate(ctx, doc),
    author: authors.length ? authors : [{ extension: [{ url: DATA_ABSENT_REASON, valueCode: 'unknown' }], display: 'Auteur non renseigné' }],
    title: title ?? type?.coding?.[0]?.display ?? 'Document',
  };
  if (!authors.length) ctx.report.warn('ENTRY_INCOMPLETE', 'The document has no usable author.', doc);
  if (encounter) composition.encounter = encounter;

  const setId = identifier(ctx, child(doc, 'setId')) ?? identifier(ctx, child(doc, 'id'));
  if (setId) composition.identifier = setId;
  const version = attr(child(doc, 'versionNumber'), 'value');
  if (version) {
    // R5 Composition.version, carried in R4 by its cross-version extension.
    composition.extension = [{ url: 'http://hl7.org/fhir/5.0/StructureDefinition/extension-Composition.version', valueString: version }];
  }
  const language = attr(child(doc, 'languageCode'), 'code');
  if (language && /^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$/.test(language)) composition.language = language;

  const meta: Meta = {};
  mapConfidentiality(ctx, doc, composition, meta);
  if (meta.security) composition.meta = meta;

  const attesters: CompositionAttester[] = [];
  const legal = child(doc, 'legalAuthenticator');
  if (legal) attesters.push(attester(ctx, legal, 'legal'));
  for (const auth of children(doc, 'authenticator')) attesters.push(attester(ctx, auth, 'professional'));
  const realAttesters = attesters.filter((a) => a.party || a.time);
  if (realAttesters.length) composition.attester = realAttesters;

  const custodian = organizationRef(ctx, at(doc, 'custodian', 'assignedCustodian', 'representedCustodianOrganization'));
  if (custodian) composition.custodian = custodian;

  const events = children(doc, 'documentationOf').map((d) => mapEvent(ctx, child(d, 'serviceEvent'))).filter((e) => e !== undefined);
  if (events.length) composition.event = events;

  const relates: CompositionRelatesTo[] = [];
  for (const rd of children(doc, 'relatedDocument')) {
    const code = own(RELATES, attr(rd, 'typeCode'));
    const target = identifier(ctx, at(rd, 'parentDocument', 'id'));
    if (code && target) relates.push({ code, targetIdentifier: target });
  }
  if (relates.length) composition.relatesTo = relates;

  if (isInProgress(doc)) composition.status = 'preliminary';
  mapParticipants(ctx, doc, patient, composition);
  return { composition, ref: ctx.add(composition, 'composition') };
}

/**
 * CI-SIS "Statut du document" section (LOINC 33557-0): an observation valued SNOMED CT 385651009
 * (in progress) marks a letter sent before it is final, e.g. awaiting results → preliminary.
 */
function isInProgress(doc: XElement): boolean {
  for (const comp of children(at(doc, 'component', 'structuredBody'), 'component')) {
    const section = child(comp, 'section');
    if (attr(child(section, 'code'), 'code') !== '33557-0') continue;
    for (const entry of children(section, 'entry')) {
      const value = at(entry, 'observation', 'value');
      if (attr(value, 'code') === '385651009' && attr(value, 'codeSystem') === '2.16.840.1.113883.6.96') return true;
    }
  }
  return false;
}

/** ClinicalDocument/effectiveTime is 1..1 in CDA and Composition.date 1..1 in FHIR: no date, no Bundle. */
function documentDate(ctx: ConversionContext, doc: XElement): string {
  const el = child(doc, 'effectiveTime');
  const v = dateTime(ctx, el);
  if (!v) throw new PasserelleError('CDA_VALUE_INVALID', 'ClinicalDocument/effectiveTime is missing or unreadable.', '/ClinicalDocument/effectiveTime');
  return v;
}

/**
 * Composition.confidentiality is bound (required) to v3 ConfidentialityClassification (U L M N R V).
 * French codes (MASQUE_PS, INVISIBLE_PATIENT… system 1.2.250.1.213.1.1.4.13) go to meta.security so
 * that the routing and the PTA see them; they are never dropped.
 */
function mapConfidentiality(ctx: ConversionContext, doc: XElement, composition: Composition, meta: Meta): void {
  for (const el of children(doc, 'confidentialityCode')) {
    const c = coding(el);
    if (!c?.code) continue;
    if (attr(el, 'codeSystem') === CONFIDENTIALITY_OID && CONFIDENTIALITY.has(c.code)) {
      composition.confidentiality ??= c.code as Composition['confidentiality'];
      (meta.security ??= []).push({ ...c, system: 'http://terminology.hl7.org/CodeSystem/v3-Confidentiality' });
    } else {
      ctx.report.info('CODE_NOT_STANDARD', `Confidentiality code ${c.code} kept in meta.security.`, el);
      (meta.security ??= []).push(c);
    }
  }
}

function attester(ctx: ConversionContext, el: XElement, mode: CompositionAttester['mode']): CompositionAttester {
  const a: CompositionAttester = { mode };
  const time = dateTime(ctx, child(el, 'time'));
  if (time) a.time = time;
  const party = practitionerRoleRef(ctx, child(el, 'assignedEntity'));
  if (party) a.party = party;
  return a;
}

function mapEvent(ctx: ConversionContext, se: XElement | undefined): CompositionEvent | undefined {
  if (!se) return undefined;
  const e: CompositionEvent = {};
  const code = concept(ctx, child(se, 'code'));
  if (code) e.code = [code];
  const p = period(ctx, child(se, 'effectiveTime'));
  if (p) e.period = p;
  const performers = children(se, 'performer').map((pf) => practitionerRoleRef(ctx, child(pf, 'assignedEntity'))).filter((r) => r !== undefined);
  if (performers.length) e.detail = performers;
  return e.code || e.period || e.detail ? e : undefined;
}

/**
 * encompassingEncounter → Encounter (status finished: the document reports a completed stay) and
 * Location. Encounter.class is 1..1: without an encounter code it states a data-absent-reason
 * rather than inventing a class.
 */
function mapEncounter(ctx: ConversionContext, ee: XElement | undefined): Ref | undefined {
  if (!ee) return undefined;
  const codeEl = child(ee, 'code');
  const c = coding(codeEl);
  const enc: Encounter = { resourceType: 'Encounter', status: 'finished', class: {} };
  if (c && attr(codeEl, 'codeSystem') === '2.16.840.1.113883.5.4') {
    enc.class = { ...c, system: ACT_CODE };
  } else {
    enc.class = { extension: [{ url: DATA_ABSENT_REASON, valueCode: 'unknown' }] };
    const type = concept(ctx, codeEl);
    if (type) enc.type = [type];
    ctx.report.info('ENCOUNTER_CLASS_ABSENT', c ? `Encounter code ${c.code} is not a v3 ActCode class.` : 'encompassingEncounter has no code.', ee);
  }
  const ids = children(ee, 'id').map((el) => identifier(ctx, el)).filter((i) => i !== undefined);
  if (ids.length) enc.identifier = ids;
  if (ctx.patient) enc.subject = ctx.patient;
  const p = period(ctx, child(ee, 'effectiveTime'));
  if (p) enc.period = p;
  const participants = [
    ...children(ee, 'responsibleParty').map((rp) => ({ type: 'RESP', ref: practitionerRoleRef(ctx, child(rp, 'assignedEntity')) })),
    ...children(ee, 'encounterParticipant').map((ep) => ({ type: attr(ep, 'typeCode') ?? 'PART', ref: practitionerRoleRef(ctx, child(ep, 'assignedEntity')) })),
  ].filter((x) => x.ref);
  if (participants.length) {
    enc.participant = participants.map((x) => ({
      type: [{ coding: [{ system: PARTICIPATION_TYPE, code: x.type }] }],
      individual: x.ref,
    }));
  }
  const facility = at(ee, 'location', 'healthCareFacility');
  if (facility) {
    const location = mapLocation(ctx, facility);
    if (location) enc.location = [{ location }];
    const provider = organizationRef(ctx, child(facility, 'serviceProviderOrganization'));
    if (provider) enc.serviceProvider = provider;
  }
  const disposition = concept(ctx, child(ee, 'dischargeDispositionCode'));
  if (disposition) enc.hospitalization = { dischargeDisposition: disposition };
  return ctx.add(enc, 'encounter');
}

/**
 * A header participant who is a professional (a lab report's prescriber, typeCode REF with the
 * prescription date; its sampler, PRF with functionCode PRELV and the sampling time; a
 * correspondent, CON) → Encounter.participant: the typeCode is a v3 ParticipationType code, as R4
 * Encounter.participant.type expects, the functionCode a second type, the time its period.
 */
function encounterParticipant(ctx: ConversionContext, part: XElement, individual: Ref): EncounterParticipant {
  const type: CodeableConcept[] = [{ coding: [{ system: PARTICIPATION_TYPE, code: attr(part, 'typeCode')?.trim() || 'PART' }] }];
  const fn = concept(ctx, child(part, 'functionCode'));
  if (fn) type.push(fn);
  const when = period(ctx, child(part, 'time'));
  return { type, ...(when ? { period: when } : {}), individual };
}

function mapLocation(ctx: ConversionContext, facility: XElement): Ref | undefined {
  const loc: Location = { resourceType: 'Location' };
  const ids = children(facility, 'id').map((el) => identifier(ctx, el)).filter((i) => i !== undefined);
  if (ids.length) loc.identifier = ids;
  const type = concept(ctx, child(facility, 'code'));
  if (type) loc.type = [type];
  const place = child(facility, 'location');
  const name = text(child(place, 'name'));
  if (name) loc.name = name;
  const addr = address(child(place, 'addr'));
  if (addr) loc.address = addr;
  const org = organizationRef(ctx, child(facility, 'serviceProviderOrganization'));
  if (org) loc.managingOrganization = org;
  if (!ids.length && !type && !name && !addr) return undefined;
  return ctx.add(loc, 'location');
}

/**
 * participant (PCP → Patient.generalPractitioner; any other professional → a participant of the
 * Encounter, see encounterParticipant), informant (relatedEntity → RelatedPerson, assignedEntity
 * → PractitionerRole) and informationRecipient (PractitionerRole, listed on the Composition by a
 * recipient extension so that routing can read them).
 */
function mapParticipants(ctx: ConversionContext, doc: XElement, patient: Patient, composition: Composition): void {
  const encounter = ctx.resolve(ctx.encounter);
  for (const part of children(doc, 'participant')) {
    const ref = practitionerRoleRef(ctx, child(part, 'associatedEntity'));
    const fn = attr(child(part, 'functionCode'), 'code');
    if (ref && fn === 'PCP') (patient.generalPractitioner ??= []).push(ref);
    else if (ref && encounter?.resourceType === 'Encounter') (encounter.participant ??= []).push(encounterParticipant(ctx, part, ref));
    else if (!ref) {
      const entity = child(part, 'associatedEntity');
      if (entity && !isNull(entity) && child(entity, 'associatedPerson')) relatedEntityRef(ctx, entity);
    }
  }
  for (const inf of children(doc, 'informant')) {
    const related = child(inf, 'relatedEntity');
    if (related) relatedEntityRef(ctx, related);
    else practitionerRoleRef(ctx, child(inf, 'assignedEntity'));
  }
  const recipients: Extension[] = [];
  for (const r of children(doc, 'informationRecipient')) {
    const ref = practitionerRoleRef(ctx, child(r, 'intendedRecipient'));
    if (ref) recipients.push({ url: `${PASSERELLE_FHIR}/StructureDefinition/information-recipient`, valueReference: ref });
  }
  if (recipients.length) composition.extension = [...(composition.extension ?? []), ...recipients];
}
