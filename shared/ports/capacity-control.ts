/**
 * The copies of one SageMaker inference component as the control plane reports them
 * (`DescribeInferenceComponent`: RuntimeConfig.DesiredCopyCount / CurrentCopyCount and
 * InferenceComponentStatus).
 */
export interface ComponentCopies {
  /** Copies last asked for. */
  readonly desiredCopies: number;
  /** Copies deployed and serving now (lags behind `desiredCopies` while scaling). */
  readonly currentCopies: number;
  /** `InService`, `Creating`, `Updating`, `Failed` or `Deleting`. */
  readonly status: string;
}

/** What a request for copies did. */
export type SetCopiesOutcome =
  /** SageMaker accepted the new copy count. */
  | { readonly applied: true }
  /**
   * Not applied, and nothing is wrong: the component is busy (an update under way), so the
   * caller leaves it to the next sweep. `reason` is SageMaker's message.
   */
  | { readonly applied: false; readonly reason: string };

/**
 * (secondary port) The copies of an endpoint's inference component: read them, ask for a
 * number. Deployed: the SageMaker control plane; locally the model server emulates the
 * same two calls over the same protocol.
 */
export interface CapacityControl {
  /** @throws CapacityControlError (component missing, access denied, throttled past the SDK's retries) */
  describe(componentName: string): Promise<ComponentCopies>;
  /** @throws CapacityControlError for anything but a busy component (see {@link SetCopiesOutcome}) */
  setCopies(componentName: string, copies: number): Promise<SetCopiesOutcome>;
}
