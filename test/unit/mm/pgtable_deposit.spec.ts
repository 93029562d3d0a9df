// The PTE table deposited with an anonymous THP PMD (pgtable_trans_huge_deposit, mm/huge_memory.c v6.12):
// __do_huge_pmd_anonymous_page() and copy_huge_pmd() allocate it before the PMD is made, so
// __split_huge_pmd_locked() withdraws it and never needs memory, and zap_huge_pmd() frees it
// (zap_deposited_table). "Out of kernel memory" below is every ZONE_NORMAL frame down to the min
// watermark taken with __GFP_NORETRY (no OOM kill), held by the test, not by any process.
import { boot, usedFrames } from '../../helpers';
import {
  bprmMmInit,
  doMmap,
  doMunmap,
  doMadvise,
  dupMm,
  exitMmap,
  PROT_READ,
  PROT_WRITE,
  MADV_DONTNEED,
} from '../../../mm/mmap';
import { getUser, putUser, followPte } from '../../../mm/memory';
import { Memmap, MM_PGTABLES, MM_USERS, H_PTE_FREE, PG_hugetlb } from '../../../mm/memmap';
import { mmBase, ptlLock, ptlUnlock } from '../../../mm/mm_types';
import { ENOMEM, EFAULT } from '../../../mm/errno';
import { allocPages, freePages, NO_PAGE } from '../../../mm/page_alloc';
import { GFP_KERNEL, GFP_HIGHUSER, __GFP_NORETRY } from '../../../mm/gfp';
import { lruAddDrainAll } from '../../../mm/swap';
import { vmstatSnapshot } from '../../../mm/vmstat';
import {
  isolateFolio,
  migratePages,
  allocMigrationTarget,
  putbackMovablePages,
  MR_SYSCALL,
  MigrateStats,
} from '../../../mm/migrate';
import { splitFolio } from '../../../mm/huge_memory';
import { current, setCurrent, newTask } from '../../../mm/sched';
import { folioOrder } from '../../../mm/page_ref';
import { pmdIsHuge, PFN_MASK, PTE_PRESENT, pgtableDepositedCount } from '../../../mm/pgtable';

const CMD = 'mem=1M movablecore=512K sysctl.vm.min_free_kbytes=16 transparent_hugepage=always hugepages=2';
const RW = PROT_READ | PROT_WRITE;
// each test runs as a task of its own: its OOM kills are its own (current()->oomKills)
const idle = current();
beforeEach(() => {
  setCurrent(newTask(1, 'test', 0));
});
afterEach(() => {
  setCurrent(idle);
});

/** Free PTE tables in the pool (the H_PTE_FREE list). */
function ptePoolFree(m: Memmap): number {
  let n = 0;
  for (let t = m.header[H_PTE_FREE]!; t >= 0; t = m.pteMeta[2 * t]!) n++;
  return n;
}

function nrPtes(m: Memmap, mm: number): number {
  return m.mms[mmBase(mm) + MM_PGTABLES]!;
}

/** Every ZONE_NORMAL frame down to the min watermark (no OOM kill: __GFP_NORETRY); give back with release(). */
function exhaustKernelMemory(m: Memmap): { frames: number[]; release: () => void } {
  const frames: number[] = [];
  for (
    let p = allocPages(m, GFP_KERNEL | __GFP_NORETRY, 0);
    p !== NO_PAGE;
    p = allocPages(m, GFP_KERNEL | __GFP_NORETRY, 0)
  )
    frames.push(p);
  expect(frames.length).toBeGreaterThan(0);
  expect(allocPages(m, GFP_KERNEL | __GFP_NORETRY, 0)).toBe(NO_PAGE);
  return {
    frames,
    release: () => {
      for (const p of frames.splice(0)) freePages(m, p, 0);
    },
  };
}

function pmdOf(m: Memmap, mm: number, vpn: number): number {
  return m.pmds[mm * m.vaPmds + (vpn >>> m.pmdOrder)]!;
}

/** The invariant: one deposited table per anonymous-THP PMD (present or migration entry), none for hugetlb. */
function expectOneDepositPerThpPmd(m: Memmap, mm: number): void {
  let thp = 0;
  for (let i = 0; i < m.vaPmds; i++) {
    const pmd = m.pmds[mm * m.vaPmds + i]!;
    if (pmdIsHuge(pmd) && !(m.flags[pmd & PFN_MASK]! & PG_hugetlb)) thp++;
  }
  expect([mm, pgtableDepositedCount(m, mm)]).toEqual([mm, thp]);
}

function at(m: Memmap, mm: number, vpn: number): { pfn: number; huge: boolean } | null {
  ptlLock(m, mm);
  const t = followPte(m, mm, vpn);
  ptlUnlock(m, mm);
  return t ? { pfn: t.pfn, huge: t.huge } : null;
}

describe('PTE table deposited with a THP PMD (pgtable_trans_huge_deposit)', () => {
  it('a THP fault with no frame for its page table fails VM_FAULT_OOM and gives the THP back (__do_huge_pmd_anonymous_page)', () => {
    const m = boot(CMD, 'mini');
    const base = usedFrames(m);
    const mm = bprmMmInit(m);
    const v = doMmap(m, mm, { nrPages: 8, prot: RW });
    const held = exhaustKernelMemory(m);
    const before = vmstatSnapshot(m);
    // v6.12 returns VM_FAULT_OOM here, not VM_FAULT_FALLBACK: the order-0 path would need a table too
    expect(putUser(m, mm, v + 3, 5)).toBe(-EFAULT);
    const after = vmstatSnapshot(m);
    expect(after.thp_fault_alloc).toBe(before.thp_fault_alloc);
    expect(after.thp_fault_fallback).toBe(before.thp_fault_fallback);
    expect(pmdOf(m, mm, v)).toBe(0); // nothing mapped
    expect(nrPtes(m, mm)).toBe(0);
    expect(pgtableDepositedCount(m, mm)).toBe(0);
    held.release();
    expect(usedFrames(m)).toBe(base); // the THP went back to the buddy
    // with memory for the table the same fault maps the THP and deposits the table
    expect(putUser(m, mm, v + 3, 5)).toBe(5);
    expect(at(m, mm, v)!.huge).toBe(true);
    expect(nrPtes(m, mm)).toBe(1);
    expectOneDepositPerThpPmd(m, mm);
    expect(vmstatSnapshot(m).thp_fault_alloc).toBe(before.thp_fault_alloc + 1);
    exitMmap(m, mm);
    expect(usedFrames(m)).toBe(base);
  });

  it('splits at the min watermark succeed with nr_ptes unchanged: munmap of part, COW after fork, split_folio', () => {
    const m = boot(CMD, 'mini');
    const base = usedFrames(m);
    const mm = bprmMmInit(m);
    const v = doMmap(m, mm, { nrPages: 24, prot: RW });
    for (let i = 0; i < 24; i++) expect(putUser(m, mm, v + i, 100 + i)).toBe(100 + i);
    for (const o of [0, 8, 16]) expect(at(m, mm, v + o)!.huge).toBe(true);
    const child = dupMm(m, mm);
    expect(child).toBeGreaterThanOrEqual(0);
    expect([nrPtes(m, mm), nrPtes(m, child)]).toEqual([3, 3]);
    expectOneDepositPerThpPmd(m, mm);
    expectOneDepositPerThpPmd(m, child);
    const held = exhaustKernelMemory(m);
    const splits = vmstatSnapshot(m).thp_split_pmd;
    // munmap of part of a THP: __split_huge_pmd() into the deposited table
    expect(doMunmap(m, mm, v + 2, 3)).toBe(0);
    expect(nrPtes(m, mm)).toBe(3);
    expect(getUser(m, mm, v + 2)).toBe(-EFAULT);
    expect(getUser(m, mm, v + 6)).toBe(106);
    // a write to a PMD shared since fork: do_huge_pmd_wp_page() splits, then the COW copy is movable memory
    expect(putUser(m, child, v + 9, 7)).toBe(7);
    expect(at(m, child, v + 9)!.huge).toBe(false);
    expect(nrPtes(m, child)).toBe(3);
    expect(getUser(m, mm, v + 9)).toBe(109);
    // split_folio() of a THP the parent and the child map with PMDs: every PMD split, none fails
    const head = at(m, mm, v + 16)!.pfn;
    expect(folioOrder(m, head)).toBe(m.pmdOrder);
    lruAddDrainAll(m);
    expect(isolateFolio(m, head)).toBe(true);
    expect(splitFolio(m, head)).toBe(0);
    putbackMovablePages(
      m,
      Array.from({ length: 8 }, (_, i) => head + i),
    );
    expect([nrPtes(m, mm), nrPtes(m, child)]).toEqual([3, 3]);
    expect(vmstatSnapshot(m).thp_split_pmd).toBe(splits + 4);
    for (const p of [mm, child]) {
      expectOneDepositPerThpPmd(m, p);
      expect(pgtableDepositedCount(m, p)).toBe(1); // each still maps one THP with a PMD
      expect(getUser(m, p, v + 20)).toBe(120);
    }
    expect(current().oomKills).toEqual([]); // no split asked for memory
    held.release();
    exitMmap(m, child);
    exitMmap(m, mm);
    expect(usedFrames(m)).toBe(base);
  });

  it("fork of a THP mapping without memory for the child's table fails -ENOMEM and leaks nothing (copy_huge_pmd)", () => {
    const m = boot(CMD, 'mini');
    const base = usedFrames(m);
    const pool = ptePoolFree(m);
    const mm = bprmMmInit(m);
    const v = doMmap(m, mm, { nrPages: 8, prot: RW });
    for (let i = 0; i < 8; i++) putUser(m, mm, v + i, 200 + i);
    const pmd = pmdOf(m, mm, v);
    expect(pmdIsHuge(pmd) && (pmd & PTE_PRESENT) !== 0).toBe(true);
    const head = pmd & PFN_MASK;
    const refs = m.refcount[head];
    const held = exhaustKernelMemory(m);
    const usersBefore = Array.from({ length: m.maxMms }, (_, k) => m.mms[mmBase(k) + MM_USERS]);
    expect(dupMm(m, mm)).toBe(-ENOMEM);
    // the child's mm is gone
    expect(Array.from({ length: m.maxMms }, (_, k) => m.mms[mmBase(k) + MM_USERS])).toEqual(usersBefore);
    expect(pmdOf(m, mm, v)).toBe(pmd); // the parent's PMD untouched (still writable)
    expect(m.refcount[head]).toBe(refs);
    expect(ptePoolFree(m)).toBe(pool - 1); // only the parent's deposited table is in use
    expect(nrPtes(m, mm)).toBe(1);
    expectOneDepositPerThpPmd(m, mm);
    expect(putUser(m, mm, v + 4, 9)).toBe(9);
    held.release();
    exitMmap(m, mm);
    expect(ptePoolFree(m)).toBe(pool);
    expect(usedFrames(m)).toBe(base);
  });

  it('munmap, MADV_DONTNEED, migration and exit keep one table per THP PMD and return every table; hugetlb deposits none', () => {
    const m = boot(CMD, 'mini');
    const base = usedFrames(m);
    const pool = ptePoolFree(m);
    const a = bprmMmInit(m);
    const v = doMmap(m, a, { nrPages: 32, prot: RW });
    for (let i = 0; i < 32; i++) putUser(m, a, v + i, i);
    const h = doMmap(m, a, { nrPages: 8, prot: RW, hugetlb: true });
    expect(putUser(m, a, h, 77)).toBe(77);
    expect(pgtableDepositedCount(m, a)).toBe(4); // four THPs; the hugetlb PMD has no table
    expect(nrPtes(m, a)).toBe(4);
    expectOneDepositPerThpPmd(m, a);
    const b = dupMm(m, a);
    expectOneDepositPerThpPmd(m, b);
    expect(ptePoolFree(m)).toBe(pool - 8);
    // migration of a PMD-mapped THP to a new THP: the PMD (migration entry, then the new folio) keeps its table
    const src = at(m, a, v + 24)!.pfn;
    lruAddDrainAll(m);
    expect(isolateFolio(m, src)).toBe(true);
    const list = [src];
    const stats: MigrateStats = { nrSucceeded: 0, nrFailedPages: 0, nrThpSplit: 0, failures: [] };
    expect(migratePages(m, list, allocMigrationTarget(GFP_HIGHUSER), { reason: MR_SYSCALL, stats })).toBe(0);
    if (list.length) putbackMovablePages(m, list);
    const dst = at(m, a, v + 24)!;
    expect(dst.huge).toBe(true);
    expect(dst.pfn).not.toBe(src);
    expect(at(m, b, v + 24)!.pfn).toBe(dst.pfn);
    for (const p of [a, b]) {
      expectOneDepositPerThpPmd(m, p);
      expect(nrPtes(m, p)).toBe(4);
    }
    // a whole PMD zapped: its table freed at once
    expect(doMadvise(m, a, v, 8, MADV_DONTNEED)).toBe(0);
    expect(nrPtes(m, a)).toBe(3);
    expect(doMunmap(m, b, v + 8, 8)).toBe(0);
    expect(nrPtes(m, b)).toBe(3);
    // part of one: split, then the emptied table goes at munmap (free_pgtables) only when all of it is unmapped
    expect(doMunmap(m, b, v + 16, 4)).toBe(0);
    expect(nrPtes(m, b)).toBe(3);
    expect(doMunmap(m, b, v + 20, 4)).toBe(0);
    expect(nrPtes(m, b)).toBe(2);
    for (const p of [a, b]) expectOneDepositPerThpPmd(m, p);
    exitMmap(m, b);
    exitMmap(m, a);
    expect(ptePoolFree(m)).toBe(pool);
    expect(usedFrames(m)).toBe(base);
  });
});
