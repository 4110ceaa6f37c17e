/**
 * People and organisations of the document → Practitioner, PractitionerRole, Organization,
 * RelatedPerson, Device (Annuaire Santé profiles: RPPS/IDNPS, IDNST/FINESS identifiers).
 *
 * Deduplication: the same person or organisation appearing as author, legal authenticator,
 * performer… becomes one resource, keyed by its national identifier. When the same identifier
 * carries two different names (it happens in published examples), the two are kept apart and
 * reported, rather than silently merging two people.
 */
import type { Address, CodeableConcept, Coding, Device, DeviceDeviceName, Identifier, Organization, Practitioner, PractitionerRole, RelatedPerson } from '@medplum/fhirtypes';
import type { ConversionContext, KnownRole, Ref } from './context.js';
import { address, administrativeGender, coding, concept, contactPoint, humanName, idKey, identifier, isNull, isText } from './datatypes.js';
import {
  FR_CORE_V2_0203, OID_AUTHOR_SPECIALTY, OID_IDNST, OID_RPPS_IDNPS, TRE_G15, TRE_R38,
} from './terminology.js';
import { date } from './time.js';
import { attr, child, children, text, type XElement } from './xml.js';
import { own } from '../util/own.js';

const FINESS_SYSTEM = 'https://finess.esante.gouv.fr';
const SIRET_SYSTEM = 'https://sirene.fr';
const RPPS_SYSTEM = 'https://rpps.esante.gouv.fr';

function typed(id: Identifier, code: string): Identifier {
  return { use: 'official', type: { coding: [{ system: FR_CORE_V2_0203, code }] }, ...id };
}

/** Normalised form of a name for comparison (case, accents, punctuation and spacing ignored). */
export function normalise(s: string | undefined): string {
  const t = s ?? '';
  // ASCII has no marks to strip: skip the Unicode decomposition (most names are ASCII).
  const unaccented = /[\u0080-\uFFFF]/.test(t) ? t.normalize('NFD').replace(/\p{M}/gu, '') : t;
  return unaccented.toUpperCase().replace(/[^A-Z0-9]+/g, ' ').trim();
}

/** IDNST (1 + FINESS, 3 + SIRET, …) → the national identifier plus the plain FINESS / SIRET. */
export function organizationIdentifiers(ctx: ConversionContext, ids: XElement[]): Identifier[] {
  const out: Identifier[] = [];
  for (const el of ids) {
    const id = identifier(ctx, el);
    if (!id) continue;
    if (attr(el, 'root') === OID_IDNST && id.value) {
      out.push(typed(id, 'IDNST'));
      if (id.value.startsWith('1') && id.value.length === 10) out.push({ system: FINESS_SYSTEM, value: id.value.slice(1) });
      if (id.value.startsWith('3') && id.value.length === 15) out.push({ system: SIRET_SYSTEM, value: id.value.slice(1) });
    } else {
      out.push(id);
    }
  }
  return out;
}

function practitionerIdentifiers(ctx: ConversionContext, ids: XElement[]): Identifier[] {
  const out: Identifier[] = [];
  for (const el of ids) {
    const id = identifier(ctx, el);
    if (!id) continue;
    if (attr(el, 'root') === OID_RPPS_IDNPS && id.value) {
      out.push(typed(id, 'IDNPS'));
      // IDNPS = 8 + RPPS (11 digits); 0 + ADELI is the older form.
      if (id.value.startsWith('8') && id.value.length === 12) out.push({ system: RPPS_SYSTEM, value: id.value.slice(1) });
    } else {
      out.push(id);
    }
  }
  return out;
}

/**
 * A deduplication key: identifier first, name second. When the identifier is already taken by a
 * resource of another name, the name joins the key and the conflict is reported.
 */
function dedupeKey(ctx: ConversionContext, type: string, el: XElement, ids: XElement[], name: string): string | undefined {
  const idk = ids.map(idKey).find(isText);
  if (!idk) return name ? `name:${name}` : undefined;
  const existing = ctx.get(type, idk);
  if (!existing) return idk;
  const existingName = ctx.actorNames.get(`${type}|${idk}`);
  if (existingName === undefined || existingName === name || !name) return idk;
  ctx.report.warn('ACTOR_CONFLICT', `${type} identifier ${idk} already names another ${type.toLowerCase()}.`, el);
  return `${idk}|${name}`;
}

export function organizationRef(ctx: ConversionContext, org: XElement | undefined): Ref | undefined {
  if (!org || isNull(org)) return undefined;
  const ids = children(org, 'id');
  const name = children(org, 'name').map(text).find(isText);
  const key = dedupeKey(ctx, 'Organization', org, ids, normalise(name));
  if (!key) return undefined;
  const existing = ctx.get('Organization', key);
  if (existing) {
    fillMissing(existing.resource as Organization, org);
    return { reference: existing.fullUrl };
  }
  const o: Organization = { resourceType: 'Organization' };
  const identifiers = organizationIdentifiers(ctx, ids);
  if (identifiers.length) o.identifier = identifiers;
  const type = concept(ctx, child(org, 'standardIndustryClassCode'));
  if (type) o.type = [type];
  if (name) o.name = name;
  fillMissing(o, org);
  ctx.actorNames.set(`Organization|${key}`, normalise(name));
  return ctx.add(o, key);
}

/**
 * Gives an organisation the phones and addresses of `el` when it has none. A `home` use is dropped:
 * an organisation's never is (R4 invariants org-2, org-3), whatever the CDA wrote.
 */
export function fillMissing(o: Organization, el: XElement | undefined): void {
  if (!o.telecom) {
    const telecom = children(el, 'telecom').map(contactPoint).filter((t) => t !== undefined).map(notHome);
    if (telecom.length) o.telecom = telecom;
  }
  if (!o.address) {
    const addr = children(el, 'addr').map(address).filter((a) => a !== undefined).map(notHome);
    if (addr.length) o.address = addr;
  }
}

function notHome<T extends { use?: string }>(x: T): T {
  if (x.use === 'home') delete x.use;
  return x;
}

/**
 * Profession/specialty: the CI-SIS author specialty joins TRE_G15 profession and TRE_R38 specialty
 * (`G15_10/SM27`); they are split into PractitionerRole.code and .specialty.
 */
function roleCodes(ctx: ConversionContext, code: XElement | undefined): { code?: CodeableConcept[]; specialty?: CodeableConcept[] } {
  const c = coding(code);
  if (!c?.code) {
    const cc = concept(ctx, code);
    return cc ? { code: [cc] } : {};
  }
  const m = /^G15_(\w+)(?:\/(\w+))?$/.exec(c.code);
  if (attr(code, 'codeSystem') === OID_AUTHOR_SPECIALTY && m?.[1]) {
    const profession: Coding = { system: TRE_G15, code: m[1] };
    const out: { code?: CodeableConcept[]; specialty?: CodeableConcept[] } = {
      code: [{ coding: [profession, c], ...(c.display ? { text: c.display } : {}) }],
    };
    if (m[2]) out.specialty = [{ coding: [{ system: TRE_R38, code: m[2] }] }];
    return out;
  }
  return { code: [{ coding: [c] }] };
}

/**
 * The person an assigned entity (or an intended recipient, an associated entity) stands for; a
 * participantRole names its person as playingEntity (IHE PaLM: the biologist who validated).
 */
export function personOf(assigned: XElement): XElement | undefined {
  return child(assigned, 'assignedPerson') ?? child(assigned, 'associatedPerson') ?? child(assigned, 'informationRecipient') ??
    (assigned.name === 'participantRole' ? child(assigned, 'playingEntity') : undefined);
}

/**
 * An assignedAuthor / assignedEntity / associatedEntity / intendedRecipient → PractitionerRole
 * (with its Practitioner and Organization), or an Organization or Device when no person is named.
 */
export function practitionerRoleRef(ctx: ConversionContext, assigned: XElement | undefined): Ref | undefined {
  if (!assigned || isNull(assigned)) return undefined;
  const person = personOf(assigned);
  const orgEl = child(assigned, 'representedOrganization') ?? child(assigned, 'scopingOrganization') ?? child(assigned, 'receivedOrganization');
  const organization = organizationRef(ctx, orgEl);
  const device = child(assigned, 'assignedAuthoringDevice');
  if (!person) {
    if (device) return deviceRef(ctx, assigned, device, organization);
    return organization;
  }
  const ids = children(assigned, 'id');
  const name = humanName(child(person, 'name'));
  const nameKey = normalise([name?.family, ...(name?.given ?? []), name?.text].filter(isText).join(' '));
  const pKey = dedupeKey(ctx, 'Practitioner', assigned, ids, nameKey) ?? `place:${ctx.uuid(assigned.name, String(ctx.emitted.length))}`;
  let practitioner: Ref;
  const existing = ctx.get('Practitioner', pKey);
  if (existing) {
    practitioner = { reference: existing.fullUrl };
  } else {
    const p: Practitioner = { resourceType: 'Practitioner' };
    const identifiers = practitionerIdentifiers(ctx, ids);
    if (identifiers.length) p.identifier = identifiers;
    if (name) p.name = [name];
    ctx.actorNames.set(`Practitioner|${pKey}`, nameKey);
    practitioner = ctx.add(p, pKey);
  }
  const codes = roleCodes(ctx, child(assigned, 'code'));
  const telecom = children(assigned, 'telecom').map(contactPoint).filter((t) => t !== undefined);
  // One role per practitioner and context: a later mention that adds nothing (no organisation or
  // the same one, no code or the same one) reuses the role already made.
  const codeKey = codes.code ? JSON.stringify(codes) : '';
  const known = rolesOf(ctx, pKey);
  const same = known.find((r) => (!organization || r.org === organization.reference) && (!codeKey || r.codeKey === codeKey));
  if (same) return { reference: same.fullUrl };
  const role: PractitionerRole = { resourceType: 'PractitionerRole', practitioner };
  if (organization) role.organization = organization;
  if (codes.code) role.code = codes.code;
  if (codes.specialty) role.specialty = codes.specialty;
  if (telecom.length) role.telecom = telecom;
  const ref = ctx.add(role, [pKey, organization?.reference ?? '', codeKey].join('|'));
  known.push({ fullUrl: ref.reference as string, org: organization?.reference, codeKey });
  return ref;
}

function rolesOf(ctx: ConversionContext, practitionerKey: string): KnownRole[] {
  let roles = ctx.actorRoles.get(practitionerKey);
  if (!roles) ctx.actorRoles.set(practitionerKey, (roles = []));
  return roles;
}

function deviceRef(ctx: ConversionContext, assigned: XElement, device: XElement, owner: Ref | undefined): Ref {
  const ids = children(assigned, 'id').map((el) => identifier(ctx, el)).filter((i) => i !== undefined);
  const model = text(child(device, 'manufacturerModelName'));
  const software = text(child(device, 'softwareName'));
  const key = ids.map((i) => `${i.system}|${i.value}`).join(',') || normalise(`${model} ${software}`);
  const d: Device = { resourceType: 'Device' };
  if (ids.length) d.identifier = ids;
  const names: DeviceDeviceName[] = [];
  if (model) names.push({ name: model, type: 'model-name' });
  if (software) names.push({ name: software, type: 'other' });
  if (names.length) d.deviceName = names;
  if (owner) d.owner = owner;
  return ctx.add(d, `device:${key}`);
}

const V2_0131 = 'http://terminology.hl7.org/CodeSystem/v2-0131';
const ROLE_CLASS_TO_CONTACT: Readonly<Record<string, Coding>> = {
  ECON: { system: V2_0131, code: 'C', display: 'Emergency Contact' },
  NOK: { system: V2_0131, code: 'N', display: 'Next-of-Kin' },
};

/**
 * informant/relatedEntity and guardian → RelatedPerson, deduplicated by name: the same person
 * named as emergency contact and as trusted person is one RelatedPerson with both relationships.
 */
export function relatedPersonRef(ctx: ConversionContext, el: XElement, person: XElement | undefined, relationship: CodeableConcept[]): Ref | undefined {
  const name = humanName(child(person, 'name'));
  const telecom = children(el, 'telecom').map(contactPoint).filter((t) => t !== undefined);
  const addr = children(el, 'addr').map(address).filter((a) => a !== undefined);
  const nameKey = normalise([name?.family, ...(name?.given ?? []), name?.text].filter(isText).join(' '));
  if (!nameKey && !telecom.length) return undefined;
  const key = nameKey ? `name:${nameKey}` : `telecom:${telecom.map((t) => t.value).join(',')}`;
  const existing = ctx.get('RelatedPerson', key);
  if (existing) {
    const rp = existing.resource as RelatedPerson;
    const known = new Set((rp.relationship ?? []).map((r) => JSON.stringify(r)));
    for (const r of relationship) if (!known.has(JSON.stringify(r))) (rp.relationship ??= []).push(r);
    // Named again with another phone (the mother's mobile as emergency contact) or address: kept too.
    for (const t of telecom) if (!rp.telecom?.some((x) => x.value === t.value)) (rp.telecom ??= []).push(t);
    for (const a of addr) if (!rp.address?.some((x) => sameAddress(x, a))) (rp.address ??= []).push(a);
    addTraits(ctx, rp, person);
    return { reference: existing.fullUrl };
  }
  const rp: RelatedPerson = { resourceType: 'RelatedPerson', patient: ctx.patient ?? {} };
  if (relationship.length) rp.relationship = relationship;
  if (name) rp.name = [name];
  if (telecom.length) rp.telecom = telecom;
  addTraits(ctx, rp, person);
  if (addr.length) rp.address = addr;
  return ctx.add(rp, key);
}

/** The same place written structured or as address lines ("24 Avenue de Breteuil" / "75007 PARIS"). */
function sameAddress(a: Address, b: Address): boolean {
  const flat = (x: Address): string => normalise([...(x.line ?? []), x.postalCode, x.city].filter(isText).join(' ')).replace(/[^A-Z0-9]/g, '');
  return flat(a) === flat(b);
}

/** Gender and birth date, where the person element gives them and the RelatedPerson has none yet. */
function addTraits(ctx: ConversionContext, rp: RelatedPerson, person: XElement | undefined): void {
  const gender = administrativeGender(person);
  if (gender && !rp.gender) rp.gender = gender;
  const birthDate = date(ctx, child(person, 'birthTime'));
  if (birthDate && !rp.birthDate) rp.birthDate = birthDate;
}

/**
 * subject/relatedSubject (the patient's mother, father… in a child health certificate) →
 * RelatedPerson: the same one as the informant or guardian of that name; unnamed, the one
 * RelatedPerson already holding that relationship ("the mother" is one person in a document), else
 * a RelatedPerson of its own.
 */
export function relatedSubjectRef(ctx: ConversionContext, related: XElement): Ref {
  const relationship = concept(ctx, child(related, 'code'));
  const person = child(related, 'subject');
  const code = relationship?.coding?.[0]?.code;
  if (!humanName(child(person, 'name')) && code) {
    const holders = ctx.emitted.filter((e) => e.resource.resourceType === 'RelatedPerson'
      && (e.resource as RelatedPerson).relationship?.some((r) => r.coding?.some((c) => c.code === code)));
    if (holders.length === 1 && holders[0]) return { reference: holders[0].fullUrl };
  }
  const found = relatedPersonRef(ctx, related, person, relationship ? [relationship] : []);
  if (found) return found;
  const key = `related-subject:${code ?? relationship?.text ?? ''}`;
  const existing = ctx.get('RelatedPerson', key);
  if (existing) return { reference: existing.fullUrl };
  const rp: RelatedPerson = { resourceType: 'RelatedPerson', patient: ctx.patient ?? {} };
  if (relationship) rp.relationship = [relationship];
  return ctx.add(rp, key);
}

/** informant/relatedEntity: classCode (ECON, NOK…) and code (SIS, MTH…) become relationships. */
export function relatedEntityRef(ctx: ConversionContext, entity: XElement): Ref | undefined {
  const relationship: CodeableConcept[] = [];
  const cls = attr(entity, 'classCode');
  const contact = own(ROLE_CLASS_TO_CONTACT, cls);
  if (contact) relationship.push({ coding: [contact] });
  const code = concept(ctx, child(entity, 'code'));
  if (code) relationship.push(code);
  return relatedPersonRef(ctx, entity, child(entity, 'relatedPerson'), relationship);
}
