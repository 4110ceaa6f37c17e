/**
 * Every error leaving the HTTP API is an OperationOutcome carrying the catalogue code, with the
 * catalogue's status (CONTRACT.md, "HTTP API"). Unknown errors become INTERNAL_ERROR: no stack
 * trace, no message from inside ever reaches a client.
 */
import type { Middleware } from 'koa';
import { ERROR_CATALOGUE, PasserelleError } from '../errors.js';
import { outcomeFromError } from '../fhir/outcome.js';
import type { AppState } from './state.js';

export const FHIR_JSON = 'application/fhir+json; charset=utf-8';

export function errorHandler(onUnexpected: (err: unknown) => void): Middleware<AppState> {
  return async (ctx, next) => {
    try {
      await next();
      if (ctx.status === 404 && ctx.body === undefined) throw new PasserelleError('NOT_FOUND');
    } catch (err) {
      let e: PasserelleError;
      if (err instanceof PasserelleError) e = err;
      else if (isHttpError(err) && err.status < 500) e = new PasserelleError(err.status === 413 ? 'INPUT_TOO_LARGE' : 'REQUEST_INVALID');
      else {
        onUnexpected(err);
        e = new PasserelleError('INTERNAL_ERROR');
      }
      ctx.status = ERROR_CATALOGUE[e.code].http;
      // RFC 9110 §10.2.3: a 503 says when to come back (every 503 of the catalogue is transient).
      if (ctx.status === 503) ctx.set('Retry-After', '5');
      ctx.type = FHIR_JSON;
      ctx.body = outcomeFromError(e);
      ctx.state.errorCode = e.code;
    }
  };
}

function isHttpError(err: unknown): err is { status: number } {
  return typeof err === 'object' && err !== null && typeof (err as { status?: unknown }).status === 'number';
}
