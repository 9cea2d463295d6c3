import { ObjectStoreRecommendationLists } from '../../shared/adapters/local/object-store-recommendation-lists.ts';
import type { RunState, RunSummary } from '../../shared/domain/types.ts';
import type { RecommendationLists, ServedEntry } from '../../shared/jobs/recommend/recommendation-lists.ts';
import {
  deployedRecommendationLists,
  RECOMMENDATIONS_TABLE_ENV,
  requireRecommendationsTable,
} from '../deployed/deployed-recommendations.ts';
import { deployedRunReader } from '../deployed/deployed-runs.ts';
import {
  DEPLOYED_OPTIONS,
  deployedTarget,
  refuseMixedFlags,
  requireRunsTable,
} from '../deployed/deployed-target.ts';
import { openCheckedHome } from '../home.ts';
import { parseCommandArgs, UsageError } from '../usage.ts';
import type { CommandIo } from './io.ts';

/** One entry of a user's list, as `recommendations` holds it. */
interface ListEntry {
  readonly rank: number;
  readonly item_id: string;
  readonly score: number;
  readonly source: string;
  readonly neighbours: number;
}

type RunLookup = {
  listRuns(): Promise<RunState[]>;
  getRun(runId: string): Promise<RunState | undefined>;
};

/** The run a lookup reads: `--run`, else the pipeline's newest succeeded run (the one served). */
async function runOf(
  runs: RunLookup,
  pipeline: string,
  runId: string | undefined,
  where: string,
  howToRun: string,
): Promise<RunState> {
  if (runId !== undefined) {
    const run = await runs.getRun(runId);
    if (!run || run.pipeline !== pipeline)
      throw new UsageError(
        `no run ${runId} of pipeline ${pipeline} in ${where} (list runs with: sluice status)`,
      );
    if (run.status !== 'succeeded') throw new UsageError(`run ${runId} is ${run.status}, not succeeded`);
    return run;
  }
  // listRuns is newest first (by start).
  const latest = (await runs.listRuns()).find((r) => r.pipeline === pipeline && r.status === 'succeeded');
  if (!latest) throw new UsageError(`no succeeded run of pipeline ${pipeline} in ${where} (${howToRun})`);
  return latest;
}

/** Where a lookup reads: the home (its run store, lists in its bucket), or the stack's two tables. */
interface Source {
  readonly runs: RunLookup;
  readonly lists: RecommendationLists;
  readonly where: string;
  readonly howToRun: string;
  /** One line for a lists table that is not there (deployed only). */
  readonly missingTable?: string;
}

async function sourceOf(
  values: {
    readonly home?: string;
    readonly deployed: boolean;
    readonly stack?: string;
    readonly 'runs-table'?: string;
    readonly 'recommendations-table'?: string;
  },
  pipeline: string,
): Promise<Source> {
  refuseMixedFlags(values, ['recommendations-table']);
  if (!values.deployed) {
    const home = await openCheckedHome(values.home, 'read');
    return {
      runs: home.runs,
      lists: new ObjectStoreRecommendationLists(home.store),
      where: home.dir,
      howToRun: `run it with: sluice run ... --pipeline ${pipeline}`,
    };
  }
  const target = deployedTarget(values);
  const runsTable = requireRunsTable(target);
  const listsTable = requireRecommendationsTable(values['recommendations-table'], target);
  return {
    runs: deployedRunReader(runsTable),
    lists: deployedRecommendationLists(listsTable),
    where: `runs table ${runsTable}`,
    howToRun: `drop its input under incoming/${pipeline}/ in the stack's bucket`,
    missingTable: `recommendations table ${listsTable} does not exist in this account and region (check --recommendations-table or ${RECOMMENDATIONS_TABLE_ENV}, and AWS_REGION)`,
  };
}

/**
 * `sluice recommend USER_ID --pipeline NAME [--run RUN_ID] [--deployed]`: a user's top N
 * from the pipeline's latest succeeded run (or `--run`), read by key where the similarity
 * stage stored it: locally the home's bucket, deployed the stack's recommendations table
 * (GetItem), the run chosen from the runs table. A user absent from that run has no list,
 * whatever an earlier run held.
 */
export async function recommendCommand(args: string[], io: CommandIo): Promise<number> {
  const { values, positionals } = parseCommandArgs(args, {
    pipeline: { type: 'string' },
    run: { type: 'string' },
    home: { type: 'string' },
    json: { type: 'boolean', default: false },
    ...DEPLOYED_OPTIONS,
    'recommendations-table': { type: 'string' },
  });
  if (positionals.length !== 1) throw new UsageError('give one USER_ID');
  if (!values.pipeline) throw new UsageError('--pipeline NAME is required');
  const userId = positionals[0]!;
  const source = await sourceOf(values, values.pipeline);
  const run = await runOf(source.runs, values.pipeline, values.run, source.where, source.howToRun);
  const served = await source.lists.getList(run.pipeline, run.runId, userId).catch((error: unknown) => {
    if (source.missingTable !== undefined && (error as Error).name === 'ResourceNotFoundException')
      throw new UsageError(source.missingTable);
    throw error;
  });
  const list = (served ?? []).map(entryOf);
  if (values.json) {
    io.out(JSON.stringify({ runId: run.runId, pipeline: run.pipeline, userId, items: list }));
    return list.length > 0 ? 0 : 1;
  }
  if (list.length === 0) {
    io.err(
      `no recommendations for user ${userId} in run ${run.runId} (the user was not in its interaction log)`,
    );
    return 1;
  }
  io.out(`user ${userId}: top ${list.length} of run ${run.runId}`);
  for (const entry of list)
    io.out(
      `${String(entry.rank).padStart(4)}  ${entry.item_id.padEnd(16)} ${entry.score.toFixed(6).padStart(14)}  ${entry.source.padEnd(7)} ${entry.neighbours}`,
    );
  return 0;
}

const entryOf = (entry: ServedEntry, r: number): ListEntry => ({
  rank: r + 1,
  item_id: entry.itemId,
  score: entry.score,
  source: entry.source,
  neighbours: entry.neighbours,
});

/** What a recommend run did, in the line `sluice run` prints after the run. */
export function recommendWorkOf(summary: RunSummary): string {
  const r = summary.recommendations;
  if (!r) return '0 users recommended';
  return `${r.usersRecommended} users recommended (${r.rows} rows), ${r.duplicates} duplicate pairs, ${r.cappedItems} items capped`;
}

/** The lines `sluice run` prints after a recommend run: evaluation, where the results are, how to read them. */
export function recommendResultLines(summary: RunSummary, resultsDir: string, home: string): string[] {
  const lines: string[] = [];
  const evaluation = summary.recommendations?.evaluation;
  if (evaluation) {
    const { cf, popular, topN } = evaluation;
    const ratio = popular.recall > 0 ? ` (${(cf.recall / popular.recall).toFixed(2)}x)` : '';
    lines.push(
      `holdout: ${evaluation.users} users, recall@${topN} ${cf.recall.toFixed(4)} vs popularity ${popular.recall.toFixed(4)}${ratio}, NDCG@${topN} ${cf.ndcg.toFixed(4)} vs ${popular.ndcg.toFixed(4)}`,
    );
  }
  lines.push(`results: ${resultsDir} (tables recommendations, rejects, runs)`);
  lines.push(`lookup:  npx sluice recommend USER_ID --pipeline ${summary.pipeline}${home}`);
  lines.push(
    `query:   npx sluice query "select user_id, rank, item_id, score, source from recommendations where run_id = '${summary.runId}' limit 20"${home}`,
  );
  return lines;
}
