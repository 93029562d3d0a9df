// The buddy allocator (mm/page_alloc.c, v6.12.117): free lists per order and migratetype with 6.10+
// freelist hygiene (a free page sits on the list of its pageblock's type), fallback and pageblock
// stealing, per-CPU lists for order 0 and pageblock_order (THP; pcp->high between high_min and
// high_max, as 6.7+), watermarks and lowmem_reserve, the zonelist walk.
//
// Simplified (docs/simplifications.md): one node; no ZONE_HIGHMEM; per-CPU lists hold orders 0 and
// pageblock_order only (6.12 also caches orders 1-3); no highatomic reserves, no watermark boosting, no
// page reporting or shuffling (free-list placement as 6.12: FPI_TO_TAIL, buddy_merge_likely()). Direct
// reclaim frees nothing (no page cache, no swap) but drains every CPU's lists once, as
// __alloc_pages_direct_reclaim() does; compaction and the OOM killer sit behind the slow path's hook
// (mm/oom_kill.ts installs it).

import { atomicFetchAdd, atomicFetchSub } from './atomic';
import { Memmap, freeAreaHead, freeAreaCount, freeAreaTail, pcpBase } from './memmap';
import * as layout from './memmap';
import { migratetypeIsMergeable, zoneName as zoneNameOf, MIGRATETYPE_NAMES } from './mmzone';
import * as mmzoneNs from './mmzone';
import {
  gfpZone,
  gfpMigratetype,
  __GFP_HIGH,
  __GFP_MEMALLOC,
  __GFP_NOMEMALLOC,
  __GFP_COMP,
  __GFP_ZERO,
  __GFP_KSWAPD_RECLAIM,
  __GFP_DIRECT_RECLAIM,
  GFP_USER,
} from './gfp';
import { spinLock, spinUnlock, spinTrylock } from './locking';
import { current, currentGfpContext, PF_MEMALLOC_NOCMA } from './sched';
import { hasBug, releaseAtLeast, variant } from './variants';
import { countVmEvents, vmItem } from './vmstat';
import { vmBugOn, bug } from './debug';

// Numeric constants of leaf modules as module-level bindings: V8 reads an imported binding as a property
// of the other module's exports object at every use (again after every call, atomics included).
const {
  PG_buddy,
  PG_hwpoison,
  PG_head,
  PG_tail,
  PG_pcp,
  PG_ZONE_MASK,
  PG_ORDER_SHIFT,
  PG_ORDER_MASK,
  PG_lru,
  PG_locked,
  PG_movable_ops,
  PG_hole,
  Z_LOCK,
  Z_NR_FREE,
  Z_NR_FREE_CMA,
  Z_MANAGED,
  Z_WMARK_MIN,
  Z_WMARK_LOW,
  Z_WMARK_HIGH,
  Z_LOWMEM_RESERVE,
  Z_NR_RESERVED_HIGHATOMIC,
  Z_PCP_DISABLED,
  Z_START_PFN,
  Z_SPANNED,
  PCP_LOCK,
  PCP_COUNT,
  PCP_HIGH,
  PCP_BATCH,
  PCP_LISTS,
  PCP_TAILS,
  NR_PCP_LISTS,
  PCP_HIGH_MIN,
  PCP_HIGH_MAX,
  PCP_FREE_COUNT,
  PCP_ALLOC_FACTOR,
  Z_FLAGS,
  ZONE_BELOW_HIGH,
  NO_ZONE_HANDLE,
  H_MIN_FREE_KBYTES,
  H_USER_MIN_FREE_KBYTES,
  H_WATERMARK_SCALE_FACTOR,
  H_THP_ENABLED,
  PAGE_SHIFT,
} = layout;
const {
  MIGRATE_CMA,
  MIGRATE_ISOLATE,
  MIGRATE_MOVABLE,
  MIGRATE_PCPTYPES,
  MIGRATE_RECLAIMABLE,
  MIGRATE_UNMOVABLE,
  MIGRATE_HIGHATOMIC,
  MIGRATE_TYPES,
  MAX_NR_ZONES,
  ZONE_NORMAL,
  ZONE_DMA32,
  ZONE_MOVABLE,
} = mmzoneNs;

// alloc_flags (mm/internal.h)
const ALLOC_WMARK_MIN = 0;
const ALLOC_WMARK_LOW = 1;
const ALLOC_WMARK_HIGH = 2;
const ALLOC_WMARK_MASK = 3;
const ALLOC_NO_WATERMARKS = 0x04;
const ALLOC_OOM = 0x08;
const ALLOC_NON_BLOCK = 0x10;
const ALLOC_MIN_RESERVE = 0x20;
const ALLOC_CPUSET = 0x40;
const ALLOC_CMA = 0x80;
const ALLOC_NOFRAGMENT = 0x100;
const ALLOC_HIGHATOMIC = 0x200;
const ALLOC_KSWAPD = 0x800;
const ALLOC_RESERVES = ALLOC_NON_BLOCK | ALLOC_MIN_RESERVE | ALLOC_HIGHATOMIC | ALLOC_OOM;

/** The NULL page. */
const NO_PAGE = -1;

// Exported by name rather than `export const`: uses inside this file then read a local binding, not a
// property of this module's exports object (what tsc emits for `export const`), on the hot paths.
export {
  ALLOC_WMARK_MIN,
  ALLOC_WMARK_LOW,
  ALLOC_WMARK_HIGH,
  ALLOC_WMARK_MASK,
  ALLOC_NO_WATERMARKS,
  ALLOC_OOM,
  ALLOC_NON_BLOCK,
  ALLOC_MIN_RESERVE,
  ALLOC_CPUSET,
  ALLOC_CMA,
  ALLOC_NOFRAGMENT,
  ALLOC_HIGHATOMIC,
  ALLOC_KSWAPD,
  ALLOC_RESERVES,
  NO_PAGE,
};

// fallbacks[] (mm/page_alloc.c): which free lists a migratetype may steal from, in order.
const FALLBACKS: number[][] = [
  [MIGRATE_RECLAIMABLE, MIGRATE_MOVABLE], // UNMOVABLE
  [MIGRATE_RECLAIMABLE, MIGRATE_UNMOVABLE], // MOVABLE
  [MIGRATE_UNMOVABLE, MIGRATE_MOVABLE], // RECLAIMABLE
];

const PGALLOC_BASE = vmItem('pgalloc_dma');
const PGFREE = vmItem('pgfree');
// allocstall_dma and allocstall_dma32 are not kept: /proc/vmstat's other two
const ALLOCSTALL_NORMAL = vmItem('allocstall_normal');
const ALLOCSTALL_MOVABLE = vmItem('allocstall_movable');

// ---------------------------------------------------------------------------------------------
// Free lists (zone->lock held). page->buddy_list is mapping (next) / index (prev).

/** __add_to_free_list() + account_freepages(): list_add() at the head, or list_add_tail() when tail. */
function addToFreeList(m: Memmap, zid: number, pfn: number, order: number, mt: number, tail: boolean): void {
  const h = freeAreaHead(m, zid, order, mt);
  const t = freeAreaTail(m, zid, order, mt);
  const zones = m.zones;
  if (tail) {
    const prev = zones[t]!;
    m.mapping[pfn] = NO_PAGE;
    m.index[pfn] = prev;
    if (prev !== NO_PAGE) m.mapping[prev] = pfn;
    else zones[h] = pfn;
    zones[t] = pfn;
  } else {
    const next = zones[h]!;
    m.mapping[pfn] = next;
    m.index[pfn] = NO_PAGE;
    if (next !== NO_PAGE) m.index[next] = pfn;
    else zones[t] = pfn;
    zones[h] = pfn;
  }
  zones[freeAreaCount(m, zid, order, mt)]!++;
  m.flags[pfn] = (m.flags[pfn]! & PG_ZONE_MASK) | PG_buddy | (order << PG_ORDER_SHIFT);
  accountFreepages(m, zid, 1 << order, mt);
}

/**
 * __del_page_from_free_list() + account_freepages(). The page must be on the list it is taken off
 * (CONFIG_DEBUG_LIST's __list_del_entry_valid(): "list_del corruption"): taking it off another list
 * would leave both lists torn.
 */
export function delPageFromFreeList(m: Memmap, zid: number, pfn: number, order: number, mt: number): void {
  const next = m.mapping[pfn]!;
  const prev = m.index[pfn]!;
  const h = freeAreaHead(m, zid, order, mt);
  if ((prev !== NO_PAGE ? m.mapping[prev] : m.zones[h]) !== pfn || (next !== NO_PAGE && m.index[next] !== pfn)) {
    bug(
      `list_del corruption: pfn ${pfn} is not on the ${zoneNameOf(zid)} order-${order} ${MIGRATETYPE_NAMES[mt]} free list it is taken off (prev ${prev}, next ${next}; pageblock ${MIGRATETYPE_NAMES[m.getPageblockMigratetype(pfn)]})`,
    );
  }
  if (prev !== NO_PAGE) m.mapping[prev] = next;
  else m.zones[h] = next;
  if (next !== NO_PAGE) m.index[next] = prev;
  else m.zones[freeAreaTail(m, zid, order, mt)] = prev;
  m.mapping[pfn] = 0;
  m.index[pfn] = 0;
  m.zones[freeAreaCount(m, zid, order, mt)]!--;
  m.flags[pfn] = m.flags[pfn]! & PG_ZONE_MASK;
  accountFreepages(m, zid, -(1 << order), mt);
}

/** account_freepages(): isolated free pages are not in NR_FREE_PAGES (6.10+). */
function accountFreepages(m: Memmap, zid: number, nr: number, mt: number): void {
  if (mt === MIGRATE_ISOLATE) return;
  const zb = m.zoneBase(zid);
  m.zones[zb + Z_NR_FREE]! += nr;
  if (mt === MIGRATE_CMA) m.zones[zb + Z_NR_FREE_CMA]! += nr;
}

/** move_to_free_list(): list_move_tail(), so the moved blocks are not the next ones handed out. */
function moveToFreeList(m: Memmap, zid: number, pfn: number, order: number, oldMt: number, newMt: number): void {
  delPageFromFreeList(m, zid, pfn, order, oldMt);
  addToFreeList(m, zid, pfn, order, newMt, true);
}

/** page_is_buddy(): free, of this order, and in the same zone. */
function pageIsBuddy(m: Memmap, buddy: number, order: number, zoneBits: number): boolean {
  const f = m.flags[buddy]!;
  return (f & PG_buddy) !== 0 && ((f >>> PG_ORDER_SHIFT) & 31) === order && (f & PG_ZONE_MASK) === zoneBits;
}

/**
 * expand(): split a block of order high down to low; the upper halves go to the head of mt's lists
 * (__add_to_free_list(..., false)), so the next requests take the pages just above this one.
 */
function expand(m: Memmap, zid: number, pfn: number, low: number, high: number, mt: number): void {
  let size = 1 << high;
  while (high > low) {
    high--;
    size >>>= 1;
    addToFreeList(m, zid, pfn + size, high, mt, false);
  }
}

/** __rmqueue_smallest() */
function rmqueueSmallest(m: Memmap, zid: number, order: number, mt: number): number {
  for (let o = order; o <= m.maxOrder; o++) {
    const pfn = m.zones[freeAreaHead(m, zid, o, mt)]!;
    if (pfn === NO_PAGE) continue;
    delPageFromFreeList(m, zid, pfn, o, mt);
    expand(m, zid, pfn, order, o, mt);
    return pfn;
  }
  return NO_PAGE;
}

function freeAreaNrFree(m: Memmap, zid: number, order: number): number {
  let n = 0;
  for (let mt = 0; mt < MIGRATE_TYPES; mt++) n += m.zones[freeAreaCount(m, zid, order, mt)]!;
  return n;
}

function freeAreaEmpty(m: Memmap, zid: number, order: number, mt: number): boolean {
  return m.zones[freeAreaHead(m, zid, order, mt)] === NO_PAGE;
}

/** can_steal_fallback() */
function canStealFallback(m: Memmap, order: number, startMt: number): boolean {
  if (order >= m.pageblockOrder) return true;
  return order >= m.pageblockOrder / 2 || startMt === MIGRATE_RECLAIMABLE || startMt === MIGRATE_UNMOVABLE;
}

/** find_suitable_fallback(); returns [fallback mt or -1, can_steal]. */
function findSuitableFallback(m: Memmap, zid: number, order: number, mt: number): [number, boolean] {
  if (freeAreaNrFree(m, zid, order) === 0) return [-1, false];
  for (const fmt of FALLBACKS[mt]!) {
    if (freeAreaEmpty(m, zid, order, fmt)) continue;
    return [fmt, canStealFallback(m, order, mt)];
  }
  return [-1, false];
}

/**
 * prep_move_freepages_block(): the pageblock holding pfn must lie inside the zone; counts its free and
 * movable (LRU or __PageMovable) pages.
 */
function prepMoveFreepagesBlock(m: Memmap, zid: number, pfn: number): [boolean, number, number, number] {
  const start = pfn & ~(m.pageblockNrPages - 1);
  const end = start + m.pageblockNrPages;
  const zb = m.zoneBase(zid);
  const zStart = m.zones[zb + Z_START_PFN]!;
  if (start < zStart || end > zStart + m.zones[zb + Z_SPANNED]!) return [false, start, 0, 0];
  let free = 0;
  let movable = 0;
  for (let p = start; p < end;) {
    const f = m.flags[p]!;
    if (f & PG_buddy) {
      const n = 1 << ((f >>> PG_ORDER_SHIFT) & 31);
      free += n;
      p += n;
      continue;
    }
    if (f & (PG_lru | PG_movable_ops)) movable++;
    p++;
  }
  return [true, start, free, movable];
}

/** __move_freepages_block(): move every free page in the pageblock to newMt's lists. */
function moveFreepagesBlock(m: Memmap, zid: number, start: number, oldMt: number, newMt: number): number {
  let moved = 0;
  for (let p = start; p < start + m.pageblockNrPages;) {
    const f = m.flags[p]!;
    if (f & PG_buddy) {
      const order = (f >>> PG_ORDER_SHIFT) & 31;
      moveToFreeList(m, zid, p, order, oldMt, newMt);
      p += 1 << order;
      moved += 1 << order;
      continue;
    }
    p++;
  }
  return moved;
}

/**
 * try_to_steal_block() (6.12.117): a block of pageblock_order or more is claimed whole; a smaller one
 * claims its pageblock only when half of it is free or alike, else nothing is taken here.
 */
function tryToStealBlock(
  m: Memmap,
  zid: number,
  pfn: number,
  currentOrder: number,
  order: number,
  startMt: number,
): number {
  const blockMt = m.getPageblockMigratetype(pfn);
  if (blockMt === MIGRATE_HIGHATOMIC) return NO_PAGE;
  if (currentOrder >= m.pageblockOrder) {
    delPageFromFreeList(m, zid, pfn, currentOrder, blockMt);
    // change_pageblock_range()
    for (let p = pfn; p < pfn + (1 << currentOrder); p += m.pageblockNrPages) m.setPageblockMigratetype(p, startMt);
    expand(m, zid, pfn, order, currentOrder, startMt);
    return pfn;
  }
  const [ok, start, free, movable] = prepMoveFreepagesBlock(m, zid, pfn);
  if (!ok) return NO_PAGE;
  let alike: number;
  if (startMt === MIGRATE_MOVABLE) alike = movable;
  else alike = blockMt === MIGRATE_MOVABLE ? m.pageblockNrPages - (free + movable) : 0;
  if (free + alike < 1 << (m.pageblockOrder - 1)) return NO_PAGE;
  moveFreepagesBlock(m, zid, start, blockMt, startMt);
  m.setPageblockMigratetype(start, startMt);
  return rmqueueSmallest(m, zid, order, startMt);
}

/** __rmqueue_claim(): claim a whole pageblock of another type, largest free block first. */
function rmqueueClaim(m: Memmap, zid: number, order: number, startMt: number, allocFlags: number): number {
  const minOrder = order < m.pageblockOrder && allocFlags & ALLOC_NOFRAGMENT ? m.pageblockOrder : order;
  for (let o = m.maxOrder; o >= minOrder; o--) {
    const [fmt, canSteal] = findSuitableFallback(m, zid, o, startMt);
    if (fmt === -1) continue;
    if (!canSteal) break;
    const pfn = tryToStealBlock(m, zid, m.zones[freeAreaHead(m, zid, o, fmt)]!, o, order, startMt);
    if (pfn !== NO_PAGE) return pfn;
  }
  return NO_PAGE;
}

/** __rmqueue_steal(): take the smallest block of another type, leaving its pageblock's type alone. */
function rmqueueSteal(m: Memmap, zid: number, order: number, startMt: number): number {
  for (let o = order; o <= m.maxOrder; o++) {
    const [fmt] = findSuitableFallback(m, zid, o, startMt);
    if (fmt === -1) continue;
    const pfn = m.zones[freeAreaHead(m, zid, o, fmt)]!;
    delPageFromFreeList(m, zid, pfn, o, fmt); // page_del_and_expand()
    expand(m, zid, pfn, order, o, fmt);
    return pfn;
  }
  return NO_PAGE;
}

/**
 * __rmqueue() (6.12.117): CMA first when more than half the zone's free memory is CMA (balancing),
 * then the request's own lists, then CMA, then claim a block of another type, then steal a page.
 * Non-movable requests never get CMA (no ALLOC_CMA).
 */
function rmqueue(m: Memmap, zid: number, order: number, mt: number, allocFlags: number): number {
  const zb = m.zoneBase(zid);
  let pfn: number;
  if (allocFlags & ALLOC_CMA && m.zones[zb + Z_NR_FREE_CMA]! > m.zones[zb + Z_NR_FREE]! / 2) {
    pfn = rmqueueSmallest(m, zid, order, MIGRATE_CMA);
    if (pfn !== NO_PAGE) return pfn;
  }
  pfn = rmqueueSmallest(m, zid, order, mt);
  if (pfn !== NO_PAGE) return pfn;
  if (allocFlags & ALLOC_CMA) {
    pfn = rmqueueSmallest(m, zid, order, MIGRATE_CMA);
    if (pfn !== NO_PAGE) return pfn;
  }
  pfn = rmqueueClaim(m, zid, order, mt, allocFlags);
  if (pfn !== NO_PAGE) return pfn;
  // fragmentation avoidance: the caller retries without ALLOC_NOFRAGMENT before stealing
  if (!(allocFlags & ALLOC_NOFRAGMENT)) pfn = rmqueueSteal(m, zid, order, mt);
  return pfn;
}

// ---------------------------------------------------------------------------------------------
// Freeing

// fpi_t flags (mm/page_alloc.c); FPI_SKIP_REPORT_NOTIFY has nothing to notify (no page reporting)
const FPI_NONE = 0;
const FPI_TO_TAIL = 2;
export { FPI_NONE, FPI_TO_TAIL };

/**
 * buddy_merge_likely(): is the block formed by merging this one with its buddy (pfn & buddyPfn, one
 * order up) itself next to a free buddy? Then the freed block goes to the tail, to stay free until its
 * buddy is freed too. Never at MAX_PAGE_ORDER - 1 and above.
 */
function buddyMergeLikely(m: Memmap, pfn: number, buddyPfn: number, order: number, zoneBits: number): boolean {
  if (order >= m.maxOrder - 1) return false;
  const higher = buddyPfn & pfn;
  const higherBuddy = higher ^ (1 << (order + 1));
  // page_is_buddy() also wants higher_page in the zone: it is this block or its buddy
  if (higherBuddy >= m.nrFrames || (m.flags[higher]! & PG_ZONE_MASK) !== zoneBits) return false;
  return pageIsBuddy(m, higherBuddy, order + 1, zoneBits);
}

/**
 * __free_one_page(): merge with free buddies up to MAX_PAGE_ORDER. Below pageblock_order buddies share
 * the pageblock (and its type); above it, CMA/ISOLATE/HIGHATOMIC blocks never merge with other types,
 * and a mergeable buddy block of another type is converted to ours. The merged block goes to the tail
 * of its list with FPI_TO_TAIL, else where buddy_merge_likely() says (no page_alloc.shuffle: Debian's
 * default leaves shuffling off, so is_shuffle_order() is false).
 */
export function freeOnePageLocked(
  m: Memmap,
  pfn: number,
  zid: number,
  order: number,
  mt: number,
  fpi = FPI_NONE,
): void {
  const zoneBits = m.flags[pfn]! & PG_ZONE_MASK;
  let buddy = 0; // buddy_pfn: the last buddy looked at
  while (order < m.maxOrder) {
    buddy = pfn ^ (1 << order);
    if (buddy >= m.nrFrames || !pageIsBuddy(m, buddy, order, zoneBits)) break;
    let buddyMt = mt;
    if (order >= m.pageblockOrder) {
      buddyMt = m.getPageblockMigratetype(buddy);
      if (mt !== buddyMt && (!migratetypeIsMergeable(mt) || !migratetypeIsMergeable(buddyMt))) break;
    }
    delPageFromFreeList(m, zid, buddy, order, buddyMt);
    if (buddyMt !== mt) {
      for (let p = buddy; p < buddy + (1 << order); p += m.pageblockNrPages) m.setPageblockMigratetype(p, mt);
    }
    pfn &= buddy;
    order++;
  }
  const toTail = (fpi & FPI_TO_TAIL) !== 0 || buddyMergeLikely(m, pfn, buddy, order, zoneBits);
  addToFreeList(m, zid, pfn, order, mt, toTail);
}

/**
 * split_large_buddy() (zone lock held; the block is off every list): a block larger than a pageblock
 * is freed a pageblock at a time, each onto its own pageblock's type, so CMA and ISOLATE pageblocks
 * never end up inside a free block of another type.
 */
function splitLargeBuddy(m: Memmap, zid: number, pfn: number, order: number, fpi: number): void {
  if (order <= m.pageblockOrder) {
    freeOnePageLocked(m, pfn, zid, order, m.getPageblockMigratetype(pfn), fpi);
    return;
  }
  const end = pfn + (1 << order);
  for (let p = pfn; p < end; p += m.pageblockNrPages)
    freeOnePageLocked(m, p, zid, m.pageblockOrder, m.getPageblockMigratetype(p), fpi);
}

/** free_one_page(): take the zone lock and merge (split_large_buddy() for blocks above a pageblock). */
function freeOnePage(m: Memmap, pfn: number, zid: number, order: number, fpi: number): void {
  const lk = m.zoneBase(zid) + Z_LOCK;
  spinLock(m.zones, lk);
  splitLargeBuddy(m, zid, pfn, order, fpi);
  spinUnlock(m.zones, lk);
}

/**
 * find_large_buddy(): the first pfn of a free block of more than a pageblock that holds the pageblock
 * at start, or start itself (zone lock held).
 */
function findLargeBuddy(m: Memmap, start: number): number {
  let pfn = start;
  for (let order = 0; !(m.flags[pfn]! & PG_buddy);) {
    if (++order > m.maxOrder) return start;
    pfn &= ~((1 << order) - 1);
  }
  return pfn + (1 << ((m.flags[pfn]! >>> PG_ORDER_SHIFT) & 31)) > start ? pfn : start;
}

/**
 * move_freepages_block_isolate() (6.12, zone lock held): the pageblock at start becomes type mt with
 * every free page in it on mt's lists. A free block of more than a pageblock that holds it - starting
 * here or before - is taken off its list and freed again a pageblock at a time (split_large_buddy()), so
 * that no free block spans pageblocks of two types: otherwise allocating from it, or undoing the
 * isolation of one pageblock while its neighbour is still isolated, puts pages on the wrong list.
 */
export function moveFreepagesBlockIsolate(m: Memmap, zid: number, start: number, mt: number): void {
  const big = findLargeBuddy(m, start);
  const f = m.flags[big]!;
  const order = (f >>> PG_ORDER_SHIFT) & 31;
  if (big !== start || (f & PG_buddy && order > m.pageblockOrder)) {
    delPageFromFreeList(m, zid, big, order, m.getPageblockMigratetype(big));
    m.setPageblockMigratetype(start, mt);
    splitLargeBuddy(m, zid, big, order, FPI_NONE);
    return;
  }
  moveFreepagesBlock(m, zid, start, m.getPageblockMigratetype(start), mt);
  m.setPageblockMigratetype(start, mt);
}

/**
 * free_pages_prepare(): the frames must be unused (no mappings, no pins); clears compound and page
 * state, keeping the zone bits.
 */
function freePagesPrepare(m: Memmap, pfn: number, order: number): void {
  const n = 1 << order;
  for (let p = pfn; p < pfn + n; p++) {
    if (m.mapcount[p] !== 0) bug(`bad page state: pfn ${p} freed while mapped (mapcount ${m.mapcount[p]})`);
    if (p !== pfn && m.refcount[p] !== 0) bug(`bad page state: tail pfn ${p} has refcount ${m.refcount[p]}`);
    const f = m.flags[p]!;
    // free_page_is_bad(): PAGE_FLAGS_CHECK_AT_FREE (a folio freed locked, or still on an LRU list)
    if (f & (PG_locked | PG_lru)) bug(`bad page state: pfn ${p} freed with flags ${badFlags(f)}`);
    m.flags[p] = f & PG_ZONE_MASK;
    m.mapping[p] = 0;
    m.index[p] = 0;
  }
  countVmEvents(m, PGFREE, n);
}

/** The PAGE_FLAGS_CHECK_AT_FREE bits pinlab has, as dump_page() names them. */
function badFlags(f: number): string {
  return [f & PG_locked ? 'locked' : '', f & PG_lru ? 'lru' : ''].filter(Boolean).join('|');
}

/** free_unref_page(): order-0 pages go to this CPU's list; isolated ones straight to the buddy. */
function freeUnrefPage(m: Memmap, pfn: number, zid: number): void {
  let mt = m.getPageblockMigratetype(pfn);
  if (mt >= MIGRATE_PCPTYPES) {
    if (mt === MIGRATE_ISOLATE) {
      freeOnePage(m, pfn, zid, 0, FPI_NONE);
      return;
    }
    mt = MIGRATE_MOVABLE; // CMA and HIGHATOMIC pages share the movable list
  }
  const zb = m.zoneBase(zid);
  const pb = pcpBase(m, current().cpu, zid);
  const pcp = m.pcp;
  // a plain read of zone_pcp_disable()'s depth (Atomics.load is a call in V8): checked without the pcp lock either way
  if (m.zones[zb + Z_PCP_DISABLED]! > 0 || !spinTrylock(pcp, pb + PCP_LOCK)) {
    freeOnePage(m, pfn, zid, 0, FPI_NONE);
    return;
  }
  // free_unref_page_commit(): onto the list's head (inline here: the hot path)
  pcp[pb + PCP_ALLOC_FACTOR]! >>= 1;
  const h = pb + PCP_LISTS + mt;
  const next = pcp[h]!;
  m.mapping[pfn] = next;
  m.index[pfn] = NO_PAGE;
  if (next !== NO_PAGE) m.index[next] = pfn;
  else pcp[pb + PCP_TAILS + mt] = pfn;
  pcp[h] = pfn;
  m.flags[pfn] = m.flags[pfn]! | PG_pcp;
  const count = ++pcp[pb + PCP_COUNT]!;
  if (pcp[pb + PCP_FREE_COUNT]! < pcp[pb + PCP_BATCH]! << PCP_BATCH_SCALE_MAX) pcp[pb + PCP_FREE_COUNT]!++;
  // below a pcp->high already in [high_min, high_max], outside ZONE_BELOW_HIGH, nr_pcp_high() changes
  // nothing and returns pcp->high: the call is skipped
  const high0 = pcp[pb + PCP_HIGH]!;
  if (
    count >= high0 ||
    m.zones[zb + Z_FLAGS]! & ZONE_BELOW_HIGH ||
    high0 < pcp[pb + PCP_HIGH_MIN]! ||
    high0 > pcp[pb + PCP_HIGH_MAX]!
  )
    freeUnrefPageCommitHigh(m, zid, zb, pb, count, mt);
  spinUnlock(pcp, pb + PCP_LOCK);
}

const PCP_BATCH_SCALE_MAX = 5; // CONFIG_PCP_BATCH_SCALE_MAX

/**
 * Whether pageblock_order (THP-sized) blocks go through the per-CPU lists: pcp_allowed_order() since
 * 44042b449872 (v5.13).
 */
function pcpThp(): boolean {
  return releaseAtLeast(variant(), 5, 13);
}

/**
 * order_to_pindex() for a THP: NR_LOWORDER_PCP_LISTS + movable, one list for MIGRATE_MOVABLE and one
 * for the others (bf14ed81f571, v6.10). R16: 5d0a661d808f's (v6.0) single THP list, whatever the
 * migratetype, so a non-movable request can take a CMA THP someone freed.
 */
function thpPindex(mt: number): number {
  if (hasBug('R16')) return MIGRATE_PCPTYPES;
  return MIGRATE_PCPTYPES + (mt === MIGRATE_MOVABLE ? 1 : 0);
}

/**
 * free_unref_page() + free_unref_page_commit() for a pageblock_order block: onto the THP list of its
 * pageblock's type (CMA and HIGHATOMIC count as movable, ISOLATE straight to the buddy). Never
 * free_high (that is orders 1-3); past nr_pcp_high() the bulk free starts at this list.
 */
function freeUnrefPageThp(m: Memmap, pfn: number, zid: number, order: number): void {
  let mt = m.getPageblockMigratetype(pfn);
  if (mt >= MIGRATE_PCPTYPES) {
    if (mt === MIGRATE_ISOLATE) {
      freeOnePage(m, pfn, zid, order, FPI_NONE);
      return;
    }
    mt = MIGRATE_MOVABLE;
  }
  const zb = m.zoneBase(zid);
  const pb = pcpBase(m, current().cpu, zid);
  const pcp = m.pcp;
  if (m.zones[zb + Z_PCP_DISABLED]! > 0 || !spinTrylock(pcp, pb + PCP_LOCK)) {
    freeOnePage(m, pfn, zid, order, FPI_NONE);
    return;
  }
  pcp[pb + PCP_ALLOC_FACTOR]! >>= 1;
  const pi = thpPindex(mt);
  const h = pb + PCP_LISTS + pi;
  const next = pcp[h]!;
  m.mapping[pfn] = next;
  m.index[pfn] = NO_PAGE;
  if (next !== NO_PAGE) m.index[next] = pfn;
  else pcp[pb + PCP_TAILS + pi] = pfn;
  pcp[h] = pfn;
  m.flags[pfn] = m.flags[pfn]! | PG_pcp | (order << PG_ORDER_SHIFT); // the order: what the list says
  const count = (pcp[pb + PCP_COUNT]! += 1 << order);
  if (pcp[pb + PCP_FREE_COUNT]! < pcp[pb + PCP_BATCH]! << PCP_BATCH_SCALE_MAX) pcp[pb + PCP_FREE_COUNT]! += 1 << order;
  freeUnrefPageCommitHigh(m, zid, zb, pb, count, pi);
  spinUnlock(pcp, pb + PCP_LOCK);
}

/**
 * free_unref_page_commit()'s tail (pcp lock held): past nr_pcp_high() the coldest nr_pcp_free() pages
 * go back to the buddy, from list pi on. Orders 0 and pageblock_order only, so never free_high.
 */
function freeUnrefPageCommitHigh(m: Memmap, zid: number, zb: number, pb: number, count: number, pi: number): void {
  const batch = m.pcp[pb + PCP_BATCH]!;
  const high = nrPcpHigh(m, zid, pb, batch);
  if (count >= high) {
    freePcppagesBulk(m, zid, pb, nrPcpFree(m, pb, batch, high), pi);
    if (
      m.zones[zb + Z_FLAGS]! & ZONE_BELOW_HIGH &&
      zoneWatermarkOk(m, zid, 0, m.zones[zb + Z_WMARK_HIGH]!, ZONE_MOVABLE, 0, m.zones[zb + Z_NR_FREE]!)
    )
      m.zones[zb + Z_FLAGS]! &= ~ZONE_BELOW_HIGH;
  }
}

/**
 * nr_pcp_high(): clamp pcp->high into [high_min, high_max]; shrink it by the pages freed in a row while
 * the zone is below its high watermark (ZONE_BELOW_HIGH), grow it to hold them otherwise. Returns the
 * count at which to free. (No ZONE_RECLAIM_ACTIVE: pinlab has no kswapd.)
 */
export function nrPcpHigh(m: Memmap, zid: number, pb: number, batch: number): number {
  const pcp = m.pcp;
  const highMin = pcp[pb + PCP_HIGH_MIN]!;
  const highMax = pcp[pb + PCP_HIGH_MAX]!;
  let high = Math.min(Math.max(pcp[pb + PCP_HIGH]!, highMin), highMax);
  pcp[pb + PCP_HIGH] = high;
  if (!high) return 0;
  if (highMin === highMax) return high;
  if (m.zones[m.zoneBase(zid) + Z_FLAGS]! & ZONE_BELOW_HIGH) {
    const freeCount = Math.max(pcp[pb + PCP_FREE_COUNT]!, batch);
    pcp[pb + PCP_HIGH] = Math.max(high - freeCount, highMin);
    high = Math.max(pcp[pb + PCP_COUNT]!, highMin);
  } else if (pcp[pb + PCP_COUNT]! >= high) {
    const needHigh = pcp[pb + PCP_FREE_COUNT]! + batch;
    if (high < needHigh) pcp[pb + PCP_HIGH] = Math.min(Math.max(needHigh, highMin), highMax);
  }
  return high;
}

/** nr_pcp_free(): free the pages freed in a row, at least batch, leaving at least batch on the list. */
export function nrPcpFree(m: Memmap, pb: number, batch: number, high: number): number {
  if (high < batch) return 1; // pcp disabled or the boot pageset
  return Math.min(Math.max(m.pcp[pb + PCP_FREE_COUNT]!, batch), high - batch); // clamp_t()
}

/**
 * nr_pcp_alloc(): for order 0 the refill doubles (alloc_factor) while allocations come without frees;
 * pcp->high grows by the batch unless the zone is below its high watermark. A THP refill is
 * batch >> order blocks, at least 2 (1 on a batch of 1).
 */
export function nrPcpAlloc(m: Memmap, zid: number, pb: number, order = 0): number {
  const pcp = m.pcp;
  const baseBatch = pcp[pb + PCP_BATCH]!;
  const highMin = pcp[pb + PCP_HIGH_MIN]!;
  const highMax = pcp[pb + PCP_HIGH_MAX]!;
  let high = Math.min(Math.max(pcp[pb + PCP_HIGH]!, highMin), highMax);
  pcp[pb + PCP_HIGH] = high;
  if (high < baseBatch) return 1;
  let batch = order ? baseBatch : baseBatch << pcp[pb + PCP_ALLOC_FACTOR]!;
  if (highMin !== highMax && !(m.zones[m.zoneBase(zid) + Z_FLAGS]! & ZONE_BELOW_HIGH)) {
    high = Math.min(high + batch, highMax);
    pcp[pb + PCP_HIGH] = high;
  }
  if (!order) {
    const maxNrAlloc = Math.max(high - pcp[pb + PCP_COUNT]! - baseBatch, baseBatch);
    if (batch <= maxNrAlloc && pcp[pb + PCP_ALLOC_FACTOR]! < PCP_BATCH_SCALE_MAX) pcp[pb + PCP_ALLOC_FACTOR]!++;
    batch = Math.min(batch, maxNrAlloc);
  }
  return batch > 1 ? Math.max(batch >> order, 2) : batch;
}

/**
 * decay_pcp_high() (refresh_cpu_vm_stats(), every second on the kernel): lower pcp->high by an eighth
 * toward high_min and free what lies above it, a batch at a time. Returns whether more remains to do.
 */
export function decayPcpHigh(m: Memmap, zid: number, cpu: number): boolean {
  const pb = pcpBase(m, cpu, zid);
  const pcp = m.pcp;
  const highMin = pcp[pb + PCP_HIGH_MIN]!;
  const batch = pcp[pb + PCP_BATCH]!;
  let todo = false;
  const high = pcp[pb + PCP_HIGH]!;
  if (high > highMin) {
    pcp[pb + PCP_HIGH] = Math.max(pcp[pb + PCP_COUNT]! - (batch << PCP_BATCH_SCALE_MAX), high - (high >> 3), highMin);
    if (pcp[pb + PCP_HIGH]! > highMin) todo = true;
  }
  let toDrain = pcp[pb + PCP_COUNT]! - pcp[pb + PCP_HIGH]!;
  while (toDrain > 0) {
    const n = Math.min(toDrain, batch);
    spinLock(pcp, pb + PCP_LOCK);
    freePcppagesBulk(m, zid, pb, n, 0);
    spinUnlock(pcp, pb + PCP_LOCK);
    todo = true;
    toDrain -= n;
  }
  return todo;
}

/**
 * Take the first page off per-CPU list pi (list_first_entry() + list_del()); pcp->count drops by its
 * size (order 0, or the order a THP list's entry carries in its flags).
 */
function pcpPop(m: Memmap, pb: number, pi: number): number {
  const pcp = m.pcp;
  const h = pb + PCP_LISTS + pi;
  const pfn = pcp[h]!;
  if (pfn === NO_PAGE) return NO_PAGE;
  const next = m.mapping[pfn]!;
  pcp[h] = next;
  if (next !== NO_PAGE) m.index[next] = NO_PAGE;
  else pcp[pb + PCP_TAILS + pi] = NO_PAGE;
  m.mapping[pfn] = 0;
  m.index[pfn] = 0;
  const f = m.flags[pfn]!;
  m.flags[pfn] = f & ~(PG_pcp | PG_ORDER_MASK);
  pcp[pb + PCP_COUNT]! -= 1 << ((f & PG_ORDER_MASK) >>> PG_ORDER_SHIFT);
  return pfn;
}

/** Take the last (coldest) page off a per-CPU list: list_last_entry() + list_del(). Returns it; its order in flags. */
function pcpPopTail(m: Memmap, pb: number, pi: number): number {
  const pcp = m.pcp;
  const t = pb + PCP_TAILS + pi;
  const pfn = pcp[t]!;
  const prev = m.index[pfn]!;
  pcp[t] = prev;
  if (prev !== NO_PAGE) m.mapping[prev] = NO_PAGE;
  else pcp[pb + PCP_LISTS + pi] = NO_PAGE;
  m.mapping[pfn] = 0;
  m.index[pfn] = 0;
  return pfn;
}

/**
 * free_pcppages_bulk() (pcp lock held): return count pages to the buddy (FPI_NONE), the coldest of a
 * list first, emptying one list before the next; the lists in turn from pindex (the list just freed
 * to, 0 for a drain), the order-0 lists then the THP ones. A THP counts 1 << order against count.
 */
function freePcppagesBulk(m: Memmap, zid: number, pb: number, count: number, pindex: number): void {
  const lk = m.zoneBase(zid) + Z_LOCK;
  const pcp = m.pcp;
  count = Math.min(count, pcp[pb + PCP_COUNT]!);
  spinLock(m.zones, lk);
  let pi = pindex;
  while (count > 0) {
    while (pcp[pb + PCP_LISTS + pi] === NO_PAGE) if (++pi === NR_PCP_LISTS) pi = 0; // round robin
    do {
      const pfn = pcpPopTail(m, pb, pi);
      const f = m.flags[pfn]!;
      const order = (f & PG_ORDER_MASK) >>> PG_ORDER_SHIFT;
      m.flags[pfn] = f & ~(PG_pcp | PG_ORDER_MASK);
      count -= 1 << order;
      pcp[pb + PCP_COUNT]! -= 1 << order;
      freeOnePageLocked(m, pfn, zid, order, m.getPageblockMigratetype(pfn), FPI_NONE);
    } while (count > 0 && pcp[pb + PCP_LISTS + pi] !== NO_PAGE);
  }
  spinUnlock(m.zones, lk);
}

/** drain_pages_zone() for one CPU: empty its lists (order 0 and THP) for zone zid into the buddy. */
function drainPagesZone(m: Memmap, cpu: number, zid: number): void {
  const pb = pcpBase(m, cpu, zid);
  spinLock(m.pcp, pb + PCP_LOCK);
  freePcppagesBulk(m, zid, pb, m.pcp[pb + PCP_COUNT]!, 0);
  spinUnlock(m.pcp, pb + PCP_LOCK);
}

/** drain_all_pages(zone): every CPU's list for the zone (every zone when zid < 0). */
export function drainAllPages(m: Memmap, zid = -1): void {
  for (let z = 0; z < m.nrZones; z++) {
    if (zid >= 0 && z !== zid) continue;
    for (let cpu = 0; cpu < m.nrCpus; cpu++) drainPagesZone(m, cpu, z);
  }
  countVmEvents(m, vmItem('pcp_drain_all'), 1);
}

/** zone_pcp_disable(): no per-CPU caching in this zone until zone_pcp_enable() (used by offlining). */
export function zonePcpDisable(m: Memmap, zid: number): void {
  atomicFetchAdd(m.zones, m.zoneBase(zid) + Z_PCP_DISABLED, 1);
  drainAllPages(m, zid);
}

export function zonePcpEnable(m: Memmap, zid: number): void {
  const v = atomicFetchSub(m.zones, m.zoneBase(zid) + Z_PCP_DISABLED, 1);
  vmBugOn(v <= 0, 'zone_pcp_enable without disable');
}

/** pcp pages per zone (all CPUs) — for accounting checks. */
export function zonePcpCount(m: Memmap, zid: number): number {
  let n = 0;
  for (let cpu = 0; cpu < m.nrCpus; cpu++) n += m.pcp[pcpBase(m, cpu, zid) + PCP_COUNT]!;
  return n;
}

/**
 * __free_pages(): drop a reference; the last one frees the block. The caller passes the order it
 * allocated with (or the folio order of a compound page).
 */
export function freePages(m: Memmap, pfn: number, order: number): void {
  const rc = atomicFetchSub(m.refcount, pfn, 1);
  if (rc <= 0) bug(`__free_pages: pfn ${pfn} refcount was ${rc}`);
  if (rc === 1) freeThePage(m, pfn, order);
}

/** free_the_page(): refcount already 0. */
export function freeThePage(m: Memmap, pfn: number, order: number): void {
  // free_pages_prepare(): "Do not let hwpoison pages hit pcplists/buddy": a poisoned small page stays out
  // for good, before anything looks at its zone (the block may have gone offline meanwhile: offlining
  // passes a poisoned page, in use or not)
  if (order === 0 && m.flags[pfn]! & PG_hwpoison) {
    m.flags[pfn] = m.flags[pfn]! & (PG_ZONE_MASK | PG_hwpoison);
    m.mapping[pfn] = 0;
    m.index[pfn] = 0;
    return;
  }
  const zid = m.pageZone(pfn);
  if (zid === NO_ZONE_HANDLE) bug(`freeing pfn ${pfn} of offline memory`);
  freePagesPrepare(m, pfn, order);
  if (order === 0) freeUnrefPage(m, pfn, zid);
  else if (order === m.pageblockOrder && pcpThp()) freeUnrefPageThp(m, pfn, zid, order);
  else freeOnePage(m, pfn, zid, order, FPI_NONE);
}

/**
 * __free_pages_core(): hand boot or hot-added memory to the buddy (memblock_free_all, generic_online_page).
 * Frames must be reserved and unused; the zone's managed count grows by the block. __free_pages_ok()
 * with FPI_TO_TAIL: each block goes behind the ones freed before it, so after boot the lowest pfns
 * of a zone are handed out first.
 */
function freePagesCore(m: Memmap, pfn: number, order: number, fpi: number): void {
  const n = 1 << order;
  const zid = m.pageZone(pfn);
  if (zid === NO_ZONE_HANDLE) bug(`__free_pages_core: pfn ${pfn} has no zone`);
  for (let p = pfn; p < pfn + n; p++) {
    if ((m.flags[p]! & PG_hole) !== 0) bug(`__free_pages_core: pfn ${p} is a hole`);
    m.flags[p] = m.flags[p]! & PG_ZONE_MASK;
    m.refcount[p] = 0;
  }
  atomicFetchAdd(m.zones, m.zoneBase(zid) + Z_MANAGED, n);
  freeOnePage(m, pfn, zid, order, fpi);
}

// ---------------------------------------------------------------------------------------------
// Watermarks

/** __zone_watermark_unusable_free() */
function zoneWatermarkUnusableFree(m: Memmap, zb: number, order: number, allocFlags: number): number {
  let unusable = (1 << order) - 1;
  if (!(allocFlags & ALLOC_RESERVES)) unusable += m.zones[zb + Z_NR_RESERVED_HIGHATOMIC]!;
  if (!(allocFlags & ALLOC_CMA)) unusable += m.zones[zb + Z_NR_FREE_CMA]!;
  return unusable;
}

/** __zone_watermark_ok() */
function zoneWatermarkOk(
  m: Memmap,
  zid: number,
  order: number,
  mark: number,
  highestZoneidx: number,
  allocFlags: number,
  freePages: number,
): boolean {
  const zb = m.zoneBase(zid);
  let min = mark;
  freePages -= zoneWatermarkUnusableFree(m, zb, order, allocFlags);
  if (allocFlags & ALLOC_RESERVES) {
    if (allocFlags & ALLOC_MIN_RESERVE) {
      min -= Math.floor(min / 2);
      if (allocFlags & ALLOC_NON_BLOCK) min -= Math.floor(min / 4);
    }
    if (allocFlags & ALLOC_OOM) min -= Math.floor(min / 2);
  }
  if (freePages <= min + m.zones[zb + Z_LOWMEM_RESERVE + highestZoneidx]!) return false;
  if (!order) return true;
  for (let o = order; o <= m.maxOrder; o++) {
    for (let mt = 0; mt < MIGRATE_PCPTYPES; mt++) if (!freeAreaEmpty(m, zid, o, mt)) return true;
    if (allocFlags & ALLOC_CMA && !freeAreaEmpty(m, zid, o, MIGRATE_CMA)) return true;
    if (allocFlags & (ALLOC_HIGHATOMIC | ALLOC_OOM) && !freeAreaEmpty(m, zid, o, MIGRATE_HIGHATOMIC)) return true;
  }
  return false;
}

/** zone_watermark_fast() */
function zoneWatermarkFast(
  m: Memmap,
  zid: number,
  order: number,
  mark: number,
  highestZoneidx: number,
  allocFlags: number,
): boolean {
  const zb = m.zoneBase(zid);
  const free = m.zones[zb + Z_NR_FREE]!;
  if (!order) {
    const reserved = zoneWatermarkUnusableFree(m, zb, 0, allocFlags);
    const usable = free - Math.min(free, reserved);
    if (usable > mark + m.zones[zb + Z_LOWMEM_RESERVE + highestZoneidx]!) return true;
  }
  return zoneWatermarkOk(m, zid, order, mark, highestZoneidx, allocFlags, free);
}

function wmarkPages(m: Memmap, zid: number, allocFlags: number): number {
  const zb = m.zoneBase(zid);
  switch (allocFlags & ALLOC_WMARK_MASK) {
    case ALLOC_WMARK_MIN:
      return m.zones[zb + Z_WMARK_MIN]!;
    case ALLOC_WMARK_LOW:
      return m.zones[zb + Z_WMARK_LOW]!;
    default:
      return m.zones[zb + Z_WMARK_HIGH]!;
  }
}

// ---------------------------------------------------------------------------------------------
// Allocation

/**
 * rmqueue_bulk() of count blocks of this order (__rmqueue(), mt and allocFlags) onto per-CPU list pi;
 * returns how many it added. Each goes to the list's tail (list_add_tail()), so the list holds
 * expand()'s pages in pfn order and hands out the lowest first.
 */
function rmqueueBulk(
  m: Memmap,
  zid: number,
  pb: number,
  count: number,
  order: number,
  mt: number,
  pi: number,
  allocFlags: number,
): number {
  const lk = m.zoneBase(zid) + Z_LOCK;
  const pcp = m.pcp;
  const h = pb + PCP_LISTS + pi;
  const t = pb + PCP_TAILS + pi;
  const mark = PG_pcp | (order << PG_ORDER_SHIFT);
  spinLock(m.zones, lk);
  let n = 0;
  for (; n < count; n++) {
    const pfn = rmqueue(m, zid, order, mt, allocFlags);
    if (pfn === NO_PAGE) break;
    const prev = pcp[t]!;
    m.mapping[pfn] = NO_PAGE;
    m.index[pfn] = prev;
    if (prev !== NO_PAGE) m.mapping[prev] = pfn;
    else pcp[h] = pfn;
    pcp[t] = pfn;
    m.flags[pfn] = m.flags[pfn]! | mark;
  }
  pcp[pb + PCP_COUNT]! += n << order;
  spinUnlock(m.zones, lk);
  return n;
}

/**
 * rmqueue_pcplist(): order 0 from the migratetype's list, a THP from its THP list (order_to_pindex());
 * an empty list is refilled by rmqueue_bulk() first.
 */
function rmqueuePcplist(m: Memmap, zid: number, order: number, mt: number, allocFlags: number): number {
  const zb = m.zoneBase(zid);
  if (m.zones[zb + Z_PCP_DISABLED]! > 0) return NO_PAGE; // a plain read, as in freeUnrefPage()
  const pb = pcpBase(m, current().cpu, zid);
  const pcp = m.pcp;
  if (!spinTrylock(pcp, pb + PCP_LOCK)) return NO_PAGE;
  pcp[pb + PCP_FREE_COUNT]! >>= 1;
  const pi = order ? thpPindex(mt) : mt;
  let pfn = pcpPop(m, pb, pi);
  if (pfn === NO_PAGE && rmqueueBulk(m, zid, pb, nrPcpAlloc(m, zid, pb, order), order, mt, pi, allocFlags) > 0)
    pfn = pcpPop(m, pb, pi);
  spinUnlock(pcp, pb + PCP_LOCK);
  return pfn;
}

/**
 * rmqueue(): order 0 and pageblock_order (pcp_allowed_order(), v5.13+) through the per-CPU lists,
 * else the buddy under the zone lock. The movable list may hold CMA pages, so an order-0 movable
 * request without ALLOC_CMA (v5.12's PF_MEMALLOC_NOCMA) skips it; the THP lists never check.
 */
function rmqueueZone(m: Memmap, zid: number, order: number, mt: number, allocFlags: number): number {
  if (order === 0) {
    if (allocFlags & ALLOC_CMA || mt !== MIGRATE_MOVABLE) {
      const pfn = rmqueuePcplist(m, zid, 0, mt, allocFlags);
      if (pfn !== NO_PAGE) return pfn;
    }
  } else if (order === m.pageblockOrder && pcpThp()) {
    const pfn = rmqueuePcplist(m, zid, order, mt, allocFlags);
    if (pfn !== NO_PAGE) return pfn;
  }
  const lk = m.zoneBase(zid) + Z_LOCK;
  spinLock(m.zones, lk);
  const pfn = rmqueue(m, zid, order, mt, allocFlags);
  spinUnlock(m.zones, lk);
  return pfn;
}

/**
 * prep_new_page(): refcount 1, compound metadata, optional zeroing. check_new_page() first: a frame
 * someone still references or maps was freed early ("bad page state"), and handing it out again
 * would give two owners one frame.
 */
function prepNewPage(m: Memmap, pfn: number, order: number, gfp: number): void {
  const n = 1 << order;
  // check_new_pages() (CONFIG_DEBUG_VM): every page handed out has no references, no mapping and no
  // flags but its zone's (PAGE_FLAGS_CHECK_AT_PREP): a free page that kept state from its last user
  for (let p = pfn; p < pfn + n; p++) {
    if (m.refcount[p] !== 0 || m.mapcount[p] !== 0 || m.mapping[p] !== 0 || (m.flags[p]! & ~PG_ZONE_MASK) !== 0) {
      bug(
        `bad page state: pfn ${p} allocated with refcount ${m.refcount[p]} mapcount ${m.mapcount[p]} mapping ${m.mapping[p]} flags 0x${(m.flags[p]! & ~PG_ZONE_MASK).toString(16)} (check_new_page)`,
      );
    }
  }
  m.refcount[pfn] = 1;
  if (gfp & __GFP_ZERO) m.content.fill(0, pfn, pfn + n);
  if (order > 0 && gfp & __GFP_COMP) {
    const ob = order << PG_ORDER_SHIFT;
    m.flags[pfn] = (m.flags[pfn]! & PG_ZONE_MASK) | PG_head | ob;
    m.mapping[pfn + 1] = 0; // prep_compound_head(): _pincount
    for (let p = pfn + 1; p < pfn + n; p++) m.flags[p] = (m.flags[p]! & PG_ZONE_MASK) | PG_tail | ob;
  }
}

/** alloc_flags_nofragment(): avoid fragmenting ZONE_NORMAL while ZONE_DMA32 could serve the request. */
function allocFlagsNofragment(m: Memmap, zid: number): number {
  if (zid !== ZONE_NORMAL) return 0;
  if (m.zones[m.zoneBase(ZONE_DMA32) + Z_MANAGED]! === 0) return 0;
  return ALLOC_NOFRAGMENT;
}

/** get_page_from_freelist(): walk the zonelist from highestZoneidx down. */
function getPageFromFreelist(
  m: Memmap,
  gfp: number,
  order: number,
  allocFlags: number,
  highestZoneidx: number,
): number {
  const mt = gfpMigratetype(gfp);
  if (m.nrNodes > 1) return getPageFromZonelist(m, gfp, order, allocFlags, highestZoneidx, mt);
  for (;;) {
    for (let zid = highestZoneidx; zid >= 0; zid--) {
      const pfn = zoneTryAlloc(m, zid, zid, gfp, order, allocFlags, highestZoneidx, mt);
      if (pfn !== NO_PAGE) return pfn;
    }
    // It's possible on a UMA machine to get through all zones that are fragmented: retry without.
    if (!(allocFlags & ALLOC_NOFRAGMENT)) return NO_PAGE;
    allocFlags &= ~ALLOC_NOFRAGMENT;
  }
}

/**
 * One zone of get_page_from_freelist()'s zonelist walk: skip it if it manages nothing or is below its
 * watermark, else rmqueue() and prep_new_page(). zid is the zone record, zoneType its zone index
 * (the PGALLOC_* event). NO_PAGE when the zone gave nothing.
 */
function zoneTryAlloc(
  m: Memmap,
  zid: number,
  zoneType: number,
  gfp: number,
  order: number,
  allocFlags: number,
  highestZoneidx: number,
  mt: number,
): number {
  const zb = m.zoneBase(zid);
  if (m.zones[zb + Z_MANAGED]! === 0) return NO_PAGE;
  // above the high watermark nothing more to check; below it, ZONE_BELOW_HIGH shrinks pcp->high
  let ok = false;
  if (!(m.zones[zb + Z_FLAGS]! & ZONE_BELOW_HIGH)) {
    ok = zoneWatermarkFast(m, zid, order, m.zones[zb + Z_WMARK_HIGH]!, highestZoneidx, allocFlags);
    if (!ok) m.zones[zb + Z_FLAGS]! |= ZONE_BELOW_HIGH;
  }
  if (!ok && !(allocFlags & ALLOC_NO_WATERMARKS)) {
    const mark = wmarkPages(m, zid, allocFlags);
    if (!zoneWatermarkFast(m, zid, order, mark, highestZoneidx, allocFlags)) return NO_PAGE;
  }
  const pfn = rmqueueZone(m, zid, order, mt, allocFlags);
  if (pfn !== NO_PAGE) {
    prepNewPage(m, pfn, order, gfp);
    countVmEvents(m, PGALLOC_BASE + zoneType, 1 << order);
  }
  return pfn;
}

/**
 * build_zonelists() (ZONELIST_FALLBACK, node order): the node's own zones high to low, then the other
 * nodes' by find_next_best_node(): all fake nodes of one physical node are at LOCAL_DISTANCE, so the
 * "n < node" penalty orders them node+1, ..., then 0, ... (node_load[] balancing is not modelled).
 */
export function zonelistNodes(m: Memmap, nid: number): number[] {
  const order: number[] = [];
  for (let k = 0; k < m.nrNodes; k++) order.push((nid + k) % m.nrNodes);
  return order;
}

/** numa_node_id(): the CPU's node (CPUs spread round-robin over the nodes, numa_init_array()'s way). */
export function cpuToNode(m: Memmap, cpu: number): number {
  return cpu % m.nrNodes;
}

/** get_page_from_freelist() over a NUMA zonelist: the local node first, then the others, each high to low. */
function getPageFromZonelist(
  m: Memmap,
  gfp: number,
  order: number,
  allocFlags: number,
  highestZoneidx: number,
  mt: number,
): number {
  const nodes = zonelistNodes(m, cpuToNode(m, current().cpu));
  for (;;) {
    for (const nid of nodes) {
      for (let z = highestZoneidx; z >= 0; z--) {
        const pfn = zoneTryAlloc(m, nid * MAX_NR_ZONES + z, z, gfp, order, allocFlags, highestZoneidx, mt);
        if (pfn !== NO_PAGE) return pfn;
      }
    }
    if (!(allocFlags & ALLOC_NOFRAGMENT)) return NO_PAGE;
    allocFlags &= ~ALLOC_NOFRAGMENT;
  }
}

/**
 * gfp_to_alloc_flags_cma(): only movable allocations may use CMA pageblocks (and not under v5.12's PF_MEMALLOC_NOCMA).
 */
function gfpToAllocFlagsCma(gfp: number, allocFlags: number): number {
  if (gfpMigratetype(gfp) === MIGRATE_MOVABLE && !(current().flags & PF_MEMALLOC_NOCMA)) allocFlags |= ALLOC_CMA;
  return allocFlags;
}

/**
 * gfp_to_alloc_flags() for the slow path. A request that cannot reclaim (GFP_ATOMIC, GFP_NOWAIT) is
 * ALLOC_NON_BLOCK, which with __GFP_HIGH lets it below another quarter of the min watermark
 * (__zone_watermark_ok()); an order > 0 one with __GFP_HIGH may also take the highatomic lists (6.12.y:
 * "only set ALLOC_HIGHATOMIC for __GFP_HIGH allocations"; pinlab reserves none, docs/simplifications.md).
 */
function gfpToAllocFlags(gfp: number, order: number): number {
  let f = ALLOC_WMARK_MIN | ALLOC_CPUSET;
  if (gfp & __GFP_HIGH) f |= ALLOC_MIN_RESERVE;
  if (gfp & __GFP_KSWAPD_RECLAIM) f |= ALLOC_KSWAPD;
  if (!(gfp & __GFP_DIRECT_RECLAIM)) {
    if (!(gfp & __GFP_NOMEMALLOC)) {
      f |= ALLOC_NON_BLOCK;
      if (order > 0 && f & ALLOC_MIN_RESERVE) f |= ALLOC_HIGHATOMIC;
    }
    if (f & ALLOC_MIN_RESERVE) f &= ~ALLOC_CPUSET;
  }
  return gfpToAllocFlagsCma(gfp, f);
}

/**
 * What the slow path does once the min watermark fails: direct reclaim, compaction, the OOM killer.
 * Returns true when it freed something worth retrying for. Installed by later mm files; none by default.
 */
export type SlowpathHook = (m: Memmap, gfp: number, order: number, attempt: number) => boolean;
let slowpathHook: SlowpathHook | null = null;
export function setSlowpathHook(h: SlowpathHook | null): void {
  slowpathHook = h;
}

/** Slow-path retry budget (the kernel's should_reclaim_retry(): MAX_RECLAIM_RETRIES = 16). */
const MAX_RECLAIM_RETRIES = 16;

/**
 * __alloc_pages(): returns the first pfn of a 1 << order block with refcount 1, or NO_PAGE.
 * current_gfp_context() applies the task's scope (PF_MEMALLOC_PIN strips __GFP_MOVABLE).
 */
export function allocPages(m: Memmap, gfp: number, order: number): number {
  if (order < 0 || order > m.maxOrder) bug(`alloc_pages: order ${order}`);
  // R5: before "mm: apply per-task gfp constraints in fast path" the scope reached only the slow path
  const raw = gfp;
  gfp = currentGfpContext(gfp);
  if (raw !== gfp && hasBug('R5')) {
    // (with no scope in force R5 allocates exactly as below)
    const h = gfpZone(raw);
    let f = gfpToAllocFlagsCma(raw, ALLOC_WMARK_LOW);
    f |= allocFlagsNofragment(m, firstPopulatedZone(m, h));
    const pfn = getPageFromFreelist(m, raw, order, f, h);
    if (pfn !== NO_PAGE) return pfn;
    return allocPagesSlowpath(m, gfp, order, gfpZone(gfp));
  }
  const highest = gfpZone(gfp);
  let allocFlags = gfpToAllocFlagsCma(gfp, ALLOC_WMARK_LOW);
  allocFlags |= allocFlagsNofragment(m, firstPopulatedZone(m, highest));
  const pfn = getPageFromFreelist(m, gfp, order, allocFlags, highest);
  if (pfn !== NO_PAGE) return pfn;
  return allocPagesSlowpath(m, gfp, order, highest);
}

/** __alloc_pages_slowpath(): min watermark, then reclaim/compaction/OOM through the hook. */
function allocPagesSlowpath(m: Memmap, gfp: number, order: number, highest: number): number {
  let allocFlags = gfpToAllocFlags(gfp, order);
  // __gfp_pfmemalloc_flags(): __GFP_MEMALLOC ignores the watermarks (unless __GFP_NOMEMALLOC)
  if (gfp & __GFP_MEMALLOC && !(gfp & __GFP_NOMEMALLOC))
    allocFlags = gfpToAllocFlagsCma(gfp, ALLOC_NO_WATERMARKS) | (allocFlags & ALLOC_KSWAPD);
  // an OOM victim may dip into the reserves on its way out (ALLOC_OOM, oom_reserves_allowed())
  const flagsNow = (): number => (current().fatalSignal ? allocFlags | ALLOC_OOM : allocFlags);
  let drained = false;
  for (let attempt = 0; attempt <= MAX_RECLAIM_RETRIES; attempt++) {
    const pfn = getPageFromFreelist(m, gfp, order, flagsNow(), highest);
    if (pfn !== NO_PAGE) return pfn;
    if (!(gfp & __GFP_DIRECT_RECLAIM)) break;
    // do_try_to_free_pages(): __count_zid_vm_events(ALLOCSTALL, sc->reclaim_idx, 1)
    if (highest === ZONE_NORMAL || highest === ZONE_MOVABLE)
      countVmEvents(m, highest === ZONE_NORMAL ? ALLOCSTALL_NORMAL : ALLOCSTALL_MOVABLE, 1);
    // __alloc_pages_direct_reclaim(): reclaim frees nothing here (no page cache, no swap), so the
    // per-CPU lists of every CPU go back to the buddy once (drain_all_pages()) and the freelists are
    // tried again, within the same reclaim, before the OOM killer
    if (!drained) {
      drained = true;
      drainAllPages(m);
      const again = getPageFromFreelist(m, gfp, order, flagsNow(), highest);
      if (again !== NO_PAGE) return again;
    }
    if (!slowpathHook || !slowpathHook(m, gfp, order, attempt)) break;
  }
  return NO_PAGE;
}

/**
 * __alloc_pages_may_oom()'s last look: would get_page_from_freelist() at the high watermark find
 * memory for this request now (ALLOC_WMARK_HIGH | ALLOC_CPUSET, no reserves)?
 */
export function highWatermarkOk(m: Memmap, gfp: number, order: number): boolean {
  gfp = currentGfpContext(gfp);
  const highest = gfpZone(gfp);
  const allocFlags = gfpToAllocFlagsCma(gfp, ALLOC_WMARK_HIGH | ALLOC_CPUSET);
  for (let zh = highest + (m.nrNodes - 1) * MAX_NR_ZONES; zh >= 0; zh--) {
    const zid = zh % MAX_NR_ZONES > highest ? -1 : zh; // every node's zones up to highest
    if (zid < 0) continue;
    const zb = m.zoneBase(zid);
    if (m.zones[zb + Z_MANAGED]! === 0) continue;
    if (zoneWatermarkOk(m, zid, order, m.zones[zb + Z_WMARK_HIGH]!, highest, allocFlags, m.zones[zb + Z_NR_FREE]!))
      return true;
  }
  return false;
}

/** totalram_pages(): the managed pages of every zone. */
export function totalramPages(m: Memmap): number {
  let t = 0;
  for (let z = 0; z < m.nrZones; z++) t += m.zones[m.zoneBase(z) + Z_MANAGED]!;
  return t;
}

function firstPopulatedZone(m: Memmap, highest: number): number {
  for (let zid = highest; zid >= 0; zid--) if (m.zones[m.zoneBase(zid) + Z_MANAGED]! > 0) return zid;
  return -1;
}

// ---------------------------------------------------------------------------------------------
// Boot and hot-added memory to the buddy

const SWAP_CLUSTER_MAX = 32;
// sysctl_lowmem_reserve_ratio[] (mm/page_alloc.c): DMA, DMA32, NORMAL, MOVABLE, DEVICE
const LOWMEM_RESERVE_RATIO = [256, 256, 32, 0, 0];

/**
 * __free_pages_memory() (mm/memblock.c) and online_pages_range(): [start, end) to the buddy in naturally
 * aligned blocks that stay within one zone. Both free with FPI_TO_TAIL (__free_pages_core());
 * init_cma_reserved_pageblock()'s __free_pages() with FPI_NONE.
 */
export function freeRange(m: Memmap, start: number, end: number, fpi = FPI_TO_TAIL): void {
  while (start < end) {
    let order = Math.min(m.maxOrder, start === 0 ? m.maxOrder : ctz(start));
    while (start + (1 << order) > end) order--;
    // a block must not straddle a zone boundary
    const zid = m.pageZone(start);
    while (order > 0 && m.pageZone(start + (1 << order) - 1) !== zid) order--;
    freePagesCore(m, start, order, fpi);
    start += 1 << order;
  }
}

function ctz(x: number): number {
  return 31 - Math.clz32(x & -x);
}

// ---------------------------------------------------------------------------------------------
// Watermarks, lowmem_reserve and per-CPU list sizes (init_per_zone_wmark_min() and its helpers)

function managed(m: Memmap, z: number): number {
  return m.zones[m.zoneBase(z) + Z_MANAGED]!;
}

/** nr_free_zone_pages(gfp_zone(GFP_USER)): managed above the high watermark, in zones GFP_USER may use. */
function nrFreeBufferPages(m: Memmap): number {
  let sum = 0;
  for (let z = 0; z < m.nrZones; z++)
    // the zonelist: every node's zones up to gfp_zone(GFP_USER)
    if (z % MAX_NR_ZONES <= gfpZone(GFP_USER))
      sum += Math.max(0, managed(m, z) - m.zones[m.zoneBase(z) + Z_WMARK_HIGH]!);
  return sum;
}

/** calculate_min_free_kbytes(): sqrt(lowmem_kbytes * 16), clamped to [128, 262144], unless the user set more. */
function calculateMinFreeKbytes(m: Memmap): void {
  const lowmemKbytes = nrFreeBufferPages(m) * 4;
  const v = Math.floor(Math.sqrt(lowmemKbytes * 16));
  if (v > m.header[H_USER_MIN_FREE_KBYTES]!) m.header[H_MIN_FREE_KBYTES] = Math.min(262144, Math.max(128, v));
}

/**
 * __setup_per_zone_wmarks(): min split over the kernel zones by size; ZONE_MOVABLE gets a token min.
 * Up to 6.1 ZONE_MOVABLE counts in lowmem_pages and gets its proportional share as min (only highmem,
 * absent on x86-64, was capped); "mm: cap zone movable's min wmark to small value" (6.2) changed that.
 */
function setupPerZoneWmarks(m: Memmap): void {
  const pagesMin = m.header[H_MIN_FREE_KBYTES]! >> (PAGE_SHIFT - 10);
  const scale = m.header[H_WATERMARK_SCALE_FACTOR]!;
  const capMovable = releaseAtLeast(variant(), 6, 2);
  let lowmemPages = 0;
  // every node's zones (zone handle zh: zone index zh % MAX_NR_ZONES)
  for (let zh = 0; zh < m.nrZones; zh++)
    if (zh % MAX_NR_ZONES !== ZONE_MOVABLE || !capMovable) lowmemPages += managed(m, zh);
  for (let zh = 0; zh < m.nrZones; zh++) {
    const z = zh % MAX_NR_ZONES;
    const zb = m.zoneBase(zh);
    const man = managed(m, zh);
    let tmp = lowmemPages ? Math.floor((pagesMin * man) / lowmemPages) : 0;
    if (z === ZONE_MOVABLE && capMovable)
      m.zones[zb + Z_WMARK_MIN] = Math.min(128, Math.max(SWAP_CLUSTER_MAX, Math.floor(man / 1024)));
    else m.zones[zb + Z_WMARK_MIN] = tmp;
    tmp = Math.max(tmp >> 2, Math.floor((man * scale) / 10000));
    m.zones[zb + Z_WMARK_LOW] = m.zones[zb + Z_WMARK_MIN]! + tmp;
    m.zones[zb + Z_WMARK_HIGH] = m.zones[zb + Z_WMARK_LOW]! + tmp;
  }
  zoneSetPagesetHighAndBatch(m);
}

/** setup_per_zone_lowmem_reserve(): a lower zone keeps managed(higher zones)/ratio from higher requests. */
function setupPerZoneLowmemReserve(m: Memmap): void {
  for (let zh = 0; zh < m.nrZones; zh++) {
    const i = zh % MAX_NR_ZONES;
    const node = zh - i; // for_each_online_pgdat(): the higher zones of the same node
    const zb = m.zoneBase(zh);
    const ratio = LOWMEM_RESERVE_RATIO[i]!;
    const clear = !ratio || !managed(m, zh);
    let man = 0;
    for (let j = 0; j < MAX_NR_ZONES; j++) {
      if (j <= i) {
        m.zones[zb + Z_LOWMEM_RESERVE + j] = 0;
        continue;
      }
      man += managed(m, node + j);
      m.zones[zb + Z_LOWMEM_RESERVE + j] = clear ? 0 : Math.floor(man / ratio);
    }
  }
}

/** MIN_PERCPU_PAGELIST_HIGH_FRACTION: high_max is an eighth of the zone, split over the CPUs */
const MIN_PERCPU_PAGELIST_HIGH_FRACTION = 8;

/**
 * zone_set_pageset_high_and_batch(): zone_batchsize(), and zone_highsize() for high_min (the low
 * watermark split over the CPUs) and high_max (managed / MIN_PERCPU_PAGELIST_HIGH_FRACTION split the
 * same way); pageset_update() leaves pcp->high to be clamped into them at its next use.
 */
function zoneSetPagesetHighAndBatch(m: Memmap): void {
  for (let z = 0; z < m.nrZones; z++) {
    let batch = Math.floor(Math.min(managed(m, z) >> 10, (1 << 20) >> PAGE_SHIFT) / 4);
    if (batch < 1) batch = 1;
    batch = Math.max(1, (1 << (31 - Math.clz32(batch + (batch >> 1)))) - 1);
    const highMin = Math.max(Math.floor(m.zones[m.zoneBase(z) + Z_WMARK_LOW]! / m.nrCpus), batch << 2);
    const highMax = Math.max(
      Math.floor(Math.floor(managed(m, z) / MIN_PERCPU_PAGELIST_HIGH_FRACTION) / m.nrCpus),
      batch << 2,
    );
    for (let cpu = 0; cpu < m.nrCpus; cpu++) {
      const pb = pcpBase(m, cpu, z);
      m.pcp[pb + PCP_BATCH] = batch;
      m.pcp[pb + PCP_HIGH_MIN] = highMin;
      m.pcp[pb + PCP_HIGH_MAX] = highMax;
    }
  }
}

/**
 * set_recommended_min_free_kbytes() (mm/khugepaged.c): with THP enabled, keep 2 + 9 pageblocks per
 * kernel zone free for anti-fragmentation, at most 5% of lowmem.
 */
function khugepagedMinFreeKbytesUpdate(m: Memmap): void {
  if (m.header[H_THP_ENABLED] === 0) return; // calculate_min_free_kbytes() already ran
  let nrZones = 0;
  for (let z = 0; z < m.nrZones; z++) if (z % MAX_NR_ZONES <= gfpZone(GFP_USER) && managed(m, z) > 0) nrZones++;
  let rec = m.pageblockNrPages * nrZones * 2 + m.pageblockNrPages * nrZones * MIGRATE_PCPTYPES * MIGRATE_PCPTYPES;
  rec = Math.min(rec, Math.floor(nrFreeBufferPages(m) / 20));
  rec <<= PAGE_SHIFT - 10;
  if (rec > m.header[H_MIN_FREE_KBYTES]!) m.header[H_MIN_FREE_KBYTES] = rec;
  setupPerZoneWmarks(m);
}

/** init_per_zone_wmark_min(): at boot and after every online/offline. */
export function initPerZoneWmarkMin(m: Memmap): void {
  calculateMinFreeKbytes(m);
  setupPerZoneWmarks(m);
  setupPerZoneLowmemReserve(m);
  khugepagedMinFreeKbytesUpdate(m);
}

/** min_free_kbytes_sysctl_handler() */
export function setMinFreeKbytes(m: Memmap, kbytes: number): void {
  m.header[H_MIN_FREE_KBYTES] = kbytes;
  m.header[H_USER_MIN_FREE_KBYTES] = kbytes;
  setupPerZoneWmarks(m);
}

/** is_free_buddy_page(): pfn lies inside a free buddy block (of any order that covers it). */
export function isFreeBuddyPage(m: Memmap, pfn: number): boolean {
  for (let order = 0; order <= m.maxOrder; order++) {
    const head = pfn & ~((1 << order) - 1);
    const f = m.flags[head]!;
    if (f & layout.PG_buddy && (f & layout.PG_ORDER_MASK) >>> layout.PG_ORDER_SHIFT >= order) return true;
  }
  return false;
}
