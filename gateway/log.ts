/**
 * Structured logs: one JSON object per line on stdout, one "request served" line per HTTP request.
 * Callers pass only operational fields (ids, states, codes, timings): never names, INS, addresses
 * or document content. Query strings are never logged because FHIR search parameters can carry a
 * patient identifier.
 */
export type LogLevel = 'debug' | 'info' | 'warn' | 'error' | 'silent';
const RANK: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40, silent: 100 };

export type LogFields = Record<string, string | number | boolean | null | undefined>;

export interface Logger {
  debug(msg: string, fields?: LogFields): void;
  info(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  error(msg: string, fields?: LogFields): void;
}

export function createLogger(level: LogLevel, write: (line: string) => void = (l) => process.stdout.write(l)): Logger {
  const min = RANK[level];
  const emit = (lvl: Exclude<LogLevel, 'silent'>, msg: string, fields?: LogFields): void => {
    if (RANK[lvl] < min) return;
    write(`${JSON.stringify({ time: new Date().toISOString(), level: lvl, msg, ...fields })}\n`);
  };
  return {
    debug: (m, f) => emit('debug', m, f),
    info: (m, f) => emit('info', m, f),
    warn: (m, f) => emit('warn', m, f),
    error: (m, f) => emit('error', m, f),
  };
}

/** An unexpected error for the log: its class and stack frames, not its message (which may quote input). */
export function errorFields(err: unknown): LogFields {
  if (!(err instanceof Error)) return { errorType: typeof err };
  const frames = (err.stack ?? '').split('\n').slice(1, 6).map((l) => l.trim()).join(' | ');
  return { errorType: err.name, code: (err as { code?: string }).code, frames };
}

export const silentLogger: Logger = createLogger('silent');
