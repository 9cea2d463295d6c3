import { type ParseArgsConfig, parseArgs } from 'node:util';
import { ConfigError } from '../shared/errors/errors.ts';
import type { CommandIo } from './commands/io.ts';

/** Wrong command-line usage: one line on stderr, exit code 2. */
export class UsageError extends ConfigError {}

/** What a command does with its arguments; returns the exit code. */
export type Command = (args: string[], io: CommandIo) => Promise<number>;

/**
 * One `sluice` command: how it is called and what loads it. The command table in
 * cli/main.ts is a list of these, so adding a command is one entry.
 */
export interface CommandSpec {
  readonly name: string;
  /** The synopsis after `sluice NAME`, wrapped lines indented by two spaces. */
  readonly synopsis: string;
  /** What the command does and what its flags mean, for `sluice NAME --help`. */
  readonly description: string;
  /** Loads the command's module only when it runs (see cli/main.ts). */
  readonly load: () => Promise<Command>;
}

const USAGE_FOOTER = `Defaults: --home .sluice, --pipelines ./pipelines. Exit codes: 0 finished (rejects are
reported, not fatal), 1 run failed, 2 bad usage or config. \`sluice help COMMAND\` or
\`sluice COMMAND --help\` for one command; \`sluice --version\` for the version.`;

/** `sluice NAME <synopsis>`, continuation lines aligned under the synopsis. */
function synopsisLines(spec: CommandSpec, indent: string): string {
  const head = `${indent}sluice ${spec.name} `;
  const pad = ' '.repeat(head.length);
  return spec.synopsis
    .split('\n')
    .map((line, i) => (i === 0 ? head : pad) + line.trim())
    .join('\n');
}

/** The usage of every command (`sluice --help`). */
export function formatUsage(commands: readonly CommandSpec[]): string {
  return `usage:\n${commands.map((c) => synopsisLines(c, '  ')).join('\n')}\n\n${USAGE_FOOTER}`;
}

/** The usage of one command (`sluice NAME --help`, `sluice help NAME`). */
export function formatCommandUsage(spec: CommandSpec): string {
  return `usage: ${synopsisLines(spec, '').trimEnd()}\n\n${spec.description.trim()}\n\n${USAGE_FOOTER}`;
}

/**
 * Whether the arguments ask for help: `--help` or `-h` before a `--` (after it every
 * argument is a positional, so \`sluice query -- -h\` is a query).
 */
export function asksForHelp(args: readonly string[]): boolean {
  const end = args.indexOf('--');
  return (end === -1 ? args : args.slice(0, end)).some((a) => a === '--help' || a === '-h');
}

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
