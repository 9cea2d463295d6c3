import type { Construct } from 'constructs';
import { ContainerModelEndpoint, type ContainerModelEndpointProps } from './container-model-endpoint.ts';
import { COPY_MIN_MEMORY_MIB } from './inference-component-hosting.ts';

/** The endpoint, component, capacity, instance type and log retention as every container model endpoint has them. */
export interface EmbeddingEndpointProps
  extends Pick<
    ContainerModelEndpointProps,
    'endpointName' | 'componentName' | 'capacity' | 'instanceType' | 'logRetention'
  > {
  /** Text Embeddings Inference image in ECR, in the stack's region (`stackImageUri` with `TEI_IMAGES`). */
  readonly imageUri: string;
  /** Hugging Face model id TEI loads (`HF_MODEL_ID`): the pipeline's `endpoint.model`. */
  readonly hfModelId: string;
  /** TEI `MAX_BATCH_TOKENS`, so the server accepts the batches the client builds. */
  readonly maxBatchTokens: number;
  /** TEI `MAX_CLIENT_BATCH_SIZE`, so the server accepts the batches the client builds. */
  readonly maxClientBatchSize: number;
}

/**
 * A Text Embeddings Inference (TEI) model hosted as a SageMaker inference component (one
 * GPU per copy) on a real-time endpoint that scales to 0 instances between runs
 * (`ContainerModelEndpoint`), plus an execution role that can pull only the TEI
 * image repository and write only the endpoint's own log group.
 */
export class EmbeddingEndpoint extends ContainerModelEndpoint {
  constructor(scope: Construct, id: string, props: EmbeddingEndpointProps) {
    super(scope, id, {
      endpointName: props.endpointName,
      componentName: props.componentName,
      capacity: props.capacity,
      instanceType: props.instanceType,
      imageUri: props.imageUri,
      imageSource: 'sluice:teiImageUri',
      purpose: 'embedding',
      environment: {
        HF_MODEL_ID: props.hfModelId,
        MAX_BATCH_TOKENS: String(props.maxBatchTokens),
        MAX_CLIENT_BATCH_SIZE: String(props.maxClientBatchSize),
      },
      // One GPU per copy: TEI serves one model per GPU.
      copy: { accelerators: 1, minMemoryMiB: COPY_MIN_MEMORY_MIB },
      // TEI downloads the model from the Hugging Face Hub at start-up.
      startupHealthCheckTimeoutSeconds: 600,
      logRetention: props.logRetention,
    });
  }
}
