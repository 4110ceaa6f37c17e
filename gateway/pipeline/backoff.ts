/**
 * Retry delay for transient failures: exponential, capped, with "equal jitter" (half the bound
 * fixed, half random): entries that failed together on an outage do not all come back at the same
 * instant when the neighbour recovers, and no retry comes back immediately.
 */
export function retryDelayMs(attempt: number, baseMs: number, maxMs: number, random: () => number = Math.random): number {
  const bound = Math.min(maxMs, baseMs * 2 ** Math.min(30, Math.max(0, attempt - 1)));
  return Math.round(bound / 2 + (random() * bound) / 2);
}
