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
  if (!interleavingFromTrace(free.ring, free.ringLost)) {
    return { property: null, converted: null, replay: null, why: `the trace ring wrapped (${free.ringLost} entries lost): the start of the interleaving is gone` };
  }
  const failed = new Set(free.failures.map((f) => f.property));
  const notes: string[] = [];
  let last: FreeReplay | null = null;
  for (const by of ['end', 'start'] as const) {
    const order = interleavingFromTrace(free.ring, free.ringLost, by)!;
    const followed = await run(cs, { ...det, interleave: order });
    if (!followed.scheduleTaken) { notes.push(`${by} order: more decisions than the schedule holds`); continue; }
    const converted: Case = { ...cs, schedule: followed.scheduleTaken };
    const replay = await run(converted, det);
    const property = replay.failures.find((f) => failed.has(f.property))?.property ?? null;
    last = { property, converted, replay, why: '' };
    if (property) return last;
    const mm = followed.orderMismatch;
    const label = (h: string): string => (/^#/.test(h) ? free.labels.get(parseInt(h.slice(1), 16)) ?? h : h);
    notes.push(mm
      ? `in the order the steps ${by === 'end' ? 'ended' : 'began'}, the replay left the free run's path at point ${mm.index} of ${order.length} (${label(mm.reached)} where the free run had ${label(mm.expected)}; ${mm.count} such points)`
      : `in the order the steps ${by === 'end' ? 'ended' : 'began'}, the replay passed all ${order.length} points of the free run and no property failed`);
  }
  const why = `${notes.join('; ')}: the race lies between two preemption points`;
  return last ? { ...last, why } : { property: null, converted: null, replay: null, why };
}
