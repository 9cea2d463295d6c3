import { createHash } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openHome } from '../../cli/home.ts';
import { seedBundle } from '../../cli/seed-bundle.ts';
import { loadPipelineConfig } from '../../shared/config/load-pipeline.ts';
import { sluice } from '../support/cli.ts';
import {
  copyPipelines,
  type PipelineRun,
  queryRows,
  runPipeline,
  scoreInWorker,
} from '../support/pipeline-folder.ts';

const CREDIT_SAMPLE = 'events/data/credit-sample.csv';
const MODEL_KEY = 'models/credit-risk/model.json';

const sha256 = (bytes: Uint8Array | string) => createHash('sha256').update(bytes).digest('hex');

/** A copy of the shipped pipelines folder with credit-risk scored in the worker. */
const pipelinesIn = (dir: string) => copyPipelines(dir, { 'credit-risk': scoreInWorker });

/** The first 300 rows of the credit sample (the header included): enough to see every score move. */
async function smallSample(dir: string): Promise<string> {
  const file = path.join(dir, 'credit-small.csv');
  const lines = (await readFile(CREDIT_SAMPLE, 'utf8')).split('\n');
  await writeFile(file, `${lines.slice(0, 301).join('\n')}\n`);
  return file;
}

/** Runs credit-risk on `input` into `home` with its units on the main thread. */
function runCreditRisk(pipelines: string, home: string, input: string) {
  const where: PipelineRun = { input, pipeline: 'credit-risk', pipelines, home };
  return runPipeline(where, '--threads', '0', '--json');
}

/** Runs credit-risk as `runCreditRisk` does and reads its scores back by line. */
async function runAndRead(pipelines: string, home: string, input: string) {
  const run = await runCreditRisk(pipelines, home, input);
  expect(run.code, run.err.join('\n')).toBe(0);
  const summary = run.json();
  const rows = await queryRows<{ line: number; score: number; model: string; model_version: string }>(
    home,
    `select line, score, model, model_version from scores where run_id = '${summary.runId}' order by line`,
  );
  return { summary, rows, err: run.err };
}

describe('sluice run after the model file beside the pipeline changed', () => {
  let work: string;
  let pipelines: string;
  let home: string;
  let input: string;
  beforeAll(async () => {
    work = await mkdtemp(path.join(tmpdir(), 'sluice-model-change-'));
    pipelines = await pipelinesIn(work);
    home = path.join(work, 'home');
    input = await smallSample(work);
  });
  afterAll(() => rm(work, { recursive: true, force: true }));

  it('scores with the new model, says so in one line and in the summary, and copies an unchanged one no more', async () => {
    const modelFile = path.join(pipelines, ...MODEL_KEY.split('/'));
    const oldBytes = await readFile(modelFile);
    const first = await runAndRead(pipelines, home, input);
    expect(first.err.some((l) => l.startsWith(`seeded ${MODEL_KEY} from`))).toBe(true);
    expect(first.summary.replacedFiles).toBeUndefined();

    // The user retrains: same features, another base score, so every score moves.
    const model = JSON.parse(oldBytes.toString('utf8'));
    model.learner.learner_model_param.base_score = '5E-1';
    const newText = JSON.stringify(model);
    await writeFile(modelFile, newText);
    const second = await runAndRead(pipelines, home, input);

    const oldHash = sha256(oldBytes);
    const newHash = sha256(newText);
    const changed = second.err.filter((l) => l.includes(' changed (sha256 '));
    expect(changed).toEqual([
      `model ${MODEL_KEY} changed (sha256 ${oldHash.slice(0, 12)}.. -> ${newHash.slice(0, 12)}..): using the new file`,
    ]);
    expect(second.summary.replacedFiles).toEqual([
      { key: MODEL_KEY, role: 'model', previousSha256: oldHash, sha256: newHash, source: modelFile },
    ]);
    expect(await readFile(path.join(home, 'bucket', ...MODEL_KEY.split('/')), 'utf8')).toBe(newText);

    // The stored summary keeps it (summary.json and the run store), and sluice status says it in one line.
    const stored = JSON.parse(
      await readFile(
        path.join(home, 'bucket', 'runs', 'credit-risk', second.summary.runId, 'summary.json'),
        'utf8',
      ),
    );
    expect(stored.replacedFiles).toEqual(second.summary.replacedFiles);
    const statusJson = (await sluice('status', second.summary.runId, '--home', home, '--json')).json();
    expect(statusJson.summary.replacedFiles).toEqual(second.summary.replacedFiles);
    const status = await sluice('status', second.summary.runId, '--home', home);
    expect(status.code).toBe(0);
    expect(status.out.filter((l: string) => l.includes('replaced'))).toEqual([
      `  replaced before the run by the pipeline folder's files: model ${MODEL_KEY} (sha256 ${oldHash.slice(0, 12)}.. -> ${newHash.slice(0, 12)}..)`,
    ]);
    const firstStatus = await sluice('status', first.summary.runId, '--home', home);
    expect(firstStatus.out.filter((l: string) => l.includes('replaced'))).toEqual([]);

    // Every row of each run carries the content hash of the model that scored it.
    expect(first.summary.model).toMatchObject({ key: MODEL_KEY, version: `sha256:${oldHash.slice(0, 32)}` });
    expect(second.summary.model).toMatchObject({ key: MODEL_KEY, version: `sha256:${newHash.slice(0, 32)}` });
    expect(new Set(first.rows.map((r) => r.model_version))).toEqual(new Set([first.summary.model.version]));
    expect(new Set(second.rows.map((r) => r.model_version))).toEqual(new Set([second.summary.model.version]));
    // base_score 0.25 -> 0.5 adds logit(0.5) - logit(0.25) = ln 3 to every margin: each score rises.
    expect(second.rows).toHaveLength(first.rows.length);
    second.rows.forEach((row, i) => {
      expect(row.line).toBe(first.rows[i]!.line);
      expect(row.score).toBeGreaterThan(first.rows[i]!.score);
    });
    expect(second.rows[0]!.model).not.toBe(first.rows[0]!.model);

    // Unchanged since: nothing copied, nothing said.
    const bucketModel = path.join(home, 'bucket', ...MODEL_KEY.split('/'));
    const before = await stat(bucketModel, { bigint: true });
    const third = await runCreditRisk(pipelines, home, input);
    expect(third.code, third.err.join('\n')).toBe(0);
    expect(third.err.filter((l) => l.includes(MODEL_KEY))).toEqual([]);
    expect(third.json().replacedFiles).toBeUndefined();
    const after = await stat(bucketModel, { bigint: true });
    expect([after.ino, after.mtimeNs]).toEqual([before.ino, before.mtimeNs]);
  });

  it('seeds a replaced model whole when two runs start at once, and keeps the bytes it replaced', async () => {
    const dir = await mkdtemp(path.join(work, 'concurrent-'));
    const folder = await pipelinesIn(dir);
    const config = await loadPipelineConfig(folder, 'credit-risk');
    const home = openHome(path.join(dir, 'home'));
    await seedBundle(home, config, folder, () => {});
    const modelFile = path.join(folder, ...MODEL_KEY.split('/'));
    const oldBytes = await readFile(modelFile);
    const model = JSON.parse(oldBytes.toString('utf8'));
    model.learner.learner_model_param.base_score = '5E-1';
    const newText = JSON.stringify(model);
    await writeFile(modelFile, newText);

    const lines: string[] = [];
    const seeded = await Promise.all(
      [1, 2, 3].map(() => seedBundle(home, config, folder, (l) => lines.push(l))),
    );

    expect(seeded.flat().every((change) => change.sha256 === sha256(newText))).toBe(true);
    expect(await readFile(home.store.pathOf(MODEL_KEY), 'utf8')).toBe(newText);
    expect(await readFile(home.store.versionFileOf(oldBytes)!)).toEqual(oldBytes);
    const folderOfModel = path.dirname(home.store.pathOf(MODEL_KEY));
    expect((await readdir(folderOfModel)).filter((name) => name.endsWith('.tmp'))).toEqual([]);
    // Seeded again once settled: nothing left to say.
    const after: string[] = [];
    expect(await seedBundle(home, config, folder, (l) => after.push(l))).toEqual([]);
    expect(after).toEqual([]);
  });
});
