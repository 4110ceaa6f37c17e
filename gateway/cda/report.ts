/**
 * The conversion report: an OperationOutcome of everything noteworthy that did not stop the
 * conversion (repairs, assumptions, unmapped content). Each issue carries a stable report code
 * (documented in the README) and the CDA location as an XPath-like expression.
 */
import type { OperationOutcome, OperationOutcomeIssue } from '@medplum/fhirtypes';
import { ERROR_CODE_SYSTEM } from '../errors.js';
import { pathOf, type XElement } from './xml.js';

/** Stable codes of the conversion report, one line each in the README. */
export const REPORT_CODES = {
  CDA_WRAPPED: 'The ClinicalDocument was found inside another root element.',
  CDA_NO_NAMESPACE: 'The ClinicalDocument is not in the urn:hl7-org:v3 namespace.',
  CDA_ID_MISSING: 'ClinicalDocument/id is missing; an identifier was derived from the bytes.',
  TIME_ZONE_ASSUMED: 'A time without a zone took the document zone (else Europe/Paris at that date).',
  TIME_REPAIRED: 'A malformed timestamp was repaired (missing seconds, short offset).',
  TIME_INVALID: 'A timestamp could not be read and was left out.',
  UNIT_REPAIRED: 'A time unit written otherwise than in UCUM (J for d, "sem", "mois"…) was read as its UCUM unit.',
  ID_INVALID: 'An identifier root is neither an OID nor a UUID.',
  INS_KEY_INVALID: 'The INS matricule fails its key check (97 − n mod 97).',
  INS_MISSING: 'The patient has no INS identifier.',
  CODE_NOT_STANDARD: 'A code is outside the value set FHIR binds; kept as security label or extension.',
  ACTOR_CONFLICT: 'The same identifier names different persons or organisations; kept apart.',
  ENCOUNTER_CLASS_ABSENT: 'encompassingEncounter has no code: Encounter.class states data-absent-reason.',
  NARRATIVE_CHANGED: 'Narrative markup was changed to fit FHIR XHTML rules.',
  SECTION_EMPTY: 'A section had no narrative, entry or sub-section.',
  SECTION_ENTRIES_MOVED: 'A section had both entries and sub-sections; its entries moved into a sub-section.',
  ENTRY_NOT_MAPPED: 'An entry was not mapped to a resource; it remains in the section narrative.',
  ENTRY_INCOMPLETE: 'An entry lacked data a FHIR resource requires; absent values are stated, not invented.',
  MEDIA_TYPE_MISMATCH: 'Embedded data does not match its declared media type.',
  MEDIA_REFERENCE_UNRESOLVED: 'A renderMultiMedia points to no observationMedia.',
  BODY_REFERENCE_EXTERNAL: 'The nonXMLBody references an external document instead of embedding it.',
  VALUE_NULL_FLAVOR: 'A required value has a nullFlavor.',
} as const;
export type ReportCode = keyof typeof REPORT_CODES;

type Severity = 'information' | 'warning' | 'error';

/** Remarks kept per conversion; the rest are counted in one closing remark. */
const MAX_ISSUES = 1000;

export class Report {
  readonly issues: OperationOutcomeIssue[] = [];
  private readonly seen = new Set<string>();
  private dropped = 0;

  warn(code: ReportCode, diagnostics: string, where?: XElement | string): void {
    this.push('warning', code, diagnostics, where);
  }

  info(code: ReportCode, diagnostics: string, where?: XElement | string): void {
    this.push('information', code, diagnostics, where);
  }

  private push(severity: Severity, code: ReportCode, diagnostics: string, where?: XElement | string): void {
    const issue: OperationOutcomeIssue = {
      severity,
      code: severity === 'information' ? 'informational' : 'value',
      details: { coding: [{ system: ERROR_CODE_SYSTEM, code }], text: REPORT_CODES[code] },
      diagnostics,
    };
    if (where !== undefined) issue.expression = [typeof where === 'string' ? where : pathOf(where)];
    // One value read twice (e.g. effectiveTime for Composition.date and Bundle.timestamp) is one remark.
    const key = `${code}|${diagnostics}|${issue.expression?.[0] ?? ''}`;
    if (this.seen.has(key)) return;
    // A hostile document could ask for millions of remarks: keep the first ones, count the rest.
    if (this.issues.length >= MAX_ISSUES) {
      this.dropped++;
      return;
    }
    this.seen.add(key);
    this.issues.push(issue);
  }

  toOperationOutcome(): OperationOutcome {
    const issue = this.issues.length
      ? [...this.issues]
      : [{ severity: 'information' as const, code: 'informational' as const, diagnostics: 'Converted without remarks.' }];
    if (this.dropped) {
      issue.push({ severity: 'information', code: 'informational', diagnostics: `${this.dropped} further remarks not listed.` });
    }
    return { resourceType: 'OperationOutcome', issue };
  }
}
