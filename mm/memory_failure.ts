// Memory failure (mm/memory-failure.c, v6.12): memory_failure() for a page the hardware (a machine check)
// or madvise(MADV_HWPOISON) reports corrupted, unmap_poisoned_folio(), and madvise_inject_error().
//
// A poisoned page gets PG_hwpoison; a large folio with a poisoned page also PG_has_hwpoisoned and is
// split if it can be. An LRU page is unmapped (its PTEs become hwpoison entries: an access is SIGBUS,
// GUP -EHWPOISON with FOLL_HWPOISON, else -EFAULT), taken off the LRU and kept with memory failure's
// reference for ever. Simplified (docs/simplifications.md): no mf_mutex, no hugetlb folios, free pages
// are not taken off the buddy, no SIGBUS is sent (kill_procs()), the folio lock is only tried.

import { flagsFetchAnd, flagsFetchOr } from './atomic';
import { Memmap } from './memmap';
import * as layout from './memmap';
import { EAGAIN, EBUSY, EHWPOISON, ENXIO, EINVAL, EFAULT, EIO } from './errno';
import { folioTryGet, folioOrder } from './page_ref';
import { folioPut, lruAddDrainAll } from './swap';
import { folioIsolateLruMark, folioPutbackLru } from './vmscan';
import { folioTrylock, folioUnlock } from './filemap';
import { folioMapped, folioMapcount, tryToUnmap, TTU_IGNORE_MLOCK, TTU_HWPOISON } from './rmap';
import { splitFolio } from './huge_memory';
import { getUserPages } from './gup';
import { isHwpoisonPte, pmdIndex, pmdIsTable, PFN_MASK } from './pgtable';

const { PG_lru, PG_head, PG_hugetlb, PG_hwpoison, PG_has_hwpoisoned, PG_isolated, PG_reserved, PG_zero, PG_hole } =
  layout;

// enum mf_flags (include/linux/mm.h)
export const MF_COUNT_INCREASED = 1 << 0;
export const MF_ACTION_REQUIRED = 1 << 1;
export const MF_MUST_KILL = 1 << 2;
export const MF_SW_SIMULATED = 1 << 5;

/** MADV_HWPOISON (include/uapi/asm-generic/mman-common.h) */
export const MADV_HWPOISON = 100;

/** folio_contain_hwpoisoned_page(): the folio is poisoned, or a large one holds a poisoned page. */
export function folioContainHwpoisonedPage(m: Memmap, head: number): boolean {
  const f = m.flags[head]!;
  return (f & PG_hwpoison) !== 0 || ((f & PG_head) !== 0 && (f & PG_has_hwpoisoned) !== 0);
}

/** Whether mm's PTE for vpn is a hwpoison entry (an access there is SIGBUS, GUP -EFAULT or -EHWPOISON). */
export function hwpoisonEntryAt(m: Memmap, mm: number, vpn: number): boolean {
  const pmd = m.pmds[pmdIndex(m, mm, vpn)]!;
  if (!pmdIsTable(pmd)) return false;
  return isHwpoisonPte(m.ptes[((pmd & PFN_MASK) << m.pmdOrder) + (vpn & (m.ptrsPerTable - 1))]!);
}

/** HWPoisonHandlable(): an LRU page (free buddy pages are not modelled). */
function hwpoisonHandlable(m: Memmap, head: number): boolean {
  return (m.flags[head]! & PG_lru) !== 0;
}

/**
 * get_any_page(): a reference on a handlable folio (1), or -EIO after three tries that each drain the
 * LRU caches (shake_page()): a page off the LRU (isolated by someone) or of an unhandlable kind.
 */
function getAnyPage(m: Memmap, pfn: number): number {
  for (let pass = 0; ; pass++) {
    const head = m.compoundHead(pfn);
    if (hwpoisonHandlable(m, head) && folioTryGet(m, head)) {
      if (m.compoundHead(pfn) === head) return 1;
      folioPut(m, head); // "cannot catch tail": split meanwhile
    }
    if (pass === 3) return -EIO;
    lruAddDrainAll(m); // shake_page()
  }
}

/**
 * unmap_poisoned_folio(): try_to_unmap() with TTU_IGNORE_MLOCK | TTU_HWPOISON (anonymous and shmem
 * folios keep TTU_HWPOISON: shmem cannot write back). Returns 0 or -EBUSY when it is still mapped.
 */
export function unmapPoisonedFolio(m: Memmap, head: number): number {
  tryToUnmap(m, head, TTU_IGNORE_MLOCK | TTU_HWPOISON);
  return folioMapped(m, head) ? -EBUSY : 0;
}

/**
 * try_to_split_thp_page(): split the THP holding pfn; the memory-failure reference (on the head) moves
 * to pfn's page. On failure that reference is dropped (memory_failure()'s put_page()). pinlab's
 * split_folio() splits an isolated folio, so the folio goes off the LRU for the split and back after.
 */
function tryToSplitThpPage(m: Memmap, head: number): number {
  if (!(m.flags[head]! & PG_lru)) lruAddDrainAll(m);
  if (!folioIsolateLruMark(m, head, PG_isolated)) {
    folioPut(m, head);
    return -EBUSY;
  }
  folioPut(m, head); // the isolation reference stands in for memory failure's
  // can_split_folio() before unmap_folio(): an extra reference (a pin) fails the split with the PMDs intact
  const rc = folioMapcount(m, head) === m.refcount[head]! - 1 ? splitFolio(m, head) : -EAGAIN;
  if (rc) {
    flagsFetchAnd(m.flags, head, ~PG_isolated);
    folioPutbackLru(m, head);
    return rc;
  }
  flagsFetchAnd(m.flags, head, ~PG_has_hwpoisoned);
  return 0;
}

/** After a split: every page of the old folio back on the LRU; pfn's keeps its reference (memory failure's). */
function putbackSplit(m: Memmap, head: number, nr: number, pfn: number): void {
  for (let p = head; p < head + nr; p++) {
    flagsFetchAnd(m.flags, p, ~PG_isolated);
    if (p === pfn) flagsFetchOr(m.flags, p, PG_lru);
    else folioPutbackLru(m, p);
  }
}

/**
 * memory_failure(pfn, flags): handle a corrupted page. Returns 0 (recovered: unmapped, off the LRU,
 * held for ever), -EHWPOISON (already poisoned; or a THP that could not be split: it stays mapped with
 * PG_has_hwpoisoned), -EBUSY (ignored: a page memory failure cannot get hold of, or that stayed
 * mapped; it keeps PG_hwpoison), -ENXIO (no online page there).
 */
export function memoryFailure(m: Memmap, pfn: number, flags: number): number {
  if (pfn < 0 || pfn >= m.nrFrames || m.flags[pfn]! & PG_hole || m.pageZonenum(pfn) === layout.NO_ZONE) {
    return -ENXIO; // pfn_to_online_page(): "memory outside kernel control"
  }
  const put = (): void => {
    if (flags & MF_COUNT_INCREASED) folioPut(m, m.compoundHead(pfn));
  };
  const head0 = m.compoundHead(pfn);
  // try_memory_failure_hugetlb(): not modelled; the shared zero page (the kernel marks it too) is left alone
  if (m.flags[head0]! & (PG_hugetlb | PG_zero | PG_reserved)) {
    put();
    return -EBUSY;
  }
  if (flagsFetchOr(m.flags, pfn, PG_hwpoison) & PG_hwpoison) {
    put(); // TestSetPageHWPoison(): MF_MSG_ALREADY_POISONED
    return -EHWPOISON;
  }
  if (!(flags & MF_COUNT_INCREASED)) {
    // a free page (get_hwpoison_page() 0) would be taken off the buddy: not modelled, it stays there unmarked
    if (m.refcount[head0]! === 0) {
      flagsFetchAnd(m.flags, pfn, ~PG_hwpoison);
      return -EBUSY;
    }
    if (getAnyPage(m, pfn) < 0) return -EBUSY; // MF_MSG_GET_HWPOISON, MF_IGNORED: still mapped
  }
  let head = m.compoundHead(pfn);
  if (m.flags[head]! & PG_head) {
    const nr = 1 << folioOrder(m, head);
    flagsFetchOr(m.flags, head, PG_has_hwpoisoned); // folio_set_has_hwpoisoned()
    if (tryToSplitThpPage(m, head) < 0) return -EHWPOISON; // MF_MSG_UNSPLIT_THP (kill_procs_now())
    putbackSplit(m, head, nr, pfn);
    head = pfn;
  }
  if (!(m.flags[head]! & PG_lru)) lruAddDrainAll(m); // shake_folio()
  if (!(m.flags[head]! & PG_lru)) return -EBUSY; // identify_page_state(): me_unknown, MF_IGNORED
  if (!folioTrylock(m, head)) return -EBUSY;
  try {
    // hwpoison_user_mappings()
    if (folioMapped(m, head) && unmapPoisonedFolio(m, head)) return -EBUSY; // MF_MSG_UNMAP_FAILED
  } finally {
    folioUnlock(m, head);
  }
  // identify_page_state() -> me_pagecache_dirty/clean(): delete_from_lru_cache(); anonymous: MF_RECOVERED
  if (folioIsolateLruMark(m, head, 0)) folioPut(m, head);
  return 0;
}

/**
 * madvise_inject_error() for MADV_HWPOISON over [start, end): per page, get_user_pages_fast() then
 * memory_failure(pfn, MF_ACTION_REQUIRED | MF_COUNT_INCREASED | MF_SW_SIMULATED); a large folio is
 * stepped over whole. The first error ends it. (CAP_SYS_ADMIN: pinlab's processes are root's.)
 */
export function madviseInjectError(m: Memmap, mm: number, start: number, end: number): number {
  if (start < 0 || end <= start) return -EINVAL;
  for (let vpn = start; vpn < end;) {
    const pages: number[] = [];
    const got = getUserPages(m, mm, vpn, 1, 0, pages);
    if (got !== 1) return got < 0 ? got : -EFAULT;
    const pfn = pages[0]!;
    const size = 1 << folioOrder(m, m.compoundHead(pfn)); // page_size(compound_head(page))
    const rc = memoryFailure(m, pfn, MF_ACTION_REQUIRED | MF_COUNT_INCREASED | MF_SW_SIMULATED);
    if (rc) return rc;
    vpn += size;
  }
  return 0;
}
