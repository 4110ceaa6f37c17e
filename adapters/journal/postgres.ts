/**
 * The journal on PostgreSQL (CONTRACT.md: `database: "postgres://…"`), for several gateway
 * processes sharing one database (ARCHITECTURE.md: scale with processes, not threads).
 *
 * A claim locks the oldest free entry with `FOR UPDATE SKIP LOCKED` inside the UPDATE that leases
 * it, so concurrent claimers each get a different row instead of queueing behind one another
 * (https://www.postgresql.org/docs/current/sql-select.html#SQL-FOR-UPDATE-SHARE). Leases are
 * judged by the database's clock (`now()`), the one clock all gateway hosts share. append() forces
 * `synchronous_commit = on` for its transaction: "accepted" must mean flushed to disk, whatever
 * the server's default.
 */
import pg from 'pg';
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

/** A database that does not answer within this delay makes the journal unavailable (/ready fails) instead of hanging. */
const CONNECT_TIMEOUT_MS = 10_000;

// `pos` orders entries by arrival: ids are random UUIDs and instants can tie. `id` is text, not
// uuid, so that a malformed id in a URL is simply not found rather than a cast error.
const SCHEMA = `
CREATE TABLE IF NOT EXISTS journal_entries (
  pos          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  id           text NOT NULL UNIQUE,
  kind         text NOT NULL,
  door         text NOT NULL,
  submitter    text NOT NULL,
  content_type text NOT NULL,
  sha256       text NOT NULL,
  size         integer NOT NULL,
  state        text NOT NULL,
  attempts     integer NOT NULL DEFAULT 0,
  error_code   text,
  error        text,
  not_before   timestamptz NOT NULL,
  created_at   timestamptz NOT NULL,
  updated_at   timestamptz NOT NULL,
  meta         jsonb NOT NULL,
  result       jsonb NOT NULL DEFAULT '{}',
  overrides    jsonb NOT NULL DEFAULT '[]',
  lease_token  text,
  lease_owner  text,
  lease_until  timestamptz
);
-- The raw bytes apart, written once, as in the SQLite journal: the entry row stays small.
CREATE TABLE IF NOT EXISTS journal_raw (
  entry_id     text PRIMARY KEY REFERENCES journal_entries (id) ON DELETE CASCADE,
  raw          bytea NOT NULL
);
CREATE INDEX IF NOT EXISTS journal_entries_claimable ON journal_entries (pos) WHERE state NOT IN (${FINAL_STATES_SQL});
CREATE INDEX IF NOT EXISTS journal_entries_state ON journal_entries (state, pos);
CREATE TABLE IF NOT EXISTS journal_history (
  entry_id     text NOT NULL REFERENCES journal_entries (id) ON DELETE CASCADE,
  seq          integer NOT NULL,
  state        text NOT NULL,
  at           timestamptz NOT NULL,
  outcome      text NOT NULL,
  stage        text,
  duration_ms  double precision,
  error_code   text,
  detail       text,
  actor        text,
  PRIMARY KEY (entry_id, seq)
);`;

const INSERT_EVENT = `
INSERT INTO journal_history (entry_id, seq, state, at, outcome, stage, duration_ms, error_code, detail, actor)
SELECT $1, coalesce(max(seq), 0) + 1, $2, coalesce($9::timestamptz, now()), $3, $4, $5::double precision, $6, $7, $8
FROM journal_history WHERE entry_id = $1`;

const LEASE_UNTIL = `now() + $2::double precision * interval '1 millisecond'`;

export class PostgresJournal implements Journal {
  private readonly pool: pg.Pool;

  constructor(url: string) {
    this.pool = new pg.Pool({ connectionString: url, connectionTimeoutMillis: CONNECT_TIMEOUT_MS });
    // An idle client whose connection drops emits 'error' on the pool, and an unheard 'error'
    // event would kill the process. The pool discards that client; the next query reports
    // JOURNAL_UNAVAILABLE if the database is really gone.
    this.pool.on('error', () => undefined);
  }

  init(): Promise<void> {
    return guarded(() =>
      this.transaction(async (client) => {
        // Two processes starting together would both try to create the tables, and concurrent
        // CREATE TABLE IF NOT EXISTS can still fail on the catalogue's unique indexes: serialise them.
        await client.query(`SELECT pg_advisory_xact_lock(hashtext('passerelle.journal.schema'))`);
        await client.query(SCHEMA);
        // A journal written by 0.2 kept the raw bytes in the entry row: move them, losing nothing.
        const { rows } = await client.query(`SELECT 1 FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = 'journal_entries' AND column_name = 'raw'`);
        if (rows.length) {
          await client.query('INSERT INTO journal_raw (entry_id, raw) SELECT id, raw FROM journal_entries ON CONFLICT DO NOTHING');
          await client.query('ALTER TABLE journal_entries DROP COLUMN raw');
        }
      }),
    );
  }

  append(input: NewEntry): Promise<Entry> {
    return guarded(() =>
      this.transaction(async (client) => {
        await client.query('SET LOCAL synchronous_commit = on');
        const id = newEntryId();
        const { rows } = await client.query<EntryRow>(
          `INSERT INTO journal_entries (id, kind, door, submitter, content_type, sha256, size, state, not_before, created_at, updated_at, meta)
           VALUES ($1, $2, $3, $4, $5, $6, $7, 'received', now(), now(), now(), $8::jsonb)
           RETURNING ${ENTRY_COLUMNS}`,
          [id, input.kind, input.door, cleanText(input.submitter), cleanText(input.contentType), sha256Hex(input.raw), input.raw.length, jsonText(input.meta ?? {})],
        );
        await client.query('INSERT INTO journal_raw (entry_id, raw) VALUES ($1, $2)', [id, input.raw]);
        await insertEvent(client, id, RECEIVE_EVENT);
        return toEntry(one(rows));
      }),
    );
  }

  get(id: string): Promise<Entry | undefined> {
    return guarded(async () => {
      const { rows } = await this.pool.query<EntryRow>(`SELECT ${ENTRY_COLUMNS} FROM journal_entries WHERE id = $1`, [id]);
      return rows[0] && toEntry(rows[0]);
    });
  }

  raw(id: string): Promise<Buffer | undefined> {
    return guarded(async () => {
      const { rows } = await this.pool.query<{ raw: Buffer }>('SELECT raw FROM journal_raw WHERE entry_id = $1', [id]);
      return rows[0]?.raw;
    });
  }

  history(id: string): Promise<HistoryEvent[]> {
    return guarded(async () => {
      const { rows } = await this.pool.query<EventRow>(`SELECT ${EVENT_COLUMNS} FROM journal_history WHERE entry_id = $1 ORDER BY seq`, [id]);
      return rows.map(toEvent);
    });
  }

  claim(worker: string, leaseMs: number): Promise<Claim | undefined> {
    // One statement is one transaction: the row locked by the sub-select is the row updated.
    return guarded(async () => {
      const token = newLeaseToken();
      const { rows } = await this.pool.query<EntryRow>(
        `UPDATE journal_entries
         SET attempts = attempts + 1, lease_token = $1, lease_owner = $3, lease_until = ${LEASE_UNTIL}, updated_at = now()
         WHERE id = (SELECT id FROM journal_entries
                     WHERE state NOT IN (${FINAL_STATES_SQL}) AND not_before <= now()
                       AND (lease_until IS NULL OR lease_until <= now())
                     ORDER BY pos LIMIT 1
                     FOR UPDATE SKIP LOCKED)
         RETURNING ${ENTRY_COLUMNS}`,
        [token, leaseMs, cleanText(worker)],
      );
      return rows[0] && { entry: toEntry(rows[0]), token };
    });
  }

  renew(claim: Claim, leaseMs: number): Promise<void> {
    return guarded(async () => {
      const { rowCount } = await this.pool.query(
        `UPDATE journal_entries SET lease_until = ${LEASE_UNTIL} WHERE id = $1 AND lease_token = $3`,
        [claim.entry.id, leaseMs, claim.token],
      );
      if (rowCount === 0) throw new LeaseLostError(claim.entry.id);
    });
  }

  record(claim: Claim, transition: Transition, passed: readonly Transition[] = []): Promise<Entry> {
    return guarded(() =>
      this.transaction(async (client) => {
        const { id } = claim.entry;
        const held = await client.query<{ result: Record<string, unknown> }>(
          'SELECT result FROM journal_entries WHERE id = $1 AND lease_token = $2 FOR UPDATE',
          [id, claim.token],
        );
        if (held.rows[0] === undefined) throw new LeaseLostError(id);
        const plan = planTransition(held.rows[0].result, transition, passed);
        const release = plan.releaseLease;
        const { rows } = await client.query<EntryRow>(
          `UPDATE journal_entries
           SET state = $2, error_code = $3, error = $4, result = $5::jsonb,
               not_before = coalesce($6, not_before), updated_at = now(),
               lease_token = CASE WHEN $7 THEN NULL ELSE lease_token END,
               lease_owner = CASE WHEN $7 THEN NULL ELSE lease_owner END,
               lease_until = CASE WHEN $7 THEN NULL ELSE lease_until END
           WHERE id = $1
           RETURNING ${ENTRY_COLUMNS}`,
          [id, plan.state, plan.errorCode, plan.error, plan.result, plan.notBefore, release],
        );
        for (const event of plan.events) await insertEvent(client, id, event);
        return toEntry(one(rows));
      }),
    );
  }

  release(claim: Claim): Promise<void> {
    return guarded(async () => {
      await this.pool.query(
        'UPDATE journal_entries SET lease_token = NULL, lease_owner = NULL, lease_until = NULL WHERE id = $1 AND lease_token = $2',
        [claim.entry.id, claim.token],
      );
    });
  }

  reopen(id: string, reopen: Reopen): Promise<Entry> {
    return guarded(() =>
      this.transaction(async (client) => {
        const current = await client.query<{ state: EntryState; overrides: ErrorCode[] }>(
          'SELECT state, overrides FROM journal_entries WHERE id = $1 FOR UPDATE',
          [id],
        );
        const plan = planReopen(id, current.rows[0], reopen);
        const { rows } = await client.query<EntryRow>(
          `UPDATE journal_entries
           SET state = 'received', attempts = 0, error_code = NULL, error = NULL, overrides = $2::jsonb,
               not_before = now(), updated_at = now(), lease_token = NULL, lease_owner = NULL, lease_until = NULL
           WHERE id = $1
           RETURNING ${ENTRY_COLUMNS}`,
          [id, plan.overrides],
        );
        await insertEvent(client, id, plan.event);
        return toEntry(one(rows));
      }),
    );
  }

  counts(): Promise<Record<EntryState, number>> {
    return guarded(async () => {
      const counts = emptyCounts();
      // count(*) is bigint, which node-postgres returns as a string.
      const { rows } = await this.pool.query<{ state: EntryState; n: string }>('SELECT state, count(*) AS n FROM journal_entries GROUP BY state');
      for (const { state, n } of rows) counts[state] = Number(n);
      return counts;
    });
  }

  list(filter: { state?: EntryState; limit: number; before?: string }): Promise<Entry[]> {
    return guarded(async () => {
      const { rows } = await this.pool.query<EntryRow>(
        `SELECT ${ENTRY_COLUMNS} FROM journal_entries
         WHERE ($1::text IS NULL OR state = $1)
           AND ($2::text IS NULL OR pos < (SELECT pos FROM journal_entries WHERE id = $2))
         ORDER BY pos DESC LIMIT $3`,
        [filter.state ?? null, filter.before ?? null, filter.limit],
      );
      return rows.map(toEntry);
    });
  }

  ping(): Promise<void> {
    return guarded(async () => {
      await this.pool.query('SELECT 1');
    });
  }

  close(): Promise<void> {
    return guarded(() => this.pool.end());
  }

  /** BEGIN … COMMIT on one pooled connection; ROLLBACK on any error, and a connection that cannot even roll back is discarded. */
  private async transaction<T>(work: (client: pg.PoolClient) => Promise<T>): Promise<T> {
    const client = await this.pool.connect();
    let broken: Error | undefined;
    try {
      await client.query('BEGIN');
      const out = await work(client);
      await client.query('COMMIT');
      return out;
    } catch (err) {
      await client.query('ROLLBACK').catch((rollbackError: unknown) => {
        broken = rollbackError instanceof Error ? rollbackError : new Error(String(rollbackError));
      });
      throw err;
    } finally {
      client.release(broken);
    }
  }
}

async function insertEvent(client: pg.PoolClient, id: string, e: EventValues): Promise<void> {
  await client.query(INSERT_EVENT, [id, e.state, e.outcome, e.stage, e.durationMs, e.errorCode, e.detail, e.actor, e.at ?? null]);
}

/** The row a RETURNING clause on a row we hold locked must give back. */
function one(rows: EntryRow[]): EntryRow {
  const row = rows[0];
  if (row === undefined) throw new Error('journal: the locked entry vanished');
  return row;
}
