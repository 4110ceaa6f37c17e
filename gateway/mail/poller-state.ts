/**
 * Where the IMAP poller remembers, per configured mailbox, how far it got: the UIDVALIDITY of the
 * folder and the highest UID it has journaled. RFC 9051 §2.3.1.1: UIDs are strictly ascending
 * within one UIDVALIDITY, so "UID > lastUid" is exactly "not journaled yet" as long as the
 * UIDVALIDITY is unchanged; a new UIDVALIDITY invalidates every remembered UID.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, open, readFile, rename, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';

export interface MailboxState {
  /** RFC 9051 §9: uniqueid is a non-zero unsigned 32-bit number, exact in a JS number. */
  uidValidity: number;
  /** Highest UID journaled under that UIDVALIDITY (0: none yet). */
  lastUid: number;
}

/** The port: one record per configured mailbox id. */
export interface PollerState {
  get(mailboxId: string): Promise<MailboxState | undefined>;
  /** Resolves once the state is durable. */
  set(mailboxId: string, state: MailboxState): Promise<void>;
}

/** File name under `dataDir`. */
export const POLLER_STATE_FILE = 'imap-poller-state.json';

interface FileShape {
  version: 1;
  mailboxes: Record<string, MailboxState>;
}

function isUint32(value: unknown): value is number {
  return typeof value === 'number' && Number.isInteger(value) && value >= 0 && value <= 0xffffffff;
}

/**
 * A JSON file, replaced atomically (write a temporary file, fsync it, rename it over the old one,
 * fsync the directory: a crash leaves either the old or the new file, never half of one).
 * One process owns the file; writes are serialised.
 */
export class FilePollerState implements PollerState {
  private cache: Map<string, MailboxState> | undefined;
  private writing: Promise<void> = Promise.resolve();

  constructor(readonly path: string) {}

  /** The state file of a gateway data directory. */
  static inDataDir(dataDir: string): FilePollerState {
    return new FilePollerState(join(dataDir, POLLER_STATE_FILE));
  }

  async get(mailboxId: string): Promise<MailboxState | undefined> {
    const state = (await this.load()).get(mailboxId);
    return state ? { ...state } : undefined;
  }

  async set(mailboxId: string, state: MailboxState): Promise<void> {
    if (!isUint32(state.uidValidity) || !isUint32(state.lastUid)) throw new TypeError('poller state: uidValidity and lastUid must be 32-bit unsigned integers');
    const next = this.writing.then(async () => {
      // The cache changes only once the file did: get() never reports what a crash would lose.
      const all = new Map(await this.load());
      all.set(mailboxId, { uidValidity: state.uidValidity, lastUid: state.lastUid });
      await this.write(all);
      this.cache = all;
    });
    // A failed write must not poison the writes after it; the caller still sees this one fail.
    this.writing = next.catch(() => undefined);
    await next;
  }

  private async load(): Promise<Map<string, MailboxState>> {
    if (this.cache) return this.cache;
    let text: string;
    try {
      text = await readFile(this.path, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return (this.cache = new Map());
      throw err;
    }
    // A file we cannot read is not silently reset: starting again from UID 0 would journal a
    // second time whatever the folder still holds (move mode leaves nothing, flag mode relies on
    // the keyword). The operator decides; the message names the file, not its content.
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      throw new Error(`IMAP poller state file ${this.path} is not valid JSON`);
    }
    const shape = parsed as Partial<FileShape> | null;
    if (!shape || shape.version !== 1 || typeof shape.mailboxes !== 'object' || shape.mailboxes === null) {
      throw new Error(`IMAP poller state file ${this.path} has an unknown format`);
    }
    const map = new Map<string, MailboxState>();
    for (const [id, s] of Object.entries(shape.mailboxes)) {
      if (!isUint32(s.uidValidity) || !isUint32(s.lastUid)) throw new Error(`IMAP poller state file ${this.path}: invalid entry for mailbox ${id}`);
      map.set(id, { uidValidity: s.uidValidity, lastUid: s.lastUid });
    }
    return (this.cache = map);
  }

  private async write(all: Map<string, MailboxState>): Promise<void> {
    const dir = dirname(this.path);
    await mkdir(dir, { recursive: true });
    const body: FileShape = { version: 1, mailboxes: Object.fromEntries([...all].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) };
    const tmp = `${this.path}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
    try {
      const file = await open(tmp, 'w', 0o600);
      try {
        await file.writeFile(`${JSON.stringify(body, null, 2)}\n`);
        await file.sync();
      } finally {
        await file.close();
      }
      await rename(tmp, this.path);
    } catch (err) {
      await rm(tmp, { force: true });
      throw err;
    }
    // The rename is durable once the directory entry is (POSIX leaves it to the directory fsync).
    const d = await open(dir, 'r');
    try {
      await d.sync();
    } finally {
      await d.close();
    }
  }
}
