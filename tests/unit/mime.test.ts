/**
 * MIME split, attachment finding, S/MIME description and MSSanté headers. Messages are written in
 * the tests and named after what they reproduce; documents are the ANS corpus, read in place.
 */
import { randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { PasserelleError } from '../../gateway/errors.js';
import {
  canonicalCrlf,
  decodeBase64,
  decodeQuotedPrintable,
  decodedHeader,
  describeSecurity,
  findAttachments,
  headerValue,
  headerValues,
  isClinicalDocument,
  parseMessage,
  type MimePart,
} from '../../gateway/mail/mime.js';
import { parseMssSubject, readMssHeaders, subjectNamesPatient } from '../../gateway/mail/mss-headers.js';
import { corpusDocument } from '../support/corpus.js';
import { buildZip } from '../support/zip.js';

const LDL = corpusDocument('LDL-SES_2022.01.xml');
/** The real PDF carried by the ANS level-1 example (nonXMLBody, base64 with line breaks). */
const PDF = (() => {
  const xml = corpusDocument('DOC_NON_STRUCTURE_CDA-R2-N1.xml').toString('utf8');
  const m = /<text mediaType="application\/pdf" representation="B64">([^<]*)<\/text>/.exec(xml);
  if (!m?.[1]) throw new Error('CORPUS INCOMPLETE: no PDF in DOC_NON_STRUCTURE_CDA-R2-N1.xml');
  return Buffer.from(m[1].replace(/\s+/g, ''), 'base64');
})();
const ZIP = buildZip([{ name: 'IHE_XDM/SUBSET01/DOC0001.XML', data: LDL }]);

/** Base64 in 76-character lines (RFC 2045 §6.8). */
function b64(bytes: Buffer): string {
  return (bytes.toString('base64').match(/.{1,76}/g) ?? []).join('\r\n');
}

const crlf = (s: string): Buffer => Buffer.from(s.replace(/\r?\n/g, '\r\n'), 'utf8');

function mssMessage(): string {
  return `From: Dr Expéditeur <medecin@hopital.mssante.fr>
To: bal-applicative@dac.mssante.fr
Subject: =?UTF-8?Q?XDM/1.0/DDM+Lettre_de_liaison_=C3=A0_la_sortie_d_PAT-TROIS?=
 =?UTF-8?Q?_DOMINIQUE_28/03/1979?=
Message-ID: <abc@hopital.mssante.fr>
X-MSS-CODECDA: 11490-0
X-MSS-INS: O
MIME-Version: 1.0
Content-Type: multipart/mixed;
 boundary="----=_Part_0_1234"

This is a multi-part message in MIME format.
------=_Part_0_1234
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: quoted-printable

Veuillez trouver ci-joint la lettre de liaison de Mme PAT-TROIS.=0D
Cordialement.
------=_Part_0_1234
Content-Type: application/zip; name=IHE_XDM.zip
Content-Transfer-Encoding: base64
Content-Disposition: attachment; filename=IHE_XDM.zip

${b64(ZIP)}
------=_Part_0_1234
Content-Type: application/pdf; name="20240115_LDL-SES_PAT-TROIS_DOMINIQUE.pdf"
Content-Transfer-Encoding: base64
Content-Disposition: attachment;
 filename="20240115_LDL-SES_PAT-TROIS_DOMINIQUE.pdf"

${b64(PDF)}
------=_Part_0_1234
Content-Type: text/xml; charset=utf-8
Content-Transfer-Encoding: base64
Content-Disposition: attachment; filename="LDL-SES.xml"

${b64(LDL)}
------=_Part_0_1234--
epilogue, ignored
`;
}

function expectMalformed(fn: () => unknown): PasserelleError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(PasserelleError);
    expect((err as PasserelleError).code).toBe('MIME_MALFORMED');
    return err as PasserelleError;
  }
  throw new Error('expected MIME_MALFORMED');
}

describe('parseMessage: structure', () => {
  it('splits an MSSanté message and finds its XDM zip, PDF and CDA', () => {
    const root = parseMessage(crlf(mssMessage()));
    expect(root.contentType.mediaType).toBe('multipart/mixed');
    expect(root.children).toHaveLength(4);
    expect(root.children[0]?.content.toString('utf8')).toBe('Veuillez trouver ci-joint la lettre de liaison de Mme PAT-TROIS.\r\r\nCordialement.');
    const found = findAttachments(root);
    expect(found.map((a) => [a.kind, a.filename, a.forwarded])).toEqual([
      ['xdm', 'IHE_XDM.zip', false],
      ['pdf', '20240115_LDL-SES_PAT-TROIS_DOMINIQUE.pdf', false],
      ['cda', 'LDL-SES.xml', false],
    ]);
    expect(found[0]?.content.equals(ZIP)).toBe(true);
    expect(found[1]?.content.equals(PDF)).toBe(true);
    expect(found[2]?.content.equals(LDL)).toBe(true);
    expect(root.defects).toEqual([]);
  });

  it('keeps headers unfolded and raw, decodes encoded words on request', () => {
    const root = parseMessage(crlf(mssMessage()));
    expect(headerValue(root, 'subject')).toBe('=?UTF-8?Q?XDM/1.0/DDM+Lettre_de_liaison_=C3=A0_la_sortie_d_PAT-TROIS?= =?UTF-8?Q?_DOMINIQUE_28/03/1979?=');
    expect(decodedHeader(root, 'Subject')).toBe('XDM/1.0/DDM+Lettre de liaison à la sortie d PAT-TROIS DOMINIQUE 28/03/1979');
    expect(headerValues(root, 'x-mss-ins')).toEqual(['O']);
    expect(decodedHeader(root, 'From')).toBe('Dr Expéditeur <medecin@hopital.mssante.fr>');
    expect(root.rawHeaders.toString('utf8').endsWith('boundary="----=_Part_0_1234"\r\n\r\n')).toBe(true);
    expect(root.headers.find((h) => h.name === 'Content-Type')?.raw.toString()).toBe('Content-Type: multipart/mixed;\r\n boundary="----=_Part_0_1234"');
  });

  it('rfc2047-name: a Content-Type name in encoded words (Outlook) and no Content-Disposition', () => {
    const msg = `Content-Type: multipart/mixed; boundary=b

--b
Content-Type: application/pdf; name="=?UTF-8?B?${Buffer.from('Compte rendu opératoire.pdf').toString('base64')}?="
Content-Transfer-Encoding: base64

${b64(PDF)}
--b--
`;
    const [pdf] = findAttachments(parseMessage(crlf(msg)));
    expect(pdf?.kind).toBe('pdf');
    expect(pdf?.filename).toBe('Compte rendu opératoire.pdf');
    expect(pdf?.part.disposition).toBeUndefined();
  });

  it('rfc2231-filename: continuations with a charset, in Content-Disposition', () => {
    const msg = `Content-Type: multipart/mixed; boundary=b

--b
Content-Type: application/octet-stream
Content-Transfer-Encoding: base64
Content-Disposition: attachment;
 filename*0*=utf-8''Lettre%20de%20liaison%20%C3%A0;
 filename*1*=%20la%20sortie.pdf

${b64(PDF)}
--b--
`;
    const [pdf] = findAttachments(parseMessage(crlf(msg)));
    expect(pdf?.kind).toBe('pdf');
    expect(pdf?.filename).toBe('Lettre de liaison à la sortie.pdf');
  });

  it('missing-content-disposition: IHE_XDM.zip named only in Content-Type, in any casing', () => {
    const msg = `Content-Type: multipart/mixed; boundary=b

--b
Content-Type: application/octet-stream; name=ihe_xdm.ZIP
Content-Transfer-Encoding: base64

${b64(ZIP)}
--b--
`;
    const [zip] = findAttachments(parseMessage(crlf(msg)));
    expect(zip).toMatchObject({ kind: 'xdm', filename: 'ihe_xdm.ZIP' });
    expect(zip?.content.equals(ZIP)).toBe(true);
  });

  it('lf-only: a message stored with bare LF line ends reads the same', () => {
    const crlfRoot = parseMessage(crlf(mssMessage()));
    const lfRoot = parseMessage(Buffer.from(mssMessage().replace(/\r\n/g, '\n'), 'utf8'));
    const a = findAttachments(crlfRoot);
    const b = findAttachments(lfRoot);
    expect(b.map((x) => x.kind)).toEqual(a.map((x) => x.kind));
    for (let i = 0; i < a.length; i++) expect(b[i]?.content.equals(a[i]?.content ?? Buffer.alloc(0))).toBe(true);
    expect(decodedHeader(lfRoot, 'Subject')).toBe(decodedHeader(crlfRoot, 'Subject'));
  });

  it('missing-final-boundary: the last part runs to the end, with a defect', () => {
    const msg = mssMessage().replace(/------=_Part_0_1234--\nepilogue, ignored\n$/, '');
    const root = parseMessage(crlf(msg));
    expect(findAttachments(root).map((a) => a.kind)).toEqual(['xdm', 'pdf', 'cda']);
    expect(root.defects.join()).toMatch(/close delimiter/);
  });

  it('boundary-lookalike: a body line that starts like the boundary is not a delimiter', () => {
    const msg = `Content-Type: multipart/mixed; boundary=abc

--abc
Content-Type: text/plain

--abcdef is not a delimiter
--abc  
Content-Type: text/plain

second
--abc--
`;
    const root = parseMessage(crlf(msg));
    expect(root.children.map((c) => c.content.toString())).toEqual(['--abcdef is not a delimiter', 'second']);
  });

  it('multipart without boundary, unknown transfer encoding, no body: read with defects', () => {
    const root = parseMessage(crlf('Content-Type: multipart/mixed\nContent-Transfer-Encoding: x-uuencode\n\nbody\n'));
    expect(root.children).toEqual([]);
    expect(root.defects).toHaveLength(3); // no boundary, unknown encoding, encoded multipart
    const headersOnly = parseMessage(Buffer.from('Subject: only headers'));
    expect(headersOnly.content.length).toBe(0);
  });

  it('nested-forward: a forwarded message/rfc822 carrying the XDM zip', () => {
    const inner = mssMessage();
    const msg = `From: secretariat@cabinet.mssante.fr
Subject: TR: XDM/1.0/DDM+Lettre de liaison
Content-Type: multipart/mixed; boundary=outer

--outer
Content-Type: text/plain

Voir le message transféré.
--outer
Content-Type: message/rfc822

${inner}
--outer--
`;
    const root = parseMessage(crlf(msg));
    const forwarded = root.children[1]?.message;
    expect(forwarded?.path).toBe('2.m');
    expect(decodedHeader(forwarded as MimePart, 'X-MSS-CODECDA')).toBe('11490-0');
    const found = findAttachments(root);
    expect(found.map((a) => [a.kind, a.forwarded])).toEqual([['xdm', true], ['pdf', true], ['cda', true]]);
  });

  it('digest: parts default to message/rfc822 (RFC 2046 §5.1.5)', () => {
    const root = parseMessage(crlf('Content-Type: multipart/digest; boundary=d\n\n--d\n\nSubject: one\n\nhello\n--d--\n'));
    expect(root.children[0]?.contentType).toMatchObject({ mediaType: 'message/rfc822', defaulted: true });
    expect(decodedHeader(root.children[0]?.message as MimePart, 'Subject')).toBe('one');
  });

  it('1000-nested-multiparts: refused at the depth limit, quickly', () => {
    let msg = 'Content-Type: text/plain\r\n\r\ninnermost\r\n';
    for (let i = 0; i < 1000; i++) msg = `Content-Type: multipart/mixed; boundary="b${i}"\r\n\r\n--b${i}\r\n${msg}--b${i}--\r\n`;
    const err = expectMalformed(() => parseMessage(Buffer.from(msg)));
    expect(err.message).toMatch(/deeper than 32/);
    // Within the limit, the same construction reads.
    let ok = 'Content-Type: text/plain\r\n\r\ninnermost\r\n';
    for (let i = 0; i < 20; i++) ok = `Content-Type: multipart/mixed; boundary="b${i}"\r\n\r\n--b${i}\r\n${ok}--b${i}--\r\n`;
    let part: MimePart | undefined = parseMessage(Buffer.from(ok));
    while (part?.children.length) part = part.children[0];
    expect(part?.content.toString()).toBe('innermost');
  });

  it('1000-nested-forwards: message/rfc822 nesting is bounded too', () => {
    let msg = 'Subject: innermost\r\n\r\nhello\r\n';
    for (let i = 0; i < 1000; i++) msg = `Subject: fwd ${i}\r\nContent-Type: message/rfc822\r\n\r\n${msg}`;
    expectMalformed(() => parseMessage(Buffer.from(msg)));
  });

  it('too-many-parts: 5000 sibling parts are refused', () => {
    const parts = Array.from({ length: 5000 }, () => '--b\r\nContent-Type: text/plain\r\n\r\nx\r\n').join('');
    const err = expectMalformed(() => parseMessage(Buffer.from(`Content-Type: multipart/mixed; boundary=b\r\n\r\n${parts}--b--\r\n`)));
    expect(err.message).toMatch(/more than 1000 parts/);
  });

  it('huge header block and empty input are refused', () => {
    expectMalformed(() => parseMessage(Buffer.alloc(0)));
    expectMalformed(() => parseMessage(Buffer.from(`X-Junk: ${'a'.repeat(300 * 1024)}\r\n\r\nbody`)));
    expectMalformed(() => parseMessage(Buffer.from('\r\nno headers at all')));
  });

  it('never fails other than with MIME_MALFORMED on random bytes or mutated messages', () => {
    const base = crlf(mssMessage());
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 2000 }), fc.nat(base.length), fc.nat(400), (noise, at, cut) => {
        for (const input of [Buffer.from(noise), Buffer.concat([base.subarray(0, at), Buffer.from(noise), base.subarray(Math.min(base.length, at + cut))])]) {
          try {
            const root = parseMessage(input);
            findAttachments(root);
            describeSecurity(root);
            readMssHeaders(root);
          } catch (err) {
            if (!(err instanceof PasserelleError) || err.code !== 'MIME_MALFORMED') throw err;
          }
        }
      }),
      { numRuns: 200 },
    );
  });
});

describe('transfer encodings', () => {
  it('base64 tolerant of whitespace, junk and padding inside the stream', () => {
    expect(decodeBase64(Buffer.from(' QUJD\r\n\tREVG ')).toString()).toBe('ABCDEF');
    expect(decodeBase64(Buffer.from('QUI=\r\nQ0Q=')).toString()).toBe('ABCD');
    expect(decodeBase64(Buffer.from('QU!JD*')).toString()).toBe('ABC');
    expect(decodeBase64(Buffer.from(b64(PDF))).equals(PDF)).toBe(true);
  });

  it('base64 decodes what was encoded, whatever whitespace and padding the lines carry', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), fc.integer({ min: 1, max: 80 }), fc.constantFrom('\r\n', '\n', ' ', '\t'), fc.boolean(), (bytes, width, sep, padEachLine) => {
        const data = Buffer.from(bytes);
        const encoded = padEachLine
          ? (data.toString('hex').match(/.{1,6}/g) ?? []).map((h) => Buffer.from(h, 'hex').toString('base64')).join(sep)
          : (data.toString('base64').match(new RegExp(`.{1,${width}}`, 'g')) ?? []).join(sep);
        expect(decodeBase64(Buffer.from(encoded)).equals(data)).toBe(true);
      }),
      { numRuns: 300 },
    );
  });

  it('base64 bodies above one slice: regular lines decoded slice by slice, any irregularity still decoded right', () => {
    // Above 48 K characters the decoder works slice by slice when lines are regular; a space, a
    // junk byte, a short or long line, a missing line break anywhere must not change the result.
    const seed = randomBytes(120_000);
    fc.assert(
      fc.property(
        fc.integer({ min: 40_000, max: 120_000 }),
        fc.constantFrom(76, 64, 72, 75, 4),
        fc.constantFrom('\r\n', '\n'),
        fc.option(fc.tuple(fc.double({ min: 0, max: 0.99, noNaN: true }), fc.constantFrom(' ', '*', '', 'QQ', '\r\n', '\u00e9')), { nil: undefined }),
        (size, width, eol, damage) => {
          const data = seed.subarray(0, size);
          let encoded = (data.toString('base64').match(new RegExp(`.{1,${width}}`, 'g')) ?? []).join(eol);
          let expected: Buffer = data;
          if (damage) {
            const [where, what] = damage;
            const at = Math.floor(where * encoded.length);
            // Before the padding ('QQ' after it would be padding in the middle, tested above); 'QQ'
            // adds alphabet characters: the expected bytes are what the damaged text means.
            encoded = what === '' ? encoded.slice(0, at) + encoded.slice(at + 1) : encoded.slice(0, at) + what + encoded.slice(at);
            expected = Buffer.from(encoded.replace(/[^A-Za-z0-9+/]/g, ''), 'base64');
          }
          expect(decodeBase64(Buffer.from(encoded, 'latin1')).equals(expected)).toBe(true);
        },
      ),
      { numRuns: 60 },
    );
  });

  it('quoted-printable: soft breaks, transport padding, lower-case hex, stray equals', () => {
    const qp = Buffer.from('caf=C3=A9 cr=c3=a8me=\r\nsuite  \r\nfin=\nX = 1 =ZZ');
    expect(decodeQuotedPrintable(qp).toString('utf8')).toBe('café crèmesuite\r\nfinX = 1 =ZZ');
  });

  it('canonicalCrlf turns bare LF into CRLF and leaves CRLF alone', () => {
    expect(canonicalCrlf(Buffer.from('a\nb\r\nc\n')).toString()).toBe('a\r\nb\r\nc\r\n');
    const already = Buffer.from('a\r\nb');
    expect(canonicalCrlf(already)).toBe(already);
  });
});

describe('attachment classification', () => {
  it('an XML attachment that is not a CDA is not a document', () => {
    const msg = `Content-Type: multipart/mixed; boundary=b

--b
Content-Type: text/xml; name=METADATA.XML

<?xml version="1.0"?><lcm:SubmitObjectsRequest xmlns:lcm="urn:oasis:names:tc:ebxml-regrep:xsd:lcm:3.0"/>
--b--
`;
    expect(findAttachments(parseMessage(crlf(msg)))).toEqual([]);
  });

  it('recognises a ClinicalDocument wrapped in xsl:stylesheet, with a prefix, or in UTF-16', () => {
    expect(isClinicalDocument(Buffer.from('<xsl:stylesheet><xsl:template><ClinicalDocument xmlns="urn:hl7-org:v3">'))).toBe(true);
    expect(isClinicalDocument(Buffer.from('<hl7:ClinicalDocument xmlns:hl7="urn:hl7-org:v3"/>'))).toBe(true);
    expect(isClinicalDocument(Buffer.from('<!-- ClinicalDocument --><x:NotClinicalDocuments/>'))).toBe(false);
    expect(isClinicalDocument(Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from('<ClinicalDocument/>', 'utf16le')]))).toBe(true);
  });

  it('a PDF and a zip sent as application/octet-stream without names are found by their magic', () => {
    const msg = `Content-Type: multipart/mixed; boundary=b

--b
Content-Type: application/octet-stream
Content-Transfer-Encoding: base64

${b64(PDF)}
--b
Content-Type: application/octet-stream
Content-Transfer-Encoding: base64

${b64(ZIP)}
--b--
`;
    expect(findAttachments(parseMessage(crlf(msg))).map((a) => a.kind)).toEqual(['pdf', 'xdm']);
  });
});

describe('S/MIME description (no cryptography)', () => {
  const signedEntity = `Content-Type: multipart/mixed; boundary=inner\r\n\r\n--inner\r\nContent-Type: text/plain\r\n\r\nbonjour\r\n--inner\r\nContent-Type: application/zip; name=IHE_XDM.zip\r\nContent-Transfer-Encoding: base64\r\n\r\n${b64(ZIP)}\r\n--inner--\r\n`;
  const signature = Buffer.from('3082 not a real CMS: the verifier reads it, not this module');
  const signedMessage = `From: medecin@hopital.mssante.fr\r\nContent-Type: multipart/signed; protocol="application/pkcs7-signature"; micalg="SHA-256"; boundary="sig"\r\n\r\nThis is an S/MIME signed message\r\n--sig\r\n${signedEntity}\r\n--sig\r\nContent-Type: application/pkcs7-signature; name=smime.p7s\r\nContent-Transfer-Encoding: base64\r\nContent-Disposition: attachment; filename=smime.p7s\r\n\r\n${b64(signature)}\r\n--sig--\r\n`;

  it('multipart/signed: the first part keeps its exact bytes, without the CRLF before the boundary', () => {
    const root = parseMessage(Buffer.from(signedMessage));
    const [layer] = describeSecurity(root);
    expect(layer?.kind).toBe('multipart-signed');
    if (layer?.kind !== 'multipart-signed') return;
    expect(layer.protocol).toBe('application/pkcs7-signature');
    expect(layer.micalg).toEqual(['sha-256']);
    expect(layer.problem).toBeUndefined();
    expect(layer.content?.raw.toString('latin1')).toBe(signedEntity);
    expect(layer.signature?.content.equals(signature)).toBe(true);
    expect(layer.signature?.filename).toBe('smime.p7s');
    // The documents inside the signed entity are found.
    expect(findAttachments(root).map((a) => a.kind)).toEqual(['xdm']);
  });

  it('multipart/signed stored with LF: canonicalCrlf gives back the signed bytes', () => {
    const root = parseMessage(Buffer.from(signedMessage.replace(/\r\n/g, '\n')));
    const [layer] = describeSecurity(root);
    if (layer?.kind !== 'multipart-signed') throw new Error('not signed');
    expect(canonicalCrlf(layer.content?.raw ?? Buffer.alloc(0)).toString('latin1')).toBe(signedEntity);
  });

  it('multipart/signed with three parts is described with its problem', () => {
    const root = parseMessage(crlf('Content-Type: multipart/signed; protocol="application/pkcs7-signature"; micalg=sha-256; boundary=s\n\n--s\n\na\n--s\n\nb\n--s\n\nc\n--s--\n'));
    const [layer] = describeSecurity(root);
    expect(layer?.kind === 'multipart-signed' && layer.problem).toMatch(/3 body parts/);
  });

  it('application/pkcs7-mime enveloped-data and legacy x-pkcs7-mime signed-data', () => {
    const enveloped = parseMessage(crlf(`From: a@b.mssante.fr\nContent-Type: application/pkcs7-mime; smime-type=enveloped-data; name=smime.p7m\nContent-Transfer-Encoding: base64\nContent-Disposition: attachment; filename=smime.p7m\n\n${b64(Buffer.from('opaque CMS bytes'))}\n`));
    expect(describeSecurity(enveloped)).toMatchObject([{ kind: 'pkcs7-mime', smimeType: 'enveloped-data', legacyType: false }]);
    expect(enveloped.content.toString()).toBe('opaque CMS bytes');
    expect(findAttachments(enveloped)).toEqual([]);
    const legacy = parseMessage(crlf('Content-Type: application/x-pkcs7-mime; smime-type="Signed-Data"\nContent-Transfer-Encoding: base64\n\nAAAA\n'));
    expect(describeSecurity(legacy)).toMatchObject([{ kind: 'pkcs7-mime', smimeType: 'signed-data', legacyType: true }]);
    const named = parseMessage(crlf('Content-Type: application/octet-stream; name=smime.p7m\nContent-Transfer-Encoding: base64\n\nMIAGCSqGSIb3DQEHA6CAMIACAQA=\n'));
    expect(describeSecurity(named)).toMatchObject([{ kind: 'pkcs7-mime', smimeType: undefined, byFilename: true }]);
    expect(findAttachments(named)).toEqual([]);
  });
});

describe('MSSanté headers', () => {
  it('reads X-MSS-CODECDA, X-MSS-INS and the subject convention', () => {
    const headers = readMssHeaders(parseMessage(crlf(mssMessage())));
    expect(headers).toMatchObject({ codeCda: ['11490-0'], ins: 'O', defects: [] });
    expect(headers.subject).toMatchObject({
      version: '1.0',
      birthDate: '1979-03-28',
      labelAndName: 'Lettre de liaison à la sortie d PAT-TROIS DOMINIQUE',
      guess: { label: 'Lettre de liaison à la sortie d', family: 'PAT-TROIS', given: 'DOMINIQUE' },
      koCode: undefined,
    });
  });

  it('compares the subject with the CDA patient, accents and case folded', () => {
    const subject = parseMssSubject('XDM/1.0/DDM+Lettre de liaison à la sortie d PAT-TROIS Dominique 28/03/1979');
    if (!subject) throw new Error('not parsed');
    expect(subjectNamesPatient(subject, { family: 'PAT-TROIS', given: 'DOMINIQUE', birthDate: '1979-03-28', label: "Lettre de liaison à la sortie de l'établissement de santé" }))
      .toEqual({ name: true, birthDate: true, label: true });
    expect(subjectNamesPatient(subject, { family: 'DUPONT', given: 'Jeanne', birthDate: '1979-03-15' })).toEqual({ name: false, birthDate: false, label: undefined });
  });

  it('reads prefixes, the KO acknowledgement subject, several codes, and refuses what is not the convention', () => {
    expect(parseMssSubject('RE: TR: [KO Intégration système !][903] XDM/1.0/DDM+2 documents MARTIN-DURAND Éloïse 31/02/1950')).toMatchObject({
      prefixes: ['RE', 'TR'],
      koCode: '903',
      birthDate: undefined,
      guess: { label: '2 documents', family: 'MARTIN-DURAND', given: 'Éloïse' },
    });
    expect(parseMssSubject('Bonjour')).toBeUndefined();
    const headers = readMssHeaders(parseMessage(crlf('X-MSS-CODECDA: 11490-0^^LN, 34133-9\nX-MSS-INS: maybe\nSubject: hello\n\n')));
    expect(headers.codeCda).toEqual(['11490-0', '34133-9']);
    expect(headers.ins).toBeUndefined();
    expect(headers.defects).toHaveLength(2);
  });
});
