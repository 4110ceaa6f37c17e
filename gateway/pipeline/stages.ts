/**
 * The stages of the pipeline (ARCHITECTURE.md): an entry carries one or more CDA documents (one
 * for `POST /documents`; those of a mail, once unwrapped and extracted) and each document goes
 * through convert → identify → resolve → route. Each stage does one job on every document and
 * returns what the journal records for operators (codes, decisions, ids: no patient traits). A
 * resumed or replayed entry starts again from its raw bytes: conversion is deterministic and the
 * store is idempotent on the document key, so no intermediate Bundle (patient data) is copied into
 * the journal.
 */
import type { Bundle, Patient } from '@medplum/fhirtypes';
import type { Entry, EntryState } from '../../adapters/journal/port.js';
import type { Directory } from '../../adapters/ror/port.js';
import type { IdentityServer } from '../../adapters/srir/port.js';
import type { DocumentStore } from '../../adapters/store/port.js';
import { convertCda, type ConversionResult } from '../cda/convert.js';
import { PasserelleError, type ErrorCode } from '../errors.js';
import { identify } from '../identity/identify.js';
import { resolveRouting } from '../routing/route.js';
import { documentKey, supersededKeys } from './document-key.js';
import { assertLooksLikeXml } from './sniff.js';

export interface StageNeighbours {
  srir: IdentityServer;
  ror: Directory;
  store: DocumentStore;
  /** Converts a CDA (the pipeline sends large ones to a thread: ConversionThread); inline when absent. */
  convert?: (bytes: Uint8Array) => Promise<ConversionResult>;
}

/** One CDA document of an entry, and what the stages learnt about it. */
export interface DocumentItem {
  raw: Buffer;
  /** Where it came from: `body`, or its path in the XDM zip / attachment name. */
  source: string;
  bundle?: Bundle;
  routedTo?: string[];
  /** The patient id the XDM metadata announces (ITI TF-3 XDSDocumentEntry.patientId): the CDA must agree. */
  expectedPatient?: { root: string; id: string };
  /** What the journal shows about this document (no patient data). */
  info: Record<string, unknown>;
}

export interface EntryWork {
  entry: Entry;
  raw: Buffer;
  overrides: ReadonlySet<ErrorCode>;
  documents: DocumentItem[];
}

export interface Stage {
  name: string;
  /** The entry state once the stage succeeded. */
  reached: EntryState;
  run(work: EntryWork, neighbours: StageNeighbours): Promise<Record<string, unknown>>;
}

const need = (doc: DocumentItem): Bundle => {
  if (!doc.bundle) throw new Error('stage run out of order: no Bundle yet');
  return doc.bundle;
};

/** The journal's view of the documents, after a stage updated their `info`. */
const documentsResult = (work: EntryWork): Record<string, unknown> => ({ documents: work.documents.map((d) => ({ source: d.source, ...d.info })) });

/** The document's patient (a document Bundle has one). */
export function patientOf(bundle: Bundle | undefined): Patient | undefined {
  return bundle?.entry?.find((e) => e.resource?.resourceType === 'Patient')?.resource as Patient | undefined;
}

/** The patient's identifiers as `system|value`, to tell whether two documents are about one patient. */
function patientKeys(bundle: Bundle): string[] {
  return (patientOf(bundle)?.identifier ?? []).filter((i) => i.system && i.value).map((i) => `${i.system ?? ''}|${i.value ?? ''}`);
}

export const DOCUMENT_STAGES: readonly Stage[] = [
  {
    name: 'convert',
    reached: 'converted',
    async run(work, { convert }) {
      for (const doc of work.documents) {
        assertLooksLikeXml(doc.raw, doc.source === 'body' ? 'the body' : 'a document of the message');
        const { bundle, report } = convert ? await convert(doc.raw) : convertCda(doc.raw);
        doc.bundle = bundle;
        const composition = bundle.entry?.[0]?.resource;
        const type = composition?.resourceType === 'Composition' ? composition.type.coding?.[0]?.code : undefined;
        doc.info = { documentKey: documentKey(bundle), documentType: type ?? null, reportIssues: report.issue.length };
        const expected = doc.expectedPatient;
        if (expected && !patientKeys(bundle).includes(`urn:oid:${expected.root}|${expected.id}`)) {
          throw new PasserelleError('XDM_PATIENT_MISMATCH', `${doc.source}: the CDA's patient identifiers do not include the one of METADATA.XML (root ${expected.root})`);
        }
      }
      // One patient per entry (DOMAIN.md §2): documents that share no patient identifier are refused together.
      const [first, ...others] = work.documents.map((d) => patientKeys(need(d)));
      if (first && others.some((keys) => !keys.some((k) => first.includes(k)))) throw new PasserelleError('MESSAGE_MULTIPLE_PATIENTS');
      return documentsResult(work);
    },
  },
  {
    name: 'identify',
    reached: 'identified',
    async run(work, { srir }) {
      for (const doc of work.documents) {
        const { bundle, outcome } = await identify(need(doc), srir, { overrides: work.overrides });
        doc.bundle = bundle;
        doc.info.identity = { status: outcome.status, matched: outcome.matched, reason: outcome.reason };
      }
      return documentsResult(work);
    },
  },
  {
    name: 'resolve',
    reached: 'resolved',
    async run(work, { ror }) {
      for (const doc of work.documents) {
        const { bundle, decision } = await resolveRouting(need(doc), ror);
        doc.bundle = bundle;
        doc.routedTo = decision.dac.identifiers;
        doc.info.routing = decision;
      }
      return documentsResult(work);
    },
  },
  {
    name: 'route',
    reached: 'delivered',
    async run(work, { store }) {
      for (const doc of work.documents) {
        const bundle = need(doc);
        const { id, created } = await store.put({ bundle, documentKey: documentKey(bundle), routedTo: doc.routedTo ?? [], supersedes: supersededKeys(bundle) });
        doc.info.bundle = `Bundle/${id}`;
        doc.info.duplicate = !created;
      }
      return { ...documentsResult(work), bundles: work.documents.map((d) => d.info.bundle) };
    },
  },
];
