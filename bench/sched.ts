// The harness benchmark (`npm run bench -- sched`): deterministic scheduled steps/s with 2, 4 and 8
// actors (direct token hand-off between worker threads at every preemption point), free-running steps/s,
// cases/s for a 4-actor case of about 50 steps on a mini machine, and the time from a seed to the first
// failure under --kernel v5.12 (which pins in ZONE_MOVABLE).
import { performance } from 'node:perf_hooks';
import { ActorPool } from '../harness/pool';
import { runCase, Case } from '../harness/run_case';
import { runSuite } from '../harness/runner';
import { SUITES, MINI_LAYOUTS } from '../harness/suites';
import { Prng } from '../harness/prng';
import type { ActorOp } from '../harness/types';

type Row = Record<string, string | number>;

const LAYOUT16 = { ...MINI_LAYOUTS[0]!, geometry: 'mini,cpus=16' };

/** n yielder actors, each reaching `points` preemption points; a random schedule (mostly switches). */
function yielderCase(n: number, points: number, seed: number): Case {
  const programs: Record<string, ActorOp[]> = {};
  for (let k = 0; k < n; k++) programs[`yielder-${k}`] = [{ op: 'yield', n: points }];
  const r = new Prng(seed);
  const schedule = Array.from({ length: n * points + 4 * n }, () => r.below(8));
  return { layout: LAYOUT16, variant: 'v6.12', programs, schedule, faults: {} };
}

/** user, two pinners and the hotplug agent: about 50 preemption points in all (the row prints the mean). */
function fourActorCase(seed: number): Case {
  const r = new Prng(seed);
  const user: ActorOp[] = [];
  const pin0: ActorOp[] = [];
  const pin1: ActorOp[] = [];
  for (let k = 0; k < 16; k++)
    user.push({ op: k % 3 ? 'touch' : 'write', map: 'buf', page: r.below(24), write: true, value: k });
  for (const p of [pin0, pin1]) {
    p.push(
      { op: 'pin', map: 'buf', page: r.below(24), pages: 2, fast: true },
      { op: 'dma', slot: 0, page: 1, value: 9 },
      { op: 'unpin', slot: 0 },
    );
    p.push(
      { op: 'pin', map: 'ring', page: r.below(8), pages: 1 },
      { op: 'dma', slot: 0, page: 0, value: 3 },
      { op: 'unpin', slot: 0 },
    );
    p.push(
      { op: 'pin', map: 'buf', page: r.below(24), pages: 3 },
      { op: 'dma', slot: 0, page: 2, value: 4 },
      { op: 'unpin', slot: 0 },
    );
  }
  const hot: ActorOp[] = [
    { op: 'offline', block: 5 },
    { op: 'online', block: 5, type: 'online_movable' },
  ];
  const schedule = Array.from({ length: 80 }, () => r.below(4));
  return {
    layout: MINI_LAYOUTS[0]!,
    variant: 'v6.12',
    programs: { 'user-0': user, 'pinner-0': pin0, 'pinner-1': pin1, 'hotplug-0': hot },
    schedule,
    faults: {},
  };
}

async function stepsPerSecond(pool: ActorPool, n: number, mode: 'det' | 'free', points: number): Promise<Row> {
  await runCase(pool, yielderCase(n, 200, 1), { mode }); // warm up the workers' JIT
  const t0 = performance.now();
  let steps = 0;
  let switches = 0;
  for (let rep = 0; rep < 3; rep++) {
    const r = await runCase(pool, yielderCase(n, points, rep + 2), { mode, ringCap: 1 << 16 });
    if (r.failures.length) throw new Error(`bench case failed: ${r.failures[0]!.message}`);
    steps += r.steps;
    switches += r.switches;
  }
  const s = (performance.now() - t0) / 1000;
  return {
    case: `${mode === 'det' ? 'deterministic' : 'free-running'}, ${n} actors`,
    steps,
    switches,
    seconds: +s.toFixed(2),
    'steps/s': Math.round(steps / s),
    target: mode === 'det' && n === 4 ? '>= 100k' : '',
  };
}

export async function schedRows(): Promise<Row[]> {
  const rows: Row[] = [];
  const pool = new ActorPool(8);
  try {
    for (const n of [2, 4, 8]) rows.push(await stepsPerSecond(pool, n, 'det', 40_000 / n));
    rows.push(await stepsPerSecond(pool, 4, 'free', 10_000));
    const cs = fourActorCase(7);
    for (let k = 0; k < 20; k++) await runCase(pool, cs, { mode: 'det' });
    const N = 400;
    const t0 = performance.now();
    let steps = 0;
    for (let k = 0; k < N; k++) {
      const r = await runCase(pool, k % 2 ? cs : fourActorCase(k), { mode: 'det' });
      if (r.failures.length)
        throw new Error(`bench case failed: ${r.failures[0]!.property}: ${r.failures[0]!.message}`);
      steps += r.steps;
    }
    const s = (performance.now() - t0) / 1000;
    rows.push({
      case: '4-actor case on a mini machine (user, 2 pinners, hotplug)',
      steps: Math.round(steps / N),
      switches: '',
      seconds: +s.toFixed(2),
      'steps/s': Math.round(steps / s),
      'cases/s': Math.round(N / s),
      target: '>= 200 cases/s',
    });
  } finally {
    await pool.destroy();
  }
  // time to the first failure from a fresh seed under v5.12 (search only, then with shrinking)
  for (const seed of [11, 12, 13]) {
    const t0 = performance.now();
    let first = 0;
    const out = { out: () => undefined, err: () => undefined };
    const summary = await runSuite({
      suite: SUITES['longterm-pin']!,
      variant: 'v5.12',
      seed,
      runs: 200,
      mode: 'det',
      checkDeterminism: false,
      json: true,
      regressionsDir: null,
      tty: false,
      interrupt: { stopped: false },
      io: out,
      onFirstFailure: () => {
        first = performance.now() - t0;
      },
    });
    rows.push({
      case: `v5.12, seed ${seed}: first failure (${summary.failures[0]?.property ?? 'none'})`,
      steps: summary.steps,
      switches: '',
      seconds: +(first / 1000).toFixed(2),
      'steps/s': '',
      'cases/s': '',
      target: `${summary.cases} cases; shrunk in ${((performance.now() - t0) / 1000).toFixed(2)} s`,
    });
  }
  return rows;
}
