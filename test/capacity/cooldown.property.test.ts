import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { backToBack, cooldownAfterRelease } from '../../shared/capacity/cooldown.ts';
import { decideCopies } from '../../shared/capacity/copies.ts';
import type { CapacityConfig } from '../../shared/config/pipeline-config.ts';
import { pipelineConfig } from '../core/factories.ts';

const DEFAULTS: CapacityConfig = pipelineConfig().endpoint.capacity;
const T0 = Date.parse('2026-12-07T00:00:00.000Z');
const iso = (ms: number) => new Date(ms).toISOString();
const utc = (expression: string) => ({ expression, timezone: 'UTC' });

const aRelease = fc.integer({ min: T0, max: T0 + 30 * 86_400_000 });
const aCooldown = fc.integer({ min: 1, max: 86_400 });
/** A history: the previous release and the first lease after it, `gap` seconds later. */
const aHistory = fc.option(
  fc.record({
    before: fc.integer({ min: 1, max: 10 * 86_400 }),
    gap: fc.integer({ min: 0, max: 2 * 86_400 }),
  }),
  { nil: undefined },
);
const stateOf = (history: { before: number; gap: number } | undefined, releasedAt: number) =>
  history === undefined
    ? {}
    : {
        followedRelease: iso(releasedAt - (history.before + history.gap) * 1000),
        followedAt: iso(releasedAt - history.before * 1000),
      };

describe('cooldownAfterRelease', () => {
  it('always mode keeps every cooldown longer than 0; a cooldown of 0 keeps nothing, in either mode', () => {
    fc.assert(
      fc.property(aRelease, fc.integer({ min: 0, max: 86_400 }), aHistory, (releasedAt, seconds, history) => {
        const decide = (cooldown: 'auto' | 'always') =>
          cooldownAfterRelease({
            capacity: { ...DEFAULTS, cooldown, cooldownSeconds: seconds },
            schedules: [],
            state: stateOf(history, releasedAt),
            releasedAt,
          });
        expect(decide('always')).toEqual(
          seconds > 0 ? { keep: true, reason: 'always' } : { keep: false, reason: 'none' },
        );
        if (seconds === 0) expect(decide('auto')).toEqual({ keep: false, reason: 'none' });
      }),
    );
  });

  it('auto mode keeps it exactly when a daily cron tick falls within the cooldown after the release (UTC oracle)', () => {
    fc.assert(
      fc.property(
        aRelease,
        aCooldown,
        fc.integer({ min: 0, max: 23 }),
        fc.integer({ min: 0, max: 59 }),
        (releasedAt, seconds, hour, minute) => {
          const day = new Date(releasedAt);
          let tick = Date.UTC(day.getUTCFullYear(), day.getUTCMonth(), day.getUTCDate(), hour, minute);
          if (tick <= releasedAt) tick += 86_400_000;
          const expected = tick - releasedAt <= seconds * 1000;
          const decision = cooldownAfterRelease({
            capacity: { ...DEFAULTS, cooldown: 'auto', cooldownSeconds: seconds },
            schedules: [utc(`cron(${minute} ${hour} * * ? *)`)],
            state: {},
            releasedAt,
          });
          expect(decision).toEqual(
            expected ? { keep: true, reason: 'schedule' } : { keep: false, reason: 'none' },
          );
        },
      ),
      { numRuns: 60 },
    );
  });

  it('auto mode keeps it when the previous release was followed by a lease within the cooldown, and only then', () => {
    fc.assert(
      fc.property(aRelease, aCooldown, aHistory, (releasedAt, seconds, history) => {
        const decision = cooldownAfterRelease({
          capacity: { ...DEFAULTS, cooldown: 'auto', cooldownSeconds: seconds },
          schedules: [],
          state: stateOf(history, releasedAt),
          releasedAt,
        });
        const expected = history !== undefined && history.gap <= seconds;
        expect(decision).toEqual(
          expected ? { keep: true, reason: 'back-to-back' } : { keep: false, reason: 'none' },
        );
        expect(backToBack(stateOf(history, releasedAt), seconds)).toBe(expected);
      }),
    );
  });

  it('reads a schedule the way the nightly docs pipeline and an hourly scoring run need', () => {
    const auto = { ...DEFAULTS, cooldown: 'auto' as const, cooldownSeconds: 300 };
    const nightly = utc('cron(0 3 * * ? *)');
    // The nightly run finishes at 03:12: the next tick is tomorrow, the copies go now.
    expect(
      cooldownAfterRelease({
        capacity: auto,
        schedules: [nightly],
        state: {},
        releasedAt: Date.parse('2026-12-07T03:12:00Z'),
      }),
    ).toEqual({ keep: false, reason: 'none' });
    // A run of another pipeline on the component ends at 02:57: the nightly tick is 3 minutes away.
    expect(
      cooldownAfterRelease({
        capacity: auto,
        schedules: [nightly],
        state: {},
        releasedAt: Date.parse('2026-12-07T02:57:00Z'),
      }),
    ).toEqual({ keep: true, reason: 'schedule' });
    // rate(5 minutes) always ticks within 300 s; rate(1 hour)'s phase is unknown: not counted.
    const at = Date.parse('2026-12-07T10:00:00Z');
    expect(
      cooldownAfterRelease({ capacity: auto, schedules: [utc('rate(5 minutes)')], state: {}, releasedAt: at })
        .keep,
    ).toBe(true);
    expect(
      cooldownAfterRelease({ capacity: auto, schedules: [utc('rate(1 hour)')], state: {}, releasedAt: at })
        .keep,
    ).toBe(false);
    // A schedule it cannot read keeps the cooldown (a cold start costs more than a cooldown).
    expect(
      cooldownAfterRelease({
        capacity: auto,
        schedules: [utc('cron(0 3 L * ? *)')],
        state: {},
        releasedAt: at,
      }),
    ).toEqual({ keep: true, reason: 'schedule-unknown' });
  });
});

describe('decideCopies with the cooldown decided', () => {
  it('keeps no copies after a release whose cooldown is not kept; keeps them within a kept one', () => {
    fc.assert(
      fc.property(
        aCooldown,
        fc.integer({ min: 1, max: 8 }),
        fc.integer({ min: 0, max: 86_400 }),
        (seconds, desired, since) => {
          const capacity = { ...DEFAULTS, cooldownSeconds: seconds, maxCopies: 8 };
          const now = T0 + since * 1000;
          const input = { capacity, liveCopies: [], desiredCopies: desired, lastReleasedAt: T0, now };
          expect(decideCopies({ ...input, keepCooldown: false })).toMatchObject({
            copies: 0,
            coolingDown: false,
          });
          expect(decideCopies({ ...input, keepCooldown: true }).copies).toBe(since < seconds ? desired : 0);
        },
      ),
    );
  });
});
