import type { MessagePort } from 'node:worker_threads';
import * as errors from '../../errors/errors.ts';

/**
 * Calls between threads of one `sluice run`: a unit runs on a worker thread, while the
 * state every unit shares (run store, chunk index, queue) stays on the main thread, as
 * Lambda workers share DynamoDB and SQS. Arguments and results cross by structured
 * clone (plain objects, Maps, typed arrays); errors keep their Sluice class by name, their
 * fields and their cause, so `instanceof TransitionConflict` still holds on the calling side.
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

/**
 * Every error class `errors.ts` exports, by class name (what SluiceError sets as `name`):
 * a class added there crosses threads with no change here.
 */
const ERROR_CLASSES: ReadonlyMap<string, ErrorClass> = new Map(
  Object.values(errors).flatMap((value) =>
    typeof value === 'function' && value.prototype instanceof Error
      ? [[value.name, value as ErrorClass]]
      : [],
  ),
);

type ErrorClass = abstract new (...args: never[]) => Error;

/** Causes deeper than this cross as their message only: a cycle or a long chain must not grow the reply. */
const MAX_CAUSE_DEPTH = 8;

/**
 * An error as it crosses a thread: its class name, message, stack, its own fields that
 * structured clone can carry (`key`, `left`, `originalStatus`, ...) and its cause, itself
 * an ErrorData when the cause was an Error.
 */
export interface ErrorData {
  readonly name: string;
  readonly message: string;
  readonly stack?: string;
  readonly fields?: Readonly<Record<string, unknown>>;
  readonly cause?: ErrorData | { readonly value: unknown };
}

export function errorData(error: unknown, depth = 0): ErrorData {
  if (!(error instanceof Error)) return { name: 'Error', message: String(error) };
  const fields: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(error)) {
    if (key === 'name' || key === 'message' || key === 'stack' || key === 'cause') continue;
    if (cloneable(value)) fields[key] = value;
  }
  return {
    name: error.name,
    message: error.message,
    ...(error.stack === undefined ? {} : { stack: error.stack }),
    ...(Object.keys(fields).length === 0 ? {} : { fields }),
    ...('cause' in error ? { cause: causeData(error.cause, depth + 1) } : {}),
  };
}

function causeData(cause: unknown, depth: number): ErrorData | { readonly value: unknown } {
  if (cause instanceof Error) {
    return depth >= MAX_CAUSE_DEPTH ? { name: cause.name, message: cause.message } : errorData(cause, depth);
  }
  return { value: cloneable(cause) ? cause : String(cause) };
}

function cloneable(value: unknown): boolean {
  if (typeof value === 'function' || typeof value === 'symbol') return false;
  try {
    structuredClone(value);
    return true;
  } catch {
    return false;
  }
}

/**
 * The error again on this side: an instance of the `errors.ts` class of that name (so
 * `instanceof TransitionConflict` holds and its fields are there), else an Error named as
 * it was; the cause rebuilt the same way. The constructor is not run: each class has its
 * own signature, and the fields it set crossed with the error.
 */
export function errorOf(data: ErrorData): Error {
  const Class = ERROR_CLASSES.get(data.name);
  const error: Error = Class ? Object.create(Class.prototype) : new Error(data.message);
  Object.assign(error, data.fields);
  Object.defineProperty(error, 'message', { value: data.message, writable: true, configurable: true });
  Object.defineProperty(error, 'name', { value: data.name, writable: true, configurable: true });
  if (data.stack !== undefined)
    Object.defineProperty(error, 'stack', { value: data.stack, writable: true, configurable: true });
  if (data.cause !== undefined) {
    const cause = 'value' in data.cause ? data.cause.value : errorOf(data.cause);
    Object.defineProperty(error, 'cause', { value: cause, writable: true, configurable: true });
  }
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
