import type { ImageFamily, ImageVersion } from './image-table.ts';
import { SAGEMAKER_IMAGE_REGISTRIES } from './registries.ts';

/**
 * Tag of a SageMaker Text Embeddings Inference GPU image: `<tag_prefix>-gpu-<py>-<container_version>`
 * as the SDK builds it from `huggingface-tei.json`.
 */
function teiImage(version: string, container: string): ImageVersion {
  return { tag: `2.0.1-tei${version}-gpu-py310-${container}`, registries: SAGEMAKER_IMAGE_REGISTRIES };
}

/**
 * Hugging Face Text Embeddings Inference images for SageMaker (repository `tei`), copied
 * from the SageMaker Python SDK's `image_uri_config/huggingface-tei.json` (see
 * registries.ts). TEI 1.9 images are built on CUDA 12.9 and Ubuntu 24.04, earlier ones on
 * CUDA 12.2 and Ubuntu 22.04.
 *
 * The default is 1.8.2: the newest TEI on CUDA 12.2, which every SageMaker GPU instance
 * type's driver runs; 1.9 (`-c sluice:teiVersion=1.9`) needs the newer driver of CUDA 12.9.
 */
export const TEI_IMAGES: ImageFamily = {
  name: 'TEI',
  versionKey: 'sluice:teiVersion',
  uriKey: 'sluice:teiImageUri',
  repository: 'tei',
  defaultVersion: '1.8.2',
  aliases: { '1.2': '1.2.3', '1.4': '1.4.0', '1.6': '1.6.0', '1.7': '1.7.0', '1.8': '1.8.2', '1.9': '1.9.4' },
  versions: {
    '1.2.3': teiImage('1.2.3', 'cu122-ubuntu22.04'),
    '1.4.0': teiImage('1.4.0', 'cu122-ubuntu22.04'),
    '1.6.0': teiImage('1.6.0', 'cu122-ubuntu22.04'),
    '1.7.0': teiImage('1.7.0', 'cu122-ubuntu22.04'),
    '1.8.0': teiImage('1.8.0', 'cu122-ubuntu22.04'),
    '1.8.2': teiImage('1.8.2', 'cu122-ubuntu22.04'),
    '1.9.3': teiImage('1.9.3', 'cu129-ubuntu24.04'),
    '1.9.4': teiImage('1.9.4', 'cu129-ubuntu24.04'),
  },
};
