/**
 * IHE XDM reader: real ANS CDA documents (read from ../shared/corpus, never copied) packed at test
 * time with a synthetic ebRIM 3.0 METADATA.XML, and hostile zips named after what they reproduce.
 */
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { PasserelleError, type ErrorCode } from '../../gateway/errors.js';
import { parsePatientId, readXdm } from '../../gateway/mail/xdm.js';
import { corpusDocument } from '../support/corpus.js';
import { buildZip, deflatedZeros, type ZipEntryInput } from '../support/zip.js';

const INS = '279035121518989^^^&1.2.250.1.213.1.4.10&ISO';
const OTHER_INS = '295109912611193^^^&1.2.250.1.213.1.4.10&ISO';

interface DocSpec {
  id: string;
  uri: string;
  bytes: Buffer;
  /** Where the zip holds it, when not `<subset>/<uri>`. */
  entry?: string;
  hash?: string;
  size?: number;
  patientId?: string;
  confidentiality?: { code: string; scheme: string; display: string };
  typeCode?: string;
}

const sha1 = (b: Buffer): string => createHash('sha1').update(b).digest('hex');

function classification(scheme: string, object: string, code: string, codingScheme: string, display: string, id: string): string {
  return `
      <rim:Classification id="${id}" classificationScheme="${scheme}" classifiedObject="${object}" nodeRepresentation="${code}">
        <rim:Slot name="codingScheme"><rim:ValueList><rim:Value>${codingScheme}</rim:Value></rim:ValueList></rim:Slot>
        <rim:Name><rim:LocalizedString value="${display}"/></rim:Name>
      </rim:Classification>`;
}

function extrinsicObject(d: DocSpec): string {
  const conf = d.confidentiality ?? { code: 'N', scheme: '2.16.840.1.113883.5.25', display: 'Normal' };
  return `
    <rim:ExtrinsicObject id="${d.id}" mimeType="text/xml" objectType="urn:uuid:7edca82f-054d-47f2-a032-9b2a5b5186c1">
      <rim:Slot name="creationTime"><rim:ValueList><rim:Value>20240115103000</rim:Value></rim:ValueList></rim:Slot>
      <rim:Slot name="hash"><rim:ValueList><rim:Value>${d.hash ?? sha1(d.bytes)}</rim:Value></rim:ValueList></rim:Slot>
      <rim:Slot name="languageCode"><rim:ValueList><rim:Value>fr-FR</rim:Value></rim:ValueList></rim:Slot>
      <rim:Slot name="size"><rim:ValueList><rim:Value>${d.size ?? d.bytes.length}</rim:Value></rim:ValueList></rim:Slot>
      <rim:Slot name="sourcePatientId"><rim:ValueList><rim:Value>IPP-0001^^^&amp;1.2.3.4.5.6.7.8.9.10&amp;ISO</rim:Value></rim:ValueList></rim:Slot>
      <rim:Slot name="URI"><rim:ValueList><rim:Value>${d.uri}</rim:Value></rim:ValueList></rim:Slot>
      <rim:Name><rim:LocalizedString value="Lettre de liaison"/></rim:Name>
      ${classification('urn:uuid:41a5887f-8865-4c09-adf7-e362475b143a', d.id, '11', '1.2.250.1.213.1.1.4.1', 'Compte rendu', `${d.id}-class`)}
      ${classification('urn:uuid:f4f85eac-e6cb-4883-b524-f2705394840f', d.id, conf.code, conf.scheme, conf.display, `${d.id}-conf`)}
      ${classification('urn:uuid:a09d5840-386c-46f2-b5ad-9c3699a4309d', d.id, 'urn:ihe:iti:xds:2017:mimeTypeSufficient', '1.3.6.1.4.1.19376.1.2.3', 'mimeType Sufficient', `${d.id}-format`)}
      ${classification('urn:uuid:f0306f51-975f-434e-a61c-c59651d33983', d.id, d.typeCode ?? '11490-0', '2.16.840.1.113883.6.1', 'Lettre de liaison', `${d.id}-type`)}
      <rim:ExternalIdentifier id="${d.id}-pid" registryObject="${d.id}" identificationScheme="urn:uuid:58a6f841-87b3-4a3e-92fd-a8ffeff98427" value="${(d.patientId ?? INS).replace(/&/g, '&amp;')}">
        <rim:Name><rim:LocalizedString value="XDSDocumentEntry.patientId"/></rim:Name>
      </rim:ExternalIdentifier>
      <rim:ExternalIdentifier id="${d.id}-uid" registryObject="${d.id}" identificationScheme="urn:uuid:2e82c1f6-a085-4c72-9da3-8640a32e42ab" value="1.2.250.1.999.1.${d.id.length}^${d.id}">
        <rim:Name><rim:LocalizedString value="XDSDocumentEntry.uniqueId"/></rim:Name>
      </rim:ExternalIdentifier>
    </rim:ExtrinsicObject>`;
}

function registryPackage(id: string, classified = true): string {
  return `
    <rim:RegistryPackage id="${id}">
      <rim:Slot name="submissionTime"><rim:ValueList><rim:Value>20240115103500</rim:Value></rim:ValueList></rim:Slot>
      <rim:Name><rim:LocalizedString value="Envoi MSSanté"/></rim:Name>
      ${classification('urn:uuid:aa543740-bdda-424e-8c96-df4873be8500', id, '11490-0', '2.16.840.1.113883.6.1', 'Lettre de liaison', `${id}-ct`)}
      <rim:ExternalIdentifier id="${id}-uid" registryObject="${id}" identificationScheme="urn:uuid:96fdda7c-d067-4183-912e-bf5ee74998a8" value="1.2.250.1.999.2.${id.length}">
        <rim:Name><rim:LocalizedString value="XDSSubmissionSet.uniqueId"/></rim:Name>
      </rim:ExternalIdentifier>
      <rim:ExternalIdentifier id="${id}-src" registryObject="${id}" identificationScheme="urn:uuid:554ac39e-e3fe-47fe-b233-965d2a147832" value="1.2.250.1.999">
        <rim:Name><rim:LocalizedString value="XDSSubmissionSet.sourceId"/></rim:Name>
      </rim:ExternalIdentifier>
      <rim:ExternalIdentifier id="${id}-pid" registryObject="${id}" identificationScheme="urn:uuid:6b5aea1a-874d-4603-a4bc-96a0a7b38446" value="${INS.replace(/&/g, '&amp;')}">
        <rim:Name><rim:LocalizedString value="XDSSubmissionSet.patientId"/></rim:Name>
      </rim:ExternalIdentifier>
    </rim:RegistryPackage>${classified ? `
    <rim:Classification id="${id}-ss" classifiedObject="${id}" classificationNode="urn:uuid:a54d6aa5-d40d-43f9-88c5-b4633d873bdd"/>` : ''}`;
}

function metadataXml(docs: DocSpec[], options: { packages?: string[]; unclassified?: boolean; prolog?: string } = {}): Buffer {
  const packages = options.packages ?? ['SubmissionSet01'];
  const associations = docs
    .map((d, i) => `
    <rim:Association id="assoc${i}" associationType="urn:oasis:names:tc:ebxml-regrep:AssociationType:HasMember" sourceObject="${packages[0]}" targetObject="${d.id}">
      <rim:Slot name="SubmissionSetStatus"><rim:ValueList><rim:Value>Original</rim:Value></rim:ValueList></rim:Slot>
    </rim:Association>`)
    .join('');
  return Buffer.from(`<?xml version="1.0" encoding="UTF-8"?>${options.prolog ?? ''}
<lcm:SubmitObjectsRequest xmlns:lcm="urn:oasis:names:tc:ebxml-regrep:xsd:lcm:3.0" xmlns:rim="urn:oasis:names:tc:ebxml-regrep:xsd:rim:3.0">
  <rim:RegistryObjectList>${packages.map((p) => registryPackage(p, !options.unclassified)).join('')}${docs.map(extrinsicObject).join('')}${associations}
  </rim:RegistryObjectList>
</lcm:SubmitObjectsRequest>
`, 'utf8');
}

const LDL = corpusDocument('LDL-SES_2022.01.xml');
const DLU = corpusDocument('DLU-EHPAD-FLUDT_2022.01.xml');

function xdm(docs: DocSpec[], options: { subset?: string; metadata?: Buffer; extra?: ZipEntryInput[] } = {}): Buffer {
  const subset = options.subset ?? 'IHE_XDM/SUBSET01';
  return buildZip([
    { name: 'README.TXT', data: Buffer.from('Envoi MSSanté de test\r\n') },
    { name: 'INDEX.HTM', data: Buffer.from('<html><body><a href="IHE_XDM/SUBSET01/DOC0001.XML">DOC0001</a></body></html>') },
    { name: `${subset}/METADATA.XML`, data: options.metadata ?? metadataXml(docs) },
    ...docs.map((d) => ({ name: d.entry ?? `${subset}/${d.uri}`, data: d.bytes })),
    ...(options.extra ?? []),
  ]);
}

async function refusal(promise: Promise<unknown>): Promise<PasserelleError> {
  try {
    await promise;
  } catch (err) {
    if (err instanceof PasserelleError) return err;
    throw err;
  }
  throw new Error('expected a refusal');
}

async function expectCode(promise: Promise<unknown>, code: ErrorCode): Promise<PasserelleError> {
  const err = await refusal(promise);
  expect(err.code, err.message).toBe(code);
  return err;
}

describe('readXdm: well-formed media', () => {
  it('reads two corpus documents with their metadata, hashes and sizes checked', async () => {
    const content = await readXdm(xdm([
      { id: 'Document01', uri: 'DOC0001.XML', bytes: LDL },
      { id: 'Document02', uri: 'DOC0002.XML', bytes: DLU, typeCode: '74207-2' },
    ]));
    expect(content.submissionSet).toMatchObject({
      id: 'SubmissionSet01',
      uniqueId: '1.2.250.1.999.2.15',
      sourceId: '1.2.250.1.999',
      submissionTime: '20240115103500',
      patientId: { id: '279035121518989', root: '1.2.250.1.213.1.4.10' },
      contentTypeCode: { code: '11490-0', codingScheme: '2.16.840.1.113883.6.1' },
      metadataPath: 'IHE_XDM/SUBSET01/METADATA.XML',
    });
    expect(content.documents).toHaveLength(2);
    const [first, second] = content.documents;
    expect(first?.bytes.equals(LDL)).toBe(true);
    expect(second?.bytes.equals(DLU)).toBe(true);
    expect(first).toMatchObject({
      id: 'Document01',
      path: 'IHE_XDM/SUBSET01/DOC0001.XML',
      uri: 'DOC0001.XML',
      mimeType: 'text/xml',
      hash: sha1(LDL),
      size: LDL.length,
      masked: false,
      patientId: { id: '279035121518989', root: '1.2.250.1.213.1.4.10' },
      sourcePatientId: { id: 'IPP-0001', root: '1.2.3.4.5.6.7.8.9.10' },
      formatCode: { code: 'urn:ihe:iti:xds:2017:mimeTypeSufficient', codingScheme: '1.3.6.1.4.1.19376.1.2.3' },
      typeCode: { code: '11490-0' },
      classCode: { code: '11' },
      creationTime: '20240115103000',
      title: 'Lettre de liaison',
    });
    expect(second?.typeCode?.code).toBe('74207-2');
    expect(content.warnings).toEqual([]);
  });

  it('finds METADATA.XML in SUBSET02, in any casing, and a URI written from the root', async () => {
    const doc = { id: 'd1', uri: 'ihe_xdm/subset02/doc0001.xml', bytes: LDL, entry: 'ihe_xdm/subset02/doc0001.xml' };
    const content = await readXdm(xdm([doc], { subset: 'ihe_xdm/subset02' }));
    expect(content.submissionSet.metadataPath).toBe('ihe_xdm/subset02/METADATA.XML');
    expect(content.documents[0]?.path).toBe('ihe_xdm/subset02/doc0001.xml');
  });

  it('reads the Direct layout IHE_XDM/Default/', async () => {
    const content = await readXdm(xdm([{ id: 'd1', uri: 'DOC0001.XML', bytes: DLU }], { subset: 'IHE_XDM/Default' }));
    expect(content.documents[0]?.path).toBe('IHE_XDM/Default/DOC0001.XML');
  });

  it('flags a MASQUE_PS document as masked, keeping every confidentiality code', async () => {
    const content = await readXdm(xdm([
      { id: 'd1', uri: 'DOC0001.XML', bytes: LDL, confidentiality: { code: 'MASQUE_PS', scheme: '1.2.250.1.213.1.1.4.13', display: 'Document masqué aux professionnels de santé' } },
      { id: 'd2', uri: 'DOC0002.XML', bytes: DLU },
    ]));
    expect(content.documents.map((d) => d.masked)).toEqual([true, false]);
    expect(content.documents[0]?.confidentialityCodes).toEqual([
      { code: 'MASQUE_PS', codingScheme: '1.2.250.1.213.1.1.4.13', display: 'Document masqué aux professionnels de santé' },
    ]);
  });

  it('reads a URI split into numbered slot values', async () => {
    const meta = metadataXml([{ id: 'd1', uri: 'DOC0001.XML', bytes: LDL }]).toString('utf8')
      .replace('<rim:Value>DOC0001.XML</rim:Value>', '<rim:Value>2|0001.XML</rim:Value><rim:Value>1|DOC</rim:Value>');
    const content = await readXdm(xdm([{ id: 'd1', uri: 'DOC0001.XML', bytes: LDL }], { metadata: Buffer.from(meta) }));
    expect(content.documents[0]?.uri).toBe('DOC0001.XML');
  });

  it('reads a zip written by Info-ZIP (extra fields, directory entries)', async (ctx) => {
    if (!existsSync('/usr/bin/zip')) ctx.skip();
    const dir = mkdtempSync(join(tmpdir(), 'xdm-'));
    try {
      mkdirSync(join(dir, 'IHE_XDM', 'SUBSET01'), { recursive: true });
      writeFileSync(join(dir, 'README.TXT'), 'test\r\n');
      writeFileSync(join(dir, 'IHE_XDM', 'SUBSET01', 'DOC0001.XML'), LDL);
      writeFileSync(join(dir, 'IHE_XDM', 'SUBSET01', 'METADATA.XML'), metadataXml([{ id: 'd1', uri: 'DOC0001.XML', bytes: LDL }]));
      execFileSync('/usr/bin/zip', ['-q', '-r', 'IHE_XDM.zip', 'README.TXT', 'IHE_XDM'], { cwd: dir });
      const content = await readXdm(readFileSync(join(dir, 'IHE_XDM.zip')));
      expect(content.documents[0]?.bytes.equals(LDL)).toBe(true);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('parses CX patient ids', () => {
    expect(parsePatientId(INS)).toEqual({ raw: INS, id: '279035121518989', root: '1.2.250.1.213.1.4.10' });
    expect(parsePatientId('12345')).toEqual({ raw: '12345', id: '12345', root: undefined });
    expect(parsePatientId('  ')).toBeUndefined();
  });
});

describe('readXdm: metadata that does not hold', () => {
  it('hash-mismatch: a document whose SHA-1 differs from METADATA.XML', async () => {
    await expectCode(readXdm(xdm([{ id: 'd1', uri: 'DOC0001.XML', bytes: LDL, hash: sha1(DLU) }])), 'XDM_HASH_MISMATCH');
  });

  it('size-mismatch: a document whose size differs from METADATA.XML', async () => {
    await expectCode(readXdm(xdm([{ id: 'd1', uri: 'DOC0001.XML', bytes: LDL, size: LDL.length - 1 }])), 'XDM_SIZE_MISMATCH');
  });

  it('two-submission-sets: two subsets, each with its METADATA.XML', async () => {
    const zip = buildZip([
      { name: 'IHE_XDM/SUBSET01/METADATA.XML', data: metadataXml([{ id: 'd1', uri: 'DOC0001.XML', bytes: LDL }]) },
      { name: 'IHE_XDM/SUBSET01/DOC0001.XML', data: LDL },
      { name: 'IHE_XDM/SUBSET02/METADATA.XML', data: metadataXml([{ id: 'd1', uri: 'DOC0001.XML', bytes: DLU }]) },
      { name: 'IHE_XDM/SUBSET02/DOC0001.XML', data: DLU },
    ]);
    const err = await expectCode(readXdm(zip), 'XDM_MALFORMED');
    expect(err.message).toMatch(/2 submission sets/);
  });

  it('two-submission-sets: two RegistryPackages classified as submission sets in one METADATA.XML', async () => {
    const docs = [{ id: 'd1', uri: 'DOC0001.XML', bytes: LDL }];
    const err = await expectCode(readXdm(xdm(docs, { metadata: metadataXml(docs, { packages: ['SS1', 'SS2'] }) })), 'XDM_MALFORMED');
    expect(err.message).toMatch(/2 submission sets/);
  });

  it('reads an unclassified single RegistryPackage as the submission set, with a warning', async () => {
    const docs = [{ id: 'd1', uri: 'DOC0001.XML', bytes: LDL }];
    const content = await readXdm(xdm(docs, { metadata: metadataXml(docs, { unclassified: true }) }));
    expect(content.warnings).toHaveLength(1);
  });

  it('xxe-in-metadata: an external entity in METADATA.XML is refused before anything is resolved', async () => {
    const docs = [{ id: 'd1', uri: 'DOC0001.XML', bytes: LDL }];
    const meta = metadataXml(docs, { prolog: '\n<!DOCTYPE lcm:SubmitObjectsRequest [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>' })
      .toString('utf8')
      .replace('Envoi MSSanté', '&xxe;');
    const err = await expectCode(readXdm(xdm(docs, { metadata: Buffer.from(meta) })), 'XDM_MALFORMED');
    expect(err.message).toMatch(/CDA_DTD_FORBIDDEN/);
  });

  it('billion-laughs in METADATA.XML is refused', async () => {
    const docs = [{ id: 'd1', uri: 'DOC0001.XML', bytes: LDL }];
    const prolog = '\n<!DOCTYPE x [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;"><!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">]>';
    await expectCode(readXdm(xdm(docs, { metadata: metadataXml(docs, { prolog }) })), 'XDM_MALFORMED');
  });

  it('metadata that is not XML, or not ebRIM 3.0', async () => {
    const docs = [{ id: 'd1', uri: 'DOC0001.XML', bytes: LDL }];
    await expectCode(readXdm(xdm(docs, { metadata: Buffer.from('not xml at all') })), 'XDM_MALFORMED');
    await expectCode(readXdm(xdm(docs, { metadata: Buffer.from('<SubmitObjectsRequest xmlns="urn:oasis:names:tc:ebxml-regrep:rim:xsd:2.1"/>') })), 'XDM_MALFORMED');
  });

  it('no METADATA.XML at all', async () => {
    const err = await expectCode(readXdm(buildZip([{ name: 'IHE_XDM/SUBSET01/DOC0001.XML', data: LDL }])), 'XDM_MALFORMED');
    expect(err.message).toMatch(/METADATA\.XML/);
  });

  it('a URI that names no file, and a URI that climbs out of the subset', async () => {
    const missing = [{ id: 'd1', uri: 'DOC0009.XML', bytes: LDL }];
    await expectCode(readXdm(xdm([{ id: 'd1', uri: 'DOC0001.XML', bytes: LDL }], { metadata: metadataXml(missing) })), 'XDM_MALFORMED');
    const climbing = [{ id: 'd1', uri: '../SUBSET01/DOC0001.XML', bytes: LDL }];
    await expectCode(readXdm(xdm([{ id: 'd1', uri: 'DOC0001.XML', bytes: LDL }], { metadata: metadataXml(climbing) })), 'XDM_UNSAFE_ENTRY');
  });

  it('a document entry without hash or size slot', async () => {
    const docs = [{ id: 'd1', uri: 'DOC0001.XML', bytes: LDL }];
    const meta = metadataXml(docs).toString('utf8').replace(/<rim:Slot name="hash">.*?<\/rim:Slot>/, '');
    await expectCode(readXdm(xdm(docs, { metadata: Buffer.from(meta) })), 'XDM_MALFORMED');
  });

  it('two-patients: documents of two patients in one submission set', async () => {
    await expectCode(readXdm(xdm([
      { id: 'd1', uri: 'DOC0001.XML', bytes: LDL },
      { id: 'd2', uri: 'DOC0002.XML', bytes: DLU, patientId: OTHER_INS },
    ])), 'MESSAGE_MULTIPLE_PATIENTS');
  });
});

describe('readXdm: hostile zips', () => {
  const docs = [{ id: 'd1', uri: 'DOC0001.XML', bytes: LDL }];

  it('not-a-zip: random bytes and a truncated zip', async () => {
    await expectCode(readXdm(Buffer.from('PK\x03\x04 this is not a zip')), 'XDM_MALFORMED');
    const zip = xdm(docs);
    await expectCode(readXdm(zip.subarray(0, zip.length - 30)), 'XDM_MALFORMED');
  });

  it.each([
    ['zip-slip: ../ segments', '../../etc/cron.d/evil'],
    ['zip-slip: .. inside the tree', 'IHE_XDM/SUBSET01/../../../evil.XML'],
    ['absolute path', '/etc/passwd'],
    ['drive letter', 'C:/Windows/evil.dll'],
    ['backslash separators', 'IHE_XDM\\SUBSET01\\..\\..\\evil'],
    ['control character', 'IHE_XDM/SUBSET01/DOC\u0000.XML'],
  ])('%s is refused', async (_label, name) => {
    await expectCode(readXdm(xdm(docs, { extra: [{ name, data: Buffer.from('x') }] })), 'XDM_UNSAFE_ENTRY');
  });

  it('symlink-entry: a Unix symbolic link is refused', async () => {
    const link: ZipEntryInput = { name: 'IHE_XDM/SUBSET01/LINK.XML', data: Buffer.from('/etc/passwd'), store: true, host: 3, externalAttributes: (0o120777 << 16) >>> 0 };
    const err = await expectCode(readXdm(xdm(docs, { extra: [link] })), 'XDM_UNSAFE_ENTRY');
    expect(err.message).toMatch(/symbolic link/);
  });

  it('symlink-entry: a Windows reparse point is refused', async () => {
    const link: ZipEntryInput = { name: 'IHE_XDM/SUBSET01/LINK.XML', data: Buffer.from('x'), host: 0, externalAttributes: 0x400 | 0x20 };
    await expectCode(readXdm(xdm(docs, { extra: [link] })), 'XDM_UNSAFE_ENTRY');
  });

  it('encrypted-flag: an entry marked encrypted is refused', async () => {
    await expectCode(readXdm(xdm(docs, { extra: [{ name: 'IHE_XDM/SUBSET01/SECRET.XML', data: Buffer.from('x'), flags: 0x1 }] })), 'XDM_UNSAFE_ENTRY');
  });

  it('strong-encryption: an entry with the PKWARE strong encryption flag is refused', async () => {
    await expectCode(readXdm(xdm(docs, { extra: [{ name: 'IHE_XDM/SUBSET01/SECRET.XML', data: Buffer.from('x'), flags: 0x41 }] })), 'XDM_UNSAFE_ENTRY');
  });

  it('duplicate-entry: two entries of one name are refused', async () => {
    await expectCode(readXdm(xdm(docs, { extra: [{ name: 'IHE_XDM/SUBSET01/doc0001.xml', data: DLU }] })), 'XDM_UNSAFE_ENTRY');
  });

  it('crc-corrupt: an entry whose CRC-32 does not match is refused', async () => {
    const zip = buildZip([
      { name: 'IHE_XDM/SUBSET01/METADATA.XML', data: metadataXml(docs) },
      { name: 'IHE_XDM/SUBSET01/DOC0001.XML', data: LDL, crc: 0x12345678 },
    ]);
    await expectCode(readXdm(zip), 'XDM_MALFORMED');
  });

  it('too-many-entries: 201 entries', async () => {
    const extra = Array.from({ length: 201 - 5 }, (_, i) => ({ name: `IHE_XDM/SUBSET01/F${i}.TXT`, data: Buffer.from('x') }));
    await expectCode(readXdm(xdm(docs, { extra: [...extra, { name: 'A.TXT', data: Buffer.from('x') }, { name: 'B.TXT', data: Buffer.from('x') }] })), 'XDM_LIMIT_EXCEEDED');
  });

  it('declared sizes over the total budget are refused before inflating', async () => {
    const zip = xdm(docs);
    await expectCode(readXdm(zip, { maxTotalBytes: LDL.length }), 'XDM_LIMIT_EXCEEDED');
    await expectCode(readXdm(zip, { maxEntryBytes: LDL.length - 1 }), 'XDM_LIMIT_EXCEEDED');
  });

  it('compression ratio: 40 MB of zeros in 40 KB (1000:1) is refused from its declaration', async () => {
    const zeros = deflatedZeros(40);
    await expectCode(readXdm(xdm(docs, { extra: [{ name: 'IHE_XDM/SUBSET01/ZEROS.BIN', precompressed: zeros }] })), 'XDM_LIMIT_EXCEEDED');
  });

  describe('zip-bomb: 1 GB of zeros deflated to about 1 MB', () => {
    const bomb = deflatedZeros(1024);

    it('declared honestly: refused from the central directory, nothing inflated', async () => {
      expect(bomb.deflated.length).toBeLessThan(2 * 1024 * 1024);
      const before = process.memoryUsage().rss;
      const err = await expectCode(readXdm(xdm(docs, { extra: [{ name: 'IHE_XDM/SUBSET01/BOMB.XML', precompressed: bomb }] })), 'XDM_LIMIT_EXCEEDED');
      expect(err.message).toMatch(/declares/);
      expect(process.memoryUsage().rss - before).toBeLessThan(200 * 1024 * 1024);
    });

    it('declared as 4 KB and listed in METADATA.XML as the document: stopped while streaming', async () => {
      const meta = metadataXml([{ id: 'd1', uri: 'DOC0001.XML', bytes: Buffer.alloc(4096) }]);
      const zip = buildZip([
        { name: 'IHE_XDM/SUBSET01/METADATA.XML', data: meta },
        { name: 'IHE_XDM/SUBSET01/DOC0001.XML', precompressed: bomb, declaredSize: 4096 },
      ]);
      const before = process.memoryUsage().rss;
      const err = await expectCode(readXdm(zip), 'XDM_LIMIT_EXCEEDED');
      expect(err.message).toMatch(/beyond its declared/);
      expect(process.memoryUsage().rss - before).toBeLessThan(200 * 1024 * 1024);
    });

    it('several honest 40 MB entries: the declared total is refused', async () => {
      const zeros40 = deflatedZeros(40);
      const extra = [1, 2, 3].map((i) => ({ name: `IHE_XDM/SUBSET01/Z${i}.BIN`, precompressed: zeros40 }));
      await expectCode(readXdm(xdm(docs, { extra }), { maxRatio: 10_000 }), 'XDM_LIMIT_EXCEEDED');
    });
  });
});
