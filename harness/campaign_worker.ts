// A campaign case runner's thread (harness/campaign_jobs.ts): loads the plugins of the campaign's
// thread, then runs one suite run of the plan per task, quietly; the campaign prints what it returns.
import { workerData } from 'piscina';
import { loadPlugin } from './plugins';
import { runSuite, PoolHolder } from './runner';
import { SUITES } from './suites';
import { JOB_RUN, type JobTask, type JobResult, type RunnerData } from './campaign_jobs';
import { setRunnerCpu } from './affinity';
import type { Interrupt } from './signals';

const data = workerData as RunnerData;
for (const name of data.plugins) loadPlugin(name);
const stop = new Int32Array(data.stop);
// a CPU of its own, which it and its actor workers bind to after the pool's first tasks
// (harness/pool.ts ActorPool.bindNow())
const cpu = data.cpus[Atomics.add(new Int32Array(data.next), 0, 1)];
if (cpu !== undefined) setRunnerCpu(cpu);
// one actor pool for every suite run of this runner: threads start (and load the code) once
let pool: PoolHolder | null = null;

export default async function run(t: JobTask): Promise<JobResult> {
  if (Atomics.load(stop, 0) !== JOB_RUN) return { summary: null };
  const suite = SUITES[t.suite];
  if (!suite) throw new Error(`campaign: no suite '${t.suite}' in this runner`);
  let local = false;
  const interrupt: Interrupt = {
    get stopped() {
      return local || Atomics.load(stop, 0) !== JOB_RUN;
    },
    set stopped(v: boolean) {
      local = v;
    },
  };
  const threads = Math.max(...Object.values(SUITES).map((s) => s.actors.length));
  pool ??= new PoolHolder(threads);
  const summary = await runSuite({
    pool,
    suite,
    variant: t.variant,
    cmdline: t.cmdline ?? undefined,
    geometry: t.geometry ?? undefined,
    seed: t.seed,
    runs: t.runs,
    mode: 'det',
    checkDeterminism: false,
    json: true,
    regressionsDir: t.regressionsDir,
    tty: false,
    interrupt,
    io: { out: () => {}, err: () => {} },
    timeoutMs: t.timeoutMs,
  });
  return { summary };
}
