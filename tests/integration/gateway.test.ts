/**
 * The gateway tried as an integrator would (issue "Gateway core", Done when): `passerelle start`
 * with one's own SRIR and ROR fixture files and clients; documents for patients living in
 * different communes, départements and régions (known to the SRIR, unknown, one with a conflicting
 * birth date); every document found at exactly the PTA covering the patient's commune, identity
 * statuses as the SRIR data implies, the conflict quarantined then released by an operator,
 * nothing visible across PTAs, nothing duplicated when a document is posted twice, a replacement
 * superseding its predecessor.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Bundle, Extension, HealthcareService, Organization, Patient } from '@medplum/fhirtypes';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { insWithKey, withDocumentId, withPatient, type PatientVariant } from '../support/cda-variants.js';
import { corpusDocument } from '../support/corpus.js';
import { validateWithStructureDefinitions } from '../support/fhir-validator.js';
import { spawnGateway, type GatewayProcess } from '../support/gateway-process.js';
import { settledEntry } from '../support/settled.js';

const dir = mkdtempSync(join(tmpdir(), 'passerelle-e2e-'));
const TOKENS = { sender: 'e2e-sender-token-000000000001', azur: 'e2e-pta-azur-token-0000000001', rhone: 'e2e-pta-rhone-token-000000001', breizh: 'e2e-pta-breizh-token-00000001', ops: 'e2e-admin-token-0000000000001' };
const FINESS = { azur: '060000011', rhone: '690000011', breizh: '350000011' };

// --- the integrator's own SRIR data -------------------------------------------------------------
const RELIABILITY = 'https://hl7.fr/ig/fhir/core/StructureDefinition/fr-core-identity-reliability';
const status = (code: string): Extension => ({ url: RELIABILITY, extension: [{ url: 'identityStatus', valueCoding: { system: 'https://hl7.fr/ig/fhir/core/CodeSystem/fr-core-cs-identity-status', code } }] });
/** Strict traits of the corpus LDL-SES patient, with the family name and birth date varied. */
const srirPatient = (id: string, ins: string, family: string, birthDate: string, code: string): Patient => ({
  resourceType: 'Patient', id, active: true,
  extension: [status(code), { url: 'http://hl7.org/fhir/StructureDefinition/patient-birthPlace', valueAddress: { extension: [{ url: 'https://hl7.fr/ig/fhir/core/StructureDefinition/fr-core-address-insee-code', valueCoding: { code: '51215' } }] } }],
  identifier: [
    { use: 'official', system: 'urn:oid:1.2.250.1.213.1.4.8', value: ins },
    { system: 'urn:oid:2.999.42', value: `REG-${id}` },
  ],
  name: [{ use: 'official', family, given: ['DOMINIQUE'], extension: [{ url: 'https://hl7.fr/ig/fhir/core/StructureDefinition/fr-core-patient-birth-list-given-name', valueString: 'DOMINIQUE MARIE-LOUISE' }] }],
  gender: 'female', birthDate,
});

const INS = { nice: '2790351215190', lyon: '2790351215191', conflict: '2790351215192', rennes: '2790351215193', marseille: '2790351215194' };
const srir: Bundle = {
  resourceType: 'Bundle', type: 'collection',
  entry: [
    srirPatient('nice', insWithKey(INS.nice), 'AZUREEN', '1979-03-28', 'VALI'),
    srirPatient('lyon', insWithKey(INS.lyon), 'LYONNAIS', '1979-03-28', 'QUAL'),
    srirPatient('conflict', insWithKey(INS.conflict), 'CONFLIT', '1980-01-01', 'QUAL'),
  ].map((resource) => ({ resource })),
};

// --- the integrator's own ROR data --------------------------------------------------------------
const dac = (key: keyof typeof FINESS, name: string, level: '1' | '2' | '3', code: string): [Organization, HealthcareService] => [
  {
    resourceType: 'Organization', id: `dac-${key}`, name, active: true,
    identifier: [{ system: 'https://finess.esante.gouv.fr', value: FINESS[key] }],
    type: [{ coding: [{ system: 'https://mos.esante.gouv.fr/NOS/TRE_R66-CategorieEtablissement/FHIR/TRE-R66-CategorieEtablissement', code: '606' }] }],
  },
  {
    resourceType: 'HealthcareService', id: `hs-${key}`, active: true, providedBy: { reference: `Organization/dac-${key}` }, name,
    extension: [{
      url: 'https://interop.esante.gouv.fr/ig/fhir/ror/StructureDefinition/ror-territorial-division',
      extension: [
        { url: 'typeTerritorialDivision', valueCodeableConcept: { coding: [{ system: 'https://mos.esante.gouv.fr/NOS/TRE_R201-TypeDivisionTerritoriale/FHIR/TRE-R201-TypeDivisionTerritoriale', code: level }] } },
        { url: 'codeTerritorialDivision', valueCodeableConcept: { coding: [{ code }] } },
      ],
    }],
  },
];
const ror: Bundle = {
  resourceType: 'Bundle', type: 'collection',
  entry: [...dac('azur', 'DAC Nice Côte d’Azur', '3', '06088'), ...dac('rhone', 'DAC Rhône', '2', '69'), ...dac('breizh', 'DAC Bretagne', '1', '53')].map((resource) => ({ resource })),
};

writeFileSync(join(dir, 'srir.json'), JSON.stringify(srir));
writeFileSync(join(dir, 'ror.json'), JSON.stringify(ror));
writeFileSync(join(dir, 'config.json'), JSON.stringify({
  http: { port: 0, host: '127.0.0.1' }, smtp: { port: 0 },
  dataDir: 'data',
  srir: { fixture: 'srir.json' },
  ror: { fixture: 'ror.json' },
  pipeline: { pollMs: 50 },
  log: { level: 'info' },
  clients: [
    { id: 'chu', token: TOKENS.sender, role: 'sender', organization: '750803447' },
    { id: 'pta-azur', token: TOKENS.azur, role: 'pta', organization: FINESS.azur },
    { id: 'pta-rhone', token: TOKENS.rhone, role: 'pta', organization: `https://finess.esante.gouv.fr|${FINESS.rhone}` },
    { id: 'pta-breizh', token: TOKENS.breizh, role: 'pta', organization: FINESS.breizh },
    { id: 'ops', token: TOKENS.ops, role: 'admin' },
  ],
}));

// --- documents ----------------------------------------------------------------------------------
const template = corpusDocument('LDL-SES_2022.01.xml').toString('utf8');
const doc = (id: string, v: PatientVariant): string => withDocumentId(withPatient(template, v), id);
const DOCS = {
  nice: doc('e2e-nice', { insBody: INS.nice, family: 'AZUREEN', postalCode: '06000', city: 'NICE' }),
  lyon: doc('e2e-lyon', { insBody: INS.lyon, family: 'LYONNAIS', postalCode: '69003', city: 'LYON' }),
  rennes: doc('e2e-rennes', { insBody: INS.rennes, family: 'RENNAIS', postalCode: '35000', city: 'RENNES' }),
  conflict: doc('e2e-conflict', { insBody: INS.conflict, family: 'CONFLIT', postalCode: '06000', city: 'NICE' }),
  marseille: doc('e2e-marseille', { insBody: INS.marseille, family: 'PHOCEEN', postalCode: '13001', city: 'MARSEILLE' }),
};

let gw: GatewayProcess;
beforeAll(async () => {
  gw = await spawnGateway(join(dir, 'config.json'));
}, 60_000);
afterAll(async () => {
  await gw.kill('SIGTERM');
});

const call = (path: string, token?: string, init: RequestInit = {}): Promise<Response> =>
  fetch(`${gw.url}${path}`, { ...init, headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(init.headers as Record<string, string> | undefined) } });
const post = async (body: string): Promise<string> => {
  const res = await call('/documents', TOKENS.sender, { method: 'POST', body, headers: { 'content-type': 'application/hl7-cda+xml' } });
  expect(res.status).toBe(202);
  expect(res.headers.get('location')).toMatch(/^\/messages\//);
  return ((await res.json()) as { id: string }).id;
};
interface Status { state: string; errorCode?: string; bundles: string[]; history: { state: string }[]; result: Record<string, unknown> }
const settled = (id: string): Promise<Status> => settledEntry<Status>(gw.url, id, TOKENS.sender, 20_000);
const searchIds = async (token: string, query = ''): Promise<string[]> => {
  const res = await call(`/fhir/Bundle?_count=100${query}`, token);
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toContain('application/fhir+json');
  return (((await res.json()) as Bundle).entry ?? []).map((e) => e.resource?.id ?? '');
};
const patientOf = (b: Bundle): Patient => b.entry?.find((e) => e.resource?.resourceType === 'Patient')?.resource as Patient;
const statusOf = (p: Patient): string | undefined => p.extension?.find((e) => e.url === RELIABILITY)?.extension?.find((e) => e.url === 'identityStatus')?.valueCoding?.code;

describe('gateway, end to end', () => {
  const ids: Record<string, string> = {};
  const outcome: Record<string, Status> = {};

  it('accepts every document with 202 and settles each', async () => {
    for (const [name, body] of Object.entries(DOCS)) ids[name] = await post(body);
    for (const [name, id] of Object.entries(ids)) outcome[name] = await settled(id);
    expect(outcome.nice?.state).toBe('delivered');
    expect(outcome.lyon?.state).toBe('delivered');
    expect(outcome.rennes?.state).toBe('delivered');
    expect(outcome.conflict).toMatchObject({ state: 'quarantined', errorCode: 'IDENTITY_COLLISION' });
    expect(outcome.marseille).toMatchObject({ state: 'quarantined', errorCode: 'ROUTING_NO_DAC' });
    expect(outcome.nice?.history.map((h) => h.state)).toEqual(['received', 'converted', 'identified', 'resolved', 'delivered']);
  });

  it('routes each document to exactly the PTA covering the commune, at commune, département or région level', async () => {
    const routingOf = (name: string): unknown => (outcome[name]?.result.documents as { routing?: unknown }[] | undefined)?.[0]?.routing;
    const seen = { azur: await searchIds(TOKENS.azur), rhone: await searchIds(TOKENS.rhone), breizh: await searchIds(TOKENS.breizh) };
    const bundleId = (name: string): string => (outcome[name]?.bundles[0] ?? '').replace('Bundle/', '');
    expect(seen.azur).toEqual([bundleId('nice')]);
    expect(seen.rhone).toEqual([bundleId('lyon')]);
    expect(seen.breizh).toEqual([bundleId('rennes')]);
    expect(routingOf('nice')).toMatchObject({ level: 'commune', commune: '06088' });
    expect(routingOf('lyon')).toMatchObject({ level: 'departement', commune: '69383' });
    expect(routingOf('rennes')).toMatchObject({ level: 'region', commune: '35238' });
  });

  it('carries the identity status the SRIR implies, and valid FHIR', async () => {
    const read = async (name: string, token: string): Promise<Bundle> => {
      const res = await call(`/fhir/${outcome[name]?.bundles[0] ?? ''}`, token);
      expect(res.status).toBe(200);
      return (await res.json()) as Bundle;
    };
    const nice = await read('nice', TOKENS.azur);
    expect(statusOf(patientOf(nice))).toBe('VALI');
    expect(patientOf(nice).identifier?.some((i) => i.value === 'REG-nice')).toBe(true);
    expect(statusOf(patientOf(await read('lyon', TOKENS.rhone)))).toBe('QUAL');
    const rennes = await read('rennes', TOKENS.breizh);
    expect(statusOf(patientOf(rennes))).toBe('PROV');
    expect(validateWithStructureDefinitions(nice)).toEqual([]);
  });

  it('shows nothing across PTAs: another PTA’s Bundle answers exactly like a missing one', async () => {
    const other = await call(`/fhir/${outcome.nice?.bundles[0] ?? ''}`, TOKENS.rhone);
    const missing = await call('/fhir/Bundle/00000000-0000-0000-0000-000000000000', TOKENS.rhone);
    expect(other.status).toBe(404);
    expect(await other.text()).toBe(await missing.text());
    expect((await call(`/fhir/${outcome.nice?.bundles[0] ?? ''}`)).status).toBe(401);
    expect((await call(`/fhir/${outcome.nice?.bundles[0] ?? ''}`, TOKENS.sender)).status).toBe(403);
    expect((await call(`/messages/${ids.nice ?? ''}`, TOKENS.azur)).status).toBe(403);
  });

  it('stores a document posted twice once', async () => {
    const again = await settled(await post(DOCS.nice));
    expect(again.state).toBe('delivered');
    expect(again.bundles).toEqual(outcome.nice?.bundles);
    expect(await searchIds(TOKENS.azur)).toHaveLength(1);
  });

  it('lets an operator release the identity conflict, recorded with who and why', async () => {
    const id = ids.conflict ?? '';
    expect((await call(`/messages/${id}/$release`, TOKENS.sender, { method: 'POST', body: '{"reason":"x"}' })).status).toBe(403);
    const res = await call(`/messages/${id}/$release`, TOKENS.ops, { method: 'POST', body: JSON.stringify({ reason: 'birth date checked with the patient' }) });
    expect(res.status).toBe(202);
    const released = await settled(id);
    expect(released.state).toBe('delivered');
    const history = (await (await call(`/messages/${id}`, TOKENS.ops)).json()) as { history: { outcome: string; actor?: string; detail?: string }[] };
    expect(history.history.find((h) => h.outcome === 'release')).toMatchObject({ actor: 'ops' });
    const bundle = (await (await call(`/fhir/${released.bundles[0] ?? ''}`, TOKENS.azur)).json()) as Bundle;
    expect(statusOf(patientOf(bundle))).toBe('PROV');
    expect(patientOf(bundle).birthDate).toBe('1979-03-28'); // traits never overwritten
    expect((await call(`/messages/${ids.marseille ?? ''}/$release`, TOKENS.ops, { method: 'POST', body: '{"reason":"try"}' })).status).toBe(409);
  });

  it('supersedes a replaced document (RPLC) instead of duplicating it', async () => {
    const rplc = DOCS.nice.replace('<componentOf>', '<relatedDocument typeCode="RPLC"><parentDocument><id root="1.2.250.1.213.1.1.1.29.2022.1.1" extension="e2e-nice"/></parentDocument></relatedDocument><componentOf>');
    const v2 = await settled(await post(rplc.replace('extension="e2e-nice"/>', 'extension="e2e-nice-v2"/>').replace('<versionNumber value="1"/>', '<versionNumber value="2"/>')));
    expect(v2.state).toBe('delivered');
    const current = await searchIds(TOKENS.azur);
    expect(current).toContain(v2.bundles[0]?.replace('Bundle/', ''));
    const old = (await (await call(`/fhir/${outcome.nice?.bundles[0] ?? ''}`, TOKENS.azur)).json()) as Bundle;
    expect(JSON.stringify(old.meta ?? {})).toContain('superseded');
  });

  it('answers bad input with its code: a PDF, JSON, a wrong content type, no token', async () => {
    const pdf = await call('/documents', TOKENS.sender, { method: 'POST', body: '%PDF-1.7\n…', headers: { 'content-type': 'application/xml' } });
    expect(pdf.status).toBe(415);
    const code = (r: unknown): string | undefined => (r as { issue: { details: { coding: { code: string }[] } }[] }).issue[0]?.details.coding[0]?.code;
    expect(code(await pdf.json())).toBe('INPUT_NOT_CDA');
    const quarantined = await settled((pdf.headers.get('location') ?? '').replace('/messages/', ''));
    expect(quarantined).toMatchObject({ state: 'quarantined', errorCode: 'INPUT_NOT_CDA' });
    const json = await call('/documents', TOKENS.sender, { method: 'POST', body: '{"resourceType":"Bundle"}', headers: { 'content-type': 'application/xml' } });
    expect(json.status).toBe(415);
    expect((await call('/documents', TOKENS.sender, { method: 'POST', body: 'x', headers: { 'content-type': 'text/plain' } })).status).toBe(415);
    expect((await call('/documents', undefined, { method: 'POST', body: '<x/>', headers: { 'content-type': 'application/xml' } })).status).toBe(401);
    const broken = await settled(await post('<ClinicalDocument xmlns="urn:hl7-org:v3"><id root="1.2.3"/>'));
    expect(broken).toMatchObject({ state: 'quarantined', errorCode: 'CDA_NOT_WELL_FORMED' });
  });

  it('serves health, readiness, metrics and the capability statement', async () => {
    expect((await call('/health')).status).toBe(200);
    expect(await (await call('/ready')).json()).toMatchObject({ journal: 'ok', store: 'ok' });
    const metrics = await (await call('/metrics')).text();
    expect(metrics).toMatch(/passerelle_entries\{state="delivered"\} \d+/);
    expect(metrics).toMatch(/passerelle_stage_duration_seconds_bucket\{.*stage="identify"/);
    expect(metrics).toMatch(/passerelle_neighbour_calls_total\{neighbour="srir"/);
    expect(((await (await call('/fhir/metadata')).json()) as { resourceType: string }).resourceType).toBe('CapabilityStatement');
  });

  it('converts a document of several megabytes (a scanned letter) on its conversion thread, like any other', async () => {
    const scanned = withDocumentId(withPatient(corpusDocument('DOC_NON_STRUCTURE_CDA-R2-N1.xml').toString('utf8'), { insBody: INS.lyon, family: 'LYONNAIS', postalCode: '69003', city: 'LYON' }), 'e2e-scanned');
    const pdf = Buffer.concat([Buffer.from('%PDF-1.5\n'), randomBytes(5 * 1024 * 1024)]);
    const big = scanned.replace(/(representation="B64">)[^<]*/, `$1${pdf.toString('base64')}`);
    expect(big.length).toBeGreaterThan(4 * 1024 * 1024); // conversion-thread.ts: the thread takes documents from 4 MB
    const status = await settled(await post(big));
    expect(status.state).toBe('delivered');
    const bundle = (await (await call(`/fhir/${status.bundles[0] ?? ''}`, TOKENS.rhone)).json()) as Bundle;
    const binaries = (bundle.entry ?? []).flatMap((e) => (e.resource?.resourceType === 'Binary' ? [e.resource] : []));
    expect(binaries.find((b) => b.contentType === 'application/pdf')?.data).toBe(pdf.toString('base64'));
    expect(Buffer.from(binaries.find((b) => b.contentType === 'application/hl7-cda+xml')?.data ?? '', 'base64').toString('utf8')).toBe(big);
    expect(statusOf(patientOf(bundle))).toBe('QUAL');
  });

  it('never writes patient data to its logs', () => {
    const logs = JSON.stringify(gw.logs);
    for (const secret of ['AZUREEN', 'LYONNAIS', 'DOMINIQUE', insWithKey(INS.nice), '1979-03-28', 'Breteuil']) expect(logs).not.toContain(secret);
  });
});
