import {
  allocPages,
  freePages,
  NO_PAGE,
  drainAllPages,
  zonePcpCount,
  nrPcpHigh,
  nrPcpFree,
  nrPcpAlloc,
  decayPcpHigh,
} from '../../../mm/page_alloc';
import {
  GFP_KERNEL,
  GFP_ATOMIC,
  GFP_NOWAIT,
  GFP_HIGHUSER_MOVABLE,
  GFP_USER,
  GFP_DMA32,
  __GFP_MOVABLE,
  __GFP_COMP,
  __GFP_ZERO,
  gfpZone,
  gfpMigratetype,
  GFP_HIGHUSER,
  __GFP_NORETRY,
} from '../../../mm/gfp';
import {
  ZONE_DMA32,
  ZONE_MOVABLE,
  ZONE_NORMAL,
  MIGRATE_CMA,
  MIGRATE_MOVABLE,
  MIGRATE_UNMOVABLE,
  ZONE_DMA,
} from '../../../mm/mmzone';
import { memallocPinSave, memallocPinRestore, current } from '../../../mm/sched';
import {
  Memmap,
  PG_head,
  PG_locked,
  PG_lru,
  PG_dirty,
  PG_tail,
  PG_buddy,
  PG_pcp,
  PG_ORDER_SHIFT,
  Z_MANAGED,
  Z_START_PFN,
  PCP_HIGH,
  PCP_HIGH_MIN,
  PCP_HIGH_MAX,
  PCP_FREE_COUNT,
  PCP_ALLOC_FACTOR,
  Z_FLAGS,
  ZONE_BELOW_HIGH,
  PCP_BATCH,
  PCP_COUNT,
  freeAreaHead,
  freeAreaTail,
  pcpBase,
} from '../../../mm/memmap';
import { checkAllocator } from '../../../properties/allocator_sound';
import { vmstatSnapshot } from '../../../mm/vmstat';
import { allocMigrateHugetlbFolio } from '../../../mm/hugetlb';
import { boot, zone } from '../../helpers';
import { parseVariant, setVariant } from '../../../mm/variants';

const MINI = 'mini';
// 256 frames: Normal 128 (3 reserved), Movable 128; min watermark kept small with the sysctl
const CMD = 'mem=1M movablecore=512K sysctl.vm.min_free_kbytes=16';

/** Allocate until the allocator says no; __GFP_NORETRY so an order-0 request fails instead of OOM-killing. */
function drainTo(m: Memmap, gfp: number, order = 0): number[] {
  const got: number[] = [];
  for (;;) {
    const p = allocPages(m, gfp | __GFP_NORETRY, order);
    if (p === NO_PAGE) return got;
    got.push(p);
  }
}

describe('gfp_zone / gfp_migratetype (include/linux/gfp.h)', () => {
  it('only __GFP_MOVABLE|__GFP_HIGHMEM reaches ZONE_MOVABLE', () => {
    expect(gfpZone(GFP_HIGHUSER_MOVABLE)).toBe(ZONE_MOVABLE);
    expect(gfpZone(GFP_KERNEL | __GFP_MOVABLE)).toBe(ZONE_NORMAL);
    expect(gfpZone(GFP_HIGHUSER)).toBe(ZONE_NORMAL);
    expect(gfpZone(GFP_USER)).toBe(ZONE_NORMAL);
    expect(gfpZone(GFP_DMA32)).toBe(ZONE_DMA32);
    expect(gfpMigratetype(GFP_HIGHUSER_MOVABLE)).toBe(MIGRATE_MOVABLE);
    expect(gfpMigratetype(GFP_KERNEL)).toBe(MIGRATE_UNMOVABLE);
  });
});

describe('__alloc_pages (mm/page_alloc.c)', () => {
  it('hands out refcount-1 pages and takes them back', () => {
    const m = boot(CMD, MINI);
    const before = zone(m, 'Movable').free;
    const p = allocPages(m, GFP_HIGHUSER_MOVABLE, 0);
    expect(p).not.toBe(NO_PAGE);
    expect(m.refcount[p]).toBe(1);
    expect(m.pageZonenum(p)).toBe(ZONE_MOVABLE);
    freePages(m, p, 0);
    expect(m.refcount[p]).toBe(0);
    drainAllPages(m);
    expect(zone(m, 'Movable').free).toBe(before);
    expect(checkAllocator(m).errors).toEqual([]);
  });

  it('GFP_KERNEL never lands in ZONE_MOVABLE, even when the kernel zone is exhausted', () => {
    const m = boot(CMD, MINI);
    const got = drainTo(m, GFP_KERNEL);
    expect(got.length).toBeGreaterThan(0);
    expect(got.every((p) => m.pageZonenum(p) === ZONE_NORMAL)).toBe(true);
    expect(zone(m, 'Movable').free).toBe(zone(m, 'Movable').managed);
    expect(checkAllocator(m).errors).toEqual([]);
  });

  it('stops at the min watermark: a zone never goes below it for ordinary requests', () => {
    const m = boot(CMD, MINI);
    drainTo(m, GFP_KERNEL);
    drainAllPages(m);
    const z = zone(m, 'Normal');
    expect(z.free).toBeLessThanOrEqual(z.min + 1);
    expect(z.free).toBeGreaterThanOrEqual(z.min - 0);
  });

  it('__GFP_HIGH (GFP_ATOMIC) may go down to half the min watermark, GFP_KERNEL not (ALLOC_MIN_RESERVE)', () => {
    const m = boot(CMD, MINI);
    drainTo(m, GFP_KERNEL);
    drainAllPages(m);
    const z = zone(m, 'Normal');
    expect(z.min).toBeGreaterThanOrEqual(4); // room between min and min/2 to see the difference
    const atomic = drainTo(m, GFP_ATOMIC);
    const after = zone(m, 'Normal'); // NR_FREE_PAGES where the watermark stopped it (pcp pages are not free)
    expect(atomic.length).toBeGreaterThan(0);
    // __zone_watermark_ok(): min -= min / 2, then ALLOC_NON_BLOCK (no direct reclaim) takes a quarter more
    expect(after.free).toBeLessThan(z.min - Math.floor(z.min / 2) + 1);
    expect(after.free).toBeGreaterThanOrEqual(Math.floor((z.min - Math.floor(z.min / 2)) * 0.75) - 1);
  });

  it('gfp_to_alloc_flags(): GFP_ATOMIC (non-blocking __GFP_HIGH) goes to min - min/2 - (min - min/2)/4; GFP_NOWAIT and GFP_KERNEL stop at min', () => {
    // order-1 requests: no per-CPU list in between, so NR_FREE_PAGES stops exactly where
    // __zone_watermark_ok() does (free - 1 unusable > min), within one request's two pages; min is large
    // enough here for a quarter of half of it to show
    const cmd = 'mem=4M movablecore=2M sysctl.vm.min_free_kbytes=512';
    const stopsAt = (gfp: number): number => {
      const m = boot(cmd, MINI);
      while (allocPages(m, gfp | __GFP_NORETRY, 1) !== NO_PAGE);
      return zone(m, 'Normal').free;
    };
    const min = zone(boot(cmd, MINI), 'Normal').min;
    expect(min).toBeGreaterThanOrEqual(80);
    const half = min - Math.floor(min / 2);
    const atomic = half - Math.floor(half / 4); // ALLOC_MIN_RESERVE, then ALLOC_NON_BLOCK
    expect([atomic, atomic + 1]).toContain(stopsAt(GFP_ATOMIC));
    expect([min, min + 1]).toContain(stopsAt(GFP_NOWAIT)); // ALLOC_NON_BLOCK alone: no reserve
    expect([min, min + 1]).toContain(stopsAt(GFP_KERNEL));
  });

  it('free_page_is_bad(): a page freed locked or still on an LRU list is a bad page state (PAGE_FLAGS_CHECK_AT_FREE)', () => {
    const m = boot(CMD, MINI);
    for (const [flag, name] of [
      [PG_locked, 'locked'],
      [PG_lru, 'lru'],
    ] as const) {
      const p = allocPages(m, GFP_HIGHUSER_MOVABLE, 0);
      m.flags[p] = m.flags[p]! | flag;
      expect(() => freePages(m, p, 0)).toThrow(new RegExp(`bad page state: pfn ${p} freed with flags ${name}`));
    }
  });

  it('check_new_page(): a free page that kept a flag or a mapping is a bad page state when handed out', () => {
    const m = boot(CMD, MINI);
    const p = allocPages(m, GFP_HIGHUSER_MOVABLE, 0);
    freePages(m, p, 0);
    // a clean free page comes back (the per-CPU list is LIFO)
    expect(allocPages(m, GFP_HIGHUSER_MOVABLE, 0)).toBe(p);
    freePages(m, p, 0);
    m.flags[p] = m.flags[p]! | PG_dirty; // state its last user left behind
    expect(() => allocPages(m, GFP_HIGHUSER_MOVABLE, 0)).toThrow(
      new RegExp(
        `bad page state: pfn ${p} allocated with refcount 0 mapcount 0 mapping 0 flags 0x${PG_dirty.toString(16)}`,
      ),
    );
    // a tail page of a compound allocation is checked too
    const m2 = boot(CMD, MINI);
    const q = allocPages(m2, GFP_KERNEL, 2);
    freePages(m2, q, 2);
    m2.mapping[q + 3] = 5;
    const drain = (): void => {
      while (allocPages(m2, GFP_KERNEL, 2) !== NO_PAGE);
    };
    expect(drain).toThrow(new RegExp(`bad page state: pfn ${q + 3} allocated .*mapping 5`));
  });

  it('GFP_HIGHUSER_MOVABLE prefers ZONE_MOVABLE, then falls back to Normal', () => {
    const m = boot(CMD, MINI);
    const got = drainTo(m, GFP_HIGHUSER_MOVABLE);
    const inMovable = got.filter((p) => m.pageZonenum(p) === ZONE_MOVABLE).length;
    expect(got[0] !== undefined && m.pageZonenum(got[0])).toBe(ZONE_MOVABLE);
    // ZONE_MOVABLE keeps its min watermark: clamp(managed/1024, SWAP_CLUSTER_MAX, 128) = 32 pages; the
    // pages left on the per-CPU lists are not NR_FREE_PAGES, so the watermark stops the zone before them
    const stranded = zonePcpCount(m, ZONE_MOVABLE);
    expect(inMovable + stranded).toBe(zone(m, 'Movable').managed - zone(m, 'Movable').min);
    expect(got.some((p) => m.pageZonenum(p) === ZONE_NORMAL)).toBe(true);
  });

  it('PF_MEMALLOC_PIN strips __GFP_MOVABLE: movable requests avoid ZONE_MOVABLE and CMA', () => {
    const m = boot('mem=1M movablecore=256K cma=128K sysctl.vm.min_free_kbytes=16', MINI);
    const old = memallocPinSave();
    const got = drainTo(m, GFP_HIGHUSER_MOVABLE);
    memallocPinRestore(old);
    expect(got.length).toBeGreaterThan(0);
    for (const p of got) {
      expect(m.pageZonenum(p)).not.toBe(ZONE_MOVABLE);
      expect(m.getPageblockMigratetype(p)).not.toBe(MIGRATE_CMA);
    }
  });

  it('CMA pageblocks serve movable requests only', () => {
    const m = boot('mem=1M cma=256K sysctl.vm.min_free_kbytes=16', MINI);
    const unmovable = drainTo(m, GFP_KERNEL);
    expect(unmovable.some((p) => m.getPageblockMigratetype(p) === MIGRATE_CMA)).toBe(false);
    const movable = drainTo(m, GFP_HIGHUSER_MOVABLE);
    expect(movable.some((p) => m.getPageblockMigratetype(p) === MIGRATE_CMA)).toBe(true);
    expect(checkAllocator(m).errors).toEqual([]);
  });

  it('uses CMA first once more than half of the free memory is CMA (__rmqueue balancing)', () => {
    const m = boot('mem=1M cma=768K sysctl.vm.min_free_kbytes=16', MINI);
    const p = allocPages(m, GFP_HIGHUSER_MOVABLE, 0);
    expect(m.getPageblockMigratetype(p)).toBe(MIGRATE_CMA);
  });

  it('an unmovable request claims a movable pageblock (fallback) and retypes it', () => {
    const m = boot(CMD, MINI);
    const z0 = zone(m, 'Normal').pageblocks;
    const p = allocPages(m, GFP_KERNEL, 0);
    expect(m.getPageblockMigratetype(p)).toBe(MIGRATE_UNMOVABLE);
    const z1 = zone(m, 'Normal').pageblocks;
    expect(z1.Unmovable).toBeGreaterThan(z0.Unmovable!);
    expect(checkAllocator(m).errors).toEqual([]);
  });

  it('compound pages carry head/tail and order; __GFP_ZERO clears content', () => {
    const m = boot(CMD, MINI);
    const p = allocPages(m, GFP_HIGHUSER_MOVABLE | __GFP_COMP, 3);
    expect(p % 8).toBe(0);
    m.content[p + 3] = 77;
    expect(m.flags[p]! & PG_head).toBeTruthy();
    for (let i = 1; i < 8; i++) {
      expect(m.flags[p + i]! & PG_tail).toBeTruthy();
      expect(m.compoundHead(p + i)).toBe(p);
    }
    freePages(m, p, 3);
    const q = allocPages(m, GFP_HIGHUSER_MOVABLE | __GFP_ZERO | __GFP_COMP, 3);
    for (let i = 0; i < 8; i++) expect(m.content[q + i]).toBe(0);
    expect(checkAllocator(m).errors).toEqual([]);
  });

  it('freeing everything merges back to the boot free lists', () => {
    const m = boot(CMD, MINI);
    drainAllPages(m);
    const before = JSON.stringify([zone(m, 'Normal').free_area, zone(m, 'Movable').free_area]);
    const got = [...drainTo(m, GFP_HIGHUSER_MOVABLE)];
    for (const p of got) freePages(m, p, 0);
    drainAllPages(m);
    expect(JSON.stringify([zone(m, 'Normal').free_area, zone(m, 'Movable').free_area])).toBe(before);
    expect(zonePcpCount(m, ZONE_MOVABLE)).toBe(0);
  });

  it('the per-CPU list caches order-0 frees and drains back', () => {
    const m = boot(CMD, MINI);
    const p = allocPages(m, GFP_HIGHUSER_MOVABLE, 0);
    freePages(m, p, 0);
    expect(zonePcpCount(m, ZONE_MOVABLE)).toBeGreaterThan(0);
    const { census } = checkAllocator(m);
    expect(census.free[ZONE_MOVABLE]! + census.pcp[ZONE_MOVABLE]!).toBe(m.zones[m.zoneBase(ZONE_MOVABLE) + Z_MANAGED]);
    drainAllPages(m);
    expect(zonePcpCount(m, ZONE_MOVABLE)).toBe(0);
  });

  it("lowmem_reserve keeps GFP_HIGHUSER_MOVABLE out of a lower zone's reserve (x86 layout)", () => {
    const m = boot('mem=64M sysctl.vm.min_free_kbytes=128');
    // DMA's protection against DMA32-capable requests is DMA32's managed / 256
    expect(zone(m, 'DMA').protection[ZONE_DMA32]).toBe(Math.floor(zone(m, 'DMA32').managed / 256));
    const got = drainTo(m, GFP_DMA32);
    const dma = got.filter((p) => m.pageZonenum(p) === ZONE_DMA).length;
    const z = zone(m, 'DMA');
    expect(z.managed - dma).toBeGreaterThan(z.min + z.protection[ZONE_DMA32]! - 2);
  });
});

describe('where freed blocks go on the free lists (__free_one_page, mm/page_alloc.c)', () => {
  const movableStart = (m: Memmap): number => m.zones[m.zoneBase(ZONE_MOVABLE) + Z_START_PFN]!;

  it('memblock_free_all() frees with FPI_TO_TAIL: the lowest pfns of a zone go first', () => {
    const m = boot(CMD, MINI);
    const start = movableStart(m);
    const got: number[] = [];
    for (let i = 0; i < 12; i++) got.push(allocPages(m, GFP_HIGHUSER_MOVABLE, 0));
    expect(got).toEqual(Array.from({ length: 12 }, (_, i) => start + i));
    // a THP-sized request: the lowest free block of its order, above the pages just taken
    const big = allocPages(m, GFP_HIGHUSER_MOVABLE, m.maxOrder);
    expect(big).toBe(start + (1 << m.maxOrder));
    // the kernel zone too: an unmovable request claims its lowest whole free block (__rmqueue_claim())
    let lowest = 0;
    const isMaxBlock = (p: number): boolean =>
      (m.flags[p]! & PG_buddy) !== 0 && ((m.flags[p]! >>> PG_ORDER_SHIFT) & 31) === m.maxOrder;
    while (m.pageZonenum(lowest) !== ZONE_NORMAL || !isMaxBlock(lowest)) lowest++;
    expect(allocPages(m, GFP_KERNEL, 0)).toBe(lowest);
    expect(checkAllocator(m).errors).toEqual([]);
  });

  it('rmqueue_bulk() adds each page at the list tail: a batch is handed out in pfn order (x86 layout)', () => {
    const m = boot('mem=1G movablecore=512M pinlab.kmem=none'); // no user space has taken the fragments yet
    const pb = pcpBase(m, current().cpu, ZONE_MOVABLE);
    expect(m.pcp[pb + PCP_BATCH]).toBeGreaterThan(8); // one refill serves every request below
    const got: number[] = [];
    for (let i = 0; i < 8; i++) got.push(allocPages(m, GFP_HIGHUSER_MOVABLE, 0));
    // __rmqueue_smallest() takes the smallest free block first: the fragments below what memblock took
    // top-down (the memmap, the hashes: 4605 pages, so free RAM ends at pfn 257539) - an order-0 page, an
    // order-1 block, then the order-9 block under them; each block's pages come in pfn order
    const end = 262144 - 4605;
    expect(got).toEqual([end - 1, end - 3, end - 2, ...Array.from({ length: 5 }, (_, i) => end - 3 - 512 + i)]);
  });

  it('buddy_merge_likely(): a block whose merged parent has a free buddy goes to the tail', () => {
    const m = boot(CMD, MINI);
    const s = movableStart(m);
    const a = allocPages(m, GFP_HIGHUSER_MOVABLE, 1);
    const b = allocPages(m, GFP_HIGHUSER_MOVABLE, 1);
    const c = allocPages(m, GFP_HIGHUSER_MOVABLE, 2);
    const d = allocPages(m, GFP_HIGHUSER_MOVABLE, 3);
    expect([a, b, c, d]).toEqual([s, s + 2, s + 4, s + 8]); // the first order-4 block, split by expand()
    const e = allocPages(m, GFP_HIGHUSER_MOVABLE, 1); // splits the next one: s + 20 (order 2) is free
    expect(e).toBe(s + 16);
    freePages(m, d, 3); // order 3 = MAX_PAGE_ORDER - 1: never "likely"; its buddy is in use anyway
    // c's buddy (a + b) is in use; the order-3 parent's buddy d is free: the merge is likely
    freePages(m, c, 2);
    expect(m.zones[freeAreaTail(m, ZONE_MOVABLE, 2, MIGRATE_MOVABLE)]).toBe(c);
    expect(m.zones[freeAreaHead(m, ZONE_MOVABLE, 2, MIGRATE_MOVABLE)]).toBe(s + 20);
    // so the next order-2 request takes the other block, and c stays free to merge with a and b
    expect(allocPages(m, GFP_HIGHUSER_MOVABLE, 2)).toBe(s + 20);
    // b: its buddy a is in use and the parent's buddy c is free at order 2: likely, to the tail
    freePages(m, b, 1);
    expect(m.zones[freeAreaTail(m, ZONE_MOVABLE, 1, MIGRATE_MOVABLE)]).toBe(b);
    freePages(m, a, 1); // merges up to a whole order-4 block
    expect(m.flags[s]! & PG_buddy).toBeTruthy();
    expect((m.flags[s]! >>> PG_ORDER_SHIFT) & 31).toBe(4);
    expect(checkAllocator(m).errors).toEqual([]);
  });

  it('buddy_merge_likely(): a block whose merged parent has no free buddy goes to the head', () => {
    const m = boot(CMD, MINI);
    const s = movableStart(m);
    const a = allocPages(m, GFP_HIGHUSER_MOVABLE, 1);
    const b = allocPages(m, GFP_HIGHUSER_MOVABLE, 1);
    const c = allocPages(m, GFP_HIGHUSER_MOVABLE, 2);
    allocPages(m, GFP_HIGHUSER_MOVABLE, 1); // s + 8; s + 10 (order 1) and s + 12 (order 2) stay free
    expect(m.zones[freeAreaHead(m, ZONE_MOVABLE, 1, MIGRATE_MOVABLE)]).toBe(s + 10);
    freePages(m, b, 1); // buddy a in use, parent's buddy c in use
    expect(m.zones[freeAreaHead(m, ZONE_MOVABLE, 1, MIGRATE_MOVABLE)]).toBe(b);
    expect(m.zones[freeAreaTail(m, ZONE_MOVABLE, 1, MIGRATE_MOVABLE)]).toBe(s + 10);
    freePages(m, a, 1);
    freePages(m, c, 2);
    expect(checkAllocator(m).errors).toEqual([]);
  });

  it('free_pcppages_bulk() returns the coldest pages first', () => {
    const m = boot(CMD, MINI);
    const pb = pcpBase(m, current().cpu, ZONE_MOVABLE);
    const got: number[] = [];
    for (let i = 0; i < m.pcp[pb + PCP_HIGH_MAX]! + 4; i++) got.push(allocPages(m, GFP_HIGHUSER_MOVABLE, 0));
    drainAllPages(m);
    // each free goes to the head; past pcp->high the pages go back from the tail: the first freed
    for (const p of got) freePages(m, p, 0);
    const kept = m.pcp[pb + PCP_COUNT]!;
    expect(kept).toBeGreaterThan(0);
    expect(kept).toBeLessThan(got.length);
    for (const p of got.slice(0, got.length - kept)) expect(m.flags[p]! & PG_pcp).toBe(0);
    for (const p of got.slice(got.length - kept)) expect(m.flags[p]! & PG_pcp).toBeTruthy();
    expect(checkAllocator(m).errors).toEqual([]);
  });
});

describe('per-CPU list high and batch (6.12: nr_pcp_high, nr_pcp_free, nr_pcp_alloc, decay_pcp_high)', () => {
  // x86 layout: ZONE_MOVABLE of 512M
  const setup = (): { m: Memmap; pb: number; zb: number; batch: number; min: number; max: number } => {
    const m = boot('mem=1G movablecore=512M pinlab.kmem=none'); // per-CPU lists untouched since boot
    const pb = pcpBase(m, current().cpu, ZONE_MOVABLE);
    const batch = m.pcp[pb + PCP_BATCH]!;
    return {
      m,
      pb,
      zb: m.zoneBase(ZONE_MOVABLE),
      batch,
      min: m.pcp[pb + PCP_HIGH_MIN]!,
      max: m.pcp[pb + PCP_HIGH_MAX]!,
    };
  };

  it('zone_set_pageset_high_and_batch(): high_min from the low watermark, high_max an eighth of the zone', () => {
    const { m, batch, min, max } = setup();
    const z = zone(m, 'Movable');
    expect(batch).toBe(31); // zone_batchsize(): rounddown_pow_of_two(512M / 1024 / 4 pages * 1.5) - 1
    expect(min).toBe(Math.max(Math.floor(z.low / m.nrCpus), batch << 2));
    expect(max).toBe(Math.max(Math.floor(Math.floor(z.managed / 8) / m.nrCpus), batch << 2));
    expect(max).toBeGreaterThan(min);
  });

  it('nr_pcp_free(): the pages freed in a row, at least batch, leaving batch on the list', () => {
    const { m, pb, batch } = setup();
    m.pcp[pb + PCP_FREE_COUNT] = 10;
    expect(nrPcpFree(m, pb, batch, 500)).toBe(batch);
    m.pcp[pb + PCP_FREE_COUNT] = 200;
    expect(nrPcpFree(m, pb, batch, 500)).toBe(200);
    m.pcp[pb + PCP_FREE_COUNT] = 1000;
    expect(nrPcpFree(m, pb, batch, 500)).toBe(500 - batch);
    expect(nrPcpFree(m, pb, batch, batch - 1)).toBe(1); // pcp disabled or the boot pageset
  });

  it('nr_pcp_high(): clamps pcp->high, grows it to hold the pages freed in a row, shrinks it below the high watermark', () => {
    const { m, pb, zb, batch, min, max } = setup();
    m.pcp[pb + PCP_HIGH] = 0; // BOOT_PAGESET_HIGH until first use
    expect(nrPcpHigh(m, ZONE_MOVABLE, pb, batch)).toBe(min);
    expect(m.pcp[pb + PCP_HIGH]).toBe(min);
    // a full list after many frees in a row: high grows to free_count + batch, this free still frees
    m.pcp[pb + PCP_COUNT] = min;
    m.pcp[pb + PCP_FREE_COUNT] = min + 100;
    expect(nrPcpHigh(m, ZONE_MOVABLE, pb, batch)).toBe(min);
    expect(m.pcp[pb + PCP_HIGH]).toBe(Math.min(min + 100 + batch, max));
    // ZONE_BELOW_HIGH: high drops by the pages freed in a row (at least batch), never below high_min
    m.zones[zb + Z_FLAGS] = ZONE_BELOW_HIGH;
    m.pcp[pb + PCP_HIGH] = max;
    m.pcp[pb + PCP_FREE_COUNT] = 10;
    m.pcp[pb + PCP_COUNT] = 5;
    expect(nrPcpHigh(m, ZONE_MOVABLE, pb, batch)).toBe(min); // max(count, high_min)
    expect(m.pcp[pb + PCP_HIGH]).toBe(Math.max(max - batch, min));
    m.pcp[pb + PCP_COUNT] = 0;
    m.zones[zb + Z_FLAGS] = 0;
  });

  it('nr_pcp_alloc(): the refill doubles while allocations come without frees, and pcp->high grows with it', () => {
    const { m, pb, zb, batch, min, max } = setup();
    m.pcp[pb + PCP_HIGH] = min;
    expect(nrPcpAlloc(m, ZONE_MOVABLE, pb)).toBe(batch);
    expect(m.pcp[pb + PCP_HIGH]).toBe(Math.min(min + batch, max));
    expect(m.pcp[pb + PCP_ALLOC_FACTOR]).toBe(1);
    expect(nrPcpAlloc(m, ZONE_MOVABLE, pb)).toBe(Math.min(batch << 1, Math.min(min + 3 * batch, max) - batch));
    // below the high watermark pcp->high stays put
    m.zones[zb + Z_FLAGS] = ZONE_BELOW_HIGH;
    const high = m.pcp[pb + PCP_HIGH]!;
    nrPcpAlloc(m, ZONE_MOVABLE, pb);
    expect(m.pcp[pb + PCP_HIGH]).toBe(high);
    m.zones[zb + Z_FLAGS] = 0;
    // a free halves the factor (free_unref_page_commit())
    const before = m.pcp[pb + PCP_ALLOC_FACTOR]!;
    freePages(m, allocPages(m, GFP_HIGHUSER_MOVABLE, 0), 0);
    expect(m.pcp[pb + PCP_ALLOC_FACTOR]).toBeLessThan(Math.max(before, 1) + 1);
  });

  it('decay_pcp_high(): pcp->high drops by an eighth toward high_min and what lies above it is freed', () => {
    const { m, pb, batch, min } = setup();
    const got: number[] = [];
    for (let i = 0; i < 2000; i++) got.push(allocPages(m, GFP_HIGHUSER_MOVABLE, 0));
    for (const p of got) freePages(m, p, 0);
    const high = m.pcp[pb + PCP_HIGH]!;
    const count = m.pcp[pb + PCP_COUNT]!;
    expect(high).toBeGreaterThan(min); // the frees in a row raised it
    const want = Math.max(count - (batch << 5), high - (high >> 3), min);
    expect(decayPcpHigh(m, ZONE_MOVABLE, current().cpu)).toBe(true);
    expect(m.pcp[pb + PCP_HIGH]).toBe(want);
    expect(m.pcp[pb + PCP_COUNT]).toBe(Math.min(count, want));
    for (let i = 0; i < 100 && decayPcpHigh(m, ZONE_MOVABLE, current().cpu); i++);
    expect(m.pcp[pb + PCP_HIGH]).toBe(min);
    expect(checkAllocator(m).errors).toEqual([]);
  });

  it('ZONE_BELOW_HIGH: set by an allocation below the high watermark, cleared by a bulk free above it', () => {
    const m = boot(CMD, MINI);
    const zb = m.zoneBase(ZONE_MOVABLE);
    expect(m.zones[zb + Z_FLAGS]! & ZONE_BELOW_HIGH).toBe(0);
    const got = drainTo(m, GFP_HIGHUSER_MOVABLE);
    expect(m.zones[zb + Z_FLAGS]! & ZONE_BELOW_HIGH).toBe(ZONE_BELOW_HIGH);
    for (const p of got) freePages(m, p, 0);
    expect(m.zones[zb + Z_FLAGS]! & ZONE_BELOW_HIGH).toBe(0);
  });
});

describe('__setup_per_zone_wmarks() per version (mm/page_alloc.c)', () => {
  // pages_min = 1024 KiB >> 2 = 256 pages; watermark_scale_factor 10 (0.1%)
  const WCMD = 'mem=64M movablecore=32M sysctl.vm.min_free_kbytes=1024';
  function wmarks(spec: string) {
    const prev = setVariant(parseVariant(spec));
    try {
      const m = boot(WCMD, MINI);
      return (['DMA', 'DMA32', 'Normal', 'Movable'] as const).map((n) => zone(m, n));
    } finally {
      setVariant(prev);
    }
  }
  /** the formula by hand: min (proportional share or the movable cap), low = min + d, high = low + d */
  function expected(zs: { managed: number }[], movableInLowmem: boolean) {
    const lowmem = zs.reduce((a, z, i) => a + (i === 3 && !movableInLowmem ? 0 : z.managed), 0);
    return zs.map((z, i) => {
      const tmp = Math.floor((256 * z.managed) / lowmem);
      const min = i === 3 && !movableInLowmem ? Math.min(128, Math.max(32, Math.floor(z.managed / 1024))) : tmp;
      const d = Math.max(tmp >> 2, Math.floor((z.managed * 10) / 10000));
      return { min, low: min + d, high: min + 2 * d };
    });
  }

  it('6.12: ZONE_MOVABLE left out of lowmem_pages, its min capped to managed/1024 in [32, 128]', () => {
    const zs = wmarks('v6.12');
    expect(zs[3]!.managed).toBeGreaterThan(0);
    expect(zs.map((z) => ({ min: z.min, low: z.low, high: z.high }))).toEqual(expected(zs, false));
    expect(zs[3]!.min).toBe(32); // 8192 managed / 1024 = 8, clamped up to SWAP_CLUSTER_MAX
  });

  it('6.1: ZONE_MOVABLE counted in lowmem_pages and given its proportional min', () => {
    const zs = wmarks('v6.1');
    expect(zs.map((z) => ({ min: z.min, low: z.low, high: z.high }))).toEqual(expected(zs, true));
    // the four shares add up to pages_min (less rounding), about half of it in ZONE_MOVABLE
    const sum = zs.reduce((a, z) => a + z.min, 0);
    expect(sum).toBeLessThanOrEqual(256);
    expect(sum).toBeGreaterThan(252);
    expect(zs[3]!.min).toBeGreaterThan(100);
    expect(wmarks('v5.13')[3]!.min).toBe(zs[3]!.min); // older releases as 6.1
  });
});

describe('allocstall and htlb_buddy_alloc counters (/proc/vmstat)', () => {
  it('a direct reclaim counts allocstall_<reclaim_idx> once, the retry after its drain included; no reclaim, no count', () => {
    const m = boot(CMD, MINI);
    const stall = () => {
      const s = vmstatSnapshot(m);
      return [s.allocstall_normal, s.allocstall_movable];
    };
    expect(drainTo(m, GFP_HIGHUSER_MOVABLE).length).toBeGreaterThan(100);
    const [normal0, movable0] = stall();
    expect(movable0).toBeGreaterThanOrEqual(1); // the failed last request, and any the drain saved
    expect(normal0).toBe(0);
    // one more failing request: one direct reclaim (__GFP_NORETRY: no retry), its drain's retry not counted again
    expect(allocPages(m, GFP_HIGHUSER_MOVABLE | __GFP_NORETRY, 0)).toBe(NO_PAGE);
    expect(stall()).toEqual([0, movable0! + 1]);
    expect(allocPages(m, GFP_ATOMIC, 0)).not.toBe(NO_PAGE); // no __GFP_DIRECT_RECLAIM: never reclaims
    expect(stall()).toEqual([0, movable0! + 1]);
    drainTo(m, GFP_KERNEL);
    expect(stall()[0]).toBeGreaterThanOrEqual(1);
    expect(stall()[1]).toBe(movable0! + 1);
  });

  it('alloc_buddy_hugetlb_folio(): the boot pool and a temporary folio for migration count success or failure', () => {
    const m = boot(`${CMD} hugepages=3`, MINI);
    expect(vmstatSnapshot(m).htlb_buddy_alloc_success).toBe(3);
    expect(vmstatSnapshot(m).htlb_buddy_alloc_fail).toBe(0);
    const got: number[] = [];
    for (let p = allocMigrateHugetlbFolio(m, 3); p !== NO_PAGE; p = allocMigrateHugetlbFolio(m, 3)) got.push(p);
    const s = vmstatSnapshot(m);
    expect(s.htlb_buddy_alloc_success).toBe(3 + got.length);
    expect(s.htlb_buddy_alloc_fail).toBe(1);
  });
});
