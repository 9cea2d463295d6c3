import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/** What the proxy does to the calls it forwards; changed between runs. */
export interface EndpointFaults {
  /** Fraction of calls answered with a fault instead of being forwarded: half throttles, half 5xx. @default 0 */
  faultRate: number;
  random: () => number;
}

export interface FaultEndpoint {
  readonly url: string;
  /** Replaces the faults from the next call on, and resets the counters. */
  configure(faults: Partial<EndpointFaults>): void;
  readonly counts: { calls: number; throttled: number; failed: number };
  close(): Promise<void>;
}

async function readBody(req: IncomingMessage): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const chunk of req) parts.push(chunk as Buffer);
  return Buffer.concat(parts);
}

/**
 * An HTTP proxy on 127.0.0.1 in front of the local model server's SageMaker runtime
 * route. A seeded share of calls never reaches the model: they are answered as SageMaker
 * answers an endpoint over capacity (HTTP 400 `ThrottlingException`) or as a container
 * that failed (HTTP 424 `ModelError`, original status 500). The slow endpoint of the fault
 * runs is `SlowAnswers` (slow-answers.ts): its answers are held until the queue has
 * delivered the message again, not for a number of milliseconds.
 */
export async function startFaultEndpoint(target: string): Promise<FaultEndpoint> {
  let faults: EndpointFaults = { faultRate: 0, random: Math.random };
  const counts = { calls: 0, throttled: 0, failed: 0 };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const body = await readBody(req);
    counts.calls += 1;
    if (faults.random() < faults.faultRate) {
      if (faults.random() < 0.5) {
        counts.throttled += 1;
        res.writeHead(400, {
          'content-type': 'application/json',
          'x-amzn-errortype': 'ThrottlingException:',
        });
        res.end(JSON.stringify({ message: 'Rate exceeded (injected)' }));
      } else {
        counts.failed += 1;
        res.writeHead(424, { 'content-type': 'application/json', 'x-amzn-errortype': 'ModelError:' });
        res.end(
          JSON.stringify({
            ErrorCode: 'SERVER_ERROR_FROM_MODEL',
            Message: 'Received server error (500) from primary with message "CUDA error (injected)"',
            OriginalMessage: 'CUDA error (injected)',
            OriginalStatusCode: 500,
          }),
        );
      }
      return;
    }
    const forwarded = await fetch(new URL(req.url ?? '/', target), {
      method: req.method ?? 'POST',
      headers: { 'content-type': req.headers['content-type'] ?? 'application/json' },
      body: req.method === 'GET' ? undefined : body,
    });
    const headers: Record<string, string> = {};
    forwarded.headers.forEach((value, name) => {
      if (name !== 'content-length' && name !== 'transfer-encoding' && name !== 'connection')
        headers[name] = value;
    });
    res.writeHead(forwarded.status, headers);
    res.end(Buffer.from(await forwarded.arrayBuffer()));
  };

  const server = createServer((req, res) => {
    handle(req, res).catch((error: unknown) => {
      res.writeHead(502, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ message: `proxy: ${(error as Error).message}` }));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    counts,
    configure(next) {
      faults = { ...faults, ...next };
      counts.calls = 0;
      counts.throttled = 0;
      counts.failed = 0;
    },
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.closeAllConnections();
        server.close((error) => (error ? reject(error) : resolve()));
      }),
  };
}
