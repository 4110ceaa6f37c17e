/**
 * IHE XDM media (ITI TF-1 §16, ITI-32 media layout) built at run time, for the mail benchmark and
 * the tests: a small zip writer (PKWARE APPNOTE 6.3) and a synthetic but realistic ebRIM 3.0
 * METADATA.XML (ITI TF-3 §4.2) around real CDA bytes.
 *
 * Under bench/ because bench/mail.ts needs it and tsconfig.build.json compiles bench/ but not
 * tests/; the tests import it from here (tests/support/zip.ts and tests/support/xdm.ts re-export
 * it beside their test-only helpers).
 */
import { createHash } from 'node:crypto';
import { crc32, deflateRawSync } from 'node:zlib';

// ---------------------------------------------------------------------------------------------
// Zip

export interface ZipEntryInput {
  name: string;
  /** The entry's bytes (deflated unless `store`). */
  data?: Buffer;
  /** Already compressed data with its real CRC-32 and size (to write a bomb without holding it). */
  precompressed?: { deflated: Buffer; crc: number; size: number };
  store?: boolean;
  /** Overrides of what the headers declare. */
  declaredSize?: number;
  crc?: number;
  /** General purpose flags (bit 0 = encrypted). */
  flags?: number;
  /** "Version made by" host (3 = Unix, 0 = MS-DOS) and the external attributes. */
  host?: number;
  externalAttributes?: number;
}

/**
 * Writes a zip archive: local file headers, central directory, end of central directory. By
 * default every entry is deflated (raw deflate, method 8), named in UTF-8 and made by Unix with
 * mode 0644, as a sender's tool writes it; the overrides write what real tools refuse to: lying
 * sizes, symbolic links, encrypted flags, traversal names.
 */
export function buildZip(entries: ZipEntryInput[]): Buffer {
  const locals: Buffer[] = [];
  const centrals: Buffer[] = [];
  let offset = 0;
  for (const e of entries) {
    const name = Buffer.from(e.name, 'utf8');
    let method = 8;
    let payload: Buffer;
    let crc: number;
    let size: number;
    if (e.precompressed) {
      payload = e.precompressed.deflated;
      crc = e.precompressed.crc;
      size = e.precompressed.size;
    } else {
      const data = e.data ?? Buffer.alloc(0);
      crc = crc32(data);
      size = data.length;
      if (e.store) {
        method = 0;
        payload = data;
      } else {
        payload = deflateRawSync(data);
      }
    }
    crc = e.crc ?? crc;
    const declared = e.declaredSize ?? size;
    const flags = (e.flags ?? 0) | 0x800; // bit 11: names in UTF-8
    const host = e.host ?? 3;
    const attrs = e.externalAttributes ?? (host === 3 ? (0o100644 << 16) >>> 0 : 0);

    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(20, 4);
    local.writeUInt16LE(flags, 6);
    local.writeUInt16LE(method, 8);
    local.writeUInt16LE(0, 10);
    local.writeUInt16LE(0x21, 12); // 1980-01-01
    local.writeUInt32LE(crc >>> 0, 14);
    local.writeUInt32LE(payload.length, 18);
    local.writeUInt32LE(declared, 22);
    local.writeUInt16LE(name.length, 26);
    local.writeUInt16LE(0, 28);
    locals.push(local, name, payload);

    const central = Buffer.alloc(46);
    central.writeUInt32LE(0x02014b50, 0);
    central.writeUInt16LE((host << 8) | 20, 4);
    central.writeUInt16LE(20, 6);
    central.writeUInt16LE(flags, 8);
    central.writeUInt16LE(method, 10);
    central.writeUInt16LE(0, 12);
    central.writeUInt16LE(0x21, 14);
    central.writeUInt32LE(crc >>> 0, 16);
    central.writeUInt32LE(payload.length, 20);
    central.writeUInt32LE(declared, 24);
    central.writeUInt16LE(name.length, 28);
    central.writeUInt32LE(attrs >>> 0, 38);
    central.writeUInt32LE(offset, 42);
    centrals.push(central, name);
    offset += 30 + name.length + payload.length;
  }
  const cd = Buffer.concat(centrals);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(entries.length, 8);
  end.writeUInt16LE(entries.length, 10);
  end.writeUInt32LE(cd.length, 12);
  end.writeUInt32LE(offset, 16);
  return Buffer.concat([...locals, cd, end]);
}

// ---------------------------------------------------------------------------------------------
// METADATA.XML and the XDM zip

/** The corpus patient's INS (LDL-SES and BIO-CR-BIO), as XDS writes a CX identifier. */
export const INS = '279035121518989^^^&1.2.250.1.213.1.4.10&ISO';

/** A code and its display. */
export interface Coded {
  code: string;
  display: string;
}

/** One document of the submission set: an XDSDocumentEntry (ITI TF-3 §4.2.3.2) and its zip entry. */
export interface DocSpec {
  id: string;
  uri: string;
  bytes: Buffer;
  /** Where the zip holds it, when not `<subset>/<uri>`. */
  entry?: string;
  /** What the metadata declares, when not the bytes' own SHA-1 and size (what the gateway checks). */
  hash?: string;
  size?: number;
  /** Default text/xml. */
  mimeType?: string;
  /** Default {@link INS}. */
  patientId?: string;
  /** Default N (Normal). */
  confidentiality?: { code: string; scheme: string; display: string };
  /** LOINC typeCode, default 11490-0. */
  typeCode?: string;
  /** The typeCode's display, also the document's title; default "Lettre de liaison". */
  typeDisplay?: string;
  /** XDS formatCode, default urn:ihe:iti:xds:2017:mimeTypeSufficient. */
  format?: Coded;
  /** XDSDocumentEntry.uniqueId, default derived from the id. */
  uniqueId?: string;
}

export interface MetadataOptions {
  /** Submission set ids; the associations name the first. */
  packages?: string[];
  /** Leave out the classification that makes each package a submission set. */
  unclassified?: boolean;
  /** Written after the XML declaration (a DOCTYPE, say). */
  prolog?: string;
  /** The submission set's contentTypeCode (LOINC), default 11490-0 "Lettre de liaison". */
  contentType?: Coded;
  /** XDSSubmissionSet.uniqueId, default derived from the package id. */
  submissionSetUniqueId?: string;
  /** XDSSubmissionSet.patientId, default {@link INS}. */
  patientId?: string;
}

export const sha1 = (b: Buffer): string => createHash('sha1').update(b).digest('hex');
const xmlEscape = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/"/g, '&quot;');

const LETTRE_DE_LIAISON: Coded = { code: '11490-0', display: 'Lettre de liaison' };
const MIME_TYPE_SUFFICIENT: Coded = { code: 'urn:ihe:iti:xds:2017:mimeTypeSufficient', display: 'mimeType Sufficient' };

function slot(name: string, value: string | number): string {
  return `<rim:Slot name="${name}"><rim:ValueList><rim:Value>${xmlEscape(String(value))}</rim:Value></rim:ValueList></rim:Slot>`;
}

function localizedName(value: string): string {
  return `<rim:Name><rim:LocalizedString value="${xmlEscape(value)}"/></rim:Name>`;
}

function classification(scheme: string, object: string, code: string, codingScheme: string, display: string, id: string): string {
  return `
      <rim:Classification id="${id}" classificationScheme="${scheme}" classifiedObject="${object}" nodeRepresentation="${xmlEscape(code)}">
        ${slot('codingScheme', codingScheme)}
        ${localizedName(display)}
      </rim:Classification>`;
}

function externalIdentifier(id: string, object: string, scheme: string, value: string, name: string): string {
  return `
      <rim:ExternalIdentifier id="${id}" registryObject="${object}" identificationScheme="${scheme}" value="${xmlEscape(value)}">
        ${localizedName(name)}
      </rim:ExternalIdentifier>`;
}

function extrinsicObject(d: DocSpec): string {
  const conf = d.confidentiality ?? { code: 'N', scheme: '2.16.840.1.113883.5.25', display: 'Normal' };
  const format = d.format ?? MIME_TYPE_SUFFICIENT;
  const typeDisplay = d.typeDisplay ?? LETTRE_DE_LIAISON.display;
  return `
    <rim:ExtrinsicObject id="${d.id}" mimeType="${xmlEscape(d.mimeType ?? 'text/xml')}" objectType="urn:uuid:7edca82f-054d-47f2-a032-9b2a5b5186c1">
      ${slot('creationTime', '20240115103000')}
      ${slot('hash', d.hash ?? sha1(d.bytes))}
      ${slot('languageCode', 'fr-FR')}
      ${slot('size', d.size ?? d.bytes.length)}
      ${slot('sourcePatientId', 'IPP-0001^^^&1.2.3.4.5.6.7.8.9.10&ISO')}
      ${slot('URI', d.uri)}
      ${localizedName(typeDisplay)}
      ${classification('urn:uuid:41a5887f-8865-4c09-adf7-e362475b143a', d.id, '11', '1.2.250.1.213.1.1.4.1', 'Compte rendu', `${d.id}-class`)}
      ${classification('urn:uuid:f4f85eac-e6cb-4883-b524-f2705394840f', d.id, conf.code, conf.scheme, conf.display, `${d.id}-conf`)}
      ${classification('urn:uuid:a09d5840-386c-46f2-b5ad-9c3699a4309d', d.id, format.code, '1.3.6.1.4.1.19376.1.2.3', format.display, `${d.id}-format`)}
      ${classification('urn:uuid:f0306f51-975f-434e-a61c-c59651d33983', d.id, d.typeCode ?? LETTRE_DE_LIAISON.code, '2.16.840.1.113883.6.1', typeDisplay, `${d.id}-type`)}`
    + externalIdentifier(`${d.id}-pid`, d.id, 'urn:uuid:58a6f841-87b3-4a3e-92fd-a8ffeff98427', d.patientId ?? INS, 'XDSDocumentEntry.patientId')
    + externalIdentifier(`${d.id}-uid`, d.id, 'urn:uuid:2e82c1f6-a085-4c72-9da3-8640a32e42ab', d.uniqueId ?? `1.2.250.1.999.1.${d.id.length}^${d.id}`, 'XDSDocumentEntry.uniqueId')
    + `
    </rim:ExtrinsicObject>`;
}

function registryPackage(id: string, options: MetadataOptions): string {
  const contentType = options.contentType ?? LETTRE_DE_LIAISON;
  return `
    <rim:RegistryPackage id="${id}">
      ${slot('submissionTime', '20240115103500')}
      ${localizedName('Envoi MSSanté')}
      ${classification('urn:uuid:aa543740-bdda-424e-8c96-df4873be8500', id, contentType.code, '2.16.840.1.113883.6.1', contentType.display, `${id}-ct`)}`
    + externalIdentifier(`${id}-uid`, id, 'urn:uuid:96fdda7c-d067-4183-912e-bf5ee74998a8', options.submissionSetUniqueId ?? `1.2.250.1.999.2.${id.length}`, 'XDSSubmissionSet.uniqueId')
    + externalIdentifier(`${id}-src`, id, 'urn:uuid:554ac39e-e3fe-47fe-b233-965d2a147832', '1.2.250.1.999', 'XDSSubmissionSet.sourceId')
    + externalIdentifier(`${id}-pid`, id, 'urn:uuid:6b5aea1a-874d-4603-a4bc-96a0a7b38446', options.patientId ?? INS, 'XDSSubmissionSet.patientId')
    + `
    </rim:RegistryPackage>${options.unclassified ? '' : `
    <rim:Classification id="${id}-ss" classifiedObject="${id}" classificationNode="urn:uuid:a54d6aa5-d40d-43f9-88c5-b4633d873bdd"/>`}`;
}

/** ebRIM 3.0 METADATA.XML (ITI TF-3 §4.2): the submission set(s), then every document as an entry of the first. */
export function metadataXml(docs: DocSpec[], options: MetadataOptions = {}): Buffer {
  const packages = options.packages ?? ['SubmissionSet01'];
  const associations = docs
    .map((d, i) => `
    <rim:Association id="assoc${i}" associationType="urn:oasis:names:tc:ebxml-regrep:AssociationType:HasMember" sourceObject="${packages[0]}" targetObject="${d.id}">
      ${slot('SubmissionSetStatus', 'Original')}
    </rim:Association>`)
    .join('');
  return Buffer.from(`<?xml version="1.0" encoding="UTF-8"?>${options.prolog ?? ''}
<lcm:SubmitObjectsRequest xmlns:lcm="urn:oasis:names:tc:ebxml-regrep:xsd:lcm:3.0" xmlns:rim="urn:oasis:names:tc:ebxml-regrep:xsd:rim:3.0">
  <rim:RegistryObjectList>${packages.map((p) => registryPackage(p, options)).join('')}${docs.map(extrinsicObject).join('')}${associations}
  </rim:RegistryObjectList>
</lcm:SubmitObjectsRequest>
`, 'utf8');
}

export interface XdmOptions {
  /** Default IHE_XDM/SUBSET01. */
  subset?: string;
  /** METADATA.XML, when not `metadataXml(docs)`. */
  metadata?: Buffer;
  /** Entries after the documents. */
  extra?: ZipEntryInput[];
  /** README.TXT and INDEX.HTM. */
  readme?: string;
  index?: string;
}

/** An IHE_XDM.zip: README.TXT, INDEX.HTM, `<subset>/METADATA.XML`, the documents, then `extra`. */
export function xdm(docs: DocSpec[], options: XdmOptions = {}): Buffer {
  const subset = options.subset ?? 'IHE_XDM/SUBSET01';
  return buildZip([
    { name: 'README.TXT', data: Buffer.from(options.readme ?? 'Envoi MSSanté de test\r\n') },
    { name: 'INDEX.HTM', data: Buffer.from(options.index ?? '<html><body><a href="IHE_XDM/SUBSET01/DOC0001.XML">DOC0001</a></body></html>') },
    { name: `${subset}/METADATA.XML`, data: options.metadata ?? metadataXml(docs) },
    ...docs.map((d) => ({ name: d.entry ?? `${subset}/${d.uri}`, data: d.bytes })),
    ...(options.extra ?? []),
  ]);
}
