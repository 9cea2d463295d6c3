import { Duration, Stack } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as cloudwatchActions from 'aws-cdk-lib/aws-cloudwatch-actions';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as sns from 'aws-cdk-lib/aws-sns';
import type * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';

/** A count the functions publish that should stay at zero: each non-zero minute needs a person. */
export interface FailureMetric {
  /** The alarm's construct id suffix and the name it is known by (the metric's name). */
  readonly name: string;
  /** Summed per minute; from `SluiceFunction.metricPublished`, so its dimensions match what Powertools publishes. */
  readonly metric: cloudwatch.IMetric;
  /** What happened and what to do, shown in the notification. */
  readonly description: string;
  /**
   * Minutes looked at; the alarm fires when `datapointsToAlarm` of them are above zero.
   * @default 1
   */
  readonly evaluationPeriods?: number;
  /** @default evaluationPeriods */
  readonly datapointsToAlarm?: number;
}

export interface AlarmsProps {
  /** Dead-letter queues to watch, each with a short name used in the alarm's description. */
  readonly deadLetterQueues: readonly { readonly name: string; readonly queue: sqs.IQueue }[];
  /**
   * Published counts that alarm when above zero. A consumed dead-letter queue holds its
   * messages only seconds, too briefly for its depth alarm; these see what it handled.
   * @default []
   */
  readonly failureMetrics?: readonly FailureMetric[];
}

/**
 * An alarm per dead-letter queue that fires as soon as one message lands there (a
 * message in a DLQ is a source, unit or run that needs a person), an alarm per failure
 * metric that fires on a minute it is above zero, and an encrypted, TLS-only SNS topic
 * the alarms notify. Subscribe to `topic` to be told.
 */
export class Alarms extends Construct {
  readonly topic: sns.Topic;
  /** Dead-letter queue alarms by queue name. */
  readonly alarms: ReadonlyMap<string, cloudwatch.Alarm>;
  /** Failure metric alarms by metric name. */
  readonly failureAlarms: ReadonlyMap<string, cloudwatch.Alarm>;

  constructor(scope: Construct, id: string, props: AlarmsProps) {
    super(scope, id);
    const stack = Stack.of(this);

    // CloudWatch cannot publish to a topic under the AWS managed SNS key, so the topic
    // gets its own key whose policy lets CloudWatch encrypt messages for it.
    const key = new kms.Key(this, 'TopicKey', {
      description: 'Encrypts the Sluice alarm topic',
      enableKeyRotation: true,
    });
    key.grant(new iam.ServicePrincipal('cloudwatch.amazonaws.com'), 'kms:Decrypt', 'kms:GenerateDataKey*');

    this.topic = new sns.Topic(this, 'Topic', {
      displayName: 'Sluice alarms',
      masterKey: key,
      enforceSSL: true,
    });
    this.topic.addToResourcePolicy(
      new iam.PolicyStatement({
        sid: 'AllowCloudWatchAlarmsOfThisAccount',
        principals: [new iam.ServicePrincipal('cloudwatch.amazonaws.com')],
        actions: ['sns:Publish'],
        resources: [this.topic.topicArn],
        conditions: {
          StringEquals: { 'aws:SourceAccount': stack.account },
          ArnLike: {
            'aws:SourceArn': stack.formatArn({ service: 'cloudwatch', resource: 'alarm', resourceName: '*' }),
          },
        },
      }),
    );
    const notify = new cloudwatchActions.SnsAction(this.topic);

    const alarms = new Map<string, cloudwatch.Alarm>();
    for (const { name, queue } of props.deadLetterQueues) {
      const alarm = new cloudwatch.Alarm(this, `DeadLetters-${name}`, {
        alarmDescription: `Messages in the Sluice ${name} dead-letter queue: inspect them, fix the cause, then redrive`,
        metric: queue.metricApproximateNumberOfMessagesVisible({
          period: Duration.minutes(1),
          statistic: cloudwatch.Stats.MAXIMUM,
        }),
        threshold: 0,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
        evaluationPeriods: 1,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      });
      alarm.addAlarmAction(notify);
      alarms.set(name, alarm);
    }
    this.alarms = alarms;

    const failureAlarms = new Map<string, cloudwatch.Alarm>();
    for (const { name, metric, description, evaluationPeriods, datapointsToAlarm } of props.failureMetrics ??
      []) {
      const alarm = new cloudwatch.Alarm(this, `Failures-${name}`, {
        alarmDescription: description,
        metric,
        threshold: 0,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
        evaluationPeriods: evaluationPeriods ?? 1,
        ...(datapointsToAlarm === undefined ? {} : { datapointsToAlarm }),
        // Powertools publishes a count only when something happened: no data is no failure.
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      });
      alarm.addAlarmAction(notify);
      failureAlarms.set(name, alarm);
    }
    this.failureAlarms = failureAlarms;
  }
}
