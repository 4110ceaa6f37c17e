/**
 * The meta.tag codings the store uses (resource.html#Meta: tags are "not part of the content" and
 * searchable with `_tag` on any server, search.html#_tag), so that routing, identity and
 * replacement survive a round trip through any FHIR R4 server.
 *
 * A document key is free text (a CDA `root|extension`, `sha256|…`) and a Coding.code may hold no
 * `|`, `,` or leading/trailing spaces unescaped in a search, so keys travel base64url-encoded.
 * Routed-to codes stay readable (`system|value`): searches escape their `|` (search.html#escaping).
 */
import type { Bundle, Coding } from '@medplum/fhirtypes';
import { PASSERELLE_FHIR } from '../../gateway/cda/terminology.js';
import type { StoredDocument } from './port.js';

/** One tag per organization the document is routed to (code: the organization's `system|value`). */
export const ROUTED_TO_SYSTEM = `${PASSERELLE_FHIR}/CodeSystem/routed-to`;
/** The document key, base64url-encoded: the idempotence key of a conditional create. */
export const DOCUMENT_KEY_SYSTEM = `${PASSERELLE_FHIR}/CodeSystem/document-key`;
/** One tag per document key this document replaces (CDA relatedDocument RPLC), base64url-encoded. */
export const SUPERSEDES_SYSTEM = `${PASSERELLE_FHIR}/CodeSystem/supersedes`;
/** current | superseded, as served to readers. */
export const DOCUMENT_STATUS_SYSTEM = `${PASSERELLE_FHIR}/CodeSystem/document-status`;

const INTERNAL = new Set([ROUTED_TO_SYSTEM, DOCUMENT_KEY_SYSTEM, SUPERSEDES_SYSTEM, DOCUMENT_STATUS_SYSTEM]);

export const encodeKey = (key: string): string => Buffer.from(key, 'utf8').toString('base64url');

export function decodeKey(code: string): string | undefined {
  if (!/^[A-Za-z0-9_-]+$/.test(code)) return undefined;
  const key = Buffer.from(code, 'base64url').toString('utf8');
  return encodeKey(key) === code ? key : undefined;
}

export function statusTag(status: StoredDocument['status']): Coding {
  return { system: DOCUMENT_STATUS_SYSTEM, code: status };
}

/** The store's own tags of one system. */
export function tagCodes(tags: readonly Coding[] | undefined, system: string): string[] {
  return (tags ?? []).filter((t) => t.system === system && typeof t.code === 'string').map((t) => t.code as string);
}

/** Tags that are not the store's bookkeeping. */
export function foreignTags(tags: readonly Coding[] | undefined): Coding[] {
  return (tags ?? []).filter((t) => !(t.system && INTERNAL.has(t.system)));
}

/** A Bundle as a create carries it: the server assigns id, versionId and lastUpdated (http.html#create). */
export function forCreate(bundle: Bundle): Bundle {
  const copy: Bundle = { ...bundle, ...(bundle.meta ? { meta: { ...bundle.meta } } : {}) };
  delete copy.id;
  if (copy.meta) {
    delete copy.meta.versionId;
    delete copy.meta.lastUpdated;
  }
  return copy;
}
