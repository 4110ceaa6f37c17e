/**
 * IHE XDM zips for tests (ITI TF-1 §16, ITI-32 media layout): real CDA bytes with a synthetic but
 * realistic ebRIM 3.0 METADATA.XML (ITI TF-3 §4.2), packed at test time.
 */
import { createHash } from 'node:crypto';
import { buildZip, type ZipEntryInput } from './zip.js';

export const INS = '279035121518989^^^&1.2.250.1.213.1.4.10&ISO';
export const OTHER_INS = '295109912611193^^^&1.2.250.1.213.1.4.10&ISO';

export interface DocSpec {
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

export const sha1 = (b: Buffer): string => createHash('sha1').update(b).digest('hex');

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

export function metadataXml(docs: DocSpec[], options: { packages?: string[]; unclassified?: boolean; prolog?: string } = {}): Buffer {
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

export function xdm(docs: DocSpec[], options: { subset?: string; metadata?: Buffer; extra?: ZipEntryInput[] } = {}): Buffer {
  const subset = options.subset ?? 'IHE_XDM/SUBSET01';
  return buildZip([
    { name: 'README.TXT', data: Buffer.from('Envoi MSSanté de test\r\n') },
    { name: 'INDEX.HTM', data: Buffer.from('<html><body><a href="IHE_XDM/SUBSET01/DOC0001.XML">DOC0001</a></body></html>') },
    { name: `${subset}/METADATA.XML`, data: options.metadata ?? metadataXml(docs) },
    ...docs.map((d) => ({ name: d.entry ?? `${subset}/${d.uri}`, data: d.bytes })),
    ...(options.extra ?? []),
  ]);
}

