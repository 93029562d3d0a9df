// Shrinking past fast-check: drop one op at a time and keep the interleaving of the rest.
//
// fast-check shrinks a case's programs and its schedule independently. A schedule's decisions are
// taken at preemption points in the order they are reached, so removing an op shifts every decision
// after it, and a failure that hangs on one interleaving is lost: the shrinker stops with ops that
// only serve to keep later decisions in place (R17 in docs/properties.md). This pass removes an op and
// runs the case along the interleaving the failing run took, less the points of the removed op
// (the scheduler's `interleave` mode, as a free run's failure is replayed: harness/free_replay.ts). The
// decisions that run takes become the candidate's schedule, which must fail the same way on its own.
// Deterministic: the same failing case gives the same result.
import { CaseError, type Case, type CaseResult, type RunOptions } from './run_case';
import type { OrderEntry } from './scheduler';
import { K_EXIT, K_OP, K_POINT } from './schedctl';

type Runner = (cs: Case, opts: RunOptions) => Promise<CaseResult>;

/** Points that belong to no op of the program (before the first op, teardown, exit). */
const NO_OP = -1;

/**
 * The failing run's points in the order they were reached, each with the program op of its actor it
 * was reached in: an op's own `op:` point and every point up to the actor's next `op:` point. Null
 * when the trace ring wrapped.
 */
export function pointsByOp(r: CaseResult): { order: OrderEntry[]; op: number[] } | null {
  if (r.ringLost > 0) return null;
  const order: OrderEntry[] = [];
  const op: number[] = [];
  const cur = new Map<number, number>(); // actor -> the op it is in
  const opPoint = new Map<number, number>(); // actor -> its last `op:` point, until the K_OP record names the op
  for (const e of r.ring) {
    if (e.kind === K_OP) {
      const at = opPoint.get(e.actor);
      if (at !== undefined) op[at] = e.arg;
      opPoint.delete(e.actor);
      cur.set(e.actor, e.arg);
      continue;
    }
    if (e.kind !== K_POINT && e.kind !== K_EXIT) continue;
    const isOp = e.kind === K_POINT && (r.labels.get(e.label) ?? '').startsWith('op:');
    if (isOp) {
      // a program op's point is followed by its K_OP record; teardown's is not
      cur.set(e.actor, NO_OP);
      opPoint.set(e.actor, order.length);
    }
    op.push(e.kind === K_EXIT ? NO_OP : (cur.get(e.actor) ?? NO_OP));
    order.push({ actor: e.actor, label: e.label });
  }
  return { order, op };
}

/** Ops over every program of a case. */
export const opCount = (cs: Case): number => Object.values(cs.programs).reduce((n, p) => n + p.length, 0);

/**
 * Remove ops from a failing case while it still fails (fails(r)), last ops first, each removal
 * checked along the interleaving the failing run took. At most maxRuns runs; stopped() ends it early
 * (Ctrl-C). The reduced case and its run, or null when no op could go.
 */
export async function dropOps(
  run: Runner,
  det: RunOptions,
  cs: Case,
  r: CaseResult,
  fails: (r: CaseResult) => boolean,
  stopped: () => boolean,
  maxRuns = 200,
): Promise<{ cs: Case; r: CaseResult } | null> {
  let runs = 0;
  let reduced = false;
  let progress = true;
  while (progress && runs < maxRuns && opCount(cs) > 1) {
    progress = false;
    const pts = pointsByOp(r);
    if (!pts) break;
    const names = Object.keys(cs.programs);
    // the last op of the last actor first: later ops depend on earlier ones more often than the reverse
    for (let a = names.length - 1; a >= 0 && !progress && runs < maxRuns; a--) {
      const prog = cs.programs[names[a]!]!;
      for (let i = prog.length - 1; i >= 0 && runs < maxRuns; i--) {
        if (stopped()) return reduced ? { cs, r } : null;
        const cand: Case = {
          ...cs,
          programs: { ...cs.programs, [names[a]!]: prog.filter((_, k) => k !== i) },
          schedule: [],
        };
        const interleave = pts.order.filter((e, k) => !(e.actor === a && pts.op[k] === i));
        runs += 2;
        const followed = await tryRun(run, cand, { ...det, interleave });
        if (!followed?.scheduleTaken) continue; // interleaveOutcome() has dropped its trailing zeros
        const conv: Case = { ...cand, schedule: followed.scheduleTaken };
        const again = await tryRun(run, conv, det);
        if (!again || !fails(again)) continue;
        cs = conv;
        r = again;
        reduced = progress = true;
        break;
      }
    }
  }
  return reduced ? { cs, r } : null;
}

/** A candidate's run, or null when the harness refuses it (a CaseError: the candidate is not kept). */
async function tryRun(run: Runner, cs: Case, opts: RunOptions): Promise<CaseResult | null> {
  try {
    return await run(cs, opts);
  } catch (e) {
    if (e instanceof CaseError) return null;
    throw e;
  }
}
