import { boot, withVariant } from '../../helpers';
import {
  bprmMmInit,
  doMmap,
  doMunmap,
  dupMm,
  doMadvise,
  MADV_DONTNEED,
  PROT_READ,
  PROT_WRITE,
  exitMmap,
} from '../../../mm/mmap';
import { folioPartiallyMapped } from '../../../mm/rmap';
import { setYieldHook } from '../../../mm/sched';
import { getUser, putUser } from '../../../mm/memory';
import {
  migrateRange,
  migratePages,
  isolateFolio,
  allocMigrationTarget,
  putbackMovablePages,
  MIGRATE_REASON_NAMES,
  MR_TYPES,
  MR_COMPACTION,
  NR_MAX_MIGRATE_PAGES_RETRY,
  MigrateStats,
} from '../../../mm/migrate';
import { Memmap, PG_head, PG_lru } from '../../../mm/memmap';
import { ZONE_MOVABLE, ZONE_NORMAL } from '../../../mm/mmzone';
import { EAGAIN, ENOMEM } from '../../../mm/errno';
import { folioPut, lruAddDrainAll } from '../../../mm/swap';
import { vmstatSnapshot } from '../../../mm/vmstat';
import { GFP_HIGHUSER, GFP_KERNEL, __GFP_NORETRY } from '../../../mm/gfp';
import { GUP_PIN_COUNTING_BIAS } from '../../../mm/pinnable';
import { drainAllPages, allocPages, freePages, NO_PAGE } from '../../../mm/page_alloc';
import { checkAllocator } from '../../../properties/allocator_sound';
import { pfnOf } from '../../../mm/memory';
import { folioGet } from '../../../mm/page_ref';

const MINI = 'mini';
const CMD = 'mem=1M movablecore=512K sysctl.vm.min_free_kbytes=16';
const RW = PROT_READ | PROT_WRITE;

function setup(cmd = CMD, n = 8): { m: Memmap; mm: number; v: number } {
  const m = boot(cmd, MINI);
  const mm = bprmMmInit(m);
  const v = doMmap(m, mm, { nrPages: n, prot: RW });
  for (let i = 0; i < n; i++) putUser(m, mm, v + i, 500 + i);
  return { m, mm, v };
}

describe('migrate_pages (mm/migrate.c)', () => {
  it('every migration reason has a name (R7: the tables match the enum)', () => {
    expect(MIGRATE_REASON_NAMES).toHaveLength(MR_TYPES);
    expect(MIGRATE_REASON_NAMES[7]).toBe('longterm_pin');
  });

  it('moves mapped anonymous pages out of ZONE_MOVABLE; the process reads the same values', () => {
    const { m, mm, v } = setup();
    expect(m.pageZonenum(pfnOf(m, mm, v))).toBe(ZONE_MOVABLE);
    const r = migrateRange(m, mm, v, 8, 'kernel');
    expect(r).toEqual({ rc: 0, migrated: 8, failed: 0 });
    for (let i = 0; i < 8; i++) {
      expect(m.pageZonenum(pfnOf(m, mm, v + i))).toBe(ZONE_NORMAL);
      expect(getUser(m, mm, v + i)).toBe(500 + i);
    }
    expect(vmstatSnapshot(m).pgmigrate_success).toBe(8);
    expect(vmstatSnapshot(m).nr_isolated_anon).toBe(0);
  });

  it('an extra reference makes the refcount freeze fail: -EAGAIN for every pass, nothing lost', () => {
    const { m, mm, v } = setup();
    const p = pfnOf(m, mm, v + 2);
    folioGet(m, p);
    const list: number[] = [];
    lruAddDrainAll(m);
    expect(isolateFolio(m, p)).toBe(true);
    list.push(p);
    const stats: MigrateStats = { nrSucceeded: 0, nrFailedPages: 0, nrThpSplit: 0, failures: [] };
    expect(migratePages(m, list, allocMigrationTarget(GFP_HIGHUSER), { reason: MR_COMPACTION, stats })).toBe(1);
    expect(stats.failures).toEqual([
      { pfn: p, rc: -EAGAIN, why: expect.stringMatching(/extra references: refcount 2, expected 1/) },
    ]);
    expect(list).toEqual([p]);
    putbackMovablePages(m, list);
    expect(m.flags[p]! & PG_lru).toBeTruthy();
    expect(pfnOf(m, mm, v + 2)).toBe(p);
    expect(getUser(m, mm, v + 2)).toBe(502);
    expect(vmstatSnapshot(m).pgmigrate_fail).toBe(1);
    folioPut(m, p);
    drainAllPages(m);
    expect(checkAllocator(m).errors).toEqual([]);
    expect(NR_MAX_MIGRATE_PAGES_RETRY).toBe(10);
  });

  it('an anonymous page that may be DMA-pinned is not unmapped (try_to_migrate_one refuses to unshare it)', () => {
    const { m, mm, v } = setup();
    const p = pfnOf(m, mm, v);
    Atomics.add(m.refcount, p, GUP_PIN_COUNTING_BIAS);
    const r = migrateRange(m, mm, v, 1, 'kernel');
    expect(r.failed).toBe(1);
    expect(pfnOf(m, mm, v)).toBe(p);
    Atomics.sub(m.refcount, p, GUP_PIN_COUNTING_BIAS);
    expect(migrateRange(m, mm, v, 1, 'kernel').migrated).toBe(1);
  });

  it('a folio still in a per-CPU LRU batch cannot be isolated', () => {
    const m = boot(CMD, MINI);
    const mm = bprmMmInit(m);
    const v = doMmap(m, mm, { nrPages: 1, prot: RW });
    putUser(m, mm, v, 1);
    const p = pfnOf(m, mm, v);
    expect(m.flags[p]! & PG_lru).toBeFalsy();
    expect(isolateFolio(m, p)).toBe(false);
    lruAddDrainAll(m);
    expect(isolateFolio(m, p)).toBe(true);
    putbackMovablePages(m, [p]);
  });

  it('a THP that cannot get a huge target is split and its base pages migrated (thp_migration_split)', () => {
    const { m, mm, v } = setup(`${CMD} transparent_hugepage=always`, 8);
    expect(m.flags[pfnOf(m, mm, v)]! & PG_head).toBeTruthy();
    // fragment the kernel zone: plenty of free order-0 pages, no free order-3 block
    const held: number[] = [];
    for (
      let p = allocPages(m, GFP_KERNEL | __GFP_NORETRY, 0);
      p !== NO_PAGE;
      p = allocPages(m, GFP_KERNEL | __GFP_NORETRY, 0)
    )
      held.push(p);
    held
      .sort((a, b) => a - b)
      .forEach((p, i) => {
        if (i % 2) freePages(m, p, 0);
      });
    drainAllPages(m);
    const r = migrateRange(m, mm, v, 8, 'kernel');
    const s = vmstatSnapshot(m);
    expect(s.thp_migration_split).toBe(1);
    expect(s.thp_split_page).toBe(1);
    expect(r.migrated).toBe(8);
    for (let i = 0; i < 8; i++) {
      expect(m.flags[pfnOf(m, mm, v + i)]! & PG_head).toBeFalsy();
      expect(m.pageZonenum(pfnOf(m, mm, v + i))).toBe(ZONE_NORMAL);
      expect(getUser(m, mm, v + i)).toBe(500 + i);
    }
  });

  it('with a free order-3 block in the kernel zone, the THP migrates whole', () => {
    const { m, mm, v } = setup(`${CMD} transparent_hugepage=always`, 8);
    const r = migrateRange(m, mm, v, 8, 'kernel');
    expect(r.migrated).toBe(8);
    expect(vmstatSnapshot(m).thp_migration_success).toBe(1);
    expect(m.flags[pfnOf(m, mm, v)]! & PG_head).toBeTruthy();
    expect(m.pageZonenum(pfnOf(m, mm, v))).toBe(ZONE_NORMAL);
  });

  it.each([
    ['v6.12', 0, 1],
    ['v6.1', 1, 0],
  ])(
    'a partially mapped THP (a page of it unmapped): %s migrates it whole %d times, splits it %d (v6.10: deferred split)',
    (variant, whole, split) => {
      withVariant(variant, () => {
        const { m, mm, v } = setup(`${CMD} transparent_hugepage=always`, 8);
        expect(m.flags[pfnOf(m, mm, v)]! & PG_head).toBeTruthy();
        expect(doMunmap(m, mm, v + 5, 1)).toBe(0);
        expect(folioPartiallyMapped(m, pfnOf(m, mm, v))).toBe(true);
        const r = migrateRange(m, mm, v, 5, 'kernel');
        const s = vmstatSnapshot(m);
        expect([s.thp_migration_success, s.thp_migration_split, s.thp_split_page]).toEqual([whole, split, split]);
        expect(r.migrated).toBe(8); // the unmapped page too: freed under the migration, it counts as moved
        for (let i = 0; i < 8; i++) {
          if (i === 5) continue;
          expect(m.pageZonenum(pfnOf(m, mm, v + i))).toBe(ZONE_NORMAL);
          expect(getUser(m, mm, v + i)).toBe(500 + i);
        }
      });
    },
  );

  it('-ENOMEM stops the passes; the folios waiting for another pass go back on the list with the rest', () => {
    const { m, mm, v } = setup();
    const busy = pfnOf(m, mm, v + 1); // an extra reference: -EAGAIN, kept for the next pass
    const next = pfnOf(m, mm, v + 2);
    folioGet(m, busy);
    lruAddDrainAll(m);
    const list = [busy, next];
    for (const p of list) expect(isolateFolio(m, p)).toBe(true);
    let calls = 0;
    const target = allocMigrationTarget(GFP_HIGHUSER);
    // a target for the first folio, none for the second: -ENOMEM in the middle of the first pass
    const getNew = (mm2: Memmap, src: number): number => (calls++ === 0 ? target(mm2, src) : NO_PAGE);
    expect(migratePages(m, list, getNew, { reason: MR_COMPACTION })).toBe(-ENOMEM);
    expect([...list].sort((a, b) => a - b)).toEqual([busy, next].sort((a, b) => a - b));
    putbackMovablePages(m, list);
    for (const p of [busy, next]) expect(m.flags[p]! & PG_lru).toBeTruthy(); // none left isolated
    expect([getUser(m, mm, v + 1), getUser(m, mm, v + 2)]).toEqual([501, 502]);
    folioPut(m, busy);
    drainAllPages(m);
    expect(checkAllocator(m).errors).toEqual([]);
  });

  it('with no target memory at all, migrate_pages stops with -ENOMEM and the folios stay', () => {
    const { m, mm, v } = setup();
    // exhaust the kernel zone with kernel allocations (a faulting hog would be OOM-killed and reaped)
    const held: number[] = [];
    for (
      let p = allocPages(m, GFP_KERNEL | __GFP_NORETRY, 0);
      p !== NO_PAGE;
      p = allocPages(m, GFP_KERNEL | __GFP_NORETRY, 0)
    )
      held.push(p);
    const r = migrateRange(m, mm, v, 8, 'kernel');
    expect(r.rc).toBe(-ENOMEM);
    for (let i = 0; i < 8; i++) expect(getUser(m, mm, v + i)).toBe(500 + i);
    for (const p of held) freePages(m, p, 0);
  });
});

describe('a fault racing with migration (filemap_get_entry, __anon_vma_prepare)', () => {
  it('a shmem fault that meets a folio migration has frozen takes no reference on it (folio_try_get) and maps the new folio once it is done', () => {
    const m = boot(CMD, MINI);
    const parent = bprmMmInit(m);
    const v = doMmap(m, parent, { nrPages: 2, prot: RW, shared: true });
    expect(putUser(m, parent, v, 4242)).toBe(4242);
    const child = dupMm(m, parent);
    expect(doMadvise(m, child, v, 1, MADV_DONTNEED)).toBe(0); // the child faults the page cache folio in again
    const src = pfnOf(m, parent, v);
    lruAddDrainAll(m);
    expect(isolateFolio(m, src)).toBe(true);
    const list = [src];
    let during = 0;
    const prev = setYieldHook((label) => {
      if (label !== 'migrate:freeze') return;
      expect(m.refcount[src]).toBe(0); // folio_ref_freeze() holds
      during = getUser(m, child, v);
      expect(m.refcount[src]).toBe(0); // still frozen: the fault took no reference
      expect(pfnOf(m, child, v)).toBe(-1);
    });
    try {
      expect(migratePages(m, list, allocMigrationTarget(GFP_HIGHUSER), { reason: MR_COMPACTION })).toBe(0);
    } finally {
      setYieldHook(prev);
    }
    expect(during).toBeLessThan(0); // pinlab bounds the retries a single-threaded test would spin through
    const dst = pfnOf(m, parent, v);
    expect(dst).not.toBe(src);
    expect(getUser(m, child, v)).toBe(4242);
    expect(pfnOf(m, child, v)).toBe(dst);
    lruAddDrainAll(m);
    expect([m.refcount[dst], m.mapcount[dst]]).toEqual([3, 2]); // the page cache and two mappings
    expect([m.refcount[src], m.mapcount[src]]).toEqual([0, 0]);
    exitMmap(m, child);
    exitMmap(m, parent);
    drainAllPages(m);
    expect(checkAllocator(m).errors).toEqual([]);
  });
});
