// THP split (mm/huge_memory.ts): split_huge_page_to_list_to_order() unmaps with TTU_SPLIT_HUGE_PMD, so
// every PMD mapping of the folio - including one fork copied while the split waited in
// __split_huge_pmd()'s mmu_notifier_invalidate_range_start() - becomes PTE migration entries before
// the folio is frozen and split. Found by the property harness (regressions/
// device-rdma-odp-v6.12-pins-balance-leak.json: an ODP subscriber made the split's notifier wait, the
// user agent forked meanwhile, offline's migration split the THP; pfn 304 kept a reference, pfn 305
// (page[1], the entire mapcount) went to -1).
import { boot } from '../../helpers';
import { bprmMmInit, doMmap, dupMm, exitMmap, PROT_READ, PROT_WRITE } from '../../../mm/mmap';
import { getUser, putUser, followPte } from '../../../mm/memory';
import {
  migratePages,
  isolateFolio,
  allocMigrationTarget,
  putbackMovablePages,
  MR_MEMORY_HOTPLUG,
  MigrateStats,
} from '../../../mm/migrate';
import { splitFolio } from '../../../mm/huge_memory';
import { Memmap, PG_head } from '../../../mm/memmap';
import { ZONE_NORMAL } from '../../../mm/mmzone';
import { lruAddDrainAll } from '../../../mm/swap';
import { GFP_HIGHUSER } from '../../../mm/gfp';
import { drainAllPages, NO_PAGE } from '../../../mm/page_alloc';
import { vmstatSnapshot } from '../../../mm/vmstat';
import {
  MmuIntervalNotifier,
  mmuIntervalNotifierInsert,
  mmuIntervalNotifierRemove,
  mmuIntervalSetSeq,
  MMU_NOTIFY_CLEAR,
} from '../../../mm/mmu_notifier';
import { checkAllocator } from '../../../properties/allocator_sound';
import { pinBalanceErrors, snapshotPageCounts } from '../../../properties/pins_balance';
import { ptlLock, ptlUnlock } from '../../../mm/mm_types';
import { folioOrder } from '../../../mm/page_ref';
import { EAGAIN } from '../../../mm/errno';
import { pincountAt } from '../../../mm/memmap';

const CMD = 'mem=1M movablecore=512K sysctl.vm.min_free_kbytes=16 transparent_hugepage=always';
const RW = PROT_READ | PROT_WRITE;

function at(m: Memmap, mm: number, vpn: number): { pfn: number; huge: boolean; migrating: boolean } | null {
  ptlLock(m, mm);
  const t = followPte(m, mm, vpn);
  ptlUnlock(m, mm);
  return t ? { pfn: t.pfn, huge: t.huge, migrating: t.migrating } : null;
}

/** A PMD-mapped THP written 700.. in a new process, and the page counts from before it. */
function parentThp(): {
  m: Memmap;
  base: ReturnType<typeof snapshotPageCounts>;
  parent: number;
  v: number;
  head: number;
} {
  const m = boot(CMD, 'mini');
  drainAllPages(m);
  const base = snapshotPageCounts(m);
  const parent = bprmMmInit(m);
  const v = doMmap(m, parent, { nrPages: 8, prot: RW });
  for (let i = 0; i < 8; i++) putUser(m, parent, v + i, 700 + i);
  const t = at(m, parent, v)!;
  expect(t.huge).toBe(true);
  expect(m.flags[t.pfn]! & PG_head).toBeTruthy();
  return { m, base, parent, v, head: t.pfn };
}

/**
 * A PMD-mapped THP in the parent, and an ODP-like subscriber whose callback for the first CLEAR
 * (the split's __split_huge_pmd) runs fork: copy_huge_pmd() copies the still-huge PMD to the child
 * while the splitter waits for the callback.
 */
function thpWithRacingFork(): {
  m: Memmap;
  parent: number;
  v: number;
  head: number;
  child: () => number;
  sub: MmuIntervalNotifier;
  base: ReturnType<typeof snapshotPageCounts>;
} {
  const { m, base, parent, v, head } = parentThp();
  let child = -1;
  const sub = new MmuIntervalNotifier({
    invalidate: (s, r, curSeq) => {
      mmuIntervalSetSeq(s, curSeq);
      if (child < 0 && r.event === MMU_NOTIFY_CLEAR) child = dupMm(m, parent); // its own notifier call nests here
      return true;
    },
  });
  expect(mmuIntervalNotifierInsert(sub, m, parent, v, 8)).toBe(0);
  return { m, parent, v, head, child: () => child, sub, base };
}

function expectBalancedAfterExit(
  m: Memmap,
  mms: number[],
  sub: MmuIntervalNotifier,
  base: ReturnType<typeof snapshotPageCounts>,
): void {
  mmuIntervalNotifierRemove(sub);
  for (const mm of mms) exitMmap(m, mm);
  lruAddDrainAll(m);
  drainAllPages(m);
  const s = vmstatSnapshot(m);
  expect(pinBalanceErrors(m, s.nr_foll_pin_acquired, s.nr_foll_pin_released, base)).toEqual([]);
  expect(checkAllocator(m).errors).toEqual([]);
}

describe('THP split racing with fork (split_huge_page: TTU_SPLIT_HUGE_PMD)', () => {
  it('THP broken by migration while fork copies its PMD: every page migrates, both processes read their data, counts balance', () => {
    const { m, parent, v, head, child, sub, base } = thpWithRacingFork();
    lruAddDrainAll(m);
    expect(isolateFolio(m, head)).toBe(true);
    const list = [head];
    // no order-3 target (as the seeded migrate:alloc-target fault): -ENOMEM, split, base pages migrate
    const small = allocMigrationTarget(GFP_HIGHUSER);
    const getNew = (mm: Memmap, src: number): number => (folioOrder(mm, src) > 0 ? NO_PAGE : small(mm, src));
    const stats: MigrateStats = { nrSucceeded: 0, nrFailedPages: 0, nrThpSplit: 0, failures: [] };
    const rc = migratePages(m, list, getNew, { reason: MR_MEMORY_HOTPLUG, stats });
    if (list.length) putbackMovablePages(m, list);
    const c = child();
    expect(c).toBeGreaterThanOrEqual(0); // the fork did run inside the split
    expect(stats.nrThpSplit).toBe(1);
    expect(rc).toBe(0);
    expect(stats.nrSucceeded).toBe(8);
    for (const mm of [parent, c]) {
      for (let i = 0; i < 8; i++) {
        const t = at(m, mm, v + i)!;
        expect(t.huge).toBe(false);
        expect(t.pfn < head || t.pfn >= head + 8).toBe(true); // nothing maps the old frames
        expect(m.pageZonenum(t.pfn)).toBe(ZONE_NORMAL);
        expect(getUser(m, mm, v + i)).toBe(700 + i);
      }
    }
    for (let p = head; p < head + 8; p++)
      expect([p, m.refcount[p], m.mapcount[p], pincountAt(m, p)]).toEqual([p, 0, 0, 0]);
    expect(vmstatSnapshot(m).nr_isolated_anon).toBe(0);
    expectBalancedAfterExit(m, [parent, c], sub, base);
  });

  it("splitFolio(): the PMD fork copied meanwhile is split too; each page holds exactly its mappings and the caller's reference", () => {
    const { m, parent, v, head, child, sub, base } = thpWithRacingFork();
    lruAddDrainAll(m);
    expect(isolateFolio(m, head)).toBe(true);
    expect(splitFolio(m, head)).toBe(0);
    const c = child();
    expect(c).toBeGreaterThanOrEqual(0);
    for (let p = head; p < head + 8; p++) {
      expect(m.flags[p]! & PG_head).toBeFalsy();
      expect(pincountAt(m, p)).toBe(0); // no entire mapcount left in page[1] of a folio that no longer exists
      expect([p, m.mapcount[p], m.refcount[p]]).toEqual([p, 2, 3]); // parent + child PTE, + isolation
    }
    for (const mm of [parent, c]) {
      for (let i = 0; i < 8; i++) {
        expect(at(m, mm, v + i)).toEqual({ pfn: head + i, huge: false, migrating: false });
        expect(getUser(m, mm, v + i)).toBe(700 + i);
      }
    }
    putbackMovablePages(
      m,
      Array.from({ length: 8 }, (_, i) => head + i),
    );
    expectBalancedAfterExit(m, [parent, c], sub, base);
  });
});

describe('THP split racing with a COW fault (do_wp_page: folio_get() before wp_page_copy())', () => {
  // Found free-running longterm-pin-hwpoison: madvise(MADV_HWPOISON) split a THP while a FOLL_WRITE pin's
  // COW fault copied one of its pages. do_wp_page() read the folio before taking the PTL and held no
  // reference: the split went through, the PTE read back the same, and the copy dropped the old PTE's
  // reference on the old head instead of the page ("bad page state: freed while mapped" at exit).
  it('a split attempted while the COW copy runs fails with -EAGAIN, and every count balances', () => {
    const { m, base, parent, v, head } = parentThp();
    const child = dupMm(m, parent);
    let split: number | null = null;
    const sub = new MmuIntervalNotifier({
      invalidate: (s, r, curSeq) => {
        mmuIntervalSetSeq(s, curSeq);
        // wp_page_copy()'s one-page CLEAR: the PTL is not held, the copy is under way
        if (split === null && r.event === MMU_NOTIFY_CLEAR && r.end - r.start === 1) {
          split = -1;
          lruAddDrainAll(m);
          expect(isolateFolio(m, head)).toBe(true);
          split = splitFolio(m, head);
          putbackMovablePages(m, split === 0 ? Array.from({ length: 8 }, (_, i) => head + i) : [head]);
        }
        return true;
      },
    });
    expect(mmuIntervalNotifierInsert(sub, m, parent, v, 8)).toBe(0);
    expect(putUser(m, parent, v + 3, 1)).toBe(1);
    expect(split).toBe(-EAGAIN);
    expect(getUser(m, child, v + 3)).toBe(703);
    expect(at(m, parent, v + 3)!.pfn).not.toBe(head + 3);
    for (let i = 0; i < 8; i++) if (i !== 3) expect(getUser(m, parent, v + i)).toBe(700 + i);
    expectBalancedAfterExit(m, [parent, child], sub, base);
  });
});
