import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openHome } from '../../cli/home.ts';
import type { RunSummary } from '../../shared/domain/types.ts';
import { readTable } from '../faults/support/run-tables.ts';
import { sluice } from '../support/cli.ts';
import { type BadInput, badInputs, MAX_RECORD_BYTES } from './bad-inputs.ts';

const PIPELINE = 'bad';
const KEY_PREFIX = `incoming/${PIPELINE}/drop/`;
const CLEAN_DOCS = Array.from({ length: 25 }, (_, i) => ({
  id: `clean-${i}`,
  text: `a clean document number ${i} ${'with enough words to make several chunks '.repeat(i % 4)}`,
}));

type Row = Record<string, unknown>;

describe('bad inputs: each gets a one-line reason, nothing beside it is lost', () => {
  const cases = badInputs();
  let work: string;
  let home: string;
  let summary: RunSummary;
  let code: number;
  let rejects: Row[];
  let embeddings: Row[];

  beforeAll(async () => {
    work = await mkdtemp(path.join(tmpdir(), 'sluice-bad-'));
    home = path.join(work, 'home');
    const drop = path.join(work, 'drop');
    for (const input of cases) {
      const file = path.join(drop, ...input.path.split('/'));
      await mkdir(path.dirname(file), { recursive: true });
      await writeFile(file, input.bytes);
    }
    await mkdir(path.join(drop, 'clean'), { recursive: true });
    await writeFile(
      path.join(drop, 'clean', 'docs.jsonl'),
      `${CLEAN_DOCS.map((d) => JSON.stringify(d)).join('\n')}\n`,
    );
    const pipelines = path.join(work, 'pipelines');
    await mkdir(pipelines);
    await writeFile(
      path.join(pipelines, `${PIPELINE}.json`),
      JSON.stringify({
        name: PIPELINE,
        kind: 'embed',
        endpoint: { name: 'bad-embed', dimension: 16 },
        chunking: { maxTokens: 32, overlapTokens: 4 },
        input: { maxRecordBytes: MAX_RECORD_BYTES },
      }),
    );
    const run = await sluice(
      'run',
      drop,
      '--pipeline',
      PIPELINE,
      '--pipelines',
      pipelines,
      '--home',
      home,
      '--json',
    );
    code = run.code;
    summary = JSON.parse(run.out.at(-1)!) as RunSummary;
    const { store } = openHome(home);
    rejects = await readTable(store, 'rejects', PIPELINE, summary.runId);
    embeddings = await readTable(store, 'embeddings', PIPELINE, summary.runId);
  });
  afterAll(() => rm(work, { recursive: true, force: true }));

  const rejectsOf = (input: BadInput) => rejects.filter((r) => r.source_key === `${KEY_PREFIX}${input.path}`);
  const docsOf = (input: BadInput) =>
    new Set(
      embeddings.filter((r) => r.source_key === `${KEY_PREFIX}${input.path}`).map((r) => String(r.doc_id)),
    );

  it('finishes the run (rejects are reported, not fatal) and counts what the tables hold', () => {
    expect(code).toBe(0);
    expect(summary).toMatchObject({
      status: 'succeeded',
      counts: { rejected: rejects.length, failedUnits: 0 },
    });
    expect(summary.counts.chunks).toBe(embeddings.length);
    expect(cases.length).toBeGreaterThanOrEqual(25);
  });

  it('gives every reject one line of reason a person can act on', () => {
    for (const row of rejects) {
      expect(String(row.reason)).toMatch(/^\S[^\n]*$/);
      expect(String(row.reason).length).toBeLessThanOrEqual(300);
    }
  });

  it.each(cases.map((c) => [c.name, c] as const))('%s', (_name, input) => {
    const found = rejectsOf(input);
    if (input.everyLine) {
      expect(found.length).toBeGreaterThan(0);
      for (const row of found) expect(String(row.reason)).toMatch(input.everyLine);
    } else if (input.cutShort) {
      expect(found).toHaveLength(1);
      const line = Number(found[0]!.line);
      expect(String(found[0]!.reason)).toBe(input.cutShort.reason);
      // Every record before the fault is embedded, none after it.
      expect([...docsOf(input)].sort()).toEqual(
        Array.from({ length: line - 1 }, (_, i) => `${input.cutShort!.prefix}${i}`).sort(),
      );
    } else {
      expect(
        found
          .map((r) => ({ line: Number(r.line), reason: String(r.reason) }))
          .sort((a, b) => a.line - b.line),
      ).toEqual(input.rejects.map((r) => ({ line: r.line, reason: expect.stringContaining(r.reason) })));
    }
    if (!input.cutShort) expect([...docsOf(input)].sort()).toEqual([...input.good].sort());
  });

  it('embeds every good record of the drop, each with all of its chunks once', () => {
    const expected = new Set([...CLEAN_DOCS.map((d) => d.id), ...cases.flatMap((c) => c.good)]);
    const chunks = new Map<string, number[]>();
    for (const row of embeddings)
      chunks.set(String(row.doc_id), [...(chunks.get(String(row.doc_id)) ?? []), Number(row.chunk_index)]);
    for (const id of expected) {
      const indexes = (chunks.get(id) ?? []).sort((a, b) => a - b);
      expect(indexes.length, `chunks of ${id}`).toBeGreaterThan(0);
      expect(indexes, `chunks of ${id}`).toEqual(indexes.map((_, i) => i));
    }
  });

  it('keeps keys with spaces, "+", "%" and non-ASCII letters exactly as dropped', () => {
    const keys = new Set([...rejects, ...embeddings].map((r) => String(r.source_key)));
    expect(keys).toContain(`${KEY_PREFIX}keys/q3 report + 100% café 東京.jsonl`);
    expect(keys).toContain(`${KEY_PREFIX}keys/already%20encoded%2Bplus.jsonl`);
  });
});

describe('bad configuration and usage: one line on stderr, exit 2, no run', () => {
  let work: string;
  let pipelines: string;
  let input: string;
  const base = { kind: 'embed', endpoint: { name: 'cfg-embed', dimension: 16 } };
  const configs: Record<string, unknown> = {
    'unknown-key': { ...base, name: 'unknown-key', chunking: { maxTokenz: 64 } },
    'unknown-top-key': { ...base, name: 'unknown-top-key', batchSize: 10 },
    'too-small': { ...base, name: 'too-small', chunking: { maxTokens: -5 } },
    overlap: { ...base, name: 'overlap', chunking: { maxTokens: 32, overlapTokens: 40 } },
    'wrong-type': { ...base, name: 'wrong-type', input: { maxRecordBytes: '1MB' } },
    'bad-format': { ...base, name: 'bad-format', input: { format: 'xml' } },
    'bad-kind': { ...base, name: 'bad-kind', kind: 'summarize' },
    'bad-endpoint': {
      ...base,
      name: 'bad-endpoint',
      endpoint: { name: 'spaces are not allowed', dimension: 16 },
    },
    'no-retries': { ...base, name: 'no-retries', workers: { maxReceiveCount: 0 } },
    'name-mismatch': { ...base, name: 'another-name' },
    fine: { ...base, name: 'fine' },
  };

  beforeAll(async () => {
    work = await mkdtemp(path.join(tmpdir(), 'sluice-bad-config-'));
    pipelines = path.join(work, 'pipelines');
    await mkdir(pipelines);
    for (const [name, config] of Object.entries(configs))
      await writeFile(path.join(pipelines, `${name}.json`), JSON.stringify(config));
    await writeFile(path.join(pipelines, 'not-json.json'), '{"name": "not-json", kind: embed}');
    input = path.join(work, 'in.jsonl');
    await writeFile(input, '{"id":"a","text":"hello"}\n');
  });
  afterAll(() => rm(work, { recursive: true, force: true }));

  const run = (pipeline: string, ...rest: string[]) =>
    sluice(
      'run',
      ...rest,
      '--pipeline',
      pipeline,
      '--pipelines',
      pipelines,
      '--home',
      path.join(work, 'home'),
    );

  it.each([
    ['a config with an unknown key', 'unknown-key', 'chunking.maxTokenz: unknown key'],
    ['a config with an unknown top-level key', 'unknown-top-key', 'batchSize: unknown key'],
    ['a config with a value out of range', 'too-small', 'chunking.maxTokens: Too small'],
    [
      'a config whose values contradict each other',
      'overlap',
      'overlapTokens must be smaller than maxTokens',
    ],
    [
      'a config with a value of the wrong type',
      'wrong-type',
      'input.maxRecordBytes: Invalid input: expected number',
    ],
    ['a config with an unknown input format', 'bad-format', 'input.format: Invalid option'],
    ['a config with an unknown pipeline kind', 'bad-kind', 'kind: Invalid discriminator value'],
    [
      'a config with an endpoint name SageMaker refuses',
      'bad-endpoint',
      'endpoint.name: must be a valid SageMaker endpoint name',
    ],
    ['a config that allows no delivery', 'no-retries', 'workers.maxReceiveCount: Too small'],
    ['a config whose name is not its file name', 'name-mismatch', 'must match the file name "name-mismatch"'],
    ['a config that is not JSON', 'not-json', 'not valid JSON'],
    ['a pipeline that has no config', 'nosuch', 'pipeline "nosuch" not found'],
    ['a pipeline name with spaces', 'Bad Name', 'pipeline name "Bad Name" is invalid'],
  ])('%s', async (_what, pipeline, reason) => {
    const result = await run(pipeline, input);
    expect(result.code).toBe(2);
    expect(result.err).toEqual([expect.stringContaining(reason)]);
    expect(result.out).toEqual([]);
  });

  it.each([
    [
      'a missing input path',
      [path.join('no', 'such', 'file.jsonl')],
      'input path not found: no/such/file.jsonl',
    ],
    ['no input path', [], 'give at least one input PATH'],
  ])('%s', async (_what, paths, reason) => {
    const result = await run('fine', ...(paths as string[]));
    expect(result.code).toBe(2);
    expect(result.err).toEqual([expect.stringContaining(reason)]);
  });

  it('an unknown flag', async () => {
    const result = await sluice('run', input, '--pipelin', 'fine');
    expect(result).toMatchObject({ code: 2, err: ["sluice run: Unknown option '--pipelin'"] });
  });

  it('starts no run for any of them', async () => {
    expect((await sluice('status', '--home', path.join(work, 'home'), '--json')).out).toEqual(['[]']);
  });
});
