// Misbehaving actors for the harness's own reliability tests - a simulator bug, a dying worker, a
// livelock, a deadlock, hidden nondeterminism - and `yielder`, which only reaches preemption points
// (the scheduler benchmark). They break runs on purpose, so they stay out of the quiescence barrier.
import type * as fcType from 'fast-check';
import type { OpResult } from '../../devices/device';
import type { ActorOp } from '../types';
import { H_HOTPLUG_LOCK, H_MAGIC } from '../../mm/memmap';
import { mutexLock, mutexUnlock, waitWhileEqual } from '../../mm/locking';
import { AgentEnv, AgentModel, AgentState, rc, num } from './agent';
// Misbehaving actors for the harness's reliability tests

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
      while (Number(process.hrtime.bigint() - t0) / 1e6 < end) { /* no preemption point */ }
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
      for (let n = 0; n < 100_000; n++) waitWhileEqual(env.m.header, H_MAGIC, env.m.header[H_MAGIC]!, 'test-lock: an event that never comes', 10);
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

/** Reaches n preemption points per op and does nothing else: the scheduler's own cost (bench). */
const yielder = (env: AgentEnv): AgentState => ({
  step: (op) => {
    const n = num(op, 'n', 1);
    for (let k = 0; k < n; k++) env.yieldPoint('yielder:yield');
    return rc(n);
  },
  inspect: () => ({ held: [], accounting: {} }),
  teardown: () => rc(0),
});

const SKIP = 'a harness self-test actor: it breaks the run on purpose';

function selftestModel(name: string, summary: string, create: (env: AgentEnv) => AgentState, ops: AgentModel['ops']): AgentModel {
  return {
    name, summary, source: 'the harness', create, ops, errnos: Object.fromEntries(Object.keys(ops).map((o) => [o, []])),
    arbitrary: (fc: typeof fcType) => fc.constant({ op: Object.keys(ops)[0]! }) as fcType.Arbitrary<ActorOp>,
    faultPoints: [], programLength: 1, skipsQuiescence: SKIP,
  };
}

export const SELFTEST_AGENTS: AgentModel[] = [
  selftestModel('test-throw', 'throws at its op throw (a simulator bug inside an actor)', testThrow, { noop: {}, throw: { why: 'string' } }),
  selftestModel('test-exit', 'ends its worker thread', testExit, { noop: {}, exit: {} }),
  selftestModel('test-spin', 'spins without a preemption point', testSpin, { noop: {}, spin: { ms: 'nat' } }),
  selftestModel('test-lock', 'holds mem_hotplug_lock across ops and waits for an event that never comes', testLock, { lock: {}, unlock: {}, wait: {}, yield: {} }),
  selftestModel('test-clock', 'reaches 1 to 3 preemption points depending on the clock', testClock, { tick: {} }),
  { ...selftestModel('yielder', 'reaches n preemption points per op (the scheduler benchmark)', yielder, { yield: { n: 'nat' } }),
    skipsQuiescence: 'the scheduler benchmark measures the scheduler alone' },
];
