/**
 * A document's identity for idempotence and replacement. The CDA ClinicalDocument/id identifies one
 * version of a document (CDA R2 §4.2.1.1); the converter writes it to Bundle.identifier, and a
 * replacement's relatedDocument[@typeCode=RPLC]/parentDocument/id to Composition.relatesTo
 * (code "replaces"), both through the same II → Identifier mapping, so keys compare as is.
 */
import type { Bundle, Composition, Identifier } from '@medplum/fhirtypes';
import { PasserelleError } from '../errors.js';

const keyOf = (id: Identifier | undefined): string | undefined => (id?.value ? `${id.system ?? ''}|${id.value}` : undefined);

export function documentKey(bundle: Bundle): string {
  const key = keyOf(bundle.identifier);
  if (!key) throw new PasserelleError('CDA_VALUE_INVALID', 'the document has no usable ClinicalDocument/id', '/ClinicalDocument/id');
  return key;
}

export function supersededKeys(bundle: Bundle): string[] {
  const composition = bundle.entry?.[0]?.resource as Composition | undefined;
  return (composition?.relatesTo ?? [])
    .filter((r) => r.code === 'replaces')
    .map((r) => keyOf(r.targetIdentifier))
    .filter((k): k is string => k !== undefined);
}
