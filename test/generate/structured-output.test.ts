import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../shared/errors/errors.ts';
import type { ChatAnswer, ChatMessage } from '../../shared/jobs/generate/chat-contract.ts';
import {
  type ChatCall,
  compileOutputSchema,
  generateWithRepairs,
  repairMessage,
  stripJsonFence,
} from '../../shared/jobs/generate/structured-output.ts';

const ticketSchema = {
  type: 'object',
  properties: {
    priority: { enum: ['low', 'normal', 'high'] },
    product: { type: 'string' },
    reportedAt: { type: 'string', format: 'date' },
  },
  required: ['priority', 'product'],
  additionalProperties: false,
};

const valid = '{"priority":"high","product":"app"}';
const prompt: ChatMessage[] = [{ role: 'user', content: 'Triage: app crashes' }];

/** A fake model that returns the scripted answers in order and records what it was sent. */
function scriptedCall(answers: ReadonlyArray<string | Partial<ChatAnswer>>) {
  const sent: ChatMessage[][] = [];
  const call: ChatCall = async (messages) => {
    sent.push([...messages]);
    const next = answers[Math.min(sent.length - 1, answers.length - 1)]!;
    const answer = typeof next === 'string' ? { content: next } : next;
    return {
      content: answer.content ?? '',
      finishReason: answer.finishReason ?? 'stop',
      usage: answer.usage ?? { promptTokens: 10, completionTokens: 5 },
    };
  };
  return { call, sent };
}

describe('compileOutputSchema', () => {
  const schema = compileOutputSchema('triage', ticketSchema);

  it('returns the parsed object and its JSON text for a valid answer', () => {
    expect(schema.check(valid)).toEqual({
      ok: true,
      value: { priority: 'high', product: 'app' },
      json: valid,
    });
  });

  it('strips a ```json fence around the answer', () => {
    expect(schema.check(`\`\`\`json\n${valid}\n\`\`\``)).toMatchObject({ ok: true, json: valid });
    expect(schema.check(`\`\`\`\n${valid}\n\`\`\``)).toMatchObject({ ok: true });
  });

  it('quotes the errors in a short readable form', () => {
    const checked = schema.check('{"priority":"urgent","colour":"red"}');
    expect(checked.ok).toBe(false);
    const error = !checked.ok ? checked.error : '';
    expect(error).toContain(
      '/priority: must be equal to one of the allowed values ("low", "normal", "high")',
    );
    expect(error).toContain("(root): must have required property 'product'");
    expect(error).toContain('(root): must NOT have additional properties ("colour")');
  });

  it('checks formats', () => {
    const checked = schema.check('{"priority":"low","product":"a","reportedAt":"yesterday"}');
    expect(checked).toEqual({ ok: false, error: '/reportedAt: must match format "date"' });
  });

  it('says an answer that is not JSON is not JSON', () => {
    const checked = schema.check('The priority is high.');
    expect(checked.ok).toBe(false);
    expect(!checked.ok && checked.error).toMatch(/^answer is not JSON \(/);
  });

  it('refuses a schema Ajv strict mode rejects, in one line naming the pipeline', () => {
    const compile = () => compileOutputSchema('triage', { type: 'object', propertiez: {} });
    expect(compile).toThrow(ConfigError);
    expect(compile).toThrow(
      /^pipeline "triage": output\.jsonSchema: strict mode: unknown keyword: "propertiez"/,
    );
  });
});

describe('stripJsonFence', () => {
  it('leaves an unfenced answer as it is (trimmed)', () => {
    expect(stripJsonFence('  {"a":1}\n')).toBe('{"a":1}');
  });

  it('does not strip a fence that is only part of the answer', () => {
    const answer = 'Here you go:\n```json\n{"a":1}\n```';
    expect(stripJsonFence(answer)).toBe(answer);
  });
  it('reads any JSON value the same with or without a fence, however it is indented', () => {
    const anything = compileOutputSchema('p', {});
    fc.assert(
      fc.property(
        fc.jsonValue(),
        fc.constantFrom(undefined, 2),
        fc.constantFrom('json', ''),
        (value, indent, tag) => {
          const text = JSON.stringify(value, null, indent);
          const plain = anything.check(text);
          expect(plain.ok).toBe(true);
          expect(anything.check(`\`\`\`${tag}\n${text}\n\`\`\``)).toEqual(plain);
        },
      ),
    );
  });
});

describe('repairMessage', () => {
  it('is a user message quoting the errors and the schema', () => {
    const message = repairMessage('/priority: must be string', { type: 'object' });
    expect(message.role).toBe('user');
    expect(message.content).toContain('/priority: must be string');
    expect(message.content).toContain('{"type":"object"}');
  });
});

describe('generateWithRepairs', () => {
  const schema = compileOutputSchema('triage', ticketSchema);

  it('takes a valid first answer without repairs', async () => {
    const { call, sent } = scriptedCall([valid]);
    const outcome = await generateWithRepairs(call, prompt, schema, 2);
    expect(outcome).toEqual({
      ok: true,
      output: valid,
      outputJson: valid,
      attempts: 1,
      promptTokens: 10,
      completionTokens: 5,
      finishReason: 'stop',
    });
    expect(sent).toEqual([prompt]);
  });

  it('repairs an invalid answer, sending the bad answer and the errors back', async () => {
    const bad = '{"priority":"urgent","product":"app"}';
    const { call, sent } = scriptedCall([bad, valid]);
    const outcome = await generateWithRepairs(call, prompt, schema, 2);
    expect(outcome).toMatchObject({
      ok: true,
      outputJson: valid,
      attempts: 2,
      promptTokens: 20,
      completionTokens: 10,
    });
    expect(sent[1]).toHaveLength(3);
    expect(sent[1]![1]).toEqual({ role: 'assistant', content: bad });
    expect(sent[1]![2]!.role).toBe('user');
    expect(sent[1]![2]!.content).toContain('/priority: must be equal to one of the allowed values');
  });

  it('rejects with the last error after maxRepairs repairs', async () => {
    const { call, sent } = scriptedCall(['{"priority":"urgent","product":"app"}']);
    const outcome = await generateWithRepairs(call, prompt, schema, 2);
    expect(sent).toHaveLength(3);
    expect(outcome).toMatchObject({
      ok: false,
      attempts: 3,
      reason: expect.stringMatching(
        /^invalid JSON output after 3 attempts: \/priority: must be equal to one of the allowed values/,
      ),
    });
  });

  it('rejects an answer that is never JSON, keeping the last text', async () => {
    const { call } = scriptedCall(['I think it is high priority.']);
    const outcome = await generateWithRepairs(call, prompt, schema, 1);
    expect(outcome.ok).toBe(false);
    expect(outcome).toMatchObject({ attempts: 2, lastOutput: 'I think it is high priority.' });
    expect(!outcome.ok && outcome.reason).toMatch(
      /^invalid JSON output after 2 attempts: answer is not JSON/,
    );
  });

  it('with maxRepairs 0 asks once', async () => {
    const { call, sent } = scriptedCall(['nope', valid]);
    const outcome = await generateWithRepairs(call, prompt, schema, 0);
    expect(sent).toHaveLength(1);
    expect(outcome).toMatchObject({ ok: false, attempts: 1 });
  });

  it('says when an invalid answer was cut at max_tokens', async () => {
    const { call } = scriptedCall([{ content: '{"priority":"hi', finishReason: 'length' }]);
    const outcome = await generateWithRepairs(call, prompt, schema, 0);
    expect(!outcome.ok && outcome.reason).toMatch(
      /after 1 attempt: answer cut at max_tokens; answer is not JSON/,
    );
  });

  it('without a schema returns the first answer as text with outputJson null', async () => {
    const { call, sent } = scriptedCall(['not json, and that is fine']);
    const outcome = await generateWithRepairs(call, prompt, undefined, 2);
    expect(outcome).toMatchObject({
      ok: true,
      output: 'not json, and that is fine',
      outputJson: null,
      attempts: 1,
    });
    expect(sent).toHaveLength(1);
  });

  it('lets an endpoint error propagate to the caller', async () => {
    const call: ChatCall = async () => {
      throw new Error('throttled');
    };
    await expect(generateWithRepairs(call, prompt, schema, 2)).rejects.toThrow('throttled');
  });
});
