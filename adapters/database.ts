/**
 * The `database` setting (CONTRACT.md): `sqlite:<path>` (embedded default) or `postgres://…`.
 * The journal and the built-in store open the same database, each with its own connection.
 */
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
