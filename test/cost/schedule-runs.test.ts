import { describe, expect, it } from 'vitest';
import { DAYS_PER_MONTH, runsPerMonth, ScheduleUnsupported } from '../../shared/cost/schedule-runs.ts';

describe('runsPerMonth', () => {
  it('divides an average month by a rate', () => {
    expect(runsPerMonth('rate(1 hour)')).toBeCloseTo(DAYS_PER_MONTH * 24, 9);
    expect(runsPerMonth('rate(15 minutes)')).toBeCloseTo(DAYS_PER_MONTH * 96, 9);
    expect(runsPerMonth('rate(2 days)')).toBeCloseTo(DAYS_PER_MONTH / 2, 9);
  });

  it('counts a cron expression’s firings over a year', () => {
    // Every day at 03:00: 365 a year.
    expect(runsPerMonth('cron(0 3 * * ? *)')).toBeCloseTo(365 / 12, 9);
    // Every hour: 24 x 365.
    expect(runsPerMonth('cron(0 * * * ? *)')).toBeCloseTo((24 * 365) / 12, 9);
    // Weekdays at 02:00 and 14:00: 2027 has 261 weekdays.
    expect(runsPerMonth('cron(0 2,14 ? * MON-FRI *)')).toBeCloseTo((2 * 261) / 12, 9);
    // Every 15 minutes on the 1st of each month: 4 x 24 x 12.
    expect(runsPerMonth('cron(0/15 * 1 * ? *)')).toBeCloseTo(4 * 24, 9);
    // The first of January and July, at noon.
    expect(runsPerMonth('cron(0 12 1 JAN,JUL ? *)')).toBeCloseTo(2 / 12, 9);
  });

  it('refuses what it cannot count, naming the field', () => {
    expect(() => runsPerMonth('cron(0 3 L * ? *)')).toThrow(ScheduleUnsupported);
    expect(() => runsPerMonth('cron(0 3 ? * 6#3 *)')).toThrow(/L, W and # are not supported/);
    expect(() => runsPerMonth('cron(0 25 * * ? *)')).toThrow(/hours field "25"/);
    expect(() => runsPerMonth('cron(0 3 * * ? 2030)')).toThrow(/year field/);
    expect(() => runsPerMonth('rate(1 fortnight)')).toThrow(ScheduleUnsupported);
    expect(() => runsPerMonth('daily')).toThrow(ScheduleUnsupported);
  });
});
