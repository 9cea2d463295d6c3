/**
 * The flags of `sluice serve-model`, in one place for its parser (serve-model.ts) and its
 * usage (cli/main.ts), so `--help` lists what the command accepts: the usage had fallen
 * behind (no rules-chat backend, no --invalid-json-rate or --throttle-rate). Kept free of
 * the model server's modules: the usage is built without loading them.
 */

/** The backends `--backend` takes. */
export const SERVE_MODEL_BACKENDS = ['hash-embed', 'echo', 'xgboost-json', 'onnx', 'rules-chat'] as const;

/** parseArgs options of `sluice serve-model`, in the order the usage lists them. */
export const SERVE_MODEL_OPTIONS = {
  backend: { type: 'string', default: 'hash-embed' },
  model: { type: 'string' },
  dimension: { type: 'string' },
  port: { type: 'string' },
  capacity: { type: 'string' },
  queue: { type: 'string' },
  'latency-ms-fixed': { type: 'string' },
  'latency-ms-per-token': { type: 'string' },
  'max-client-batch-size': { type: 'string' },
  'max-batch-chars': { type: 'string' },
  'max-body-bytes': { type: 'string' },
  'scale-to-zero': { type: 'boolean' },
  'warmup-seconds': { type: 'string' },
  'scale-in-seconds': { type: 'string' },
  'wake-on-invoke': { type: 'boolean' },
  serverless: { type: 'boolean' },
  'component-name': { type: 'string' },
  'invalid-json-rate': { type: 'string' },
  'throttle-rate': { type: 'string' },
} as const;

type Flag = keyof typeof SERVE_MODEL_OPTIONS;
type ValueFlag = { [K in Flag]: (typeof SERVE_MODEL_OPTIONS)[K]['type'] extends 'string' ? K : never }[Flag];

/** How the usage names each flag's value: a flag that takes one cannot be added without it. */
const VALUE_NAMES: Record<ValueFlag, string> = {
  backend: SERVE_MODEL_BACKENDS.join('|'),
  model: 'PATH|DIR',
  dimension: 'N',
  port: 'N',
  capacity: 'N',
  queue: 'N',
  'latency-ms-fixed': 'F',
  'latency-ms-per-token': 'P',
  'max-client-batch-size': 'N',
  'max-batch-chars': 'N',
  'max-body-bytes': 'N',
  'warmup-seconds': 'S',
  'scale-in-seconds': 'S',
  'component-name': 'NAME',
  'invalid-json-rate': 'R',
  'throttle-rate': 'R',
};

/** Synopsis lines are cut before this width (the usage indents them under `sluice serve-model `). */
const SYNOPSIS_WIDTH = 80;

/** The synopsis of `sluice serve-model`: every flag of {@link SERVE_MODEL_OPTIONS}, in its order. */
export function serveModelSynopsis(): string {
  const lines: string[] = [];
  let line = '';
  for (const flag of Object.keys(SERVE_MODEL_OPTIONS) as Flag[]) {
    const value = (VALUE_NAMES as Partial<Record<Flag, string>>)[flag];
    const item = value === undefined ? `[--${flag}]` : `[--${flag} ${value}]`;
    if (line !== '' && line.length + 1 + item.length > SYNOPSIS_WIDTH) {
      lines.push(line);
      line = item;
    } else line = line === '' ? item : `${line} ${item}`;
  }
  lines.push(line);
  return lines.join('\n');
}
