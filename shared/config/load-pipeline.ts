import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { ConfigError } from '../errors/errors.ts';
import { type PipelineConfig, parsePipelineConfig } from './pipeline-config.ts';

/**
 * Reads and validates `<dir>/<name>.json`. Errors are one line naming the file and
 * the key, so a user can fix the config without reading a stack trace.
 */
export async function loadPipelineConfig(dir: string, name: string): Promise<PipelineConfig> {
  if (!/^[a-z0-9][a-z0-9-]*$/.test(name)) {
    throw new ConfigError(`pipeline name "${name}" is invalid: use lowercase letters, digits and dashes`);
  }
  const file = path.join(dir, `${name}.json`);
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch {
    const known = await listPipelineNames(dir);
    throw new ConfigError(
      `pipeline "${name}" not found: no ${file}${known.length ? ` (known: ${known.join(', ')})` : ''}`,
    );
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (error) {
    throw new ConfigError(`${file}: not valid JSON: ${(error as Error).message}`);
  }
  const config = parsePipelineConfig(raw, file);
  if (config.name !== name) {
    throw new ConfigError(`${file}: name: "${config.name}" must match the file name "${name}"`);
  }
  return config;
}

/** Names of the pipeline configs in a folder (`*.json`, sorted). */
export async function listPipelineNames(dir: string): Promise<string[]> {
  try {
    return (await readdir(dir))
      .filter((f) => f.endsWith('.json') && !f.endsWith('.schema.json'))
      .map((f) => f.slice(0, -'.json'.length))
      .sort();
  } catch {
    return [];
  }
}
