/**
 * Request bodies of the FHIR routes: JSON resources (http.html#mime: application/fhir+json, or
 * application/json) and the form of `POST [type]/_search` (search.html#search-post:
 * application/x-www-form-urlencoded). Read with a size limit, before any parsing.
 */
import type { Context } from 'koa';
import { PasserelleError } from '../errors.js';
import { readBody } from './body.js';

export async function readResource(ctx: Context, limit: number): Promise<Record<string, unknown>> {
  if (!/^application\/(fhir\+)?json\s*(;|$)/i.test(ctx.get('content-type'))) {
    throw new PasserelleError('REQUEST_INVALID', 'The body must be application/fhir+json.');
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse((await readBody(ctx.req, limit)).toString('utf8'));
  } catch (err) {
    if (err instanceof PasserelleError) throw err;
    throw new PasserelleError('REQUEST_INVALID', 'The body is not JSON.');
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed) || typeof (parsed as { resourceType?: unknown }).resourceType !== 'string') {
    throw new PasserelleError('REQUEST_INVALID', 'The body is not a FHIR resource.');
  }
  return parsed as Record<string, unknown>;
}

export async function readForm(ctx: Context, limit: number): Promise<[string, string][]> {
  if (!/^application\/x-www-form-urlencoded\s*(;|$)/i.test(ctx.get('content-type'))) {
    throw new PasserelleError('REQUEST_INVALID', 'POST _search takes application/x-www-form-urlencoded parameters.');
  }
  return [...new URLSearchParams((await readBody(ctx.req, limit)).toString('utf8'))];
}
