/**
 * Follows an entry through `GET /messages/{id}` until it is final (delivered, quarantined or
 * failed), as a client would; throws once `timeoutMs` has passed.
 */
import type { EntryState } from '../../adapters/journal/port.js';
import { FINAL_STATES } from '../../adapters/journal/port.js';

export async function settledEntry<T extends { state: string }>(baseUrl: string, id: string, token: string, timeoutMs: number): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const entry = (await (await fetch(`${baseUrl}/messages/${id}`, { headers: { authorization: `Bearer ${token}` } })).json()) as T;
    if (FINAL_STATES.has(entry.state as EntryState)) return entry;
    if (Date.now() > deadline) throw new Error(`entry ${id} did not settle within ${timeoutMs} ms (last state ${entry.state})`);
    await new Promise((r) => setTimeout(r, 25));
  }
}
