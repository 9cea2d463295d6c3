import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { ConfigError } from '../../shared/errors/errors.ts';
import { FeatureValueError } from '../../shared/scoring/errors.ts';
import { formatPredictionsCsv, parseCsvRows } from '../../shared/scoring/xgboost/csv-contract.ts';
import { XgboostPredictor } from '../../shared/scoring/xgboost/xgboost-predictor.ts';
import { BackendInputError } from './backend.ts';

/**
 * A model the local server serves over SageMaker's built-in XGBoost contract: a
 * `text/csv` request body in, a `text/csv` answer out. The embedding backends answer
 * JSON; the server picks the handler by the backend's `contentType`.
 */
export interface CsvScoringBackend {
  /** One line a user reads at start-up: what this model is. */
  readonly description: string;
  /** Model id recorded with every score: the file name and a digest of its bytes. */
  readonly model: string;
  /** The request and answer media type of this backend's contract. */
  readonly contentType: 'text/csv';
  /** Answers one request body; a bad request throws {@link BackendInputError} (HTTP 400). */
  score(bodyText: string): string;
}

/**
 * Scores a `text/csv` body (rows without header, an empty field = missing) and answers
 * `text/csv`: one line per row, one value for regression and binary, one per class for
 * multi:softprob. A row that is not numeric, or wider than the model, refuses the whole
 * request with a {@link BackendInputError} naming the row, as the container answers 400.
 */
export function scoreCsv(model: XgboostPredictor, bodyText: string): string {
  try {
    const rows = parseCsvRows(bodyText);
    if (rows.numColumns > model.numFeatures) {
      throw new FeatureValueError(
        `rows have ${rows.numColumns} columns, the model takes at most ${model.numFeatures} features`,
      );
    }
    return formatPredictionsCsv(
      model.predictMatrix(rows.data, rows.numRows, rows.numColumns),
      model.outputsPerRow,
    );
  } catch (error) {
    if (error instanceof FeatureValueError) throw new BackendInputError(error.message, { cause: error });
    throw error;
  }
}

/** The `xgboost-json` backend: evaluates an XGBoost JSON model file in-process, single-threaded. */
export class XgboostJsonBackend implements CsvScoringBackend {
  readonly contentType = 'text/csv' as const;
  readonly description: string;

  constructor(
    readonly predictor: XgboostPredictor,
    readonly model: string,
  ) {
    this.description = `xgboost-json: ${model}: ${predictor.describe()}; text/csv rows without header in, one line per row out`;
  }

  /**
   * Loads `modelPath` (XGBoost's `save_model("model.json")` output). A missing file or a
   * model the evaluator cannot reproduce is a ConfigError (exit 2) with one line.
   */
  static fromFile(modelPath: string): XgboostJsonBackend {
    let bytes: Buffer;
    try {
      bytes = readFileSync(modelPath);
    } catch (error) {
      throw new ConfigError(
        `--model ${modelPath}: cannot read the model file (${(error as NodeJS.ErrnoException).code ?? 'error'})`,
        {
          cause: error,
        },
      );
    }
    const predictor = XgboostPredictor.fromJson(bytes.toString('utf8'), modelPath);
    const digest = createHash('sha256').update(bytes).digest('hex').slice(0, 12);
    return new XgboostJsonBackend(predictor, `xgboost-json:${path.basename(modelPath)}@${digest}`);
  }

  score(bodyText: string): string {
    return scoreCsv(this.predictor, bodyText);
  }
}
