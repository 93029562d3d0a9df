// The deterministic scheduler and the actor runtime, through runCase(): determinism, the choice rule,
// blocking, deadlock, the conversion of free runs, seeded faults, and the in-thread pin checks.
import { PoolHolder } from '../../harness/runner';
import { Case } from '../../harness/run_case';
import { MINI_LAYOUTS } from '../../harness/suites';
import { interleavingFromTrace } from '../../harness/trace';
import { K_POINT, K_EXIT, K_BLOCK, RingEntry, fnv1a } from '../../harness/schedctl';
import type { ActorOp } from '../../harness/types';
import { Prng } from '../../harness/prng';
import { EINTR, EINVAL, ENOMEM } from '../../mm/errno';
import { loadPlugin } from '../../harness/plugins';
import { BENCH_PLUGIN } from '../../bench/plugin';
import { SELFTEST_PLUGIN } from '../plugins/selftest';

loadPlugin(BENCH_PLUGIN); // the yielder actor
loadPlugin(SELFTEST_PLUGIN); // test-lock

let pool: PoolHolder;
beforeAll(() => {
  pool = new PoolHolder(4);
});
afterAll(async () => {
  await pool.destroy();
});

const L = MINI_LAYOUTS[0]!;

function yielders(points: number[], schedule: number[]): Case {
  const programs: Record<string, ActorOp[]> = {};
  points.forEach((p, k) => {
    programs[`yielder-${k}`] = [{ op: 'yield', n: p }];
  });
  return { layout: L, variant: 'v6.12', programs, schedule, faults: {} };
}

/** The scheduling decisions of a run: which actor reached each preemption point or exit. */
function decisions(ring: RingEntry[]): string[] {
  return ring
    .filter((e) => e.kind === K_POINT || e.kind === K_EXIT)
    .map((e) => `${e.actor}${e.kind === K_EXIT ? 'x' : ''}`);
}

/**
 * A reference model of the choice rule: each actor reaches points in order (op:yield, n yields,
 * op:teardown) and then exits; at each decision the c-th runnable actor in rotation from the current one runs.
 */
function expectedDecisions(points: number[], schedule: number[]): string[] {
  const n = points.length;
  const left = points.map((p) => p + 2); // op:yield + n yields + op:teardown
  const done = new Array(n).fill(false);
  const out: string[] = [];
  let d = 0;
  const pick = (from: number): number => {
    const cands: number[] = [];
    for (let k = 0; k < n; k++) if (!done[(from + k) % n]) cands.push((from + k) % n);
    const c = d < schedule.length ? schedule[d]! : 0;
    d++;
    return cands[c % cands.length]!;
  };
  let cur = pick(0);
  for (;;) {
    if (left[cur]! > 0) {
      left[cur]!--;
      out.push(String(cur));
    } else {
      done[cur] = true;
      out.push(`${cur}x`);
      if (done.every(Boolean)) break;
    }
    cur = pick(cur);
  }
  return out;
}

describe('deterministic mode', () => {
  it('runs the same case to the same trace hash, and another schedule to another', async () => {
    const r = new Prng(5);
    const cs = yielders(
      [30, 20, 25],
      Array.from({ length: 80 }, () => r.below(5)),
    );
    const a = await pool.run(cs, { mode: 'det' });
    const b = await pool.run(cs, { mode: 'det' });
    expect(a.end).toBe('done');
    expect(a.failures).toEqual([]);
    expect(a.traceHash).toBe(b.traceHash);
    expect(decisions(a.ring)).toEqual(decisions(b.ring));
    const c = await pool.run({ ...cs, schedule: cs.schedule.map((x) => x + 1) }, { mode: 'det' });
    expect(c.traceHash).not.toBe(a.traceHash);
  });

  it('hands the CPU to the c-th runnable actor in rotation; choice 0 keeps running, no schedule means no preemption', async () => {
    const points = [6, 3, 5, 4];
    const r = new Prng(9);
    for (const schedule of [[], [2], [1, 1, 1, 1, 1, 1, 1], Array.from({ length: 40 }, () => r.below(7))]) {
      const res = await pool.run(yielders(points, schedule), { mode: 'det' });
      expect(decisions(res.ring)).toEqual(expectedDecisions(points, schedule));
    }
    const none = await pool.run(yielders(points, []), { mode: 'det' });
    expect(none.switches).toBe(3); // each actor runs to its end, then the next
  });

  it('skips an actor blocked on a lock until the holder lets go', async () => {
    // test-lock takes mem_hotplug_lock and yields; the hotplug agent's offline blocks on it; test-lock unlocks
    const cs: Case = {
      layout: L,
      variant: 'v6.12',
      schedule: [0, 0, 0, 1],
      programs: {
        'test-lock-0': [{ op: 'lock' }, { op: 'yield' }, { op: 'unlock' }],
        'hotplug-0': [{ op: 'offline', block: 4 }],
      },
      faults: {},
    };
    const r = await pool.run(cs, { mode: 'det' });
    expect(r.end).toBe('done');
    expect(r.failures).toEqual([]);
    const blocks = r.ring.filter((e) => e.kind === K_BLOCK);
    expect(blocks.map((e) => e.actor)).toEqual([1]);
    expect(r.lines.some((l) => /sched_blocked: mutex on mem_hotplug_lock/.test(l.text))).toBe(true);
    expect(r.actors[1]!.ops[0]!.rc).toBe(0); // the offline went through once the lock was free
  });

  it('two writers of one memory block: the second waits on the hotplug lock, then reads the state the first left', async () => {
    // hotplug-1's offline starts inside hotplug-0's (at offline:isolate) and blocks on the lock; with the
    // state read before the lock (the model until 2026-12-06) it offlined the offline block: a RangeError
    const cs: Case = {
      layout: { ...L, cmdline: 'mem=1M movablecore=512K sysctl.vm.min_free_kbytes=16' },
      variant: 'v6.12',
      schedule: [0, 0, 1],
      programs: {
        'hotplug-0': [{ op: 'offline', block: 1 }],
        'hotplug-1': [
          { op: 'offline', block: 1 },
          { op: 'online', block: 1, type: 'online_movable' },
        ],
      },
      faults: {},
    };
    const r = await pool.run(cs, { mode: 'det' });
    expect(r.failures).toEqual([]);
    expect(r.lines.some((l) => /sched_blocked: mutex on mem_hotplug_lock/.test(l.text))).toBe(true);
    const [a, b] = [r.actors[0]!.ops, r.actors[1]!.ops];
    expect(a.map((o) => o.rc)).toEqual([0]);
    expect(b.map((o) => o.rc)).toEqual([-EINVAL, 0]);
    expect(b[0]!.seq).toBeGreaterThan(a[0]!.seq); // it returned after the first offline finished
    expect(b[0]!.detail).toBe('memory5 (Movable) offline: -EINVAL');
  });

  it('reports a deadlock with each blocked actor and what it waits for, without hanging', async () => {
    const cs: Case = {
      layout: L,
      variant: 'v6.12',
      schedule: [0, 0, 0, 1],
      programs: {
        'test-lock-0': [{ op: 'lock' }, { op: 'yield' }, { op: 'wait' }],
        'hotplug-0': [{ op: 'offline', block: 4 }],
      },
      faults: {},
    };
    const r = await pool.run(cs, { mode: 'det', timeoutMs: 20_000 });
    expect(r.end).toBe('deadlock');
    expect(r.failures.map((f) => f.property)).toEqual(['deadlock']);
    expect(r.failures[0]!.message).toMatch(
      /test-lock-0 waits for test-lock: an event that never comes on header\[0\]; hotplug-0 waits for mutex on mem_hotplug_lock/,
    );
    expect(r.actors.every((a) => a?.stopped === 'deadlock' || a?.stopped === 'stopped')).toBe(true);
  });
});

describe('free mode', () => {
  it('records every preemption point; following that interleaving replays it deterministically, and the decisions taken are a schedule that replays it again', async () => {
    const cs = yielders([400, 300, 350, 250], []);
    let raced = false;
    for (let attempt = 0; attempt < 5 && !raced; attempt++) {
      const free = await pool.run(cs, { mode: 'free' });
      expect(free.end).toBe('done');
      expect(free.steps).toBe(400 + 300 + 350 + 250 + 4 * 2);
      const order = interleavingFromTrace(free.ring, free.ringLost);
      expect(order).not.toBeNull();
      const followed = await pool.run(cs, { mode: 'det', interleave: order! });
      expect(decisions(followed.ring)).toEqual(decisions(free.ring));
      expect(followed.orderMismatch).toBeUndefined();
      const again = await pool.run({ ...cs, schedule: followed.scheduleTaken! }, { mode: 'det' });
      expect(decisions(again.ring)).toEqual(decisions(free.ring));
      expect(again.traceHash).toBe(followed.traceHash);
      raced = followed.scheduleTaken!.some((c) => c !== 0);
    }
    expect(raced).toBe(true); // threads really interleaved at least once
  });

  it("an interleaving that is not the run's own is followed where it can be and the first point it leaves is named", async () => {
    const cs = yielders([3, 3], []);
    const free = await pool.run(cs, { mode: 'free' });
    const order = interleavingFromTrace(free.ring, free.ringLost)!;
    const wrong = order.map((e) => ({ ...e, label: e.actor === 1 ? fnv1a('yielder:yield') : e.label })); // op:yield, op:teardown and exit differ
    const followed = await pool.run(cs, { mode: 'det', interleave: wrong });
    expect(followed.end).toBe('done');
    expect(followed.orderMismatch).toMatchObject({ count: 3, reached: 'op:yield', expected: 'yielder:yield' });
  });

  it('cannot follow a trace whose ring wrapped', async () => {
    const free = await pool.run(yielders([200, 200], []), { mode: 'free', ringCap: 64 });
    expect(free.ringLost).toBeGreaterThan(0);
    expect(interleavingFromTrace(free.ring, free.ringLost)).toBeNull();
  });
});

const touchAll = (n: number): ActorOp[] =>
  Array.from({ length: n }, (_, k) => ({ op: 'touch', map: 'buf', page: k, write: true }));

describe('seeded fault points', () => {
  it('a failing migration target makes the pin fail with -ENOMEM, and the trace says why', async () => {
    const cs: Case = {
      layout: L,
      variant: 'v6.12',
      schedule: [],
      programs: { 'user-0': touchAll(2), 'pinner-0': [{ op: 'pin', map: 'buf', page: 0, pages: 2 }] },
      faults: { 'pinner-0': { 'migrate:alloc-target': [0] } },
    };
    const r = await pool.run(cs, { mode: 'det' });
    expect(r.actors[1]!.ops[0]!.rc).toBe(-ENOMEM);
    expect(r.lines.some((l) => l.text === 'pinlab_fault: migrate:alloc-target fails')).toBe(true);
    expect(r.failures).toEqual([]);
    const clean = await pool.run({ ...cs, faults: {} }, { mode: 'det' });
    expect(clean.actors[1]!.ops[0]!.rc).toBe(2);
  });

  it('a signal during offline ends it with -EINTR (signal backoff)', async () => {
    const cs: Case = {
      layout: L,
      variant: 'v6.12',
      schedule: [],
      programs: { 'user-0': touchAll(4), 'hotplug-0': [{ op: 'offline', block: 7 }] },
      faults: { 'hotplug-0': { signal: [0] } },
    };
    const r = await pool.run(cs, { mode: 'det' });
    expect(r.actors[1]!.ops[0]!.rc).toBe(-EINTR);
    expect(r.actors[1]!.ops[0]!.detail).toMatch(/signal backoff/);
    expect(r.lines.some((l) => /signal_generate: sig=14/.test(l.text))).toBe(true);
  });

  it('a fatal signal during a pin ends it with -EINTR and nothing stays pinned', async () => {
    const cs: Case = {
      layout: L,
      variant: 'v6.12',
      schedule: [],
      programs: { 'user-0': touchAll(4), 'pinner-0': [{ op: 'pin', map: 'buf', page: 0, pages: 4 }] },
      faults: { 'pinner-0': { 'fatal-signal': [0] } },
    };
    const r = await pool.run(cs, { mode: 'det' });
    expect(r.actors[1]!.ops[0]!.rc).toBe(-EINTR);
    expect(r.failures).toEqual([]); // pins balance: the interrupted pin released what it took
  });

  it('a transient isolation failure is retried by v6.12 but pinned in place by R12 (caught)', async () => {
    const cs: Case = {
      layout: L,
      variant: 'v6.12+R12',
      schedule: [],
      programs: { 'user-0': touchAll(1), 'pinner-0': [{ op: 'pin', map: 'buf', page: 0, pages: 1 }] },
      faults: { 'pinner-0': { 'migrate:isolate': [0] } },
    };
    const bug = await pool.run(cs, { mode: 'det' });
    // the pin in CMA is caught at the pin; at quiescence the pinned page also keeps its block from going offline
    expect(bug.failures.map((f) => f.property)).toEqual(['no-longterm-pin-in-movable', 'movable-offlinable']);
    const fixed = await pool.run({ ...cs, variant: 'v6.12' }, { mode: 'det' });
    expect(fixed.failures).toEqual([]);
    const noFault = await pool.run({ ...cs, faults: {} }, { mode: 'det' });
    expect(noFault.failures).toEqual([]);
    expect(noFault.actors[1]!.ops[0]!.detail).toMatch(/1 migrated, 1 retries/);
    expect(fixed.actors[1]!.ops[0]!.detail).toMatch(/1 migrated, 2 retries/); // one more round for the failed isolation
  });
});

describe('in-thread pin checks', () => {
  // the user fills memory of an all-Normal machine from its lowest free pfns (buf pages 30-33 land in
  // block 1, pfn 32-63); the hotplug agent isolates that block for offlining; then, before it migrates
  // anything, the pinner pins those four pages
  const cs = (variant: string): Case => ({
    layout: { cmdline: 'mem=1M sysctl.vm.min_free_kbytes=16', geometry: 'mini', maps: [{ name: 'buf', pages: 64 }] },
    variant,
    programs: {
      'user-0': touchAll(48),
      'hotplug-0': [{ op: 'offline', block: 1 }],
      'pinner-0': [{ op: 'pin', map: 'buf', page: 30, pages: 4 }],
    },
    schedule: [...Array(52).fill(0), 1],
    faults: {},
  });

  it('v5.13 pins in a pageblock isolated since before the pin (no ISOLATE check yet): caught', async () => {
    const r = await pool.run(cs('v5.13'), { mode: 'det' });
    expect(r.failures.map((f) => f.property)).toEqual(Array(4).fill('no-longterm-pin-in-movable'));
    expect(r.failures[0]!.message).toMatch(/MIGRATE_ISOLATE before the pin began and still is/);
  });

  it('v6.12 migrates the pages out of the isolated pageblock first', async () => {
    const r = await pool.run(cs('v6.12'), { mode: 'det' });
    expect(r.failures).toEqual([]);
    expect(r.actors[2]!.ops[0]!.detail).toMatch(/4 migrated/);
  });

  it('v5.12 pins in ZONE_MOVABLE: caught at the pin', async () => {
    const c: Case = {
      layout: L,
      variant: 'v5.12',
      schedule: [],
      programs: { 'pinner-0': [{ op: 'pin', map: 'buf', page: 3, pages: 2, fast: true }] },
      faults: {},
    };
    const r = await pool.run(c, { mode: 'det' });
    expect(r.failures.map((f) => f.property)).toEqual([
      'no-longterm-pin-in-movable',
      'no-longterm-pin-in-movable',
      'movable-offlinable',
    ]);
    expect(r.failures[2]!.message).toMatch(
      /with every actor idle and its long-term pins held, memory\d+ \(ZONE_MOVABLE.*failed to go offline/,
    );
    expect((await pool.run({ ...c, variant: 'v6.12' }, { mode: 'det' })).failures).toEqual([]);
  });
});
