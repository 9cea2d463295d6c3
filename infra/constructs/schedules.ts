import { Stack } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import * as scheduler from 'aws-cdk-lib/aws-scheduler';
import type * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import type { PipelineConfig } from '../../shared/config/pipeline-config.ts';

/** Event the plan function receives from a schedule (rather than an SQS batch). */
export interface ScheduledRunEvent {
  readonly kind: 'scheduled-run';
  readonly pipeline: string;
  readonly prefix: string;
}

export interface SchedulesProps {
  /** Pipelines; those with a `schedule` get one. */
  readonly pipelines: readonly PipelineConfig[];
  /** The plan function, invoked directly with a {@link ScheduledRunEvent}. */
  readonly plan: lambda.IFunction;
  /** Where invocations that still fail after the retries go. */
  readonly deadLetterQueue: sqs.IQueue;
  /** @default 3 */
  readonly maximumRetryAttempts?: number;
  /** @default 3600 */
  readonly maximumEventAgeInSeconds?: number;
}

/**
 * One EventBridge Scheduler schedule per pipeline that has a `schedule`: at each
 * tick it invokes plan over the pipeline's dataset prefix. The scheduler role may
 * invoke plan (unqualified) and send to the dead-letter queue, nothing else.
 */
export class Schedules extends Construct {
  readonly role: iam.Role;
  readonly schedules: ReadonlyMap<string, scheduler.CfnSchedule>;

  constructor(scope: Construct, id: string, props: SchedulesProps) {
    super(scope, id);
    this.role = new iam.Role(this, 'Role', {
      assumedBy: new iam.ServicePrincipal('scheduler.amazonaws.com', {
        conditions: { StringEquals: { 'aws:SourceAccount': Stack.of(this).account } },
      }),
      description: 'EventBridge Scheduler role that starts scheduled Sluice runs',
    });
    props.plan.grantInvokeLatestVersion(this.role);
    props.deadLetterQueue.grantSendMessages(this.role);

    const schedules = new Map<string, scheduler.CfnSchedule>();
    for (const pipeline of props.pipelines) {
      if (!pipeline.schedule) continue;
      const event: ScheduledRunEvent = {
        kind: 'scheduled-run',
        pipeline: pipeline.name,
        prefix: pipeline.schedule.prefix,
      };
      schedules.set(
        pipeline.name,
        new scheduler.CfnSchedule(this, `Schedule-${pipeline.name}`, {
          description: `Sluice: scheduled run of pipeline ${pipeline.name} over ${pipeline.schedule.prefix}`,
          scheduleExpression: pipeline.schedule.expression,
          scheduleExpressionTimezone: pipeline.schedule.timezone,
          flexibleTimeWindow: { mode: 'OFF' },
          state: 'ENABLED',
          target: {
            arn: props.plan.functionArn,
            roleArn: this.role.roleArn,
            input: JSON.stringify(event),
            retryPolicy: {
              maximumRetryAttempts: props.maximumRetryAttempts ?? 3,
              maximumEventAgeInSeconds: props.maximumEventAgeInSeconds ?? 3600,
            },
            deadLetterConfig: { arn: props.deadLetterQueue.queueArn },
          },
        }),
      );
    }
    this.schedules = schedules;
  }
}
