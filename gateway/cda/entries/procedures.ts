/**
 * Acts performed → FHIR R4 Procedure (section 47519-4 "Actes et interventions", and procedure
 * entries of other sections; CI-SIS FR-Acte 1.2.250.1.213.1.1.3.62 = IHE PCC Procedure Entry
 * 1.3.6.1.4.1.19376.1.5.3.1.4.19, code CCAM / SNOMED CT).
 *
 * Only the event mood is a Procedure: a planned act (INT, RQO, PRMS, APT…) is a request, placed in
 * the care plan by careplan.ts, or reported. R4: status 1..1 (required binding); the CDA status is
 * mapped, and `unknown` — a code of that value set meaning the source does not say — is used when
 * it gives none (reported). negationInd="true" (the act was not done) → not-done.
 */
import type { Procedure } from '@medplum/fhirtypes';
import type { ConversionContext, Ref } from '../context.js';
import { concept } from '../datatypes.js';
import { effective } from '../time.js';
import { attr, child, children, pathOf, type XElement } from '../xml.js';
import {
  author, commentText, describe, entryName, identifiers, isNegated, mood, notMapped, performers, statementOf, statusOf,
} from './common.js';
import { own } from '../../util/own.js';
import { mapObservation } from './observations.js';

const ACTORS = ['Practitioner', 'PractitionerRole', 'Patient', 'RelatedPerson'] as const;
const PERFORMERS = ['Practitioner', 'PractitionerRole', 'Organization', 'Patient', 'RelatedPerson', 'Device'] as const;

const STATUS: Readonly<Record<string, Procedure['status']>> = {
  completed: 'completed',
  active: 'in-progress',
  aborted: 'stopped',
  cancelled: 'not-done',
  suspended: 'on-hold',
  held: 'on-hold',
  new: 'preparation',
  nullified: 'entered-in-error',
};

export function mapProcedure(ctx: ConversionContext, proc: XElement, sectionCode: string | undefined): Ref[] {
  if (mood(proc) !== 'EVN') {
    notMapped(ctx, `Planned ${describe(proc)} (a request, not a Procedure)`, sectionCode, proc);
    return [];
  }
  const narrative = entryName(ctx, proc);
  const cc = concept(ctx, child(proc, 'code'));
  if (!cc && !narrative) {
    // CI-SIS templates that require an FR-Acte sometimes carry a placeholder (code nullFlavor NA):
    // a Procedure naming no act would tell nothing.
    notMapped(ctx, 'Procedure naming no act (no code, no resolvable narrative)', sectionCode, proc);
    return [];
  }
  const code = statusOf(proc);
  let status: Procedure['status'] | undefined = isNegated(proc) ? 'not-done' : own(STATUS, code);
  if (!status) {
    ctx.report.warn('ENTRY_INCOMPLETE', `${code ? `statusCode "${code}"` : 'No statusCode'}: Procedure.status unknown.`, proc);
    status = 'unknown';
  }
  const p: Procedure = { resourceType: 'Procedure', status, subject: ctx.patient ?? {} };
  const ids = identifiers(ctx, proc);
  if (ids.length) p.identifier = ids;
  if (cc) {
    if (!cc.text && narrative) cc.text = narrative;
    p.code = cc;
  } else if (narrative) {
    p.code = { text: narrative };
  }
  if (ctx.encounter) p.encounter = ctx.encounter;
  const eff = effective(ctx, child(proc, 'effectiveTime'));
  if (eff.dateTime) p.performedDateTime = eff.dateTime;
  else if (eff.period) p.performedPeriod = eff.period;
  const sites = children(proc, 'targetSiteCode').map((s) => concept(ctx, s)).filter((s) => s !== undefined);
  if (sites.length) p.bodySite = sites;
  const who = performers(ctx, proc, PERFORMERS);
  if (who.length) p.performer = who.map((actor) => ({ actor }));
  const by = author(ctx, proc, ACTORS);
  if (by.ref) {
    p.recorder = by.ref;
    p.asserter = by.ref;
  }
  const results: XElement[] = [];
  for (const rel of children(proc, 'entryRelationship')) {
    const st = statementOf(rel);
    if (!st) continue;
    const note = commentText(ctx, st);
    const reason = attr(rel, 'typeCode') === 'RSON' ? concept(ctx, child(st, 'value') ?? child(st, 'code')) : undefined;
    if (note) (p.note ??= []).push({ text: note });
    else if (reason) (p.reasonCode ??= []).push(reason);
    else if (st.name === 'observation' && attr(rel, 'typeCode') !== 'RSON') results.push(st);
    else notMapped(ctx, `${describe(st)} related to a procedure`, sectionCode, st);
  }
  const ref = ctx.add(p, pathOf(proc));
  // An observation inside the act is its result (the CSE's hearing screening: "Audition à
  // recontrôler"): an Observation that is partOf the Procedure (R4 Observation.partOf).
  const observed = results.flatMap((st) => mapObservation(ctx, st, { sectionCode }));
  for (const o of observed) {
    const r = ctx.resolve(o);
    if (r?.resourceType === 'Observation' && !r.partOf) r.partOf = [ref];
  }
  return [ref, ...observed];
}
