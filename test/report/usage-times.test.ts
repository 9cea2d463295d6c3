import { describe, expect, it } from 'vitest';
import { UsageMeter } from '../../shared/cost/unit-usage.ts';

const stats = () => ({ endpointCalls: 0, throttled: 0, retries: 0 });

describe('UsageMeter, for the run report', () => {
  it('stamps when the delivery started and which worker ran it', () => {
    const a = new UsageMeter(() => 1234);
    const b = new UsageMeter(() => 5678);
    expect(a.usage.startedAt).toBe(1234);
    expect(b.usage.startedAt).toBe(5678);
    // One worker number per process (or thread): both deliveries ran here.
    expect(a.usage.worker).toBeGreaterThan(0);
    expect(b.usage.worker).toBe(a.usage.worker);
  });

  it('keeps the longest endpoint call beside their sum', async () => {
    let clock = 0;
    const meter = new UsageMeter(() => clock);
    const durations = [30, 120, 45];
    let call = 0;
    const endpoint = meter.embeddingEndpoint({
      embed: async (inputs) => {
        clock += durations[call++]!;
        return inputs.map(() => [0]);
      },
    });
    for (const _ of durations) await endpoint.embed(['x'], stats());
    expect(meter.usage).toMatchObject({ endpointCalls: 3, endpointCallMs: 195, endpointMaxCallMs: 120 });
  });
});
