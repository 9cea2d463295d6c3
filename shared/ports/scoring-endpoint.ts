import type { CallStats } from './embedding-endpoint.ts';

/** A model behind SageMaker's built-in XGBoost contract: `text/csv` rows in, one line of predictions per row out. */
export interface ScoringEndpoint {
  /** Sends rows (CSV, no header, empty field = missing) and returns the response body. */
  score(csvRows: string, stats: CallStats): Promise<string>;
}
