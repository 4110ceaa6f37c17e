/**
 * The patient's home commune, as an INSEE COG code, from a FHIR Address (DOMAIN.md §6: DACs are
 * found by the commune, département or région of their intervention zone, all COG codes).
 *
 * Sources, in order:
 *  1. the FR Core extension `fr-core-address-insee-code` (valueCoding.code, TRE_R13-CommuneOM):
 *     the sender already said which commune it is, so it wins when the dataset knows the code;
 *  2. postal code + city, against the COG dataset of `@etalab/decoupage-administratif` (La Poste
 *     postal codes per commune). A postal code is not a commune: one code may serve several
 *     communes (4 205 of 6 310 codes do) and one commune may have several codes, so the city name
 *     disambiguates. Names are compared after normalisation (case, accents, hyphens and
 *     apostrophes, `ST`/`STE` → `SAINT`/`SAINTE`, a `CEDEX [nn]` suffix dropped), the way La Poste's
 *     "libellé d'acheminement" differs from the COG name.
 *
 * Rules and the reasons for them:
 *  - Paris, Lyon and Marseille are divided into arrondissements municipaux with their own COG codes
 *    (75101–75120, 69381–69389, 13201–13216); each of their postal codes belongs to exactly one
 *    arrondissement, so "75007 PARIS" → 75107. The result then names the parent commune (75056)
 *    too, so that a zone coded with the whole city also matches.
 *  - Communes déléguées / associées (former communes merged into a commune nouvelle) have no postal
 *    code of their own in the dataset; their name is accepted for the commune that absorbed them
 *    ("50100 CHERBOURG-OCTEVILLE" → Cherbourg-en-Cotentin 50129), because ROR zones use current codes.
 *  - A postal code with a single commune gives that commune even when the city is missing or spelled
 *    differently ("92100 BOULOGNE" → 92012): the postal code is the machine-checked field.
 *  - A postal code shared by several communes needs a city that names one of them; otherwise the
 *    answer is undefined (ambiguous) and routing reports ROUTING_COMMUNE_UNKNOWN: guessing would send
 *    a patient's document to the wrong coordination platform.
 *  - CEDEX postal codes (a company's or an administration's, e.g. 92014 NANTERRE CEDEX) are not in
 *    the dataset: the city name is looked up among the communes of the département the code starts
 *    with (20 → 2A and 2B, 97x → three digits). The number after CEDEX is a distribution office, not
 *    an arrondissement: "PARIS CEDEX 07" gives Paris (75056), not the 7th arrondissement.
 *  - Paris/Lyon/Marseille arrondissement numbers written in the city ("PARIS 7E", "LYON 03",
 *    "Marseille 1er Arrondissement") are used only when the postal code does not already designate
 *    the arrondissement (a CEDEX code, no code at all).
 *  - No postal code at all: a city name that designates a single commune in France is accepted.
 *  - An address whose `country` is not France (or one of its overseas parts) has no commune here.
 * Nothing here logs or echoes the address: it is patient data.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import type { Address } from '@medplum/fhirtypes';

/** FR Core: the INSEE code of the commune of an address (valueCoding from TRE_R13-CommuneOM). */
export const FR_CORE_ADDRESS_INSEE_CODE = 'https://hl7.fr/ig/fhir/core/StructureDefinition/fr-core-address-insee-code';

export interface CommuneCodes {
  /** COG code of the commune, or of the arrondissement municipal in Paris, Lyon and Marseille. */
  commune: string;
  /** COG code of the département (2A/2B in Corsica, three digits overseas). */
  departement: string;
  /** COG code of the région (for the overseas collectivities, the dataset's own code, e.g. 975). */
  region: string;
  /** For an arrondissement municipal: the code of the whole commune (75056, 69123, 13055). */
  parent?: string;
}

/** One row of `@etalab/decoupage-administratif/data/communes.json` (the fields read here). */
interface CogRow {
  code: string;
  nom: string;
  type: 'commune-actuelle' | 'commune-deleguee' | 'commune-associee' | 'arrondissement-municipal';
  departement?: string;
  region?: string;
  codesPostaux?: string[];
  /** Arrondissement municipal: its commune. */
  commune?: string;
  /** Commune déléguée or associée: the commune it belongs to now. */
  chefLieu?: string;
  anciensCodes?: string[];
}

interface Place {
  codes: CommuneCodes;
  /** Normalised names this place answers to (its own; Paris/Lyon/Marseille for arrondissements; absorbed communes). */
  names: Set<string>;
  arrondissement: boolean;
}

interface CogIndex {
  /** Current code → place; former codes and codes of communes déléguées point to the current commune. */
  byCode: Map<string, Place>;
  byPostalCode: Map<string, Place[]>;
  /** Normalised name → places (all of France). */
  byName: Map<string, Place[]>;
}

let index: CogIndex | undefined;

const PLM: Readonly<Record<string, { parent: string; code: (n: number) => string; max: number }>> = {
  PARIS: { parent: '75056', code: (n) => `751${String(n).padStart(2, '0')}`, max: 20 },
  LYON: { parent: '69123', code: (n) => `6938${n}`, max: 9 },
  MARSEILLE: { parent: '13055', code: (n) => `132${String(n).padStart(2, '0')}`, max: 16 },
};

/**
 * A city name reduced to what La Poste and the COG agree on: upper case, no accents, words
 * separated by single spaces, `ST`/`STE` spelled out, a trailing `CEDEX [nn]` removed.
 */
export function normaliseCityName(name: string): string {
  const words = name
    .replace(/œ/gi, 'oe').replace(/æ/gi, 'ae')
    .normalize('NFD').replace(/[\u0300-\u036f]/g, '')
    .toUpperCase()
    .replace(/[^A-Z0-9]+/g, ' ')
    .trim()
    .split(' ')
    .filter((w) => w !== '');
  const cedex = words.indexOf('CEDEX');
  const kept = cedex >= 0 ? words.slice(0, cedex) : words;
  return kept.map((w) => (w === 'ST' ? 'SAINT' : w === 'STE' ? 'SAINTE' : w)).join(' ');
}

/** A normalised city name split into the commune name and, for Paris/Lyon/Marseille, an arrondissement number. */
function parseCity(normalised: string): { base: string; arrondissement?: number } {
  const m = /^(PARIS|LYON|MARSEILLE) ?(\d{1,2}) ?(?:E|ER|ERE|EME|EM)?(?: ?(?:ARRONDISSEMENT|ARRDT|ARRT|ARR))?$/.exec(normalised);
  if (!m) return { base: normalised };
  const base = m[1] as string;
  const n = Number(m[2]);
  const plm = PLM[base] as (typeof PLM)[string];
  return n >= 1 && n <= plm.max ? { base, arrondissement: n } : { base };
}

function push<K, V>(map: Map<K, V[]>, key: K, value: V): void {
  const list = map.get(key);
  if (list) {
    if (!list.includes(value)) list.push(value);
  } else map.set(key, [value]);
}

/** Builds the index once, on first use (the dataset is ~10 MB of JSON). */
function cog(): CogIndex {
  if (index) return index;
  const require = createRequire(import.meta.url);
  const file = require.resolve('@etalab/decoupage-administratif/data/communes.json');
  const rows = JSON.parse(readFileSync(file, 'utf8')) as CogRow[];
  const byCode = new Map<string, Place>();
  const byPostalCode = new Map<string, Place[]>();
  const byName = new Map<string, Place[]>();

  // Current communes and arrondissements first, so that a commune déléguée sharing its chef-lieu's
  // code (Cherbourg-Octeville 50129) does not shadow the commune nouvelle.
  for (const row of rows) {
    if (row.type !== 'commune-actuelle' && row.type !== 'arrondissement-municipal') continue;
    if (!row.departement || !row.region) continue; // uninhabited overseas lands (TAAF) have neither
    const arrondissement = row.type === 'arrondissement-municipal';
    const codes: CommuneCodes = { commune: row.code, departement: row.departement, region: row.region, ...(arrondissement && row.commune ? { parent: row.commune } : {}) };
    const own = normaliseCityName(row.nom);
    const names = new Set([arrondissement ? parseCity(own).base : own]);
    const place: Place = { codes, names, arrondissement };
    byCode.set(row.code, place);
    for (const cp of row.codesPostaux ?? []) push(byPostalCode, cp, place);
    for (const n of names) push(byName, n, place);
  }
  for (const row of rows) {
    const current = row.type === 'commune-actuelle' ? byCode.get(row.code) : undefined;
    for (const old of row.anciensCodes ?? []) if (current && !byCode.has(old)) byCode.set(old, current);
    if ((row.type === 'commune-deleguee' || row.type === 'commune-associee') && row.chefLieu) {
      const parent = byCode.get(row.chefLieu);
      if (!parent) continue;
      if (!byCode.has(row.code)) byCode.set(row.code, parent);
      const n = normaliseCityName(row.nom);
      parent.names.add(n);
      push(byName, n, parent);
    }
  }
  index = { byCode, byPostalCode, byName };
  return index;
}

/** The commune (or arrondissement) with this COG code; former codes and communes déléguées give the current commune. */
export function communeByCode(code: string): CommuneCodes | undefined {
  const place = cog().byCode.get(code.trim().toUpperCase());
  return place ? { ...place.codes } : undefined;
}

/** Places that are the same commune counted once: an arrondissement stands for its city. */
function distinct(places: readonly Place[]): Place[] {
  const arrParents = new Set(places.filter((p) => p.arrondissement).map((p) => p.codes.parent));
  const out: Place[] = [];
  for (const p of places) {
    if (!p.arrondissement && arrParents.has(p.codes.commune)) continue;
    if (!out.includes(p)) out.push(p);
  }
  return out;
}

/**
 * The one place among these (found by name, without a postal code that designates it); undefined
 * when ambiguous. Paris, Lyon or Marseille among them: the arrondissement the city names, else the
 * whole commune.
 */
function single(places: readonly Place[], arrondissement: number | undefined, base: string): Place | undefined {
  const plm = PLM[base];
  if (plm && places.some((p) => p.codes.commune === plm.parent)) {
    return cog().byCode.get(arrondissement !== undefined ? plm.code(arrondissement) : plm.parent);
  }
  const d = distinct(places);
  return d.length === 1 ? d[0] : undefined;
}

/** Départements a postal code can belong to: 20xxx is Corsica (2A or 2B), 97xxx/98xxx use three digits. */
function departementsOf(postalCode: string): string[] {
  if (postalCode.startsWith('20')) return ['2A', '2B'];
  if (postalCode.startsWith('97') || postalCode.startsWith('98')) return [postalCode.slice(0, 3)];
  return [postalCode.slice(0, 2)];
}

/**
 * France, its overseas départements and collectivities, as Address.country may write them (ISO 3166
 * alpha-2/alpha-3/numeric or the name). A postal code abroad may look French (10115 Berlin).
 */
const FRANCE = new Set([
  'FR', 'FRA', '250', 'FRANCE', 'FRANCE METROPOLITAINE', 'GP', 'GLP', 'GUADELOUPE', 'MQ', 'MTQ', 'MARTINIQUE', 'GF', 'GUF', 'GUYANE', 'GUYANE FRANCAISE',
  'RE', 'REU', 'REUNION', 'LA REUNION', 'YT', 'MYT', 'MAYOTTE', 'PM', 'SPM', 'SAINT PIERRE ET MIQUELON', 'BL', 'BLM', 'SAINT BARTHELEMY',
  'MF', 'MAF', 'SAINT MARTIN', 'NC', 'NCL', 'NOUVELLE CALEDONIE', 'PF', 'PYF', 'POLYNESIE FRANCAISE', 'WF', 'WLF', 'WALLIS ET FUTUNA',
]);

/** "75007 PARIS" written on an address line when postalCode/city are empty (free-text addresses). */
function fromLines(address: Address): { postalCode?: string; city?: string } {
  for (const line of [...(address.line ?? [])].reverse()) {
    const m = /^\s*(\d{5})\s+(\S.*?)\s*$/.exec(line);
    if (m) return { postalCode: m[1], city: m[2] };
  }
  return {};
}

/**
 * The home commune of an address: `{ commune, departement, region }` COG codes, or undefined when
 * the address does not designate one commune (unknown, ambiguous, abroad).
 */
export function communeFromAddress(address: Address): CommuneCodes | undefined {
  for (const ext of address.extension ?? []) {
    if (ext.url !== FR_CORE_ADDRESS_INSEE_CODE) continue;
    const code = ext.valueCoding?.code ?? ext.valueCodeableConcept?.coding?.find((c) => c.code)?.code;
    const found = code ? communeByCode(code) : undefined;
    if (found) return found;
  }

  if (address.country && !FRANCE.has(normaliseCityName(address.country))) return undefined;
  const written = !address.postalCode && !address.city ? fromLines(address) : { postalCode: address.postalCode, city: address.city };
  const postalCode = written.postalCode?.replace(/\s+/g, '');
  const { base, arrondissement } = parseCity(normaliseCityName(written.city ?? ''));
  const { byPostalCode, byName } = cog();

  if (postalCode && /^\d{5}$/.test(postalCode)) {
    const served = byPostalCode.get(postalCode);
    if (served) {
      if (base) {
        const named = served.filter((p) => p.names.has(base));
        if (named.length) {
          // The postal code designates the arrondissement; the city's number only when it does not.
          const d = distinct(named);
          if (d.length === 1) return { ...(d[0] as Place).codes };
          const chosen = single(named, arrondissement, base);
          return chosen ? { ...chosen.codes } : undefined;
        }
      }
      const d = distinct(served);
      return d.length === 1 ? { ...(d[0] as Place).codes } : undefined;
    }
    // Not a distribution postal code (CEDEX, a company's own code): the city within the département.
    if (!base) return undefined;
    const depts = departementsOf(postalCode);
    const named = (byName.get(base) ?? []).filter((p) => depts.includes(p.codes.departement));
    const chosen = single(named, arrondissement, base);
    return chosen ? { ...chosen.codes } : undefined;
  }
  if (postalCode) return undefined; // present but malformed (a foreign code): not a French commune
  if (!base) return undefined;
  const chosen = single(byName.get(base) ?? [], arrondissement, base);
  return chosen ? { ...chosen.codes } : undefined;
}
