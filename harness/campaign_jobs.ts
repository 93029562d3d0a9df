// The campaign's case runners (--jobs): a thread each (piscina), each running one suite run of the plan
// at a time with its own machines and actor workers (harness/runner.ts runSuite()). A suite run's seed
// and cases come from the plan, never from the runner that took it, so results do not depend on --jobs.
// A signal or the --time cap reaches every runner through one shared word. Each runner binds itself
// (and so its actor workers) to a CPU of its own when there are enough (harness/affinity.ts).
import { Piscina } from 'piscina';
import { loadedPlugins } from './plugins';
import { workerFile } from './pool';
import type { RunSummary } from './runner';
import type { Interrupt } from './signals';
import { allowedCpus, runnerCpus } from './affinity';

/** One suite run of the plan. */
export interface JobItem {
  index: number;
  suite: string;
  shape: string;
  cmdline: string | null;
  /** the geometry of cmdline's machine (null: mini) */
  geometry: string | null;
  seed: number;
  runs: number;
  properties: readonly string[];
}

/** What every suite run of a campaign shares. */
export interface JobCommon {
  variant: string;
  regressionsDir: string | null;
  timeoutMs: number;
}

export type JobTask = JobItem & JobCommon;

/** The suite run's summary, or null: it never started (the campaign was stopped first). */
export interface JobResult {
  summary: RunSummary | null;
}

/** The stop word's values: running, a signal, the --time cap (or --fail-fast's first failure). */
export const JOB_RUN = 0;
export const JOB_SIGNAL = 1;
export const JOB_CAP = 2;

/** What every runner thread starts with. */
export interface RunnerData {
  plugins: string[];
  stop: SharedArrayBuffer;
  cpus: number[];
  next: SharedArrayBuffer;
}

export class CampaignJobs {
  private readonly pool: Piscina;
  private readonly stop = new Int32Array(new SharedArrayBuffer(4));
  private readonly poll: NodeJS.Timeout;
  /** the CPUs runners bind to, in runner order (empty: unbound) */
  readonly cpus: number[];

  constructor(
    readonly jobs: number,
    interrupt: Interrupt,
    affinity = true,
  ) {
    this.cpus = affinity ? runnerCpus(jobs, allowedCpus()) : [];
    const f = workerFile('campaign_worker');
    this.pool = new Piscina({
      filename: f.filename,
      execArgv: f.execArgv,
      minThreads: jobs,
      maxThreads: jobs,
      concurrentTasksPerWorker: 1,
      idleTimeout: 60_000,
      atomics: 'async', // as harness/pool.ts: idle runners wait on their event loop
      workerData: {
        plugins: [...loadedPlugins()],
        stop: this.stop.buffer,
        cpus: this.cpus,
        next: new SharedArrayBuffer(4), // runner k takes cpus[k]
      } satisfies RunnerData,
    });
    // a signal arrives on this thread: hand it to the runners
    this.poll = setInterval(() => {
      if (interrupt.stopped) Atomics.store(this.stop, 0, JOB_SIGNAL);
    }, 50);
  }

  /** The --time cap, --fail-fast: running suite runs stop (keeping what they found), waiting ones do not start. */
  stopAll(): void {
    Atomics.compareExchange(this.stop, 0, JOB_RUN, JOB_CAP);
  }

  /** Run every item; onDone as each ends (in the order they end). Items never started get no call. */
  async runAll(items: JobItem[], common: JobCommon, onDone: (x: JobItem, r: JobResult) => void): Promise<void> {
    await Promise.all(
      items.map(async (x) => {
        const r = (await this.pool.run({ ...x, ...common } satisfies JobTask)) as JobResult;
        if (r.summary) onDone(x, r);
      }),
    );
  }

  async destroy(): Promise<void> {
    clearInterval(this.poll);
    await this.pool.destroy();
  }
}
