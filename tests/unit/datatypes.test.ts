/** CDA data types → FHIR: identifiers, codes, times, addresses, telecoms, and the INS key. */
import { describe, expect, it } from 'vitest';
import { ConversionContext } from '../../gateway/cda/context.js';
import { address, coding, concept, contactPoint, identifier } from '../../gateway/cda/datatypes.js';
import { date, dateTime, instant, parisOffset, period } from '../../gateway/cda/time.js';
import { parseXml, type XElement } from '../../gateway/cda/xml.js';
import { checkInsKey } from '../../gateway/identity/ins.js';

const el = (xml: string): XElement => parseXml(Buffer.from(`<x xmlns="urn:hl7-org:v3">${xml}</x>`)).children.find((c) => typeof c !== 'string') as XElement;
const newCtx = (zone?: string): ConversionContext => {
  const ctx = new ConversionContext('doc', 'salt', el('<y/>'));
  ctx.documentZone = zone;
  return ctx;
};
const codes = (ctx: ConversionContext): string[] => ctx.report.issues.map((i) => i.details?.coding?.[0]?.code ?? '');

describe('II → Identifier', () => {
  it('root + extension → urn:oid system', () => {
    expect(identifier(newCtx(), el('<id root="1.2.250.1.71.4.2.1" extension="801234567897"/>'))).toEqual({ system: 'urn:oid:1.2.250.1.71.4.2.1', value: '801234567897' });
  });
  it('a lone UUID root → urn:ietf:rfc:3986 and a lower-case urn:uuid', () => {
    expect(identifier(newCtx(), el('<id root="1A2B3C4D-0000-4000-8000-00000000AB01"/>'))).toEqual({ system: 'urn:ietf:rfc:3986', value: 'urn:uuid:1a2b3c4d-0000-4000-8000-00000000ab01' });
  });
  it('a lone OID root → urn:ietf:rfc:3986 and urn:oid', () => {
    expect(identifier(newCtx(), el('<id root="1.2.250.1.213.1.1.1.29.2022.1.1"/>'))).toEqual({ system: 'urn:ietf:rfc:3986', value: 'urn:oid:1.2.250.1.213.1.1.1.29.2022.1.1' });
  });
  it('nullFlavor → nothing; a placeholder root → value only, reported', () => {
    expect(identifier(newCtx(), el('<id nullFlavor="UNK"/>'))).toBeUndefined();
    const ctx = newCtx();
    expect(identifier(ctx, el('<id root="xxxx" extension="A1"/>'))).toEqual({ value: 'A1' });
    expect(codes(ctx)).toEqual(['ID_INVALID']);
  });
});

describe('CD → Coding', () => {
  it('uses FHIR URIs for known code systems and urn:oid otherwise', () => {
    expect(coding(el('<code code="11490-0" codeSystem="2.16.840.1.113883.6.1"/>'))?.system).toBe('http://loinc.org');
    expect(coding(el('<code code="IMP" codeSystem="2.16.840.1.113883.5.4"/>'))?.system).toBe('http://terminology.hl7.org/CodeSystem/v3-ActCode');
    expect(coding(el('<code code="X" codeSystem="1.2.250.1.213.1.1.4.322"/>'))?.system).toBe('urn:oid:1.2.250.1.213.1.1.4.322');
    expect(coding(el('<code nullFlavor="NA"/>'))).toBeUndefined();
    // A displayName wrapped over lines in the source keeps no run of spaces.
    expect(coding(el(`<code code="X" displayName="Pose d'une sonde
                          urinaire" codeSystem="1.2.3"/>`))?.display).toBe("Pose d'une sonde urinaire");
  });
});

describe('CD → CodeableConcept', () => {
  it('adds an unnamed qualifier as the more specific coding (FR-Habitus-Mode-de-vie), never a named one', () => {
    const qualified = concept(newCtx(), el(`<code code="11345-6" displayName="Autre élément social" codeSystem="2.16.840.1.113883.6.1">
      <qualifier><value code="77318-4" displayName="Allaitement au sein" codeSystem="2.16.840.1.113883.6.1"/></qualifier></code>`));
    expect(qualified?.coding?.map((c) => c.code)).toEqual(['11345-6', '77318-4']);
    expect(qualified?.text).toBe('Autre élément social : Allaitement au sein');
    const lateral = concept(newCtx(), el(`<code code="71388002" displayName="Acte" codeSystem="2.16.840.1.113883.6.96">
      <qualifier><name code="272741003" codeSystem="2.16.840.1.113883.6.96"/><value code="7771000" displayName="Gauche" codeSystem="2.16.840.1.113883.6.96"/></qualifier></code>`));
    expect(lateral).toEqual({ coding: [{ system: 'http://snomed.info/sct', code: '71388002', display: 'Acte' }] });
  });

  it('takes originalText from the section narrative it references, never from an entry (base64 of an observationMedia)', () => {
    const doc = el(`<section><text><content ID="n1">Hypertension artérielle</content></text>
      <entry><observationMedia ID="m1"><value mediaType="image/png" representation="B64">iVBORw0KGgo=</value></observationMedia></entry></section>`);
    const ctx = new ConversionContext('doc', 'salt', doc);
    const named = (ref: string, own = ''): string | undefined => concept(ctx, el(`<code code="I10" codeSystem="2.16.840.1.113883.6.3"><originalText>${own}<reference value="${ref}"/></originalText></code>`))?.text;
    expect(named('#n1')).toBe('Hypertension artérielle');
    expect(named('n1')).toBe('Hypertension artérielle'); // the bare id of some published examples
    expect(named('#m1')).toBeUndefined();
    expect(named('#m1', 'HTA')).toBe('HTA');
    expect(named('http://example.org/#n1')).toBeUndefined();
  });
});

describe('TS → date, dateTime, instant', () => {
  it('keeps the precision of dates', () => {
    const ctx = newCtx();
    expect(date(ctx, el('<t value="19790328"/>'))).toBe('1979-03-28');
    expect(date(ctx, el('<t value="1953"/>'))).toBe('1953');
    expect(dateTime(ctx, el('<t value="201903"/>'))).toBe('2019-03');
  });
  it('adds missing seconds and normalises short offsets, reporting the repair', () => {
    const ctx = newCtx();
    expect(dateTime(ctx, el('<t value="202407011030+100"/>'))).toBe('2024-07-01T10:30:00+01:00');
    expect(codes(ctx)).toEqual(['TIME_REPAIRED']);
  });
  it('gives a zoneless time the document zone, else Europe/Paris at that date', () => {
    const withZone = newCtx('+05:00');
    expect(dateTime(withZone, el('<t value="20200327120000"/>'))).toBe('2020-03-27T12:00:00+05:00');
    const noZone = newCtx();
    expect(dateTime(noZone, el('<t value="20200727120000"/>'))).toBe('2020-07-27T12:00:00+02:00');
    expect(dateTime(noZone, el('<t value="20200127120000"/>'))).toBe('2020-01-27T12:00:00+01:00');
    expect(codes(noZone)).toEqual(['TIME_ZONE_ASSUMED', 'TIME_ZONE_ASSUMED']);
    expect(parisOffset('2024-03-31', '03:30:00')).toBe('+02:00');
  });
  it('refuses impossible values and reports them', () => {
    const ctx = newCtx();
    expect(dateTime(ctx, el('<t value="20230230"/>'))).toBeUndefined();
    expect(dateTime(ctx, el('<t value="20231301"/>'))).toBeUndefined();
    expect(dateTime(ctx, el('<t value="2023-01-01"/>'))).toBeUndefined();
    expect(dateTime(ctx, el('<t value="20230101250000+0100"/>'))).toBeUndefined();
    expect(dateTime(ctx, el('<t value="00000101"/>'))).toBeUndefined(); // no year 0 (found by the property test)
    expect(codes(ctx)).toEqual(['TIME_INVALID', 'TIME_INVALID', 'TIME_INVALID', 'TIME_INVALID', 'TIME_INVALID']);
  });
  it('gives an instant a time when only a day is known', () => {
    expect(instant(newCtx('+01:00'), el('<t value="20240101"/>'))).toBe('2024-01-01T00:00:00+01:00');
    expect(instant(newCtx(), el('<t value="2024"/>'))).toBeUndefined();
  });
  it('IVL_TS → Period, dropping an end before the start', () => {
    const ctx = newCtx('+01:00');
    expect(period(ctx, el('<e><low value="20240101"/><high nullFlavor="UNK"/></e>'))).toEqual({ start: '2024-01-01' });
    expect(period(ctx, el('<e><low value="20240301"/><high value="20240101"/></e>'))).toEqual({ start: '2024-03-01' });
  });
});

describe('AD and TEL', () => {
  it('joins house number and street, keeps county as district', () => {
    expect(address(el('<addr use="H"><houseNumber>28</houseNumber><streetName>Avenue de Breteuil</streetName><unitID>Escalier A</unitID><postalCode>75007</postalCode><city>PARIS</city><county>75056</county></addr>')))
      .toEqual({ use: 'home', line: ['28 Avenue de Breteuil', 'Escalier A'], postalCode: '75007', city: 'PARIS', district: '75056' });
    expect(address(el('<addr nullFlavor="NAV"/>'))).toBeUndefined();
  });
  it('maps URL schemes and uses', () => {
    expect(contactPoint(el('<telecom value="tel:0144534551" use="H"/>'))).toEqual({ system: 'phone', value: '0144534551', use: 'home' });
    expect(contactPoint(el('<telecom value="fax:0144534552" use="WP"/>'))).toEqual({ system: 'fax', value: '0144534552', use: 'work' });
    expect(contactPoint(el('<telecom value="mailto:a@b.fr" use="MC"/>'))).toEqual({ system: 'email', value: 'a@b.fr', use: 'mobile' });
    expect(contactPoint(el('<telecom value="https://example.test"/>'))).toEqual({ system: 'url', value: 'https://example.test' });
    expect(contactPoint(el('<telecom nullFlavor="NASK"/>'))).toBeUndefined();
  });
});

describe('INS key', () => {
  it('accepts the published test vectors, Corsica included', () => {
    for (const v of ['295109912611193', '253072B07300470', '253072A07300443', '260058815400233', '279035121518989']) {
      expect(checkInsKey(v), v).toEqual({ valid: true });
    }
  });
  it('refuses a wrong key or a malformed matricule', () => {
    expect(checkInsKey('295109912611194')).toEqual({ valid: false, reason: 'key' });
    expect(checkInsKey('29510991261119')).toEqual({ valid: false, reason: 'format' });
    expect(checkInsKey('ABCDEFGHIJKLMNO')).toEqual({ valid: false, reason: 'format' });
  });
});
