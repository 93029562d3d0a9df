// Part of a hugetlb mapping (mm/madvise.c, mm/mprotect.c, mm/vma.c, mm/hugetlb.c; v6.12). A hugetlb PMD is
// never split, so: MADV_DONTNEED needs a huge-page aligned start (-EINVAL) and aligns the end down
// (madvise_dontneed_free_valid_vma); munmap and mprotect cannot split the VMA inside a huge page
// (hugetlb_vm_op_split(): -EINVAL); zap_page_range_single() of part of a hugetlb PMD is a kernel bug
// (__unmap_hugepage_range: BUG_ON), never a loop. Before the fix MADV_DONTNEED of part of a huge page
// looped for ever in zapPageRange() trying to split the PMD: the guard below turns that loop into a
// failure (every split attempt calls the mmu notifiers).
import { boot, loopGuard } from '../../helpers';
import {
  bprmMmInit,
  doMmap,
  doMunmap,
  doMprotect,
  doMadvise,
  exitMmap,
  vmaList,
  PROT_READ,
  PROT_WRITE,
  MADV_DONTNEED,
} from '../../../mm/mmap';
import { getUser, putUser, zapPageRange, followPte } from '../../../mm/memory';
import { Memmap, PG_hugetlb, HS_FREE_HUGE_PAGES } from '../../../mm/memmap';
import { EINVAL, EFAULT } from '../../../mm/errno';
import { KernelBug } from '../../../mm/debug';
import { hstateBase } from '../../../mm/hugetlb';
import { MmuIntervalNotifier, mmuIntervalNotifierRemove } from '../../../mm/mmu_notifier';
import { ptlLock, ptlUnlock } from '../../../mm/mm_types';

const CMD = 'mem=1M movablecore=512K sysctl.vm.min_free_kbytes=16 hugepages=4';
const RW = PROT_READ | PROT_WRITE;
const H = 8; // pages per huge page (PMD) in geometry mini

function freeHuge(m: Memmap): number {
  return m.header[hstateBase(0) + HS_FREE_HUGE_PAGES]!;
}

function pfnAt(m: Memmap, mm: number, vpn: number): number {
  ptlLock(m, mm);
  const t = followPte(m, mm, vpn);
  ptlUnlock(m, mm);
  return t ? t.pfn : -1;
}

/** Two huge pages, written: page i of huge page k holds 100 * k + i. */
function setup(): { m: Memmap; mm: number; h: number; sub: MmuIntervalNotifier } {
  const m = boot(CMD, 'mini');
  const mm = bprmMmInit(m);
  const h = doMmap(m, mm, { nrPages: 2 * H, prot: RW, hugetlb: true });
  expect(h % H).toBe(0);
  for (let i = 0; i < 2 * H; i++)
    expect(putUser(m, mm, h + i, 100 * Math.floor(i / H) + (i % H))).toBeGreaterThanOrEqual(0);
  expect(freeHuge(m)).toBe(2);
  return { m, mm, h, sub: loopGuard(m, mm, h, 2 * H, 'the zap') };
}

function expectIntact(m: Memmap, mm: number, h: number, from = 0): void {
  for (let i = from; i < 2 * H; i++) expect([i, getUser(m, mm, h + i)]).toEqual([i, 100 * Math.floor(i / H) + (i % H)]);
}

describe('part of a hugetlb mapping', () => {
  it('MADV_DONTNEED: a start inside a huge page is -EINVAL and zaps nothing (madvise_dontneed_free_valid_vma)', () => {
    const { m, mm, h, sub } = setup();
    expect(doMadvise(m, mm, h + 3, 2, MADV_DONTNEED)).toBe(-EINVAL);
    expect(doMadvise(m, mm, h + 1, 2 * H - 1, MADV_DONTNEED)).toBe(-EINVAL);
    expect(doMadvise(m, mm, h + H + 4, 4, MADV_DONTNEED)).toBe(-EINVAL);
    expectIntact(m, mm, h);
    expect(freeHuge(m)).toBe(2);
    mmuIntervalNotifierRemove(sub);
    exitMmap(m, mm);
    expect(freeHuge(m)).toBe(4);
  });

  it('MADV_DONTNEED: the end is aligned down, so less than a huge page does nothing and 1.5 huge pages zap one', () => {
    const { m, mm, h, sub } = setup();
    expect(doMadvise(m, mm, h, 5, MADV_DONTNEED)).toBe(0);
    expect(doMadvise(m, mm, h + H, H - 1, MADV_DONTNEED)).toBe(0);
    expectIntact(m, mm, h);
    expect(freeHuge(m)).toBe(2);
    expect(doMadvise(m, mm, h, H + 4, MADV_DONTNEED)).toBe(0);
    expect(freeHuge(m)).toBe(3); // the first huge page went back to the pool
    expect(pfnAt(m, mm, h)).toBe(-1);
    expectIntact(m, mm, h, H);
    expect(getUser(m, mm, h + 2)).toBe(0); // refaults a zeroed huge page
    mmuIntervalNotifierRemove(sub);
    exitMmap(m, mm);
    expect(freeHuge(m)).toBe(4);
  });

  it('munmap and mprotect of part of a huge page are -EINVAL (hugetlb_vm_op_split) and change nothing', () => {
    const { m, mm, h, sub } = setup();
    const before = vmaList(m, mm);
    expect(doMunmap(m, mm, h + 2, 3)).toBe(-EINVAL);
    expect(doMunmap(m, mm, h, H + 1)).toBe(-EINVAL);
    expect(doMprotect(m, mm, h + 2, 3, PROT_READ)).toBe(-EINVAL);
    expect(doMprotect(m, mm, h, H + 4, PROT_READ)).toBe(-EINVAL);
    expect(vmaList(m, mm)).toEqual(before);
    expectIntact(m, mm, h);
    expect(putUser(m, mm, h + 1, 7)).toBe(7); // still writable
    // flags that do not change need no split (mprotect_fixup(): newflags == oldflags)
    expect(doMprotect(m, mm, h + 2, 3, RW)).toBe(0);
    expect(vmaList(m, mm)).toEqual(before);
    // aligned: fine
    expect(doMprotect(m, mm, h + H, H, PROT_READ)).toBe(0);
    expect(putUser(m, mm, h + H, 1)).toBe(-EFAULT);
    expect(doMunmap(m, mm, h, H)).toBe(0);
    expect(freeHuge(m)).toBe(3);
    mmuIntervalNotifierRemove(sub);
    exitMmap(m, mm);
    expect(freeHuge(m)).toBe(4);
  });

  it('mprotect changes VMAs in address order: a hugetlb VMA that cannot be split ends it, the VMAs before stay changed', () => {
    const m = boot(CMD, 'mini');
    const mm = bprmMmInit(m);
    const a = doMmap(m, mm, { nrPages: H, prot: RW, vpn: 4 * H });
    const h = doMmap(m, mm, { nrPages: 2 * H, prot: RW, hugetlb: true, vpn: 5 * H });
    expect([a, h]).toEqual([4 * H, 5 * H]);
    expect(putUser(m, mm, a, 1)).toBe(1);
    expect(putUser(m, mm, h, 2)).toBe(2);
    expect(doMprotect(m, mm, a, H + 4, PROT_READ)).toBe(-EINVAL); // the end falls inside the first huge page
    expect(putUser(m, mm, a, 3)).toBe(-EFAULT); // the anonymous VMA was made read-only
    expect(putUser(m, mm, h, 4)).toBe(4); // the hugetlb VMA was not
    expect(vmaList(m, mm).map((v) => [v.start, v.end])).toEqual([
      [a, a + H],
      [h, h + 2 * H],
    ]);
    exitMmap(m, mm);
  });

  it('MADV_DONTNEED of a VM_PFNMAP or VM_LOCKED VMA is -EINVAL; the walk stops there (madvise_dontneed_free_valid_vma)', () => {
    const m = boot(CMD, 'mini');
    const mm = bprmMmInit(m);
    const a = doMmap(m, mm, { nrPages: 4, prot: RW, vpn: 4 * H });
    const p = doMmap(m, mm, { nrPages: 4, prot: RW, vpn: 4 * H + 4, pfnmap: true });
    const l = doMmap(m, mm, { nrPages: 4, prot: RW, vpn: 6 * H, locked: true, populate: true });
    expect([a, p, l]).toEqual([4 * H, 4 * H + 4, 6 * H]);
    expect(putUser(m, mm, a, 5)).toBe(5);
    expect(putUser(m, mm, l, 6)).toBe(6);
    expect(doMadvise(m, mm, p, 4, MADV_DONTNEED)).toBe(-EINVAL);
    expect(doMadvise(m, mm, l, 4, MADV_DONTNEED)).toBe(-EINVAL);
    expect(getUser(m, mm, l)).toBe(6); // mlocked memory stays
    expect(doMadvise(m, mm, a, 8, MADV_DONTNEED)).toBe(-EINVAL); // the anonymous VMA first: zapped
    expect(getUser(m, mm, a)).toBe(0);
    exitMmap(m, mm);
  });

  it('zap_page_range_single() of part of a hugetlb PMD is a kernel bug, not a loop (__unmap_hugepage_range)', () => {
    const { m, mm, h, sub } = setup();
    expect(m.flags[pfnAt(m, mm, h)]! & PG_hugetlb).toBeTruthy();
    expect(() => zapPageRange(m, mm, h + 2, h + 4)).toThrow(KernelBug);
    expect(() => zapPageRange(m, mm, h, h + H + 1)).toThrow(/__unmap_hugepage_range/);
    expectIntact(m, mm, h); // the check comes before anything is zapped
    zapPageRange(m, mm, h + H, h + 2 * H); // aligned: zapped
    expect(pfnAt(m, mm, h + H)).toBe(-1);
    expect(freeHuge(m)).toBe(3);
    mmuIntervalNotifierRemove(sub);
    exitMmap(m, mm);
    expect(freeHuge(m)).toBe(4);
  });
});
