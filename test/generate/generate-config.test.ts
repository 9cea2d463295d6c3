import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../shared/errors/errors.ts';
import { loadGenerateJob } from '../../shared/jobs/generate/generate-config.ts';

const source = 'pipelines/triage.json';

/** The smallest valid config, with overrides merged in. */
function config(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    kind: 'generate',
    model: 'meta-llama/Llama-3.1-8B-Instruct',
    prompt: { user: 'Triage: {{ text }}' },
    ...overrides,
  };
}

describe('loadGenerateJob', () => {
  it('fills the defaults: greedy, 512 tokens, no stop, 2 repairs, table generations', () => {
    const job = loadGenerateJob('triage', config(), source);
    expect(job.settings.generation).toEqual({ maxTokens: 512, temperature: 0, topP: 1, stop: [] });
    expect(job.settings.output).toEqual({ table: 'generations', maxRepairs: 2 });
    expect(job.outputSchema).toBeUndefined();
    expect(job.params).toBe(job.settings.generation);
  });

  it('compiles the templates once, ready to render', () => {
    const job = loadGenerateJob('triage', config({ prompt: { system: 'S', user: 'U {{ text }}' } }), source);
    expect(job.template.render({ text: 'x' })).toEqual({
      ok: true,
      messages: [
        { role: 'system', content: 'S' },
        { role: 'user', content: 'U x' },
      ],
    });
  });

  it('compiles output.jsonSchema when given', () => {
    const job = loadGenerateJob(
      'triage',
      config({
        output: {
          jsonSchema: { type: 'object', properties: { a: { type: 'number' } }, required: ['a'] },
          maxRepairs: 1,
        },
      }),
      source,
    );
    expect(job.settings.output.maxRepairs).toBe(1);
    expect(job.outputSchema?.check('{"a":1}').ok).toBe(true);
    expect(job.outputSchema?.check('{}').ok).toBe(false);
  });

  it('keeps generation parameters as given', () => {
    const generation = { maxTokens: 64, temperature: 0.7, topP: 0.9, stop: ['\n\n'], seed: 42 };
    expect(loadGenerateJob('triage', config({ generation }), source).params).toEqual(generation);
  });

  it.each([
    [{ generation: { maxTokenz: 5 } }, 'pipelines/triage.json: generation.maxTokenz: unknown key'],
    [{ generation: { temperature: 3 } }, /^pipelines\/triage\.json: generation\.temperature: /],
    [{ generation: { maxTokens: 0 } }, /^pipelines\/triage\.json: generation\.maxTokens: /],
    [{ model: '' }, /^pipelines\/triage\.json: model: /],
    [{ prompt: { system: 'S' } }, /^pipelines\/triage\.json: prompt\.user: /],
    [{ output: { maxRepairs: -1 } }, /^pipelines\/triage\.json: output\.maxRepairs: /],
    [{ output: { jsonSchema: 'object' } }, /^pipelines\/triage\.json: output\.jsonSchema: /],
  ])('refuses %j in one line naming the key', (overrides, message) => {
    expect(() => loadGenerateJob('triage', config(overrides), source)).toThrow(ConfigError);
    expect(() => loadGenerateJob('triage', config(overrides), source)).toThrow(message);
  });

  it('refuses a template syntax error at load, naming the pipeline and message', () => {
    expect(() => loadGenerateJob('triage', config({ prompt: { user: '{{ text' } }), source)).toThrow(
      /^pipeline "triage": prompt\.user: /,
    );
  });

  it('refuses a JSON Schema Ajv cannot compile', () => {
    expect(() =>
      loadGenerateJob('triage', config({ output: { jsonSchema: { type: 'objekt' } } }), source),
    ).toThrow(/^pipeline "triage": output\.jsonSchema: /);
  });
});
