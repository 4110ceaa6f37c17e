/**
 * The `resolve` stage (ARCHITECTURE.md: convert → identify → resolve → route): with the ROR
 * (DOMAIN.md §6), enrich the document's custodian and author organizations, and choose the
 * coordination platform (DAC, ROR category 606) that covers the patient's home commune.
 *
 * Routing:
 *  1. The patient's home address: the `home` addresses of the Patient (Address.use, FHIR R4
 *     datatypes.html#Address) that are not over (period.end in the past), in order; without any,
 *     the first address that is neither `old` nor over (else the very first). The first that
 *     designates a commune wins (gateway/routing/commune.ts).
 *     None → ROUTING_COMMUNE_UNKNOWN (permanent: an operator must fix the address).
 *  2. DACs whose HealthcareService intervention zone (ror-territorial-division) covers the commune,
 *     else the département, else the région: zones may be coded at any of the three levels and the
 *     most local answer is the right one (DOMAIN.md §6). For an arrondissement of Paris, Lyon or
 *     Marseille, a zone coded with the whole commune (75056…) counts at commune level. None at any
 *     level → ROUTING_NO_DAC.
 *  3. A DAC is usable when its service and organization are not `active: false`, the organization
 *     carries TRE-R66 category 606 and at least one identifier (what a PTA client's `organization`
 *     setting is matched against: a DAC nobody can be matched to would receive documents no one reads).
 *  4. Several DACs at the same level: one is chosen, deterministically. The law gives each territory
 *     one DAC (code de la santé publique L6327-2), so overlapping zones are a directory error, and
 *     sending a patient's document to several platforms would spread it wider than needed. The
 *     one with the fewest zones at that level wins (the most local territory), then the smallest ROR
 *     id, so that the same directory always gives the same answer.
 *
 * Recording (no patient data in either): `Bundle.meta.tag` gets one tag per identifier form of the
 * DAC (system ROUTED_TO_SYSTEM, `system|value` and bare `value`, so that the store can match a PTA
 * client whichever form its `organization` uses), and a Provenance entry (FHIR R4 provenance.html)
 * targets the Composition: activity, the gateway as agent, the DAC (from ROR) as source entity, and a
 * `reason` text with the level and the COG codes. A replay replaces both instead of adding more.
 *
 * Enrichment (best effort, never removing what the document said): each custodian/author
 * Organization found in ROR by FINESS (identifier system https://finess.esante.gouv.fr, or the
 * national structure id urn:oid:1.2.250.1.71.4.2.2 with prefix 1), else by that national structure
 * id as written (prefixes 2 SIREN, 3 SIRET…), gets the ROR identifiers it lacks, the ROR logical id
 * (identifier system ROR_ORGANIZATION_ID_SYSTEM), the ROR types it lacks (e.g. TRE-R66 category),
 * a name when it has none, and `partOf` (a logical reference: identifier + name of the ROR parent,
 * e.g. the EJ of an EG) when it has none. ROR being unreachable does not hold the document back for
 * that: the organization stays as the document described it.
 */
import { createHash } from 'node:crypto';
import type {
  Address, Bundle, BundleEntry, CodeableConcept, Coding, Composition, HealthcareService, Identifier, Organization, Patient, PractitionerRole, Provenance, Reference,
} from '@medplum/fhirtypes';
import type { Directory } from '../../adapters/ror/port.js';
import { PasserelleError } from '../errors.js';
import { copyJson } from '../util/copy-json.js';
import { communeFromAddress, type CommuneCodes } from './commune.js';

export type RoutingLevel = 'commune' | 'departement' | 'region';

export interface RoutingDecision {
  dac: {
    /** The DAC Organization in ROR, `Organization/<ROR id>`. */
    reference: string;
    name?: string;
    /** Its identifiers, each as `system|value` and as bare `value`. */
    identifiers: string[];
  };
  level: RoutingLevel;
  /** COG code of the commune (or arrondissement municipal) the patient lives in. */
  commune: string;
  departement: string;
  region: string;
  /** Which address was used, e.g. "Patient.address[0]". */
  addressSource: string;
}

export interface RoutingOptions {
  /** When the decision is recorded (Provenance.recorded); default now. */
  now?: Date;
}

/** Bundle.meta.tag system naming the DAC a Bundle is routed to. */
export const ROUTED_TO_SYSTEM = 'https://passerelle.dev/fhir/CodeSystem/routed-to';
/** Provenance.activity system of the gateway's own activities. */
export const ACTIVITY_SYSTEM = 'https://passerelle.dev/fhir/CodeSystem/activity';
/** Identifier system of the ROR logical id added to enriched organizations. */
export const ROR_ORGANIZATION_ID_SYSTEM = 'https://passerelle.dev/fhir/NamingSystem/ror-organization-id';
/** The gateway itself, as a Provenance agent. */
export const GATEWAY_IDENTIFIER: Identifier = { system: 'https://passerelle.dev/fhir/NamingSystem/software', value: 'passerelle' };

const FINESS = 'https://finess.esante.gouv.fr';
const ID_NAT_ST = 'urn:oid:1.2.250.1.71.4.2.2';
const ROR_SD = 'https://interop.esante.gouv.fr/ig/fhir/ror/StructureDefinition/';
const ZONE_TYPE: Readonly<Record<RoutingLevel, string>> = { region: '1', departement: '2', commune: '3' };
/** Identifier systems spelled with http in parts of the ROR IG: compared as their https form. */
const canonical = (system: string | undefined): string | undefined =>
  system === 'http://finess.esante.gouv.fr' ? FINESS : system === 'http://sirene.fr' ? 'https://sirene.fr' : system;

export async function resolveRouting(bundle: Bundle, ror: Directory, options: RoutingOptions = {}): Promise<{ bundle: Bundle; decision: RoutingDecision }> {
  const out = copyJson(bundle);
  const entries = out.entry ?? [];
  const compositionEntry = entries.find((e) => e.resource?.resourceType === 'Composition');
  const composition = compositionEntry?.resource as Composition | undefined;
  if (!compositionEntry || !composition) throw new PasserelleError('FHIR_OUTPUT_INVALID', 'the document Bundle has no Composition to route');
  const byUrl = new Map(entries.filter((e) => e.fullUrl).map((e) => [e.fullUrl as string, e]));

  const patient = (byUrl.get(composition.subject?.reference ?? '')?.resource ?? entries.find((e) => e.resource?.resourceType === 'Patient')?.resource) as Patient | undefined;
  if (patient?.resourceType !== 'Patient') throw new PasserelleError('ROUTING_COMMUNE_UNKNOWN', 'the document has no Patient: no home commune to route by');
  const now = options.now ?? new Date();
  const home = homeCommune(patient, now.getTime());

  const dac = await findDac(ror, home.codes);
  await enrichOrganizations(composition, byUrl, ror);

  const decision: RoutingDecision = {
    dac: dac.summary,
    level: dac.level,
    commune: home.codes.commune,
    departement: home.codes.departement,
    region: home.codes.region,
    addressSource: home.source,
  };
  record(out, compositionEntry, decision, dac, now);
  return { bundle: out, decision };
}

/** An address still in use: `period.end` absent or not past. */
function current(address: Address, now: number): boolean {
  const end = address.period?.end ? Date.parse(address.period.end) : NaN;
  return Number.isNaN(end) || end >= now;
}

function homeCommune(patient: Patient, now: number): { codes: CommuneCodes; source: string } {
  const addresses = (patient.address ?? []).map((a, i) => ({ a, i }));
  if (!addresses.length) throw new PasserelleError('ROUTING_COMMUNE_UNKNOWN', 'the Patient has no address: no home commune to route by');
  const homes = addresses.filter(({ a }) => a.use === 'home' && current(a, now));
  const first = addresses.find(({ a }) => a.use !== 'old' && current(a, now)) ?? (addresses[0] as { a: Address; i: number });
  const tried = homes.length ? homes : [first];
  for (const { a, i } of tried) {
    const codes = communeFromAddress(a);
    if (codes) return { codes, source: `Patient.address[${i}]` };
  }
  // The message names the addresses tried, never their content (patient data).
  throw new PasserelleError('ROUTING_COMMUNE_UNKNOWN', `no commune found for ${tried.map(({ i }) => `Patient.address[${i}]`).join(', ')} (postal code and city unknown, ambiguous or missing)`);
}

interface DacChoice {
  level: RoutingLevel;
  /** The zone code that matched (the arrondissement, its whole commune, the département or the région). */
  zone: string;
  organization: Organization;
  summary: RoutingDecision['dac'];
}

/** `Organization/<id>` of a reference written relative, absolute or versioned. */
function organizationId(reference: string | undefined): string | undefined {
  return /(?:^|\/)Organization\/([A-Za-z0-9.-]{1,64})(?:\/_history\/[^/]*)?$/.exec(reference ?? '')?.[1];
}

/** Zone codes of a service at one level (ror-territorial-division; older ror-healthcareservice-intervention-zone). */
function zoneCodes(service: HealthcareService, level: RoutingLevel): string[] {
  const codeOf = (cc: CodeableConcept | undefined): string | undefined => cc?.coding?.find((c) => c.code)?.code ?? (cc as { code?: string } | undefined)?.code;
  return (service.extension ?? [])
    .filter((e) => e.url === `${ROR_SD}ror-territorial-division` || e.url === `${ROR_SD}ror-healthcareservice-intervention-zone`)
    .filter((e) => codeOf(e.extension?.find((s) => s.url === 'typeTerritorialDivision' || s.url === 'type')?.valueCodeableConcept) === ZONE_TYPE[level])
    .map((e) => codeOf(e.extension?.find((s) => s.url === 'codeTerritorialDivision' || s.url === 'code')?.valueCodeableConcept))
    .filter((c): c is string => !!c);
}

/** "system|value" and "value" for every identifier, each once. */
function identifierForms(identifiers: readonly Identifier[] | undefined): string[] {
  const forms: string[] = [];
  for (const id of identifiers ?? []) {
    const value = id.value?.trim();
    if (!value) continue;
    const system = id.system?.trim();
    for (const f of system ? [`${system}|${value}`, value] : [value]) if (!forms.includes(f)) forms.push(f);
  }
  return forms;
}

/** A DAC organization: TRE-R66 category 606 on Organization.type. */
export const isDac = (o: Organization): boolean => (o.type ?? []).some((t) => (t.coding ?? []).some((c) => c.code === '606' && (!c.system || /R66-CategorieEtablissement|J55-CategorieEG-ROR/.test(c.system))));

async function findDac(ror: Directory, codes: CommuneCodes): Promise<DacChoice> {
  const levels: [RoutingLevel, string[]][] = [
    ['commune', codes.parent ? [codes.commune, codes.parent] : [codes.commune]],
    ['departement', [codes.departement]],
    ['region', [codes.region]],
  ];
  for (const [level, zoneCodesWanted] of levels) {
    const candidates = new Map<string, { organization: Organization; zones: number; zone: string }>();
    for (const code of zoneCodesWanted) {
      const { services, organizations } = await ror.dacServicesByZone(level, code);
      const byId = new Map(organizations.filter((o) => o.id).map((o) => [o.id as string, o]));
      for (const service of services) {
        if (service.active === false) continue;
        const id = organizationId(service.providedBy?.reference);
        const organization = id ? byId.get(id) : undefined;
        if (!organization || organization.active === false || !isDac(organization) || !identifierForms(organization.identifier).length) continue;
        const zones = zoneCodes(service, level).length || 1;
        const known = candidates.get(id as string);
        if (!known || zones < known.zones) candidates.set(id as string, { organization, zones, zone: code });
      }
    }
    const ranked = [...candidates.entries()].sort(([ia, a], [ib, b]) => a.zones - b.zones || (ia < ib ? -1 : ia > ib ? 1 : 0));
    const best = ranked[0];
    if (!best) continue;
    const [id, { organization, zone }] = best;
    return {
      level,
      zone,
      organization,
      summary: { reference: `Organization/${id}`, ...(organization.name ? { name: organization.name } : {}), identifiers: identifierForms(organization.identifier) },
    };
  }
  throw new PasserelleError('ROUTING_NO_DAC', `no DAC in ROR covers commune ${codes.commune}, département ${codes.departement} or région ${codes.region}`);
}

/** The FINESS an organization carries, directly or inside its national structure id (prefix 1). */
function finessOf(o: Organization): string | undefined {
  for (const id of o.identifier ?? []) {
    if (canonical(id.system) === FINESS && id.value?.trim()) return id.value.trim();
  }
  for (const id of o.identifier ?? []) {
    const v = id.value?.trim();
    if (id.system === ID_NAT_ST && v && v.length === 10 && v.startsWith('1')) return v.slice(1);
  }
  return undefined;
}

/** The custodian and the authors' organizations (directly or through PractitionerRole.organization), each once. */
function documentOrganizations(composition: Composition, byUrl: Map<string, BundleEntry>): Organization[] {
  const found: Organization[] = [];
  const add = (ref: Reference | undefined): void => {
    const r = byUrl.get(ref?.reference ?? '')?.resource;
    if (r?.resourceType === 'Organization' && !found.includes(r)) found.push(r);
    if (r?.resourceType === 'PractitionerRole') add((r as PractitionerRole).organization);
  };
  add(composition.custodian);
  for (const a of composition.author ?? []) add(a);
  return found;
}

async function enrichOrganizations(composition: Composition, byUrl: Map<string, BundleEntry>, ror: Directory): Promise<void> {
  for (const organization of documentOrganizations(composition, byUrl)) {
    const finess = finessOf(organization);
    const idNatSt = organization.identifier?.find((i) => i.system === ID_NAT_ST && i.value?.trim())?.value?.trim();
    const lookup: [string, string] | undefined = finess ? [FINESS, finess] : idNatSt ? [ID_NAT_ST, idNatSt] : undefined;
    if (!lookup) continue;
    let found: Organization[];
    try {
      found = await ror.organizationsByIdentifier(...lookup);
    } catch (err) {
      // Enrichment is a courtesy: an unreachable ROR must not hold the document back.
      if (err instanceof PasserelleError && err.code === 'ROR_UNAVAILABLE') continue;
      throw err;
    }
    // The organization itself among the answer (the others are its parents): FINESS in either form.
    const wanted: [string, string][] = finess ? [[FINESS, finess], [ID_NAT_ST, `1${finess}`]] : [lookup];
    const match = found.find((o) => (o.identifier ?? []).some((i) => wanted.some(([s, v]) => canonical(i.system) === s && i.value?.trim() === v)));
    if (match) enrich(organization, match, found);
  }
}

const sanitizeCoding = (c: Coding): Coding | undefined =>
  typeof c.code === 'string' && c.code.trim() ? { ...(typeof c.system === 'string' ? { system: c.system } : {}), code: c.code, ...(typeof c.display === 'string' ? { display: c.display } : {}) } : undefined;

/** A well-formed copy of a CodeableConcept from ROR (the IG's own examples write `coding` as an object at times). */
function sanitizeConcept(cc: CodeableConcept | undefined): CodeableConcept | undefined {
  const codings = (Array.isArray(cc?.coding) ? cc.coding : []).map(sanitizeCoding).filter((c): c is Coding => !!c);
  return codings.length ? { coding: codings } : undefined;
}

/** Adds what ROR knows and the document does not say; removes and changes nothing. */
function enrich(target: Organization, ror: Organization, all: readonly Organization[]): void {
  const identifiers = target.identifier ?? [];
  const has = (system: string | undefined, value: string): boolean => identifiers.some((i) => canonical(i.system) === canonical(system) && i.value?.trim() === value);
  for (const id of ror.identifier ?? []) {
    const value = id.value?.trim();
    if (!value || typeof id.system !== 'string' || has(id.system, value)) continue;
    const type = sanitizeConcept(id.type);
    identifiers.push({ ...(id.use ? { use: id.use } : {}), ...(type ? { type } : {}), system: id.system, value });
  }
  if (ror.id && !has(ROR_ORGANIZATION_ID_SYSTEM, ror.id)) identifiers.push({ system: ROR_ORGANIZATION_ID_SYSTEM, value: ror.id, assigner: { display: 'ROR' } });
  if (identifiers.length) target.identifier = identifiers;

  const types = target.type ?? [];
  for (const t of ror.type ?? []) {
    const clean = sanitizeConcept(t);
    if (!clean) continue;
    const known = (clean.coding ?? []).every((c) => types.some((k) => (k.coding ?? []).some((kc) => kc.system === c.system && kc.code === c.code)));
    if (!known) types.push(clean);
  }
  if (types.length) target.type = types;

  if (!target.name && ror.name) target.name = ror.name;
  if (!target.partOf) {
    const parentId = organizationId(ror.partOf?.reference);
    const parent = parentId ? all.find((o) => o.id === parentId) : undefined;
    const key = parent?.identifier?.find((i) => canonical(i.system) === FINESS && i.value) ?? parent?.identifier?.find((i) => i.system && i.value);
    if (parent && (key || parent.name)) {
      target.partOf = { ...(key ? { identifier: { system: key.system as string, value: (key.value as string).trim() } } : {}), ...(parent.name ? { display: parent.name } : {}) };
    }
  }
}

/** A UUID (RFC 9562 version 8) derived from the Bundle and a key: a replay gives the same entry. */
function uuidFor(bundle: Bundle, key: string): string {
  const b = createHash('sha256').update(bundle.id ?? '').update('\u0000').update(`${bundle.identifier?.system ?? ''}|${bundle.identifier?.value ?? ''}`).update('\u0000').update(key).digest();
  b[6] = ((b[6] as number) & 0x0f) | 0x80;
  b[8] = ((b[8] as number) & 0x3f) | 0x80;
  const x = b.subarray(0, 16).toString('hex');
  return `${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20, 32)}`;
}

const LEVEL_LABEL: Readonly<Record<RoutingLevel, string>> = { commune: 'commune', departement: 'département', region: 'région' };

function record(bundle: Bundle, compositionEntry: BundleEntry, decision: RoutingDecision, choice: DacChoice, now: Date): void {
  const dac = choice.organization;
  const display = decision.dac.name;
  const tags = (bundle.meta?.tag ?? []).filter((t) => t.system !== ROUTED_TO_SYSTEM);
  for (const code of decision.dac.identifiers) tags.push({ system: ROUTED_TO_SYSTEM, code, ...(display ? { display } : {}) });
  bundle.meta = { ...(bundle.meta ?? {}), tag: tags };

  const id = uuidFor(bundle, 'Provenance|routing');
  const fullUrl = `urn:uuid:${id}`;
  const key = dac.identifier?.find((i) => canonical(i.system) === FINESS && i.value) ?? dac.identifier?.find((i) => i.system && i.value);
  const where = `${LEVEL_LABEL[decision.level]} ${choice.zone}`;
  const home = `commune ${decision.commune}, département ${decision.departement}, région ${decision.region}`;
  const provenance: Provenance = {
    resourceType: 'Provenance',
    id,
    target: [{ reference: compositionEntry.fullUrl ?? `Composition/${compositionEntry.resource?.id ?? ''}` }],
    recorded: now.toISOString(),
    activity: { coding: [{ system: ACTIVITY_SYSTEM, code: 'route', display: 'Routing to a coordination platform (DAC)' }] },
    reason: [{
      coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v3-ActReason', code: 'COC', display: 'coordination of care' }],
      text: `Routed at ${LEVEL_LABEL[decision.level]} level: the DAC's intervention zone covers ${where}; the patient's home (${decision.addressSource}) is in ${home}.`,
    }],
    agent: [{
      type: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/provenance-participant-type', code: 'performer', display: 'Performer' }] },
      who: { identifier: { ...GATEWAY_IDENTIFIER }, display: 'passerelle' },
    }],
    entity: [{
      role: 'source',
      what: { ...(key ? { identifier: { system: key.system as string, value: (key.value as string).trim() } } : {}), display: `${display ? `${display}, ` : ''}ROR ${decision.dac.reference}` },
    }],
  };
  const entries = (bundle.entry ?? []).filter((e) => e.fullUrl !== fullUrl);
  entries.push({ fullUrl, resource: provenance });
  bundle.entry = entries;
}
