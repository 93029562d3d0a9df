// The per-CPU THP lists (mm/page_alloc.c since 44042b449872, v5.13): pageblock_order blocks are cached
// per CPU like order-0 pages, one list for MIGRATE_MOVABLE (CMA counts as movable there) and one for the
// other types (bf14ed81f571, v6.10); R16 is 5d0a661d808f's single list for all of them.
import {
  allocPages,
  freePages,
  NO_PAGE,
  drainAllPages,
  zonePcpCount,
  zonePcpDisable,
  zonePcpEnable,
  nrPcpAlloc,
} from '../../../mm/page_alloc';
import { GFP_HIGHUSER_MOVABLE, GFP_TRANSHUGE, GFP_USER, __GFP_COMP } from '../../../mm/gfp';
import { ZONE_NORMAL, ZONE_MOVABLE, MIGRATE_CMA, MIGRATE_ISOLATE, MIGRATE_MOVABLE } from '../../../mm/mmzone';
import { current, memallocPinSave, memallocPinRestore } from '../../../mm/sched';
import {
  Memmap,
  PG_buddy,
  PG_pcp,
  PCP_COUNT,
  PCP_BATCH,
  PCP_HIGH,
  PCP_HIGH_MIN,
  PCP_HIGH_MAX,
  PCP_FREE_COUNT,
  PCP_LISTS,
  Z_NR_FREE,
  pcpBase,
} from '../../../mm/memmap';
import { startIsolatePageRange, undoIsolatePageRange } from '../../../mm/page_isolation';
import { checkAllocator } from '../../../properties/allocator_sound';
import { boot, withVariant } from '../../helpers';
import { parseVariant } from '../../../mm/variants';

// One CPU, so pcp->high may reach 31 pages (high_max: an eighth of the zone) and hold an 8-page THP;
// it starts at high_min (5: the low watermark), and roomForThp() stands for the frees in a row that
// grow it (nr_pcp_high()). CMA is most of memory: movable requests take CMA first (__rmqueue()).
const CMA_CMD = 'mem=1M cma=640K@384K sysctl.vm.min_free_kbytes=16 transparent_hugepage=always';
const GEOM = 'mini,cpus=1';
const THP_MOVABLE = GFP_HIGHUSER_MOVABLE | __GFP_COMP;

/** pcp->high at high_max, as a run of frees leaves it: a THP freed now stays on the list. */
function roomForThp(m: Memmap): void {
  const pb = pcpBase(m, current().cpu, ZONE_NORMAL);
  m.pcp[pb + PCP_HIGH] = m.pcp[pb + PCP_HIGH_MAX]!;
}

/** A THP in a CMA pageblock (movable requests prefer CMA on this machine). */
function cmaThp(m: Memmap): number {
  const p = allocPages(m, THP_MOVABLE, m.pageblockOrder);
  expect(p).not.toBe(NO_PAGE);
  expect(m.getPageblockMigratetype(p)).toBe(MIGRATE_CMA);
  return p;
}

/** The long-term pin's migration target for a THP: GFP_TRANSHUGE inside memalloc_pin_save(). */
function pinTargetThp(m: Memmap): number {
  const saved = memallocPinSave();
  try {
    return allocPages(m, GFP_TRANSHUGE | __GFP_COMP, m.pageblockOrder);
  } finally {
    memallocPinRestore(saved);
  }
}

describe('per-CPU THP lists (free_unref_page, rmqueue_pcplist for pageblock_order)', () => {
  it('a freed THP stays on the per-CPU list (not NR_FREE_PAGES) and the next THP request takes it back', () => {
    const m = boot(CMA_CMD, GEOM);
    const pb = pcpBase(m, current().cpu, ZONE_NORMAL);
    drainAllPages(m);
    const p = cmaThp(m);
    const free = m.zones[m.zoneBase(ZONE_NORMAL) + Z_NR_FREE]!;
    roomForThp(m);
    freePages(m, p, m.pageblockOrder);
    expect(m.flags[p]! & PG_pcp).toBeTruthy();
    expect(m.pageOrder(p)).toBe(m.pageblockOrder);
    expect(m.pcp[pb + PCP_COUNT]).toBe(8);
    expect(m.zones[m.zoneBase(ZONE_NORMAL) + Z_NR_FREE]).toBe(free);
    expect(checkAllocator(m).errors).toEqual([]);
    expect(allocPages(m, THP_MOVABLE, m.pageblockOrder)).toBe(p);
    expect(m.pcp[pb + PCP_COUNT]).toBe(0);
    expect(m.flags[p]! & PG_pcp).toBe(0);
    expect(checkAllocator(m).errors).toEqual([]);
  });

  it('a CMA THP goes on the movable THP list; a non-movable (pin target) request does not get it', () => {
    const m = boot(CMA_CMD, GEOM);
    drainAllPages(m);
    const pb = pcpBase(m, current().cpu, ZONE_NORMAL);
    const p = cmaThp(m);
    roomForThp(m);
    freePages(m, p, m.pageblockOrder);
    expect(m.pcp[pb + PCP_LISTS + 4]).toBe(p); // NR_LOWORDER_PCP_LISTS + movable
    expect(m.pcp[pb + PCP_LISTS + 3]).toBe(-1);
    const t = pinTargetThp(m);
    expect(t).not.toBe(NO_PAGE);
    expect(t).not.toBe(p);
    expect(m.getPageblockMigratetype(t)).not.toBe(MIGRATE_CMA);
    expect(m.flags[p]! & PG_pcp).toBeTruthy(); // still cached for movable requests
    expect(checkAllocator(m).errors).toEqual([]);
  });

  it('R16: one THP list for every migratetype, so the pin target is the CMA THP freed there', () => {
    withVariant('v6.12+R16', () => {
      const m = boot(CMA_CMD, GEOM);
      drainAllPages(m);
      const pb = pcpBase(m, current().cpu, ZONE_NORMAL);
      const p = cmaThp(m);
      roomForThp(m);
      freePages(m, p, m.pageblockOrder);
      expect(m.pcp[pb + PCP_LISTS + 3]).toBe(p); // NR_LOWORDER_PCP_LISTS: the only THP list
      const t = pinTargetThp(m);
      expect(t).toBe(p);
      expect(m.getPageblockMigratetype(t)).toBe(MIGRATE_CMA);
      expect(checkAllocator(m).errors).toEqual([]);
    });
  });

  it('v6.1 has R16 (fixed in 6.1.97); v5.12 caches no THP at all', () => {
    expect(parseVariant('v6.1').bugs.has('R16')).toBe(true);
    expect(parseVariant('v6.12').bugs.has('R16')).toBe(false);
    withVariant('v5.12', () => {
      const m = boot(CMA_CMD, GEOM, 'v5.12');
      drainAllPages(m);
      const p = allocPages(m, THP_MOVABLE, m.pageblockOrder);
      roomForThp(m);
      freePages(m, p, m.pageblockOrder);
      expect(m.flags[p]! & PG_pcp).toBe(0);
      expect(zonePcpCount(m, ZONE_NORMAL)).toBe(0);
    });
  });

  it('drain_all_pages() and zone_pcp_disable() empty the THP lists back into the buddy', () => {
    const m = boot(CMA_CMD, GEOM);
    drainAllPages(m);
    const zb = m.zoneBase(ZONE_NORMAL);
    const p = cmaThp(m);
    const free = m.zones[zb + Z_NR_FREE]!;
    roomForThp(m);
    freePages(m, p, m.pageblockOrder);
    expect(zonePcpCount(m, ZONE_NORMAL)).toBe(8);
    drainAllPages(m);
    expect(zonePcpCount(m, ZONE_NORMAL)).toBe(0);
    expect(m.zones[zb + Z_NR_FREE]).toBe(free + 8);
    expect(m.flags[p]! & PG_pcp).toBe(0);
    expect(checkAllocator(m).errors).toEqual([]);
    // the offline path: zone_pcp_disable() drains, and a THP freed meanwhile skips the list
    const q = cmaThp(m);
    roomForThp(m);
    freePages(m, q, m.pageblockOrder);
    expect(zonePcpCount(m, ZONE_NORMAL)).toBe(8);
    zonePcpDisable(m, ZONE_NORMAL);
    expect(zonePcpCount(m, ZONE_NORMAL)).toBe(0);
    const r = cmaThp(m);
    roomForThp(m);
    freePages(m, r, m.pageblockOrder);
    expect(zonePcpCount(m, ZONE_NORMAL)).toBe(0);
    expect(m.flags[r]! & PG_buddy).toBeTruthy();
    zonePcpEnable(m, ZONE_NORMAL);
    expect(checkAllocator(m).errors).toEqual([]);
  });

  it('a THP of an isolated pageblock goes straight to the buddy (the ISOLATE free list)', () => {
    const m = boot(CMA_CMD, GEOM);
    drainAllPages(m);
    const p = cmaThp(m);
    roomForThp(m);
    const start = p - (p % m.blockPages);
    expect(startIsolatePageRange(m, start, start + m.blockPages, MIGRATE_CMA, 0)).toBe(0);
    expect(m.getPageblockMigratetype(p)).toBe(MIGRATE_ISOLATE);
    freePages(m, p, m.pageblockOrder);
    expect(zonePcpCount(m, ZONE_NORMAL)).toBe(0);
    expect(m.flags[p]! & PG_buddy).toBeTruthy();
    undoIsolatePageRange(m, start, start + m.blockPages, MIGRATE_CMA);
    expect(checkAllocator(m).errors).toEqual([]);
  });

  it('past pcp->high the bulk free starts at the THP list: the THP goes back first, then the coldest order-0 pages', () => {
    const m = boot(CMA_CMD, GEOM);
    const pb = pcpBase(m, current().cpu, ZONE_NORMAL);
    const small: number[] = [];
    for (let i = 0; i < 10; i++) small.push(allocPages(m, GFP_USER, 0));
    const p = cmaThp(m);
    drainAllPages(m);
    for (const s of small) freePages(m, s, 0);
    expect(m.pcp[pb + PCP_COUNT]).toBe(10);
    const batch = m.pcp[pb + PCP_BATCH]!;
    const high = m.pcp[pb + PCP_HIGH_MIN]!;
    m.pcp[pb + PCP_HIGH] = high; // as low as it goes: 10 + 8 pages are past it
    expect(high).toBeLessThanOrEqual(18);
    const fc = m.pcp[pb + PCP_FREE_COUNT]! + 8;
    const nr = Math.min(Math.max(fc, batch), high - batch); // nr_pcp_free()
    freePages(m, p, m.pageblockOrder);
    expect(m.flags[p]! & PG_pcp).toBe(0);
    expect(m.flags[p]! & PG_buddy).toBeTruthy();
    const left = 10 - Math.max(0, nr - 8); // the THP counts 8 against nr
    expect(m.pcp[pb + PCP_COUNT]).toBe(left);
    // list_add() put each at the head: the first freed are the coldest and went back first
    small.forEach((s, i) => expect(!!(m.flags[s]! & PG_pcp)).toBe(i >= 10 - left));
    expect(checkAllocator(m).errors).toEqual([]);
  });

  it('nr_pcp_alloc() for a THP: batch >> order, at least 2; the first THP on x86 leaves a second on the list', () => {
    const m = boot('mem=1G movablecore=512M pinlab.kmem=none transparent_hugepage=always');
    const pb = pcpBase(m, current().cpu, ZONE_MOVABLE);
    const batch = m.pcp[pb + PCP_BATCH]!;
    expect(batch).toBeGreaterThan(1);
    expect(nrPcpAlloc(m, ZONE_MOVABLE, pb, m.pageblockOrder)).toBe(Math.max(batch >> m.pageblockOrder, 2));
    drainAllPages(m);
    const p = allocPages(m, THP_MOVABLE, m.pageblockOrder);
    expect(m.pageZonenum(p)).toBe(ZONE_MOVABLE);
    expect(m.getPageblockMigratetype(p)).toBe(MIGRATE_MOVABLE);
    expect(zonePcpCount(m, ZONE_MOVABLE)).toBe(512); // rmqueue_bulk() took two
    freePages(m, p, m.pageblockOrder);
    expect(checkAllocator(m).errors).toEqual([]);
  });
});
