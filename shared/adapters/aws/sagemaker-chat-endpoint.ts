import { EndpointUnavailable } from '../../errors/errors.ts';
import type { ChatEndpoint } from '../../jobs/generate/chat-endpoint.ts';
import type { CallStats } from '../../ports/embedding-endpoint.ts';
import { SageMakerInvoker, type SageMakerInvokerOptions } from './sagemaker-invoker.ts';

/**
 * (secondary adapter) ChatEndpoint over SageMaker `InvokeEndpoint`: the OpenAI-compatible
 * chat completions body as `application/json`, which the LLM containers accept on
 * `/invocations` (TGI with `MESSAGES_API_ENABLED=true`; LMI for any body with
 * `messages`), with the retry and adaptive-concurrency rules of {@link SageMakerInvoker}.
 * Give it a `timeoutMs` sized from `max_tokens` (chatTimeoutMs).
 */
export class SageMakerChatEndpoint implements ChatEndpoint {
  private readonly invoker: SageMakerInvoker;

  constructor(options: SageMakerInvokerOptions) {
    this.invoker = new SageMakerInvoker(options);
  }

  complete(body: string, cost: number, stats: CallStats): Promise<string> {
    return this.invoker.invoke(
      {
        body,
        contentType: 'application/json',
        accept: 'application/json',
        cost,
        parse: (response) => {
          if (response === undefined || response.byteLength === 0)
            throw new EndpointUnavailable('endpoint returned an empty body');
          return new TextDecoder().decode(response);
        },
      },
      stats,
    );
  }
}
