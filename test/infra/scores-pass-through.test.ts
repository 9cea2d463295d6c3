import { readFileSync } from 'node:fs';
import { App, Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import * as s3 from 'aws-cdk-lib/aws-s3';
import { describe, expect, it } from 'vitest';
import { passThroughGlueColumns, QueryLayer } from '../../infra/constructs/query-layer.ts';
import { parsePipelineConfig } from '../../shared/config/pipeline-config.ts';

const creditRisk = JSON.parse(readFileSync('pipelines/credit-risk.json', 'utf8'));
const scorePipeline = (name: string, passThrough: unknown[]) =>
  parsePipelineConfig({ ...creditRisk, name, output: { passThrough } });

describe('the scores Glue table with output.passThrough', () => {
  it('declares each pass-through column once, after the table own columns, typed as the writer writes it', () => {
    const pipelines = [
      scorePipeline('a', ['region', { column: 'defaulted', type: 'bigint' }]),
      scorePipeline('b', [
        'region',
        { column: 'income', type: 'double' },
        { column: 'vip', type: 'boolean' },
      ]),
    ];
    const stack = new Stack(new App(), 'T');
    new QueryLayer(stack, 'Q', {
      bucket: new s3.Bucket(stack, 'B'),
      pipelineNames: ['a', 'b'],
      scoresPassThrough: passThroughGlueColumns(pipelines),
    });
    const tables = Template.fromStack(stack).findResources('AWS::Glue::Table');
    const scores = Object.values(tables).find((t) => t.Properties.TableInput.Name === 'scores')!;
    const columns = scores.Properties.TableInput.StorageDescriptor.Columns as {
      Name: string;
      Type: string;
    }[];
    expect(columns.slice(-4).map((c) => [c.Name, c.Type])).toEqual([
      ['region', 'string'],
      ['defaulted', 'bigint'],
      ['income', 'double'],
      ['vip', 'boolean'],
    ]);
    expect(columns.map((c) => c.Name)).toContain('reasons');
    const rejects = Object.values(tables).find((t) => t.Properties.TableInput.Name === 'rejects')!;
    const rejectColumns = rejects.Properties.TableInput.StorageDescriptor.Columns as { Name: string }[];
    expect(rejectColumns.map((c) => c.Name)).not.toContain('region');
  });

  it('refuses a column two pipelines type differently, with one line', () => {
    expect(() =>
      passThroughGlueColumns([
        scorePipeline('a', [{ column: 'income', type: 'double' }]),
        scorePipeline('b', ['income']),
      ]),
    ).toThrow(
      'output.passThrough column income is double in pipeline a and string in pipeline b: the scores table has one type per column',
    );
  });
});
