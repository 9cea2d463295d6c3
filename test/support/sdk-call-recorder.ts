import type { AwsClients } from '../../functions/config/adapters.ts';
import type { ObservedFunction } from '../../functions/observability.ts';

/** One AWS SDK command a handler sent, as the IAM check evaluates it. */
export interface RecordedCall {
  /** The deployed function whose role signs the call. */
  readonly fn: ObservedFunction;
  /** SDK client, e.g. `S3Client`, `DynamoDBClient`. */
  readonly client: string;
  /** SDK command, e.g. `GetObjectCommand`. */
  readonly command: string;
  /** The command's input (only the fields that name resources are read). */
  readonly input: Record<string, unknown>;
}

type Handler = (args: { input: object }) => Promise<unknown>;
/** The one overload of a client's middleware stack used here (each client's stack type has its own). */
interface InitializeStack {
  add(
    middleware: (next: Handler, context: { clientName?: string; commandName?: string }) => Handler,
    options: { step: 'initialize'; name: string; override: boolean },
  ): void;
}

/**
 * Records every command sent through a function's SDK clients: a middleware at the
 * `initialize` step of each client's stack (the document client shares the DynamoDB
 * client's stack), so it sees what the adapters send, retries aside, before any network I/O.
 */
export class SdkCallRecorder {
  readonly calls: RecordedCall[] = [];

  /** Adds the recording middleware to every client of `clients`, tagged with the function. */
  attach(fn: ObservedFunction, clients: AwsClients): void {
    const stacks = [
      clients.s3,
      clients.sqs,
      clients.dynamo,
      clients.sagemaker,
      clients.sagemakerControl,
      clients.lambda,
    ].map((client) => client.middlewareStack as unknown as InitializeStack);
    for (const stack of stacks) {
      stack.add(
        (next, context) => async (args) => {
          this.calls.push({
            fn,
            client: String(context.clientName ?? ''),
            command: String(context.commandName ?? ''),
            input: { ...(args.input as Record<string, unknown>) },
          });
          return next(args);
        },
        { step: 'initialize', name: `sluiceIamRecorder-${fn}`, override: true },
      );
    }
  }
}
