import { MessageChannel } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import { errorData, errorOf, RpcClient, serveRpc } from '../../shared/adapters/local/thread-rpc.ts';
import * as errors from '../../shared/errors/errors.ts';

/** Every error class errors.ts exports, found the way a reader of the module would. */
const exportedErrorClasses = (Object.values(errors) as unknown[]).filter(
  (value): value is new (message: string) => Error =>
    typeof value === 'function' && value.prototype instanceof Error,
);

/** Throws `error` on the far side of a real MessageChannel and returns what the caller catches. */
async function acrossThreads(error: unknown): Promise<unknown> {
  const { port1, port2 } = new MessageChannel();
  serveRpc(port1, {
    target: {
      async fail(): Promise<never> {
        throw error;
      },
    },
  });
  try {
    return await new RpcClient(port2)
      .proxy<{ fail(): Promise<void> }>('target')
      .fail()
      .catch((e: unknown) => e);
  } finally {
    port1.close();
    port2.close();
  }
}

describe('thread RPC errors', () => {
  it('knows more than the six classes it once listed by hand', () => {
    expect(exportedErrorClasses.map((c) => c.name)).toEqual(
      expect.arrayContaining(['ObjectChanged', 'EndpointWarming', 'ModelError', 'BatchIncomplete']),
    );
  });

  it.each(exportedErrorClasses.map((Class) => [Class.name, Class] as const))(
    'gives back a %s as an instance of its own class',
    async (name, Class) => {
      const caught = await acrossThreads(new Class('it went wrong'));
      expect(caught).toBeInstanceOf(Class);
      expect(caught).toBeInstanceOf(errors.SluiceError);
      expect((caught as Error).name).toBe(name);
    },
  );

  it('keeps the fields a class sets', async () => {
    const changed = await acrossThreads(new errors.ObjectChanged('incoming/a.jsonl', 'a.jsonl changed'));
    expect(changed).toBeInstanceOf(errors.ObjectChanged);
    expect(changed).toMatchObject({ key: 'incoming/a.jsonl', message: 'a.jsonl changed' });
    const model = await acrossThreads(new errors.ModelError('bad payload', 400));
    expect(model).toMatchObject({ name: 'ModelError', message: 'bad payload', originalStatus: 400 });
    const batch = await acrossThreads(new errors.BatchIncomplete('DynamoDB left 3', 3, 8));
    expect(batch).toMatchObject({ left: 3, attempts: 8 });
  });

  it('carries the cause chain, Sluice classes, plain errors and values alike', async () => {
    const root = new TypeError('socket hang up');
    const middle = new errors.EndpointUnavailable('endpoint e1 failed', { cause: root });
    const top = new errors.InputError('unit u1 failed', { cause: middle });
    const valued = new errors.ConfigError('bad', { cause: { field: 'model.name' } });

    const caught = (await acrossThreads(top)) as Error;
    expect(caught).toBeInstanceOf(errors.InputError);
    expect(caught.cause).toBeInstanceOf(errors.EndpointUnavailable);
    expect((caught.cause as Error).message).toBe('endpoint e1 failed');
    const rootCaught = (caught.cause as Error).cause as Error;
    expect(rootCaught).toBeInstanceOf(Error);
    expect(rootCaught).toMatchObject({ name: 'TypeError', message: 'socket hang up' });
    expect(rootCaught.stack).toBe(root.stack);
    expect(((await acrossThreads(valued)) as Error).cause).toEqual({ field: 'model.name' });
  });

  it('stops a cyclic or very long cause chain instead of following it forever', () => {
    const a = new errors.SluiceError('a');
    const b = new errors.SluiceError('b', { cause: a });
    Object.defineProperty(a, 'cause', { value: b });
    let depth = 0;
    for (let e: unknown = errorOf(errorData(a)); e instanceof Error; e = e.cause) depth++;
    expect(depth).toBeGreaterThan(2);
    expect(depth).toBeLessThanOrEqual(10);
  });

  it('drops fields structured clone cannot carry and still sends the error', async () => {
    const error = Object.assign(new errors.InputError('odd'), { retry: () => 1, attempt: 2 });
    const caught = await acrossThreads(error);
    expect(caught).toBeInstanceOf(errors.InputError);
    expect(caught).toMatchObject({ attempt: 2 });
    expect((caught as { retry?: unknown }).retry).toBeUndefined();
  });

  it('turns a thrown non-error into an Error with its text', async () => {
    expect(await acrossThreads('just a string')).toMatchObject({ name: 'Error', message: 'just a string' });
  });
});
