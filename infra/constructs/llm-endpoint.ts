import { type Stack, Token } from 'aws-cdk-lib';
import type { Construct } from 'constructs';
import { inferenceComponentNameOf } from '../../shared/capacity/names.ts';
import type { CapacityConfig, PipelineConfig } from '../../shared/config/pipeline-config.ts';
import { GATED_MODELS, placeLlm } from '../images/gpu-instances.ts';
import { TGI_IMAGES } from '../images/llm-images.ts';
import { REGIONS_WITHOUT_INFERENCE_COMPONENTS } from '../images/registries.ts';
import { type ImageChoice, stackImageUri } from '../images/stack-images.ts';
import { ContainerModelEndpoint, type ContainerModelEndpointProps } from './container-model-endpoint.ts';
import { COPY_MIN_MEMORY_MIB } from './inference-component-hosting.ts';

/**
 * Model ids only the local runtime serves: the rules-chat backend of `sluice run`, which
 * is not a language model. No container can load it, so synth refuses to deploy it.
 */
export const LOCAL_ONLY_LLMS: readonly string[] = ['sluice-rules-chat-v1'];

/**
 * How long SageMaker waits for a copy's container to pass its health check: the documented
 * maximum of `ContainerStartupHealthCheckTimeoutInSeconds` (60 to 3600, SageMaker API
 * reference, InferenceComponentStartupParameters). TGI downloads the weights from the
 * Hugging Face Hub (16 GB for an 8B model at 16 bits), loads them and warms up its batches
 * before it answers /ping, which takes minutes and more on a slow download; a shorter
 * timeout fails a deploy or a cold start that would have succeeded.
 */
export const LLM_STARTUP_HEALTH_CHECK_TIMEOUT_SECONDS = 3600;

/** What one LLM endpoint must serve; generate pipelines naming the same endpoint share it. */
export interface LlmEndpointSpec {
  readonly endpointName: string;
  readonly instanceType: string;
  /** Pipelines served by this endpoint, in config order. */
  readonly pipelines: readonly string[];
  /** Hugging Face model id TGI loads (`HF_MODEL_ID`): the pipelines' `model`, which the rows record. */
  readonly model: string;
  /** GPUs one copy spans (TGI `SM_NUM_GPUS`). */
  readonly gpusPerCopy: number;
  /** TGI `MAX_INPUT_TOKENS`: the largest `endpoint.maxInputTokens`. */
  readonly maxInputTokens: number;
  /** TGI `MAX_TOTAL_TOKENS`: the largest `endpoint.maxInputTokens + generation.maxTokens`. */
  readonly maxTotalTokens: number;
  readonly capacity: CapacityConfig;
}

/**
 * Groups the generate pipelines that call SageMaker (not `endpoint.url`) by `endpoint.name`
 * and checks, in one line naming the pipeline and the fix, what could not deploy: a
 * local-only model, an instance type that is not a GPU type in the table, GPUs per copy
 * that do not fit it, a model whose 16-bit weights do not fit the copy's GPU memory (or
 * whose size is unknown), and pipelines sharing an endpoint that disagree on its model,
 * instance type, GPUs or scaling.
 */
export function llmEndpointSpecs(pipelines: readonly PipelineConfig[]): LlmEndpointSpec[] {
  const byName = new Map<string, LlmEndpointSpec>();
  for (const pipeline of pipelines) {
    if (pipeline.kind !== 'generate' || pipeline.endpoint.url !== undefined) continue;
    const { endpoint, model } = pipeline;
    const where = `pipeline ${pipeline.name}`;
    if (LOCAL_ONLY_LLMS.includes(model)) {
      throw new Error(
        `${where}: model is "${model}", the local rules-chat backend, which no SageMaker endpoint serves: set model in pipelines/${pipeline.name}.json to a Hugging Face model id (e.g. "Qwen/Qwen2.5-7B-Instruct")`,
      );
    }
    if (GATED_MODELS.has(model)) {
      throw new Error(
        `${where}: model ${model} is gated on the Hugging Face Hub and the stack passes no Hub token, so its endpoint would never start: use an ungated model (e.g. "Qwen/Qwen2.5-7B-Instruct") or point endpoint.url at a server that has the model`,
      );
    }
    if (endpoint.capacity.mode === 'always-on' && endpoint.capacity.minCopies > endpoint.capacity.maxCopies) {
      throw new Error(
        `${where}: endpoint.capacity.minCopies ${endpoint.capacity.minCopies} is more than endpoint.capacity.maxCopies ${endpoint.capacity.maxCopies}: always-on keeps minCopies up, so raise maxCopies or lower minCopies`,
      );
    }
    const placement = placeLlm(
      where,
      model,
      endpoint.instanceType,
      endpoint.gpusPerCopy,
      endpoint.modelParametersBillions,
    );
    const spec: LlmEndpointSpec = {
      endpointName: endpoint.name,
      instanceType: endpoint.instanceType,
      pipelines: [pipeline.name],
      model,
      gpusPerCopy: placement.gpusPerCopy,
      maxInputTokens: endpoint.maxInputTokens,
      maxTotalTokens: endpoint.maxInputTokens + pipeline.generation.maxTokens,
      capacity: endpoint.capacity,
    };
    const seen = byName.get(endpoint.name);
    if (!seen) {
      byName.set(endpoint.name, spec);
      continue;
    }
    const sharing = `pipelines ${seen.pipelines.join(', ')} and ${pipeline.name} share endpoint ${endpoint.name}`;
    const differs = (
      [
        ['model', seen.model, spec.model],
        ['endpoint.instanceType', seen.instanceType, spec.instanceType],
        ['endpoint.gpusPerCopy', seen.gpusPerCopy, spec.gpusPerCopy],
        ['endpoint.capacity', scalingOf(seen.capacity), scalingOf(spec.capacity)],
      ] as const
    ).find(([, a, b]) => a !== b);
    if (differs) {
      const [field, a, b] = differs;
      throw new Error(
        `${sharing} but ask for ${field} ${a} and ${b}: one endpoint serves one model one way, so use the same ${field} or another endpoint.name`,
      );
    }
    byName.set(endpoint.name, {
      ...seen,
      pipelines: [...seen.pipelines, pipeline.name],
      maxInputTokens: Math.max(seen.maxInputTokens, spec.maxInputTokens),
      maxTotalTokens: Math.max(seen.maxTotalTokens, spec.maxTotalTokens),
    });
  }
  return [...byName.values()];
}

/** What pipelines sharing a component's one scalable target must agree on. */
function scalingOf(c: CapacityConfig): string {
  return c.mode === 'always-on'
    ? `always-on (${c.minCopies} to ${c.maxCopies} copies)`
    : `run-scoped (up to ${c.maxCopies} copies)`;
}

/** The component name and log retention as every container model endpoint has them. */
export interface LlmEndpointProps
  extends Pick<ContainerModelEndpointProps, 'componentName' | 'logRetention'> {
  /** What to serve and how (`llmEndpointSpecs`), with the deployed endpoint name. */
  readonly spec: LlmEndpointSpec;
  /** TGI image in ECR, in the stack's region (`stackImageUri` with `TGI_IMAGES`). */
  readonly imageUri: string;
}

/**
 * An LLM served by Hugging Face TGI (infra/images/llm-images.ts) with the OpenAI chat
 * completions contract on InvokeEndpoint (`MESSAGES_API_ENABLED`), hosted as a SageMaker
 * inference component of `gpusPerCopy` GPUs per copy on an endpoint that scales to 0
 * instances between runs (`ContainerModelEndpoint`, like the embedding endpoint's
 * run-scoped capacity), plus an execution role that can pull only the TGI repository and
 * write only the endpoint's own log group.
 */
export class LlmEndpoint extends ContainerModelEndpoint {
  constructor(scope: Construct, id: string, props: LlmEndpointProps) {
    const { spec } = props;
    super(scope, id, {
      endpointName: spec.endpointName,
      componentName: props.componentName,
      capacity: spec.capacity,
      instanceType: spec.instanceType,
      imageUri: props.imageUri,
      imageSource: 'sluice:tgiImageUri',
      purpose: 'LLM',
      environment: {
        HF_MODEL_ID: spec.model,
        // TGI shards the model over this many GPUs (tensor parallel): the copy's GPUs.
        SM_NUM_GPUS: String(spec.gpusPerCopy),
        MAX_INPUT_TOKENS: String(spec.maxInputTokens),
        MAX_TOTAL_TOKENS: String(spec.maxTotalTokens),
        // The OpenAI chat completions body on /invocations: what the workers send.
        MESSAGES_API_ENABLED: 'true',
      },
      copy: { accelerators: spec.gpusPerCopy, minMemoryMiB: COPY_MIN_MEMORY_MIB },
      startupHealthCheckTimeoutSeconds: LLM_STARTUP_HEALTH_CHECK_TIMEOUT_SECONDS,
      logRetention: props.logRetention,
    });
  }
}

/**
 * The stack's LLM endpoints, one per distinct `endpoint.name` of its generate pipelines that
 * call SageMaker (children `Llm-<endpoint name>`), on the TGI image of `image` for the
 * stack's region. Refuses in one line an LLM endpoint whose name another endpoint of the
 * stack has (`otherEndpointNames`), or one in a region whose CloudFormation has no
 * inference components. A stack without such pipelines gets none and resolves no image.
 */
export function addLlmEndpoints(
  stack: Stack,
  pipelines: readonly PipelineConfig[],
  image: ImageChoice,
  otherEndpointNames: readonly string[],
): LlmEndpoint[] {
  const specs = llmEndpointSpecs(pipelines);
  if (specs.length === 0) return [];
  for (const spec of specs) {
    if (otherEndpointNames.includes(spec.endpointName)) {
      throw new Error(
        `endpoint ${spec.endpointName} is named by generate pipelines ${spec.pipelines.join(', ')} and by an embed or score pipeline: give each its own endpoint name`,
      );
    }
  }
  if (!Token.isUnresolved(stack.region) && REGIONS_WITHOUT_INFERENCE_COMPONENTS.includes(stack.region)) {
    throw new Error(
      `region ${stack.region} has no AWS::SageMaker::InferenceComponent in CloudFormation, which the LLM endpoint of generate pipelines ${specs.flatMap((s) => s.pipelines).join(', ')} needs (run-scoped capacity): deploy to another region, or give those pipelines an endpoint.url`,
    );
  }
  const imageUri = stackImageUri(stack, TGI_IMAGES, image);
  return specs.map(
    (spec) =>
      new LlmEndpoint(stack, `Llm-${spec.endpointName}`, {
        spec,
        // Derived from the deployed endpoint name, as the workers and the sweeper derive it.
        componentName: inferenceComponentNameOf(spec.endpointName),
        imageUri,
      }),
  );
}
