/**
 * The built-in store's PostgreSQL driver (`database: "postgres://…"`). Ordered writes take a
 * transaction-level advisory lock first (https://www.postgresql.org/docs/current/explicit-locking.html#ADVISORY-LOCKS):
 * it is released only after the commit is visible, so the next writer's max(lastUpdated) sees it
 * and lastUpdated follows commit order across every process. Reads run in a REPEATABLE READ
 * snapshot so that a search's count and page agree.
 */
import pg from 'pg';
import { PasserelleError } from '../../gateway/errors.js';
import type { SqlDriver, Work } from './sql.js';

/** The store's advisory lock key (an arbitrary constant of its own: "passerelle store"). */
const STORE_LOCK = '7061737365726c01';

export class PostgresDriver implements SqlDriver {
  readonly dialect = 'postgres' as const;
  private readonly pool: pg.Pool;
  private readonly texts = new Map<string, string>();

  constructor(url: string, options: { max?: number } = {}) {
    this.pool = new pg.Pool({ connectionString: url, max: options.max ?? 10, connectionTimeoutMillis: 10_000, idleTimeoutMillis: 30_000 });
    // An idle connection dropped by the server must not crash the process: the pool discards it
    // and the next checkout reports a failure, if any, to its caller.
    this.pool.on('error', () => undefined);
  }

  write<T>(work: () => Work<T>, ordered = true): Promise<T> {
    return this.transaction(work, 'BEGIN', ordered);
  }

  read<T>(work: () => Work<T>): Promise<T> {
    return this.transaction(work, 'BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY', false);
  }

  close(): Promise<void> {
    return this.pool.end();
  }

  private async transaction<T>(work: () => Work<T>, begin: string, lock: boolean): Promise<T> {
    let client: pg.PoolClient;
    try {
      client = await this.pool.connect();
    } catch (err) {
      throw pgError(err);
    }
    let broken = false;
    try {
      await client.query(begin);
      if (lock) await client.query(`SELECT pg_advisory_xact_lock(x'${STORE_LOCK}'::bigint)`);
      const gen = work();
      let step = gen.next();
      while (!step.done) {
        const result = await client.query(this.text(step.value.sql), step.value.params);
        step = gen.next(result.rows as Record<string, unknown>[]);
      }
      await client.query('COMMIT');
      return step.value;
    } catch (err) {
      try {
        await client.query('ROLLBACK');
      } catch {
        broken = true;
      }
      throw pgError(err);
    } finally {
      client.release(broken);
    }
  }

  /** `?` placeholders as PostgreSQL's `$n`. */
  private text(sql: string): string {
    let text = this.texts.get(sql);
    if (text === undefined) {
      let n = 0;
      text = sql.replace(/\?/g, () => `$${++n}`);
      this.texts.set(sql, text);
    }
    return text;
  }
}

// SQLSTATE classes of the environment, not of the statement: connection exception (08),
// insufficient resources (53), operator intervention (57P), serialization failure and deadlock
// (40001, 40P01), lock not available (55P03), unknown database (3D000), refused login (28).
const TRANSIENT_STATES = /^(08|53|57P|40001|40P01|55P03|3D000|28)/;
const NETWORK = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'EPIPE']);
const POOL_MESSAGES = /Connection terminated|timeout exceeded when trying to connect|Client has encountered a connection error|Cannot use a pool after calling end/;

function pgError(err: unknown): unknown {
  if (err instanceof PasserelleError) return err;
  const code = (err as { code?: unknown } | null)?.code;
  const message = err instanceof Error ? err.message : '';
  const transient = typeof code === 'string' ? TRANSIENT_STATES.test(code) || NETWORK.has(code) : POOL_MESSAGES.test(message);
  return transient ? new PasserelleError('STORE_UNAVAILABLE', `The store database is unavailable${typeof code === 'string' ? ` (${code})` : ''}.`) : err;
}
