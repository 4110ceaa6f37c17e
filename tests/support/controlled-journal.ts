/**
 * A fake of our own Journal port around a real one, for the doors' tests: its append can be held
 * back, made to fail, and tells which entries it committed.
 */
import type { Entry, Journal, NewEntry } from '../../adapters/journal/port.js';

export class ControlledJournal {
  /** append rejects while true (a full disk, a lost database). */
  failing = false;
  appendCalls = 0;
  readonly committed = new Set<string>();
  private gate: Promise<void> = Promise.resolve();
  private open: () => void = () => undefined;

  constructor(readonly inner: Journal) {}

  hold(): void {
    this.gate = new Promise((resolve) => (this.open = resolve));
  }

  release(): void {
    this.open();
  }

  readonly journal: Journal = new Proxy({} as Journal, {
    get: (_t, prop: keyof Journal) => {
      if (prop === 'append') {
        return async (e: NewEntry): Promise<Entry> => {
          this.appendCalls++;
          await this.gate;
          if (this.failing) throw new Error('disk full');
          const entry = await this.inner.append(e);
          this.committed.add(entry.id);
          return entry;
        };
      }
      const v = this.inner[prop];
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(this.inner) : v;
    },
  });
}
