// hugetlbfs pools (mm/hugetlb.c, v6.12): boot-time pools from hugepages=/hugepagesz=, free lists per
// hstate, dequeue and enqueue. A free hugetlb folio has refcount 0 and sits on its hstate's free list.
//
// Simplified: one node; no surplus pages, no reservations (resv_map), no HVO (vmemmap optimisation).

import { Memmap, H_HSTATES, HS_ORDER, HS_NR_HUGE_PAGES, HS_FREE_HUGE_PAGES, HS_FREE_LIST, HS_LOCK, HS_STRIDE,
  HUGE_MAX_HSTATE, PG_head, PG_tail, PG_hugetlb, PG_ZONE_MASK, PG_ORDER_SHIFT, Z_MANAGED } from './memmap';
import { allocPages, NO_PAGE } from './page_alloc';
import { GFP_HIGHUSER_MOVABLE, GFP_HIGHUSER, __GFP_COMP, __GFP_THISNODE, __GFP_RETRY_MAYFAIL, __GFP_NOWARN } from './gfp';
import { spinLock, spinUnlock } from './locking';
import type { HugepageParam } from './cmdline';
import type { Reservation } from './mm_init';

export function hstateBase(i: number): number {
  return H_HSTATES + i * HS_STRIDE;
}

/** size_to_hstate(): the hstate index for a folio order, or -1. */
export function orderToHstate(m: Memmap, order: number): number {
  for (let i = 0; i < HUGE_MAX_HSTATE; i++) {
    if (m.header[hstateBase(i) + HS_NR_HUGE_PAGES]! > 0 || m.header[hstateBase(i) + HS_ORDER]! > 0) {
      if (m.header[hstateBase(i) + HS_ORDER] === order) return i;
    }
  }
  return -1;
}

/** hugepage_movable_supported(): gigantic pages are never allocated movable. */
export function htlbAllocMask(m: Memmap, order: number): number {
  return order > m.maxOrder ? GFP_HIGHUSER : GFP_HIGHUSER_MOVABLE;
}

/** prep_new_hugetlb_folio(): compound head/tails of a hugetlb folio, refcount 0 (free in the pool). */
function prepHugetlbFolio(m: Memmap, pfn: number, order: number): void {
  const n = 1 << order;
  const ob = order << PG_ORDER_SHIFT;
  m.flags[pfn] = (m.flags[pfn]! & PG_ZONE_MASK) | PG_head | PG_hugetlb | ob;
  for (let p = pfn + 1; p < pfn + n; p++) m.flags[p] = (m.flags[p]! & PG_ZONE_MASK) | PG_tail | ob;
  m.refcount[pfn] = 0;
  m.pincount[pfn] = 0;
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

/** Free hugetlb folios of an hstate (walks the free list). */
export function hugetlbFreeFolios(m: Memmap, hs: number): number[] {
  const out: number[] = [];
  const hb = hstateBase(hs);
  spinLock(m.header, hb + HS_LOCK);
  for (let p = m.header[hb + HS_FREE_LIST]!; p !== -1; p = m.mapping[p]!) out.push(p);
  spinUnlock(m.header, hb + HS_LOCK);
  return out;
}

/**
 * hugetlb_init(): gigantic pages reserved from memblock at boot join their pool (managed again);
 * smaller pages come from the buddy with htlb_alloc_mask | __GFP_THISNODE | __GFP_RETRY_MAYFAIL.
 */
export function hugetlbInit(m: Memmap, buddyPools: HugepageParam[], reservations: Reservation[], warnings: string[]): void {
  for (let i = 0; i < HUGE_MAX_HSTATE; i++) m.header[hstateBase(i) + HS_FREE_LIST] = -1;
  let next = 0;
  const gig = reservations.filter((r) => r.what === 'gigantic hugetlb page');
  if (gig.length) {
    const hb = hstateBase(next++);
    const order = Math.log2(gig[0]!.nrPages);
    m.header[hb + HS_ORDER] = order;
    for (const r of gig) {
      prepHugetlbFolio(m, r.startPfn, order);
      m.zones[m.zoneBase(m.pageZonenum(r.startPfn)) + Z_MANAGED]! += r.nrPages;
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
      const pfn = allocPages(m, gfp, pool.order);
      if (pfn === NO_PAGE) break;
      prepHugetlbFolio(m, pfn, pool.order);
      enqueueHugetlbFolio(m, hb, pfn);
      m.header[hb + HS_NR_HUGE_PAGES]!++;
    }
    if (got < pool.count) {
      warnings.push(`HugeTLB: allocating ${pool.count} of page size ${sizeString(4096 * 2 ** pool.order)} failed.  Only allocated ${got} hugepages.`);
    }
  }
}

/** string_get_size() with units of 1024: "2.00 MiB". */
export function sizeString(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (bytes >= 1024 && i < units.length - 1) { bytes /= 1024; i++; }
  return `${bytes.toFixed(2)} ${units[i]}`;
}
