// The harness's self-test plugin (PINLAB_PLUGINS=test/plugins/selftest; harness/plugins.ts):
// misbehaving actors - a simulator bug, a dying worker, a livelock, a deadlock, hidden nondeterminism -
// the selftest:* suites that use them (`pinlab run --suite selftest:...` must report each break, exit 1
// with seed and trace, tear the pool down and exit on its own), and the allocator hammer task of
// test/integration/concurrent_alloc.spec.ts. They break runs on purpose, so they skip quiescence.
import type { ActorOp, MachineHandle } from '../../harness/types';
import type { Case } from '../../harness/run_case';
import type { Plugin } from '../../harness/plugins';
import { simpleActorModel } from '../../harness/plugins';
import type { Suite } from '../../harness/suites';
import { MINI_LAYOUTS } from '../../harness/suites';
import { H_HOTPLUG_LOCK, H_MAGIC } from '../../mm/memmap';
import { mutexLock, mutexUnlock, waitWhileEqual } from '../../mm/locking';
import { attachMachine } from '../../mm/mm_init';
import { setCurrent, newTask } from '../../mm/sched';
import { allocPages, freePages, NO_PAGE } from '../../mm/page_alloc';
import { __GFP_COMP, __GFP_NORETRY } from '../../mm/gfp';
import { Prng } from '../../harness/prng';
import { AgentEnv, AgentModel, AgentState, rc } from '../../harness/agents/agent';

/** Throws at its op `at` (a simulator bug inside an actor). */
const testThrow = (): AgentState => ({
  step: (op) => {
    if (op.op === 'throw') throw new Error(`test-throw: simulated simulator bug at ${String(op.why ?? 'op')}`);
    return rc(0);
  },
  inspect: () => ({ held: [], accounting: {} }),
  teardown: () => rc(0),
});

/** Ends its worker thread (process.exit in a worker ends the thread): the pool must report it. */
const testExit = (): AgentState => ({
  step: (op) => {
    if (op.op === 'exit') process.exit(3);
    return rc(0);
  },
  inspect: () => ({ held: [], accounting: {} }),
  teardown: () => rc(0),
});

/** Spins without a preemption point (a livelock): only the run's time budget ends it. */
const testSpin = (): AgentState => ({
  step: (op) => {
    if (op.op === 'spin') {
      const end = Number(op.ms ?? 1e9);
      const t0 = process.hrtime.bigint();
      while (Number(process.hrtime.bigint() - t0) / 1e6 < end) {
        /* no preemption point */
      }
    }
    return rc(0);
  },
  inspect: () => ({ held: [], accounting: {} }),
  teardown: () => rc(0),
});

/**
 * Holds mem_hotplug_lock across ops ('lock' / 'unlock') and can wait for a word that never changes
 * ('wait'): with the hotplug agent offlining meanwhile, every actor is blocked - a deadlock to detect.
 */
const testLock = (env: AgentEnv): AgentState => ({
  step: (op) => {
    if (op.op === 'lock') mutexLock(env.m.header, H_HOTPLUG_LOCK);
    else if (op.op === 'unlock') mutexUnlock(env.m.header, H_HOTPLUG_LOCK);
    else if (op.op === 'wait') {
      for (let n = 0; n < 100_000; n++)
        waitWhileEqual(env.m.header, H_MAGIC, env.m.header[H_MAGIC]!, 'test-lock: an event that never comes', 10);
    } else if (op.op === 'yield') env.yieldPoint('test-lock:yield');
    return rc(0, op.op);
  },
  inspect: () => ({ held: [], accounting: {} }),
  teardown: () => rc(0),
});

/**
 * Hidden nondeterminism on purpose: reaches 1 to 3 preemption points depending on the clock, so two
 * runs of one case differ; --check-determinism must say so.
 */
const testClock = (env: AgentEnv): AgentState => ({
  step: () => {
    const n = 1 + Number(process.hrtime.bigint() % 3n);
    for (let k = 0; k < n; k++) env.yieldPoint('test-clock:yield');
    return rc(n);
  },
  inspect: () => ({ held: [], accounting: {} }),
  teardown: () => rc(0),
});

const SKIP = 'a harness self-test actor: it breaks the run on purpose';
const model = (
  name: string,
  summary: string,
  create: (env: AgentEnv) => AgentState,
  ops: AgentModel['ops'],
): AgentModel => simpleActorModel(name, summary, create, ops, SKIP);

const SELFTEST_AGENTS: AgentModel[] = [
  model('test-throw', 'throws at its op throw (a simulator bug inside an actor)', testThrow, {
    noop: {},
    throw: { why: 'string' },
  }),
  model('test-exit', 'ends its worker thread', testExit, { noop: {}, exit: {} }),
  model('test-spin', 'spins without a preemption point', testSpin, { noop: {}, spin: { ms: 'nat' } }),
  model('test-lock', 'holds mem_hotplug_lock across ops and waits for an event that never comes', testLock, {
    lock: {},
    unlock: {},
    wait: {},
    yield: {},
  }),
  model('test-clock', 'reaches 1 to 3 preemption points depending on the clock', testClock, { tick: {} }),
];

// ---- the selftest:* suites ----
function selftest(
  name: string,
  summary: string,
  programs: Record<string, ActorOp[]>,
  schedule: number[] = [],
  checks?: Suite['checks'],
): Suite {
  return {
    name: `selftest:${name}`,
    summary,
    actors: Object.keys(programs),
    properties: [],
    runs: 1,
    hidden: true,
    checks,
    arbitrary: (fc, o) =>
      fc.constant({ layout: MINI_LAYOUTS[0]!, variant: o.variant, programs, schedule, faults: {} } as Case),
  };
}
const touch: ActorOp[] = [
  { op: 'touch', map: 'buf', page: 0, write: true },
  { op: 'touch', map: 'buf', page: 1, write: true },
];
const pinOne: ActorOp[] = [{ op: 'pin', map: 'buf', page: 0, pages: 1 }];
const SELFTEST_SUITES: Suite[] = [
  selftest('throw', 'an actor throws (a simulator bug)', {
    'user-0': touch,
    'test-throw-0': [{ op: 'noop' }, { op: 'throw' }],
  }),
  selftest('exit', 'a worker thread exits under an actor', {
    'user-0': touch,
    'test-exit-0': [{ op: 'noop' }, { op: 'exit' }],
  }),
  selftest('hang', 'an actor spins without a preemption point (use --timeout)', {
    'user-0': touch,
    'test-spin-0': [{ op: 'spin', ms: 3_600_000 }],
  }),
  selftest(
    'deadlock',
    'an actor holds mem_hotplug_lock and waits for nothing while the hotplug agent offlines',
    { 'test-lock-0': [{ op: 'lock' }, { op: 'yield' }, { op: 'wait' }], 'hotplug-0': [{ op: 'offline', block: 4 }] },
    [0, 0, 0, 1],
  ),
  selftest(
    'clock',
    'an actor whose preemption points depend on the clock (try --check-determinism)',
    { 'user-0': touch, 'test-clock-0': [{ op: 'tick' }, { op: 'tick' }, { op: 'tick' }, { op: 'tick' }] },
    [1, 1, 1, 1, 1, 1, 1, 1],
  ),
  selftest('property', 'an end-of-run property check throws', { 'user-0': touch, 'pinner-0': pinOne }, [], {
    'selftest-check': () => {
      throw new Error('selftest: this property check is broken');
    },
  }),
  // a failure found at once whose shrinking takes seconds (every case spins 250 ms): to interrupt shrinking
  {
    name: 'selftest:shrink',
    summary: 'an actor throws in a long program that takes seconds to shrink (interrupt it while shrinking)',
    actors: ['test-spin-0', 'test-throw-0'],
    properties: [],
    runs: 1,
    hidden: true,
    arbitrary: (fc, o) =>
      fc.array(fc.constantFrom<ActorOp>({ op: 'noop' }, { op: 'throw' }), { minLength: 24, maxLength: 24 }).map(
        (prog) =>
          ({
            layout: MINI_LAYOUTS[0]!,
            variant: o.variant,
            schedule: [],
            faults: {},
            programs: { 'test-spin-0': [{ op: 'spin', ms: 250 }], 'test-throw-0': [...prog, { op: 'throw' }] },
          }) as Case,
      ),
  },
];

// ---- the allocator hammer (test/integration/concurrent_alloc.spec.ts) ----

/** Random alloc/free on one CPU, claiming each frame in a shared owner map. */
export interface AllocHammerTask {
  machine: MachineHandle;
  /** Int32 per frame: 0 = not held by a hammer, else the holder's id */
  owner: SharedArrayBuffer;
  cpu: number;
  id: number;
  ops: number;
  seed: number;
  gfps: number[];
  maxOrder: number;
  /** allocations held at once before the hammer starts freeing */
  holdMax: number;
}

export interface AllocHammerResult {
  allocs: number;
  frees: number;
  failures: number;
  /** frames found already owned by another hammer when handed out: must be empty */
  doubles: string[];
}

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
    if (held.length && (rng.below(2) === 0 || held.length > t.holdMax)) {
      release(rng.below(held.length));
      continue;
    }
    const order = rng.below(8) === 0 ? rng.below(t.maxOrder + 1) : 0;
    const gfp = t.gfps[rng.below(t.gfps.length)]! | (order ? __GFP_COMP : 0);
    const pfn = allocPages(m, gfp | __GFP_NORETRY, order); // no process to OOM-kill: fail instead of panicking
    if (pfn === NO_PAGE) {
      r.failures++;
      continue;
    }
    r.allocs++;
    for (let p = pfn; p < pfn + (1 << order); p++) {
      const prev = Atomics.compareExchange(owner, p, 0, t.id);
      if (prev !== 0 && r.doubles.length < 10)
        r.doubles.push(`pfn ${p} handed to hammer ${t.id} while hammer ${prev} holds it`);
    }
    held.push([pfn, order]);
  }
  while (held.length) release(held.length - 1);
  return r;
}

export const SELFTEST_PLUGIN = 'test/plugins/selftest';

export const plugin: Plugin = {
  actorModels: SELFTEST_AGENTS,
  suites: SELFTEST_SUITES,
  workerTasks: { 'alloc-hammer': allocHammer },
};
