// The one file that runs inside worker threads: attaches to the machine's SharedArrayBuffer and runs
// the task it is given. Imports mm/ directly; never the pool or the CLI.
import { Memmap } from '../mm/memmap';
import { attachMachine } from '../mm/mm_init';
import { setCurrent, newTask } from '../mm/sched';
import { allocPages, freePages, NO_PAGE } from '../mm/page_alloc';
import { __GFP_COMP, __GFP_NORETRY } from '../mm/gfp';
import { Prng } from './prng';
import type { WorkerTask, WorkerResult, AllocHammerTask, AllocHammerResult, AllocBenchTask, AllocBenchResult } from './types';
import { allocPairs } from '../bench/alloc_pairs';
import { runActor } from './actor';

function allocHammer(t: AllocHammerTask): AllocHammerResult {
  const m = attachMachine(t.machine.shape, t.machine.sab);
  setCurrent(newTask(1000 + t.id, `hammer/${t.id}`, t.cpu));
  const owner = new Int32Array(t.owner);
  const rng = new Prng(t.seed);
  const held: [number, number][] = [];
  const r: AllocHammerResult = { allocs: 0, frees: 0, failures: 0, doubles: [] };
  const release = (i: number): void => {
    const [pfn, order] = held[i]!;
    held[i] = held[held.length - 1]!;
    held.pop();
    for (let p = pfn; p < pfn + (1 << order); p++) Atomics.store(owner, p, 0);
    freePages(m, pfn, order);
    r.frees++;
  };
  for (let i = 0; i < t.ops; i++) {
    if (held.length && (rng.below(2) === 0 || held.length > t.holdMax)) { release(rng.below(held.length)); continue; }
    const order = rng.below(8) === 0 ? rng.below(t.maxOrder + 1) : 0;
    const gfp = t.gfps[rng.below(t.gfps.length)]! | (order ? __GFP_COMP : 0);
    const pfn = allocPages(m, gfp | __GFP_NORETRY, order); // no process to OOM-kill: fail instead of panicking
    if (pfn === NO_PAGE) { r.failures++; continue; }
    r.allocs++;
    for (let p = pfn; p < pfn + (1 << order); p++) {
      const prev = Atomics.compareExchange(owner, p, 0, t.id);
      if (prev !== 0 && r.doubles.length < 10) r.doubles.push(`pfn ${p} handed to hammer ${t.id} while hammer ${prev} holds it`);
    }
    held.push([pfn, order]);
  }
  while (held.length) release(held.length - 1);
  return r;
}

function allocBench(t: AllocBenchTask): AllocBenchResult {
  const m = attachMachine(t.machine.shape, t.machine.sab);
  setCurrent(newTask(2000 + t.cpu, `bench/${t.cpu}`, t.cpu));
  const go = new Int32Array(t.start);
  Atomics.add(go, 1, 1);
  Atomics.wait(go, 0, 0, 10_000);
  return allocPairs(m, t.order, t.gfp, t.pairs, t.batch);
}

export default function run(task: WorkerTask): WorkerResult {
  switch (task.kind) {
    case 'alloc-hammer': return allocHammer(task);
    case 'alloc-bench': return allocBench(task);
    case 'actor': return runActor(task);
  }
}
