import { boot } from '../../helpers';
import {
  bprmMmInit,
  doMmap,
  doMunmap,
  dupMm,
  vmaList,
  PROT_READ,
  PROT_WRITE,
  doMadvise,
  MADV_DONTNEED,
} from '../../../mm/mmap';
import { sysMlock, sysMlock2, sysMunlock, lockedVm, MLOCK_ONFAULT } from '../../../mm/mlock';
import { VM_LOCKED, VM_LOCKONFAULT } from '../../../mm/mm_types';
import { pfnOf, putUser, getUser } from '../../../mm/memory';
import { folioInMlockBatch, folioInLruBatch, lruAddDrain, lruAddDrainAll } from '../../../mm/swap';
import { setCurrent, newTask } from '../../../mm/sched';
import { setVariant, parseVariant } from '../../../mm/variants';
import { PG_lru } from '../../../mm/memmap';
import { ZONE_MOVABLE, ZONE_NORMAL } from '../../../mm/mmzone';
import { pinUserPages, unpinUserPages, newPinReport, FOLL_LONGTERM, FOLL_WRITE } from '../../../mm/gup';
import { EINVAL, ENOMEM, EPERM, EAGAIN } from '../../../mm/errno';
import { vfioType1 } from '../../../devices/vfio_type1';
import { rdmaUmem } from '../../../devices/rdma_umem';
import { memlockCounters } from '../../../devices/common';
import { rig, expectReleased, PAGE } from '../devices/helpers';
import type { DeviceOp } from '../../../devices/device';
import { leftIsolated } from '../../../properties/lru_isolation_balanced';
import { folioPutbackLru } from '../../../mm/vmscan';
import { isolateFolio } from '../../../mm/migrate';

const CMD = 'mem=1M movablecore=512K sysctl.vm.min_free_kbytes=16';
const RW = PROT_READ | PROT_WRITE;

function proc(opts: { rlimitMemlockPages?: number; capIpcLock?: boolean } = {}, pages = 16, prot = RW) {
  const m = boot(CMD, 'mini');
  const mm = bprmMmInit(m, opts);
  const buf = doMmap(m, mm, { nrPages: pages, prot });
  expect(buf).toBeGreaterThan(0);
  return { m, mm, buf };
}
const locked = (flags: number) => flags & (VM_LOCKED | VM_LOCKONFAULT);
const present = (m: ReturnType<typeof boot>, mm: number, vpn: number, n: number) =>
  Array.from({ length: n }, (_, i) => pfnOf(m, mm, vpn + i)).filter((p) => p >= 0).length;

describe('mlock, mlock2, munlock (mm/mlock.c do_mlock, apply_vma_lock_flags, mlock_fixup)', () => {
  it('mlock splits the VMA, sets VM_LOCKED, charges locked_vm and populates (__mm_populate)', () => {
    const { m, mm, buf } = proc();
    expect(sysMlock(m, mm, buf + 4, 8)).toBe(0);
    const vmas = vmaList(m, mm);
    expect(vmas.map((v) => [v.start - buf, v.end - buf, locked(v.flags)])).toEqual([
      [0, 4, 0],
      [4, 12, VM_LOCKED],
      [12, 16, 0],
    ]);
    expect(lockedVm(m, mm)).toBe(8);
    expect(present(m, mm, buf + 4, 8)).toBe(8); // a write fault (private writable): real pages, not the zero page
    expect(present(m, mm, buf, 4)).toBe(0);
    for (let i = 4; i < 12; i++) expect(m.pageZonenum(pfnOf(m, mm, buf + i))).toBe(ZONE_MOVABLE);
  });

  it('mlock2(MLOCK_ONFAULT) sets VM_LOCKONFAULT and charges without faulting (populate_vma_page_range)', () => {
    const { m, mm, buf } = proc();
    expect(sysMlock2(m, mm, buf, 16, MLOCK_ONFAULT)).toBe(0);
    expect(vmaList(m, mm).map((v) => locked(v.flags))).toEqual([VM_LOCKED | VM_LOCKONFAULT]);
    expect(lockedVm(m, mm)).toBe(16);
    expect(present(m, mm, buf, 16)).toBe(0);
    // mlock() over it turns VM_LOCKONFAULT off and populates; locked_vm does not count the pages twice
    expect(sysMlock(m, mm, buf, 16)).toBe(0);
    expect(lockedVm(m, mm)).toBe(16);
    expect(present(m, mm, buf, 16)).toBe(16);
    expect(sysMlock2(m, mm, buf, 1, 2)).toBe(-EINVAL); // SYSCALL mlock2: flags & ~MLOCK_ONFAULT
  });

  it('munlock uncharges, clears the flags and merges the pieces back (vma_merge_existing_range)', () => {
    const { m, mm, buf } = proc();
    expect(sysMlock(m, mm, buf + 4, 8)).toBe(0);
    expect(sysMunlock(m, mm, buf + 6, 2)).toBe(0);
    expect(lockedVm(m, mm)).toBe(6);
    expect(vmaList(m, mm).length).toBe(5);
    expect(sysMunlock(m, mm, buf, 16)).toBe(0);
    expect(lockedVm(m, mm)).toBe(0);
    expect(vmaList(m, mm).map((v) => [v.start - buf, v.end - buf, locked(v.flags)])).toEqual([[0, 16, 0]]);
    expect(present(m, mm, buf + 4, 8)).toBe(8); // munlock leaves the pages mapped
    expect(sysMunlock(m, mm, buf, 16)).toBe(0); // munlock of unlocked memory: nothing to do
  });

  it('errnos: -EPERM without can_do_mlock, -ENOMEM for unmapped memory and over RLIMIT_MEMLOCK', () => {
    const zero = proc({ rlimitMemlockPages: 0 });
    expect(sysMlock(zero.m, zero.mm, zero.buf, 1)).toBe(-EPERM);
    expect(sysMlock(zero.m, zero.mm, zero.buf, 0)).toBe(-EPERM); // can_do_mlock() comes before len
    expect(sysMunlock(zero.m, zero.mm, zero.buf, 1)).toBe(0); // munlock checks no limit
    const capped = proc({ rlimitMemlockPages: 0, capIpcLock: true });
    expect(sysMlock(capped.m, capped.mm, capped.buf, 16)).toBe(0);
    expect(lockedVm(capped.m, capped.mm)).toBe(16);

    const { m, mm, buf } = proc({ rlimitMemlockPages: 8 });
    expect(sysMlock(m, mm, buf, 9)).toBe(-ENOMEM);
    expect(lockedVm(m, mm)).toBe(0);
    expect(vmaList(m, mm).length).toBe(1); // refused before apply_vma_lock_flags(): nothing split
    expect(sysMlock(m, mm, buf + 16, 1)).toBe(-ENOMEM); // no VMA at start
    expect(sysMlock(m, mm, buf + 12, 8)).toBe(-ENOMEM); // runs past the VMA: the part before the hole stays locked
    expect(lockedVm(m, mm)).toBe(4);
    expect(sysMunlock(m, mm, buf + 16, 1)).toBe(-ENOMEM);
    expect(sysMlock(m, mm, buf, 0)).toBe(0);
  });

  it('count_mm_mlocked_page_nr(): memory already locked is not counted again against the limit', () => {
    const { m, mm, buf } = proc({ rlimitMemlockPages: 8 });
    expect(sysMlock(m, mm, buf, 6)).toBe(0);
    // 8 pages asked, 6 already locked: 8 + 6 > 8, less the 6 already locked in the range = 8 <= 8
    expect(sysMlock(m, mm, buf, 8)).toBe(0);
    expect(lockedVm(m, mm)).toBe(8);
    expect(sysMlock(m, mm, buf + 4, 6)).toBe(-ENOMEM); // 6 + 8 - 4 locked = 10 > 8
    expect(lockedVm(m, mm)).toBe(8);
  });

  it('a populate that faults nothing in is POSIX -ENOMEM (PROT_NONE: -EFAULT), the VMA stays locked', () => {
    const { m, mm, buf } = proc({}, 4, 0);
    expect(sysMlock(m, mm, buf, 4)).toBe(-ENOMEM);
    expect(lockedVm(m, mm)).toBe(4);
    expect(sysMlock2(m, mm, buf, 4, MLOCK_ONFAULT)).toBe(0); // no populate for VM_LOCKONFAULT
  });

  it('a fault out of memory during the populate is -EAGAIN (__mlock_posix_error_return)', () => {
    const m = boot(CMD, 'mini');
    const mm = bprmMmInit(m, { rlimitMemlockPages: -1 });
    const big = doMmap(m, mm, { nrPages: 300, prot: RW });
    expect(big).toBeGreaterThan(0);
    expect(sysMlock(m, mm, big, 300)).toBe(-EAGAIN); // 300 pages of a 256-frame machine
    expect(lockedVm(m, mm)).toBe(300);
  });

  it('munmap of a locked range and fork: locked_vm follows the VMAs', () => {
    const { m, mm, buf } = proc();
    expect(sysMlock(m, mm, buf, 16)).toBe(0);
    expect(doMunmap(m, mm, buf + 2, 4)).toBe(0);
    expect(lockedVm(m, mm)).toBe(12);
    const child = dupMm(m, mm);
    expect(child).toBeGreaterThan(0);
    expect(lockedVm(m, child)).toBe(0);
    expect(vmaList(m, child).every((v) => !(v.flags & VM_LOCKED))).toBe(true); // dup_mmap: not inherited
  });

  it('hugetlb and VM_PFNMAP VMAs are never VM_LOCKED (vma_supports_mlock) but count against the limit', () => {
    const m = boot(CMD, 'mini');
    const mm = bprmMmInit(m, { rlimitMemlockPages: 8 });
    const io = doMmap(m, mm, { nrPages: 4, prot: RW, pfnmap: true });
    expect(sysMlock(m, mm, io, 4)).toBe(0);
    expect(lockedVm(m, mm)).toBe(0);
    expect(vmaList(m, mm)[0]!.flags & VM_LOCKED).toBe(0);
    const io2 = doMmap(m, mm, { nrPages: 12, prot: RW, pfnmap: true });
    expect(sysMlock(m, mm, io2, 12)).toBe(-ENOMEM); // do_mlock() checks len, whatever is mapped there

    const hm = boot(`${CMD} hugepages=2`, 'mini');
    const hmm = bprmMmInit(hm);
    const h = doMmap(hm, hmm, { nrPages: 8, prot: RW, hugetlb: true }); // one PMD-size huge page (mini: 8 pages)
    expect(h).toBeGreaterThan(0);
    expect(sysMlock(hm, hmm, h, 8)).toBe(0);
    expect(lockedVm(hm, hmm)).toBe(0);
    expect(vmaList(hm, hmm)[0]!.flags & VM_LOCKED).toBe(0);
    expect(present(hm, hmm, h, 8)).toBe(8); // __mm_populate() still faults a hugetlb VMA in
  });

  it('a long-term pin still migrates mlocked memory out of ZONE_MOVABLE (mlocked pages are movable)', () => {
    const { m, mm, buf } = proc();
    expect(sysMlock(m, mm, buf, 4)).toBe(0);
    const before = pfnOf(m, mm, buf);
    expect(m.pageZonenum(before)).toBe(ZONE_MOVABLE);
    const pages: number[] = new Array(4).fill(-1);
    const report = newPinReport();
    expect(pinUserPages(m, mm, buf, 4, FOLL_WRITE | FOLL_LONGTERM, pages, report)).toBe(4);
    expect(report.migrated).toBe(4);
    for (let i = 0; i < 4; i++) {
      expect(m.pageZonenum(pages[i]!)).toBe(ZONE_NORMAL);
      expect(pfnOf(m, mm, buf + i)).toBe(pages[i]);
    }
    expect(vmaList(m, mm)[0]!.flags & VM_LOCKED).toBe(VM_LOCKED);
    expect(lockedVm(m, mm)).toBe(4); // a plain pin charges nothing
    unpinUserPages(m, pages, 4);
  });
});

const mapDma = (pages: number): DeviceOp => ({
  op: 'map_dma',
  iova: 0,
  vaddr: { map: 'buf', off: 0 },
  size: pages * PAGE,
  read: true,
  write: true,
});

describe('locked_vm shared by mlock and VFIO (vfio_lock_acct, do_mlock)', () => {
  it('mlock(buf) then VFIO MAP_DMA of buf charges locked_vm twice', () => {
    const r = rig(vfioType1, { rlimitMemlockPages: 16 });
    expect(sysMlock(r.m, r.mm, r.maps.buf!, 8)).toBe(0);
    expect(r.run(mapDma(8)).rc).toBe(0);
    expect(memlockCounters(r.m, r.mm).locked_vm).toBe(16); // 8 by mlock + 8 by vfio_pin_pages_remote()
    // the pin migrated the mlocked pages out of ZONE_MOVABLE; the VMA stays VM_LOCKED
    for (let i = 0; i < 8; i++) expect(r.m.pageZonenum(pfnOf(r.m, r.mm, r.maps.buf! + i))).toBe(ZONE_NORMAL);
    expect(r.dev.teardown().rc).toBe(8);
    expect(memlockCounters(r.m, r.mm).locked_vm).toBe(8);
    expect(sysMunlock(r.m, r.mm, r.maps.buf!, 8)).toBe(0);
    expectReleased(r);
  });

  it('the sum over RLIMIT_MEMLOCK fails -ENOMEM whichever comes first', () => {
    const a = rig(vfioType1, { rlimitMemlockPages: 12 });
    expect(sysMlock(a.m, a.mm, a.maps.buf!, 8)).toBe(0);
    expect(a.run(mapDma(8)).rc).toBe(-ENOMEM); // vfio_pin_pages_remote(): locked_vm 8 + 8 > 12
    expect(memlockCounters(a.m, a.mm).locked_vm).toBe(8);
    expect(sysMunlock(a.m, a.mm, a.maps.buf!, 8)).toBe(0);
    a.dev.teardown();
    expectReleased(a);

    const b = rig(vfioType1, { rlimitMemlockPages: 12 });
    expect(b.run(mapDma(8)).rc).toBe(0);
    expect(sysMlock(b.m, b.mm, b.maps.buf!, 8)).toBe(-ENOMEM); // do_mlock(): 8 + 8 > 12, none of it VM_LOCKED yet
    expect(memlockCounters(b.m, b.mm).locked_vm).toBe(8);
    b.dev.teardown();
    expectReleased(b);
  });

  it("RDMA's pinned_vm is a separate counter: mlock and reg_mr of the same pages both fit the limit", () => {
    const r = rig(rdmaUmem, { rlimitMemlockPages: 12 });
    expect(sysMlock(r.m, r.mm, r.maps.buf!, 8)).toBe(0);
    const res = r.run({ op: 'reg_mr', vaddr: { map: 'buf', off: 0 }, length: 8 * PAGE, access: ['local_write'] });
    expect(res.rc).toBe(0);
    expect(memlockCounters(r.m, r.mm)).toEqual({ locked_vm: 8, pinned_vm: 8, user_locked_vm: 0 });
    r.dev.teardown();
    expect(sysMunlock(r.m, r.mm, r.maps.buf!, 8)).toBe(0);
    expectReleased(r);
  });
});

describe('the per-CPU mlock folio batch (mm/mlock.c mlock_fbatch; R13)', () => {
  const ONFAULT = (m: ReturnType<typeof boot>, mm: number, v: number, n: number) =>
    expect(sysMlock2(m, mm, v, n, MLOCK_ONFAULT)).toBe(0);
  function on(cpu: number, mm: number): void {
    setCurrent(newTask(200 + cpu, `cpu${cpu}`, cpu, mm));
  }
  afterEach(() => setCurrent(newTask(1, 'init', 0)));

  it('a fault into a VM_LOCKONFAULT VMA parks the new folio in the mlock batch, off the LRU, until lru_add_drain()', () => {
    const { m, mm, buf } = proc();
    on(0, mm);
    ONFAULT(m, mm, buf, 1);
    expect(putUser(m, mm, buf, 7)).toBe(7);
    const pfn = pfnOf(m, mm, buf);
    expect(folioInMlockBatch(m, pfn)).toBe(true);
    expect(folioInLruBatch(m, pfn)).toBe(false); // folio_add_lru_vma(): mlock_new_folio(), not folio_add_lru()
    expect(m.flags[pfn]! & PG_lru).toBe(0);
    expect(m.refcount[pfn]).toBe(2); // the mapping and the batch
    expect(leftIsolated(m)).toEqual([]); // lru-isolation-balanced: waiting in a batch is not isolated
    lruAddDrain(m); // mlock_drain_local()
    expect(folioInMlockBatch(m, pfn)).toBe(false);
    expect(m.flags[pfn]! & PG_lru).toBe(PG_lru); // __mlock_new_folio()
    expect(m.refcount[pfn]).toBe(1);
    expect(isolateFolio(m, pfn)).toBe(true); // off the LRU and out of every batch: now it is reported
    expect(leftIsolated(m)).toHaveLength(1);
    folioPutbackLru(m, pfn);
  });

  it("lru_add_drain_all() reaches a remote CPU's mlock batch; lru_add_drain() does not", () => {
    const { m, mm, buf } = proc();
    ONFAULT(m, mm, buf, 1);
    on(3, mm);
    expect(putUser(m, mm, buf, 7)).toBe(7);
    const pfn = pfnOf(m, mm, buf);
    on(0, mm);
    lruAddDrain(m);
    expect(folioInMlockBatch(m, pfn)).toBe(true);
    lruAddDrainAll(m);
    expect(folioInMlockBatch(m, pfn)).toBe(false);
    expect(m.refcount[pfn]).toBe(1);
  });

  it('mlock() itself leaves no batch reference: mlock_vma_pages_range() drains after its walk', () => {
    const { m, mm, buf } = proc();
    on(0, mm);
    for (let i = 0; i < 4; i++) expect(putUser(m, mm, buf + i, i)).toBe(i);
    expect(sysMlock2(m, mm, buf, 4, MLOCK_ONFAULT)).toBe(0);
    for (let i = 0; i < 4; i++) {
      const pfn = pfnOf(m, mm, buf + i);
      expect([folioInMlockBatch(m, pfn), folioInLruBatch(m, pfn), m.refcount[pfn]]).toEqual([false, false, 1]);
    }
  });

  it('munlock() walks the present pages too (munlock_folio()) and leaves no batch reference', () => {
    const { m, mm, buf } = proc();
    on(0, mm);
    expect(sysMlock(m, mm, buf, 4)).toBe(0); // populated: new folios wait in the mlock batch
    const pfns = [0, 1, 2, 3].map((i) => pfnOf(m, mm, buf + i));
    expect(pfns.map((p) => folioInMlockBatch(m, p))).toEqual([true, true, true, true]);
    expect(sysMunlock(m, mm, buf, 4)).toBe(0); // mlock_vma_pages_range(): drain, walk, drain
    expect(pfns.map((p) => [folioInMlockBatch(m, p), m.refcount[p], m.flags[p]! & PG_lru])).toEqual(
      pfns.map(() => [false, 1, PG_lru]),
    );
  });

  /** A shmem page on the LRU, then mapped into a VM_LOCKONFAULT VMA: mlock_folio() keeps PG_lru. */
  function cachedLockedShmem() {
    const { m, mm } = proc();
    on(0, mm);
    const buf = doMmap(m, mm, { nrPages: 1, prot: RW, shared: true });
    expect(buf).toBeGreaterThan(0);
    expect(putUser(m, mm, buf, 5)).toBe(5);
    lruAddDrainAll(m);
    expect(doMadvise(m, mm, buf, 1, MADV_DONTNEED)).toBe(0); // the page cache keeps the folio
    ONFAULT(m, mm, buf, 1);
    expect(getUser(m, mm, buf)).toBe(5); // __folio_add_file_rmap(): mlock_vma_folio()
    return { m, mm, buf, pfn: pfnOf(m, mm, buf) };
  }

  it('a folio on the LRU mapped into a locked VMA waits in the batch with PG_lru set and an extra reference', () => {
    const { m, pfn } = cachedLockedShmem();
    expect(folioInMlockBatch(m, pfn)).toBe(true);
    expect(m.flags[pfn]! & PG_lru).toBe(PG_lru);
    expect(m.refcount[pfn]).toBe(3); // page cache, mapping, batch
  });

  it.each([
    ['v6.12', 1],
    ['v6.12+R13', -ENOMEM],
    ['v6.1+-R10+-R13', 1],
    ['v6.1+-R10', -ENOMEM],
  ])('%s: a long-term pin of that folio gives %d', (spec, want) => {
    const prev = setVariant(parseVariant(spec));
    try {
      const { m, mm, buf } = cachedLockedShmem();
      const pages: number[] = [-1];
      const report = newPinReport();
      expect(pinUserPages(m, mm, buf, 1, FOLL_WRITE | FOLL_LONGTERM, pages, report)).toBe(want);
      if (want === 1) {
        // collect's refcount check drained this CPU's batches (mlock_drain_local()) before migrating
        expect([report.drains, report.migrated, m.pageZonenum(pages[0]!)]).toEqual([1, 1, ZONE_NORMAL]);
        unpinUserPages(m, pages, 1);
      } else {
        // PG_lru set: no drain, the folio is isolated and migrate_pages() fails on the batch's reference
        expect([report.drains, report.migrated, m.pageZonenum(pfnOf(m, mm, buf))]).toEqual([0, 0, ZONE_MOVABLE]);
      }
    } finally {
      setVariant(prev);
    }
  });
});
