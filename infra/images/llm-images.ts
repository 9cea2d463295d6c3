import type { ImageFamily, ImageVersion } from './image-table.ts';

/**
 * The ECR registry account of AWS's Deep Learning Containers (the Hugging Face TGI LLM
 * images among them) in each region. Unlike the TEI and XGBoost images (registries.ts),
 * these live in 763104351884 in most regions and in a region's own account in the opt-in
 * ones. Copied from the SageMaker Python SDK's `src/sagemaker/image_uri_config/huggingface-llm.json`
 * (commit 91ade264f48ca424be068b64540e316a15d931ee, the same map for every TGI version),
 * which agrees with the region table of aws/deep-learning-containers `available_images.md`
 * ("Deep Learning Containers Docker Images are available in the following regions").
 * The isolated partitions are left out, as in registries.ts.
 */
export const DLC_REGISTRIES: Readonly<Record<string, string>> = {
  'af-south-1': '626614931356',
  'ap-east-1': '871362719292',
  'ap-northeast-1': '763104351884',
  'ap-northeast-2': '763104351884',
  'ap-northeast-3': '364406365360',
  'ap-south-1': '763104351884',
  'ap-south-2': '772153158452',
  'ap-southeast-1': '763104351884',
  'ap-southeast-2': '763104351884',
  'ap-southeast-3': '907027046896',
  'ap-southeast-4': '457447274322',
  'ca-central-1': '763104351884',
  'ca-west-1': '204538143572',
  'cn-north-1': '727897471807',
  'cn-northwest-1': '727897471807',
  'eu-central-1': '763104351884',
  'eu-central-2': '380420809688',
  'eu-north-1': '763104351884',
  'eu-south-1': '692866216735',
  'eu-south-2': '503227376785',
  'eu-west-1': '763104351884',
  'eu-west-2': '763104351884',
  'eu-west-3': '763104351884',
  'il-central-1': '780543022126',
  'me-central-1': '914824155844',
  'me-south-1': '217643126080',
  'sa-east-1': '763104351884',
  'us-east-1': '763104351884',
  'us-east-2': '763104351884',
  'us-gov-east-1': '446045086412',
  'us-gov-west-1': '442386744353',
  'us-west-1': '763104351884',
  'us-west-2': '763104351884',
};

/** A TGI GPU image: `<tag_prefix>-gpu-<py>-<container_version>[-<release>]`, as the SDK builds it. */
function tgiImage(tag: string): ImageVersion {
  return { tag, registries: DLC_REGISTRIES };
}

/**
 * Hugging Face Text Generation Inference images for SageMaker (repository
 * `huggingface-pytorch-tgi-inference`), the LLM container the stack deploys for `generate`
 * pipelines. With `MESSAGES_API_ENABLED=true` TGI answers the OpenAI chat completions body
 * (`messages` in; `choices[0].message.content`, `finish_reason` and `usage` out) on SageMaker's
 * `/invocations`, which is what the workers send (TGI docs, "HTTP API Reference", Amazon
 * SageMaker: https://huggingface.co/docs/text-generation-inference/reference/api_reference;
 * the Messages API exists from TGI 1.4.0).
 *
 * - 3.0.1: tag `2.4.0-tgi3.0.1-gpu-py311-cu124-ubuntu22.04`, added to the SDK's
 *   huggingface-llm.json by aws/sagemaker-python-sdk commit
 *   6593c697dac40c743cd8e9f611b4a4fe8ff05076 ("add tgi 3.0.1 image", version alias `3.0`).
 * - 3.1.1: tag `2.6.0-tgi3.1.1-gpu-py311-cu124-ubuntu22.04-v2.0`, as Hugging Face's
 *   SageMaker TGI image table lists it (huggingface/hub-docs `docs/sagemaker/tgi.md`,
 *   pushed 2025-03-17).
 *
 * The default is 3.0.1, the newest version the SDK's table holds for every region above;
 * `-c sluice:tgiVersion=3.1` picks 3.1.1. Both are built on CUDA 12.4, which every
 * SageMaker GPU instance type in infra/images/gpu-instances.ts runs.
 */
export const TGI_IMAGES: ImageFamily = {
  name: 'TGI',
  versionKey: 'sluice:tgiVersion',
  uriKey: 'sluice:tgiImageUri',
  repository: 'huggingface-pytorch-tgi-inference',
  defaultVersion: '3.0.1',
  aliases: { '3.0': '3.0.1', '3.1': '3.1.1' },
  versions: {
    '3.0.1': tgiImage('2.4.0-tgi3.0.1-gpu-py311-cu124-ubuntu22.04'),
    '3.1.1': tgiImage('2.6.0-tgi3.1.1-gpu-py311-cu124-ubuntu22.04-v2.0'),
  },
};
