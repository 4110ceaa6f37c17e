/**
 * Medical devices → FHIR R4 Device + DeviceUseStatement (section 46264-8 "Dispositifs médicaux").
 *
 * Two CI-SIS shapes:
 *  - FR-Dispositif-medical (1.2.250.1.213.1.1.3.20 = CCD Supply Activity 2.16.840.1.113883.10.20.1.34):
 *    a supply whose participant DEV/participantRole/playingDevice is the device (EMDN code, UDI in
 *    participantRole/id) and whose effectiveTime is the period of use;
 *  - FR-Prothese-et-objet-personnel (1.2.250.1.213.1.1.3.12, DLU): an observation whose code is the
 *    prosthesis or personal object (EMDN / TA_ASIP), BL value true when the patient has it, and
 *    targetSiteCode the side. A true (or descriptive) value states current use at effectiveTime →
 *    DeviceUseStatement status active; a false value states absence, which DeviceUseStatement
 *    cannot say: it stays an Observation.
 *
 * R4: DeviceUseStatement.status 1..1 (no "unknown" in its value set) — for a supply it is read
 * from the period of use (ended → completed, open → active), else from statusCode; when neither
 * tells, `_status` carries data-absent-reason.
 */
import type { Device, DeviceUdiCarrier, DeviceUseStatement, Element } from '@medplum/fhirtypes';
import type { ConversionContext, Ref } from '../context.js';
import { concept } from '../datatypes.js';
import { effective } from '../time.js';
import { attr, child, children, pathOf, text, type XElement } from '../xml.js';
import {
  absent, author, describe, entryName, identifiers, isNegated, mood, notMapped, statusOf, xsiType,
} from './common.js';
import { mapObservation } from './observations.js';
import { own } from '../../util/own.js';

type UseStatementOut = Omit<DeviceUseStatement, 'status'> & { status?: DeviceUseStatement['status']; _status?: Element };

const SOURCES = ['Patient', 'Practitioner', 'PractitionerRole', 'RelatedPerson'] as const;

/** GS1 element strings as written in published CDA (`{01}…{17}…{10}…{21}…`, or with parentheses). */
function udiOf(value: string | undefined): { carrier: DeviceUdiCarrier; lot?: string; serial?: string } | undefined {
  if (!value || !/^[({]01[)}]\d{14}/.test(value)) return undefined;
  const fields = new Map<string, string>();
  for (const m of value.matchAll(/[({](\d{2,4})[)}]([^({]*)/g)) if (m[1] && m[2] !== undefined) fields.set(m[1], m[2]);
  const gtin = fields.get('01');
  if (!gtin) return undefined;
  const out: { carrier: DeviceUdiCarrier; lot?: string; serial?: string } = {
    carrier: { deviceIdentifier: gtin, issuer: 'http://hl7.org/fhir/NamingSystem/gs1-di', carrierHRF: value },
  };
  const lot = fields.get('10');
  const serial = fields.get('21');
  if (lot) out.lot = lot;
  if (serial) out.serial = serial;
  return out;
}

function useStatement(ctx: ConversionContext, el: XElement, device: Ref): UseStatementOut {
  const dus: UseStatementOut = { resourceType: 'DeviceUseStatement', subject: ctx.patient ?? {}, device };
  const ids = identifiers(ctx, el);
  if (ids.length) dus.identifier = ids;
  const eff = effective(ctx, child(el, 'effectiveTime'));
  if (eff.dateTime) dus.timingDateTime = eff.dateTime;
  else if (eff.period) dus.timingPeriod = eff.period;
  const by = author(ctx, el, SOURCES);
  if (by.time) dus.recordedOn = by.time;
  if (by.ref) dus.source = by.ref;
  return dus;
}

const SUPPLY_STATUS: Readonly<Record<string, DeviceUseStatement['status']>> = {
  active: 'active',
  suspended: 'on-hold',
  held: 'on-hold',
  aborted: 'stopped',
  cancelled: 'stopped',
  completed: 'completed',
};

/** A supply with a device participant → Device + DeviceUseStatement. */
export function mapSupply(ctx: ConversionContext, supply: XElement, sectionCode: string | undefined): Ref[] {
  const participant = children(supply, 'participant').find((p) => attr(p, 'typeCode') === 'DEV' || child(child(p, 'participantRole'), 'playingDevice'));
  const role = child(participant, 'participantRole');
  const playing = child(role, 'playingDevice');
  if (!role || !playing) {
    notMapped(ctx, 'Supply without a device participant (participant DEV/participantRole/playingDevice)', sectionCode, supply);
    return [];
  }
  if (mood(supply) !== 'EVN' || isNegated(supply)) {
    notMapped(ctx, `${isNegated(supply) ? 'Negated' : 'Planned'} ${describe(supply)}`, sectionCode, supply);
    return [];
  }
  const d: Device = { resourceType: 'Device' };
  const ids = identifiers(ctx, role);
  if (ids.length) d.identifier = ids;
  for (const idEl of children(role, 'id')) {
    const udi = udiOf(attr(idEl, 'extension')?.trim());
    if (!udi) continue;
    (d.udiCarrier ??= []).push(udi.carrier);
    if (udi.lot) d.lotNumber = udi.lot;
    if (udi.serial) d.serialNumber = udi.serial;
  }
  const model = text(child(playing, 'manufacturerModelName'));
  if (model) d.deviceName = [{ name: model, type: 'model-name' }];
  const manufacturer = text(child(child(role, 'scopingEntity'), 'desc'));
  if (manufacturer) d.manufacturer = manufacturer;
  const name = entryName(ctx, supply);
  const type = concept(ctx, child(playing, 'code')) ?? (name ? { text: name } : undefined);
  if (type) d.type = type;
  else ctx.report.warn('ENTRY_INCOMPLETE', 'Device without a type (playingDevice/code) or narrative.', playing);
  if (ctx.patient) d.patient = ctx.patient;
  const deviceRef = ctx.add(d, pathOf(supply));

  const dus = useStatement(ctx, supply, deviceRef);
  const code = statusOf(supply);
  const et = child(supply, 'effectiveTime');
  if (code === 'nullified') dus.status = 'entered-in-error';
  else if (attr(child(et, 'high'), 'value')) dus.status = 'completed';
  else if (attr(child(et, 'low'), 'value')) dus.status = 'active';
  else if (own(SUPPLY_STATUS, code)) dus.status = own(SUPPLY_STATUS, code);
  else {
    dus._status = absent();
    ctx.report.warn('ENTRY_INCOMPLETE', 'Neither a period of use nor a status: DeviceUseStatement.status stated absent.', supply);
  }
  // Cast: the R4 JSON allows `_status` in place of `status`; the TypeScript type does not.
  const dusRef = ctx.add(dus as DeviceUseStatement, pathOf(supply));
  return [deviceRef, dusRef];
}

/** FR-Prothese-et-objet-personnel observation → Device + DeviceUseStatement (or an Observation when the value is false). */
export function mapDeviceObservation(ctx: ConversionContext, obs: XElement, sectionCode: string | undefined): Ref[] {
  const value = child(obs, 'value');
  const isBoolean = xsiType(value) === 'BL';
  if (mood(obs) !== 'EVN' || isNegated(obs) || (isBoolean && attr(value, 'value')?.trim() !== 'true')) {
    // Absence ("no glasses"), a negated or a planned statement: not a device in use.
    return mapObservation(ctx, obs, { sectionCode });
  }
  const d: Device = { resourceType: 'Device' };
  const narrative = entryName(ctx, obs);
  const type = concept(ctx, child(obs, 'code')) ?? (narrative ? { text: narrative } : undefined);
  if (type) d.type = type;
  else ctx.report.warn('ENTRY_INCOMPLETE', 'Prosthesis or personal object without a code or narrative.', obs);
  if (ctx.patient) d.patient = ctx.patient;
  const deviceRef = ctx.add(d, pathOf(obs));
  const dus = useStatement(ctx, obs, deviceRef);
  dus.status = statusOf(obs) === 'nullified' ? 'entered-in-error' : 'active';
  const site = children(obs, 'targetSiteCode').map((s) => concept(ctx, s)).find((s) => s !== undefined);
  if (site) dus.bodySite = site;
  if (value && !isBoolean) {
    const described = concept(ctx, value)?.text ?? text(value);
    if (described && described !== type?.text) dus.note = [{ text: described }];
  }
  return [deviceRef, ctx.add(dus as DeviceUseStatement, pathOf(obs))];
}
