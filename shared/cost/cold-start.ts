/**
 * How long a copy takes to serve after a run asks for it on an endpoint scaled to zero: a
 * new instance launched, the container started, the model loaded. Every second of it is
 * billed to the run that waits (shared/cost/estimate-run.ts), so it decides whether the GPU
 * bills close to its busy time (issue 14).
 *
 * The figures are AWS's own, for SageMaker inference endpoints launching new instances,
 * with container caching (on by default since 2026-06-16 for accelerator instance types:
 * the image is not pulled from ECR on the critical path). They are P50s of end-to-end
 * startup, each with the image and model weights of the run that measured it; Sluice's
 * default embedding model (bge-small, 0.13 GB of weights) has far less to download than
 * any of them, so for an embedding endpoint they are upper bounds. None is a Sluice
 * measurement: a measured cold start (bench/gpu/) replaces them when a GPU is available.
 */
export interface ColdStartFigure {
  readonly seconds: number;
  /** What the figure is and where it was read. */
  readonly source: string;
  /** When it was read (YYYY-MM-DD). */
  readonly readOn: string;
}

const CONTAINER_CACHING_BLOG =
  'https://aws.amazon.com/blogs/machine-learning/introducing-container-caching-in-amazon-sagemaker-ai-for-faster-model-scaling/ (2026-06-16; figures as quoted at https://news.ojobit.com/story/sagemaker-ai-container-caching-cuts-genai-scale-out-latency-over-50-percent-6f9207 and https://aitrending.vip/article/introducing-container-caching-in-amazon-sagemaker-ai-for/)';
const READ_ON = '2026-12-08';

const figure = (seconds: number, what: string): ColdStartFigure => ({
  seconds,
  source: `${what}: ${CONTAINER_CACHING_BLOG}`,
  readOn: READ_ON,
});

/**
 * P50 startup of a new instance with container caching, by instance type, from the blog's
 * early-access customers and AWS's own test (before caching in brackets):
 * ml.g4dn.xlarge 134 s (381 s; a 15.7 GB image, no model weights), ml.g5.2xlarge 164 s
 * (346 s; 17.5 GB image, 5.8 GB model), ml.g5.xlarge 216 s (346 s; 10.6 GB image, 6.5 GB
 * model), ml.g6.2xlarge 258 s (525 s; Qwen3-8B in the 17.7 GB LMI image, its weights
 * downloaded in 77 s).
 */
export const COLD_STARTS: Readonly<Record<string, ColdStartFigure>> = {
  'ml.g4dn.xlarge': figure(
    134,
    'ml.g4dn.xlarge, P50 with container caching, a 15.7 GB image and no model weights',
  ),
  'ml.g5.xlarge': figure(216, 'ml.g5.xlarge, P50 with container caching, a 10.6 GB image and a 6.5 GB model'),
  'ml.g5.2xlarge': figure(
    164,
    'ml.g5.2xlarge, P50 with container caching, a 17.5 GB image and a 5.8 GB model',
  ),
  'ml.g6.2xlarge': figure(
    258,
    'ml.g6.2xlarge, P50 with container caching, Qwen3-8B in the 17.7 GB LMI image',
  ),
};

/**
 * An LLM of about 8B parameters: AWS's own test in the same post (Qwen3-8B, 258 s), used
 * for generate endpoints unless the instance type's own figure is longer, since the
 * per-type figures above downloaded 6.5 GB of weights at most.
 */
export const LLM_COLD_START: ColdStartFigure = COLD_STARTS['ml.g6.2xlarge']!;

/**
 * Accelerator types the table does not list: the longest figure in it (258 s), not a
 * guess below what any measured launch took.
 */
const OTHER_ACCELERATOR: ColdStartFigure = {
  ...LLM_COLD_START,
  source: `the longest accelerator figure measured (ml.g6.2xlarge, 258 s), for a type not measured: ${CONTAINER_CACHING_BLOG}`,
};

/**
 * CPU instance types (scoring's `instance` hosting): container caching covers accelerator
 * types only, so the image is pulled at every launch. The same post's figures before
 * caching are 346-525 s; 420 s, within them, is kept.
 */
const CPU_INSTANCE: ColdStartFigure = {
  seconds: 420,
  source: `a CPU type: no container caching, so within the figures before caching (346-525 s): ${CONTAINER_CACHING_BLOG}`,
  readOn: READ_ON,
};

/** SageMaker accelerator families: NVIDIA GPUs (g, p) and AWS Inferentia / Trainium (inf, trn). */
const ACCELERATOR_TYPE = /^ml\.(g\d|p\d|inf\d|trn\d)/;

/**
 * The cold start a run on `instanceType` pays per copy. `llm`: the endpoint serves an LLM,
 * whose weights take longer to fetch and load than the per-type figures' models.
 */
export function coldStartFor(
  instanceType: string,
  options: { readonly llm?: boolean } = {},
): ColdStartFigure {
  const known = COLD_STARTS[instanceType];
  const base = known ?? (ACCELERATOR_TYPE.test(instanceType) ? OTHER_ACCELERATOR : CPU_INSTANCE);
  return options.llm && LLM_COLD_START.seconds > base.seconds ? LLM_COLD_START : base;
}
