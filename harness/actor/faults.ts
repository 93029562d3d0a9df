// An actor's seeded faults: which calls of each fault point fail and at which of its preemption points a
// signal arrives. Counted on the actor's own thread, so the plan means the same in both modes.
import type { FaultPlan } from '../types';
import { own } from '../../mm/own';

export class FaultInjector {
  private readonly plan: FaultPlan;
  private readonly calls = new Map<string, number>();
  private points = 0;

  constructor(plan: FaultPlan) {
    this.plan = plan;
  }

  /** Does this call of the fault point fail? */
  fire(point: string): boolean {
    const at = own(this.plan, point);
    if (!at || !at.length) return false;
    const n = this.calls.get(point) ?? 0;
    this.calls.set(point, n + 1);
    return at.includes(n);
  }

  /** At this actor's preemption point: a signal arriving now? 'fatal-signal' also sets fatal_signal_pending(). */
  signalAt(): 'signal' | 'fatal-signal' | null {
    const k = this.points++;
    if (this.plan['fatal-signal']?.includes(k)) return 'fatal-signal';
    if (this.plan.signal?.includes(k)) return 'signal';
    return null;
  }
}
