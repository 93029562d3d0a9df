// alloc_contig_range() and free_contig_range() (mm/page_alloc.c, CONFIG_CONTIG_ALLOC, v6.12): what
// cma_alloc(), alloc_contig_pages() and virtio-mem use to take a physical range out of the buddy.
// Kept apart from page_alloc.ts so the allocator's module imports no migration code.
//
// Simplified: ranges are whole pageblocks of one zone (the kernel also takes unaligned ranges and
// frees the rest of the outer buddy blocks); in-use folios are migrated, free pool hugetlb folios are
// dissolved into the buddy (the kernel replaces them with fresh ones: alloc_and_dissolve_hugetlb_folio()),
// and there is no replace_free_hugepage_folios() pass.

import { Memmap, Z_LOCK, PG_buddy, PG_hugetlb, PG_lru, PG_movable_ops, PG_head, PG_ZONE_MASK } from './memmap';
import { MIGRATE_ISOLATE } from './mmzone';
import { EBUSY, EINVAL } from './errno';
import { startIsolatePageRange, undoIsolatePageRange, testPagesIsolated } from './page_isolation';
import { delPageFromFreeList, drainAllPages, freePages } from './page_alloc';
import { isolateFolio, migratePages, allocMigrationTarget, putbackMovablePages, MR_CONTIG_RANGE } from './migrate';
import { dissolveFreeHugetlbFolios } from './hugetlb';
import { folioPut, lruCacheDisable, lruCacheEnable } from './swap';
import { folioTryGet, folioOrder } from './page_ref';
import { GFP_USER, __GFP_MOVABLE, __GFP_RETRY_MAYFAIL } from './gfp';
import { spinLock, spinUnlock } from './locking';
import { yieldPoint } from './sched';

/** __alloc_contig_migrate_range()'s tries before it gives up on -EBUSY */
const CONTIG_MIGRATE_TRIES = 5;

/** What alloc_contig_range() reports besides its return value (test_pages_isolated's tracepoint). */
export interface ContigReport {
  /** the pfn test_pages_isolated() stopped at, or -1 */
  busyPfn: number;
  /** folios migrated out of the range */
  migrated: number;
}

/**
 * isolate_migratepages_range(): take every in-use LRU, __PageMovable or hugetlb folio of [start, end)
 * off its list with a reference, for migration.
 */
function isolateMigratepagesRange(m: Memmap, start: number, end: number): number[] {
  const list: number[] = [];
  for (let pfn = start; pfn < end; pfn++) {
    const f = m.flags[pfn]!;
    if (f & PG_buddy) {
      pfn += (1 << m.pageOrder(pfn)) - 1;
      continue;
    }
    const head = m.compoundHead(pfn);
    const hf = m.flags[head]!;
    if (!(hf & (PG_lru | PG_movable_ops | PG_hugetlb))) continue;
    if (!folioTryGet(m, head)) continue; // free (refcount 0): a pool hugetlb folio or a deferred free
    if (hf & PG_head) pfn = Math.max(pfn, head + (1 << folioOrder(m, head)) - 1);
    if (isolateFolio(m, head)) list.push(head);
    folioPut(m, head);
  }
  return list;
}

/**
 * __alloc_contig_migrate_range(): isolate and migrate until nothing in the range is left to move
 * (MR_CONTIG_RANGE), at most CONTIG_MIGRATE_TRIES passes that leave folios behind. 0, -EBUSY or
 * -ENOMEM (no migration target).
 */
function allocContigMigrateRange(m: Memmap, start: number, end: number, report: ContigReport): number {
  lruCacheDisable(m);
  let rc = 0;
  for (let tries = 0; ;) {
    yieldPoint('contig:migrate'); // cond_resched()
    const list = isolateMigratepagesRange(m, start, end);
    if (!list.length) break;
    const n = list.length;
    const left = migratePages(m, list, allocMigrationTarget(GFP_USER | __GFP_MOVABLE | __GFP_RETRY_MAYFAIL), {
      reason: MR_CONTIG_RANGE,
    });
    report.migrated += n - list.length;
    if (left) putbackMovablePages(m, list);
    if (left < 0) {
      rc = left; // -ENOMEM: no target
      break;
    }
    if (left === 0) continue;
    if (++tries >= CONTIG_MIGRATE_TRIES) {
      rc = -EBUSY;
      break;
    }
  }
  lruCacheEnable(m);
  return rc;
}

/**
 * isolate_freepages_range() + split_free_pages(): every free page of the isolated range leaves the
 * buddy as order-0 pages with refcount 1 (allocated).
 */
function isolateFreepagesRange(m: Memmap, start: number, end: number): void {
  const zid = m.pageZonenum(start);
  const lk = m.zoneBase(zid) + Z_LOCK;
  spinLock(m.zones, lk);
  for (let pfn = start; pfn < end;) {
    const order = m.pageOrder(pfn);
    delPageFromFreeList(m, zid, pfn, order, MIGRATE_ISOLATE);
    for (let p = pfn; p < pfn + (1 << order); p++) {
      m.flags[p] = m.flags[p]! & PG_ZONE_MASK;
      m.refcount[p] = 1;
    }
    pfn += 1 << order;
  }
  spinUnlock(m.zones, lk);
}

/**
 * alloc_contig_range(): isolate [start, end), migrate what is in use out of it, and take its pages
 * from the buddy; the pageblocks go back to migratetype either way. Returns 0 (every page of the
 * range allocated, refcount 1: free them with freeContigRange()), -EINVAL (unaligned, several zones)
 * or -EBUSY (isolation failed, or a page is still not free in the buddy after migration).
 */
export function allocContigRange(
  m: Memmap,
  start: number,
  end: number,
  migratetype: number,
  report: ContigReport = { busyPfn: -1, migrated: 0 },
): number {
  if (start >= end || start % m.pageblockNrPages || end % m.pageblockNrPages) return -EINVAL;
  const zid = m.pageZonenum(start);
  for (let pfn = start; pfn < end; pfn++) if (m.pageZonenum(pfn) !== zid) return -EINVAL;
  const out = { pfn: -1 };
  let rc = startIsolatePageRange(m, start, end, migratetype, 0, out);
  if (rc) {
    report.busyPfn = out.pfn;
    return rc;
  }
  drainAllPages(m, zid);
  rc = allocContigMigrateRange(m, start, end, report);
  if (rc === 0 || rc === -EBUSY) {
    dissolveFreeHugetlbFolios(m, start, end); // isolate_or_dissolve_huge_page() of the free pool folios
    rc = testPagesIsolated(m, start, end, 0, out);
    if (rc) report.busyPfn = out.pfn;
    else isolateFreepagesRange(m, start, end);
  }
  undoIsolatePageRange(m, start, end, migratetype);
  return rc;
}

/** free_contig_range(): drop the reference on every page of an allocated range. */
export function freeContigRange(m: Memmap, start: number, nrPages: number): void {
  for (let pfn = start; pfn < start + nrPages; pfn++) freePages(m, pfn, 0);
}
