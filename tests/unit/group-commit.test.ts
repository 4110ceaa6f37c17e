/**
 * GroupCommit (adapters/database.ts): the writes of one event-loop turn share a transaction, each
 * in a savepoint of its own, and are settled only after the commit.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { GroupCommit, openSqlite } from '../../adapters/database.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function database() {
  const dir = mkdtempSync(join(tmpdir(), 'passerelle-group-commit-'));
  dirs.push(dir);
  const db = openSqlite(join(dir, 'db.sqlite'));
  db.exec('CREATE TABLE t (v TEXT NOT NULL UNIQUE)');
  const rows = (): string[] => (db.prepare('SELECT v FROM t ORDER BY rowid').all() as { v: string }[]).map((r) => r.v);
  const insert = (v: string) => () => db.prepare('INSERT INTO t (v) VALUES (?)').run(v).lastInsertRowid;
  return { db, rows, insert, commits: new GroupCommit(db) };
}

describe('GroupCommit', () => {
  it('runs the writes of one turn in order, in one transaction, and settles them after its commit', async () => {
    const { db, rows, insert, commits } = database();
    const inTransaction: boolean[] = [];
    const first = commits.write(() => {
      inTransaction.push(db.inTransaction);
      return insert('a')();
    });
    const second = commits.write(insert('b'));
    // Nothing runs before the turn ends: the caller's code after write() comes first.
    expect(rows()).toEqual([]);
    const third = commits.write(() => {
      inTransaction.push(db.inTransaction);
      return rows();
    });
    await expect(Promise.all([first, second, third])).resolves.toEqual([1, 2, ['a', 'b']]);
    expect(inTransaction).toEqual([true, true]);
    expect(rows()).toEqual(['a', 'b']);
    // A write asked for in a later turn gets a transaction of its own.
    await commits.write(insert('c'));
    expect(rows()).toEqual(['a', 'b', 'c']);
  });

  it('rolls back only the unit that throws', async () => {
    const { rows, insert, commits } = database();
    const results = await Promise.allSettled([
      commits.write(insert('a')),
      commits.write(() => {
        insert('half')();
        insert('a')(); // UNIQUE: fails after a first insert, which must not survive
      }),
      commits.write(insert('b')),
    ]);
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
    expect(String((results[1] as PromiseRejectedResult).reason)).toMatch(/UNIQUE/);
    expect(rows()).toEqual(['a', 'b']);
  });

  it('rejects a lone unit that throws, leaving nothing behind', async () => {
    const { rows, insert, commits } = database();
    await expect(
      commits.write(() => {
        insert('x')();
        throw new Error('refused');
      }),
    ).rejects.toThrow('refused');
    expect(rows()).toEqual([]);
  });

  it('commits what is queued when flushed before the turn ends (as closing does)', async () => {
    const { rows, insert, commits } = database();
    const pending = commits.write(insert('a'));
    commits.flush();
    expect(rows()).toEqual(['a']);
    await expect(pending).resolves.toBe(1);
  });

  it('rejects every unit when the transaction cannot be committed', async () => {
    const { db, insert, commits } = database();
    const pending = [commits.write(insert('a')), commits.write(insert('b'))];
    db.close(); // before the turn ends: BEGIN fails
    const results = await Promise.allSettled(pending);
    expect(results.map((r) => r.status)).toEqual(['rejected', 'rejected']);
  });
});
