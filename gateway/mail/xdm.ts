/**
 * Reader of IHE XDM media (IHE ITI TF-1 §16; the media layout is transaction ITI-32, ITI TF-2
 * §3.32): the `IHE_XDM.zip` of an MSSanté message. The zip is hostile until proven otherwise:
 * - limits are enforced while reading: the entry count and every declared size before anything is
 *   inflated, then the actual output of each entry as it streams (an entry that inflates past its
 *   declared size, its limit, the total budget or the compression ratio is stopped at once), so a
 *   zip bomb is refused in bounded memory and time;
 * - names are checked on every entry, read or not: `..`, absolute paths, drive letters,
 *   backslashes, control characters, duplicates; symbolic links and other special files (external
 *   attributes) and encrypted entries are refused;
 * - METADATA.XML goes through the project's hardened XML parser (no DTD, no entity).
 * Only METADATA.XML and the documents it lists are inflated; each document's SHA-1 and size are
 * checked against its `hash` and `size` slots (ITI TF-3 §4.2.3.2, DocumentEntry.hash and .size).
 */
import { createHash } from 'node:crypto';
import { crc32, inflateRawSync } from 'node:zlib';
import type { Readable } from 'node:stream';
import yauzl, { type Entry, type ZipFile } from 'yauzl';
import { PasserelleError } from '../errors.js';
import { parseXml, type XElement } from '../cda/xml.js';

export interface XdmLimits {
  /** Entries in the zip, directories included (default 200). */
  maxEntries: number;
  /** Uncompressed bytes over all entries (default 100 MB). */
  maxTotalBytes: number;
  /** Uncompressed bytes of one entry (default 50 MB). */
  maxEntryBytes: number;
  /** Uncompressed / compressed size of one entry (default 100). */
  maxRatio: number;
  /**
   * Output below which the ratio is not checked (default 1 MB): small, very regular files (an
   * empty-ish README, a short XML) legitimately compress beyond 100:1, and a bomb needs volume.
   */
  ratioFloorBytes: number;
}

export const DEFAULT_XDM_LIMITS: XdmLimits = {
  maxEntries: 200,
  maxTotalBytes: 100 * 1024 * 1024,
  maxEntryBytes: 50 * 1024 * 1024,
  maxRatio: 100,
  ratioFloorBytes: 1024 * 1024,
};

/** A coded value of the metadata: a Classification's nodeRepresentation, codingScheme slot and display name. */
export interface XdmCode {
  readonly code: string;
  readonly codingScheme: string | undefined;
  readonly display: string | undefined;
}

/** An HL7 v2 CX patient identifier as XDS writes it: `id^^^&root&ISO` (ITI TF-3 §4.2.3.1.7). */
export interface XdmPatientId {
  readonly raw: string;
  readonly id: string;
  /** The assigning authority's OID, when given. */
  readonly root: string | undefined;
}

export interface XdmSubmissionSet {
  /** The RegistryPackage `id` (entryUUID or symbolic id). */
  readonly id: string;
  readonly uniqueId: string | undefined;
  readonly sourceId: string | undefined;
  readonly patientId: XdmPatientId | undefined;
  readonly submissionTime: string | undefined;
  readonly title: string | undefined;
  readonly contentTypeCode: XdmCode | undefined;
  /** Where the METADATA.XML was found, e.g. `IHE_XDM/SUBSET01/METADATA.XML`. */
  readonly metadataPath: string;
}

export interface XdmDocument {
  /** The ExtrinsicObject `id` (entryUUID or symbolic id). */
  readonly id: string;
  readonly uniqueId: string | undefined;
  /** The entry of the zip holding the document. */
  readonly path: string;
  /** The `URI` slot as written. */
  readonly uri: string;
  readonly bytes: Buffer;
  readonly mimeType: string | undefined;
  /** SHA-1, lower-case hex (checked). */
  readonly hash: string;
  /** Bytes (checked). */
  readonly size: number;
  /** XDSDocumentEntry.patientId (the affinity domain's id). */
  readonly patientId: XdmPatientId | undefined;
  /** The `sourcePatientId` slot (the source's own id). */
  readonly sourcePatientId: XdmPatientId | undefined;
  readonly confidentialityCodes: readonly XdmCode[];
  /** Confidentiality `MASQUE_PS` (French code system 1.2.250.1.213.1.1.4.13): not to be integrated automatically. */
  readonly masked: boolean;
  readonly formatCode: XdmCode | undefined;
  readonly typeCode: XdmCode | undefined;
  readonly classCode: XdmCode | undefined;
  readonly creationTime: string | undefined;
  readonly title: string | undefined;
}

export interface XdmContent {
  readonly submissionSet: XdmSubmissionSet;
  readonly documents: readonly XdmDocument[];
  /** Tolerated departures from the profile, for the journal. */
  readonly warnings: readonly string[];
}

// ebRIM 3.0 / XDS identifiers (ITI TF-3 §4.2.5, Table 4.2.5-1).
const RIM_NS = 'urn:oasis:names:tc:ebxml-regrep:xsd:rim:3.0';
const LCM_NS = 'urn:oasis:names:tc:ebxml-regrep:xsd:lcm:3.0';
const SUBMISSION_SET_NODE = 'urn:uuid:a54d6aa5-d40d-43f9-88c5-b4633d873bdd';
const SCHEME = {
  docPatientId: 'urn:uuid:58a6f841-87b3-4a3e-92fd-a8ffeff98427',
  docUniqueId: 'urn:uuid:2e82c1f6-a085-4c72-9da3-8640a32e42ab',
  confidentiality: 'urn:uuid:f4f85eac-e6cb-4883-b524-f2705394840f',
  format: 'urn:uuid:a09d5840-386c-46f2-b5ad-9c3699a4309d',
  type: 'urn:uuid:f0306f51-975f-434e-a61c-c59651d33983',
  class: 'urn:uuid:41a5887f-8865-4c09-adf7-e362475b143a',
  setPatientId: 'urn:uuid:6b5aea1a-874d-4603-a4bc-96a0a7b38446',
  setUniqueId: 'urn:uuid:96fdda7c-d067-4183-912e-bf5ee74998a8',
  setSourceId: 'urn:uuid:554ac39e-e3fe-47fe-b233-965d2a147832',
  setContentType: 'urn:uuid:aa543740-bdda-424e-8c96-df4873be8500',
} as const;
/** ANS "masqué aux professionnels de santé" (JDV confidentiality codes, system 1.2.250.1.213.1.1.4.13). */
const MASKED_CODE = 'MASQUE_PS';

/** `IHE_XDM/<subset>/METADATA.XML`, any casing (ITI-32 media layout; Direct writes `IHE_XDM/Default/`). */
const METADATA_PATH = /^IHE_XDM\/([^/]+)\/METADATA\.XML$/i;

const S_IFMT = 0o170000;
const S_IFREG = 0o100000;
const S_IFDIR = 0o040000;
/** Windows FILE_ATTRIBUTE_REPARSE_POINT: how NTFS symbolic links and junctions show in the DOS attributes. */
const REPARSE_POINT = 0x400;
/** "Version made by" hosts whose external attributes carry a Unix mode in the high 16 bits (APPNOTE §4.4.2). */
const UNIX_HOSTS = new Set([3, 19]);

interface Budget {
  total: number;
}

/** Reads an IHE XDM zip. Throws PasserelleError with an XDM_* (or MESSAGE_MULTIPLE_PATIENTS) code. */
export async function readXdm(zip: Buffer, limits: Partial<XdmLimits> = {}): Promise<XdmContent> {
  const lim: XdmLimits = { ...DEFAULT_XDM_LIMITS, ...limits };
  const zipfile = await open(zip);
  try {
    return await readOpened(zipfile, lim);
  } finally {
    zipfile.close();
  }
}

function open(zip: Buffer): Promise<ZipFile> {
  return new Promise((resolve, reject) => {
    // Names are decoded and checked here, not by yauzl, so that each refusal gets its own code;
    // entry sizes are checked here too, against our limits and while streaming.
    yauzl.fromBuffer(zip, { lazyEntries: true, autoClose: false, decodeStrings: false, validateEntrySizes: false }, (err, zipfile) => {
      if (err) reject(new PasserelleError('XDM_MALFORMED', `Not a readable zip: ${firstLine(err)}`));
      else resolve(zipfile);
    });
  });
}

function firstLine(err: unknown): string {
  const message = err instanceof Error ? err.message : String(err);
  return (message.split('\n')[0] ?? '').slice(0, 200);
}

interface CheckedEntry {
  readonly entry: Entry;
  readonly name: string;
  readonly directory: boolean;
}

async function readOpened(zipfile: ZipFile, lim: XdmLimits): Promise<XdmContent> {
  if (zipfile.entryCount > lim.maxEntries) {
    throw new PasserelleError('XDM_LIMIT_EXCEEDED', `The zip has ${zipfile.entryCount} entries; the limit is ${lim.maxEntries}.`);
  }
  const entries = await listEntries(zipfile, lim);
  const warnings: string[] = [];

  const metadata = entries.filter((e) => !e.directory && METADATA_PATH.test(e.name));
  if (metadata.length === 0) throw new PasserelleError('XDM_MALFORMED', 'No IHE_XDM/<subset>/METADATA.XML in the zip.');
  if (metadata.length > 1) {
    // Several subsets are several submission sets; an MSSanté message carries one (DOMAIN §2).
    throw new PasserelleError('XDM_MALFORMED', `The zip holds ${metadata.length} submission sets (METADATA.XML files); one is expected.`);
  }
  const meta = metadata[0] as CheckedEntry;
  const subsetDir = meta.name.slice(0, meta.name.lastIndexOf('/') + 1);
  const budget: Budget = { total: 0 };
  const metadataBytes = await inflate(zipfile, meta, lim, budget);

  let root: XElement;
  try {
    root = parseXml(metadataBytes, { maxBytes: lim.maxEntryBytes, maxDepth: 64, maxElements: 200_000 });
  } catch (err) {
    // A DTD (XXE, entity expansion) or broken XML in the metadata: the media is unreadable.
    const code = err instanceof PasserelleError ? `${err.code}: ` : '';
    throw new PasserelleError('XDM_MALFORMED', `${meta.name}: ${code}${firstLine(err)}`);
  }
  const parsed = readMetadata(root, meta.name, warnings);

  const byName = new Map<string, CheckedEntry>();
  const byLowerName = new Map<string, CheckedEntry[]>();
  for (const e of entries) {
    if (e.directory) continue;
    byName.set(e.name, e);
    const list = byLowerName.get(e.name.toLowerCase()) ?? [];
    list.push(e);
    byLowerName.set(e.name.toLowerCase(), list);
  }

  const used = new Set<string>();
  const documents: XdmDocument[] = [];
  for (const doc of parsed.documents) {
    const target = resolveUri(doc.uri, subsetDir, byName, byLowerName, warnings);
    if (used.has(target.name)) throw new PasserelleError('XDM_MALFORMED', `Two documents of METADATA.XML point to ${target.name}.`);
    used.add(target.name);
    if (target.name === meta.name) throw new PasserelleError('XDM_MALFORMED', 'A document of METADATA.XML points to METADATA.XML itself.');
    const bytes = await inflate(zipfile, target, lim, budget);
    if (bytes.length !== doc.size) {
      throw new PasserelleError('XDM_SIZE_MISMATCH', `${target.name} is ${bytes.length} bytes; METADATA.XML says ${doc.size}.`, doc.id);
    }
    const actual = createHash('sha1').update(bytes).digest('hex');
    if (actual !== doc.hash) {
      throw new PasserelleError('XDM_HASH_MISMATCH', `The SHA-1 of ${target.name} differs from METADATA.XML.`, doc.id);
    }
    documents.push({ ...doc, path: target.name, bytes });
  }

  checkSinglePatient(parsed.submissionSet.patientId, documents);
  return { submissionSet: parsed.submissionSet, documents, warnings };
}

/** Reads the central directory, checking every entry before anything is inflated. */
async function listEntries(zipfile: ZipFile, lim: XdmLimits): Promise<CheckedEntry[]> {
  const out: CheckedEntry[] = [];
  const seen = new Set<string>();
  let declaredTotal = 0;
  try {
    for await (const entry of zipfile.eachEntry()) {
      if (out.length >= lim.maxEntries) {
        throw new PasserelleError('XDM_LIMIT_EXCEEDED', `The zip has more than ${lim.maxEntries} entries.`);
      }
      const checked = checkEntry(entry, lim);
      const key = checked.name.toLowerCase().replace(/\/+$/, '');
      if (seen.has(key)) {
        // Two entries of one name: tools disagree on which one wins, a known way to show a
        // verifier one file and a reader another.
        throw new PasserelleError('XDM_UNSAFE_ENTRY', `The zip has two entries named ${safeName(checked.name)}.`);
      }
      seen.add(key);
      declaredTotal += entry.uncompressedSize;
      if (declaredTotal > lim.maxTotalBytes) {
        throw new PasserelleError('XDM_LIMIT_EXCEEDED', `The zip declares more than ${lim.maxTotalBytes} uncompressed bytes.`);
      }
      out.push(checked);
    }
  } catch (err) {
    if (err instanceof PasserelleError) throw err;
    const message = firstLine(err);
    // yauzl refuses PKWARE strong encryption (flag bit 6) itself, before handing the entry over.
    if (/strong encryption/i.test(message)) throw new PasserelleError('XDM_UNSAFE_ENTRY', 'An entry uses strong encryption.');
    throw new PasserelleError('XDM_MALFORMED', `Unreadable zip directory: ${message}`);
  }
  return out;
}

function checkEntry(entry: Entry, lim: XdmLimits): CheckedEntry {
  // Both the name yauzl would show (with the Info-ZIP Unicode Path field, APPNOTE §4.6.9) and the
  // raw bytes other tools would use are checked: each must be safe.
  const name = yauzl.getFileNameLowLevel(entry.generalPurposeBitFlag, entry.fileNameRaw, entry.extraFields, true);
  const unsafe = unsafeReason(name) ?? unsafeReason(entry.fileNameRaw.toString('latin1'));
  if (unsafe) throw new PasserelleError('XDM_UNSAFE_ENTRY', `Entry ${safeName(name)}: ${unsafe}.`);
  // APPNOTE §4.4.4 bit 0: encrypted (bit 6, strong encryption, is refused by yauzl; bit 13 masks the directory).
  if (entry.generalPurposeBitFlag & 0x2001) throw new PasserelleError('XDM_UNSAFE_ENTRY', `Entry ${safeName(name)} is encrypted.`);
  const host = entry.versionMadeBy >>> 8;
  const mode = entry.externalFileAttributes >>> 16;
  if (UNIX_HOSTS.has(host) && (mode & S_IFMT) !== 0 && (mode & S_IFMT) !== S_IFREG && (mode & S_IFMT) !== S_IFDIR) {
    const what = (mode & S_IFMT) === 0o120000 ? 'a symbolic link' : 'a special file';
    throw new PasserelleError('XDM_UNSAFE_ENTRY', `Entry ${safeName(name)} is ${what}.`);
  }
  if (entry.externalFileAttributes & REPARSE_POINT) {
    throw new PasserelleError('XDM_UNSAFE_ENTRY', `Entry ${safeName(name)} is a link (reparse point).`);
  }
  const directory = name.endsWith('/') || (UNIX_HOSTS.has(host) && (mode & S_IFMT) === S_IFDIR);
  if (directory) return { entry, name, directory };

  if (entry.compressionMethod !== 0 && entry.compressionMethod !== 8) {
    throw new PasserelleError('XDM_MALFORMED', `Entry ${safeName(name)} uses compression method ${entry.compressionMethod}; only stored and deflate are read.`);
  }
  if (entry.compressionMethod === 0 && entry.compressedSize !== entry.uncompressedSize) {
    throw new PasserelleError('XDM_MALFORMED', `Stored entry ${safeName(name)} has different compressed and uncompressed sizes.`);
  }
  if (entry.uncompressedSize > lim.maxEntryBytes) {
    throw new PasserelleError('XDM_LIMIT_EXCEEDED', `Entry ${safeName(name)} declares ${entry.uncompressedSize} bytes; the limit is ${lim.maxEntryBytes}.`);
  }
  if (entry.uncompressedSize > lim.ratioFloorBytes && entry.uncompressedSize > lim.maxRatio * entry.compressedSize) {
    throw new PasserelleError('XDM_LIMIT_EXCEEDED', `Entry ${safeName(name)} declares a compression ratio above ${lim.maxRatio}:1.`);
  }
  return { entry, name, directory };
}

function unsafeReason(name: string): string | undefined {
  if (name === '') return 'empty name';
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(name)) return 'control character in the name';
  if (name.includes('\\')) return 'backslash in the name';
  if (name.startsWith('/') || /^[A-Za-z]:/.test(name)) return 'absolute path';
  if (name.split('/').some((s) => s === '..')) return 'path traversal (..)';
  return undefined;
}

/** Entry names come from the sender: shortened and stripped of control characters before they reach an error message. */
function safeName(name: string): string {
  // eslint-disable-next-line no-control-regex
  return JSON.stringify(name.replace(/[\u0000-\u001f\u007f]/g, '?').slice(0, 120));
}

/** Entries declared this small are inflated in one synchronous call (see inflate()). */
const SYNC_INFLATE_BYTES = 4 * 1024 * 1024;

/**
 * Inflates one entry into memory. A small entry (declared ≤ 4 MiB, the usual CDA and PDF) is
 * inflated in one call whose output is capped at its declared size (zlib's maxOutputLength): no
 * stream, no thread-pool round trip per 16 KB chunk, and still never more than declared in
 * memory. A larger one streams, stopped as soon as it passes its declared size, the per-entry
 * limit, the remaining total budget or the ratio limit. Either way the CRC-32 of the central
 * directory is checked at the end.
 */
function inflate(zipfile: ZipFile, checked: CheckedEntry, lim: XdmLimits, budget: Budget): Promise<Buffer> {
  return checked.entry.uncompressedSize <= SYNC_INFLATE_BYTES ? inflateSmall(zipfile, checked, lim, budget) : inflateStreaming(zipfile, checked, lim, budget);
}

async function inflateSmall(zipfile: ZipFile, checked: CheckedEntry, lim: XdmLimits, budget: Budget): Promise<Buffer> {
  const { entry } = checked;
  // yauzl refuses the option for a stored entry (method 0): its bytes are read as they are anyway.
  const stream = await openEntry(zipfile, checked, entry.compressionMethod === 0 ? undefined : { decompress: false });
  const stored = await new Promise<Buffer>((resolve, reject) => {
    const chunks: Buffer[] = [];
    stream.on('data', (chunk: Buffer) => chunks.push(chunk));
    stream.on('error', (e: unknown) => reject(unreadable(checked, e)));
    stream.on('end', () => resolve(Buffer.concat(chunks)));
  });
  let bytes: Buffer;
  if (entry.compressionMethod === 0) bytes = stored;
  else {
    try {
      bytes = inflateRawSync(stored, { maxOutputLength: Math.max(1, entry.uncompressedSize) });
    } catch (e) {
      throw (e as { code?: unknown }).code === 'ERR_BUFFER_TOO_LARGE' ? beyondDeclared(checked) : unreadable(checked, e);
    }
  }
  if (budget.total + bytes.length > lim.maxTotalBytes) throw beyondTotal(lim);
  const failure = endOfEntry(checked, bytes.length, crc32(bytes), budget);
  if (failure) throw failure;
  return bytes;
}

async function inflateStreaming(zipfile: ZipFile, checked: CheckedEntry, lim: XdmLimits, budget: Budget): Promise<Buffer> {
  const { entry, name } = checked;
  const stream = await openEntry(zipfile, checked);
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let length = 0;
    let crc = 0;
    let settled = false;
    const fail = (error: PasserelleError): void => {
      if (settled) return;
      settled = true;
      chunks.length = 0;
      stream.destroy();
      reject(error);
    };
    stream.on('data', (chunk: Buffer) => {
      if (settled) return;
      length += chunk.length;
      if (length > entry.uncompressedSize) {
        fail(beyondDeclared(checked));
      } else if (length > lim.maxEntryBytes) {
        fail(new PasserelleError('XDM_LIMIT_EXCEEDED', `Entry ${safeName(name)} exceeds ${lim.maxEntryBytes} bytes.`));
      } else if (budget.total + length > lim.maxTotalBytes) {
        fail(beyondTotal(lim));
      } else if (length > lim.ratioFloorBytes && length > lim.maxRatio * entry.compressedSize) {
        fail(new PasserelleError('XDM_LIMIT_EXCEEDED', `Entry ${safeName(name)} inflates beyond a ${lim.maxRatio}:1 ratio.`));
      } else {
        crc = crc32(chunk, crc);
        chunks.push(chunk);
      }
    });
    stream.on('error', (e: unknown) => fail(unreadable(checked, e)));
    stream.on('end', () => {
      if (settled) return;
      const failure = endOfEntry(checked, length, crc, budget);
      if (failure) {
        fail(failure);
        return;
      }
      settled = true;
      resolve(Buffer.concat(chunks, length));
    });
  });
}

/** The entry's data stream: inflated by yauzl, or as stored with `decompress: false`. */
function openEntry(zipfile: ZipFile, checked: CheckedEntry, options?: { decompress: false }): Promise<Readable> {
  return new Promise((resolve, reject) => {
    const done = (err: Error | null, stream: Readable): void => (err ? reject(unreadable(checked, err)) : resolve(stream));
    try {
      if (options) zipfile.openReadStream(checked.entry, options, done);
      else zipfile.openReadStream(checked.entry, done);
    } catch (err) {
      reject(unreadable(checked, err)); // yauzl throws some refusals instead of passing them to the callback
    }
  });
}

/** The checks once an entry is read whole — the size the directory declares, then its CRC-32 — after which it counts in the budget. */
function endOfEntry(checked: CheckedEntry, length: number, crc: number, budget: Budget): PasserelleError | undefined {
  const { entry, name } = checked;
  if (length !== entry.uncompressedSize) return new PasserelleError('XDM_MALFORMED', `Entry ${safeName(name)} is ${length} bytes; the zip declares ${entry.uncompressedSize}.`);
  if (crc >>> 0 !== entry.crc32 >>> 0) return new PasserelleError('XDM_MALFORMED', `Entry ${safeName(name)} fails its CRC-32 check.`);
  budget.total += length;
  return undefined;
}

const unreadable = (checked: CheckedEntry, err: unknown): PasserelleError => new PasserelleError('XDM_MALFORMED', `Entry ${safeName(checked.name)}: ${firstLine(err)}`);
const beyondDeclared = (checked: CheckedEntry): PasserelleError =>
  new PasserelleError('XDM_LIMIT_EXCEEDED', `Entry ${safeName(checked.name)} inflates beyond its declared ${checked.entry.uncompressedSize} bytes.`);
const beyondTotal = (lim: XdmLimits): PasserelleError => new PasserelleError('XDM_LIMIT_EXCEEDED', `The zip inflates beyond ${lim.maxTotalBytes} bytes.`);

/**
 * Finds the entry a `URI` slot names. ITI-32 makes it relative to the subset folder
 * (`DOC0001.XML`); some writers give the path from the root of the media instead. Exact names
 * first, then a case-insensitive match when it is unique (media written on Windows).
 */
function resolveUri(
  uri: string,
  subsetDir: string,
  byName: Map<string, CheckedEntry>,
  byLowerName: Map<string, CheckedEntry[]>,
  warnings: string[],
): CheckedEntry {
  let path = uri.trim();
  try {
    path = decodeURIComponent(path);
  } catch {
    // Not percent-encoded after all: use it as written.
  }
  path = path.replace(/^(\.\/)+/, '');
  const unsafe = unsafeReason(path) ?? (/^[a-z][a-z0-9+.-]*:/i.test(path) ? 'not a relative reference' : undefined);
  if (unsafe) throw new PasserelleError('XDM_UNSAFE_ENTRY', `Document URI ${safeName(uri)}: ${unsafe}.`);
  for (const candidate of [subsetDir + path, path]) {
    const exact = byName.get(candidate);
    if (exact) return exact;
  }
  for (const candidate of [subsetDir + path, path]) {
    const loose = byLowerName.get(candidate.toLowerCase());
    if (loose?.length === 1 && loose[0]) {
      warnings.push(`document URI ${safeName(uri)} matches ${safeName(loose[0].name)} only when case is ignored`);
      return loose[0];
    }
  }
  throw new PasserelleError('XDM_MALFORMED', `Document URI ${safeName(uri)} names no file of the zip.`);
}

// ---- METADATA.XML (ebRIM 3.0 SubmitObjectsRequest, ITI TF-3 §4.2.3) ----

type ParsedDocument = Omit<XdmDocument, 'path' | 'bytes'>;

function rimChildren(el: XElement, name: string): XElement[] {
  const out: XElement[] = [];
  for (const c of el.children) if (typeof c !== 'string' && c.name === name && c.ns === RIM_NS) out.push(c);
  return out;
}

function textOf(el: XElement): string {
  let s = '';
  for (const c of el.children) if (typeof c === 'string') s += c;
  return s.trim();
}

/** Values of a Slot (`rim:Slot/rim:ValueList/rim:Value`), by exact slot name. */
function slotValues(el: XElement, slotName: string): string[] {
  const values: string[] = [];
  for (const slot of rimChildren(el, 'Slot')) {
    if (slot.attrs['name'] !== slotName) continue;
    for (const list of rimChildren(slot, 'ValueList')) for (const v of rimChildren(list, 'Value')) values.push(textOf(v));
  }
  return values;
}

function slotValue(el: XElement, slotName: string): string | undefined {
  const v = slotValues(el, slotName)[0];
  return v === undefined || v === '' ? undefined : v;
}

/** `rim:Name/rim:LocalizedString/@value` */
function nameOf(el: XElement): string | undefined {
  for (const n of rimChildren(el, 'Name')) for (const s of rimChildren(n, 'LocalizedString')) if (s.attrs['value']) return s.attrs['value'];
  return undefined;
}

function externalId(el: XElement, scheme: string): string | undefined {
  for (const x of rimChildren(el, 'ExternalIdentifier')) if (x.attrs['identificationScheme'] === scheme) return x.attrs['value']?.trim() || undefined;
  return undefined;
}

function codesOf(classifications: readonly XElement[], scheme: string): XdmCode[] {
  return classifications
    .filter((c) => c.attrs['classificationScheme'] === scheme)
    .map((c) => ({ code: (c.attrs['nodeRepresentation'] ?? '').trim(), codingScheme: slotValue(c, 'codingScheme'), display: nameOf(c) }));
}

/** Parses `id^^^&root&ISO` (HL7 v2 CX with the assigning authority's universal id). */
export function parsePatientId(raw: string | undefined): XdmPatientId | undefined {
  if (raw === undefined || raw.trim() === '') return undefined;
  const value = raw.trim();
  const fields = value.split('^');
  const id = (fields[0] ?? '').trim();
  const root = (fields[3] ?? '').split('&')[1]?.trim() || undefined;
  return { raw: value, id, root };
}

/**
 * The `URI` slot: one value, or, when longer than a slot value may be, several values `1|…`,
 * `2|…` to join in order (ITI TF-3 §4.2.3.2, DocumentEntry.URI).
 */
function uriOf(values: string[]): string | undefined {
  if (values.length <= 1) return values[0] || undefined;
  const pieces: Array<[number, string]> = [];
  for (const v of values) {
    const m = /^(\d+)\|(.*)$/s.exec(v);
    if (!m) return undefined;
    pieces.push([Number(m[1]), m[2] ?? '']);
  }
  return pieces.sort((a, b) => a[0] - b[0]).map((p) => p[1]).join('');
}

function readMetadata(root: XElement, metadataPath: string, warnings: string[]): { submissionSet: XdmSubmissionSet; documents: ParsedDocument[] } {
  // XDM writes an lcm:SubmitObjectsRequest; a bare rim:RegistryObjectList is read too.
  const isRequest = root.name === 'SubmitObjectsRequest' && root.ns === LCM_NS;
  const isList = root.name === 'RegistryObjectList' && root.ns === RIM_NS;
  if (!isRequest && !isList) {
    throw new PasserelleError('XDM_MALFORMED', `${metadataPath} is not an ebRS 3.0 SubmitObjectsRequest (root ${safeName(root.name)}).`);
  }
  const list = isList ? root : rimChildren(root, 'RegistryObjectList')[0];
  if (!list) throw new PasserelleError('XDM_MALFORMED', `${metadataPath} has no ebRIM 3.0 RegistryObjectList.`);

  const topClassifications = rimChildren(list, 'Classification');
  const classificationsOf = (el: XElement): XElement[] => {
    const id = el.attrs['id'];
    return [...rimChildren(el, 'Classification'), ...topClassifications.filter((c) => id !== undefined && c.attrs['classifiedObject'] === id)];
  };

  // The submission set is the RegistryPackage classified by the SubmissionSet node (ITI TF-3
  // §4.2.3.3); other packages are folders.
  const packages = rimChildren(list, 'RegistryPackage');
  const sets = packages.filter((p) => classificationsOf(p).some((c) => c.attrs['classificationNode'] === SUBMISSION_SET_NODE));
  let set: XElement;
  if (sets.length > 1) {
    throw new PasserelleError('XDM_MALFORMED', `${metadataPath} holds ${sets.length} submission sets; exactly one is expected.`);
  } else if (sets.length === 1) {
    set = sets[0] as XElement;
  } else if (packages.length === 1) {
    set = packages[0] as XElement;
    warnings.push('the RegistryPackage is not classified as a submission set; read as one');
  } else {
    throw new PasserelleError('XDM_MALFORMED', `${metadataPath} has no submission set (RegistryPackage).`);
  }

  const setId = set.attrs['id'] ?? '';
  const submissionSet: XdmSubmissionSet = {
    id: setId,
    uniqueId: externalId(set, SCHEME.setUniqueId),
    sourceId: externalId(set, SCHEME.setSourceId),
    patientId: parsePatientId(externalId(set, SCHEME.setPatientId)),
    submissionTime: slotValue(set, 'submissionTime'),
    title: nameOf(set),
    contentTypeCode: codesOf(classificationsOf(set), SCHEME.setContentType)[0],
    metadataPath,
  };

  const documents: ParsedDocument[] = [];
  for (const eo of rimChildren(list, 'ExtrinsicObject')) {
    const id = eo.attrs['id'] ?? '';
    const where = `ExtrinsicObject ${safeName(id)}`;
    const uri = uriOf(slotValues(eo, 'URI'));
    if (!uri) throw new PasserelleError('XDM_MALFORMED', `${where} has no URI slot.`, id);
    const hash = slotValue(eo, 'hash')?.toLowerCase();
    if (!hash || !/^[0-9a-f]{40}$/.test(hash)) throw new PasserelleError('XDM_MALFORMED', `${where} has no SHA-1 hash slot.`, id);
    const sizeText = slotValue(eo, 'size');
    if (!sizeText || !/^\d{1,15}$/.test(sizeText)) throw new PasserelleError('XDM_MALFORMED', `${where} has no size slot.`, id);
    const classifications = classificationsOf(eo);
    const confidentialityCodes = codesOf(classifications, SCHEME.confidentiality);
    documents.push({
      id,
      uniqueId: externalId(eo, SCHEME.docUniqueId),
      uri,
      mimeType: eo.attrs['mimeType'],
      hash,
      size: Number(sizeText),
      patientId: parsePatientId(externalId(eo, SCHEME.docPatientId)),
      sourcePatientId: parsePatientId(slotValue(eo, 'sourcePatientId')),
      confidentialityCodes,
      masked: confidentialityCodes.some((c) => c.code.toUpperCase() === MASKED_CODE),
      formatCode: codesOf(classifications, SCHEME.format)[0],
      typeCode: codesOf(classifications, SCHEME.type)[0],
      classCode: codesOf(classifications, SCHEME.class)[0],
      creationTime: slotValue(eo, 'creationTime'),
      title: nameOf(eo),
    });
  }
  if (documents.length === 0) throw new PasserelleError('XDM_MALFORMED', `${metadataPath} lists no document (ExtrinsicObject).`);
  return { submissionSet, documents };
}

/**
 * One patient per message (MSSanté Référentiel #2 §ECO.2), and in XDS the submission set and its
 * documents share one patientId (ITI TF-3 §4.2.3.1.7 / §4.2.3.3.9). The comparison with the CDA's
 * own patient (XDM_PATIENT_MISMATCH) is the pipeline's, once the CDA is read.
 */
function checkSinglePatient(setPatient: XdmPatientId | undefined, documents: readonly XdmDocument[]): void {
  const keys = new Set<string>();
  const key = (p: XdmPatientId): string => `${p.id}|${p.root ?? ''}`.toLowerCase();
  if (setPatient) keys.add(key(setPatient));
  for (const d of documents) if (d.patientId) keys.add(key(d.patientId));
  if (keys.size > 1) {
    throw new PasserelleError('MESSAGE_MULTIPLE_PATIENTS', `METADATA.XML names ${keys.size} different patient ids.`);
  }
}
