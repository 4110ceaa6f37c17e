/**
 * The IMAP door: mailboxes at an MSSanté operator (or any IMAP server) are polled, each new
 * message is journaled, and only once the journal has committed it is the message marked or moved
 * on the server. Nothing is ever removed from a mailbox before the commit, so a crash, a journal
 * outage or a lost connection can delay a message but not lose it.
 *
 * Scheme, per configured mailbox (one folder):
 * - RFC 9051 §2.3.1.1: UIDs are strictly ascending within a UIDVALIDITY. The poller remembers
 *   {uidValidity, lastUid} (PollerState) and journals messages in UID order, so the journal's
 *   commit order is the UID order and "UID > lastUid" is "not journaled yet". A new UIDVALIDITY
 *   invalidates the remembered UIDs: lastUid starts again from 0.
 * - After the commit: `UID STORE +FLAGS ($PasserelleJournaled \Seen)` (RFC 9051 §6.4.6), and in
 *   `move` mode `UID MOVE` to the destination (RFC 6851 §3.1). The keyword survives a UIDVALIDITY
 *   change or a lost state file, so a flagged message is never journaled again; a message already
 *   moved is no longer there to be.
 * - Messages over the size limit are not journaled: they get `$PasserelleOversize \Flagged`, stay
 *   where they are for an operator, and are skipped from then on.
 * - The source is read with BODY.PEEK[] (RFC 9051 §6.4.5: BODY[] would set \Seen), so a message
 *   whose journaling fails is left exactly as it was, and picked up by the next poll.
 *
 * Crash windows, honestly:
 * - Between the journal commit and the state write: the state still says the previous UID. On the
 *   first poll after a start, the poller reads the most recent journal entries (the entry meta
 *   carries {imap: {mailbox, uidValidity, uid}}) and resumes after the last UID found there, so
 *   the message is not journaled twice. The look-up is bounded (RECOVERY_SCAN_ENTRIES): if more
 *   entries than that arrived through other doors between the crash and that first poll, and the
 *   keyword could not be stored either, the message is journaled a second time (same sha256).
 * - Between the state write and the STORE/MOVE: the next poll finishes the job ("settle": every
 *   message at or below lastUid lacking the keyword is flagged, or moved), without journaling it.
 * - Move fallback without MOVE (COPY, then \Deleted, then UID EXPUNGE): a crash after the COPY
 *   leaves a second copy in the destination folder, never a second journal entry.
 * One poller per mailbox: two gateway processes polling the same mailbox would both journal it.
 */
import { readFile } from 'node:fs/promises';
import type { ConnectionOptions } from 'node:tls';
import { ImapFlow, type FetchMessageObject, type SearchObject } from 'imapflow';
import type { Entry, Journal } from '../../adapters/journal/port.js';
import { errorFields, type LogFields, type Logger } from '../log.js';
import type { MailboxState, PollerState } from './poller-state.js';
import { headerValue } from './smtp-listener.js';

export interface MailboxConfig {
  /** Stable name of this mailbox: the key of its state and of `meta.imap.mailbox`. */
  id: string;
  host: string;
  port: number;
  /** Implicit TLS from the first byte (RFC 8314 §3.2, port 993). */
  secure: boolean;
  /**
   * Without implicit TLS: STARTTLS (RFC 9051 §6.2.1) is required unless this is `false`, so that
   * the credentials never cross the network in cleartext by accident.
   */
  starttls?: boolean;
  /** PEM file paths: the operator's CA, and the client certificate MSSanté operator mailboxes ask for. */
  tls?: { ca?: string; cert?: string; key?: string; rejectUnauthorized?: boolean };
  user: string;
  password: string;
  /** Default INBOX. */
  folder?: string;
  after: 'flag' | 'move';
  /** Destination of `move`, created if missing; default `Processed`. */
  moveTo?: string;
}

export interface ImapPollerDeps {
  journal: Journal;
  mailboxes: MailboxConfig[];
  log: Logger;
  /** Wakes the local pipeline after a commit. */
  onAppended: () => void;
  state: PollerState;
  /** Pause between two polls of the running loop (default 30 s). */
  intervalMs?: number;
  /** Largest message journaled, in bytes (default 25 MiB); align it with the SMTP door's limit. */
  maxMessageBytes?: number;
  /** Ceiling of the retry backoff of a failing mailbox (default 5 min). */
  maxBackoffMs?: number;
}

export interface ImapPoller {
  /** Starts the polling loop (first poll at once). */
  start(): void;
  /** Stops the loop; resolves once the message being journaled, if any, is committed and flagged. */
  stop(): Promise<void>;
  /**
   * One poll of every mailbox now, ignoring the backoff of failing ones; resolves with the number
   * of messages journaled. Never rejects: failures are logged and retried on the next poll.
   */
  pollOnce(): Promise<number>;
}

/** RFC 9051 §2.3.2: a keyword is an atom; this one says "in the journal, leave it". */
export const JOURNALED_KEYWORD = '$PasserelleJournaled';
/** Over the size limit: not journaled, left for an operator. */
export const OVERSIZE_KEYWORD = '$PasserelleOversize';

const DEFAULT_INTERVAL_MS = 30_000;
const DEFAULT_MAX_BYTES = 25 * 1024 * 1024;
const DEFAULT_MAX_BACKOFF_MS = 5 * 60_000;
/** How many of the most recent journal entries the start-up recovery reads (see the file comment). */
const RECOVERY_SCAN_ENTRIES = 1_000;
const RECOVERY_PAGE = 100;
/** Where Return-Path, From and Message-ID are looked for (RFC 5322 §2.1: the header section). */
const HEADER_SCAN_BYTES = 64 * 1024;
/** UID sets sent in one command, to keep command lines short (RFC 9051 §4 leaves length to the server). */
const UID_SET_CHUNK = 200;
const LOGOUT_TIMEOUT_MS = 5_000;

interface Runtime {
  cfg: MailboxConfig & { folder: string; moveTo: string };
  client: ImapFlow | undefined;
  /** Destination folder known to exist on the current connection. */
  destinationReady: boolean;
  /** Loaded from PollerState on the first poll, then kept here (authoritative in this process). */
  state: MailboxState | undefined;
  /** The journal recovery of the first poll has run. */
  recovered: boolean;
  failures: number;
  notBefore: number;
  /** Between the journal append and the STORE/MOVE of one message: stop() waits, never cuts. */
  critical: boolean;
  /** What the current poll is doing, for the failure log line. */
  stage: string;
  journaled: number;
}

/** The address of a Return-Path or From field value: the last <…>, or a bare addr-spec. */
function addressOf(value: string | undefined): string | undefined {
  if (value === undefined) return undefined;
  const angle = [...value.matchAll(/<([^<>]*)>/g)].at(-1);
  if (angle) return (angle[1] ?? '').trim();
  const bare = value.trim();
  return /^[^\s<>"(),;:]+@[^\s<>"(),;:]+$/.test(bare) ? bare : undefined;
}

function chunks(uids: number[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < uids.length; i += UID_SET_CHUNK) out.push(uids.slice(i, i + UID_SET_CHUNK).join(','));
  return out;
}

/**
 * The protocol part of an imapflow error: the tagged status (NO, BAD) and the response code
 * (RFC 9051 §7.1, e.g. AUTHENTICATIONFAILED, LIMIT, TRYCREATE) — atoms, never the server's text.
 */
function imapErrorFields(err: unknown): LogFields {
  const e = err as { responseStatus?: unknown; serverResponseCode?: unknown; authenticationFailed?: unknown };
  const atom = (v: unknown): string | undefined => (typeof v === 'string' && /^[A-Za-z0-9.-]{1,40}$/.test(v) ? v : undefined);
  return {
    ...errorFields(err),
    imapStatus: atom(e.responseStatus),
    imapCode: atom(e.serverResponseCode),
    ...(e.authenticationFailed === true ? { authenticationFailed: true } : {}),
  };
}

class ImapStepError extends Error {
  constructor(step: string) {
    super(`IMAP ${step} refused by the server`);
    this.name = 'ImapStepError';
  }
}

function validate(mailboxes: MailboxConfig[]): void {
  const ids = new Set<string>();
  for (const m of mailboxes) {
    if (!m.id) throw new Error('imap mailbox without id');
    if (ids.has(m.id)) throw new Error(`imap mailbox id ${m.id} configured twice`);
    ids.add(m.id);
    if ((m.after === 'move') && (m.moveTo ?? 'Processed') === (m.folder ?? 'INBOX')) {
      throw new Error(`imap mailbox ${m.id}: moveTo must differ from folder`);
    }
  }
}

export function createImapPoller(deps: ImapPollerDeps): ImapPoller {
  const { journal, log, state } = deps;
  validate(deps.mailboxes);
  const intervalMs = deps.intervalMs ?? DEFAULT_INTERVAL_MS;
  const maxBytes = deps.maxMessageBytes ?? DEFAULT_MAX_BYTES;
  const maxBackoffMs = deps.maxBackoffMs ?? DEFAULT_MAX_BACKOFF_MS;

  const runtimes: Runtime[] = deps.mailboxes.map((m) => ({
    cfg: { ...m, folder: m.folder ?? 'INBOX', moveTo: m.moveTo ?? 'Processed' },
    client: undefined,
    destinationReady: false,
    state: undefined,
    recovered: false,
    failures: 0,
    notBefore: 0,
    critical: false,
    stage: 'idle',
    journaled: 0,
  }));

  let started = false;
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let current: Promise<unknown> = Promise.resolve();

  async function connect(rt: Runtime): Promise<ImapFlow> {
    if (rt.client?.usable) return rt.client;
    rt.client?.close();
    rt.client = undefined;
    rt.destinationReady = false;
    const { cfg } = rt;
    const tls: ConnectionOptions = { minVersion: 'TLSv1.2' };
    if (cfg.tls?.ca) tls.ca = await readFile(cfg.tls.ca);
    if (cfg.tls?.cert) tls.cert = await readFile(cfg.tls.cert);
    if (cfg.tls?.key) tls.key = await readFile(cfg.tls.key);
    if (cfg.tls?.rejectUnauthorized === false) tls.rejectUnauthorized = false;
    const client = new ImapFlow({
      host: cfg.host,
      port: cfg.port,
      secure: cfg.secure,
      ...(cfg.secure ? {} : { doSTARTTLS: cfg.starttls ?? true }),
      tls,
      auth: { user: cfg.user, pass: cfg.password },
      clientInfo: { name: 'passerelle' },
      // Its own log would carry server texts and mailbox names: we log what we do instead.
      logger: false,
      // We poll; an IDLE between polls would only have to be broken by the next command.
      disableAutoIdle: true,
      // BINARY (RFC 3516) would hand back decoded bodies: the journal keeps the bytes as sent.
      disableBinary: true,
      connectionTimeout: 30_000,
      greetingTimeout: 16_000,
      socketTimeout: 5 * 60_000,
      // The source is fetched as a partial of at most maxBytes + 1 octets: no honest literal is larger.
      maxLiteralSize: maxBytes + 1024,
      maxResponseSize: maxBytes + 1024 * 1024,
    });
    // Without a listener an 'error' event would throw and take the process down.
    client.on('error', (err: Error) => log.warn('imap connection error', { mailbox: cfg.id, ...imapErrorFields(err) }));
    rt.client = client;
    await client.connect();
    return client;
  }

  async function search(client: ImapFlow, query: SearchObject): Promise<number[]> {
    const found = await client.search(query, { uid: true });
    if (!Array.isArray(found)) throw new ImapStepError('SEARCH');
    return found;
  }

  async function addFlags(client: ImapFlow, uids: number[], flags: string[]): Promise<void> {
    for (const set of chunks(uids)) {
      if (!(await client.messageFlagsAdd(set, flags, { uid: true }))) throw new ImapStepError('STORE');
    }
  }

  /**
   * RFC 6851 §3.1 UID MOVE when offered. Otherwise the sequence MOVE replaces (§1): COPY, STORE
   * \Deleted, and UID EXPUNGE (RFC 4315 §2.1), which expunges only these UIDs. Without UIDPLUS a
   * plain EXPUNGE would also remove whatever else someone marked \Deleted, so the copies' originals
   * are left marked \Deleted instead (the searches skip them).
   */
  async function move(rt: Runtime, client: ImapFlow, uids: number[]): Promise<void> {
    const dest = rt.cfg.moveTo;
    if (!rt.destinationReady) {
      rt.stage = 'create';
      // CREATE answers ALREADYEXISTS (RFC 5530) for an existing folder, which imapflow reports as created: false.
      await client.mailboxCreate(dest);
      rt.destinationReady = true;
    }
    rt.stage = 'move';
    for (const set of chunks(uids)) {
      if (client.capabilities.has('MOVE')) {
        if (!(await client.messageMove(set, dest, { uid: true }))) throw new ImapStepError('MOVE');
        continue;
      }
      if (!(await client.messageCopy(set, dest, { uid: true }))) throw new ImapStepError('COPY');
      if (client.capabilities.has('UIDPLUS')) {
        // messageDelete = STORE +FLAGS \Deleted, then UID EXPUNGE since UIDPLUS is there.
        if (!(await client.messageDelete(set, { uid: true }))) throw new ImapStepError('UID EXPUNGE');
      } else {
        if (!(await client.messageFlagsAdd(set, ['\\Deleted'], { uid: true }))) throw new ImapStepError('STORE');
        log.warn('imap server without MOVE or UIDPLUS: originals left marked \\Deleted', { mailbox: rt.cfg.id });
      }
    }
  }

  /** What follows a commit (or finishes an interrupted one): the keyword, then the move. */
  async function finish(rt: Runtime, client: ImapFlow, uids: number[]): Promise<void> {
    if (uids.length === 0) return;
    rt.stage = 'flag';
    await addFlags(client, uids, [JOURNALED_KEYWORD, '\\Seen']);
    if (rt.cfg.after === 'move') await move(rt, client, uids);
  }

  /** The last UID of this mailbox the journal holds under this UIDVALIDITY, from its most recent entries. */
  async function journaledUpTo(mailboxId: string, uidValidity: number): Promise<number> {
    let before: string | undefined;
    for (let scanned = 0; scanned < RECOVERY_SCAN_ENTRIES; scanned += RECOVERY_PAGE) {
      const page: Entry[] = await journal.list({ limit: RECOVERY_PAGE, ...(before ? { before } : {}) });
      for (const entry of page) {
        if (entry.door !== 'imap') continue;
        const imap = entry.meta.imap as { mailbox?: unknown; uidValidity?: unknown; uid?: unknown } | undefined;
        if (imap?.mailbox !== mailboxId) continue;
        // The most recent entry of this mailbox: commit order is UID order.
        return imap.uidValidity === uidValidity && typeof imap.uid === 'number' ? imap.uid : 0;
      }
      if (page.length < RECOVERY_PAGE) return 0;
      before = page.at(-1)?.id;
    }
    return 0;
  }

  async function saveState(rt: Runtime, next: MailboxState): Promise<void> {
    rt.state = next;
    rt.stage = 'state';
    await state.set(rt.cfg.id, next);
  }

  async function pollMailbox(rt: Runtime): Promise<void> {
    const { cfg } = rt;
    rt.stage = 'connect';
    const client = await connect(rt);
    rt.stage = 'select';
    const mailbox = await client.mailboxOpen(cfg.folder);
    if (mailbox.readOnly) throw new Error(`imap folder of mailbox ${cfg.id} is read-only`);
    // RFC 9051 §7.1 PERMANENTFLAGS: "\*" means new keywords may be created.
    const perm = mailbox.permanentFlags;
    if (perm && !perm.has('\\*') && !perm.has(JOURNALED_KEYWORD)) {
      throw new Error(`imap folder of mailbox ${cfg.id} does not accept the keyword ${JOURNALED_KEYWORD}`);
    }
    const uidValidity = Number(mailbox.uidValidity);

    rt.stage = 'state';
    let st = rt.state ?? (await state.get(cfg.id));
    if (st && st.uidValidity !== uidValidity) {
      // RFC 9051 §2.3.1.1: the remembered UIDs mean nothing under a new UIDVALIDITY. Flagged
      // messages keep their keyword, so only unflagged ones are journaled again.
      log.warn('imap UIDVALIDITY changed: UIDs start over', { mailbox: cfg.id, previous: st.uidValidity, current: uidValidity });
      st = undefined;
    }
    if (!rt.recovered) {
      rt.stage = 'recovery';
      const fromJournal = await journaledUpTo(cfg.id, uidValidity);
      rt.recovered = true;
      if (fromJournal > (st?.lastUid ?? 0)) {
        log.warn('imap state behind the journal (interrupted poll): resuming after the journal', { mailbox: cfg.id, stateUid: st?.lastUid ?? 0, journalUid: fromJournal });
        st = { uidValidity, lastUid: fromJournal };
        await saveState(rt, st);
      }
    }
    if (!st) {
      st = { uidValidity, lastUid: 0 };
      await saveState(rt, st);
    }
    rt.state = st;
    const lastUid = st.lastUid;
    const move = cfg.after === 'move';

    // Settle: journaled (UID ≤ lastUid) but not yet flagged or moved — a poll cut between commit and STORE/MOVE.
    rt.stage = 'settle';
    const unsettled = new Set<number>();
    if (lastUid > 0) {
      const query: SearchObject = { uid: `1:${lastUid}`, not: { keyword: OVERSIZE_KEYWORD } };
      for (const uid of await search(client, move ? { ...query, deleted: false } : { ...query, unKeyword: JOURNALED_KEYWORD })) {
        if (uid <= lastUid) unsettled.add(uid);
      }
    }
    // In move mode a keyword alone also means "journaled, move it" (a state file lost after the STORE).
    if (move) for (const uid of await search(client, { keyword: JOURNALED_KEYWORD, deleted: false })) unsettled.add(uid);
    if (unsettled.size > 0) {
      log.warn('imap finishing messages journaled by an interrupted poll', { mailbox: cfg.id, messages: unsettled.size });
      await finish(rt, client, [...unsettled].sort((a, b) => a - b));
    }

    // New: above lastUid, not flagged. RFC 9051 §9 (seq-range): "N:*" always includes the highest
    // UID even when N is above it, hence the filter.
    rt.stage = 'search';
    const fresh = (await search(client, { uid: `${lastUid + 1}:*`, unKeyword: JOURNALED_KEYWORD, not: { keyword: OVERSIZE_KEYWORD } }))
      .filter((uid) => uid > lastUid)
      .sort((a, b) => a - b);
    if (fresh.length === 0) return;
    rt.stage = 'size';
    const sizes = new Map<number, number>();
    for (const set of chunks(fresh)) {
      for (const m of await client.fetchAll(set, { uid: true, size: true }, { uid: true })) sizes.set(m.uid, m.size ?? 0);
    }

    for (const uid of fresh) {
      if (stopped) return;
      const size = sizes.get(uid);
      if (size === undefined) continue; // expunged since the SEARCH
      if (size > maxBytes) {
        await oversize(rt, client, uid, size);
        continue;
      }
      rt.stage = 'fetch';
      // BODY.PEEK[]<0.maxBytes+1>: \Seen untouched, and never more than the limit plus one octet.
      const message: FetchMessageObject | false = await client.fetchOne(String(uid), { uid: true, source: { maxLength: maxBytes + 1 } }, { uid: true });
      if (!message) continue; // expunged since the SEARCH
      // Never skip a present message: a later commit would make it look journaled (settle).
      if (!message.source) throw new ImapStepError('FETCH');
      if (message.source.length > maxBytes) {
        await oversize(rt, client, uid, message.source.length);
        continue;
      }
      if (stopped) return;
      await journalOne(rt, client, uidValidity, uid, message.source);
    }
  }

  async function oversize(rt: Runtime, client: ImapFlow, uid: number, size: number): Promise<void> {
    rt.stage = 'oversize';
    log.warn('imap message over the size limit: not journaled, flagged for an operator', { mailbox: rt.cfg.id, uid, bytes: size, maxBytes });
    await addFlags(client, [uid], [OVERSIZE_KEYWORD, '\\Flagged']);
  }

  async function journalOne(rt: Runtime, client: ImapFlow, uidValidity: number, uid: number, raw: Buffer): Promise<void> {
    const { cfg } = rt;
    const head = raw.subarray(0, HEADER_SCAN_BYTES);
    // RFC 5321 §4.4: the delivering MTA wrote the envelope sender as Return-Path ("<>" for bounces and MDNs).
    const returnPath = addressOf(headerValue(head, 'return-path'));
    const submitter = returnPath !== undefined ? returnPath || '<>' : addressOf(headerValue(head, 'from')) ?? `imap:${cfg.id}`;
    const messageId = headerValue(head, 'message-id');
    rt.critical = true;
    try {
      rt.stage = 'journal';
      const entry = await journal.append({
        kind: 'message',
        door: 'imap',
        submitter,
        contentType: 'message/rfc822',
        raw,
        meta: {
          imap: { mailbox: cfg.id, folder: cfg.folder, uidValidity, uid },
          ...(messageId ? { messageId } : {}),
        },
      });
      rt.journaled++;
      log.info('imap message journaled', { mailbox: cfg.id, uid, entry: entry.id, bytes: raw.length });
      try {
        deps.onAppended();
      } catch (err) {
        log.warn('imap onAppended failed', { entry: entry.id, ...errorFields(err) });
      }
      // Committed: from here on the message must not be journaled again. The state comes first
      // (a failed STORE is then settled by the next poll); a failed state write still lets the
      // keyword or the move protect the message.
      let stateError: unknown;
      try {
        await saveState(rt, { uidValidity, lastUid: uid });
      } catch (err) {
        stateError = err;
      }
      await finish(rt, client, [uid]);
      if (stateError !== undefined) {
        rt.stage = 'state';
        throw stateError;
      }
    } finally {
      rt.critical = false;
    }
  }

  async function pollSafely(rt: Runtime): Promise<number> {
    rt.journaled = 0;
    try {
      await pollMailbox(rt);
      if (rt.failures > 0) log.info('imap mailbox reachable again', { mailbox: rt.cfg.id, failures: rt.failures });
      rt.failures = 0;
      rt.notBefore = 0;
    } catch (err) {
      // The connection's state is unknown after a failure: the next poll starts from a fresh one.
      rt.client?.close();
      rt.client = undefined;
      if (stopped) {
        log.debug('imap poll interrupted by stop', { mailbox: rt.cfg.id, stage: rt.stage });
      } else {
        rt.failures++;
        const retryInMs = Math.min(maxBackoffMs, intervalMs * 2 ** Math.min(rt.failures - 1, 20));
        rt.notBefore = Date.now() + retryInMs;
        log.warn('imap poll failed', { mailbox: rt.cfg.id, stage: rt.stage, failures: rt.failures, retryInMs, ...imapErrorFields(err) });
      }
    } finally {
      rt.stage = 'idle';
    }
    return rt.journaled;
  }

  /** Polls run one after the other: a mailbox is never polled twice at once. */
  function cycle(force: boolean): Promise<number> {
    const run = current.then(async () => {
      if (stopped) return 0;
      const now = Date.now();
      const counts = await Promise.all(runtimes.map((rt) => (force || now >= rt.notBefore ? pollSafely(rt) : Promise.resolve(0))));
      return counts.reduce((a, b) => a + b, 0);
    });
    current = run.catch(() => 0);
    return run.catch(() => 0);
  }

  function schedule(delayMs: number): void {
    timer = setTimeout(() => {
      timer = undefined;
      void cycle(false).then(() => {
        if (!stopped) schedule(intervalMs);
      });
    }, delayMs);
    // The gateway's servers keep the process alive; a pending poll alone should not.
    timer.unref();
  }

  return {
    start(): void {
      if (started || stopped) return;
      started = true;
      log.info('imap poller started', { mailboxes: runtimes.length, intervalMs });
      schedule(0);
    },
    async stop(): Promise<void> {
      if (stopped) {
        await current;
        return;
      }
      stopped = true;
      if (timer) clearTimeout(timer);
      timer = undefined;
      // Connecting, searching or fetching can be cut (nothing is journaled yet); a message
      // between its journal append and its STORE/MOVE is left to finish.
      for (const rt of runtimes) {
        if (!rt.critical) {
          rt.client?.close();
          rt.client = undefined;
        }
      }
      await current;
      await Promise.all(runtimes.map(async (rt) => {
        const client = rt.client;
        rt.client = undefined;
        if (!client) return;
        // RFC 9051 §6.1.3 LOGOUT, bounded: a server that does not answer is simply cut.
        let bound: NodeJS.Timeout | undefined;
        await Promise.race([
          client.logout().catch(() => undefined),
          new Promise<void>((resolve) => (bound = setTimeout(resolve, LOGOUT_TIMEOUT_MS))),
        ]);
        clearTimeout(bound);
        client.close();
      }));
      log.info('imap poller stopped', {});
    },
    pollOnce: () => cycle(true),
  };
}
