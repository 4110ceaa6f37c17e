/**
 * The composition root: concrete adapters chosen from the configuration, the HTTP server, the
 * pipeline workers, and a graceful shutdown (stop accepting, let in-flight stages finish, close
 * the journal and the store).
 */
import { mkdirSync, readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { createNodemailerSender } from '../adapters/smtp/nodemailer.js';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { openJournal } from '../adapters/journal/open.js';
import type { Journal } from '../adapters/journal/port.js';
import { RorClient } from '../adapters/ror/client.js';
import { loadRorFixture } from '../adapters/ror/mock.js';
import { SrirClient } from '../adapters/srir/client.js';
import { loadSrirFixture } from '../adapters/srir/mock.js';
import { openStore } from '../adapters/store/open.js';
import type { DocumentStore } from '../adapters/store/port.js';
import { buildApp } from './app.js';
import type { Config } from './config.js';
import { createLogger, type Logger } from './log.js';
import { loadMailSecurity } from './mail/security.js';
import { effectiveSmime } from './mail/smime-settings.js';
import { createImapPoller } from './mail/imap-poller.js';
import { FilePollerState } from './mail/poller-state.js';
import { createSmtpListener } from './mail/smtp-listener.js';
import { createMetrics, instrument } from './metrics.js';
import { Pipeline } from './pipeline/worker.js';
import { sampleClients } from './sample-clients.js';

export interface RunningGateway {
  /** http://127.0.0.1:<port> */
  url: string;
  port: number;
  /** The SMTP listener's port, when it listens. */
  smtpPort: number | undefined;
  journal: Journal;
  store: DocumentStore;
  pipeline: Pipeline | undefined;
  close(): Promise<void>;
}

export async function start(config: Readonly<Config>, log: Logger = createLogger(config.log.level)): Promise<RunningGateway> {
  mkdirSync(config.dataDir, { recursive: true });
  const srirFixture = loadSrirFixture(config.srir.fixture ?? undefined);
  const rorFixture = loadRorFixture(config.ror.fixture ?? undefined);
  let clients = config.clients;
  if (!clients) {
    const sample = sampleClients(config.dataDir, rorFixture);
    clients = sample.clients;
    if (sample.created) {
      // Printed once, on the start that created them: the operator copies the tokens now.
      log.info('sample clients created (tokens shown once; kept in the file)', { file: sample.file });
      for (const c of clients) log.info('sample client', { id: c.id, role: c.role, organization: c.organization, token: c.token });
    } else {
      log.info('sample clients loaded', { file: sample.file, count: clients.length });
    }
  }

  const { smime, createdPki } = config.store.storeOnly ? { smime: config.smime, createdPki: undefined } : await effectiveSmime(config);
  if (createdPki) log.info('development PKI created (not for production)', { dir: createdPki });
  const mail = loadMailSecurity(smime, log);
  const journal = await openJournal(config.database);
  const store = await openStore({ database: config.database, fhirBaseUrl: config.store.fhirBaseUrl, ...(config.store.fhirToken ? { fhirToken: config.store.fhirToken } : {}) });
  const metrics = createMetrics(journal, mail.trust);
  let pipeline: Pipeline | undefined;
  /** Every door calls this after a commit: the local pipeline looks at once. */
  const wake = (): void => pipeline?.notify();
  const app = buildApp(config, { journal, store, clients, log, metrics, srirFixture, rorFixture, onAppended: wake });

  const handle = app.callback();
  // Koa's handler settles its own errors (errorHandler); the promise carries nothing to await.
  const server: Server = createServer((req, res) => void handle(req, res));
  server.requestTimeout = 120_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(config.http.port, config.http.host, () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  const self = `http://127.0.0.1:${port}`;
  log.info('listening', { port, database: config.database.split(':')[0], storeOnly: config.store.storeOnly });

  let closeRelay: (() => Promise<void>) | undefined;
  if (!config.store.storeOnly && config.pipeline.concurrency > 0) {
    // Without a baseUrl the adapters talk real HTTP to this gateway's own mock endpoints.
    const srir = new SrirClient({ baseUrl: config.srir.baseUrl ?? `${self}/fixtures/srir/fhir`, timeoutMs: config.srir.timeoutMs });
    const ror = new RorClient({
      baseUrl: config.ror.baseUrl ?? `${self}/fixtures/ror/fhir`, timeoutMs: config.ror.timeoutMs, cacheTtlMs: config.ror.cacheTtlMs,
      ...(config.ror.oauth ? { oauth: config.ror.oauth } : {}), headers: config.ror.headers,
      onStale: (detail) => {
        metrics.neighbourCalls.inc({ neighbour: 'ror', operation: 'cache', outcome: 'stale' });
        log.warn('ROR unavailable, cached answer served', { detail });
      },
    });
    const relay = createNodemailerSender({ host: config.smtp.relay.host, port: config.smtp.relay.port, clientName: hostname() });
    closeRelay = () => relay.close();
    pipeline = new Pipeline({
      journal, log, metrics, settings: config.pipeline, mail,
      acknowledgements: {
        sender: instrument(relay, 'smtp-relay', metrics.neighbourCalls),
        settings: { address: `passerelle@${config.smtp.domains[0] ?? 'localhost'}`, reportingMta: hostname(), identity: mail.identity },
      },
      srir: instrument(srir, 'srir', metrics.neighbourCalls),
      ror: instrument(ror, 'ror', metrics.neighbourCalls),
      store: instrument(store, 'store', metrics.neighbourCalls),
    });
    pipeline.start();
  }

  const imap = !config.store.storeOnly && config.imap.mailboxes.length
    ? createImapPoller({
      journal, mailboxes: config.imap.mailboxes, log, onAppended: wake,
      state: FilePollerState.inDataDir(config.dataDir), intervalMs: config.imap.intervalMs, maxMessageBytes: config.imap.maxMessageBytes,
    })
    : undefined;
  /** Set once the SMTP listener listens. */
  let smtp: ReturnType<typeof createSmtpListener> | undefined;

  let closing: Promise<void> | undefined;
  const close = (): Promise<void> => (closing ??= (async () => {
    log.info('shutting down');
    await smtp?.close();
    await imap?.stop();
    const stopped = new Promise<void>((resolve) => server.close(() => resolve()));
    server.closeIdleConnections();
    await pipeline?.stop();
    await closeRelay?.();
    await stopped;
    await journal.close();
    await store.close();
    log.info('stopped');
  })());

  let smtpPort: number | undefined;
  if (!config.store.storeOnly && config.smtp.port !== null && smime.certificate && smime.privateKey) {
    const listener = createSmtpListener({
      journal, domains: config.smtp.domains, maxBytes: config.smtp.maxBytes, maxBufferedBytes: config.smtp.maxBufferedBytes, log, onAppended: wake,
      tls: { cert: readFileSync(smime.certificate), key: readFileSync(smime.privateKey) },
    });
    try {
      smtpPort = await listener.listen(config.smtp.port, config.http.host);
    } catch (err) {
      await close(); // nothing may keep running half-started: the operator sees one clear failure
      throw err;
    }
    smtp = listener;
  }
  imap?.start();

  return { url: self, port, smtpPort, journal, store, pipeline, close };
}
