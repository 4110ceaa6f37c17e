/**
 * `GET /fhir/metadata` (http.html#capabilities): what the pull API does, for PTA software and for
 * an external-store adapter probing a passerelle in store-only mode.
 */
import type { CapabilityStatement, CapabilityStatementRestResource } from '@medplum/fhirtypes';

export interface CapabilityOptions {
  baseUrl: string;
  date: string;
  storeOnly: boolean;
}

export function capabilityStatement({ baseUrl, date, storeOnly }: CapabilityOptions): CapabilityStatement {
  const bundle: CapabilityStatementRestResource = {
    type: 'Bundle',
    documentation: 'The document Bundles routed to the reader\'s organization (pta clients) or all of them (admin clients). '
      + 'Searches are sorted by _lastUpdated, which is strictly increasing in commit order: poll with _lastUpdated=gt<last lastUpdated seen>. '
      + 'Paging follows the next link (_count at most 100, default 20); _summary=count gives the total only. '
      + 'Unknown parameters are refused (400) unless Prefer: handling=lenient.',
    interaction: [{ code: 'read' }, { code: 'search-type' }, ...(storeOnly ? [{ code: 'create' as const }] : [])],
    versioning: 'versioned',
    readHistory: false,
    ...(storeOnly ? { conditionalCreate: true } : {}),
    searchParam: [
      { name: 'identifier', definition: 'http://hl7.org/fhir/SearchParameter/Bundle-identifier', type: 'token' },
      {
        name: 'composition', definition: 'http://hl7.org/fhir/SearchParameter/Bundle-composition', type: 'reference',
        documentation: 'Chained only: composition.patient.identifier (token: every identifier of the subject Patient, e.g. the INS) and composition.type (token).',
      },
      { name: '_lastUpdated', definition: 'http://hl7.org/fhir/SearchParameter/Resource-lastUpdated', type: 'date', documentation: 'Prefixes eq, gt, ge, lt, le; repeat to combine.' },
      { name: '_tag', definition: 'http://hl7.org/fhir/SearchParameter/Resource-tag', type: 'token' },
    ],
  };
  const audit: CapabilityStatementRestResource = {
    type: 'AuditEvent',
    documentation: 'Every read and search of the API (admin clients only), most recent first.',
    interaction: [{ code: 'search-type' }, ...(storeOnly ? [{ code: 'create' as const }] : [])],
    searchParam: [
      { name: 'agent', definition: 'http://hl7.org/fhir/SearchParameter/AuditEvent-agent', type: 'reference', documentation: 'The client id of the reader.' },
      { name: 'entity', definition: 'http://hl7.org/fhir/SearchParameter/AuditEvent-entity', type: 'reference', documentation: 'What was read, e.g. Bundle/{id}.' },
    ],
  };
  return {
    resourceType: 'CapabilityStatement',
    status: 'active',
    date,
    publisher: 'passerelle',
    kind: 'instance',
    software: { name: 'passerelle' },
    implementation: { description: storeOnly ? 'passerelle e-parcours store (store-only mode)' : 'passerelle e-parcours pull API', url: baseUrl },
    fhirVersion: '4.0.1',
    format: ['application/fhir+json', 'json'],
    rest: [{
      mode: 'server',
      security: {
        cors: false,
        description: 'Bearer tokens (RFC 6750). A pta client reads the Bundles routed to its organization; an admin reads everything, including AuditEvent.',
      },
      resource: [bundle, audit],
      ...(storeOnly ? { interaction: [{ code: 'transaction' as const, documentation: 'Conditional creates (ifNoneExist) of Bundle resources only.' }] } : {}),
    }],
  };
}
