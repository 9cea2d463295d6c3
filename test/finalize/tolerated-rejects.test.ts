import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parsePipelineConfig } from '../../shared/config/pipeline-config.ts';
import { rejectFailureOf } from '../../shared/finalize/tolerated-rejects.ts';

describe('rejectFailureOf (run.toleratedRejectPercent)', () => {
  it('tolerates rejects exactly at the share and fails a run one reject above it', () => {
    expect(rejectFailureOf({ records: 10, rejected: 1 }, 10)).toBeUndefined();
    expect(rejectFailureOf({ records: 800, rejected: 80 }, 10)).toBeUndefined();
    expect(rejectFailureOf({ records: 800, rejected: 81 }, 10)).toBe(
      'rejects 10.13% of 800 records exceed run.toleratedRejectPercent 10',
    );
  });

  it('says the share, the records and the setting in one line', () => {
    expect(rejectFailureOf({ records: 800, rejected: 300 }, 10)).toBe(
      'rejects 37.5% of 800 records exceed run.toleratedRejectPercent 10',
    );
    expect(rejectFailureOf({ records: 4, rejected: 4 }, 10)).toBe(
      'rejects 100% of 4 records exceed run.toleratedRejectPercent 10',
    );
  });

  it('shows more decimals where two would not show the share above the setting', () => {
    expect(rejectFailureOf({ records: 100_000, rejected: 10_001 }, 10)).toBe(
      'rejects 10.001% of 100000 records exceed run.toleratedRejectPercent 10',
    );
  });

  it('never fails a run of 0 records, nor one without rejects', () => {
    expect(rejectFailureOf({ records: 0, rejected: 0 }, 0)).toBeUndefined();
    expect(rejectFailureOf({ records: 0, rejected: 0 }, 10)).toBeUndefined();
    expect(rejectFailureOf({ records: 5, rejected: 0 }, 0)).toBeUndefined();
  });

  it('fails for one reject at 0 and never at 100', () => {
    expect(rejectFailureOf({ records: 1_000_000, rejected: 1 }, 0)).toMatch(
      /^rejects 0\.0001% of 1000000 records/,
    );
    expect(rejectFailureOf({ records: 7, rejected: 7 }, 100)).toBeUndefined();
  });

  it('fails exactly when rejected / records is above the share, for any counts', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 1_000_000 }),
        fc.double({ min: 0, max: 1, noNaN: true }),
        fc.integer({ min: 0, max: 100 }),
        (records, fraction, percent) => {
          const rejected = Math.floor(records * fraction);
          const reason = rejectFailureOf({ records, rejected }, percent);
          expect(reason !== undefined).toBe(rejected * 100 > percent * records);
          if (reason) expect(reason).not.toContain('\n');
        },
      ),
    );
  });
});

describe('run.toleratedRejectPercent in a pipeline config', () => {
  const base = { name: 'docs', kind: 'embed', endpoint: { name: 'test-embed' } };

  it('defaults to 10, so configs without it stay valid', () => {
    expect(parsePipelineConfig(base).run).toEqual({ toleratedRejectPercent: 10 });
  });

  it('takes 0 to 100 and names the key of a value outside', () => {
    expect(
      parsePipelineConfig({ ...base, run: { toleratedRejectPercent: 0 } }).run.toleratedRejectPercent,
    ).toBe(0);
    expect(
      parsePipelineConfig({ ...base, run: { toleratedRejectPercent: 100 } }).run.toleratedRejectPercent,
    ).toBe(100);
    expect(() => parsePipelineConfig({ ...base, run: { toleratedRejectPercent: 101 } })).toThrow(
      /run\.toleratedRejectPercent/,
    );
    expect(() => parsePipelineConfig({ ...base, run: { toleratedRejectPercnt: 5 } })).toThrow(
      /run\.toleratedRejectPercnt/,
    );
  });
});
