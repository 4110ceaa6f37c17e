/**
 * Opens the journal the `database` setting names (CONTRACT.md: `sqlite:<path>` or `postgres://…`)
 * with its schema in place.
 */
import { parseDatabaseUrl } from '../database.js';
import type { Journal } from './port.js';
import { PostgresJournal } from './postgres.js';
import { SqliteJournal } from './sqlite.js';

export async function openJournal(database: string): Promise<Journal> {
  const location = parseDatabaseUrl(database);
  const journal = location.kind === 'sqlite' ? new SqliteJournal(location.path) : new PostgresJournal(location.url);
  try {
    await journal.init();
  } catch (err) {
    // Do not leave a pool or a file handle open behind a failed start.
    await journal.close().catch(() => undefined);
    throw err;
  }
  return journal;
}
