// CPU binding of case runners (harness/affinity.ts): which CPUs the runners take, that a bound thread's
// workers inherit its CPU (so a campaign runner's actors run on its core), and that a single runner
// gets its own mask back. Linux with taskset(1) and two CPUs or more; elsewhere only the pure parts run.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import { execFileSync } from 'node:child_process';
import { allowedCpus, runnerCpus, threadCpus, currentCpu, onCurrentCpu } from '../../harness/affinity';
import { PoolHolder } from '../../harness/runner';

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
    "a bound thread's actor pool: its workers start on every CPU, then bind to the thread's CPU",
    async () => {
      const masks = () =>
        fs
          .readdirSync('/proc/self/task')
          .map((t) => /^Cpus_allowed_list:\s*(\S+)/m.exec(fs.readFileSync(`/proc/self/task/${t}/status`, 'utf8'))![1]);
      await onCurrentCpu(async () => {
        const mine = threadCpus()!;
        expect(mine).toHaveLength(1);
        const before = masks().filter((x) => x === String(mine[0])).length;
        const h = new PoolHolder(3);
        try {
          expect(threadCpus()).toEqual(mine); // the widened mask is the caller's again
          // a task on each worker: every one has loaded its code (and bound itself) by then
          await Promise.all([0, 1, 2].map(() => h.pool.runTask('none', null).catch(() => null)));
          expect(masks().filter((x) => x === String(mine[0])).length).toBe(before + 3);
        } finally {
          await h.destroy();
        }
      });
    },
    60_000,
  );

  itBinds('onCurrentCpu binds for the run and gives the mask back after', async () => {
    const before = threadCpus();
    const during = await onCurrentCpu(() => Promise.resolve(threadCpus()));
    expect(during).toHaveLength(1);
    expect(before).toContain(during![0]);
    expect(threadCpus()).toEqual(before);
  });
});
