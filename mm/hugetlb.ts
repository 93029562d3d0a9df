// hugetlbfs pools (mm/hugetlb.c, v6.12): boot-time pools from hugepages=/hugepagesz=, free lists per
// hstate, dequeue and enqueue. A free hugetlb folio has refcount 0 and sits on its hstate's free list.
//
// Simplified: one node; no surplus pages, no reservations (resv_map). HVO (hugetlb_free_vmemmap=on) is
// a boot switch that covers every folio; only its effect on freeing is modelled: free_huge_folio() of
// an optimised folio defers the free to the free_hpage_work kworker (hpage_freelist).

import {
  Memmap,
  H_HSTATES,
  HS_ORDER,
  HS_NR_HUGE_PAGES,
  HS_FREE_HUGE_PAGES,
  HS_FREE_LIST,
  HS_LOCK,
  HS_STRIDE,
  HUGE_MAX_HSTATE,
  PG_head,
  PG_tail,
  PG_hugetlb,
  PG_ZONE_MASK,
  PG_ORDER_SHIFT,
  Z_MANAGED,
  PG_isolated,
  PG_locked,
  PG_anon,
  PG_dirty,
  PG_hugetlb_temporary,
  H_HPAGE_FREELIST,
  H_HUGETLB_VMEMMAP,
} from './memmap';
import { allocPages, freePages, NO_PAGE } from './page_alloc';
import { countVmEvents, vmItem } from './vmstat';
import { MIGRATE_ISOLATE } from './mmzone';
import { current, PF_MEMALLOC_PIN } from './sched';
import { folioIsLongtermPinnable } from './pinnable';
import {
  GFP_HIGHUSER_MOVABLE,
  GFP_HIGHUSER,
  __GFP_COMP,
  __GFP_THISNODE,
  __GFP_RETRY_MAYFAIL,
  __GFP_NOWARN,
} from './gfp';
import { spinLock, spinUnlock } from './locking';
import { atomicCmpxchg, atomicRead, atomicXchg } from './atomic';
import type { HugepageParam } from './cmdline';
import type { Reservation } from './mm_init';

export function hstateBase(i: number): number {
  return H_HSTATES + i * HS_STRIDE;
}

/** for_each_hstate(): each configured pool's order, nr_hugepages and free_hugepages. */
export function hstates(m: Memmap): { order: number; nr: number; free: number }[] {
  const out: { order: number; nr: number; free: number }[] = [];
  for (let i = 0; i < HUGE_MAX_HSTATE; i++) {
    const hb = hstateBase(i);
    if (!m.header[hb + HS_ORDER]) continue;
    out.push({
      order: m.header[hb + HS_ORDER]!,
      nr: m.header[hb + HS_NR_HUGE_PAGES]!,
      free: m.header[hb + HS_FREE_HUGE_PAGES]!,
    });
  }
  return out;
}

/** hugepage_movable_supported(): gigantic pages are never allocated movable. */
function htlbAllocMask(m: Memmap, order: number): number {
  return order > m.maxOrder ? GFP_HIGHUSER : GFP_HIGHUSER_MOVABLE;
}

/** prep_new_hugetlb_folio(): compound head/tails of a hugetlb folio, refcount 0 (free in the pool). */
function prepHugetlbFolio(m: Memmap, pfn: number, order: number): void {
  const n = 1 << order;
  const ob = order << PG_ORDER_SHIFT;
  m.flags[pfn] = (m.flags[pfn]! & PG_ZONE_MASK) | PG_head | PG_hugetlb | ob;
  for (let p = pfn + 1; p < pfn + n; p++) m.flags[p] = (m.flags[p]! & PG_ZONE_MASK) | PG_tail | ob;
  m.refcount[pfn] = 0;
  m.mapping[pfn + 1] = 0; // _pincount
  m.index[pfn + 1] = 0; // _entire_mapcount
}

/** enqueue_hugetlb_folio() (hugetlb_lock held) */
function enqueueHugetlbFolio(m: Memmap, hb: number, pfn: number): void {
  const next = m.header[hb + HS_FREE_LIST]!;
  m.mapping[pfn] = next;
  m.index[pfn] = -1;
  if (next !== -1) m.index[next] = pfn;
  m.header[hb + HS_FREE_LIST] = pfn;
  m.header[hb + HS_FREE_HUGE_PAGES]!++;
}

/**
 * hugetlb_init(): gigantic pages reserved from memblock at boot join their pool (managed again);
 * smaller pages come from the buddy with htlb_alloc_mask | __GFP_THISNODE | __GFP_RETRY_MAYFAIL.
 */
export function hugetlbInit(
  m: Memmap,
  buddyPools: HugepageParam[],
  reservations: Reservation[],
  warnings: string[],
): void {
  for (let i = 0; i < HUGE_MAX_HSTATE; i++) m.header[hstateBase(i) + HS_FREE_LIST] = -1;
  let next = 0;
  const gig = reservations.filter((r) => r.what === 'gigantic hugetlb page');
  if (gig.length) {
    const hb = hstateBase(next++);
    const order = Math.log2(gig[0]!.nrPages);
    m.header[hb + HS_ORDER] = order;
    for (const r of gig) {
      prepHugetlbFolio(m, r.startPfn, order);
      m.zones[m.zoneBase(m.pageZone(r.startPfn)) + Z_MANAGED]! += r.nrPages;
      enqueueHugetlbFolio(m, hb, r.startPfn);
      m.header[hb + HS_NR_HUGE_PAGES]!++;
    }
  }
  for (const pool of buddyPools) {
    const hb = hstateBase(next++);
    m.header[hb + HS_ORDER] = pool.order;
    let got = 0;
    const gfp = htlbAllocMask(m, pool.order) | __GFP_COMP | __GFP_THISNODE | __GFP_RETRY_MAYFAIL | __GFP_NOWARN;
    for (; got < pool.count; got++) {
      const pfn = allocBuddyHugetlbFolio(m, gfp, pool.order);
      if (pfn === NO_PAGE) break;
      prepHugetlbFolio(m, pfn, pool.order);
      enqueueHugetlbFolio(m, hb, pfn);
      m.header[hb + HS_NR_HUGE_PAGES]!++;
    }
    if (got < pool.count) {
      warnings.push(
        `HugeTLB: allocating ${pool.count} of page size ${sizeString(4096 * 2 ** pool.order)} failed.  Only allocated ${got} hugepages.`,
      );
    }
  }
}

const HTLB_BUDDY_PGALLOC = vmItem('htlb_buddy_alloc_success');
const HTLB_BUDDY_PGALLOC_FAIL = vmItem('htlb_buddy_alloc_fail');

/** alloc_buddy_hugetlb_folio(): a fresh folio from the buddy, counted htlb_buddy_alloc_success or _fail. */
function allocBuddyHugetlbFolio(m: Memmap, gfp: number, order: number): number {
  const pfn = allocPages(m, gfp, order);
  countVmEvents(m, pfn === NO_PAGE ? HTLB_BUDDY_PGALLOC_FAIL : HTLB_BUDDY_PGALLOC, 1);
  return pfn;
}

/** string_get_size() with units of 1024: "2.00 MiB". */
export function sizeString(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (bytes >= 1024 && i < units.length - 1) {
    bytes /= 1024;
    i++;
  }
  return `${bytes.toFixed(2)} ${units[i]}`;
}

// ---- pool operations (hugetlb_lock held inside) ----

/** The hstate for a folio order, or -1. */
export function hstateIndex(m: Memmap, order: number): number {
  for (let i = 0; i < HUGE_MAX_HSTATE; i++) if (m.header[hstateBase(i) + HS_ORDER] === order && order > 0) return i;
  return -1;
}

function unlinkFree(m: Memmap, hb: number, pfn: number): void {
  const next = m.mapping[pfn]!;
  const prev = m.index[pfn]!;
  if (prev !== -1) m.mapping[prev] = next;
  else m.header[hb + HS_FREE_LIST] = next;
  if (next !== -1) m.index[next] = prev;
  m.mapping[pfn] = 0;
  m.index[pfn] = 0;
  m.header[hb + HS_FREE_HUGE_PAGES]!--;
}

/**
 * dequeue_hugetlb_folio_node_exact(): a free folio of the hstate, refcount 1. Skips isolated pageblocks,
 * and inside a PF_MEMALLOC_PIN scope folios that are not long-term pinnable.
 */
export function dequeueHugetlbFolio(m: Memmap, hs: number): number {
  const hb = hstateBase(hs);
  const pin = (current().flags & PF_MEMALLOC_PIN) !== 0;
  spinLock(m.header, hb + HS_LOCK);
  let pfn = m.header[hb + HS_FREE_LIST]!;
  for (; pfn !== -1; pfn = m.mapping[pfn]!) {
    if (pin && !folioIsLongtermPinnable(m, pfn)) continue;
    if (m.getPageblockMigratetype(pfn) === MIGRATE_ISOLATE) continue;
    break;
  }
  if (pfn !== -1) {
    unlinkFree(m, hb, pfn);
    m.refcount[pfn] = 1;
  }
  spinUnlock(m.header, hb + HS_LOCK);
  return pfn;
}

/**
 * alloc_migrate_hugetlb_folio(): with no free folio in the pool, migration gets a fresh temporary one
 * from the buddy (htlb_alloc_mask, same node). Returns it with refcount 1, or NO_PAGE.
 */
export function allocMigrateHugetlbFolio(m: Memmap, order: number): number {
  const pfn = allocBuddyHugetlbFolio(m, htlbAllocMask(m, order) | __GFP_COMP | __GFP_THISNODE | __GFP_NOWARN, order);
  if (pfn === NO_PAGE) return NO_PAGE;
  prepHugetlbFolio(m, pfn, order);
  m.flags[pfn] = m.flags[pfn]! | PG_hugetlb_temporary;
  m.refcount[pfn] = 1;
  return pfn;
}

/** move_hugetlb_state(): the new folio takes the old one's place in the pool; the old one becomes temporary. */
export function moveHugetlbState(m: Memmap, oldPfn: number, newPfn: number): void {
  if (!(m.flags[newPfn]! & PG_hugetlb_temporary)) return;
  m.flags[newPfn] = m.flags[newPfn]! & ~PG_hugetlb_temporary;
  m.flags[oldPfn] = m.flags[oldPfn]! | PG_hugetlb_temporary;
}

/**
 * free_huge_folio(): refcount reached 0; back on the free list. A temporary folio leaves the pool
 * (remove_hugetlb_folio()) and goes back to the buddy: update_and_free_hugetlb_folio(atomic = true).
 */
export function freeHugeFolio(m: Memmap, pfn: number): void {
  if (m.flags[pfn]! & PG_hugetlb_temporary) {
    const order = m.pageOrder(pfn);
    for (let p = pfn; p < pfn + (1 << order); p++) m.mapcount[p] = 0;
    m.index[pfn + 1] = 0; // _entire_mapcount
    m.flags[pfn] = m.flags[pfn]! & ~(PG_hugetlb_temporary | PG_isolated | PG_locked | PG_anon | PG_dirty);
    updateAndFreeHugetlbFolio(m, pfn, true);
    return;
  }
  const hs = hstateIndex(m, m.pageOrder(pfn));
  const hb = hstateBase(hs);
  const n = 1 << m.pageOrder(pfn);
  for (let p = pfn; p < pfn + n; p++) m.mapcount[p] = 0;
  m.flags[pfn] = m.flags[pfn]! & ~(PG_isolated | PG_locked | PG_anon | PG_dirty);
  m.mapping[pfn + 1] = 0; // _pincount
  m.index[pfn + 1] = 0; // _entire_mapcount
  spinLock(m.header, hb + HS_LOCK);
  enqueueHugetlbFolio(m, hb, pfn);
  spinUnlock(m.header, hb + HS_LOCK);
}

/**
 * dissolve_free_hugetlb_folios(): free pool folios with a page in [start, end) go back to the buddy
 * (offlining): it walks the range's pfns and dissolves each one's folio (pfn_folio()), so a gigantic
 * page straddling the range goes whole. Returns 0 (pinlab's pool has no surplus accounting that could fail).
 */
export function dissolveFreeHugetlbFolios(m: Memmap, startPfn: number, endPfn: number): number {
  for (let i = 0; i < HUGE_MAX_HSTATE; i++) {
    const hb = hstateBase(i);
    if (!m.header[hb + HS_ORDER]) continue;
    spinLock(m.header, hb + HS_LOCK);
    const victims: number[] = [];
    for (let p = m.header[hb + HS_FREE_LIST]!; p !== -1; p = m.mapping[p]!)
      if (p < endPfn && p + 2 ** m.header[hb + HS_ORDER]! > startPfn) victims.push(p);
    for (const p of victims) {
      unlinkFree(m, hb, p);
      m.header[hb + HS_NR_HUGE_PAGES]!--;
    }
    spinUnlock(m.header, hb + HS_LOCK);
    for (const p of victims) {
      const order = m.pageOrder(p);
      m.refcount[p] = 1;
      m.flags[p] = m.flags[p]! & ~PG_hugetlb;
      freePages(m, p, order);
    }
  }
  return 0;
}

// ---- freeing to the buddy, deferred for HVO folios (mm/hugetlb.c, hugetlb_vmemmap.c) ----

/** folio_test_hugetlb_vmemmap_optimized(): every folio when hugetlb_free_vmemmap=on (a boot switch here). */
function folioVmemmapOptimized(m: Memmap): boolean {
  return m.header[H_HUGETLB_VMEMMAP] !== 0;
}

/**
 * update_and_free_hugetlb_folio(): a folio already out of the pool goes back to the buddy. An
 * HVO folio freed where it must not sleep (atomic: free_huge_folio()) cannot allocate its vmemmap
 * back here: it goes on hpage_freelist for free_hpage_work, still PageHuge (remove_hugetlb_folio()
 * keeps the flag for optimised folios), refcount 0, in neither the pool nor the buddy.
 */
export function updateAndFreeHugetlbFolio(m: Memmap, pfn: number, atomic: boolean): void {
  if (atomic && folioVmemmapOptimized(m)) {
    // llist_add(&folio->mapping, &hpage_freelist): lockless, a cmpxchg loop on the head
    let head = atomicRead(m.header, H_HPAGE_FREELIST);
    for (;;) {
      m.mapping[pfn] = head;
      const was = atomicCmpxchg(m.header, H_HPAGE_FREELIST, head, pfn + 1);
      if (was === head) break;
      head = was;
    }
    return; // schedule_work(&free_hpage_work)
  }
  hugetlbFreeToBuddy(m, pfn);
}

/** __update_and_free_hugetlb_folio(): vmemmap restored, PageHuge cleared, refcount 1, to the buddy. */
function hugetlbFreeToBuddy(m: Memmap, pfn: number): void {
  m.mapping[pfn] = 0;
  m.flags[pfn] = m.flags[pfn]! & ~PG_hugetlb;
  m.refcount[pfn] = 1;
  freePages(m, pfn, m.pageOrder(pfn));
}

/** Whether free_hpage_work has folios to free (!llist_empty(&hpage_freelist)). */
export function hugetlbFreesPending(m: Memmap): boolean {
  return atomicRead(m.header, H_HPAGE_FREELIST) !== 0;
}

/**
 * free_hpage_workfn(): the kworker takes the whole list (llist_del_all()) and frees each folio to the
 * buddy. Returns how many. pinlab runs it where the harness gives the kworker the CPU (between an
 * actor's ops), at the `kworker` scenario op, and from flush_work().
 */
export function freeHpageWorkfn(m: Memmap): number {
  let node = atomicXchg(m.header, H_HPAGE_FREELIST, 0); // llist_del_all()
  let n = 0;
  while (node !== 0) {
    const pfn = node - 1;
    node = m.mapping[pfn]!;
    hugetlbFreeToBuddy(m, pfn);
    n++;
  }
  return n;
}

/**
 * wait_for_freed_hugetlb_folios() (R19's fix, "mm/hugetlb: wait for hugetlb folios to be freed", v6.14,
 * 6.12.20): flush_work(&free_hpage_work) unless the list is empty. pinlab's flush runs the work itself.
 */
export function waitForFreedHugetlbFolios(m: Memmap): void {
  if (!hugetlbFreesPending(m)) return;
  freeHpageWorkfn(m);
}
