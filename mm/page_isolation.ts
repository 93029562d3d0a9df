// Pageblock isolation (mm/page_isolation.c, v6.12): MIGRATE_ISOLATE pageblocks hand out nothing; their
// free pages sit on the ISOLATE lists and leave NR_FREE_PAGES (account_freepages).
import { Memmap, Z_LOCK, Z_NR_ISOLATE_PAGEBLOCK, PG_buddy, PG_ORDER_SHIFT } from './memmap';
import { MIGRATE_ISOLATE } from './mmzone';
import { moveToFreeList, freeOnePageLocked, delPageFromFreeList } from './page_alloc';
import { spinLock, spinUnlock } from './locking';

/** Move every free page of the pageblock at pfn from oldMt's lists to newMt's (zone lock held). */
function moveFreepagesBlockIsolate(m: Memmap, zid: number, start: number, oldMt: number, newMt: number): void {
  for (let p = start; p < start + m.pageblockNrPages;) {
    const f = m.flags[p]!;
    if (f & PG_buddy) {
      const order = (f >>> PG_ORDER_SHIFT) & 31;
      moveToFreeList(m, zid, p, order, oldMt, newMt);
      p += 1 << order;
    } else p++;
  }
}

/**
 * Make the pageblock at pfn MIGRATE_ISOLATE without the unmovable-page check (the caller decides:
 * online_pages isolates freshly added memory; set_migratetype_isolate() checks has_unmovable_pages()).
 * A free block larger than a pageblock that starts here is isolated whole.
 */
export function isolatePageblockLocked(m: Memmap, zid: number, pfn: number): void {
  const start = pfn & ~(m.pageblockNrPages - 1);
  const mt = m.getPageblockMigratetype(start);
  if (mt === MIGRATE_ISOLATE) return;
  moveFreepagesBlockIsolate(m, zid, start, mt, MIGRATE_ISOLATE);
  m.setPageblockMigratetype(start, MIGRATE_ISOLATE);
  m.zones[m.zoneBase(zid) + Z_NR_ISOLATE_PAGEBLOCK]!++;
}

/**
 * unset_migratetype_isolate(): back to mt; free pages rejoin mt's lists and merge with buddies that
 * isolation kept apart.
 */
export function unsetMigratetypeIsolate(m: Memmap, zid: number, pfn: number, mt: number): void {
  const lk = m.zoneBase(zid) + Z_LOCK;
  spinLock(m.zones, lk);
  const start = pfn & ~(m.pageblockNrPages - 1);
  if (m.getPageblockMigratetype(start) !== MIGRATE_ISOLATE) { spinUnlock(m.zones, lk); return; }
  const free: [number, number][] = [];
  for (let p = start; p < start + m.pageblockNrPages;) {
    const f = m.flags[p]!;
    if (f & PG_buddy) {
      const order = (f >>> PG_ORDER_SHIFT) & 31;
      free.push([p, order]);
      p += 1 << order;
    } else p++;
  }
  // off the ISOLATE lists, retype the block, free again so they merge (__putback_isolated_page)
  for (const [p, order] of free) delPageFromFreeList(m, zid, p, order, MIGRATE_ISOLATE);
  m.setPageblockMigratetype(start, mt);
  for (const [p, order] of free) freeOnePageLocked(m, p, zid, order, mt);
  m.zones[m.zoneBase(zid) + Z_NR_ISOLATE_PAGEBLOCK]!--;
  spinUnlock(m.zones, lk);
}
