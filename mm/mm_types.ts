// Address spaces, VMAs and page tables in the shared buffer (include/linux/mm_types.h, pgtable.h).
// Two levels: a PMD directory per mm, each entry either a PTE table from a shared pool or a huge
// mapping (THP or hugetlb) of one PMD-sized folio. PTE tables are charged as real unmovable frames
// (pte_alloc_one: GFP_PGTABLE_USER), so page tables consume kernel-zone memory as in the kernel.
// pteMeta[2t] is the table's owner mm while it is in use, the next free table while it is free, and the
// next deposited table while it is deposited with an anonymous THP PMD (pgtable_trans_huge_deposit).

import { atomicCmpxchg, atomicFetchAdd, atomicFetchSub, atomicFetchOr, atomicFetchAnd, atomicSet } from './atomic';
import { Memmap, MM_PTL, MM_STRIDE, MM_USERS, MM_PID, MM_RLIMIT_MEMLOCK, VMA_STRIDE, H_PTE_FREE, H_PTE_LOCK, H_ANON_VMA_NEXT,
  H_NEXT_ID, MM_PGTABLES, MM_LOCK, H_MM_LIVE, MM_PMD_HUGE_PTE } from './memmap';
import { allocPages, freePages, NO_PAGE } from './page_alloc';
import { GFP_KERNEL, __GFP_ZERO } from './gfp';
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

// Page-table entry encoding (one Int32): pfn in bits 0..26.
export const PFN_MASK = (1 << 27) - 1;
export const PTE_MIGRATION = 1 << 27; // a migration entry: the pfn being migrated (not present)
export const PTE_WRITE = 1 << 28;
export const PMD_HUGE = 1 << 29; // PMD maps a PMD-sized folio
export const PTE_PRESENT = 1 << 30; // for a PMD: points to a PTE table (index in bits 0..26)
export const PMD_TABLE = PTE_PRESENT;

export function ptePfn(pte: number): number {
  return pte & PFN_MASK;
}
export function mkPte(pfn: number, write: boolean): number {
  return PTE_PRESENT | (write ? PTE_WRITE : 0) | pfn;
}
export function mkMigrationEntry(pfn: number, write: boolean): number {
  return PTE_MIGRATION | (write ? PTE_WRITE : 0) | pfn;
}
export function mkHugePmd(pfn: number, write: boolean): number {
  return PMD_HUGE | PTE_PRESENT | (write ? PTE_WRITE : 0) | pfn;
}
export function pmdIsHuge(pmd: number): boolean {
  return (pmd & PMD_HUGE) !== 0;
}
export function pmdIsTable(pmd: number): boolean {
  return (pmd & (PMD_TABLE | PMD_HUGE)) === PMD_TABLE;
}

export function mmBase(mm: number): number {
  return mm * MM_STRIDE;
}
export function vmaBase(m: Memmap, mm: number, i: number): number {
  return (mm * m.maxVmas + i) * VMA_STRIDE;
}
export function pmdIndex(m: Memmap, mm: number, vpn: number): number {
  return mm * m.vaPmds + (vpn >>> m.pmdOrder);
}
export function vaPages(m: Memmap): number {
  return m.vaPmds << m.pmdOrder;
}

/** Link every PTE table into the free pool, and empty the per-CPU LRU batches. */
export function mmInitProcessSpace(m: Memmap): void {
  for (let t = 0; t < m.pteTables; t++) m.pteMeta[2 * t] = t + 1 < m.pteTables ? t + 1 : -1;
  m.header[H_PTE_FREE] = m.pteTables ? 0 : -1;
  m.header[H_ANON_VMA_NEXT] = 1;
  m.header[H_NEXT_ID] = 1;
}

/** pte_alloc_one(): a PTE table backed by an unmovable kernel frame. Returns the table index or -1. */
export function pteAllocOne(m: Memmap, mm: number): number {
  const frame = allocPages(m, GFP_KERNEL | __GFP_ZERO, 0);
  if (frame === NO_PAGE) return -1;
  spinLock(m.header, H_PTE_LOCK);
  const t = m.header[H_PTE_FREE]!;
  if (t >= 0) m.header[H_PTE_FREE] = m.pteMeta[2 * t]!;
  spinUnlock(m.header, H_PTE_LOCK);
  if (t < 0) {
    freePages(m, frame, 0);
    return -1;
  }
  m.pteMeta[2 * t] = mm;
  m.pteMeta[2 * t + 1] = frame;
  m.ptes.fill(0, t << m.pmdOrder, (t + 1) << m.pmdOrder);
  atomicFetchAdd(m.mms, mmBase(mm) + MM_PGTABLES, 1);
  return t;
}

/** pte_free(): the table must be empty. */
export function pteFree(m: Memmap, mm: number, t: number): void {
  const frame = m.pteMeta[2 * t + 1]!;
  spinLock(m.header, H_PTE_LOCK);
  m.pteMeta[2 * t] = m.header[H_PTE_FREE]!;
  m.header[H_PTE_FREE] = t;
  spinUnlock(m.header, H_PTE_LOCK);
  atomicFetchSub(m.mms, mmBase(mm) + MM_PGTABLES, 1);
  freePages(m, frame, 0);
}

/**
 * pgtable_trans_huge_deposit() (mm/pgtable-generic.c), PTL held: table t, allocated (and counted in
 * nr_ptes) when an anonymous THP was mapped by a PMD, waits with the mm until the PMD is split or zapped.
 * pinlab has one page_table_lock per mm (no split PMD ptlocks), so as in the kernel then the deposit is
 * one list per mm (mm->pmd_huge_pte), linked through pteMeta as the kernel links through page->lru.
 */
export function pgtableTransHugeDeposit(m: Memmap, mm: number, t: number): void {
  const h = mmBase(mm) + MM_PMD_HUGE_PTE;
  m.pteMeta[2 * t] = m.mms[h]!;
  m.mms[h] = t;
}

/** pgtable_trans_huge_withdraw(), PTL held: a deposited table (still counted in nr_ptes), or -1 if none. */
export function pgtableTransHugeWithdraw(m: Memmap, mm: number): number {
  const h = mmBase(mm) + MM_PMD_HUGE_PTE;
  const t = m.mms[h]!;
  if (t < 0) return -1;
  m.mms[h] = m.pteMeta[2 * t]!;
  m.pteMeta[2 * t] = mm;
  return t;
}

/** How many tables are deposited with mm's huge PMDs (one per anonymous THP PMD, present or migration). */
export function pgtableDepositedCount(m: Memmap, mm: number): number {
  let n = 0;
  for (let t = m.mms[mmBase(mm) + MM_PMD_HUGE_PTE]!; t >= 0 && n <= m.pteTables; t = m.pteMeta[2 * t]!) n++;
  return n;
}

/** A new anon_vma id (anon_vma_prepare). Forked VMAs share their parent's (the anon_vma root). */
export function anonVmaAlloc(m: Memmap): number {
  return atomicFetchAdd(m.header, H_ANON_VMA_NEXT, 1);
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
export const VM_FAULT_ERROR = VM_FAULT_OOM | VM_FAULT_SIGBUS | VM_FAULT_SIGSEGV;

// ---- mm->page_table_lock (pinlab has no split PTE/PMD locks: one lock per mm, pte_lockptr()'s role) ----
export function ptlLock(m: Memmap, mm: number): void {
  spinLock(m.mms, mmBase(mm) + MM_PTL);
}
export function ptlUnlock(m: Memmap, mm: number): void {
  spinUnlock(m.mms, mmBase(mm) + MM_PTL);
}
