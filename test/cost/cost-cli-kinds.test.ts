import { readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type GeneratePipelineConfig, parsePipelineConfig } from '../../shared/config/pipeline-config.ts';
import { LLM_BATCH_ANCHORS } from '../../shared/cost/estimate-generate.ts';
import type { RunCost } from '../../shared/cost/run-cost.ts';
import { servingWriteUnitsPerUser } from '../../shared/cost/serving-writes.ts';
import type { RunSummary } from '../../shared/domain/types.ts';
import { EstimatingTokenCounter } from '../../shared/embedding/token-counter.ts';
import { compileGenerateJob } from '../../shared/jobs/generate/generate-config.ts';
import { preparePrompt } from '../../shared/jobs/generate/generate-record.ts';
import { sluice } from '../support/cli.ts';

const TICKETS = 'events/data/tickets-sample.jsonl';
const INTERACTIONS = 'events/data/interactions-sample.csv';
const micros = (usd: number) => Math.round(usd * 1e6);

/** The parts of a cost add up to its total, to the micro-dollar. */
const expectPartsAddUp = (cost: Pick<RunCost, 'total' | 'endpoint' | 'lambda' | 'requests' | 'storage'>) =>
  expect(micros(cost.total)).toBe(
    micros(cost.endpoint) + micros(cost.lambda) + micros(cost.requests) + micros(cost.storage),
  );

/** The sample's prompt tokens counted here: each ticket rendered, estimate-v2 plus 4 per message and 1 per request. */
function samplePromptTokens(): { answerable: number; tokens: number } {
  const config = parsePipelineConfig(
    JSON.parse(readFileSync('pipelines/generate-triage.json', 'utf8')),
  ) as GeneratePipelineConfig;
  const job = compileGenerateJob(config);
  const counter = new EstimatingTokenCounter();
  let answerable = 0;
  let tokens = 0;
  readFileSync(TICKETS, 'utf8')
    .split('\n')
    .filter((line) => line.trim() !== '')
    .forEach((line, i) => {
      const values = JSON.parse(line) as Record<string, unknown>;
      const record = { id: String(values.id), values, metadata: {}, line: i + 1, byteOffset: 0 };
      const prompt = preparePrompt(job, record);
      if (!prompt.ok) return;
      answerable += 1;
      tokens += 1 + prompt.messages.reduce((sum, m) => sum + counter.count(m.content) + 4, 0);
    });
  return { answerable, tokens };
}

interface GenerateReport {
  records: number;
  answerable: number;
  tokens: { prompt: number; completion: number; completionPerRecord: string };
  capacity: { copies: number; coldStartSeconds: number; busySeconds: number };
  throughputPerSecond: number;
  throughputSource: string;
  perRun: RunCost;
  perMonth?: {
    runs: number;
    total: number;
    endpoint: number;
    lambda: number;
    requests: number;
    storage: number;
  };
  perMillionTokens: number;
  anchors: { name: string; perRun: number; perMonth?: number; usdPerMillionTokens: number; source: string }[];
}

/** `sluice cost` of the tickets sample through generate-triage, with `flags`. */
const costOfTickets = (...flags: string[]) =>
  sluice('cost', TICKETS, '--pipeline', 'generate-triage', ...flags);

describe('sluice cost for a generate pipeline', () => {
  it('prices the sample: rendered prompt tokens, max_tokens per answer, the LLM copy and the batch APIs', async () => {
    const result = await costOfTickets('--runs-per-month', '30', '--json');
    expect(result.code).toBe(0);
    const report = result.json<GenerateReport>();
    const expected = samplePromptTokens();
    expect(report.records).toBe(48);
    expect(report.answerable).toBe(expected.answerable);
    expect(report.tokens.prompt).toBe(expected.tokens);
    // generation.maxTokens (128) per answer: the bound.
    expect(report.tokens.completion).toBe(expected.answerable * 128);
    expect(report.capacity).toMatchObject({ copies: 1, coldStartSeconds: 258 });
    expect(report.capacity.busySeconds).toBeCloseTo((expected.answerable * 128) / 190, 9);
    expect(report.throughputSource).toContain('assumed: 190 completion tokens/s per copy');
    expectPartsAddUp(report.perRun);
    expect(report.perRun.estimate).toBe(true);
    expect(report.perRun.endpoint).toBeGreaterThan(0);
    const tokens = report.tokens.prompt + report.tokens.completion;
    expect(report.perMillionTokens).toBe(Math.round(micros(report.perRun.total) / (tokens / 1e6)) / 1e6);
    expect(report.perMonth).toMatchObject({
      runs: 30,
      endpoint: Math.round(report.perRun.endpoint * 30 * 1e6) / 1e6,
    });
    expect(report.anchors.map((a) => a.name)).toEqual(LLM_BATCH_ANCHORS.map((a) => a.name));
    LLM_BATCH_ANCHORS.forEach((anchor, i) => {
      const usd =
        (report.tokens.prompt / 1e6) * anchor.usdPerMillionPromptTokens +
        (report.tokens.completion / 1e6) * anchor.usdPerMillionCompletionTokens;
      expect(report.anchors[i]?.perRun).toBe(Math.round(usd * 1e6) / 1e6);
      expect(report.anchors[i]?.perMonth).toBe(Math.round(usd * 30 * 1e6) / 1e6);
    });
  });

  it('takes measured completion tokens and throughput in place of the bound and the assumed rate', async () => {
    const given = await costOfTickets(
      '--completion-tokens',
      '20',
      '--completion-tokens-per-second',
      '1000',
      '--json',
    );
    expect(given.code).toBe(0);
    const report = given.json<GenerateReport>();
    expect(report.tokens.completion).toBe(report.answerable * 20);
    expect(report.throughputSource).toBe('given');
    expect(report.capacity.busySeconds).toBeCloseTo((report.answerable * 20) / 1000, 9);

    const bad = await costOfTickets('--completion-tokens', '0');
    expect(bad.code).toBe(2);
    expect(bad.err.join('\n')).toContain('--completion-tokens must be a positive number');
  });
});

interface RecommendReport {
  work: { amount: number; unit: string };
  users: number;
  usersCounted: boolean;
  hosting: string;
  servingWrites: { items: number; writeUnitsPerItem: number; writeUnits: number };
  perRun: RunCost;
}

describe('sluice cost for a recommend pipeline', () => {
  it('prices the interaction log: two stages in the workers, one serving item per user, no endpoint', async () => {
    const rows = readFileSync(INTERACTIONS, 'utf8').trim().split('\n').slice(1);
    const users = new Set(rows.map((row) => row.split(',')[0]));
    const mean = (column: number) =>
      rows.reduce((sum, row) => sum + (row.split(',')[column]?.length ?? 0), 0) / rows.length;
    const result = await sluice('cost', INTERACTIONS, '--pipeline', 'recommend', '--json');
    expect(result.code).toBe(0);
    const report = result.json<RecommendReport>();
    expect(report.work).toEqual({ amount: rows.length, unit: 'interactions' });
    expect(report).toMatchObject({ users: users.size, usersCounted: true, hosting: 'none' });
    const perItem = servingWriteUnitsPerUser({
      pipeline: 'recommend',
      topN: 20,
      userIdChars: mean(0),
      itemIdChars: mean(1),
    });
    expect(report.servingWrites).toEqual({
      items: users.size,
      writeUnitsPerItem: perItem,
      writeUnits: users.size * perItem,
    });
    expect(report.perRun.endpoint).toBe(0);
    expect(report.perRun.usage.dynamoWrites).toBeGreaterThanOrEqual(users.size * perItem);
    expectPartsAddUp(report.perRun);

    const given = await sluice('cost', INTERACTIONS, '--pipeline', 'recommend', '--users', '10', '--json');
    expect(given.json<RecommendReport>()).toMatchObject({ users: 10, servingWrites: { items: 10 } });
  });
});

/** The distinct users of the interactions sample (its first column). */
const sampleUsers = () =>
  new Set(
    readFileSync(INTERACTIONS, 'utf8')
      .trim()
      .split('\n')
      .slice(1)
      .map((row) => row.split(',')[0]),
  ).size;

describe.each([
  {
    kind: 'generate',
    args: [TICKETS, '--pipeline', 'generate-triage', '--schedule', 'rate(1 day)'],
    says: () => [
      '1 copy of ml.g5.2xlarge, run-scoped: 258 s cold start',
      'per 1M tokens, prompt and completion',
      'a month',
      'at OpenAI Batch API, gpt-4o-mini',
      'at Bedrock batch inference, Llama 3 8B Instruct',
    ],
  },
  {
    kind: 'recommend',
    args: [INTERACTIONS, '--pipeline', 'recommend', '--runs-per-month', '30'],
    says: () => [
      `${sampleUsers().toLocaleString('en-US')} lists written to DynamoDB`,
      'none: no model is called',
      'a month',
    ],
  },
])('sluice cost in words for a $kind pipeline', ({ args, says }) => {
  it('prints the bill by component and over a month, with every figure known', async () => {
    const text = await sluice('cost', ...args);
    expect(text.code).toBe(0);
    const out = text.out.join('\n');
    for (const line of says()) expect(out).toContain(line);
    expect(out).not.toContain('undefined');
    expect(out).not.toContain('NaN');
  });
});

type Cost = NonNullable<RunSummary['cost']>;

/** A local run whose summary cost is checked: what it runs and what its kind's cost must say. */
interface LocalRunCase {
  readonly title: string;
  readonly pipeline: string;
  /** The input to run, written under `work` where the sample is cut down. */
  readonly input: (work: string) => Promise<string>;
  /** What this kind's cost says beyond an estimate whose parts add up. */
  readonly expectCost: (cost: Cost, summary: RunSummary) => void;
}

const LOCAL_RUNS: readonly LocalRunCase[] = [
  {
    title: 'counts a generate run’s LLM endpoint, its tokens and its price per 1M tokens, as an estimate',
    pipeline: 'generate-triage',
    input: async () => TICKETS,
    expectCost: (cost, summary) => {
      expect(cost.usage).toMatchObject({
        hosting: 'instance',
        instanceType: 'ml.g5.2xlarge',
        promptTokens: summary.stats.promptTokens,
        completionTokens: summary.stats.completionTokens,
      });
      expect(cost.usage.endpointSeconds).toBeGreaterThan(0);
      expect(cost.endpoint).toBeGreaterThan(0);
      expect(cost.usage.lambdaGbSeconds).toBeGreaterThan(0);
      const tokens = (summary.stats.promptTokens ?? 0) + (summary.stats.completionTokens ?? 0);
      expect(tokens).toBeGreaterThan(0);
      expect(cost.perMillionTokens).toBe(Math.round(micros(cost.total) / (tokens / 1e6)) / 1e6);
    },
  },
  {
    title: 'counts a recommend run’s two stages and its serving writes, one item per user recommended',
    pipeline: 'recommend',
    input: async (work) => {
      const input = path.join(work, 'interactions.csv');
      await writeFile(input, `${readFileSync(INTERACTIONS, 'utf8').split('\n').slice(0, 3001).join('\n')}\n`);
      return input;
    },
    expectCost: (cost, summary) => {
      const users = summary.recommendations?.usersRecommended ?? 0;
      expect(users).toBeGreaterThan(0);
      const perUser = servingWriteUnitsPerUser({ pipeline: 'recommend', topN: 20 });
      expect(cost.usage).toMatchObject({
        endpointSeconds: 0,
        usersWritten: users,
        servingWrites: users * perUser,
      });
      expect(cost.usage.dynamoWrites).toBeGreaterThan(users * perUser);
      expect(cost.endpoint).toBe(0);
      expect(cost.basis.endpoint).toBe('none: the run calls no model');
      expect(cost.perMillionTokens).toBeUndefined();
    },
  },
];

describe('the cost in the summary of local generate and recommend runs', () => {
  let work: string;

  beforeAll(async () => {
    work = await mkdtemp(path.join(tmpdir(), 'sluice-cost-kinds-'));
  });
  afterAll(() => rm(work, { recursive: true, force: true }));

  // A loop rather than it.each, whose $title is quoted and cut at 40 characters.
  for (const { title, pipeline, input, expectCost } of LOCAL_RUNS) {
    it(title, async () => {
      const home = path.join(work, pipeline);
      const run = await sluice('run', await input(work), '--pipeline', pipeline, '--home', home, '--json');
      expect(run.code).toBe(0);
      const summary = run.json<RunSummary>();
      if (!summary.cost) throw new Error(`no cost in the summary: ${summary.costUnknown}`);
      expect(summary.cost).toMatchObject({ currency: 'USD', estimate: true, region: 'us-east-1' });
      expectPartsAddUp(summary.cost);
      expectCost(summary.cost, summary);
    });
  }
});
