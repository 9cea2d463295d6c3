/**
 * The capacity of the local model server's endpoint, simulated as SageMaker runs it
 * (issue 14): an inference component whose copies are asked for with
 * `UpdateInferenceComponentRuntimeConfig`, come up after a warm-up, and go down at once; or
 * a serverless endpoint that starts by itself on the first call. Invocations are answered
 * as SageMaker answers them in each state (docs/capacity.md, "What a cold endpoint
 * answers"), so the workers' warming path is tested over the wire with the real clients.
 */

/** What a caller sees: no copies, copies asked for and starting, serving, or just scaled in. */
export type CapacityState = 'zero' | 'warming' | 'ready' | 'scaling-in';

export interface CapacityLifecycleOptions {
  /** Start with no copies (scaled to zero). @default false: one copy, serving */
  readonly scaleToZero?: boolean;
  /** Seconds from copies asked for to copies serving. @default 0 */
  readonly warmupSeconds?: number;
  /**
   * Seconds the component reports `Updating` after a scale-in (its copies are gone at once).
   * @default 0
   */
  readonly scaleInSeconds?: number;
  /**
   * A call that finds no capacity asks for one copy, as the `NoCapacityInvocationFailures`
   * alarm with a step scaling policy does on AWS. @default false: only the control plane
   * (or `serverless`) brings copies
   */
  readonly wakeOnInvoke?: boolean;
  /**
   * A serverless endpoint instead of an inference component: a call with nothing running
   * starts capacity by itself and is answered `ModelNotReadyException` until it is warm.
   * @default false
   */
  readonly serverless?: boolean;
  /**
   * The inference component's name: invocations must name it (header
   * `X-Amzn-SageMaker-Inference-Component`) and the control plane knows only it.
   * @default none: any name is taken as this server's component, and calls need not name one
   */
  readonly componentName?: string;
  /** @default Date.now */
  readonly now?: () => number;
}

/** SageMaker's wording for a call on an inference component with no copies (verbatim, see docs/capacity.md). */
export const NO_CAPACITY_MESSAGE =
  'Inference Component has no capacity to process this request. ApplicationAutoScaling may be in-progress (if configured) or try to increase the capacity by invoking UpdateInferenceComponentRuntimeConfig API.';

/** The SDK's description of ModelNotReadyException (serverless resources still being provisioned). */
export const MODEL_NOT_READY_MESSAGE =
  "Either a serverless endpoint variant's resources are still being provisioned, or a multi-model endpoint is still downloading or loading the target model. Wait and try your request again.";

/** How the runtime route answers a call it cannot serve: an HTTP status, error type and message. */
export interface Refusal {
  readonly status: number;
  readonly errorType: string;
  readonly message: string;
}

export interface CapacityStats {
  readonly state: CapacityState;
  readonly desiredCopies: number;
  readonly currentCopies: number;
  /** Calls refused for want of capacity (SageMaker's `NoCapacityInvocationFailures`). */
  readonly noCapacity: number;
  /** Copy counts asked for through the control plane or by a waking call, in order. */
  readonly requests: readonly number[];
}

/** The view `DescribeInferenceComponent` gives. */
export interface ComponentDescription {
  readonly status: 'InService' | 'Updating';
  readonly desiredCopies: number;
  readonly currentCopies: number;
}

/**
 * Thrown by {@link CapacityLifecycle.setCopies} for a change the component refuses while an
 * earlier one is under way (a `ValidationException` that names no value: Sluice reads it as busy).
 */
export class CapacityUpdateRefused extends Error {}

/**
 * How AWS refuses a control-plane request whose values break the API's constraints, before
 * the component is looked at: a `ValidationException` in the service-wide wording ("1
 * validation error detected: Value '-1' at 'desiredRuntimeConfig.copyCount' failed to satisfy
 * constraint: ..."). Sluice's capacity adapter reads that wording as a bad value, an error no
 * retry fixes, so locally a bad copy count or name fails as it does deployed instead of
 * reading as a busy component.
 */
function invalidValue(value: unknown, field: string, constraint: string): Refusal {
  const shown = value == null ? 'null' : `'${String(value)}'`;
  return {
    status: 400,
    errorType: 'ValidationException',
    message: `1 validation error detected: Value ${shown} at '${field}' failed to satisfy constraint: ${constraint}`,
  };
}

/** `InferenceComponentName`: a required string of the API reference's pattern (both calls). */
export function componentNameRefusal(name: unknown): Refusal | undefined {
  if (name == null) return invalidValue(name, 'inferenceComponentName', 'Member must not be null');
  if (typeof name !== 'string' || !COMPONENT_NAME_PATTERN.test(name))
    return invalidValue(
      name,
      'inferenceComponentName',
      `Member must satisfy regular expression pattern: ${COMPONENT_NAME_PATTERN.source}`,
    );
  return undefined;
}

/**
 * `DesiredRuntimeConfig.CopyCount` of `UpdateInferenceComponentRuntimeConfig`: required, an
 * Integer with a minimum of 0 (API reference, InferenceComponentRuntimeConfig). A count that is
 * not a whole number cannot be read as that Integer: AWS's JSON protocol answers a body that
 * does not fit the shape with `SerializationException`, an error to the adapter too.
 */
export function runtimeConfigRefusal(
  config: { readonly CopyCount?: unknown } | undefined,
): Refusal | undefined {
  if (config == null) return invalidValue(config, 'desiredRuntimeConfig', 'Member must not be null');
  const copies = config.CopyCount;
  if (copies == null)
    return invalidValue(copies, 'desiredRuntimeConfig.copyCount', 'Member must not be null');
  if (typeof copies !== 'number' || !Number.isInteger(copies))
    return {
      status: 400,
      errorType: 'SerializationException',
      message: `Value ${JSON.stringify(copies)} at 'desiredRuntimeConfig.copyCount' cannot be read as an Integer`,
    };
  if (copies < 0)
    return invalidValue(
      copies,
      'desiredRuntimeConfig.copyCount',
      'Member must have value greater than or equal to 0',
    );
  return undefined;
}

/** `InferenceComponentName`'s pattern in the API reference (at most 63 characters). */
const COMPONENT_NAME_PATTERN = /^[a-zA-Z0-9]([-a-zA-Z0-9]*[a-zA-Z0-9])?$/;

export class CapacityLifecycle {
  private desired: number;
  private current: number;
  /** When the copies asked for start serving (epoch ms); undefined when none are starting. */
  private readyAt: number | undefined;
  /** Until when a scale-in reports `Updating`. */
  private scaledInUntil = 0;
  private noCapacity = 0;
  private readonly requests: number[] = [];
  private readonly warmupMs: number;
  private readonly scaleInMs: number;
  private readonly now: () => number;

  constructor(private readonly options: CapacityLifecycleOptions = {}) {
    this.warmupMs = Math.max(0, options.warmupSeconds ?? 0) * 1000;
    this.scaleInMs = Math.max(0, options.scaleInSeconds ?? 0) * 1000;
    this.now = options.now ?? Date.now;
    this.desired = options.scaleToZero ? 0 : 1;
    this.current = this.desired;
  }

  get componentName(): string | undefined {
    return this.options.componentName;
  }

  /** Copies whose warm-up has passed start serving. */
  private settle(): void {
    if (this.readyAt !== undefined && this.now() >= this.readyAt) {
      this.current = this.desired;
      this.readyAt = undefined;
    }
  }

  state(): CapacityState {
    this.settle();
    if (this.desired > this.current) return 'warming';
    if (this.now() < this.scaledInUntil) return 'scaling-in';
    return this.current === 0 ? 'zero' : 'ready';
  }

  describe(): ComponentDescription {
    const state = this.state();
    return {
      status: state === 'warming' || state === 'scaling-in' ? 'Updating' : 'InService',
      desiredCopies: this.desired,
      currentCopies: this.current,
    };
  }

  /**
   * `UpdateInferenceComponentRuntimeConfig`: more copies come up after the warm-up, fewer
   * take effect at once. A component still `Updating` refuses the change, as SageMaker's
   * update calls refuse a resource whose last change is in progress. The count is one the
   * server let through ({@link runtimeConfigRefusal}); anything else is the caller's bug.
   */
  setCopies(copies: number): void {
    if (!Number.isInteger(copies) || copies < 0)
      throw new RangeError(`copies must be a whole number from 0, got ${copies}`);
    if (this.describe().status === 'Updating')
      throw new CapacityUpdateRefused(
        `Cannot update inference component while it is being updated (${this.state()}); try again when it is InService`,
      );
    this.requests.push(copies);
    this.ask(copies);
  }

  private ask(copies: number): void {
    if (copies > this.current) {
      this.desired = copies;
      this.readyAt = this.now() + this.warmupMs;
      this.settle();
      return;
    }
    const scaledIn = copies < this.current;
    this.desired = copies;
    this.current = copies;
    this.readyAt = undefined;
    if (scaledIn) this.scaledInUntil = this.now() + this.scaleInMs;
  }

  /**
   * Whether an invocation naming `component` (the inference component header) is served;
   * otherwise the answer SageMaker gives. A call finding no capacity counts as a
   * `NoCapacityInvocationFailures`, and wakes the endpoint where configured.
   */
  admit(component: string | undefined): Refusal | undefined {
    const expected = this.options.componentName;
    if (expected !== undefined && component !== expected) {
      return {
        status: 400,
        errorType: 'ValidationError',
        message:
          component === undefined
            ? 'Inference Component Name header is required for endpoints to which you plan to deploy inference components. Please include Inference Component Name header or consider using SageMaker models.'
            : `Inference Component ${component} not found.`,
      };
    }
    this.settle();
    if (this.current > 0) return undefined;
    this.noCapacity += 1;
    if (this.options.serverless) {
      if (this.desired === 0) this.ask(1);
      if (this.current > 0) return undefined;
      return { status: 429, errorType: 'ModelNotReadyException', message: MODEL_NOT_READY_MESSAGE };
    }
    if (this.options.wakeOnInvoke && this.desired === 0) {
      this.requests.push(1);
      this.ask(1);
      if (this.current > 0) return undefined;
    }
    return { status: 400, errorType: 'ValidationError', message: NO_CAPACITY_MESSAGE };
  }

  stats(): CapacityStats {
    return {
      state: this.state(),
      desiredCopies: this.desired,
      currentCopies: this.current,
      noCapacity: this.noCapacity,
      requests: [...this.requests],
    };
  }
}
