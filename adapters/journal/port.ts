/**
 * The journal port: every input, whatever door it came through, is an entry here before the
 * gateway answers "accepted" (ARCHITECTURE.md, "The one idea"). Workers claim entries with a lease
 * so that several gateway processes sharing one database never work on the same entry at once,
 * and a crashed worker's lease simply expires and is taken over.
 */
import type { ErrorCode } from '../../gateway/errors.js';

/** Pipeline states, in order (mail entries pass unwrapped and extracted; documents posted over HTTP do not); the last three are final. */
export const ENTRY_STATES = ['received', 'unwrapped', 'extracted', 'converted', 'identified', 'resolved', 'delivered', 'quarantined', 'failed'] as const;
export type EntryState = (typeof ENTRY_STATES)[number];
export const FINAL_STATES: ReadonlySet<EntryState> = new Set<EntryState>(['delivered', 'quarantined', 'failed']);

export type Door = 'http' | 'smtp' | 'imap';
/** A CDA posted over HTTP, a mail (any door), or an MDN/DSN the gateway sends. */
export type EntryKind = 'document' | 'message' | 'acknowledgement';

export interface NewEntry {
  kind: EntryKind;
  door: Door;
  /** Client id (HTTP) or envelope sender (mail). */
  submitter: string;
  contentType: string;
  raw: Buffer;
  /** Metadata without patient data (remote address, Message-ID, file name…). */
  meta?: Record<string, unknown>;
}

export interface Entry {
  id: string;
  kind: EntryKind;
  door: Door;
  submitter: string;
  contentType: string;
  /** Hex SHA-256 of the raw bytes. */
  sha256: string;
  size: number;
  state: EntryState;
  /** Number of claims so far (1 after the first claim). */
  attempts: number;
  errorCode: ErrorCode | null;
  error: string | null;
  /** ISO instant before which no worker may claim the entry (retry backoff). */
  notBefore: string;
  createdAt: string;
  updatedAt: string;
  meta: Record<string, unknown>;
  /** What the stages recorded for the API and operators (bundle ids, routing, identity verdict…), merged stage after stage. */
  result: Record<string, unknown>;
  /** Catalogue codes an operator overrode with $release: the pipeline lets these through. */
  overrides: ErrorCode[];
}

export type EventOutcome = 'receive' | 'ok' | 'retry' | 'quarantine' | 'fail' | 'replay' | 'release';

export interface HistoryEvent {
  seq: number;
  state: EntryState;
  at: string;
  outcome: EventOutcome;
  stage?: string;
  durationMs?: number;
  errorCode?: ErrorCode;
  detail?: string;
  /** Who did it, for operator actions ($replay, $release). */
  actor?: string;
}

export interface Claim {
  entry: Entry;
  /** Opaque lease token: a transition is refused once another worker has taken the entry over. */
  token: string;
}

export interface Transition {
  state: EntryState;
  outcome: Exclude<EventOutcome, 'receive' | 'replay' | 'release'>;
  stage: string;
  durationMs?: number;
  errorCode?: ErrorCode;
  detail?: string;
  /** Merged (shallow) into entry.result. */
  result?: Record<string, unknown>;
  /** For outcome 'retry': when the entry may be claimed again. The lease is released. */
  notBefore?: Date;
  /** When it happened (the history's `at`), when not at the commit: a stage passed earlier in the attempt. */
  at?: Date;
}

export interface Reopen {
  outcome: 'replay' | 'release';
  actor: string;
  reason?: string;
  /** For 'release': the code the operator overrides (added to entry.overrides). */
  override?: ErrorCode;
}

export class LeaseLostError extends Error {
  constructor(id: string) {
    super(`lease on entry ${id} lost`);
    this.name = 'LeaseLostError';
  }
}

export interface Journal {
  /** Creates the schema if needed. Idempotent. */
  init(): Promise<void>;
  /** Writes the entry (state 'received') and its first history event; resolves only once committed durably. */
  append(entry: NewEntry): Promise<Entry>;
  get(id: string): Promise<Entry | undefined>;
  raw(id: string): Promise<Buffer | undefined>;
  history(id: string): Promise<HistoryEvent[]>;
  /**
   * Takes the oldest claimable entry — not final, notBefore ≤ now, no live lease — and leases it to
   * `worker` for `leaseMs`, incrementing attempts. Never hands the same entry to two live leases.
   */
  claim(worker: string, leaseMs: number): Promise<Claim | undefined>;
  /** Extends a lease; throws LeaseLostError if it is no longer ours. */
  renew(claim: Claim, leaseMs: number): Promise<void>;
  /**
   * One transaction: state, error, result merge, history event. Throws LeaseLostError if the lease
   * is no longer ours. A final state, or a retry, releases the lease; otherwise the lease is kept.
   * `passed` are stages the attempt went through before `transition`, applied first in the same
   * transaction (their results merged, their events in order): one commit per attempt rather than
   * one per stage, since a resumed entry starts again from its raw bytes anyway.
   */
  record(claim: Claim, transition: Transition, passed?: readonly Transition[]): Promise<Entry>;
  /** Gives the lease up without changing anything (graceful shutdown). */
  release(claim: Claim): Promise<void>;
  /** Operator action: back to 'received', attempts 0, error cleared, lease dropped; history records who and why. Throws PasserelleError STATE_CONFLICT for a non-final entry, NOT_FOUND for an unknown one. */
  reopen(id: string, reopen: Reopen): Promise<Entry>;
  /** Entries per state, for /metrics and the console. */
  counts(): Promise<Record<EntryState, number>>;
  /**
   * Most recent first, for the admin API. `before` is an entry id (a keyset cursor: pass the last id
   * of the previous page); only entries that arrived before it are listed, none if it is unknown.
   */
  list(filter: { state?: EntryState; limit: number; before?: string }): Promise<Entry[]>;
  /** Cheap round trip for /ready. */
  ping(): Promise<void>;
  close(): Promise<void>;
}
