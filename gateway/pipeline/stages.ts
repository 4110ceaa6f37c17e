/**
 * The stages of a CDA document entry (ARCHITECTURE.md, pipeline): convert → identify → resolve →
 * route. Each stage does one job on the document state and returns what the journal records for
 * operators (codes, decisions, ids: no patient traits). A resumed or replayed entry starts again
 * from its raw bytes: conversion is deterministic and the store is idempotent on the document key,
 * so the intermediate Bundle (patient data) is never copied into the journal.
 */
import type { Bundle } from '@medplum/fhirtypes';
import type { EntryState } from '../../adapters/journal/port.js';
import type { Directory } from '../../adapters/ror/port.js';
import type { IdentityServer } from '../../adapters/srir/port.js';
import type { DocumentStore } from '../../adapters/store/port.js';
import { convertCda } from '../cda/convert.js';
import type { ErrorCode } from '../errors.js';
import { identify } from '../identity/identify.js';
import { resolveRouting } from '../routing/route.js';
import { documentKey, supersededKeys } from './document-key.js';
import { assertLooksLikeXml } from './sniff.js';

export interface StageNeighbours {
  srir: IdentityServer;
  ror: Directory;
  store: DocumentStore;
}

export interface DocumentWork {
  raw: Buffer;
  overrides: ReadonlySet<ErrorCode>;
  bundle?: Bundle;
  routedTo?: string[];
}

export interface Stage {
  name: string;
  /** The entry state once the stage succeeded. */
  reached: EntryState;
  run(work: DocumentWork, neighbours: StageNeighbours): Promise<Record<string, unknown>>;
}

const need = (work: DocumentWork): Bundle => {
  if (!work.bundle) throw new Error('stage run out of order: no Bundle yet');
  return work.bundle;
};

export const DOCUMENT_STAGES: readonly Stage[] = [
  {
    name: 'convert',
    reached: 'converted',
    run(work) {
      assertLooksLikeXml(work.raw);
      const { bundle, report } = convertCda(work.raw);
      work.bundle = bundle;
      const composition = bundle.entry?.[0]?.resource;
      const type = composition?.resourceType === 'Composition' ? composition.type.coding?.[0]?.code : undefined;
      return Promise.resolve({ documentKey: documentKey(bundle), documentType: type ?? null, reportIssues: report.issue.length });
    },
  },
  {
    name: 'identify',
    reached: 'identified',
    async run(work, { srir }) {
      const { bundle, outcome } = await identify(need(work), srir, { overrides: work.overrides });
      work.bundle = bundle;
      return { identity: { status: outcome.status, matched: outcome.matched, reason: outcome.reason } };
    },
  },
  {
    name: 'resolve',
    reached: 'resolved',
    async run(work, { ror }) {
      const { bundle, decision } = await resolveRouting(need(work), ror);
      work.bundle = bundle;
      work.routedTo = decision.dac.identifiers;
      return { routing: decision };
    },
  },
  {
    name: 'route',
    reached: 'delivered',
    async run(work, { store }) {
      const bundle = need(work);
      const { id, created } = await store.put({ bundle, documentKey: documentKey(bundle), routedTo: work.routedTo ?? [], supersedes: supersededKeys(bundle) });
      return { bundles: [`Bundle/${id}`], duplicate: !created };
    },
  },
];
