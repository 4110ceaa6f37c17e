/**
 * Configuration: JSON file (--config or PASSERELLE_CONFIG) → environment overrides → defaults →
 * validation against schemas/config.schema.json → frozen (CONTRACT.md, "Configuration").
 * Every key is settable by an environment variable named after its path, camelCase split on
 * capitals: `http.port` → PASSERELLE_HTTP_PORT, `store.fhirBaseUrl` → PASSERELLE_STORE_FHIR_BASE_URL.
 * Relative paths in a file are resolved against the file's directory (an integrator keeps a config
 * and its fixtures side by side); without a file, against the working directory.
 */
import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { Ajv, type ErrorObject } from 'ajv';
import addFormatsModule from 'ajv-formats';
import { PasserelleError } from './errors.js';
import type { ClientConfig } from './http/auth.js';
import type { MailboxConfig } from './mail/imap-poller.js';
import { packageFile } from './util/package-root.js';

export interface Config {
  http: { port: number; host: string; publicUrl: string | null; maxBodyBytes: number; maxBufferedBytes: number; publicMetrics: boolean };
  smtp: { port: number | null; maxBytes: number; maxBufferedBytes: number; domains: string[]; relay: { host: string; port: number } };
  imap: { intervalMs: number; maxMessageBytes: number; mailboxes: MailboxConfig[] };
  dataDir: string;
  /** Always set after loading: `sqlite:<dataDir>/passerelle.db` when the file leaves it null. */
  database: string;
  smime: {
    certificate: string | null; privateKey: string | null; trustAnchors: string[]; crls: string[];
    requireSignature: boolean; requireEncryption: boolean; plainDomains: string[];
  };
  srir: { baseUrl: string | null; fixture: string | null; timeoutMs: number };
  ror: {
    baseUrl: string | null; fixture: string | null; timeoutMs: number; cacheTtlMs: number;
    oauth: { tokenUrl: string; clientId: string; clientSecret: string; scope?: string } | null;
    headers: Record<string, string>;
  };
  store: { fhirBaseUrl: string | null; fhirToken: string | null; storeOnly: boolean };
  pipeline: { concurrency: number; leaseMs: number; pollMs: number; retryBaseMs: number; retryMaxMs: number; maxAttempts: number; maxWorkingBytes: number };
  /** null until the server generates the sample clients (gateway/sample-clients.ts). */
  clients: ClientConfig[] | null;
  log: { level: 'debug' | 'info' | 'warn' | 'error' | 'silent' };
}

interface SchemaNode { type?: string | string[]; properties?: Record<string, SchemaNode> }

const schema = JSON.parse(readFileSync(packageFile('schemas', 'config.schema.json'), 'utf8')) as SchemaNode & object;

const addFormats = addFormatsModule as unknown as (ajv: Ajv) => Ajv;
const validate = addFormats(new Ajv({ allErrors: true, useDefaults: true, strict: false })).compile(schema);

export interface LoadOptions {
  file?: string | undefined;
  env?: NodeJS.ProcessEnv;
  /** Directory relative paths resolve against when no file is given. */
  cwd?: string;
  /** Applied last, for tests and embedding. */
  overrides?: Record<string, unknown>;
}

export function loadConfig(options: LoadOptions = {}): Readonly<Config> {
  const env = options.env ?? process.env;
  const file = options.file ?? env.PASSERELLE_CONFIG;
  let raw: Record<string, unknown> = {};
  if (file) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      throw new PasserelleError('CONFIG_INVALID', `cannot read configuration file ${file}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`);
    }
    try {
      raw = JSON.parse(text) as Record<string, unknown>;
    } catch (err) {
      throw new PasserelleError('CONFIG_INVALID', `${file} is not JSON: ${(err as Error).message}`);
    }
    if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new PasserelleError('CONFIG_INVALID', `${file}: the configuration must be a JSON object`);
  }
  const problems: string[] = [];
  applyEnv(raw, schema, 'PASSERELLE', env, problems);
  if (options.overrides) deepMerge(raw, options.overrides);
  if (!validate(raw)) problems.push(...(validate.errors ?? []).map(describe));
  if (problems.length) throw new PasserelleError('CONFIG_INVALID', `invalid configuration:\n  - ${problems.join('\n  - ')}`);

  const config = raw as unknown as Config;
  const base = file ? dirname(resolve(file)) : (options.cwd ?? process.cwd());
  const abs = (p: string): string => (isAbsolute(p) ? p : resolve(base, p));
  config.dataDir = abs(config.dataDir);
  config.database ??= `sqlite:${resolve(config.dataDir, 'passerelle.db')}`;
  if (config.database.startsWith('sqlite:') && config.database !== 'sqlite::memory:') config.database = `sqlite:${abs(config.database.slice(7))}`;
  if (config.srir.fixture) config.srir.fixture = abs(config.srir.fixture);
  if (config.ror.fixture) config.ror.fixture = abs(config.ror.fixture);
  config.smime.certificate &&= abs(config.smime.certificate);
  config.smime.privateKey &&= abs(config.smime.privateKey);
  config.smime.trustAnchors = config.smime.trustAnchors.map(abs);
  config.smime.crls = config.smime.crls.map(abs);
  for (const m of config.imap.mailboxes) if (m.tls) for (const k of ['ca', 'cert', 'key'] as const) if (m.tls[k]) m.tls[k] = abs(m.tls[k]);
  if (config.clients) checkClients(config.clients);
  return deepFreeze(config);
}

/** Tokens must be unique: a shared token would make two clients indistinguishable. */
function checkClients(clients: ClientConfig[]): void {
  const problems: string[] = [];
  const ids = new Set<string>();
  const tokens = new Set<string>();
  for (const c of clients) {
    if (ids.has(c.id)) problems.push(`clients: duplicate id "${c.id}"`);
    if (tokens.has(c.token)) problems.push(`clients: client "${c.id}" reuses another client's token`);
    ids.add(c.id);
    tokens.add(c.token);
  }
  if (problems.length) throw new PasserelleError('CONFIG_INVALID', `invalid configuration:\n  - ${problems.join('\n  - ')}`);
}

/** PASSERELLE_<PATH> variables: JSON when they parse as JSON (numbers, booleans, null, arrays), text otherwise. */
function applyEnv(target: Record<string, unknown>, node: SchemaNode, prefix: string, env: NodeJS.ProcessEnv, problems: string[]): void {
  for (const [key, sub] of Object.entries(node.properties ?? {})) {
    const name = `${prefix}_${key.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toUpperCase()}`;
    const isObject = sub.type === 'object' && sub.properties;
    if (isObject) {
      const child = (target[key] ??= {});
      if (typeof child === 'object' && child !== null && !Array.isArray(child)) applyEnv(child as Record<string, unknown>, sub, name, env, problems);
      continue;
    }
    const value = env[name];
    if (value === undefined) continue;
    target[key] = parseEnvValue(value);
  }
}

function parseEnvValue(value: string): unknown {
  try {
    return JSON.parse(value) as unknown;
  } catch {
    return value;
  }
}

function describe(e: ErrorObject): string {
  const path = e.instancePath ? e.instancePath.slice(1).replaceAll('/', '.') : '(root)';
  if (e.keyword === 'additionalProperties') return `${path}: unknown key "${String(e.params.additionalProperty)}"`;
  if (e.keyword === 'enum') return `${path}: must be one of ${(e.params.allowedValues as unknown[]).map((v) => JSON.stringify(v)).join(', ')}`;
  return `${path}: ${e.message ?? e.keyword}`;
}

function deepMerge(target: Record<string, unknown>, source: Record<string, unknown>): void {
  for (const [k, v] of Object.entries(source)) {
    const t = target[k];
    if (v && typeof v === 'object' && !Array.isArray(v) && t && typeof t === 'object' && !Array.isArray(t)) deepMerge(t as Record<string, unknown>, v as Record<string, unknown>);
    else target[k] = v;
  }
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object') {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}
