/**
 * `passerelle start` as an operator runs it: a bad configuration is refused with every problem
 * listed; SIGTERM stops the gateway gracefully (exit 0, "stopped" logged); a restart
 * finds the sample clients it printed once, without printing the tokens again.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../support/corpus.js';
import { spawnGateway } from '../support/gateway-process.js';

const run = promisify(execFile);
const BIN = join(REPO_ROOT, 'bin', 'passerelle.js');

describe('passerelle start', () => {
  it('refuses an invalid configuration, listing every problem, exit 1', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'passerelle-start-'));
    const file = join(dir, 'bad.json');
    writeFileSync(file, JSON.stringify({ http: { port: -1 }, ror: { baseUrl: 'not a url' }, clients: [{ id: 'x', token: 'short', role: 'pta' }] }));
    const err = (await run(process.execPath, [BIN, 'start', '--config', file]).then(() => undefined, (e: unknown) => e)) as { code: number; stderr: string } | undefined;
    expect(err?.code).toBe(1);
    expect(err?.stderr).toContain('CONFIG_INVALID');
    for (const problem of ['http.port', 'ror.baseUrl', 'clients.0.token', "must have required property 'organization'"]) expect(err?.stderr).toContain(problem);
  });

  it('prints sample tokens once, stops gracefully on SIGTERM and keeps its clients across restarts', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'passerelle-start-'));
    const file = join(dir, 'config.json');
    writeFileSync(file, JSON.stringify({ http: { port: 0, host: '127.0.0.1' }, smtp: { port: 0 }, dataDir: 'data' }));
    const first = await spawnGateway(file);
    const printed = first.logs.filter((l) => l.msg === 'sample client');
    expect(printed.map((l) => l.role).sort()).toEqual(expect.arrayContaining(['admin', 'pta', 'sender']));
    const admin = printed.find((l) => l.role === 'admin')?.token as string;
    expect((await fetch(`${first.url}/messages?limit=1`, { headers: { authorization: `Bearer ${admin}` } })).status).toBe(200);
    expect(await first.kill('SIGTERM')).toBe(0);
    expect(first.logs.map((l) => l.msg)).toContain('stopped');

    const second = await spawnGateway(file);
    expect(second.logs.some((l) => l.msg === 'sample client')).toBe(false);
    expect((await fetch(`${second.url}/messages?limit=1`, { headers: { authorization: `Bearer ${admin}` } })).status).toBe(200);
    expect(await second.kill('SIGTERM')).toBe(0);
  });
});
