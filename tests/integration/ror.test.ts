/**
 * The ROR end to end: the mock ROR served by a real Koa server on loopback, the RorClient against it
 * (paging, _include, Ror-* headers, OAuth2 client credentials against a small real token endpoint,
 * cache TTL, stale answers once the server is closed or failing, ROR_UNAVAILABLE with nothing
 * cached), and resolveRouting() over Bundles converted from the corpus documents
 * (../shared/corpus/cda, read in place) and synthetic address variants of them.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Koa from 'koa';
import type {
  Address, Bundle, CapabilityStatement, Composition, HealthcareService, OperationOutcome, Organization, Patient, PractitionerRole, Provenance,
} from '@medplum/fhirtypes';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DAC_CATEGORY, RorClient, TRE_R66, type RorClientOptions } from '../../adapters/ror/client.js';
import { createRorMock, loadRorFixture } from '../../adapters/ror/mock.js';
import { convertCda } from '../../gateway/cda/convert.js';
import { PasserelleError, type ErrorCode } from '../../gateway/errors.js';
import { validateBundle } from '../../gateway/fhir/validate.js';
import { ACTIVITY_SYSTEM, resolveRouting, ROR_ORGANIZATION_ID_SYSTEM, ROUTED_TO_SYSTEM, type RoutingDecision } from '../../gateway/routing/route.js';
import { corpusDocument, loadCorpus } from '../support/corpus.js';
import { validateWithStructureDefinitions } from '../support/fhir-validator.js';
import { close, listen, type Running } from '../support/loopback.js';
import { rejection } from '../support/rejection.js';

const PREFIX = '/fixtures/ror/fhir';
const SD = 'https://interop.esante.gouv.fr/ig/fhir/ror/StructureDefinition/';
const FINESS = 'https://finess.esante.gouv.fr';
const J124 = 'https://mos.esante.gouv.fr/NOS/JDV_J124-Commune/FHIR/JDV-J124-Commune';
const TRE_R13_COMMUNE = 'https://mos.esante.gouv.fr/NOS/TRE_R13-Commune/FHIR/TRE-R13-Commune';
const ROR_HEADERS = {
  'Ror-Profil-Utilisateur-Code': '2',
  'Ror-Profil-Utilisateur-System': 'https://mos.esante.gouv.fr/NOS/TRE_R320-ProfilUtilisateurROR/FHIR/TRE-R320-ProfilUtilisateurROR',
  'Ror-Role-Metier-Code': 'DAC',
  'Ror-Role-Metier-System': 'https://passerelle.dev/fhir/CodeSystem/role-metier',
};


const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** What the ROR server saw and how it behaves: a real server whose answers the tests steer. */
interface RorControl {
  requests: { path: string; search: URLSearchParams; headers: http.IncomingHttpHeaders }[];
  /** Bearer tokens accepted; undefined = no authentication required. */
  tokens?: Set<string>;
  failWith?: number;
  hangMs?: number;
}

function rorApp(fixture: Bundle, control: RorControl): Koa {
  const app = new Koa();
  app.use(async (ctx, next) => {
    control.requests.push({ path: ctx.path, search: new URLSearchParams(ctx.querystring), headers: { ...ctx.headers } });
    if (control.hangMs) await sleep(control.hangMs);
    if (control.failWith) {
      ctx.status = control.failWith;
      ctx.type = 'application/fhir+json';
      ctx.body = { resourceType: 'OperationOutcome', issue: [{ severity: 'error', code: 'transient', diagnostics: 'down for the test' }] };
      return;
    }
    if (control.tokens) {
      const m = /^Bearer (\S+)$/.exec(ctx.get('authorization'));
      if (!m?.[1] || !control.tokens.has(m[1])) {
        ctx.status = 401;
        ctx.set('WWW-Authenticate', 'Bearer error="invalid_token"');
        ctx.type = 'application/fhir+json';
        ctx.body = { resourceType: 'OperationOutcome', issue: [{ severity: 'error', code: 'login' }] };
        return;
      }
    }
    await next();
  });
  const router = createRorMock(fixture, PREFIX);
  app.use(router.routes());
  app.use(router.allowedMethods());
  return app;
}

/** A small OAuth2 token endpoint (RFC 6749 §4.4): Basic client authentication, client_credentials only. */
interface TokenControl {
  issued: { auth: string; body: URLSearchParams }[];
  accepted: Set<string>;
  expiresIn: number;
  failWith?: number;
}

function tokenApp(control: TokenControl, clientId: string, clientSecret: string): Koa {
  const app = new Koa();
  app.use(async (ctx) => {
    const chunks: Buffer[] = [];
    for await (const chunk of ctx.req) chunks.push(chunk as Buffer);
    const body = new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
    const auth = ctx.get('authorization');
    control.issued.push({ auth, body });
    if (control.failWith) {
      ctx.status = control.failWith;
      return;
    }
    const expected = `Basic ${Buffer.from(`${encodeURIComponent(clientId)}:${encodeURIComponent(clientSecret)}`).toString('base64')}`;
    if (ctx.method !== 'POST' || !ctx.is('application/x-www-form-urlencoded') || auth !== expected) {
      ctx.status = 401;
      ctx.body = { error: 'invalid_client' };
      return;
    }
    if (body.get('grant_type') !== 'client_credentials') {
      ctx.status = 400;
      ctx.body = { error: 'unsupported_grant_type' };
      return;
    }
    const token = `token-${control.issued.length}`;
    control.accepted.add(token);
    ctx.set('Cache-Control', 'no-store');
    ctx.body = { access_token: token, token_type: 'Bearer', expires_in: control.expiresIn, scope: body.get('scope') ?? undefined };
  });
  return app;
}

async function getJson<T>(url: string): Promise<{ status: number; body: T; type: string | null }> {
  const res = await fetch(url);
  return { status: res.status, body: (await res.json()) as T, type: res.headers.get('content-type') };
}

const sample = loadRorFixture();

// ---------------------------------------------------------------------------------------------
// Synthetic fixtures built from the ROR shapes (for paging, ties and whole-city zones).

function dacOrganization(id: string, finess: string, active = true): Organization {
  return {
    resourceType: 'Organization', id, active, name: `DAC ${id} (fictif)`,
    identifier: [{ system: FINESS, value: finess }],
    type: [{ coding: [{ system: TRE_R66, code: DAC_CATEGORY }] }],
  };
}

function dacService(id: string, org: string, zones: [type: string, code: string][], active = true): HealthcareService {
  return {
    resourceType: 'HealthcareService', id, active, providedBy: { reference: `Organization/${org}` }, name: `Service ${id}`,
    extension: zones.map(([type, code]) => ({
      url: `${SD}ror-territorial-division`,
      extension: [
        { url: 'typeTerritorialDivision', valueCodeableConcept: { coding: [{ code: type }] } },
        { url: 'codeTerritorialDivision', valueCodeableConcept: { coding: [{ system: J124, code }] } },
      ],
    })),
  };
}

const collection = (...resources: (Organization | HealthcareService)[]): Bundle => ({ resourceType: 'Bundle', type: 'collection', entry: resources.map((resource) => ({ resource })) });

// ---------------------------------------------------------------------------------------------

describe('loadRorFixture', () => {
  it('loads the built-in sample: ROR-profiled organizations, DAC services with zones, locations', () => {
    const resources = (sample.entry ?? []).map((e) => e.resource);
    const dacs = resources.filter((r): r is Organization => r?.resourceType === 'Organization' && (r.type ?? []).some((t) => t.coding?.some((c) => c.system === TRE_R66 && c.code === '606')));
    expect(dacs.length).toBeGreaterThanOrEqual(3);
    for (const dac of dacs) {
      expect(dac.meta?.profile).toEqual([`${SD}ror-organization`]);
      expect(dac.identifier?.[0]?.system).toBe(FINESS);
    }
    expect(resources.some((r) => r?.resourceType === 'Location')).toBe(true);
    // Valid FHIR R4 resources (base StructureDefinitions; the ROR profiles are not loaded).
    expect(validateWithStructureDefinitions(sample)).toEqual([]);
  });

  it('refuses what cannot serve as a fixture, with CONFIG_INVALID', () => {
    const dir = mkdtempSync(join(tmpdir(), 'ror-fixture-'));
    const file = (name: string, content: string): string => {
      const p = join(dir, name);
      writeFileSync(p, content);
      return p;
    };
    const cases: [string, string][] = [
      [join(dir, 'absent.json'), 'cannot read'],
      [file('text.json', 'resourceType: Bundle'), 'not JSON'],
      [file('patient.json', JSON.stringify({ resourceType: 'Patient' })), 'not a FHIR Bundle'],
      [file('patients.json', JSON.stringify({ resourceType: 'Bundle', type: 'collection', entry: [{ resource: { resourceType: 'Patient', id: 'p1' } }] })), 'not an Organization'],
      [file('noid.json', JSON.stringify(collection({ resourceType: 'Organization', name: 'x' }))), 'no valid id'],
      [file('twice.json', JSON.stringify(collection(dacOrganization('a', '750000001'), dacOrganization('a', '750000002')))), 'used twice'],
      [file('dangling.json', JSON.stringify(collection(dacService('s', 'missing', [['3', '75107']])))), 'providedBy'],
      [file('invalid.json', JSON.stringify(collection({ resourceType: 'Organization', id: 'o', name: 42 } as unknown as Organization))), 'entry 0'],
    ];
    for (const [path, message] of cases) {
      let caught: unknown;
      try {
        loadRorFixture(path);
      } catch (err) {
        caught = err;
      }
      expect(caught, path).toBeInstanceOf(PasserelleError);
      expect((caught as PasserelleError).code).toBe('CONFIG_INVALID');
      expect((caught as PasserelleError).message).toContain(message);
    }
  });
});

describe('the mock ROR over HTTP', () => {
  let ror: Running;
  const control: RorControl = { requests: [] };
  let base: string;
  beforeAll(async () => {
    ror = await listen(rorApp(sample, control).callback());
    base = `${ror.origin}${PREFIX}`;
  });
  afterAll(async () => close(ror));

  it('GET /metadata: a CapabilityStatement naming the search parameters served', async () => {
    const { status, body, type } = await getJson<CapabilityStatement>(`${base}/metadata`);
    expect(status).toBe(200);
    expect(type).toMatch(/^application\/fhir\+json/);
    expect(body.resourceType).toBe('CapabilityStatement');
    const hs = body.rest?.[0]?.resource?.find((r) => r.type === 'HealthcareService');
    expect(hs?.searchParam?.map((p) => p.name)).toEqual(expect.arrayContaining(['intervention-zone', 'organization.type', 'location.commune-cog']));
  });

  it('Organization?identifier=FINESS&_include=Organization:partof: the EG and its EJ', async () => {
    const { body } = await getJson<Bundle>(`${base}/Organization?identifier=${encodeURIComponent(`${FINESS}|750803447`)}&_include=Organization:partof`);
    expect(body.type).toBe('searchset');
    expect(body.total).toBe(1);
    expect(body.entry?.map((e) => [e.resource?.id, e.search?.mode])).toEqual([['eg-hegp', 'match'], ['ej-chu-idf', 'include']]);
    expect(body.entry?.[0]?.fullUrl).toBe(`${base}/Organization/eg-hegp`);
    // The http spelling of the FINESS system and a bare value find it too.
    for (const q of [`http://finess.esante.gouv.fr|750803447`, '750803447']) {
      const { body: again } = await getJson<Bundle>(`${base}/Organization?identifier=${encodeURIComponent(q)}`);
      expect(again.entry?.map((e) => e.resource?.id)).toEqual(['eg-hegp']);
    }
    const { body: none } = await getJson<Bundle>(`${base}/Organization?identifier=${encodeURIComponent('|750803447')}`);
    expect(none.total).toBe(0);
    // _include:iterate follows partOf up the chain; a service brings its organization and that one's parent.
    const { body: chain } = await getJson<Bundle>(`${base}/Organization?identifier=120459876&_include:iterate=Organization:partof`);
    expect(chain.entry?.map((e) => e.resource?.id)).toEqual(['eg-labo-charmes', 'ej-labo-charmes']);
  });

  it('HealthcareService?intervention-zone=…&organization.type=TRE-R66|606&_include=HealthcareService:organization: DACs only', async () => {
    const type = encodeURIComponent(`${TRE_R66}|606`);
    const { body } = await getJson<Bundle>(`${base}/HealthcareService?intervention-zone=75107&organization.type=${type}&_include=HealthcareService:organization`);
    expect(body.entry?.map((e) => `${e.resource?.resourceType}/${e.resource?.id}`)).toEqual(['HealthcareService/hs-dac-paris-ouest', 'Organization/dac-paris-ouest']);
    // Without the type filter, the SSIAD covering Paris 7e comes too.
    const { body: all } = await getJson<Bundle>(`${base}/HealthcareService?intervention-zone=75107`);
    expect(all.entry?.map((e) => e.resource?.id).sort()).toEqual(['hs-dac-paris-ouest', 'hs-ssiad-rive-gauche']);
    const { body: wrongSystem } = await getJson<Bundle>(`${base}/HealthcareService?intervention-zone=75107&organization.type=${encodeURIComponent('http://other|606')}`);
    expect(wrongSystem.total).toBe(0);
  });

  it('zone codes match on the code whatever the commune code system', async () => {
    for (const q of [`${J124}|75115`, `${TRE_R13_COMMUNE}|75106`, 'https://example.org/any|75116', '75106,99999']) {
      const { body } = await getJson<Bundle>(`${base}/HealthcareService?intervention-zone=${encodeURIComponent(q)}`);
      expect(body.entry?.map((e) => e.resource?.id), q).toEqual(['hs-dac-paris-ouest']);
    }
    const { body: both } = await getJson<Bundle>(`${base}/HealthcareService?intervention-zone=75107&intervention-zone=75115`);
    expect(both.entry?.map((e) => e.resource?.id)).toEqual(['hs-dac-paris-ouest']);
  });

  it('location.commune-cog and Location?commune-cog', async () => {
    const { body } = await getJson<Bundle>(`${base}/HealthcareService?location.commune-cog=75115&_include=HealthcareService:location`);
    expect(body.entry?.map((e) => `${e.resource?.resourceType}/${e.resource?.id}`)).toEqual(['HealthcareService/hs-dac-paris-ouest', 'Location/loc-dac-paris-ouest']);
    const { body: loc } = await getJson<Bundle>(`${base}/Location?commune-cog=92050`);
    expect(loc.entry?.map((e) => e.resource?.id)).toEqual(['loc-dac-hauts-de-seine']);
  });

  it('_count pages with next/previous links; _count is capped at 200; _count=0 gives the total only', async () => {
    const ids: string[] = [];
    let url: string | undefined = `${base}/HealthcareService?_count=2`;
    let pages = 0;
    while (url) {
      const { body }: { body: Bundle } = await getJson<Bundle>(url);
      pages++;
      expect(body.total).toBe(7);
      expect(body.entry?.length).toBeLessThanOrEqual(2);
      if (pages > 1) expect(body.link?.some((l) => l.relation === 'previous')).toBe(true);
      ids.push(...(body.entry ?? []).map((e) => e.resource?.id as string));
      url = body.link?.find((l) => l.relation === 'next')?.url;
    }
    expect(pages).toBe(4);
    expect(new Set(ids).size).toBe(7);
    const { body: capped } = await getJson<Bundle>(`${base}/Organization?_count=5000`);
    expect(capped.link?.find((l) => l.relation === 'self')?.url).toContain('_count=200');
    const { body: counted } = await getJson<Bundle>(`${base}/Organization?_count=0`);
    expect(counted.total).toBe(sample.entry?.filter((e) => e.resource?.resourceType === 'Organization').length);
    expect(counted.entry).toBeUndefined();
  });

  it('reads by id; 404 and 400 answered as OperationOutcome', async () => {
    const { status, body } = await getJson<Organization>(`${base}/Organization/dac-rhone`);
    expect(status).toBe(200);
    expect(body.name).toBe('DAC Rhône Métropole (fictif)');
    const cases: [string, number][] = [
      ['/Organization/nope', 404],
      ['/Patient', 404],
      ['/Patient/1', 404],
      ['/Organization?name=DAC', 400],
      ['/Organization?identifier:exact=750803447', 400],
      ['/HealthcareService?_include=HealthcareService:practitioner', 400],
      ['/Organization?_include=HealthcareService:organization', 400],
      ['/Organization?_count=-1', 400],
      ['/Organization?_format=xml', 400],
      ['/Organization?identifier=', 400],
    ];
    for (const [path, expected] of cases) {
      const res = await getJson<OperationOutcome>(`${base}${path}`);
      expect(res.status, path).toBe(expected);
      expect(res.body.resourceType, path).toBe('OperationOutcome');
      expect(res.body.issue[0]?.details?.coding?.[0]?.code, path).toBe(expected === 404 ? 'NOT_FOUND' : 'REQUEST_INVALID');
    }
  });
});

describe('RorClient against the mock', () => {
  let ror: Running;
  let tokens: Running;
  const control: RorControl = { requests: [] };
  const tokenControl: TokenControl = { issued: [], accepted: new Set(), expiresIn: 3600 };
  let base: string;
  const client = (options: Partial<RorClientOptions> = {}): RorClient => new RorClient({ baseUrl: base, timeoutMs: 2000, ...options });

  beforeAll(async () => {
    ror = await listen(rorApp(sample, control).callback());
    tokens = await listen(tokenApp(tokenControl, 'passerelle-test', 's3cret:&=').callback());
    base = `${ror.origin}${PREFIX}`;
  });
  afterAll(async () => {
    await close(ror);
    await close(tokens);
  });
  const reset = (): void => {
    control.requests.length = 0;
    delete control.tokens;
    delete control.failWith;
    delete control.hangMs;
    tokenControl.issued.length = 0;
    tokenControl.accepted.clear();
    tokenControl.expiresIn = 3600;
    delete tokenControl.failWith;
  };

  it('organizationsByIdentifier: the organization first, then its parents (_include)', async () => {
    reset();
    const orgs = await client().organizationsByIdentifier(FINESS, '750803447');
    expect(orgs.map((o) => o.id)).toEqual(['eg-hegp', 'ej-chu-idf']);
    const request = control.requests[0];
    expect(request?.path).toBe(`${PREFIX}/Organization`);
    expect(request?.search.get('identifier')).toBe(`${FINESS}|750803447`);
    expect(request?.search.get('_include')).toBe('Organization:partof');
    expect(await client().organizationsByIdentifier(FINESS, '000000000')).toEqual([]);
  });

  it('dacServicesByZone: DAC services whose zone has the code at that level, with their organizations', async () => {
    reset();
    const ror1 = client();
    const paris = await ror1.dacServicesByZone('commune', '75107');
    expect(paris.services.map((s) => s.id)).toEqual(['hs-dac-paris-ouest']);
    expect(paris.organizations.map((o) => o.id)).toEqual(['dac-paris-ouest']);
    const request = control.requests[0];
    expect(request?.search.get('intervention-zone')).toBe('75107');
    expect(request?.search.get('organization.type')).toBe(`${TRE_R66}|606`);
    expect(request?.search.get('_include')).toBe('HealthcareService:organization');
    // 04 is both La Réunion (région) and Alpes-de-Haute-Provence (département): the level decides.
    expect((await ror1.dacServicesByZone('region', '04')).organizations.map((o) => o.id)).toEqual(['dac-la-reunion']);
    expect((await ror1.dacServicesByZone('departement', '04')).services).toEqual([]);
    expect((await ror1.dacServicesByZone('departement', '2b')).organizations.map((o) => o.id)).toEqual(['dac-corse']);
  });

  it('follows next links page after page, with the Ror-* headers on every request', async () => {
    const many = collection(
      ...['a', 'b', 'c', 'd', 'e'].flatMap((x, i) => [dacOrganization(`dac-33${x}`, `33099000${i}`), dacService(`hs-33${x}`, `dac-33${x}`, [['2', '33']])]),
    );
    const own: RorControl = { requests: [] };
    const server = await listen(rorApp(many, own).callback());
    try {
      const c = new RorClient({ baseUrl: `${server.origin}${PREFIX}`, pageSize: 2, headers: ROR_HEADERS });
      const { services, organizations } = await c.dacServicesByZone('departement', '33');
      expect(services.map((s) => s.id)).toEqual(['hs-33a', 'hs-33b', 'hs-33c', 'hs-33d', 'hs-33e']);
      expect(organizations.map((o) => o.id)).toEqual(['dac-33a', 'dac-33b', 'dac-33c', 'dac-33d', 'dac-33e']);
      expect(own.requests).toHaveLength(3);
      expect(own.requests.map((r) => r.search.get('_offset'))).toEqual([null, '2', '4']);
      for (const r of own.requests) {
        for (const [name, value] of Object.entries(ROR_HEADERS)) expect(r.headers[name.toLowerCase()]).toBe(value);
        expect(r.search.get('_count')).toBe('2');
      }
      // A bound on pages: more pages than allowed is a failure, not a silent truncation.
      const bounded = new RorClient({ baseUrl: `${server.origin}${PREFIX}`, pageSize: 2, maxPages: 2 });
      expect((await rejection(bounded.dacServicesByZone('departement', '33'))).message).toContain('more than 2 pages');
    } finally {
      await close(server);
    }
  });

  it('refuses a next link that leaves the base URL (the token must not travel elsewhere)', async () => {
    const app = new Koa();
    app.use((ctx) => {
      ctx.type = 'application/fhir+json';
      ctx.body = { resourceType: 'Bundle', type: 'searchset', link: [{ relation: 'next', url: 'http://attacker.invalid/fhir/HealthcareService?page=2' }] };
    });
    const server = await listen(app.callback());
    try {
      const err = await rejection(new RorClient({ baseUrl: `${server.origin}/fhir` }).dacServicesByZone('commune', '75107'));
      expect(err.code).toBe('ROR_UNAVAILABLE');
      expect(err.message).toContain('next link');
    } finally {
      await close(server);
    }
  });

  it('OAuth2 client credentials: Basic client authentication, scope, one token for many requests', async () => {
    reset();
    control.tokens = tokenControl.accepted;
    const c = client({
      oauth: { tokenUrl: `${tokens.origin}/token`, clientId: 'passerelle-test', clientSecret: 's3cret:&=', scope: 'ror.read' },
      headers: ROR_HEADERS,
    });
    await Promise.all([c.organizationsByIdentifier(FINESS, '750803447'), c.dacServicesByZone('commune', '75107'), c.dacServicesByZone('departement', '92')]);
    await c.dacServicesByZone('region', '53');
    expect(tokenControl.issued).toHaveLength(1);
    expect(tokenControl.issued[0]?.body.get('grant_type')).toBe('client_credentials');
    expect(tokenControl.issued[0]?.body.get('scope')).toBe('ror.read');
    expect(tokenControl.issued[0]?.body.has('client_secret')).toBe(false);
    expect(control.requests).toHaveLength(4);
    for (const r of control.requests) {
      expect(r.headers.authorization).toBe('Bearer token-1');
      expect(r.headers['ror-role-metier-code']).toBe('DAC');
    }
  });

  it('a token near its expiry is fetched again; a 401 from ROR gets one new token and one retry', async () => {
    reset();
    control.tokens = tokenControl.accepted;
    tokenControl.expiresIn = 1; // one second: kept for 0.9 s
    const c = client({ oauth: { tokenUrl: `${tokens.origin}/token`, clientId: 'passerelle-test', clientSecret: 's3cret:&=' }, cacheTtlMs: 0 });
    await c.dacServicesByZone('commune', '75107');
    await sleep(1000);
    await c.dacServicesByZone('commune', '75107');
    expect(tokenControl.issued).toHaveLength(2);
    expect(control.requests.map((r) => r.headers.authorization)).toEqual(['Bearer token-1', 'Bearer token-2']);

    tokenControl.expiresIn = 3600;
    tokenControl.accepted.clear(); // ROR revokes every token
    await c.dacServicesByZone('commune', '75107');
    await c.dacServicesByZone('commune', '75107');
    // token-2 refused (401) → token-3 → the request again, then token-3 kept.
    expect(tokenControl.issued).toHaveLength(3);
    expect(control.requests.slice(2).map((r) => r.headers.authorization)).toEqual(['Bearer token-2', 'Bearer token-3', 'Bearer token-3']);
  });

  it('credentials refused for good: ROR_UNAVAILABLE, and no stale answer hides it', async () => {
    reset();
    const wrong = client({ oauth: { tokenUrl: `${tokens.origin}/token`, clientId: 'passerelle-test', clientSecret: 'wrong' } });
    const err = await rejection(wrong.organizationsByIdentifier(FINESS, '750803447'));
    expect(err.code).toBe('ROR_UNAVAILABLE');
    expect(err.message).toContain('refused the client credentials (HTTP 401)');
    expect(err.message).not.toContain('wrong');

    control.tokens = new Set(); // ROR accepts no token at all: one retry, then the refusal
    const c = client({ oauth: { tokenUrl: `${tokens.origin}/token`, clientId: 'passerelle-test', clientSecret: 's3cret:&=' } });
    const refused = await rejection(c.organizationsByIdentifier(FINESS, '750803447'));
    expect(refused.message).toContain('HTTP 401');
    expect(control.requests).toHaveLength(2);
  });

  it('cache: served without asking ROR within the TTL, asked again after it', async () => {
    reset();
    const c = client({ cacheTtlMs: 300 });
    const first = await c.dacServicesByZone('commune', '75107');
    first.services.length = 0; // callers get copies: the cache is not theirs to change
    await c.dacServicesByZone('commune', '75107');
    expect(control.requests).toHaveLength(1);
    await sleep(350);
    const again = await c.dacServicesByZone('commune', '75107');
    expect(control.requests).toHaveLength(2);
    expect(again.services.map((s) => s.id)).toEqual(['hs-dac-paris-ouest']);
  });

  it('stale answers when ROR answers 5xx or is gone; ROR_UNAVAILABLE with nothing cached', async () => {
    const own: RorControl = { requests: [] };
    const server = await listen(rorApp(sample, own).callback());
    const stale: string[] = [];
    const c = new RorClient({ baseUrl: `${server.origin}${PREFIX}`, cacheTtlMs: 50, timeoutMs: 500, onStale: (d) => stale.push(d) });
    const fresh = await c.organizationsByIdentifier(FINESS, '750803447');
    await sleep(80);
    own.failWith = 503;
    expect(await c.organizationsByIdentifier(FINESS, '750803447')).toEqual(fresh);
    expect(stale[0]).toContain('HTTP 503');
    // A 4xx is not an outage: no stale answer masks it.
    own.failWith = 400;
    expect((await rejection(c.organizationsByIdentifier(FINESS, '750803447'))).message).toContain('HTTP 400');
    delete own.failWith;
    // Slow: the timeout counts as an outage.
    own.hangMs = 1500;
    expect(await c.organizationsByIdentifier(FINESS, '750803447')).toEqual(fresh);
    expect(stale.at(-1)).toContain('no answer within 500 ms');
    delete own.hangMs;
    await close(server);
    expect(await c.organizationsByIdentifier(FINESS, '750803447')).toEqual(fresh);
    expect(stale.at(-1)).toContain('cannot reach the server');
    const err = await rejection(c.organizationsByIdentifier(FINESS, '120459876'));
    expect(err.code).toBe('ROR_UNAVAILABLE');
    expect(err.definition.transient).toBe(true);
    expect(err.message).toContain('nothing cached');
  });

  it('configuration errors are CONFIG_INVALID', () => {
    expect(() => new RorClient({ baseUrl: 'not a url' })).toThrow(PasserelleError);
    expect(() => new RorClient({ baseUrl: 'ftp://ror.example' })).toThrow(/http/);
    expect(() => new RorClient({ baseUrl: 'https://ror.example', timeoutMs: 0 })).toThrow(/timeoutMs/);
  });
});

// ---------------------------------------------------------------------------------------------

describe('resolveRouting', () => {
  let ror: Running;
  const control: RorControl = { requests: [] };
  let directory: RorClient;
  beforeAll(async () => {
    ror = await listen(rorApp(sample, control).callback());
    directory = new RorClient({ baseUrl: `${ror.origin}${PREFIX}`, timeoutMs: 2000 });
  });
  afterAll(async () => close(ror));

  const converted = (name: string): Bundle => convertCda(corpusDocument(name)).bundle;
  const resourcesOf = <T>(bundle: Bundle, type: string): T[] => (bundle.entry ?? []).map((e) => e.resource).filter((r) => r?.resourceType === type) as T[];
  /** The routing Provenance (the converter records its own, activity "transform"). */
  const routingProvenances = (bundle: Bundle): Provenance[] =>
    resourcesOf<Provenance>(bundle, 'Provenance').filter((p) => p.activity?.coding?.some((c) => c.system === ACTIVITY_SYSTEM && c.code === 'route'));
  const patientOf = (bundle: Bundle): Patient => resourcesOf<Patient>(bundle, 'Patient')[0] as Patient;
  const withAddresses = (bundle: Bundle, address: Address[] | undefined): Bundle => {
    const copy = structuredClone(bundle);
    const p = patientOf(copy);
    if (address) p.address = address;
    else delete p.address;
    return copy;
  };
  const expectValid = (bundle: Bundle): void => {
    expect(validateBundle(bundle)).toEqual([]);
    expect(validateWithStructureDefinitions(bundle)).toEqual([]);
  };
  const codeOf = async (p: Promise<unknown>): Promise<ErrorCode> => (await rejection(p)).code;

  it.each([...loadCorpus().keys()])('%s: the patient of 75007 PARIS is routed to the DAC of Paris 7e (commune level)', async (name) => {
    const input = converted(name);
    const before = JSON.stringify(input);
    const { bundle, decision } = await resolveRouting(input, directory, { now: new Date('2025-03-01T10:00:00Z') });
    expect(JSON.stringify(input)).toBe(before); // the input is not modified
    expect(decision).toEqual<RoutingDecision>({
      dac: {
        reference: 'Organization/dac-paris-ouest',
        name: 'DAC Paris Ouest (fictif)',
        identifiers: [`${FINESS}|750990038`, '750990038', 'urn:oid:1.2.250.1.71.4.2.2|1750990038', '1750990038'],
      },
      level: 'commune',
      commune: '75107',
      departement: '75',
      region: '11',
      addressSource: 'Patient.address[0]',
    });
    expect(bundle.meta?.tag?.filter((t) => t.system === ROUTED_TO_SYSTEM).map((t) => t.code)).toEqual(decision.dac.identifiers);
    const [provenance, ...more] = routingProvenances(bundle);
    expect(more).toEqual([]);
    const composition = bundle.entry?.[0];
    expect(provenance?.target).toEqual([{ reference: composition?.fullUrl }]);
    expect(provenance?.recorded).toBe('2025-03-01T10:00:00.000Z');
    expect(provenance?.reason?.[0]?.text).toContain('commune 75107');
    expect(provenance?.reason?.[0]?.text).toContain('commune level');
    // No patient data in the routing record.
    const patient = patientOf(bundle);
    const recordText = JSON.stringify([provenance, decision, bundle.meta]);
    for (const n of patient.name ?? []) for (const part of [n.family, ...(n.given ?? [])]) if (part) expect(recordText).not.toContain(part);
    expect(recordText).not.toContain('Breteuil');
    expectValid(bundle);
    // Nothing the document said was removed: every original entry is still there, only added to.
    expect(bundle.entry?.length).toBe((input.entry?.length ?? 0) + 1);
  });

  it('enriches the custodian found by FINESS: ROR identifiers, ROR id, type, partOf (its EJ)', async () => {
    const input = converted('LDL-SES_2022.01.xml');
    const { bundle } = await resolveRouting(input, directory);
    const composition = bundle.entry?.[0]?.resource as Composition;
    const custodian = bundle.entry?.find((e) => e.fullUrl === composition.custodian?.reference)?.resource as Organization;
    const original = input.entry?.find((e) => e.fullUrl === composition.custodian?.reference)?.resource as Organization;
    expect(custodian.name).toBe(original.name);
    expect(custodian.identifier?.slice(0, original.identifier?.length)).toEqual(original.identifier);
    expect(custodian.identifier).toContainEqual({ system: ROR_ORGANIZATION_ID_SYSTEM, value: 'eg-hegp', assigner: { display: 'ROR' } });
    expect(custodian.type?.flatMap((t) => t.coding ?? [])).toContainEqual({ system: TRE_R66, code: '101', display: 'Centre hospitalier régional (CHR)' });
    expect(custodian.partOf).toEqual({ identifier: { system: FINESS, value: '750990012' }, display: "Centre hospitalier universitaire d'Île-de-France (fictif)" });
    // The author's organization (through PractitionerRole) is the same resource here.
    const role = bundle.entry?.find((e) => e.fullUrl === composition.author?.[0]?.reference)?.resource as PractitionerRole;
    expect(role.organization?.reference).toBe(composition.custodian?.reference);
  });

  it('enriches an organization known by its national structure id (SIREN-based, CSE-MDE)', async () => {
    const { bundle } = await resolveRouting(converted('CSE-MDE_2023.01.xml'), directory);
    const composition = bundle.entry?.[0]?.resource as Composition;
    const custodian = bundle.entry?.find((e) => e.fullUrl === composition.custodian?.reference)?.resource as Organization;
    expect(custodian.identifier).toContainEqual(expect.objectContaining({ system: 'https://sirene.fr', value: '801234567' }));
    expect(custodian.identifier).toContainEqual(expect.objectContaining({ system: ROR_ORGANIZATION_ID_SYSTEM, value: 'ej-centre-sante-belvedere' }));
  });

  const variants: [string, Address, RoutingDecision['level'], string, string][] = [
    ['Boulogne-Billancourt (92)', { use: 'home', postalCode: '92100', city: 'BOULOGNE-BILLANCOURT' }, 'departement', 'dac-hauts-de-seine', '92012'],
    ['Lyon 3e', { use: 'home', postalCode: '69003', city: 'LYON' }, 'departement', 'dac-rhone', '69383'],
    ['Bastia (2B)', { use: 'home', postalCode: '20200', city: 'BASTIA' }, 'departement', 'dac-corse', '2B033'],
    ['Rennes', { use: 'home', postalCode: '35000', city: 'Rennes' }, 'region', 'dac-bretagne', '35238'],
    ['Brest, by INSEE code', { use: 'home', city: 'BREST', extension: [{ url: 'https://hl7.fr/ig/fhir/core/StructureDefinition/fr-core-address-insee-code', valueCoding: { code: '29019' } }] }, 'region', 'dac-bretagne', '29019'],
    ['Saint-Denis de La Réunion', { use: 'home', postalCode: '97400', city: 'ST DENIS' }, 'region', 'dac-la-reunion', '97411'],
    ['Paris 15e, CEDEX-free', { use: 'home', postalCode: '75015', city: 'Paris' }, 'commune', 'dac-paris-ouest', '75115'],
  ];
  it.each(variants)('%s → %s level', async (_label, address, level, dac, commune) => {
    const { bundle, decision } = await resolveRouting(withAddresses(converted('LDL-SES_2022.01.xml'), [address]), directory);
    expect(decision.level).toBe(level);
    expect(decision.dac.reference).toBe(`Organization/${dac}`);
    expect(decision.commune).toBe(commune);
    expect(routingProvenances(bundle)[0]?.reason?.[0]?.text).toContain(level === 'commune' ? 'commune level' : level === 'region' ? 'région level' : 'département level');
    expectValid(bundle);
  });

  it('the home address wins over an earlier work address; an ended home address is skipped', async () => {
    const addresses: Address[] = [
      { use: 'work', postalCode: '69003', city: 'LYON' },
      { use: 'home', postalCode: '75007', city: 'PARIS', period: { end: '2001-01-01' } },
      { use: 'home', postalCode: '35000', city: 'RENNES' },
    ];
    const { decision } = await resolveRouting(withAddresses(converted('LDL-SES_2022.01.xml'), addresses), directory);
    expect(decision.addressSource).toBe('Patient.address[2]');
    expect(decision.dac.reference).toBe('Organization/dac-bretagne');
  });

  it('no DAC at any level → ROUTING_NO_DAC (04 is La Réunion as a région, not the département 04)', async () => {
    const base = converted('LDL-SES_2022.01.xml');
    expect(await codeOf(resolveRouting(withAddresses(base, [{ use: 'home', postalCode: '04000', city: 'DIGNE-LES-BAINS' }]), directory))).toBe('ROUTING_NO_DAC');
    expect(await codeOf(resolveRouting(withAddresses(base, [{ use: 'home', postalCode: '33000', city: 'BORDEAUX' }]), directory))).toBe('ROUTING_NO_DAC');
  });

  it('no commune → ROUTING_COMMUNE_UNKNOWN, without the address in the message', async () => {
    const base = converted('LDL-SES_2022.01.xml');
    const ambiguous = await rejection(resolveRouting(withAddresses(base, [{ use: 'home', postalCode: '01400', line: ['1 rue Secrète'] }]), directory));
    expect(ambiguous.code).toBe('ROUTING_COMMUNE_UNKNOWN');
    expect(ambiguous.message).toContain('Patient.address[0]');
    expect(ambiguous.message).not.toContain('01400');
    expect(await codeOf(resolveRouting(withAddresses(base, [{ use: 'home', postalCode: '1000', city: 'BRUXELLES', country: 'BE' }]), directory))).toBe('ROUTING_COMMUNE_UNKNOWN');
    expect(await codeOf(resolveRouting(withAddresses(base, undefined), directory))).toBe('ROUTING_COMMUNE_UNKNOWN');
  });

  it('a replay replaces the routing record instead of adding a second one', async () => {
    const once = await resolveRouting(converted('DLU-EHPAD-FLUDT_2022.01.xml'), directory);
    const twice = await resolveRouting(once.bundle, directory);
    expect(routingProvenances(twice.bundle)).toHaveLength(1);
    expect(twice.bundle.meta?.tag).toEqual(once.bundle.meta?.tag);
    expect(twice.bundle.entry?.length).toBe(once.bundle.entry?.length);
    expectValid(twice.bundle);
  });

  it('several DACs at one level: the most local zone, then the smallest ROR id; inactive ones ignored', async () => {
    const fixture = collection(
      dacOrganization('dac-b-wide', '750990101'), dacService('hs-wide', 'dac-b-wide', [['3', '75107'], ['3', '75108']]),
      dacOrganization('dac-z-paris', '750990102'), dacService('hs-paris', 'dac-z-paris', [['3', '75056']]), // Paris as a whole
      dacOrganization('dac-c-local', '750990103'), dacService('hs-local', 'dac-c-local', [['3', '75107']]),
      dacOrganization('dac-a-closed', '750990104', false), dacService('hs-closed', 'dac-a-closed', [['3', '75107']]),
      dacOrganization('dac-a-inactive-service', '750990105'), dacService('hs-inactive', 'dac-a-inactive-service', [['3', '75107']], false),
    );
    const server = await listen(rorApp(fixture, { requests: [] }).callback());
    try {
      const c = new RorClient({ baseUrl: `${server.origin}${PREFIX}` });
      const bundle = converted('LDL-SES_2022.01.xml');
      const first = await resolveRouting(bundle, c);
      const second = await resolveRouting(bundle, c);
      expect(first.decision.dac.reference).toBe('Organization/dac-c-local');
      expect(second.decision).toEqual(first.decision);
      // Only the whole-city zone left: it covers the 7th arrondissement at commune level.
      const onlyParis = collection(dacOrganization('dac-z-paris', '750990102'), dacService('hs-paris', 'dac-z-paris', [['3', '75056']]));
      const s2 = await listen(rorApp(onlyParis, { requests: [] }).callback());
      try {
        const r = await resolveRouting(bundle, new RorClient({ baseUrl: `${s2.origin}${PREFIX}` }));
        expect(r.decision).toMatchObject({ level: 'commune', commune: '75107', dac: { reference: 'Organization/dac-z-paris' } });
        expect(routingProvenances(r.bundle)[0]?.reason?.[0]?.text).toContain('zone covers commune 75056');
      } finally {
        await close(s2);
      }
    } finally {
      await close(server);
    }
  });

  it('ROR down with nothing cached → ROR_UNAVAILABLE (transient); DAC cached but organizations not → routed, not enriched', async () => {
    const own: RorControl = { requests: [] };
    const server = await listen(rorApp(sample, own).callback());
    const c = new RorClient({ baseUrl: `${server.origin}${PREFIX}`, timeoutMs: 1000 });
    await c.dacServicesByZone('commune', '75107');
    await c.dacServicesByZone('commune', '75056');
    await close(server);
    const input = converted('LDL-SES_2022.01.xml');
    const { bundle, decision } = await resolveRouting(input, c);
    expect(decision.dac.reference).toBe('Organization/dac-paris-ouest');
    const composition = bundle.entry?.[0]?.resource as Composition;
    const custodian = bundle.entry?.find((e) => e.fullUrl === composition.custodian?.reference)?.resource as Organization;
    const original = input.entry?.find((e) => e.fullUrl === composition.custodian?.reference)?.resource as Organization;
    expect(custodian).toEqual(original);
    expectValid(bundle);

    const cold = new RorClient({ baseUrl: `${server.origin}${PREFIX}`, timeoutMs: 1000 });
    const err = await rejection(resolveRouting(input, cold));
    expect(err.code).toBe('ROR_UNAVAILABLE');
    expect(err.definition.transient).toBe(true);
  });
});
