import { EndpointUnavailable } from '../../errors/errors.ts';
import type { CallStats } from '../../ports/embedding-endpoint.ts';
import type { ScoringEndpoint } from '../../ports/scoring-endpoint.ts';
import { SageMakerInvoker, type SageMakerInvokerOptions } from './sagemaker-invoker.ts';

/**
 * (secondary adapter) ScoringEndpoint over SageMaker's built-in XGBoost container:
 * `text/csv` rows without a header in, `text/csv` predictions out, with the retry and
 * adaptive-concurrency rules of {@link SageMakerInvoker}.
 */
export class SageMakerScoringEndpoint implements ScoringEndpoint {
  private readonly invoker: SageMakerInvoker;

  constructor(options: SageMakerInvokerOptions) {
    this.invoker = new SageMakerInvoker(options);
  }

  get maxPayloadBytes(): number {
    return this.invoker.maxPayloadBytes;
  }

  score(csvRows: string, stats: CallStats): Promise<string> {
    return this.invoker.invoke(
      {
        body: csvRows,
        contentType: 'text/csv',
        accept: 'text/csv',
        cost: csvRows.length,
        parse: (body) => {
          if (body === undefined || body.byteLength === 0)
            throw new EndpointUnavailable('endpoint returned an empty body');
          return new TextDecoder().decode(body);
        },
      },
      stats,
    );
  }
}
