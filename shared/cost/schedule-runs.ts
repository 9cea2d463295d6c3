import { ConfigError } from '../errors/errors.ts';

/** A schedule expression Sluice cannot count runs for, with the reason. */
export class ScheduleUnsupported extends ConfigError {}

/** Days in an average month (365.25 / 12). */
export const DAYS_PER_MONTH = 365.25 / 12;

export const RATE_UNITS: Readonly<Record<string, number>> = {
  minute: 60,
  minutes: 60,
  hour: 3600,
  hours: 3600,
  day: 86_400,
  days: 86_400,
};

export const MONTHS = ['JAN', 'FEB', 'MAR', 'APR', 'MAY', 'JUN', 'JUL', 'AUG', 'SEP', 'OCT', 'NOV', 'DEC'];
export const WEEKDAYS = ['SUN', 'MON', 'TUE', 'WED', 'THU', 'FRI', 'SAT'];

/**
 * The values one cron field allows (`*`, `?`, lists, ranges, `/` steps and names), or
 * undefined for "any". EventBridge's `L`, `W` and `#` are refused: they would need a
 * calendar this estimate does not keep.
 */
export function cronField(
  text: string,
  name: string,
  min: number,
  max: number,
  names: readonly string[] = [],
  nameBase = min,
): Set<number> | undefined {
  if (text === '*' || text === '?') return undefined;
  const value = (token: string): number => {
    const byName = names.indexOf(token.toUpperCase());
    const n = byName >= 0 ? byName + nameBase : Number(token);
    if (!Number.isInteger(n) || n < min || n > max)
      throw new ScheduleUnsupported(`cron ${name} field "${text}": ${token} is not ${min}-${max}`);
    return n;
  };
  const allowed = new Set<number>();
  for (const part of text.split(',')) {
    if (/[LW#]/i.test(part.replace(/[A-Z]{3}/gi, (m) => (names.includes(m.toUpperCase()) ? '' : m))))
      throw new ScheduleUnsupported(`cron ${name} field "${text}": L, W and # are not supported`);
    const [range = '', stepText] = part.split('/');
    const step = stepText === undefined ? 1 : Number(stepText);
    if (!Number.isInteger(step) || step < 1)
      throw new ScheduleUnsupported(`cron ${name} field "${text}": bad step ${stepText}`);
    let from: number;
    let to: number;
    if (range === '*') [from, to] = [min, max];
    else if (range.includes('-')) {
      const [a = '', b = ''] = range.split('-');
      [from, to] = [value(a), value(b)];
    } else {
      from = value(range);
      to = stepText === undefined ? from : max;
    }
    for (let n = from; n <= to; n += step) allowed.add(n);
  }
  return allowed;
}

/**
 * Runs an EventBridge Scheduler expression starts in an average month: `rate(N unit)`
 * exactly; `cron(minutes hours day-of-month month day-of-week year)` by counting its
 * firings over a whole non-leap year (2027, UTC) and dividing by 12. The year field must
 * be `*`.
 */
export function runsPerMonth(expression: string): number {
  const rate = /^rate\(\s*(\d+)\s+([a-z]+)\s*\)$/i.exec(expression.trim());
  if (rate) {
    const seconds = RATE_UNITS[(rate[2] ?? '').toLowerCase()];
    const count = Number(rate[1]);
    if (seconds === undefined || count < 1)
      throw new ScheduleUnsupported(`rate expression "${expression}": expected rate(N minutes|hours|days)`);
    return (DAYS_PER_MONTH * 86_400) / (count * seconds);
  }
  const cron = /^cron\((.+)\)$/i.exec(expression.trim());
  const fields = cron?.[1]?.trim().split(/\s+/) ?? [];
  if (fields.length !== 6)
    throw new ScheduleUnsupported(
      `schedule "${expression}": expected cron(minutes hours day-of-month month day-of-week year) or rate(N unit)`,
    );
  const [minF = '', hourF = '', domF = '', monthF = '', dowF = '', yearF = ''] = fields;
  if (yearF !== '*') throw new ScheduleUnsupported(`cron year field "${yearF}": only * is supported`);
  const minutes = cronField(minF, 'minutes', 0, 59);
  const hours = cronField(hourF, 'hours', 0, 23);
  const dom = cronField(domF, 'day-of-month', 1, 31);
  const months = cronField(monthF, 'month', 1, 12, MONTHS, 1);
  const dow = cronField(dowF, 'day-of-week', 1, 7, WEEKDAYS, 1);
  const minutesPerDay = (minutes === undefined ? 60 : minutes.size) * (hours === undefined ? 24 : hours.size);
  let days = 0;
  for (let day = new Date(Date.UTC(2027, 0, 1)); day.getUTCFullYear() === 2027; ) {
    const matchesDom = dom === undefined || dom.has(day.getUTCDate());
    const matchesDow = dow === undefined || dow.has(day.getUTCDay() + 1);
    const matchesMonth = months === undefined || months.has(day.getUTCMonth() + 1);
    if (matchesMonth && matchesDom && matchesDow) days += 1;
    day = new Date(day.getTime() + 86_400_000);
  }
  return (days * minutesPerDay) / 12;
}
