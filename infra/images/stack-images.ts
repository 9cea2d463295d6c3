import { Stack, Token } from 'aws-cdk-lib';
import type { IConstruct } from 'constructs';
import { parseEcrImageUri } from '../constructs/endpoint-execution-role.ts';
import { type ImageFamily, imageUriOf } from './image-table.ts';
import { REGIONS_WITHOUT_SAGEMAKER_RESOURCES } from './registries.ts';

/** How a stack picks one family's image: a version from the table, or an explicit URI. */
export interface ImageChoice {
  /**
   * Version (or alias) in the family's table.
   * @default - the family's `defaultVersion`
   */
  readonly version?: string;
  /**
   * An explicit ECR image URI, an escape hatch for an image the table does not hold; it
   * must be in the stack's region.
   * @default - the table's image for the stack's region and `version`
   */
  readonly uri?: string;
}

/**
 * The image URI an endpoint in `scope`'s stack runs: the table's image for the stack's
 * region, or `choice.uri` when it is in that region. SageMaker pulls a model's image only
 * from the model's own region, so the stack's region must be concrete (an
 * environment-agnostic stack cannot choose); every refusal is one line.
 */
export function stackImageUri(scope: IConstruct, family: ImageFamily, choice: ImageChoice = {}): string {
  const stack = Stack.of(scope);
  if (Token.isUnresolved(stack.region)) {
    throw new Error(
      `stack ${stack.stackName} has no concrete region (environment-agnostic), so its ${family.name} image cannot be chosen: ` +
        'synthesize with a region (AWS_REGION, AWS_DEFAULT_REGION or --profile; cdk passes it as CDK_DEFAULT_REGION) or give the stack env.region',
    );
  }
  if (REGIONS_WITHOUT_SAGEMAKER_RESOURCES.includes(stack.region)) {
    throw new Error(
      `stack ${stack.stackName} cannot deploy its SageMaker endpoints to ${stack.region}: CloudFormation there has no AWS::SageMaker::Model, EndpointConfig or Endpoint (infra/images/registries.ts); pick another region`,
    );
  }
  if (choice.uri === undefined) return imageUriOf(family, stack.region, choice.version);
  const image = parseEcrImageUri(choice.uri, `context ${family.uriKey}`);
  if (image.region !== stack.region) {
    throw new Error(
      `context ${family.uriKey} names an image in ${image.region} but stack ${stack.stackName} deploys to ${stack.region}: ` +
        `SageMaker pulls images only from the model's region (leave ${family.uriKey} out to use the table's image for ${stack.region})`,
    );
  }
  return choice.uri;
}
