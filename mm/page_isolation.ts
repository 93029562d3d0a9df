// Pageblock isolation (mm/page_isolation.c, v6.12): MIGRATE_ISOLATE pageblocks hand out nothing; their
// free pages sit on the ISOLATE lists and leave NR_FREE_PAGES (account_freepages).
import {
  Memmap,
  Z_LOCK,
  Z_NR_ISOLATE_PAGEBLOCK,
  PG_buddy,
  PG_ORDER_SHIFT,
  PG_reserved,
  PG_hole,
  PG_head,
  PG_tail,
  PG_hugetlb,
  PG_lru,
  PG_movable_ops,
  PG_hwpoison,
  PG_offline,
} from './memmap';
import { MIGRATE_ISOLATE, MIGRATE_CMA, ZONE_MOVABLE, MAX_NR_ZONES } from './mmzone';
import { EBUSY } from './errno';
import { moveFreepagesBlockIsolate, freeOnePageLocked, delPageFromFreeList, FPI_TO_TAIL } from './page_alloc';
import { spinLock, spinUnlock } from './locking';
import { waitForFreedHugetlbFolios } from './hugetlb';
import { hasBug } from './variants';

/**
 * Make the pageblock at pfn MIGRATE_ISOLATE without the unmovable-page check (the caller decides:
 * online_pages isolates freshly added memory; set_migratetype_isolate() checks has_unmovable_pages()).
 * A free block of more than a pageblock that holds it is split first (move_freepages_block_isolate()).
 */
export function isolatePageblockLocked(m: Memmap, zid: number, pfn: number): void {
  const start = pfn & ~(m.pageblockNrPages - 1);
  if (m.getPageblockMigratetype(start) === MIGRATE_ISOLATE) return;
  moveFreepagesBlockIsolate(m, zid, start, MIGRATE_ISOLATE);
  m.zones[m.zoneBase(zid) + Z_NR_ISOLATE_PAGEBLOCK]!++;
}

/**
 * unset_migratetype_isolate() (6.12): back to mt, every free page moved to mt's lists
 * (move_freepages_block_isolate(), which splits a free block reaching into a neighbour still
 * isolated). A free pageblock-order page whose buddy is not isolated is taken off and freed again
 * once the block is retyped, so the two merge (__isolate_free_page(), __putback_isolated_page()).
 */
export function unsetMigratetypeIsolate(m: Memmap, zid: number, pfn: number, mt: number): void {
  const lk = m.zoneBase(zid) + Z_LOCK;
  spinLock(m.zones, lk);
  const start = pfn & ~(m.pageblockNrPages - 1);
  if (m.getPageblockMigratetype(start) !== MIGRATE_ISOLATE) {
    spinUnlock(m.zones, lk);
    return;
  }
  const f = m.flags[start]!;
  const order = (f >>> PG_ORDER_SHIFT) & 31;
  let putback = false;
  if (f & PG_buddy && order >= m.pageblockOrder && order < m.maxOrder) {
    const buddy = start ^ (1 << order);
    const bf = buddy < m.nrFrames ? m.flags[buddy]! : 0;
    const sameZone = m.pageZone(buddy) === zid;
    if (
      bf & PG_buddy &&
      ((bf >>> PG_ORDER_SHIFT) & 31) === order &&
      sameZone &&
      m.getPageblockMigratetype(buddy) !== MIGRATE_ISOLATE
    ) {
      delPageFromFreeList(m, zid, start, order, MIGRATE_ISOLATE);
      putback = true;
    }
  }
  if (putback) {
    m.setPageblockMigratetype(start, mt);
    freeOnePageLocked(m, start, zid, order, mt, FPI_TO_TAIL); // __putback_isolated_page()
  } else moveFreepagesBlockIsolate(m, zid, start, mt);
  m.zones[m.zoneBase(zid) + Z_NR_ISOLATE_PAGEBLOCK]!--;
  spinUnlock(m.zones, lk);
}

// ---------------------------------------------------------------------------------------------
// Range isolation for offlining and alloc_contig_range()

export const MEMORY_OFFLINE = 0x1;
export const REPORT_FAILURE = 0x2;

/**
 * has_unmovable_pages(): the first pfn in [start, end) that cannot move, or -1. Approximate by design:
 * reserved pages and holes are unmovable; in ZONE_MOVABLE everything else is assumed movable (so a
 * pinned page passes here and fails later in migration); elsewhere LRU, __PageMovable, free and
 * migratable hugetlb pages pass. A CMA pageblock is unmovable unless the caller isolates for CMA.
 */
function hasUnmovablePages(
  m: Memmap,
  zid: number,
  start: number,
  end: number,
  migratetype: number,
  flags: number,
): number {
  if (m.getPageblockMigratetype(start) === MIGRATE_CMA) return migratetype === MIGRATE_CMA ? -1 : start;
  for (let pfn = start; pfn < end; pfn++) {
    const f = m.flags[pfn]!;
    if (f & (PG_reserved | PG_hole)) return pfn;
    if (zid % MAX_NR_ZONES === ZONE_MOVABLE) continue; // zone_idx(zone): any node's
    if (f & (PG_head | PG_tail)) {
      const head = m.compoundHead(pfn);
      if (!(m.flags[head]! & PG_hugetlb) && !(m.flags[head]! & (PG_lru | PG_movable_ops))) return pfn;
      pfn = head + (1 << m.pageOrder(head)) - 1;
      continue;
    }
    if (m.refcount[pfn] === 0) {
      if (f & PG_buddy) pfn += (1 << ((f >>> PG_ORDER_SHIFT) & 31)) - 1;
      continue;
    }
    if (flags & MEMORY_OFFLINE && f & (PG_hwpoison | PG_offline)) continue;
    if (f & (PG_movable_ops | PG_lru)) continue;
    return pfn;
  }
  return -1;
}

/**
 * set_migratetype_isolate(): under the zone lock, isolate one pageblock unless it is already isolated
 * (-EBUSY) or holds an unmovable page (-EBUSY; *unmovable receives the pfn).
 */
function setMigratetypeIsolate(
  m: Memmap,
  zid: number,
  pfn: number,
  migratetype: number,
  flags: number,
  out: { pfn: number },
): number {
  const lk = m.zoneBase(zid) + Z_LOCK;
  spinLock(m.zones, lk);
  const start = pfn & ~(m.pageblockNrPages - 1);
  if (m.getPageblockMigratetype(start) === MIGRATE_ISOLATE) {
    spinUnlock(m.zones, lk);
    out.pfn = start;
    return -EBUSY;
  }
  const bad = hasUnmovablePages(m, zid, start, start + m.pageblockNrPages, migratetype, flags);
  if (bad >= 0) {
    spinUnlock(m.zones, lk);
    out.pfn = bad;
    return -EBUSY;
  }
  isolatePageblockLocked(m, zid, start);
  spinUnlock(m.zones, lk);
  return 0;
}

/**
 * start_isolate_page_range(): isolate every pageblock of [start, end) or none (undo on failure).
 * Does not guarantee anything about pages still on per-CPU lists: callers disable them first.
 */
export function startIsolatePageRange(
  m: Memmap,
  start: number,
  end: number,
  migratetype: number,
  flags: number,
  out: { pfn: number } = { pfn: -1 },
): number {
  for (let pfn = start; pfn < end; pfn += m.pageblockNrPages) {
    const rc = setMigratetypeIsolate(m, m.pageZone(pfn), pfn, migratetype, flags, out);
    if (rc) {
      for (let p = start; p < pfn; p += m.pageblockNrPages) unsetMigratetypeIsolate(m, m.pageZone(p), p, migratetype);
      return rc;
    }
  }
  return 0;
}

/** undo_isolate_page_range(): every isolated pageblock back to migratetype. */
export function undoIsolatePageRange(m: Memmap, start: number, end: number, migratetype: number): void {
  for (let pfn = start; pfn < end; pfn += m.pageblockNrPages)
    unsetMigratetypeIsolate(m, m.pageZone(pfn), pfn, migratetype);
}

/**
 * test_pages_isolated(): 0 when every pageblock of [start, end) is isolated and every page is free in
 * the buddy (or hwpoisoned / an unreferenced PageOffline, when offlining); else -EBUSY with the pfn.
 * As the kernel-doc says, end is the first pfn after the range. First it waits for hugetlb folios
 * whose free to the buddy was deferred (wait_for_freed_hugetlb_folios(); not before R19's fix).
 */
export function testPagesIsolated(
  m: Memmap,
  start: number,
  end: number,
  flags: number,
  out: { pfn: number } = { pfn: -1 },
): number {
  if (!hasBug('R19')) waitForFreedHugetlbFolios(m); // unconditional: it checks the list itself (6.12.118)
  for (let pfn = start; pfn < end; pfn += m.pageblockNrPages) {
    if (m.getPageblockMigratetype(pfn) !== MIGRATE_ISOLATE) {
      out.pfn = pfn;
      return -EBUSY;
    }
  }
  for (let pfn = start; pfn < end;) {
    const f = m.flags[pfn]!;
    if (f & PG_buddy) {
      pfn += 1 << ((f >>> PG_ORDER_SHIFT) & 31);
      continue;
    }
    if (flags & MEMORY_OFFLINE && (f & PG_hwpoison || (f & PG_offline && m.refcount[pfn] === 0))) {
      pfn++;
      continue;
    }
    out.pfn = pfn;
    return -EBUSY;
  }
  return 0;
}
