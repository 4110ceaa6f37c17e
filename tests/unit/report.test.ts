/** The conversion report: de-duplicated, bounded, with codes and locations. */
import { describe, expect, it } from 'vitest';
import { Report } from '../../gateway/cda/report.js';

describe('Report', () => {
  it('keeps one remark for the same value read twice', () => {
    const r = new Report();
    r.info('TIME_REPAIRED', 'x', '/ClinicalDocument/effectiveTime');
    r.info('TIME_REPAIRED', 'x', '/ClinicalDocument/effectiveTime');
    expect(r.toOperationOutcome().issue).toHaveLength(1);
    expect(r.toOperationOutcome().issue[0]).toMatchObject({ severity: 'information', expression: ['/ClinicalDocument/effectiveTime'] });
  });

  it('keeps the first 1000 remarks and counts the rest', () => {
    const r = new Report();
    for (let i = 0; i < 1500; i++) r.warn('ID_INVALID', `id ${i}`, `/x[${i}]`);
    const issues = r.toOperationOutcome().issue;
    expect(issues).toHaveLength(1001);
    expect(issues[1000]?.diagnostics).toBe('500 further remarks not listed.');
  });

  it('says so when there is nothing to report', () => {
    expect(new Report().toOperationOutcome().issue[0]?.diagnostics).toBe('Converted without remarks.');
  });
});
