/**
 * The one catalogue of error codes. Every failure the gateway can report has a stable code here,
 * with its HTTP status, its SMTP reply (5xx permanent, 4xx transient), the ANS MDN code (900–906,
 * "Transmission au LPS d'un document CDA provenant d'un courriel MSSanté") where one applies, and a
 * human message. The same code is written to the journal, to OperationOutcome
 * `issue.details.coding`, to MDNs, to the console and to logs. The README documents this table.
 */

export interface ErrorDefinition {
  /** HTTP status when the failure answers a request. */
  readonly http: number;
  /** SMTP reply code when the failure answers a mail transaction. */
  readonly smtp: number;
  /** ANS MDN error code (900 version, 901 author, 902 patient, 903 no INS, 904 INS mismatch, 905 incomplete INS, 906 other). */
  readonly mdn: number;
  /** OperationOutcome issue type (http://hl7.org/fhir/issue-type). */
  readonly issueType: 'invalid' | 'structure' | 'too-costly' | 'security' | 'not-supported' | 'exception' | 'processing' | 'business-rule' | 'throttled';
  /** Transient failures are retried; permanent ones are quarantined. */
  readonly transient: boolean;
  readonly message: string;
}

export const ERROR_CATALOGUE = {
  CDA_NOT_WELL_FORMED: {
    http: 400, smtp: 554, mdn: 906, issueType: 'structure', transient: false,
    message: 'The document is not well-formed XML.',
  },
  CDA_DTD_FORBIDDEN: {
    http: 400, smtp: 554, mdn: 906, issueType: 'security', transient: false,
    message: 'The document declares a DTD (DOCTYPE); DTDs and entities are refused.',
  },
  CDA_NOT_A_CLINICAL_DOCUMENT: {
    http: 422, smtp: 554, mdn: 906, issueType: 'invalid', transient: false,
    message: 'The XML does not contain an HL7 CDA R2 ClinicalDocument.',
  },
  CDA_TOO_LARGE: {
    http: 413, smtp: 552, mdn: 906, issueType: 'too-costly', transient: false,
    message: 'The document exceeds the size limit, or converting it needs more memory than the gateway allows.',
  },
  CDA_TOO_DEEP: {
    http: 422, smtp: 554, mdn: 906, issueType: 'too-costly', transient: false,
    message: 'The document nests elements deeper than the limit.',
  },
  CDA_TOO_MANY_ELEMENTS: {
    http: 422, smtp: 554, mdn: 906, issueType: 'too-costly', transient: false,
    message: 'The document has more elements than the limit.',
  },
  CDA_PATIENT_MISSING: {
    http: 422, smtp: 554, mdn: 902, issueType: 'invalid', transient: false,
    message: 'The document has no recordTarget/patientRole: it cannot be attached to a patient.',
  },
  CDA_BODY_MISSING: {
    http: 422, smtp: 554, mdn: 906, issueType: 'invalid', transient: false,
    message: 'The document has neither a structuredBody nor a nonXMLBody.',
  },
  CDA_EMBEDDED_DOCUMENT_INVALID: {
    http: 422, smtp: 554, mdn: 906, issueType: 'invalid', transient: false,
    message: 'The nonXMLBody does not hold the document its media type announces (e.g. no %PDF magic).',
  },
  CDA_VALUE_INVALID: {
    http: 422, smtp: 554, mdn: 906, issueType: 'invalid', transient: false,
    message: 'A value required to build the document Bundle is malformed beyond repair.',
  },
  INPUT_UNREADABLE: {
    http: 400, smtp: 554, mdn: 906, issueType: 'exception', transient: false,
    message: 'The input could not be read (missing file, permission, I/O error).',
  },
  FHIR_OUTPUT_INVALID: {
    http: 500, smtp: 451, mdn: 906, issueType: 'exception', transient: false,
    message: 'The Bundle produced does not conform to the FHIR R4 schema (a converter defect).',
  },
  INPUT_NOT_CDA: {
    http: 415, smtp: 554, mdn: 906, issueType: 'not-supported', transient: false,
    message: 'The content posted as a CDA document, or found as one in a mail, is something else (PDF, JSON, empty, binary).',
  },
  INPUT_TOO_LARGE: {
    http: 413, smtp: 552, mdn: 906, issueType: 'too-costly', transient: false,
    message: 'The request body exceeds the configured size limit.',
  },
  INS_KEY_INVALID: {
    http: 422, smtp: 554, mdn: 905, issueType: 'business-rule', transient: false,
    message: 'The INS matricule has a wrong check key (NIR/NIA key = 97 - number mod 97).',
  },
  IDENTITY_AMBIGUOUS: {
    http: 422, smtp: 554, mdn: 904, issueType: 'business-rule', transient: false,
    message: 'The identity server returned several or uncertain matches: held for identity-vigilance review.',
  },
  IDENTITY_COLLISION: {
    http: 422, smtp: 554, mdn: 904, issueType: 'business-rule', transient: false,
    message: 'The INS is known to the identity server with different strict traits (collision): held for review.',
  },
  SRIR_UNAVAILABLE: {
    http: 503, smtp: 451, mdn: 906, issueType: 'exception', transient: true,
    message: 'The regional identity server (SRIR) could not be reached or answered an error; retried later.',
  },
  ROR_UNAVAILABLE: {
    http: 503, smtp: 451, mdn: 906, issueType: 'exception', transient: true,
    message: 'The directory of health resources (ROR) could not be reached or answered an error; retried later.',
  },
  ROUTING_COMMUNE_UNKNOWN: {
    http: 422, smtp: 554, mdn: 906, issueType: 'business-rule', transient: false,
    message: "The patient's home commune cannot be derived from the address (postal code and city).",
  },
  ROUTING_NO_DAC: {
    http: 422, smtp: 554, mdn: 906, issueType: 'business-rule', transient: false,
    message: "No coordination platform (DAC, ROR category 606) covers the patient's commune, département or région.",
  },
  STORE_UNAVAILABLE: {
    http: 503, smtp: 451, mdn: 906, issueType: 'exception', transient: true,
    message: 'The e-parcours store could not be reached or refused the transaction; retried later.',
  },
  JOURNAL_UNAVAILABLE: {
    http: 503, smtp: 451, mdn: 906, issueType: 'exception', transient: true,
    message: 'The journal could not durably record the input; nothing was accepted.',
  },
  INTAKE_BUSY: {
    http: 503, smtp: 452, mdn: 906, issueType: 'throttled', transient: true,
    message: 'Too many incoming bytes are held in memory right now; nothing was accepted, try again shortly.',
  },
  AUTH_REQUIRED: {
    http: 401, smtp: 530, mdn: 906, issueType: 'security', transient: false,
    message: 'A valid bearer token is required.',
  },
  AUTH_FORBIDDEN: {
    http: 403, smtp: 550, mdn: 906, issueType: 'security', transient: false,
    message: "The client's role does not allow this operation.",
  },
  NOT_FOUND: {
    http: 404, smtp: 550, mdn: 906, issueType: 'not-supported', transient: false,
    message: 'No such resource (or not visible to this client).',
  },
  REQUEST_INVALID: {
    http: 400, smtp: 501, mdn: 906, issueType: 'invalid', transient: false,
    message: 'The request is malformed (parameter, header or body).',
  },
  STATE_CONFLICT: {
    http: 409, smtp: 554, mdn: 906, issueType: 'business-rule', transient: false,
    message: 'The operation does not apply to the entry in its current state.',
  },
  CONFIG_INVALID: {
    http: 500, smtp: 451, mdn: 906, issueType: 'invalid', transient: false,
    message: 'The configuration is invalid.',
  },
  SMIME_MALFORMED: {
    http: 400, smtp: 554, mdn: 906, issueType: 'structure', transient: false,
    message: 'The S/MIME structure (CMS, RFC 5652) is truncated or cannot be parsed.',
  },
  SMIME_NOT_RECIPIENT: {
    http: 422, smtp: 554, mdn: 906, issueType: 'security', transient: false,
    message: "The message is encrypted, but not to the gateway's certificate.",
  },
  SMIME_DECRYPT_FAILED: {
    http: 422, smtp: 554, mdn: 906, issueType: 'security', transient: false,
    message: 'The message could not be decrypted (one code for every decryption failure, by design).',
  },
  SMIME_ALGORITHM_REFUSED: {
    http: 422, smtp: 554, mdn: 906, issueType: 'security', transient: false,
    message: 'A refused algorithm or key size is used (RC2, DES, 3DES, MD5, RSA below 2048 bits).',
  },
  SMIME_SIGNATURE_INVALID: {
    http: 422, smtp: 554, mdn: 906, issueType: 'security', transient: false,
    message: "The signature does not match the signed content or the signer's key.",
  },
  SMIME_SIGNER_NOT_TRUSTED: {
    http: 422, smtp: 554, mdn: 906, issueType: 'security', transient: false,
    message: "The signer's certificate does not chain to a configured trust anchor.",
  },
  SMIME_CRL_OUT_OF_DATE: {
    http: 503, smtp: 451, mdn: 906, issueType: 'exception', transient: true,
    message: "The CRL of a CA in the signer's path is out of date, so revocation is unknown for now: retried until a current CRL is loaded.",
  },
  SMIME_SIGNER_EXPIRED: {
    http: 422, smtp: 554, mdn: 906, issueType: 'security', transient: false,
    message: "The signer's certificate was not valid at signing time (expired or not yet valid).",
  },
  SMIME_SIGNER_REVOKED: {
    http: 422, smtp: 554, mdn: 906, issueType: 'security', transient: false,
    message: "The signer's certificate is revoked by a configured CRL.",
  },
  SMIME_SIGNER_USAGE: {
    http: 422, smtp: 554, mdn: 906, issueType: 'security', transient: false,
    message: "The signer's certificate is not for e-mail signature (key usage, extended key usage).",
  },
  SMIME_SIGNER_MISMATCH: {
    http: 422, smtp: 554, mdn: 906, issueType: 'security', transient: false,
    message: "The signer's certificate e-mail address differs from the message's From.",
  },
  SMIME_POLICY_VIOLATION: {
    http: 422, smtp: 554, mdn: 906, issueType: 'security', transient: false,
    message: 'The message is not signed or not encrypted as the S/MIME policy requires for its sender.',
  },
  MIME_MALFORMED: {
    http: 400, smtp: 554, mdn: 906, issueType: 'structure', transient: false,
    message: 'The message is not a readable MIME message.',
  },
  MIME_NO_DOCUMENT: {
    http: 422, smtp: 554, mdn: 906, issueType: 'invalid', transient: false,
    message: 'The message carries no CDA document: neither an IHE_XDM.zip nor a CDA XML attachment (a PDF alone names no patient and is not integrated).',
  },
  XDM_MALFORMED: {
    http: 422, smtp: 554, mdn: 906, issueType: 'structure', transient: false,
    message: 'The IHE XDM zip is unreadable, or its METADATA.XML is missing or invalid.',
  },
  XDM_LIMIT_EXCEEDED: {
    http: 422, smtp: 554, mdn: 906, issueType: 'too-costly', transient: false,
    message: 'The zip exceeds a limit: entry count, total or entry size, compression ratio.',
  },
  XDM_UNSAFE_ENTRY: {
    http: 422, smtp: 554, mdn: 906, issueType: 'security', transient: false,
    message: 'The zip has an unsafe entry: path traversal, absolute path, link, or encrypted entry.',
  },
  XDM_HASH_MISMATCH: {
    http: 422, smtp: 554, mdn: 906, issueType: 'invalid', transient: false,
    message: "A document's SHA-1 hash in METADATA.XML differs from the document.",
  },
  XDM_SIZE_MISMATCH: {
    http: 422, smtp: 554, mdn: 906, issueType: 'invalid', transient: false,
    message: "A document's size in METADATA.XML differs from the document.",
  },
  XDM_PATIENT_MISMATCH: {
    http: 422, smtp: 554, mdn: 902, issueType: 'business-rule', transient: false,
    message: "The patient id of METADATA.XML differs from the CDA's patient.",
  },
  MESSAGE_MULTIPLE_PATIENTS: {
    http: 422, smtp: 554, mdn: 902, issueType: 'business-rule', transient: false,
    message: 'One message carries documents of several patients.',
  },
  DOCUMENT_MASKED: {
    http: 422, smtp: 554, mdn: 906, issueType: 'business-rule', transient: false,
    message: 'The document is masked from professionals (MASQUE_PS): held, not integrated.',
  },
  SMTP_RELAY_UNAVAILABLE: {
    http: 503, smtp: 451, mdn: 906, issueType: 'exception', transient: true,
    message: 'The SMTP relay for acknowledgements could not be reached or deferred the message; retried later.',
  },
  SMTP_RELAY_REJECTED: {
    http: 502, smtp: 554, mdn: 906, issueType: 'exception', transient: false,
    message: 'The SMTP relay refused the acknowledgement for good.',
  },
  INTERNAL_ERROR: {
    http: 500, smtp: 451, mdn: 906, issueType: 'exception', transient: true,
    message: 'Unexpected internal error.',
  },
} as const satisfies Record<string, ErrorDefinition>;

export type ErrorCode = keyof typeof ERROR_CATALOGUE;

/** The code system of our error codes in OperationOutcome.issue.details.coding. */
export const ERROR_CODE_SYSTEM = 'https://passerelle.dev/fhir/CodeSystem/error-code'; // PASSERELLE_FHIR + /CodeSystem/error-code

/** An error that crosses a boundary: always carries a catalogue code. */
export class PasserelleError extends Error {
  readonly code: ErrorCode;
  /** Where in the input the problem is (an XPath-like expression), when known. */
  readonly location: string | undefined;

  constructor(code: ErrorCode, detail?: string, location?: string) {
    super(detail ?? ERROR_CATALOGUE[code].message);
    this.name = 'PasserelleError';
    this.code = code;
    this.location = location;
  }

  get definition(): ErrorDefinition {
    return ERROR_CATALOGUE[this.code];
  }
}

export function isErrorCode(value: string): value is ErrorCode {
  return Object.prototype.hasOwnProperty.call(ERROR_CATALOGUE, value);
}
