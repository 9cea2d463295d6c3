import { z } from 'zod';
import type { FinalizeRequest } from '../../shared/adapters/aws/sqs-work-queue.ts';
import { parseMessage } from './parse-message.ts';
import { runIdSchema } from './run-id.ts';

const finalizeRequestSchema = z.object({ kind: z.literal('finalize'), runId: runIdSchema });

/** @throws InvalidMessage when the body is not `{"kind":"finalize","runId":"..."}` */
export function parseFinalizeMessage(body: string): FinalizeRequest {
  return parseMessage(body, finalizeRequestSchema, 'finalize message');
}
