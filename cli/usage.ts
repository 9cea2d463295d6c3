import { type ParseArgsConfig, parseArgs } from 'node:util';
import { ConfigError } from '../shared/errors/errors.ts';

/** Wrong command-line usage: one line on stderr, exit code 2. */
export class UsageError extends ConfigError {}

export const USAGE = `usage:
  sluice run PATH... --pipeline NAME [--home DIR] [--pipelines DIR] [--endpoint-url URL | --model-dir DIR]
             [--threads N] [--json]
  sluice query "SQL" [--home DIR] [--json] [--unsafe]
  sluice status [RUN_ID] [--home DIR] [--json]
  sluice redrive RUN_ID [--home DIR] [--pipelines DIR] [--endpoint-url URL | --model-dir DIR] [--resume] [--json]
                 [--runs-table NAME (--work-queue-url URL | --reset-only)]   (deployed: reopen in DynamoDB)
  sluice serve-model [--backend hash-embed|echo|xgboost-json|onnx] [--model PATH|DIR] [--dimension N] [--port N]
                     [--capacity N] [--queue N] [--latency-ms-fixed F] [--latency-ms-per-token P]
                     [--max-client-batch-size N] [--max-batch-chars N] [--max-body-bytes N]

--model-dir DIR runs an ONNX sentence-transformer folder (model.onnx or onnx/model.onnx, tokenizer.json)
in the local model server instead of the weight-free hash-embed; redrive a run with the model it ran with.
Defaults: --home .sluice, --pipelines ./pipelines. Exit codes: 0 run finished (rejects are
reported, not fatal), 1 run failed, 2 bad usage or config.`;

type Options = NonNullable<ParseArgsConfig['options']>;

/** parseArgs with every unknown flag reported as a UsageError naming it. */
export function parseCommandArgs<O extends Options>(args: string[], options: O) {
  try {
    return parseArgs({ args, options, allowPositionals: true, strict: true });
  } catch (error) {
    throw new UsageError(
      (error as Error).message.split('\n')[0]!.replace(/\. To specify a positional.*$/, ''),
    );
  }
}
