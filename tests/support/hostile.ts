/**
 * Test support for the hostile-input and property tests: a small synthetic CI-SIS CDA, the corpus
 * location (never copied into the repository), a re-serialiser for the element tree of
 * `parseXml`, and a bounded-resources probe.
 */
import { HL7_NS, XSI_NS, type XElement } from '../../gateway/cda/xml.js';

/** The ANS example documents are read in place, never copied (tests/support/corpus.ts). */
export { CORPUS_DIR, loadCorpus } from './corpus.js';

export interface SyntheticOptions {
  /** Leave out recordTarget. */
  noRecordTarget?: boolean;
  /** Leave out component (no body at all). */
  noBody?: boolean;
  /** A level-1 document: nonXMLBody with this media type and base64 payload instead of a structuredBody. */
  nonXmlBody?: { mediaType: string; base64: string };
  /** Leave out the XML declaration (to embed the document in another one). */
  noDeclaration?: boolean;
}

/** A small but complete CI-SIS-style CDA R2 document (header, patient with INS, author, informant, one section with an entry). */
export function syntheticCda(options: SyntheticOptions = {}): string {
  const recordTarget = options.noRecordTarget ? '' : `
  <recordTarget>
    <patientRole>
      <id root="1.2.250.1.213.1.4.8" extension="279035121518989"/>
      <id root="1.2.3.4.5.6.7.8.9.10" extension="IPP-0001"/>
      <addr use="H"><streetAddressLine>1 rue de la Paix</streetAddressLine><postalCode>75002</postalCode><city>PARIS</city></addr>
      <telecom use="H" value="tel:0102030405"/>
      <patient classCode="PSN">
        <name>
          <family qualifier="BR">DUPONT</family>
          <given qualifier="BR">Jeanne</given>
          <given>Jeanne Marie</given>
        </name>
        <administrativeGenderCode code="F" displayName="Féminin" codeSystem="2.16.840.1.113883.5.1"/>
        <birthTime value="19790315"/>
      </patient>
    </patientRole>
  </recordTarget>`;
  let body = '';
  if (options.nonXmlBody) {
    body = `
  <component>
    <nonXMLBody>
      <text mediaType="${options.nonXmlBody.mediaType}" representation="B64">${options.nonXmlBody.base64}</text>
    </nonXMLBody>
  </component>`;
  } else if (!options.noBody) {
    body = `
  <component>
    <structuredBody>
      <component>
        <section>
          <templateId root="1.3.6.1.4.1.19376.1.5.3.1.3.16.1"/>
          <id root="1.2.250.1.999.1.2" extension="section-1"/>
          <code code="10160-0" displayName="Traitements" codeSystem="2.16.840.1.113883.6.1" codeSystemName="LOINC"/>
          <title>Traitements</title>
          <text>
            <table border="1">
              <thead><tr><th>Médicament</th><th>Posologie</th></tr></thead>
              <tbody><tr ID="med-1"><td><content ID="med-1-name">PARACETAMOL 500 mg</content></td><td>1 cp x 3 / jour</td></tr></tbody>
            </table>
            <paragraph>Texte <content styleCode="Bold">en gras</content> &amp; caractères spéciaux &lt; &gt;.</paragraph>
          </text>
          <entry>
            <observation classCode="OBS" moodCode="EVN">
              <templateId root="1.3.6.1.4.1.19376.1.5.3.1.4.13"/>
              <id root="1.2.250.1.999.1.3" extension="obs-1"/>
              <code code="8302-2" displayName="Taille" codeSystem="2.16.840.1.113883.6.1"/>
              <text><reference value="#med-1"/></text>
              <statusCode code="completed"/>
              <effectiveTime value="20240115103000+0100"/>
              <value xsi:type="PQ" value="168" unit="cm"/>
            </observation>
          </entry>
        </section>
      </component>
    </structuredBody>
  </component>`;
  }
  return `${options.noDeclaration ? '' : '<?xml version="1.0" encoding="UTF-8"?>\n'}<ClinicalDocument xmlns="urn:hl7-org:v3" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
  <realmCode code="FR"/>
  <typeId root="2.16.840.1.113883.1.3" extension="POCD_HD000040"/>
  <templateId root="2.16.840.1.113883.2.8.2.1"/>
  <templateId root="1.2.250.1.213.1.1.1.1"/>
  <id root="1.2.250.1.999.1.1" extension="doc-synthetic-1"/>
  <code code="11488-4" displayName="Note de consultation" codeSystem="2.16.840.1.113883.6.1" codeSystemName="LOINC"/>
  <title>Note de consultation synthétique</title>
  <effectiveTime value="20240115103000+0100"/>
  <confidentialityCode code="N" displayName="Normal" codeSystem="2.16.840.1.113883.5.25"/>
  <languageCode code="fr-FR"/>
  <setId root="1.2.250.1.999.1.4" extension="set-1"/>
  <versionNumber value="1"/>${recordTarget}
  <author>
    <time value="20240115103000+0100"/>
    <assignedAuthor>
      <id root="1.2.250.1.71.4.2.1" extension="810001234567"/>
      <code code="10" displayName="Médecin" codeSystem="1.2.250.1.71.1.2.7"/>
      <telecom use="WP" value="mailto:dr.martin@exemple.mssante.fr"/>
      <assignedPerson><name><prefix>Dr</prefix><given>Paul</given><family>MARTIN</family></name></assignedPerson>
      <representedOrganization>
        <id root="1.2.250.1.71.4.2.2" extension="1750000000"/>
        <name>Cabinet médical du Centre</name>
      </representedOrganization>
    </assignedAuthor>
  </author>
  <informant>
    <relatedEntity classCode="ECON">
      <code code="MTH" displayName="Mère" codeSystem="2.16.840.1.113883.5.111"/>
      <telecom use="MC" value="tel:0611223344"/>
      <relatedPerson><name><given>Anne</given><family>DUPONT</family></name></relatedPerson>
    </relatedEntity>
  </informant>
  <custodian>
    <assignedCustodian>
      <representedCustodianOrganization>
        <id root="1.2.250.1.71.4.2.2" extension="1750000000"/>
        <name>Cabinet médical du Centre</name>
      </representedCustodianOrganization>
    </assignedCustodian>
  </custodian>
  <legalAuthenticator>
    <time value="20240115103000+0100"/>
    <signatureCode code="S"/>
    <assignedEntity>
      <id root="1.2.250.1.71.4.2.1" extension="810001234567"/>
      <assignedPerson><name><given>Paul</given><family>MARTIN</family></name></assignedPerson>
    </assignedEntity>
  </legalAuthenticator>
  <documentationOf>
    <serviceEvent>
      <code code="C_0101" codeSystem="1.2.250.1.213.1.1.4.322" displayName="Consultation"/>
      <effectiveTime><low value="20240115100000+0100"/><high value="20240115103000+0100"/></effectiveTime>
    </serviceEvent>
  </documentationOf>
  <componentOf>
    <encompassingEncounter>
      <effectiveTime><low value="20240115100000+0100"/></effectiveTime>
      <location>
        <healthCareFacility>
          <code code="SA07" displayName="Cabinet" codeSystem="1.2.250.1.71.4.2.4"/>
        </healthCareFacility>
      </location>
    </encompassingEncounter>
  </componentOf>${body}
</ClinicalDocument>
`;
}

// ---- re-serialisation of the parseXml tree ----

export function escapeText(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

export function escapeAttr(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/"/g, '&quot;').replace(/\t/g, '&#9;').replace(/\n/g, '&#10;').replace(/\r/g, '&#13;');
}

/** Elements of a tree in document order (iteratively: no recursion limit). */
export function listElements(root: XElement): XElement[] {
  const out: XElement[] = [];
  const stack: XElement[] = [root];
  while (stack.length) {
    const el = stack.pop() as XElement;
    out.push(el);
    for (let i = el.children.length - 1; i >= 0; i--) {
      const c = el.children[i];
      if (c !== undefined && typeof c !== 'string') stack.push(c);
    }
  }
  return out;
}

/** Edits applied while serialising, by element (document-order index). */
export interface ElementEdits {
  /** Leave the element out. */
  remove?: boolean;
  /** Write the element twice. */
  duplicate?: boolean;
  /** Write the element under this local name instead. */
  rename?: string;
  /** Attribute values to set (an existing name is replaced, a new one is added). */
  setAttrs?: Record<string, string>;
  /** Replace the element's text children with this text (child elements are kept). */
  text?: string;
}

export interface SerialiseOptions {
  /** Element index → edits. */
  edits?: Map<number, ElementEdits>;
  /**
   * `default`: write no default-namespace declaration (every element then has no namespace; xsi stays
   * declared). `all`: no declaration at all and no prefixed attribute either.
   */
  dropNamespaces?: 'default' | 'all';
}

/**
 * Writes the tree back as XML. The tree of `parseXml` keeps namespace URIs but not declarations:
 * each element whose namespace differs from its parent's gets a default-namespace declaration,
 * and the root declares xsi (and a placeholder URI for any other attribute prefix).
 */
export function serialise(root: XElement, options: SerialiseOptions = {}): string {
  const edits = options.edits ?? new Map<number, ElementEdits>();
  const index = new Map<XElement, number>();
  listElements(root).forEach((el, i) => index.set(el, i));
  const prefixes = new Set<string>();
  for (const el of index.keys()) {
    for (const name of Object.keys(el.attrs)) {
      const colon = name.indexOf(':');
      if (colon > 0) prefixes.add(name.slice(0, colon));
    }
  }
  prefixes.delete('xml');
  const rootDecls = [...prefixes].map((p) => ` xmlns:${p}="${p === 'xsi' ? XSI_NS : `urn:passerelle:test:prefix:${p}`}"`).join('');

  const parts: string[] = [];
  const write = (el: XElement, parentNs: string | undefined): void => {
    const e = edits.get(index.get(el) ?? -1);
    if (e?.remove) return;
    const times = e?.duplicate ? 2 : 1;
    for (let t = 0; t < times; t++) {
      const name = e?.rename ?? el.name;
      let open = `<${name}`;
      if (!options.dropNamespaces) {
        if (parentNs === undefined) open += (el.ns ? ` xmlns="${escapeAttr(el.ns)}"` : '') + rootDecls;
        else if (el.ns !== parentNs) open += ` xmlns="${escapeAttr(el.ns)}"`;
      } else if (options.dropNamespaces === 'default' && parentNs === undefined) {
        open += rootDecls;
      }
      const attrs: Record<string, string> = { ...el.attrs, ...e?.setAttrs };
      for (const [k, v] of Object.entries(attrs)) {
        if (options.dropNamespaces === 'all' && k.includes(':') && !k.startsWith('xml:')) continue;
        open += ` ${k}="${escapeAttr(v)}"`;
      }
      parts.push(open, '>');
      let textWritten = false;
      for (const c of el.children) {
        if (typeof c === 'string') {
          if (e?.text !== undefined) {
            if (!textWritten) parts.push(escapeText(e.text));
            textWritten = true;
          } else {
            parts.push(escapeText(c));
          }
        } else {
          write(c, el.ns);
        }
      }
      if (e?.text !== undefined && !textWritten) parts.push(escapeText(e.text));
      parts.push(`</${name}>`);
    }
  };
  write(root, undefined);
  return `<?xml version="1.0" encoding="UTF-8"?>\n${parts.join('')}`;
}

/** The HL7 namespace, re-exported for tests that build documents by hand. */
export { HL7_NS };

// ---- bounded resources ----

export interface Cost {
  ms: number;
  /** Growth of the resident set during the call, in MB (can be negative after a GC). */
  rssGrowthMB: number;
  /** Growth of the V8 heap during the call, in MB. */
  heapGrowthMB: number;
}

/** Runs fn, returns what it threw (or undefined) and its cost in time and memory. */
export function measure(fn: () => unknown): { error: unknown; cost: Cost } {
  const gc = (globalThis as { gc?: () => void }).gc;
  gc?.();
  const rss0 = process.memoryUsage.rss();
  const heap0 = process.memoryUsage().heapUsed;
  const t0 = performance.now();
  let error: unknown;
  try {
    fn();
  } catch (err) {
    error = err;
  }
  const ms = performance.now() - t0;
  const cost = {
    ms,
    rssGrowthMB: (process.memoryUsage.rss() - rss0) / 1024 / 1024,
    heapGrowthMB: (process.memoryUsage().heapUsed - heap0) / 1024 / 1024,
  };
  return { error, cost };
}
