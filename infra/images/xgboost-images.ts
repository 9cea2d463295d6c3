import type { ImageFamily } from './image-table.ts';
import { SAGEMAKER_IMAGE_REGISTRIES } from './registries.ts';

/**
 * SageMaker's built-in XGBoost images (repository `sagemaker-xgboost`, tag = the version),
 * copied from the SageMaker Python SDK's `image_uri_config/xgboost.json` (see
 * registries.ts). The default, 1.7-1, runs XGBoost 1.7, the version the committed
 * credit-risk model was saved with (docs/infra.md, Scoring model archive).
 */
export const XGBOOST_IMAGES: ImageFamily = {
  name: 'XGBoost',
  versionKey: 'sluice:xgboostVersion',
  uriKey: 'sluice:xgboostImageUri',
  repository: 'sagemaker-xgboost',
  defaultVersion: '1.7-1',
  aliases: {},
  versions: {
    '1.7-1': { tag: '1.7-1', registries: SAGEMAKER_IMAGE_REGISTRIES },
    '2.1-0': { tag: '2.1-0', registries: SAGEMAKER_IMAGE_REGISTRIES },
  },
};
