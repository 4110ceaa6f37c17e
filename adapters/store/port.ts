/**
 * The e-parcours store port: where routed document Bundles live and where PTA software pulls them
 * (CONTRACT.md, HTTP API /fhir). Built in (same database as the journal) or any FHIR R4 server.
 */
import type { AuditEvent, Bundle } from '@medplum/fhirtypes';

export interface StoredDocument {
  /** Logical id of the stored Bundle (`Bundle/{id}`). */
  id: string;
  versionId: string;
  /** ISO instant, strictly increasing in commit order across the whole store. */
  lastUpdated: string;
  /** The document's identity: CDA id, or setId + version (see gateway/pipeline). */
  documentKey: string;
  /** Identifiers (system|value) of the DAC/PTA organizations the document is routed to. */
  routedTo: string[];
  status: 'current' | 'superseded';
  bundle: Bundle;
}

export interface PutRequest {
  bundle: Bundle;
  documentKey: string;
  routedTo: string[];
  /** documentKeys this document replaces (CDA relatedDocument RPLC): marked superseded. */
  supersedes: string[];
}

export interface PutResult {
  id: string;
  /** false when a document with the same documentKey was already stored (idempotent retry or re-post). */
  created: boolean;
}

export interface TokenParam { system?: string; value: string }
export interface DateParam { prefix: 'eq' | 'gt' | 'ge' | 'lt' | 'le'; value: string }

export interface SearchQuery {
  identifier?: TokenParam;
  patientIdentifier?: TokenParam;
  type?: TokenParam;
  /** meta.tag: any of these codings (one `_tag` parameter, comma-separated; search.html#_tag). */
  tag?: TokenParam[];
  lastUpdated?: DateParam[];
  count: number;
  /** Opaque cursor from a previous page's `next`. */
  cursor?: string;
}

/** Which routed organizations a reader may see; 'all' for admins. */
export type Scope = { organizations: readonly string[] } | 'all';

export interface SearchResult {
  total: number;
  documents: StoredDocument[];
  /** Cursor of the next page, absent on the last one. */
  next?: string;
}

export interface AuditQuery { count: number; cursor?: string; agent?: string; entity?: string }

export interface DocumentStore {
  init(): Promise<void>;
  /** Idempotent on documentKey: a retry or a re-post never stores a second copy. */
  put(request: PutRequest): Promise<PutResult>;
  /** undefined when absent or outside the scope (indistinguishable on purpose). */
  read(id: string, scope: Scope): Promise<StoredDocument | undefined>;
  search(query: SearchQuery, scope: Scope): Promise<SearchResult>;
  recordAudit(event: AuditEvent): Promise<void>;
  searchAudit(query: AuditQuery): Promise<{ total: number; events: AuditEvent[]; next?: string }>;
  ping(): Promise<void>;
  close(): Promise<void>;
}
