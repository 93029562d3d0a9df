// A free run that failed, replayed deterministically (docs/harness.md, "Free"): the interleaving that
// actually ran - the order in which the actors passed their preemption points, read from the trace
// ring - is followed by the deterministic scheduler, which writes each decision it takes into the
// schedule. That schedule is an ordinary case: it replays without the interleaving, shrinks and is saved
// like any other failure. A race whose two sides never cross a preemption point cannot replay this way;
// the outcome then says where the replay left the free run's path.
import type { Case, CaseResult, RunOptions } from './run_case';
import { interleavingFromTrace } from './trace';
import { K_POINT, K_EXIT } from './schedctl';

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
    return {
      property: null,
      converted: null,
      replay: null,
      why: `the trace ring wrapped (${free.ringLost} entries lost): the start of the interleaving is gone`,
    };
  }
  const failed = new Set(free.failures.map((f) => f.property));
  const notes: string[] = [];
  let last: FreeReplay | null = null;
  for (const by of ['end', 'start'] as const) {
    const order = interleavingFromTrace(free.ring, free.ringLost, by)!;
    const followed = await run(cs, { ...det, interleave: order });
    if (!followed.scheduleTaken) {
      notes.push(`${by} order: more decisions than the schedule holds`);
      continue;
    }
    const converted: Case = { ...cs, schedule: followed.scheduleTaken };
    const replay = await run(converted, det);
    const property = replay.failures.find((f) => failed.has(f.property))?.property ?? null;
    last = { property, converted, replay, why: '' };
    if (property) return last;
    const mm = followed.orderMismatch;
    const label = (h: string): string => (/^#/.test(h) ? (free.labels.get(parseInt(h.slice(1), 16)) ?? h) : h);
    notes.push(
      mm
        ? `in the order the steps ${by === 'end' ? 'ended' : 'began'}, the replay left the free run's path at point ${mm.index} of ${order.length} (${label(mm.reached)} where the free run had ${label(mm.expected)}; ${mm.count} such points)`
        : `in the order the steps ${by === 'end' ? 'ended' : 'began'}, the replay passed all ${order.length} points of the free run and no property failed`,
    );
  }
  const first = free.failures.reduce((a, f) => (f.seq < a.seq ? f : a));
  const shared = sharedLocks(free, first.seq, first.actor);
  const where = shared.length
    ? `; in the free run, just before the failure, ${shared.join('; ')}: a preemption point inside one of those steps would let the deterministic scheduler interleave them (docs/preemption-points.md)`
    : '; no two overlapping steps took a common lock just before the failure (an access without a lock, or further back)';
  const why = `${notes.join('; ')}: the race lies between two preemption points${where}`;
  return last ? { ...last, why } : { property: null, converted: null, replay: null, why };
}

interface Step {
  actor: number;
  from: string;
  to: string;
  start: number;
  end: number;
  words: Set<number>;
}

/**
 * The shared accesses of a race that did not replay: among the last steps (an actor's run from one
 * point to its next) before trace position upTo, those of two actors that overlapped in time, and
 * the locks both took in them (free mode records every lock an actor takes; accesses without a lock
 * are not seen).
 */
export function sharedLocks(free: CaseResult, upTo: number, actor?: string, windowPoints = 48): string[] {
  const points = free.ring.filter((e) => (e.kind === K_POINT || e.kind === K_EXIT) && e.seq <= upTo);
  if (!points.length) return [];
  const from = points[Math.max(0, points.length - windowPoints)]!.seq;
  const label = (h: number): string => free.labels.get(h) ?? `#${h.toString(16)}`;
  const steps: Step[] = [];
  free.actors.forEach((r, a) => {
    if (!r?.locks) return;
    const own = points.filter((e) => e.actor === a);
    const byStep = new Map<number, Step>();
    for (let j = 0; j < r.locks.length; j += 2) {
      const seq = r.locks[j]!;
      if (seq < from || seq > upTo) continue;
      let k = own.length - 1;
      while (k >= 0 && own[k]!.seq >= seq) k--; // the actor's last point before the lock
      let st = byStep.get(k);
      if (!st) {
        const next = own[k + 1];
        st = {
          actor: a,
          from: k >= 0 ? label(own[k]!.label) : 'its start',
          to: next ? label(next.label) : 'the failure',
          start: k >= 0 ? own[k]!.seq : 0,
          end: next ? next.seq : upTo,
          words: new Set(),
        };
        byStep.set(k, st);
        steps.push(st);
      }
      st.words.add(r.locks[j + 1]!);
    }
  });
  const out = new Map<string, string>();
  const failing = actor === undefined ? -1 : free.names.indexOf(actor);
  // the failing actor's steps first
  if (failing >= 0) steps.sort((a, b) => Number(b.actor === failing) - Number(a.actor === failing));
  for (let i = 0; i < steps.length; i++) {
    for (let j = i + 1; j < steps.length; j++) {
      const x = steps[i]!;
      const y = steps[j]!;
      if (x.actor === y.actor || x.end < y.start || y.end < x.start) continue;
      const both = [...x.words].filter((w) => y.words.has(w)).map((w) => free.wordName(w));
      if (!both.length) continue;
      const who = (st: Step): string => `${free.names[st.actor]} (${st.from} .. ${st.to})`;
      const key = `${who(x)}|${who(y)}`;
      out.set(key, `${who(x)} and ${who(y)} overlapped, both taking ${[...new Set(both)].join(', ')}`);
    }
  }
  return [...out.values()].slice(0, 3);
}
