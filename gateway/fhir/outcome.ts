/**
 * OperationOutcome is the only error shape that leaves the gateway (HTTP bodies, CLI output).
 * `issue[0].details.coding[0].code` is the catalogue code; no stack trace ever crosses.
 */
import type { OperationOutcome } from '@medplum/fhirtypes';
import { ERROR_CATALOGUE, ERROR_CODE_SYSTEM, PasserelleError, type ErrorCode } from '../errors.js';

export function outcomeFromError(err: unknown): OperationOutcome {
  const e = err instanceof PasserelleError ? err : new PasserelleError('INTERNAL_ERROR');
  return outcome(e.code, e.message, e.location);
}

export function outcome(code: ErrorCode, diagnostics?: string, location?: string): OperationOutcome {
  const def = ERROR_CATALOGUE[code];
  return {
    resourceType: 'OperationOutcome',
    issue: [{
      severity: 'error',
      code: def.issueType,
      details: { coding: [{ system: ERROR_CODE_SYSTEM, code }], text: def.message },
      diagnostics: diagnostics ?? def.message,
      ...(location ? { expression: [location] } : {}),
    }],
  };
}
