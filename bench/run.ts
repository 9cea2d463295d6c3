/**
 * `npm run bench`: runs each benchmark beside its baseline in the same process and
 * writes the figures to bench/results/<name>.json (with the machine they came from).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { runChunkIndexBench } from './chunk-index.ts';
import { runHostingBench } from './hosting.ts';
import { runIncrementalBench } from './incremental.ts';
import { runManifestsBench } from './manifests.ts';
import { runMemoryBench } from './memory.ts';
import { runOverheadBench } from './overhead.ts';
import { runPaddingBench } from './padding.ts';
import { runPipelineShareBench } from './pipeline-share.ts';
import { runSaturationBench } from './saturation.ts';
import { runScoringBench } from './scoring.ts';
import { runScoringEndToEndBench } from './scoring-e2e.ts';
import { runSimulatedDayBench } from './simulated-day.ts';
import { runSkewBench } from './skew.ts';
import { runTokenEstimateBench } from './token-estimate.ts';

const resultsDir = path.join(path.dirname(fileURLToPath(import.meta.url)), 'results');
mkdirSync(resultsDir, { recursive: true });

const machine = {
  node: process.version,
  cpus: os.cpus().length,
  cpuModel: os.cpus()[0]?.model ?? 'unknown',
  memoryGiB: Math.round(os.totalmem() / 2 ** 30),
};
const benches: Record<string, () => Promise<{ name: string }> | { name: string }> = {
  padding: runPaddingBench,
  'token-estimate': runTokenEstimateBench,
  incremental: () => runIncrementalBench(),
  manifests: () => runManifestsBench(),
  saturation: runSaturationBench,
  overhead: () => runOverheadBench(),
  skew: () => runSkewBench(),
  memory: () => runMemoryBench(),
  scoring: () => runScoringBench(),
  'scoring-e2e': () => runScoringEndToEndBench(),
  hosting: () => runHostingBench(),
  'simulated-day': () => runSimulatedDayBench(),
  'pipeline-share': () => runPipelineShareBench(),
  'chunk-index': () => runChunkIndexBench(),
  'tree-shap': async () => (await import('./tree-shap.ts')).runTreeShapBench(),
  search: async () => (await import('./search.ts')).runSearchBench(),
  recommend: async () => (await import('./recommend.ts')).runRecommendBench(),
  'recommend-scale': async () => (await import('./recommend-scale.ts')).runRecommendScaleBench(),
  generate: async () => (await import('./generate-quality.ts')).runGenerateBench(),
  'generate-saturation': async () => (await import('./generate-saturation.ts')).runGenerateSaturationBench(),
};
// `npm run bench -- padding incremental` runs only those; no names runs them all.
const wanted = process.argv.slice(2);
const unknown = wanted.filter((name) => !(name in benches));
if (unknown.length > 0) {
  console.error(`unknown benchmark ${unknown.join(', ')} (known: ${Object.keys(benches).join(', ')})`);
  process.exit(2);
}
for (const [name, bench] of Object.entries(benches)) {
  if (wanted.length > 0 && !wanted.includes(name)) continue;
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
