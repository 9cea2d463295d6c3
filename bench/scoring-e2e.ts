import { createWriteStream } from 'node:fs';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { CUSTOMER_COLUMNS, customerCsvLines, customers } from '../scripts/credit-risk-sample.ts';
import { runMeasured } from './memory.ts';

async function writeCustomers(file: string, rows: number): Promise<void> {
  const out = createWriteStream(file);
  out.write(`${CUSTOMER_COLUMNS.join(',')}\n`);
  for (let done = 0, seed = 1000; done < rows; seed += 1) {
    const batch = customers(Math.min(50_000, rows - done), seed);
    const text = `${customerCsvLines(batch)}\n`;
    if (!out.write(text)) await new Promise<void>((resolve) => out.once('drain', () => resolve()));
    done += batch.length;
  }
  await new Promise<void>((resolve, reject) =>
    out.end((error?: Error | null) => (error ? reject(error) : resolve())),
  );
}

/**
 * End-to-end scoring: `sluice run --pipeline credit-risk` over 1,000,000 generated
 * customers (CSV), the local XGBoost JSON model served over text/csv, with the child's
 * peak RSS and rows per second.
 */
export async function runScoringEndToEndBench(rows = 1_000_000) {
  const work = await mkdtemp(path.join(tmpdir(), 'sluice-bench-score-'));
  try {
    const file = path.join(work, 'customers.csv');
    await writeCustomers(file, rows);
    const started = Date.now();
    const result = await runMeasured([
      'bin/sluice.js',
      'run',
      file,
      '--pipeline',
      'credit-risk',
      '--home',
      path.join(work, 'home'),
      '--json',
    ]);
    const seconds = (Date.now() - started) / 1000;
    const summary = JSON.parse(result.stdout.trim().split('\n').at(-1) ?? '{}');
    return {
      name: 'scoring-e2e' as const,
      rows,
      inputMegabytes: (await stat(file)).size / 2 ** 20,
      status: summary.status,
      counts: summary.counts,
      units: summary.counts?.units,
      seconds,
      rowsPerSecond: Math.round(rows / seconds),
      peakRssMiB: Math.round(result.peakKiB / 102.4) / 10,
    };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}
