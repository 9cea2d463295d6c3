import { describe, expect, it } from 'vitest';
import { nextCronTick, parseSchedule, ticksWithin } from '../../shared/capacity/next-tick.ts';
import { ScheduleUnsupported } from '../../shared/cost/schedule-runs.ts';
import { scheduledRunId } from '../../shared/plan/scheduled-run.ts';

const utc = (expression: string) => ({ expression, timezone: 'UTC' });
const at = (iso: string) => new Date(iso);

describe('nextCronTick', () => {
  it('finds the next whole minute the fields allow, strictly after the time, within the window', () => {
    const nightly = utc('cron(0 3 * * ? *)');
    expect(nextCronTick(nightly, at('2026-12-07T02:57:10Z'), 300)?.toISOString()).toBe(
      '2026-12-07T03:00:00.000Z',
    );
    // The tick at the time itself is not "after" it.
    expect(nextCronTick(nightly, at('2026-12-07T03:00:00Z'), 300)).toBeUndefined();
    // Outside the window: 5 min after 02:54:59 is 02:59:59.
    expect(nextCronTick(nightly, at('2026-12-07T02:54:59Z'), 300)).toBeUndefined();
    // A day ahead, within a day's window.
    expect(nextCronTick(nightly, at('2026-12-07T03:00:00Z'), 86_400)?.toISOString()).toBe(
      '2026-12-08T03:00:00.000Z',
    );
  });

  it('reads steps, lists, ranges and names', () => {
    const quarter = utc('cron(0/15 * * * ? *)');
    expect(nextCronTick(quarter, at('2026-12-07T10:16:00Z'), 3600)?.toISOString()).toBe(
      '2026-12-07T10:30:00.000Z',
    );
    // Weekdays at 02:00 and 14:00: Saturday 5 Dec 2026 goes to Monday 02:00.
    const weekdays = utc('cron(0 2,14 ? * MON-FRI *)');
    expect(nextCronTick(weekdays, at('2026-12-05T15:00:00Z'), 3 * 86_400)?.toISOString()).toBe(
      '2026-12-07T02:00:00.000Z',
    );
    const january = utc('cron(30 12 1 JAN ? *)');
    expect(nextCronTick(january, at('2026-12-31T12:00:00Z'), 2 * 86_400)?.toISOString()).toBe(
      '2027-01-01T12:30:00.000Z',
    );
  });

  it('reads the fields in the schedule’s time zone, across a DST change', () => {
    const berlin = { expression: 'cron(0 3 * * ? *)', timezone: 'Europe/Berlin' };
    // Winter: 03:00 in Berlin is 02:00 UTC.
    expect(nextCronTick(berlin, at('2026-12-07T01:58:00Z'), 300)?.toISOString()).toBe(
      '2026-12-07T02:00:00.000Z',
    );
    // Summer: 03:00 in Berlin is 01:00 UTC.
    expect(nextCronTick(berlin, at('2026-07-07T00:58:00Z'), 300)?.toISOString()).toBe(
      '2026-07-07T01:00:00.000Z',
    );
    // 29 March 2026: Berlin skips 02:00-03:00 (02:00 never happens that day); 03:00 CEST is 01:00 UTC.
    const two = { expression: 'cron(30 2 * * ? *)', timezone: 'Europe/Berlin' };
    expect(nextCronTick(two, at('2026-03-29T00:00:00Z'), 6 * 3600)).toBeUndefined();
    expect(nextCronTick(two, at('2026-03-29T00:00:00Z'), 2 * 86_400)?.toISOString()).toBe(
      '2026-03-30T00:30:00.000Z',
    );
  });

  it('refuses a rate (its ticks depend on when the schedule was created) and what it cannot read', () => {
    expect(() => nextCronTick(utc('rate(1 hour)'), at('2026-12-07T00:00:00Z'), 60)).toThrow(
      ScheduleUnsupported,
    );
    expect(() => nextCronTick(utc('cron(0 3 L * ? *)'), at('2026-12-07T00:00:00Z'), 60)).toThrow(
      /L, W and # are not supported/,
    );
    expect(() =>
      nextCronTick(
        { expression: 'cron(0 3 * * ? *)', timezone: 'Mars/Olympus' },
        at('2026-12-07T00:00:00Z'),
        60,
      ),
    ).toThrow(/Mars\/Olympus/);
  });

  it('agrees with the run ids plan gives scheduled ticks: the tick it finds names a run', () => {
    const tick = nextCronTick(utc('cron(0 3 * * ? *)'), at('2026-12-07T02:59:00Z'), 120);
    expect(
      scheduledRunId({ pipeline: 'docs', prefix: 'datasets/docs/', scheduledTime: tick!.toISOString() }),
    ).toMatch(/^r-20261207T030000Z-[0-9a-f]{12}$/);
  });
});

describe('ticksWithin', () => {
  it('counts a rate whose period fits the window, whatever its phase, and no longer one', () => {
    expect(parseSchedule('rate(5 minutes)')).toEqual({ kind: 'rate', periodSeconds: 300 });
    expect(ticksWithin(utc('rate(5 minutes)'), at('2026-12-07T00:00:00Z'), 300)).toBe(true);
    expect(ticksWithin(utc('rate(1 minute)'), at('2026-12-07T00:00:00Z'), 300)).toBe(true);
    expect(ticksWithin(utc('rate(1 hour)'), at('2026-12-07T00:00:00Z'), 300)).toBe(false);
  });

  it('counts a cron tick in the window, and says undefined for an expression it cannot read', () => {
    expect(ticksWithin(utc('cron(0 3 * * ? *)'), at('2026-12-07T02:56:00Z'), 300)).toBe(true);
    expect(ticksWithin(utc('cron(0 3 * * ? *)'), at('2026-12-07T03:12:00Z'), 300)).toBe(false);
    expect(ticksWithin(utc('cron(0 3 ? * 6#3 *)'), at('2026-12-07T02:56:00Z'), 300)).toBeUndefined();
  });
});
