import { boot } from '../../helpers';
import { bprmMmInit, doMmap, doMunmap, dupMm, vmaList, PROT_READ, PROT_WRITE } from '../../../mm/mmap';
import { sysMlock, sysMlock2, sysMunlock, lockedVm, MLOCK_ONFAULT } from '../../../mm/mlock';
import { VM_LOCKED, VM_LOCKONFAULT } from '../../../mm/mm_types';
import { pfnOf } from '../../../mm/memory';
import { ZONE_MOVABLE, ZONE_NORMAL } from '../../../mm/mmzone';
import { pinUserPages, unpinUserPages, newPinReport, FOLL_LONGTERM, FOLL_WRITE } from '../../../mm/gup';
import { EINVAL, ENOMEM, EPERM, EAGAIN } from '../../../mm/errno';
import { vfioType1 } from '../../../devices/vfio_type1';
import { rdmaUmem } from '../../../devices/rdma_umem';
import { memlockCounters } from '../../../devices/common';
import { rig, expectReleased, PAGE } from '../devices/helpers';
import type { DeviceOp } from '../../../devices/device';

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
