// The worker pool (piscina): one thread per actor, one task per thread at a time (blocked tasks must
// never queue behind each other). Workers load the TypeScript sources through tsx when running from
// source; a compiled build needs no loader.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Piscina } from 'piscina';
import type { ActorTask, ActorResult, PluginTask, WorkerData, WorkerTask } from './types';
import { startWide, bindLater, threadCpus } from './affinity';
import { loadedPlugins } from './plugins';
import { smpEnable } from '../mm/atomic';

/**
 * A worker thread's file beside this one (base name), and the loader it needs when running from source.
 * Compiled, the actor worker loads its bundle (bin/build.js) unless plugins are loaded: a plugin registers
 * into the modules of dist/ it imports, which the bundle's own copies would not see.
 */
export function workerFile(
  base = 'worker',
  plugins: readonly string[] = loadedPlugins(),
): { filename: string; execArgv: string[] } {
  const ts = __filename.endsWith('.ts');
  const bundled = path.join(__dirname, `${base}.bundle.js`);
  // under NODE_V8_COVERAGE (npm run coverage) each script must be a file of dist/ that c8 maps to its source
  const bundle = !ts && base === 'worker' && !plugins.length && !process.env.NODE_V8_COVERAGE && fs.existsSync(bundled);
  return {
    filename: bundle ? bundled : path.join(__dirname, `${base}.${ts ? 'ts' : 'js'}`),
    execArgv: ts ? ['--require', 'tsx/cjs'] : [],
  };
}

/**
 * Tasks a pool runs before it binds its workers and its runner to the runner's CPU (affinity.ts). Bound,
 * a case's hand-offs stay on one core (a long search runs about 10% faster), but each binding runs
 * taskset(1), and through a search's first cold cases the threads gain from both cores: a search that
 * failed at its 49th case got there 60-100 ms later bound from the start (bench/README.md).
 */
export const BIND_AFTER_TASKS = 500;

export class ActorPool {
  private readonly pool: Piscina;
  readonly threads: number;
  /** the CPU the workers and the runner bind to, or null */
  private cpu: number | null = null;
  private readonly bindFlag = new Int32Array(new SharedArrayBuffer(4));
  private tasks = 0;

  /** plugins: those the workers load (default: every plugin this thread has; a run that uses none may say []) */
  constructor(threads: number, plugins: readonly string[] = loadedPlugins()) {
    threads = Math.max(1, threads); // the boot suite's cases have no actors; piscina wants a thread
    this.threads = threads;
    smpEnable(); // machines of this thread are shared with the workers from now on (mm/atomic.ts)
    const w = workerFile('worker', plugins);
    // a runner's workers load on every CPU, and bind to its CPU when bindNow() says (worker.ts)
    this.pool = startWide((cpu) => {
      this.cpu = cpu;
      return new Piscina({
        filename: w.filename,
        execArgv: w.execArgv,
        minThreads: threads,
        maxThreads: threads,
        concurrentTasksPerWorker: 1,
        idleTimeout: 60_000,
        // idle workers wait on their event loop, not in Atomics.wait: the loader's async writes (tsx's
        // transform cache) finish between tasks instead of leaking an open file per worker
        atomics: 'async',
        // workers load the plugins this thread has, and bind to cpu when told (worker.ts)
        workerData: {
          plugins: [...plugins],
          cpu,
          bind: this.bindFlag.buffer as SharedArrayBuffer,
        } satisfies WorkerData,
      });
    });
  }

  /** Bind the workers (at their next task) and the calling thread to the pool's CPU, if it has one. */
  bindNow(): void {
    if (this.cpu === null || Atomics.exchange(this.bindFlag, 0, 1) === 1) return;
    if (threadCpus()?.join() !== String(this.cpu)) void bindLater(this.cpu);
  }

  run(task: ActorTask): Promise<ActorResult> {
    return this.submit(task) as Promise<ActorResult>;
  }

  /** A plugin's worker task on one of the threads (harness/plugins.ts). */
  runTask(task: string, data: unknown): Promise<unknown> {
    return this.submit({ kind: 'plugin', task, data } satisfies PluginTask);
  }

  /** Every task goes through here: the pool binds at its BIND_AFTER_TASKS-th. */
  private submit(task: WorkerTask): Promise<unknown> {
    if (++this.tasks === BIND_AFTER_TASKS) this.bindNow();
    return this.pool.run(task) as Promise<unknown>;
  }

  async destroy(): Promise<void> {
    await this.pool.destroy();
  }
}
