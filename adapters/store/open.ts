/**
 * The store the configuration asks for (CONTRACT.md, `store.fhirBaseUrl`): the built-in store in
 * the journal's database when fhirBaseUrl is null, else an external FHIR R4 server. The built-in
 * store's schema is created (idempotently) before the store is handed out.
 */
import { parseDatabaseUrl } from '../database.js';
import { FhirServerStore } from './fhir-server.js';
import type { DocumentStore } from './port.js';
import { PostgresDriver } from './postgres.js';
import { SqlStore, type SqlStoreOptions } from './sql.js';
import { SqliteDriver } from './sqlite.js';

export interface StoreConfig {
  database: string;
  fhirBaseUrl: string | null;
  /** Bearer token presented to the external FHIR server, if it wants one. */
  fhirToken?: string | null;
}

export async function openStore(config: StoreConfig, options: SqlStoreOptions = {}): Promise<DocumentStore> {
  if (config.fhirBaseUrl) {
    return new FhirServerStore({ baseUrl: config.fhirBaseUrl, ...(config.fhirToken ? { bearerToken: config.fhirToken } : {}) });
  }
  const location = parseDatabaseUrl(config.database);
  const driver = location.kind === 'sqlite' ? new SqliteDriver(location.path) : new PostgresDriver(location.url);
  const store = new SqlStore(driver, options);
  try {
    await store.init();
  } catch (err) {
    await store.close();
    throw err;
  }
  return store;
}
