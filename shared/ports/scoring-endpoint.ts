import type { CallStats } from './embedding-endpoint.ts';

/** A model behind SageMaker's built-in XGBoost contract: `text/csv` rows in, one line of predictions per row out. */
export interface ScoringEndpoint {
  /** Sends rows (CSV, no header, empty field = missing) and returns the response body. */
  score(csvRows: string, stats: CallStats): Promise<string>;
  /**
   * The same model at one version of its object (a run's pinned `WorkUnit.modelPin`), for
   * models the worker reads itself (in-worker scoring); endpoints serve what they were
   * deployed with and have none.
   */
  atVersion?(version: string): ScoringEndpoint;
}
