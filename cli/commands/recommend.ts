import type { RunState, RunSummary } from '../../shared/domain/types.ts';
import { openCheckedHome } from '../home.ts';
import { queryLocalTables } from '../query/local-tables.ts';
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

const sqlString = (value: string): string => `'${value.replaceAll("'", "''")}'`;

/** The run a lookup reads: `--run`, else the pipeline's newest succeeded run. */
async function runOf(
  runs: { listRuns(): Promise<RunState[]>; getRun(runId: string): Promise<RunState | undefined> },
  pipeline: string,
  runId: string | undefined,
  dir: string,
): Promise<RunState> {
  if (runId !== undefined) {
    const run = await runs.getRun(runId);
    if (!run || run.pipeline !== pipeline)
      throw new UsageError(
        `no run ${runId} of pipeline ${pipeline} in ${dir} (list runs with: sluice status)`,
      );
    if (run.status !== 'succeeded') throw new UsageError(`run ${runId} is ${run.status}, not succeeded`);
    return run;
  }
  // listRuns is newest first.
  const latest = (await runs.listRuns()).find((r) => r.pipeline === pipeline && r.status === 'succeeded');
  if (!latest)
    throw new UsageError(
      `no succeeded run of pipeline ${pipeline} in ${dir} (run it with: sluice run ... --pipeline ${pipeline})`,
    );
  return latest;
}

/**
 * `sluice recommend USER_ID --pipeline NAME`: a user's top N from the pipeline's latest
 * succeeded run (or `--run`), read from the local `recommendations` table. Each unit
 * writes its users in ascending id order, so DuckDB skips the row groups whose user-id
 * range cannot hold the user.
 */
export async function recommendCommand(args: string[], io: CommandIo): Promise<number> {
  const { values, positionals } = parseCommandArgs(args, {
    pipeline: { type: 'string' },
    run: { type: 'string' },
    home: { type: 'string' },
    json: { type: 'boolean', default: false },
  });
  if (positionals.length !== 1) throw new UsageError('give one USER_ID');
  if (!values.pipeline) throw new UsageError('--pipeline NAME is required');
  const userId = positionals[0]!;
  const home = await openCheckedHome(values.home, 'read');
  const run = await runOf(home.runs, values.pipeline, values.run, home.dir);
  const { rows } = await queryLocalTables(
    home.bucketDir,
    `SELECT rank, item_id, score, source, neighbours FROM recommendations WHERE pipeline = ${sqlString(run.pipeline)} AND run_id = ${sqlString(run.runId)} AND user_id = ${sqlString(userId)} ORDER BY rank`,
  );
  const list = rows as unknown as ListEntry[];
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
