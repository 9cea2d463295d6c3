/**
 * A `sleep` that never ends by itself: each simulated batch waits until the test opens
 * it, so "the GPU is busy" is a state the test sets, not a race against a timer.
 */
export function sleepGate() {
  const sleepers: (() => void)[] = [];
  return {
    sleep: (_ms: number) => new Promise<void>((resolve) => sleepers.push(resolve)),
    /** Batches holding a slot and waiting to be let go. */
    get held() {
      return sleepers.length;
    },
    openAll() {
      for (const wake of sleepers.splice(0)) wake();
    },
  };
}

/** Polls until `condition` holds (the server handles requests on its own schedule). */
export async function until(condition: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 2000; i += 1) {
    if (condition()) return;
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
  throw new Error(`gave up waiting: ${what}`);
}
