// Memory failure (mm/memory-failure.c, v6.12): memory_failure() for a page the hardware (a machine check)
// or madvise(MADV_HWPOISON) reports corrupted, unmap_poisoned_folio(), soft_offline_page() for a page
// with corrected errors (madvise(MADV_SOFT_OFFLINE): migrated away, then poisoned), and
// madvise_inject_error().
//
// A poisoned page gets PG_hwpoison; a large folio with a poisoned page also PG_has_hwpoisoned and is
// split if it can be. An LRU page is unmapped (its PTEs become hwpoison entries: an access is SIGBUS,
// GUP -EHWPOISON with FOLL_HWPOISON, else -EFAULT), taken off the LRU and kept with memory failure's
// reference for ever. Simplified (docs/simplifications.md): no mf_mutex, no hugetlb folios, free pages
// are not taken off the buddy, no SIGBUS is sent (kill_procs()), the folio lock is only tried.

import { atomicFetchAdd, flagsFetchAnd, flagsFetchOr } from './atomic';
import { Memmap } from './memmap';
import * as layout from './memmap';
import { EAGAIN, EBUSY, EHWPOISON, ENXIO, EINVAL, EFAULT, EIO } from './errno';
import { folioTryGet, folioOrder } from './page_ref';
import { folioPut, lruAddDrainAll } from './swap';
import { folioIsolateLruMark, folioPutbackLru } from './vmscan';
import { folioTrylock, folioUnlock } from './filemap';
import { folioMapped, folioMapcount, tryToUnmap, TTU_IGNORE_MLOCK, TTU_HWPOISON } from './rmap';
import { splitFolio } from './huge_memory';
import { getUserPages, getUserPagesFast } from './gup';
import { isFreeBuddyPage } from './page_alloc';
import { ZONE_DEVICE } from './mmzone';
import { countVmEvents, vmItem } from './vmstat';
import { releaseAtLeast, variant } from './variants';
import { allocMigrationTarget, isolateFolio, migratePages, putbackMovablePages, MR_MEMORY_FAILURE } from './migrate';
import { GFP_USER, __GFP_MOVABLE, __GFP_RETRY_MAYFAIL } from './gfp';
import { isHwpoisonPte, pmdIndex, pmdIsTable, PFN_MASK } from './pgtable';

const {
  PG_lru,
  PG_head,
  PG_hugetlb,
  PG_hwpoison,
  PG_has_hwpoisoned,
  PG_isolated,
  PG_reserved,
  PG_zero,
  PG_hole,
  PG_movable_ops,
} = layout;

// enum mf_flags (include/linux/mm.h)
export const MF_COUNT_INCREASED = 1 << 0;
export const MF_ACTION_REQUIRED = 1 << 1;
export const MF_MUST_KILL = 1 << 2;
export const MF_SOFT_OFFLINE = 1 << 3;
export const MF_SW_SIMULATED = 1 << 5;

/** GET_PAGE_MAX_RETRY_NUM */
const GET_PAGE_MAX_RETRY_NUM = 3;

/** MADV_HWPOISON, MADV_SOFT_OFFLINE (include/uapi/asm-generic/mman-common.h) */
export const MADV_HWPOISON = 100;
export const MADV_SOFT_OFFLINE = 101;

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

/**
 * HWPoisonHandlable(): an LRU page or a free buddy page; for soft offline also a non-LRU movable page
 * (slab pages, never handlable in the kernel, are not marked in pinlab).
 */
function hwpoisonHandlable(m: Memmap, head: number, flags: number): boolean {
  const f = m.flags[head]!;
  if (flags & MF_SOFT_OFFLINE && f & PG_movable_ops) return true;
  return (f & PG_lru) !== 0 || isFreeBuddyPage(m, head);
}

/**
 * __get_hwpoison_page(): a reference on a handlable folio that still holds pfn (1), none (0: free, or
 * split meanwhile), or -EBUSY for a folio of a kind memory failure cannot handle (yet).
 */
function getHwpoisonPage(m: Memmap, pfn: number, flags: number): number {
  const head = m.compoundHead(pfn);
  if (!hwpoisonHandlable(m, head, flags)) return -EBUSY;
  if (folioTryGet(m, head)) {
    if (m.compoundHead(pfn) === head) return 1;
    folioPut(m, head); // "cannot catch tail": split meanwhile
  }
  return 0;
}

/**
 * get_any_page(): with MF_COUNT_INCREASED the caller's reference is used; otherwise one is taken. 1: a
 * referenced handlable page; 0: a free page; -EBUSY: it kept being allocated; -EIO: a kind memory
 * failure cannot handle, after three tries that each drain the LRU caches (shake_page()).
 */
function getAnyPage(m: Memmap, pfn: number, flags: number): number {
  let countIncreased = (flags & MF_COUNT_INCREASED) !== 0;
  for (let pass = 0; ;) {
    if (!countIncreased) {
      const r = getHwpoisonPage(m, pfn, flags);
      if (r === 0) {
        if (m.refcount[m.compoundHead(pfn)]! > 0) {
          if (pass++ < GET_PAGE_MAX_RETRY_NUM) continue; // raced with an allocation
          return -EBUSY;
        }
        if (!isFreeBuddyPage(m, pfn)) {
          if (pass++ < GET_PAGE_MAX_RETRY_NUM) continue; // raced with put_page()
          return -EIO;
        }
        return 0;
      }
      if (r === -EBUSY) {
        if (pass++ < GET_PAGE_MAX_RETRY_NUM) {
          lruAddDrainAll(m); // shake_page()
          continue;
        }
        return -EIO;
      }
    }
    const head = m.compoundHead(pfn);
    if (hwpoisonHandlable(m, head, flags)) return 1;
    // a page it cannot handle: drop the reference, drain, and try to take one again
    folioPut(m, head);
    if (pass++ >= GET_PAGE_MAX_RETRY_NUM) return -EIO;
    lruAddDrainAll(m);
    countIncreased = false;
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
  // can_split_folio() before unmap_folio(): an extra reference (a pin) fails the split with the PMDs intact,
  // and split_huge_page_to_list_to_order() counts that failure as any other (THP_SPLIT_PAGE_FAILED)
  let rc: number;
  if (folioMapcount(m, head) === m.refcount[head]! - 1) rc = splitFolio(m, head);
  else {
    if (folioOrder(m, head) === m.pmdOrder) countVmEvents(m, vmItem('thp_split_page_failed'), 1);
    rc = -EAGAIN;
  }
  if (rc) {
    flagsFetchAnd(m.flags, head, ~PG_isolated);
    folioPutbackLru(m, head);
    return rc;
  }
  flagsFetchAnd(m.flags, head, ~PG_has_hwpoisoned);
  return 0;
}

/**
 * num_poisoned_pages_inc() -> memblk_nr_poison_inc() (drivers/base/memory.c): the poisoned page's memory
 * block counts it, and memory_block_online() refuses the block (-EHWPOISON) while the count is not zero.
 */
function numPoisonedPagesInc(m: Memmap, pfn: number): void {
  atomicFetchAdd(m.blockNrHwpoison, m.blockIndex(pfn), 1);
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
 * held for ever), -EHWPOISON (already poisoned; or, since v6.11, a THP that could not be split: it stays
 * mapped with PG_has_hwpoisoned), -EBUSY (ignored: a page memory failure cannot get hold of, or that stayed
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
  const rc = handlePoisoned(m, pfn, flags);
  // action_result() counts every outcome but MF_MSG_ALREADY_POISONED; a free page is not poisoned here
  if (m.flags[pfn]! & PG_hwpoison) numPoisonedPagesInc(m, pfn);
  return rc;
}

/** memory_failure() after TestSetPageHWPoison() set PG_hwpoison: take the page, split, unmap, isolate. */
function handlePoisoned(m: Memmap, pfn: number, flags: number): number {
  const head0 = m.compoundHead(pfn);
  if (!(flags & MF_COUNT_INCREASED)) {
    // a free page (get_hwpoison_page() 0) would be taken off the buddy: not modelled, it stays there unmarked
    if (m.refcount[head0]! === 0) {
      flagsFetchAnd(m.flags, pfn, ~PG_hwpoison);
      return -EBUSY;
    }
    if (getAnyPage(m, pfn, flags) <= 0) return -EBUSY; // MF_MSG_GET_HWPOISON, MF_IGNORED: still mapped
  }
  let head = m.compoundHead(pfn);
  if (m.flags[head]! & PG_head) {
    const nr = 1 << folioOrder(m, head);
    flagsFetchOr(m.flags, head, PG_has_hwpoisoned); // folio_set_has_hwpoisoned()
    // MF_MSG_UNSPLIT_THP: since v6.11 -EHWPOISON (kill_procs_now() SIGBUSes the mappers), before -EBUSY
    // (action_result(MF_IGNORED)); Debian's 6.12 and 6.1 return each (scenarios/kernel/hwpoison-thp-unsplit.yaml)
    if (tryToSplitThpPage(m, head) < 0) return releaseAtLeast(variant(), 6, 11) ? -EHWPOISON : -EBUSY;
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
 * soft_offline_in_use_page() with the page's reference held: split a THP (-EBUSY if it cannot be: a
 * pin), then isolate the page and migrate it (MR_MEMORY_FAILURE, GFP_USER | __GFP_MOVABLE: ZONE_MOVABLE
 * only for a ZONE_MOVABLE source); migrated, the old page is poisoned and kept (page_handle_poison()).
 * A page that will not migrate (a pin, another reference) is put back: -EBUSY. Not modelled: hugetlb
 * folios (-EBUSY), mapping_evict_folio() of clean unmapped page cache (the madvise path's page is mapped).
 */
function softOfflineInUsePage(m: Memmap, pfn: number): number {
  let head = m.compoundHead(pfn);
  if (m.flags[head]! & PG_hugetlb) {
    folioPut(m, head);
    return -EBUSY;
  }
  if (m.flags[head]! & PG_head) {
    const nr = 1 << folioOrder(m, head);
    if (tryToSplitThpPage(m, head) < 0) return -EBUSY; // "thp split failed"; the reference is dropped
    putbackSplit(m, head, nr, pfn);
    head = pfn;
  }
  if (!folioTrylock(m, head)) {
    folioPut(m, head);
    return -EBUSY;
  }
  const poisoned = (m.flags[pfn]! & PG_hwpoison) !== 0;
  folioUnlock(m, head);
  if (poisoned) {
    folioPut(m, head); // "page already poisoned"
    return 0;
  }
  const list: number[] = [];
  // isolate_folio_to_list() takes a reference of its own: drop get_any_page()'s either way
  if (isolateFolio(m, head)) list.push(head);
  folioPut(m, head);
  if (!list.length) return -EBUSY; // "isolation failed"
  const target = allocMigrationTarget(GFP_USER | __GFP_MOVABLE | __GFP_RETRY_MAYFAIL);
  const r = migratePages(m, list, target, { reason: MR_MEMORY_FAILURE });
  if (r === 0) {
    // page_handle_poison(page, false, true): poisoned and counted; its reference (the isolation one,
    // kept by migrate_folio_done()) is dropped and taken again: the page is never freed
    flagsFetchOr(m.flags, pfn, PG_hwpoison);
    numPoisonedPagesInc(m, pfn);
    return 0;
  }
  putbackMovablePages(m, list);
  return r > 0 ? -EBUSY : r;
}

/**
 * soft_offline_page(pfn, flags): move a page that is not corrupted yet (corrected errors) out of the
 * way without killing anything. 0 (migrated and poisoned, or already poisoned), -EBUSY (it cannot
 * migrate: pinned, a THP that cannot split; or free: take_page_off_buddy() is not modelled), -EIO (a
 * page memory failure cannot handle), -ENXIO (no such pfn).
 */
export function softOfflinePage(m: Memmap, pfn: number, flags: number): number {
  if (pfn < 0 || pfn >= m.nrFrames || m.flags[pfn]! & PG_hole) return -ENXIO; // !pfn_valid()
  const putRef = (): void => {
    if (flags & MF_COUNT_INCREASED) folioPut(m, m.compoundHead(pfn)); // put_ref_page()
  };
  const zone = m.pageZonenum(pfn);
  if (zone === layout.NO_ZONE || zone === ZONE_DEVICE) {
    putRef(); // pfn_to_online_page(): only online pages, not ZONE_DEVICE
    return -EIO;
  }
  if (m.flags[pfn]! & PG_hwpoison) {
    putRef(); // "page already poisoned"
    return 0;
  }
  // get_hwpoison_page(): get_any_page() between zone_pcp_disable() and zone_pcp_enable() (not modelled)
  const r = getAnyPage(m, pfn, flags | MF_SOFT_OFFLINE);
  if (r > 0) return softOfflineInUsePage(m, pfn);
  // a free page (0): the kernel takes it off the buddy and poisons it (page_handle_poison(page, true,
  // false)); take_page_off_buddy() is not modelled, so this ends as the kernel's does when that fails twice
  return r === 0 ? -EBUSY : r;
}

/**
 * madvise_inject_error() over [start, end): per page, get_user_pages_fast() then, for MADV_HWPOISON,
 * memory_failure(pfn, MF_ACTION_REQUIRED | MF_COUNT_INCREASED | MF_SW_SIMULATED), for MADV_SOFT_OFFLINE
 * soft_offline_page(pfn, MF_COUNT_INCREASED); a large folio is stepped over whole. The first error
 * ends it. (CAP_SYS_ADMIN: pinlab's processes are root's.)
 */
export function madviseInjectError(
  m: Memmap,
  mm: number,
  start: number,
  end: number,
  behavior = MADV_HWPOISON,
): number {
  if (start < 0 || end <= start) return -EINVAL;
  for (let vpn = start; vpn < end;) {
    const pages: number[] = [];
    // the kernel takes the page with get_user_pages_fast(); MADV_HWPOISON here with the slow walk, as
    // it was first modelled (the same page and reference, other preemption points), so its cases stay
    const got =
      behavior === MADV_SOFT_OFFLINE
        ? getUserPagesFast(m, mm, vpn, 1, 0, pages)
        : getUserPages(m, mm, vpn, 1, 0, pages);
    if (got !== 1) return got < 0 ? got : -EFAULT;
    const pfn = pages[0]!;
    const size = 1 << folioOrder(m, m.compoundHead(pfn)); // page_size(compound_head(page))
    const rc =
      behavior === MADV_SOFT_OFFLINE
        ? softOfflinePage(m, pfn, MF_COUNT_INCREASED)
        : memoryFailure(m, pfn, MF_ACTION_REQUIRED | MF_COUNT_INCREASED | MF_SW_SIMULATED);
    if (rc) return rc;
    vpn += size;
  }
  return 0;
}
