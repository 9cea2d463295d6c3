import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parsePipelineConfig } from '../../shared/config/pipeline-config.ts';
import { ConfigError } from '../../shared/errors/errors.ts';
import { pipelineConfig } from '../core/factories.ts';

describe('capacity config', () => {
  it('defaults to the auto cooldown of 300 s and accepts always', () => {
    expect(pipelineConfig().endpoint.capacity).toMatchObject({ cooldown: 'auto', cooldownSeconds: 300 });
    const always = pipelineConfig({
      endpoint: { name: 'e', dimension: 16, capacity: { cooldown: 'always' } },
    });
    expect(always.endpoint.capacity.cooldown).toBe('always');
    expect(() =>
      pipelineConfig({ endpoint: { name: 'e', dimension: 16, capacity: { cooldown: 'never' as never } } }),
    ).toThrow(ConfigError);
  });

  it('refuses a lease stale sooner than the warm-up limit, in one line naming both keys', () => {
    const capacity = (leaseStaleSeconds: number, warmupLimitSeconds: number) =>
      pipelineConfig({
        endpoint: { name: 'e', dimension: 16, capacity: { leaseStaleSeconds, warmupLimitSeconds } },
      });
    expect(capacity(1801, 1800).endpoint.capacity.leaseStaleSeconds).toBe(1801);
    for (const [stale, warmup] of [
      [1800, 1800],
      [900, 1800],
      [3600, 7200],
    ] as const) {
      let message = '';
      try {
        capacity(stale, warmup);
      } catch (error) {
        expect(error).toBeInstanceOf(ConfigError);
        message = (error as Error).message;
      }
      expect(message).toMatch(/leaseStaleSeconds must exceed warmupLimitSeconds/);
      expect(message).toMatch(/endpoint\.capacity\.leaseStaleSeconds/);
      expect(message.split('\n').filter((line) => /leaseStaleSeconds/.test(line))).toHaveLength(1);
    }
  });

  it('applies the same rule to a scoring model on instances', async () => {
    const raw = JSON.parse(
      await readFile(path.join(import.meta.dirname, '../../pipelines/credit-risk.json'), 'utf8'),
    );
    expect(parsePipelineConfig(raw).kind).toBe('score');
    raw.model.capacity = { ...raw.model.capacity, leaseStaleSeconds: 600 };
    expect(() => parsePipelineConfig(raw)).toThrow(/leaseStaleSeconds must exceed warmupLimitSeconds/);
  });
});
