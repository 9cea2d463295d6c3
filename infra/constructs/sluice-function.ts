import { createHash } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Duration, RemovalPolicy, Stage } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as nodejs from 'aws-cdk-lib/aws-lambda-nodejs';
import * as logs from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';

/** Newest Node.js runtime this aws-cdk-lib knows; cdk-nag AwsSolutions-L1 asks for it. */
export const SLUICE_NODE_RUNTIME = lambda.Runtime.NODEJS_24_X;

/**
 * ESM bundles have no `require`; CommonJS dependencies bundled into them call it
 * (esbuild's `__require` shim throws "Dynamic require of ... is not supported").
 * The alias keeps the banner from clashing with a bundled `createRequire` import.
 */
export const ESM_REQUIRE_BANNER =
  "import { createRequire as __sluiceCreateRequire } from 'node:module'; const require = __sluiceCreateRequire(import.meta.url);";

/** CloudWatch namespace of the metrics the handlers publish (`POWERTOOLS_METRICS_NAMESPACE`). */
export const SLUICE_METRICS_NAMESPACE = 'Sluice';
/**
 * Default Powertools service name (`POWERTOOLS_SERVICE_NAME`): the default stack's. The stack
 * passes `deploymentNames(stackName).serviceName`, so each stack's metrics carry its own.
 */
export const SLUICE_SERVICE_NAME = 'sluice';

export interface SluiceFunctionProps {
  /** TypeScript entry file exporting `handler`. */
  readonly entry: string;
  readonly description: string;
  readonly timeout: Duration;
  /** @default 1024 */
  readonly memorySize?: number;
  /** Variables added to the house ones (source maps, Powertools service and namespace). */
  readonly environment?: Record<string, string>;
  /**
   * Powertools service name (`POWERTOOLS_SERVICE_NAME`), the dimension metrics and logs carry.
   * @default SLUICE_SERVICE_NAME
   */
  readonly serviceName?: string;
  /**
   * Files shipped beside the bundled handler (`index.mjs`), content by file name: generated
   * configuration that would not fit Lambda's 4 KB environment. The handler finds them in
   * `LAMBDA_TASK_ROOT`. They are part of the code asset, whose hash covers the bundle's
   * output, so changing one deploys new code.
   * @default - none
   */
  readonly bundledFiles?: Readonly<Record<string, string>>;
  /** @default logs.RetentionDays.ONE_MONTH */
  readonly logRetention?: logs.RetentionDays;
  /** @default RemovalPolicy.RETAIN */
  readonly logRemovalPolicy?: RemovalPolicy;
}

/**
 * The house Lambda function: Node.js (newest runtime) on arm64, bundled locally by
 * esbuild as minified ESM with source maps, its own log group with a retention, and
 * its own role that may only write to that log group (no AWS managed policy).
 * Everything else the function may do is added by `grant*` helpers.
 */
export class SluiceFunction extends Construct implements iam.IGrantable {
  readonly function: nodejs.NodejsFunction;
  readonly role: iam.Role;
  readonly logGroup: logs.LogGroup;
  readonly grantPrincipal: iam.IPrincipal;
  /** The Powertools service name, which Powertools adds to every metric as the `service` dimension. */
  readonly serviceName: string;
  readonly metricsNamespace: string = SLUICE_METRICS_NAMESPACE;

  constructor(scope: Construct, id: string, props: SluiceFunctionProps) {
    super(scope, id);
    this.serviceName = props.serviceName ?? SLUICE_SERVICE_NAME;
    this.logGroup = new logs.LogGroup(this, 'LogGroup', {
      retention: props.logRetention ?? logs.RetentionDays.ONE_MONTH,
      removalPolicy: props.logRemovalPolicy ?? RemovalPolicy.RETAIN,
    });
    this.role = new iam.Role(this, 'Role', {
      assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
      description: props.description,
    });
    this.logGroup.grantWrite(this.role);
    this.grantPrincipal = this.role;

    this.function = new nodejs.NodejsFunction(this, 'Function', {
      entry: props.entry,
      handler: 'handler',
      description: props.description,
      runtime: SLUICE_NODE_RUNTIME,
      architecture: lambda.Architecture.ARM_64,
      timeout: props.timeout,
      memorySize: props.memorySize ?? 1024,
      role: this.role,
      logGroup: this.logGroup,
      environment: {
        ...props.environment,
        NODE_OPTIONS: '--enable-source-maps',
        POWERTOOLS_SERVICE_NAME: this.serviceName,
        POWERTOOLS_METRICS_NAMESPACE: this.metricsNamespace,
      },
      bundling: {
        format: nodejs.OutputFormat.ESM,
        banner: ESM_REQUIRE_BANNER,
        mainFields: ['module', 'main'],
        minify: true,
        sourceMap: true,
        sourcesContent: false,
        // Bundle the AWS SDK too: the deployed code runs the SDK versions the tests ran,
        // not whatever the runtime happens to ship.
        externalModules: [],
        forceDockerBundling: false,
        ...(props.bundledFiles === undefined
          ? {}
          : { commandHooks: copyIntoBundle(stageBundledFiles(this, props.bundledFiles)) }),
      },
    });
  }

  /**
   * A metric the handler publishes through Powertools (`metrics.addMetric`, as EMF), with
   * the dimensions Powertools gives it: only `service`. An alarm must name exactly those
   * dimensions to see the data, and the metric's name must be the one the handler uses.
   * `props` may change the statistic (default Sum) and period (default 1 minute).
   */
  metricPublished(metricName: string, props: cloudwatch.MetricOptions = {}): cloudwatch.Metric {
    return new cloudwatch.Metric({
      statistic: cloudwatch.Stats.SUM,
      period: Duration.minutes(1),
      ...props,
      namespace: this.metricsNamespace,
      metricName,
      dimensionsMap: { service: this.serviceName },
    });
  }
}

/** A file name a bundled file may have: one path segment, and not one of the bundle's own files. */
const BUNDLED_FILE_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

/**
 * Writes each bundled file into the cloud assembly's folder (where CDK stages assets too),
 * under its content hash, so that the bundling command names the content: CDK caches
 * bundles by their command, and two stacks with different files must not share one.
 *
 * @returns staged path by file name
 */
function stageBundledFiles(scope: Construct, files: Readonly<Record<string, string>>): Map<string, string> {
  const root = path.join(Stage.of(scope)?.outdir ?? tmpdir(), 'sluice-bundled-files');
  const staged = new Map<string, string>();
  for (const [name, content] of Object.entries(files)) {
    if (!BUNDLED_FILE_NAME.test(name) || name.startsWith('index.')) {
      throw new Error(
        `${scope.node.path}: bundled file name ${JSON.stringify(name)} is not allowed: use letters, digits, '.', '_' and '-', not starting with 'index.'`,
      );
    }
    const dir = path.join(root, createHash('sha256').update(content).digest('hex'));
    mkdirSync(dir, { recursive: true });
    writeFileSync(path.join(dir, name), content);
    staged.set(name, path.join(dir, name));
  }
  return staged;
}

/**
 * Bundling hooks that copy staged files into the bundle after esbuild has written it.
 * Local bundling runs hooks in a POSIX shell (`bash -c`). The staged files lie outside the
 * project folder that Docker bundling mounts, so they need local bundling (esbuild is a
 * devDependency; without it CDK would try Docker and the copy would fail, naming the file).
 */
function copyIntoBundle(staged: ReadonlyMap<string, string>): nodejs.ICommandHooks {
  return {
    beforeBundling: () => [],
    beforeInstall: () => [],
    afterBundling: (_inputDir, outputDir) =>
      [...staged].map(([name, from]) => `cp ${shellQuote(from)} ${shellQuote(path.join(outputDir, name))}`),
  };
}

const shellQuote = (value: string): string => `'${value.replaceAll("'", `'\\''`)}'`;
