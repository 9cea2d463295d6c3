import type { z } from 'zod';
import { ConfigError } from '../errors/errors.ts';

/**
 * The first problem of a failed config parse as one line naming the key path, e.g.
 * `pipelines/docs.json: chunking.maxTokenz: unknown key`. `describe` may reword an issue
 * where zod's own message says too little (a union that matched no branch, say).
 */
export function configErrorOf(
  error: z.ZodError,
  source: string,
  describe: (issue: z.core.$ZodIssue, path: string) => string | undefined = () => undefined,
): ConfigError {
  const issue = error.issues[0]!;
  let path = issue.path.join('.');
  let message = issue.message;
  if (issue.code === 'unrecognized_keys') {
    path = [...issue.path, issue.keys[0]].join('.');
    message = 'unknown key';
  } else {
    message = describe(issue, path) ?? message;
  }
  return new ConfigError(`${source}: ${path || '(root)'}: ${message}`);
}
