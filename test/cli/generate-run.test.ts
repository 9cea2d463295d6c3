import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RulesChatBackend } from '../../cli/model-server/rules-chat-backend.ts';
import { type ModelServer, startModelServer } from '../../cli/model-server/server.ts';
import { sluice } from '../support/cli.ts';
import { runGenerateTriage, SAMPLE_TICKETS } from '../support/generate-run.ts';
import { useScratchFolder } from '../support/scratch-folder.ts';

const SUBJECTS = ['Checkout is down', 'Charged twice', 'Cannot log in', 'Export question', 'Slow dashboard'];

function tickets(count: number, edited: ReadonlySet<number> = new Set()): string {
  const lines: string[] = [];
  for (let i = 0; i < count; i++) {
    const text = `Ticket body number ${i} about ${SUBJECTS[i % SUBJECTS.length]!.toLowerCase()}`;
    lines.push(
      JSON.stringify({
        id: `T-${i}`,
        product: 'Sluice Cloud',
        customer_tier: i % 3 === 0 ? 'enterprise' : 'free',
        subject: SUBJECTS[i % SUBJECTS.length],
        text: edited.has(i) ? `${text}, and it happened again today` : text,
      }),
    );
  }
  return `${lines.join('\n')}\n`;
}

describe('sluice run with a generate pipeline (pipelines/generate-triage.json)', () => {
  const work = useScratchFolder('sluice-generate-');

  it('answers the sample tickets into generations, rejects the one the template cannot fill', async () => {
    const sample = path.join(work.dir, 'sample');
    const run = await runGenerateTriage({ home: sample });
    expect(run.code).toBe(0);
    const summary = run.json();
    expect(summary).toMatchObject({
      status: 'succeeded',
      counts: { records: 48, rejected: 1, generated: 47, cached: 0 },
    });
    expect(summary.stats.promptTokens).toBeGreaterThan(47 * 30);
    expect(summary.stats.completionTokens).toBeGreaterThan(47 * 10);

    const rows = await sluice(
      'query',
      `select record_id, model, output_json, finish_reason, attempts, metadata from generations where record_id in ('T-1001', 'T-1010') order by record_id`,
      '--home',
      sample,
      '--json',
    );
    expect(rows.json()).toEqual([
      {
        record_id: 'T-1001',
        model: 'sluice-rules-chat-v1',
        output_json:
          '{"priority":"normal","category":"bug","summary":"Sync fails with error E1043 on two of our laptops. Other machines"}',
        finish_reason: 'stop',
        attempts: 1,
        metadata: '{"customer_tier":"enterprise"}',
      },
      {
        record_id: 'T-1010',
        model: 'sluice-rules-chat-v1',
        output_json: expect.stringMatching(
          /^\{"priority":"(low|normal|high)","category":"[a-z]+","summary":/,
        ),
        finish_reason: 'stop',
        attempts: 1,
        metadata: expect.any(String),
      },
    ]);
    const rejects = await sluice('query', 'select line, reason from rejects', '--home', sample, '--json');
    expect(rejects.json()).toEqual([{ line: 17, reason: 'missing template field "product"' }]);
  });

  it('re-runs after editing 5% of the records and asks only those again', async () => {
    const home = path.join(work.dir, 'home');
    const input = path.join(work.dir, 'tickets.jsonl');
    await writeFile(input, tickets(200));
    const first = await runGenerateTriage({ home, input });
    expect(first.json()).toMatchObject({
      status: 'succeeded',
      counts: { records: 200, generated: 200, cached: 0 },
    });

    const edited = new Set(Array.from({ length: 10 }, (_, i) => i * 20 + 3));
    await writeFile(input, tickets(200, edited));
    const second = await runGenerateTriage({ home, input });
    const summary = second.json();
    expect(summary).toMatchObject({
      status: 'succeeded',
      counts: { records: 200, generated: 10, cached: 190 },
    });
    expect(second.out.join('\n')).not.toContain('rows scored');

    // The carried rows answer the same prompts as the first run's, with no call made.
    const carried = await sluice(
      'query',
      `select count(*) as n from generations g join generations f on g.prompt_sha256 = f.prompt_sha256 and g.output = f.output where g.run_id = '${summary.runId}' and f.run_id = '${first.json().runId}' and g.attempts = 0`,
      '--home',
      home,
      '--json',
    );
    expect(carried.json()).toEqual([{ n: 190 }]);
  });
});

describe('sluice run --endpoint-url with a generate pipeline', () => {
  const work = useScratchFolder('sluice-generate-url-');
  let server: ModelServer;

  beforeAll(async () => {
    server = await startModelServer({ backend: new RulesChatBackend() });
  });
  afterAll(() => server?.close());

  it('refuses --model-dir with a line that says where an LLM comes from', async () => {
    const run = await sluice(
      'run',
      SAMPLE_TICKETS,
      '--pipeline',
      'generate-triage',
      '--home',
      work.dir,
      '--model-dir',
      work.dir,
    );
    expect(run.code).toBe(2);
    expect(run.err.join('\n')).toContain(
      '--model-dir is for embedding pipelines; generate-triage asks an LLM (--endpoint-url URL for an OpenAI-compatible server)',
    );
  });

  it('estimates its cost with sluice cost (test/cost/cost-cli-kinds.test.ts checks the figures)', async () => {
    const cost = await sluice('cost', SAMPLE_TICKETS, '--pipeline', 'generate-triage');
    expect(cost.code).toBe(0);
    expect(cost.out.join('\n')).toContain('at Bedrock batch inference');
    expect(cost.out.join('\n')).not.toContain('undefined');
  });

  it('posts to the server /v1/chat/completions and records the configured model', async () => {
    const before = server.stats().requests;
    const run = await runGenerateTriage({ home: work.dir }, '--endpoint-url', `${server.url}/v1`);
    expect(run.code).toBe(0);
    expect(run.json()).toMatchObject({ counts: { records: 48, generated: 47, rejected: 1 } });
    expect(server.stats().requests - before).toBe(47);
    const config = JSON.parse(await readFile('pipelines/generate-triage.json', 'utf8'));
    const models = await sluice(
      'query',
      'select distinct model from generations',
      '--home',
      work.dir,
      '--json',
    );
    expect(models.json()).toEqual([{ model: config.model }]);
  });
});
