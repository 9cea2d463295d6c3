import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { SegmentStatsStore } from '../../ports/segment-stats-store.ts';
import type { BetaPrior } from '../../scoring/aggregates/beta-prior.ts';
import type { SegmentStats } from '../../scoring/aggregates/segment-aggregates.ts';

/** Segment statistics of one machine: `<dir>/<runId>.json` per run. */
export class LocalSegmentStatsStore implements SegmentStatsStore {
  constructor(readonly dir: string) {}

  private fileOf(runId: string): string {
    if (!/^[A-Za-z0-9-]+$/.test(runId)) throw new Error(`invalid run id "${runId}"`);
    return path.join(this.dir, `${runId}.json`);
  }

  async recordSegments(
    pipeline: string,
    runId: string,
    prior: BetaPrior,
    segments: readonly SegmentStats[],
  ): Promise<void> {
    await mkdir(this.dir, { recursive: true });
    const file = this.fileOf(runId);
    await writeFile(`${file}.tmp`, JSON.stringify({ pipeline, runId, prior, segments }));
    await rename(`${file}.tmp`, file);
  }

  async listSegments(runId: string): Promise<SegmentStats[]> {
    try {
      const { segments } = JSON.parse(await readFile(this.fileOf(runId), 'utf8')) as {
        segments: SegmentStats[];
      };
      return [...segments].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw error;
    }
  }
}
