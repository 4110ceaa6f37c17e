/**
 * The ROR port (DOMAIN.md §6): the national directory of health resources, a FHIR API.
 * Transport failures and 5xx answers throw PasserelleError('ROR_UNAVAILABLE') (transient) unless
 * the adapter's cache can serve a stale answer.
 */
import type { HealthcareService, Organization } from '@medplum/fhirtypes';

export interface Directory {
  /** `Organization?identifier=system|value&_include=Organization:partof` — the organization and its parents. */
  organizationsByIdentifier(system: string, value: string): Promise<Organization[]>;
  /**
   * `HealthcareService?intervention-zone=<code>&organization.type=…|606&_include=HealthcareService:organization`
   * (all pages): the DAC services whose zone has this COG code at this level, with their organizations.
   */
  dacServicesByZone(level: 'commune' | 'departement' | 'region', code: string): Promise<{ services: HealthcareService[]; organizations: Organization[] }>;
}
