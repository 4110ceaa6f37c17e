/**
 * Bearer-token authentication (RFC 6750) and role checks. Tokens are compared in constant time:
 * both sides are hashed to fixed-length digests and compared with timingSafeEqual, and every
 * configured client is compared, so neither the length nor the position of a match leaks.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { Middleware } from 'koa';
import { PasserelleError } from '../errors.js';
import type { AppState, ClientIdentity, Role } from './state.js';

export interface ClientConfig extends ClientIdentity {
  token: string;
}

const digest = (s: string): Buffer => createHash('sha256').update(s, 'utf8').digest();

export function clientResolver(clients: readonly ClientConfig[]): (token: string) => ClientIdentity | undefined {
  const known = clients.map((c) => ({ digest: digest(c.token), identity: Object.freeze({ id: c.id, role: c.role, ...(c.organization ? { organization: c.organization } : {}) }) }));
  return (token) => {
    const presented = digest(token);
    let found: ClientIdentity | undefined;
    for (const k of known) if (timingSafeEqual(k.digest, presented) && !found) found = k.identity;
    return found;
  };
}

/** Sets ctx.state.client when a valid bearer token is presented; a present but unknown token is refused (401). */
export function authenticate(clients: readonly ClientConfig[]): Middleware<AppState> {
  const resolve = clientResolver(clients);
  return async (ctx, next) => {
    const header = ctx.get('authorization');
    if (header) {
      const m = /^Bearer\s+(\S+)\s*$/i.exec(header);
      const client = m?.[1] ? resolve(m[1]) : undefined;
      if (!client) {
        ctx.set('WWW-Authenticate', 'Bearer error="invalid_token"');
        throw new PasserelleError('AUTH_REQUIRED');
      }
      ctx.state.client = client;
    }
    await next();
  };
}

/** Refuses anonymous requests (401) and other roles (403). */
export function requireRole(...roles: Role[]): Middleware<AppState> {
  return async (ctx, next) => {
    const client = ctx.state.client;
    if (!client) {
      ctx.set('WWW-Authenticate', 'Bearer');
      throw new PasserelleError('AUTH_REQUIRED');
    }
    if (!roles.includes(client.role)) throw new PasserelleError('AUTH_FORBIDDEN');
    await next();
  };
}
