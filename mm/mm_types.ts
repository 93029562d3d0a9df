// Address spaces and VMAs in the shared buffer (include/linux/mm_types.h, the vm_flags of mm.h): the mm
// and VMA records, mm_alloc() and its release, the RSS counters, mmap_lock and the page table lock, and
// vm_fault_t. The page tables themselves are mm/pgtable.ts.

import { atomicCmpxchg, atomicFetchAdd, atomicFetchOr, atomicFetchAnd, atomicSet } from './atomic';
import {
  Memmap,
  MM_PTL,
  MM_STRIDE,
  MM_USERS,
  MM_PID,
  MM_RLIMIT_MEMLOCK,
  VMA_STRIDE,
  H_PTE_FREE,
  H_ANON_VMA_NEXT,
  H_NEXT_ID,
  MM_LOCK,
  H_MM_LIVE,
  MM_PMD_HUGE_PTE,
} from './memmap';
import { spinLock, spinUnlock, downRead, upRead, downWrite, upWrite } from './locking';

// vm_flags (include/linux/mm.h)
export const VM_READ = 0x1;
export const VM_WRITE = 0x2;
export const VM_EXEC = 0x4;
export const VM_SHARED = 0x8;
export const VM_MAYWRITE = 0x20;
export const VM_PFNMAP = 0x400;
export const VM_LOCKED = 0x2000;
export const VM_IO = 0x4000;
export const VM_DONTCOPY = 0x20000;
export const VM_LOCKONFAULT = 0x80000;
export const VM_HUGETLB = 0x400000;
export const VM_HUGEPAGE = 0x20000000;
export const VM_NOHUGEPAGE = 0x40000000;

export function mmBase(mm: number): number {
  return mm * MM_STRIDE;
}
export function vmaBase(m: Memmap, mm: number, i: number): number {
  return (mm * m.maxVmas + i) * VMA_STRIDE;
}
/** Link every PTE table into the free pool, and empty the per-CPU LRU batches. */
export function mmInitProcessSpace(m: Memmap): void {
  for (let t = 0; t < m.pteTables; t++) m.pteMeta[2 * t] = t + 1 < m.pteTables ? t + 1 : -1;
  m.header[H_PTE_FREE] = m.pteTables ? 0 : -1;
  m.header[H_ANON_VMA_NEXT] = 1;
  m.header[H_NEXT_ID] = 1;
}

/** mm_alloc(): a free mm slot, or -1. */
export function mmAlloc(m: Memmap): number {
  for (let mm = 0; mm < m.maxMms; mm++) {
    if (atomicCmpxchg(m.mms, mmBase(mm) + MM_USERS, 0, 1) === 0) {
      const b = mmBase(mm);
      m.mms.fill(0, b + 1, b + MM_STRIDE);
      m.mms[b + MM_PID] = atomicFetchAdd(m.header, H_NEXT_ID, 1);
      m.mms[b + MM_RLIMIT_MEMLOCK] = 2048; // RLIMIT_MEMLOCK default: 8 MiB
      m.mms[b + MM_PMD_HUGE_PTE] = -1; // no deposited page tables
      m.pmds.fill(0, mm * m.vaPmds, (mm + 1) * m.vaPmds);
      atomicFetchOr(m.header, H_MM_LIVE, 1 << mm); // once set up: a walk that misses it misses no mapping
      return mm;
    }
  }
  return -1;
}

/**
 * add_mm_counter() (include/linux/mm.h): an mm's RSS counters (MM_RSS_ANON, MM_RSS_SHMEM) change from
 * whichever thread maps, zaps or forks, so atomically (the kernel: a per-CPU counter).
 */
export function addMmCounter(m: Memmap, mm: number, member: number, value: number): void {
  atomicFetchAdd(m.mms, mmBase(mm) + member, value);
}

/** The last mmput(): the slot is free again (exit_mmap() has unmapped everything). */
export function mmDrop(m: Memmap, mm: number): void {
  atomicSet(m.mms, mmBase(mm) + MM_USERS, 0);
  atomicFetchAnd(m.header, H_MM_LIVE, ~(1 << mm));
}

/**
 * How many mm slots an rmap walk visits: up to the highest in use (slots are taken lowest first, at
 * most 31 of them). Read again at every step, so an mm that appears meanwhile is still visited.
 */
export function mmSlotsInUse(m: Memmap): number {
  return 32 - Math.clz32(m.header[H_MM_LIVE]!);
}

// ---- mmap_lock (include/linux/mmap_lock.h): a rw_semaphore in the mm record. Faults and GUP walks
// read-lock it; mmap, munmap, mprotect, madvise, fork and exit write-lock it. ----
export function mmapReadLock(m: Memmap, mm: number): void {
  downRead(m.mms, mmBase(mm) + MM_LOCK);
}
export function mmapReadUnlock(m: Memmap, mm: number): void {
  upRead(m.mms, mmBase(mm) + MM_LOCK);
}
export function mmapWriteLockRaw(m: Memmap, mm: number): void {
  downWrite(m.mms, mmBase(mm) + MM_LOCK);
}
export function mmapWriteUnlockRaw(m: Memmap, mm: number): void {
  upWrite(m.mms, mmBase(mm) + MM_LOCK);
}

// vm_fault_t (include/linux/mm_types.h)
export const VM_FAULT_OOM = 0x000001;
export const VM_FAULT_SIGBUS = 0x000002;
export const VM_FAULT_SIGSEGV = 0x000040;
export const VM_FAULT_RETRY = 0x000400; // a migration entry: wait for it and retry
export const VM_FAULT_HWPOISON = 0x000010; // a hwpoison entry: SIGBUS (BUS_MCEERR_AR)
export const VM_FAULT_ERROR = VM_FAULT_OOM | VM_FAULT_SIGBUS | VM_FAULT_SIGSEGV | VM_FAULT_HWPOISON;

// ---- mm->page_table_lock (pinlab has no split PTE/PMD locks: one lock per mm, pte_lockptr()'s role) ----
export function ptlLock(m: Memmap, mm: number): void {
  spinLock(m.mms, mmBase(mm) + MM_PTL);
}
export function ptlUnlock(m: Memmap, mm: number): void {
  spinUnlock(m.mms, mmBase(mm) + MM_PTL);
}
