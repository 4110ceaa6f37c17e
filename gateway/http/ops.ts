/** Liveness, readiness (journal and store reachable) and Prometheus metrics (CONTRACT.md). */
import Router, { type RouterMiddleware } from '@koa/router';
import type { Journal } from '../../adapters/journal/port.js';
import type { DocumentStore } from '../../adapters/store/port.js';
import type { Metrics } from '../metrics.js';
import { requireRole } from './auth.js';
import type { AppState } from './state.js';

export interface OpsDeps {
  journal: Journal;
  store: DocumentStore;
  metrics: Metrics;
  publicMetrics: boolean;
}

export function opsRouter({ journal, store, metrics, publicMetrics }: OpsDeps): Router<AppState> {
  const router = new Router<AppState>();
  router.get('/health', (ctx) => {
    ctx.body = { status: 'ok' };
  });
  router.get('/ready', async (ctx) => {
    const check = async (ping: () => Promise<void>): Promise<'ok' | 'unreachable'> => ping().then(() => 'ok' as const, () => 'unreachable' as const);
    const [j, s] = await Promise.all([check(() => journal.ping()), check(() => store.ping())]);
    ctx.status = j === 'ok' && s === 'ok' ? 200 : 503;
    ctx.body = { status: ctx.status === 200 ? 'ready' : 'not ready', journal: j, store: s };
  });
  const serveMetrics: RouterMiddleware<AppState> = async (ctx) => {
    ctx.type = metrics.registry.contentType;
    ctx.body = await metrics.registry.metrics();
  };
  if (publicMetrics) router.get('/metrics', serveMetrics);
  else router.get('/metrics', requireRole('admin'), serveMetrics);
  return router;
}
