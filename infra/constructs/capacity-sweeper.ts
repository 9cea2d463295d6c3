import { Duration, Stack } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import type * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as scheduler from 'aws-cdk-lib/aws-scheduler';
import { Construct } from 'constructs';
import type { FailureMetric } from './alarms.ts';
import {
  grantCapacityControl,
  grantRunsTable,
  grantWorkerScaling,
  type RunsTableAction,
} from './functions.ts';
import { SluiceFunction } from './sluice-function.ts';

/** How often the sweeper runs: the longest a leaked copy bills past its cooldown, give or take a minute. */
export const SWEEP_SCHEDULE = 'rate(1 minute)';

/**
 * The runs table operations of a sweep (shared/adapters/aws/dynamo-capacity-leases.ts and
 * the run store): list a component's leases (Query) and its state (GetItem), read each
 * leasing run and count its finished units (GetItem, Query), mark progress or readiness and
 * release a leaked lease (UpdateItem, conditional), and prune released ones (DeleteItem).
 */
export const SWEEPER_TABLE_ACTIONS: readonly RunsTableAction[] = [
  'dynamodb:GetItem',
  'dynamodb:Query',
  'dynamodb:UpdateItem',
  'dynamodb:DeleteItem',
];

export interface CapacitySweeperProps {
  /** Entry file of the handler (exports `handler`), `functions/capacity-sweeper.ts`. */
  readonly entry: string;
  /** The environment every Sluice function shares (`Functions.environment`). */
  readonly environment: Readonly<Record<string, string>>;
  /** The pipelines file every function carries (`Functions.pipelinesFile`). */
  readonly pipelinesFile: { readonly name: string; readonly content: string };
  readonly serviceName: string;
  readonly table: dynamodb.ITable;
  /** ARNs of exactly the stack's inference components; the sweeper may touch no other. */
  readonly componentArns: readonly string[];
  /**
   * The work queue's event source mapping (`Functions.workEventSource`): the sweeper sets its
   * `MaximumConcurrency` to what the live leases need, down to 2 when none is live.
   */
  readonly workEventSource: { readonly id: string; readonly arn: string };
}

/**
 * The safety net of run-scoped capacity (issue 14): a function that EventBridge Scheduler
 * runs every minute, which releases leases whose run is over or leaked, and sets each of the
 * stack's inference components to the copies its live leases hold (0 once the last lease is
 * released and the cooldown is over), so a crashed finalize never leaves an instance
 * billing. Its role may describe and update exactly the stack's inference components and
 * read and write the runs table's lease items. `failureMetrics` are its alarms: capacity
 * up with no run for 3 minutes in a row, and the sweeper failing.
 */
export class CapacitySweeper extends Construct {
  readonly function: SluiceFunction;
  readonly schedule: scheduler.CfnSchedule;
  readonly schedulerRole: iam.Role;
  /** For the stack's `Alarms`: what each alarm watches and what to do. */
  readonly failureMetrics: readonly FailureMetric[];

  constructor(scope: Construct, id: string, props: CapacitySweeperProps) {
    super(scope, id);
    this.function = new SluiceFunction(this, 'Sweeper', {
      entry: props.entry,
      description:
        'Sluice capacity sweeper: sets inference component copies to what live run leases hold, 0 after the cooldown',
      // A sweep is a few control-plane and DynamoDB calls per component; it must end before the next tick.
      timeout: Duration.seconds(50),
      memorySize: 512,
      environment: { ...props.environment },
      serviceName: props.serviceName,
      bundledFiles: { [props.pipelinesFile.name]: props.pipelinesFile.content },
    });
    // No reserved concurrency of 1: it would fail deploys in accounts at the minimum
    // unreserved concurrency. Overlapping sweeps are safe: every lease change is conditional.
    grantCapacityControl(this.function, props.componentArns);
    grantRunsTable(this.function, props.table, SWEEPER_TABLE_ACTIONS);
    grantWorkerScaling(this.function, props.workEventSource);

    this.schedulerRole = new iam.Role(this, 'SchedulerRole', {
      assumedBy: new iam.ServicePrincipal('scheduler.amazonaws.com', {
        conditions: { StringEquals: { 'aws:SourceAccount': Stack.of(this).account } },
      }),
      description: 'EventBridge Scheduler role that runs the Sluice capacity sweeper',
    });
    // The unqualified function only (grantInvoke would add `<arn>:*`, every version and alias).
    iam.Grant.addToPrincipal({
      grantee: this.schedulerRole,
      actions: ['lambda:InvokeFunction'],
      resourceArns: [this.function.function.functionArn],
    });

    this.schedule = new scheduler.CfnSchedule(this, 'Schedule', {
      description: 'Sluice: sweep run-scoped endpoint capacity (leases, cooldown, leaks) every minute',
      scheduleExpression: SWEEP_SCHEDULE,
      flexibleTimeWindow: { mode: 'OFF' },
      state: 'ENABLED',
      target: {
        arn: this.function.function.functionArn,
        roleArn: this.schedulerRole.roleArn,
        // A missed tick is not retried: the next one is a minute away and sweeps everything.
        retryPolicy: { maximumRetryAttempts: 0, maximumEventAgeInSeconds: 60 },
      },
    });

    this.failureMetrics = [
      {
        name: 'CapacityWithoutRun',
        metric: this.function.metricPublished('CapacityWithoutRun'),
        // A sweep that finds copies up with no live lease scales them to 0; copies still up
        // with no run three sweeps later mean the scale-in is not happening.
        evaluationPeriods: 3,
        datapointsToAlarm: 3,
        description:
          'A Sluice inference component has had copies (billed instances) with no live run for 3 minutes: check the capacity sweeper logs and the component in the SageMaker console; set its copies to 0 by hand if it does not scale in (docs/infra.md, Run-scoped capacity)',
      },
      {
        name: 'CapacitySweeperErrors',
        metric: this.function.function.metricErrors({
          period: Duration.minutes(1),
          statistic: cloudwatch.Stats.SUM,
        }),
        // One failed sweep is retried by the next tick; three in five minutes means the net is down.
        evaluationPeriods: 5,
        datapointsToAlarm: 3,
        description:
          'The Sluice capacity sweeper failed in 3 of the last 5 minutes: leaked capacity is not being scaled in until it is fixed; read its logs (docs/infra.md, Run-scoped capacity)',
      },
    ];
  }
}
