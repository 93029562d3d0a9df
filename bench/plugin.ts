// The benchmarks' plugin (harness/plugins.ts), loaded by bench/index.ts: the `yielder` actor, which only
// reaches preemption points (the scheduler's own cost, bench/sched.ts), and the `alloc-bench` worker task
// (alloc+free pairs on one CPU, the allocator's SMP rows).
import type { Plugin } from '../harness/plugins';
import type { MachineHandle } from '../harness/types';
import { simpleActorModel } from '../harness/plugins';
import { rc, num } from '../harness/agents/agent';
import { attachMachine } from '../mm/mm_init';
import { setCurrent, newTask } from '../mm/sched';
import { allocPairs } from './alloc_pairs';

const yielder = simpleActorModel(
  'yielder',
  'reaches n preemption points per op (the scheduler benchmark)',
  (env) => ({
    step: (op) => {
      const n = num(op, 'n', 1);
      for (let k = 0; k < n; k++) env.yieldPoint('yielder:yield');
      return rc(n);
    },
    inspect: () => ({ held: [], accounting: {} }),
    teardown: () => rc(0),
  }),
  { yield: { n: 'nat' } },
  'the scheduler benchmark measures the scheduler alone',
);

/** alloc+free pairs of one order on one CPU, for a fixed count; workers start together. */
export interface AllocBenchTask {
  machine: MachineHandle;
  cpu: number;
  order: number;
  gfp: number;
  pairs: number;
  /** pages held at once: each round allocates batch blocks, then frees them */
  batch: number;
  /** Int32 barrier word: workers start together */
  start: SharedArrayBuffer;
}

export interface AllocBenchResult {
  pairs: number;
  seconds: number;
}

function allocBench(t: AllocBenchTask): AllocBenchResult {
  const m = attachMachine(t.machine.shape, t.machine.sab);
  setCurrent(newTask(2000 + t.cpu, `bench/${t.cpu}`, t.cpu));
  const go = new Int32Array(t.start);
  Atomics.add(go, 1, 1);
  Atomics.wait(go, 0, 0, 10_000);
  return allocPairs(m, t.order, t.gfp, t.pairs, t.batch);
}

export const BENCH_PLUGIN = 'bench/plugin';

export const plugin: Plugin = {
  actorModels: [yielder],
  workerTasks: { 'alloc-bench': allocBench },
};
