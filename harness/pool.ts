// The worker pool (piscina): one thread per actor, one task per thread at a time (blocked tasks must
// never queue behind each other). Workers load the TypeScript sources through tsx when running from
// source; a compiled build needs no loader.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Piscina } from 'piscina';
import type { ActorTask, ActorResult, PluginTask, WorkerData } from './types';
import { startWide } from './affinity';
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

export class ActorPool {
  private readonly pool: Piscina;
  readonly threads: number;

  /** plugins: those the workers load (default: every plugin this thread has; a run that uses none may say []) */
  constructor(threads: number, plugins: readonly string[] = loadedPlugins()) {
    threads = Math.max(1, threads); // the boot suite's cases have no actors; piscina wants a thread
    this.threads = threads;
    smpEnable(); // machines of this thread are shared with the workers from now on (mm/atomic.ts)
    const w = workerFile('worker', plugins);
    // a bound runner's workers load on every CPU, then bind to its CPU (worker.ts)
    this.pool = startWide(
      (cpu) =>
        new Piscina({
          filename: w.filename,
          execArgv: w.execArgv,
          minThreads: threads,
          maxThreads: threads,
          concurrentTasksPerWorker: 1,
          idleTimeout: 60_000,
          // idle workers wait on their event loop, not in Atomics.wait: the loader's async writes (tsx's
          // transform cache) finish between tasks instead of leaking an open file per worker
          atomics: 'async',
          // workers load the plugins this thread has, and bind to cpu (worker.ts)
          workerData: { plugins: [...plugins], cpu } satisfies WorkerData,
        }),
    );
  }

  run(task: ActorTask): Promise<ActorResult> {
    return this.pool.run(task) as Promise<ActorResult>;
  }

  /** A plugin's worker task on one of the threads (harness/plugins.ts). */
  runTask(task: string, data: unknown): Promise<unknown> {
    const t: PluginTask = { kind: 'plugin', task, data };
    return this.pool.run(t) as Promise<unknown>;
  }

  async destroy(): Promise<void> {
    await this.pool.destroy();
  }
}
