/** The README documents the error catalogue and the report codes exactly as the code defines them. */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { REPORT_CODES } from '../../gateway/cda/report.js';
import { ERROR_CATALOGUE } from '../../gateway/errors.js';
import { REPO_ROOT } from '../support/corpus.js';

const readme = readFileSync(join(REPO_ROOT, 'README.md'), 'utf8');

describe('README catalogue', () => {
  it('lists every error code with its HTTP status, SMTP reply and MDN code', () => {
    for (const [code, def] of Object.entries(ERROR_CATALOGUE)) {
      expect(readme, code).toContain(`| \`${code}\` | ${def.http} | ${def.smtp} | ${def.mdn} |`);
    }
  });

  it('lists every conversion report code', () => {
    for (const code of Object.keys(REPORT_CODES)) expect(readme, code).toContain(`| \`${code}\` |`);
  });

  it('lists no code the catalogue does not define', () => {
    const documented = [...readme.matchAll(/^\| `([A-Z][A-Z0-9_]+)` \|/gm)].map((m) => m[1] as string);
    const known = new Set([...Object.keys(ERROR_CATALOGUE), ...Object.keys(REPORT_CODES)]);
    expect(documented.filter((c) => !known.has(c))).toEqual([]);
  });
});
