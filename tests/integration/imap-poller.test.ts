/**
 * The IMAP door against a real Dovecot (tests/support/dovecot.ts; `.ci/run` installs
 * dovecot-imapd): messages are delivered with APPEND as an MTA's local delivery would leave them,
 * the poller journals them into the real SqliteJournal, then flags or moves them. Only where the
 * journal's failure or slowness is the point is it wrapped.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ImapFlow } from 'imapflow';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { openJournal } from '../../adapters/journal/open.js';
import type { Entry, Journal } from '../../adapters/journal/port.js';
import { createLogger, type Logger } from '../../gateway/log.js';
import { createImapPoller, JOURNALED_KEYWORD, OVERSIZE_KEYWORD, type ImapPoller, type MailboxConfig } from '../../gateway/mail/imap-poller.js';
import { FilePollerState } from '../../gateway/mail/poller-state.js';
import { makeTestPki, removeDovecotDir, startDovecot, type Dovecot } from '../support/dovecot.js';
import { ControlledJournal } from '../support/controlled-journal.js';

const dir = mkdtempSync(join(tmpdir(), 'passerelle-imap-'));
let dovecot: Dovecot;
let journal: Journal;
let admin: ImapFlow;
const cleanups: (() => Promise<void>)[] = [];
/** Pollers of the current test, stopped after it. */
const running: ImapPoller[] = [];

function client(server: Dovecot): ImapFlow {
  return new ImapFlow({
    host: '127.0.0.1', port: server.port, secure: false, doSTARTTLS: false,
    auth: { user: server.user, pass: server.password }, logger: false, disableAutoIdle: true,
  });
}

beforeAll(async () => {
  dovecot = await startDovecot();
  journal = await openJournal(`sqlite:${join(dir, 'j.db')}`);
  admin = client(dovecot);
  await admin.connect();
}, 30_000);
afterEach(async () => {
  for (const p of running.splice(0)) await p.stop();
});
afterAll(async () => {
  for (const c of cleanups.reverse()) await c();
  await admin.logout().catch(() => undefined);
  await journal.close();
  await dovecot.stop();
  await removeDovecotDir(dovecot);
  rmSync(dir, { recursive: true, force: true });
});

let seq = 0;
/** A message as the operator's MTA delivered it: Return-Path first (RFC 5321 §4.4), CRLF lines. */
function message(tag: string, body = `corps ${tag}\r\n`): Buffer {
  seq++;
  return Buffer.from(
    `Return-Path: <emetteur${seq}@hopital.mssante.fr>\r\n` +
    `From: Dr Emetteur <emetteur${seq}@hopital.mssante.fr>\r\n` +
    'To: passerelle@passerelle.test\r\n' +
    `Subject: SECRET-SUBJECT ${tag}\r\n` +
    `Message-ID: <${tag}.${seq}@hopital.mssante.fr>\r\n` +
    'MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n' +
    body,
  );
}

async function deliver(folder: string, raw: Buffer, server: ImapFlow = admin): Promise<number> {
  const result = await server.append(folder, raw);
  if (!result || result.uid === undefined) throw new Error('APPEND without APPENDUID');
  return result.uid;
}

async function createFolder(folder: string): Promise<void> {
  await admin.mailboxCreate(folder);
}

/** uid → flags of every message in the folder. */
async function flags(folder: string, server: ImapFlow = admin): Promise<Map<number, Set<string>>> {
  await server.mailboxOpen(folder);
  const rows = await server.fetchAll('1:*', { uid: true, flags: true }, { uid: false }).catch(() => []);
  const out = new Map<number, Set<string>>();
  for (const r of rows) out.set(r.uid, r.flags ?? new Set());
  // No CLOSE: it would expunge what is marked \Deleted (RFC 9051 §6.4.1); the next SELECT does not.
  return out;
}

async function entriesOf(mailboxId: string): Promise<Entry[]> {
  const all = await journal.list({ limit: 1000 });
  return all
    .filter((e) => e.door === 'imap' && (e.meta.imap as { mailbox?: string } | undefined)?.mailbox === mailboxId)
    .reverse();
}

interface Logged { level: string; msg: string; [k: string]: unknown }
function capture(): { log: Logger; lines: Logged[]; text: () => string } {
  const raw: string[] = [];
  return {
    log: createLogger('debug', (l) => { raw.push(l); if (process.env.IMAP_TEST_LOG) process.stderr.write(l); }),
    get lines() {
      return raw.map((l) => JSON.parse(l) as Logged);
    },
    text: () => raw.join(''),
  };
}

function mailbox(id: string, folder: string, over: Partial<MailboxConfig> = {}, server: Dovecot = dovecot): MailboxConfig {
  return {
    id, host: '127.0.0.1', port: server.port, secure: false, starttls: false,
    user: server.user, password: server.password, folder, after: 'flag', ...over,
  };
}

function poller(options: { mailboxes: MailboxConfig[]; stateFile?: string; journal?: Journal; log?: Logger; maxMessageBytes?: number; intervalMs?: number; onAppended?: () => void }): ImapPoller {
  const p = createImapPoller({
    journal: options.journal ?? journal,
    mailboxes: options.mailboxes,
    log: options.log ?? capture().log,
    onAppended: options.onAppended ?? (() => undefined),
    state: new FilePollerState(options.stateFile ?? join(dir, `state-${Math.random().toString(36).slice(2)}.json`)),
    intervalMs: options.intervalMs ?? 60_000,
    maxBackoffMs: 400,
    ...(options.maxMessageBytes ? { maxMessageBytes: options.maxMessageBytes } : {}),
  });
  running.push(p);
  return p;
}

async function until(check: () => Promise<boolean> | boolean, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error('condition not reached in time');
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('IMAP poller against a real Dovecot', () => {
  it('journals new messages byte for byte, then flags them ($PasserelleJournaled \\Seen)', async () => {
    await createFolder('Flag');
    const sent = [message('a'), message('b'), message('c')];
    const uids: number[] = [];
    for (const m of sent) uids.push(await deliver('Flag', m));
    const logs = capture();
    let woken = 0;
    const p = poller({ mailboxes: [mailbox('flag', 'Flag')], log: logs.log, onAppended: () => woken++ });

    expect(await p.pollOnce()).toBe(3);
    const entries = await entriesOf('flag');
    expect(entries.map((e) => (e.meta.imap as { uid: number }).uid)).toEqual(uids);
    for (const [i, e] of entries.entries()) {
      expect((await journal.raw(e.id))?.equals(sent[i] as Buffer)).toBe(true);
      expect(e).toMatchObject({ kind: 'message', door: 'imap', contentType: 'message/rfc822', state: 'received' });
      expect(e.submitter).toMatch(/^emetteur\d+@hopital\.mssante\.fr$/);
      expect(e.meta).toMatchObject({ imap: { mailbox: 'flag', folder: 'Flag' }, messageId: expect.stringContaining('@hopital.mssante.fr') as unknown });
    }
    expect(woken).toBe(3);
    for (const f of (await flags('Flag')).values()) expect([...f]).toEqual(expect.arrayContaining([JOURNALED_KEYWORD, '\\Seen']));

    // Nothing new: nothing journaled again.
    expect(await p.pollOnce()).toBe(0);
    expect(await entriesOf('flag')).toHaveLength(3);
    // Operational fields only: no subject, no body, no password in the log.
    expect(logs.text()).not.toContain('SECRET-SUBJECT');
    expect(logs.text()).not.toContain(dovecot.password);
  });

  it('moves journaled messages to the destination folder, created when missing (RFC 6851 MOVE)', async () => {
    await createFolder('Move');
    await deliver('Move', message('m1'));
    await deliver('Move', message('m2'));
    const p = poller({ mailboxes: [mailbox('move', 'Move', { after: 'move', moveTo: 'Move-done' })] });
    expect(await p.pollOnce()).toBe(2);
    expect((await flags('Move')).size).toBe(0);
    const moved = await flags('Move-done');
    expect(moved.size).toBe(2);
    for (const f of moved.values()) expect(f.has(JOURNALED_KEYWORD)).toBe(true);
    expect(await entriesOf('move')).toHaveLength(2);
  });

  it('moves with COPY + UID EXPUNGE when the server offers no MOVE (RFC 4315 §2.1)', async () => {
    const noMove = await startDovecot({
      capability: 'IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE LITERAL+ NAMESPACE UIDPLUS CONDSTORE ESEARCH',
    });
    const c = client(noMove);
    cleanups.push(async () => {
      await c.logout().catch(() => undefined);
      await noMove.stop();
      await removeDovecotDir(noMove);
    });
    await c.connect();
    expect(c.capabilities.has('MOVE')).toBe(false);
    await deliver('INBOX', message('nm1'), c);
    // Someone else's message marked \Deleted must survive: the expunge is UID-scoped.
    const other = await deliver('INBOX', message('other'), c);
    await c.mailboxOpen('INBOX');
    await c.messageFlagsAdd(String(other), ['\\Deleted', JOURNALED_KEYWORD], { uid: true });

    const p = poller({ mailboxes: [mailbox('nomove', 'INBOX', { after: 'move' }, noMove)] });
    expect(await p.pollOnce()).toBe(1);
    const left = await flags('INBOX', c);
    expect([...left.keys()]).toEqual([other]);
    expect((await flags('Processed', c)).size).toBe(1);
  });

  it('resumes by UID after a restart: a new poller on the same state file journals only what is new', async () => {
    await createFolder('Resume');
    const stateFile = join(dir, 'resume-state.json');
    await deliver('Resume', message('r1'));
    await deliver('Resume', message('r2'));
    const first = poller({ mailboxes: [mailbox('resume', 'Resume')], stateFile });
    expect(await first.pollOnce()).toBe(2);
    await first.stop();

    const r3 = await deliver('Resume', message('r3'));
    const second = poller({ mailboxes: [mailbox('resume', 'Resume')], stateFile });
    expect(await second.pollOnce()).toBe(1);
    const entries = await entriesOf('resume');
    expect(entries).toHaveLength(3);
    expect((entries[2]?.meta.imap as { uid: number }).uid).toBe(r3);
    expect(await new FilePollerState(stateFile).get('resume')).toMatchObject({ lastUid: r3 });
  });

  it('after a crash between commit and STORE, finishes the flag without journaling again', async () => {
    await createFolder('Crash1');
    const stateFile = join(dir, 'crash1-state.json');
    const uid = await deliver('Crash1', message('c1'));
    expect(await poller({ mailboxes: [mailbox('crash1', 'Crash1')], stateFile }).pollOnce()).toBe(1);
    // What a crash right after the state write leaves: committed, state written, no keyword.
    await admin.mailboxOpen('Crash1');
    await admin.messageFlagsRemove(String(uid), [JOURNALED_KEYWORD, '\\Seen'], { uid: true });

    const logs = capture();
    expect(await poller({ mailboxes: [mailbox('crash1', 'Crash1')], stateFile, log: logs.log }).pollOnce()).toBe(0);
    expect(await entriesOf('crash1')).toHaveLength(1);
    expect((await flags('Crash1')).get(uid)?.has(JOURNALED_KEYWORD)).toBe(true);
    expect(logs.lines.some((l) => l.msg.startsWith('imap finishing messages journaled by an interrupted poll'))).toBe(true);
  });

  it('after a crash between commit and state write, resumes after the UID found in the journal', async () => {
    await createFolder('Crash2');
    const stateFile = join(dir, 'crash2-state.json');
    const u1 = await deliver('Crash2', message('k1'));
    const u2 = await deliver('Crash2', message('k2'));
    expect(await poller({ mailboxes: [mailbox('crash2', 'Crash2')], stateFile }).pollOnce()).toBe(2);
    // The crash: the state file still says u1, and u2 never got its keyword.
    const validity = (await new FilePollerState(stateFile).get('crash2'))?.uidValidity ?? 0;
    await new FilePollerState(stateFile).set('crash2', { uidValidity: validity, lastUid: u1 });
    await admin.mailboxOpen('Crash2');
    await admin.messageFlagsRemove(String(u2), [JOURNALED_KEYWORD, '\\Seen'], { uid: true });

    const logs = capture();
    expect(await poller({ mailboxes: [mailbox('crash2', 'Crash2')], stateFile, log: logs.log }).pollOnce()).toBe(0);
    expect(await entriesOf('crash2')).toHaveLength(2);
    expect((await flags('Crash2')).get(u2)?.has(JOURNALED_KEYWORD)).toBe(true);
    expect(await new FilePollerState(stateFile).get('crash2')).toEqual({ uidValidity: validity, lastUid: u2 });
    expect(logs.lines.some((l) => l.msg.startsWith('imap state behind the journal'))).toBe(true);
  });

  it('leaves a message untouched when the journal append fails, and journals it on the next poll', async () => {
    await createFolder('Fail');
    const u1 = await deliver('Fail', message('f1'));
    const u2 = await deliver('Fail', message('f2'));
    const controlled = new ControlledJournal(journal);
    controlled.failing = true;
    const logs = capture();
    const p = poller({ mailboxes: [mailbox('fail', 'Fail')], journal: controlled.journal, log: logs.log });

    expect(await p.pollOnce()).toBe(0);
    // Not flagged, not even \Seen (BODY.PEEK); and the one after it not attempted (UID order).
    const before = await flags('Fail');
    expect([...(before.get(u1) ?? [])]).toEqual([]);
    expect([...(before.get(u2) ?? [])]).toEqual([]);
    expect(controlled.appendCalls).toBe(1);
    expect(await entriesOf('fail')).toHaveLength(0);
    expect(logs.lines.find((l) => l.msg === 'imap poll failed')).toMatchObject({ level: 'warn', mailbox: 'fail', stage: 'journal' });
    expect(logs.text()).not.toContain('disk full'); // error texts may quote input: not logged

    controlled.failing = false;
    expect(await p.pollOnce()).toBe(2);
    expect((await entriesOf('fail')).map((e) => (e.meta.imap as { uid: number }).uid)).toEqual([u1, u2]);
    for (const f of (await flags('Fail')).values()) expect(f.has(JOURNALED_KEYWORD)).toBe(true);
  });

  it('starts UIDs over when UIDVALIDITY changes (RFC 9051 §2.3.1.1)', async () => {
    await createFolder('Valid');
    await deliver('Valid', message('v1'));
    await deliver('Valid', message('v2'));
    await deliver('Valid', message('v3'));
    const logs = capture();
    const stateFile = join(dir, 'valid-state.json');
    const p = poller({ mailboxes: [mailbox('valid', 'Valid')], stateFile, log: logs.log });
    expect(await p.pollOnce()).toBe(3);
    const before = await new FilePollerState(stateFile).get('valid');

    // The folder is re-created: new UIDVALIDITY, UIDs from 1 again — below the remembered lastUid.
    await admin.mailboxDelete('Valid');
    await admin.mailboxCreate('Valid');
    const fresh = await deliver('Valid', message('v4'));
    expect(fresh).toBeLessThanOrEqual(before?.lastUid ?? 0);

    // The poller's connection had the old folder selected: it may need one failed poll to notice.
    await until(async () => (await p.pollOnce(), (await entriesOf('valid')).length === 4));
    const after = await new FilePollerState(stateFile).get('valid');
    expect(after?.uidValidity).not.toBe(before?.uidValidity);
    expect(after?.lastUid).toBe(fresh);
    const last = (await entriesOf('valid'))[3];
    expect(last?.meta.imap).toMatchObject({ uid: fresh, uidValidity: after?.uidValidity });
    expect(logs.lines.some((l) => l.msg.startsWith('imap UIDVALIDITY changed'))).toBe(true);
    expect(await p.pollOnce()).toBe(0);
  });

  it('polls two mailboxes, each with its own state', async () => {
    await createFolder('Two-a');
    await createFolder('Two-b');
    await deliver('Two-a', message('ta1'));
    await deliver('Two-b', message('tb1'));
    await deliver('Two-b', message('tb2'));
    const stateFile = join(dir, 'two-state.json');
    const p = poller({ mailboxes: [mailbox('two-a', 'Two-a'), mailbox('two-b', 'Two-b', { after: 'move', moveTo: 'Two-b-done' })], stateFile });
    expect(await p.pollOnce()).toBe(3);
    expect(await entriesOf('two-a')).toHaveLength(1);
    expect(await entriesOf('two-b')).toHaveLength(2);
    expect((await flags('Two-b')).size).toBe(0);
    const state = new FilePollerState(stateFile);
    expect((await state.get('two-a'))?.lastUid).toBe(1);
    expect((await state.get('two-b'))?.lastUid).toBe(2);
  });

  it('flags an oversize message for an operator instead of journaling it, and goes on', async () => {
    await createFolder('Big');
    const small1 = await deliver('Big', message('s1'));
    const big = await deliver('Big', message('big', `${'x'.repeat(76)}\r\n`.repeat(100)));
    const small2 = await deliver('Big', message('s2'));
    const logs = capture();
    const p = poller({ mailboxes: [mailbox('big', 'Big')], maxMessageBytes: 2_000, log: logs.log });
    expect(await p.pollOnce()).toBe(2);
    expect((await entriesOf('big')).map((e) => (e.meta.imap as { uid: number }).uid)).toEqual([small1, small2]);
    const f = await flags('Big');
    expect([...(f.get(big) ?? [])].sort()).toEqual([OVERSIZE_KEYWORD, '\\Flagged'].sort());
    expect(logs.lines.filter((l) => l.msg.startsWith('imap message over the size limit'))).toEqual([
      expect.objectContaining({ level: 'warn', mailbox: 'big', uid: big, maxBytes: 2_000 }),
    ]);
    // Skipped from then on, without a new log line.
    expect(await p.pollOnce()).toBe(0);
    expect(logs.lines.filter((l) => l.msg.startsWith('imap message over the size limit'))).toHaveLength(1);
  });

  it('stop() waits for the message being journaled, which ends up committed and flagged', async () => {
    await createFolder('Stop');
    const uid = await deliver('Stop', message('st1'));
    await deliver('Stop', message('st2'));
    const controlled = new ControlledJournal(journal);
    controlled.hold();
    const p = poller({ mailboxes: [mailbox('stop', 'Stop')], journal: controlled.journal, intervalMs: 50 });
    p.start();
    await until(() => controlled.appendCalls === 1);
    let stopped = false;
    const stopping = p.stop().then(() => (stopped = true));
    await new Promise((r) => setTimeout(r, 200));
    expect(stopped).toBe(false);
    controlled.release();
    await stopping;
    // The first message finished; the second was not started.
    expect((await entriesOf('stop')).map((e) => (e.meta.imap as { uid: number }).uid)).toEqual([uid]);
    expect(controlled.appendCalls).toBe(1);
    expect((await flags('Stop')).get(uid)?.has(JOURNALED_KEYWORD)).toBe(true);
  });

  it('survives a server that goes away, and reconnects when it is back', async () => {
    const own = await startDovecot();
    const c = client(own);
    await c.connect();
    await deliver('INBOX', message('g1'), c);
    await c.logout();
    const logs = capture();
    const p = poller({ mailboxes: [mailbox('gone', 'INBOX', {}, own)], log: logs.log, intervalMs: 50 });
    p.start();
    await until(async () => (await entriesOf('gone')).length === 1);

    await own.stop();
    // An explicit poll while it is down resolves (nothing journaled), and the loop keeps failing softly.
    expect(await p.pollOnce()).toBe(0);
    await until(() => logs.lines.filter((l) => l.msg === 'imap poll failed').length >= 3);

    const back = await startDovecot({ dir: own.dir, port: own.port });
    cleanups.push(async () => {
      await back.stop();
      await removeDovecotDir(back);
    });
    const c2 = client(back);
    await c2.connect();
    await deliver('INBOX', message('g2'), c2);
    await c2.logout();
    await until(async () => (await entriesOf('gone')).length === 2);
    await p.stop();
    expect(logs.lines.some((l) => l.msg === 'imap mailbox reachable again')).toBe(true);
    const failures = logs.lines.filter((l) => l.msg === 'imap poll failed');
    expect(failures.every((l) => l.level === 'warn' && l.mailbox === 'gone')).toBe(true);
  });

  it('connects over implicit TLS with a client certificate (MSSanté operator mailboxes)', async () => {
    const pki = await makeTestPki(join(dir, 'pki'));
    const tlsServer = await startDovecot({ tls: { cert: pki.server.cert, key: pki.server.key, clientCa: pki.ca } });
    cleanups.push(async () => {
      await tlsServer.stop();
      await removeDovecotDir(tlsServer);
    });
    const base = mailbox('tls', 'INBOX', { secure: true, starttls: undefined }, tlsServer);
    const raw = message('t1');
    // Deliver through the same TLS door (no cleartext listener there).
    const c = new ImapFlow({
      host: '127.0.0.1', port: tlsServer.port, secure: true, logger: false, disableAutoIdle: true,
      auth: { user: tlsServer.user, pass: tlsServer.password },
      tls: { ca: [readFileSync(pki.ca)], cert: readFileSync(pki.client.cert), key: readFileSync(pki.client.key) },
    });
    await c.connect();
    await deliver('INBOX', raw, c);

    // Without the client certificate the server refuses the login: the poll fails softly.
    const refusedLogs = capture();
    const refused = poller({ mailboxes: [{ ...base, id: 'tls-nocert', tls: { ca: pki.ca } }], log: refusedLogs.log });
    expect(await refused.pollOnce()).toBe(0);
    expect(refusedLogs.lines.find((l) => l.msg === 'imap poll failed')).toMatchObject({ stage: 'connect' });

    const p = poller({ mailboxes: [{ ...base, tls: { ca: pki.ca, cert: pki.client.cert, key: pki.client.key } }] });
    expect(await p.pollOnce()).toBe(1);
    expect((await journal.raw((await entriesOf('tls'))[0]?.id ?? ''))?.equals(raw)).toBe(true);
    await c.logout();
  });

  it('upgrades the cleartext port with STARTTLS (RFC 9051 §6.2.1), checking the server certificate first', async () => {
    const pki = await makeTestPki(join(dir, 'pki-starttls'));
    const server = await startDovecot({ tls: { cert: pki.server.cert, key: pki.server.key, starttls: true } });
    cleanups.push(async () => {
      await server.stop();
      await removeDovecotDir(server);
    });
    const raw = message('s1');
    const c = new ImapFlow({
      host: '127.0.0.1', port: server.port, secure: false, doSTARTTLS: true, logger: false, disableAutoIdle: true,
      auth: { user: server.user, pass: server.password }, tls: { ca: [readFileSync(pki.ca)] },
    });
    await c.connect();
    await deliver('INBOX', raw, c);
    await c.logout();
    /** Dovecot's login lines (`…, TLS, …` once upgraded, `…, secured, …` for loopback cleartext), once there are `count` (its log is written asynchronously). */
    const logins = async (count: number): Promise<string[]> => {
      let lines: string[] = [];
      for (let i = 0; i < 100 && lines.length < count; i++) {
        lines = readFileSync(join(server.dir, 'dovecot.log'), 'utf8').split('\n').filter((l) => /imap-login: Info: Login:/.test(l));
        if (lines.length < count) await new Promise((r) => setTimeout(r, 20));
      }
      return lines;
    };

    // A server certificate from another authority: the upgrade fails before any credential is sent.
    const strangerLogs = capture();
    const before = (await logins(1)).length;
    const stranger = poller({ mailboxes: [mailbox('stranger', 'INBOX', { starttls: true }, server)], log: strangerLogs.log });
    expect(await stranger.pollOnce()).toBe(0);
    expect(strangerLogs.lines.find((l) => l.msg === 'imap poll failed')).toMatchObject({ stage: 'connect' });
    expect(await logins(before)).toHaveLength(before);

    const p = poller({ mailboxes: [mailbox('starttls', 'INBOX', { starttls: true, tls: { ca: pki.ca } }, server)] });
    expect(await p.pollOnce()).toBe(1);
    expect((await journal.raw((await entriesOf('starttls'))[0]?.id ?? ''))?.equals(raw)).toBe(true);
    expect(await entriesOf('stranger')).toHaveLength(0);
    expect((await logins(before + 1))[before]).toMatch(/, TLS[,:]/);

    // The same server lets a loopback client in without TLS (Dovecot trusts 127.0.0.1): its login line says so.
    const cleartext = poller({ mailboxes: [mailbox('cleartext', 'INBOX', { starttls: false }, server)] });
    await cleartext.pollOnce();
    expect((await logins(before + 2))[before + 1]).toMatch(/, secured[,:]/);
  });
});

describe('FilePollerState', () => {
  it('persists per mailbox across instances, replacing the file atomically', async () => {
    const file = join(dir, 'state-unit', 'poller.json');
    const a = new FilePollerState(file);
    expect(await a.get('x')).toBeUndefined();
    await Promise.all([a.set('x', { uidValidity: 7, lastUid: 3 }), a.set('y', { uidValidity: 9, lastUid: 1 })]);
    await a.set('x', { uidValidity: 7, lastUid: 4 });
    const b = new FilePollerState(file);
    expect(await b.get('x')).toEqual({ uidValidity: 7, lastUid: 4 });
    expect(await b.get('y')).toEqual({ uidValidity: 9, lastUid: 1 });
    expect(readdirSync(join(dir, 'state-unit'))).toEqual(['poller.json']); // no temporary file left
    await expect(a.set('x', { uidValidity: -1, lastUid: 0 })).rejects.toThrow(TypeError);
  });

  it('refuses a damaged file rather than starting again from UID 0', async () => {
    const file = join(dir, 'state-damaged.json');
    writeFileSync(file, '{"version":1,"mailboxes":{"x":{"uidValidity":7');
    await expect(new FilePollerState(file).get('x')).rejects.toThrow(/not valid JSON/);
    writeFileSync(file, JSON.stringify({ version: 1, mailboxes: { x: { uidValidity: 7, lastUid: 'a' } } }));
    await expect(new FilePollerState(file).get('x')).rejects.toThrow(/invalid entry/);
  });
});
