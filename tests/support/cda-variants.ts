/**
 * Variants of a real CDA document for gateway tests: another document id, another patient
 * (INS, birth name, birth date, home address). Edits are textual on the first recordTarget,
 * which is enough for the corpus's LDL-SES layout and keeps the rest of the document intact.
 */
export interface PatientVariant {
  /** 13-character INS body; the key is computed. Emitted as INS-NIR (1.2.250.1.213.1.4.8). */
  insBody?: string;
  family?: string;
  birthTime?: string;
  postalCode?: string;
  city?: string;
}

export function insWithKey(body13: string): string {
  const n = BigInt(body13.toUpperCase().replace('2A', '19').replace('2B', '18'));
  return `${body13}${String(97n - (n % 97n)).padStart(2, '0')}`;
}

/** The first root-only `<id/>` of the document is its ClinicalDocument/id in the corpus layout. */
export function withDocumentId(xml: string, extension: string): string {
  return xml.replace(/<id root="([^"]+)"\s*\/>/, (_m, root: string) => `<id root="${root}" extension="${extension}"/>`);
}

export function withPatient(xml: string, v: PatientVariant): string {
  const start = xml.indexOf('<recordTarget>');
  const end = xml.indexOf('</recordTarget>');
  if (start < 0 || end < 0) throw new Error('no recordTarget');
  let rt = xml.slice(start, end);
  if (v.insBody) rt = rt.replace(/<id extension="[^"]+" root="1\.2\.250\.1\.213\.1\.4\.(?:8|9|10|11)"\/>/, `<id extension="${insWithKey(v.insBody)}" root="1.2.250.1.213.1.4.8"/>`);
  if (v.family) rt = rt.replace(/<family qualifier="BR">[^<]*<\/family>/, `<family qualifier="BR">${v.family}</family>`).replace(/<family qualifier="CL">[^<]*<\/family>/, `<family qualifier="CL">${v.family}</family>`);
  if (v.birthTime) rt = rt.replace(/<birthTime value="[^"]*"\/>/, `<birthTime value="${v.birthTime}"/>`);
  if (v.postalCode) rt = rt.replace(/<postalCode>[^<]*<\/postalCode>/, `<postalCode>${v.postalCode}</postalCode>`);
  if (v.city) rt = rt.replace(/<city>[^<]*<\/city>/, `<city>${v.city}</city>`);
  return xml.slice(0, start) + rt + xml.slice(end);
}
