/**
 * The ECR registry account of SageMaker's deep-learning and built-in algorithm images in
 * each region, as the SageMaker Python SDK lists them (`src/sagemaker/image_uri_config/`,
 * `huggingface-tei.json` for every TEI version 1.2.3 to 1.9.4 and `xgboost.json` for the
 * XGBoost `1.7-1` and `2.1-0` inference images: the same account in every region for all of
 * them). Copied from the SDK at commit 1cb00e0c4ac6c36df32c2fb00fb0428c266d5bd5
 * (huggingface-tei.json) and 02ed3cbfd8f1c519f8a829b545bb78a47a538546 (xgboost.json).
 *
 * The isolated partitions (`us-iso-*`, `us-isob-*`, `us-isof-*`) are left out: their ECR
 * domains differ and nothing here can check a deployment to them.
 */
export const SAGEMAKER_IMAGE_REGISTRIES: Readonly<Record<string, string>> = {
  'af-south-1': '510948584623',
  'ap-east-1': '651117190479',
  'ap-northeast-1': '354813040037',
  'ap-northeast-2': '366743142698',
  'ap-northeast-3': '867004704886',
  'ap-south-1': '720646828776',
  'ap-south-2': '628508329040',
  'ap-southeast-1': '121021644041',
  'ap-southeast-2': '783357654285',
  'ap-southeast-3': '951798379941',
  'ap-southeast-4': '106583098589',
  'ca-central-1': '341280168497',
  'ca-west-1': '190319476487',
  'cn-north-1': '450853457545',
  'cn-northwest-1': '451049120500',
  'eu-central-1': '492215442770',
  'eu-central-2': '680994064768',
  'eu-north-1': '662702820516',
  'eu-south-1': '978288397137',
  'eu-south-2': '104374241257',
  'eu-west-1': '141502667606',
  'eu-west-2': '764974769150',
  'eu-west-3': '659782779980',
  'il-central-1': '898809789911',
  'me-central-1': '272398656194',
  'me-south-1': '801668240914',
  'sa-east-1': '737474898029',
  'us-east-1': '683313688378',
  'us-east-2': '257758044811',
  'us-gov-east-1': '237065988967',
  'us-gov-west-1': '414596584902',
  'us-west-1': '746614075791',
  'us-west-2': '246618743249',
};

/**
 * Regions that hold the images but whose CloudFormation has no `AWS::SageMaker::Model`,
 * `EndpointConfig` or `Endpoint` resource type, per the region schemas cfn-lint 1.51
 * ships (E3006 when the default template is linted for them): the stack cannot create its
 * endpoints there, so synth refuses them. `test/infra/cfn-lint.test.ts` lints the default
 * template in every other region of the table, so a region listed wrongly on either side
 * fails a test once cfn-lint's schemas say otherwise.
 */
export const REGIONS_WITHOUT_SAGEMAKER_RESOURCES: readonly string[] = [
  'ap-south-2',
  'ap-southeast-4',
  'ca-west-1',
  'eu-central-2',
  'eu-south-2',
  'il-central-1',
  'me-central-1',
  'us-gov-east-1',
];

/**
 * Deployable regions whose CloudFormation has no `AWS::SageMaker::InferenceComponent`, per
 * the region schemas cfn-lint 1.51 ships (E3006 when a template with one is linted for
 * them). Endpoints with run-scoped capacity (every embed pipeline, score pipelines with
 * `model.hosting: instance`) are inference components, so synth refuses such a stack there
 * in one line; score pipelines hosted `in-worker` or `serverless` deploy anywhere.
 * `test/infra/cfn-lint.test.ts` lints the component templates in every other deployable
 * region and a template without components in all of them.
 */
export const REGIONS_WITHOUT_INFERENCE_COMPONENTS: readonly string[] = [
  'af-south-1',
  'ap-east-1',
  'ap-northeast-3',
  'cn-north-1',
  'cn-northwest-1',
  'eu-south-1',
  'eu-west-3',
  'me-south-1',
  'us-gov-west-1',
  'us-west-1',
];

/** Regions Sluice deploys to: those with SageMaker's images and its CloudFormation resource types. */
export const DEPLOYABLE_REGIONS: readonly string[] = Object.keys(SAGEMAKER_IMAGE_REGISTRIES).filter(
  (region) => !REGIONS_WITHOUT_SAGEMAKER_RESOURCES.includes(region),
);

/** The domain of ECR registries in a region: `amazonaws.com.cn` in China, `amazonaws.com` elsewhere. */
export function ecrDomainOf(region: string): string {
  return region.startsWith('cn-') ? 'amazonaws.com.cn' : 'amazonaws.com';
}
