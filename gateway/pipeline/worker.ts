/**
 * The pipeline worker: claims journal entries and moves each through its stages, recording every
 * stage's outcome, duration and error code. Several loops run per process (`pipeline.concurrency`)
 * and several processes may share one journal: the journal's leases keep an entry in one hand.
 * Transient failures (SRIR, ROR, store, relay down) go back to the journal with a backoff and never
 * become a verdict on the document; permanent ones quarantine the entry with their catalogue code.
 * The stages depend on the entry's kind: a CDA document, a mail (unwrapped and extracted first,
 * then acknowledged by MDN or DSN), or such an acknowledgement to send.
 */
import { randomUUID } from 'node:crypto';
import type { Claim, Entry, Journal, Transition } from '../../adapters/journal/port.js';
import { LeaseLostError } from '../../adapters/journal/port.js';
import type { MailSender } from '../../adapters/smtp/port.js';
import type { Config } from '../config.js';
import { ERROR_CATALOGUE, PasserelleError } from '../errors.js';
import { errorFields, type Logger } from '../log.js';
import type { Metrics } from '../metrics.js';
import { MemoryBudget } from '../util/memory-budget.js';
import { retryDelayMs } from './backoff.js';
import { acknowledgementFor, sendStage, type AckSettings } from './acknowledge.js';
import { ConversionThread } from './conversion-thread.js';
import { crossCheckStage, extractStage, unwrapStage, type MailSecurity } from './mail-stages.js';
import { DOCUMENT_STAGES, type EntryWork, type Stage, type StageNeighbours } from './stages.js';

export interface PipelineDeps extends StageNeighbours {
  journal: Journal;
  log: Logger;
  metrics?: Metrics;
  settings: Config['pipeline'];
  workerId?: string;
  /** S/MIME identity, trust and policy for mail entries. */
  mail: MailSecurity;
  /** Where MDNs and DSNs go (smtp.relay); without it, none is sent. */
  acknowledgements?: { sender: MailSender; settings: AckSettings };
  /** The stage sequence for every entry, when a test supplies its own. */
  stages?: readonly Stage[];
}

/**
 * Memory an entry takes while processed, per byte of its raw size: each layer of a mail decodes
 * into a copy (base64 body, decrypted CMS, base64 zip, inflated entries, parsed CDA, Bundle and
 * its JSON); a 25 MB attachment was measured at ≈ 9 times its size above the idle process.
 */
const WORKING_SET_FACTOR = 10;
/**
 * Memory a CDA takes while converted, per byte of it (its text, the parsed tree, the Bundle and
 * its JSON): ≈ 27 measured on a 47 MB document. A mail's documents are known only once its zip is
 * inflated — up to 100 times smaller in the mail (XDM limits) —, so the share grows then.
 */
const CONVERSION_FACTOR = 30;

export class Pipeline {
  private readonly deps: PipelineDeps;
  /** What the entries in process take together (pipeline.maxWorkingBytes). */
  private readonly memory: MemoryBudget;
  private memoryWaiters: (() => void)[] = [];
  private readonly workerId: string;
  /** A mail is unwrapped and its documents extracted before the document stages. */
  private readonly messageStages: readonly Stage[];
  /** Large documents are converted there; its heap is the working budget (at least 256 MB). */
  private readonly conversion: ConversionThread;
  /** What the stages are given: the deps, and the conversion thread. */
  private readonly neighbours: StageNeighbours;
  private running = false;
  private loops: Promise<void>[] = [];
  private wakers = new Set<() => void>();

  constructor(deps: PipelineDeps) {
    this.deps = deps;
    this.workerId = deps.workerId ?? `${process.pid}-${randomUUID().slice(0, 8)}`;
    this.memory = new MemoryBudget(deps.settings.maxWorkingBytes);
    const [convert, ...rest] = DOCUMENT_STAGES as [Stage, ...Stage[]];
    this.messageStages = [unwrapStage(deps.mail), extractStage, convert, crossCheckStage, ...rest];
    this.conversion = new ConversionThread({ heapMb: Math.max(256, Math.floor(deps.settings.maxWorkingBytes / 2 ** 20)) });
    this.neighbours = { ...deps, convert: (bytes) => this.conversion.convert(bytes) };
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    for (let i = 0; i < this.deps.settings.concurrency; i++) this.loops.push(this.loop());
  }

  /** A door appended an entry: idle loops look at once instead of waiting for the next poll. */
  notify(): void {
    for (const wake of this.wakers) wake();
  }

  /** Stops claiming, lets in-flight entries finish their current stage sequence, then resolves. */
  async stop(): Promise<void> {
    this.running = false;
    this.notify();
    await Promise.all(this.loops);
    this.loops = [];
    await this.conversion.close();
  }

  /** Claims and processes one entry; false when none was claimable. Used by the loops and by tests. */
  async runOnce(): Promise<boolean> {
    const claim = await this.deps.journal.claim(this.workerId, this.deps.settings.leaseMs);
    if (!claim) return false;
    await this.process(claim);
    return true;
  }

  private async loop(): Promise<void> {
    while (this.running) {
      let worked = false;
      try {
        worked = await this.runOnce();
      } catch (err) {
        // The journal itself failed (database down): wait and try again, never crash the process.
        this.deps.log.error('pipeline loop error', errorFields(err));
      }
      if (!worked && this.running) await this.idle();
    }
  }

  private idle(): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.wakers.delete(done);
        resolve();
      };
      const timer = setTimeout(done, this.deps.settings.pollMs);
      this.wakers.add(done);
    });
  }

  /**
   * Waits until the entry's share of pipeline.maxWorkingBytes is free, and returns it for
   * give(). Concurrency alone would let a few large messages take gigabytes; an entry larger
   * than the whole budget waits until it is alone, then runs (held back for ever, it would never
   * be delivered). The lease runs meanwhile: the wait lasts what the entries before it take.
   */
  private async reserve(wanted: number): Promise<number> {
    const bytes = Math.min(wanted, this.memory.limit);
    while (!this.memory.take(bytes)) await new Promise<void>((resolve) => this.memoryWaiters.push(resolve));
    return bytes;
  }

  /**
   * The entry's share once its documents are known (see CONVERSION_FACTOR). A larger share is
   * waited for like a new one, after giving back what is held: two entries growing at once never
   * wait for each other.
   */
  private async grow(held: number, work: EntryWork): Promise<number> {
    const documents = work.documents.reduce((n, d) => n + d.raw.length, 0);
    const wanted = Math.min(Math.max(work.raw.length * WORKING_SET_FACTOR, documents * CONVERSION_FACTOR), this.memory.limit);
    if (wanted <= held) return held;
    this.unreserve(held);
    return this.reserve(wanted);
  }

  private unreserve(bytes: number): void {
    this.memory.give(bytes);
    for (const wake of this.memoryWaiters.splice(0)) wake();
  }

  private async process(claim: Claim): Promise<void> {
    const held = { bytes: await this.reserve(claim.entry.size * WORKING_SET_FACTOR) };
    try {
      await this.processReserved(claim, held);
    } finally {
      this.unreserve(held.bytes);
    }
  }

  private async processReserved(claim: Claim, held: { bytes: number }): Promise<void> {
    const { journal, log, metrics } = this.deps;
    const raw = await journal.raw(claim.entry.id);
    if (!raw) throw new Error(`entry ${claim.entry.id} has no raw bytes`);
    const kind = claim.entry.kind;
    const work: EntryWork = { entry: claim.entry, raw, overrides: new Set(claim.entry.overrides), documents: kind === 'document' ? [{ raw, source: 'body', info: {} }] : [] };
    const stages = this.deps.stages ?? this.stagesFor(kind);
    // Stages passed are committed with the attempt's last record (its end, a retry or a quarantine).
    const passed: Transition[] = [];
    let entry: Entry = claim.entry;
    for (const [i, stage] of stages.entries()) {
      held.bytes = await this.grow(held.bytes, work);
      const started = performance.now();
      try {
        const result = await stage.run(work, this.neighbours);
        const elapsed = performance.now() - started;
        metrics?.stageSeconds.observe({ stage: stage.name, outcome: 'ok' }, elapsed / 1000); // unrounded: sub-millisecond stages count
        const transition: Transition = { state: stage.reached, outcome: 'ok', stage: stage.name, durationMs: Math.round(elapsed * 10) / 10, result, at: new Date() };
        if (i < stages.length - 1) passed.push(transition);
        else entry = await journal.record(claim, transition, passed);
      } catch (err) {
        const durationMs = Math.round((performance.now() - started) * 10) / 10;
        if (err instanceof LeaseLostError) {
          log.warn('lease lost', { entry: entry.id, stage: stage.name });
          return;
        }
        const final = await this.fail(claim, entry, passed, stage.name, durationMs, err);
        if (final) await this.acknowledge(final, raw);
        return;
      }
    }
    log.info('entry delivered', { entry: entry.id, attempts: entry.attempts });
    await this.acknowledge(entry, raw);
  }

  private stagesFor(kind: Entry['kind']): readonly Stage[] {
    if (kind === 'message') return this.messageStages;
    if (kind === 'acknowledgement') {
      if (!this.deps.acknowledgements) throw new PasserelleError('SMTP_RELAY_UNAVAILABLE', 'no SMTP relay is configured for acknowledgements');
      return [sendStage(this.deps.acknowledgements.sender)];
    }
    return DOCUMENT_STAGES;
  }

  /**
   * A final mail entry gets its MDN or DSN, journaled as an entry of its own so that sending is
   * retried until the relay takes it. (A crash between the final record and this append loses the
   * acknowledgement, not the document: the window is one local commit.)
   */
  private async acknowledge(entry: Entry, raw: Buffer): Promise<void> {
    const ack = this.deps.acknowledgements;
    if (entry.kind !== 'message' || !ack) return;
    const mail = acknowledgementFor(entry, raw, ack.settings);
    if (!mail) return;
    const created = await this.deps.journal.append({
      kind: 'acknowledgement', door: entry.door, submitter: 'passerelle', contentType: 'message/rfc822', raw: mail.raw,
      meta: { for: entry.id, envelope: mail.envelope },
    });
    this.deps.log.info('acknowledgement queued', { entry: entry.id, acknowledgement: created.id });
    this.notify();
  }

  /** Records the failure; returns the entry when it is now final (quarantined or failed). */
  private async fail(claim: Claim, entry: Entry, passed: readonly Transition[], stage: string, durationMs: number, err: unknown): Promise<Entry | undefined> {
    const { journal, log, metrics, settings } = this.deps;
    const e = err instanceof PasserelleError ? err : new PasserelleError('INTERNAL_ERROR');
    if (!(err instanceof PasserelleError)) log.error('stage crashed', { entry: entry.id, stage, ...errorFields(err) });
    const detail = e.location ? `${e.message} (at ${e.location})` : e.message;
    metrics?.stageSeconds.observe({ stage, outcome: e.code }, durationMs / 1000);
    try {
      if (!ERROR_CATALOGUE[e.code].transient) {
        const final = await journal.record(claim, { state: 'quarantined', outcome: 'quarantine', stage, durationMs, errorCode: e.code, detail }, passed);
        log.warn('entry quarantined', { entry: entry.id, stage, code: e.code });
        return final;
      } else if (entry.attempts >= settings.maxAttempts) {
        const final = await journal.record(claim, { state: 'failed', outcome: 'fail', stage, durationMs, errorCode: e.code, detail: `${detail} (gave up after ${entry.attempts} attempts)` }, passed);
        log.error('entry failed', { entry: entry.id, stage, code: e.code, attempts: entry.attempts });
        return final;
      } else {
        const delay = retryDelayMs(entry.attempts, settings.retryBaseMs, settings.retryMaxMs);
        // The entry waits in the last state it reached (this attempt's, or the one it was claimed in).
        const state = passed.at(-1)?.state ?? entry.state;
        await journal.record(claim, { state, outcome: 'retry', stage, durationMs, errorCode: e.code, detail, notBefore: new Date(Date.now() + delay) }, passed);
        log.info('entry retry scheduled', { entry: entry.id, stage, code: e.code, attempts: entry.attempts, delayMs: delay });
      }
    } catch (recordErr) {
      if (recordErr instanceof LeaseLostError) log.warn('lease lost', { entry: entry.id, stage });
      else throw recordErr;
    }
    return undefined;
  }
}
