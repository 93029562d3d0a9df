// docs/ci.md's set-ups are YAML that parses, and their shards are the campaign's plan: every shard
// index 1..N once, the same N in --shard, a merge of all of them.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parse } from 'yaml';
import { campaignPlan, shardOf } from '../../harness/campaign';

const doc = fs.readFileSync(path.join(__dirname, '..', '..', 'docs', 'ci.md'), 'utf8');
const blocks = [...doc.matchAll(/```yaml\n([\s\S]*?)```/g)].map((m) => m[1]!);

/** Every --shard I/N of a command text, I as written. */
const shardArgs = (s: string): { i: string; n: number }[] =>
  [...s.matchAll(/--shard (.+?)\/(\d+)/g)].map((m) => ({ i: m[1]!, n: Number(m[2]) }));

const coversPlan = (n: number, indices: number[]): void => {
  const plan = campaignPlan({ seed: 1 });
  expect([...indices].sort((a, b) => a - b)).toEqual(Array.from({ length: n }, (_, k) => k + 1));
  expect(indices.flatMap((i) => shardOf(plan, i, n)).length).toBe(plan.length);
};

it('docs/ci.md has two YAML set-ups that parse', () => {
  expect(blocks.length).toBe(2);
  for (const b of blocks) expect(() => parse(b)).not.toThrow();
});

it('the GitHub Actions matrix runs every shard of the plan once and merges them', () => {
  const wf = parse(blocks[0]!) as {
    jobs: {
      shard: { strategy: { matrix: { shard: number[] } }; steps: { run?: string }[] };
      merge: { needs: string; steps: { run?: string }[] };
    };
  };
  const runs = wf.jobs.shard.steps.map((s) => s.run ?? '').join('\n');
  const [arg] = shardArgs(runs);
  expect(arg!.i).toBe('${{ matrix.shard }}');
  coversPlan(arg!.n, wf.jobs.shard.strategy.matrix.shard);
  expect(wf.jobs.merge.needs).toBe('shard');
  expect(wf.jobs.merge.steps.map((s) => s.run ?? '').join('\n')).toMatch(/pinlab merge \S*shard-\*\.json --junit /);
});

it('the Kubernetes Indexed Job runs one pod per shard, JOB_COMPLETION_INDEX + 1 as its index', () => {
  const job = parse(blocks[1]!) as {
    kind: string;
    spec: { completionMode: string; completions: number; template: { spec: { containers: { args: string[] }[] } } };
  };
  expect(job.kind).toBe('Job');
  expect(job.spec.completionMode).toBe('Indexed');
  const [arg] = shardArgs(job.spec.template.spec.containers[0]!.args.join(' '));
  expect(arg!.i).toBe('$((JOB_COMPLETION_INDEX + 1))');
  expect(arg!.n).toBe(job.spec.completions);
  // the indices the pods compute: 0..completions-1, plus one
  coversPlan(
    arg!.n,
    Array.from({ length: job.spec.completions }, (_, k) => k + 1),
  );
});
