// The OOM killer (mm/oom_kill.c, v6.12) behind the allocator's slow path. There is nothing to reclaim
// in pinlab (no page cache, no swap), so an order-0 request that may not fail quietly goes straight
// from the min watermark to out_of_memory(): the process with the worst badness is killed and its
// memory reaped - all but what devices still pin. With no killable process left the kernel panics
// ("System is deadlocked on memory"); pinlab throws KernelPanic, an outcome, not an errno.

import {
  Memmap,
  MM_USERS,
  MM_RSS_ANON,
  MM_RSS_FILE,
  MM_RSS_SHMEM,
  MM_PGTABLES,
  MM_OOM_SCORE_ADJ,
  MM_FLAGS,
  MM_PID,
} from './memmap';
import { mmBase } from './mm_types';
import { setSlowpathHook, highWatermarkOk, totalramPages } from './page_alloc';
import { atomicFetchOr, atomicRead } from './atomic';
import { __GFP_NORETRY, __GFP_RETRY_MAYFAIL, __GFP_THISNODE, gfpZone } from './gfp';
import { ZONE_NORMAL } from './mmzone';
import { current, OomKill } from './sched';
import { countVmEvents, vmItem } from './vmstat';
import { exitMmap } from './mmap';
import { downWriteTrylock, upWrite, mutexTrylock, mutexUnlock, waitWhileEqual } from './locking';
import { MM_LOCK, H_OOM_LOCK } from './memmap';

export const OOM_SCORE_ADJ_MIN = -1000;
export const MMF_OOM_VICTIM = 0x1;
/** The victim has exited (or been reaped): of no further interest to the OOM killer. */
const MMF_OOM_SKIP = 0x2;
/** PAGE_ALLOC_COSTLY_ORDER: above it the allocator fails instead of invoking the OOM killer. */
const PAGE_ALLOC_COSTLY_ORDER = 3;

export class KernelPanic extends Error {
  constructor(msg: string) {
    super(`Kernel panic - not syncing: ${msg}`);
    this.name = 'KernelPanic';
  }
}

/**
 * The victim's exit beyond its mm: do_exit() -> exit_files() closes its files, and what they pinned
 * (an io_uring ring's buffers, a VFIO container, an RDMA context) is released. Whoever tracks those
 * (the scenario runner) sets it; per thread, as the slow-path hook is.
 */
let victimExitHook: ((m: Memmap, mm: number) => void) | null = null;
export function setOomVictimExitHook(h: ((m: Memmap, mm: number) => void) | null): void {
  victimExitHook = h;
}

/** oom_badness(): resident pages plus page tables, adjusted by oom_score_adj in thousandths of memory. */
export function oomBadness(m: Memmap, mm: number): number {
  const b = mmBase(mm);
  const adj = m.mms[b + MM_OOM_SCORE_ADJ]!;
  if (adj === OOM_SCORE_ADJ_MIN || m.mms[b + MM_FLAGS]! & MMF_OOM_VICTIM) return -Infinity;
  const points = m.mms[b + MM_RSS_ANON]! + m.mms[b + MM_RSS_FILE]! + m.mms[b + MM_RSS_SHMEM]! + m.mms[b + MM_PGTABLES]!;
  return points + Math.floor((adj * totalramPages(m)) / 1000);
}

function rss(m: Memmap, mm: number): number {
  const b = mmBase(mm);
  return m.mms[b + MM_RSS_ANON]! + m.mms[b + MM_RSS_FILE]! + m.mms[b + MM_RSS_SHMEM]!;
}

/**
 * out_of_memory(): select_bad_process() and oom_kill_process(). Killing the current task marks it
 * (it dies on its way out of the kernel; the allocation may use the OOM reserves meanwhile); any
 * other victim is reaped at once (__oom_reap_task_mm). Returns true: retry the allocation.
 */
export function outOfMemory(m: Memmap): boolean {
  let victim = -1;
  let worst = -Infinity;
  for (let mm = 0; mm < m.maxMms; mm++) {
    if (atomicRead(m.mms, mmBase(mm) + MM_USERS) === 0) continue;
    // oom_evaluate_task(): a victim that has not exited yet is given time to (selection aborts, the
    // allocation retries) rather than a second process being killed
    if (atomicRead(m.mms, mmBase(mm) + MM_FLAGS) & MMF_OOM_VICTIM) return true;
    const bad = oomBadness(m, mm);
    if (bad > worst) {
      worst = bad;
      victim = mm;
    }
  }
  if (victim < 0) throw new KernelPanic('System is deadlocked on memory');
  const b = mmBase(victim);
  atomicFetchOr(m.mms, b + MM_FLAGS, MMF_OOM_VICTIM);
  countVmEvents(m, vmItem('oom_kill'), 1);
  const self = current().mm === victim;
  const kill: OomKill = {
    mm: victim,
    pid: m.mms[b + MM_PID]!,
    badness: worst,
    reaped: 0,
    rssBefore: rss(m, victim),
    self,
  };
  current().oomKills.push(kill); // the kernel log's "Out of memory: Killed process"
  if (self) {
    current().fatalSignal = true;
    return true;
  }
  // oom_reap_task_mm() only trylocks mmap_lock: a victim whose lock is held (a GUP walk in progress on
  // it, maybe this very allocation's) is not reaped now, and this allocation fails
  if (!downWriteTrylock(m.mms, b + MM_LOCK)) return false;
  upWrite(m.mms, b + MM_LOCK);
  atomicFetchOr(m.mms, b + MM_FLAGS, MMF_OOM_SKIP);
  exitMmap(m, victim);
  kill.reaped = kill.rssBefore - rss(m, victim);
  // the victim is not current: woken by SIGKILL it exits, and its files' pins go before the retry
  victimExitHook?.(m, victim);
  return true;
}

/**
 * The victim leaves: a process the OOM killer chose while it ran (current) dies on its way back to
 * user space (do_exit() -> exit_mmap()); whichever of its threads gets there first tears its memory
 * down, once. Returns whether this call did.
 */
export function oomVictimExit(m: Memmap, mm: number): boolean {
  const b = mmBase(mm);
  if (!(atomicRead(m.mms, b + MM_FLAGS) & MMF_OOM_VICTIM) || atomicRead(m.mms, b + MM_USERS) === 0) return false;
  if (atomicFetchOr(m.mms, b + MM_FLAGS, MMF_OOM_SKIP) & MMF_OOM_SKIP) return false;
  exitMmap(m, mm);
  return true;
}

/**
 * __alloc_pages_may_oom(): only for requests that may not fail quietly - order <= COSTLY, no
 * __GFP_NORETRY / __GFP_RETRY_MAYFAIL / __GFP_THISNODE, and able to use ZONE_NORMAL. A task already
 * killed gets no second victim (it exits instead).
 */
function allocPagesMayOom(m: Memmap, gfp: number, order: number, attempt: number): boolean {
  // a PMD-sized (THP) request is always costly, as order 9 is on x86; on the mini geometry it is order 3
  if (order > Math.min(PAGE_ALLOC_COSTLY_ORDER, m.pmdOrder - 1)) return false;
  if (gfp & (__GFP_NORETRY | __GFP_RETRY_MAYFAIL | __GFP_THISNODE)) return false;
  if (gfpZone(gfp) < ZONE_NORMAL) return false;
  // tsk_is_oom_victim(): a thread of a process already chosen (on any CPU) is dying too
  const cur = current();
  // one more try with the OOM reserves, then fail
  if (cur.fatalSignal || (cur.mm >= 0 && m.mms[mmBase(cur.mm) + MM_FLAGS]! & MMF_OOM_VICTIM)) return attempt === 0;
  // one OOM killer at a time (oom_lock): another CPU's kill is progress; wait a tick, then retry
  if (!mutexTrylock(m.header, H_OOM_LOCK)) {
    waitWhileEqual(m.header, H_OOM_LOCK, 1, 'oom_lock', 1); // schedule_timeout_uninterruptible(1)
    return true;
  }
  try {
    // "Go through the zonelist yet one more time, keep very high watermark here": a parallel kill may
    // have freed enough already
    if (highWatermarkOk(m, gfp, order)) return true;
    return outOfMemory(m);
  } finally {
    mutexUnlock(m.header, H_OOM_LOCK);
  }
}

/**
 * Hook the OOM killer into the allocator's slow path (__alloc_pages_slowpath() calls
 * __alloc_pages_may_oom()). Per thread: boot does it for the booting thread, attachMachine() for a
 * worker.
 */
export function oomKillerInit(): void {
  setSlowpathHook(allocPagesMayOom);
}
