// Shrinking past fast-check: drop one op at a time and keep the interleaving of the rest.
//
// fast-check shrinks a case's programs and its schedule independently. A schedule's decisions are
// taken at preemption points in the order they are reached, so removing an op shifts every decision
// after it, and a failure that hangs on one interleaving is lost: the shrinker stops with ops that
// only serve to keep later decisions in place (R17 in docs/properties.md). This pass removes an op and
// runs the case along the interleaving the failing run took, less the points of the removed op
// (the scheduler's `interleave` mode, as a free run's failure is replayed: harness/free_replay.ts). The
// decisions that run takes become the candidate's schedule, which must fail the same way on its own.
// An interleaving orders points only, so when it loses the failure the failing run's own decisions,
// less those taken in the op, are tried too. Deterministic: the same failing case gives the same result.
import { CaseError, type Case, type CaseResult, type RunOptions } from './run_case';
import type { OrderEntry } from './scheduler';
import { K_BLOCK, K_EXIT, K_OP, K_POINT, K_RET } from './schedctl';

type Runner = (cs: Case, opts: RunOptions) => Promise<CaseResult>;

/** A scheduling decision of a run: the actor that took it and the op of its program it was in. */
interface Decision {
  actor: number;
  op: number;
}

/** Points that belong to no op of the program (before the first op, teardown, exit). */
const NO_OP = -1;

/**
 * The failing run's points in the order they were reached, each with the program op of its actor it
 * was reached in: an op's own `op:` point and every point up to the actor's next `op:` point. And its
 * scheduling decisions after the first (initDeterministic()'s), one for each point, wait that blocked
 * and exit in the order taken (harness/scheduler.ts), each with the op it was taken in: a wait between
 * an op's start and its return belongs to the op, one outside (the quiescence barrier) to none. Null
 * when the trace ring wrapped.
 */
export function pointsByOp(r: CaseResult): { order: OrderEntry[]; op: number[]; decisions: Decision[] } | null {
  if (r.ringLost > 0) return null;
  const order: OrderEntry[] = [];
  const op: number[] = [];
  const decisions: Decision[] = [];
  const cur = new Map<number, number>(); // actor -> the op it is in
  const running = new Map<number, number>(); // actor -> the op between its K_OP and K_RET records
  // actor -> its last `op:` point (in order, in decisions), until the K_OP record names the op
  const opPoint = new Map<number, [number, number]>();
  for (const e of r.ring) {
    if (e.kind === K_OP) {
      const at = opPoint.get(e.actor);
      if (at !== undefined) op[at[0]] = decisions[at[1]]!.op = e.arg;
      opPoint.delete(e.actor);
      cur.set(e.actor, e.arg);
      running.set(e.actor, e.arg);
      continue;
    }
    if (e.kind === K_RET) running.delete(e.actor);
    if (e.kind === K_BLOCK) decisions.push({ actor: e.actor, op: running.get(e.actor) ?? NO_OP });
    if (e.kind !== K_POINT && e.kind !== K_EXIT) continue;
    const isOp = e.kind === K_POINT && (r.labels.get(e.label) ?? '').startsWith('op:');
    if (isOp) {
      // a program op's point is followed by its K_OP record; teardown's is not
      cur.set(e.actor, NO_OP);
      opPoint.set(e.actor, [order.length, decisions.length]);
    }
    const at = e.kind === K_EXIT ? NO_OP : (cur.get(e.actor) ?? NO_OP);
    op.push(at);
    decisions.push({ actor: e.actor, op: at });
    order.push({ actor: e.actor, label: e.label });
  }
  return { order, op, decisions };
}

/**
 * A schedule without one op's decisions: the first decision, then every later one (pointsByOp()'s
 * decisions) not taken in op i of actor a, each with the choice it had (0 past the schedule's end).
 */
function scheduleWithout(schedule: readonly number[], decisions: readonly Decision[], a: number, i: number): number[] {
  const out = [schedule[0] ?? 0];
  decisions.forEach((d, k) => {
    if (!(d.actor === a && d.op === i)) out.push(schedule[k + 1] ?? 0);
  });
  while (out.length > 1 && out[out.length - 1] === 0) out.pop();
  return out;
}

/** Ops over every program of a case. */
export const opCount = (cs: Case): number => Object.values(cs.programs).reduce((n, p) => n + p.length, 0);

/**
 * Remove ops from a failing case while it still fails (fails(r)), last ops first, each removal
 * checked along the interleaving the failing run took, then with its decisions. At most maxRuns
 * runs; stopped() ends it early (Ctrl-C). The reduced case and its run, or null when no op could go.
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
        const attempt = async (schedule: number[]): Promise<{ cs: Case; r: CaseResult } | null> => {
          const conv: Case = { ...cand, schedule };
          const again = await tryRun(run, conv, det);
          return again && fails(again) ? { cs: conv, r: again } : null;
        };
        // interleaveOutcome() has dropped its trailing zeros. The interleaving orders points only: an
        // actor that ran on past its point (into an op with none, up to a wait) may run later along it,
        // so next the failing run's own decisions, less the op's
        let kept = followed?.scheduleTaken ? await attempt(followed.scheduleTaken) : null;
        if (!kept) {
          runs++;
          kept = await attempt(scheduleWithout(cs.schedule, pts.decisions, a, i));
        }
        if (!kept) continue;
        ({ cs, r } = kept);
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
