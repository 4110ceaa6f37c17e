/**
 * The gateway end to end, as a separate process on loopback (so the load generator does not share
 * its event loop): documents/s from `POST /documents` to stored (delivered), with the built-in mock
 * SRIR and ROR answering over HTTP from the same process; then Bundle reads/s and latency
 * percentiles for 100 concurrent PTA clients reading what was routed to them. The first read of
 * each client, on a connection opened while the other clients already load the gateway, is
 * reported apart: libuv accepts one connection per event-loop turn (libuv PR #3696, in Node 20),
 * so at saturation the 100th connection waits about 100 turns; every later read reuses its
 * connection.
 */
import { spawn } from 'node:child_process';
import { Agent, get } from 'node:http';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadRorFixture } from '../adapters/ror/mock.js';
import { sampleClients } from '../gateway/sample-clients.js';
import { BenchSetupError, benchSeconds, loadCorpus, packageRoot, round, type BenchResult } from './lib.js';
import { REFERENCE_DOCUMENT } from './converter.js';

const DOCUMENTS = Number(process.env.PASSERELLE_BENCH_DOCUMENTS ?? 300);
const POSTERS = 8;
const READERS = 100;

interface Gateway { url: string; pid: number; stop(): Promise<void> }

async function startGateway(configFile: string): Promise<Gateway> {
  const child = spawn(process.execPath, [join(packageRoot(), 'bin', 'passerelle.js'), 'start', '--config', configFile], { stdio: ['ignore', 'pipe', 'inherit'] });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const url = await new Promise<string>((resolve, reject) => {
    let buffer = '';
    child.stdout.on('data', (chunk: Buffer) => {
      buffer += chunk.toString('utf8');
      const m = /"msg":"listening","port":(\d+)/.exec(buffer);
      if (m) resolve(`http://127.0.0.1:${m[1]}`);
    });
    void exited.then(() => reject(new BenchSetupError('the gateway exited before listening')));
  });
  return { url, pid: child.pid ?? 0, stop: async () => { child.kill('SIGTERM'); await exited; } };
}

/** Peak resident memory of a process (Linux VmHWM), in MB. */
function peakRssMB(pid: number): number {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? round(Number(m[1]) / 1024, 1) : 0;
  } catch {
    return 0;
  }
}

function percentiles(samples: number[]): { meanMs: number; p50Ms: number; p99Ms: number; maxMs: number } {
  samples.sort((a, b) => a - b);
  const pick = (q: number): number => round(samples[Math.min(samples.length - 1, Math.floor(q * samples.length))] ?? 0, 3);
  return { meanMs: round(samples.reduce((a, b) => a + b, 0) / (samples.length || 1), 3), p50Ms: pick(0.5), p99Ms: pick(0.99), maxMs: pick(1) };
}

/** One GET on the client's own connection; resolves with the status once the body is read. */
function read(agent: Agent, url: string, token: string): Promise<number> {
  return new Promise((resolve, reject) => {
    get(url, { agent, headers: { authorization: `Bearer ${token}` } }, (res) => {
      res.resume();
      res.once('end', () => resolve(res.statusCode ?? 0));
      res.once('error', reject);
    }).once('error', reject);
  });
}

async function deliveredCount(url: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const final = [...text.matchAll(/^passerelle_entries\{state="(delivered|quarantined|failed)"\} (\d+)/gm)];
  return final.reduce((sum, m) => sum + Number(m[2]), 0);
}

export async function run(): Promise<BenchResult[]> {
  const template = loadCorpus().find((d) => d.name === REFERENCE_DOCUMENT)?.bytes.toString('utf8');
  if (!template) throw new BenchSetupError(`${REFERENCE_DOCUMENT} is not in the corpus`);
  const dir = mkdtempSync(join(tmpdir(), 'passerelle-bench-'));
  const { clients } = sampleClients(dir, loadRorFixture());
  const sender = clients.find((c) => c.role === 'sender');
  if (!sender) throw new BenchSetupError('sample clients incomplete');
  const configFile = join(dir, 'config.json');
  writeFileSync(configFile, JSON.stringify({ http: { port: 0, host: '127.0.0.1' }, smtp: { port: 0 }, dataDir: dir, clients, log: { level: 'info' }, pipeline: { concurrency: 4, pollMs: 20 } }));
  const gateway = await startGateway(configFile);
  try {
    // 1. Intake: POST → delivered.
    const postLatencies: number[] = [];
    const documentId = (n: number): string => `bench-${n}`;
    const started = performance.now();
    let next = 0;
    await Promise.all(Array.from({ length: POSTERS }, async () => {
      while (next < DOCUMENTS) {
        const n = next++;
        const body = template.replace(/<id root="([^"]+)"\s*\/>/, (_m, root: string) => `<id root="${root}" extension="${documentId(n)}"/>`);
        const t0 = performance.now();
        const res = await fetch(`${gateway.url}/documents`, { method: 'POST', headers: { authorization: `Bearer ${sender.token}`, 'content-type': 'application/hl7-cda+xml' }, body });
        postLatencies.push(performance.now() - t0);
        if (res.status !== 202) throw new BenchSetupError(`POST /documents answered ${res.status}`);
        await res.arrayBuffer();
      }
    }));
    while ((await deliveredCount(gateway.url)) < DOCUMENTS) await new Promise((r) => setTimeout(r, 20));
    const elapsed = (performance.now() - started) / 1000;
    const intake: BenchResult = {
      bench: 'gateway-intake', document: REFERENCE_DOCUMENT, iterations: DOCUMENTS,
      conversionsPerSecond: round(DOCUMENTS / elapsed, 1), documentsPerSecond: round(DOCUMENTS / elapsed, 1),
      ...percentiles(postLatencies), latency: 'POST /documents until 202', peakRssMB: peakRssMB(gateway.pid),
    };

    // 2. PTA reads: 100 clients reading Bundles routed to them, for benchSeconds().
    let pta: (typeof clients)[number] | undefined;
    let readable: string[] = [];
    for (const c of clients.filter((x) => x.role === 'pta')) {
      const page = (await (await fetch(`${gateway.url}/fhir/Bundle?_count=100`, { headers: { authorization: `Bearer ${c.token}` } })).json()) as { entry?: { resource: { id: string } }[] };
      const ids = (page.entry ?? []).map((e) => e.resource.id);
      if (ids.length > readable.length) [pta, readable] = [c, ids];
    }
    if (!pta) throw new BenchSetupError('no PTA client sees the benchmark documents');
    const reader = pta;
    const readLatencies: number[] = [];
    const firstLatencies: number[] = [];
    const end = performance.now() + benchSeconds() * 1000;
    const readStart = performance.now();
    await Promise.all(Array.from({ length: READERS }, async (_, r) => {
      // One connection per client, kept alive, as a PTA's software holds it (fetch's shared pool
      // would open extra connections and blur which reads are first ones).
      const agent = new Agent({ keepAlive: true, maxSockets: 1 });
      try {
        for (let i = r; performance.now() < end; i++) {
          const t0 = performance.now();
          const status = await read(agent, `${gateway.url}/fhir/Bundle/${readable[i % readable.length] ?? ''}`, reader.token);
          if (status !== 200) throw new BenchSetupError(`GET /fhir/Bundle answered ${status}`);
          (i === r ? firstLatencies : readLatencies).push(performance.now() - t0);
        }
      } finally {
        agent.destroy();
      }
    }));
    const readSeconds = (performance.now() - readStart) / 1000;
    const count = readLatencies.length + firstLatencies.length;
    const first = percentiles(firstLatencies);
    const reads: BenchResult = {
      bench: 'pta-read', iterations: count, conversionsPerSecond: round(count / readSeconds, 1),
      readsPerSecond: round(count / readSeconds, 1), concurrency: READERS, ...percentiles(readLatencies),
      latency: 'reads on an open connection (each client\'s first read apart)',
      firstReadP50Ms: first.p50Ms, firstReadP99Ms: first.p99Ms, firstReadMaxMs: first.maxMs, peakRssMB: peakRssMB(gateway.pid),
    };
    return [intake, reads];
  } finally {
    await gateway.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}
