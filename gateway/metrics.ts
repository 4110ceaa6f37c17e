/**
 * Prometheus metrics (text exposition format at /metrics): entries per journal state, stage
 * latency histograms, SRIR and ROR call outcomes, HTTP requests, CRL expiry. One registry per gateway
 * instance so tests can build several apps in one process.
 */
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { EntryState, Journal } from '../adapters/journal/port.js';
import { ENTRY_STATES } from '../adapters/journal/port.js';
import type { TrustStore } from './smime/index.js';

export interface Metrics {
  registry: Registry;
  stageSeconds: Histogram<'stage' | 'outcome'>;
  neighbourCalls: Counter<'neighbour' | 'operation' | 'outcome'>;
  httpRequests: Counter<'method' | 'route' | 'status'>;
}

/** `trust`: the S/MIME trust store, whose CRL files are watched by `passerelle_crl_next_update_timestamp_seconds`. */
export function createMetrics(journal: Journal, trust?: TrustStore): Metrics {
  const registry = new Registry();
  new Gauge({
    name: 'passerelle_entries',
    help: 'Journal entries per state',
    labelNames: ['state'],
    registers: [registry],
    async collect() {
      const counts: Record<EntryState, number> = await journal.counts();
      for (const state of ENTRY_STATES) this.set({ state }, counts[state]);
    },
  });
  if (trust) {
    new Gauge({
      name: 'passerelle_crl_next_update_timestamp_seconds',
      help: 'Earliest nextUpdate of the CRLs of each configured CRL file (Unix time): alert before it passes',
      labelNames: ['file'],
      registers: [registry],
      collect() {
        this.reset();
        for (const { path, nextUpdate } of trust.crlFiles()) if (nextUpdate) this.set({ file: path }, nextUpdate.getTime() / 1000);
      },
    });
  }
  return {
    registry,
    stageSeconds: new Histogram({
      name: 'passerelle_stage_duration_seconds',
      help: 'Duration of pipeline stages',
      labelNames: ['stage', 'outcome'],
      buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: [registry],
    }),
    neighbourCalls: new Counter({
      name: 'passerelle_neighbour_calls_total',
      help: 'Calls to the SRIR, the ROR and the store, by outcome (ok, error code)',
      labelNames: ['neighbour', 'operation', 'outcome'],
      registers: [registry],
    }),
    httpRequests: new Counter({
      name: 'passerelle_http_requests_total',
      help: 'HTTP requests served',
      labelNames: ['method', 'route', 'status'],
      registers: [registry],
    }),
  };
}

/** Wraps every method of a port so each call counts as ok or as its error code. */
export function instrument<T extends object>(target: T, neighbour: string, counter: Metrics['neighbourCalls']): T {
  return new Proxy(target, {
    get(obj, prop, receiver) {
      const value = Reflect.get(obj, prop, receiver) as unknown;
      if (typeof value !== 'function' || typeof prop !== 'string') return value;
      return async (...args: unknown[]) => {
        try {
          const result = (await (value as (...a: unknown[]) => unknown).apply(obj, args)) as unknown;
          counter.inc({ neighbour, operation: prop, outcome: 'ok' });
          return result;
        } catch (err) {
          counter.inc({ neighbour, operation: prop, outcome: (err as { code?: string }).code ?? 'error' });
          throw err;
        }
      };
    },
  });
}
