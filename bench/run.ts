/**
 * `npm run bench`: runs each benchmark beside its baseline in the same process and
 * writes the figures to bench/results/<name>.json (with the machine they came from).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { runMemoryBench } from './memory.ts';
import { runPaddingBench } from './padding.ts';
import { runSaturationBench } from './saturation.ts';
import { runSkewBench } from './skew.ts';

const resultsDir = path.join(path.dirname(fileURLToPath(import.meta.url)), 'results');
mkdirSync(resultsDir, { recursive: true });

const machine = {
  node: process.version,
  cpus: os.cpus().length,
  cpuModel: os.cpus()[0]?.model ?? 'unknown',
  memoryGiB: Math.round(os.totalmem() / 2 ** 30),
};
const benches = [runPaddingBench, runSaturationBench, () => runSkewBench(), () => runMemoryBench()];
for (const bench of benches) {
  const started = Date.now();
  const result = await bench();
  const record = {
    ...result,
    measuredAt: new Date().toISOString(),
    durationMs: Date.now() - started,
    machine,
  };
  writeFileSync(path.join(resultsDir, `${result.name}.json`), `${JSON.stringify(record, null, 2)}\n`);
  console.log(`${result.name}: ${JSON.stringify(result)}`);
}
