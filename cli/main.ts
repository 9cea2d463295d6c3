import { ConfigError, describeError } from '../shared/errors/errors.ts';
import { type CommandIo, processIo } from './commands/io.ts';
import { serveModelSynopsis } from './commands/serve-model-flags.ts';
import { packageVersion } from './package-root.ts';
import { asksForHelp, type CommandSpec, formatCommandUsage, formatUsage } from './usage.ts';

/**
 * Every `sluice` command: its usage next to what loads it, so adding a command is one
 * entry here. Each command loads its own modules when it runs: `sluice run` never maps
 * DuckDB's native library (about 36 MiB resident) or the DynamoDB and SQS clients that
 * only `query` and `redrive` use.
 */
export const COMMANDS: readonly CommandSpec[] = [
  {
    name: 'run',
    synopsis: `PATH... --pipeline NAME [--home DIR] [--pipelines DIR] [--endpoint-url URL | --model-dir DIR]
      [--threads N] [--json]`,
    description: `Runs a pipeline over files or folders on this machine: the same plan, work and finalize
code as deployed, with the object store under <home>/bucket/ and a local model server on
127.0.0.1. Progress goes to stderr; the result to stdout (with --json, one line: the run
summary).
  --pipeline NAME       the config in <pipelines>/NAME.json
  --endpoint-url URL    send batches to a running TEI or SageMaker-compatible server
  --model-dir DIR       serve an ONNX sentence-transformer folder instead of hash-embed
  --threads N           unit threads (0: units run on the main thread)`,
    load: async () => (await import('./commands/run.ts')).runCommand,
  },
  {
    name: 'query',
    synopsis: `"SQL" [--home DIR] [--json] [--unsafe]
      | "SQL" --deployed [--stack NAME] [--max-rows N] [--timeout S] [--json] [--unsafe]`,
    description: `Runs SQL on DuckDB over the local Parquet results, with Athena's table names
(embeddings, scores, recommendations, generations, rejects, runs).
  --json      rows as one JSON array
  --unsafe    lift the sandbox (SELECT only, over the results only): run the SQL as DuckDB would
  --deployed  run it in the stack's Athena workgroup instead (docs/deployed-cli.md); prints
              what Athena scanned and billed. --stack NAME (default $SLUICE_STACK, else Sluice),
              --max-rows N (1000), --timeout S (300: the query is stopped then)`,
    load: async () => (await import('./commands/query.ts')).queryCommand,
  },
  {
    name: 'search',
    synopsis: `"TEXT" --pipeline NAME [-k N] [--home DIR] [--pipelines DIR]
      [--endpoint-url URL | --model-dir DIR] [--json]
      | "TEXT" --pipeline NAME --deployed [--stack NAME] [-k N] [--timeout S] [--json]`,
    description: `Embeds TEXT with the pipeline's model, as sluice run calls it, and prints the k nearest
chunks of embeddings_current (the latest version of every live document) by cosine: document
id, score, chunk and an excerpt. An exact scan in DuckDB (docs/search.md).
  -k N                  results (default 10, at most 1000)
  --endpoint-url URL    embed at a running server (give what the run was given)
  --model-dir DIR       embed with an ONNX sentence-transformer folder (likewise)
  --json                the results as one JSON array, each chunk's whole text included
  --deployed            embed at the stack's endpoint and search its Athena view instead
                        (--stack NAME, default $SLUICE_STACK, else Sluice; --timeout S, 300)`,
    load: async () => (await import('./commands/search.ts')).searchCommand,
  },
  {
    name: 'embed',
    synopsis: '"TEXT" --pipeline NAME [--pipelines DIR] [--endpoint-url URL | --model-dir DIR] [--json]',
    description: `Prints TEXT's vector from the pipeline's model as one JSON array (with --json,
{"model", "dimension", "embedding"}), embedded exactly as sluice run embeds a chunk.`,
    load: async () => (await import('./commands/embed.ts')).embedCommand,
  },
  {
    name: 'recommend',
    synopsis: `USER_ID --pipeline NAME [--run RUN_ID] [--home DIR] [--json]
      | USER_ID --pipeline NAME --deployed [--runs-table NAME] [--recommendations-table NAME] [--run RUN_ID] [--json]`,
    description: `Prints a user's top N from a recommend pipeline's latest succeeded run (or --run), as the
recommendations table holds it: rank, item, score, source (cf or popular) and the neighbours
holding the item, read by key. Exit 1 when the run has no list for the user (docs/recommendations.md).
  --deployed  read the stack's DynamoDB recommendations table (--recommendations-table or
              SLUICE_RECOMMENDATIONS_TABLE: the RecommendationsTableName output) at the run the
              runs table names (--runs-table or SLUICE_RUNS_TABLE)`,
    load: async () => (await import('./commands/recommend.ts')).recommendCommand,
  },
  {
    name: 'status',
    synopsis: `[RUN_ID] [--home DIR] [--limit N] [--json]
      | [RUN_ID] --deployed [--runs-table NAME] [--limit N] [--json]`,
    description: `Without RUN_ID, the runs, newest first (--limit N, default 50); with one, the run and each
of its units.
  --deployed         read the stack's runs table in DynamoDB (docs/deployed-cli.md)
  --runs-table NAME  the stack's RunsTableName output (default $SLUICE_RUNS_TABLE)`,
    load: async () => (await import('./commands/status.ts')).statusCommand,
  },
  {
    name: 'cost',
    synopsis: `PATH... --pipeline NAME [--pipelines DIR] [--region R] [--runs-per-month N | --schedule EXPR]
      [--tokens-per-second N | --rows-per-second N] [--json]`,
    description: `Estimates what a run over these inputs would cost deployed, before deploying, from the
planner's own sampling and the region's sourced prices.
  --schedule EXPR     "cron(...)" or "rate(...)": a month's bill (default: the pipeline's schedule)
  --runs-per-month N  a month's bill for N runs`,
    load: async () => (await import('./commands/cost.ts')).costCommand,
  },
  {
    name: 'redrive',
    synopsis: `RUN_ID [--home DIR] [--pipelines DIR] [--endpoint-url URL | --model-dir DIR] [--resume] [--json]
      [--runs-table NAME (--work-queue-url URL [--compute-queue-url URL] | --reset-only)]`,
    description: `Runs only the failed units of a failed run again, then finalizes it again; redrive a run
with the model it ran with.
  --resume              deliver the unfinished units of a run whose process is gone
  --runs-table NAME     deployed: reopen the run in this DynamoDB table, then either
  --work-queue-url URL  send its failed units to the deployed work queue, or
  --reset-only          only reopen it (the units come back from the work DLQ)
  --compute-queue-url URL  the compute queue, needed for a score in-worker or recommend
                        run when the stack (the configs in --pipelines) splits its work`,
    load: async () => (await import('./commands/redrive.ts')).redriveCommand,
  },
  {
    name: 'report',
    synopsis: `RUN_ID [--home DIR] [--out FILE]
      | RUN_ID --deployed [--stack NAME] [--runs-table NAME] [--out FILE]`,
    description: `Writes the run's report: one HTML file with its charts (unit cost estimated vs measured,
units across workers over time, throughput, batch padding, endpoint latency and throttles,
rejects by reason, cost), Chart.js inline, so it opens offline. Prints the file's path.
  --out FILE   where to write it (default: beside the run's summary.json in <home>/bucket/runs/)
  --deployed   fetch the report the stack's finalize wrote (built from the runs table and the
               bucket where it is missing) to --out, default ./RUN_ID-report.html
               (docs/deployed-cli.md; --runs-table NAME, default $SLUICE_RUNS_TABLE)`,
    load: async () => (await import('./commands/report.ts')).reportCommand,
  },
  {
    name: 'gc',
    synopsis: `[--keep-runs N] [--home DIR] [--dry-run] [--json]
      | --deployed [--stack NAME] [--keep-runs N] [--recommendations-table NAME]
        [--legacy-chunk-items --runs-table NAME] [--dry-run] [--json]`,
    description: `Bounds the local home's storage: removes the result parts and finalize lists of old runs
the current state no longer reads (never the newest N per pipeline, a failed or running run,
or a run the current views read), re-staged parts no run reads again, temporary files of
dead writers and recommendation lists of runs older than their pipeline's served run, then
compacts the chunk index. Prints bytes before and after.
  --keep-runs N   runs kept whole per pipeline (default 3)
  --dry-run       say what would go; remove nothing
  --deployed      the same rule over the stack's bucket: deletes superseded runs' parts, which
                  stay recoverable as noncurrent versions for 30 days (docs/deployed-cli.md)
  --recommendations-table NAME
                  with --deployed: also deletes that table's lists of runs older than their
                  pipeline's served run (default $SLUICE_RECOMMENDATIONS_TABLE; none: skipped)
  --legacy-chunk-items
                  with --deployed, once after upgrading a stack from the per-chunk index:
                  deletes the runs table's CHUNK# items, no longer read. One Scan of the whole
                  table, billed by every item read: preview with --dry-run
  --runs-table NAME
                  the stack's RunsTableName output (default $SLUICE_RUNS_TABLE)`,
    load: async () => (await import('./commands/gc.ts')).gcCommand,
  },
  {
    name: 'features',
    synopsis: 'PATH --model FILE [--pipeline NAME] [--pipelines DIR]',
    description: `Prints the feature spec a score pipeline applies to PATH (a CSV, JSONL or Parquet file), as
JSON to paste into the pipeline's featureSpec and edit: one numeric column per feature name of
the XGBoost JSON model, read from the input column of that name, with the exceptions (transforms,
encoders) of --pipeline's featureSpec in their place. Checks every column against the input's
header (CSV), schema (Parquet) or first records' keys (JSONL) and the model's feature order.
  --model FILE      the XGBoost JSON model (Booster.save_model("model.json"), with feature names)
  --pipeline NAME   take the exceptions and input settings from <pipelines>/NAME.json`,
    load: async () => (await import('./commands/features.ts')).featuresCommand,
  },
  {
    name: 'serve-model',
    // From the flags the command parses (serve-model-flags.ts), so the two cannot drift.
    synopsis: serveModelSynopsis(),
    description: `Runs the local model server alone on 127.0.0.1 until stopped (Ctrl-C, or SIGTERM to its
PID); it prints its address. It speaks the SageMaker runtime API and the container contract.
  --backend B       hash-embed (the default), echo, xgboost-json or onnx (--model) serve
                    embeddings or scores; rules-chat answers chat completions (POST
                    /v1/chat/completions) by keyword rules, for generate pipelines
  --port N          0 (the default) picks a free port
  --capacity N, --queue N, --latency-ms-*   simulate a GPU endpoint's capacity and latency
  --scale-to-zero, --warmup-seconds S, ...  simulate an endpoint's capacity lifecycle
  --invalid-json-rate R, --throttle-rate R  rules-chat only: the share (0 to 1) of JSON answers
                    sent broken, of requests refused as overloaded`,
    load: async () => (await import('./commands/serve-model.ts')).serveModelCommand,
  },
];

/** `sluice --help`: every command's usage. */
export const USAGE = formatUsage(COMMANDS);

const commandNamed = (name: string) => COMMANDS.find((c) => c.name === name);
const unknownCommand = (name: string) =>
  `sluice: unknown command "${name}" (commands: ${COMMANDS.map((c) => c.name).join(', ')})`;

/**
 * The `sluice` command line. Returns the exit code: 0 finished, 1 run failed, 2 bad
 * usage or config (with one line on stderr saying what to fix).
 */
export async function main(argv: string[], io: CommandIo = processIo): Promise<number> {
  const [name, ...args] = argv;
  if (name === undefined) {
    // No command is bad usage: the usage goes where errors go.
    io.err(USAGE);
    return 2;
  }
  if (name === '--help' || name === '-h' || (name === 'help' && args.length === 0)) {
    io.out(USAGE);
    return 0;
  }
  if (name === '--version' || name === '-V') {
    io.out(packageVersion());
    return 0;
  }
  if (name === 'help') {
    const spec = commandNamed(args[0]!);
    if (!spec || args.length > 1) {
      io.err(spec ? 'sluice help: give one COMMAND' : unknownCommand(args[0]!));
      return 2;
    }
    io.out(formatCommandUsage(spec));
    return 0;
  }
  const spec = commandNamed(name);
  if (!spec) {
    io.err(unknownCommand(name));
    return 2;
  }
  if (asksForHelp(args)) {
    io.out(formatCommandUsage(spec));
    return 0;
  }
  try {
    const command = await spec.load();
    return await command(args, io);
  } catch (error) {
    if (error instanceof ConfigError) {
      io.err(`sluice ${name}: ${describeError(error)}`);
      return 2;
    }
    io.err(`sluice ${name} failed: ${describeError(error)}`);
    if (process.env.SLUICE_DEBUG) io.err(String((error as Error).stack));
    return 1;
  }
}
