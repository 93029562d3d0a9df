// Transparent huge pages (mm/huge_memory.c, v6.12): split_huge_page_to_list_to_order() for an isolated
// anonymous THP, used when migration cannot get a huge target ("THP broken by pinning"); the PMD side:
// do_huge_pmd_anonymous_page(), __split_huge_pmd() and zap_huge_pmd().
import {
  Memmap,
  PG_head,
  PG_tail,
  PG_ORDER_MASK,
  PG_isolated,
  PG_hugetlb,
  PG_anon,
  PG_anon_exclusive,
  MM_RSS_ANON,
  VMA_FLAGS,
} from './memmap';
import { atomicFetchAdd, flagsFetchOr } from './atomic';
import { addMmCounter, ptlLock, ptlUnlock, VM_FAULT_OOM, VM_FAULT_RETRY } from './mm_types';
import { allocPages, NO_PAGE } from './page_alloc';
import { GFP_TRANSHUGE_LIGHT, __GFP_ZERO, __GFP_COMP } from './gfp';
import { folioAddLruVma, folioPut } from './swap';
import { anonVmaPrepare, folioAddNewAnonRmap, pteMapInc, pmdMapInc, pmdMapDec } from './rmap';
import { mmuNotifierInvalidateRangeStart, mmuNotifierInvalidateRangeEnd, MMU_NOTIFY_CLEAR } from './mmu_notifier';
import { bug } from './debug';
import { EAGAIN, EBUSY } from './errno';
import { rmapWalk, tryToMigrate, removeMigrationPtes, folioMapcount } from './rmap';
import { countVmEvents, vmItem } from './vmstat';
import { vmWarnOnOnceMm } from './debug';
import { folioOrder, folioRefFreeze, folioRefUnfreeze } from './page_ref';
import { folioTrylock, folioUnlock } from './filemap';
import {
  pmdIndex,
  pmdIsHuge,
  mkPte,
  mkHugePmd,
  PTE_PRESENT,
  PTE_WRITE,
  PTE_MIGRATION,
  PFN_MASK,
  PMD_TABLE,
  pteAllocOne,
  pteFree,
  pgtableTransHugeDeposit,
  pgtableTransHugeWithdraw,
} from './pgtable';

/** Rounds of PMD splitting before splitFolio() gives up (each round's __split_huge_pmd() may wait for notifiers). */
const SPLIT_PMD_ROUNDS_MAX = 8;

/**
 * can_split_folio(): every reference is a mapping or the caller's (callerPins); an anonymous folio
 * outside the swap cache has no page-cache references (pinlab has no swap cache).
 */
export function canSplitFolio(m: Memmap, head: number, callerPins: number): boolean {
  const extraPins = m.flags[head]! & PG_anon ? 0 : 1 << folioOrder(m, head);
  return folioMapcount(m, head) === m.refcount[head]! - extraPins - callerPins;
}

/**
 * pinlab's transient extra references (R11): a folio_try_get() held elsewhere for a while (the kernel's
 * example: drop_caches walking the page cache). holdTransientRef() takes a reference on the folio that
 * is dropped after `attempts` splits of it have failed on it; per memmap, head -> attempts left.
 */
const transientRefs = new WeakMap<Memmap, Map<number, number>>();

export function holdTransientRef(m: Memmap, head: number, attempts: number): void {
  let held = transientRefs.get(m);
  if (!held) transientRefs.set(m, (held = new Map()));
  if (held.has(head)) bug(`holdTransientRef: pfn ${head} already holds a transient reference`);
  atomicFetchAdd(m.refcount, head, 1); // folio_try_get() on a folio in use
  held.set(head, attempts);
}

/** Transient references still held, as [head, attempts left]. */
export function transientRefsHeld(m: Memmap): [number, number][] {
  return [...(transientRefs.get(m) ?? [])];
}

/** A split of head failed: a transient holder counts the attempt and lets go after its last (folio_put()). */
function transientRefTick(m: Memmap, head: number): void {
  const held = transientRefs.get(m);
  const left = held?.get(head);
  if (left === undefined) return;
  if (left > 1) {
    held!.set(head, left - 1);
    return;
  }
  held!.delete(head);
  folioPut(m, head);
}

/** Every transient reference dropped now (a scenario's end). Returns how many were held. */
export function dropTransientRefs(m: Memmap): number {
  const held = transientRefs.get(m);
  if (!held) return 0;
  const n = held.size;
  for (const head of held.keys()) folioPut(m, head);
  held.clear();
  return n;
}

/** The PMD entries (present or migration) that map the folio at head, as [mm, vpn]. */
function pmdSitesOf(m: Memmap, head: number): [number, number][] {
  const sites: [number, number][] = [];
  rmapWalk(m, head, (s) => {
    if (s.pmd) sites.push([s.mm, s.vpn]);
  });
  return sites;
}

/**
 * split_folio_to_list(): the caller holds one reference (isolation). Every PMD mapping is split to
 * PTEs, the folio is unmapped to migration entries, frozen at its expected count, turned into base
 * pages that each carry the caller's reference (and PG_isolated), and remapped. Returns 0, -EAGAIN
 * (folio locked, extra references such as a pin - can_split_folio() before the unmap, the freeze after -
 * or PMDs still appearing after 8 rounds) or -EBUSY (not an anonymous THP).
 */
export function splitFolio(m: Memmap, head: number): number {
  const order = folioOrder(m, head);
  if (order === 0 || m.flags[head]! & PG_hugetlb || !(m.flags[head]! & PG_anon)) return -EBUSY;
  if (!folioTrylock(m, head)) return -EAGAIN;
  const nr = 1 << order;
  const failed = (): number => {
    countVmEvents(m, vmItem('thp_split_page_failed'), 1);
    return -EAGAIN;
  };
  // the racy can_split_folio() check before unmap_folio(): an extra reference is -EAGAIN at once
  if (!canSplitFolio(m, head, 1)) {
    folioUnlock(m, head);
    transientRefTick(m, head);
    return failed();
  }
  // unmap_folio() unmaps with TTU_SPLIT_HUGE_PMD: try_to_migrate_one() splits each VMA's PMD mapping
  // (split_huge_pmd_address(freeze)), so no PMD entry survives the unmap. Here the PMDs are split first,
  // walking again until none is left: fork's copy_huge_pmd() can add one in another mm while
  // __split_huge_pmd() waits in mmu_notifier_invalidate_range_start().
  for (let round = 0; ; round++) {
    const pmdSites = pmdSitesOf(m, head);
    if (!pmdSites.length) break;
    if (round === SPLIT_PMD_ROUNDS_MAX) {
      folioUnlock(m, head);
      return failed();
    }
    for (const [mm, vpn] of pmdSites) splitHugePmd(m, mm, vpn); // into the PMD's deposited table: cannot fail
  }
  const wasMapped = folioMapcount(m, head) > 0;
  const undo = (): number => {
    if (wasMapped) removeMigrationPtes(m, head, head);
    folioUnlock(m, head);
    return failed();
  };
  if (wasMapped && !tryToMigrate(m, head)) return undo();
  // never expected: a PMD (migration) entry must not outlive the compound page
  if (wasMapped && vmWarnOnOnceMm(m, pmdSitesOf(m, head).length > 0, 'split_folio: a PMD entry survived unmap_folio()'))
    return undo();
  if (!folioRefFreeze(m, head, 1)) return undo();
  const anonVma = m.mapping[head]!;
  const index = m.index[head]!;
  const keep = ~(PG_head | PG_tail | PG_ORDER_MASK);
  for (let p = head; p < head + nr; p++) {
    m.flags[p] = (m.flags[p]! & keep) | PG_anon | PG_isolated;
    m.mapping[p] = anonVma;
    m.index[p] = index + (p - head); // page[1]'s _pincount and _entire_mapcount go with it
    if (p !== head) folioRefUnfreeze(m, p, 1);
  }
  folioRefUnfreeze(m, head, 1);
  for (let p = head; p < head + nr; p++) if (wasMapped) removeMigrationPtes(m, p, p);
  folioUnlock(m, head);
  countVmEvents(m, vmItem('thp_split_page'), 1);
  return 0;
}

// ---------------------------------------------------------------------------------------------
// PMD mappings of THPs: the fault, the split, the zap

/**
 * do_huge_pmd_anonymous_page(): a THP for the aligned PMD range if one can be had without reclaim
 * (GFP_TRANSHUGE_LIGHT); otherwise thp_fault_fallback and the caller takes the PTE path
 * (signalled by VM_FAULT_RETRY + 1). __do_huge_pmd_anonymous_page() then allocates the PTE table it
 * deposits with the PMD (so that a split never needs memory); without one the fault fails with
 * VM_FAULT_OOM, no fallback (v6.12).
 */
export function doHugePmdAnonymousPage(m: Memmap, mm: number, vb: number, vpn: number): number {
  const FALLBACK = VM_FAULT_RETRY + 1;
  const anonVma = anonVmaPrepare(m, mm, vb);
  const pfn = allocPages(m, GFP_TRANSHUGE_LIGHT | __GFP_ZERO | __GFP_COMP, m.pmdOrder);
  if (pfn === NO_PAGE) {
    countVmEvents(m, vmItem('thp_fault_fallback'), 1);
    return FALLBACK;
  }
  const t = pteAllocOne(m, mm); // pte_alloc_one(): counted in nr_ptes from now on (mm_inc_nr_ptes)
  if (t < 0) {
    folioPut(m, pfn);
    return VM_FAULT_OOM;
  }
  const head = vpn & ~(m.ptrsPerTable - 1);
  const pi = pmdIndex(m, mm, vpn);
  ptlLock(m, mm);
  if (m.pmds[pi] !== 0) {
    ptlUnlock(m, mm);
    pteFree(m, mm, t);
    folioPut(m, pfn);
    return FALLBACK;
  }
  folioAddNewAnonRmap(m, pfn, anonVma, head);
  m.flags[pfn] = m.flags[pfn]! | PG_anon_exclusive;
  pmdMapInc(m, pfn);
  pgtableTransHugeDeposit(m, mm, t);
  m.pmds[pi] = mkHugePmd(pfn, true);
  addMmCounter(m, mm, MM_RSS_ANON, m.ptrsPerTable);
  ptlUnlock(m, mm);
  folioAddLruVma(m, pfn, m.vmas[vb + VMA_FLAGS]!);
  countVmEvents(m, vmItem('thp_fault_alloc'), 1);
  return 0;
}

/**
 * zap_huge_pmd(): clear a huge PMD (present or a migration entry). For an anonymous THP the deposited
 * table goes too (zap_deposited_table(): pte_free, mm_dec_nr_ptes); hugetlb deposits none. Returns
 * false when the PMD is no longer huge under the PTL (__pmd_trans_huge_lock(): split meanwhile).
 */
export function zapHugePmd(m: Memmap, mm: number, pi: number): boolean {
  ptlLock(m, mm);
  const pmd = m.pmds[pi]!;
  if (!pmdIsHuge(pmd)) {
    ptlUnlock(m, mm);
    return false;
  }
  m.pmds[pi] = 0;
  const head = pmd & PFN_MASK;
  const hugetlb = (m.flags[head]! & PG_hugetlb) !== 0; // a migration entry names the source folio, still PG_hugetlb
  const t = hugetlb ? -1 : pgtableTransHugeWithdraw(m, mm);
  ptlUnlock(m, mm);
  if (!hugetlb) {
    if (t < 0) bug(`zap_huge_pmd: mm ${mm} pmd ${pi} maps an anonymous THP but no page table is deposited`);
    pteFree(m, mm, t);
    addMmCounter(m, mm, MM_RSS_ANON, -m.ptrsPerTable); // a migration entry counts too
  }
  if (!(pmd & PTE_PRESENT)) return true; // a migration entry: no mapping, no reference
  pmdMapDec(m, head);
  folioPut(m, head);
  return true;
}

/**
 * __split_huge_pmd(): turn one PMD mapping of a THP into PTEs mapping each page; every PTE holds a
 * reference (folio_ref_add(nr - 1)). The PTEs go into the table deposited when the PMD was made
 * (__split_huge_pmd_locked(): pgtable_trans_huge_withdraw), so a split needs no memory and cannot
 * fail; nr_ptes does not change. A hugetlb PMD is never split.
 */
export function splitHugePmd(m: Memmap, mm: number, vpn: number): void {
  const pi = pmdIndex(m, mm, vpn);
  const hvpn = vpn & ~(m.ptrsPerTable - 1);
  // __split_huge_pmd()
  const range = mmuNotifierInvalidateRangeStart(m, mm, hvpn, hvpn + m.ptrsPerTable, MMU_NOTIFY_CLEAR);
  ptlLock(m, mm);
  const pmd = m.pmds[pi]!;
  if (!pmdIsHuge(pmd) || m.flags[pmd & PFN_MASK]! & PG_hugetlb) {
    ptlUnlock(m, mm);
    mmuNotifierInvalidateRangeEnd(m, range);
    return;
  }
  const t = pgtableTransHugeWithdraw(m, mm);
  if (t < 0) {
    ptlUnlock(m, mm);
    bug(`__split_huge_pmd: mm ${mm} pmd ${pi} maps an anonymous THP but no page table is deposited`);
  }
  const head = pmd & PFN_MASK;
  const write = (pmd & PTE_WRITE) !== 0;
  const present = (pmd & PTE_PRESENT) !== 0;
  const base = t << m.pmdOrder;
  const excl = m.flags[head]! & PG_anon_exclusive;
  for (let i = 0; i < m.ptrsPerTable; i++) {
    flagsFetchOr(m.flags, head + i, excl);
    m.ptes[base + i] = present ? mkPte(head + i, write) : PTE_MIGRATION | (write ? PTE_WRITE : 0) | (head + i);
    if (present) pteMapInc(m, head + i);
  }
  if (present) {
    pmdMapDec(m, head);
    atomicFetchAdd(m.refcount, head, m.ptrsPerTable - 1);
  }
  m.pmds[pi] = PMD_TABLE | t;
  ptlUnlock(m, mm);
  mmuNotifierInvalidateRangeEnd(m, range);
  countVmEvents(m, vmItem('thp_split_pmd'), 1);
}
