import { describe, expect, it } from 'vitest';
import { parseWorkUnitMessage } from '../../functions/messages/work-unit-message.ts';
import type { WorkUnit } from '../../shared/domain/types.ts';

const unit: WorkUnit = {
  runId: 'r-20261128T120000Z-abcdef',
  unitId: 'u00003',
  pipeline: 'credit-risk',
  sourceKey: 'incoming/credit-risk/customers.csv.gz',
  sourceVersion: 'v:3HL4kqtJlcpXroDTDmJ.rmSpXd3dIbrHY',
  byteStart: 1000,
  byteEnd: 5000,
  firstLine: 12,
  format: 'csv',
  compression: 'gzip',
  csvHeader: 'id,age',
  packed: [
    {
      key: 'incoming/credit-risk/more.parquet',
      size: 900,
      format: 'parquet',
      compression: 'none',
      version: 'e:"9b2cf535f27731c974343645a3985328"',
    },
  ],
  estCost: 4000,
  staged: {
    key: 'staging/r-20261128T120000Z-abcdef/part-0001',
    offset: 1000,
    fault: { reason: 'corrupt or truncated gzip data', line: 40, byteOffset: 4990 },
  },
  task: 'fit',
};

describe('work unit message', () => {
  it('keeps every field the planner sends: pinned versions, staged parts, Parquet sources and the fit task', () => {
    expect(parseWorkUnitMessage(JSON.stringify(unit))).toEqual(unit);
  });

  it('refuses an unknown task rather than doing the wrong work', () => {
    expect(() => parseWorkUnitMessage(JSON.stringify({ ...unit, task: 'train' }))).toThrow(/task/);
  });
});
