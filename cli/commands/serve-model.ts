import { HashEmbedder } from '../model-server/hash-embedder.ts';
import { startModelServer } from '../model-server/server.ts';
import { parseCommandArgs, UsageError } from '../usage.ts';
import type { CommandIo } from './io.ts';

function intOption(
  name: string,
  value: string | undefined,
  fallback: number,
  min: number,
  max: number,
): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < min || n > max)
    throw new UsageError(`--${name} must be an integer from ${min} to ${max}, got "${value}"`);
  return n;
}

/** `sluice serve-model`: the local model server alone, until interrupted. */
export async function serveModelCommand(args: string[], io: CommandIo): Promise<number> {
  const { values, positionals } = parseCommandArgs(args, {
    backend: { type: 'string', default: 'hash-embed' },
    dimension: { type: 'string' },
    port: { type: 'string' },
  });
  if (positionals.length > 0)
    throw new UsageError(`sluice serve-model: unexpected argument "${positionals[0]}"`);
  if (values.backend !== 'hash-embed')
    throw new UsageError(`--backend must be hash-embed, got "${values.backend}"`);
  const backend = new HashEmbedder(intOption('dimension', values.dimension, 384, 2, 8192));
  const server = await startModelServer({ backend, port: intOption('port', values.port, 0, 0, 65535) });
  io.out(
    `listening on ${server.url} (POST /endpoints/<name>/invocations, POST /invocations, POST /embed, GET /ping)`,
  );
  io.err(backend.description);
  await new Promise<void>((resolve) => {
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
  });
  await server.close();
  return 0;
}
