import type { GeneratePipelineConfig, RecommendPipelineConfig } from '../../shared/config/pipeline-config.ts';
import { CHAT_TEMPLATE_TOKENS, type GenerateWork } from '../../shared/cost/estimate-generate.ts';
import type { RecommendWork } from '../../shared/cost/estimate-recommend.ts';
import { EstimatingTokenCounter } from '../../shared/embedding/token-counter.ts';
import { compileGenerateJob } from '../../shared/jobs/generate/generate-config.ts';
import { preparePrompt } from '../../shared/jobs/generate/generate-record.ts';
import { parseInteraction } from '../../shared/jobs/recommend/interaction.ts';
import type { ClassifiedFile } from '../../shared/plan/sample-cost.ts';
import type { ObjectStore } from '../../shared/ports/object-store.ts';
import { readSourceRecords, type SourceRecord } from '../../shared/readers/source-records.ts';

/**
 * Records read from the start of each input file before its count is extrapolated: enough
 * for a stable mean prompt length and user count, small enough that `sluice cost` over tens
 * of GB answers in seconds.
 */
export const SAMPLED_RECORDS_PER_FILE = 100_000;

/** A compressed file's records per stored byte are taken as 4x a plain file's (the planner's fallback expansion). */
const GZIP_EXPANSION = 4;

/** What reading the start of every file gave: records seen, and the records all files are estimated to hold. */
interface SampledRecords {
  readonly read: number;
  readonly estimated: number;
  /** Every file was read to its end: `estimated` is a count. */
  readonly complete: boolean;
}

/**
 * Reads up to {@link SAMPLED_RECORDS_PER_FILE} records of each file with the pipeline's own
 * reader (every field, `shape: 'row'`) and hands each to `visit`. A file read to its end
 * counts its records; one cut short is extrapolated by the bytes its sample covered.
 */
async function sampleRecords(
  store: ObjectStore,
  files: readonly ClassifiedFile[],
  input: GeneratePipelineConfig['input'] | RecommendPipelineConfig['input'],
  visit: (record: SourceRecord) => void,
): Promise<SampledRecords> {
  const fields = { ...input, shape: 'row' as const };
  let read = 0;
  let estimated = 0;
  let complete = true;
  for (const file of files) {
    const gzip = file.compression === 'gzip';
    const slice = {
      key: file.key,
      format: file.format,
      compression: file.compression,
      byteStart: 0,
      // Offsets of a gzip file count decompressed bytes: read it all (up to the sample).
      byteEnd: gzip ? Number.MAX_SAFE_INTEGER : file.size,
      firstLine: 1,
    };
    let inFile = 0;
    let lastOffset = 0;
    let cut = false;
    for await (const record of readSourceRecords(store, slice, fields)) {
      if (inFile >= SAMPLED_RECORDS_PER_FILE) {
        cut = true;
        lastOffset = record.byteOffset;
        break;
      }
      inFile += 1;
      visit(record);
    }
    read += inFile;
    if (!cut || lastOffset <= 0) estimated += inFile;
    else {
      complete = false;
      const storedBytesRead = gzip ? lastOffset / GZIP_EXPANSION : lastOffset;
      estimated += Math.round(inFile * Math.max(1, file.size / storedBytesRead));
    }
  }
  return { read, estimated, complete };
}

/**
 * A generate pipeline's inputs as `sluice cost` prices them: each sampled record's prompt
 * rendered with the pipeline's templates and counted with the project's token estimator
 * (`estimate-v2`) plus the chat template's markers ({@link CHAT_TEMPLATE_TOKENS}); a record
 * whose prompt does not render is a reject (no call). Completion tokens: `completionTokens`
 * per answerable record when given, else `generation.maxTokens` (the bound every answer
 * stays within).
 */
export async function measureGenerateInputs(
  store: ObjectStore,
  files: readonly ClassifiedFile[],
  config: GeneratePipelineConfig,
  completionTokensPerRecord?: number,
): Promise<GenerateWork> {
  const job = compileGenerateJob(config);
  const counter = new EstimatingTokenCounter();
  let answerable = 0;
  let promptTokens = 0;
  const sampled = await sampleRecords(store, files, config.input, (record) => {
    if (record.kind !== 'row') return;
    const prompt = preparePrompt(job, record);
    if (!prompt.ok) return;
    answerable += 1;
    promptTokens += CHAT_TEMPLATE_TOKENS.perRequest;
    for (const message of prompt.messages)
      promptTokens += counter.count(message.content) + CHAT_TEMPLATE_TOKENS.perMessage;
  });
  const scale = sampled.read > 0 ? sampled.estimated / sampled.read : 0;
  const answerableRecords = Math.round(answerable * scale);
  const perRecord = completionTokensPerRecord ?? config.generation.maxTokens;
  return {
    records: sampled.estimated,
    answerable: answerableRecords,
    promptTokens: Math.round(promptTokens * scale),
    completionTokens: Math.round(answerableRecords * Math.min(perRecord, config.generation.maxTokens)),
  };
}

/**
 * A recommend pipeline's inputs as `sluice cost` prices them: the interaction rows, the
 * distinct users (counted when every file was read to its end; otherwise the sample's
 * distinct users scaled by rows, an upper bound since a longer log repeats users), and the
 * ids' mean lengths (they size the serving table's items).
 */
export async function measureRecommendInputs(
  store: ObjectStore,
  files: readonly ClassifiedFile[],
  config: RecommendPipelineConfig,
): Promise<RecommendWork & { readonly usersCounted: boolean }> {
  const users = new Set<string>();
  let idRows = 0;
  let userChars = 0;
  let itemChars = 0;
  const sampled = await sampleRecords(store, files, config.input, (record) => {
    if (record.kind !== 'row') return;
    const parsed = parseInteraction(record.values, config.input);
    if (!parsed.ok) return;
    users.add(parsed.interaction.userId);
    idRows += 1;
    userChars += parsed.interaction.userId.length;
    itemChars += parsed.interaction.itemId.length;
  });
  const scale = sampled.read > 0 ? sampled.estimated / sampled.read : 0;
  return {
    rows: sampled.estimated,
    users: sampled.complete ? users.size : Math.round(users.size * scale),
    usersCounted: sampled.complete,
    ...(idRows > 0 ? { userIdChars: userChars / idRows, itemIdChars: itemChars / idRows } : {}),
  };
}
