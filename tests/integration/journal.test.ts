/**
 * The journal port's contract, one suite run against both implementations on real databases:
 * SQLite files in a temp dir, and a PostgreSQL database of this file's own on 127.0.0.1:5432.
 * Then what only one of them has to prove: SQLite shared by several processes, and its durability.
 */
import { fork } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import Database from 'better-sqlite3';
import pg from 'pg';
import ts from 'typescript';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { openJournal } from '../../adapters/journal/open.js';
import { ENTRY_STATES, LeaseLostError, type Claim, type Journal, type NewEntry, type Transition } from '../../adapters/journal/port.js';
import { SqliteJournal } from '../../adapters/journal/sqlite.js';
import { ERROR_CATALOGUE, type ErrorCode } from '../../gateway/errors.js';
import { REPO_ROOT } from '../support/corpus.js';

const PG_SERVER = 'postgres://postgres@127.0.0.1:5432';
const PG_DATABASE = `passerelle_journal_${randomBytes(6).toString('hex')}`;
const PG_URL = `${PG_SERVER}/${PG_DATABASE}`;
const ISO_MS = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

const tmp = mkdtempSync(join(tmpdir(), 'passerelle-journal-'));
let cases = 0;

async function onPostgres(url: string, sql: string): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await client.query(sql);
  } finally {
    await client.end();
  }
}

beforeAll(async () => {
  await onPostgres(`${PG_SERVER}/postgres`, `CREATE DATABASE ${PG_DATABASE}`);
});

afterAll(async () => {
  await onPostgres(`${PG_SERVER}/postgres`, `DROP DATABASE IF EXISTS ${PG_DATABASE} WITH (FORCE)`);
  rmSync(tmp, { recursive: true, force: true });
});

interface Backend {
  name: string;
  /** The `database` setting of an empty journal database. */
  fresh(): Promise<string>;
}

const BACKENDS: Backend[] = [
  // A new file in a directory that does not exist yet: the journal must create it.
  { name: 'sqlite', fresh: () => Promise.resolve(`sqlite:${join(tmp, `case-${++cases}`, 'journal.db')}`) },
  {
    name: 'postgres',
    fresh: async () => {
      await onPostgres(PG_URL, 'DROP SCHEMA public CASCADE; CREATE SCHEMA public');
      return PG_URL;
    },
  },
];

const opened: Journal[] = [];

async function open(database: string): Promise<Journal> {
  const journal = await openJournal(database);
  opened.push(journal);
  return journal;
}

afterEach(async () => {
  // Some tests close their journal themselves; a second close may fail, which is fine here.
  await Promise.all(opened.splice(0).map((j) => j.close().catch(() => undefined)));
});

function input(overrides: Partial<NewEntry> = {}): NewEntry {
  return {
    kind: 'document',
    door: 'http',
    submitter: 'chu-nice',
    contentType: 'application/hl7-cda+xml',
    raw: Buffer.from('<ClinicalDocument xmlns="urn:hl7-org:v3"/>'),
    meta: { fileName: 'cr.xml', remoteAddress: '127.0.0.1' },
    ...overrides,
  };
}

const ok = (state: Transition['state'], stage: string, more: Partial<Transition> = {}): Transition => ({ state, outcome: 'ok', stage, ...more });

async function claimed(journal: Journal, worker = 'w1', leaseMs = 60_000): Promise<Claim> {
  const claim = await journal.claim(worker, leaseMs);
  if (claim === undefined) throw new Error('expected a claimable entry');
  return claim;
}

function rejectsWithCode(promise: Promise<unknown>, code: ErrorCode): Promise<void> {
  return expect(promise).rejects.toMatchObject({ name: 'PasserelleError', code });
}

describe.each(BACKENDS)('$name journal', (backend) => {
  let journal: Journal;

  async function fresh(): Promise<Journal> {
    journal = await open(await backend.fresh());
    return journal;
  }

  it('appends an entry with its raw bytes and a receive event, and reads them back', async () => {
    await fresh();
    // Bytes that are not UTF-8 and contain NUL: raw means raw.
    const raw = Buffer.concat([Buffer.from([0x00, 0xff, 0xfe, 0x80]), Buffer.from('MIME-Version: 1.0\r\n\r\n')]);
    const entry = await journal.append(input({ kind: 'message', door: 'smtp', submitter: 'expediteur@hopital.mssante.fr', contentType: 'message/rfc822', raw }));
    expect(entry).toMatchObject({
      kind: 'message', door: 'smtp', submitter: 'expediteur@hopital.mssante.fr', contentType: 'message/rfc822',
      sha256: createHash('sha256').update(raw).digest('hex'),
      size: raw.length, state: 'received', attempts: 0, errorCode: null, error: null,
      meta: { fileName: 'cr.xml', remoteAddress: '127.0.0.1' }, result: {}, overrides: [],
    });
    expect(entry.id).toMatch(/^[0-9a-f-]{36}$/);
    for (const instant of [entry.createdAt, entry.updatedAt, entry.notBefore]) expect(instant).toMatch(ISO_MS);
    expect(await journal.get(entry.id)).toEqual(entry);
    expect((await journal.raw(entry.id))?.equals(raw)).toBe(true);
    expect(await journal.history(entry.id)).toEqual([{ seq: 1, state: 'received', at: entry.createdAt, outcome: 'receive' }]);

    expect(await journal.get('no-such-entry')).toBeUndefined();
    expect(await journal.raw('no-such-entry')).toBeUndefined();
    expect(await journal.history('no-such-entry')).toEqual([]);
  });

  it('claims the oldest claimable entry first, counts attempts, and never hands out a leased one', async () => {
    await fresh();
    const [a, b, c] = [await journal.append(input()), await journal.append(input()), await journal.append(input())];
    const first = await claimed(journal, 'w1');
    const second = await claimed(journal, 'w2');
    const third = await claimed(journal, 'w1');
    expect([first.entry.id, second.entry.id, third.entry.id]).toEqual([a.id, b.id, c.id]);
    expect([first, second, third].map((cl) => cl.entry.attempts)).toEqual([1, 1, 1]);
    expect(new Set([first.token, second.token, third.token]).size).toBe(3);
    expect(await journal.claim('w3', 60_000)).toBeUndefined();
  });

  it('records transitions in one go: state, shallow result merge, history; the lease lasts until a final state', async () => {
    await fresh();
    const { id } = await journal.append(input());
    const claim = await claimed(journal);
    const converted = await journal.record(claim, ok('converted', 'convert', { durationMs: 12.5, result: { bundles: ['Bundle/1'], routing: { dac: 'a' } } }));
    expect(converted).toMatchObject({ state: 'converted', attempts: 1, result: { bundles: ['Bundle/1'], routing: { dac: 'a' } } });
    expect(await journal.claim('w2', 60_000)).toBeUndefined();

    const identified = await journal.record(claim, ok('identified', 'identify', { durationMs: 3, result: { routing: { region: '93' }, ins: 'qualified' } }));
    // Shallow: `routing` is replaced as a whole, the other keys stay.
    expect(identified.result).toEqual({ bundles: ['Bundle/1'], routing: { region: '93' }, ins: 'qualified' });

    const delivered = await journal.record(claim, ok('delivered', 'route', { detail: 'stored as Bundle/1' }));
    expect(delivered.state).toBe('delivered');
    await expect(journal.record(claim, ok('delivered', 'route'))).rejects.toBeInstanceOf(LeaseLostError);
    await expect(journal.renew(claim, 60_000)).rejects.toBeInstanceOf(LeaseLostError);
    expect(await journal.claim('w2', 60_000)).toBeUndefined();

    const history = await journal.history(id);
    expect(history.map(({ at: _at, ...event }) => event)).toEqual([
      { seq: 1, state: 'received', outcome: 'receive' },
      { seq: 2, state: 'converted', outcome: 'ok', stage: 'convert', durationMs: 12.5 },
      { seq: 3, state: 'identified', outcome: 'ok', stage: 'identify', durationMs: 3 },
      { seq: 4, state: 'delivered', outcome: 'ok', stage: 'route', detail: 'stored as Bundle/1' },
    ]);
    for (const event of history) expect(event.at).toMatch(ISO_MS);
    expect([...history.map((e) => e.at)].sort()).toEqual(history.map((e) => e.at));
    expect(history[3]?.at).toBe(delivered.updatedAt);
  });

  it('records the stages an attempt passed together with its last transition: results merged in order, one event each at its own time', async () => {
    await fresh();
    const { id } = await journal.append(input());
    const claim = await claimed(journal);
    const convertedAt = new Date(Date.now() - 2000);
    const identifiedAt = new Date(Date.now() - 1000);
    const passed = [
      ok('converted', 'convert', { durationMs: 4, result: { documents: ['a'], routing: { dac: 'x' } }, at: convertedAt }),
      ok('identified', 'identify', { durationMs: 2, result: { documents: ['b'] }, at: identifiedAt }),
    ];
    const retried = await journal.record(claim, { state: 'identified', outcome: 'retry', stage: 'resolve', errorCode: 'ROR_UNAVAILABLE' }, passed);
    expect(retried).toMatchObject({ state: 'identified', errorCode: 'ROR_UNAVAILABLE', result: { documents: ['b'], routing: { dac: 'x' } } });
    const history = await journal.history(id);
    expect(history.map((e) => [e.seq, e.state, e.outcome, e.stage])).toEqual([
      [1, 'received', 'receive', undefined],
      [2, 'converted', 'ok', 'convert'],
      [3, 'identified', 'ok', 'identify'],
      [4, 'identified', 'retry', 'resolve'],
    ]);
    expect(history.slice(1, 3).map((e) => e.at)).toEqual([convertedAt.toISOString(), identifiedAt.toISOString()]);
    expect(history[3]?.at).toBe(retried.updatedAt);

    // A lost lease writes none of them.
    const again = await claimed(journal, 'w2');
    await journal.record(again, ok('delivered', 'route'));
    await expect(journal.record(claim, ok('delivered', 'route'), passed)).rejects.toBeInstanceOf(LeaseLostError);
    expect(await journal.history(id)).toHaveLength(5);
  });

  it('quarantines or fails with the error code, its detail or else the catalogue message, and releases the lease', async () => {
    await fresh();
    const { id } = await journal.append(input());
    await journal.append(input());
    const quarantined = await journal.record(
      await claimed(journal),
      { state: 'quarantined', outcome: 'quarantine', stage: 'convert', durationMs: 1, errorCode: 'CDA_NOT_WELL_FORMED', detail: 'line 1: unclosed tag' },
    );
    expect(quarantined).toMatchObject({ id, state: 'quarantined', errorCode: 'CDA_NOT_WELL_FORMED', error: 'line 1: unclosed tag' });
    expect((await journal.history(id)).at(-1)).toMatchObject({
      seq: 2, state: 'quarantined', outcome: 'quarantine', stage: 'convert', durationMs: 1, errorCode: 'CDA_NOT_WELL_FORMED', detail: 'line 1: unclosed tag',
    });
    const failed = await journal.record(await claimed(journal), { state: 'failed', outcome: 'fail', stage: 'route', errorCode: 'STORE_UNAVAILABLE' });
    expect(failed).toMatchObject({ state: 'failed', errorCode: 'STORE_UNAVAILABLE', error: ERROR_CATALOGUE.STORE_UNAVAILABLE.message });
    expect(await journal.claim('w2', 60_000)).toBeUndefined();
  });

  it('a retry releases the lease, keeps the state, respects notBefore, and a later success clears the error', async () => {
    await fresh();
    await journal.append(input());
    const notBefore = new Date(Date.now() + 500);
    const retried = await journal.record(await claimed(journal), {
      state: 'converted', outcome: 'retry', stage: 'identify', errorCode: 'SRIR_UNAVAILABLE', detail: 'HTTP 503', notBefore,
    });
    expect(retried).toMatchObject({ state: 'converted', attempts: 1, errorCode: 'SRIR_UNAVAILABLE', error: 'HTTP 503', notBefore: notBefore.toISOString() });
    expect(await journal.claim('w2', 60_000)).toBeUndefined();
    await sleep(700);
    const again = await claimed(journal, 'w2');
    expect(again.entry).toMatchObject({ id: retried.id, attempts: 2, state: 'converted' });
    const identified = await journal.record(again, ok('identified', 'identify'));
    expect(identified).toMatchObject({ errorCode: null, error: null });

    // Without notBefore, a retried entry may be claimed again at once.
    await journal.record(again, { state: 'identified', outcome: 'retry', stage: 'resolve', errorCode: 'ROR_UNAVAILABLE' });
    expect((await claimed(journal, 'w3')).entry).toMatchObject({ id: identified.id, state: 'identified', attempts: 3 });
  });

  it('lets another worker take an expired lease over; the first worker then gets LeaseLostError', async () => {
    await fresh();
    await journal.append(input());
    const first = await claimed(journal, 'w1', 300);
    expect(await journal.claim('w2', 60_000)).toBeUndefined();
    await sleep(400);
    const second = await claimed(journal, 'w2');
    expect(second.entry).toMatchObject({ id: first.entry.id, attempts: 2 });
    await expect(journal.record(first, ok('converted', 'convert'))).rejects.toBeInstanceOf(LeaseLostError);
    await expect(journal.renew(first, 60_000)).rejects.toBeInstanceOf(LeaseLostError);
    // A stale release must not free the new holder's lease.
    await journal.release(first);
    expect(await journal.claim('w3', 60_000)).toBeUndefined();
    expect((await journal.record(second, ok('converted', 'convert'))).state).toBe('converted');
    expect((await journal.history(first.entry.id)).map((e) => e.seq)).toEqual([1, 2]);
  });

  it('renew keeps a lease alive past its first term', async () => {
    await fresh();
    await journal.append(input());
    const claim = await claimed(journal, 'w1', 300);
    await journal.renew(claim, 60_000);
    await sleep(400);
    expect(await journal.claim('w2', 60_000)).toBeUndefined();
    expect((await journal.record(claim, ok('converted', 'convert'))).state).toBe('converted');
  });

  it('release gives the entry back untouched, for another worker to claim at once', async () => {
    await fresh();
    const appended = await journal.append(input());
    const claim = await claimed(journal);
    await journal.release(claim);
    expect(await journal.get(appended.id)).toMatchObject({ state: 'received', attempts: 1 });
    expect(await journal.history(appended.id)).toHaveLength(1);
    expect((await claimed(journal, 'w2')).entry).toMatchObject({ id: appended.id, attempts: 2 });
  });

  it('reopens a final entry for replay or release, recording who and why; refuses unknown and unfinished ones', async () => {
    await fresh();
    const { id } = await journal.append(input());
    await rejectsWithCode(journal.reopen('no-such-entry', { outcome: 'replay', actor: 'ops' }), 'NOT_FOUND');
    await rejectsWithCode(journal.reopen(id, { outcome: 'replay', actor: 'ops' }), 'STATE_CONFLICT');
    const quarantine: Transition = { state: 'quarantined', outcome: 'quarantine', stage: 'identify', errorCode: 'IDENTITY_AMBIGUOUS' };

    let claim = await claimed(journal);
    await journal.record(claim, ok('converted', 'convert', { result: { bundles: ['Bundle/1'] } }));
    await rejectsWithCode(journal.reopen(id, { outcome: 'replay', actor: 'ops' }), 'STATE_CONFLICT');
    await journal.record(claim, quarantine);

    const replayed = await journal.reopen(id, { outcome: 'replay', actor: 'ops', reason: 'SRIR data fixed' });
    expect(replayed).toMatchObject({ state: 'received', attempts: 0, errorCode: null, error: null, overrides: [], result: { bundles: ['Bundle/1'] } });
    expect((await journal.history(id)).at(-1)).toMatchObject({ seq: 4, state: 'received', outcome: 'replay', actor: 'ops', detail: 'SRIR data fixed' });

    claim = await claimed(journal, 'w2');
    expect(claim.entry.attempts).toBe(1);
    await journal.record(claim, quarantine);
    const released = await journal.reopen(id, { outcome: 'release', actor: 'idv-officer', reason: 'identity checked by phone', override: 'IDENTITY_AMBIGUOUS' });
    expect(released).toMatchObject({ state: 'received', attempts: 0, overrides: ['IDENTITY_AMBIGUOUS'] });
    expect((await journal.history(id)).at(-1)).toMatchObject({
      seq: 6, state: 'received', outcome: 'release', actor: 'idv-officer', detail: 'identity checked by phone', errorCode: 'IDENTITY_AMBIGUOUS',
    });

    // A second release of the same code does not list it twice; a delivered entry may be replayed too.
    await journal.record(await claimed(journal), quarantine);
    expect((await journal.reopen(id, { outcome: 'release', actor: 'ops', override: 'IDENTITY_AMBIGUOUS' })).overrides).toEqual(['IDENTITY_AMBIGUOUS']);
    await journal.record(await claimed(journal), ok('delivered', 'route'));
    expect((await journal.reopen(id, { outcome: 'replay', actor: 'ops' })).overrides).toEqual(['IDENTITY_AMBIGUOUS']);
  });

  it('counts entries per state, with zero for every empty state', async () => {
    await fresh();
    expect(await journal.counts()).toEqual(Object.fromEntries(ENTRY_STATES.map((s) => [s, 0])));
    for (let i = 0; i < 4; i++) await journal.append(input());
    await journal.record(await claimed(journal), ok('delivered', 'route'));
    await journal.record(await claimed(journal), { state: 'quarantined', outcome: 'quarantine', stage: 'convert', errorCode: 'CDA_BODY_MISSING' });
    await journal.record(await claimed(journal), ok('converted', 'convert'));
    expect(await journal.counts()).toEqual({ ...Object.fromEntries(ENTRY_STATES.map((s) => [s, 0])), received: 1, converted: 1, delivered: 1, quarantined: 1 });
  });

  it('lists most recent first, filtered by state, a page at a time', async () => {
    await fresh();
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) ids.push((await journal.append(input())).id);
    const [e1, e2, e3, e4, e5] = ids as [string, string, string, string, string];
    for (const id of ids) {
      const claim = await claimed(journal);
      expect(claim.entry.id).toBe(id);
      // Quarantine two; the others stay leased so that the next claim moves on.
      if (id === e2 || id === e4) await journal.record(claim, { state: 'quarantined', outcome: 'quarantine', stage: 'convert', errorCode: 'CDA_BODY_MISSING' });
    }
    const listed = async (filter: Parameters<Journal['list']>[0]): Promise<string[]> => (await journal.list(filter)).map((e) => e.id);
    expect(await listed({ limit: 10 })).toEqual([e5, e4, e3, e2, e1]);
    expect(await listed({ limit: 2 })).toEqual([e5, e4]);
    expect(await listed({ limit: 2, before: e4 })).toEqual([e3, e2]);
    expect(await listed({ limit: 2, before: e2 })).toEqual([e1]);
    expect(await listed({ limit: 2, before: e1 })).toEqual([]);
    expect(await listed({ limit: 10, state: 'quarantined' })).toEqual([e4, e2]);
    expect(await listed({ limit: 10, state: 'quarantined', before: e4 })).toEqual([e2]);
    expect(await listed({ limit: 10, before: 'no-such-entry' })).toEqual([]);
    expect((await journal.list({ limit: 1 }))[0]).toEqual(await journal.get(e5));
  });

  it('answers ping; once closed, every call reports JOURNAL_UNAVAILABLE', async () => {
    await fresh();
    await expect(journal.ping()).resolves.toBeUndefined();
    await journal.close();
    await rejectsWithCode(journal.ping(), 'JOURNAL_UNAVAILABLE');
    await rejectsWithCode(journal.append(input()), 'JOURNAL_UNAVAILABLE');
  });

  it('init is idempotent, also when two instances start together on an empty database', async () => {
    const database = await backend.fresh();
    const [one, two] = await Promise.all([open(database), open(database)]);
    await one.init();
    const { id } = await one.append(input());
    expect((await two.get(id))?.state).toBe('received');
  });

  it('stores NUL characters of text fields as U+FFFD rather than refusing the input', async () => {
    await fresh();
    const entry = await journal.append(input({ submitter: 'a\u0000b@x.fr', meta: { fileName: 'cr\u0000.xml' } }));
    expect(entry).toMatchObject({ submitter: 'a\uFFFDb@x.fr', meta: { fileName: 'cr\uFFFD.xml' } });
    const recorded = await journal.record(await claimed(journal, 'w\u0000'), {
      state: 'quarantined', outcome: 'quarantine', stage: 'convert', errorCode: 'CDA_NOT_WELL_FORMED', detail: 'bad \u0000 byte', result: { note: '\u0000' },
    });
    expect(recorded).toMatchObject({ error: 'bad \uFFFD byte', result: { note: '\uFFFD' } });
  });

  it('two instances claiming concurrently hand each of 200 entries to exactly one worker', async () => {
    const database = await backend.fresh();
    const [one, two] = [await open(database), await open(database)];
    const ids: string[] = [];
    for (let i = 0; i < 200; i++) ids.push((await one.append(input())).id);

    const claimedBy = new Map<string, string[]>();
    const drain = async (j: Journal, worker: string): Promise<void> => {
      for (let claim = await j.claim(worker, 60_000); claim; claim = await j.claim(worker, 60_000)) {
        claimedBy.set(claim.entry.id, [...(claimedBy.get(claim.entry.id) ?? []), worker]);
        await j.record(claim, ok('delivered', 'route'));
      }
    };
    // Four loops per instance, so that claims really overlap on PostgreSQL's pools.
    await Promise.all([1, 2, 3, 4].flatMap((n) => [drain(one, `one-${n}`), drain(two, `two-${n}`)]));

    expect([...claimedBy.keys()].sort()).toEqual([...ids].sort());
    expect([...claimedBy.values()].filter((workers) => workers.length !== 1)).toEqual([]);
    const winners = [...claimedBy.values()].map((workers) => workers[0]?.slice(0, 3));
    expect(winners).toContain('one');
    expect(winners).toContain('two');
    expect((await two.counts()).delivered).toBe(200);
  });
});

describe('sqlite journal shared by processes', () => {
  /**
   * Child processes run plain `node` (no TypeScript loader), so the journal and what it imports are
   * transpiled into the temp dir with the project's TypeScript, next to a link to node_modules.
   */
  let bin: string;

  beforeAll(() => {
    bin = join(tmp, 'js');
    const pending = ['adapters/journal/sqlite.ts'];
    for (let file = pending.pop(); file !== undefined; file = pending.pop()) {
      const target = join(bin, file.replace(/\.ts$/, '.js'));
      const source = readFileSync(join(REPO_ROOT, file), 'utf8');
      for (const [, relative] of source.matchAll(/from '(\.{1,2}\/[^']+)\.js'/g)) pending.push(join(dirname(file), `${relative}.ts`));
      const { outputText } = ts.transpileModule(source, { compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 } });
      mkdirSync(dirname(target), { recursive: true });
      writeFileSync(target, outputText);
    }
    writeFileSync(join(bin, 'package.json'), '{ "type": "module" }');
    symlinkSync(join(REPO_ROOT, 'node_modules'), join(bin, 'node_modules'));
    writeFileSync(join(bin, 'child.mjs'), CHILD);
  });

  const CHILD = `
import { SqliteJournal } from './adapters/journal/sqlite.js';
const [path, role] = process.argv.slice(2);
const journal = new SqliteJournal(path);
await journal.init();
if (role === 'append') {
  const entry = await journal.append({ kind: 'document', door: 'http', submitter: 'child', contentType: 'application/xml', raw: Buffer.from('<x/>') });
  process.send({ id: entry.id });
  setInterval(() => {}, 1000); // waits for SIGKILL
} else {
  process.once('message', async () => {
    const ids = [];
    for (let claim = await journal.claim(role, 60000); claim; claim = await journal.claim(role, 60000)) {
      ids.push(claim.entry.id);
      await new Promise((resolve) => setTimeout(resolve, 2)); // the stage's work, lock not held
      await journal.record(claim, { state: 'delivered', outcome: 'ok', stage: 'route' });
    }
    await journal.close();
    process.send({ ids }, () => process.disconnect());
  });
  process.send({ ready: true });
}`;

  function child(path: string, role: string): { process: ReturnType<typeof fork>; next: () => Promise<Record<string, unknown>> } {
    const proc = fork(join(bin, 'child.mjs'), [path, role], { stdio: ['ignore', 'ignore', 'pipe', 'ipc'] });
    let stderr = '';
    proc.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const messages: Record<string, unknown>[] = [];
    const waiting: ((m: Record<string, unknown>) => void)[] = [];
    proc.on('message', (m) => {
      const resolve = waiting.shift();
      if (resolve) resolve(m as Record<string, unknown>);
      else messages.push(m as Record<string, unknown>);
    });
    const next = (): Promise<Record<string, unknown>> => {
      const queued = messages.shift();
      if (queued) return Promise.resolve(queued);
      return new Promise((resolve, reject) => {
        waiting.push(resolve);
        proc.once('exit', (code) => reject(new Error(`child ${role} exited (${code}): ${stderr}`)));
      });
    };
    return { process: proc, next };
  }

  it('three processes claiming from one file hand each of 200 entries to exactly one of them', async () => {
    const path = join(tmp, 'shared', 'journal.db');
    const journal = new SqliteJournal(path);
    opened.push(journal);
    await journal.init();
    const ids: string[] = [];
    for (let i = 0; i < 200; i++) ids.push((await journal.append(input())).id);

    const workers = ['p1', 'p2', 'p3'].map((role) => child(path, role));
    await Promise.all(workers.map((w) => w.next()));
    for (const w of workers) w.process.send('go');
    const results = await Promise.all(workers.map(async (w) => (await w.next()).ids as string[]));

    const all = results.flat();
    expect(all.length).toBe(200);
    expect([...all].sort()).toEqual([...ids].sort());
    expect(results.filter((r) => r.length > 0).length).toBeGreaterThan(1);
    expect((await journal.counts()).delivered).toBe(200);
  });

  it('an entry is on disk once append resolves: a process killed right after leaves it behind', async () => {
    // SIGKILL proves the commit happened before append() resolved. A power cut cannot be staged in
    // a test: that part rests on synchronous=FULL with WAL, set by the constructor.
    const path = join(tmp, 'killed', 'journal.db');
    const appender = child(path, 'append');
    const { id } = (await appender.next()) as { id: string };
    const exited = new Promise((resolve) => appender.process.once('exit', resolve));
    appender.process.kill('SIGKILL');
    await exited;

    const journal = new SqliteJournal(path);
    opened.push(journal);
    await journal.init();
    expect(await journal.get(id)).toMatchObject({ id, state: 'received', submitter: 'child' });
    expect((await journal.raw(id))?.toString()).toBe('<x/>');
    const file = new Database(path, { readonly: true });
    expect(file.pragma('journal_mode', { simple: true })).toBe('wal');
    file.close();
  });

  it('also runs in memory', async () => {
    const journal = await open('sqlite::memory:');
    const { id } = await journal.append(input());
    expect((await journal.get(id))?.state).toBe('received');
  });
});

describe('journal written by 0.2 (raw bytes in the entry row)', () => {
  const OLD_ENTRIES = `CREATE TABLE journal_entries (pos INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, kind TEXT NOT NULL, door TEXT NOT NULL,
    submitter TEXT NOT NULL, content_type TEXT NOT NULL, sha256 TEXT NOT NULL, size INTEGER NOT NULL, raw BLOB NOT NULL, state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0, error_code TEXT, error TEXT, not_before TEXT NOT NULL, created_at TEXT NOT NULL, updated_at TEXT NOT NULL,
    meta TEXT NOT NULL, result TEXT NOT NULL DEFAULT '{}', overrides TEXT NOT NULL DEFAULT '[]', lease_token TEXT, lease_owner TEXT, lease_until TEXT)`;
  const now = new Date().toISOString();

  it('moves the bytes to their own table on SQLite, losing nothing', async () => {
    const file = join(mkdtempSync(join(tmpdir(), 'passerelle-journal-old-')), 'j.db');
    const db = new Database(file);
    db.exec(OLD_ENTRIES);
    db.prepare(`INSERT INTO journal_entries (id, kind, door, submitter, content_type, sha256, size, raw, state, not_before, created_at, updated_at, meta)
      VALUES ('old-1', 'document', 'http', 's', 'application/xml', 'x', 3, ?, 'received', ?, ?, ?, '{}')`).run(Buffer.from('abc'), now, now, now);
    db.close();
    const journal = await openJournal(`sqlite:${file}`);
    expect((await journal.raw('old-1'))?.toString()).toBe('abc');
    expect((await journal.claim('w', 1000))?.entry.id).toBe('old-1');
    expect((await journal.append(input())).state).toBe('received');
    await journal.close();
  });

  it('moves the bytes to their own table on PostgreSQL, losing nothing', async () => {
    const database = `passerelle_journal_old_${randomBytes(4).toString('hex')}`;
    await onPostgres(`${PG_SERVER}/postgres`, `CREATE DATABASE ${database}`);
    try {
      await onPostgres(`${PG_SERVER}/${database}`, `CREATE TABLE journal_entries (pos bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, id text NOT NULL UNIQUE,
        kind text NOT NULL, door text NOT NULL, submitter text NOT NULL, content_type text NOT NULL, sha256 text NOT NULL, size integer NOT NULL, raw bytea NOT NULL,
        state text NOT NULL, attempts integer NOT NULL DEFAULT 0, error_code text, error text, not_before timestamptz NOT NULL, created_at timestamptz NOT NULL,
        updated_at timestamptz NOT NULL, meta jsonb NOT NULL, result jsonb NOT NULL DEFAULT '{}', overrides jsonb NOT NULL DEFAULT '[]', lease_token text,
        lease_owner text, lease_until timestamptz);
        INSERT INTO journal_entries (id, kind, door, submitter, content_type, sha256, size, raw, state, not_before, created_at, updated_at, meta)
        VALUES ('old-1', 'document', 'http', 's', 'application/xml', 'x', 3, '\\x616263', 'received', now(), now(), now(), '{}')`);
      const journal = await openJournal(`${PG_SERVER}/${database}`);
      expect((await journal.raw('old-1'))?.toString()).toBe('abc');
      expect((await journal.append(input())).state).toBe('received');
      await journal.close();
    } finally {
      await onPostgres(`${PG_SERVER}/postgres`, `DROP DATABASE IF EXISTS ${database} WITH (FORCE)`);
    }
  });
});
