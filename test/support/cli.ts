import { main } from '../../cli/main.ts';

/**
 * What an in-process `sluice` call returned and printed. `json` lives on the prototype, so a
 * test may compare the result with a plain `{ code, out, err }`.
 */
export class CliResult {
  constructor(
    readonly code: number,
    /** Lines printed to stdout and stderr, in order. */
    readonly out: string[],
    readonly err: string[],
  ) {}

  /** The last stdout line parsed as JSON (with `--json`, the run summary or the command's answer). */
  json<T = ReturnType<typeof JSON.parse>>(): T {
    return JSON.parse(this.out.at(-1)!);
  }
}

/** Runs the CLI in-process (the same `main` as `bin/sluice.js`) and captures what it prints. */
export async function sluice(...argv: string[]): Promise<CliResult> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await main(argv, { out: (l) => out.push(l), err: (l) => err.push(l) });
  return new CliResult(code, out, err);
}
