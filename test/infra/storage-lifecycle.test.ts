import { App, Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { describe, expect, it } from 'vitest';
import { Storage } from '../../infra/constructs/storage.ts';

// biome-ignore lint/suspicious/noExplicitAny: synthesized CloudFormation JSON has no static type.
type Cfn = any;

/** The data bucket's lifecycle rules by id, from a stack holding only the Storage construct. */
function rulesOf(props: ConstructorParameters<typeof Storage>[2] = {}): Record<string, Cfn> {
  const stack = new Stack(new App(), 'StorageOnly');
  const storage = new Storage(stack, 'Storage', props);
  const id = stack.getLogicalId(storage.bucket.node.defaultChild as never);
  const rules = Template.fromStack(stack).toJSON().Resources[id].Properties.LifecycleConfiguration
    .Rules as Cfn[];
  return Object.fromEntries(rules.map((r) => [r.Id, r]));
}

describe('Storage lifecycle (bounded storage, README "Retention")', () => {
  const rules = rulesOf();

  it('expires re-staged gzip parts under staging/ after 14 days, as long as a unit can still be redriven', () => {
    expect(rules['expire-staging']).toEqual({
      Id: 'expire-staging',
      Prefix: 'staging/',
      ExpirationInDays: 14,
      Status: 'Enabled',
    });
  });

  it('keeps overwritten and deleted objects (superseded parts gc deleted) 30 days as noncurrent versions, then removes them and their delete markers', () => {
    expect(rules['expire-noncurrent-versions']).toEqual({
      Id: 'expire-noncurrent-versions',
      NoncurrentVersionExpiration: { NoncurrentDays: 30 },
      ExpiredObjectDeleteMarker: true,
      Status: 'Enabled',
    });
  });

  it('aborts incomplete multipart uploads after 7 days and expires Athena results after 30', () => {
    expect(rules['abort-incomplete-multipart-uploads']).toMatchObject({
      AbortIncompleteMultipartUpload: { DaysAfterInitiation: 7 },
      Status: 'Enabled',
    });
    expect(rules['expire-athena-results']).toMatchObject({ Prefix: 'athena-results/', ExpirationInDays: 30 });
  });

  it('never expires results/, runs/, incoming/ or models/ by age: an old part can be the current version of a document', () => {
    const expiring = Object.values(rules).filter((r) => r.ExpirationInDays !== undefined);
    expect(expiring.map((r) => r.Prefix).sort()).toEqual(['athena-results/', 'staging/']);
  });

  it('takes other retentions from its props', () => {
    const custom = rulesOf({ stagingRetentionDays: 7, supersededVersionRetentionDays: 90 });
    expect(custom['expire-staging']?.ExpirationInDays).toBe(7);
    expect(custom['expire-noncurrent-versions']?.NoncurrentVersionExpiration).toEqual({ NoncurrentDays: 90 });
  });
});
