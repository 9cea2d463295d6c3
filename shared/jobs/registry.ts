import type { PipelineConfig } from '../config/pipeline-config.ts';
import { embedJob } from './embed/embed-job.ts';
import { generateJob } from './generate/generate-job.ts';
import type { JobKind } from './job-kind.ts';
import { recommendJob } from './recommend/recommend-job.ts';
import { scoreJob } from './score/score-job.ts';

type KindName = PipelineConfig['kind'];
type JobKinds = { readonly [K in KindName]: JobKind<Extract<PipelineConfig, { kind: K }>> };

/** Every job kind, one line each: adding a kind is its folder under shared/jobs/ and its line here. */
const JOB_KINDS: JobKinds = {
  embed: embedJob,
  score: scoreJob,
  recommend: recommendJob,
  generate: generateJob,
};

/** The job kind of a pipeline. */
export function jobKindOf<C extends PipelineConfig>(config: C): JobKind<C> {
  return JOB_KINDS[config.kind as KindName] as unknown as JobKind<C>;
}
