/**
 * Allergies and intolerances → FHIR R4 AllergyIntolerance (section 48765-2; CI-SIS
 * FR-Liste-des-allergies-et-hypersensibilites concern act wrapping FR-Allergie-ou-hypersensibilite
 * observations; IHE PCC Allergy Concern 1.3.6.1.4.1.19376.1.5.3.1.4.5.3 / Allergy and Intolerance
 * Entry …4.6).
 *
 * The observation `code` is the kind of reaction (SNOMED CT drug allergy, food intolerance… or
 * HL7 ObservationIntoleranceType) → type and category; the allergen is the consumable participant
 * (participant CSM / playingEntity), else the observation value; MFST relationships are the
 * reactions (manifestation is 1..1 per reaction; one stated absent, negationInd, is reported). Invariants: ait-1 (clinicalStatus unless
 * entered-in-error, stated absent when the CDA does not give it), ait-2 (none when entered-in-error).
 */
import type { AllergyIntolerance, AllergyIntoleranceReaction, CodeableConcept } from '@medplum/fhirtypes';
import type { ConversionContext, Ref } from '../context.js';
import { concept, isNull } from '../datatypes.js';
import { dateTime } from '../time.js';
import { attr, child, children, pathOf, text, type XElement } from '../xml.js';
import {
  absent, author, commentText, describe, entryName, entryText, identifiers, isNegated, mood, notMapped, statementOf,
} from './common.js';
import { certainty, clinicalStatus, codeable, concernParts, isConcernAct, isProblemStatus, isSeverity, verification, type Verification } from './concern.js';
import { own } from '../../util/own.js';

const CLINICAL = 'http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical';
const VERIFICATION = 'http://terminology.hl7.org/CodeSystem/allergyintolerance-verification';
const ACTORS = ['Practitioner', 'PractitionerRole', 'Patient', 'RelatedPerson'] as const;

type Kind = { type?: AllergyIntolerance['type']; category?: NonNullable<AllergyIntolerance['category']>[number] };

/** Kind of reaction → type / category (SNOMED CT and HL7 v3 ObservationIntoleranceType). */
const KINDS: Readonly<Record<string, Kind>> = {
  '416098002': { type: 'allergy', category: 'medication' },
  '414285001': { type: 'allergy', category: 'food' },
  '426232007': { type: 'allergy', category: 'environment' },
  '419199007': { type: 'allergy' },
  '609328004': { type: 'allergy' },
  '59037007': { type: 'intolerance', category: 'medication' },
  '235719002': { type: 'intolerance', category: 'food' },
  '782197009': { type: 'intolerance' },
  '419511003': { category: 'medication' },
  '418471000': { category: 'food' },
  '420134006': {},
  '418038007': {},
  ALG: { type: 'allergy' },
  DALG: { type: 'allergy', category: 'medication' },
  EALG: { type: 'allergy', category: 'environment' },
  FALG: { type: 'allergy', category: 'food' },
  INT: { type: 'intolerance' },
  DINT: { type: 'intolerance', category: 'medication' },
  EINT: { type: 'intolerance', category: 'environment' },
  FINT: { type: 'intolerance', category: 'food' },
  NAINT: { type: 'intolerance' },
  DNAINT: { type: 'intolerance', category: 'medication' },
  ENAINT: { type: 'intolerance', category: 'environment' },
  FNAINT: { type: 'intolerance', category: 'food' },
};

const SEVERITY: Readonly<Record<string, NonNullable<AllergyIntoleranceReaction['severity']>>> = {
  '255604002': 'mild', '6736007': 'moderate', '24484000': 'severe', L: 'mild', M: 'moderate', H: 'severe',
};

const CRITICALITY: Readonly<Record<string, NonNullable<AllergyIntolerance['criticality']>>> = {
  CRITL: 'low', CRITH: 'high', CRITU: 'unable-to-assess',
  // CI-SIS 2024: the HL7 allergy-intolerance-criticality codes themselves
  low: 'low', high: 'high', 'unable-to-assess': 'unable-to-assess',
};

/** A condition verification status as an allergy's (allergyintolerance-verification has no provisional or differential). */
const ALLERGY_VERIFICATION: Readonly<Record<Verification, string>> = {
  unconfirmed: 'unconfirmed', provisional: 'unconfirmed', differential: 'unconfirmed',
  confirmed: 'confirmed', refuted: 'refuted', 'entered-in-error': 'entered-in-error',
};

export function mapAllergyEntry(ctx: ConversionContext, st: XElement, sectionCode: string | undefined): Ref[] {
  if (st.name === 'observation') return mapAllergy(ctx, undefined, st, sectionCode);
  if (st.name === 'act' && isConcernAct(st)) {
    const { observations, others } = concernParts(st);
    for (const o of others) notMapped(ctx, `${describe(o)} in an allergy concern`, sectionCode, o);
    if (!observations.length) notMapped(ctx, 'Allergy concern without allergy observation', sectionCode, st);
    return observations.flatMap((o) => mapAllergy(ctx, st, o, sectionCode));
  }
  notMapped(ctx, describe(st), sectionCode, st);
  return [];
}

/** The substance: participant CSM (IHE PCC Product / CI-SIS FR-Agent-allergene-ou-intolerant). */
function allergen(ctx: ConversionContext, obs: XElement): CodeableConcept | undefined {
  for (const p of children(obs, 'participant')) {
    if ((attr(p, 'typeCode') ?? 'CSM') !== 'CSM') continue;
    const entity = child(child(p, 'participantRole'), 'playingEntity');
    const cc = concept(ctx, child(entity, 'code'));
    const name = text(child(entity, 'name'));
    if (cc) {
      if (!cc.text && name) cc.text = name;
      return cc;
    }
    if (name && !isNull(child(entity, 'name'))) return { text: name };
  }
  return undefined;
}

function severityOf(ctx: ConversionContext, holder: XElement): AllergyIntoleranceReaction['severity'] {
  for (const rel of children(holder, 'entryRelationship')) {
    const st = statementOf(rel);
    if (st?.name === 'observation' && isSeverity(st)) {
      const code = attr(child(st, 'value'), 'code')?.trim();
      const s = own(SEVERITY, code);
      if (s) return s;
    }
  }
  return undefined;
}

function mapAllergy(ctx: ConversionContext, concern: XElement | undefined, obs: XElement, sectionCode: string | undefined): Ref[] {
  if (mood(obs) !== 'EVN') {
    notMapped(ctx, `Planned ${describe(obs)}`, sectionCode, obs);
    return [];
  }
  const narrative = entryName(ctx, obs);
  const substance = allergen(ctx, obs);
  const description = concept(ctx, child(obs, 'value'));
  const code = substance ?? description ?? (narrative ? { text: narrative } : undefined);
  if (!code) {
    // Seen in a published LDL-SES: a "drug allergy" observation with an empty value and a dangling
    // narrative reference, in a section whose narrative says no allergy was found. Emitting an
    // allergy to nothing would state an allergy the author did not write.
    notMapped(ctx, 'Allergy observation naming no substance, no description and no resolvable narrative', sectionCode, obs);
    return [];
  }
  const a: AllergyIntolerance = { resourceType: 'AllergyIntolerance', patient: ctx.patient ?? {} };
  const ids = identifiers(ctx, obs);
  if (ids.length) a.identifier = ids;
  const verif = verification(concern, obs);
  const status = clinicalStatus(concern, obs, sectionCode);
  if (verif !== 'entered-in-error') {
    if (status) {
      // AllergyIntolerance has no "remission" (inactive) nor "recurrence", "relapse" (active again).
      a.clinicalStatus = codeable(CLINICAL, status === 'remission' ? 'inactive' : status === 'recurrence' || status === 'relapse' ? 'active' : status);
    } else {
      a.clinicalStatus = absent();
      ctx.report.warn('ENTRY_INCOMPLETE', 'No allergy status, end date or concern status: AllergyIntolerance.clinicalStatus stated absent (ait-1).', obs);
    }
  }
  if (verif) a.verificationStatus = codeable(VERIFICATION, ALLERGY_VERIFICATION[verif]);
  const kindCode = attr(child(obs, 'code'), 'code')?.trim();
  const kind = own(KINDS, kindCode);
  if (kind?.type) a.type = kind.type;
  if (kind?.category) a.category = [kind.category];
  a.code = code;
  if (ctx.encounter) a.encounter = ctx.encounter;
  const effectiveTime = child(obs, 'effectiveTime');
  const onset = attr(effectiveTime, 'value') ? dateTime(ctx, effectiveTime) : dateTime(ctx, child(effectiveTime, 'low'));
  if (onset) a.onsetDateTime = onset;
  const by = author(ctx, obs, ACTORS);
  const byConcern = concern ? author(ctx, concern, ACTORS) : {};
  const recordedDate = by.time ?? byConcern.time;
  if (recordedDate) a.recordedDate = recordedDate;
  const recorder = by.ref ?? byConcern.ref;
  if (recorder) {
    a.recorder = recorder;
    a.asserter = recorder;
  }
  // The value describes the allergy when the substance is named elsewhere.
  if (substance && description?.text && description.text !== substance.text) (a.note ??= []).push({ text: description.text });

  const severity = severityOf(ctx, obs);
  for (const rel of children(obs, 'entryRelationship')) {
    const st = statementOf(rel);
    if (!st) continue;
    const note = commentText(ctx, st);
    if (note) {
      (a.note ??= []).push({ text: note });
    } else if (st.name === 'observation' && attr(rel, 'typeCode') === 'MFST' && isNegated(st)) {
      // A reaction stated absent: R4 reaction has no negation, and listing it would assert it.
      notMapped(ctx, `Reaction stated absent (negationInd="true")`, sectionCode, st);
    } else if (st.name === 'observation' && attr(rel, 'typeCode') === 'MFST') {
      const manifestation = concept(ctx, child(st, 'value')) ?? (entryText(ctx, st) ? { text: entryText(ctx, st) } : undefined);
      if (!manifestation) {
        notMapped(ctx, 'Reaction without manifestation', sectionCode, st);
        continue;
      }
      const reaction: AllergyIntoleranceReaction = { manifestation: [manifestation] };
      const s = severityOf(ctx, st) ?? severity;
      if (s) reaction.severity = s;
      const onsetR = dateTime(ctx, child(child(st, 'effectiveTime'), 'low')) ?? dateTime(ctx, child(st, 'effectiveTime'));
      if (onsetR) reaction.onset = onsetR;
      (a.reaction ??= []).push(reaction);
    } else if (st.name === 'observation' && isSeverity(st)) {
      if (!severity) notMapped(ctx, 'Allergy severity with an unknown value', sectionCode, st);
    } else if (st.name === 'observation' && (attr(child(st, 'code'), 'code') === '82606-5')) {
      const c = attr(child(st, 'value'), 'code')?.trim();
      const crit = own(CRITICALITY, c);
      if (crit) a.criticality = crit;
      else notMapped(ctx, 'Allergy criticality with an unknown value', sectionCode, st);
    } else if (st.name === 'observation' && isProblemStatus(st)) {
      continue; // read by clinicalStatus()
    } else if (certainty(st)) {
      continue; // read by verification()
    } else {
      notMapped(ctx, `${describe(st)} related to an allergy`, sectionCode, st);
    }
  }
  if (severity && !a.reaction) notMapped(ctx, 'Allergy severity without a reaction to carry it', sectionCode, obs);
  return [ctx.add(a, pathOf(obs))];
}
