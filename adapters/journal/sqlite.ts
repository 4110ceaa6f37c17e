/**
 * The embedded journal (CONTRACT.md: `database: "sqlite:./data/passerelle.db"`, the default).
 *
 * Durability: WAL with `synchronous=FULL` fsyncs the WAL on every commit, so once append()
 * resolves the entry survives a SIGKILL or a power cut (https://sqlite.org/pragma.html#pragma_synchronous;
 * NORMAL would only survive a process crash). Several processes may share the file: every write
 * is a `BEGIN IMMEDIATE` transaction, which takes the database's single write lock before reading,
 * so two claimers cannot both see an entry as free; a WAL read that later upgrades to a write could
 * instead fail with SQLITE_BUSY_SNAPSHOT (https://sqlite.org/lang_transaction.html). The busy
 * timeout makes a process wait for the lock rather than fail.
 *
 * better-sqlite3 is synchronous: each transaction blocks the event loop, which is what the
 * embedded default trades for zero setup (PostgreSQL is the choice for load); the writes asked for
 * in one event-loop turn share one transaction and one fsync (GroupCommit, adapters/database.ts).
 * Instants are ISO-8601 UTC text of fixed width, so they compare correctly as strings.
 */
import type Database from 'better-sqlite3';
import { GroupCommit, openSqlite, statementCache } from '../database.js';
import type { ErrorCode } from '../../gateway/errors.js';
import type { Claim, Entry, EntryState, HistoryEvent, Journal, NewEntry, Reopen, Transition } from './port.js';
import { LeaseLostError } from './port.js';
import {
  ENTRY_COLUMNS,
  EVENT_COLUMNS,
  FINAL_STATES_SQL,
  RECEIVE_EVENT,
  cleanText,
  emptyCounts,
  guarded,
  journalError,
  jsonText,
  newEntryId,
  newLeaseToken,
  planReopen,
  planTransition,
  sha256Hex,
  toEntry,
  toEvent,
  type EntryRow,
  type EventRow,
  type EventValues,
} from './rows.js';


// `pos` (the rowid) orders entries by arrival: ids are random UUIDs and instants can tie.
const SCHEMA = `
CREATE TABLE IF NOT EXISTS journal_entries (
  pos          INTEGER PRIMARY KEY,
  id           TEXT NOT NULL UNIQUE,
  kind         TEXT NOT NULL,
  door         TEXT NOT NULL,
  submitter    TEXT NOT NULL,
  content_type TEXT NOT NULL,
  sha256       TEXT NOT NULL,
  size         INTEGER NOT NULL,
  state        TEXT NOT NULL,
  attempts     INTEGER NOT NULL DEFAULT 0,
  error_code   TEXT,
  error        TEXT,
  not_before   TEXT NOT NULL,
  created_at   TEXT NOT NULL,
  updated_at   TEXT NOT NULL,
  meta         TEXT NOT NULL,
  result       TEXT NOT NULL DEFAULT '{}',
  overrides    TEXT NOT NULL DEFAULT '[]',
  lease_token  TEXT,
  lease_owner  TEXT,
  lease_until  TEXT
);
-- The raw bytes live apart, written once: SQLite rewrites a whole row on every UPDATE, and a
-- message's bytes in the entry row would be copied at each of its state changes (and read past by
-- every claim query).
CREATE TABLE IF NOT EXISTS journal_raw (
  entry_id     TEXT PRIMARY KEY REFERENCES journal_entries (id) ON DELETE CASCADE,
  raw          BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS journal_entries_claimable ON journal_entries (pos) WHERE state NOT IN (${FINAL_STATES_SQL});
CREATE INDEX IF NOT EXISTS journal_entries_state ON journal_entries (state, pos);
CREATE TABLE IF NOT EXISTS journal_history (
  entry_id     TEXT NOT NULL REFERENCES journal_entries (id) ON DELETE CASCADE,
  seq          INTEGER NOT NULL,
  state        TEXT NOT NULL,
  at           TEXT NOT NULL,
  outcome      TEXT NOT NULL,
  stage        TEXT,
  duration_ms  REAL,
  error_code   TEXT,
  detail       TEXT,
  actor        TEXT,
  PRIMARY KEY (entry_id, seq)
);`;

const INSERT_EVENT = `
INSERT INTO journal_history (entry_id, seq, state, at, outcome, stage, duration_ms, error_code, detail, actor)
SELECT @id, coalesce(max(seq), 0) + 1, @state, @at, @outcome, @stage, @durationMs, @errorCode, @detail, @actor
FROM journal_history WHERE entry_id = @id`;

function leaseUntil(now: Date, leaseMs: number): string {
  return new Date(now.getTime() + leaseMs).toISOString();
}

export class SqliteJournal implements Journal {
  private readonly db: Database.Database;
  private readonly sql: (text: string) => Database.Statement;
  private readonly commits: GroupCommit;

  /** `path` is a file (its directory is created if missing) or `:memory:`. */
  constructor(path: string) {
    try {
      this.db = openSqlite(path);
    } catch (err) {
      throw journalError(err);
    }
    this.sql = statementCache(this.db);
    this.commits = new GroupCommit(this.db);
  }

  init(): Promise<void> {
    return guarded(() =>
      this.write(() => {
        this.db.exec(SCHEMA);
        // A journal written by 0.2 kept the raw bytes in the entry row: move them, losing nothing.
        const columns = this.db.pragma('table_info(journal_entries)') as { name: string }[];
        if (columns.some((c) => c.name === 'raw')) {
          this.db.exec('INSERT OR IGNORE INTO journal_raw (entry_id, raw) SELECT id, raw FROM journal_entries; ALTER TABLE journal_entries DROP COLUMN raw;');
        }
      }),
    );
  }

  append(input: NewEntry): Promise<Entry> {
    return guarded(() =>
      this.write(() => {
        const now = new Date().toISOString();
        const id = newEntryId();
        const row = this.sql(
          `INSERT INTO journal_entries (id, kind, door, submitter, content_type, sha256, size, state, not_before, created_at, updated_at, meta)
           VALUES (@id, @kind, @door, @submitter, @contentType, @sha256, @size, 'received', @now, @now, @now, @meta)
           RETURNING ${ENTRY_COLUMNS}`,
        ).get({
          id,
          kind: input.kind,
          door: input.door,
          submitter: cleanText(input.submitter),
          contentType: cleanText(input.contentType),
          sha256: sha256Hex(input.raw),
          size: input.raw.length,
          now,
          meta: jsonText(input.meta ?? {}),
        }) as EntryRow;
        this.sql('INSERT INTO journal_raw (entry_id, raw) VALUES (?, ?)').run(id, input.raw);
        this.insertEvent(id, now, RECEIVE_EVENT);
        return toEntry(row);
      }),
    );
  }

  get(id: string): Promise<Entry | undefined> {
    return guarded(() => {
      const row = this.sql(`SELECT ${ENTRY_COLUMNS} FROM journal_entries WHERE id = ?`).get(id) as EntryRow | undefined;
      return row && toEntry(row);
    });
  }

  raw(id: string): Promise<Buffer | undefined> {
    return guarded(() => (this.sql('SELECT raw FROM journal_raw WHERE entry_id = ?').get(id) as { raw: Buffer } | undefined)?.raw);
  }

  history(id: string): Promise<HistoryEvent[]> {
    return guarded(() =>
      (this.sql(`SELECT ${EVENT_COLUMNS} FROM journal_history WHERE entry_id = ? ORDER BY seq`).all(id) as EventRow[]).map(toEvent),
    );
  }

  claim(worker: string, leaseMs: number): Promise<Claim | undefined> {
    return guarded(() =>
      this.write(() => {
        const now = new Date();
        const token = newLeaseToken();
        const row = this.sql(
          `UPDATE journal_entries
           SET attempts = attempts + 1, lease_token = @token, lease_owner = @worker, lease_until = @until, updated_at = @now
           WHERE id = (SELECT id FROM journal_entries
                       WHERE state NOT IN (${FINAL_STATES_SQL}) AND not_before <= @now
                         AND (lease_until IS NULL OR lease_until <= @now)
                       ORDER BY pos LIMIT 1)
           RETURNING ${ENTRY_COLUMNS}`,
        ).get({ token, worker: cleanText(worker), until: leaseUntil(now, leaseMs), now: now.toISOString() }) as EntryRow | undefined;
        return row && { entry: toEntry(row), token };
      }),
    );
  }

  renew(claim: Claim, leaseMs: number): Promise<void> {
    return guarded(() =>
      this.write(() => {
        const { changes } = this.sql('UPDATE journal_entries SET lease_until = @until WHERE id = @id AND lease_token = @token').run({
          id: claim.entry.id,
          token: claim.token,
          until: leaseUntil(new Date(), leaseMs),
        });
        if (changes === 0) throw new LeaseLostError(claim.entry.id);
      }),
    );
  }

  record(claim: Claim, transition: Transition, passed: readonly Transition[] = []): Promise<Entry> {
    return guarded(() =>
      this.write(() => {
        const { id } = claim.entry;
        const held = this.sql('SELECT result FROM journal_entries WHERE id = ? AND lease_token = ?').get(id, claim.token) as
          | { result: string }
          | undefined;
        if (held === undefined) throw new LeaseLostError(id);
        const plan = planTransition(JSON.parse(held.result) as Record<string, unknown>, transition, passed);
        const now = new Date().toISOString();
        const row = this.sql(
          `UPDATE journal_entries
           SET state = @state, error_code = @errorCode, error = @error, result = @result,
               not_before = coalesce(@notBefore, not_before), updated_at = @now,
               lease_token = CASE WHEN @release THEN NULL ELSE lease_token END,
               lease_owner = CASE WHEN @release THEN NULL ELSE lease_owner END,
               lease_until = CASE WHEN @release THEN NULL ELSE lease_until END
           WHERE id = @id
           RETURNING ${ENTRY_COLUMNS}`,
        ).get({
          id,
          state: plan.state,
          errorCode: plan.errorCode,
          error: plan.error,
          result: plan.result,
          notBefore: plan.notBefore?.toISOString() ?? null,
          now,
          release: plan.releaseLease ? 1 : 0,
        }) as EntryRow;
        for (const event of plan.events) this.insertEvent(id, now, event);
        return toEntry(row);
      }),
    );
  }

  release(claim: Claim): Promise<void> {
    return guarded(() =>
      this.write(() => {
        this.sql('UPDATE journal_entries SET lease_token = NULL, lease_owner = NULL, lease_until = NULL WHERE id = ? AND lease_token = ?').run(
          claim.entry.id,
          claim.token,
        );
      }),
    );
  }

  reopen(id: string, reopen: Reopen): Promise<Entry> {
    return guarded(() =>
      this.write(() => {
        const current = this.sql('SELECT state, overrides FROM journal_entries WHERE id = ?').get(id) as
          | { state: EntryState; overrides: string }
          | undefined;
        const plan = planReopen(id, current && { state: current.state, overrides: JSON.parse(current.overrides) as ErrorCode[] }, reopen);
        const now = new Date().toISOString();
        const row = this.sql(
          `UPDATE journal_entries
           SET state = 'received', attempts = 0, error_code = NULL, error = NULL, overrides = @overrides,
               not_before = @now, updated_at = @now, lease_token = NULL, lease_owner = NULL, lease_until = NULL
           WHERE id = @id
           RETURNING ${ENTRY_COLUMNS}`,
        ).get({ id, overrides: plan.overrides, now }) as EntryRow;
        this.insertEvent(id, now, plan.event);
        return toEntry(row);
      }),
    );
  }

  counts(): Promise<Record<EntryState, number>> {
    return guarded(() => {
      const counts = emptyCounts();
      const rows = this.sql('SELECT state, count(*) AS n FROM journal_entries GROUP BY state').all() as { state: EntryState; n: number }[];
      for (const { state, n } of rows) counts[state] = n;
      return counts;
    });
  }

  list(filter: { state?: EntryState; limit: number; before?: string }): Promise<Entry[]> {
    return guarded(() => {
      const rows = this.sql(
        `SELECT ${ENTRY_COLUMNS} FROM journal_entries
         WHERE (@state IS NULL OR state = @state)
           AND (@before IS NULL OR pos < (SELECT pos FROM journal_entries WHERE id = @before))
         ORDER BY pos DESC LIMIT @limit`,
      ).all({ state: filter.state ?? null, before: filter.before ?? null, limit: filter.limit }) as EntryRow[];
      return rows.map(toEntry);
    });
  }

  ping(): Promise<void> {
    return guarded(() => {
      this.sql('SELECT 1').get();
    });
  }

  close(): Promise<void> {
    return guarded(() => {
      this.commits.flush();
      this.db.close();
    });
  }

  /**
   * In a `BEGIN IMMEDIATE` transaction, which holds the write lock from the first read (see the
   * file comment), shared with the other writes of this event-loop turn (GroupCommit).
   */
  private write<T>(work: () => T): Promise<T> {
    return this.commits.write(work);
  }

  private insertEvent(id: string, now: string, event: EventValues): void {
    this.sql(INSERT_EVENT).run({ id, ...event, at: event.at ?? now });
  }
}
