import { App, Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import * as s3 from 'aws-cdk-lib/aws-s3';
import { beforeAll, describe, expect, it } from 'vitest';
import { QueryLayer } from '../../infra/constructs/query-layer.ts';
import { TABLE_COLUMNS } from '../../shared/output/parquet-tables.ts';
import { CURRENT_VIEWS } from '../../shared/views/current-views.ts';

type Cfn = Record<string, any>;

/** The JSON Athena keeps in a view's original text: `/* Presto View: <base64> *\/`. */
function prestoDefinition(text: string): Cfn {
  const match = /^\/\* Presto View: ([A-Za-z0-9+/=]+) \*\/$/.exec(text);
  if (!match) throw new Error(`not a Presto view text: ${text.slice(0, 60)}`);
  return JSON.parse(Buffer.from(match[1]!, 'base64').toString('utf8'));
}

describe('CurrentViews (Athena views in the Glue catalog)', () => {
  let template: Template;
  const views = () =>
    Object.entries(template.findResources('AWS::Glue::Table')).filter(
      ([, t]) => t.Properties.TableInput.TableType === 'VIRTUAL_VIEW',
    );
  const view = (name: string): [string, Cfn] => {
    const found = views().find(([, t]) => t.Properties.TableInput.Name === name);
    if (!found) throw new Error(`no Glue view ${name}`);
    return found;
  };

  beforeAll(() => {
    const stack = new Stack(new App(), 'Views', { env: { account: '123456789012', region: 'eu-west-1' } });
    new QueryLayer(stack, 'QueryLayer', {
      bucket: new s3.Bucket(stack, 'Bucket'),
      pipelineNames: ['docs'],
      databaseName: 'sluice_dev',
    });
    template = Template.fromStack(stack);
  });

  it('defines embeddings_current and scores_current in the results database', () => {
    expect(
      views()
        .map(([, t]) => t.Properties.TableInput.Name)
        .sort(),
    ).toEqual(['embeddings_current', 'scores_current']);
    for (const [, t] of views()) {
      expect(t.Properties.DatabaseName).toBe('sluice_dev');
      expect(t.Properties.CatalogId).toBe('123456789012');
      expect(t.Properties.TableInput.Parameters).toEqual({ presto_view: 'true', comment: 'Presto View' });
      expect(t.Properties.TableInput.ViewExpandedText).toBe('/* Presto View */');
    }
  });

  it('stores the same SQL sluice query runs in DuckDB, resolved in the results database', () => {
    for (const current of CURRENT_VIEWS) {
      const [, t] = view(current.name);
      const definition = prestoDefinition(t.Properties.TableInput.ViewOriginalText);
      expect(definition).toEqual({
        originalSql: current.sql,
        catalog: 'awsdatacatalog',
        schema: 'sluice_dev',
        columns: current.columns.map((c) => ({ name: c.name, type: c.trinoType })),
      });
    }
  });

  it('lists the columns of the table each view reads, with the partition keys last, in Hive and Trino types', () => {
    const [, embeddings] = view('embeddings_current');
    const columns = embeddings.Properties.TableInput.StorageDescriptor.Columns as {
      Name: string;
      Type: string;
    }[];
    expect(columns.map((c) => c.Name)).toEqual([
      ...TABLE_COLUMNS.embeddings.map((c) => c.name),
      'pipeline',
      'run_date',
    ]);
    expect(columns.find((c) => c.Name === 'embedding')?.Type).toBe('array<float>');
    const definition = prestoDefinition(embeddings.Properties.TableInput.ViewOriginalText);
    expect(definition.columns.find((c: { name: string }) => c.name === 'embedding').type).toBe('array(real)');
    expect(definition.columns.find((c: { name: string }) => c.name === 'chunk_index').type).toBe('integer');
    const [, scores] = view('scores_current');
    expect(
      (scores.Properties.TableInput.StorageDescriptor.Columns as { Name: string }[]).map((c) => c.Name),
    ).toEqual([...TABLE_COLUMNS.scores.map((c) => c.name), 'pipeline', 'run_date']);
  });

  it('is created after the tables it reads', () => {
    const tables = Object.entries(template.findResources('AWS::Glue::Table'))
      .filter(([, t]) => t.Properties.TableInput.TableType === 'EXTERNAL_TABLE')
      .map(([id]) => id);
    for (const name of ['embeddings_current', 'scores_current']) {
      const [, t] = view(name);
      expect([...t.DependsOn].sort()).toEqual(expect.arrayContaining(tables));
    }
  });
});
