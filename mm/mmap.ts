// Address-space system calls: mmap, munmap, mprotect, madvise, fork, exit (mm/mmap.c, mm/mprotect.c,
// mm/madvise.c, kernel/fork.c dup_mmap, v6.12). Addresses and lengths are in pages (vpn); the
// scenario layer converts bytes. Every call takes the mm's mmap_lock for writing.
//
// Simplified: MAP_FIXED never replaces (it behaves as MAP_FIXED_NOREPLACE); no stack or brk; files are
// the inodes of m.shmem: shmem (shared anonymous memory, tmpfs, memfd) and files of a filesystem with
// writeback (mm/filemap.ts), made by fileInodeCreate(); VM_PFNMAP/VM_IO regions have no pages.

import { atomicCmpxchg, atomicFetchAdd, atomicFetchSub, atomicRead } from './atomic';
import { folioTryGet } from './page_ref';
import { waitWhileEqual } from './locking';
import {
  Memmap,
  MM_NR_VMAS,
  MM_LOCKED_VM,
  VMA_START,
  VMA_END,
  VMA_FLAGS,
  VMA_ANON_VMA,
  VMA_SHMEM,
  VMA_PGOFF,
  VMA_STRIDE,
  SH_USERS,
  SH_SIZE,
  SH_BASE,
  SH_STRIDE,
  SH_FLAGS,
  H_SHMEM_NEXT,
  MM_RLIMIT_MEMLOCK,
  MM_CAP_IPC_LOCK,
  MM_OOM_SCORE_ADJ,
  MM_PGTABLES,
  MM_PMD_HUGE_PTE,
  H_FORK_SEQ,
} from './memmap';
import {
  mmBase,
  vmaBase,
  mmAlloc,
  mmDrop,
  VM_READ,
  VM_WRITE,
  VM_SHARED,
  VM_MAYWRITE,
  VM_PFNMAP,
  VM_IO,
  VM_HUGETLB,
  VM_HUGEPAGE,
  VM_NOHUGEPAGE,
  VM_LOCKED,
  VM_LOCKONFAULT,
  VM_DONTCOPY,
  mmapWriteLockRaw,
  mmapWriteUnlockRaw,
  ptlLock,
  ptlUnlock,
  VM_FAULT_ERROR,
  VM_FAULT_RETRY,
} from './mm_types';
import { zapPageRange, copyPageRange, handleMmFault } from './memory';
import { EINVAL, ENOMEM, EEXIST, EAGAIN, EPERM } from './errno';
import { folioPut } from './swap';
import { hstateIndex } from './hugetlb';
import { bug } from './debug';
import {
  mmuNotifierInvalidateRangeStart,
  mmuNotifierInvalidateRangeEnd,
  mmuNotifierRelease,
  MMU_NOTIFY_UNMAP,
  MMU_NOTIFY_PROTECTION_VMA,
  MMU_NOTIFY_PROTECTION_PAGE,
} from './mmu_notifier';
import { splitHugePmd } from './huge_memory';
import { AS_SHMEM } from './filemap';
import { madviseInjectError, MADV_HWPOISON, MADV_SOFT_OFFLINE } from './memory_failure';
import { pmdIndex, pmdIsHuge, pmdIsTable, pteFree, PFN_MASK, PTE_WRITE, vaPages } from './pgtable';

export const PROT_READ = 0x1;
export const PROT_WRITE = 0x2;

export interface MmapArgs {
  /** length in pages */
  nrPages: number;
  /** fixed address in pages (MAP_FIXED_NOREPLACE), or undefined to let the kernel choose */
  vpn?: number;
  prot: number;
  shared?: boolean;
  hugetlb?: boolean;
  /** VM_PFNMAP | VM_IO: device memory, no struct pages (GUP refuses it) */
  pfnmap?: boolean;
  populate?: boolean;
  locked?: boolean;
  /** map this inode (fileInodeCreate()) from offset 0: MAP_SHARED or, without shared, MAP_PRIVATE of a file */
  inode?: number;
}

// ---- mmap_lock (a sleeping rwsem, mm/mm_types.ts; faults and GUP take it for reading) ----
function mmapWriteLock(m: Memmap, mm: number): void {
  mmapWriteLockRaw(m, mm);
}
function mmapWriteUnlock(m: Memmap, mm: number): void {
  mmapWriteUnlockRaw(m, mm);
}

function nrVmas(m: Memmap, mm: number): number {
  return m.mms[mmBase(mm) + MM_NR_VMAS]!;
}

// VMA records change under mmap_lock held for writing, but rmap walks (mm/rmap.ts) read them holding
// only the mm's page_table_lock, as the kernel's walk holds only the anon_vma or i_mmap lock: a record
// is added, moved, removed or resized under the page_table_lock too, the role vma_prepare()'s
// anon_vma_lock_write()/i_mmap_lock_write() play for vma_link(), vma_shrink() and vma_complete().

function vmaAdd(
  m: Memmap,
  mm: number,
  start: number,
  end: number,
  flags: number,
  anonVma: number,
  shmem: number,
  pgoff: number,
): number {
  const n = nrVmas(m, mm);
  if (n >= m.maxVmas) return -ENOMEM; // sysctl_max_map_count
  const vb = vmaBase(m, mm, n);
  ptlLock(m, mm);
  m.vmas[vb + VMA_START] = start;
  m.vmas[vb + VMA_END] = end;
  m.vmas[vb + VMA_FLAGS] = flags;
  m.vmas[vb + VMA_ANON_VMA] = anonVma;
  m.vmas[vb + VMA_SHMEM] = shmem;
  m.vmas[vb + VMA_PGOFF] = pgoff;
  m.mms[mmBase(mm) + MM_NR_VMAS] = n + 1;
  ptlUnlock(m, mm);
  return vb;
}

function vmaRemove(m: Memmap, mm: number, vb: number): void {
  const n = nrVmas(m, mm);
  const last = vmaBase(m, mm, n - 1);
  ptlLock(m, mm);
  if (vb !== last) m.vmas.copyWithin(vb, last, last + VMA_STRIDE);
  m.mms[mmBase(mm) + MM_NR_VMAS] = n - 1;
  ptlUnlock(m, mm);
}

/** The VMAs of an mm as plain records, sorted by address (/proc/PID/maps). */
export interface VmaInfo {
  start: number;
  end: number;
  flags: number;
  anonVma: number;
  shmem: number;
  pgoff: number;
}
export function vmaList(m: Memmap, mm: number): VmaInfo[] {
  const out: VmaInfo[] = [];
  for (let i = 0; i < nrVmas(m, mm); i++) {
    const vb = vmaBase(m, mm, i);
    out.push({
      start: m.vmas[vb + VMA_START]!,
      end: m.vmas[vb + VMA_END]!,
      flags: m.vmas[vb + VMA_FLAGS]!,
      anonVma: m.vmas[vb + VMA_ANON_VMA]!,
      shmem: m.vmas[vb + VMA_SHMEM]!,
      pgoff: m.vmas[vb + VMA_PGOFF]!,
    });
  }
  return out.sort((a, b) => a.start - b.start);
}

function overlaps(m: Memmap, mm: number, start: number, end: number): boolean {
  return vmaList(m, mm).some((v) => start < v.end && v.start < end);
}

/** get_unmapped_area(): first fit from the second PMD up; lengths of a PMD or more are PMD-aligned. */
function getUnmappedArea(m: Memmap, mm: number, nrPages: number): number {
  const align = nrPages >= m.ptrsPerTable ? m.ptrsPerTable : 1;
  let start = m.ptrsPerTable;
  for (const v of vmaList(m, mm)) {
    if (start + nrPages <= v.start) break;
    start = Math.max(start, Math.ceil(v.end / align) * align);
  }
  return start + nrPages <= vaPages(m) ? start : -ENOMEM;
}

/**
 * A new inode of nrPages pages with an empty page cache, one reference held (the caller's file):
 * shmem_file_setup() for tmpfs and memfd (asFlags AS_SHMEM), or a file created on a filesystem with
 * writeback (AS_WRITEBACK, mm/filemap.ts). Returns its id or -ENOMEM.
 */
export function fileInodeCreate(m: Memmap, nrPages: number, asFlags: number): number {
  if (!Number.isSafeInteger(nrPages) || nrPages <= 0) return -EINVAL;
  const base = atomicFetchAdd(m.header, H_SHMEM_NEXT, nrPages);
  if (base + nrPages > m.shmemPages.length) return -ENOMEM;
  for (let i = 0; i < m.shape.shmemObjects; i++) {
    const sb = i * SH_STRIDE;
    if (atomicCmpxchg(m.shmem, sb + SH_USERS, 0, 1) === 0) {
      m.shmem[sb + SH_SIZE] = nrPages;
      m.shmem[sb + SH_BASE] = base;
      m.shmem[sb + SH_FLAGS] = asFlags;
      return i;
    }
  }
  return -ENOMEM;
}

/** shmem_zero_setup(): a shmem inode backing a shared anonymous mapping. Returns its id or -ENOMEM. */
function shmemZeroSetup(m: Memmap, nrPages: number): number {
  return fileInodeCreate(m, nrPages, AS_SHMEM);
}

/** fput() of a file made by fileInodeCreate(): the last reference evicts the inode and its page cache. */
export function fileInodePut(m: Memmap, inode: number): void {
  shmemPut(m, inode);
}

function shmemPut(m: Memmap, inode: number): void {
  const sb = inode * SH_STRIDE;
  if (atomicFetchSub(m.shmem, sb + SH_USERS, 1) !== 1) return;
  // shmem_evict_inode() -> truncate_inode_pages_range(): the page cache lets go of its folios. Each entry is
  // taken with folio_try_get() and the slot reloaded (find_lock_entries): a folio migration has frozen
  // (refcount 0) is waited for, and one it replaced is found at its new pfn
  const base = m.shmem[sb + SH_BASE]!;
  for (let i = 0; i < m.shmem[sb + SH_SIZE]!; i++) {
    for (;;) {
      const pfn = atomicRead(m.shmemPages, base + i) - 1;
      if (pfn < 0) break;
      if (!folioTryGet(m, pfn)) {
        if (atomicRead(m.shmemPages, base + i) - 1 === pfn) waitWhileEqual(m.refcount, pfn, 0, 'frozen folio', 1);
        continue;
      }
      const removed = atomicCmpxchg(m.shmemPages, base + i, pfn + 1, 0) === pfn + 1;
      folioPut(m, pfn); // the reference taken above
      if (removed) {
        folioPut(m, pfn); // the page cache's (filemap_remove_folio)
        break;
      }
    }
  }
}

/** do_mmap(): returns the first vpn of the new mapping, or -errno. */
export function doMmap(m: Memmap, mm: number, a: MmapArgs): number {
  if (!Number.isSafeInteger(a.nrPages) || a.nrPages <= 0) return -EINVAL;
  if (a.hugetlb) {
    if (hstateIndex(m, m.pmdOrder) < 0) return -ENOMEM; // no hugetlb pool of the PMD size
    if (a.vpn !== undefined && a.vpn % m.ptrsPerTable) return -EINVAL;
    // ksys_mmap_pgoff(): ALIGN(len, huge_page_size)
    a = { ...a, nrPages: Math.ceil(a.nrPages / m.ptrsPerTable) * m.ptrsPerTable };
  }
  mmapWriteLock(m, mm);
  try {
    let start: number;
    if (a.vpn !== undefined) {
      if (a.vpn < 0 || a.vpn + a.nrPages > vaPages(m)) return -ENOMEM;
      if (overlaps(m, mm, a.vpn, a.vpn + a.nrPages)) return -EEXIST;
      start = a.vpn;
    } else {
      start = getUnmappedArea(m, mm, a.nrPages);
      if (start < 0) return start;
    }
    let flags = (a.prot & PROT_READ ? VM_READ : 0) | (a.prot & PROT_WRITE ? VM_WRITE | VM_MAYWRITE : 0);
    if (a.shared) flags |= VM_SHARED;
    if (a.hugetlb) flags |= VM_HUGETLB;
    if (a.pfnmap) flags |= VM_PFNMAP | VM_IO;
    if (a.locked) {
      const rc = mlockAccount(m, mm, a.nrPages);
      if (rc) return rc;
      flags |= VM_LOCKED;
    }
    let shmem = 0;
    if (a.inode !== undefined) {
      atomicFetchAdd(m.shmem, a.inode * SH_STRIDE + SH_USERS, 1); // the VMA's get_file()
      shmem = a.inode + 1;
    } else if (a.shared && !a.hugetlb && !a.pfnmap) {
      const inode = shmemZeroSetup(m, a.nrPages);
      if (inode < 0) return inode;
      shmem = inode + 1;
    }
    const vb = vmaAdd(m, mm, start, start + a.nrPages, flags, 0, shmem, 0);
    if (vb < 0) {
      if (shmem) shmemPut(m, shmem - 1);
      return vb;
    }
    // MAP_POPULATE / mlock: failures to populate are not reported (mm_populate's result is ignored)
    if (a.populate || a.locked) populateRange(m, mm, start, start + a.nrPages, (a.prot & PROT_WRITE) !== 0);
    return start;
  } finally {
    mmapWriteUnlock(m, mm);
  }
}

/** mm_populate() / __mm_populate(): fault every page in, stopping at the first hard error. */
export function populateRange(m: Memmap, mm: number, start: number, end: number, write: boolean): number {
  for (let vpn = start; vpn < end; vpn++) {
    let rc = handleMmFault(m, mm, vpn, write);
    for (let i = 0; rc === VM_FAULT_RETRY && i < 8; i++) rc = handleMmFault(m, mm, vpn, write);
    if (rc & VM_FAULT_ERROR) return -ENOMEM;
  }
  return 0;
}

function mlockAccount(m: Memmap, mm: number, nrPages: number): number {
  const b = mmBase(mm);
  const limit = m.mms[b + MM_RLIMIT_MEMLOCK]!;
  if (!m.mms[b + MM_CAP_IPC_LOCK]) {
    if (limit === 0) return -EPERM;
    if (limit >= 0 && m.mms[b + MM_LOCKED_VM]! + nrPages > limit) return -EAGAIN; // mlock: -EAGAIN over RLIMIT_MEMLOCK
  }
  m.mms[b + MM_LOCKED_VM]! += nrPages;
  return 0;
}

/** __split_vma(): [start, at) stays, [at, end) becomes a new VMA. */
function splitVma(m: Memmap, mm: number, vb: number, at: number): number {
  const start = m.vmas[vb + VMA_START]!;
  const end = m.vmas[vb + VMA_END]!;
  if (at <= start || at >= end) return 0;
  const flags = m.vmas[vb + VMA_FLAGS]!;
  if (flags & VM_HUGETLB && at % m.ptrsPerTable) return -EINVAL;
  // a THP straddling the split point is split first (vma_adjust_trans_huge)
  if (at % m.ptrsPerTable && pmdIsHuge(m.pmds[pmdIndex(m, mm, at)]!)) splitHugePmd(m, mm, at);
  const nb = vmaAdd(
    m,
    mm,
    at,
    end,
    flags,
    m.vmas[vb + VMA_ANON_VMA]!,
    m.vmas[vb + VMA_SHMEM]!,
    m.vmas[vb + VMA_PGOFF]! + (at - start),
  );
  if (nb < 0) return nb;
  if (m.vmas[vb + VMA_SHMEM]) atomicFetchAdd(m.shmem, (m.vmas[vb + VMA_SHMEM]! - 1) * SH_STRIDE + SH_USERS, 1);
  ptlLock(m, mm);
  m.vmas[vb + VMA_END] = at;
  ptlUnlock(m, mm);
  return 0;
}

/** Split VMAs so that [start, end) is covered by whole VMAs; returns their start vpns. */
export function isolateRange(m: Memmap, mm: number, start: number, end: number): number[] | number {
  for (const edge of [start, end]) {
    for (let i = 0; i < nrVmas(m, mm); i++) {
      const vb = vmaBase(m, mm, i);
      if (m.vmas[vb + VMA_START]! < edge && edge < m.vmas[vb + VMA_END]!) {
        const rc = splitVma(m, mm, vb, edge);
        if (rc) return rc;
        break;
      }
    }
  }
  const out: number[] = [];
  for (let i = 0; i < nrVmas(m, mm); i++) {
    const vb = vmaBase(m, mm, i);
    if (m.vmas[vb + VMA_START]! >= start && m.vmas[vb + VMA_END]! <= end) out.push(m.vmas[vb + VMA_START]!);
  }
  return out;
}

/** The slot of the VMA that starts at start, or -1. */
export function vmaAt(m: Memmap, mm: number, start: number): number {
  for (let i = 0; i < nrVmas(m, mm); i++) if (m.vmas[vmaBase(m, mm, i) + VMA_START] === start) return vmaBase(m, mm, i);
  return -1;
}

/**
 * vma_merge_existing_range() (mm/vma.c), as far as pinlab merges: the VMA ending at vpn and the one
 * starting there become one when is_mergeable_vma() holds: equal flags, the same shmem inode at
 * contiguous offsets, and the same anon_vma or none on one side. Returns whether they merged.
 */
export function vmaMergeAt(m: Memmap, mm: number, vpn: number): boolean {
  let prev = -1;
  for (let i = 0; i < nrVmas(m, mm) && prev < 0; i++)
    if (m.vmas[vmaBase(m, mm, i) + VMA_END] === vpn) prev = vmaBase(m, mm, i);
  const next = vmaAt(m, mm, vpn);
  if (prev < 0 || next < 0) return false;
  const pa = m.vmas[prev + VMA_ANON_VMA]!;
  const na = m.vmas[next + VMA_ANON_VMA]!;
  const shmem = m.vmas[prev + VMA_SHMEM]!;
  if (m.vmas[prev + VMA_FLAGS] !== m.vmas[next + VMA_FLAGS] || shmem !== m.vmas[next + VMA_SHMEM]) return false;
  if (pa && na && pa !== na) return false;
  if (shmem && m.vmas[prev + VMA_PGOFF]! + (vpn - m.vmas[prev + VMA_START]!) !== m.vmas[next + VMA_PGOFF]) return false;
  const end = m.vmas[next + VMA_END]!;
  ptlLock(m, mm);
  m.vmas[prev + VMA_END] = end;
  m.vmas[prev + VMA_ANON_VMA] = pa || na;
  ptlUnlock(m, mm);
  // prev's slot may move when next's is removed (vmaRemove() fills the hole with the last slot)
  vmaRemove(m, mm, next);
  if (shmem) shmemPut(m, shmem - 1); // the removed VMA's reference on the inode
  return true;
}

/** free_pgtables(): PTE tables left empty in [start, end) go back. */
function freePgtables(m: Memmap, mm: number, start: number, end: number): void {
  const first = start >>> m.pmdOrder;
  const last = (end + m.ptrsPerTable - 1) >>> m.pmdOrder;
  for (let p = first; p < last; p++) {
    const pi = mm * m.vaPmds + p;
    const pmd = m.pmds[pi]!;
    if (!pmdIsTable(pmd)) continue;
    const t = pmd & PFN_MASK;
    const base = t << m.pmdOrder;
    let empty = true;
    for (let i = 0; i < m.ptrsPerTable && empty; i++) if (m.ptes[base + i] !== 0) empty = false;
    if (!empty) continue;
    ptlLock(m, mm);
    m.pmds[pi] = 0;
    ptlUnlock(m, mm);
    pteFree(m, mm, t);
  }
}

/** do_vmi_munmap(): unmap [vpn, vpn + nrPages); splitting VMAs at the edges. Unmapping nothing is fine. */
export function doMunmap(m: Memmap, mm: number, vpn: number, nrPages: number): number {
  if (!Number.isSafeInteger(vpn) || !Number.isSafeInteger(nrPages) || nrPages <= 0 || vpn < 0) return -EINVAL;
  if (nrPages > vaPages(m) - vpn) return -EINVAL; // do_vmi_munmap(): start > TASK_SIZE || len > TASK_SIZE - start
  const end = vpn + nrPages;
  mmapWriteLock(m, mm);
  try {
    const starts = isolateRange(m, mm, vpn, end);
    if (typeof starts === 'number') return starts;
    for (const s of starts) {
      const vb = vmaAt(m, mm, s);
      const e = m.vmas[vb + VMA_END]!;
      zapPageRange(m, mm, s, e, MMU_NOTIFY_UNMAP); // unmap_vmas()
      if (m.vmas[vb + VMA_FLAGS]! & VM_LOCKED) m.mms[mmBase(mm) + MM_LOCKED_VM]! -= e - s;
      const shmem = m.vmas[vb + VMA_SHMEM]!;
      vmaRemove(m, mm, vb);
      if (shmem) shmemPut(m, shmem - 1);
    }
    freePgtables(m, mm, vpn, end);
    return 0;
  } finally {
    mmapWriteUnlock(m, mm);
  }
}

/** The first vpn in [start, end) no VMA covers (end if none). */
function firstHole(m: Memmap, mm: number, start: number, end: number): number {
  let at = start;
  for (const v of vmaList(m, mm)) {
    if (v.end <= at) continue;
    if (v.start > at) return at;
    at = v.end;
    if (at >= end) return end;
  }
  return Math.min(at, end);
}

function rangeFullyMapped(m: Memmap, mm: number, start: number, end: number): boolean {
  let at = start;
  for (const v of vmaList(m, mm)) {
    if (v.end <= at) continue;
    if (v.start > at) return false;
    at = v.end;
    if (at >= end) return true;
  }
  return at >= end;
}

/** mprotect(): -ENOMEM when part of the range is unmapped; dropping PROT_WRITE write-protects PTEs. */
export function doMprotect(m: Memmap, mm: number, vpn: number, nrPages: number, prot: number): number {
  if (nrPages <= 0 || vpn < 0) return -EINVAL;
  const end = vpn + nrPages;
  mmapWriteLock(m, mm);
  try {
    // do_mprotect_pkey(): VMAs are changed in address order up to the first hole, which is -ENOMEM
    const hole = firstHole(m, mm, vpn, end);
    if (hole === vpn) return -ENOMEM;
    // mprotect_fixup() on each VMA in address order: nothing to do when its flags stay the same; else
    // split it at the range's edges (a hugetlb VMA only at a huge page boundary: hugetlb_vm_op_split()
    // -EINVAL), which ends the walk with the VMAs before it already changed
    for (const v of vmaList(m, mm)) {
      if (v.end <= vpn || v.start >= hole) continue;
      let f = v.flags & ~(VM_READ | VM_WRITE);
      if (prot & PROT_READ) f |= VM_READ;
      if (prot & PROT_WRITE) f |= VM_WRITE | VM_MAYWRITE;
      if (f === v.flags) continue;
      const starts = isolateRange(m, mm, Math.max(v.start, vpn), Math.min(v.end, hole));
      if (typeof starts === 'number') return starts;
      for (const s of starts) {
        const vb = vmaAt(m, mm, s);
        m.vmas[vb + VMA_FLAGS] = f;
        if (!(prot & PROT_WRITE)) changeProtection(m, mm, s, m.vmas[vb + VMA_END]!);
      }
    }
    return hole < end ? -ENOMEM : 0;
  } finally {
    mmapWriteUnlock(m, mm);
  }
}

/** change_protection(): clear the write bit of every entry in [start, end). */
function changeProtection(m: Memmap, mm: number, start: number, end: number): void {
  const mask = m.ptrsPerTable - 1;
  const range = mmuNotifierInvalidateRangeStart(m, mm, start, end, MMU_NOTIFY_PROTECTION_VMA); // change_pmd_range()
  ptlLock(m, mm);
  for (let vpn = start; vpn < end;) {
    const pi = pmdIndex(m, mm, vpn);
    const pmd = m.pmds[pi]!;
    const pmdEnd = (vpn & ~mask) + m.ptrsPerTable;
    if (pmdIsHuge(pmd)) {
      m.pmds[pi] = pmd & ~PTE_WRITE;
      vpn = pmdEnd;
      continue;
    }
    if (!pmdIsTable(pmd)) {
      vpn = pmdEnd;
      continue;
    }
    const base = (pmd & PFN_MASK) << m.pmdOrder;
    for (const stop = Math.min(end, pmdEnd); vpn < stop; vpn++) m.ptes[base + (vpn & mask)]! &= ~PTE_WRITE;
  }
  ptlUnlock(m, mm);
  mmuNotifierInvalidateRangeEnd(m, range);
}

export const MADV_DONTNEED = 4;
export const MADV_HUGEPAGE = 14;
export const MADV_NOHUGEPAGE = 15;
export const MADV_POPULATE_WRITE = 23;
export { MADV_HWPOISON, MADV_SOFT_OFFLINE };

/** madvise(): DONTNEED zaps (anonymous memory refaults as zero), HUGEPAGE/NOHUGEPAGE set VMA flags. */
export function doMadvise(m: Memmap, mm: number, vpn: number, nrPages: number, advice: number): number {
  if (nrPages <= 0 || vpn < 0) return -EINVAL;
  const end = vpn + nrPages;
  // do_madvise(): before mmap_lock
  if (advice === MADV_HWPOISON || advice === MADV_SOFT_OFFLINE) return madviseInjectError(m, mm, vpn, end, advice);
  if (![MADV_DONTNEED, MADV_HUGEPAGE, MADV_NOHUGEPAGE, MADV_POPULATE_WRITE].includes(advice)) return -EINVAL;
  mmapWriteLock(m, mm);
  try {
    // madvise_walk_vmas(): advice applies to every mapped part; an unmapped part makes the result -ENOMEM
    const unmapped = !rangeFullyMapped(m, mm, vpn, end);
    if (advice === MADV_DONTNEED) {
      // VMAs in address order; the first error ends the walk (the VMAs before it stay zapped)
      for (const v of vmaList(m, mm)) {
        if (v.end <= vpn || v.start >= end) continue;
        const rc = madviseDontneedFree(m, mm, v, Math.max(v.start, vpn), Math.min(v.end, end));
        if (rc) return rc;
      }
      return unmapped ? -ENOMEM : 0;
    }
    if (unmapped) return -ENOMEM;
    if (advice === MADV_POPULATE_WRITE) return populateRange(m, mm, vpn, end, true) ? -ENOMEM : 0;
    const starts = isolateRange(m, mm, vpn, end);
    if (typeof starts === 'number') return starts;
    for (const s of starts) {
      const vb = vmaAt(m, mm, s);
      const f = m.vmas[vb + VMA_FLAGS]! & ~(VM_HUGEPAGE | VM_NOHUGEPAGE);
      m.vmas[vb + VMA_FLAGS] = f | (advice === MADV_HUGEPAGE ? VM_HUGEPAGE : VM_NOHUGEPAGE);
    }
    return 0;
  } finally {
    mmapWriteUnlock(m, mm);
  }
}

/**
 * madvise_dontneed_free() for MADV_DONTNEED on [start, end) of one VMA. madvise_dontneed_free_valid_vma():
 * VM_PFNMAP and VM_LOCKED VMAs are -EINVAL; in a hugetlb VMA the start must be huge-page aligned
 * (-EINVAL) and the end is aligned down, so less than a huge page does nothing.
 */
function madviseDontneedFree(m: Memmap, mm: number, v: VmaInfo, start: number, end: number): number {
  if (v.flags & VM_HUGETLB) {
    if (start % m.ptrsPerTable) return -EINVAL;
    end -= end % m.ptrsPerTable; // ALIGN_DOWN(end, huge_page_size(h))
  } else if (v.flags & (VM_PFNMAP | VM_LOCKED)) {
    return -EINVAL;
  }
  if (start === end) return 0;
  zapPageRange(m, mm, start, end); // madvise_dontneed_single_vma()
  return 0;
}

/**
 * bprm_mm_init() (fs/exec.c): the fresh address space a new program starts with (mm_alloc()), plus the
 * task state pinlab keeps in the mm record: RLIMIT_MEMLOCK, CAP_IPC_LOCK, oom_score_adj. Returns the mm
 * id or -ENOMEM.
 */
export function bprmMmInit(
  m: Memmap,
  opts: { rlimitMemlockPages?: number; capIpcLock?: boolean; oomScoreAdj?: number } = {},
): number {
  const mm = mmAlloc(m);
  if (mm < 0) return -ENOMEM;
  const b = mmBase(mm);
  if (opts.rlimitMemlockPages !== undefined) m.mms[b + MM_RLIMIT_MEMLOCK] = opts.rlimitMemlockPages;
  m.mms[b + MM_CAP_IPC_LOCK] = opts.capIpcLock ? 1 : 0;
  m.mms[b + MM_OOM_SCORE_ADJ] = opts.oomScoreAdj ?? 0;
  return mm;
}

/**
 * dup_mm() (kernel/fork.c): a new mm (mm_alloc()) and dup_mmap(): the child gets every VMA (but
 * VM_DONTCOPY) and COW copies of the page tables.
 */
export function dupMm(m: Memmap, parent: number): number {
  const child = mmAlloc(m);
  if (child < 0) return -ENOMEM;
  const pb = mmBase(parent);
  const cb = mmBase(child);
  for (const slot of [MM_RLIMIT_MEMLOCK, MM_CAP_IPC_LOCK, MM_OOM_SCORE_ADJ]) m.mms[cb + slot] = m.mms[pb + slot]!;
  mmapWriteLock(m, parent);
  atomicFetchAdd(m.header, H_FORK_SEQ, 1); // odd: copying (rmap.ts removeMigrationPtes() looks again)
  try {
    for (const v of vmaList(m, parent)) {
      if (v.flags & VM_DONTCOPY) continue;
      const flags = v.flags & ~(VM_LOCKED | VM_LOCKONFAULT); // mlock is not inherited
      if (vmaAdd(m, child, v.start, v.end, flags, v.anonVma, v.shmem, v.pgoff) < 0) {
        exitMmap(m, child);
        return -ENOMEM;
      }
      if (v.shmem) atomicFetchAdd(m.shmem, (v.shmem - 1) * SH_STRIDE + SH_USERS, 1);
      if (v.flags & (VM_PFNMAP | VM_IO)) continue;
      const shared = (v.flags & VM_SHARED) !== 0;
      // copy_page_range(): a COW mapping's PTEs are write-protected in the parent
      const range = shared
        ? null
        : mmuNotifierInvalidateRangeStart(m, parent, v.start, v.end, MMU_NOTIFY_PROTECTION_PAGE);
      const rc = copyPageRange(m, child, parent, v.start, v.end, shared);
      mmuNotifierInvalidateRangeEnd(m, range);
      if (rc < 0) {
        exitMmap(m, child);
        return -ENOMEM;
      }
    }
    return child;
  } finally {
    atomicFetchAdd(m.header, H_FORK_SEQ, 1);
    mmapWriteUnlock(m, parent);
  }
}

/** exit_mmap(): unmap everything and free the mm slot. */
export function exitMmap(m: Memmap, mm: number): void {
  mmuNotifierRelease(m, mm); // exit_mmap(): mmu_notifier_release() first
  mmapWriteLock(m, mm);
  for (const v of vmaList(m, mm)) {
    zapPageRange(m, mm, v.start, v.end, MMU_NOTIFY_UNMAP);
    if (v.shmem) shmemPut(m, v.shmem - 1);
  }
  ptlLock(m, mm);
  m.mms[mmBase(mm) + MM_NR_VMAS] = 0;
  ptlUnlock(m, mm);
  freePgtables(m, mm, 0, vaPages(m));
  m.mms[mmBase(mm) + MM_LOCKED_VM] = 0;
  mmapWriteUnlock(m, mm);
  // check_mm() (kernel/fork.c): every deposited table left with its huge PMD (VM_BUG_ON_MM(mm->pmd_huge_pte)),
  // and no page table is left ("BUG: non-zero pgtables_bytes on freeing mm")
  const b = mmBase(mm);
  if (m.mms[b + MM_PMD_HUGE_PTE] !== -1 || m.mms[b + MM_PGTABLES] !== 0) {
    bug(
      `check_mm: mm ${mm} exits with ${m.mms[b + MM_PGTABLES]} page tables, ${m.mms[b + MM_PMD_HUGE_PTE] === -1 ? 'none' : 'some'} deposited`,
    );
  }
  mmDrop(m, mm);
}
