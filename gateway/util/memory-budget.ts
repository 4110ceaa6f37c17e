/**
 * Bytes of incoming messages a door holds in memory at once, over all its connections. Each door
 * must read a message whole before its journal commit (better-sqlite3 and pg take a buffer), so a
 * per-message limit alone would let many connections multiply it; this bounds their sum. A door
 * that cannot take more defers the message with a transient refusal (SMTP 452, HTTP 503).
 */
export class MemoryBudget {
  private held = 0;

  constructor(readonly limit: number) {}

  /** Takes `bytes` if they fit, and says whether they did. */
  take(bytes: number): boolean {
    if (this.held + bytes > this.limit) return false;
    this.held += bytes;
    return true;
  }

  give(bytes: number): void {
    this.held = Math.max(0, this.held - bytes);
  }

  /** Whether `bytes` more would fit now (a declared size, before anything is read). */
  fits(bytes: number): boolean {
    return this.held + bytes <= this.limit;
  }

  get used(): number {
    return this.held;
  }
}
