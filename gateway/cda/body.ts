/**
 * structuredBody → Composition.section, nested sections included: title, code, narrative (FHIR
 * XHTML) and the resources of the entries. Sections are matched by their LOINC code, never by a
 * single template OID (published documents carry typo'd section template OIDs).
 */
import type { CompositionSection } from '@medplum/fhirtypes';
import type { ConversionContext } from './context.js';
import { coding, concept } from './datatypes.js';
import { mapSectionEntries } from './entries/index.js';
import { narrativeToXhtml } from './narrative.js';
import { REPORT_CODES, type ReportCode } from './report.js';
import { LOINC } from './terminology.js';
import { child, children, text, type XElement } from './xml.js';

const EMPTY_DIV = '<div xmlns="http://www.w3.org/1999/xhtml"><p>Section sans contenu.</p></div>';

export function mapStructuredBody(ctx: ConversionContext, body: XElement): CompositionSection[] {
  return children(body, 'component')
    .map((c) => child(c, 'section'))
    .filter((s): s is XElement => s !== undefined)
    .map((s) => mapSection(ctx, s));
}

function mapSection(ctx: ConversionContext, section: XElement): CompositionSection {
  const codeEl = child(section, 'code');
  const code = concept(ctx, codeEl);
  const c = coding(codeEl);
  const loinc = c?.system === LOINC ? c.code : undefined;
  const out: CompositionSection = {};
  const title = text(child(section, 'title')) ?? c?.display;
  if (title) out.title = title;
  if (code) out.code = code;
  const div = narrativeToXhtml(child(section, 'text'), {
    resolveMedia: (id) => ctx.media.get(id),
    report: (code, message, location) => {
      ctx.report.info(Object.hasOwn(REPORT_CODES, code) ? (code as ReportCode) : 'NARRATIVE_CHANGED', message, location);
    },
  });
  if (div) out.text = { status: 'additional', div };

  const entries = mapSectionEntries(ctx, section, loinc);
  const subsections = children(section, 'component')
    .map((comp) => child(comp, 'section'))
    .filter((s): s is XElement => s !== undefined)
    .map((s) => mapSection(ctx, s));

  // FR document profiles: a section holds either entries or sub-sections, not both.
  if (entries.length && subsections.length) {
    ctx.report.info('SECTION_ENTRIES_MOVED', 'Entries moved into a first sub-section.', section);
    subsections.unshift({ ...(title ? { title } : {}), ...(code ? { code } : {}), entry: entries });
  } else if (entries.length) {
    out.entry = entries;
  }
  if (subsections.length) out.section = subsections;
  // cmp-1: a section must contain at least one of text, entries, or sub-sections.
  if (!out.text && !out.entry && !out.section) {
    ctx.report.info('SECTION_EMPTY', 'Section without narrative, entries or sub-sections.', section);
    out.text = { status: 'empty', div: EMPTY_DIV };
  }
  return out;
}
