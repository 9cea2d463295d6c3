import type { S3Client } from '@aws-sdk/client-s3';

type Handler = (args: { input: object }) => Promise<{ output: unknown }>;
interface BuildStack {
  add(
    middleware: (next: Handler, context: { commandName?: string }) => Handler,
    options: { step: 'build'; name: string; override: boolean },
  ): void;
}

/**
 * Makes an S3 client talking to fauxqs (which keeps one version per key) behave as it
 * would against the stack's versioned bucket: HeadObject answers carry a VersionId (derived
 * from the ETag), and a GetObject naming that VersionId is served as the current object.
 * It runs at the `build` step, after the IAM recorder (`initialize`) has seen the command
 * as the adapter sent it, so pinned reads are recorded with their VersionId and checked as
 * `s3:GetObjectVersion`. Only for drives that never overwrite a source while it is read.
 */
export function playVersionedBucket(client: S3Client): void {
  (client.middlewareStack as unknown as BuildStack).add(
    (next, context) => async (args) => {
      if (context.commandName === 'GetObjectCommand') {
        const { VersionId: _pinned, ...current } = args.input as Record<string, unknown>;
        return next({ ...args, input: current });
      }
      const result = await next(args);
      if (context.commandName === 'HeadObjectCommand') {
        const output = result.output as { ETag?: string; VersionId?: string };
        if (output.VersionId === undefined && output.ETag !== undefined)
          output.VersionId = `v${output.ETag.replaceAll('"', '')}`;
      }
      return result;
    },
    { step: 'build', name: 'sluiceVersionedBucket', override: true },
  );
}
