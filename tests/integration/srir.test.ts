/**
 * Identity vigilance end to end: the mock SRIR served by a real Koa server on loopback, the real
 * HTTP client against it, and identify() over Bundles converted from the corpus documents
 * (../shared/corpus/cda, read in place) and synthetic variants of them. Failure modes use real
 * servers too: a closed port, a server answering 500, one that never answers, one answering HTML.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Koa from 'koa';
import type { Bundle, CapabilityStatement, OperationOutcome, Parameters, Patient } from '@medplum/fhirtypes';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SrirClient } from '../../adapters/srir/client.js';
import { createSrirMock, loadSrirFixture, MOCK_REGIONAL_SYSTEM } from '../../adapters/srir/mock.js';
import { convertCda } from '../../gateway/cda/convert.js';
import { PasserelleError, type ErrorCode } from '../../gateway/errors.js';
import { validateBundle } from '../../gateway/fhir/validate.js';
import { identify, IDENTITY_STATUS_SYSTEM, type IdentifyOutcome } from '../../gateway/identity/identify.js';
import { checkInsKey } from '../../gateway/identity/ins.js';
import { extractTraits, IDENTITY_RELIABILITY_URL, insIdentifiers } from '../../gateway/identity/traits.js';
import { corpusDocument } from '../support/corpus.js';
import { validateWithStructureDefinitions } from '../support/fhir-validator.js';
import { close, listen, type Running } from '../support/loopback.js';
import { rejection } from '../support/rejection.js';

const PREFIX = '/fixtures/srir/fhir';
const FR = 'https://hl7.fr/ig/fhir/core/StructureDefinition/';
const INS_NIR = 'urn:oid:1.2.250.1.213.1.4.8';
const INS_NIR_TEST = 'urn:oid:1.2.250.1.213.1.4.10';
const PAT_TROIS_DOCS = ['LDL-SES_2022.01.xml', 'DLU-EHPAD-FLUDT_2022.01.xml', 'BIO-CR-BIO_2024.01_TSH_1.xml', 'DOC_NON_STRUCTURE_CDA-R2-N1.xml'];
const NONE: ReadonlySet<ErrorCode> = new Set();


function mockApp(fixture: Bundle, before?: Koa.Middleware): Koa {
  const app = new Koa();
  if (before) app.use(before);
  const router = createSrirMock(fixture, PREFIX);
  app.use(router.routes());
  app.use(router.allowedMethods());
  return app;
}

const sample = loadSrirFixture();
const converted = new Map<string, Bundle>();
/** A fresh copy of the corpus document's Bundle (conversion done once per file). */
function corpusBundle(name: string): Bundle {
  let b = converted.get(name);
  if (!b) {
    b = convertCda(corpusDocument(name)).bundle;
    converted.set(name, b);
  }
  return structuredClone(b);
}

function patientOf(bundle: Bundle): Patient {
  const p = bundle.entry?.find((e) => e.resource?.resourceType === 'Patient')?.resource;
  if (!p) throw new Error('no Patient in the Bundle');
  return p as Patient;
}

/** A synthetic variant: the corpus document's Bundle with its Patient edited. */
function variant(name: string, edit: (p: Patient) => void): Bundle {
  const b = corpusBundle(name);
  edit(patientOf(b));
  return b;
}

const withoutIns = (p: Patient): void => {
  const ins = insIdentifiers(p);
  p.identifier = (p.identifier ?? []).filter((id) => !ins.includes(id));
};

function setIns(p: Patient, system: string, value: string, code: string): void {
  withoutIns(p);
  (p.identifier ??= []).unshift({ use: 'official', type: { coding: [{ system: 'https://hl7.fr/ig/fhir/core/CodeSystem/fr-core-cs-v2-0203', code }] }, system, value });
}

function setBirthName(p: Patient, family: string, list: string): void {
  const official = p.name?.find((n) => n.use === 'official');
  if (!official) throw new Error('no official name');
  official.family = family;
  official.given = [list.split(' ')[0] as string];
  official.extension = [{ url: `${FR}fr-core-patient-birth-list-given-name`, valueString: list }];
}

function setBirthPlace(p: Patient, code: string): void {
  const address = p.extension?.find((e) => e.url === 'http://hl7.org/fhir/StructureDefinition/patient-birthPlace')?.valueAddress;
  const insee = address?.extension?.find((e) => e.url === `${FR}fr-core-address-insee-code`);
  if (!insee?.valueCoding) throw new Error('no birth place code');
  insee.valueCoding.code = code;
}

function statusOf(p: Patient): string | undefined {
  const ext = p.extension?.filter((e) => e.url === IDENTITY_RELIABILITY_URL) ?? [];
  expect(ext).toHaveLength(1);
  const coding = ext[0]?.extension?.find((e) => e.url === 'identityStatus')?.valueCoding;
  expect(coding?.system).toBe(IDENTITY_STATUS_SYSTEM);
  return coding?.code;
}

/** Words of the patient's traits that must never appear in a reason or error detail. */
const TRAIT_WORDS = ['PAT-TROIS', 'PAT TROIS', 'DOMINIQUE', 'MARIE-LOUISE', '1979', '51215', '279035121518989', 'DUPONT', 'MARTIN', '295109912611193', 'DECOURCY', 'Ruth'];
function expectNoPatientData(text: string): void {
  for (const w of TRAIT_WORDS) expect(text.toUpperCase()).not.toContain(w.toUpperCase());
}

let srir: Running;
let dupSrir: Running;
let manySrir: Running;
let client: SrirClient;

beforeAll(async () => {
  srir = await listen(mockApp(sample).callback());
  // Two SRIR Patients holding the same INS: a duplicate the SRIR has not merged yet.
  const dup = structuredClone(sample);
  const first = dup.entry?.[0]?.resource as Patient;
  dup.entry?.push({ resource: { ...structuredClone(first), id: 'srir-pat-trois-bis', identifier: [...(first.identifier ?? []).filter((i) => i.system !== MOCK_REGIONAL_SYSTEM), { system: MOCK_REGIONAL_SYSTEM, value: 'R-000099' }] } });
  dupSrir = await listen(mockApp(dup).callback());
  // 45 homonyms: three PDQm pages of 20.
  const many: Bundle = {
    resourceType: 'Bundle',
    type: 'collection',
    entry: Array.from({ length: 45 }, (_, i) => ({ resource: { resourceType: 'Patient', id: `h${i}`, name: [{ use: 'official', family: 'HOMONYME', given: ['ALEX'] }], gender: 'unknown', birthDate: '2000-01-01' } as Patient })),
  };
  manySrir = await listen(mockApp(many).callback());
  client = new SrirClient({ baseUrl: `${srir.origin}${PREFIX}`, timeoutMs: 3000, retries: 2, retryBaseMs: 5 });
});

afterAll(async () => {
  await Promise.all([srir, dupSrir, manySrir].filter(Boolean).map(close));
});

describe('the sample SRIR fixture', () => {
  it('is a valid FR Core-shaped Bundle of Patients whose INS keys are valid', () => {
    expect(validateWithStructureDefinitions(sample)).toEqual([]);
    const patients = (sample.entry ?? []).map((e) => e.resource as Patient);
    expect(patients.length).toBeGreaterThanOrEqual(7);
    for (const p of patients) {
      for (const ins of insIdentifiers(p)) expect(checkInsKey(ins.value as string), `${p.id as string}`).toEqual({ valid: true });
      expect(p.identifier?.some((i) => i.system === MOCK_REGIONAL_SYSTEM)).toBe(true);
      expect(p.extension?.some((e) => e.url === IDENTITY_RELIABILITY_URL)).toBe(true);
    }
  });

  it('holds the corpus patients with the traits of their documents', () => {
    const byId = new Map((sample.entry ?? []).map((e) => [e.resource?.id, e.resource as Patient]));
    expect(extractTraits(byId.get('srir-pat-trois') as Patient)).toEqual(extractTraits(patientOf(corpusBundle('LDL-SES_2022.01.xml'))));
    expect(extractTraits(byId.get('srir-decourcy') as Patient)).toEqual(extractTraits(patientOf(corpusBundle('CSE-MDE_2023.01.xml'))));
  });
});

describe('loadSrirFixture', () => {
  const dir = mkdtempSync(join(tmpdir(), 'passerelle-srir-'));
  const file = (name: string, content: string): string => {
    const path = join(dir, name);
    writeFileSync(path, content);
    return path;
  };

  it('reads a fixture file', () => {
    const bundle: Bundle = { resourceType: 'Bundle', type: 'collection', entry: [{ resource: { resourceType: 'Patient', id: 'p1' } }] };
    expect(loadSrirFixture(file('ok.json', JSON.stringify(bundle)))).toEqual(bundle);
  });

  it.each([
    ['a missing file', (): string => join(dir, 'missing.json'), /cannot read/],
    ['a file that is not JSON', (): string => file('bad.json', '{ nope'), /not JSON/],
    ['a resource that is not a Bundle', (): string => file('patient.json', JSON.stringify({ resourceType: 'Patient', id: 'x' })), /not a FHIR Bundle/],
    ['a Bundle holding something else than Patients', (): string => file('obs.json', JSON.stringify({ resourceType: 'Bundle', type: 'collection', entry: [{ resource: { resourceType: 'Observation', status: 'final', code: { text: 'x' } } }] })), /not a Patient/],
    ['a Patient without id', (): string => file('noid.json', JSON.stringify({ resourceType: 'Bundle', type: 'collection', entry: [{ resource: { resourceType: 'Patient' } }] })), /no valid id/],
    ['two Patients with one id', (): string => file('dup.json', JSON.stringify({ resourceType: 'Bundle', type: 'collection', entry: [{ resource: { resourceType: 'Patient', id: 'a' } }, { resource: { resourceType: 'Patient', id: 'a' } }] })), /used twice/],
    ['an invalid FHIR Patient', (): string => file('invalid.json', JSON.stringify({ resourceType: 'Bundle', type: 'collection', entry: [{ resource: { resourceType: 'Patient', id: 'a', gender: 'F' } }] })), /not a valid FHIR R4 Bundle/],
  ])('refuses %s with CONFIG_INVALID', (_label, path, message) => {
    let error: unknown;
    try {
      loadSrirFixture(path());
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(PasserelleError);
    expect((error as PasserelleError).code).toBe('CONFIG_INVALID');
    expect((error as PasserelleError).message).toMatch(message);
  });
});

describe('the mock SRIR over HTTP', () => {
  const get = async <T>(path: string): Promise<{ status: number; type: string | null; body: T }> => {
    const res = await fetch(`${srir.origin}${PREFIX}${path}`, { headers: { accept: 'application/fhir+json' } });
    return { status: res.status, type: res.headers.get('content-type'), body: (await res.json()) as T };
  };
  const pixPath = (source: string, ...targets: string[]): string =>
    `/Patient/$ihe-pix?sourceIdentifier=${encodeURIComponent(source)}${targets.map((t) => `&targetSystem=${encodeURIComponent(t)}`).join('')}`;

  it('serves its CapabilityStatement', async () => {
    const { status, type, body } = await get<CapabilityStatement>('/metadata');
    expect(status).toBe(200);
    expect(type).toMatch(/^application\/fhir\+json/);
    expect(body.resourceType).toBe('CapabilityStatement');
    expect(body.rest?.[0]?.resource?.[0]?.operation?.[0]?.definition).toBe('https://profiles.ihe.net/ITI/PIXm/OperationDefinition/IHE.PIXm.pix');
    expect(validateWithStructureDefinitions({ resourceType: 'Bundle', type: 'collection', entry: [{ resource: body }] })).toEqual([]);
  });

  it('PIXm: cross-references an INS with the other identifiers and the Patient, never echoing the source', async () => {
    const { status, body } = await get<Parameters>(pixPath(`${INS_NIR_TEST}|279035121518989`));
    expect(status).toBe(200);
    expect(body.parameter).toEqual([
      { name: 'targetIdentifier', valueIdentifier: { use: 'usual', system: MOCK_REGIONAL_SYSTEM, value: 'R-000001' } },
      { name: 'targetId', valueReference: { reference: 'Patient/srir-pat-trois' } },
    ]);
  });

  it('PIXm: limits identifiers to the targetSystem domains', async () => {
    const { body } = await get<Parameters>(pixPath(`${MOCK_REGIONAL_SYSTEM}|R-000004`, INS_NIR));
    expect(body.parameter?.filter((p) => p.name === 'targetIdentifier').map((p) => p.valueIdentifier?.value)).toEqual(['260058815400233']);
    const encoded = await fetch(`${srir.origin}${PREFIX}/Patient/%24ihe-pix?sourceIdentifier=${encodeURIComponent(`${INS_NIR}|260058815400233`)}`);
    expect(encoded.status).toBe(200);
  });

  it.each([
    ['no sourceIdentifier', '/Patient/$ihe-pix', 400, 'required'],
    ['a sourceIdentifier without system', `/Patient/$ihe-pix?sourceIdentifier=279035121518989`, 400, 'required'],
    ['two sourceIdentifiers', `${pixPath(`${INS_NIR}|260058815400233`)}&sourceIdentifier=${encodeURIComponent(`${INS_NIR}|148025935006720`)}`, 400, 'required'],
    ['an unknown source domain', pixPath('urn:oid:1.2.3.4|1'), 400, 'code-invalid'],
    ['an unknown targetSystem', pixPath(`${INS_NIR}|260058815400233`, 'urn:oid:1.2.3.4'), 403, 'code-invalid'],
    ['an unknown identifier', pixPath(`${INS_NIR}|253072B07300470`), 404, 'not-found'],
  ])('PIXm answers %s with its ITI-83 error', async (_label, path, status, code) => {
    const res = await get<OperationOutcome>(path);
    expect(res.status).toBe(status);
    expect(res.body.resourceType).toBe('OperationOutcome');
    expect(res.body.issue[0]?.code).toBe(code);
  });

  it('PDQm: prefix match insensitive to case, accents and hyphens; :exact as written', async () => {
    const ids = async (query: string): Promise<string[]> =>
      ((await get<Bundle>(`/Patient?${query}`)).body.entry ?? []).map((e) => e.resource?.id as string);
    expect(await ids('family=leg')).toEqual(['srir-leger']);
    expect(await ids('family:exact=LEGER')).toEqual([]);
    expect(await ids(`family:exact=${encodeURIComponent('LÉGER')}`)).toEqual(['srir-leger']);
    expect(await ids('given=jean%20pierre&gender=male')).toEqual(['srir-lefebvre']);
    expect(await ids('family=dupont&given=marie&birthdate=1960-05-30&gender=female')).toEqual(['srir-dupont-1', 'srir-dupont-2']);
    expect(await ids('family=dupont&birthdate=1960-05-31')).toEqual([]);
    expect(await ids('birthdate=ge2000&birthdate=lt2023-01')).toEqual(['srir-decourcy']);
    expect(await ids('family=dupont,martin&gender=female&birthdate=1995')).toEqual(['srir-martin']);
    expect(await ids(`identifier=${encodeURIComponent(`${INS_NIR}|148025935006720`)}`)).toEqual(['srir-lefebvre']);
    expect(await ids('identifier=R-000007')).toEqual(['srir-leger']);
    expect(await ids('_id=srir-martin&unknownParameter=1')).toEqual(['srir-martin']);
  });

  it('PDQm: a searchset with total and next links, _count and _offset', async () => {
    const first = await get<Bundle>('/Patient?gender=female&_count=2');
    expect(first.body).toMatchObject({ resourceType: 'Bundle', type: 'searchset', total: 6 });
    expect(first.body.entry).toHaveLength(2);
    expect(first.body.entry?.[0]?.search?.mode).toBe('match');
    const next = first.body.link?.find((l) => l.relation === 'next')?.url as string;
    expect(next).toMatch(new RegExp(`^${srir.origin}${PREFIX}/Patient\\?gender=female&_count=2&_offset=2$`));
    const second = (await (await fetch(next)).json()) as Bundle;
    expect(second.entry?.map((e) => e.resource?.id)).toEqual(['srir-martin', 'srir-dupont-1']);
    const countOnly = await get<Bundle>('/Patient?gender=female&_count=0');
    expect(countOnly.body.total).toBe(6);
    expect(countOnly.body.entry).toBeUndefined();
  });

  it('PDQm: restricts identifiers to requested domains; 404 for an unknown domain; 400 for a bad modifier or date', async () => {
    const { body } = await get<Bundle>(`/Patient?family=martin&identifier=${encodeURIComponent(`${MOCK_REGIONAL_SYSTEM}|`)}`);
    expect((body.entry?.[0]?.resource as Patient).identifier?.map((i) => i.system)).toEqual([MOCK_REGIONAL_SYSTEM]);
    expect((await get<OperationOutcome>(`/Patient?identifier=${encodeURIComponent('urn:oid:1.2.3.4|')}`)).status).toBe(404);
    expect((await get<OperationOutcome>('/Patient?family:contains=dup')).status).toBe(400);
    expect((await get<OperationOutcome>('/Patient?birthdate=30/05/1960')).status).toBe(400);
  });

  it('reads a Patient by id; 404 with an OperationOutcome otherwise', async () => {
    expect((await get<Patient>('/Patient/srir-leger')).body.id).toBe('srir-leger');
    const missing = await get<OperationOutcome>('/Patient/nobody');
    expect(missing.status).toBe(404);
    expect(missing.body.issue[0]?.code).toBe('not-found');
  });
});

describe('SrirClient against the mock', () => {
  it('PIXm: targets of a known INS; empty for an unknown identifier or domain', async () => {
    expect(await client.pix({ system: INS_NIR_TEST, value: '279035121518989' })).toEqual({
      targetIdentifiers: [{ use: 'usual', system: MOCK_REGIONAL_SYSTEM, value: 'R-000001' }],
      targetIds: ['srir-pat-trois'],
    });
    expect(await client.pix({ system: INS_NIR, value: '253072B07300470' })).toEqual({ targetIdentifiers: [], targetIds: [] });
    expect(await client.pix({ system: 'urn:oid:1.2.3.4', value: '1' })).toEqual({ targetIdentifiers: [], targetIds: [] });
  });

  it('PIXm: an unknown targetSystem is a configuration problem, reported as SRIR_UNAVAILABLE', async () => {
    const err = await rejection(client.pix({ system: INS_NIR_TEST, value: '279035121518989' }, 'urn:oid:1.2.3.4'));
    expect(err.code).toBe('SRIR_UNAVAILABLE');
    expect(err.message).toMatch(/targetSystem/);
    expectNoPatientData(err.message);
  });

  it('PDQm: follows next links through every page, and refuses more pages than allowed', async () => {
    const many = new SrirClient({ baseUrl: `${manySrir.origin}${PREFIX}/`, retryBaseMs: 5 });
    const all = await many.pdq({ family: 'homonyme' });
    expect(all).toHaveLength(45);
    expect(new Set(all.map((p) => p.id)).size).toBe(45);
    const bounded = new SrirClient({ baseUrl: `${manySrir.origin}${PREFIX}`, maxPages: 2 });
    expect((await rejection(bounded.pdq({ family: 'homonyme' }))).code).toBe('SRIR_UNAVAILABLE');
  });

  it('read: the Patient, or undefined when the SRIR does not know it', async () => {
    expect((await client.read('srir-martin'))?.birthDate).toBe('1995-10-12');
    expect(await client.read('nobody')).toBeUndefined();
  });
});

describe('identify()', () => {
  const run = (bundle: Bundle, overrides: ReadonlySet<ErrorCode> = NONE, regionalSystem?: string): Promise<{ bundle: Bundle; outcome: IdentifyOutcome }> =>
    identify(bundle, client, regionalSystem ? { overrides, regionalSystem } : { overrides });

  it.each(PAT_TROIS_DOCS)('links %s: PIXm on its INS, identical traits, status from the SRIR', async (name) => {
    const input = corpusBundle(name);
    const before = structuredClone(input);
    const { bundle, outcome } = await run(input, NONE, MOCK_REGIONAL_SYSTEM);
    expect(outcome).toEqual({
      status: 'QUAL',
      matched: true,
      regionalIdentifier: { use: 'usual', type: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v2-0203', code: 'PI' }], text: expect.any(String) as string }, system: MOCK_REGIONAL_SYSTEM, value: 'R-000001' },
      reason: expect.stringMatching(/^PIXm/) as string,
    });
    expect(input).toEqual(before); // the input Bundle is left alone
    const patient = patientOf(bundle);
    expect(statusOf(patient)).toBe('QUAL');
    expect(patient.identifier?.at(-1)).toEqual(outcome.regionalIdentifier);
    // traits never overwritten: only the reliability extension and the regional identifier were added
    const original = patientOf(before);
    expect(patient.name).toEqual(original.name);
    expect(patient.birthDate).toBe(original.birthDate);
    expect(patient.identifier?.slice(0, -1)).toEqual(original.identifier);
    expect(validateBundle(bundle)).toEqual([]);
    expect(validateWithStructureDefinitions(bundle)).toEqual([]);
    expectNoPatientData(outcome.reason);
  });

  it('finds the Patient by its INS (PDQm) when PIXm names identifiers but no targetId (ITI-83 targetId is 0..*)', async () => {
    const noTargetId = await listen(mockApp(sample, async (ctx, next) => {
      await next();
      const body = ctx.body as Parameters | undefined;
      if (ctx.path.endsWith('/$ihe-pix') && body?.resourceType === 'Parameters') {
        ctx.body = { ...body, parameter: body.parameter?.filter((p) => p.name !== 'targetId') };
      }
    }).callback());
    try {
      const c = new SrirClient({ baseUrl: `${noTargetId.origin}${PREFIX}`, retryBaseMs: 5 });
      const { outcome } = await identify(corpusBundle('DLU-EHPAD-FLUDT_2022.01.xml'), c, { overrides: NONE });
      expect(outcome).toMatchObject({ status: 'QUAL', matched: true, reason: expect.stringMatching(/^PIXm \+ PDQm by INS/) as string });
    } finally {
      await close(noTargetId);
    }
  });

  it('takes the first non-INS identifier as regional one when no regional system is configured', async () => {
    const { outcome } = await run(corpusBundle('LDL-SES_2022.01.xml'));
    expect(outcome.regionalIdentifier?.value).toBe('R-000001');
  });

  it('rejects a document whose INS fails its key check (CSE-MDE: 222127505611201)', async () => {
    const err = await rejection(run(corpusBundle('CSE-MDE_2023.01.xml')));
    expect(err.code).toBe('INS_KEY_INVALID');
    expectNoPatientData(err.message);
  });

  it('delivers it as PROV once an operator released INS_KEY_INVALID', async () => {
    const { bundle, outcome } = await run(corpusBundle('CSE-MDE_2023.01.xml'), new Set(['INS_KEY_INVALID']));
    expect(outcome).toEqual({ status: 'PROV', matched: false, reason: expect.stringContaining('INS_KEY_INVALID released') as string });
    expect(statusOf(patientOf(bundle))).toBe('PROV');
    expect(validateWithStructureDefinitions(bundle)).toEqual([]);
  });

  it('links without INS by PDQm on the strict traits (CSE-MDE without its INS → VALI)', async () => {
    const { bundle, outcome } = await run(variant('CSE-MDE_2023.01.xml', withoutIns), NONE, MOCK_REGIONAL_SYSTEM);
    expect(outcome).toMatchObject({ status: 'VALI', matched: true, regionalIdentifier: { system: MOCK_REGIONAL_SYSTEM, value: 'R-000002' } });
    expect(outcome.reason).toMatch(/^PDQm/);
    const patient = patientOf(bundle);
    expect(statusOf(patient)).toBe('VALI');
    expect(insIdentifiers(patient)).toEqual([]); // an INS is never added
    expectNoPatientData(outcome.reason);
  });

  it('blocks a collision: the INS is known with other traits; the detail names the traits, not their values', async () => {
    const doc = variant('LDL-SES_2022.01.xml', (p) => setIns(p, INS_NIR, '295109912611193', 'INS-NIR'));
    const err = await rejection(run(doc));
    expect(err.code).toBe('IDENTITY_COLLISION');
    expect(err.message).toMatch(/birth name, birth given names, birth date, birth place/);
    expect(err.message).not.toMatch(/sex/);
    expectNoPatientData(err.message);
  });

  it('delivers a released collision as PROV, keeping the traits', async () => {
    const doc = variant('LDL-SES_2022.01.xml', (p) => setIns(p, INS_NIR, '295109912611193', 'INS-NIR'));
    const { bundle, outcome } = await run(doc, new Set(['IDENTITY_COLLISION']));
    expect(outcome).toMatchObject({ status: 'PROV', matched: false });
    expect(outcome.regionalIdentifier).toBeUndefined();
    expect(patientOf(bundle).name).toEqual(patientOf(doc).name);
  });

  it('holds homonyms for review: PDQm finds two identities with these traits', async () => {
    const doc = variant('LDL-SES_2022.01.xml', (p) => {
      withoutIns(p);
      setBirthName(p, 'Dupont', 'Marie Jeanne');
      p.birthDate = '1960-05-30';
      setBirthPlace(p, '88154');
    });
    const err = await rejection(run(doc));
    expect(err.code).toBe('IDENTITY_AMBIGUOUS');
    expect(err.message).toMatch(/2 SRIR identities/);
    expectNoPatientData(err.message);
    const released = await run(doc, new Set(['IDENTITY_AMBIGUOUS']));
    expect(released.outcome).toMatchObject({ status: 'PROV', matched: false });
  });

  it('holds an INS the SRIR cross-references with two Patients (unmerged duplicate)', async () => {
    const dupClient = new SrirClient({ baseUrl: `${dupSrir.origin}${PREFIX}`, retryBaseMs: 5 });
    const err = await rejection(identify(corpusBundle('LDL-SES_2022.01.xml'), dupClient, { overrides: NONE }));
    expect(err.code).toBe('IDENTITY_AMBIGUOUS');
    expect(err.message).toMatch(/^PIXm .* 2 SRIR Patients/);
  });

  it('holds a single PDQm candidate whose other traits differ', async () => {
    const doc = variant('LDL-SES_2022.01.xml', (p) => {
      withoutIns(p);
      setBirthPlace(p, '75056');
    });
    const err = await rejection(run(doc));
    expect(err.code).toBe('IDENTITY_AMBIGUOUS');
    expect(err.message).toMatch(/not identical on: birth place/);
  });

  it('holds an unknown INS whose traits are those of an identity with another INS', async () => {
    const doc = variant('LDL-SES_2022.01.xml', (p) => setIns(p, INS_NIR, '253072B07300470', 'INS-NIR'));
    const err = await rejection(run(doc));
    expect(err.code).toBe('IDENTITY_AMBIGUOUS');
    expect(err.message).toMatch(/INS unknown to the SRIR.*INS/);
  });

  it('keeps an unknown identity PROV, unmatched, without inventing an INS', async () => {
    const doc = variant('LDL-SES_2022.01.xml', (p) => {
      setIns(p, INS_NIR, '253072B07300470', 'INS-NIR');
      setBirthName(p, 'Inconnue', 'Alice');
    });
    const { bundle, outcome } = await run(doc);
    expect(outcome).toEqual({ status: 'PROV', matched: false, reason: expect.stringMatching(/INS unknown to the SRIR; PDQm found no SRIR identity/) as string });
    const patient = patientOf(bundle);
    expect(statusOf(patient)).toBe('PROV');
    expect(patient.identifier).toEqual(patientOf(doc).identifier);
    expect(validateWithStructureDefinitions(bundle)).toEqual([]);
  });

  it('does not take a prefix-only PDQm hit for a candidate ("DUPON" is not "DUPONT")', async () => {
    const doc = variant('LDL-SES_2022.01.xml', (p) => {
      withoutIns(p);
      setBirthName(p, 'DUPON', 'MARIE JEANNE');
      p.birthDate = '1960-05-30';
    });
    expect((await run(doc)).outcome).toMatchObject({ status: 'PROV', matched: false });
  });

  it('does not search on incomplete traits', async () => {
    const doc = variant('LDL-SES_2022.01.xml', (p) => {
      withoutIns(p);
      delete p.birthDate;
    });
    expect((await run(doc)).outcome).toMatchObject({ status: 'PROV', matched: false, reason: expect.stringMatching(/no PDQm search/) as string });
  });
});

describe('identify() when the SRIR fails', () => {
  const ldl = (): Bundle => corpusBundle('LDL-SES_2022.01.xml');
  const everything: ReadonlySet<ErrorCode> = new Set<ErrorCode>(['INS_KEY_INVALID', 'IDENTITY_AMBIGUOUS', 'IDENTITY_COLLISION', 'SRIR_UNAVAILABLE']);

  it('server down (closed port): SRIR_UNAVAILABLE after the retries, even with every override', async () => {
    const gone = await listen(() => undefined);
    const origin = gone.origin;
    await close(gone);
    const down = new SrirClient({ baseUrl: `${origin}${PREFIX}`, retries: 2, retryBaseMs: 5 });
    const err = await rejection(identify(ldl(), down, { overrides: everything }));
    expect(err.code).toBe('SRIR_UNAVAILABLE');
    expect(err.message).toMatch(/network error \(ECONNREFUSED\) \(3 attempts\)/);
    expectNoPatientData(err.message);
  });

  it('server answering 500: retried a bounded number of times, then SRIR_UNAVAILABLE', async () => {
    let calls = 0;
    const failing = await listen((_req, res) => {
      calls++;
      res.writeHead(500, { 'content-type': 'application/fhir+json' });
      res.end(JSON.stringify({ resourceType: 'OperationOutcome', issue: [{ severity: 'fatal', code: 'exception' }] }));
    });
    try {
      const c = new SrirClient({ baseUrl: `${failing.origin}${PREFIX}`, retries: 2, retryBaseMs: 5 });
      const err = await rejection(identify(ldl(), c, { overrides: NONE }));
      expect(err.code).toBe('SRIR_UNAVAILABLE');
      expect(err.message).toMatch(/HTTP 500/);
      expect(calls).toBe(3);
    } finally {
      await close(failing);
    }
  });

  it('a transient 503 is retried and the identity established', async () => {
    let calls = 0;
    const flaky = await listen(mockApp(sample, async (ctx, next) => {
      calls++;
      if (calls === 1) {
        ctx.status = 503;
        ctx.body = 'busy';
        return;
      }
      await next();
    }).callback());
    try {
      const c = new SrirClient({ baseUrl: `${flaky.origin}${PREFIX}`, retries: 2, retryBaseMs: 5 });
      const { outcome } = await identify(ldl(), c, { overrides: NONE });
      expect(outcome).toMatchObject({ status: 'QUAL', matched: true });
      expect(calls).toBe(3); // 503, PIXm, read
    } finally {
      await close(flaky);
    }
  });

  it('a server that never answers: the per-request timeout ends each attempt', async () => {
    const silent = await listen(() => undefined);
    try {
      const c = new SrirClient({ baseUrl: `${silent.origin}${PREFIX}`, timeoutMs: 150, retries: 1, retryBaseMs: 5 });
      const started = Date.now();
      const err = await rejection(identify(ldl(), c, { overrides: NONE }));
      expect(err.code).toBe('SRIR_UNAVAILABLE');
      expect(err.message).toMatch(/no answer within 150 ms \(2 attempts\)/);
      expect(Date.now() - started).toBeLessThan(2000);
    } finally {
      await close(silent);
    }
  });

  it('an unparsable answer, or a 404 that is not the SRIR\'s, is SRIR_UNAVAILABLE without retry', async () => {
    let calls = 0;
    const html = await listen((_req, res) => {
      calls++;
      res.writeHead(200, { 'content-type': 'text/html' });
      res.end('<html>maintenance</html>');
    });
    try {
      const c = new SrirClient({ baseUrl: `${html.origin}${PREFIX}`, retryBaseMs: 5 });
      const err = await rejection(identify(ldl(), c, { overrides: NONE }));
      expect(err.code).toBe('SRIR_UNAVAILABLE');
      expect(err.message).toMatch(/not JSON/);
      expect(calls).toBe(1);
    } finally {
      await close(html);
    }
    // The mock's server answers its own plain 404 outside the prefix: not an "unknown identifier".
    const wrongBase = new SrirClient({ baseUrl: `${srir.origin}/not-the-srir`, retryBaseMs: 5 });
    const err = await rejection(identify(ldl(), wrongBase, { overrides: NONE }));
    expect(err.code).toBe('SRIR_UNAVAILABLE');
    expect(err.message).toMatch(/HTTP 404/);
  });

  it('refuses an answer above maxResponseBytes, declared or streamed, and never follows a redirect', async () => {
    let calls = 0;
    const odd = await listen((req, res) => {
      calls++;
      if (req.url?.includes('declared')) {
        res.writeHead(200, { 'content-type': 'application/fhir+json', 'content-length': '5000' });
        res.end('{"resourceType":"Patient"}'.padEnd(5000, ' '));
      } else if (req.url?.includes('streamed')) {
        res.writeHead(200, { 'content-type': 'application/fhir+json' }); // chunked: no length to read first
        res.write(' '.repeat(3000));
        res.end(' '.repeat(3000));
      } else {
        res.writeHead(302, { location: `${srir.origin}${PREFIX}/Patient/x` });
        res.end();
      }
    });
    try {
      for (const path of ['declared', 'streamed']) {
        const c = new SrirClient({ baseUrl: `${odd.origin}/${path}`, maxResponseBytes: 4096, retryBaseMs: 5 });
        const err = await rejection(c.read('p1'));
        expect(err.code).toBe('SRIR_UNAVAILABLE');
        expect(err.message).toMatch(/exceeds 4096 bytes/);
      }
      const redirected = new SrirClient({ baseUrl: `${odd.origin}/moved`, retryBaseMs: 5 });
      const err = await rejection(redirected.read('p1'));
      expect(err.message).toMatch(/HTTP 302/);
      expect(calls).toBe(3); // no retry, and the redirect not followed
    } finally {
      await close(odd);
    }
  });

  it('does not follow a PDQm next link to another origin', async () => {
    const evil = await listen((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/fhir+json' });
      res.end(JSON.stringify({ resourceType: 'Bundle', type: 'searchset', link: [{ relation: 'next', url: 'http://192.0.2.1/steal' }] }));
    });
    try {
      const c = new SrirClient({ baseUrl: `${evil.origin}${PREFIX}`, retryBaseMs: 5 });
      const err = await rejection(c.pdq({ family: 'x' }));
      expect(err.code).toBe('SRIR_UNAVAILABLE');
      expect(err.message).toMatch(/leaves the SRIR origin/);
    } finally {
      await close(evil);
    }
  });
});
