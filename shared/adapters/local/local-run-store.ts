import { mkdir, readdir, readFile, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import {
  pendingUnitState,
  type RunState,
  type RunSummary,
  type UnitCounts,
  type UnitState,
  type WorkUnit,
} from '../../domain/types.ts';
import { TransitionConflict } from '../../errors/errors.ts';
import type {
  ListUnitsOptions,
  RunReopening,
  RunStore,
  StageStart,
  StoredUnit,
  UnitCompletion,
} from '../../ports/run-store.ts';

type StoredUnitRecord = UnitState & { descriptor?: WorkUnit };

interface RunFile {
  run: RunState & { summary?: RunSummary; terminalUnits: number; finalizeClaimed: boolean };
  units: Record<string, StoredUnitRecord>;
}

/**
 * Run state for one machine: one JSON file per run under `<dir>/`, kept in memory while
 * the process runs. Every check-and-set happens without an `await` in between, which is
 * what makes the conditional transitions atomic within the process.
 */
export class LocalRunStore implements RunStore {
  private readonly cache = new Map<string, RunFile>();
  private readonly writes = new Map<string, Promise<void>>();

  constructor(readonly dir: string) {}

  private async load(runId: string): Promise<RunFile | undefined> {
    const cached = this.cache.get(runId);
    if (cached) return cached;
    try {
      const file = JSON.parse(await readFile(this.fileOf(runId), 'utf8')) as RunFile;
      // Another caller may have loaded it while this one read the file: keep the first copy.
      const existing = this.cache.get(runId);
      if (existing) return existing;
      this.cache.set(runId, file);
      return file;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw error;
    }
  }

  private fileOf(runId: string): string {
    if (!/^[A-Za-z0-9-]+$/.test(runId)) throw new Error(`invalid run id "${runId}"`);
    return path.join(this.dir, `${runId}.json`);
  }

  /** Writes are chained per run so the file on disk always ends at the newest state. */
  private persist(runId: string): Promise<void> {
    const file = this.cache.get(runId)!;
    const previous = this.writes.get(runId) ?? Promise.resolve();
    const next = previous.then(async () => {
      await mkdir(this.dir, { recursive: true });
      const target = this.fileOf(runId);
      await writeFile(`${target}.tmp`, JSON.stringify(file));
      await rename(`${target}.tmp`, target);
    });
    this.writes.set(runId, next);
    return next;
  }

  async createRun(run: RunState, units: readonly WorkUnit[]): Promise<void> {
    if (await this.load(run.runId)) throw new Error(`run ${run.runId} already exists`);
    const file: RunFile = { run: { ...run, terminalUnits: 0, finalizeClaimed: false }, units: {} };
    for (const unit of units) {
      file.units[unit.unitId] = storedUnitRecord(unit);
    }
    this.cache.set(run.runId, file);
    await this.persist(run.runId);
  }

  async getRun(runId: string): Promise<RunState | undefined> {
    const file = await this.load(runId);
    if (!file) return undefined;
    const { summary: _summary, terminalUnits: _t, finalizeClaimed: _f, ...run } = file.run;
    return structuredClone(run);
  }

  async listRuns(limit = 50): Promise<RunState[]> {
    let names: string[] = [];
    try {
      names = (await readdir(this.dir)).filter((n) => n.endsWith('.json'));
    } catch {
      return [];
    }
    const ids = names
      .map((n) => n.slice(0, -5))
      .sort()
      .reverse()
      .slice(0, limit);
    const runs = await Promise.all(ids.map((id) => this.getRun(id)));
    return runs.filter((r): r is RunState => r !== undefined);
  }

  async listUnits(runId: string, options: ListUnitsOptions = {}): Promise<StoredUnit[]> {
    const file = await this.load(runId);
    if (!file) return [];
    return Object.values(file.units)
      .sort((a, b) => (a.unitId < b.unitId ? -1 : 1))
      .map((u) => (options.withDescriptors ? structuredClone(u) : withoutDescriptor(u)));
  }

  async startUnit(runId: string, unitId: string): Promise<UnitState | undefined> {
    const file = await this.load(runId);
    const unit = file?.units[unitId];
    if (!unit) return undefined;
    unit.attempts += 1;
    if (unit.status === 'pending' || unit.status === 'running') unit.status = 'running';
    await this.persist(runId);
    return withoutDescriptor(unit);
  }

  async completeUnit(
    runId: string,
    unitId: string,
    result: { counts: UnitCounts; actualCost: number; outputKeys: string[] },
  ): Promise<UnitCompletion> {
    return this.terminate(runId, unitId, (unit, run) => {
      unit.status = 'succeeded';
      unit.counts = { ...result.counts };
      unit.actualCost = result.actualCost;
      unit.records = result.counts.records;
      unit.outputKeys = [...result.outputKeys];
      run.doneUnits += 1;
    });
  }

  async recordUnitError(runId: string, unitId: string, error: string): Promise<void> {
    const file = await this.load(runId);
    const unit = file?.units[unitId];
    if (!unit) return;
    unit.lastError = error;
    await this.persist(runId);
  }

  async failUnit(runId: string, unitId: string, error: string): Promise<UnitCompletion> {
    return this.terminate(runId, unitId, (unit, run) => {
      unit.status = 'failed';
      unit.lastError = error;
      run.failedUnits += 1;
    });
  }

  private async terminate(
    runId: string,
    unitId: string,
    apply: (unit: UnitState, run: RunFile['run']) => void,
  ): Promise<UnitCompletion> {
    const file = await this.load(runId);
    const unit = file?.units[unitId];
    if (!file || !unit) throw new TransitionConflict(`unit ${unitId} of run ${runId} does not exist`);
    if (unit.status === 'succeeded' || unit.status === 'failed' || file.run.status !== 'running') {
      return {
        recorded: false,
        finishedRun: false,
        ...(unit.status === 'succeeded' || unit.status === 'failed' ? { unitStatus: unit.status } : {}),
      };
    }
    apply(unit, file.run);
    file.run.terminalUnits += 1;
    const finishedRun = file.run.terminalUnits === file.run.totalUnits && !file.run.finalizeClaimed;
    if (finishedRun) file.run.finalizeClaimed = true;
    await this.persist(runId);
    return { recorded: true, finishedRun, unitStatus: unit.status as 'succeeded' | 'failed' };
  }

  async finishRun(runId: string, summary: RunSummary): Promise<boolean> {
    const file = await this.load(runId);
    if (file?.run.status !== 'running') return false;
    file.run.status = summary.status;
    file.run.finishedAt = summary.finishedAt;
    file.run.summary = summary;
    await this.persist(runId);
    return true;
  }

  /** Atomic within the process: the check and every change happen without an `await` in between. */
  async reopenFailedRun(runId: string): Promise<RunReopening> {
    const file = await this.load(runId);
    if (file?.run.status !== 'failed') return { reopened: false, units: [] };
    const failed = Object.values(file.units)
      .filter((u) => u.status === 'failed')
      .sort((a, b) => (a.unitId < b.unitId ? -1 : 1));
    for (const unit of failed) unit.status = 'pending';
    file.run.failedUnits -= failed.length;
    file.run.terminalUnits -= failed.length;
    file.run.finalizeClaimed = false;
    file.run.status = 'running';
    file.run.finishedAt = null;
    delete file.run.summary;
    await this.persist(runId);
    return { reopened: true, units: failed.map((u) => structuredClone(u)) };
  }

  /** The summary stored by finishRun, for `sluice status`. */
  async getSummary(runId: string): Promise<RunSummary | undefined> {
    return (await this.load(runId))?.run.summary;
  }

  async getUnit(runId: string, unitId: string): Promise<StoredUnit | undefined> {
    const unit = (await this.load(runId))?.units[unitId];
    return unit ? structuredClone(unit) : undefined;
  }

  async addContinuation(runId: string, unit: WorkUnit): Promise<WorkUnit> {
    const file = await this.load(runId);
    if (!file) throw new Error(`run ${runId} does not exist`);
    const existing = file.units[unit.unitId];
    if (existing?.descriptor) return structuredClone(existing.descriptor);
    if (file.run.status !== 'running')
      throw new Error(`run ${runId} is ${file.run.status}: no unit can be added`);
    file.units[unit.unitId] = storedUnitRecord(unit);
    file.run.totalUnits += 1;
    await this.persist(runId);
    return structuredClone(unit);
  }

  /** Atomic within the process, as every transition here. */
  async startStage(runId: string, stage: StageStart): Promise<boolean> {
    const file = await this.load(runId);
    if (file?.run.status !== 'running' || !inStage(file.run, stage.from)) return false;
    file.run.stage = stage.to;
    file.run.totalUnits += stage.unitCount;
    file.run.finalizeClaimed = false;
    await this.persist(runId);
    return true;
  }

  async addStageUnits(runId: string, units: readonly WorkUnit[]): Promise<void> {
    const file = await this.load(runId);
    if (!file) throw new Error(`run ${runId} does not exist`);
    for (const unit of units) file.units[unit.unitId] ??= storedUnitRecord(unit);
    await this.persist(runId);
  }
}

/** Whether a run stored before stages (no stage) may be moved from `from`: any stage its caller names. */
const inStage = (run: RunState, from: string): boolean => (run.stage ?? from) === from;

/** A new unit with a JSON copy of its descriptor: what a DynamoDB item or a queue message would hold. */
function storedUnitRecord(unit: WorkUnit): StoredUnitRecord {
  return { ...pendingUnitState(unit), descriptor: JSON.parse(JSON.stringify(unit)) as WorkUnit };
}

function withoutDescriptor(unit: StoredUnitRecord): UnitState {
  const { descriptor: _descriptor, ...state } = unit;
  return structuredClone(state);
}
