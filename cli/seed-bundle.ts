import { createHash } from 'node:crypto';
import { link, mkdir, readFile, rename, stat, unlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { PipelineConfig } from '../shared/config/pipeline-config.ts';
import type { ReplacedBundleFile } from '../shared/domain/types.ts';
import type { FeatureSpec } from '../shared/scoring/features/feature-spec.ts';
import { embeddingTableKeys } from '../shared/scoring/features/feature-transformer.ts';
import type { LocalHome } from './home.ts';

/** What a bundle file is to the pipeline, as the change line names it. */
export type BundleRole = ReplacedBundleFile['role'];

/** Objects a pipeline reads besides its inputs (models, statistics, lookup tables, tokenizers), with their roles. */
export function bundleFilesOf(config: PipelineConfig): { key: string; role: BundleRole }[] {
  if (config.kind === 'embed') {
    const tokenizer = config.chunking.tokenizer;
    if (!tokenizer) return [];
    return [tokenizer.key, ...(tokenizer.configKey ? [tokenizer.configKey] : [])].map((key) => ({
      key,
      role: 'tokenizer',
    }));
  }
  if (config.kind !== 'score') return [];
  return [
    { key: config.model.modelKey, role: 'model' },
    { key: config.featureStats.key, role: 'statistics' },
    ...embeddingTableKeys(config.featureSpec as FeatureSpec).map((key) => ({
      key,
      role: 'lookup table' as const,
    })),
  ];
}

/** What the home remembers of one seeded file: the content of the pipeline folder's file it copied. */
interface SeedRecord {
  readonly key: string;
  /** sha256 (hex) of the file copied from the pipeline folder. */
  readonly sha256: string;
  readonly seededAt: string;
}

const sha256Hex = (bytes: Uint8Array): string => createHash('sha256').update(bytes).digest('hex');

/** `3f2a9c01b2d4..`: enough of a hash for a person to tell two apart. */
export const shortHash = (hex: string): string => `${hex.slice(0, 12)}..`;

/** Where the home keeps the record of one seeded key (one file per key: runs seeding other keys never race on it). */
function recordFileOf(home: LocalHome, key: string): string {
  return path.join(home.dir, 'state', 'seeded', `${encodeURIComponent(key)}.json`);
}

async function readRecord(file: string): Promise<SeedRecord | undefined> {
  try {
    return JSON.parse(await readFile(file, 'utf8')) as SeedRecord;
  } catch {
    // Absent (a home seeded before records were kept) or torn: judged by content below.
    return undefined;
  }
}

async function readIfFile(file: string): Promise<Buffer | undefined> {
  try {
    if (!(await stat(file)).isFile()) return undefined;
    return await readFile(file);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
}

/** Writes `body` beside `file` and renames it over it: a reader opens the old file or the new one, never half of one. */
async function writeAtomically(file: string, body: Uint8Array | string): Promise<void> {
  await mkdir(path.dirname(file), { recursive: true });
  const temp = `${file}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`;
  try {
    await writeFile(temp, body);
    await rename(temp, file);
  } catch (error) {
    await unlink(temp).catch(() => undefined);
    throw error;
  }
}

/**
 * Keeps the bytes a bucket file holds before it is replaced, under their content hash in
 * the store's version folder (a hard link, else a copy), so a run planned on them (another
 * `sluice run` of the pipeline still going, a later `sluice redrive` of it) still reads the
 * version it pinned, as it would from the deployed versioned bucket.
 */
async function keepPreviousVersion(home: LocalHome, file: string, bytes: Uint8Array): Promise<void> {
  const kept = home.store.versionFileOf(bytes);
  if (kept === undefined) return;
  await mkdir(path.dirname(kept), { recursive: true });
  try {
    await link(file, kept);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') return;
    await writeAtomically(kept, bytes);
  }
}

/**
 * Seeds the local bucket with the files a pipeline names that ship beside its config
 * (`<pipelinesDir>/<key>`), as a deployment uploads them to S3, by content:
 * - a key not in the bucket is copied there;
 * - a pipeline file whose sha256 differs from the one last seeded replaces the bucket's
 *   copy (one line on `log` says so and the change is returned for the run summary), the
 *   replaced bytes kept as a version runs planned on them still read;
 * - an unchanged pipeline file is not copied again, and the bucket's copy is kept even
 *   when it differs (a fit run wrote the statistics, which must survive the next run);
 * - a key with no pipeline file keeps whatever the bucket holds.
 * Each copy is written beside its target and renamed over it, so two local runs of the
 * pipeline at once never read half a model; both seed the same bytes.
 */
export async function seedBundle(
  home: LocalHome,
  config: PipelineConfig,
  pipelinesDir: string | undefined,
  log: (line: string) => void,
): Promise<ReplacedBundleFile[]> {
  if (pipelinesDir === undefined) return [];
  const replaced: ReplacedBundleFile[] = [];
  for (const { key, role } of bundleFilesOf(config)) {
    const source = path.join(pipelinesDir, ...key.split('/'));
    const shipped = await readIfFile(source);
    if (shipped === undefined) continue;
    const sha256 = sha256Hex(shipped);
    const recordFile = recordFileOf(home, key);
    const record = await readRecord(recordFile);
    if (record?.sha256 === sha256) continue;
    const target = home.store.pathOf(key);
    const stored = await readIfFile(target);
    const storedSha256 = stored === undefined ? undefined : sha256Hex(stored);
    if (storedSha256 !== sha256) {
      if (stored !== undefined) await keepPreviousVersion(home, target, stored);
      await writeAtomically(target, shipped);
      if (storedSha256 === undefined) log(`seeded ${key} from ${source}`);
      else {
        log(
          `${role} ${key} changed (sha256 ${shortHash(storedSha256)} -> ${shortHash(sha256)}): using the new file`,
        );
        replaced.push({ key, role, previousSha256: storedSha256, sha256, source });
      }
    }
    // Last: a seed that dies before this line compares contents again next time.
    const seeded: SeedRecord = { key, sha256, seededAt: new Date().toISOString() };
    await writeAtomically(recordFile, JSON.stringify(seeded));
  }
  return replaced;
}
