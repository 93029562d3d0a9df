// Page tables in the shared buffer (include/linux/pgtable.h, mm/pgtable-generic.c, pte_alloc_one()).
// Two levels: a PMD directory per mm, each entry either a PTE table from a shared pool or a huge
// mapping (THP or hugetlb) of one PMD-sized folio. PTE tables are charged as real unmovable frames
// (pte_alloc_one: GFP_PGTABLE_USER), so page tables consume kernel-zone memory as in the kernel.
// pteMeta[2t] is the table's owner mm while it is in use, the next free table while it is free, and the
// next deposited table while it is deposited with an anonymous THP PMD (pgtable_trans_huge_deposit).

import { atomicFetchAdd, atomicFetchSub } from './atomic';
import { Memmap, H_PTE_FREE, H_PTE_LOCK, MM_PGTABLES, MM_PMD_HUGE_PTE } from './memmap';
import { allocPages, freePages, NO_PAGE } from './page_alloc';
import { GFP_KERNEL, __GFP_ZERO } from './gfp';
import { spinLock, spinUnlock } from './locking';
import { mmBase } from './mm_types';

// Page-table entry encoding (one Int32): pfn in bits 0..26.
export const PFN_MASK = (1 << 27) - 1;
export const PTE_MIGRATION = 1 << 27; // a migration entry: the pfn being migrated (not present)
export const PTE_WRITE = 1 << 28;
export const PMD_HUGE = 1 << 29; // PMD maps a PMD-sized folio
export const PTE_PRESENT = 1 << 30;
/** a hwpoison entry (make_hwpoison_entry()): not present; an access is SIGBUS. A PTE never has PMD_HUGE. */
export const PTE_HWPOISON = PMD_HUGE; // for a PMD: points to a PTE table (index in bits 0..26)
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
export function mkHwpoisonEntry(pfn: number): number {
  return PTE_HWPOISON | pfn;
}
/** is_hwpoison_entry() for a PTE (not a PMD: there PMD_HUGE means a huge mapping) */
export function isHwpoisonPte(pte: number): boolean {
  return (pte & (PTE_HWPOISON | PTE_PRESENT | PTE_MIGRATION)) === PTE_HWPOISON;
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

export function pmdIndex(m: Memmap, mm: number, vpn: number): number {
  return mm * m.vaPmds + (vpn >>> m.pmdOrder);
}
export function vaPages(m: Memmap): number {
  return m.vaPmds << m.pmdOrder;
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
