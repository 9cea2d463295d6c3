import { describe, expect, it } from 'vitest';
import { type ChatMessage, promptFingerprint } from '../../shared/jobs/generate/chat-contract.ts';
import { loadGenerateJob } from '../../shared/jobs/generate/generate-config.ts';
import { type GenerateInput, generateRecord } from '../../shared/jobs/generate/generate-record.ts';
import type { ChatCall } from '../../shared/jobs/generate/structured-output.ts';

const job = loadGenerateJob(
  'triage',
  {
    kind: 'generate',
    model: 'llama',
    prompt: { system: 'Triage tickets.', user: 'Ticket: {{ text }}' },
    output: {
      jsonSchema: {
        type: 'object',
        properties: { priority: { enum: ['low', 'high'] } },
        required: ['priority'],
      },
      maxRepairs: 1,
    },
  },
  'pipelines/triage.json',
);

function ticket(values: Record<string, unknown>, id = 't-1'): GenerateInput {
  return { id, values, metadata: { team: 'core' }, line: 3, byteOffset: 120 };
}

/** A fake model answering from a list, counting calls. */
function answers(...contents: string[]) {
  const sent: ChatMessage[][] = [];
  const call: ChatCall = async (messages) => {
    sent.push([...messages]);
    const content = contents[Math.min(sent.length - 1, contents.length - 1)]!;
    return { content, finishReason: 'stop', usage: { promptTokens: 20, completionTokens: 4 } };
  };
  return { call, sent };
}

describe('generateRecord', () => {
  it('turns a valid answer into a generations row with the prompt fingerprint', async () => {
    const { call, sent } = answers('{"priority":"high"}');
    const outcome = await generateRecord(job, call, ticket({ text: 'app crashes' }), 'in/t.jsonl');
    expect(outcome).toEqual({
      kind: 'generated',
      row: {
        record_id: 't-1',
        prompt_sha256: promptFingerprint(sent[0]!, 'llama', job.params),
        model: 'llama',
        output: '{"priority":"high"}',
        output_json: '{"priority":"high"}',
        finish_reason: 'stop',
        prompt_tokens: 20,
        completion_tokens: 4,
        attempts: 1,
        source_key: 'in/t.jsonl',
        metadata: { team: 'core' },
      },
    });
    expect(sent[0]).toEqual([
      { role: 'system', content: 'Triage tickets.' },
      { role: 'user', content: 'Ticket: app crashes' },
    ]);
  });

  it('fingerprints the rendered prompt, not the repairs', async () => {
    const first = answers('{"priority":"high"}');
    const repaired = answers('nope', '{"priority":"high"}');
    const a = await generateRecord(job, first.call, ticket({ text: 'x' }), 'k');
    const b = await generateRecord(job, repaired.call, ticket({ text: 'x' }), 'k');
    expect(a.kind === 'generated' && b.kind === 'generated').toBe(true);
    if (a.kind === 'generated' && b.kind === 'generated') {
      expect(b.row.prompt_sha256).toBe(a.row.prompt_sha256);
      expect(b.row.attempts).toBe(2);
      expect(b.row.prompt_tokens).toBe(40);
    }
  });

  it('rejects a record with a missing field without calling the model', async () => {
    const { call, sent } = answers('{"priority":"high"}');
    const outcome = await generateRecord(job, call, ticket({ body: 'x' }), 'in/t.jsonl');
    expect(sent).toHaveLength(0);
    expect(outcome).toEqual({
      kind: 'rejected',
      reject: {
        source_key: 'in/t.jsonl',
        byte_offset: 120,
        line: 3,
        reason: 'missing template field "text"',
        excerpt: 't-1',
      },
      attempts: 0,
      promptTokens: 0,
      completionTokens: 0,
    });
  });

  it('rejects after the repairs with the last error and an excerpt of the last answer', async () => {
    const { call, sent } = answers(`{"priority":"urgent","note":"${'x'.repeat(500)}"}`);
    const outcome = await generateRecord(job, call, ticket({ text: 'x' }), 'in/t.jsonl');
    expect(sent).toHaveLength(2);
    expect(outcome.kind).toBe('rejected');
    if (outcome.kind === 'rejected') {
      expect(outcome.reject.reason).toMatch(/^invalid JSON output after 2 attempts: \/priority: /);
      expect(outcome.reject.excerpt).toHaveLength(200);
      expect(outcome).toMatchObject({ attempts: 2, promptTokens: 40, completionTokens: 8 });
    }
  });

  it('lets an endpoint failure propagate instead of rejecting the record', async () => {
    const call: ChatCall = async () => {
      throw new Error('endpoint unavailable');
    };
    await expect(generateRecord(job, call, ticket({ text: 'x' }), 'k')).rejects.toThrow(
      'endpoint unavailable',
    );
  });
});
