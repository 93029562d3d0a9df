// The folio lock and the address_space of an inode (include/linux/pagemap.h, mm/filemap.c).
//
// The folio lock (PG_locked; folio_trylock() and folio_unlock() of include/linux/pagemap.h, mm/filemap.c).
// Migration and THP splits take it with trylock only: a locked folio is -EAGAIN for that pass; offlining
// sleeps on it (folioLock()) to unmap a poisoned folio, which no later pass would come back to.

import { flagsFetchAnd, flagsFetchOr } from './atomic';
import { Memmap } from './memmap';
import { KernelBug } from './debug';
import { waitWhileEqual } from './locking';
import * as layout from './memmap';
import { VM_PFNMAP, VM_SHARED, VM_WRITE } from './mm_types';

const { PG_locked } = layout;

/** folio_trylock() */
export function folioTrylock(m: Memmap, pfn: number): boolean {
  return (flagsFetchOr(m.flags, pfn, PG_locked) & PG_locked) === 0;
}
export function folioUnlock(m: Memmap, pfn: number): void {
  flagsFetchAnd(m.flags, pfn, ~PG_locked);
}

/** Rounds of a folio_lock() wait (a bounded wait each) before the waiter is a hung task. */
const FOLIO_LOCK_ROUNDS_MAX = 60_000;

/**
 * folio_lock(): sleeps until the holder's folio_unlock() (folio_wait_bit_common()). For a caller that
 * must not give up: do_migrate_range() unmapping a poisoned folio.
 */
export function folioLock(m: Memmap, pfn: number): void {
  let words: Int32Array | null = null; // the flags as Int32 words to wait on, made only when contended
  for (let rounds = 0; ; rounds++) {
    const f = flagsFetchOr(m.flags, pfn, PG_locked);
    if (!(f & PG_locked)) return;
    if (rounds === FOLIO_LOCK_ROUNDS_MAX) throw new KernelBug(`hung task: folio_lock() of pfn ${pfn}`);
    words ??= new Int32Array(m.flags.buffer, m.flags.byteOffset, m.flags.length);
    waitWhileEqual(words, pfn, f | 0, 'folio_lock', 1);
  }
}

// ---- struct address_space of an inode (include/linux/fs.h, mm/filemap.c). pinlab's inodes are the
// records of m.shmem (SH_*, mm/memmap.ts): a size, a page cache (m.shmemPages from SH_BASE) and SH_FLAGS,
// which says what kind of filesystem the inode is on. ----

/** shmem_mapping(): tmpfs, memfd_create() and shared anonymous memory (shmem_zero_setup()) */
export const AS_SHMEM = 1;
/**
 * The inode's backing device has BDI_CAP_WRITEBACK: a regular filesystem (ext4, xfs, btrfs) that
 * writes dirty page-cache folios back to storage and wants to be told when a folio is dirtied.
 */
export const AS_WRITEBACK = 2;

/** What kind of inode (AS_SHMEM or AS_WRITEBACK) a VMA maps, 0 for none (anonymous or hugetlb). */
export function vmaInodeFlags(m: Memmap, vb: number): number {
  const sh = m.vmas[vb + layout.VMA_SHMEM]!;
  return sh ? m.shmem[(sh - 1) * layout.SH_STRIDE + layout.SH_FLAGS]! : 0;
}

/**
 * vma_needs_dirty_tracking() (mm/mmap.c): only a shared writable mapping of a file whose filesystem
 * writes back (vma_fs_can_writeback()) needs to know when a page is dirtied; VM_PFNMAP never does.
 */
export function vmaNeedsDirtyTracking(m: Memmap, vb: number): boolean {
  const f = m.vmas[vb + layout.VMA_FLAGS]!;
  if ((f & (VM_SHARED | VM_WRITE)) !== (VM_SHARED | VM_WRITE) || f & VM_PFNMAP) return false;
  return (vmaInodeFlags(m, vb) & AS_WRITEBACK) !== 0;
}

/**
 * A VMA io_uring's io_pin_pages() refused up to 6.4 (io_uring/rsrc.c, its VMA loop): file-backed
 * (vma->vm_file) and neither shmem (vma_is_shmem()) nor hugetlbfs (is_file_hugepages()).
 */
export function vmaIsFileNotShmem(m: Memmap, vb: number): boolean {
  const sh = m.vmas[vb + layout.VMA_SHMEM]!;
  return sh !== 0 && (vmaInodeFlags(m, vb) & AS_SHMEM) === 0;
}
