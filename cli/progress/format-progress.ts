import type { ProgressSnapshot } from './run-progress.ts';

/** 950 -> "950", 12_345 -> "12.3k", 4_200_000 -> "4.2M": rates stay short on a spinner line. */
export function shortNumber(n: number): string {
  if (n < 1000) return n >= 100 || Number.isInteger(n) ? String(Math.round(n)) : n.toFixed(1);
  if (n < 1_000_000) return `${(n / 1000).toFixed(n < 10_000 ? 2 : 1)}k`;
  return `${(n / 1_000_000).toFixed(1)}M`;
}

/** 42 -> "42s", 125 -> "2m05s", 7260 -> "2h01m". */
export function duration(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

/**
 * One line for a run's progress, e.g. `embed: 3/10 units, 3.60k records, 1.20k records/s,
 * 45.6k tokens/s, 3s so far, ETA 7s, 4 throttled, 2 retries` (the stage only when units name one; tokens only
 * when the pipeline counts them; throttling only when there was some).
 */
export function formatProgress(p: ProgressSnapshot, options: { final?: boolean } = {}): string {
  const parts: string[] = [];
  const failed = p.failedUnits > 0 ? ` (${p.failedUnits} failed)` : '';
  parts.push(`${p.doneUnits + p.failedUnits}/${p.totalUnits} units${failed}`);
  parts.push(`${shortNumber(p.records)} records`);
  if (p.recordsPerSecond !== undefined) parts.push(`${shortNumber(p.recordsPerSecond)} records/s`);
  if (p.tokensPerSecond !== undefined) parts.push(`${shortNumber(p.tokensPerSecond)} tokens/s`);
  if (options.final) parts.push(`in ${duration(p.elapsedSeconds)}`);
  else
    parts.push(
      `${duration(p.elapsedSeconds)} so far`,
      p.etaSeconds === undefined ? 'ETA after the first unit' : `ETA ${duration(p.etaSeconds)}`,
    );
  const live = p.endpoint;
  if (live !== undefined && !options.final) {
    // While units run, the endpoint's own counters: they move before any unit finishes.
    const rate = live.inputsPerSecond === undefined ? '' : `, ${shortNumber(live.inputsPerSecond)} inputs/s`;
    parts.push(`endpoint ${shortNumber(live.calls)} calls${rate}, ${live.throttled} throttled`);
  } else if (p.throttled > 0 || p.retries > 0) parts.push(`${p.throttled} throttled, ${p.retries} retries`);
  if (p.deferrals > 0) parts.push(`${p.deferrals} waits for a cold endpoint`);
  const line = parts.join(', ');
  return p.stage === undefined ? line : `${p.stage}: ${line}`;
}
