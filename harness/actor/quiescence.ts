// Quiescence: every actor has finished its program and none has torn down, so nothing is in flight and
// every pin still held is a long-term one. Each actor runs the quiescence checks (properties/ phase
// 'quiescence') on private copies of the machine, with every hook off and callbacks to devices not
// delivered (an ODP device would comply; no other model subscribes). The last actor to arrive runs on
// without blocking: in deterministic mode it holds the CPU through its checks.
import type { Memmap } from '../../mm/memmap';
import type { AgentState } from '../agents/agent';
import type { ActorChecks } from './checks';
import type { CtlWait } from './mailbox';
import { Control, C_QUIESCE, C_QUIESCE_DONE, C_QUIESCE_WORK } from '../schedctl';
import { withContext, QUIET } from '../context';
import { cloneMachine } from '../../properties/copy';
import { kworkerRuns } from './kworker';

/** Count this actor in at a control-block barrier and wait for the rest; true for the last to arrive. */
export function barrier(c: Control, slot: number, wait: CtlWait, reason: string): boolean {
  const i32 = c.i32;
  const last = Atomics.add(i32, slot, 1) === c.nrActors - 1;
  Atomics.notify(i32, slot);
  for (;;) {
    const v = Atomics.load(i32, slot);
    if (v >= c.nrActors) return last;
    wait(slot, v, reason);
  }
}

export interface Quiescence {
  c: Control;
  m: Memmap;
  det: boolean;
  wait: CtlWait;
  checks: ActorChecks;
  /** a large machine's buffer for copies (ActorTask.scratch) */
  scratch?: SharedArrayBuffer;
}

export function quiesce(q: Quiescence, actor: AgentState): void {
  const { c, m } = q;
  kworkerRuns(m); // with every actor idle the workqueue is too: before the barrier, so no copy sees it run
  const rechecks = actor.recheckWork?.() ?? 0;
  if (rechecks > 0) Atomics.add(c.i32, C_QUIESCE_WORK, 1);
  const last = barrier(c, C_QUIESCE, q.wait, 'quiescence: the other actors are still running their programs');
  const recheck = actor.recheck?.bind(actor);
  withContext({ ...QUIET, lockTrace: undefined, deliver: () => true }, () => {
    q.checks.quiescence({ m, copy: () => cloneMachine(m), last, recheck, rechecks, scratch: q.scratch, checked: 0 });
  });
  // deterministic mode: the last actor's checks ran holding the CPU, before anyone could tear down;
  // the second barrier is needed only when another actor has re-checks of its own still to run
  if (!q.det || Atomics.load(c.i32, C_QUIESCE_WORK) > 0)
    barrier(c, C_QUIESCE_DONE, q.wait, 'quiescence: the other actors are still checking');
}
