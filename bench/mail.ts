/**
 * The MSSanté mail channel end to end: messages/s from the first SMTP transaction to all
 * delivered, for signed-then-encrypted messages built the way an MSSanté sender builds them — an
 * IHE_XDM.zip (METADATA.XML with each document's SHA-1 and size), signed by sender1 then encrypted
 * (AES-256) to the gateway by the real `openssl cms`, with the development PKI. The gateway runs
 * as a separate process on loopback (as in bench/gateway.ts) so that the load generator does not
 * share its event loop; a fresh process (and data folder) per kind, so that each kind's peak RSS
 * and stage histograms are its own.
 *
 * Kinds: the discharge letter (LDL-SES); the lab report (BIO-CR-BIO TSH) with a PDF beside it —
 * once with its own rendering (≈ 210 KB of documents: the "200 KB document" the target is about),
 * once with the larger PDF of DOC_NON_STRUCTURE (≈ 460 KB); and one message carrying a 25 MB
 * PDF-like entry, for the peak RSS.
 *
 * The mock SRIR and ROR run in a process of their own (see startNeighbours), as the real ones would.
 * Per kind: per-stage mean costs from `passerelle_stage_duration_seconds` (sum/count, diffed
 * around the measured run so that the warm-up does not count), the gateway's CPU time
 * (/proc/<pid>/stat; the neighbours' beside it) and its peak RSS (VmHWM).
 * Environment: PASSERELLE_BENCH_MESSAGES (measured messages per kind, default 200);
 * PASSERELLE_BENCH_MAIL_KINDS (comma-separated keys among ldl, bio, biopdf, big; default all).
 */
import { spawn, execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import nodemailer from 'nodemailer';
import { initDevPki, type DevPkiFiles } from '../gateway/pki/dev-pki.js';
import { BenchSetupError, loadCorpus, packageRoot, round, type BenchResult } from './lib.js';
import { metadataXml, xdm, type DocSpec } from './xdm-zip.js';

const execFileAsync = promisify(execFile);

/** Measured messages per kind. */
const MESSAGES = positiveInt(process.env.PASSERELLE_BENCH_MESSAGES, 200);
/** The kinds to measure (keys below), all by default. */
const KINDS = new Set((process.env.PASSERELLE_BENCH_MAIL_KINDS ?? 'ldl,bio,biopdf,big').split(',').map((k) => k.trim()));
/** Messages sent and delivered before measuring: JIT, TLS sessions, SQLite page cache. */
const WARMUP = 16;
/** Concurrent SMTP connections, each sending its messages one after the other (an MTA's parallel deliveries). */
const SMTP_CONNECTIONS = 8;
/** Same as bench/gateway.ts, so the two end-to-end figures compare. */
const PIPELINE_CONCURRENCY = 4;
/** Messages per second required for the ≈ 200 KB lab report (issue requirement). */
const TARGET_PER_SECOND = 150;
const BIG_ATTACHMENT_BYTES = 25 * 1024 * 1024;
/** The gateway's default smtp.maxBytes (schemas/config.schema.json). */
const DEFAULT_SMTP_MAX_BYTES = 50 * 1024 * 1024;
/** The stages a mail entry goes through (gateway/pipeline/worker.ts), in order. */
const STAGES = ['unwrap', 'extract', 'convert', 'identify', 'resolve', 'route'] as const;
/** Linux USER_HZ: the unit of utime and stime in /proc/<pid>/stat (100 on every mainstream architecture). */
const CLOCK_TICKS = 100;
/** A run that makes no progress for this long is stuck (a quarantine loop, a dead gateway). */
const STALL_MS = 60_000;

const SENDER = 'sender1@hopital.test';
const RECIPIENT = 'bal@passerelle.test';
const LDL = 'LDL-SES_2022.01.xml';
const BIO = 'BIO-CR-BIO_2024.01_TSH_1.xml';
const NON_STRUCTURED = 'DOC_NON_STRUCTURE_CDA-R2-N1.xml';

function positiveInt(value: string | undefined, fallback: number): number {
  const n = Number(value ?? fallback);
  return Number.isInteger(n) && n > 0 ? n : fallback;
}

// ---------------------------------------------------------------------------------------------
// Message building (before any timing)

interface XdmFile {
  uri: string;
  bytes: Buffer;
  mimeType: string;
  formatCode: string;
}

interface Kind {
  /** Short key, part of each document id. */
  key: string;
  /** What the table shows. */
  document: string;
  cda: string;
  /** LOINC document type (XDS typeCode) and its display. */
  typeCode: [string, string];
  /** XDS formatCode of the CDA. */
  formatCode: string;
  /** Files beside the CDA in the zip, listed in METADATA.XML. */
  extras: XdmFile[];
  target?: number;
}

/** A distinct ClinicalDocument/id per message (as bench/gateway.ts), so the store does not dedupe. */
function withDocumentId(cda: string, extension: string): string {
  let replaced = false;
  const out = cda.replace(/<id root="([^"]+)"\s*\/>/, (_m, root: string) => {
    replaced = true;
    return `<id root="${root}" extension="${extension}"/>`;
  });
  if (!replaced) throw new BenchSetupError('no ClinicalDocument/id without extension in the template');
  return out;
}

/** The PDF a non-structured CDA carries base64 in its nonXMLBody (or observationMedia) value. */
function embeddedPdf(cda: string): Buffer {
  const m = /<(?:text|value)\b[^>]*mediaType="application\/pdf"[^>]*representation="B64"[^>]*>([^<]+)</.exec(cda);
  const pdf = m?.[1] ? Buffer.from(m[1].replace(/\s+/g, ''), 'base64') : undefined;
  if (!pdf || pdf.subarray(0, 5).toString('latin1') !== '%PDF-') throw new BenchSetupError('no base64 PDF found in the CDA');
  return pdf;
}

/**
 * A PDF-like filler: a PDF header and trailer around random bytes, because the bulk of a real PDF
 * is already-compressed streams — deflate gains nothing, as with a scanned report.
 */
function pdfFiller(size: number): Buffer {
  const head = Buffer.from('%PDF-1.7\n%\xe2\xe3\xcf\xd3\n', 'latin1');
  const tail = Buffer.from('\n%%EOF\n', 'latin1');
  return Buffer.concat([head, randomBytes(size - head.length - tail.length), tail]);
}

/** The IHE_XDM.zip a sender writes: the CDA then the kind's extras, each an XDSDocumentEntry with its SHA-1 and size. */
function xdmZip(kind: Kind, cda: Buffer, messageKey: string): Buffer {
  const subset = 'IHE_XDM/SUBSET01';
  const files: XdmFile[] = [{ uri: 'DOC0001.XML', bytes: cda, mimeType: 'text/xml', formatCode: kind.formatCode }, ...kind.extras];
  const [typeCode, typeDisplay] = kind.typeCode;
  const docs: DocSpec[] = files.map((f, i) => ({
    id: `Doc${String(i + 1).padStart(2, '0')}`, uri: f.uri, bytes: f.bytes, mimeType: f.mimeType,
    format: { code: f.formatCode, display: f.formatCode }, typeCode, typeDisplay, uniqueId: `1.2.250.1.999.1.${i + 1}^${messageKey}`,
  }));
  return xdm(docs, {
    subset,
    readme: 'Envoi MSSanté\r\n',
    index: `<html><body>${files.map((f) => `<a href="${subset}/${f.uri}">${f.uri}</a>`).join(' ')}</body></html>`,
    metadata: metadataXml(docs, { contentType: { code: typeCode, display: typeDisplay }, submissionSetUniqueId: `1.2.250.1.999.2.${messageKey}` }),
  });
}

/** Base64 in 76-character lines (RFC 2045 §6.8), CRLF. Sliced rather than regex-split: the 25 MB zip is 35 MB of text. */
function base64Lines(data: Buffer): string {
  const b64 = data.toString('base64');
  const lines: string[] = [];
  for (let i = 0; i < b64.length; i += 76) lines.push(b64.slice(i, i + 76));
  return lines.join('\r\n');
}

/** The multipart/mixed entity that gets signed: a short text and the IHE_XDM.zip, CRLF line ends. */
function entity(zipBytes: Buffer): Buffer {
  return Buffer.from([
    'Content-Type: multipart/mixed; boundary="passerelle-bench"', '', '--passerelle-bench', 'Content-Type: text/plain; charset=utf-8', '',
    'Document(s) ci-joint(s).', '--passerelle-bench', 'Content-Type: application/zip; name="IHE_XDM.zip"',
    'Content-Disposition: attachment; filename="IHE_XDM.zip"', 'Content-Transfer-Encoding: base64', '', base64Lines(zipBytes), '--passerelle-bench--', '',
  ].join('\r\n'));
}

interface Built { raw: Buffer; zipBytes: number }

/**
 * One message: XDM zip → MIME entity → `openssl cms -sign` (multipart/signed, sender1) →
 * `openssl cms -encrypt -aes256` to the gateway's certificate (RFC 8551 §3.6: signed, then
 * enveloped) → RFC 5322 header fields in front. openssl runs on files: the entity of the 25 MB
 * message is larger than a pipe's worth and the two steps would otherwise need a shell.
 */
async function buildMessage(kind: Kind, messageKey: string, pki: DevPkiFiles, work: string): Promise<Built> {
  const signer = pki.senders[0];
  if (!signer) throw new BenchSetupError('development PKI without sender1');
  const cda = Buffer.from(withDocumentId(kind.cda, messageKey), 'utf8');
  const zipBytes = xdmZip(kind, cda, messageKey);
  const [plain, signed, enveloped] = ['mime', 'signed', 'p7m'].map((ext) => join(work, `${messageKey}.${ext}`)) as [string, string, string];
  await writeFile(plain, entity(zipBytes));
  try {
    await execFileAsync('openssl', ['cms', '-sign', '-crlfeol', '-signer', signer.certificate, '-inkey', signer.key, '-in', plain, '-out', signed]);
    await execFileAsync('openssl', ['cms', '-encrypt', '-aes256', '-crlfeol', '-recip', pki.gateway.certificate, '-in', signed, '-out', enveloped]);
    // openssl writes MIME-Version and the Content-* fields; the rest of the header goes in front.
    const header = `From: ${SENDER}\r\nTo: ${RECIPIENT}\r\nSubject: XDM/1.0/DDM\r\nDate: ${new Date().toUTCString()}\r\nMessage-ID: <${messageKey}@hopital.test>\r\n`;
    return { raw: Buffer.concat([Buffer.from(header, 'latin1'), await readFile(enveloped)]), zipBytes: zipBytes.length };
  } finally {
    await Promise.all([plain, signed, enveloped].map((f) => rm(f, { force: true })));
  }
}

/** Builds messages `${prefix}-0…count-1`, one openssl pipeline per core at a time. */
async function buildMessages(kind: Kind, prefix: string, count: number, pki: DevPkiFiles, work: string): Promise<Built[]> {
  const out: Built[] = new Array<Built>(count);
  let next = 0;
  await Promise.all(Array.from({ length: Math.max(2, cpus().length) }, async () => {
    while (next < count) {
      const n = next++;
      out[n] = await buildMessage(kind, `${prefix}-${n}`, pki, work);
    }
  }));
  return out;
}

// ---------------------------------------------------------------------------------------------
// The gateway process

interface Gateway {
  url: string;
  smtpPort: number;
  pid: number;
  /** How the process ended and its last log lines, when it died under the benchmark (waits a little for the exit to be seen). */
  death(): Promise<string | undefined>;
  stop(): Promise<void>;
}

/** Log lines kept for a post-mortem. */
const LOG_TAIL_BYTES = 8192;

/** As bench/gateway.ts, waiting for the SMTP port too (logged after the HTTP "listening" line) unless `smtp` is false. */
async function startGateway(configFile: string, smtp = true): Promise<Gateway> {
  const child = spawn(process.execPath, [join(packageRoot(), 'bin', 'passerelle.js'), 'start', '--config', configFile], { stdio: ['ignore', 'pipe', 'inherit'] });
  let ended: string | undefined;
  let stopping = false;
  const exited = new Promise<void>((resolve) => child.once('exit', (code, signal) => {
    ended = signal ? `signal ${signal}` : `exit code ${code ?? '?'}`;
    resolve();
  }));
  // Drained for the whole run (a full pipe would block the gateway's logging); only a tail is held.
  let tail = '';
  const ports = await new Promise<{ http: string; smtp: string }>((resolve, reject) => {
    let found = false;
    child.stdout.on('data', (chunk: Buffer) => {
      tail = (tail + chunk.toString('utf8')).slice(-LOG_TAIL_BYTES);
      if (found) return;
      const http = /"msg":"listening","port":(\d+)/.exec(tail)?.[1];
      const smtpPort = smtp ? /"msg":"smtp listening","port":(\d+)/.exec(tail)?.[1] : '0';
      if (http && smtpPort) {
        found = true;
        resolve({ http, smtp: smtpPort });
      }
    });
    void exited.then(() => reject(new BenchSetupError(`the gateway exited before listening on HTTP and SMTP (${ended ?? '?'}):\n${tail}`)));
  });
  return {
    url: `http://127.0.0.1:${ports.http}`, smtpPort: Number(ports.smtp), pid: child.pid ?? 0,
    death: async () => {
      await Promise.race([exited, new Promise((r) => setTimeout(r, 2000))]);
      return ended && !stopping ? `the gateway died (${ended}); its last log lines:\n${tail}` : undefined;
    },
    stop: async () => {
      stopping = true;
      child.kill('SIGTERM');
      await exited;
    },
  };
}

function procStatus(pid: number, field: 'VmHWM' | 'VmRSS'): number {
  try {
    const m = new RegExp(`${field}:\\s+(\\d+) kB`).exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? round(Number(m[1]) / 1024, 1) : 0;
  } catch {
    return 0;
  }
}

/** User + system CPU seconds of a process, all its threads (libuv pool, GC helpers) included. */
function cpuSeconds(pid: number): number {
  const { user, system } = cpuTimes(pid);
  return user + system;
}

/** A process's user and system (kernel: file and socket I/O, page faults) CPU seconds. */
function cpuTimes(pid: number): { user: number; system: number } {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name, which is in parentheses and may hold spaces: state is field 3, utime 14, stime 15.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return { user: Number(fields[11]) / CLOCK_TICKS, system: Number(fields[12]) / CLOCK_TICKS };
  } catch {
    return { user: 0, system: 0 };
  }
}

interface Snapshot {
  final: { delivered: number; quarantined: number; failed: number };
  /** Per stage, outcome ok: seconds summed and observations. */
  stages: Map<string, { sum: number; count: number }>;
}

async function snapshot(url: string): Promise<Snapshot> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const final = { delivered: 0, quarantined: 0, failed: 0 };
  for (const m of text.matchAll(/^passerelle_entries\{state="(delivered|quarantined|failed)"\} (\d+)/gm)) final[m[1] as keyof typeof final] = Number(m[2]);
  const stages = new Map<string, { sum: number; count: number }>();
  for (const m of text.matchAll(/^passerelle_stage_duration_seconds_(sum|count)\{([^}]*)\} (\S+)$/gm)) {
    const labels = m[2] ?? '';
    if (!/outcome="ok"/.test(labels)) continue;
    const stage = /stage="([^"]+)"/.exec(labels)?.[1];
    if (!stage) continue;
    const s = stages.get(stage) ?? { sum: 0, count: 0 };
    s[m[1] as 'sum' | 'count'] = Number(m[3]);
    stages.set(stage, s);
  }
  return { final, stages };
}

/**
 * Mean ms per stage between two snapshots: the known stages in pipeline order, then any other the
 * gateway reports (a stage added later still shows). The worker rounds each duration to whole ms
 * before observing it, and times async stages on the wall clock: under load, extract (zlib on the
 * thread pool), identify and resolve (HTTP) include waiting for the event loop, not only their cost.
 */
function stageMeans(before: Snapshot, after: Snapshot): Record<string, number> {
  const out: Record<string, number> = {};
  const names = [...STAGES, ...[...after.stages.keys()].filter((s) => !(STAGES as readonly string[]).includes(s))];
  for (const stage of names) {
    const a = after.stages.get(stage) ?? { sum: 0, count: 0 };
    const b = before.stages.get(stage) ?? { sum: 0, count: 0 };
    const count = a.count - b.count;
    if (count > 0) out[stage] = round(((a.sum - b.sum) / count) * 1000, 3);
  }
  return out;
}

/** Waits until `expected` entries are delivered; throws as soon as one is quarantined or failed. */
async function waitDelivered(url: string, expected: number): Promise<Snapshot> {
  let last = -1;
  let progressAt = performance.now();
  for (;;) {
    const s = await snapshot(url);
    if (s.final.quarantined || s.final.failed) {
      throw new Error(`${s.final.quarantined} message(s) quarantined and ${s.final.failed} failed (see GET /messages?state=quarantined): the benchmark measures deliveries`);
    }
    if (s.final.delivered >= expected) return s;
    if (s.final.delivered !== last) [last, progressAt] = [s.final.delivered, performance.now()];
    else if (performance.now() - progressAt > STALL_MS) throw new Error(`no delivery for ${STALL_MS / 1000} s (${last} of ${expected} delivered)`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

function percentiles(samples: number[]): { meanMs: number; p50Ms: number; p99Ms: number; maxMs: number } {
  samples.sort((a, b) => a - b);
  const pick = (q: number): number => round(samples[Math.min(samples.length - 1, Math.floor(q * samples.length))] ?? 0, 3);
  return { meanMs: round(samples.reduce((a, b) => a + b, 0) / (samples.length || 1), 3), p50Ms: pick(0.5), p99Ms: pick(0.99), maxMs: pick(1) };
}

type Transport = ReturnType<typeof smtpTransport>;

/** One pooled transport: SMTP_CONNECTIONS persistent STARTTLS connections, as an MTA keeps to a busy peer. */
function smtpTransport(port: number, ca: Buffer) {
  return nodemailer.createTransport({
    host: '127.0.0.1', port, secure: false, requireTLS: true, tls: { ca, servername: 'localhost' },
    pool: true, maxConnections: SMTP_CONNECTIONS, maxMessages: Infinity,
  });
}

/** Sends every message over SMTP_CONNECTIONS parallel senders; returns each transaction's duration (ms). */
async function sendAll(transport: Transport, messages: readonly Built[]): Promise<number[]> {
  const latencies: number[] = [];
  let next = 0;
  await Promise.all(Array.from({ length: SMTP_CONNECTIONS }, async () => {
    while (next < messages.length) {
      const message = messages[next++] as Built;
      const t0 = performance.now();
      const info = await transport.sendMail({ envelope: { from: SENDER, to: [RECIPIENT] }, raw: message.raw });
      latencies.push(performance.now() - t0);
      if (!/^250\b/.test(info.response)) throw new Error(`SMTP answered ${info.response}`);
    }
  }));
  return latencies;
}

interface Run {
  dir: string;
  pki: DevPkiFiles;
  ca: Buffer;
  /** The process serving the mock SRIR and ROR to the measured gateway. */
  neighbours: Gateway;
}

/**
 * A second passerelle with no pipeline and no SMTP, serving only its built-in mock SRIR and ROR:
 * the identity server and the directory are remote services in any deployment, so their work
 * stays out of the measured process (which still pays for its side of every call over HTTP).
 */
async function startNeighbours(dir: string): Promise<Gateway> {
  const dataDir = join(dir, 'data-neighbours');
  mkdirSync(dataDir);
  const configFile = join(dataDir, 'config.json');
  writeFileSync(configFile, JSON.stringify({ http: { port: 0, host: '127.0.0.1' }, smtp: { port: null }, dataDir, log: { level: 'info' }, pipeline: { concurrency: 0 } }));
  return startGateway(configFile, false);
}

async function withGateway<T>(run: Run, name: string, smtpMaxBytes: number, body: (gateway: Gateway, transport: Transport) => Promise<T>): Promise<T> {
  const dataDir = join(run.dir, `data-${name}`);
  mkdirSync(dataDir);
  const configFile = join(dataDir, 'config.json');
  writeFileSync(configFile, JSON.stringify({
    http: { port: 0, host: '127.0.0.1' },
    smtp: { port: 0, domains: ['passerelle.test'], maxBytes: smtpMaxBytes },
    srir: { baseUrl: `${run.neighbours.url}/fixtures/srir/fhir` },
    ror: { baseUrl: `${run.neighbours.url}/fixtures/ror/fhir` },
    smime: { certificate: run.pki.gateway.certificate, privateKey: run.pki.gateway.key, trustAnchors: [run.pki.ca.certificate], crls: [run.pki.crl] },
    // pollMs left at its default (500), unlike bench/gateway.ts (20): appends wake the loops anyway.
    dataDir, log: { level: 'info' }, pipeline: { concurrency: PIPELINE_CONCURRENCY },
  }));
  const gateway = await startGateway(configFile);
  const transport = smtpTransport(gateway.smtpPort, run.ca);
  try {
    return await body(gateway, transport);
  } catch (err) {
    const death = await gateway.death();
    throw death ? new Error(death, { cause: err }) : err;
  } finally {
    transport.close();
    await gateway.stop();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

const kib = (n: number): string => `${Math.round(n / 1024)}K`;

/** Throughput of one kind: warm-up, then MESSAGES messages from the first SMTP transaction to all delivered. */
async function throughput(run: Run, kind: Kind): Promise<BenchResult> {
  const buildStart = performance.now();
  const messages = await buildMessages(kind, `bench-mail-${kind.key}`, WARMUP + MESSAGES, run.pki, run.dir);
  const buildSeconds = (performance.now() - buildStart) / 1000;
  const warm = messages.slice(0, WARMUP);
  const measured = messages.slice(WARMUP);
  const payloadBytes = Buffer.byteLength(kind.cda) + kind.extras.reduce((n, f) => n + f.bytes.length, 0);
  const messageBytes = Math.round(measured.reduce((n, m) => n + m.raw.length, 0) / measured.length);
  return withGateway(run, kind.key, DEFAULT_SMTP_MAX_BYTES, async (gateway, transport) => {
    await sendAll(transport, warm);
    const before = await waitDelivered(gateway.url, WARMUP);
    const cpuBefore = cpuTimes(gateway.pid);
    const neighboursCpuBefore = cpuSeconds(run.neighbours.pid);
    const started = performance.now();
    const latencies = await sendAll(transport, measured);
    const intakeSeconds = (performance.now() - started) / 1000;
    const after = await waitDelivered(gateway.url, WARMUP + MESSAGES);
    const elapsed = (performance.now() - started) / 1000;
    const cpuAfter = cpuTimes(gateway.pid);
    const systemCpu = cpuAfter.system - cpuBefore.system;
    const cpu = cpuAfter.user - cpuBefore.user + systemCpu;
    const neighboursCpu = cpuSeconds(run.neighbours.pid) - neighboursCpuBefore;
    const stages = stageMeans(before, after);
    const perSecond = round(MESSAGES / elapsed, 1);
    return {
      bench: 'mail-smtp', document: kind.document, bytes: payloadBytes, messageBytes, zipBytes: Math.round(measured.reduce((n, m) => n + m.zipBytes, 0) / measured.length),
      iterations: MESSAGES, conversionsPerSecond: perSecond, messagesPerSecond: perSecond,
      ...percentiles(latencies), latency: `SMTP transaction (MAIL FROM to the 250 after DATA), ${SMTP_CONNECTIONS} STARTTLS connections`,
      peakRssMB: procStatus(gateway.pid, 'VmHWM'),
      ...(kind.target !== undefined ? { target: kind.target, meetsTarget: perSecond >= kind.target } : {}),
      stages, stagesTotalMs: round(Object.values(stages).reduce((a, b) => a + b, 0), 3),
      intakeSeconds: round(intakeSeconds, 3), elapsedSeconds: round(elapsed, 3),
      gatewayCpuSeconds: round(cpu, 2), gatewaySystemCpuSeconds: round(systemCpu, 2), messagesPerCpuSecond: cpu > 0 ? round(MESSAGES / cpu, 1) : null,
      neighboursCpuSeconds: round(neighboursCpu, 2), smtpConnections: SMTP_CONNECTIONS, pipelineConcurrency: PIPELINE_CONCURRENCY, buildSeconds: round(buildSeconds, 1),
    };
  });
}

/** One message with a 25 MB attachment into a gateway warmed by a few ordinary ones: its peak RSS and stage costs. */
async function peakRss(run: Run, lab: Kind): Promise<BenchResult> {
  const filler: XdmFile = { uri: 'DOC0003.PDF', bytes: pdfFiller(BIG_ATTACHMENT_BYTES), mimeType: 'application/pdf', formatCode: 'urn:ihe:iti:xds-sd:pdf:2008' };
  const big: Kind = { ...lab, key: 'big', document: `${BIO}+${Math.round(BIG_ATTACHMENT_BYTES / 1024 / 1024)}MB`, extras: [...lab.extras, filler] };
  delete big.target;
  const warm = await buildMessages(lab, 'bench-mail-bigwarm', 4, run.pki, run.dir);
  const [message] = await buildMessages(big, 'bench-mail-big', 1, run.pki, run.dir);
  if (!message) throw new BenchSetupError('the 25 MB message was not built');
  // Base64 twice (the zip in the signed entity, then the CMS envelope) makes 25 MB about 47 MB on
  // the wire, near the default smtp.maxBytes (50 MiB): raised only if it would not fit.
  const smtpMaxBytes = Math.max(DEFAULT_SMTP_MAX_BYTES, message.raw.length + 1024 * 1024);
  const payloadBytes = Buffer.byteLength(big.cda) + big.extras.reduce((n, f) => n + f.bytes.length, 0);
  return withGateway(run, big.key, smtpMaxBytes, async (gateway, transport) => {
    await sendAll(transport, warm);
    const before = await waitDelivered(gateway.url, warm.length);
    const baselineRssMB = procStatus(gateway.pid, 'VmHWM');
    const cpuBefore = cpuSeconds(gateway.pid);
    const health = watchHealth(gateway.url);
    const started = performance.now();
    const [smtpMs] = await sendAll(transport, [message]);
    const after = await waitDelivered(gateway.url, warm.length + 1);
    const elapsed = (performance.now() - started) / 1000;
    const healthMaxMs = await health.stop();
    const stages = stageMeans(before, after);
    return {
      bench: 'mail-smtp', document: big.document, bytes: payloadBytes, messageBytes: message.raw.length, zipBytes: message.zipBytes,
      iterations: 1, conversionsPerSecond: round(1 / elapsed, 2), messagesPerSecond: round(1 / elapsed, 2),
      meanMs: round(elapsed * 1000, 1), p50Ms: round(elapsed * 1000, 1), p99Ms: round(elapsed * 1000, 1), maxMs: round(elapsed * 1000, 1),
      latency: 'first SMTP command to delivered', smtpMs: round(smtpMs ?? 0, 1),
      peakRssMB: procStatus(gateway.pid, 'VmHWM'), baselineRssMB, rssAfterMB: procStatus(gateway.pid, 'VmRSS'),
      stages, stagesTotalMs: round(Object.values(stages).reduce((a, b) => a + b, 0), 3),
      gatewayCpuSeconds: round(cpuSeconds(gateway.pid) - cpuBefore, 2), smtpMaxBytes, healthMaxMs,
    };
  });
}

/**
 * Asks /health every 50 ms until stopped; resolves with the slowest answer (ms): how long the
 * gateway's event loop was held while it took the message in and processed it.
 */
function watchHealth(url: string): { stop: () => Promise<number> } {
  let running = true;
  let slowest = 0;
  const loop = (async () => {
    while (running) {
      const t0 = performance.now();
      await fetch(`${url}/health`).then((res) => res.arrayBuffer());
      slowest = Math.max(slowest, performance.now() - t0);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  })();
  return {
    stop: async () => {
      running = false;
      await loop;
      return round(slowest, 1);
    },
  };
}

export async function run(): Promise<BenchResult[]> {
  const corpus = loadCorpus();
  const text = (name: string): string => {
    const doc = corpus.find((d) => d.name === name);
    if (!doc) throw new BenchSetupError(`${name} is not in the corpus`);
    return doc.bytes.toString('utf8');
  };
  const [ldl, bio, nonStructured] = [text(LDL), text(BIO), text(NON_STRUCTURED)];
  try {
    await execFileAsync('openssl', ['version']);
  } catch {
    throw new BenchSetupError('openssl not found on PATH: the mail benchmark builds its messages with `openssl cms`, as MSSanté senders do');
  }
  const pdf = (bytes: Buffer): XdmFile => ({ uri: 'DOC0002.PDF', bytes, mimeType: 'application/pdf', formatCode: 'urn:ihe:iti:xds-sd:pdf:2008' });
  const ownPdf = pdf(embeddedPdf(bio));
  const bigPdf = pdf(embeddedPdf(nonStructured));
  const labType: [string, string] = ['11502-2', 'CR d\'examens biologiques'];
  const kinds: Kind[] = [
    { key: 'ldl', document: LDL, cda: ldl, typeCode: ['11490-0', 'Lettre de liaison'], formatCode: 'urn:asip:ci-sis:2010', extras: [] },
    // The issue's "200 KB lab report with PDF": the report and its own rendering (the PDF it embeds), ≈ 210 KB.
    { key: 'bio', document: `${BIO}+PDF${kib(ownPdf.bytes.length)}`, cda: bio, typeCode: labType, formatCode: 'urn:ihe:lab:xd-lab:2008', extras: [ownPdf], target: TARGET_PER_SECOND },
    // The same report with the 320 KB PDF of DOC_NON_STRUCTURE: ≈ 460 KB, for the slope with size.
    { key: 'biopdf', document: `${BIO}+PDF${kib(bigPdf.bytes.length)}`, cda: bio, typeCode: labType, formatCode: 'urn:ihe:lab:xd-lab:2008', extras: [bigPdf] },
  ];

  const dir = mkdtempSync(join(tmpdir(), 'passerelle-bench-mail-'));
  try {
    const pki = (await initDevPki(join(dir, 'pki'))).files;
    const neighbours = await startNeighbours(dir);
    try {
      const r: Run = { dir, pki, ca: readFileSync(pki.ca.certificate), neighbours };
      const results: BenchResult[] = [];
      for (const kind of kinds) if (KINDS.has(kind.key)) results.push(await throughput(r, kind));
      if (KINDS.has('big')) results.push(await peakRss(r, kinds[1] as Kind));
      return results;
    } finally {
      await neighbours.stop();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
