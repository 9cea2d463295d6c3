import { ModelError } from '../../errors/errors.ts';
import type { CallStats } from '../../ports/embedding-endpoint.ts';
import type { ObjectStore } from '../../ports/object-store.ts';
import type { ScoringEndpoint } from '../../ports/scoring-endpoint.ts';
import { FeatureValueError, ModelUnusable } from '../errors.ts';
import { formatPredictionsCsv, parseCsvRows } from '../xgboost/csv-contract.ts';
import type { ModelLoadLimits, WorkerModel, XgboostModelCache } from './model-cache.ts';

export interface InWorkerScoringEndpointOptions {
  /** Where the model object is (S3 deployed, the local bucket folder locally). */
  readonly store: ObjectStore;
  /** `model.modelKey`: an XGBoost JSON model (`Booster.save_model("model.json")`). */
  readonly modelKey: string;
  /** The worker's models, shared by its pipelines (one per container). */
  readonly cache: XgboostModelCache;
  readonly limits: ModelLoadLimits;
  /** The version of the model object to score with (the run's pin); absent: the current one. */
  readonly version?: string;
}

/**
 * (secondary adapter) ScoringEndpoint that scores in the worker itself (`model.hosting:
 * in-worker`): no endpoint, no network call. It answers the same text/csv contract the
 * SageMaker XGBoost container and the local model server answer, with the same evaluator
 * the local server runs (`xgboost-json`), so the scoring use case, its `scoreClass` rule
 * and its tables are the same whichever way the model is hosted.
 *
 * - A row the evaluator refuses (not a number) is a {@link ModelError}, as the container's
 *   400 is: the use case bisects the request and rejects that row alone.
 * - A model that cannot be used (absent, too large for the worker, malformed, an
 *   unsupported objective, fewer features than the feature spec gives) is
 *   {@link ModelUnusable}: the unit fails at once with that one line, and so does the run.
 * - No endpoint call is counted (`endpointCalls` stays 0).
 */
export class InWorkerScoringEndpoint implements ScoringEndpoint {
  private readonly options: InWorkerScoringEndpointOptions;

  constructor(options: InWorkerScoringEndpointOptions) {
    this.options = options;
  }

  /** The model as the worker holds it now (read and compiled on first use; see XgboostModelCache). */
  model(): Promise<WorkerModel> {
    const { cache, store, modelKey, limits, version } = this.options;
    return cache.get(store, modelKey, limits, version);
  }

  /** The same model at exactly one version of its object (a unit's `modelPin`), shared cache and all. */
  atVersion(version: string): InWorkerScoringEndpoint {
    return new InWorkerScoringEndpoint({ ...this.options, version });
  }

  async score(csvRows: string, _stats: CallStats): Promise<string> {
    const { predictor } = await this.model();
    let rows: ReturnType<typeof parseCsvRows>;
    try {
      rows = parseCsvRows(csvRows);
    } catch (error) {
      if (error instanceof FeatureValueError) throw new ModelError(error.message, 400, { cause: error });
      throw error;
    }
    if (rows.numColumns > predictor.numFeatures) {
      // Every row of every unit has the feature spec's width: not a row's fault.
      throw new ModelUnusable(
        `model.modelKey: ${this.options.modelKey} takes ${predictor.numFeatures} features, the feature spec gives ${rows.numColumns} columns`,
      );
    }
    return formatPredictionsCsv(
      predictor.predictMatrix(rows.data, rows.numRows, rows.numColumns),
      predictor.outputsPerRow,
    );
  }
}
