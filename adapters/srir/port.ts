/**
 * The regional identity server port (DOMAIN.md §5): IHE PIXm (ITI-83) and PDQm (ITI-78) over FHIR.
 * The adapter only asks; identity-vigilance decisions are made in gateway/identity/.
 * Transport failures and 5xx answers throw PasserelleError('SRIR_UNAVAILABLE') (transient).
 */
import type { Identifier, Patient } from '@medplum/fhirtypes';

export interface PixResult {
  /** The identifiers the server cross-references with the source identifier (empty: unknown to the server). */
  targetIdentifiers: Identifier[];
  /** Patient resources (server logical ids) the server returned as targetId. */
  targetIds: string[];
}

export interface PdqQuery {
  family?: string;
  given?: string;
  birthdate?: string;
  gender?: string;
  identifier?: string; // system|value
}

export interface IdentityServer {
  /** PIXm `Patient/$ihe-pix?sourceIdentifier=system|value[&targetSystem=…]`. A 404 (unknown identifier) resolves with empty lists. */
  pix(sourceIdentifier: { system: string; value: string }, targetSystem?: string): Promise<PixResult>;
  /** PDQm `Patient?…` (all pages). */
  pdq(query: PdqQuery): Promise<Patient[]>;
  /** Reads one Patient by the server's logical id. */
  read(id: string): Promise<Patient | undefined>;
}
