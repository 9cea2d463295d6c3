import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { App, Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { beforeAll, describe, expect, it } from 'vitest';
import { parseEcrImageUri } from '../../infra/constructs/endpoint-execution-role.ts';
import { canonicalVersion, type ImageFamily, imageUriOf } from '../../infra/images/image-table.ts';
import {
  DEPLOYABLE_REGIONS,
  ecrDomainOf,
  REGIONS_WITHOUT_SAGEMAKER_RESOURCES,
} from '../../infra/images/registries.ts';
import { stackImageUri } from '../../infra/images/stack-images.ts';
import { TEI_IMAGES } from '../../infra/images/tei-images.ts';
import { XGBOOST_IMAGES } from '../../infra/images/xgboost-images.ts';
import type { SluiceStack } from '../../infra/sluice-stack.ts';
import type { EmbedPipelineConfig, ScorePipelineConfig } from '../../shared/config/pipeline-config.ts';
import {
  buildStack,
  loadCreditRiskPipeline,
  loadDocsPipeline,
  TEST_TEI_IMAGE_URI,
  TEST_XGBOOST_IMAGE_URI,
} from './sluice-stack-fixture.ts';

const FAMILIES: readonly ImageFamily[] = [TEI_IMAGES, XGBOOST_IMAGES];
/** Commercial, China and GovCloud region names: `us-east-1`, `cn-north-1`, `us-gov-west-1`. */
const REGION = /^[a-z]{2}(-gov)?-[a-z]+-\d$/;
const TAGS: Record<string, RegExp> = {
  TEI: /^2\.0\.1-tei(\d+\.\d+\.\d+)-gpu-py310-cu\d{3}-ubuntu\d{2}\.04$/,
  XGBoost: /^(\d+\.\d+-\d+)$/,
};

describe('the image table (infra/images)', () => {
  it.each(FAMILIES)(
    '$name: every version has a well-formed tag naming its version and a 12-digit account per region',
    (family) => {
      expect(Object.keys(family.versions).length).toBeGreaterThan(0);
      for (const [version, image] of Object.entries(family.versions)) {
        expect(TAGS[family.name]!.exec(image.tag)?.[1], `${family.name} ${version} tag ${image.tag}`).toBe(
          version,
        );
        const regions = Object.entries(image.registries);
        expect(regions.length).toBeGreaterThan(20);
        for (const [region, account] of regions) {
          expect(region).toMatch(REGION);
          expect(account, `${family.name} ${version} in ${region}`).toMatch(/^\d{12}$/);
        }
      }
    },
  );

  it.each(FAMILIES)('$name: the default version and every alias name a version in the table', (family) => {
    expect(family.versions[family.defaultVersion]).toBeDefined();
    for (const [alias, version] of Object.entries(family.aliases)) {
      expect(family.versions[version], `${family.name} alias ${alias}`).toBeDefined();
      expect(version.startsWith(`${alias}.`)).toBe(true);
    }
  });

  it.each(FAMILIES)('$name: every URI it resolves is an ECR image in the region asked for', (family) => {
    for (const [version, image] of Object.entries(family.versions)) {
      for (const region of Object.keys(image.registries)) {
        const uri = imageUriOf(family, region, version);
        expect(parseEcrImageUri(uri)).toEqual({
          account: image.registries[region],
          region,
          repository: family.repository,
        });
        expect(uri).toContain(`.${ecrDomainOf(region)}/`);
      }
    }
  });

  it('defaults to a current TEI (1.8 or newer) and the XGBoost 1.7 the committed model was saved with', () => {
    const [major, minor] = TEI_IMAGES.defaultVersion.split('.').map(Number);
    expect(major! > 1 || minor! >= 8).toBe(true);
    expect(XGBOOST_IMAGES.defaultVersion).toBe('1.7-1');
  });

  it('holds the facts of the SageMaker Python SDK for us-east-1, eu-west-1 and China', () => {
    expect(imageUriOf(TEI_IMAGES, 'us-east-1')).toBe(TEST_TEI_IMAGE_URI);
    expect(imageUriOf(XGBOOST_IMAGES, 'us-east-1')).toBe(TEST_XGBOOST_IMAGE_URI);
    expect(imageUriOf(TEI_IMAGES, 'eu-west-1', '1.9')).toBe(
      '141502667606.dkr.ecr.eu-west-1.amazonaws.com/tei:2.0.1-tei1.9.4-gpu-py310-cu129-ubuntu24.04',
    );
    expect(imageUriOf(XGBOOST_IMAGES, 'cn-north-1')).toBe(
      '450853457545.dkr.ecr.cn-north-1.amazonaws.com.cn/sagemaker-xgboost:1.7-1',
    );
  });

  it('offers TEI and XGBoost in the same regions, so every supported region deploys both kinds', () => {
    const regionsOf = (family: ImageFamily) =>
      Object.keys(family.versions[family.defaultVersion]!.registries).sort();
    expect(regionsOf(TEI_IMAGES)).toEqual(regionsOf(XGBOOST_IMAGES));
  });

  it('lists in docs/infra.md exactly the regions Sluice deploys to and those it refuses', () => {
    const docs = readFileSync(
      path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../docs/infra.md'),
      'utf8',
    );
    const section = docs.slice(docs.indexOf('**Regions.**'), docs.indexOf('Synth fails with one line'));
    const named = (list: readonly string[]) =>
      list.filter((region) => new RegExp(`\\b${region}\\b`).test(section));
    expect(section).toContain(`the ${DEPLOYABLE_REGIONS.length} regions`);
    expect(named(DEPLOYABLE_REGIONS)).toEqual(DEPLOYABLE_REGIONS);
    expect(named(REGIONS_WITHOUT_SAGEMAKER_RESOURCES)).toEqual(REGIONS_WITHOUT_SAGEMAKER_RESOURCES);
  });

  it('resolves aliases the way the SDK does', () => {
    expect(canonicalVersion(TEI_IMAGES, '1.8')).toBe('1.8.2');
    expect(canonicalVersion(TEI_IMAGES, '1.8.0')).toBe('1.8.0');
  });

  it('refuses a version or region the table does not hold in one line naming the context key', () => {
    expect(() => imageUriOf(TEI_IMAGES, 'us-east-1', '1.3')).toThrow(
      /^TEI image version "1.3" is not in infra\/images \(context sluice:teiVersion\): use one of 1.2.3, .*1.9.4[^\n]*$/,
    );
    expect(() => imageUriOf(XGBOOST_IMAGES, 'mars-north-1')).toThrow(
      /^no XGBoost 1.7-1 image for region mars-north-1 in infra\/images: deploy to one of af-south-1, .* or pass -c sluice:xgboostImageUri=<image URI in mars-north-1>$/,
    );
  });
});

describe('stackImageUri', () => {
  const stackIn = (region?: string) =>
    new Stack(new App(), 'Sluice', region === undefined ? {} : { env: { region } });

  it("picks the image of the stack's region", () => {
    expect(stackImageUri(stackIn('eu-central-1'), TEI_IMAGES)).toBe(
      '492215442770.dkr.ecr.eu-central-1.amazonaws.com/tei:2.0.1-tei1.8.2-gpu-py310-cu122-ubuntu22.04',
    );
    expect(stackImageUri(stackIn('ap-southeast-2'), XGBOOST_IMAGES, { version: '2.1-0' })).toBe(
      '783357654285.dkr.ecr.ap-southeast-2.amazonaws.com/sagemaker-xgboost:2.1-0',
    );
  });

  it('refuses an environment-agnostic stack, whose region no image can follow', () => {
    expect(() => stackImageUri(stackIn(), TEI_IMAGES)).toThrow(
      /^stack Sluice has no concrete region \(environment-agnostic\), so its TEI image cannot be chosen: synthesize with a region [^\n]*$/,
    );
  });

  it('refuses a region whose CloudFormation has no SageMaker endpoints, even with an explicit image', () => {
    for (const region of REGIONS_WITHOUT_SAGEMAKER_RESOURCES) {
      expect(TEI_IMAGES.versions[TEI_IMAGES.defaultVersion]!.registries[region]).toBeDefined();
      expect(DEPLOYABLE_REGIONS).not.toContain(region);
    }
    const uri = '123456789012.dkr.ecr.il-central-1.amazonaws.com/my-tei:custom';
    expect(() => stackImageUri(stackIn('il-central-1'), TEI_IMAGES, { uri })).toThrow(
      /^stack Sluice cannot deploy its SageMaker endpoints to il-central-1: CloudFormation there has no AWS::SageMaker::Model[^\n]*$/,
    );
  });

  it('takes an explicit URI in the stack region and refuses one in another region', () => {
    const uri = '123456789012.dkr.ecr.eu-west-1.amazonaws.com/my-tei:custom';
    expect(stackImageUri(stackIn('eu-west-1'), TEI_IMAGES, { uri })).toBe(uri);
    expect(() => stackImageUri(stackIn('us-east-1'), TEI_IMAGES, { uri })).toThrow(
      /^context sluice:teiImageUri names an image in eu-west-1 but stack Sluice deploys to us-east-1: SageMaker pulls images only from the model's region/,
    );
  });
});

describe('SluiceStack images', () => {
  let docs: EmbedPipelineConfig;
  let creditRisk: ScorePipelineConfig;
  let inEuWest2: SluiceStack;
  // Synthesizing a whole stack takes tens of seconds on a loaded machine: once, in a hook.
  beforeAll(async () => {
    docs = await loadDocsPipeline();
    creditRisk = await loadCreditRiskPipeline();
    inEuWest2 = buildStack({
      env: { account: '123456789012', region: 'eu-west-2' },
      pipelines: [docs, creditRisk],
    }).stack;
  }, 180_000);

  it("runs both endpoints on the images of the stack's region, not us-east-1's", () => {
    const template = Template.fromStack(inEuWest2);
    template.hasResourceProperties('AWS::SageMaker::Model', {
      PrimaryContainer: {
        Image: '764974769150.dkr.ecr.eu-west-2.amazonaws.com/tei:2.0.1-tei1.8.2-gpu-py310-cu122-ubuntu22.04',
      },
    });
    template.hasResourceProperties('AWS::SageMaker::Model', {
      PrimaryContainer: { Image: '764974769150.dkr.ecr.eu-west-2.amazonaws.com/sagemaker-xgboost:1.7-1' },
    });
    expect(JSON.stringify(template.toJSON())).not.toContain('us-east-1');
  });

  it('fails synth in one line for a TEI version the table lacks', () => {
    expect(() => buildStack({ pipelines: [docs], teiVersion: '0.9' })).toThrow(
      /^TEI image version "0.9" is not in infra\/images \(context sluice:teiVersion\)/,
    );
  });
});
