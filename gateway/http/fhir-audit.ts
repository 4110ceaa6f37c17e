/**
 * The AuditEvent recorded for every read and search of the pull API by a known client
 * (auditevent.html: type `rest`, subtype the RESTful interaction, one requesting agent, the
 * entities read). A search records its query (entity.query, base64, role 24 "Query") and every
 * Bundle it returned, so "who saw this document" is one `entity=Bundle/{id}` search away.
 * Nothing from the documents themselves is copied in: only references and the query as sent.
 */
import type { AuditEvent, AuditEventEntity } from '@medplum/fhirtypes';
import { PASSERELLE_FHIR } from '../cda/terminology.js';
import { ERROR_CATALOGUE, PasserelleError } from '../errors.js';
import type { ClientIdentity } from './state.js';

export const CLIENT_ID_SYSTEM = `${PASSERELLE_FHIR}/NamingSystem/client-id`;
export const CLIENT_ROLE_SYSTEM = `${PASSERELLE_FHIR}/CodeSystem/client-role`;

export type AuditSubtype = 'read' | 'search-type';

const ENTITY_TYPE = 'http://terminology.hl7.org/CodeSystem/audit-entity-type';
const OBJECT_ROLE = 'http://terminology.hl7.org/CodeSystem/object-role';

export function resourceEntity(reference: string): AuditEventEntity {
  return {
    what: { reference },
    type: { system: ENTITY_TYPE, code: '2', display: 'System Object' },
    role: { system: OBJECT_ROLE, code: '4', display: 'Domain Resource' },
  };
}

export function queryEntity(query: string): AuditEventEntity {
  return {
    type: { system: ENTITY_TYPE, code: '2', display: 'System Object' },
    role: { system: OBJECT_ROLE, code: '24', display: 'Query' },
    query: Buffer.from(query, 'utf8').toString('base64'),
  };
}

export interface AuditInput {
  client: ClientIdentity;
  subtype: AuditSubtype;
  recorded: Date;
  entities: AuditEventEntity[];
  /** The error the request ended with, if any. */
  failure?: unknown;
  address?: string;
}

export function auditEvent(input: AuditInput): AuditEvent {
  const { client, failure } = input;
  const code = failure instanceof PasserelleError ? failure.code : failure === undefined ? undefined : 'INTERNAL_ERROR';
  // audit-event-outcome: 0 success, 4 minor failure (the client's), 8 serious failure (ours).
  const outcome = code === undefined ? '0' : ERROR_CATALOGUE[code].http < 500 ? '4' : '8';
  return {
    resourceType: 'AuditEvent',
    type: { system: 'http://terminology.hl7.org/CodeSystem/audit-event-type', code: 'rest', display: 'RESTful Operation' },
    subtype: [{ system: 'http://hl7.org/fhir/restful-interaction', code: input.subtype }],
    // R4 AuditEvent.action: R for a read, E ("perform a query/search operation") for a search.
    action: input.subtype === 'read' ? 'R' : 'E',
    recorded: input.recorded.toISOString(),
    outcome,
    ...(code ? { outcomeDesc: code } : {}),
    agent: [{
      who: { identifier: { system: CLIENT_ID_SYSTEM, value: client.id }, display: client.id },
      altId: client.id,
      requestor: true,
      role: [{ coding: [{ system: CLIENT_ROLE_SYSTEM, code: client.role }], ...(client.organization ? { text: client.organization } : {}) }],
      ...(input.address ? { network: { address: input.address, type: '2' as const } } : {}),
    }],
    source: {
      observer: { display: 'passerelle' },
      type: [{ system: 'http://terminology.hl7.org/CodeSystem/security-source-type', code: '4', display: 'Application Server' }],
    },
    ...(input.entities.length ? { entity: input.entities } : {}),
  };
}
