// A free run's failure that the deterministic replay of its interleaving does not reproduce: the
// report says where the replay left the free run's path, in both orders it tries, and names the locks
// two overlapping steps took just before the failure (harness/free_replay.ts).
import { replayFreeFailure, sharedLocks } from '../../harness/free_replay';
import type { Case, CaseResult, RunOptions } from '../../harness/run_case';
import { K_POINT, K_EXIT, K_VIOLATION, fnv1a, RingEntry } from '../../harness/schedctl';
import { MINI_LAYOUTS } from '../../harness/suites';

const L = (s: string): number => fnv1a(s);
const labels = new Map(['op:pin', 'gup:after-collect', 'op:touch', 'op:write', 'exit'].map((s) => [L(s), s]));
const pt = (seq: number, actor: number, label: string): RingEntry => ({
  seq,
  actor,
  kind: K_POINT,
  label: L(label),
  arg: 0,
});

/**
 * A free run of two actors: pinner-0's step op:pin .. gup:after-collect (seq 1..6) overlaps user-0's op:touch ..
 * op:write (seq 2..5).
 */
function freeRun(): CaseResult {
  const ring: RingEntry[] = [
    pt(1, 0, 'op:pin'),
    pt(2, 1, 'op:touch'),
    pt(5, 1, 'op:write'),
    pt(6, 0, 'gup:after-collect'),
    pt(8, 1, 'op:touch'),
    { seq: 9, actor: 0, kind: K_VIOLATION, label: L('actor-threw'), arg: -1 },
    { seq: 10, actor: 1, kind: K_EXIT, label: L('exit'), arg: 0 },
  ];
  const r = {
    failures: [
      { property: 'kernel-bug', message: 'pinner-0: KernelBug: list_del corruption', actor: 'pinner-0', seq: 9 },
    ],
    ring,
    ringLost: 0,
    labels,
    names: ['pinner-0', 'user-0'],
    end: 'error',
    steps: 5,
    actors: [
      {
        kind: 'actor',
        name: 'pinner-0',
        index: 0,
        ops: [],
        violations: [],
        log: [],
        held: [],
        locks: [3, 100, 4, 200, 7, 300],
      },
      {
        kind: 'actor',
        name: 'user-0',
        index: 1,
        ops: [],
        violations: [],
        log: [],
        held: [],
        locks: [3, 100, 3, 400, 9, 300],
      },
    ],
  } as unknown as CaseResult;
  Object.defineProperty(r, 'wordName', {
    value: (w: number) =>
      ({ 100: 'mm 0 page_table_lock', 200: 'zone Normal zone->lock', 300: 'mm 0 mmap_lock', 400: 'lru' })[w] ??
      `word ${w}`,
  });
  return r;
}

describe('sharedLocks', () => {
  it('names the locks two actors took in steps that overlapped before the failure, the failing actor first', () => {
    expect(sharedLocks(freeRun(), 9, 'pinner-0')).toEqual([
      'pinner-0 (op:pin .. gup:after-collect) and user-0 (op:touch .. op:write) overlapped, both taking mm 0 page_table_lock',
      'pinner-0 (gup:after-collect .. the failure) and user-0 (op:touch .. the failure) overlapped, both taking mm 0 mmap_lock',
    ]);
  });

  it('steps that did not overlap share nothing', () => {
    const r = freeRun();
    r.actors[1]!.locks = [9, 200]; // user-0 took the zone lock only after pinner-0's step that took it had ended
    expect(sharedLocks(r, 9, 'pinner-0')).toEqual([]);
  });
});

describe('replayFreeFailure', () => {
  it('a replay that never fails reports both orders and the shared locks', async () => {
    const cs: Case = {
      layout: MINI_LAYOUTS[0]!,
      variant: 'v6.12',
      programs: { 'pinner-0': [], 'user-0': [] },
      schedule: [],
      faults: {},
    };
    const runs: RunOptions[] = [];
    const run = async (_c: Case, o: RunOptions): Promise<CaseResult> => {
      runs.push(o);
      return {
        failures: [],
        scheduleTaken: [1, 0, 1],
        orderMismatch: o.interleave ? { count: 2, index: 3, expected: 'op:write', reached: 'op:touch' } : undefined,
      } as unknown as CaseResult;
    };
    const fr = await replayFreeFailure(run, cs, freeRun(), { mode: 'det' });
    expect(fr.property).toBeNull();
    // each order followed, then its schedule replayed plainly
    expect(runs.map((o) => !!o.interleave)).toEqual([true, false, true, false]);
    expect(fr.why).toMatch(
      /^in the order the steps ended, the replay left the free run's path at point 3 of 6 \(op:touch where the free run had op:write; 2 such points\); in the order the steps began, .*: the race lies between two preemption points; in the free run, just before the failure, pinner-0 \(op:pin \.\. gup:after-collect\) and user-0 \(op:touch \.\. op:write\) overlapped, both taking mm 0 page_table_lock/,
    );
  });

  it('a replay that fails the same way is the reproduction', async () => {
    const cs: Case = {
      layout: MINI_LAYOUTS[0]!,
      variant: 'v6.12',
      programs: { 'pinner-0': [], 'user-0': [] },
      schedule: [],
      faults: {},
    };
    const run = async (): Promise<CaseResult> =>
      ({
        failures: [{ property: 'kernel-bug', message: 'x', seq: 1 }],
        scheduleTaken: [0, 1],
      }) as unknown as CaseResult;
    const fr = await replayFreeFailure(run, cs, freeRun(), { mode: 'det' });
    expect(fr.property).toBe('kernel-bug');
    expect(fr.converted!.schedule).toEqual([0, 1]);
  });
});
