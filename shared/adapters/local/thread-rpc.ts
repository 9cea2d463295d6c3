import type { MessagePort } from 'node:worker_threads';
import {
  ConfigError,
  EndpointThrottled,
  EndpointUnavailable,
  InputError,
  SluiceError,
  TransitionConflict,
} from '../../errors/errors.ts';

/**
 * Calls between threads of one `sluice run`: a unit runs on a worker thread, while the
 * state every unit shares (run store, chunk index, queue) stays on the main thread, as
 * Lambda workers share DynamoDB and SQS. Arguments and results cross by structured
 * clone (plain objects, Maps, typed arrays); errors keep their Sluice class by name, so
 * `instanceof TransitionConflict` still holds on the calling side.
 */
interface Call {
  readonly rpc: 'call';
  readonly id: number;
  readonly target: string;
  readonly method: string;
  readonly args: unknown[];
}

type Reply =
  | { readonly rpc: 'reply'; readonly id: number; readonly ok: true; readonly value: unknown }
  | {
      readonly rpc: 'reply';
      readonly id: number;
      readonly ok: false;
      readonly error: ErrorData;
    };

const ERROR_CLASSES: Record<string, new (message: string) => Error> = {
  SluiceError,
  ConfigError,
  InputError,
  EndpointThrottled,
  EndpointUnavailable,
  TransitionConflict,
};

/** An error as it crosses a thread: its class name and message. */
export interface ErrorData {
  readonly name: string;
  readonly message: string;
}

export function errorData(error: unknown): ErrorData {
  return error instanceof Error
    ? { name: error.name, message: error.message }
    : { name: 'Error', message: String(error) };
}

/** The error again on this side: a Sluice error class by its name, else an Error named as it was. */
export function errorOf({ name, message }: ErrorData): Error {
  const Class = ERROR_CLASSES[name];
  if (Class) return new Class(message);
  const error = new Error(message);
  error.name = name;
  return error;
}

/** Answers calls arriving on `port` with the methods of `targets` (by name). */
export function serveRpc(port: MessagePort, targets: Readonly<Record<string, object>>): void {
  port.on('message', (message: Call) => {
    if (message?.rpc !== 'call') return;
    const { id, target, method, args } = message;
    const reply = (r: Reply) => port.postMessage(r);
    const object = targets[target] as Record<string, unknown> | undefined;
    const fn = object?.[method];
    if (typeof fn !== 'function') {
      reply({ rpc: 'reply', id, ok: false, error: { name: 'Error', message: `no ${target}.${method}` } });
      return;
    }
    Promise.resolve()
      .then(() => (fn as (...a: unknown[]) => unknown).apply(object, args))
      .then(
        (value) => reply({ rpc: 'reply', id, ok: true, value }),
        (error: unknown) => reply({ rpc: 'reply', id, ok: false, error: errorData(error) }),
      );
  });
}

/** The calling side: `proxy<RunStore>('runs')` is a RunStore whose methods run on the other thread. */
export class RpcClient {
  private next = 0;
  private readonly waiting = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();

  constructor(private readonly port: MessagePort) {
    port.on('message', (message: Reply) => {
      if (message?.rpc !== 'reply') return;
      const call = this.waiting.get(message.id);
      if (!call) return;
      this.waiting.delete(message.id);
      if (message.ok) call.resolve(message.value);
      else call.reject(errorOf(message.error));
    });
  }

  /** Every method of T, called on the object served under `target`. */
  proxy<T extends object>(target: string): T {
    return new Proxy({} as T, {
      get: (_, method) => {
        if (typeof method !== 'string' || method === 'then') return undefined;
        return (...args: unknown[]) =>
          new Promise((resolve, reject) => {
            const id = this.next++;
            this.waiting.set(id, { resolve, reject });
            const call: Call = { rpc: 'call', id, target, method, args };
            this.port.postMessage(call);
          });
      },
    });
  }
}
