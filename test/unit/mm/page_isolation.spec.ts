// Pageblock isolation (mm/page_isolation.c, 6.12) keeps every free block inside pageblocks of its own
// type: move_freepages_block_isolate() splits a free block that reaches across the pageblock being
// isolated or given back (find_large_buddy(), split_large_buddy()). The zone lock is dropped between
// pageblocks, so other CPUs allocate and free while a range is half isolated: a block spanning an
// isolated and a non-isolated pageblock would put pages on the wrong lists.
import { boot } from '../../helpers';
import { allocPages, freePages, NO_PAGE, drainAllPages } from '../../../mm/page_alloc';
import {
  startIsolatePageRange,
  undoIsolatePageRange,
  unsetMigratetypeIsolate,
  testPagesIsolated,
} from '../../../mm/page_isolation';
import { EBUSY } from '../../../mm/errno';
import { GFP_HIGHUSER_MOVABLE, __GFP_NORETRY } from '../../../mm/gfp';
import { MIGRATE_CMA, MIGRATE_ISOLATE, ZONE_NORMAL } from '../../../mm/mmzone';
import { Memmap, PG_buddy, PG_ORDER_SHIFT } from '../../../mm/memmap';
import { checkAllocator } from '../../../properties/allocator_sound';

// CMA at pfn 64-95 of a 256-frame mini machine: two free order-4 blocks (16 frames, two pageblocks each)
const CMD = 'mem=1M movablecore=512K cma=128K@256K sysctl.vm.min_free_kbytes=16';

function freeOrder(m: Memmap, pfn: number): number {
  const f = m.flags[pfn]!;
  return f & PG_buddy ? (f >>> PG_ORDER_SHIFT) & 31 : -1;
}

describe('isolating pageblocks of a larger free block (move_freepages_block_isolate)', () => {
  it('isolation splits the free block; giving back one pageblock while its neighbour stays isolated keeps the lists sound', () => {
    const m = boot(CMD, 'mini');
    drainAllPages(m);
    expect(freeOrder(m, 64)).toBe(4); // one free block over pageblocks 64 and 72
    expect(startIsolatePageRange(m, 64, 80, MIGRATE_CMA, 0)).toBe(0);
    expect(checkAllocator(m).errors).toEqual([]);
    unsetMigratetypeIsolate(m, ZONE_NORMAL, 64, MIGRATE_CMA); // the first pageblock back, the second still isolated
    expect(m.getPageblockMigratetype(64)).toBe(MIGRATE_CMA);
    expect(m.getPageblockMigratetype(72)).toBe(MIGRATE_ISOLATE);
    expect(checkAllocator(m).errors).toEqual([]);
    // other CPUs allocate meanwhile: movable requests take CMA first while CMA is over half the free memory
    const got: number[] = [];
    for (
      let p = allocPages(m, GFP_HIGHUSER_MOVABLE | __GFP_NORETRY, 0);
      p !== NO_PAGE;
      p = allocPages(m, GFP_HIGHUSER_MOVABLE | __GFP_NORETRY, 0)
    )
      got.push(p);
    expect(got.some((p) => p >= 64 && p < 72)).toBe(true);
    expect(got.some((p) => p >= 72 && p < 80)).toBe(false); // nothing from the isolated pageblock
    undoIsolatePageRange(m, 64, 80, MIGRATE_CMA);
    expect(checkAllocator(m).errors).toEqual([]);
    for (const p of got) freePages(m, p, 0);
    drainAllPages(m);
    expect(checkAllocator(m).errors).toEqual([]);
  });
});

describe('test_pages_isolated() names the pfn that is not free', () => {
  it('a pageblock not isolated, then a page in use: -EBUSY with that pfn (offline_pages() reports it)', () => {
    const m = boot(CMD, 'mini');
    drainAllPages(m);
    const out = { pfn: -1 };
    expect(testPagesIsolated(m, 64, 80, 0, out)).toBe(-EBUSY);
    expect(out.pfn).toBe(64); // not isolated yet: the first pageblock
    expect(startIsolatePageRange(m, 64, 80, MIGRATE_CMA, 0)).toBe(0);
    expect(testPagesIsolated(m, 64, 80, 0, out)).toBe(0);
    undoIsolatePageRange(m, 64, 80, MIGRATE_CMA);
    // a CMA page in use (movable allocations take CMA first here), then the range isolated around it
    let p: number;
    const taken: number[] = [];
    while ((p = allocPages(m, GFP_HIGHUSER_MOVABLE | __GFP_NORETRY, 0)) !== NO_PAGE && !(p >= 64 && p < 80))
      taken.push(p);
    expect(p >= 64 && p < 80).toBe(true);
    drainAllPages(m);
    expect(startIsolatePageRange(m, 64, 80, MIGRATE_CMA, 0)).toBe(0);
    out.pfn = -1;
    expect(testPagesIsolated(m, 64, 80, 0, out)).toBe(-EBUSY);
    expect(out.pfn).toBe(p);
    undoIsolatePageRange(m, 64, 80, MIGRATE_CMA);
  });
});
