// R11: can_split_folio() fails a THP split with -EAGAIN while someone holds a transient extra reference
// (mm/huge_memory.ts holdTransientRef), and migrate_pages() retries that split for a long-term pin
// (fd4a7ac32918) instead of ending the migration with -ENOMEM; R11 switches the retry off.
import { boot } from '../../helpers';
import { bprmMmInit, doMmap, exitMmap, PROT_READ, PROT_WRITE } from '../../../mm/mmap';
import { putUser, getUser, followPte } from '../../../mm/memory';
import {
  migratePages,
  isolateFolio,
  allocMigrationTarget,
  putbackMovablePages,
  MR_LONGTERM_PIN,
  MR_MEMORY_HOTPLUG,
  MigrateStats,
  NR_MAX_MIGRATE_PAGES_RETRY,
} from '../../../mm/migrate';
import {
  splitFolio,
  canSplitFolio,
  holdTransientRef,
  transientRefsHeld,
  dropTransientRefs,
} from '../../../mm/huge_memory';
import { Memmap, PG_head } from '../../../mm/memmap';
import { lruAddDrainAll } from '../../../mm/swap';
import { GFP_HIGHUSER } from '../../../mm/gfp';
import { drainAllPages, NO_PAGE } from '../../../mm/page_alloc';
import { vmstatSnapshot } from '../../../mm/vmstat';
import { ptlLock, ptlUnlock } from '../../../mm/mm_types';
import { folioOrder } from '../../../mm/page_ref';
import { EAGAIN, ENOMEM } from '../../../mm/errno';
import { parseVariant, setVariant } from '../../../mm/variants';
import { checkAllocator } from '../../../properties/allocator_sound';

const CMD = 'mem=1M movablecore=512K sysctl.vm.min_free_kbytes=16 transparent_hugepage=always';
const RW = PROT_READ | PROT_WRITE;

/** A PMD-mapped 8-page THP, isolated (as migrate_pages() gets it). */
function isolatedThp(): { m: Memmap; mm: number; v: number; head: number } {
  const m = boot(CMD, 'mini');
  drainAllPages(m);
  const mm = bprmMmInit(m);
  const v = doMmap(m, mm, { nrPages: 8, prot: RW });
  for (let i = 0; i < 8; i++) putUser(m, mm, v + i, 900 + i);
  ptlLock(m, mm);
  const t = followPte(m, mm, v)!;
  ptlUnlock(m, mm);
  expect(t.huge).toBe(true);
  const head = t.pfn;
  expect(m.flags[head]! & PG_head).toBeTruthy();
  lruAddDrainAll(m);
  expect(isolateFolio(m, head)).toBe(true);
  return { m, mm, v, head };
}

/** Targets of order 0 only: a THP gets -ENOMEM and is split (the kernel zones' memory fragmented). */
function smallTargetsOnly() {
  const small = allocMigrationTarget(GFP_HIGHUSER);
  return (mm: Memmap, src: number): number => (folioOrder(mm, src) > 0 ? NO_PAGE : small(mm, src));
}

function newStats(): MigrateStats {
  return { nrSucceeded: 0, nrFailedPages: 0, nrThpSplit: 0, failures: [] };
}

function finish(m: Memmap, mm: number, list: number[]): void {
  if (list.length) putbackMovablePages(m, list);
  dropTransientRefs(m);
  exitMmap(m, mm);
  lruAddDrainAll(m);
  drainAllPages(m);
  expect(checkAllocator(m).errors).toEqual([]);
}

describe('can_split_folio() and a transient reference', () => {
  it('an extra reference fails the split with -EAGAIN until its holder lets go, then the split succeeds', () => {
    const { m, mm, v, head } = isolatedThp();
    expect(canSplitFolio(m, head, 1)).toBe(true);
    const refs = m.refcount[head]!;
    holdTransientRef(m, head, 2);
    expect(m.refcount[head]).toBe(refs + 1);
    expect(canSplitFolio(m, head, 1)).toBe(false);
    expect(splitFolio(m, head)).toBe(-EAGAIN);
    expect(transientRefsHeld(m)).toEqual([[head, 1]]);
    expect(m.flags[head]! & PG_head).toBeTruthy(); // untouched: still a mapped THP
    expect(getUser(m, mm, v + 3)).toBe(903);
    expect(splitFolio(m, head)).toBe(-EAGAIN);
    expect(transientRefsHeld(m)).toEqual([]); // the second failure was its last: the reference is gone
    expect(m.refcount[head]).toBe(refs);
    expect(splitFolio(m, head)).toBe(0);
    const s = vmstatSnapshot(m);
    expect([s.thp_split_page_failed, s.thp_split_page]).toEqual([2, 1]);
    for (let i = 0; i < 8; i++) expect(getUser(m, mm, v + i)).toBe(900 + i);
    finish(
      m,
      mm,
      Array.from({ length: 8 }, (_, i) => head + i),
    );
  });
});

describe('migrate_pages(): a THP split failing on a transient reference (R11)', () => {
  afterEach(() => {
    setVariant(parseVariant('v6.12'));
  });

  it('fixed: a long-term pin retries the split next pass and every page migrates; the split THP counts as failed once', () => {
    const { m, mm, v, head } = isolatedThp();
    holdTransientRef(m, head, 1);
    const list = [head];
    const stats = newStats();
    const rc = migratePages(m, list, smallTargetsOnly(), { reason: MR_LONGTERM_PIN, stats });
    expect(rc).toBe(0);
    expect(list).toEqual([]);
    expect([stats.nrThpSplit, stats.nrSucceeded, stats.nrFailedPages]).toEqual([1, 8, 0]);
    const s = vmstatSnapshot(m);
    expect([s.thp_split_page_failed, s.thp_migration_split, s.thp_migration_fail, s.pgmigrate_fail]).toEqual([
      1, 1, 1, 0,
    ]);
    for (let i = 0; i < 8; i++) expect(getUser(m, mm, v + i)).toBe(900 + i);
    finish(m, mm, list);
  });

  it('R11: the failed split ends the migration with -ENOMEM at once; the THP stays on the list, failed', () => {
    setVariant(parseVariant('v6.12+R11'));
    const { m, mm, head } = isolatedThp();
    holdTransientRef(m, head, 1);
    const list = [head];
    const stats = newStats();
    const rc = migratePages(m, list, smallTargetsOnly(), { reason: MR_LONGTERM_PIN, stats });
    expect(rc).toBe(-ENOMEM);
    expect(list).toEqual([head]);
    expect([stats.nrThpSplit, stats.nrSucceeded, stats.nrFailedPages]).toEqual([0, 0, 8]);
    const s = vmstatSnapshot(m);
    expect([s.thp_split_page_failed, s.thp_migration_split, s.thp_migration_fail, s.pgmigrate_fail]).toEqual([
      1, 0, 1, 8,
    ]);
    finish(m, mm, list);
  });

  it('the retry is for long-term pins only: memory hotplug fails with -ENOMEM on the fixed kernel too', () => {
    const { m, mm, head } = isolatedThp();
    holdTransientRef(m, head, 1);
    const list = [head];
    const rc = migratePages(m, list, smallTargetsOnly(), { reason: MR_MEMORY_HOTPLUG, stats: newStats() });
    expect(rc).toBe(-ENOMEM);
    expect(list).toEqual([head]);
    finish(m, mm, list);
  });

  it('a reference outlasting every pass: the THP fails once after NR_MAX_MIGRATE_PAGES_RETRY passes, counted once', () => {
    const { m, mm, head } = isolatedThp();
    holdTransientRef(m, head, 100);
    const list = [head];
    const stats = newStats();
    const rc = migratePages(m, list, smallTargetsOnly(), { reason: MR_LONGTERM_PIN, stats });
    expect(rc).toBe(1);
    expect(list).toEqual([head]);
    expect(stats.failures).toEqual([{ pfn: head, rc: -EAGAIN, why: 'THP split failed: extra references' }]);
    expect(transientRefsHeld(m)).toEqual([[head, 100 - NR_MAX_MIGRATE_PAGES_RETRY]]);
    const s = vmstatSnapshot(m);
    expect([s.thp_split_page_failed, s.thp_migration_fail, s.pgmigrate_fail]).toEqual([
      NR_MAX_MIGRATE_PAGES_RETRY,
      1,
      8,
    ]);
    finish(m, mm, list);
  });
});
