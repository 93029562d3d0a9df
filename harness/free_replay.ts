// A free run that failed, replayed deterministically (docs/harness.md, "Free"): the interleaving that
// actually ran - the order in which the actors passed their preemption points, read from the trace
// ring - is followed by the deterministic scheduler, which writes each decision it takes into the
// schedule. That schedule is an ordinary case: it replays without the interleaving, shrinks and is saved
// like any other failure. A race whose two sides never cross a preemption point cannot replay this way;
// the outcome then says where the replay left the free run's path.
import type { Case, CaseResult, RunOptions } from './run_case';
import { interleavingFromTrace } from './trace';

export interface FreeReplay {
  /** the failing property the deterministic replay reproduced (one of the free run's), or null */
  property: string | null;
  /** the case with the replay's decisions as its schedule (null: the interleaving could not be had) */
  converted: Case | null;
  /** the deterministic run of converted */
  replay: CaseResult | null;
  /** what went wrong when it did not reproduce */
  why: string;
}

type Runner = (cs: Case, opts: RunOptions) => Promise<CaseResult>;

export async function replayFreeFailure(run: Runner, cs: Case, free: CaseResult, det: RunOptions): Promise<FreeReplay> {
  const order = interleavingFromTrace(free.ring, free.ringLost);
  if (!order) return { property: null, converted: null, replay: null, why: `the trace ring wrapped (${free.ringLost} entries lost): the start of the interleaving is gone` };
  const followed = await run(cs, { ...det, interleave: order });
  if (!followed.scheduleTaken) return { property: null, converted: null, replay: followed, why: 'the replay took more decisions than its schedule holds' };
  const converted: Case = { ...cs, schedule: followed.scheduleTaken };
  const replay = await run(converted, det);
  const failed = new Set(free.failures.map((f) => f.property));
  const property = replay.failures.find((f) => failed.has(f.property))?.property ?? null;
  let why = '';
  if (!property) {
    const mm = followed.orderMismatch;
    why = mm
      ? `the replay left the free run's path at point ${mm.index} of ${order.length} (reached ${mm.reached} where the free run had ${mm.expected}; ${mm.count} such points): the race lies between two preemption points`
      : `the replay followed all ${order.length} points of the free run and every property held: the race lies between two preemption points`;
  }
  return { property, converted, replay, why };
}
