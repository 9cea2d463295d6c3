import { Stack, Token } from 'aws-cdk-lib';
import * as glue from 'aws-cdk-lib/aws-glue';
import { Construct } from 'constructs';
import { CURRENT_VIEWS, type CurrentView } from '../../shared/views/current-views.ts';

export interface CurrentViewsProps {
  /** The Glue database the result tables are in; the views resolve their tables there. */
  readonly databaseName: string;
  /** Created first: the database and the tables the views read. */
  readonly dependsOn: readonly Construct[];
  /** @default the stack's account */
  readonly catalogId?: string;
}

/**
 * What Athena writes into Glue for `CREATE VIEW`: a `VIRTUAL_VIEW` table whose original text
 * is `/* Presto View: <base64 of the view's JSON> *\/`, the JSON holding the SQL, the catalog
 * and schema its unqualified names resolve in, and the columns with Trino types; the
 * storage descriptor lists the same columns with Hive types.
 */
export function prestoViewText(view: CurrentView, databaseName: string): string {
  const definition = {
    originalSql: view.sql,
    catalog: 'awsdatacatalog',
    schema: databaseName,
    columns: view.columns.map((c) => ({ name: c.name, type: c.trinoType })),
  };
  return `/* Presto View: ${Buffer.from(JSON.stringify(definition), 'utf8').toString('base64')} */`;
}

/**
 * The current-state views (`embeddings_current`, `scores_current`) as Athena views in the
 * Glue catalog, from the same SQL `sluice query` creates in DuckDB (shared/views), so the
 * deployed and local answers to "the corpus as it is now" are one definition. Defined in
 * CloudFormation rather than by a `CREATE VIEW` at deploy time: no custom resource, no
 * Athena query run by the deployment, and a change of the SQL is a stack update.
 */
export class CurrentViews extends Construct {
  readonly views: ReadonlyMap<CurrentView['name'], glue.CfnTable>;

  constructor(scope: Construct, id: string, props: CurrentViewsProps) {
    super(scope, id);
    if (Token.isUnresolved(props.databaseName))
      throw new Error('CurrentViews needs the database name as a plain string: it is written into each view');
    const catalogId = props.catalogId ?? Stack.of(this).account;
    const views = new Map<CurrentView['name'], glue.CfnTable>();
    for (const view of CURRENT_VIEWS) {
      const table = new glue.CfnTable(this, `View-${view.name}`, {
        catalogId,
        databaseName: props.databaseName,
        tableInput: {
          name: view.name,
          description: view.description,
          tableType: 'VIRTUAL_VIEW',
          parameters: { presto_view: 'true', comment: 'Presto View' },
          viewOriginalText: prestoViewText(view, props.databaseName),
          viewExpandedText: '/* Presto View */',
          storageDescriptor: {
            columns: view.columns.map((c) => ({ name: c.name, type: c.hiveType })),
            serdeInfo: {},
          },
        },
      });
      for (const dependency of props.dependsOn) table.node.addDependency(dependency);
      views.set(view.name, table);
    }
    this.views = views;
  }
}
