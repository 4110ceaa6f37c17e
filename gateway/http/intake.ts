/**
 * The HTTP doors (CONTRACT.md): `POST /documents`, one CDA document, and `POST /messages`, a raw
 * mail exactly as received over SMTP. The raw bytes are committed to the journal before
 * `202 Accepted`; the rest happens in the pipeline, and `GET /messages/{id}` tells the outcome.
 * A "CDA" that is not XML at all (a PDF, JSON) is still journaled — nothing received is lost, an
 * operator can inspect it — but quarantined at once and answered with its code (415).
 */
import Router, { type RouterContext } from '@koa/router';
import type { Entry, EntryKind, Journal } from '../../adapters/journal/port.js';
import { PasserelleError } from '../errors.js';
import { assertLooksLikeXml } from '../pipeline/sniff.js';
import { MemoryBudget } from '../util/memory-budget.js';
import { requireRole } from './auth.js';
import { readBody } from './body.js';
import type { AppState } from './state.js';

const CDA_TYPES = ['application/hl7-cda+xml', 'application/xml', 'text/xml'];

export interface IntakeDeps {
  journal: Journal;
  maxBodyBytes: number;
  /** Request bodies held in memory at once, over all connections, until their commit. */
  maxBufferedBytes: number;
  /** Wakes the local pipeline after a commit. */
  onAppended: () => void;
}

export function intakeRouter(deps: IntakeDeps): Router<AppState> {
  const router = new Router<AppState>();
  const budget = new MemoryBudget(Math.max(deps.maxBufferedBytes, deps.maxBodyBytes));
  /** The body, held against the budget until `use` is done with it (committed or refused). */
  const withBody = async <T>(ctx: RouterContext<AppState>, use: (raw: Buffer) => Promise<T>): Promise<T> => {
    const raw = await readBody(ctx.req, deps.maxBodyBytes, budget);
    try {
      return await use(raw);
    } finally {
      budget.give(raw.length);
    }
  };

  /** Commits the bytes, wakes the pipeline, points Location at the entry. */
  const journal = async (ctx: RouterContext<AppState>, kind: EntryKind, contentType: string, raw: Buffer): Promise<Entry> => {
    const client = ctx.state.client;
    if (!client) throw new PasserelleError('AUTH_REQUIRED');
    let entry;
    try {
      entry = await deps.journal.append({ kind, door: 'http', submitter: client.id, contentType, raw, meta: { remote: ctx.ip } });
    } catch {
      throw new PasserelleError('JOURNAL_UNAVAILABLE');
    }
    deps.onAppended();
    ctx.set('Location', `/messages/${entry.id}`);
    return entry;
  };
  const accepted = (ctx: RouterContext<AppState>, entry: Entry): void => {
    ctx.status = 202;
    ctx.body = { id: entry.id, state: entry.state };
  };

  router.post('/documents', requireRole('sender', 'admin'), async (ctx) => {
    const type = ctx.request.type;
    if (!CDA_TYPES.includes(type)) throw new PasserelleError('INPUT_NOT_CDA', `Content-Type "${type || 'none'}" is not a CDA document type (${CDA_TYPES.join(', ')})`);
    await withBody(ctx, async (raw) => {
      let refusal: PasserelleError | undefined;
      try {
        assertLooksLikeXml(raw);
      } catch (err) {
        if (!(err instanceof PasserelleError)) throw err;
        refusal = err;
      }
      const entry = await journal(ctx, 'document', type, raw);
      // Journaled then refused (Location still names the entry): the pipeline quarantines it with the same code.
      if (refusal) throw refusal;
      accepted(ctx, entry);
    });
  });

  router.post('/messages', requireRole('sender', 'admin'), async (ctx) => {
    if (ctx.request.type !== 'message/rfc822') throw new PasserelleError('REQUEST_INVALID', `Content-Type must be message/rfc822, not "${ctx.request.type || 'none'}"`);
    await withBody(ctx, async (raw) => {
      if (!raw.length) throw new PasserelleError('MIME_MALFORMED', 'the body is empty');
      accepted(ctx, await journal(ctx, 'message', 'message/rfc822', raw));
    });
  });
  return router;
}
