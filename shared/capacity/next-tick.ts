import { cronField, MONTHS, RATE_UNITS, ScheduleUnsupported, WEEKDAYS } from '../cost/schedule-runs.ts';

/** A pipeline's `schedule` as the capacity rules read it. */
export interface ScheduleSpec {
  /** EventBridge Scheduler expression: `cron(...)` or `rate(...)`. */
  readonly expression: string;
  /** IANA time zone the cron fields are read in. */
  readonly timezone: string;
}

/** A parsed expression: a rate's period, or a cron's allowed values per field (undefined: any). */
export type ParsedSchedule =
  | { readonly kind: 'rate'; readonly periodSeconds: number }
  | {
      readonly kind: 'cron';
      readonly minutes?: Set<number>;
      readonly hours?: Set<number>;
      readonly daysOfMonth?: Set<number>;
      readonly months?: Set<number>;
      /** 1 = Sunday ... 7 = Saturday, as EventBridge numbers them. */
      readonly daysOfWeek?: Set<number>;
    };

/**
 * Parses an EventBridge Scheduler expression with the cron fields `sluice cost` reads
 * (shared/cost/schedule-runs.ts): `rate(N minutes|hours|days)`, or
 * `cron(minutes hours day-of-month month day-of-week *)` without `L`, `W` or `#`.
 *
 * @throws ScheduleUnsupported naming what it cannot read
 */
export function parseSchedule(expression: string): ParsedSchedule {
  const rate = /^rate\(\s*(\d+)\s+([a-z]+)\s*\)$/i.exec(expression.trim());
  if (rate) {
    const unit = RATE_UNITS[(rate[2] ?? '').toLowerCase()];
    const count = Number(rate[1]);
    if (unit === undefined || count < 1)
      throw new ScheduleUnsupported(`rate expression "${expression}": expected rate(N minutes|hours|days)`);
    return { kind: 'rate', periodSeconds: count * unit };
  }
  const fields = /^cron\((.+)\)$/i.exec(expression.trim())?.[1]?.trim().split(/\s+/) ?? [];
  if (fields.length !== 6)
    throw new ScheduleUnsupported(
      `schedule "${expression}": expected cron(minutes hours day-of-month month day-of-week year) or rate(N unit)`,
    );
  const [minF = '', hourF = '', domF = '', monthF = '', dowF = '', yearF = ''] = fields;
  if (yearF !== '*') throw new ScheduleUnsupported(`cron year field "${yearF}": only * is supported`);
  const defined = <K extends string>(key: K, value: Set<number> | undefined) =>
    (value === undefined ? {} : { [key]: value }) as { [P in K]?: Set<number> };
  return {
    kind: 'cron',
    ...defined('minutes', cronField(minF, 'minutes', 0, 59)),
    ...defined('hours', cronField(hourF, 'hours', 0, 23)),
    ...defined('daysOfMonth', cronField(domF, 'day-of-month', 1, 31)),
    ...defined('months', cronField(monthF, 'month', 1, 12, MONTHS, 1)),
    ...defined('daysOfWeek', cronField(dowF, 'day-of-week', 1, 7, WEEKDAYS, 1)),
  };
}

const formats = new Map<string, Intl.DateTimeFormat>();

/** The wall-clock fields of `ms` in `timezone`. @throws ScheduleUnsupported for an unknown zone */
function wallClock(ms: number, timezone: string) {
  let format = formats.get(timezone);
  if (format === undefined) {
    try {
      format = new Intl.DateTimeFormat('en-US', {
        timeZone: timezone,
        hourCycle: 'h23',
        year: 'numeric',
        month: 'numeric',
        day: 'numeric',
        hour: 'numeric',
        minute: 'numeric',
        weekday: 'short',
      });
    } catch (error) {
      throw new ScheduleUnsupported(`schedule timezone "${timezone}" is not a known time zone`, {
        cause: error,
      });
    }
    formats.set(timezone, format);
  }
  const parts: Record<string, string> = {};
  for (const part of format.formatToParts(ms)) parts[part.type] = part.value;
  return {
    minute: Number(parts.minute),
    hour: Number(parts.hour),
    day: Number(parts.day),
    month: Number(parts.month),
    weekday: WEEKDAYS.indexOf((parts.weekday ?? '').toUpperCase()) + 1,
  };
}

const MINUTE_MS = 60_000;

/**
 * The first tick of a cron schedule strictly after `after` and at most `withinSeconds`
 * later, read in the schedule's time zone; undefined when none falls in that window. Cron
 * schedules fire on whole minutes, so it looks at each minute of the window (a day's
 * window is 1,440 looks). Day-of-month and day-of-week must both match, as `sluice cost`
 * counts them (EventBridge has one of them `?`). A wall-clock time a DST change skips
 * never matches; one it repeats matches twice.
 *
 * @throws ScheduleUnsupported for a rate expression (its ticks depend on when the schedule
 * was created), or one it cannot read
 */
export function nextCronTick(schedule: ScheduleSpec, after: Date, withinSeconds: number): Date | undefined {
  const parsed = parseSchedule(schedule.expression);
  if (parsed.kind !== 'cron')
    throw new ScheduleUnsupported(
      `schedule "${schedule.expression}": a rate has no fixed ticks (it starts when the schedule is created)`,
    );
  const from = after.getTime();
  const last = from + withinSeconds * 1000;
  for (let t = Math.floor(from / MINUTE_MS) * MINUTE_MS + MINUTE_MS; t <= last; t += MINUTE_MS) {
    const wall = wallClock(t, schedule.timezone);
    if (
      (parsed.minutes === undefined || parsed.minutes.has(wall.minute)) &&
      (parsed.hours === undefined || parsed.hours.has(wall.hour)) &&
      (parsed.daysOfMonth === undefined || parsed.daysOfMonth.has(wall.day)) &&
      (parsed.months === undefined || parsed.months.has(wall.month)) &&
      (parsed.daysOfWeek === undefined || parsed.daysOfWeek.has(wall.weekday))
    )
      return new Date(t);
  }
  return undefined;
}

/**
 * Whether the schedule starts a run within `withinSeconds` after `after`: a cron schedule
 * when its next tick falls in the window; a rate schedule when its period is no longer
 * than the window (any window that long holds a tick, whatever the schedule's phase; a
 * longer period's ticks depend on when the schedule was created, which Sluice does not
 * know, so it is not counted). Undefined when the expression cannot be read.
 */
export function ticksWithin(schedule: ScheduleSpec, after: Date, withinSeconds: number): boolean | undefined {
  try {
    const parsed = parseSchedule(schedule.expression);
    if (parsed.kind === 'rate') return parsed.periodSeconds <= withinSeconds;
    return nextCronTick(schedule, after, withinSeconds) !== undefined;
  } catch (error) {
    if (error instanceof ScheduleUnsupported) return undefined;
    throw error;
  }
}
