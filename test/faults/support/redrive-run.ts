import { type CliResult, sluice } from '../../support/cli.ts';

/**
 * `sluice redrive RUN_ID --home DIR --pipelines DIR --json`, as a person runs it after a
 * crash: with `resume`, a run left running by a process that is gone (`--resume`); without,
 * the failed units of a failed run.
 */
export function redriveRun(
  runId: string,
  where: { readonly home: string; readonly pipelines: string },
  options: { readonly resume?: boolean; readonly endpointUrl?: string } = {},
): Promise<CliResult> {
  return sluice(
    'redrive',
    runId,
    ...(options.resume ? ['--resume'] : []),
    '--home',
    where.home,
    '--pipelines',
    where.pipelines,
    ...(options.endpointUrl === undefined ? [] : ['--endpoint-url', options.endpointUrl]),
    '--json',
  );
}
