/**
 * The identify stage: identity vigilance of the document's Patient against the regional identity
 * server (DOMAIN.md §5, "Outcomes the gateway must handle").
 *
 * 1. INS present with a wrong key → INS_KEY_INVALID (the key is a syntax check, ins.ts).
 * 2. INS present → PIXm ITI-83 with the INS as sourceIdentifier:
 *    - one Patient cross-referenced → read it, compare the strict traits (traits.ts): identical →
 *      link; a trait differs → IDENTITY_COLLISION (the detail names the traits, never their
 *      values); a trait carried by one side only → IDENTITY_AMBIGUOUS (not a certain match);
 *    - several Patients → IDENTITY_AMBIGUOUS (the SRIR holds duplicates of that INS);
 *    - identifiers but no Patient reference → the Patient is looked up by the INS (PDQm
 *      `identifier=`) and handled as above;
 *    - unknown (404, or a domain the SRIR does not manage) → step 3.
 * 3. PDQm ITI-78 on family + given + birthdate + gender (the strict traits an ITI-78 search can
 *    carry). FHIR string search matches prefixes ("MARTIN" finds "MARTINEZ"), so only candidates
 *    whose search keys are equal in RNIV comparison form are kept; inactive (merged or deprecated,
 *    ITI-78 Case 6) Patients are never candidates. Zero → PROV, unmatched; exactly one with every
 *    strict trait identical → link; one not identical, or several → IDENTITY_AMBIGUOUS. When a
 *    search key is missing from the document, no search is made: PROV.
 * Link: the document's Patient gets the server's identity status in FR Core's
 * fr-core-identity-reliability extension (PROV when the server states none) and the server's
 * regional identifier appended. Its traits are never overwritten, an INS is never added.
 * PROV (no match): the Patient is delivered flagged with identityStatus PROV.
 * Operator release: when `overrides` holds the code that would be thrown (the entry was released
 * from quarantine), the document proceeds as PROV. SRIR_UNAVAILABLE is not an identity result:
 * it always propagates (the pipeline retries later).
 * Reasons and error details name steps and trait names only, never patient data.
 */
import type { Bundle, Composition, Extension, Identifier, Patient } from '@medplum/fhirtypes';
import type { IdentityServer } from '../../adapters/srir/port.js';
import { V2_0203 } from '../cda/terminology.js';
import { PasserelleError, type ErrorCode } from '../errors.js';
import { copyJson } from '../util/copy-json.js';
import { checkInsKey } from './ins.js';
import {
  compareTraits, extractIdentityStatus, extractIns, extractTraits, IDENTITY_RELIABILITY_URL, INS_SYSTEMS, normaliseTraits,
  type IdentityStatus, type TraitName,
} from './traits.js';

export type { IdentityStatus } from './traits.js';

/**
 * The code system of the identityStatus sub-extension, as DOMAIN.md §4 and FR Core
 * (FRCoreValueSetIdentityStatus, required binding) name it: the four RNIV statuses [EXI SI 07].
 */
export const IDENTITY_STATUS_SYSTEM = 'https://hl7.fr/ig/fhir/core/CodeSystem/fr-core-cs-identity-status';

const STATUS_DISPLAY: Readonly<Record<IdentityStatus, string>> = {
  PROV: 'Identité provisoire',
  RECUP: 'Identité récupérée',
  VALI: 'Identité validée',
  QUAL: 'Identité qualifiée',
};

export interface IdentifyOutcome {
  status: IdentityStatus;
  matched: boolean;
  regionalIdentifier?: Identifier;
  /** What was established and how; no patient data. */
  reason: string;
}

export interface IdentifyOptions {
  /** Codes an operator released: the check that would throw one of them yields PROV instead. */
  overrides: ReadonlySet<ErrorCode>;
  /**
   * The identifier system of the SRIR's regional identifier. When set, PIXm asks for it
   * (targetSystem) and that identifier is the one appended; when absent, the SRIR Patient's first
   * identifier that is not an INS (nor an NSS) is taken.
   */
  regionalSystem?: string;
}

/** Codes an operator may release; SRIR_UNAVAILABLE is transient and never becomes an identity result. */
const RELEASABLE: ReadonlySet<ErrorCode> = new Set<ErrorCode>(['INS_KEY_INVALID', 'IDENTITY_AMBIGUOUS', 'IDENTITY_COLLISION']);

type Decision =
  | { kind: 'link'; server: Patient; via: string }
  | { kind: 'prov'; reason: string };

export async function identify(bundle: Bundle, srir: IdentityServer, options: IdentifyOptions): Promise<{ bundle: Bundle; outcome: IdentifyOutcome }> {
  const out = copyJson(bundle);
  const patient = documentPatient(out);
  let decision: Decision;
  try {
    decision = await decide(patient, srir, options);
  } catch (err) {
    if (!(err instanceof PasserelleError) || !RELEASABLE.has(err.code) || !options.overrides.has(err.code)) throw err;
    decision = { kind: 'prov', reason: `${err.code} released by an operator: delivered as a provisional identity.` };
  }

  if (decision.kind === 'prov') {
    setIdentityStatus(patient, 'PROV');
    return { bundle: out, outcome: { status: 'PROV', matched: false, reason: decision.reason } };
  }
  const stated = extractIdentityStatus(decision.server);
  const status = stated ?? 'PROV';
  setIdentityStatus(patient, status);
  const regional = regionalIdentifier(decision.server, options.regionalSystem);
  if (regional && !(patient.identifier ?? []).some((id) => id.system === regional.system && id.value === regional.value)) {
    (patient.identifier ??= []).push(regional);
  }
  const outcome: IdentifyOutcome = {
    status,
    matched: true,
    reason: `${decision.via}: one SRIR identity with identical strict traits; ${stated ? 'status from the SRIR' : 'the SRIR states no status: PROV'}${regional ? '' : '; no regional identifier'}.`,
  };
  if (regional) outcome.regionalIdentifier = regional;
  return { bundle: out, outcome };
}

async function decide(patient: Patient, srir: IdentityServer, options: IdentifyOptions): Promise<Decision> {
  const ins = extractIns(patient);
  let why = 'no INS in the document';
  if (ins) {
    why = 'INS unknown to the SRIR';
    const key = checkInsKey(ins.value);
    if (!key.valid) throw new PasserelleError('INS_KEY_INVALID', `The INS matricule fails its ${key.reason} check (NIR/NIA key = 97 - number mod 97).`);
    const pix = await srir.pix({ system: ins.system, value: ins.value }, options.regionalSystem);
    const targets = [...new Set(pix.targetIds)];
    if (targets.length > 1) throw new PasserelleError('IDENTITY_AMBIGUOUS', `PIXm cross-references the INS with ${targets.length} SRIR Patients (possible duplicates): held for review.`);
    if (targets.length === 1) {
      const server = await srir.read(targets[0] as string);
      if (!server) throw new PasserelleError('SRIR_UNAVAILABLE', 'The SRIR cross-referenced the INS with a Patient it cannot return (read answered not found).');
      return linkByIns(patient, server, 'PIXm');
    }
    if (pix.targetIdentifiers.length) {
      // ITI-83 makes targetId optional: the SRIR knows the INS but named no resource; find it by the INS.
      const found = activeOnly(await srir.pdq({ identifier: `${ins.system}|${ins.value}` }));
      if (found.length > 1) throw new PasserelleError('IDENTITY_AMBIGUOUS', `The SRIR holds ${found.length} Patients with this INS (possible duplicates): held for review.`);
      if (found.length === 1) return linkByIns(patient, found[0] as Patient, 'PIXm + PDQm by INS');
      why = 'INS cross-referenced by the SRIR but no Patient returned for it';
    }
  }
  return searchByTraits(patient, srir, why);
}

/** A Patient the SRIR ties to our INS: identical traits link, a differing trait is a collision. */
function linkByIns(patient: Patient, server: Patient, via: string): Decision {
  if (server.active === false) throw new PasserelleError('IDENTITY_AMBIGUOUS', `${via}: the SRIR Patient holding the INS is inactive (merged or deprecated): held for review.`);
  const { differs, missing } = compareTraits(patient, server);
  if (differs.length) throw new PasserelleError('IDENTITY_COLLISION', `${via}: the INS is known to the SRIR with different strict traits: ${describe(differs)}.`);
  if (missing.length) throw new PasserelleError('IDENTITY_AMBIGUOUS', `${via}: strict traits carried by one side only: ${describe(missing)}; not a certain match.`);
  return { kind: 'link', server, via };
}

async function searchByTraits(patient: Patient, srir: IdentityServer, why: string): Promise<Decision> {
  const raw = extractTraits(patient);
  const { birthFamily, firstGivenName, birthDate, gender } = raw;
  if (!birthFamily || !firstGivenName || !birthDate || !gender) {
    return { kind: 'prov', reason: `${why}; birth name, first given name, birth date or sex missing: no PDQm search, provisional identity.` };
  }
  const results = await srir.pdq({ family: birthFamily, given: firstGivenName, birthdate: birthDate, gender });
  const ours = normaliseTraits(raw);
  const seen = new Set<string>();
  const candidates = activeOnly(results).filter((p) => {
    const key = p.id ?? JSON.stringify(p.identifier ?? []);
    if (seen.has(key)) return false;
    seen.add(key);
    const t = normaliseTraits(extractTraits(p));
    // FHIR `given` matches any given name of any name: the key is the first birth given name.
    return t.birthFamily === ours.birthFamily && t.firstGivenName === ours.firstGivenName && t.birthDate === ours.birthDate && t.gender === ours.gender;
  });
  if (candidates.length === 0) return { kind: 'prov', reason: `${why}; PDQm found no SRIR identity with these traits: provisional identity.` };
  if (candidates.length > 1) throw new PasserelleError('IDENTITY_AMBIGUOUS', `${why}; PDQm found ${candidates.length} SRIR identities with these traits (homonyms or duplicates): held for review.`);
  const server = candidates[0] as Patient;
  const { differs, missing } = compareTraits(patient, server);
  const unequal = [...differs, ...missing];
  if (unequal.length) throw new PasserelleError('IDENTITY_AMBIGUOUS', `${why}; the one PDQm candidate is not identical on: ${describe(unequal)}: held for review.`);
  return { kind: 'link', server, via: 'PDQm' };
}

const TRAIT_LABEL: Readonly<Record<TraitName, string>> = {
  birthFamily: 'birth name',
  birthGivenNames: 'birth given names',
  birthDate: 'birth date',
  gender: 'sex',
  birthPlace: 'birth place (INSEE code)',
  ins: 'INS',
};

const describe = (names: TraitName[]): string => names.map((n) => TRAIT_LABEL[n]).join(', ');

const activeOnly = (patients: Patient[]): Patient[] => patients.filter((p) => p.active !== false);

/** The document's Patient: the Composition's subject (documents.html), else the only Patient entry. */
function documentPatient(bundle: Bundle): Patient {
  const entries = bundle.entry ?? [];
  const composition = entries[0]?.resource?.resourceType === 'Composition' ? (entries[0].resource as Composition) : undefined;
  const subject = composition?.subject?.reference;
  const bySubject = subject ? entries.find((e) => e.fullUrl === subject && e.resource?.resourceType === 'Patient') : undefined;
  const patients = entries.filter((e) => e.resource?.resourceType === 'Patient');
  const entry = bySubject ?? (patients.length === 1 ? patients[0] : undefined);
  if (!entry?.resource) throw new PasserelleError('CDA_PATIENT_MISSING', 'The Bundle has no Patient the Composition is about: identity cannot be checked.');
  return entry.resource as Patient;
}

/** Replaces our identity-reliability extension (only the identify stage may establish the status). */
function setIdentityStatus(patient: Patient, status: IdentityStatus): void {
  const reliability: Extension = {
    url: IDENTITY_RELIABILITY_URL,
    extension: [{ url: 'identityStatus', valueCoding: { system: IDENTITY_STATUS_SYSTEM, code: status, display: STATUS_DISPLAY[status] } }],
  };
  patient.extension = [...(patient.extension ?? []).filter((e) => e.url !== IDENTITY_RELIABILITY_URL), reliability];
}

/**
 * The SRIR's regional identifier, as appended to our Patient: the SRIR's system and value, typed PI
 * when it has no type. `use: official` is dropped: FR Core invariant fr-core-2 allows one official
 * identifier on a VALI identity, and that one is the INS.
 */
function regionalIdentifier(server: Patient, system: string | undefined): Identifier | undefined {
  const isNss = (id: Identifier): boolean => (id.type?.coding ?? []).some((c) => c.system === V2_0203 && c.code === 'NH');
  const found = (server.identifier ?? []).find((id) =>
    id.value && id.system && (system ? id.system === system : !INS_SYSTEMS.includes(id.system) && !isNss(id)));
  if (!found?.system || !found.value) return undefined;
  const id: Identifier = {};
  if (found.use && found.use !== 'official') id.use = found.use;
  id.type = found.type ?? { coding: [{ system: V2_0203, code: 'PI' }] };
  id.system = found.system;
  id.value = found.value;
  return id;
}
