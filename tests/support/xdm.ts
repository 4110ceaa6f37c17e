/**
 * IHE XDM zips for tests: the builder shared with the mail benchmark (bench/xdm-zip.ts: real CDA
 * bytes with a synthetic but realistic ebRIM 3.0 METADATA.XML, packed at test time), and a second
 * patient's INS.
 */
export { INS, metadataXml, sha1, xdm, type DocSpec } from '../../bench/xdm-zip.js';

export const OTHER_INS = '295109912611193^^^&1.2.250.1.213.1.4.10&ISO';
