/**
 * A gateway as users run it: `node bin/passerelle.js start --config FILE` (the build made by
 * `npm test`), in its own process, so tests can SIGKILL it and start it again on the same data.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT } from './corpus.js';

export interface GatewayProcess {
  url: string;
  child: ChildProcess;
  /** Every JSON log line so far. */
  logs: Record<string, unknown>[];
  exited: Promise<number | null>;
  kill(signal: NodeJS.Signals): Promise<number | null>;
}

export async function spawnGateway(configFile: string, env: NodeJS.ProcessEnv = {}): Promise<GatewayProcess> {
  const bin = join(REPO_ROOT, 'bin', 'passerelle.js');
  if (!existsSync(join(REPO_ROOT, 'dist', 'gateway', 'cli', 'main.js'))) throw new Error('dist/ is missing: run `npm run build` (npm test does)');
  const child = spawn(process.execPath, [bin, 'start', '--config', configFile], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  const logs: Record<string, unknown>[] = [];
  let stderr = '';
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const url = await new Promise<string>((resolve, reject) => {
    let buffer = '';
    child.stdout?.on('data', (chunk: Buffer) => {
      buffer += chunk.toString('utf8');
      let nl;
      while ((nl = buffer.indexOf('\n')) >= 0) {
        const line = buffer.slice(0, nl);
        buffer = buffer.slice(nl + 1);
        try {
          const parsed = JSON.parse(line) as Record<string, unknown>;
          logs.push(parsed);
          if (parsed.msg === 'listening') resolve(`http://127.0.0.1:${String(parsed.port)}`);
        } catch { /* not a log line */ }
      }
    });
    child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
    void exited.then((code) => reject(new Error(`gateway exited (${String(code)}) before listening: ${stderr}`)));
  });
  return {
    url, child, logs, exited,
    kill: (signal) => {
      child.kill(signal);
      return exited;
    },
  };
}
