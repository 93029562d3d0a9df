// The checks an actor runs in its own thread, through the property registry (properties/index.ts): after
// every op and before teardown (phase 'op'), and at quiescence. A broken promise becomes a violation in
// the trace, once per property and dedupe key, at most VIOLATIONS_MAX per actor. Every check runs
// whatever --property selects (the main thread drops the rest), so a run's trace does not depend on
// the selection, except the costly ones, which run only when selected.
import { performance } from 'node:perf_hooks';
import { tallyAdd, type ActorResult, type ActorTask, type Violation } from '../types';
import type { OpResult } from '../../devices/device';
import type { ActorScheduler } from '../scheduler';
import { K_VIOLATION } from '../schedctl';
import { propertiesAt, Finding, OpCheck, Property, QuiescentCheck } from '../../properties/index';
import { dmaIntegrity } from '../../properties/dma_integrity';
import { dmaChecks } from '../../devices/common';
import { bugSitesSave, bugSitesRestore } from '../../mm/variants';

const VIOLATIONS_MAX = 8;

export class ActorChecks {
  private readonly seen = new Set<string>();
  private readonly afterOp: readonly Property[];
  private readonly atQuiescence: readonly Property[];

  constructor(
    private readonly t: ActorTask,
    private readonly sched: ActorScheduler,
    private readonly res: ActorResult,
    private readonly log: (text: string, seq: number) => void,
  ) {
    const runs = (p: Property): boolean => !p.costly || !t.properties || t.properties.includes(p.name);
    this.afterOp = propertiesAt('op').filter((p) => p.afterOp && runs(p));
    this.atQuiescence = propertiesAt('quiescence').filter((p) => p.atQuiescence && runs(p));
    dmaChecks.n = 0;
  }

  violate(property: string, message: string, dedupe = message): void {
    const key = `${property}:${dedupe}`;
    if (this.seen.has(key) || this.res.violations.length >= VIOLATIONS_MAX) return;
    this.seen.add(key);
    const seq = this.sched.record(K_VIOLATION, property, this.res.violations.length);
    const v: Violation = { property, message, actor: this.t.name, seq };
    this.res.violations.push(v);
    this.log(`pinlab_violation: ${property}: ${message}`, seq);
  }

  /** What the actor itself saw broken while running an op (a device's DMA): dma-integrity unless it names another. */
  opResult(r: OpResult): void {
    if (r.violation) this.violate(r.property ?? dmaIntegrity.name, r.violation);
    // the DMAs the op checked (dmaTargetViolation(), notifierDmaViolation() in devices/common.ts)
    if (dmaChecks.n) tallyAdd(this.res.tally, dmaIntegrity.name, dmaChecks.n, 0);
    dmaChecks.n = 0;
  }

  /** Phase 'op': right after an op (and with op null, before teardown). */
  op(c: OpCheck): void {
    const sites = bugSitesSave(); // checks may run the mm (on copies): not the case's paths
    for (const p of this.afterOp) this.report(p, c, () => p.afterOp!(c));
    bugSitesRestore(sites);
  }

  /** Phase 'quiescence': every actor idle. */
  quiescence(c: QuiescentCheck): void {
    const sites = bugSitesSave();
    for (const p of this.atQuiescence) this.report(p, c, () => p.atQuiescence!(c));
    bugSitesRestore(sites);
  }

  /** Run one property's check, tallying what it saw and its time; its findings become violations. */
  private report(p: Property, c: { checked: number }, check: () => Finding[]): void {
    c.checked = 0;
    const t0 = performance.now();
    const findings = check();
    tallyAdd(this.res.tally, p.name, c.checked, performance.now() - t0);
    for (const f of findings) this.violate(p.name, f.message, f.dedupe);
  }
}
