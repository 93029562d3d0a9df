// Migration entries met by fork and by zap (mm/memory.c, mm/huge_memory.c, mm/hugetlb.c, mm/migrate.c; v6.12).
// A yield hook (mm/sched.ts) runs fork or munmap while a folio is mid-migration: after try_to_migrate()
// installed the migration entries ('migrate:unmap') or after the data was copied ('migrate:copy').
//  - fork copies a migration entry as it is (copy_nonpresent_pte, copy_huge_pmd with a deposited table,
//    copy_hugetlb_page_range); in a COW mapping a writable entry becomes readable in parent and child
//    (make_readable_migration_entry), so the new folio is mapped shared and COW still holds;
//  - the child's copy counts in its RSS (rss[mm_counter(folio)]++, add_mm_counter(HPAGE_PMD_NR)) and a
//    zapped migration entry is uncounted (zap_nonpresent_ptes, zap_huge_pmd), while installing and
//    removing migration entries leaves RSS alone (try_to_migrate_one, remove_migration_pte).
import { boot, loopGuard } from '../../helpers';
import { bprmMmInit, doMmap, doMunmap, dupMm, exitMmap, PROT_READ, PROT_WRITE } from '../../../mm/mmap';
import { getUser, putUser, followPte } from '../../../mm/memory';
import {
  Memmap,
  MM_RSS_ANON,
  MM_RSS_SHMEM,
  MM_PGTABLES,
  H_PTE_FREE,
  PG_anon_exclusive,
  HS_FREE_HUGE_PAGES,
} from '../../../mm/memmap';
import { mmBase, ptlLock, ptlUnlock } from '../../../mm/mm_types';
import {
  isolateFolio,
  migratePages,
  allocMigrationTarget,
  putbackMovablePages,
  MR_SYSCALL,
  MigrateStats,
} from '../../../mm/migrate';
import { setYieldHook } from '../../../mm/sched';
import { GFP_HIGHUSER } from '../../../mm/gfp';
import { lruAddDrainAll } from '../../../mm/swap';
import { drainAllPages } from '../../../mm/page_alloc';
import { entireMapcount } from '../../../mm/rmap';
import { hstateBase } from '../../../mm/hugetlb';
import { oomBadness } from '../../../mm/oom_kill';
import { vmstatSnapshot } from '../../../mm/vmstat';
import { checkAllocator } from '../../../properties/allocator_sound';
import { mmuIntervalNotifierRemove } from '../../../mm/mmu_notifier';
import { folioOrder } from '../../../mm/page_ref';
import { pgtableDepositedCount, pmdIsHuge, PTE_PRESENT, PTE_WRITE, PFN_MASK } from '../../../mm/pgtable';

const BASE = 'mem=1M movablecore=512K sysctl.vm.min_free_kbytes=16';
const THP = `${BASE} transparent_hugepage=always`;
const HUGETLB = `${BASE} hugepages=4`;
const RW = PROT_READ | PROT_WRITE;
const LABELS = ['migrate:unmap', 'migrate:copy'] as const;

function usedFrames(m: Memmap): number {
  lruAddDrainAll(m);
  drainAllPages(m);
  const { census, errors } = checkAllocator(m);
  expect(errors).toEqual([]);
  return census.used.reduce((a, b) => a + b, 0);
}

function ptePoolFree(m: Memmap): number {
  let n = 0;
  for (let t = m.header[H_PTE_FREE]!; t >= 0; t = m.pteMeta[2 * t]!) n++;
  return n;
}

function rss(m: Memmap, mm: number): { anon: number; shmem: number } {
  return { anon: m.mms[mmBase(mm) + MM_RSS_ANON]!, shmem: m.mms[mmBase(mm) + MM_RSS_SHMEM]! };
}

function at(
  m: Memmap,
  mm: number,
  vpn: number,
): { pfn: number; huge: boolean; migrating: boolean; write: boolean } | null {
  ptlLock(m, mm);
  const t = followPte(m, mm, vpn);
  ptlUnlock(m, mm);
  return t ? { pfn: t.pfn, huge: t.huge, migrating: t.migrating, write: t.write } : null;
}

function pmdOf(m: Memmap, mm: number, vpn: number): number {
  return m.pmds[mm * m.vaPmds + (vpn >>> m.pmdOrder)]!;
}

function freeHuge(m: Memmap): number {
  return m.header[hstateBase(0) + HS_FREE_HUGE_PAGES]!;
}

/**
 * Migrate the folio at head (isolated here) to memory outside ZONE_MOVABLE, running action() once at
 * the preemption point label. Returns the stats; whatever did not migrate is put back.
 */
function migrateWith(m: Memmap, head: number, label: string, action: () => void): MigrateStats {
  lruAddDrainAll(m);
  expect(isolateFolio(m, head)).toBe(true);
  const list = [head];
  const stats: MigrateStats = { nrSucceeded: 0, nrFailedPages: 0, nrThpSplit: 0, failures: [] };
  let ran = false;
  const prev = setYieldHook((l) => {
    if (l !== label || ran) return;
    ran = true;
    action();
  });
  try {
    migratePages(m, list, allocMigrationTarget(GFP_HIGHUSER), { reason: MR_SYSCALL, stats });
  } finally {
    setYieldHook(prev);
  }
  if (list.length) putbackMovablePages(m, list);
  expect(ran).toBe(true);
  return stats;
}

describe('fork meets a migration entry', () => {
  it.each(LABELS)(
    'PTE (at %s): copied read-only in parent and child; both then map the new page, COW holds, RSS balances',
    (label) => {
      const m = boot(BASE, 'mini');
      const base = usedFrames(m);
      const parent = bprmMmInit(m);
      const v = doMmap(m, parent, { nrPages: 4, prot: RW });
      for (let i = 0; i < 4; i++) expect(putUser(m, parent, v + i, 10 + i)).toBe(10 + i);
      const src = at(m, parent, v + 1)!.pfn;
      expect(m.flags[src]! & PG_anon_exclusive).toBeTruthy();
      let child = -1;
      const stats = migrateWith(m, src, label, () => {
        expect(at(m, parent, v + 1)).toMatchObject({ pfn: src, migrating: true, write: true });
        child = dupMm(m, parent);
        expect(child).toBeGreaterThanOrEqual(0);
        // copy_nonpresent_pte(): readable entries on both sides; the child's counts in its RSS
        expect(at(m, parent, v + 1)).toMatchObject({ pfn: src, migrating: true, write: false });
        expect(at(m, child, v + 1)).toMatchObject({ pfn: src, migrating: true, write: false });
        expect(rss(m, child)).toEqual({ anon: 4, shmem: 0 });
      });
      expect(stats.nrSucceeded).toBe(1);
      const dst = at(m, parent, v + 1)!;
      expect(dst.pfn).not.toBe(src);
      expect(dst).toMatchObject({ migrating: false, write: false });
      expect(at(m, child, v + 1)).toEqual(dst);
      lruAddDrainAll(m);
      expect([m.mapcount[dst.pfn], m.refcount[dst.pfn]]).toEqual([2, 2]);
      expect(m.flags[dst.pfn]! & PG_anon_exclusive).toBe(0); // mapped shared: not exclusive
      expect([m.refcount[src], m.mapcount[src]]).toEqual([0, 0]);
      // COW: the parent's write gets its own copy
      expect(putUser(m, parent, v + 1, 99)).toBe(99);
      expect(getUser(m, child, v + 1)).toBe(11);
      expect(getUser(m, parent, v + 1)).toBe(99);
      for (const mm of [parent, child]) expect(rss(m, mm)).toEqual({ anon: 4, shmem: 0 });
      exitMmap(m, child);
      expect(rss(m, child)).toEqual({ anon: 0, shmem: 0 }); // check_mm(): no bad rss-counter state
      exitMmap(m, parent);
      expect(rss(m, parent)).toEqual({ anon: 0, shmem: 0 });
      expect(usedFrames(m)).toBe(base);
    },
  );

  it.each(LABELS)(
    'anonymous THP (at %s): the PMD migration entry is copied with a deposited table; both map the new THP by PMD',
    (label) => {
      const m = boot(THP, 'mini');
      const base = usedFrames(m);
      const pool = ptePoolFree(m);
      const parent = bprmMmInit(m);
      const v = doMmap(m, parent, { nrPages: 8, prot: RW });
      for (let i = 0; i < 8; i++) expect(putUser(m, parent, v + i, 700 + i)).toBe(700 + i);
      const t = at(m, parent, v)!;
      expect(t.huge).toBe(true);
      const head = t.pfn;
      const splits = vmstatSnapshot(m).thp_split_pmd;
      let child = -1;
      const stats = migrateWith(m, head, label, () => {
        child = dupMm(m, parent);
        expect(child).toBeGreaterThanOrEqual(0);
        for (const mm of [parent, child]) {
          const pmd = pmdOf(m, mm, v);
          expect([mm, pmdIsHuge(pmd), pmd & PTE_PRESENT, pmd & PTE_WRITE, pmd & PFN_MASK]).toEqual([
            mm,
            true,
            0,
            0,
            head,
          ]);
        }
        expect([m.mms[mmBase(child) + MM_PGTABLES], pgtableDepositedCount(m, child)]).toEqual([1, 1]);
        expect(rss(m, child)).toEqual({ anon: 8, shmem: 0 });
      });
      expect(stats.nrSucceeded).toBe(8);
      expect(stats.nrThpSplit).toBe(0);
      const dst = at(m, parent, v)!.pfn;
      expect(dst).not.toBe(head);
      expect(folioOrder(m, dst)).toBe(m.pmdOrder);
      for (const mm of [parent, child]) {
        expect(at(m, mm, v)).toEqual({ pfn: dst, huge: true, migrating: false, write: false });
        expect([m.mms[mmBase(mm) + MM_PGTABLES], pgtableDepositedCount(m, mm)]).toEqual([1, 1]);
        expect(rss(m, mm)).toEqual({ anon: 8, shmem: 0 });
      }
      expect(vmstatSnapshot(m).thp_split_pmd).toBe(splits); // copied, not split
      lruAddDrainAll(m);
      expect(entireMapcount(m, dst)).toBe(2);
      for (let i = 0; i < 8; i++) expect([i, m.mapcount[dst + i]]).toEqual([i, 0]);
      expect(m.refcount[dst]).toBe(2);
      expect(m.flags[dst]! & PG_anon_exclusive).toBe(0);
      expect([m.refcount[head], entireMapcount(m, head)]).toEqual([0, 0]);
      for (let i = 0; i < 8; i++) for (const mm of [parent, child]) expect(getUser(m, mm, v + i)).toBe(700 + i);
      // COW: the parent's write splits its PMD and copies the page; the child keeps the THP
      expect(putUser(m, parent, v + 3, 5)).toBe(5);
      expect(getUser(m, child, v + 3)).toBe(703);
      expect(at(m, child, v)!.huge).toBe(true);
      exitMmap(m, child);
      expect(rss(m, child)).toEqual({ anon: 0, shmem: 0 });
      exitMmap(m, parent);
      expect(rss(m, parent)).toEqual({ anon: 0, shmem: 0 });
      expect(ptePoolFree(m)).toBe(pool); // every page table came back
      expect(usedFrames(m)).toBe(base);
    },
  );

  it.each(LABELS)(
    'hugetlb (at %s): the PMD migration entry is copied; the child maps the new folio once migration completes',
    (label) => {
      const m = boot(HUGETLB, 'mini');
      const parent = bprmMmInit(m);
      const h = doMmap(m, parent, { nrPages: 8, prot: RW, hugetlb: true });
      for (let i = 0; i < 8; i++) expect(putUser(m, parent, h + i, 300 + i)).toBe(300 + i);
      const head = at(m, parent, h)!.pfn;
      expect(freeHuge(m)).toBe(3);
      const sub = loopGuard(m, parent, h, 8, 'fork');
      let child = -1;
      const stats = migrateWith(m, head, label, () => {
        child = dupMm(m, parent);
        expect(child).toBeGreaterThanOrEqual(0);
        for (const mm of [parent, child]) {
          const pmd = pmdOf(m, mm, h);
          expect([mm, pmdIsHuge(pmd), pmd & PTE_PRESENT, pmd & PTE_WRITE, pmd & PFN_MASK]).toEqual([
            mm,
            true,
            0,
            0,
            head,
          ]);
        }
        // hugetlb deposits none
        expect([m.mms[mmBase(child) + MM_PGTABLES], pgtableDepositedCount(m, child)]).toEqual([0, 0]);
      });
      mmuIntervalNotifierRemove(sub);
      expect(stats.nrSucceeded).toBe(8);
      const dst = at(m, parent, h)!.pfn;
      expect(dst).not.toBe(head);
      for (const mm of [parent, child]) {
        expect(at(m, mm, h)).toEqual({ pfn: dst, huge: true, migrating: false, write: false });
        expect(rss(m, mm)).toEqual({ anon: 0, shmem: 0 }); // hugetlb pages are not RSS
      }
      expect([entireMapcount(m, dst), m.refcount[dst]]).toEqual([2, 2]);
      expect(m.flags[dst]! & PG_anon_exclusive).toBe(0);
      expect([m.refcount[head], entireMapcount(m, head)]).toEqual([0, 0]); // back in the pool
      expect(freeHuge(m)).toBe(3);
      for (let i = 0; i < 8; i++) for (const mm of [parent, child]) expect(getUser(m, mm, h + i)).toBe(300 + i);
      // COW (hugetlb_wp): the parent's write copies the huge page
      expect(putUser(m, parent, h + 2, 1)).toBe(1);
      expect(getUser(m, child, h + 2)).toBe(302);
      expect(freeHuge(m)).toBe(2);
      exitMmap(m, child);
      exitMmap(m, parent);
      expect(freeHuge(m)).toBe(4);
    },
  );
});

describe('zap meets a migration entry: RSS', () => {
  const KINDS = [
    { kind: 'anonymous page', cmd: BASE, pages: 4, shared: false, counter: 'anon' },
    { kind: 'anonymous THP (PMD)', cmd: THP, pages: 8, shared: false, counter: 'anon' },
    { kind: 'shmem page', cmd: BASE, pages: 4, shared: true, counter: 'shmem' },
  ] as const;
  const CASES = KINDS.flatMap((k) => LABELS.map((label) => ({ ...k, label })));

  it.each(CASES)(
    'munmap of a $kind mid-migration ($label) leaves RSS and oom_badness at 0 (zap_nonpresent_ptes, zap_huge_pmd)',
    ({ cmd, pages, shared, counter, label }) => {
      const m = boot(cmd, 'mini');
      const base = usedFrames(m);
      const mm = bprmMmInit(m);
      const v = doMmap(m, mm, { nrPages: pages, prot: RW, shared });
      for (let i = 0; i < pages; i++) expect(putUser(m, mm, v + i, 40 + i)).toBe(40 + i);
      expect(rss(m, mm)[counter]).toBe(pages);
      const t = at(m, mm, v)!;
      expect(t.huge).toBe(pages === 8);
      migrateWith(m, t.pfn, label, () => {
        expect(at(m, mm, v)!.migrating).toBe(true);
        expect(rss(m, mm)[counter]).toBe(pages); // try_to_migrate_one(): a migration entry still counts
        expect(doMunmap(m, mm, v, pages)).toBe(0);
        expect(rss(m, mm)).toEqual({ anon: 0, shmem: 0 });
        expect(m.mms[mmBase(mm) + MM_PGTABLES]).toBe(0);
        expect(oomBadness(m, mm)).toBe(0);
      });
      expect(rss(m, mm)).toEqual({ anon: 0, shmem: 0 });
      exitMmap(m, mm);
      expect(usedFrames(m)).toBe(base);
    },
  );

  it('exit of a process whose THP is mid-migration: RSS 0, every page table back', () => {
    const m = boot(THP, 'mini');
    const base = usedFrames(m);
    const pool = ptePoolFree(m);
    const mm = bprmMmInit(m);
    const v = doMmap(m, mm, { nrPages: 16, prot: RW });
    for (let i = 0; i < 16; i++) putUser(m, mm, v + i, i);
    migrateWith(m, at(m, mm, v + 8)!.pfn, 'migrate:unmap', () => exitMmap(m, mm));
    expect(rss(m, mm)).toEqual({ anon: 0, shmem: 0 });
    expect(ptePoolFree(m)).toBe(pool);
    expect(usedFrames(m)).toBe(base);
  });
});
