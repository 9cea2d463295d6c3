import { parquetReadObjects } from 'hyparquet';
import { describe, expect, it } from 'vitest';
import { MemoryObjectStore } from '../../shared/adapters/local/memory-object-store.ts';
import { type GeneratePipelineConfig, parsePipelineConfig } from '../../shared/config/pipeline-config.ts';
import type { WorkUnit } from '../../shared/domain/types.ts';
import { EndpointUnavailable } from '../../shared/errors/errors.ts';
import {
  type ChatEndpoint,
  chatLimiterOptions,
  chatTimeoutMs,
} from '../../shared/jobs/generate/chat-endpoint.ts';
import { generateJob } from '../../shared/jobs/generate/generate-job.ts';
import { generateJobFor, workGenerateUnit } from '../../shared/jobs/generate/generate-stage.ts';
import { generateUnit } from '../../shared/jobs/generate/generate-unit.ts';
import type { GenerationTableRow } from '../../shared/jobs/generate/generations-table.ts';
import { ObjectStorePromptCache, promptCacheKey } from '../../shared/jobs/generate/prompt-cache.ts';
import type { UnitWorkDeps } from '../../shared/jobs/job-kind.ts';
import { unitPartKey } from '../../shared/output/keys.ts';
import type { CallStats } from '../../shared/ports/embedding-endpoint.ts';

const SOURCE = 'incoming/triage/tickets.jsonl';

function config(overrides: Record<string, unknown> = {}): GeneratePipelineConfig {
  return parsePipelineConfig({
    name: 'triage',
    kind: 'generate',
    model: 'test-model',
    input: { format: 'jsonl', metadataFields: ['tier'] },
    prompt: { system: 'Answer with JSON for {{ product }}.', user: 'Ticket {{ id }}: {{ text }}' },
    output: {
      jsonSchema: {
        type: 'object',
        properties: { priority: { enum: ['low', 'high'] } },
        required: ['priority'],
        additionalProperties: false,
      },
      maxRepairs: 1,
    },
    endpoint: { concurrency: 4 },
    ...overrides,
  }) as GeneratePipelineConfig;
}

function ticket(i: number, extra: Record<string, unknown> = {}) {
  return {
    id: `t${i}`,
    product: 'Cloud',
    tier: i % 2 ? 'pro' : 'free',
    text: `ticket number ${i}`,
    ...extra,
  };
}

function unitOver(store: MemoryObjectStore, runId: string, lines: object[]): WorkUnit {
  const body = `${lines.map((l) => JSON.stringify(l)).join('\n')}\n`;
  store.objects.set(SOURCE, new TextEncoder().encode(body));
  return {
    runId,
    unitId: 'u0000',
    pipeline: 'triage',
    sourceKey: SOURCE,
    byteStart: 0,
    byteEnd: Buffer.byteLength(body),
    firstLine: 1,
    format: 'jsonl',
    compression: 'none',
    packed: [],
    estCost: 1000,
    stage: 'generate',
  };
}

/**
 * A fake LLM: answers `{"priority": "high"}` unless the ticket text asks for a broken
 * answer (`broken`: every answer; `once`: only the first), and records what it was asked.
 */
class ScriptedChat implements ChatEndpoint {
  readonly bodies: { messages: { role: string; content: string }[] }[] = [];

  async complete(body: string, _cost: number, stats: CallStats): Promise<string> {
    stats.endpointCalls += 1;
    const request = JSON.parse(body) as { messages: { role: string; content: string }[] };
    this.bodies.push(request);
    const first = request.messages.find((m) => m.role === 'user')!.content;
    const isRepair = request.messages.length > 2;
    const broken = first.includes('broken') || (first.includes('once') && !isRepair);
    const content = broken ? '{"priority": "urgent"}' : '{"priority": "high"}';
    return JSON.stringify({
      choices: [{ message: { role: 'assistant', content }, finish_reason: 'stop' }],
      usage: { prompt_tokens: 10, completion_tokens: 3 },
    });
  }
}

async function run(
  store: MemoryObjectStore,
  cfg: GeneratePipelineConfig,
  unit: WorkUnit,
  chat: ChatEndpoint,
) {
  const rows: GenerationTableRow[] = [];
  const result = await generateUnit(
    { store, endpoint: chat, cache: new ObjectStorePromptCache(store) },
    cfg,
    generateJobFor(cfg),
    unit,
    { add: (r) => void rows.push(...r) },
  );
  return { rows, result };
}

describe('generateUnit', () => {
  it('puts every record in exactly one of the rows or the rejects, rows in read order', async () => {
    const store = new MemoryObjectStore();
    const lines: Record<string, unknown>[] = Array.from({ length: 150 }, (_, i) => ticket(i));
    lines[3] = { id: 't3', tier: 'free', text: 'no product field' };
    lines[7] = ticket(7, { text: 'broken answer every time' });
    const chat = new ScriptedChat();
    const { rows, result } = await run(
      store,
      config(),
      unitOver(store, 'r-20261207T100000Z-aaaaaa', lines),
      chat,
    );

    expect(result.counts).toMatchObject({ records: 150, rejected: 2, generated: 148, cached: 0 });
    expect(rows.map((r) => r.record_id)).toEqual(
      lines.map((l) => (l as { id: string }).id).filter((id) => id !== 't3' && id !== 't7'),
    );
    expect(result.rejects.map((r) => [r.line, r.reason])).toEqual([
      [4, 'missing template field "product"'],
      [
        8,
        'invalid JSON output after 2 attempts: /priority: must be equal to one of the allowed values ("low", "high")',
      ],
    ]);
    // No call for the record that could not be rendered; two (ask + one repair) for the broken one.
    expect(chat.bodies).toHaveLength(148 + 2);
    expect(result.counts.endpointCalls).toBe(150);
    expect(result.counts.promptTokens).toBe(150 * 10);
    expect(rows[0]).toMatchObject({
      record_id: 't0',
      model: 'test-model',
      output_json: '{"priority":"high"}',
      attempts: 1,
      finish_reason: 'stop',
      line: 1,
      metadata: { tier: 'free' },
    });
    expect(rows[0]!.prompt_sha256).toMatch(/^[0-9a-f]{64}$/);
  });

  it('repairs an invalid answer with a message quoting the validation error', async () => {
    const store = new MemoryObjectStore();
    const chat = new ScriptedChat();
    const { rows } = await run(
      store,
      config(),
      unitOver(store, 'r-20261207T100000Z-aaaaaa', [ticket(1, { text: 'once' })]),
      chat,
    );
    expect(rows[0]).toMatchObject({ attempts: 2, output_json: '{"priority":"high"}', prompt_tokens: 20 });
    const repair = chat.bodies[1]!.messages;
    expect(repair.at(-2)).toEqual({ role: 'assistant', content: '{"priority": "urgent"}' });
    expect(repair.at(-1)!.content).toContain('/priority: must be equal to one of the allowed values');
  });

  it('carries answers of an earlier run from the prompt cache and asks only the changed prompts', async () => {
    const store = new MemoryObjectStore();
    const cfg = config();
    const lines = Array.from({ length: 100 }, (_, i) => ticket(i));
    const first = await run(
      store,
      cfg,
      unitOver(store, 'r-20261207T100000Z-aaaaaa', lines),
      new ScriptedChat(),
    );
    await new ObjectStorePromptCache(store).record('triage', first.result.fresh);

    const edited = lines.map((l, i) => (i % 20 === 0 ? { ...l, text: `${l.text}, edited` } : l));
    const chat = new ScriptedChat();
    const second = await run(store, cfg, unitOver(store, 'r-20261207T110000Z-bbbbbb', edited), chat);
    expect(second.result.counts).toMatchObject({ records: 100, generated: 5, cached: 95, rejected: 0 });
    expect(chat.bodies).toHaveLength(5);
    const carried = second.rows.find((r) => r.record_id === 't1')!;
    expect(carried).toMatchObject({
      attempts: 0,
      prompt_tokens: 0,
      completion_tokens: 0,
      output_json: '{"priority":"high"}',
    });
    expect(carried.prompt_sha256).toBe(first.rows.find((r) => r.record_id === 't1')!.prompt_sha256);
  });

  it('misses the cache when the model or a generation parameter changes', async () => {
    const store = new MemoryObjectStore();
    const lines = Array.from({ length: 10 }, (_, i) => ticket(i));
    const first = await run(
      store,
      config(),
      unitOver(store, 'r-20261207T100000Z-aaaaaa', lines),
      new ScriptedChat(),
    );
    await new ObjectStorePromptCache(store).record('triage', first.result.fresh);
    const other = config({ generation: { maxTokens: 64 } });
    const second = await run(
      store,
      other,
      unitOver(store, 'r-20261207T110000Z-bbbbbb', lines),
      new ScriptedChat(),
    );
    expect(second.result.counts).toMatchObject({ generated: 10, cached: 0 });
  });
});

describe('the LLM endpoint client settings', () => {
  it('counts latency as queueing only at 4x the unloaded latency, and never starts above the maximum', () => {
    expect(chatLimiterOptions({ initialConcurrency: 8, concurrency: 64 })).toEqual({
      initialLimit: 8,
      maxLimit: 64,
      latencyTolerance: 4,
      slowStart: true,
    });
    expect(chatLimiterOptions({ initialConcurrency: 8, concurrency: 4 }).initialLimit).toBe(4);
    expect(chatTimeoutMs(512)).toBe(81_200);
  });
});

describe('the generate stage', () => {
  it('writes the generations part and records fresh answers in the cache only after it', async () => {
    const store = new MemoryObjectStore();
    const cfg = config();
    const unit = unitOver(store, 'r-20261207T100000Z-aaaaaa', [
      ticket(1),
      ticket(2),
      { id: 'x', text: 'no product' },
    ]);
    const deps = { store, chatEndpoint: new ScriptedChat() } as unknown as UnitWorkDeps;
    const work = await workGenerateUnit(deps, cfg, unit);

    const partKey = unitPartKey('generations', 'triage', unit.runId, unit.unitId);
    expect(work.outputKeys[0]).toBe(partKey);
    expect(work.counts).toMatchObject({ records: 3, generated: 2, rejected: 1 });
    const buffer = store.objects.get(partKey)!;
    const rows = await parquetReadObjects({
      file: buffer.buffer.slice(buffer.byteOffset, buffer.byteOffset + buffer.byteLength) as ArrayBuffer,
    });
    expect(rows.map((r) => [r.record_id, r.output_json, r.attempts])).toEqual([
      ['t1', '{"priority":"high"}', 1],
      ['t2', '{"priority":"high"}', 1],
    ]);
    const cachedKey = promptCacheKey('triage', rows[0]!.prompt_sha256 as string);
    expect(store.objects.has(cachedKey)).toBe(true);
    expect(work.actualCost).toBe(2 * 13);
  });

  it('leaves no part and no cache entry when the endpoint fails mid-unit; the retry asks every record once', async () => {
    const store = new MemoryObjectStore();
    const cfg = config();
    const unit = unitOver(
      store,
      'r-20261207T100000Z-aaaaaa',
      Array.from({ length: 120 }, (_, i) => ticket(i)),
    );
    let calls = 0;
    const failing: ChatEndpoint = {
      complete: async (body, cost, stats) => {
        calls += 1;
        if (calls === 90) throw new EndpointUnavailable('endpoint sluice-llm failed 7 attempts: 503');
        return new ScriptedChat().complete(body, cost, stats);
      },
    };
    await expect(
      workGenerateUnit({ store, chatEndpoint: failing } as unknown as UnitWorkDeps, cfg, unit),
    ).rejects.toThrow('failed 7 attempts');
    const keys = [...store.objects.keys()];
    expect(keys.filter((k) => k.startsWith('results/') || k.startsWith('cache/'))).toEqual([]);

    const healthy = new ScriptedChat();
    const retry = await workGenerateUnit(
      { store, chatEndpoint: healthy } as unknown as UnitWorkDeps,
      cfg,
      unit,
    );
    expect(retry.counts).toMatchObject({ records: 120, generated: 120, cached: 0, rejected: 0 });
    expect(healthy.bodies).toHaveLength(120);
  });

  it('stops a run at plan time when a template does not compile', async () => {
    const bad = config({ prompt: { user: '{{ text | shout }}' } });
    await expect(generateJob.stagesOfRun!({ store: new MemoryObjectStore() }, bad)).rejects.toThrow(
      'pipeline "triage": prompt.user: undefined filter: shout',
    );
  });
});
