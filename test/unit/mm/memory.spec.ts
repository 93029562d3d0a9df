import { boot, zone, usedFrames } from '../../helpers';
import {
  bprmMmInit,
  doMmap,
  doMunmap,
  doMprotect,
  doMadvise,
  dupMm,
  exitMmap,
  PROT_READ,
  PROT_WRITE,
  MADV_DONTNEED,
} from '../../../mm/mmap';
import { getUser, putUser } from '../../../mm/memory';
import { Memmap, PG_zero, PG_head } from '../../../mm/memmap';
import { ZONE_MOVABLE } from '../../../mm/mmzone';
import { EFAULT, EINVAL, ENOMEM, EEXIST } from '../../../mm/errno';
import { vmstatSnapshot } from '../../../mm/vmstat';
import { GUP_PIN_COUNTING_BIAS } from '../../../mm/pinnable';
import { hstates } from '../../../mm/hugetlb';
import { pfnOf } from '../../../mm/memory';
import { pinUserPages, unpinUserPages, FOLL_LONGTERM } from '../../../mm/gup';

const MINI = 'mini';
const CMD = 'mem=1M movablecore=512K sysctl.vm.min_free_kbytes=16';
const RW = PROT_READ | PROT_WRITE;
/** free_hugepages of the machine's one hstate, as sysfs shows it */
const freeHugepages = (m: Memmap): number => hstates(m)[0]!.free;

describe('faults (mm/memory.c)', () => {
  it('a read fault maps the shared zero page; a write fault allocates in ZONE_MOVABLE', () => {
    const m = boot(CMD, MINI);
    const mm = bprmMmInit(m);
    const v = doMmap(m, mm, { nrPages: 4, prot: RW });
    expect(getUser(m, mm, v)).toBe(0);
    expect(m.flags[pfnOf(m, mm, v)]! & PG_zero).toBeTruthy();
    expect(putUser(m, mm, v, 7)).toBe(7);
    const p = pfnOf(m, mm, v);
    expect(m.flags[p]! & PG_zero).toBeFalsy();
    expect(m.pageZonenum(p)).toBe(ZONE_MOVABLE);
    expect(getUser(m, mm, v)).toBe(7);
  });

  it('THP: an aligned range faults a PMD-sized folio when enabled, and falls back when no order-9 block is free', () => {
    const m = boot(`${CMD} transparent_hugepage=always`, MINI);
    const mm = bprmMmInit(m);
    const v = doMmap(m, mm, { nrPages: 8, prot: RW });
    putUser(m, mm, v + 3, 1);
    const p = pfnOf(m, mm, v);
    expect(m.flags[p]! & PG_head).toBeTruthy();
    expect(pfnOf(m, mm, v + 3)).toBe(p + 3);
    expect(vmstatSnapshot(m).thp_fault_alloc).toBe(1);
    const never = boot(`${CMD} transparent_hugepage=never`, MINI);
    const mm2 = bprmMmInit(never);
    const w = doMmap(never, mm2, { nrPages: 8, prot: RW });
    putUser(never, mm2, w, 1);
    expect(never.flags[pfnOf(never, mm2, w)]! & PG_head).toBeFalsy();
  });

  it('madvise(MADV_HUGEPAGE) gets THPs under transparent_hugepage=madvise', () => {
    const m = boot(CMD, MINI);
    const mm = bprmMmInit(m);
    const v = doMmap(m, mm, { nrPages: 16, prot: RW });
    expect(doMadvise(m, mm, v, 16, 14)).toBe(0);
    putUser(m, mm, v, 1);
    expect(m.flags[pfnOf(m, mm, v)]! & PG_head).toBeTruthy();
  });

  it('fork shares pages copy-on-write: each side sees its own writes', () => {
    const m = boot(CMD, MINI);
    const parent = bprmMmInit(m);
    const v = doMmap(m, parent, { nrPages: 3, prot: RW });
    for (let i = 0; i < 3; i++) putUser(m, parent, v + i, 10 + i);
    const child = dupMm(m, parent);
    expect(pfnOf(m, child, v)).toBe(pfnOf(m, parent, v));
    putUser(m, child, v, 99);
    expect(getUser(m, parent, v)).toBe(10);
    expect(getUser(m, child, v)).toBe(99);
    expect(pfnOf(m, child, v)).not.toBe(pfnOf(m, parent, v));
    putUser(m, parent, v + 1, 55);
    expect(getUser(m, child, v + 1)).toBe(11);
  });

  it('fork copies a possibly DMA-pinned page for the child at once (parent keeps the pinned page)', () => {
    const m = boot(CMD, MINI);
    const parent = bprmMmInit(m);
    const v = doMmap(m, parent, { nrPages: 1, prot: RW });
    putUser(m, parent, v, 5);
    const p = pfnOf(m, parent, v);
    Atomics.add(m.refcount, p, GUP_PIN_COUNTING_BIAS); // as pin_user_pages() would
    const child = dupMm(m, parent);
    expect(pfnOf(m, child, v)).not.toBe(p);
    expect(getUser(m, child, v)).toBe(5);
    putUser(m, parent, v, 6);
    expect(pfnOf(m, parent, v)).toBe(p); // no COW break on the pinned page
    Atomics.sub(m.refcount, p, GUP_PIN_COUNTING_BIAS);
  });

  it('a shared mapping is shared with a forked child', () => {
    const m = boot(CMD, MINI);
    const parent = bprmMmInit(m);
    const v = doMmap(m, parent, { nrPages: 2, prot: RW, shared: true });
    putUser(m, parent, v, 1);
    const child = dupMm(m, parent);
    putUser(m, child, v, 2);
    expect(getUser(m, parent, v)).toBe(2);
  });

  it('mprotect read-only makes writes fail; madvise(DONTNEED) drops anonymous contents', () => {
    const m = boot(CMD, MINI);
    const mm = bprmMmInit(m);
    const v = doMmap(m, mm, { nrPages: 4, prot: RW });
    putUser(m, mm, v + 1, 3);
    expect(doMprotect(m, mm, v, 2, PROT_READ)).toBe(0);
    expect(putUser(m, mm, v + 1, 4)).toBe(-EFAULT);
    expect(getUser(m, mm, v + 1)).toBe(3);
    expect(putUser(m, mm, v + 2, 4)).toBe(4); // the rest of the VMA is still writable
    expect(doMprotect(m, mm, v, 2, RW)).toBe(0);
    expect(putUser(m, mm, v + 1, 8)).toBe(8);
    expect(doMadvise(m, mm, v, 4, MADV_DONTNEED)).toBe(0);
    expect(getUser(m, mm, v + 1)).toBe(0);
    expect(doMprotect(m, mm, v + 100, 1, PROT_READ)).toBe(-ENOMEM);
  });

  it('munmap of part of a THP splits the PMD and frees only what is unmapped', () => {
    const m = boot(`${CMD} transparent_hugepage=always`, MINI);
    const base = usedFrames(m);
    const mm = bprmMmInit(m);
    const v = doMmap(m, mm, { nrPages: 8, prot: RW });
    for (let i = 0; i < 8; i++) putUser(m, mm, v + i, i);
    expect(doMunmap(m, mm, v + 2, 3)).toBe(0);
    expect(getUser(m, mm, v + 2)).toBe(-EFAULT);
    expect(getUser(m, mm, v + 6)).toBe(6);
    exitMmap(m, mm);
    expect(usedFrames(m)).toBe(base);
  });

  it('hugetlb mappings fault from the pool and give folios back on munmap', () => {
    const m = boot(`${CMD} hugepages=4`, MINI);
    const mm = bprmMmInit(m);
    const v = doMmap(m, mm, { nrPages: 16, prot: RW, hugetlb: true });
    expect(v).toBeGreaterThanOrEqual(0);
    putUser(m, mm, v, 1);
    putUser(m, mm, v + 9, 2);
    expect(freeHugepages(m)).toBe(2);
    expect(doMunmap(m, mm, v, 8)).toBe(0);
    expect(freeHugepages(m)).toBe(3);
    expect(doMunmap(m, mm, v + 8, 3)).toBe(-EINVAL); // hugetlb VMAs split only at huge page boundaries
    // a length that is not a huge page multiple is rounded up (ksys_mmap_pgoff)
    const w = doMmap(m, mm, { nrPages: 5, prot: RW, hugetlb: true });
    expect(w % 8).toBe(0);
    expect(doMunmap(m, mm, w, 8)).toBe(0);
  });

  it('fork copies a pinned private hugetlb folio for the child; a write after the other process unmapped reuses the folio', () => {
    // copy_hugetlb_page_range()'s early COW (hugetlb_try_dup_anon_rmap() refuses a maybe-pinned exclusive
    // folio) and hugetlb_wp()'s reuse of an anonymous folio mapped once
    const m = boot(`${CMD} hugepages=4`, MINI);
    const mm = bprmMmInit(m);
    const v = doMmap(m, mm, { nrPages: 8, prot: RW, hugetlb: true });
    putUser(m, mm, v + 1, 5);
    const pages: number[] = [];
    expect(pinUserPages(m, mm, v, 1, FOLL_LONGTERM, pages)).toBe(1);
    const pfn = pfnOf(m, mm, v); // the pin moved the folio out of ZONE_MOVABLE first
    expect(pages[0]).toBe(pfn);
    const child = dupMm(m, mm);
    expect(child).toBeGreaterThanOrEqual(0);
    expect(freeHugepages(m)).toBe(2); // the child's copy came from the pool at fork
    expect(pfnOf(m, child, v)).not.toBe(pfn);
    expect(getUser(m, child, v + 1)).toBe(5);
    expect(putUser(m, mm, v + 1, 6)).toBe(6); // the parent's mapping stayed writable: no COW
    expect(pfnOf(m, mm, v)).toBe(pfn);
    expect(getUser(m, child, v + 1)).toBe(5);
    unpinUserPages(m, pages, 1);
    // unpinned: fork shares the folio write-protected; the child goes, and the parent's write reuses it
    const child2 = dupMm(m, mm);
    expect(pfnOf(m, child2, v)).toBe(pfn);
    exitMmap(m, child2);
    expect(putUser(m, mm, v + 1, 7)).toBe(7);
    expect(pfnOf(m, mm, v)).toBe(pfn);
    expect(freeHugepages(m)).toBe(2);
    // while the child still maps it, the parent's write copies
    const child3 = dupMm(m, mm);
    expect(putUser(m, mm, v + 1, 8)).toBe(8);
    expect(pfnOf(m, mm, v)).not.toBe(pfn);
    expect(getUser(m, child3, v + 1)).toBe(7);
  });

  it('fork fails with -ENOMEM when a pinned private hugetlb folio needs a copy and the pool is empty', () => {
    const m = boot(`${CMD} hugepages=1`, MINI);
    const mm = bprmMmInit(m);
    const v = doMmap(m, mm, { nrPages: 8, prot: RW, hugetlb: true });
    putUser(m, mm, v, 1);
    const pages: number[] = [];
    expect(pinUserPages(m, mm, v, 1, FOLL_LONGTERM, pages)).toBe(1);
    expect(dupMm(m, mm)).toBe(-ENOMEM);
    expect(getUser(m, mm, v)).toBe(1);
  });

  it('PROT_NONE memory cannot be read; madvise over a hole acts on the mapped part and returns -ENOMEM', () => {
    const m = boot(CMD, MINI);
    const mm = bprmMmInit(m);
    const v = doMmap(m, mm, { nrPages: 4, prot: RW });
    putUser(m, mm, v, 9);
    expect(doMprotect(m, mm, v, 4, 0)).toBe(0);
    expect(getUser(m, mm, v)).toBe(-EFAULT);
    expect(doMprotect(m, mm, v, 4, RW)).toBe(0);
    expect(getUser(m, mm, v)).toBe(9);
    expect(doMadvise(m, mm, v, 64, MADV_DONTNEED)).toBe(-ENOMEM);
    expect(getUser(m, mm, v)).toBe(0);
    putUser(m, mm, v, 5);
    expect(doMprotect(m, mm, v, 64, PROT_READ)).toBe(-ENOMEM); // applied up to the hole
    expect(putUser(m, mm, v, 6)).toBe(-EFAULT);
  });

  it('VM_PFNMAP has no pages: access fails', () => {
    const m = boot(CMD, MINI);
    const mm = bprmMmInit(m);
    const v = doMmap(m, mm, { nrPages: 2, prot: RW, pfnmap: true });
    expect(getUser(m, mm, v)).toBe(-EFAULT);
  });

  it('mmap errors: zero length, overlap, no address space left', () => {
    const m = boot(CMD, MINI);
    const mm = bprmMmInit(m);
    expect(doMmap(m, mm, { nrPages: 0, prot: RW })).toBe(-EINVAL);
    const v = doMmap(m, mm, { nrPages: 4, prot: RW });
    expect(doMmap(m, mm, { nrPages: 4, prot: RW, vpn: v + 2 })).toBe(-EEXIST);
    expect(doMmap(m, mm, { nrPages: 1 << 20, prot: RW })).toBe(-ENOMEM);
  });

  it('every frame comes back after fork, COW, THP and exit (refcounts and mapcounts to baseline)', () => {
    const m = boot(`${CMD} transparent_hugepage=always`, MINI);
    const base = usedFrames(m);
    const a = bprmMmInit(m);
    const v = doMmap(m, a, { nrPages: 24, prot: RW });
    for (let i = 0; i < 24; i++) putUser(m, a, v + i, i);
    const b = dupMm(m, a);
    for (let i = 0; i < 24; i += 3) putUser(m, b, v + i, 100 + i);
    doMunmap(m, a, v + 4, 6);
    exitMmap(m, b);
    exitMmap(m, a);
    expect(usedFrames(m)).toBe(base);
    for (let p = 0; p < m.nrFrames; p++) expect(m.mapcount[p]).toBe(0);
    expect(zone(m, 'Movable').free).toBe(zone(m, 'Movable').managed);
  });
});
