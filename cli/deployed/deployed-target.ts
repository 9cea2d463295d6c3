import { DEFAULT_STACK_NAME, deploymentNames } from '../../infra/deployment-names.ts';
import { UsageError } from '../usage.ts';

/**
 * Which deployed stack a `--deployed` command talks to. Names that are unique per account
 * and region (the Glue database, the Athena workgroup) derive from the stack name as the
 * stack itself derives them (infra/deployment-names.ts), so a user names only the stack.
 * The runs table has a name CloudFormation generates, so it is given (the stack's
 * `RunsTableName` output). Credentials and region come from the usual AWS environment
 * (`AWS_PROFILE`, `AWS_REGION`, ...), as for the AWS CLI.
 */
export interface DeployedTarget {
  readonly stackName: string;
  readonly workGroup: string;
  readonly database: string;
  /** Undefined when neither `--runs-table` nor `SLUICE_RUNS_TABLE` names it. */
  readonly runsTable: string | undefined;
}

/** The flags every `--deployed` command takes. */
export const DEPLOYED_OPTIONS = {
  deployed: { type: 'boolean', default: false },
  stack: { type: 'string' },
  'runs-table': { type: 'string' },
} as const;

/** Environment variables read when the flags are absent. */
export const STACK_ENV = 'SLUICE_STACK';
export const RUNS_TABLE_ENV = 'SLUICE_RUNS_TABLE';

/**
 * The target from `--stack` (else `SLUICE_STACK`, else `Sluice`, the app's default) and
 * `--runs-table` (else `SLUICE_RUNS_TABLE`). A stack name the app could not deploy is a
 * one-line usage error.
 */
export function deployedTarget(
  flags: { readonly stack?: string; readonly 'runs-table'?: string },
  env: NodeJS.ProcessEnv = process.env,
): DeployedTarget {
  const stackName = flags.stack ?? nonEmpty(env[STACK_ENV]) ?? DEFAULT_STACK_NAME;
  let names: ReturnType<typeof deploymentNames>;
  try {
    names = deploymentNames(stackName);
  } catch (error) {
    throw new UsageError(`--stack: ${(error as Error).message.split('\n')[0]}`);
  }
  return {
    stackName,
    workGroup: names.workGroup,
    database: names.glueDatabase,
    runsTable: flags['runs-table'] ?? nonEmpty(env[RUNS_TABLE_ENV]),
  };
}

/** The runs table, or one line saying how to name it. */
export function requireRunsTable(target: DeployedTarget): string {
  if (target.runsTable) return target.runsTable;
  throw new UsageError(
    `--deployed needs the stack's runs table: --runs-table NAME or ${RUNS_TABLE_ENV}=NAME (the stack's RunsTableName output: aws cloudformation describe-stacks --stack-name ${target.stackName} --query "Stacks[0].Outputs[?OutputKey=='RunsTableName'].OutputValue" --output text)`,
  );
}

/** Flags that only mean something for one side refused on the other, so a mix is one line, not a surprise. */
export function refuseMixedFlags(
  values: {
    readonly deployed?: boolean;
    readonly home?: string;
    readonly stack?: string;
    readonly 'runs-table'?: string;
  },
  deployedOnly: readonly string[] = [],
): void {
  if (values.deployed) {
    if (values.home !== undefined)
      throw new UsageError('--home is for local results; --deployed reads the stack');
    return;
  }
  const given = ['stack', 'runs-table', ...deployedOnly].filter(
    (flag) => (values as Record<string, unknown>)[flag] !== undefined,
  );
  if (given.length > 0) throw new UsageError(`--${given[0]} needs --deployed`);
}

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value.trim() === '' ? undefined : value.trim();
}
