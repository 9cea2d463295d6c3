import { ecrDomainOf } from './registries.ts';

/** One image version: its tag and the registry account that holds it in each region. */
export interface ImageVersion {
  readonly tag: string;
  /** Region -> 12-digit registry account. */
  readonly registries: Readonly<Record<string, string>>;
}

/**
 * A family of SageMaker container images (TEI, XGBoost) in the SDK's layout: one ECR
 * repository, versions with a tag and per-region registries, and short aliases
 * (`1.8` -> `1.8.2`) as `sagemaker.image_uris.retrieve` accepts them.
 */
export interface ImageFamily {
  /** What the images serve, for messages: `TEI`, `XGBoost`. */
  readonly name: string;
  /** The context key that picks a version, for messages. */
  readonly versionKey: string;
  /** The context key that overrides the URI, for messages. */
  readonly uriKey: string;
  readonly repository: string;
  readonly defaultVersion: string;
  readonly aliases: Readonly<Record<string, string>>;
  readonly versions: Readonly<Record<string, ImageVersion>>;
}

/** A version as the table names it: an alias resolved, or the version itself. */
export function canonicalVersion(family: ImageFamily, version: string): string {
  return family.aliases[version] ?? version;
}

/**
 * The image URI of `family` at `version` (or an alias of one) in `region`:
 * `<account>.dkr.ecr.<region>.<domain>/<repository>:<tag>`. A version or region the table
 * does not hold is a one-line error naming the context key and what the table has.
 */
export function imageUriOf(family: ImageFamily, region: string, version = family.defaultVersion): string {
  const image = family.versions[canonicalVersion(family, version)];
  if (!image) {
    throw new Error(
      `${family.name} image version ${JSON.stringify(version)} is not in infra/images (context ${family.versionKey}): ` +
        `use one of ${[...Object.keys(family.versions), ...Object.keys(family.aliases)].join(', ')}`,
    );
  }
  const account = image.registries[region];
  if (!account) {
    throw new Error(
      `no ${family.name} ${canonicalVersion(family, version)} image for region ${region} in infra/images: ` +
        `deploy to one of ${Object.keys(image.registries).join(', ')}, or pass -c ${family.uriKey}=<image URI in ${region}>`,
    );
  }
  return `${account}.dkr.ecr.${region}.${ecrDomainOf(region)}/${family.repository}:${image.tag}`;
}
