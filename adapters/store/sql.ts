/**
 * The built-in e-parcours store, one implementation for SQLite and PostgreSQL: the journal's
 * database, tables prefixed `store_`. The logic is written once as generators that yield SQL
 * statements (`Work`); each driver runs them — synchronously inside one better-sqlite3
 * transaction, or awaiting each statement on one pg connection — so a SQLite transaction never
 * spans an event-loop turn (two connections of one process would otherwise wait on each other).
 *
 * Ordering. lastUpdated is an integer of microseconds, strictly increasing in commit order across
 * every process sharing the database: each put runs in a transaction that is serialized with all
 * other puts (the driver's `write`: BEGIN IMMEDIATE takes SQLite's single write lock; PostgreSQL
 * takes a transaction-level advisory lock, released only once the commit is visible) and assigns
 * max(now, max(lastUpdated) + 1µs). So a PTA polling `_lastUpdated=gt<last seen>` can miss nothing:
 * whatever commits after its query has a larger lastUpdated than anything it has seen, even within
 * one millisecond or when the clock goes backwards. Pages are keyset pages on (lastUpdated, id):
 * documents arriving while a client pages appear after everything already there, never shifting
 * a page (search.html#paging leaves the method to the server; offsets would skip and repeat).
 *
 * Idempotence. documentKey is UNIQUE: the insert is `ON CONFLICT (document_key) DO NOTHING`, so a
 * retry or a concurrent duplicate from another process finds the first row and reports
 * created: false, whatever the serialization. A replacement (CDA RPLC) marks the documents it
 * replaces superseded, as a new version (versionId + 1, a new lastUpdated, so an incremental pull
 * sees the change and an If-None-Match on the old ETag no longer matches); the relation is kept,
 * so a replaced document that arrives after its replacement is stored superseded.
 */
import { randomUUID } from 'node:crypto';
import type { AuditEvent, Bundle } from '@medplum/fhirtypes';
import { PasserelleError } from '../../gateway/errors.js';
import { decodeCursor, encodeCursor } from './cursor.js';
import { dateBounds, instantOf, microsOf } from './instant.js';
import type { AuditQuery, DocumentStore, PutRequest, PutResult, Scope, SearchQuery, SearchResult, StoredDocument, TokenParam } from './port.js';
import { DOCUMENT_STATUS_SYSTEM, forCreate, statusTag } from './tags.js';
import { indexTerms } from './terms.js';

export type SqlValue = string | number | null;
export type Row = Record<string, unknown>;
export interface Statement { sql: string; params: SqlValue[] }
/** A unit of work for either engine: yields statements (`?` placeholders), receives their rows. */
export type Work<T> = Generator<Statement, T, Row[]>;

export function* sql<R = Row>(text: string, ...params: SqlValue[]): Generator<Statement, R[], Row[]> {
  return (yield { sql: text, params }) as R[];
}

export interface SqlDriver {
  readonly dialect: 'sqlite' | 'postgres';
  /**
   * One write transaction. `ordered` (the default) serializes it with every other ordered write
   * of the database, in every process: commit order is then lock order.
   */
  write<T>(work: () => Work<T>, ordered?: boolean): Promise<T>;
  /** One read-only snapshot, so that a count and its page agree. */
  read<T>(work: () => Work<T>): Promise<T>;
  close(): Promise<void>;
}

function schema(dialect: SqlDriver['dialect']): string[] {
  const bigint = dialect === 'sqlite' ? 'INTEGER' : 'BIGINT';
  const serial = dialect === 'sqlite' ? 'INTEGER PRIMARY KEY' : 'BIGSERIAL PRIMARY KEY';
  return [
    `CREATE TABLE IF NOT EXISTS store_document (
      id                TEXT PRIMARY KEY,
      document_key      TEXT NOT NULL UNIQUE,
      version           INTEGER NOT NULL,
      last_updated      ${bigint} NOT NULL UNIQUE,
      status            TEXT NOT NULL CHECK (status IN ('current', 'superseded')),
      identifier_system TEXT,
      identifier_value  TEXT,
      bundle            TEXT NOT NULL
    )`,
    'CREATE INDEX IF NOT EXISTS store_document_identifier ON store_document (identifier_value, identifier_system)',
    'CREATE TABLE IF NOT EXISTS store_patient_identifier (document_id TEXT NOT NULL REFERENCES store_document (id), system TEXT, value TEXT NOT NULL)',
    'CREATE INDEX IF NOT EXISTS store_patient_identifier_value ON store_patient_identifier (value, system, document_id)',
    'CREATE TABLE IF NOT EXISTS store_type (document_id TEXT NOT NULL REFERENCES store_document (id), system TEXT, code TEXT NOT NULL)',
    'CREATE INDEX IF NOT EXISTS store_type_code ON store_type (code, system, document_id)',
    'CREATE TABLE IF NOT EXISTS store_tag (document_id TEXT NOT NULL REFERENCES store_document (id), system TEXT, code TEXT NOT NULL)',
    'CREATE INDEX IF NOT EXISTS store_tag_code ON store_tag (code, system, document_id)',
    `CREATE TABLE IF NOT EXISTS store_routed_to (
      document_id  TEXT NOT NULL REFERENCES store_document (id),
      organization TEXT NOT NULL,
      PRIMARY KEY (document_id, organization)
    )`,
    'CREATE INDEX IF NOT EXISTS store_routed_to_organization ON store_routed_to (organization, document_id)',
    `CREATE TABLE IF NOT EXISTS store_supersedes (
      document_id  TEXT NOT NULL REFERENCES store_document (id),
      document_key TEXT NOT NULL,
      PRIMARY KEY (document_id, document_key)
    )`,
    'CREATE INDEX IF NOT EXISTS store_supersedes_key ON store_supersedes (document_key)',
    `CREATE TABLE IF NOT EXISTS store_audit (seq ${serial}, id TEXT NOT NULL UNIQUE, recorded TEXT NOT NULL, event TEXT NOT NULL)`,
    `CREATE TABLE IF NOT EXISTS store_audit_ref (
      audit_seq ${bigint} NOT NULL REFERENCES store_audit (seq),
      kind      TEXT NOT NULL CHECK (kind IN ('agent', 'entity')),
      value     TEXT NOT NULL
    )`,
    'CREATE INDEX IF NOT EXISTS store_audit_ref_value ON store_audit_ref (kind, value, audit_seq)',
  ];
}

const DOCUMENT_COLUMNS = 'd.id, d.document_key, d.version, d.last_updated, d.status, d.bundle';
interface DocumentRow { id: string; document_key: string; version: number | string; last_updated: number | string; status: string; bundle: string }

const FHIR_ID = /^[A-Za-z0-9\-.]{1,64}$/;

export interface SqlStoreOptions {
  /** The clock lastUpdated starts from (tests freeze it to force ties). */
  now?: () => Date;
}

export class SqlStore implements DocumentStore {
  private readonly now: () => Date;

  constructor(private readonly driver: SqlDriver, options: SqlStoreOptions = {}) {
    this.now = options.now ?? (() => new Date());
  }

  async init(): Promise<void> {
    const statements = schema(this.driver.dialect);
    await this.driver.write(function* () {
      for (const s of statements) yield* sql(s);
    });
  }

  async put(request: PutRequest): Promise<PutResult> {
    const { bundle, documentKey } = request;
    if (bundle.resourceType !== 'Bundle') throw new PasserelleError('REQUEST_INVALID', 'Only Bundle resources are stored.');
    if (!documentKey) throw new PasserelleError('REQUEST_INVALID', 'A stored document needs a document key.');
    const terms = indexTerms(bundle);
    const json = JSON.stringify(bundle);
    const id = randomUUID();
    const routedTo = [...new Set(request.routedTo)];
    const supersedes = [...new Set(request.supersedes)].filter((k) => k !== documentKey);
    const clock = this.now;
    return this.driver.write(function* (): Work<PutResult> {
      // Read under the write lock, so a put that waited for it is not stamped with its arrival time.
      const now = microsOf(clock());
      const [top] = yield* sql<{ m: unknown }>('SELECT MAX(last_updated) AS m FROM store_document');
      let at = top?.m == null ? now : Math.max(now, Number(top.m) + 1);
      const replaced = yield* sql('SELECT 1 AS x FROM store_supersedes WHERE document_key = ? LIMIT 1', documentKey);
      const inserted = yield* sql<{ id: string }>(
        `INSERT INTO store_document (id, document_key, version, last_updated, status, identifier_system, identifier_value, bundle)
         VALUES (?, ?, 1, ?, ?, ?, ?, ?) ON CONFLICT (document_key) DO NOTHING RETURNING id`,
        id, documentKey, at, replaced.length ? 'superseded' : 'current', terms.identifier?.system ?? null, terms.identifier?.value ?? null, json,
      );
      if (!inserted.length) {
        const [existing] = yield* sql<{ id: string }>('SELECT id FROM store_document WHERE document_key = ?', documentKey);
        if (!existing) throw new PasserelleError('STORE_UNAVAILABLE', 'The document key conflicted but no document holds it.');
        return { id: existing.id, created: false };
      }
      for (const t of terms.patientIdentifiers) yield* sql('INSERT INTO store_patient_identifier (document_id, system, value) VALUES (?, ?, ?)', id, t.system, t.value);
      for (const t of terms.types) yield* sql('INSERT INTO store_type (document_id, system, code) VALUES (?, ?, ?)', id, t.system, t.value);
      for (const t of terms.tags) yield* sql('INSERT INTO store_tag (document_id, system, code) VALUES (?, ?, ?)', id, t.system, t.value);
      for (const o of routedTo) yield* sql('INSERT INTO store_routed_to (document_id, organization) VALUES (?, ?)', id, o);
      for (const key of supersedes) {
        yield* sql('INSERT INTO store_supersedes (document_id, document_key) VALUES (?, ?)', id, key);
        const earlier = yield* sql<{ id: string }>("SELECT id FROM store_document WHERE document_key = ? AND status = 'current'", key);
        for (const e of earlier) {
          at += 1;
          yield* sql("UPDATE store_document SET status = 'superseded', version = version + 1, last_updated = ? WHERE id = ?", at, e.id);
        }
      }
      return { id, created: true };
    });
  }

  async read(id: string, scope: Scope): Promise<StoredDocument | undefined> {
    const visible = scopeFilter(scope);
    if (!visible || !FHIR_ID.test(id)) return undefined;
    return this.driver.read(function* () {
      const [row] = yield* sql<DocumentRow>(`SELECT ${DOCUMENT_COLUMNS} FROM store_document d WHERE d.id = ? AND ${visible.where}`, id, ...visible.params);
      if (!row) return undefined;
      const orgs = yield* sql<{ organization: string }>('SELECT organization FROM store_routed_to WHERE document_id = ? ORDER BY organization', id);
      return toDocument(row, orgs.map((o) => o.organization));
    });
  }

  async search(query: SearchQuery, scope: Scope): Promise<SearchResult> {
    if (!Number.isSafeInteger(query.count) || query.count < 0) throw new PasserelleError('REQUEST_INVALID', '_count must be a non-negative integer.');
    const f = documentFilter(query, scope);
    if (!f) return { total: 0, documents: [] };
    const after = query.cursor ? decodeCursor(query.cursor, ['n', 's']) : undefined;
    const count = query.count;
    return this.driver.read(function* (): Work<SearchResult> {
      const [c] = yield* sql<{ n: unknown }>(`SELECT COUNT(*) AS n FROM store_document d WHERE ${f.where}`, ...f.params);
      const total = Number(c?.n ?? 0);
      if (count === 0) return { total, documents: [] };
      const keyset = after ? ' AND (d.last_updated, d.id) > (?, ?)' : '';
      const page = yield* sql<DocumentRow>(
        `SELECT ${DOCUMENT_COLUMNS} FROM store_document d WHERE ${f.where}${keyset} ORDER BY d.last_updated, d.id LIMIT ?`,
        ...f.params, ...(after ?? []), count + 1,
      );
      const rows = page.slice(0, count);
      const routed = new Map<string, string[]>(rows.map((r) => [r.id, []]));
      if (rows.length) {
        const orgs = yield* sql<{ document_id: string; organization: string }>(
          `SELECT document_id, organization FROM store_routed_to WHERE document_id IN (${rows.map(() => '?').join(', ')}) ORDER BY organization`,
          ...rows.map((r) => r.id),
        );
        for (const o of orgs) routed.get(o.document_id)?.push(o.organization);
      }
      const last = rows[rows.length - 1];
      return {
        total,
        documents: rows.map((r) => toDocument(r, routed.get(r.id) ?? [])),
        ...(page.length > count && last ? { next: encodeCursor([Number(last.last_updated), last.id]) } : {}),
      };
    });
  }

  async recordAudit(event: AuditEvent): Promise<void> {
    const now = instantOf(microsOf(this.now()));
    const id = event.id && FHIR_ID.test(event.id) ? event.id : randomUUID();
    const stored: AuditEvent = { ...event, id, meta: { ...event.meta, versionId: '1', lastUpdated: now } };
    const refs = new Set<string>();
    const agents = new Set<string>();
    for (const a of event.agent ?? []) for (const v of [a.altId, a.who?.identifier?.value, a.who?.reference]) if (v) agents.add(v);
    for (const e of event.entity ?? []) for (const v of [e.what?.reference, e.what?.identifier?.value]) if (v) refs.add(v);
    const json = JSON.stringify(stored);
    await this.driver.write(function* () {
      const [row] = yield* sql<{ seq: number | string }>(
        'INSERT INTO store_audit (id, recorded, event) VALUES (?, ?, ?) ON CONFLICT (id) DO NOTHING RETURNING seq',
        id, event.recorded ?? now, json,
      );
      if (!row) return; // the same event recorded twice (a retried call)
      for (const v of agents) yield* sql("INSERT INTO store_audit_ref (audit_seq, kind, value) VALUES (?, 'agent', ?)", Number(row.seq), v);
      for (const v of refs) yield* sql("INSERT INTO store_audit_ref (audit_seq, kind, value) VALUES (?, 'entity', ?)", Number(row.seq), v);
    }, false);
  }

  async searchAudit(query: AuditQuery): Promise<{ total: number; events: AuditEvent[]; next?: string }> {
    if (!Number.isSafeInteger(query.count) || query.count < 0) throw new PasserelleError('REQUEST_INVALID', '_count must be a non-negative integer.');
    const parts: string[] = [];
    const params: SqlValue[] = [];
    for (const [kind, value] of [['agent', query.agent], ['entity', query.entity]] as const) {
      if (value === undefined) continue;
      parts.push(`EXISTS (SELECT 1 FROM store_audit_ref r WHERE r.audit_seq = a.seq AND r.kind = '${kind}' AND r.value = ?)`);
      params.push(value);
    }
    const where = parts.length ? parts.join(' AND ') : '1 = 1';
    const before = query.cursor ? decodeCursor(query.cursor, ['n'])[0] as number : undefined;
    const count = query.count;
    // Most recent first: an operator looks at what just happened.
    return this.driver.read(function* () {
      const [c] = yield* sql<{ n: unknown }>(`SELECT COUNT(*) AS n FROM store_audit a WHERE ${where}`, ...params);
      const total = Number(c?.n ?? 0);
      if (count === 0) return { total, events: [] };
      const page = yield* sql<{ seq: number | string; event: string }>(
        `SELECT a.seq, a.event FROM store_audit a WHERE ${where}${before === undefined ? '' : ' AND a.seq < ?'} ORDER BY a.seq DESC LIMIT ?`,
        ...params, ...(before === undefined ? [] : [before]), count + 1,
      );
      const rows = page.slice(0, count);
      const last = rows[rows.length - 1];
      return {
        total,
        events: rows.map((r) => JSON.parse(r.event) as AuditEvent),
        ...(page.length > count && last ? { next: encodeCursor([Number(last.seq)]) } : {}),
      };
    });
  }

  async ping(): Promise<void> {
    await this.driver.read(function* () {
      yield* sql('SELECT 1 AS one');
    });
  }

  close(): Promise<void> {
    return this.driver.close();
  }
}

interface Filter { where: string; params: SqlValue[] }

/** undefined when the scope can see nothing at all. */
function scopeFilter(scope: Scope): Filter | undefined {
  if (scope === 'all') return { where: '1 = 1', params: [] };
  const orgs = [...new Set(scope.organizations)];
  if (!orgs.length) return undefined;
  return {
    where: `EXISTS (SELECT 1 FROM store_routed_to r WHERE r.document_id = d.id AND r.organization IN (${orgs.map(() => '?').join(', ')}))`,
    params: orgs,
  };
}

/**
 * Token matching (search.html#token): `code` any system, `system|code`, `|code` no system,
 * `system|` any code of the system.
 */
function tokenFilter(system: string, value: string, t: TokenParam): Filter {
  if (t.system === undefined) {
    if (!t.value) throw new PasserelleError('REQUEST_INVALID', 'A token search value needs a system or a code.');
    return { where: `${value} = ?`, params: [t.value] };
  }
  if (t.system === '') return { where: `${system} IS NULL AND ${value} = ?`, params: [t.value] };
  if (t.value === '') return { where: `${system} = ?`, params: [t.system] };
  return { where: `${system} = ? AND ${value} = ?`, params: [t.system, t.value] };
}

function documentFilter(query: SearchQuery, scope: Scope): Filter | undefined {
  const visible = scopeFilter(scope);
  if (!visible) return undefined;
  const parts: Filter[] = [visible];
  const side = (table: string, alias: string, valueColumn: string, tokens: TokenParam[]): void => {
    const each = tokens.map((t) => tokenFilter(`${alias}.system`, `${alias}.${valueColumn}`, t));
    parts.push({
      where: `EXISTS (SELECT 1 FROM ${table} ${alias} WHERE ${alias}.document_id = d.id AND (${each.map((e) => `(${e.where})`).join(' OR ')}))`,
      params: each.flatMap((e) => e.params),
    });
  };
  if (query.identifier) parts.push(tokenFilter('d.identifier_system', 'd.identifier_value', query.identifier));
  if (query.patientIdentifier) side('store_patient_identifier', 'p', 'value', [query.patientIdentifier]);
  if (query.type) side('store_type', 't', 'code', [query.type]);
  if (query.tag?.length) side('store_tag', 'g', 'code', query.tag);
  for (const p of query.lastUpdated ?? []) {
    const bounds = dateBounds(p);
    if (!bounds) throw new PasserelleError('REQUEST_INVALID', '_lastUpdated is not a valid FHIR date.');
    if (bounds.min !== undefined) parts.push({ where: 'd.last_updated >= ?', params: [bounds.min] });
    if (bounds.max !== undefined) parts.push({ where: 'd.last_updated < ?', params: [bounds.max] });
  }
  return { where: parts.map((p) => p.where).join(' AND '), params: parts.flatMap((p) => p.params) };
}

/** The Bundle as served: the store's id, version and lastUpdated, its status as a tag. */
function toDocument(row: DocumentRow, routedTo: string[]): StoredDocument {
  const stored = JSON.parse(row.bundle) as Bundle;
  const versionId = String(row.version);
  const lastUpdated = instantOf(Number(row.last_updated));
  const status = row.status === 'superseded' ? 'superseded' : 'current';
  const tag = [...(stored.meta?.tag ?? []).filter((t) => t.system !== DOCUMENT_STATUS_SYSTEM), statusTag(status)];
  // The id is the store's, not one the Bundle may have carried; id first after resourceType, as FHIR JSON is read.
  const bundle: Bundle = Object.assign({ resourceType: 'Bundle' as const, id: row.id }, forCreate(stored), { meta: { ...stored.meta, versionId, lastUpdated, tag } });
  return { id: row.id, versionId, lastUpdated, documentKey: row.document_key, routedTo, status, bundle };
}
