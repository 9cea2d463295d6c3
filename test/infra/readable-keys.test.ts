import { Template } from 'aws-cdk-lib/assertions';
import { beforeAll, describe, expect, it } from 'vitest';
import { readableKeys } from '../../infra/readable-keys.ts';
import type { EmbedPipelineConfig } from '../../shared/config/pipeline-config.ts';
import { buildStack, loadDocsPipeline } from './sluice-stack-fixture.ts';

let docs: EmbedPipelineConfig;

beforeAll(async () => {
  docs = await loadDocsPipeline();
});

const withTokenizer = (key: string, configKey?: string): EmbedPipelineConfig => ({
  ...docs,
  chunking: { ...docs.chunking, tokenizer: { key, ...(configKey === undefined ? {} : { configKey }) } },
});

describe('readableKeys (synth guards for keys a config names)', () => {
  it('refuses a scheduled prefix outside incoming/ and datasets/, naming the pipeline, the field and the prefixes', () => {
    const pipeline = { ...docs, schedule: { ...docs.schedule!, prefix: 'exports/docs/' } };
    expect(() => readableKeys([pipeline])).toThrow(
      'pipeline docs: schedule.prefix "exports/docs/" must be under incoming/ or datasets/: plan and work read sources only there',
    );
  });

  it('refuses a tokenizer outside models/, naming the field', () => {
    expect(() => readableKeys([withTokenizer('tokenizers/bge/tokenizer.json')])).toThrow(
      'pipeline docs: chunking.tokenizer.key "tokenizers/bge/tokenizer.json" must be under models/: the work function may read model files only there',
    );
    expect(() =>
      readableKeys([withTokenizer('models/bge/tokenizer.json', 'incoming/docs/tokenizer_config.json')]),
    ).toThrow(
      'pipeline docs: chunking.tokenizer.configKey "incoming/docs/tokenizer_config.json" must be under models/',
    );
  });

  it('accepts all of datasets/ as a scheduled prefix, but not models/ as a tokenizer key', () => {
    expect(() =>
      readableKeys([{ ...docs, schedule: { ...docs.schedule!, prefix: 'datasets/' } }]),
    ).not.toThrow();
    expect(() => readableKeys([withTokenizer('models/')])).toThrow('chunking.tokenizer.key "models/"');
  });

  it('returns the tokenizer keys to grant one by one', () => {
    expect(
      readableKeys([withTokenizer('models/bge/tokenizer.json', 'models/bge/tokenizer_config.json')]),
    ).toEqual({
      tokenizers: ['models/bge/tokenizer.json', 'models/bge/tokenizer_config.json'],
    });
  });

  it('fails synth of a stack whose tokenizer the work role could not read', () => {
    expect(() => buildStack({ pipelines: [withTokenizer('tokenizer.json')] })).toThrow(
      /^pipeline docs: chunking\.tokenizer\.key "tokenizer\.json" must be under models\//,
    );
  });

  // Synthesizes a second stack (bundling four fixture handlers): slow on a busy machine.
  it('lets work read exactly the tokenizer objects of an embed-only stack, and no other model file', {
    timeout: 120_000,
  }, () => {
    const { stack } = buildStack({ pipelines: [withTokenizer('models/bge/tokenizer.json')] });
    const policy = stack.functions.work.role.node.findChild('DefaultPolicy').node.defaultChild as never;
    const statements = Template.fromStack(stack).toJSON().Resources[stack.getLogicalId(policy)].Properties
      .PolicyDocument.Statement as { Action: string | string[]; Resource: unknown }[];
    const models = statements.filter((s) => JSON.stringify(s.Resource).includes('/models/'));
    expect(models).toHaveLength(1);
    expect(models[0]!.Action).toBe('s3:GetObject');
    expect(JSON.stringify(models[0]!.Resource)).toContain('"/models/bge/tokenizer.json"');
    expect(JSON.stringify(models[0]!.Resource)).not.toContain('*');
  });
});
