/**
 * Paging cursors: a JSON array, base64url-encoded, opaque to clients. A cursor only says where a
 * page starts; the caller's filters and scope are applied again on every page, so a forged or
 * replayed cursor can move within what its bearer may see, never outside it. Anything that does
 * not decode to the expected shape is the client's error (400), never a server fault.
 */
import { PasserelleError } from '../../gateway/errors.js';

export function encodeCursor(parts: readonly (string | number)[]): string {
  return Buffer.from(JSON.stringify(parts), 'utf8').toString('base64url');
}

/** The cursor's parts, checked against the expected kinds ('s' string, 'n' safe integer). */
export function decodeCursor(cursor: string, shape: readonly ('s' | 'n')[]): (string | number)[] {
  const invalid = (): PasserelleError => new PasserelleError('REQUEST_INVALID', 'The paging cursor is not one this server issued.');
  if (!/^[A-Za-z0-9_-]{1,16384}$/.test(cursor)) throw invalid();
  let parts: unknown;
  try {
    parts = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
  } catch {
    throw invalid();
  }
  if (!Array.isArray(parts) || parts.length !== shape.length) throw invalid();
  parts.forEach((p: unknown, i) => {
    const ok = shape[i] === 's' ? typeof p === 'string' && p.length > 0 : Number.isSafeInteger(p);
    if (!ok) throw invalid();
  });
  return parts as (string | number)[];
}
