// The running task ("current") and its allocation scope (include/linux/sched/mm.h).
// Each worker thread runs one actor at a time, so a thread-local current is the kernel's per-CPU current.
import { __GFP_MOVABLE } from './gfp';
import { variant } from './variants';

export const PF_MEMALLOC = 0x00000800;
export const PF_MEMALLOC_NOFS = 0x00040000;
export const PF_MEMALLOC_NOIO = 0x00080000;
export const PF_MEMALLOC_PIN = 0x10000000;
export const PF_MEMALLOC_NOCMA = 0x20000000; // v5.12's scope: no CMA, ZONE_MOVABLE still allowed

export interface Task {
  pid: number;
  comm: string;
  /** CPU this task runs on: picks its per-CPU lists and counters. Distinct actors use distinct CPUs. */
  cpu: number;
  flags: number;
  /** signal_pending(): set by the harness's fault points, read by long loops (offline_pages, GUP). */
  sigpending: boolean;
  fatalSignal: boolean;
  /** the address space the task runs in (current->mm); -1 for a kernel thread */
  mm: number;
  /**
   * FOLL_PIN references this task took and dropped: its share of nr_foll_pin_acquired and
   * nr_foll_pin_released (the harness checks a failed op left none behind)
   */
  pinsAcquired: number;
  pinsReleased: number;
  /** GUP walks of this task that gave up on a page after GUP_FAULT_RETRIES_MAX faults (pinlab's bound) */
  gupFaultRetriesExhausted: number;
  /** the OOM kills this task's allocations made, as the kernel log reports them ("Out of memory: Killed process") */
  oomKills: OomKill[];
  /** test switch: this task's spinlocks exclude nothing (a missing lock), to show the free-running checks catch it */
  brokenSpinlocks: boolean;
}

/** One OOM kill (oom_kill_process()). */
export interface OomKill {
  mm: number;
  pid: number;
  badness: number;
  /** pages the reaper freed (pinned pages stay) */
  reaped: number;
  /** the victim's resident pages when it was chosen */
  rssBefore: number;
  self: boolean;
}

/** A task record for a thread or actor (the kernel's task_struct, reduced). */
export function newTask(pid: number, comm: string, cpu: number, mm = -1): Task {
  return {
    pid,
    comm,
    cpu,
    flags: 0,
    sigpending: false,
    fatalSignal: false,
    mm,
    pinsAcquired: 0,
    pinsReleased: 0,
    gupFaultRetriesExhausted: 0,
    oomKills: [],
    brokenSpinlocks: false,
  };
}

let cur: Task = newTask(0, 'swapper/0', 0);

export function current(): Task {
  return cur;
}

/** Switch the running task (the harness does this when an actor gets the CPU). Returns the previous one. */
export function setCurrent(t: Task): Task {
  const prev = cur;
  cur = t;
  return prev;
}

/**
 * memalloc_pin_save(): every allocation until restore avoids ZONE_MOVABLE and CMA (v5.13+). Under
 * v5.12 this is memalloc_nocma_save(): CMA is avoided, ZONE_MOVABLE is not.
 */
export function memallocPinSave(): number {
  const bit = variant().scope === 'pin' ? PF_MEMALLOC_PIN : PF_MEMALLOC_NOCMA;
  const old = cur.flags & (PF_MEMALLOC_PIN | PF_MEMALLOC_NOCMA);
  cur.flags |= bit;
  return old;
}

export function memallocPinRestore(old: number): void {
  cur.flags = (cur.flags & ~(PF_MEMALLOC_PIN | PF_MEMALLOC_NOCMA)) | old;
}

/** current_gfp_context(): PF_MEMALLOC_PIN strips __GFP_MOVABLE (applied on the fast and slow paths). */
export function currentGfpContext(gfp: number): number {
  if (cur.flags & PF_MEMALLOC_PIN) return gfp & ~__GFP_MOVABLE;
  return gfp;
}

// ---- preemption points and fault points (the harness installs a hook per thread) ----

/** What the harness does at a preemption point: hand the CPU to another actor, or record the point. */
export type YieldHook = (label: string) => void;
/** Whether a seeded fault fires at this call of a fault point (the harness's plan; never random here). */
export type FaultHook = (point: string) => boolean;

/** Where a tracepoint's line goes (the actor's trace log); never read back by the mm core. */
export type TraceHook = (text: string) => void;

let yieldHook: YieldHook | null = null;
let faultHook: FaultHook | null = null;
let traceHook: TraceHook | null = null;

/**
 * A place where the kernel can be preempted or sleep (cond_resched(), a sleeping lock, the gap
 * between two phases of migration). No-op unless the harness installed a hook for this thread.
 * Never call it with a spinlock held. docs/preemption-points.md lists every call site.
 */
export function yieldPoint(label: string): void {
  if (yieldHook !== null) yieldHook(label);
}

/** A seeded fault point (the kernel's should_fail()/fault-injection sites): true = fail this call. */
export function faultPoint(point: string): boolean {
  return faultHook !== null && faultHook(point);
}

/** A tracepoint (include/trace/events/*.h): a line for the trace, no-op unless the harness listens. */
export function traceEvent(text: () => string): void {
  if (traceHook !== null) traceHook(text());
}

export function setTraceHook(h: TraceHook | null): TraceHook | null {
  const prev = traceHook;
  traceHook = h;
  return prev;
}

export function setYieldHook(h: YieldHook | null): YieldHook | null {
  const prev = yieldHook;
  yieldHook = h;
  return prev;
}

export function setFaultHook(h: FaultHook | null): FaultHook | null {
  const prev = faultHook;
  faultHook = h;
  return prev;
}
