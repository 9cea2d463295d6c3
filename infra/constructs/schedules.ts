import { Stack } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as scheduler from 'aws-cdk-lib/aws-scheduler';
import type * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import type { PipelineConfig } from '../../shared/config/pipeline-config.ts';

/**
 * The message a schedule sends to the ingest queue for plan. EventBridge Scheduler
 * replaces the two context attributes at each tick; the scheduled time names the tick, so
 * every retry of it plans (or takes up) the same run (functions/messages/scheduled-run.ts).
 */
export interface ScheduledRunMessage {
  readonly kind: 'scheduled-run';
  readonly pipeline: string;
  readonly prefix: string;
  readonly scheduledTime: '<aws.scheduler.scheduled-time>';
  readonly schedule: '<aws.scheduler.schedule-arn>';
}

export interface SchedulesProps {
  /** Pipelines; those with a `schedule` get one. */
  readonly pipelines: readonly PipelineConfig[];
  /**
   * The ingest queue plan consumes: a scheduled run gets the same backoff, dead-letter queue
   * and alarm as a drop (docs/decisions.md, "Schedules send to the ingest queue").
   */
  readonly queue: sqs.IQueue;
  /** Where messages the scheduler could not send after its retries go. */
  readonly deadLetterQueue: sqs.IQueue;
  /** @default 3 */
  readonly maximumRetryAttempts?: number;
  /** @default 3600 */
  readonly maximumEventAgeInSeconds?: number;
}

/**
 * One EventBridge Scheduler schedule per pipeline that has a `schedule`: at each tick it
 * sends a scheduled-run message for the pipeline's dataset prefix to the ingest queue,
 * which plan consumes. The scheduler role may send to the ingest queue and its dead-letter
 * queue, nothing else.
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
    props.queue.grantSendMessages(this.role);
    props.deadLetterQueue.grantSendMessages(this.role);

    const schedules = new Map<string, scheduler.CfnSchedule>();
    for (const pipeline of props.pipelines) {
      if (!pipeline.schedule) continue;
      const message: ScheduledRunMessage = {
        kind: 'scheduled-run',
        pipeline: pipeline.name,
        prefix: pipeline.schedule.prefix,
        scheduledTime: '<aws.scheduler.scheduled-time>',
        schedule: '<aws.scheduler.schedule-arn>',
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
            arn: props.queue.queueArn,
            roleArn: this.role.roleArn,
            input: JSON.stringify(message),
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
