// Deferred hugetlb frees (mm/hugetlb.c, v6.12): with HVO (hugetlb_free_vmemmap=on) free_huge_folio() of a
// folio leaving the pool goes on hpage_freelist for free_hpage_work; meanwhile the folio is PageHuge
// with refcount 0, in neither the pool nor the buddy. test_pages_isolated() waits for the work
// (wait_for_freed_hugetlb_folios(), R19's fix); under R19 it does not, and alloc_contig_range() fails.
import { boot, withVariant } from '../../helpers';
import { bprmMmInit, doMmap, exitMmap, PROT_READ, PROT_WRITE } from '../../../mm/mmap';
import { getUser, putUser, pfnOf } from '../../../mm/memory';
import { Memmap, PG_hugetlb, PG_buddy, H_HUGETLB_VMEMMAP } from '../../../mm/memmap';
import { EBUSY } from '../../../mm/errno';
import { hugetlbFreesPending, freeHpageWorkfn, waitForFreedHugetlbFolios } from '../../../mm/hugetlb';
import { allocContigRange, freeContigRange, ContigReport } from '../../../mm/page_alloc_contig';
import { startIsolatePageRange, undoIsolatePageRange, testPagesIsolated } from '../../../mm/page_isolation';
import { stateStore, OfflineReport } from '../../../mm/memory_hotplug';
import { MIGRATE_MOVABLE } from '../../../mm/mmzone';
import { parseCmdline } from '../../../mm/cmdline';
import { MINI } from '../../../mm/memmap';
import { lruAddDrainAll } from '../../../mm/swap';
import { drainAllPages } from '../../../mm/page_alloc';
import { checkAllocator } from '../../../properties/allocator_sound';

const CMD = 'mem=1M movablecore=512K sysctl.vm.min_free_kbytes=16 hugepages=1';
const HVO = `${CMD} hugetlb_free_vmemmap=on`;
const RW = PROT_READ | PROT_WRITE;
const BLOCK = 4; // the pool's one folio: the lowest ZONE_MOVABLE pfns (memory4, pfn 128)

/** A process mapping the pool's only hugetlb folio, written. */
function mapped(cmd: string): { m: Memmap; mm: number; v: number; pfn: number } {
  const m = boot(cmd, 'mini');
  const mm = bprmMmInit(m);
  const v = doMmap(m, mm, { nrPages: 8, prot: RW, hugetlb: true });
  putUser(m, mm, v, 61);
  return { m, mm, v, pfn: pfnOf(m, mm, v) };
}

function sound(m: Memmap): void {
  lruAddDrainAll(m);
  drainAllPages(m);
  expect(checkAllocator(m).errors).toEqual([]);
}

const range = (m: Memmap): [number, number] => [BLOCK * m.blockPages, (BLOCK + 1) * m.blockPages];

describe('deferred hugetlb frees (free_hpage_work)', () => {
  it('hugetlb_free_vmemmap= is a boolean boot parameter, off by default', () => {
    expect(parseCmdline(CMD, MINI).hugetlbFreeVmemmap).toBe(false);
    expect(parseCmdline(`${CMD} hugetlb_free_vmemmap=on`, MINI).hugetlbFreeVmemmap).toBe(true);
    expect(() => parseCmdline(`${CMD} hugetlb_free_vmemmap=maybe`, MINI)).toThrow(/boolean/);
    expect(boot(HVO, 'mini').header[H_HUGETLB_VMEMMAP]).toBe(1);
  });

  it('with HVO the migrated-away temporary folio waits on hpage_freelist until the kworker frees it', () => {
    withVariant('v6.12+R19', () => {
      const { m, mm, v, pfn } = mapped(HVO);
      const [s, e] = range(m);
      const report: ContigReport = { busyPfn: -1, migrated: 0 };
      expect(allocContigRange(m, s, e, MIGRATE_MOVABLE, report)).toBe(-EBUSY);
      expect(report).toEqual({ busyPfn: pfn, migrated: 1 });
      expect(getUser(m, mm, v)).toBe(61);
      expect(pfnOf(m, mm, v)).not.toBe(pfn);
      // still PageHuge, refcount 0, not in the buddy
      expect(hugetlbFreesPending(m)).toBe(true);
      expect(m.flags[pfn]! & PG_hugetlb).toBeTruthy();
      expect(m.flags[pfn]! & PG_buddy).toBe(0);
      expect(m.refcount[pfn]).toBe(0);
      expect(freeHpageWorkfn(m)).toBe(1);
      expect(hugetlbFreesPending(m)).toBe(false);
      expect(m.flags[pfn]! & PG_hugetlb).toBe(0);
      expect(freeHpageWorkfn(m)).toBe(0);
      expect(allocContigRange(m, s, e, MIGRATE_MOVABLE)).toBe(0);
      freeContigRange(m, s, e - s);
      exitMmap(m, mm);
      sound(m);
    });
  });

  it('without HVO the temporary folio goes straight back to the buddy', () => {
    withVariant('v6.12+R19', () => {
      const { m, mm, pfn } = mapped(CMD);
      const [s, e] = range(m);
      expect(allocContigRange(m, s, e, MIGRATE_MOVABLE)).toBe(0);
      expect(hugetlbFreesPending(m)).toBe(false);
      expect(m.refcount[pfn]).toBe(1); // allocated by alloc_contig_range()
      freeContigRange(m, s, e - s);
      exitMmap(m, mm);
      sound(m);
    });
  });

  it('test_pages_isolated() waits for the deferred frees (fixed), not under R19', () => {
    for (const [spec, want] of [
      ['v6.12', 0],
      ['v6.12+R19', -EBUSY],
    ] as const) {
      withVariant(spec, () => {
        const { m, mm, pfn } = mapped(HVO);
        const [s, e] = range(m);
        // the migration leaves the deferred folio behind; then test the isolated range again
        withVariant('v6.12+R19', () => expect(allocContigRange(m, s, e, MIGRATE_MOVABLE)).toBe(-EBUSY));
        expect(hugetlbFreesPending(m)).toBe(true);
        expect(startIsolatePageRange(m, s, e, MIGRATE_MOVABLE, 0)).toBe(0);
        const out = { pfn: -1 };
        expect(testPagesIsolated(m, s, e, 0, out)).toBe(want);
        expect(hugetlbFreesPending(m)).toBe(want !== 0);
        if (want) expect(out.pfn).toBe(pfn);
        undoIsolatePageRange(m, s, e, MIGRATE_MOVABLE);
        waitForFreedHugetlbFolios(m);
        expect(hugetlbFreesPending(m)).toBe(false);
        exitMmap(m, mm);
        sound(m);
      });
    }
  });

  it('alloc_contig_range() with HVO: the fixed kernel allocates the range at once', () => {
    withVariant('v6.12', () => {
      const { m, mm, v } = mapped(HVO);
      const [s, e] = range(m);
      expect(allocContigRange(m, s, e, MIGRATE_MOVABLE)).toBe(0);
      for (let p = s; p < e; p++) expect(m.refcount[p]).toBe(1);
      expect(getUser(m, mm, v)).toBe(61);
      freeContigRange(m, s, e - s);
      exitMmap(m, mm);
      sound(m);
    });
  });

  it('offline_pages() with HVO goes offline with and without R19: the kworker runs at its cond_resched()', () => {
    for (const v of ['v6.12', 'v6.12+R19'])
      withVariant(v, () => {
        const { m, mm } = mapped(HVO);
        const r: OfflineReport = { reason: '', pfn: -1, passes: 0, failures: [] };
        expect(stateStore(m, BLOCK, 'offline', { report: r })).toBe(0);
        expect(hugetlbFreesPending(m)).toBe(false);
        // the retry pass that let the kworker run (without it R19 spends the pass budget: -EINTR)
        expect(r.passes).toBeGreaterThan(1);
        exitMmap(m, mm);
        sound(m);
      });
  });
});
