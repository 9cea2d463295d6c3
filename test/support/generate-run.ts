import { type CliResult, sluice } from './cli.ts';

/**
 * The shipped sample tickets: 48 records, of which line 17 lacks the `product` field that
 * generate-triage's template needs, so a run generates 47 answers and rejects one.
 */
export const SAMPLE_TICKETS = 'events/data/tickets-sample.jsonl';

/** Where a generate-triage run reads its tickets and keeps its state. */
export interface GenerateRun {
  /** The local home (`--home`): bucket, run store, prompt cache and tables. */
  readonly home: string;
  /** The tickets file. @default SAMPLE_TICKETS */
  readonly input?: string;
}

/**
 * `sluice run <input> --pipeline generate-triage --home <home> --threads 0 --json ...flags`,
 * in-process: a local run of the shipped generate pipeline with its units on the calling
 * thread, answered by the built-in rules chat model unless `flags` name an `--endpoint-url`.
 */
export function runGenerateTriage(run: GenerateRun, ...flags: string[]): Promise<CliResult> {
  return sluice(
    'run',
    run.input ?? SAMPLE_TICKETS,
    '--pipeline',
    'generate-triage',
    '--home',
    run.home,
    ...flags,
    '--threads',
    '0',
    '--json',
  );
}
