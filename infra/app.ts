import { App, Aspects } from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import { addSluiceStack } from './sluice-app.ts';

const app = new App();
// The cdk CLI sets CDK_DEFAULT_REGION from AWS_REGION, the profile, or us-east-1; the
// region picks the endpoint images (infra/images), so a stack without one fails synth.
await addSluiceStack(app, {
  env: { account: process.env.CDK_DEFAULT_ACCOUNT, region: process.env.CDK_DEFAULT_REGION },
});

Aspects.of(app).add(new AwsSolutionsChecks());
