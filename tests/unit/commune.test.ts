/**
 * Home commune (INSEE COG code) from a FHIR Address, against the real COG dataset of
 * @etalab/decoupage-administratif: arrondissements, CEDEX, spellings, Corsica, overseas, ambiguity.
 */
import type { Address } from '@medplum/fhirtypes';
import { describe, expect, it } from 'vitest';
import { communeByCode, communeFromAddress, FR_CORE_ADDRESS_INSEE_CODE, normaliseCityName } from '../../gateway/routing/commune.js';

const at = (postalCode: string | undefined, city: string | undefined, more: Partial<Address> = {}): Address => ({
  ...(postalCode !== undefined ? { postalCode } : {}), ...(city !== undefined ? { city } : {}), ...more,
});
const commune = (postalCode: string | undefined, city: string | undefined, more: Partial<Address> = {}): string | undefined =>
  communeFromAddress(at(postalCode, city, more))?.commune;
const insee = (code: string): Partial<Address> => ({
  extension: [{ url: FR_CORE_ADDRESS_INSEE_CODE, valueCoding: { system: 'https://mos.esante.gouv.fr/NOS/TRE_R13-CommuneOM/FHIR/TRE-R13-CommuneOM', code } }],
});

describe('normaliseCityName', () => {
  it('upper case, no accents, hyphens and apostrophes as spaces', () => {
    expect(normaliseCityName("L'Haÿ-les-Roses")).toBe('L HAY LES ROSES');
    expect(normaliseCityName('  Saint-Étienne ')).toBe('SAINT ETIENNE');
    expect(normaliseCityName('Œuilly')).toBe('OEUILLY');
  });
  it('ST / STE spelled out, a CEDEX suffix dropped', () => {
    expect(normaliseCityName('ST ETIENNE CEDEX 2')).toBe('SAINT ETIENNE');
    expect(normaliseCityName('STE-FOY-LES-LYON')).toBe('SAINTE FOY LES LYON');
    expect(normaliseCityName('Nanterre Cedex')).toBe('NANTERRE');
  });
});

describe('Paris, Lyon, Marseille: the arrondissement municipal', () => {
  it('75007 PARIS (the LDL-SES patient) → 75107, with Paris as parent', () => {
    expect(communeFromAddress(at('75007', 'PARIS'))).toEqual({ commune: '75107', departement: '75', region: '11', parent: '75056' });
  });
  it.each([
    ['75001', 'Paris', '75101'],
    ['75016', 'PARIS', '75116'],
    ['75116', 'PARIS', '75116'], // the 16th has two postal codes
    ['75020', 'PARIS 20', '75120'],
    ['69003', 'LYON', '69383'],
    ['69009', 'Lyon 9e Arrondissement', '69389'],
    ['13008', 'MARSEILLE', '13208'],
    ['13016', 'Marseille', '13216'],
  ])('%s %s → %s', (cp, city, code) => {
    expect(commune(cp, city)).toBe(code);
  });
  it('the postal code designates the arrondissement even when the city numbers another', () => {
    expect(commune('75007', 'PARIS 8E')).toBe('75107');
  });
  it('without a postal code, the arrondissement written in the city, else the whole commune', () => {
    expect(commune(undefined, 'Paris 7e')).toBe('75107');
    expect(commune(undefined, 'LYON 3EME')).toBe('69383');
    expect(commune(undefined, 'MARSEILLE 1ER')).toBe('13201');
    expect(commune(undefined, 'Lyon')).toBe('69123');
  });
});

describe('CEDEX', () => {
  it('a CEDEX postal code: the city among the communes of its département', () => {
    expect(commune('92014', 'NANTERRE CEDEX')).toBe('92050');
    expect(commune('35043', 'RENNES CEDEX')).toBe('35238');
    expect(commune('42007', 'ST ETIENNE CEDEX 1')).toBe('42218');
  });
  it('a CEDEX number is a distribution office, not an arrondissement: Paris as a whole', () => {
    expect(commune('75340', 'PARIS CEDEX 07')).toBe('75056');
    expect(commune('13331', 'MARSEILLE CEDEX 03')).toBe('13055');
  });
  it('a geographic postal code with CEDEX after the city', () => {
    expect(commune('92100', 'BOULOGNE BILLANCOURT CEDEX')).toBe('92012');
  });
  it('a CEDEX code whose city is not in that département → unknown', () => {
    expect(commune('92014', 'RENNES CEDEX')).toBeUndefined();
  });
});

describe('spellings', () => {
  it.each([
    ['42000', 'SAINT-ÉTIENNE'],
    ['42000', 'ST ETIENNE'],
    ['42000', 'saint etienne'],
    ['42100', 'St-Étienne'],
  ])('%s %s → Saint-Étienne 42218', (cp, city) => {
    expect(commune(cp, city)).toBe('42218');
  });
  it('apostrophes, diaereses and accents', () => {
    expect(commune('94240', "L'HAY LES ROSES")).toBe('94038');
    expect(commune('60200', 'Compiègne')).toBe('60159');
    expect(commune('60200', 'COMPIEGNE')).toBe('60159');
  });
  it('the former name of a commune merged into a commune nouvelle', () => {
    expect(commune('50100', 'CHERBOURG-OCTEVILLE')).toBe('50129');
  });
  it('a postal code with a single commune gives it whatever the city says', () => {
    expect(commune('92100', 'BOULOGNE')).toBe('92012');
    expect(commune('92100', undefined)).toBe('92012');
    expect(commune('75 007', 'PARIS')).toBe('75107');
  });
  it('a postal code of another département (06260 serves Saint-Pierre, Alpes-de-Haute-Provence)', () => {
    expect(communeFromAddress(at('06260', 'SAINT-PIERRE'))).toEqual({ commune: '04194', departement: '04', region: '93' });
  });
});

describe('Corsica (2A, 2B)', () => {
  it.each([
    ['20000', 'AJACCIO', '2A004', '2A'],
    ['20090', 'Ajaccio', '2A004', '2A'],
    ['20137', 'PORTO-VECCHIO', '2A247', '2A'],
    ['20200', 'BASTIA', '2B033', '2B'],
    ['20250', 'CORTE', '2B096', '2B'],
  ])('%s %s → %s', (cp, city, code, dept) => {
    expect(communeFromAddress(at(cp, city))).toEqual({ commune: code, departement: dept, region: '94' });
  });
  it('a Corsican CEDEX code: both Corsican départements are searched', () => {
    expect(commune('20176', 'AJACCIO CEDEX 1')).toBe('2A004');
    expect(commune('20294', 'BASTIA CEDEX')).toBe('2B033');
  });
  it('the pre-1976 code 20004 in the INSEE extension → Ajaccio 2A004', () => {
    expect(commune(undefined, undefined, insee('20004'))).toBe('2A004');
  });
});

describe('overseas (97x)', () => {
  it.each([
    ['97100', 'BASSE-TERRE', '97105', '971', '01'],
    ['97200', 'FORT-DE-FRANCE', '97209', '972', '02'],
    ['97300', 'CAYENNE', '97302', '973', '03'],
    ['97400', 'SAINT-DENIS', '97411', '974', '04'],
    ['97400', 'ST DENIS', '97411', '974', '04'],
    ['97600', 'MAMOUDZOU', '97611', '976', '06'],
  ])('%s %s → %s (département %s, région %s)', (cp, city, code, dept, region) => {
    expect(communeFromAddress(at(cp, city))).toEqual({ commune: code, departement: dept, region });
  });
  it('overseas collectivities carry their own code as région', () => {
    expect(communeFromAddress(at('97133', 'SAINT-BARTHELEMY'))).toEqual({ commune: '97701', departement: '977', region: '977' });
    expect(communeFromAddress(at('97500', 'SAINT-PIERRE'))).toEqual({ commune: '97502', departement: '975', region: '975' });
  });
});

describe('ambiguous or unknown → undefined', () => {
  it('a postal code shared by several communes needs the city', () => {
    expect(commune('01400', undefined)).toBeUndefined();
    expect(commune('01400', 'CHATILLON-SUR-CHALARONNE')).toBe('01093');
    expect(commune('01400', 'Nowhere')).toBeUndefined();
    expect(commune('04000', undefined)).toBeUndefined();
    expect(commune('04000', 'DIGNE-LES-BAINS')).toBe('04070');
  });
  it('a city alone that names several communes', () => {
    expect(commune(undefined, 'Saint-Denis')).toBeUndefined();
    expect(commune(undefined, 'SAINT-PIERRE')).toBeUndefined();
    expect(commune(undefined, 'Nanterre')).toBe('92050');
  });
  it('a country other than France, whatever the postal code looks like', () => {
    expect(commune('10115', 'BERLIN', { country: 'DE' })).toBeUndefined();
    expect(commune('10000', 'TROYES', { country: 'Deutschland' })).toBeUndefined();
    for (const country of ['FRANCE', 'France', 'FR', 'FRA', '250']) expect(commune('10000', 'TROYES', { country })).toBe('10387');
    expect(commune('97400', 'SAINT-DENIS', { country: 'La Réunion' })).toBe('97411');
  });
  it('foreign, malformed, empty', () => {
    expect(commune('1000', 'BRUXELLES')).toBeUndefined();
    expect(commune('99999', 'NULLE PART')).toBeUndefined();
    expect(commune('98000', 'MONACO')).toBeUndefined();
    expect(communeFromAddress({})).toBeUndefined();
    expect(commune('', '')).toBeUndefined();
  });
});

describe('fr-core-address-insee-code', () => {
  it('wins over postal code and city', () => {
    expect(commune('75007', 'PARIS', insee('92012'))).toBe('92012');
    expect(commune('75007', 'PARIS', insee('75107'))).toBe('75107');
  });
  it('a commune déléguée code gives the commune nouvelle', () => {
    expect(commune(undefined, undefined, insee('50173'))).toBe('50129');
  });
  it('an unknown code falls back to postal code and city', () => {
    expect(commune('92100', 'BOULOGNE-BILLANCOURT', insee('99999'))).toBe('92012');
  });
});

describe('free-text addresses and codes', () => {
  it('"75007 PARIS" on the last line when postalCode and city are empty', () => {
    expect(commune(undefined, undefined, { line: ['28 Avenue de Breteuil', '75007 PARIS'] })).toBe('75107');
  });
  it('communeByCode: current, former and delegated codes', () => {
    expect(communeByCode('75107')).toEqual({ commune: '75107', departement: '75', region: '11', parent: '75056' });
    expect(communeByCode('2a004')).toEqual({ commune: '2A004', departement: '2A', region: '94' });
    expect(communeByCode('00000')).toBeUndefined();
  });
});
