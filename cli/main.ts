import { ConfigError, describeError } from '../shared/errors/errors.ts';
import { type CommandIo, processIo } from './commands/io.ts';
import { USAGE } from './usage.ts';

type Command = (args: string[], io: CommandIo) => Promise<number>;

/**
 * Each command loads its own modules when it runs: `sluice run` never maps DuckDB's
 * native library (about 36 MiB resident) or the DynamoDB and SQS clients that only
 * `query` and `redrive` use.
 */
const COMMANDS: Record<string, () => Promise<Command>> = {
  run: async () => (await import('./commands/run.ts')).runCommand,
  query: async () => (await import('./commands/query.ts')).queryCommand,
  status: async () => (await import('./commands/status.ts')).statusCommand,
  cost: async () => (await import('./commands/cost.ts')).costCommand,
  redrive: async () => (await import('./commands/redrive.ts')).redriveCommand,
  'serve-model': async () => (await import('./commands/serve-model.ts')).serveModelCommand,
};

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
  if (name === '--help' || name === '-h' || name === 'help') {
    io.out(USAGE);
    return 0;
  }
  const load = COMMANDS[name];
  if (!load) {
    io.err(`sluice: unknown command "${name}" (commands: ${Object.keys(COMMANDS).join(', ')})`);
    return 2;
  }
  try {
    const command = await load();
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
