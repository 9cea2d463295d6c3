import type { GeneratePipelineConfig } from '../../config/pipeline-config.ts';
import { emptyCounts, type RejectRow, type UnitCounts, type WorkUnit } from '../../domain/types.ts';
import { UnitIdList } from '../../duplicates/unit-id-list.ts';
import type { CallStats } from '../../ports/embedding-endpoint.ts';
import type { ObjectStore } from '../../ports/object-store.ts';
import { mapWithConcurrency } from '../../work/concurrency.ts';
import { type Checkpoint, rejectRowOf, unitRecords } from '../../work/unit-records.ts';
import { type ChatMessage, chatRequestOf, parseChatCompletionBody } from './chat-contract.ts';
import type { ChatEndpoint } from './chat-endpoint.ts';
import type { GenerateJob } from './generate-config.ts';
import {
  answerPrompt,
  type GenerateInput,
  type PreparedPrompt,
  preparePrompt,
  type RecordOutcome,
  unrenderedOutcome,
} from './generate-record.ts';
import type { GenerationTableRow } from './generations-table.ts';
import type { CachedAnswer, PromptCache } from './prompt-cache.ts';
import type { ChatCall } from './structured-output.ts';

/** Where a unit's answered rows go, in the order their records were read. */
export interface GenerationSink {
  add(rows: readonly GenerationTableRow[]): void | Promise<void>;
}

/** A unit's counts plus the kind's own (generated, cached, tokens). */
export type GenerateCounts = UnitCounts &
  Required<Pick<UnitCounts, 'generated' | 'cached' | 'promptTokens' | 'completionTokens'>>;

export interface GeneratedUnit {
  readonly counts: GenerateCounts;
  readonly rejects: RejectRow[];
  /** Answers this unit got from the endpoint, for the prompt cache once the part is written. */
  readonly fresh: CachedAnswer[];
  /** The records in the unit's part, in part order, for finalize's duplicate-id rule. */
  readonly idList: UnitIdList;
}

export interface GenerateUnitDeps {
  readonly store: ObjectStore;
  readonly endpoint: ChatEndpoint;
  /** Without one, every prompt is asked. */
  readonly cache?: PromptCache | undefined;
}

interface ReadRow {
  readonly record: GenerateInput;
  readonly sourceKey: string;
  readonly prompt: PreparedPrompt;
}

/** Estimated tokens of a request, the limiter's cost: its characters / 4 plus what it may generate. */
function requestCost(messages: readonly ChatMessage[], maxTokens: number): number {
  let chars = 0;
  for (const m of messages) chars += m.content.length;
  return Math.ceil(chars / 4) + maxTokens;
}

/**
 * (use case, per unit) read the unit's records -> render and fingerprint each prompt ->
 * look the window's fingerprints up in the prompt cache (point reads) -> ask the misses
 * with up to `endpoint.concurrency` in flight, repairing invalid JSON -> rows in read
 * order to `sink`, rejects with reasons. Records are taken in windows of a few times the
 * concurrency, so a unit holds one window, not all its records. A prompt answered by an
 * earlier run is carried (`attempts` 0, no tokens, counted `cached`); one answered by this
 * same run (a retried unit) is carried as it was written, counted `generated`.
 */
export async function generateUnit(
  deps: GenerateUnitDeps,
  config: GeneratePipelineConfig,
  job: GenerateJob,
  unit: WorkUnit,
  sink: GenerationSink,
  checkpoint?: Checkpoint,
): Promise<GeneratedUnit> {
  return new UnitGenerator(deps, config, job, unit, sink).run(checkpoint);
}

class UnitGenerator {
  private readonly counts: GenerateCounts = {
    ...emptyCounts(),
    generated: 0,
    cached: 0,
    promptTokens: 0,
    completionTokens: 0,
  };
  private readonly rejects: RejectRow[] = [];
  private readonly fresh: CachedAnswer[] = [];
  private readonly idList = new UnitIdList();
  private window: ReadRow[] = [];
  private readonly windowSize: number;

  constructor(
    private readonly deps: GenerateUnitDeps,
    private readonly config: GeneratePipelineConfig,
    private readonly job: GenerateJob,
    private readonly unit: WorkUnit,
    private readonly sink: GenerationSink,
  ) {
    this.windowSize = Math.max(64, config.endpoint.concurrency * 4);
  }

  async run(checkpoint: Checkpoint | undefined): Promise<GeneratedUnit> {
    const fields = { ...this.config.input, shape: 'row' as const };
    for await (const { slice, record } of unitRecords(this.deps.store, this.unit, fields, checkpoint)) {
      this.counts.records += 1;
      if (record.kind === 'reject') {
        this.rejects.push(rejectRowOf(slice.key, record));
        continue;
      }
      if (record.kind !== 'row') throw new Error(`generate reader yielded a ${record.kind}`);
      this.window.push({ record, sourceKey: slice.key, prompt: preparePrompt(this.job, record) });
      if (this.window.length >= this.windowSize) await this.flush();
    }
    await this.flush();
    this.counts.rejected = this.rejects.length;
    return { counts: this.counts, rejects: this.rejects, fresh: this.fresh, idList: this.idList };
  }

  /** Answers the window's records (cache first) and sends its rows to the sink in read order. */
  private async flush(): Promise<void> {
    const read = this.window;
    this.window = [];
    if (read.length === 0) return;
    const fingerprints = read.flatMap((r) => (r.prompt.ok ? [r.prompt.promptSha256] : []));
    const cached =
      this.deps.cache && fingerprints.length > 0
        ? await this.deps.cache.lookup(this.unit.pipeline, fingerprints)
        : new Map<string, CachedAnswer>();
    const call = this.callFor(this.counts);
    const outcomes = await mapWithConcurrency(read, this.config.endpoint.concurrency, async (r) => {
      if (!r.prompt.ok) return unrenderedOutcome(r.record, r.sourceKey, r.prompt.reason);
      const hit = cached.get(r.prompt.promptSha256);
      if (hit) return this.carried(r, hit);
      return answerPrompt(this.job, call, r.record, r.sourceKey, r.prompt);
    });
    const rows: GenerationTableRow[] = [];
    outcomes.forEach((outcome, i) => {
      const { record, sourceKey } = read[i]!;
      this.counts.promptTokens +=
        outcome.kind === 'rejected' ? outcome.promptTokens : outcome.row.prompt_tokens;
      this.counts.completionTokens +=
        outcome.kind === 'rejected' ? outcome.completionTokens : outcome.row.completion_tokens;
      if (outcome.kind === 'rejected') {
        this.rejects.push(outcome.reject);
        return;
      }
      rows.push({ ...outcome.row, line: record.line });
      // Carried: answered by an earlier run (attempts 0), counted `cached`.
      const carried = outcome.row.attempts === 0 ? 1 : 0;
      this.idList.add({
        id: record.id,
        sourceKey,
        byteOffset: record.byteOffset,
        line: record.line,
        rows: 1,
        carried,
      });
      if (carried) {
        this.counts.cached += 1;
        return;
      }
      this.counts.generated += 1;
      this.fresh.push(this.cacheEntryOf(outcome));
    });
    this.counts.realTokens = this.counts.promptTokens + this.counts.completionTokens;
    await this.sink.add(rows);
  }

  /** The call function over the endpoint, counting calls, throttles and retries into `stats`. */
  private callFor(stats: CallStats): ChatCall {
    const { job, deps } = this;
    const { model } = job.settings;
    return async (messages) => {
      const body = JSON.stringify(chatRequestOf(messages, model, job.params));
      const cost = requestCost(messages, job.params.maxTokens);
      return parseChatCompletionBody(await deps.endpoint.complete(body, cost, stats));
    };
  }

  /**
   * A cached answer as this run's row: from an earlier run, carried with no call and no
   * tokens (`attempts` 0); from this same run (a retry of a unit whose answers were
   * recorded), as that attempt wrote it.
   */
  private carried(r: ReadRow, hit: CachedAnswer): RecordOutcome {
    const sameRun = hit.runId === this.unit.runId;
    return {
      kind: 'generated',
      row: {
        record_id: r.record.id,
        prompt_sha256: hit.promptSha256,
        model: hit.model,
        output: hit.output,
        output_json: hit.outputJson,
        finish_reason: hit.finishReason,
        prompt_tokens: sameRun ? hit.promptTokens : 0,
        completion_tokens: sameRun ? hit.completionTokens : 0,
        attempts: sameRun ? hit.attempts : 0,
        source_key: r.sourceKey,
        metadata: r.record.metadata,
      },
    };
  }

  private cacheEntryOf(outcome: Extract<RecordOutcome, { kind: 'generated' }>): CachedAnswer {
    const { row } = outcome;
    return {
      promptSha256: row.prompt_sha256,
      model: row.model,
      output: row.output,
      outputJson: row.output_json,
      finishReason: row.finish_reason,
      attempts: row.attempts,
      promptTokens: row.prompt_tokens,
      completionTokens: row.completion_tokens,
      runId: this.unit.runId,
    };
  }
}
