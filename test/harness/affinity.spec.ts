// CPU binding of case runners (harness/affinity.ts): which CPUs the runners take, that a bound thread's
// workers inherit its CPU, that a runner's pool starts its workers on every CPU and binds them and the
// runner later (harness/pool.ts), and that a single runner gets its own mask back. Linux with taskset(1)
// and two CPUs or more; elsewhere only the pure parts run.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import { execFileSync } from 'node:child_process';
import { allowedCpus, runnerCpus, threadCpus, currentCpu, onCurrentCpu, bindingSettled } from '../../harness/affinity';
import { PoolHolder } from '../../harness/runner';
import { BIND_AFTER_TASKS } from '../../harness/pool';

const MOD = path.join(__dirname, '../../harness/affinity.ts');

function hasTaskset(): boolean {
  try {
    execFileSync('taskset', ['-V'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

const linux = process.platform === 'linux' && fs.existsSync('/proc/thread-self');
const canBind = linux && hasTaskset() && (allowedCpus()?.length ?? 0) >= 2;
const itBinds = canBind ? it : it.skip;

/** Wait for cond (a worker binds itself without waiting for taskset(1)), for at most 10 s. */
async function until(cond: () => boolean): Promise<void> {
  for (const end = Date.now() + 10_000; !cond();) {
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('runnerCpus', () => {
  it('gives each runner a CPU of its own, from the last allowed one down', () => {
    expect(runnerCpus(1, [0, 1])).toEqual([1]);
    expect(runnerCpus(2, [0, 1])).toEqual([1, 0]);
    expect(runnerCpus(2, [2, 5, 7])).toEqual([7, 5]);
  });

  it('binds nobody when there are more runners than CPUs, or the CPUs are unknown', () => {
    expect(runnerCpus(3, [0, 1])).toEqual([]);
    expect(runnerCpus(1, null)).toEqual([]);
    expect(runnerCpus(0, [0, 1])).toEqual([]);
  });
});

(linux ? describe : describe.skip)('reading the masks (Linux)', () => {
  it('the process mask and the thread mask list the CPU the thread runs on', () => {
    const all = allowedCpus()!;
    expect(all.length).toBeGreaterThan(0);
    expect(threadCpus()).toEqual(all);
    expect(all).toContain(currentCpu());
  });
});

describe('binding', () => {
  itBinds(
    "a bound thread's workers inherit its CPU; the thread that started it keeps its own",
    async () => {
      const all = allowedCpus()!;
      const cpu = all[all.length - 1]!;
      const code = `
      const { parentPort, workerData, Worker } = require('node:worker_threads');
      require('tsx/cjs');
      const a = require(workerData.mod);
      const bound = a.bindThisThread(workerData.cpu);
      const own = a.threadCpus();
      const w = new Worker("const { parentPort, workerData } = require('node:worker_threads'); require('tsx/cjs');" +
        "parentPort.postMessage(require(workerData.mod).threadCpus());", { eval: true, workerData });
      w.once('message', (child) => { parentPort.postMessage({ bound, own, child }); w.terminate(); });`;
      const w = new Worker(code, { eval: true, workerData: { mod: MOD, cpu } });
      const r = await new Promise<{ bound: boolean; own: number[]; child: number[] }>((res, rej) => {
        w.once('message', res);
        w.once('error', rej);
      });
      await w.terminate();
      expect(r).toEqual({ bound: true, own: [cpu], child: [cpu] });
      expect(threadCpus()).toEqual(all);
    },
    60_000,
  );

  itBinds(
    "a runner's actor pool: its workers start on every CPU, then they and the runner bind to the runner's CPU",
    async () => {
      const tids = () => new Set(fs.readdirSync('/proc/self/task'));
      const mask = (t: string) =>
        /^Cpus_allowed_list:\s*(\S+)/m.exec(fs.readFileSync(`/proc/self/task/${t}/status`, 'utf8'))![1];
      const all = threadCpus()!;
      await onCurrentCpu(async () => {
        // not bound before its pool starts: the workers it starts load their code on every CPU
        expect(threadCpus()).toEqual(all);
        const before = tids();
        const wide = mask(fs.readlinkSync('/proc/thread-self').split('/').pop()!);
        const h = new PoolHolder(3);
        // new Worker() starts its thread before it returns, with the runner's mask: every CPU
        const workers = [...tids()].filter((t) => !before.has(t));
        expect(workers).toHaveLength(3);
        expect(workers.map(mask)).toEqual(workers.map(() => wide));
        try {
          const tasks = () => Promise.all([0, 1, 2].map(() => h.pool.runTask('none', null).catch(() => null)));
          // loaded and running tasks, still on every CPU: a short search ends sooner unbound (pool.ts)
          await tasks();
          expect(await bindingSettled()).toBe(true);
          expect(threadCpus()).toEqual(all);
          expect(workers.map(mask)).toEqual(workers.map(() => wide));
          // told to bind: the runner at once, each worker at its next task, neither waiting for taskset(1)
          h.pool.bindNow();
          await tasks();
          expect(await bindingSettled()).toBe(true);
          const mine = threadCpus()!;
          expect(mine).toHaveLength(1);
          await until(() => workers.every((t) => mask(t) === String(mine[0])));
        } finally {
          await h.destroy();
        }
      });
      expect(threadCpus()).toEqual(all);
    },
    60_000,
  );

  itBinds(
    `a runner's pool binds after ${BIND_AFTER_TASKS} tasks, and onCurrentCpu gives the mask back after`,
    async () => {
      const before = threadCpus();
      const during = await onCurrentCpu(async () => {
        const h = new PoolHolder(1);
        try {
          for (let k = 0; k < BIND_AFTER_TASKS - 1; k++) await h.pool.runTask('none', null).catch(() => null);
          await bindingSettled();
          expect(threadCpus()).toEqual(before);
          await h.pool.runTask('none', null).catch(() => null);
          await bindingSettled();
          return threadCpus();
        } finally {
          await h.destroy();
        }
      });
      expect(during).toHaveLength(1);
      expect(before).toContain(during![0]);
      expect(threadCpus()).toEqual(before);
    },
  );

  it('a thread that is not a runner starts its pool as it is, unbound', async () => {
    const before = threadCpus();
    const h = new PoolHolder(1);
    try {
      await bindingSettled();
      expect(threadCpus()).toEqual(before);
    } finally {
      await h.destroy();
    }
  });
});
