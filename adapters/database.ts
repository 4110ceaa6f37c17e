/**
 * The `database` setting (CONTRACT.md): `sqlite:<path>` (embedded default) or `postgres://…`.
 * The journal and the built-in store open the same database, each with its own connection.
 */
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import { PasserelleError } from '../gateway/errors.js';

export type DatabaseLocation = { kind: 'sqlite'; path: string } | { kind: 'postgres'; url: string };

export function parseDatabaseUrl(url: string): DatabaseLocation {
  if (url.startsWith('sqlite:')) {
    const path = url.slice('sqlite:'.length).replace(/^\/\/(?=\/)/, '');
    if (!path) throw new PasserelleError('CONFIG_INVALID', 'database: sqlite: needs a file path (or :memory:)');
    return { kind: 'sqlite', path };
  }
  if (/^postgres(ql)?:\/\//.test(url)) return { kind: 'postgres', url };
  throw new PasserelleError('CONFIG_INVALID', 'database: expected "sqlite:<path>" or "postgres://…"');
}

/** How long a process waits for another one's write lock before an operation fails. */
export const SQLITE_BUSY_TIMEOUT_MS = 10_000;

/**
 * Opens a SQLite database the way the journal and the store both need it: WAL (readers never block
 * the writer; several processes can share the file), synchronous=FULL (a commit is on disk before
 * the caller answers "accepted"), foreign keys enforced. Creates the file's directory if missing.
 */
export function openSqlite(path: string): Database.Database {
  if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true });
  const db = new Database(path, { timeout: SQLITE_BUSY_TIMEOUT_MS });
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = FULL');
  db.pragma('foreign_keys = ON');
  return db;
}

/** A connection's statements, each prepared once per SQL text and reused for the life of the connection. */
export function statementCache(db: Database.Database): (sql: string) => Database.Statement {
  const statements = new Map<string, Database.Statement>();
  return (sql) => {
    let statement = statements.get(sql);
    if (statement === undefined) {
      statement = db.prepare(sql);
      statements.set(sql, statement);
    }
    return statement;
  };
}

interface QueuedWrite {
  work: () => unknown;
  resolve: (value: unknown) => void;
  reject: (err: unknown) => void;
}

/**
 * Group commit: the write transactions asked for during one turn of the event loop run together
 * in one `BEGIN IMMEDIATE … COMMIT`, so concurrent messages share one WAL fsync
 * (synchronous=FULL) instead of blocking the event loop for one each. Each unit runs in a
 * savepoint of its own (better-sqlite3 nests transaction functions as SAVEPOINTs): one that throws
 * is rolled back alone and rejected; the others are resolved only once the commit is on disk, and
 * all are rejected if it fails. A read sees the writes whose promises have resolved.
 */
export class GroupCommit {
  private queue: QueuedWrite[] = [];

  constructor(private readonly db: Database.Database) {}

  write<T>(work: () => T): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      if (this.queue.push({ work, resolve: resolve as (value: unknown) => void, reject }) === 1) setImmediate(() => this.flush());
    });
  }

  /** Commits what is queued now; closing a connection calls it first, so no write asked for is dropped. */
  flush(): void {
    const batch = this.queue;
    if (batch.length === 0) return; // the turn's flush after an early one
    this.queue = [];
    const outcomes: Array<{ ok: true; value: unknown } | { ok: false; err: unknown }> = [];
    try {
      this.db.transaction(() => {
        for (const unit of batch) {
          try {
            outcomes.push({ ok: true, value: batch.length === 1 ? unit.work() : this.db.transaction(unit.work)() });
          } catch (err) {
            if (batch.length === 1) throw err; // alone: the whole transaction rolls back
            outcomes.push({ ok: false, err });
          }
        }
      }).immediate();
    } catch (err) {
      for (const unit of batch) unit.reject(err);
      return;
    }
    batch.forEach((unit, i) => {
      const outcome = outcomes[i];
      if (outcome?.ok) unit.resolve(outcome.value);
      else unit.reject(outcome?.err);
    });
  }
}
