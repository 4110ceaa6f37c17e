/**
 * What the SQLite and PostgreSQL journals share: the column list, the row ↔ Entry mapping, and the
 * journal's rules (what a transition or an operator's reopen writes). Each implementation only
 * says how to read and write those values in its own SQL, so the two cannot drift apart.
 */
import { createHash, randomUUID } from 'node:crypto';
import { ERROR_CATALOGUE, PasserelleError, type ErrorCode } from '../../gateway/errors.js';
import {
  ENTRY_STATES,
  FINAL_STATES,
  LeaseLostError,
  type Door,
  type Entry,
  type EntryKind,
  type EntryState,
  type EventOutcome,
  type HistoryEvent,
  type Reopen,
  type Transition,
} from './port.js';

/** Every entry column but the raw bytes (read on their own by raw()) and the lease (internal). */
export const ENTRY_COLUMNS =
  'id, kind, door, submitter, content_type, sha256, size, state, attempts, error_code, error, not_before, created_at, updated_at, meta, result, overrides';

export const EVENT_COLUMNS = 'seq, state, at, outcome, stage, duration_ms, error_code, detail, actor';

/** `'delivered', 'quarantined', 'failed'` for SQL `state NOT IN (…)`: built from the port's constant, never from input. */
export const FINAL_STATES_SQL = [...FINAL_STATES].map((s) => `'${s}'`).join(', ');

/** An instant as the driver returns it: ISO text from SQLite, a Date from PostgreSQL timestamptz. */
type Instant = string | Date;
/** JSON as the driver returns it: text from SQLite, already parsed from PostgreSQL jsonb. */
type Json = string | object;

export interface EntryRow {
  id: string;
  kind: string;
  door: string;
  submitter: string;
  content_type: string;
  sha256: string;
  size: number;
  state: string;
  attempts: number;
  error_code: string | null;
  error: string | null;
  not_before: Instant;
  created_at: Instant;
  updated_at: Instant;
  meta: Json;
  result: Json;
  overrides: Json;
}

export interface EventRow {
  seq: number;
  state: string;
  at: Instant;
  outcome: string;
  stage: string | null;
  duration_ms: number | null;
  error_code: string | null;
  detail: string | null;
  actor: string | null;
}

/** A history event ready to bind: null, not undefined, for what is absent (drivers refuse undefined). */
export interface EventValues {
  state: EntryState;
  outcome: EventOutcome;
  stage: string | null;
  durationMs: number | null;
  errorCode: ErrorCode | null;
  detail: string | null;
  actor: string | null;
  /** ISO instant; absent or null: the commit's. */
  at?: string | null;
}

export function newEntryId(): string {
  return randomUUID();
}

/** A fresh lease token per claim: a worker whose lease was taken over holds a token nobody matches. */
export function newLeaseToken(): string {
  return randomUUID();
}

export function sha256Hex(bytes: Buffer): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/**
 * PostgreSQL text and jsonb cannot hold U+0000, so a NUL in a hostile sender address, file name
 * or parser message would make the journal refuse the input again and again (a sender retrying a
 * 451 forever). NUL never carries meaning in these fields: both journals store U+FFFD instead, so
 * they behave alike.
 */
export function cleanText(text: string): string {
  return text.replaceAll('\u0000', '\uFFFD');
}

export function cleanNullable(text: string | undefined): string | null {
  return text === undefined ? null : cleanText(text);
}

/** JSON text for a meta/result/overrides column, NUL cleaned from every string value. */
export function jsonText(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) => (typeof v === 'string' ? cleanText(v) : v));
}

function parsed<T>(value: Json): T {
  return (typeof value === 'string' ? JSON.parse(value) : value) as T;
}

function iso(value: Instant): string {
  return (typeof value === 'string' ? new Date(value) : value).toISOString();
}

export function toEntry(row: EntryRow): Entry {
  return {
    id: row.id,
    kind: row.kind as EntryKind,
    door: row.door as Door,
    submitter: row.submitter,
    contentType: row.content_type,
    sha256: row.sha256,
    size: row.size,
    state: row.state as EntryState,
    attempts: row.attempts,
    errorCode: row.error_code as ErrorCode | null,
    error: row.error,
    notBefore: iso(row.not_before),
    createdAt: iso(row.created_at),
    updatedAt: iso(row.updated_at),
    meta: parsed<Record<string, unknown>>(row.meta),
    result: parsed<Record<string, unknown>>(row.result),
    overrides: parsed<ErrorCode[]>(row.overrides),
  };
}

export function toEvent(row: EventRow): HistoryEvent {
  const event: HistoryEvent = { seq: row.seq, state: row.state as EntryState, at: iso(row.at), outcome: row.outcome as EventOutcome };
  if (row.stage !== null) event.stage = row.stage;
  if (row.duration_ms !== null) event.durationMs = row.duration_ms;
  if (row.error_code !== null) event.errorCode = row.error_code as ErrorCode;
  if (row.detail !== null) event.detail = row.detail;
  if (row.actor !== null) event.actor = row.actor;
  return event;
}

export const RECEIVE_EVENT: EventValues = {
  state: 'received', outcome: 'receive', stage: null, durationMs: null, errorCode: null, detail: null, actor: null,
};

export interface TransitionPlan {
  state: EntryState;
  errorCode: ErrorCode | null;
  error: string | null;
  /** JSON text of the merged result. */
  result: string;
  /** null: leave not_before as it is. */
  notBefore: Date | null;
  releaseLease: boolean;
  /** The history events, in order: those of the stages passed, then the transition's. */
  events: EventValues[];
}

/** What record() writes, given the entry's current result: the last transition sets the row, every one adds its event and result. */
export function planTransition(current: Record<string, unknown>, t: Transition, passed: readonly Transition[] = []): TransitionPlan {
  // Every transition sets the error columns: an 'ok' after a retry clears the transient error.
  const errorCode = t.errorCode ?? null;
  const all = [...passed, t];
  return {
    state: t.state,
    errorCode,
    error: errorCode === null ? null : cleanText(t.detail ?? ERROR_CATALOGUE[errorCode].message),
    result: jsonText(Object.assign({}, current, ...all.map((x) => x.result))),
    // A retry without notBefore keeps the old one, already past since the entry was claimable.
    notBefore: t.notBefore ?? null,
    releaseLease: FINAL_STATES.has(t.state) || t.outcome === 'retry',
    events: all.map((x) => ({
      state: x.state,
      outcome: x.outcome,
      stage: cleanText(x.stage),
      durationMs: x.durationMs ?? null,
      errorCode: x.errorCode ?? null,
      detail: cleanNullable(x.detail),
      actor: null,
      at: x.at?.toISOString() ?? null,
    })),
  };
}

export interface ReopenPlan {
  /** JSON text of the overrides after the operator's action. */
  overrides: string;
  event: EventValues;
}

/** What reopen() writes; throws NOT_FOUND or STATE_CONFLICT as the port says. */
export function planReopen(id: string, current: { state: EntryState; overrides: ErrorCode[] } | undefined, r: Reopen): ReopenPlan {
  if (current === undefined) throw new PasserelleError('NOT_FOUND', `no journal entry ${id}`);
  // Reopening an entry a worker may still hold would race with it: only final entries reopen.
  if (!FINAL_STATES.has(current.state)) {
    throw new PasserelleError('STATE_CONFLICT', `entry ${id} is ${current.state}, not delivered, quarantined or failed`);
  }
  const overrides = r.override === undefined || current.overrides.includes(r.override) ? current.overrides : [...current.overrides, r.override];
  return {
    overrides: jsonText(overrides),
    event: {
      state: 'received',
      outcome: r.outcome,
      stage: null,
      durationMs: null,
      errorCode: r.override ?? null,
      detail: cleanNullable(r.reason),
      actor: cleanText(r.actor),
    },
  };
}

export function emptyCounts(): Record<EntryState, number> {
  return Object.fromEntries(ENTRY_STATES.map((s) => [s, 0])) as Record<EntryState, number>;
}

/**
 * Turns a driver failure (database gone, disk full, locked too long) into JOURNAL_UNAVAILABLE, so
 * that doors answer 503 / SMTP 451 and nothing is accepted. The port's own errors pass untouched.
 */
export function journalError(err: unknown): Error {
  if (err instanceof PasserelleError || err instanceof LeaseLostError) return err;
  const error = new PasserelleError('JOURNAL_UNAVAILABLE', `journal: ${err instanceof Error ? err.message : String(err)}`);
  error.cause = err;
  return error;
}

/** Runs a journal operation, reporting failures through journalError. */
export async function guarded<T>(operation: () => T | Promise<T>): Promise<T> {
  try {
    return await operation();
  } catch (err) {
    throw journalError(err);
  }
}
