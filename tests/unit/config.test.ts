import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../gateway/config.js';
import { PasserelleError } from '../../gateway/errors.js';

const dir = mkdtempSync(join(tmpdir(), 'passerelle-config-'));
const file = (name: string, content: unknown): string => {
  const path = join(dir, name);
  writeFileSync(path, typeof content === 'string' ? content : JSON.stringify(content));
  return path;
};
const problems = (fn: () => unknown): string => {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(PasserelleError);
    expect((err as PasserelleError).code).toBe('CONFIG_INVALID');
    return (err as Error).message;
  }
  throw new Error('expected CONFIG_INVALID');
};

describe('configuration', () => {
  it('has working defaults without a file (CONTRACT: HTTP 8080, SMTP 2525, data under ./data, SQLite)', () => {
    const c = loadConfig({ env: {}, cwd: '/srv/app' });
    expect(c.http.port).toBe(8080);
    expect(c.smtp.port).toBe(2525);
    expect(c.dataDir).toBe('/srv/app/data');
    expect(c.database).toBe('sqlite:/srv/app/data/passerelle.db');
    expect(c.srir.baseUrl).toBeNull();
    expect(c.ror.baseUrl).toBeNull();
    expect(c.store.fhirBaseUrl).toBeNull();
    expect(c.clients).toBeNull();
    expect(Object.isFrozen(c.http)).toBe(true);
  });

  it('resolves relative paths against the configuration file', () => {
    const path = file('a.json', { dataDir: 'var', srir: { fixture: 'p.json' }, ror: { fixture: '/abs/r.json' } });
    const c = loadConfig({ file: path, env: {} });
    expect(c.dataDir).toBe(join(dir, 'var'));
    expect(c.srir.fixture).toBe(join(dir, 'p.json'));
    expect(c.ror.fixture).toBe('/abs/r.json');
    expect(c.database).toBe(`sqlite:${join(dir, 'var', 'passerelle.db')}`);
  });

  it('takes every key from an environment variable named after its path', () => {
    const c = loadConfig({
      env: {
        PASSERELLE_HTTP_PORT: '9090',
        PASSERELLE_STORE_FHIR_BASE_URL: 'http://fhir.example/r4',
        PASSERELLE_DATABASE: 'postgres://u@h/db',
        PASSERELLE_SMTP_DOMAINS: '["a.test","b.test"]',
        PASSERELLE_PIPELINE_CONCURRENCY: '0',
        PASSERELLE_CLIENTS: JSON.stringify([{ id: 'ops', token: 'x'.repeat(20), role: 'admin' }]),
      },
      cwd: dir,
    });
    expect(c.http.port).toBe(9090);
    expect(c.store.fhirBaseUrl).toBe('http://fhir.example/r4');
    expect(c.database).toBe('postgres://u@h/db');
    expect(c.smtp.domains).toEqual(['a.test', 'b.test']);
    expect(c.pipeline.concurrency).toBe(0);
    expect(c.clients?.[0]?.role).toBe('admin');
  });

  it('lists every problem of an invalid configuration', () => {
    const path = file('bad.json', {
      http: { port: 'eighty' }, colour: 'blue', database: 'mysql://x',
      clients: [{ id: 'pta-x', token: 'short', role: 'pta' }, { id: 'y', token: 'y'.repeat(20), role: 'root' }],
    });
    const message = problems(() => loadConfig({ file: path, env: {} }));
    expect(message).toContain('http.port');
    expect(message).toContain('unknown key "colour"');
    expect(message).toContain('database');
    expect(message).toContain('clients.0.token');
    expect(message).toContain("clients.0: must have required property 'organization'");
    expect(message).toContain('clients.1.role');
  });

  it('refuses duplicate client tokens and ids', () => {
    const t = 'z'.repeat(20);
    const path = file('dup.json', { clients: [{ id: 'a', token: t, role: 'sender' }, { id: 'a', token: t, role: 'admin' }] });
    const message = problems(() => loadConfig({ file: path, env: {} }));
    expect(message).toContain('duplicate id "a"');
    expect(message).toContain('reuses another client');
  });

  it('says which file it could not read or parse', () => {
    expect(problems(() => loadConfig({ file: join(dir, 'missing.json'), env: {} }))).toContain('missing.json');
    expect(problems(() => loadConfig({ file: file('x.json', '{ nope'), env: {} }))).toContain('not JSON');
  });
});
