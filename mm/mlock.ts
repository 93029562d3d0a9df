// mlock(), mlock2() and munlock() (mm/mlock.c, v6.12) and the populate they end with (__mm_populate(),
// populate_vma_page_range(): mm/gup.c). Addresses and lengths are in pages (vpn); the scenario layer
// converts bytes. mm->locked_vm is the counter VFIO's vfio_lock_acct() charges too (devices/common.ts
// accountLockedVm()): neither looks at the other, so mlocked memory VFIO then maps is charged twice.
//
// mlock.c's per-CPU folio batch (mlock_fbatch, mlock_folio() and friends) lives in mm/swap.ts beside
// the LRU add batch: this file imports memory.ts, which imports swap.ts, and imports may not cycle.
//
// Simplified: no unevictable LRU (pinlab's LRU is the PG_lru flag and nothing is reclaimed) and no
// PG_mlocked or mlock_count: processing a batch entry only puts a new folio on the LRU and drops the
// batch's reference.

import { Memmap, MM_LOCKED_VM, MM_RLIMIT_MEMLOCK, MM_CAP_IPC_LOCK, VMA_FLAGS, VMA_END, PG_zero } from './memmap';
import {
  mmBase,
  mmapWriteLockRaw,
  mmapWriteUnlockRaw,
  mmapReadLock,
  mmapReadUnlock,
  ptlLock,
  ptlUnlock,
  VM_READ,
  VM_WRITE,
  VM_EXEC,
  VM_SHARED,
  VM_PFNMAP,
  VM_IO,
  VM_HUGETLB,
  VM_LOCKED,
  VM_LOCKONFAULT,
  VM_FAULT_ERROR,
  VM_FAULT_OOM,
  VM_FAULT_RETRY,
} from './mm_types';
import { vmaList, isolateRange, vmaAt, vmaMergeAt } from './mmap';
import { findVma, followPte, handleMmFault } from './memory';
import { EINVAL, ENOMEM, EPERM, EAGAIN, EFAULT } from './errno';
import { lruAddDrain, mlockFolio, munlockFolio } from './swap';

/**
 * mlock_vma_pages_range(): after the new flags are set, this CPU's batches are drained, every folio
 * the range maps is mlocked (VM_LOCKED) or munlocked (mlock_pte_range(); the zero page is no normal
 * folio; a PMD-mapped THP once), and the batches are drained again, so none of these references
 * outlives the call.
 */
function mlockVmaPagesRange(m: Memmap, mm: number, start: number, end: number, newflags: number): void {
  lruAddDrain(m);
  let prev = -1;
  ptlLock(m, mm);
  for (let vpn = start; vpn < end; vpn++) {
    const t = followPte(m, mm, vpn);
    if (!t || t.migrating || m.flags[t.pfn]! & PG_zero) continue;
    const head = m.compoundHead(t.pfn);
    if (head === prev) continue;
    prev = head;
    if (newflags & VM_LOCKED) mlockFolio(m, head);
    else munlockFolio(m, head);
  }
  ptlUnlock(m, mm);
  lruAddDrain(m);
}

/** mlock2() flags (include/uapi/asm-generic/mman-common.h) */
export const MLOCK_ONFAULT = 0x01;
const VM_LOCKED_MASK = VM_LOCKED | VM_LOCKONFAULT;

/** rlimit(RLIMIT_MEMLOCK) >> PAGE_SHIFT; Infinity for RLIM_INFINITY (-1 in the mm record). */
function lockLimit(m: Memmap, mm: number): number {
  const l = m.mms[mmBase(mm) + MM_RLIMIT_MEMLOCK]!;
  return l < 0 ? Infinity : l;
}

function capableIpcLock(m: Memmap, mm: number): boolean {
  return m.mms[mmBase(mm) + MM_CAP_IPC_LOCK] !== 0;
}

/** can_do_mlock(): a non-zero RLIMIT_MEMLOCK, or CAP_IPC_LOCK. */
export function canDoMlock(m: Memmap, mm: number): boolean {
  return lockLimit(m, mm) !== 0 || capableIpcLock(m, mm);
}

/** mm->locked_vm in pages (/proc/PID/status VmLck is this times 4 kB). */
export function lockedVm(m: Memmap, mm: number): number {
  return Atomics.load(m.mms, mmBase(mm) + MM_LOCKED_VM);
}

/** vma_supports_mlock(): not VM_SPECIAL (here VM_PFNMAP | VM_IO) and not hugetlb. */
function vmaSupportsMlock(flags: number): boolean {
  return !(flags & (VM_PFNMAP | VM_IO | VM_HUGETLB));
}

/** count_mm_mlocked_page_nr(): pages of [start, start + len) that VM_LOCKED VMAs already cover. */
export function countMmMlockedPageNr(m: Memmap, mm: number, start: number, len: number): number {
  const end = start + len;
  let count = 0;
  for (const v of vmaList(m, mm)) {
    if (v.end <= start || v.start >= end || !(v.flags & VM_LOCKED)) continue;
    count += Math.min(v.end, end) - Math.max(v.start, start);
  }
  return count;
}

/**
 * mlock_fixup(): [start, end) of one VMA gets newflags. Nothing happens (and nothing is counted) when
 * the flags stay or the VMA cannot be mlocked; else the VMA is split at the range's edges
 * (vma_modify_flags(), which fails with -ENOMEM at the map count limit), mm->locked_vm moves by the
 * pages that change state, and the piece merges with neighbours whose flags now match.
 */
function mlockFixup(m: Memmap, mm: number, vb: number, start: number, end: number, newflags: number): number {
  const oldflags = m.vmas[vb + VMA_FLAGS]!;
  if (newflags === oldflags || !vmaSupportsMlock(oldflags)) return 0;
  const starts = isolateRange(m, mm, start, end);
  if (typeof starts === 'number') return starts;
  let nrPages = end - start;
  if (!(newflags & VM_LOCKED)) nrPages = -nrPages;
  else if (oldflags & VM_LOCKED) nrPages = 0;
  // the kernel adds under mmap_write_lock; vfio_lock_acct() and mmap's MAP_LOCKED take it too, but pinlab's
  // accountLockedVm() is a compare-exchange without it, so this add is atomic as well
  Atomics.add(m.mms, mmBase(mm) + MM_LOCKED_VM, nrPages);
  const piece = vmaAt(m, mm, start);
  ptlLock(m, mm);
  m.vmas[piece + VMA_FLAGS] = newflags; // vm_flags_reset()
  ptlUnlock(m, mm);
  // both locked: "no work to do, and mlocking twice would be wrong"
  if (!(newflags & oldflags & VM_LOCKED)) mlockVmaPagesRange(m, mm, start, end, newflags);
  vmaMergeAt(m, mm, end);
  vmaMergeAt(m, mm, start);
  return 0;
}

/**
 * apply_vma_lock_flags(): every VMA of [start, start + len) in address order gets flags in place of
 * its VM_LOCKED/VM_LOCKONFAULT. An unmapped start, or a hole met on the way, is -ENOMEM with the VMAs
 * before it already changed.
 */
function applyVmaLockFlags(m: Memmap, mm: number, start: number, len: number, flags: number): number {
  const end = start + len;
  if (end === start) return 0;
  for (let at = start; at < end;) {
    const vb = findVma(m, mm, at);
    if (vb < 0) return -ENOMEM;
    const stop = Math.min(m.vmas[vb + VMA_END]!, end);
    const newflags = (m.vmas[vb + VMA_FLAGS]! & ~VM_LOCKED_MASK) | flags;
    const rc = mlockFixup(m, mm, vb, at, stop, newflags);
    if (rc) return rc;
    at = stop;
  }
  return 0;
}

/**
 * populate_vma_page_range() over [start, end) of one VMA: nothing for VM_LOCKONFAULT, -EFAULT for
 * PROT_NONE; else __get_user_pages() without pages: a write fault for a private writable mapping (to
 * break COW), a read fault otherwise. -ENOMEM when a fault runs out of memory, -EFAULT for another error.
 */
function populateVmaPageRange(m: Memmap, mm: number, vb: number, start: number, end: number): number {
  const flags = m.vmas[vb + VMA_FLAGS]!;
  if (flags & VM_LOCKONFAULT) return 0;
  if (!(flags & (VM_READ | VM_WRITE | VM_EXEC))) return -EFAULT; // !vma_is_accessible()
  const write = (flags & (VM_WRITE | VM_SHARED)) === VM_WRITE;
  for (let vpn = start; vpn < end; vpn++) {
    for (let tries = 0; ; tries++) {
      // follow_page_mask(): a present page (writable, for a write) needs no fault
      ptlLock(m, mm);
      const t = followPte(m, mm, vpn);
      ptlUnlock(m, mm);
      if (t && !t.migrating && (t.write || !write)) break;
      const rc = handleMmFault(m, mm, vpn, write);
      if (rc & VM_FAULT_OOM) return -ENOMEM;
      if (rc & VM_FAULT_ERROR || (rc & VM_FAULT_RETRY && tries >= 8)) return -EFAULT;
    }
  }
  return 0;
}

/** __mm_populate(start, len, 0): fault in every VMA of the range but VM_IO/VM_PFNMAP ones; the first error ends it. */
export function mmPopulate(m: Memmap, mm: number, start: number, len: number): number {
  const end = start + len;
  mmapReadLock(m, mm);
  try {
    for (const v of vmaList(m, mm)) {
      if (v.end <= start || v.start >= end || v.flags & (VM_IO | VM_PFNMAP)) continue;
      const vb = findVma(m, mm, Math.max(v.start, start));
      if (vb < 0) continue;
      const rc = populateVmaPageRange(m, mm, vb, Math.max(v.start, start), Math.min(v.end, end));
      if (rc < 0) return rc;
    }
    return 0;
  } finally {
    mmapReadUnlock(m, mm);
  }
}

/**
 * do_mlock(): -EPERM unless can_do_mlock(); -ENOMEM when len plus mm->locked_vm (less what the range
 * already has locked, subtracted only once over the limit: count_mm_mlocked_page_nr()) passes
 * RLIMIT_MEMLOCK without CAP_IPC_LOCK; then apply_vma_lock_flags() and __mm_populate(), whose errors
 * come back POSIX's way (__mlock_posix_error_return(): -EFAULT is -ENOMEM, -ENOMEM is -EAGAIN).
 * mm->locked_vm includes VFIO's charge (vfio_lock_acct()), so memory VFIO pinned counts again here.
 */
export function doMlock(m: Memmap, mm: number, start: number, len: number, flags: number): number {
  if (!Number.isSafeInteger(start) || !Number.isSafeInteger(len) || start < 0 || len < 0) return -EINVAL;
  if (!canDoMlock(m, mm)) return -EPERM;
  const limit = lockLimit(m, mm);
  const cap = capableIpcLock(m, mm);
  let error = -ENOMEM;
  mmapWriteLockRaw(m, mm);
  try {
    let locked = len + lockedVm(m, mm);
    if (locked > limit && !cap) locked -= countMmMlockedPageNr(m, mm, start, len);
    if (locked <= limit || cap) error = applyVmaLockFlags(m, mm, start, len, flags);
  } finally {
    mmapWriteUnlockRaw(m, mm);
  }
  if (error) return error;
  error = mmPopulate(m, mm, start, len);
  if (error === -EFAULT) return -ENOMEM;
  if (error === -ENOMEM) return -EAGAIN;
  return error;
}

/** mlock(2) */
export function sysMlock(m: Memmap, mm: number, start: number, len: number): number {
  return doMlock(m, mm, start, len, VM_LOCKED);
}

/** mlock2(2): -EINVAL for a flag other than MLOCK_ONFAULT, which adds VM_LOCKONFAULT (no populate). */
export function sysMlock2(m: Memmap, mm: number, start: number, len: number, flags: number): number {
  if (flags & ~MLOCK_ONFAULT) return -EINVAL;
  return doMlock(m, mm, start, len, VM_LOCKED | (flags & MLOCK_ONFAULT ? VM_LOCKONFAULT : 0));
}

/** munlock(2): apply_vma_lock_flags(start, len, 0) under mmap_write_lock; no rlimit or capability check. */
export function sysMunlock(m: Memmap, mm: number, start: number, len: number): number {
  if (!Number.isSafeInteger(start) || !Number.isSafeInteger(len) || start < 0 || len < 0) return -EINVAL;
  mmapWriteLockRaw(m, mm);
  try {
    return applyVmaLockFlags(m, mm, start, len, 0);
  } finally {
    mmapWriteUnlockRaw(m, mm);
  }
}
