/**
 * The MSSanté conventions a sender puts in the message header (MSSanté Référentiel #2 §ECO.2 and
 * the ANS PFI guide): `X-MSS-CODECDA`, `X-MSS-INS`, `X-MSS-NIL`, `X-MSS-MES`, and the subject
 * `XDM/1.0/DDM+<libellé> <NOM> <prénom> <JJ/MM/AAAA>`. They are declarations, never trusted: the
 * pipeline recomputes each from the CDA and flags disagreement. Parsing here never throws; what
 * does not follow the convention is returned as `undefined` with a defect.
 */
import { decodedHeader, headerValue, type MimePart } from './mime.js';

export interface MssSubject {
  /** The subject, RFC 2047-decoded. */
  readonly text: string;
  /** Reply/forward prefixes removed from the front (`RE:`, `TR:`, `Fwd:`…). */
  readonly prefixes: readonly string[];
  /** `[KO Intégration système !][<code>]`: this is a failure acknowledgement, not a document. */
  readonly koCode: string | undefined;
  /** The version after `XDM/` (`1.0`). */
  readonly version: string;
  /** Everything after `DDM+`. */
  readonly rest: string;
  /** The trailing birth date, ISO `AAAA-MM-JJ`, when it is a real calendar date. */
  readonly birthDate: string | undefined;
  /** `rest` without the date: `<libellé> <NOM> <prénom>`. Where the label ends and the name starts is not marked. */
  readonly labelAndName: string;
  /**
   * A reading of `labelAndName`: the last word as first name, the upper-case words before it as
   * family name, the rest as label. A guess (labels may end in capitals, names may be compound):
   * to compare with the CDA, prefer `subjectNamesPatient`.
   */
  readonly guess: { readonly label: string; readonly family: string; readonly given: string } | undefined;
}

export interface MssHeaders {
  /** `X-MSS-CODECDA` as written. */
  readonly codeCdaRaw: string | undefined;
  /** The CDA type codes it lists (e.g. LOINC `11490-0`), code part only. */
  readonly codeCda: readonly string[];
  /** `X-MSS-INS`: `O` a qualified INS is present, `N` none. */
  readonly ins: 'O' | 'N' | undefined;
  readonly nil: string | undefined;
  /** `X-MSS-MES` (`FIN` on messages to patients). */
  readonly mes: string | undefined;
  readonly subject: MssSubject | undefined;
  readonly defects: readonly string[];
}

/** Reads the MSSanté header fields of a message (the root part, or the inner message once unwrapped). */
export function readMssHeaders(message: MimePart): MssHeaders {
  const defects: string[] = [];
  const codeCdaRaw = headerValue(message, 'X-MSS-CODECDA');
  const codeCda = codeCdaRaw === undefined ? [] : parseCodeList(codeCdaRaw);
  if (codeCdaRaw !== undefined && codeCda.length === 0) defects.push('X-MSS-CODECDA is empty');

  const insRaw = headerValue(message, 'X-MSS-INS');
  let ins: 'O' | 'N' | undefined;
  if (insRaw !== undefined) {
    const v = insRaw.trim().toUpperCase();
    if (v === 'O' || v === 'N') ins = v;
    else defects.push('X-MSS-INS is neither O nor N');
  }

  const subjectText = decodedHeader(message, 'Subject');
  const subject = subjectText === undefined ? undefined : parseMssSubject(subjectText);
  if (subjectText !== undefined && !subject) defects.push('the subject does not follow XDM/1.0/DDM+…');

  return {
    codeCdaRaw,
    codeCda,
    ins,
    nil: headerValue(message, 'X-MSS-NIL')?.trim(),
    mes: headerValue(message, 'X-MSS-MES')?.trim(),
    subject,
    defects,
  };
}

/**
 * Codes separated by commas, semicolons or spaces; a code written with its system (`11490-0^^LN`,
 * as HL7 v2 CE) keeps its code component only.
 */
function parseCodeList(raw: string): string[] {
  const codes: string[] = [];
  for (const token of raw.split(/[,;\s]+/)) {
    const code = (token.split('^')[0] ?? '').trim();
    if (code !== '' && !codes.includes(code)) codes.push(code);
  }
  return codes.slice(0, 50);
}

const REPLY_PREFIX = /^\s*(re|tr|fw|fwd|réf|ref|aw|wg)\s*(\[\d+\])?\s*:\s*/i;
/** The failure subject of the ANS guide: `[KO Intégration système !][<code>] XDM/1.0/DDM+…`. */
const KO_PREFIX = /^\s*\[KO[^\]]{0,60}\]\s*\[(\d{1,4})\]\s*/i;
const XDM_SUBJECT = /^XDM\/(\d+(?:\.\d+)*)\/DDM\s*\+\s*(.*)$/is;
const TRAILING_DATE = /\s*(\d{2})\/(\d{2})\/(\d{4})\s*$/;
/** A word without lower-case letters but with at least one letter (`DUPONT`, `D'ARC`, `MARTIN-DURAND`). */
const UPPER_WORD = /^(?=.*\p{Lu})[\p{Lu}\p{M}'’-]+$/u;

/** Parses the `XDM/1.0/DDM+…` subject convention; undefined when the subject does not follow it. */
export function parseMssSubject(decoded: string): MssSubject | undefined {
  let text = decoded.replace(/\s+/g, ' ').trim();
  const full = text;
  const prefixes: string[] = [];
  let koCode: string | undefined;
  for (let i = 0; i < 10; i++) {
    const reply = REPLY_PREFIX.exec(text);
    if (reply) {
      prefixes.push(reply[1] ?? '');
      text = text.slice(reply[0].length);
      continue;
    }
    const ko = KO_PREFIX.exec(text);
    if (ko && koCode === undefined) {
      koCode = ko[1];
      text = text.slice(ko[0].length);
      continue;
    }
    break;
  }
  const m = XDM_SUBJECT.exec(text);
  if (!m) return undefined;
  const version = m[1] ?? '';
  const rest = (m[2] ?? '').trim();
  const date = TRAILING_DATE.exec(rest);
  const birthDate = date ? isoDate(date[3] ?? '', date[2] ?? '', date[1] ?? '') : undefined;
  const labelAndName = date ? rest.slice(0, date.index).trim() : rest;
  return { text: full, prefixes, koCode, version, rest, birthDate, labelAndName, guess: guessName(labelAndName) };
}

function isoDate(year: string, month: string, day: string): string | undefined {
  const y = Number(year);
  const mo = Number(month);
  const d = Number(day);
  const t = new Date(Date.UTC(y, mo - 1, d));
  if (t.getUTCFullYear() !== y || t.getUTCMonth() !== mo - 1 || t.getUTCDate() !== d) return undefined;
  return `${year}-${month}-${day}`;
}

function guessName(labelAndName: string): MssSubject['guess'] {
  const words = labelAndName.split(' ').filter((w) => w !== '');
  if (words.length < 2) return undefined;
  const given = words[words.length - 1] as string;
  let i = words.length - 2;
  while (i >= 0 && UPPER_WORD.test(words[i] as string)) i--;
  const familyStart = i + 1;
  if (familyStart > words.length - 2) return undefined; // no capitalised word before the first name
  return { label: words.slice(0, familyStart).join(' '), family: words.slice(familyStart, -1).join(' '), given };
}

/** Case- and accent-insensitive form, for comparing names written by different systems. */
function fold(s: string): string {
  return s.normalize('NFD').replace(/\p{M}/gu, '').replace(/[’']/g, "'").replace(/\s+/g, ' ').trim().toUpperCase();
}

export interface SubjectCheck {
  /** The subject ends with `<family> <given>` before the date. */
  readonly name: boolean;
  /** The subject's date is the patient's birth date (undefined when the subject has none). */
  readonly birthDate: boolean | undefined;
  /** The label is the start of the document's title (the convention cuts it at 40 characters); undefined when not given. */
  readonly label: boolean | undefined;
}

/**
 * Compares the subject with what the CDA says: the patient's family and first given name, birth
 * date (`AAAA-MM-JJ`), and, optionally, the document code's display name. Less ambiguous than
 * splitting the subject, since the expected words are known.
 */
export function subjectNamesPatient(
  subject: MssSubject,
  patient: { family: string; given: string; birthDate?: string | undefined; label?: string | undefined },
): SubjectCheck {
  const text = fold(subject.labelAndName);
  const tail = fold(`${patient.family} ${patient.given}`);
  const name = tail !== '' && (text === tail || text.endsWith(` ${tail}`));
  const birthDate = subject.birthDate === undefined || patient.birthDate === undefined ? undefined : subject.birthDate === patient.birthDate;
  let label: boolean | undefined;
  if (patient.label !== undefined && name) {
    const written = text.slice(0, text.length - tail.length).trim();
    const expected = fold(patient.label);
    // "N documents" stands for several documents (DOMAIN §2).
    label = written !== '' && (expected.startsWith(written) || written.startsWith(expected.slice(0, 40)) || /^\d+ DOCUMENTS$/.test(written));
  }
  return { name, birthDate, label };
}
