import { App, Aspects, type CfnElement, Stack } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import { AwsSolutionsChecks } from 'cdk-nag';
import type { IConstruct } from 'constructs';
import { beforeAll, describe, expect, it } from 'vitest';
import { addLlmEndpoints, LlmEndpoint, llmEndpointSpecs } from '../../infra/constructs/llm-endpoint.ts';
import { GPU_INSTANCES, placeLlm } from '../../infra/images/gpu-instances.ts';
import { imageUriOf } from '../../infra/images/image-table.ts';
import { DLC_REGISTRIES, TGI_IMAGES } from '../../infra/images/llm-images.ts';
import { DEPLOYABLE_REGIONS } from '../../infra/images/registries.ts';
import { stackImageUri } from '../../infra/images/stack-images.ts';
import type { SluiceStack } from '../../infra/sluice-stack.ts';
import { inferenceComponentNameOf } from '../../shared/capacity/names.ts';
import { type PipelineConfig, parsePipelineConfig } from '../../shared/config/pipeline-config.ts';
import { expectCfnLintClean, expectNoNagFindings } from '../support/template-checks.ts';
import { buildStack, loadDocsPipeline } from './sluice-stack-fixture.ts';

/**
 * The TGI image a us-east-1 stack gets by default, written out so a test fails when the
 * table's default changes by accident: DLC registry 763104351884, TGI 3.0.1 (the SDK's
 * huggingface-llm.json).
 */
const TEST_TGI_IMAGE_URI =
  '763104351884.dkr.ecr.us-east-1.amazonaws.com/huggingface-pytorch-tgi-inference:2.4.0-tgi3.0.1-gpu-py311-cu124-ubuntu22.04';

/** A generate pipeline as pipelines/generate-triage.json has it, with overrides. */
function generate(
  overrides: Record<string, unknown> = {},
  endpoint: Record<string, unknown> = {},
): PipelineConfig {
  return parsePipelineConfig({
    name: 'generate-triage',
    kind: 'generate',
    input: { format: 'jsonl' },
    model: 'Qwen/Qwen2.5-7B-Instruct',
    prompt: { user: 'Ticket {{ id }}: {{ text }}' },
    generation: { maxTokens: 128 },
    ...overrides,
    endpoint: { name: 'sluice-generate-triage', instanceType: 'ml.g5.2xlarge', ...endpoint },
  });
}

describe('the TGI image table (infra/images/llm-images.ts)', () => {
  it('has a tag naming each version, the default and aliases in the table, and a 12-digit account per region', () => {
    for (const [version, image] of Object.entries(TGI_IMAGES.versions)) {
      expect(image.tag).toMatch(
        new RegExp(`^\\d+\\.\\d+\\.\\d+-tgi${version.replaceAll('.', '\\.')}-gpu-py311-cu124-ubuntu22\\.04`),
      );
      for (const account of Object.values(image.registries)) expect(account).toMatch(/^\d{12}$/);
    }
    expect(TGI_IMAGES.versions[TGI_IMAGES.defaultVersion]).toBeDefined();
    for (const version of Object.values(TGI_IMAGES.aliases))
      expect(TGI_IMAGES.versions[version]).toBeDefined();
  });

  it('holds an image in every region Sluice deploys to, in the account of that region', () => {
    for (const region of DEPLOYABLE_REGIONS) expect(DLC_REGISTRIES[region], region).toMatch(/^\d{12}$/);
    expect(imageUriOf(TGI_IMAGES, 'us-east-1')).toBe(TEST_TGI_IMAGE_URI);
    expect(imageUriOf(TGI_IMAGES, 'af-south-1', '3.1')).toBe(
      '626614931356.dkr.ecr.af-south-1.amazonaws.com/huggingface-pytorch-tgi-inference:2.6.0-tgi3.1.1-gpu-py311-cu124-ubuntu22.04-v2.0',
    );
    expect(imageUriOf(TGI_IMAGES, 'cn-north-1')).toMatch(
      /^727897471807\.dkr\.ecr\.cn-north-1\.amazonaws\.com\.cn\//,
    );
  });

  it('refuses a region or version the table does not hold in one line naming the fix', () => {
    expect(() => imageUriOf(TGI_IMAGES, 'mars-north-1')).toThrow(
      /^no TGI 3\.0\.1 image for region mars-north-1 in infra\/images: deploy to one of .*, or pass -c sluice:tgiImageUri=<image URI in mars-north-1>$/,
    );
    expect(() => imageUriOf(TGI_IMAGES, 'us-east-1', '2.0')).toThrow(/context sluice:tgiVersion/);
    const stack = new Stack(new App(), 'Nowhere', { env: { account: '123456789012', region: 'ap-south-2' } });
    expect(() => stackImageUri(stack, TGI_IMAGES)).toThrow(
      /cannot deploy its SageMaker endpoints to ap-south-2/,
    );
  });
});

describe('placing an LLM on a GPU instance type (infra/images/gpu-instances.ts)', () => {
  it('takes every GPU of the instance by default and checks the 16-bit weights against their memory', () => {
    expect(
      placeLlm('p', 'meta-llama/Llama-3.1-8B-Instruct', 'ml.g5.2xlarge', undefined, undefined),
    ).toMatchObject({
      gpusPerCopy: 1,
      instance: { gpu: 'A10G', gpus: 1, gpuMemoryGiB: 24 },
    });
    expect(placeLlm('p', 'some/70b', 'ml.p4d.24xlarge', undefined, 70.6).gpusPerCopy).toBe(8);
    expect(Object.keys(GPU_INSTANCES).every((type) => type.startsWith('ml.'))).toBe(true);
  });

  it('refuses, in one line naming the pipeline and the fix, what cannot work', () => {
    expect(() => placeLlm('pipeline t', 'm', 'ml.m5.xlarge', undefined, 1)).toThrow(
      /^pipeline t: endpoint\.instanceType ml\.m5\.xlarge is not a GPU instance type Sluice can host an LLM on \(infra\/images\/gpu-instances\.ts\): use one of ml\.g5\.xlarge, /,
    );
    expect(() => placeLlm('pipeline t', 'm', 'ml.g5.12xlarge', 3, 1)).toThrow(
      'pipeline t: endpoint.gpusPerCopy 3 does not fit ml.g5.12xlarge (4 x A10G): use 1, 2, 4 or 8, at most 4',
    );
    expect(() => placeLlm('pipeline t', 'org/unknown', 'ml.g5.2xlarge', undefined, undefined)).toThrow(
      /^pipeline t: the size of model org\/unknown is unknown, so its GPU memory cannot be checked: set endpoint\.modelParametersBillions/,
    );
    // 14B at 16 bits is 26.1 GiB: more than 80% of one A10G, within 80% of two.
    expect(() => placeLlm('pipeline t', 'org/14b', 'ml.g5.2xlarge', undefined, 14)).toThrow(
      'pipeline t: model org/14b (14B parameters, 26.1 GiB at 16 bits) does not fit 1 x A10G (24 GiB, at most 80% for weights) on ml.g5.2xlarge: use a larger instance type or more endpoint.gpusPerCopy',
    );
    expect(placeLlm('pipeline t', 'org/14b', 'ml.g5.12xlarge', 2, 14).gpusPerCopy).toBe(2);
  });
});

describe('llmEndpointSpecs', () => {
  it('serves each distinct endpoint.name once, sized for every pipeline on it', () => {
    const specs = llmEndpointSpecs([
      generate(),
      generate({ name: 'generate-summaries', generation: { maxTokens: 1024 } }, { maxInputTokens: 8192 }),
      generate({ name: 'local-only' }, { name: 'elsewhere', url: 'http://127.0.0.1:8000' }),
    ]);
    expect(specs).toEqual([
      {
        endpointName: 'sluice-generate-triage',
        instanceType: 'ml.g5.2xlarge',
        pipelines: ['generate-triage', 'generate-summaries'],
        model: 'Qwen/Qwen2.5-7B-Instruct',
        gpusPerCopy: 1,
        maxInputTokens: 8192,
        maxTotalTokens: 8192 + 1024,
        capacity: expect.objectContaining({ mode: 'run-scoped', maxCopies: 4 }),
      },
    ]);
  });

  it('refuses the local rules-chat model and endpoints shared with different models, in one line', () => {
    expect(() => llmEndpointSpecs([generate({ model: 'sluice-rules-chat-v1' })])).toThrow(
      /^pipeline generate-triage: model is "sluice-rules-chat-v1", the local rules-chat backend, which no SageMaker endpoint serves: set model in pipelines\/generate-triage\.json/,
    );
    expect(() =>
      llmEndpointSpecs([
        generate(),
        generate({ name: 'other', model: 'Qwen/Qwen2.5-7B-Instruct-AWQ' }, { modelParametersBillions: 7.62 }),
      ]),
    ).toThrow(
      'pipelines generate-triage and other share endpoint sluice-generate-triage but ask for model Qwen/Qwen2.5-7B-Instruct and Qwen/Qwen2.5-7B-Instruct-AWQ: one endpoint serves one model one way, so use the same model or another endpoint.name',
    );
  });

  it('refuses a gated model, which TGI cannot pull without the Hub token the stack does not pass, in one line', () => {
    expect(() => llmEndpointSpecs([generate({ model: 'meta-llama/Llama-3.1-8B-Instruct' })])).toThrow(
      /^pipeline generate-triage: model meta-llama\/Llama-3\.1-8B-Instruct is gated on the Hugging Face Hub and the stack passes no Hub token, so its endpoint would never start: use an ungated model/,
    );
  });
});

describe('LlmEndpoint (TGI as an inference component with run-scoped capacity)', () => {
  let template: Template;
  let stack: Stack;

  beforeAll(() => {
    const app = new App();
    stack = new Stack(app, 'Llm', { env: { account: '123456789012', region: 'us-east-1' } });
    const [spec] = llmEndpointSpecs([generate({}, { instanceType: 'ml.g5.12xlarge', gpusPerCopy: 2 })]);
    new LlmEndpoint(stack, 'Llm', {
      spec: spec!,
      componentName: inferenceComponentNameOf(spec!.endpointName),
      imageUri: stackImageUri(stack, TGI_IMAGES),
    });
    Aspects.of(app).add(new AwsSolutionsChecks());
    app.synth();
    template = Template.fromStack(stack);
  });

  it('runs the pinned TGI image with the chat completions API on and token limits from the config', () => {
    template.hasResourceProperties('AWS::SageMaker::Model', {
      PrimaryContainer: {
        Image: TEST_TGI_IMAGE_URI,
        Environment: {
          HF_MODEL_ID: 'Qwen/Qwen2.5-7B-Instruct',
          SM_NUM_GPUS: '2',
          MAX_INPUT_TOKENS: '4096',
          MAX_TOTAL_TOKENS: String(4096 + 128),
          MESSAGES_API_ENABLED: 'true',
        },
      },
    });
  });

  it('hosts the model as an inference component of gpusPerCopy GPUs per copy, with the longest start-up health check', () => {
    template.hasResourceProperties('AWS::SageMaker::InferenceComponent', {
      InferenceComponentName: 'sluice-generate-triage-model',
      Specification: {
        ComputeResourceRequirements: { NumberOfAcceleratorDevicesRequired: 2 },
        StartupParameters: { ContainerStartupHealthCheckTimeoutInSeconds: 3600 },
      },
      RuntimeConfig: { CopyCount: 1 },
    });
    template.hasResourceProperties('AWS::SageMaker::EndpointConfig', {
      ProductionVariants: [
        Match.objectLike({
          InstanceType: 'ml.g5.12xlarge',
          ManagedInstanceScaling: { Status: 'ENABLED', MinInstanceCount: 0, MaxInstanceCount: 4 },
        }),
      ],
    });
    template.hasResourceProperties('AWS::SageMaker::Endpoint', { EndpointName: 'sluice-generate-triage' });
  });

  it('scales copies between 0 and maxCopies, out from zero on NoCapacityInvocationFailures', () => {
    template.hasResourceProperties('AWS::ApplicationAutoScaling::ScalableTarget', {
      ResourceId: 'inference-component/sluice-generate-triage-model',
      ScalableDimension: 'sagemaker:inference-component:DesiredCopyCount',
      MinCapacity: 0,
      MaxCapacity: 4,
    });
    template.hasResourceProperties('AWS::CloudWatch::Alarm', {
      MetricName: 'NoCapacityInvocationFailures',
      Dimensions: [{ Name: 'InferenceComponentName', Value: 'sluice-generate-triage-model' }],
    });
  });

  it('lets its execution role pull only the TGI repository', () => {
    const policies = JSON.stringify(template.findResources('AWS::IAM::Policy'));
    expect(policies).toContain(':repository/huggingface-pytorch-tgi-inference');
    expect(policies).toContain('763104351884');
  });

  it('passes cdk-nag with no unsuppressed error or warning', () => expectNoNagFindings(stack));
});

describe('addLlmEndpoints', () => {
  const stackIn = (region: string) =>
    new Stack(new App(), 'Llm', { env: { account: '123456789012', region } });

  it('adds one endpoint per LLM endpoint name, and none (no image needed) for pipelines with endpoint.url', () => {
    expect(addLlmEndpoints(stackIn('us-east-1'), [generate()], {}, []).map((e) => e.endpointName)).toEqual([
      'sluice-generate-triage',
    ]);
    const agnostic = new Stack(new App(), 'Agnostic');
    expect(addLlmEndpoints(agnostic, [generate({}, { url: 'http://127.0.0.1:8000' })], {}, [])).toEqual([]);
  });

  it('refuses, in one line, a name another endpoint has and a region without inference components', () => {
    expect(() => addLlmEndpoints(stackIn('us-east-1'), [generate()], {}, ['sluice-generate-triage'])).toThrow(
      'endpoint sluice-generate-triage is named by generate pipelines generate-triage and by an embed or score pipeline: give each its own endpoint name',
    );
    expect(() => addLlmEndpoints(stackIn('eu-west-3'), [generate()], {}, [])).toThrow(
      /^region eu-west-3 has no AWS::SageMaker::InferenceComponent in CloudFormation, which the LLM endpoint of generate pipelines generate-triage needs/,
    );
  });
});

// biome-ignore lint/suspicious/noExplicitAny: synthesized CloudFormation JSON has no static type.
type Cfn = any;

const idOf = (construct: IConstruct): string =>
  Stack.of(construct).getLogicalId((construct.node.defaultChild ?? construct) as CfnElement);

/** Every resource a role may use `action` on, over all its policies. */
function resourcesAllowed(template: Template, role: IConstruct, action: string): Cfn[] {
  const roleId = idOf(role);
  return Object.values(template.findResources('AWS::IAM::Policy'))
    .filter((p: Cfn) => p.Properties.Roles.some((r: Cfn) => r.Ref === roleId))
    .flatMap((p: Cfn) => p.Properties.PolicyDocument.Statement)
    .filter((st: Cfn) => [st.Action].flat().includes(action))
    .flatMap((st: Cfn) => [st.Resource].flat());
}

const arnOf = (resource: string) => ({
  'Fn::Join': ['', ['arn:', { Ref: 'AWS::Partition' }, `:sagemaker:us-east-1:123456789012:${resource}`]],
});

/** An ungated model, as a deployed generate pipeline should name (docs/generate.md, Gated models). */
const TRIAGE = { model: 'Qwen/Qwen2.5-7B-Instruct' };

describe('the stack with a generate pipeline (docs embeds, generate-triage asks an LLM)', () => {
  let stack: SluiceStack;
  let template: Template;

  beforeAll(async () => {
    const built = buildStack({ pipelines: [await loadDocsPipeline(), generate(TRIAGE)] }, { nag: true });
    stack = built.stack;
    template = Template.fromStack(stack);
  });

  it('deploys one LLM endpoint beside the embedding endpoint, both inference components with scaling from 0', () => {
    expect(stack.llmEndpoints.map((e) => e.endpointName)).toEqual(['sluice-generate-triage']);
    template.resourceCountIs('AWS::SageMaker::InferenceComponent', 2);
    template.hasResourceProperties('AWS::SageMaker::Model', {
      PrimaryContainer: {
        Image: TEST_TGI_IMAGE_URI,
        Environment: Match.objectLike({
          HF_MODEL_ID: 'Qwen/Qwen2.5-7B-Instruct',
          MESSAGES_API_ENABLED: 'true',
        }),
      },
    });
    template.hasResourceProperties('AWS::ApplicationAutoScaling::ScalableTarget', {
      ResourceId: 'inference-component/sluice-generate-triage-model',
      MinCapacity: 0,
      MaxCapacity: 4,
    });
  });

  it('lets the work function invoke exactly the LLM endpoint and its component, besides the embedding one', () => {
    expect(resourcesAllowed(template, stack.functions.work.role, 'sagemaker:InvokeEndpoint')).toEqual(
      expect.arrayContaining([
        arnOf('endpoint/sluice-generate-triage'),
        arnOf('inference-component/sluice-generate-triage-model'),
      ]),
    );
    expect(resourcesAllowed(template, stack.functions.work.role, 'sagemaker:InvokeEndpoint')).toHaveLength(4);
  });

  it('lets the work function only read the old S3 prompt cache, by key, under cache/prompts/ (the cache is in the runs table)', () => {
    const cache = (fn: IConstruct, action: string) =>
      JSON.stringify(resourcesAllowed(template, fn, action)).includes('/cache/prompts/*');
    expect(cache(stack.functions.work.role, 's3:GetObject')).toBe(true);
    expect(cache(stack.functions.work.role, 's3:PutObject')).toBe(false);
    for (const fn of [stack.functions.plan, stack.functions.finalize, stack.functions.deadLetter])
      expect(cache(fn.role, 's3:GetObject')).toBe(false);
  });

  it("lets plan, finalize and the sweeper set the LLM component's copies, and no other function", () => {
    const llm = arnOf('inference-component/sluice-generate-triage-model');
    const { plan, work, finalize, deadLetter } = stack.functions;
    for (const action of [
      'sagemaker:DescribeInferenceComponent',
      'sagemaker:UpdateInferenceComponentRuntimeConfig',
    ]) {
      for (const role of [plan.role, finalize.role, stack.capacitySweeper!.function.role])
        expect(resourcesAllowed(template, role, action), action).toContainEqual(llm);
      for (const role of [work.role, deadLetter.role])
        expect(resourcesAllowed(template, role, action), action).toEqual([]);
    }
  });

  it('alarms on calls that find no LLM copy, and deploys the configs with the endpoint the functions call', () => {
    const deployed = stack.pipelines.find((p) => p.name === 'generate-triage');
    expect(deployed).toMatchObject({ kind: 'generate', endpoint: { name: 'sluice-generate-triage' } });
    template.hasResourceProperties('AWS::CloudWatch::Alarm', {
      MetricName: 'NoCapacityInvocationFailures',
      Dimensions: [{ Name: 'InferenceComponentName', Value: 'sluice-generate-triage-model' }],
    });
  });

  it('passes cdk-nag with no unsuppressed error or warning', () => expectNoNagFindings(stack));

  it('passes cfn-lint with zero findings in every region with inference components', () => {
    expectCfnLintClean(template);
  }, 300_000);
});

describe('generate pipelines that deploy no LLM endpoint, or under another stack name', () => {
  it('deploy nothing on SageMaker for a pipeline with endpoint.url, and no sweeper', () => {
    const { stack } = buildStack({ pipelines: [generate(TRIAGE, { url: 'https://llm.example.com' })] });
    const template = Template.fromStack(stack);
    template.resourceCountIs('AWS::SageMaker::Endpoint', 0);
    expect(stack.llmEndpoints).toEqual([]);
    expect(stack.capacitySweeper).toBeUndefined();
  });

  it('prefix the LLM endpoint with the stack name, and name the component from it', () => {
    const { stack } = buildStack({ pipelines: [generate(TRIAGE)], stackName: 'SluiceDev' });
    expect(stack.llmEndpoints.map((e) => [e.endpointName, e.inferenceComponentName])).toEqual([
      ['sluicedev-sluice-generate-triage', 'sluicedev-sluice-generate-triage-model'],
    ]);
    expect(stack.pipelines[0]).toMatchObject({ endpoint: { name: 'sluicedev-sluice-generate-triage' } });
  });

  it('fail synth in one line for the local rules-chat model and an instance type without GPUs', () => {
    expect(() => buildStack({ pipelines: [generate({ model: 'sluice-rules-chat-v1' })] })).toThrow(
      /^pipeline generate-triage: model is "sluice-rules-chat-v1"/,
    );
    expect(() => buildStack({ pipelines: [generate(TRIAGE, { instanceType: 'ml.c5.xlarge' })] })).toThrow(
      /^pipeline generate-triage: endpoint\.instanceType ml\.c5\.xlarge is not a GPU instance type/,
    );
  });
});
