/**
 * IHE XDM reader: real ANS CDA documents (read from ../shared/corpus, never copied) packed at test
 * time with a synthetic ebRIM 3.0 METADATA.XML, and hostile zips named after what they reproduce.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { PasserelleError, type ErrorCode } from '../../gateway/errors.js';
import { parsePatientId, readXdm } from '../../gateway/mail/xdm.js';
import { corpusDocument } from '../support/corpus.js';
import { INS, metadataXml, OTHER_INS, sha1, xdm } from '../support/xdm.js';
import { buildZip, deflatedZeros, type ZipEntryInput } from '../support/zip.js';
import { rejection } from '../support/rejection.js';

const LDL = corpusDocument('LDL-SES_2022.01.xml');
const DLU = corpusDocument('DLU-EHPAD-FLUDT_2022.01.xml');

async function expectCode(promise: Promise<unknown>, code: ErrorCode): Promise<PasserelleError> {
  const err = await rejection(promise);
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

  it('reads a zip written by Info-ZIP (extra fields, directory entries), deflated or stored (-0)', async (ctx) => {
    if (!existsSync('/usr/bin/zip')) ctx.skip();
    const dir = mkdtempSync(join(tmpdir(), 'xdm-'));
    try {
      mkdirSync(join(dir, 'IHE_XDM', 'SUBSET01'), { recursive: true });
      writeFileSync(join(dir, 'README.TXT'), 'test\r\n');
      writeFileSync(join(dir, 'IHE_XDM', 'SUBSET01', 'DOC0001.XML'), LDL);
      writeFileSync(join(dir, 'IHE_XDM', 'SUBSET01', 'METADATA.XML'), metadataXml([{ id: 'd1', uri: 'DOC0001.XML', bytes: LDL }]));
      for (const [name, level] of [['deflated.zip', []], ['stored.zip', ['-0']]] as const) {
        execFileSync('/usr/bin/zip', ['-q', ...level, '-r', name, 'README.TXT', 'IHE_XDM'], { cwd: dir });
        const content = await readXdm(readFileSync(join(dir, name)));
        expect(content.documents[0]?.bytes.equals(LDL), name).toBe(true);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('reads stored (not deflated) entries, as `zip -0` and some XDM writers write them', async () => {
    const docs = [{ id: 'd1', uri: 'DOC0001.XML', bytes: LDL }];
    const zip = buildZip([
      { name: 'README.TXT', data: Buffer.from('test\r\n'), store: true },
      { name: 'IHE_XDM/SUBSET01/METADATA.XML', data: metadataXml(docs), store: true },
      { name: 'IHE_XDM/SUBSET01/DOC0001.XML', data: LDL, store: true },
    ]);
    const content = await readXdm(zip);
    expect(content.documents[0]?.bytes.equals(LDL)).toBe(true);
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
