import { ConfigError } from '../../shared/errors/errors.ts';

/**
 * sentence-transformers' pooling modes, in the order its `Pooling` module concatenates
 * them when a config turns on more than one.
 */
export const POOLING_MODES = ['cls', 'max', 'mean', 'mean_sqrt_len', 'weightedmean', 'lasttoken'] as const;
export type PoolingMode = (typeof POOLING_MODES)[number];

/** The `1_Pooling/config.json` key of each mode. */
const CONFIG_KEYS: Record<PoolingMode, string> = {
  cls: 'pooling_mode_cls_token',
  max: 'pooling_mode_max_tokens',
  mean: 'pooling_mode_mean_tokens',
  mean_sqrt_len: 'pooling_mode_mean_sqrt_len_tokens',
  weightedmean: 'pooling_mode_weightedmean_tokens',
  lasttoken: 'pooling_mode_lasttoken',
};

/** Names a `pooling_mode` string may use (sentence-transformers accepts these). */
const MODE_NAMES: Record<string, PoolingMode> = {
  cls: 'cls',
  max: 'max',
  mean: 'mean',
  mean_sqrt_len_tokens: 'mean_sqrt_len',
  weightedmean: 'weightedmean',
  lasttoken: 'lasttoken',
};

/**
 * The modes a sentence-transformers `Pooling` config turns on: its `pooling_mode_*`
 * booleans, or a `pooling_mode` string. A config that turns none on, or names a mode
 * this backend does not know, is a ConfigError naming `where`.
 */
export function poolingModesFrom(config: unknown, where: string): PoolingMode[] {
  if (typeof config !== 'object' || config === null || Array.isArray(config))
    throw new ConfigError(`${where}: not a JSON object`);
  const record = config as Record<string, unknown>;
  const named = record.pooling_mode;
  if (typeof named === 'string') {
    const mode = MODE_NAMES[named];
    if (!mode)
      throw new ConfigError(
        `${where}: pooling_mode "${named}" is not one of ${Object.keys(MODE_NAMES).join(', ')}`,
      );
    return [mode];
  }
  const modes = POOLING_MODES.filter((mode) => record[CONFIG_KEYS[mode]] === true);
  if (modes.length === 0)
    throw new ConfigError(`${where}: turns on no pooling mode (${Object.values(CONFIG_KEYS).join(', ')})`);
  return modes;
}

/** Token embeddings of a padded batch, `[batch, sequence, width]` row-major, as the graph returns them. */
export interface TokenEmbeddings {
  readonly data: Float32Array;
  readonly batch: number;
  readonly sequence: number;
  readonly width: number;
  /** 1 for a real token, 0 for padding, `[batch, sequence]` row-major. */
  readonly mask: Uint8Array;
}

/**
 * One sentence vector per batch row, pooled as sentence-transformers' `Pooling` does:
 * `cls` takes the first token; `max` the largest value of each dimension over real
 * tokens; `mean` the average of real tokens; `mean_sqrt_len` their sum over the square
 * root of their count; `weightedmean` weights token i (from 1) by i; `lasttoken` takes
 * the last real token. Padding (mask 0) never counts. Several modes are concatenated in
 * {@link POOLING_MODES} order, so the width is `width * modes.length`.
 */
export function poolTokens(tokens: TokenEmbeddings, modes: readonly PoolingMode[]): Float32Array[] {
  const { data, batch, sequence, width, mask } = tokens;
  const ordered = POOLING_MODES.filter((mode) => modes.includes(mode));
  const vectors: Float32Array[] = [];
  for (let b = 0; b < batch; b++) {
    const out = new Float32Array(width * ordered.length);
    const rowStart = b * sequence;
    let real = 0;
    let last = 0;
    for (let t = 0; t < sequence; t++) {
      if (mask[rowStart + t]) {
        real += 1;
        last = t;
      }
    }
    const token = (t: number) => (rowStart + t) * width;
    ordered.forEach((mode, m) => {
      const base = m * width;
      if (mode === 'cls' || mode === 'lasttoken') {
        out.set(
          data.subarray(token(mode === 'cls' ? 0 : last), token(mode === 'cls' ? 0 : last) + width),
          base,
        );
        return;
      }
      if (mode === 'max') {
        // sentence-transformers sets padding to -1e9 before the max; no real token is that small.
        out.fill(-1e9, base, base + width);
        for (let t = 0; t < sequence; t++) {
          if (!mask[rowStart + t]) continue;
          for (let d = 0; d < width; d++) out[base + d] = Math.max(out[base + d]!, data[token(t) + d]!);
        }
        return;
      }
      let weightSum = 0;
      for (let t = 0; t < sequence; t++) {
        if (!mask[rowStart + t]) continue;
        const weight = mode === 'weightedmean' ? t + 1 : 1;
        weightSum += weight;
        for (let d = 0; d < width; d++) out[base + d]! += weight * data[token(t) + d]!;
      }
      // sentence-transformers clamps the divisor at 1e-9 (a row with no real token).
      const divisor = mode === 'mean_sqrt_len' ? Math.sqrt(Math.max(real, 1e-9)) : Math.max(weightSum, 1e-9);
      for (let d = 0; d < width; d++) out[base + d]! /= divisor;
    });
    vectors.push(out);
  }
  return vectors;
}

/** Scales `vector` to unit length in place, as `torch.nn.functional.normalize` (eps 1e-12); returns it. */
export function normalizeL2(vector: Float32Array): Float32Array {
  let sum = 0;
  for (const v of vector) sum += v * v;
  const norm = Math.max(Math.sqrt(sum), 1e-12);
  for (let i = 0; i < vector.length; i++) vector[i]! /= norm;
  return vector;
}
