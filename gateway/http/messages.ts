/**
 * `GET /messages/{id}` (CONTRACT.md) for the submitter and admins, and the operator actions on the
 * journal: list, original bytes, `$replay` (run again from the original bytes) and `$release`
 * (override a quarantine decision, recorded with who and why). An entry submitted by another
 * client answers exactly like an unknown one.
 */
import Router, { type RouterContext } from '@koa/router';
import type { Entry, EntryState, Journal } from '../../adapters/journal/port.js';
import { ENTRY_STATES } from '../../adapters/journal/port.js';
import { ERROR_CATALOGUE, PasserelleError, type ErrorCode } from '../errors.js';
import { decodedHeader, parseMessage } from '../mail/mime.js';
import { readMssHeaders } from '../mail/mss-headers.js';
import { requireRole } from './auth.js';
import { readBody } from './body.js';
import type { AppState } from './state.js';

/** Quarantine decisions an operator may override; the others need a fixed input and a replay. */
export const RELEASABLE: ReadonlySet<ErrorCode> = new Set<ErrorCode>(['IDENTITY_AMBIGUOUS', 'IDENTITY_COLLISION']);

export interface MessagesDeps {
  journal: Journal;
  onAppended: () => void;
}

export function messagesRouter({ journal, onAppended }: MessagesDeps): Router<AppState> {
  const router = new Router<AppState>();

  const visible = async (id: string, state: AppState): Promise<Entry> => {
    const entry = /^[0-9a-f-]{36}$/i.test(id) ? await journal.get(id) : undefined;
    const client = state.client;
    if (!entry || !client || (client.role !== 'admin' && entry.submitter !== client.id)) throw new PasserelleError('NOT_FOUND');
    return entry;
  };

  router.get('/messages/:id', requireRole('sender', 'admin'), async (ctx) => {
    const entry = await visible(ctx.params.id ?? '', ctx.state);
    const history = await journal.history(entry.id);
    ctx.body = {
      id: entry.id,
      state: entry.state,
      ...(entry.errorCode ? { errorCode: entry.errorCode, error: entry.error } : {}),
      bundles: Array.isArray(entry.result.bundles) ? entry.result.bundles : [],
      receivedAt: entry.createdAt,
      attempts: entry.attempts,
      result: entry.result,
      history: history.map((h) => ({ state: h.state, at: h.at, outcome: h.outcome, ...(h.stage ? { stage: h.stage } : {}), ...(h.durationMs !== undefined ? { durationMs: h.durationMs } : {}), ...(h.errorCode ? { errorCode: h.errorCode } : {}), ...(h.detail ? { detail: h.detail } : {}), ...(h.actor ? { actor: h.actor } : {}) })),
    };
  });

  router.get('/messages', requireRole('admin'), async (ctx) => {
    const state = ctx.query.state;
    if (state !== undefined && !(typeof state === 'string' && (ENTRY_STATES as readonly string[]).includes(state))) throw new PasserelleError('REQUEST_INVALID', `state must be one of ${ENTRY_STATES.join(', ')}`);
    const limit = Math.min(500, Math.max(1, Number(ctx.query.limit ?? 50) || 50));
    const before = typeof ctx.query.before === 'string' ? ctx.query.before : undefined;
    const entries = await journal.list({ ...(state ? { state: state as EntryState } : {}), limit, ...(before ? { before } : {}) });
    ctx.body = { counts: await journal.counts(), entries: entries.map(({ id, state: s, kind, door, submitter, errorCode, createdAt, updatedAt, attempts }) => ({ id, state: s, kind, door, submitter, errorCode, createdAt, updatedAt, attempts })) };
  });

  /**
   * What the console shows of a mail's header: From, To, Date, Message-ID and the MSSanté
   * declarations, the `XDM/1.0/DDM+<libellé> <NOM> <prénom> <JJ/MM/AAAA>` subject parsed. Read
   * from the original bytes at each request (patient traits are never copied into the journal's
   * result), for admins only; the catalogue's message for the entry's error code comes along.
   */
  router.get('/messages/:id/mail', requireRole('admin'), async (ctx) => {
    const entry = await visible(ctx.params.id ?? '', ctx.state);
    const error = entry.errorCode ? { code: entry.errorCode, message: ERROR_CATALOGUE[entry.errorCode].message, releasable: RELEASABLE.has(entry.errorCode) } : null;
    const raw = entry.kind === 'message' ? await journal.raw(entry.id) : undefined;
    let root;
    try {
      root = raw && parseMessage(raw);
    } catch {
      root = undefined; // unreadable as MIME: its error code says why
    }
    if (!root) {
      ctx.body = { id: entry.id, error, header: null };
      return;
    }
    const mss = readMssHeaders(root);
    const field = (name: string): string | null => decodedHeader(root, name)?.replace(/\s+/g, ' ').trim().slice(0, 2000) ?? null;
    ctx.body = {
      id: entry.id, error,
      header: {
        from: field('From'), to: field('To'), date: field('Date'), messageId: field('Message-ID'), subject: field('Subject'),
        dispositionNotificationTo: field('Disposition-Notification-To'),
        xdm: mss.subject ? {
          version: mss.subject.version, koCode: mss.subject.koCode ?? null, labelAndName: mss.subject.labelAndName, birthDate: mss.subject.birthDate ?? null,
          guess: mss.subject.guess ?? null,
        } : null,
        mss: { codeCda: mss.codeCda, ins: mss.ins ?? null, nil: mss.nil ?? null, mes: mss.mes ?? null },
        defects: mss.defects,
      },
    };
  });

  router.get('/messages/:id/raw', requireRole('admin'), async (ctx) => {
    const entry = await visible(ctx.params.id ?? '', ctx.state);
    ctx.type = entry.contentType;
    ctx.set('Content-Disposition', `attachment; filename="${entry.id}"`);
    ctx.body = await journal.raw(entry.id);
  });

  const reason = async (ctx: RouterContext<AppState>): Promise<string | undefined> => {
    const body = await readBody(ctx.req, 64 * 1024);
    if (!body.length) return undefined;
    try {
      const parsed = JSON.parse(body.toString('utf8')) as { reason?: unknown };
      return typeof parsed.reason === 'string' ? parsed.reason.slice(0, 1000) : undefined;
    } catch {
      throw new PasserelleError('REQUEST_INVALID', 'the body must be JSON: {"reason": "…"}');
    }
  };

  router.post('/messages/:id/$replay', requireRole('admin'), async (ctx) => {
    const entry = await visible(ctx.params.id ?? '', ctx.state);
    const why = await reason(ctx);
    const reopened = await journal.reopen(entry.id, { outcome: 'replay', actor: ctx.state.client?.id ?? 'admin', ...(why ? { reason: why } : {}) });
    onAppended();
    ctx.status = 202;
    ctx.body = { id: reopened.id, state: reopened.state };
  });

  router.post('/messages/:id/$release', requireRole('admin'), async (ctx) => {
    const entry = await visible(ctx.params.id ?? '', ctx.state);
    const why = await reason(ctx);
    if (!why) throw new PasserelleError('REQUEST_INVALID', 'a release must say why: {"reason": "…"}');
    if (entry.state !== 'quarantined' || !entry.errorCode) throw new PasserelleError('STATE_CONFLICT', 'only a quarantined entry can be released');
    if (!RELEASABLE.has(entry.errorCode)) throw new PasserelleError('STATE_CONFLICT', `${entry.errorCode} cannot be overridden: fix the input and submit it again`);
    const reopened = await journal.reopen(entry.id, { outcome: 'release', actor: ctx.state.client?.id ?? 'admin', reason: why, override: entry.errorCode });
    onAppended();
    ctx.status = 202;
    ctx.body = { id: reopened.id, state: reopened.state };
  });

  return router;
}
