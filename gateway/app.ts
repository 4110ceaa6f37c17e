/**
 * buildApp(config, deps) → the Koa application, without listening (tests call it directly,
 * server.ts listens). Domain code receives ports; the concrete adapters are chosen in server.ts.
 */
import { randomUUID } from 'node:crypto';
import Koa from 'koa';
import Router from '@koa/router';
import type { Bundle } from '@medplum/fhirtypes';
import type { Journal } from '../adapters/journal/port.js';
import { createRorMock } from '../adapters/ror/mock.js';
import { createSrirMock } from '../adapters/srir/mock.js';
import type { DocumentStore } from '../adapters/store/port.js';
import type { Config } from './config.js';
import { authenticate, type ClientConfig } from './http/auth.js';
import { consoleRouter } from './http/console.js';
import { intakeRouter } from './http/intake.js';
import { errorHandler } from './http/errors.js';
import { fhirRouter } from './http/fhir-router.js';
import { messagesRouter } from './http/messages.js';
import { opsRouter } from './http/ops.js';
import type { AppState } from './http/state.js';
import { errorFields, type Logger } from './log.js';
import type { Metrics } from './metrics.js';

export interface AppDeps {
  journal: Journal;
  store: DocumentStore;
  clients: readonly ClientConfig[];
  log: Logger;
  metrics: Metrics;
  srirFixture: Bundle;
  rorFixture: Bundle;
  /** Called after a door committed an entry (wakes the local pipeline). */
  onAppended?: () => void;
}

export function buildApp(config: Readonly<Config>, deps: AppDeps): Koa<AppState> {
  const app = new Koa<AppState>({ proxy: false });
  const { log, metrics } = deps;
  const onAppended = deps.onAppended ?? (() => undefined);

  app.use(async (ctx, next) => {
    const started = performance.now();
    ctx.state.requestId = randomUUID();
    ctx.set('X-Request-Id', ctx.state.requestId);
    try {
      await next();
    } finally {
      const route = (ctx as { _matchedRoute?: string })._matchedRoute ?? 'unmatched';
      metrics.httpRequests.inc({ method: ctx.method, route, status: String(ctx.status) });
      // The path is logged as its route pattern and never with its query: both can carry patient identifiers.
      log.info('request served', {
        requestId: ctx.state.requestId, method: ctx.method, route, status: ctx.status,
        durationMs: Math.round(performance.now() - started), client: ctx.state.client?.id, errorCode: ctx.state.errorCode,
      });
    }
  });
  app.use(errorHandler((err) => log.error('unexpected error', { requestId: undefined, ...errorFields(err) })));
  app.use(authenticate(deps.clients));

  const baseUrl = (ctx: Koa.Context): string => config.http.publicUrl?.replace(/\/$/, '') ?? `${ctx.protocol}://${ctx.host}`;
  const routers: Router<AppState>[] = [
    opsRouter({ journal: deps.journal, store: deps.store, metrics, publicMetrics: config.http.publicMetrics }),
    fhirRouter({ store: deps.store, baseUrl, storeOnly: config.store.storeOnly }),
  ];
  if (!config.store.storeOnly) {
    routers.push(
      intakeRouter({ journal: deps.journal, maxBodyBytes: config.http.maxBodyBytes, maxBufferedBytes: config.http.maxBufferedBytes, onAppended }),
      messagesRouter({ journal: deps.journal, onAppended }),
      consoleRouter(),
      createSrirMock(deps.srirFixture, '/fixtures/srir/fhir'),
      createRorMock(deps.rorFixture, '/fixtures/ror/fhir'),
    );
  }
  for (const router of routers) app.use(router.routes()).use(router.allowedMethods());
  return app;
}
