import type { Message } from '@aws-sdk/client-sqs';
import type { SQSRecord } from 'aws-lambda';

/** The SQS record Lambda's event source mapping builds from a received message. */
export function toLambdaRecord(message: Message, queueName: string): SQSRecord {
  const attributes = message.Attributes ?? {};
  return {
    messageId: message.MessageId!,
    receiptHandle: message.ReceiptHandle!,
    body: message.Body!,
    attributes: {
      ApproximateReceiveCount: attributes.ApproximateReceiveCount!,
      SentTimestamp: attributes.SentTimestamp!,
      SenderId: attributes.SenderId!,
      ApproximateFirstReceiveTimestamp: attributes.ApproximateFirstReceiveTimestamp!,
    },
    messageAttributes: {},
    md5OfBody: message.MD5OfBody!,
    eventSource: 'aws:sqs',
    eventSourceARN: `arn:aws:sqs:us-east-1:000000000000:${queueName}`,
    awsRegion: 'us-east-1',
  };
}
