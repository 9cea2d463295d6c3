import { type CommandIo, processIo } from '../commands/io.ts';
import type { ProgressOutput } from './progress-reporter.ts';

/** What decides between a spinner and plain lines: the stderr stream and the environment. */
export interface TerminalProbe {
  readonly isTTY?: boolean;
  readonly columns?: number;
}

/**
 * Where a command's progress goes: a spinner when the command writes to a terminal's
 * stderr, else plain lines on the command's stderr. Plain lines too with `--json` (a
 * caller that parses the output logs what it gets), with `TERM=dumb`, and on a terminal
 * that reports no width (a pseudo-terminal without a size: ora would clear forever).
 */
export function progressOutputFor(
  io: CommandIo,
  json: boolean,
  stderr: TerminalProbe & NodeJS.WritableStream = process.stderr,
  env: NodeJS.ProcessEnv = process.env,
): ProgressOutput {
  const terminal =
    io === processIo && !json && stderr.isTTY === true && (stderr.columns ?? 0) > 0 && env.TERM !== 'dumb';
  return terminal
    ? { kind: 'terminal', stream: stderr }
    : { kind: 'lines', writeLine: (line) => io.err(line) };
}
