import { type ParseArgsConfig, parseArgs } from 'node:util';
import { ConfigError } from '../shared/errors/errors.ts';

/** Wrong command-line usage: one line on stderr, exit code 2. */
export class UsageError extends ConfigError {}

export const USAGE = `usage:
  sluice run PATH... --pipeline NAME [--home DIR] [--pipelines DIR] [--endpoint-url URL | --model-dir DIR]
             [--threads N] [--json]
  sluice query "SQL" [--home DIR] [--json] [--unsafe]
  sluice status [RUN_ID] [--home DIR] [--json]
  sluice cost PATH... --pipeline NAME [--pipelines DIR] [--region R] [--runs-per-month N]
              [--tokens-per-second N | --rows-per-second N] [--json]   (estimate before deploying)
  sluice redrive RUN_ID [--home DIR] [--pipelines DIR] [--endpoint-url URL | --model-dir DIR] [--resume] [--json]
                 [--runs-table NAME (--work-queue-url URL | --reset-only)]   (deployed: reopen in DynamoDB)
  sluice serve-model [--backend hash-embed|echo|xgboost-json|onnx] [--model PATH|DIR] [--dimension N] [--port N]
                     [--capacity N] [--queue N] [--latency-ms-fixed F] [--latency-ms-per-token P]
                     [--max-client-batch-size N] [--max-batch-chars N] [--max-body-bytes N]
                     [--scale-to-zero] [--warmup-seconds S] [--scale-in-seconds S] [--wake-on-invoke]
                     [--serverless] [--component-name NAME]   (simulated endpoint capacity)

--model-dir DIR runs an ONNX sentence-transformer folder (model.onnx or onnx/model.onnx, tokenizer.json)
in the local model server instead of the weight-free hash-embed; redrive a run with the model it ran with.
Defaults: --home .sluice, --pipelines ./pipelines. Exit codes: 0 run finished (rejects are
reported, not fatal), 1 run failed, 2 bad usage or config.`;

type Options = NonNullable<ParseArgsConfig['options']>;

/**
 * `--flag -5` as `--flag=-5` for flags that take a value: parseArgs refuses a value that
 * starts with a dash as ambiguous, and the flag's own check then says what it accepts.
 */
function joinNegativeValues(args: readonly string[], options: Options): string[] {
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    const next = args[i + 1];
    const name = arg.startsWith('--') ? arg.slice(2) : undefined;
    if (name !== undefined && options[name]?.type === 'string' && next !== undefined && /^-\d/.test(next)) {
      out.push(`${arg}=${next}`);
      i += 1;
    } else out.push(arg);
  }
  return out;
}

/** parseArgs with every unknown flag reported as a UsageError naming it. */
export function parseCommandArgs<O extends Options>(args: string[], options: O) {
  try {
    return parseArgs({
      args: joinNegativeValues(args, options),
      options,
      allowPositionals: true,
      strict: true,
    });
  } catch (error) {
    const line = (error as Error).message.split('\n')[0]!;
    const ambiguous = /^Option '(-[^' ]+)[^']*' argument is ambiguous/.exec(line);
    if (ambiguous) {
      const flag = ambiguous[1]!;
      const value = args[args.indexOf(flag) + 1];
      throw new UsageError(
        `${flag} needs a value, but "${value}" starts with a dash; to pass it as the value, write ${flag}=${value}`,
      );
    }
    throw new UsageError(line.replace(/\. To specify a positional.*$/, ''));
  }
}
