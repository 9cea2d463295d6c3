import { ConfigError, describeError } from '../shared/errors/errors.ts';
import { type CommandIo, processIo } from './commands/io.ts';
import { queryCommand } from './commands/query.ts';
import { redriveCommand } from './commands/redrive.ts';
import { runCommand } from './commands/run.ts';
import { serveModelCommand } from './commands/serve-model.ts';
import { statusCommand } from './commands/status.ts';
import { USAGE } from './usage.ts';

const COMMANDS: Record<string, (args: string[], io: CommandIo) => Promise<number>> = {
  run: runCommand,
  query: queryCommand,
  status: statusCommand,
  redrive: redriveCommand,
  'serve-model': serveModelCommand,
};

/**
 * The `sluice` command line. Returns the exit code: 0 finished, 1 run failed, 2 bad
 * usage or config (with one line on stderr saying what to fix).
 */
export async function main(argv: string[], io: CommandIo = processIo): Promise<number> {
  const [name, ...args] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    io.out(USAGE);
    return name === undefined ? 2 : 0;
  }
  const command = COMMANDS[name];
  if (!command) {
    io.err(`sluice: unknown command "${name}" (commands: ${Object.keys(COMMANDS).join(', ')})`);
    return 2;
  }
  try {
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
