import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { LocalAwsServer } from './local-aws.ts';

/** The REST path of one mapping in Lambda's API (GetEventSourceMapping, UpdateEventSourceMapping). */
const MAPPING_PATH = /^\/2015-03-31\/event-source-mappings\/([^/?]+)$/;

export interface LocalEventSourceMappings extends LocalAwsServer {
  /** `ScalingConfig.MaximumConcurrency` of each known mapping by UUID (undefined: no limit). */
  readonly limits: Map<string, number | undefined>;
  /** Each update that took, in order: the mapping and the limit it was set to. */
  readonly updates: { readonly uuid: string; readonly maximumConcurrency: number | undefined }[];
}

/**
 * The two Lambda control-plane calls the workers adapter makes, on 127.0.0.1 and a free
 * port, for a `LambdaClient` whose `endpoint` points here: `GET` (GetEventSourceMapping,
 * 200) and `PUT` (UpdateEventSourceMapping, 202) of `/2015-03-31/event-source-mappings/{UUID}`,
 * over the mappings given; any other UUID is a `ResourceNotFoundException` (404), and a
 * limit outside 2 to 1,000 an `InvalidParameterValueException` (400), as Lambda answers them.
 * A split stack (issue 14) has two mappings, the work queue's and the compute queue's: give
 * both, and `updates` shows which one plan and the sweeper set (only the work queue's
 * follows the copies; the compute queue's stays at the limit the stack deployed).
 */
export async function startLocalEventSourceMappings(
  mappings: Readonly<Record<string, number | undefined>>,
): Promise<LocalEventSourceMappings> {
  const limits = new Map(Object.entries(mappings));
  const updates: LocalEventSourceMappings['updates'] = [];
  const server = createServer((req, res) => {
    handle(req, res, limits, updates).catch((error: unknown) =>
      fail(res, 500, 'ServiceException', String(error)),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    limits,
    updates,
    stop: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

async function handle(
  req: IncomingMessage,
  res: ServerResponse,
  limits: Map<string, number | undefined>,
  updates: LocalEventSourceMappings['updates'],
): Promise<void> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  const uuid = MAPPING_PATH.exec(new URL(req.url ?? '/', 'http://localhost').pathname)?.[1];
  if (uuid === undefined || (req.method !== 'GET' && req.method !== 'PUT'))
    return fail(res, 400, 'InvalidParameterValueException', `unsupported ${req.method} ${req.url}`);
  const id = decodeURIComponent(uuid);
  if (!limits.has(id))
    return fail(
      res,
      404,
      'ResourceNotFoundException',
      `The resource you requested does not exist. (UUID ${id})`,
    );
  if (req.method === 'PUT') {
    const body = JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}') as {
      ScalingConfig?: { MaximumConcurrency?: number };
    };
    const maximum = body.ScalingConfig?.MaximumConcurrency;
    if (maximum !== undefined && (!Number.isInteger(maximum) || maximum < 2 || maximum > 1000))
      return fail(
        res,
        400,
        'InvalidParameterValueException',
        `MaximumConcurrency ${maximum} is not 2 to 1000`,
      );
    limits.set(id, maximum);
    updates.push({ uuid: id, maximumConcurrency: maximum });
  }
  const limit = limits.get(id);
  const mapping = {
    UUID: id,
    State: req.method === 'PUT' ? 'Updating' : 'Enabled',
    ...(limit === undefined ? {} : { ScalingConfig: { MaximumConcurrency: limit } }),
  };
  res.writeHead(req.method === 'PUT' ? 202 : 200, { 'content-type': 'application/json' });
  res.end(JSON.stringify(mapping));
}

function fail(res: ServerResponse, status: number, type: string, message: string): void {
  res.writeHead(status, { 'content-type': 'application/json', 'x-amzn-errortype': type });
  res.end(JSON.stringify({ Type: status >= 500 ? 'Service' : 'User', message }));
}
