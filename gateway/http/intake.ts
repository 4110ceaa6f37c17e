/**
 * The HTTP doors (CONTRACT.md): `POST /documents`, one CDA document, and `POST /messages`, a raw
 * mail exactly as received over SMTP. The raw bytes are committed to the journal before
 * `202 Accepted`; the rest happens in the pipeline, and `GET /messages/{id}` tells the outcome.
 * A "CDA" that is not XML at all (a PDF, JSON) is still journaled — nothing received is lost, an
 * operator can inspect it — but quarantined at once and answered with its code (415).
 */
import Router from '@koa/router';
import type { Journal } from '../../adapters/journal/port.js';
import { ERROR_CATALOGUE, PasserelleError } from '../errors.js';
import { outcomeFromError } from '../fhir/outcome.js';
import { assertLooksLikeXml } from '../pipeline/sniff.js';
import { requireRole } from './auth.js';
import { readBody } from './body.js';
import { FHIR_JSON } from './errors.js';
import type { AppState } from './state.js';

const CDA_TYPES = ['application/hl7-cda+xml', 'application/xml', 'text/xml'];

export interface IntakeDeps {
  journal: Journal;
  maxBodyBytes: number;
  /** Wakes the local pipeline after a commit. */
  onAppended: () => void;
}

export function intakeRouter(deps: IntakeDeps): Router<AppState> {
  const router = new Router<AppState>();
  router.post('/documents', requireRole('sender', 'admin'), async (ctx) => {
    const type = ctx.request.type;
    if (!CDA_TYPES.includes(type)) throw new PasserelleError('INPUT_NOT_CDA', `Content-Type "${type || 'none'}" is not a CDA document type (${CDA_TYPES.join(', ')})`);
    const raw = await readBody(ctx.req, deps.maxBodyBytes);
    const client = ctx.state.client;
    if (!client) throw new PasserelleError('AUTH_REQUIRED');
    let refusal: PasserelleError | undefined;
    try {
      assertLooksLikeXml(raw);
    } catch (err) {
      if (!(err instanceof PasserelleError)) throw err;
      refusal = err;
    }
    let entry;
    try {
      entry = await deps.journal.append({ kind: 'document', door: 'http', submitter: client.id, contentType: type, raw, meta: { remote: ctx.ip } });
    } catch {
      throw new PasserelleError('JOURNAL_UNAVAILABLE');
    }
    deps.onAppended();
    const location = `/messages/${entry.id}`;
    ctx.set('Location', location);
    if (refusal) {
      // Journaled then refused: the pipeline quarantines it with the same code on its first claim.
      ctx.status = ERROR_CATALOGUE[refusal.code].http;
      ctx.type = FHIR_JSON;
      ctx.body = outcomeFromError(refusal);
      ctx.state.errorCode = refusal.code;
      return;
    }
    ctx.status = 202;
    ctx.body = { id: entry.id, state: entry.state };
  });

  router.post('/messages', requireRole('sender', 'admin'), async (ctx) => {
    if (ctx.request.type !== 'message/rfc822') throw new PasserelleError('REQUEST_INVALID', `Content-Type must be message/rfc822, not "${ctx.request.type || 'none'}"`);
    const raw = await readBody(ctx.req, deps.maxBodyBytes);
    const client = ctx.state.client;
    if (!client) throw new PasserelleError('AUTH_REQUIRED');
    if (!raw.length) throw new PasserelleError('MIME_MALFORMED', 'the body is empty');
    let entry;
    try {
      entry = await deps.journal.append({ kind: 'message', door: 'http', submitter: client.id, contentType: 'message/rfc822', raw, meta: { remote: ctx.ip } });
    } catch {
      throw new PasserelleError('JOURNAL_UNAVAILABLE');
    }
    deps.onAppended();
    ctx.set('Location', `/messages/${entry.id}`);
    ctx.status = 202;
    ctx.body = { id: entry.id, state: entry.state };
  });
  return router;
}
