// The context the mm core runs in on this thread: the running task (`current`), the kernel variant, and
// the hooks through which the harness takes part - preemption points, seeded fault points, waits, lock
// tracing, mmu notifier delivery. The mm core keeps each per thread, as the kernel keeps `current` per
// CPU. An actor, a scenario or an end-of-run check enters the context it needs and leaves it as it was:
//
//   const saved = enterContext({ task, variant, yieldHook });
//   try { ... } finally { leaveContext(saved); }
import {
  setCurrent,
  setYieldHook,
  setFaultHook,
  setTraceHook,
  Task,
  YieldHook,
  FaultHook,
  TraceHook,
} from '../mm/sched';
import { setVariant, KernelVariant } from '../mm/variants';
import { setWaitHook, setLockTraceHook, WaitHook, LockTraceHook } from '../mm/locking';
import { setMmuNotifierDeliver, MmuNotifierDeliver } from '../mm/mmu_notifier';

export interface ThreadContext {
  task: Task;
  variant: KernelVariant;
  yieldHook: YieldHook | null;
  faultHook: FaultHook | null;
  /** tracepoint lines (mm_migrate_folio ...) for the trace */
  traceHook: TraceHook | null;
  waitHook: WaitHook | null;
  lockTrace: LockTraceHook | null;
  deliver: MmuNotifierDeliver;
}

/** Install the parts of a context given; returns what they replaced, for leaveContext(). */
export function enterContext(c: Partial<ThreadContext>): Partial<ThreadContext> {
  const prev: Partial<ThreadContext> = {};
  if (c.task !== undefined) prev.task = setCurrent(c.task);
  if (c.variant !== undefined) prev.variant = setVariant(c.variant);
  if (c.yieldHook !== undefined) prev.yieldHook = setYieldHook(c.yieldHook);
  if (c.faultHook !== undefined) prev.faultHook = setFaultHook(c.faultHook);
  if (c.traceHook !== undefined) prev.traceHook = setTraceHook(c.traceHook);
  if (c.waitHook !== undefined) prev.waitHook = setWaitHook(c.waitHook);
  if (c.lockTrace !== undefined) prev.lockTrace = setLockTraceHook(c.lockTrace);
  if (c.deliver !== undefined) prev.deliver = setMmuNotifierDeliver(c.deliver);
  return prev;
}

/** Put back what enterContext() replaced. */
export function leaveContext(saved: Partial<ThreadContext>): void {
  enterContext(saved);
}

/** Run fn in a context, leaving it as it was however fn ends. */
export function withContext<T>(c: Partial<ThreadContext>, fn: () => T): T {
  const saved = enterContext(c);
  try {
    return fn();
  } finally {
    leaveContext(saved);
  }
}

/** Every hook off: the harness's own checks on a copy of the machine run uninterrupted and unfaulted. */
export const QUIET: Partial<ThreadContext> = {
  yieldHook: null,
  faultHook: null,
  traceHook: null,
  waitHook: null,
  lockTrace: null,
};
