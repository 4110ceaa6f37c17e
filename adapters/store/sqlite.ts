/**
 * The built-in store's SQLite driver (`database: "sqlite:<path>"`, the embedded default), on its
 * own connection to the journal's file. WAL with `synchronous=FULL` fsyncs every commit, so a
 * stored document survives a power cut once put() resolves (https://sqlite.org/pragma.html#pragma_synchronous).
 * Every write is `BEGIN IMMEDIATE`: it takes the database's single write lock before its first
 * read, which is what serializes the lastUpdated assignment across processes
 * (https://sqlite.org/lang_transaction.html); the busy timeout makes another process wait for
 * the lock rather than fail. The writes of one event-loop turn share a transaction (GroupCommit),
 * each unit in a savepoint, all run synchronously, so the lock is never held across a turn.
 */
import type Database from 'better-sqlite3';
import { GroupCommit, openSqlite, statementCache } from '../database.js';
import { PasserelleError } from '../../gateway/errors.js';
import type { Row, SqlDriver, Work } from './sql.js';


export class SqliteDriver implements SqlDriver {
  readonly dialect = 'sqlite' as const;
  private readonly db: Database.Database;
  private readonly statement: (sql: string) => Database.Statement;
  private readonly commits: GroupCommit;

  constructor(path: string) {
    try {
      this.db = openSqlite(path);
    } catch (err) {
      throw sqliteError(err);
    }
    this.statement = statementCache(this.db);
    this.commits = new GroupCommit(this.db);
  }

  /** Shares its transaction and fsync with the other writes of this event-loop turn (GroupCommit). */
  write<T>(work: () => Work<T>): Promise<T> {
    return this.commits.write(() => this.run(work())).catch((err: unknown) => Promise.reject(sqliteError(err)));
  }

  read<T>(work: () => Work<T>): Promise<T> {
    try {
      return Promise.resolve(this.db.transaction(() => this.run(work())).deferred());
    } catch (err) {
      return Promise.reject(sqliteError(err));
    }
  }

  close(): Promise<void> {
    if (!this.db.open) return Promise.resolve();
    this.commits.flush();
    this.db.close();
    return Promise.resolve();
  }

  private run<T>(work: Work<T>): T {
    let step = work.next();
    while (!step.done) {
      const { sql, params } = step.value;
      const statement = this.statement(sql);
      let rows: Row[] = [];
      if (statement.reader) rows = statement.all(...params) as Row[];
      else statement.run(...params);
      step = work.next(rows);
    }
    return step.value;
  }
}

// Lock contention, I/O and resource failures are the environment's, and pass: the caller retries.
const TRANSIENT = /^SQLITE_(BUSY|LOCKED|IOERR|FULL|CANTOPEN|PROTOCOL|NOMEM|READONLY)/;

function sqliteError(err: unknown): unknown {
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code === 'string' && TRANSIENT.test(code)) return new PasserelleError('STORE_UNAVAILABLE', `The store database is unavailable (${code}).`);
  return err;
}
