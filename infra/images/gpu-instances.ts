/** One SageMaker GPU instance type: its GPUs and the memory of each. */
export interface GpuInstance {
  /** NVIDIA GPU model. */
  readonly gpu: string;
  readonly gpus: number;
  /** Memory of one GPU, GiB. */
  readonly gpuMemoryGiB: number;
}

const family = (gpu: string, gpuMemoryGiB: number, sizes: Readonly<Record<string, number>>) =>
  Object.fromEntries(
    Object.entries(sizes).map(([size, gpus]) => [size, { gpu, gpus, gpuMemoryGiB } satisfies GpuInstance]),
  );

/**
 * The GPU instance types an LLM endpoint may run on, with their GPUs, from AWS's
 * accelerated-computing instance specifications (Amazon EC2 Instance Types guide,
 * "Accelerated computing" hardware specifications:
 * https://docs.aws.amazon.com/ec2/latest/instancetypes/ac.html; the g5 and g6 rows also in
 * the AWS Batch user guide, "Run GPU jobs": https://docs.aws.amazon.com/batch/latest/userguide/gpu-jobs.html).
 * SageMaker's `ml.` types have the EC2 type's GPUs. Families: g5 (A10G, 24 GiB), g6 (L4,
 * 24 GiB), g6e (L40S, 48 GiB), p4d (A100, 40 GiB), p4de (A100, 80 GiB), p5 (H100, 80 GiB).
 * A type outside the table is refused at synth in one line (the check below cannot be made).
 */
export const GPU_INSTANCES: Readonly<Record<string, GpuInstance>> = {
  ...family('A10G', 24, {
    'ml.g5.xlarge': 1,
    'ml.g5.2xlarge': 1,
    'ml.g5.4xlarge': 1,
    'ml.g5.8xlarge': 1,
    'ml.g5.16xlarge': 1,
    'ml.g5.12xlarge': 4,
    'ml.g5.24xlarge': 4,
    'ml.g5.48xlarge': 8,
  }),
  ...family('L4', 24, {
    'ml.g6.xlarge': 1,
    'ml.g6.2xlarge': 1,
    'ml.g6.4xlarge': 1,
    'ml.g6.8xlarge': 1,
    'ml.g6.16xlarge': 1,
    'ml.g6.12xlarge': 4,
    'ml.g6.24xlarge': 4,
    'ml.g6.48xlarge': 8,
  }),
  ...family('L40S', 48, {
    'ml.g6e.xlarge': 1,
    'ml.g6e.2xlarge': 1,
    'ml.g6e.4xlarge': 1,
    'ml.g6e.8xlarge': 1,
    'ml.g6e.16xlarge': 1,
    'ml.g6e.12xlarge': 4,
    'ml.g6e.24xlarge': 4,
    'ml.g6e.48xlarge': 8,
  }),
  ...family('A100', 40, { 'ml.p4d.24xlarge': 8 }),
  ...family('A100', 80, { 'ml.p4de.24xlarge': 8 }),
  ...family('H100', 80, { 'ml.p5.48xlarge': 8 }),
};

/**
 * Parameter counts (billions) of models a `generate` pipeline may name without giving
 * `endpoint.modelParametersBillions`, as each model's Hugging Face page reports the
 * safetensors weights (https://huggingface.co/<model id>).
 */
export const KNOWN_MODEL_PARAMETERS_BILLIONS: Readonly<Record<string, number>> = {
  'meta-llama/Llama-3.1-8B-Instruct': 8.03,
  'mistralai/Mistral-7B-Instruct-v0.3': 7.25,
  'Qwen/Qwen2.5-7B-Instruct': 7.62,
};

/**
 * Models whose Hugging Face page asks a user to accept its licence before downloading
 * (gated): TGI pulls them only with a Hub token (HF_TOKEN), and the stack puts no secret in a
 * template, so an endpoint for one of them would never start. Synth refuses them in one line.
 * Checked on each model's page (https://huggingface.co/<model id>), 2026-12-07.
 */
export const GATED_MODELS: ReadonlySet<string> = new Set([
  'meta-llama/Llama-3.1-8B-Instruct',
  'mistralai/Mistral-7B-Instruct-v0.3',
]);

/** Bytes per parameter of 16-bit weights (bf16/fp16), the dtype TGI loads unquantized models in. */
export const BYTES_PER_PARAMETER = 2;

/**
 * Share of a copy's GPU memory the weights may take: the rest holds the KV cache (which
 * sets how many requests decode together), activations and the CUDA context. A model
 * filling more than this serves too few requests at once to keep a GPU worth its price.
 */
export const MAX_WEIGHTS_SHARE = 0.8;

/** Tensor-parallel degrees TGI shards a model over (the attention heads must divide evenly). */
const SHARDS = [1, 2, 4, 8];

/** What an LLM endpoint's copies get: the instance's GPUs and how many one copy spans. */
export interface LlmPlacement {
  readonly instance: GpuInstance;
  readonly gpusPerCopy: number;
  /** The weights at 16 bits, GiB. */
  readonly weightsGiB: number;
}

/**
 * Checks that `model` (of `parametersBillions`, else the known size) fits `instanceType`
 * with `gpusPerCopy` GPUs per copy (default all of the instance's): a one-line error naming
 * `where` and the fix when the type is not a GPU type in the table, the GPUs do not divide,
 * or the 16-bit weights take more than {@link MAX_WEIGHTS_SHARE} of the copy's GPU memory.
 */
export function placeLlm(
  where: string,
  model: string,
  instanceType: string,
  gpusPerCopy: number | undefined,
  parametersBillions: number | undefined,
): LlmPlacement {
  const instance = GPU_INSTANCES[instanceType];
  if (!instance) {
    throw new Error(
      `${where}: endpoint.instanceType ${instanceType} is not a GPU instance type Sluice can host an LLM on (infra/images/gpu-instances.ts): use one of ${Object.keys(GPU_INSTANCES).join(', ')}`,
    );
  }
  const gpus = gpusPerCopy ?? instance.gpus;
  if (gpus > instance.gpus || !SHARDS.includes(gpus)) {
    throw new Error(
      `${where}: endpoint.gpusPerCopy ${gpus} does not fit ${instanceType} (${instance.gpus} x ${instance.gpu}): use 1, 2, 4 or 8, at most ${instance.gpus}`,
    );
  }
  const billions = parametersBillions ?? KNOWN_MODEL_PARAMETERS_BILLIONS[model];
  if (billions === undefined) {
    throw new Error(
      `${where}: the size of model ${model} is unknown, so its GPU memory cannot be checked: set endpoint.modelParametersBillions (e.g. 8.03 for meta-llama/Llama-3.1-8B-Instruct)`,
    );
  }
  const weightsGiB = (billions * 1e9 * BYTES_PER_PARAMETER) / 2 ** 30;
  const memoryGiB = gpus * instance.gpuMemoryGiB;
  if (weightsGiB > MAX_WEIGHTS_SHARE * memoryGiB) {
    throw new Error(
      `${where}: model ${model} (${billions}B parameters, ${weightsGiB.toFixed(1)} GiB at 16 bits) does not fit ${gpus} x ${instance.gpu} (${memoryGiB} GiB, at most ${MAX_WEIGHTS_SHARE * 100}% for weights) on ${instanceType}: use a larger instance type or more endpoint.gpusPerCopy`,
    );
  }
  return { instance, gpusPerCopy: gpus, weightsGiB };
}
