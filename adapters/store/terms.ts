/**
 * What the built-in store indexes of a document Bundle, one column or side-table row per search
 * parameter value: Bundle.identifier (Bundle `identifier`), the identifiers of the Composition's
 * subject Patient (chain `composition.patient.identifier`), Composition.type codings
 * (`composition.type`) and meta.tag (`_tag`). In a document the Composition is the first entry
 * (documents.html#content, bdl-11); its subject is resolved inside the Bundle by fullUrl, or by
 * type and id for a relative reference (bundle.html#references).
 */
import type { Bundle, Coding, Composition, Identifier, Patient, Reference } from '@medplum/fhirtypes';

export interface Token { system: string | null; value: string }

export interface IndexTerms {
  identifier: Token | null;
  patientIdentifiers: Token[];
  types: Token[];
  tags: Token[];
}

const token = (system: string | undefined, value: string | undefined): Token | null =>
  value ? { system: system || null, value } : null;

const unique = (tokens: (Token | null)[]): Token[] => {
  const seen = new Map<string, Token>();
  for (const t of tokens) if (t) seen.set(`${t.system ?? ''}\u0000${t.value}`, t);
  return [...seen.values()];
};

export function indexTerms(bundle: Bundle): IndexTerms {
  const composition = bundle.entry?.find((e) => e.resource?.resourceType === 'Composition')?.resource as Composition | undefined;
  const patient = composition?.subject ? resolvePatient(bundle, composition.subject) : undefined;
  const subjectIds: (Identifier | undefined)[] = [...(patient?.identifier ?? []), composition?.subject?.identifier];
  return {
    identifier: token(bundle.identifier?.system, bundle.identifier?.value),
    patientIdentifiers: unique(subjectIds.map((i) => token(i?.system, i?.value))),
    types: unique((composition?.type?.coding ?? []).map((c: Coding) => token(c.system, c.code))),
    tags: unique((bundle.meta?.tag ?? []).map((c: Coding) => token(c.system, c.code))),
  };
}

function resolvePatient(bundle: Bundle, subject: Reference): Patient | undefined {
  const ref = subject.reference;
  if (!ref) return undefined;
  const entries = bundle.entry ?? [];
  const byUrl = entries.find((e) => e.fullUrl === ref)?.resource;
  if (byUrl?.resourceType === 'Patient') return byUrl;
  const m = /^Patient\/([A-Za-z0-9\-.]{1,64})$/.exec(ref);
  if (!m) return undefined;
  const byId = entries.find((e) => e.resource?.resourceType === 'Patient' && e.resource.id === m[1])?.resource;
  return byId?.resourceType === 'Patient' ? byId : undefined;
}
