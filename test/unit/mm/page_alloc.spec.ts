import { allocPages, freePages, NO_PAGE, drainAllPages, zonePcpCount } from '../../../mm/page_alloc';
import {
  GFP_KERNEL,
  GFP_ATOMIC,
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
import { memallocPinSave, memallocPinRestore } from '../../../mm/sched';
import { Memmap, PG_head, PG_tail, Z_MANAGED } from '../../../mm/memmap';
import { checkAllocator } from '../../../properties/allocator_sound';
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
    drainAllPages(m);
    const after = zone(m, 'Normal');
    expect(atomic.length).toBeGreaterThan(0);
    // __zone_watermark_ok(): min -= min / 2, then ALLOC_NON_BLOCK (no direct reclaim) takes a quarter more
    expect(after.free).toBeLessThan(z.min - Math.floor(z.min / 2) + 1);
    expect(after.free).toBeGreaterThanOrEqual(Math.floor((z.min - Math.floor(z.min / 2)) * 0.75) - 1);
  });

  it('GFP_HIGHUSER_MOVABLE prefers ZONE_MOVABLE, then falls back to Normal', () => {
    const m = boot(CMD, MINI);
    const got = drainTo(m, GFP_HIGHUSER_MOVABLE);
    const inMovable = got.filter((p) => m.pageZonenum(p) === ZONE_MOVABLE).length;
    expect(got[0] !== undefined && m.pageZonenum(got[0])).toBe(ZONE_MOVABLE);
    // ZONE_MOVABLE keeps its min watermark: clamp(managed/1024, SWAP_CLUSTER_MAX, 128) = 32 pages
    expect(inMovable).toBe(zone(m, 'Movable').managed - zone(m, 'Movable').min);
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
