import { describe, expect, it } from 'vitest';
import { runReportLines } from '../../cli/commands/run.ts';
import { parsePipelineConfig } from '../../shared/config/pipeline-config.ts';
import type { RunCost } from '../../shared/cost/run-cost.ts';
import type { RunSummary } from '../../shared/domain/types.ts';
import { pipelineConfig } from '../core/factories.ts';
import { aRun, aSummary } from '../support/run-fixtures.ts';

const RESULTS = '/home/u/.sluice/bucket/results';
const noneSkipped = { count: 0, byReason: {} };

function summaryOf(
  overrides: Partial<RunSummary> = {},
  counts: Partial<RunSummary['counts']> = {},
): RunSummary {
  const base = aSummary(aRun({ totalUnits: 4 }), overrides);
  return { ...base, counts: { ...base.counts, ...counts } };
}

const cost = {
  total: 0.0123456,
  endpoint: 0.01,
  lambda: 0.002,
  requests: 0.0003,
  storage: 0.0000456,
  estimate: true,
  region: 'us-east-1',
} as RunCost;

describe('runReportLines (what sluice run prints without --json)', () => {
  it('reports an embed run: chunks, cost, removals, skipped entries, results, query and rejects', () => {
    const summary = summaryOf(
      {
        cost,
        sources: {
          compared: 3,
          deleted: 1,
          reused: 0,
          skipped: 2,
          skippedSources: [{ sourceKey: 'incoming/docs/b.jsonl', reason: 'unit u00001 failed' }],
          removedDocuments: 5,
          removedChunks: 9,
        },
      },
      {
        records: 120,
        rejected: 2,
        embedded: 300,
        skippedUnchanged: 40,
        removedChunks: 9,
        removedDocuments: 5,
      },
    );
    const lines = runReportLines(pipelineConfig(), summary, {
      resultsDir: RESULTS,
      homeFlag: ' --home h',
      skipped: { count: 3, byReason: { hidden: 2, 'broken link': 1 } },
    });
    const id = summary.runId;
    expect(lines).toEqual([
      `run ${id} succeeded: 120 records, 300 chunks embedded, 40 unchanged, 9 removed, 2 rejected, 4 units`,
      'cost:    $0.012346, estimated as if deployed in us-east-1 (endpoint $0.010000, lambda $0.002000, requests $0.000300, storage $0.000046)',
      'removed: 5 documents no longer in their source (9 chunks); 1 source files deleted',
      'not compared for removals: 2 sources, e.g. incoming/docs/b.jsonl: unit u00001 failed',
      'skipped 3 folder entries, not read: 2 hidden; 1 broken link (listed above)',
      `results: ${RESULTS} (tables embeddings, rejects, runs, sources)`,
      'query:   npx sluice query "select doc_id, chunk_id from embeddings limit 5" --home h',
      `rejects: npx sluice query "select source_key, line, reason from rejects where run_id = '${id}'"`,
    ]);
  });

  it('reports a score run with its segment query, an unknown cost, and nothing it did not do', () => {
    const config = parsePipelineConfig({
      name: 'risk',
      kind: 'score',
      featureSpec: { features: [{ column: 'age', type: 'numeric' }] },
      featureStats: { key: 'models/risk/stats.json' },
      model: { endpointName: 'risk', modelKey: 'models/risk/model.json' },
    });
    const summary = summaryOf(
      { status: 'failed', costUnknown: 'no price for ml.x9.huge in us-east-1' },
      { records: 10, scored: 10 },
    );
    const id = summary.runId;
    expect(
      runReportLines(config, summary, { resultsDir: RESULTS, homeFlag: '', skipped: noneSkipped }),
    ).toEqual([
      `run ${id} failed: 10 records, 10 rows scored, 0 rejected, 4 units`,
      'cost:    unknown: no price for ml.x9.huge in us-east-1',
      `results: ${RESULTS} (tables scores, segment_stats, rejects, runs)`,
      `query:   npx sluice query "select segment, count, rate_mle, rate_map from segment_stats where run_id = '${id}'"`,
    ]);
  });
});
