// Page faults, CPU access through the page tables, unmapping and fork's page-table copy
// (mm/memory.c, with the THP and hugetlb fault paths of mm/huge_memory.c and mm/hugetlb.c; v6.12).
//
// Locking: faults and CPU accesses take the mm's page_table_lock around every page-table read-modify-
// write; allocation happens outside it and the entry is re-checked (pte_same) before it is installed.
// A CPU access is one instruction: it translates and reads/writes the frame under the lock, so a
// migration either copies the value or the access faults on the migration entry and retries.

import { atomicCmpxchg, atomicRead, flagsFetchAnd, flagsFetchOr } from './atomic';
import { bug } from './debug';
import {
  Memmap,
  MM_RSS_ANON,
  MM_RSS_FILE,
  MM_RSS_SHMEM,
  VMA_START,
  VMA_END,
  VMA_FLAGS,
  VMA_SHMEM,
  VMA_PGOFF,
  MM_NR_VMAS,
  PG_dirty,
  PG_zero,
  SH_BASE,
  SH_SIZE,
  SH_STRIDE,
  SH_FLAGS,
  H_THP_ENABLED,
  PG_anon,
  PG_hugetlb,
  PG_swapbacked,
  PG_lru,
  PG_anon_exclusive,
} from './memmap';
import {
  mmBase,
  vmaBase,
  addMmCounter,
  VM_WRITE,
  VM_READ,
  VM_SHARED,
  VM_PFNMAP,
  VM_IO,
  VM_HUGETLB,
  VM_HUGEPAGE,
  VM_NOHUGEPAGE,
  mmapReadLock,
  mmapReadUnlock,
  ptlLock,
  ptlUnlock,
  VM_FAULT_OOM,
  VM_FAULT_SIGBUS,
  VM_FAULT_SIGSEGV,
  VM_FAULT_RETRY,
  VM_FAULT_ERROR,
  VM_FAULT_HWPOISON,
} from './mm_types';
import { allocPages, NO_PAGE } from './page_alloc';
import { GFP_HIGHUSER_MOVABLE, __GFP_ZERO } from './gfp';
import { waitWhileEqual } from './locking';
import { folioAddLru, folioAddLruVma, folioPut, lruAddDrain, mlockVmaFolio } from './swap';
import {
  anonVmaPrepare,
  folioAddNewAnonRmap,
  folioSetShmem,
  pteMapInc,
  pteMapDec,
  pmdMapInc,
  pmdMapDec,
  folioMaybeDmaPinned,
  folioMapcount,
  entireMapcount,
} from './rmap';
import { countVmEvents, vmItem } from './vmstat';
import { AS_SHMEM, vmaNeedsDirtyTracking } from './filemap';
import { dequeueHugetlbFolio, hstateIndex } from './hugetlb';
import { EFAULT } from './errno';
import { doHugePmdAnonymousPage, splitHugePmd, zapHugePmd } from './huge_memory';
import { mmuNotifierInvalidateRangeStart, mmuNotifierInvalidateRangeEnd, MMU_NOTIFY_CLEAR } from './mmu_notifier';
import { folioGet, folioOrder, folioTryGet } from './page_ref';
import {
  pmdIndex,
  pmdIsHuge,
  pmdIsTable,
  ptePfn,
  mkPte,
  mkHugePmd,
  PTE_PRESENT,
  PTE_WRITE,
  PTE_MIGRATION,
  PFN_MASK,
  PMD_TABLE,
  pteAllocOne,
  pteFree,
  pgtableTransHugeDeposit,
  isHwpoisonPte,
} from './pgtable';

/** Retries of one access when faults keep racing (each retry follows a completed fault). */
const ACCESS_RETRIES_MAX = 16;

const PGFAULT = vmItem('pgfault');

/** mm_counter() (include/linux/mm.h): the RSS counter a mapped folio counts in: anon, shmem or file. */
export function mmCounter(m: Memmap, head: number): number {
  const f = m.flags[head]!;
  return f & PG_anon ? MM_RSS_ANON : f & PG_swapbacked ? MM_RSS_SHMEM : MM_RSS_FILE;
}

/** find_vma(): the VMA slot (base offset into m.vmas) containing vpn, or -1. */
export function findVma(m: Memmap, mm: number, vpn: number): number {
  const nv = m.mms[mmBase(mm) + MM_NR_VMAS]!;
  for (let i = 0; i < nv; i++) {
    const vb = vmaBase(m, mm, i);
    if (vpn >= m.vmas[vb + VMA_START]! && vpn < m.vmas[vb + VMA_END]!) return vb;
  }
  return -1;
}

/** The PTE slot for vpn under a table PMD. */
function pteSlot(m: Memmap, pmd: number, vpn: number): number {
  return ((pmd & PFN_MASK) << m.pmdOrder) + (vpn & (m.ptrsPerTable - 1));
}

/** What the page tables say about vpn: a present pfn, a migration entry, or nothing. */
export interface Translation {
  pfn: number;
  write: boolean;
  migrating: boolean;
  huge: boolean;
}

/**
 * follow_pte() (mm/memory.c until 6.10; folio_walk_start() and follow_pfnmap_start() since): the
 * entry for vpn, a present page or a migration entry, or null when there is none. The caller holds
 * the page table lock.
 */
export function followPte(m: Memmap, mm: number, vpn: number, out?: Translation): Translation | null {
  const pmd = m.pmds[pmdIndex(m, mm, vpn)]!;
  let pfn: number;
  let entry: number;
  let huge: boolean;
  if (pmdIsHuge(pmd)) {
    pfn = (pmd & PFN_MASK) + (vpn & (m.ptrsPerTable - 1));
    entry = pmd;
    huge = true;
  } else {
    if (!pmdIsTable(pmd)) return null;
    entry = m.ptes[pteSlot(m, pmd, vpn)]!;
    if (!(entry & (PTE_PRESENT | PTE_MIGRATION))) return null;
    pfn = ptePfn(entry);
    huge = false;
  }
  // hot callers (GUP) pass a scratch record they read at once; everyone else gets a fresh one
  const t = out ?? { pfn: 0, write: false, migrating: false, huge: false };
  t.pfn = pfn;
  t.write = (entry & PTE_WRITE) !== 0;
  t.migrating = (entry & PTE_PRESENT) === 0;
  t.huge = huge;
  return t;
}

/** The pfn vpn maps now (the page table walked under the PTL), or -1: what the process would touch. */
export function pfnOf(m: Memmap, mm: number, vpn: number): number {
  ptlLock(m, mm);
  const t = followPte(m, mm, vpn);
  ptlUnlock(m, mm);
  return t ? t.pfn : -1;
}

/**
 * migration_entry_wait() / pmd_migration_entry_wait(): sleep until the migration entry at a[i] is
 * replaced (migration finished or failed, or the range was unmapped); bounded, then the fault retries.
 */
const MIGRATION_WAIT_ROUNDS = 1000;
function migrationEntryWait(a: Int32Array, i: number, entry: number): void {
  for (let n = 0; n < MIGRATION_WAIT_ROUNDS && atomicRead(a, i) === entry; n++)
    waitWhileEqual(a, i, entry, 'migration entry', 1);
}

/** thp_vma_allowable_order() for anonymous memory: THP enabled (always, or madvise + MADV_HUGEPAGE) and
 * the aligned PMD range lies inside the VMA. */
function thpAllowed(m: Memmap, vb: number, vpn: number): boolean {
  const flags = m.vmas[vb + VMA_FLAGS]!;
  // a file VMA: file THPs are not modelled
  if (flags & (VM_NOHUGEPAGE | VM_SHARED | VM_HUGETLB) || m.vmas[vb + VMA_SHMEM]) return false;
  const mode = m.header[H_THP_ENABLED]!;
  if (mode === 0 || (mode === 1 && !(flags & VM_HUGEPAGE))) return false;
  const start = vpn & ~(m.ptrsPerTable - 1);
  return start >= m.vmas[vb + VMA_START]! && start + m.ptrsPerTable <= m.vmas[vb + VMA_END]!;
}

/**
 * handle_mm_fault(): make vpn present (writable for a write fault). Returns 0 or VM_FAULT_* bits;
 * VM_FAULT_RETRY means a migration entry was in the way: retry once it is gone.
 */
export function handleMmFault(m: Memmap, mm: number, vpn: number, write: boolean): number {
  countVmEvents(m, PGFAULT, 1);
  const vb = findVma(m, mm, vpn);
  if (vb < 0) return VM_FAULT_SIGSEGV;
  const flags = m.vmas[vb + VMA_FLAGS]!;
  if (write && !(flags & VM_WRITE)) return VM_FAULT_SIGSEGV;
  if (!write && !(flags & VM_READ)) return VM_FAULT_SIGSEGV; // PROT_NONE
  if (flags & (VM_PFNMAP | VM_IO)) return VM_FAULT_SIGBUS; // no struct pages behind it in the model
  if (flags & VM_HUGETLB) return hugetlbFault(m, mm, vb, vpn, write);
  const pi = pmdIndex(m, mm, vpn);
  let pmd = atomicRead(m.pmds, pi);
  if (pmd === 0 && write && thpAllowed(m, vb, vpn)) {
    const rc = doHugePmdAnonymousPage(m, mm, vb, vpn);
    if (rc !== VM_FAULT_RETRY + 1) return rc;
    pmd = atomicRead(m.pmds, pi);
  }
  if (pmdIsHuge(pmd)) {
    if (!(pmd & PTE_PRESENT)) {
      migrationEntryWait(m.pmds, pi, pmd);
      return VM_FAULT_RETRY;
    }
    if (!write || pmd & PTE_WRITE) return 0;
    // do_huge_pmd_wp_page(): fall back to PTEs (the split uses the deposited table), then COW a page
    splitHugePmd(m, mm, vpn);
    pmd = atomicRead(m.pmds, pi);
    if (pmdIsHuge(pmd)) return VM_FAULT_RETRY; // mapped huge again (a migration finished meanwhile): look again
  }
  if (pmd === 0) {
    const t = pteAllocOne(m, mm);
    if (t < 0) return VM_FAULT_OOM;
    ptlLock(m, mm);
    if (m.pmds[pi] === 0) m.pmds[pi] = PMD_TABLE | t;
    else freeUnusedTable(m, mm, t);
    ptlUnlock(m, mm);
    pmd = atomicRead(m.pmds, pi);
    if (pmdIsHuge(pmd)) return VM_FAULT_RETRY;
  }
  return handlePteFault(m, mm, vb, vpn, write, pmd);
}

function freeUnusedTable(m: Memmap, mm: number, t: number): void {
  // lost the race to install a table: give ours back (outside the PTL in the kernel; harmless here)
  ptlUnlock(m, mm);
  pteFree(m, mm, t);
  ptlLock(m, mm);
}

function handlePteFault(m: Memmap, mm: number, vb: number, vpn: number, write: boolean, pmd: number): number {
  const slot = pteSlot(m, pmd, vpn);
  const pte = atomicRead(m.ptes, slot);
  if (pte & PTE_MIGRATION) {
    migrationEntryWait(m.ptes, slot, pte);
    return VM_FAULT_RETRY;
  }
  const flags = m.vmas[vb + VMA_FLAGS]!;
  if (!(pte & PTE_PRESENT)) {
    if (isHwpoisonPte(pte)) return VM_FAULT_HWPOISON; // do_swap_page(): is_hwpoison_entry()
    if (!m.vmas[vb + VMA_SHMEM]) return doAnonymousPage(m, mm, vb, vpn, write, slot);
    const rc = shmemFault(m, mm, vb, vpn, write, slot);
    if (rc || !write || flags & VM_SHARED) return rc;
    // do_cow_fault(): a write to a private file mapping copies the page-cache folio into an anonymous
    // one; pinlab maps the page-cache folio read-only first and breaks COW on it at once (do_wp_page())
    const mapped = atomicRead(m.ptes, slot);
    return mapped & PTE_PRESENT && !(mapped & PTE_WRITE) ? doWpPage(m, mm, vb, vpn, slot, mapped) : 0;
  }
  if (!write || pte & PTE_WRITE) return 0;
  if (!(flags & VM_WRITE)) return VM_FAULT_SIGSEGV;
  return doWpPage(m, mm, vb, vpn, slot, pte);
}

/** do_anonymous_page(): a read maps the shared zero page; a write gets a zeroed movable folio. */
function doAnonymousPage(m: Memmap, mm: number, vb: number, vpn: number, write: boolean, slot: number): number {
  if (!write) {
    ptlLock(m, mm);
    if (m.ptes[slot] === 0) m.ptes[slot] = mkPte(m.zeroPfn(), false);
    ptlUnlock(m, mm);
    return 0;
  }
  const anonVma = anonVmaPrepare(m, mm, vb);
  const pfn = allocPages(m, GFP_HIGHUSER_MOVABLE | __GFP_ZERO, 0); // vma_alloc_zeroed_movable_folio()
  if (pfn === NO_PAGE) return VM_FAULT_OOM;
  ptlLock(m, mm);
  if (m.ptes[slot] !== 0) {
    // pte_same() failed: someone else faulted it in
    ptlUnlock(m, mm);
    folioPut(m, pfn);
    return 0;
  }
  folioAddNewAnonRmap(m, pfn, anonVma, vpn);
  m.flags[pfn] = m.flags[pfn]! | PG_anon_exclusive;
  pteMapInc(m, pfn);
  m.ptes[slot] = mkPte(pfn, (m.vmas[vb + VMA_FLAGS]! & VM_WRITE) !== 0);
  addMmCounter(m, mm, MM_RSS_ANON, 1);
  ptlUnlock(m, mm);
  folioAddLruVma(m, pfn, m.vmas[vb + VMA_FLAGS]!);
  return 0;
}

/**
 * do_wp_page(): a write (or, with unshare, a FOLL_PIN read: FAULT_FLAG_UNSHARE) to a read-only PTE.
 * A PageAnonExclusive page is reused in place; so is a folio only we reference
 * (wp_can_reuse_anon_folio, after draining this CPU's LRU batch). Anything else - the zero page, a
 * page shared since fork - is copied (wp_page_copy); an unshare installs the copy read-only.
 */
function doWpPage(m: Memmap, mm: number, vb: number, vpn: number, slot: number, pte: number, unshare = false): number {
  const old = ptePfn(pte);
  const isZero = (m.flags[old]! & PG_zero) !== 0;
  const writable = (m.vmas[vb + VMA_FLAGS]! & VM_WRITE) !== 0;
  if (m.vmas[vb + VMA_SHMEM] && m.vmas[vb + VMA_FLAGS]! & VM_SHARED) {
    // wp_page_shared(): a shared mapping is made writable; with dirty tracking the folio is dirtied
    // now (fault_dirty_shared_page(), the filesystem's page_mkwrite)
    if (unshare) return 0;
    ptlLock(m, mm);
    if (m.ptes[slot] === pte) {
      m.ptes[slot] = pte | PTE_WRITE;
      if (vmaNeedsDirtyTracking(m, vb)) flagsFetchOr(m.flags, m.compoundHead(old), PG_dirty);
    }
    ptlUnlock(m, mm);
    return 0;
  }
  // wp_can_reuse_anon_folio(): a reference from this CPU's LRU batch does not count (drain it first;
  // the kernel drains with the PTL held, pinlab before taking it: the checks below are made under it)
  if (!isZero && !(m.flags[old]! & PG_anon_exclusive)) {
    const h = m.compoundHead(old);
    if (m.refcount[h]! > 1 && !(m.flags[h]! & PG_lru)) lruAddDrain(m);
  }
  ptlLock(m, mm);
  if (m.ptes[slot] !== pte) {
    ptlUnlock(m, mm);
    return 0;
  }
  // the folio is read under the PTL: the same PTE value may map a page of a folio split meanwhile
  const head = isZero ? old : m.compoundHead(old);
  if (!isZero && m.flags[old]! & PG_anon_exclusive) {
    if (!unshare) m.ptes[slot] = pte | PTE_WRITE;
    ptlUnlock(m, mm);
    return 0;
  }
  if (
    !isZero &&
    (m.flags[head]! & (PG_hugetlb | PG_anon)) === PG_anon && // wp_can_reuse_anon_folio(): anonymous only
    folioOrder(m, head) === 0 &&
    folioMapcount(m, head) === 1 &&
    m.refcount[head]! === 1
  ) {
    flagsFetchOr(m.flags, old, PG_anon_exclusive); // the page is on the LRU: others change its flags concurrently
    m.ptes[slot] = unshare ? pte : pte | PTE_WRITE;
    ptlUnlock(m, mm);
    return 0;
  }
  // do_wp_page(): folio_get() before the PTL is dropped for wp_page_copy(), so the folio cannot be split
  // or migrated while it is copied
  if (!isZero) folioGet(m, head);
  ptlUnlock(m, mm);
  const anonVma = anonVmaPrepare(m, mm, vb);
  const pfn = allocPages(m, GFP_HIGHUSER_MOVABLE, 0);
  if (pfn === NO_PAGE) {
    if (!isZero) folioPut(m, head);
    return VM_FAULT_OOM;
  }
  const range = mmuNotifierInvalidateRangeStart(m, mm, vpn, vpn + 1, MMU_NOTIFY_CLEAR); // wp_page_copy()
  ptlLock(m, mm);
  if (m.ptes[slot] !== pte) {
    ptlUnlock(m, mm);
    mmuNotifierInvalidateRangeEnd(m, range);
    folioPut(m, pfn);
    if (!isZero) folioPut(m, head);
    return 0;
  }
  m.content[pfn] = isZero ? 0 : m.content[old]!; // copy_user_highpage()
  folioAddNewAnonRmap(m, pfn, anonVma, vpn);
  m.flags[pfn] = m.flags[pfn]! | PG_anon_exclusive;
  pteMapInc(m, pfn);
  m.ptes[slot] = mkPte(pfn, !unshare && writable);
  if (!isZero) {
    pteMapDec(m, old);
    const was = mmCounter(m, head); // a page-cache folio of a private file mapping: file -> anon
    if (was !== MM_RSS_ANON) {
      addMmCounter(m, mm, was, -1);
      addMmCounter(m, mm, MM_RSS_ANON, 1);
    }
  } else {
    addMmCounter(m, mm, MM_RSS_ANON, 1);
  }
  ptlUnlock(m, mm);
  mmuNotifierInvalidateRangeEnd(m, range);
  if (!isZero) {
    folioPut(m, head); // the old PTE's reference
    folioPut(m, head); // do_wp_page()'s
  }
  folioAddLruVma(m, pfn, m.vmas[vb + VMA_FLAGS]!);
  return 0;
}

/**
 * The FAULT_FLAG_UNSHARE fault GUP takes before a FOLL_PIN of a read-only anonymous page that is not
 * exclusive (gup_must_unshare()): afterwards the page at vpn is ours alone, still read-only.
 */
export function handleUnshareFault(m: Memmap, mm: number, vpn: number): number {
  const vb = findVma(m, mm, vpn);
  if (vb < 0) return VM_FAULT_SIGSEGV;
  const pi = pmdIndex(m, mm, vpn);
  let pmd = atomicRead(m.pmds, pi);
  if (pmdIsHuge(pmd)) {
    if (!(pmd & PTE_PRESENT)) {
      migrationEntryWait(m.pmds, pi, pmd);
      return VM_FAULT_RETRY;
    }
    if (m.flags[pmd & PFN_MASK]! & (PG_anon_exclusive | PG_hugetlb)) return 0;
    splitHugePmd(m, mm, vpn);
    pmd = atomicRead(m.pmds, pi);
  }
  if (!pmdIsTable(pmd)) return VM_FAULT_RETRY;
  const slot = pteSlot(m, pmd, vpn);
  const pte = atomicRead(m.ptes, slot);
  if (!(pte & PTE_PRESENT)) {
    if (!(pte & PTE_MIGRATION)) return 0;
    migrationEntryWait(m.ptes, slot, pte);
    return VM_FAULT_RETRY;
  }
  return doWpPage(m, mm, vb, vpn, slot, pte, true);
}

/** shmem_fault(): find or allocate the page-cache folio for this offset, then map it. */
function shmemFault(m: Memmap, mm: number, vb: number, vpn: number, write: boolean, slot: number): number {
  const inode = m.vmas[vb + VMA_SHMEM]! - 1;
  const off = m.vmas[vb + VMA_PGOFF]! + (vpn - m.vmas[vb + VMA_START]!);
  const sb = inode * SH_STRIDE;
  if (off >= m.shmem[sb + SH_SIZE]!) return VM_FAULT_SIGBUS;
  const pc = m.shmem[sb + SH_BASE]! + off;
  let pfn = atomicRead(m.shmemPages, pc) - 1;
  if (pfn < 0) {
    const n = allocPages(m, GFP_HIGHUSER_MOVABLE | __GFP_ZERO, 0);
    if (n === NO_PAGE) return VM_FAULT_OOM;
    folioSetShmem(m, n, inode, off);
    // shmem folios are swap-backed; a regular file's page cache is the file LRU's (filemap_add_folio())
    if (m.shmem[sb + SH_FLAGS]! & AS_SHMEM) m.flags[n] = m.flags[n]! | PG_swapbacked;
    if (atomicCmpxchg(m.shmemPages, pc, 0, n + 1) !== 0) {
      folioPut(m, n);
      return VM_FAULT_RETRY;
    }
    folioAddLru(m, n); // the page cache keeps the allocation reference
    pfn = n;
  }
  // filemap_get_entry(): folio_try_get() fails on a folio migration has frozen (refcount 0) or freed,
  // and the page-cache slot is read again afterwards, as the xarray is (xas_reload)
  if (!folioTryGet(m, pfn)) {
    // the kernel spins (goto repeat) until the freeze ends: wait on the refcount, then retry the fault
    if (atomicRead(m.shmemPages, pc) - 1 === pfn) waitWhileEqual(m.refcount, pfn, 0, 'frozen folio', 1);
    return VM_FAULT_RETRY;
  }
  if (atomicRead(m.shmemPages, pc) - 1 !== pfn) {
    folioPut(m, pfn);
    return VM_FAULT_RETRY;
  }
  ptlLock(m, mm);
  if (m.ptes[slot] !== 0) {
    ptlUnlock(m, mm);
    folioPut(m, pfn);
    return 0;
  }
  pteMapInc(m, pfn);
  // finish_fault(): a private mapping maps the page cache read-only (COW); a shared one writable,
  // except that dirty tracking (vma_wants_writenotify()) maps read-only until the first write
  const vf = m.vmas[vb + VMA_FLAGS]!;
  const track = vmaNeedsDirtyTracking(m, vb);
  m.ptes[slot] = mkPte(pfn, (vf & VM_SHARED) !== 0 && (write || (!track && (vf & VM_WRITE) !== 0)));
  if (write && track) flagsFetchOr(m.flags, pfn, PG_dirty); // do_shared_fault(): fault_dirty_shared_page()
  addMmCounter(m, mm, mmCounter(m, pfn), 1);
  mlockVmaFolio(m, pfn, vf); // __folio_add_file_rmap()
  ptlUnlock(m, mm);
  return 0;
}

/** hugetlb_fault(): PMD-sized hugetlb folios from the pool; a write to a shared-after-fork folio copies. */
function hugetlbFault(m: Memmap, mm: number, vb: number, vpn: number, write: boolean): number {
  const hs = hstateIndex(m, m.pmdOrder);
  if (hs < 0) return VM_FAULT_SIGBUS;
  const pi = pmdIndex(m, mm, vpn);
  const pmd = atomicRead(m.pmds, pi);
  if (pmd !== 0 && !(pmd & PTE_PRESENT)) {
    migrationEntryWait(m.pmds, pi, pmd);
    return VM_FAULT_RETRY;
  }
  if (pmd !== 0 && (!write || pmd & PTE_WRITE)) return 0;
  if (pmd !== 0 && hugetlbWpReuse(m, mm, pi, pmd)) return 0;
  const pfn = dequeueHugetlbFolio(m, hs);
  if (pfn < 0) return VM_FAULT_OOM; // VM_FAULT_OOM when the pool is empty (no surplus pages)
  const anonVma = anonVmaPrepare(m, mm, vb);
  const head = vpn & ~(m.ptrsPerTable - 1);
  const range =
    // hugetlb_wp()
    pmd !== 0 ? mmuNotifierInvalidateRangeStart(m, mm, head, head + m.ptrsPerTable, MMU_NOTIFY_CLEAR) : null;
  ptlLock(m, mm);
  if (m.pmds[pi] !== pmd) {
    ptlUnlock(m, mm);
    mmuNotifierInvalidateRangeEnd(m, range);
    folioPut(m, pfn);
    return 0;
  }
  const n = m.ptrsPerTable;
  if (pmd !== 0) {
    // hugetlb_wp(): copy the shared folio
    const old = pmd & PFN_MASK;
    m.content.copyWithin(pfn, old, old + n);
    pmdMapDec(m, old);
  } else m.content.fill(0, pfn, pfn + n);
  folioAddNewAnonRmap(m, pfn, anonVma, head);
  m.flags[pfn] = m.flags[pfn]! | PG_anon_exclusive;
  pmdMapInc(m, pfn);
  m.pmds[pi] = mkHugePmd(pfn, (m.vmas[vb + VMA_FLAGS]! & VM_WRITE) !== 0);
  ptlUnlock(m, mm);
  mmuNotifierInvalidateRangeEnd(m, range);
  if (pmd !== 0) folioPut(m, pmd & PFN_MASK);
  return 0;
}

/**
 * hugetlb_wp()'s reuse: an anonymous folio that only this PMD maps (folio_mapcount() == 1, after the
 * other process of a fork unmapped it) is made exclusive and writable again, not copied. Returns
 * whether it was; false sends the fault on to the copy.
 */
function hugetlbWpReuse(m: Memmap, mm: number, pi: number, pmd: number): boolean {
  const old = pmd & PFN_MASK;
  if (!(m.flags[old]! & PG_anon) || entireMapcount(m, old) !== 1) return false;
  ptlLock(m, mm);
  const same = m.pmds[pi] === pmd;
  if (same) {
    flagsFetchOr(m.flags, old, PG_anon_exclusive); // folio_move_anon_rmap(), SetPageAnonExclusive()
    m.pmds[pi] = mkHugePmd(old, true); // set_huge_ptep_maybe_writable()
  }
  ptlUnlock(m, mm);
  return same;
}

/**
 * copy_hugetlb_page_range()'s early COW: hugetlb_try_dup_anon_rmap() refuses an exclusive folio that
 * may be DMA-pinned, so the child gets its own copy at fork from the pool (alloc_hugetlb_folio(), no
 * reservation) and the parent keeps the pinned folio mapped writable (4eae4efa2c29, v5.12). 0: copied;
 * COPY_AGAIN: the parent's entry changed meanwhile; -1: the pool is empty (fork fails with -ENOMEM).
 */
function copyPinnedHugetlb(m: Memmap, dst: number, src: number, vpn: number, pmd: number): number {
  const head = pmd & PFN_MASK;
  const pfn = dequeueHugetlbFolio(m, hstateIndex(m, m.pmdOrder));
  if (pfn < 0) return -1;
  const spi = pmdIndex(m, src, vpn);
  const n = m.ptrsPerTable;
  ptlLock2(m, src, dst);
  if (m.pmds[spi] !== pmd) {
    ptlUnlock2(m, src, dst);
    folioPut(m, pfn);
    return COPY_AGAIN;
  }
  m.content.copyWithin(pfn, head, head + n); // copy_user_large_folio()
  folioAddNewAnonRmap(m, pfn, m.mapping[head]!, vpn & ~(n - 1)); // hugetlb_install_folio()
  m.flags[pfn] = m.flags[pfn]! | PG_anon_exclusive;
  pmdMapInc(m, pfn);
  m.pmds[pmdIndex(m, dst, vpn)] = mkHugePmd(pfn, true);
  ptlUnlock2(m, src, dst);
  return 0;
}

// ---------------------------------------------------------------------------------------------

/**
 * get_user(): one 32-bit word of user memory at vpn (the frame's content payload), faulting it in as a
 * user access would (handle_mm_fault()). Returns the word, or -EFAULT when the access would
 * SIGSEGV/SIGBUS/OOM. A CPU load by the process itself is the same.
 */
export function getUser(m: Memmap, mm: number, vpn: number): number {
  return userAccess(m, mm, vpn, false, 0);
}

/** put_user(): store value at vpn, faulting as needed; returns the value stored or -EFAULT. A process's store. */
export function putUser(m: Memmap, mm: number, vpn: number, value: number): number {
  return userAccess(m, mm, vpn, true, value);
}

function userAccess(m: Memmap, mm: number, vpn: number, write: boolean, value: number): number {
  mmapReadLock(m, mm); // the fault handler's mmap_read_lock (lock_mm_and_find_vma)
  try {
    return userAccessLocked(m, mm, vpn, write, value);
  } finally {
    mmapReadUnlock(m, mm);
  }
}

function userAccessLocked(m: Memmap, mm: number, vpn: number, write: boolean, value: number): number {
  const vb = findVma(m, mm, vpn);
  // PROT_NONE PTEs are not accessible
  if (vb < 0 || !(m.vmas[vb + VMA_FLAGS]! & (write ? VM_WRITE : VM_READ))) return -EFAULT;
  for (let tries = 0; tries < ACCESS_RETRIES_MAX; tries++) {
    ptlLock(m, mm);
    const t = followPte(m, mm, vpn);
    if (t && !t.migrating && (!write || t.write)) {
      let r: number;
      if (write) {
        m.content[t.pfn] = value >>> 0;
        flagsFetchOr(m.flags, t.pfn, PG_dirty); // atomic: other CPUs set and clear PG_lru/PG_locked concurrently
        r = value >>> 0;
      } else r = m.content[t.pfn]!;
      ptlUnlock(m, mm);
      return r;
    }
    ptlUnlock(m, mm);
    const rc = handleMmFault(m, mm, vpn, write);
    if (rc & VM_FAULT_ERROR) return -EFAULT;
  }
  return -EFAULT;
}

// ---------------------------------------------------------------------------------------------
// Unmapping (zap_pte_range / zap_huge_pmd) and fork (copy_page_range)

/**
 * zap_page_range_single(): drop every mapping in [start, end) of one mm; page tables stay. event is
 * the mmu notifier's: MMU_NOTIFY_CLEAR (madvise), MMU_NOTIFY_UNMAP (munmap, exit: unmap_vmas).
 * [start, end) lies in one VMA; in a hugetlb VMA it must be huge-page aligned
 * (__unmap_hugepage_range(): BUG_ON), since a hugetlb PMD is never split.
 */
export function zapPageRange(m: Memmap, mm: number, start: number, end: number, event = MMU_NOTIFY_CLEAR): void {
  const mask = m.ptrsPerTable - 1;
  const vb = findVma(m, mm, start);
  if (vb >= 0 && m.vmas[vb + VMA_FLAGS]! & VM_HUGETLB && (start & mask || end & mask)) {
    bug(`__unmap_hugepage_range: mm ${mm} [${start}, ${end}) is not huge page aligned`);
  }
  // mm_counter() of a migration entry's folio (zap_nonpresent_ptes): the kernel reads the source folio's
  // PageAnon, which pinlab clears once the data is copied (migrateFolio); pinlab's shared file VMAs map
  // only page-cache folios and its private ones anonymous folios, so the VMA tells (a private file
  // mapping's page-cache folio zapped mid-migration counts as anonymous: docs/simplifications.md)
  const sharedFile = vb >= 0 && m.vmas[vb + VMA_SHMEM] && m.vmas[vb + VMA_FLAGS]! & VM_SHARED;
  const migRss = sharedFile ? shmemRss(m, vb) : MM_RSS_ANON;
  const range = mmuNotifierInvalidateRangeStart(m, mm, start, end, event);
  for (let vpn = start; vpn < end;) {
    const pi = pmdIndex(m, mm, vpn);
    const pmd = atomicRead(m.pmds, pi);
    const pmdEnd = (vpn & ~mask) + m.ptrsPerTable;
    if (pmdIsHuge(pmd)) {
      // zap_pmd_range(): a huge PMD the range covers is zapped whole, one it covers in part is split
      // first (with the deposited table: no allocation); either way look at the PMD again under the PTL
      if ((vpn & mask) === 0 && pmdEnd <= end) {
        if (zapHugePmd(m, mm, pi)) vpn = pmdEnd;
        continue;
      }
      // a hugetlb PMD is never split: part of one cannot be zapped (splitting it would loop for ever)
      if (m.flags[pmd & PFN_MASK]! & PG_hugetlb) {
        bug(`__unmap_hugepage_range: mm ${mm} [${start}, ${end}) covers part of the hugetlb PMD at vpn ${vpn & ~mask}`);
      }
      splitHugePmd(m, mm, vpn);
      continue;
    }
    if (!pmdIsTable(pmd)) {
      vpn = pmdEnd;
      continue;
    }
    const stop = Math.min(end, pmdEnd);
    for (; vpn < stop; vpn++) zapPte(m, mm, pteSlot(m, pmd, vpn), migRss);
  }
  mmuNotifierInvalidateRangeEnd(m, range);
}

function shmemRss(m: Memmap, vb: number): number {
  const inode = m.vmas[vb + VMA_SHMEM]! - 1;
  return m.shmem[inode * SH_STRIDE + SH_FLAGS]! & AS_SHMEM ? MM_RSS_SHMEM : MM_RSS_FILE;
}

/** zap_pte_range() for one entry; migRss is the RSS counter a migration entry there counts in. */
function zapPte(m: Memmap, mm: number, slot: number, migRss: number): void {
  ptlLock(m, mm);
  const pte = m.ptes[slot]!;
  m.ptes[slot] = 0;
  ptlUnlock(m, mm);
  if (pte & PTE_MIGRATION) {
    // zap_nonpresent_ptes(): rss[mm_counter(folio)]-- (the migration finds no mapping to restore)
    addMmCounter(m, mm, migRss, -1);
    return;
  }
  if (!(pte & PTE_PRESENT)) return;
  const pfn = ptePfn(pte);
  if (m.flags[pfn]! & PG_zero) return;
  const head = m.compoundHead(pfn);
  pteMapDec(m, pfn);
  addMmCounter(m, mm, mmCounter(m, head), -1);
  folioPut(m, head);
}

/**
 * copy_page_range() for one VMA (dup_mmap): the child maps the same folios write-protected (COW),
 * except that a possibly DMA-pinned anonymous folio is copied for the child at once
 * (copy_present_page(): the parent keeps the pinned page, the "fork with pins" rule).
 */
export function copyPageRange(
  m: Memmap,
  dst: number,
  src: number,
  start: number,
  end: number,
  shared: boolean,
): number {
  const mask = m.ptrsPerTable - 1;
  for (let vpn = start; vpn < end;) {
    const spi = pmdIndex(m, src, vpn);
    const pmd = atomicRead(m.pmds, spi);
    const pmdEnd = (vpn & ~mask) + m.ptrsPerTable;
    if (pmdIsHuge(pmd)) {
      const head = pmd & PFN_MASK;
      const hugetlb = (m.flags[head]! & PG_hugetlb) !== 0;
      if (!(pmd & PTE_PRESENT)) {
        // a migration entry: copied as it is
        const rc = copyMigrationPmd(m, dst, src, vpn, pmd, hugetlb, shared);
        if (rc < 0) return -1;
        if (rc === 0) vpn = pmdEnd; // else it changed meanwhile: look again
        continue;
      }
      // hugetlb_try_dup_anon_rmap(): -EBUSY for an exclusive folio that folio_needs_cow_for_dma() (a COW
      // mapping, maybe pinned)
      const needsCow = (): boolean =>
        !shared && (m.flags[head]! & PG_anon_exclusive) !== 0 && folioMaybeDmaPinned(m, head);
      if (hugetlb && needsCow()) {
        const rc = copyPinnedHugetlb(m, dst, src, vpn, pmd);
        if (rc < 0) return -1;
        if (rc === 0) vpn = pmdEnd; // else it changed meanwhile: look again
        continue;
      }
      // copy_huge_pmd(): the child's PMD gets its own deposited table, allocated before the locks are
      // taken; without one fork fails with -ENOMEM. hugetlb (copy_hugetlb_page_range) deposits none.
      const t = hugetlb ? -1 : pteAllocOne(m, dst);
      if (!hugetlb && t < 0) return -1;
      const w = shared && (pmd & PTE_WRITE) !== 0;
      // copy_huge_pmd(): both page table locks held while the entry is checked, write-protected and
      // copied, so a racing pin (GUP-fast) or migration sees the entry before or after, never between
      ptlLock2(m, src, dst);
      if (m.pmds[spi] !== pmd || (hugetlb ? needsCow() : folioMaybeDmaPinned(m, head))) {
        const pinned = m.pmds[spi] === pmd;
        ptlUnlock2(m, src, dst);
        if (t >= 0) pteFree(m, dst, t);
        // folio_try_dup_anon_rmap_pmd() failed (maybe pinned): split and copy the PTEs (a hugetlb folio
        // pinned since we looked: copied whole, above); otherwise the entry changed meanwhile: look again
        if (pinned && !hugetlb) splitHugePmd(m, src, vpn);
        continue;
      }
      if (!shared) m.pmds[spi] = pmd & ~PTE_WRITE;
      if (t >= 0) {
        pgtableTransHugeDeposit(m, dst, t);
        addMmCounter(m, dst, MM_RSS_ANON, m.ptrsPerTable); // add_mm_counter(dst_mm, MM_ANONPAGES, HPAGE_PMD_NR)
      }
      m.pmds[pmdIndex(m, dst, vpn)] = mkHugePmd(head, w);
      pmdMapInc(m, head);
      folioGet(m, head);
      if (!shared) flagsFetchAnd(m.flags, head, ~PG_anon_exclusive); // folio_try_dup_anon_rmap_pmd()
      ptlUnlock2(m, src, dst);
      vpn = pmdEnd;
      continue;
    }
    if (!pmdIsTable(pmd)) {
      vpn = pmdEnd;
      continue;
    }
    const dpi = pmdIndex(m, dst, vpn);
    if (m.pmds[dpi] === 0) {
      const t = pteAllocOne(m, dst);
      if (t < 0) return -1;
      m.pmds[dpi] = PMD_TABLE | t;
    }
    const dpmd = m.pmds[dpi]!;
    for (const stop = Math.min(end, pmdEnd); vpn < stop; vpn++) {
      if (copyPte(m, dst, src, pteSlot(m, dpmd, vpn), pteSlot(m, pmd, vpn), vpn, shared) < 0) return -1;
    }
  }
  return 0;
}

/**
 * Fork's copy of a PMD migration entry: copy_huge_pmd() (anonymous THP) or copy_hugetlb_page_range().
 * The child gets the same entry; in a COW mapping a writable one becomes readable in parent and child
 * (make_readable_migration_entry), and so no longer exclusive: pinlab keeps exclusivity in the source
 * pages' PG_anon_exclusive during migration, so it clears it there (remove_migration_pte() then maps
 * the new folio shared). A THP entry takes a deposited table for the child, allocated before the locks
 * (without one fork fails with -ENOMEM), and counts HPAGE_PMD_NR in the child's MM_ANONPAGES; hugetlb
 * deposits none and counts no RSS. Returns 0, -1 (-ENOMEM) or COPY_AGAIN (the entry changed).
 */
function copyMigrationPmd(
  m: Memmap,
  dst: number,
  src: number,
  vpn: number,
  pmd: number,
  hugetlb: boolean,
  shared: boolean,
): number {
  const t = hugetlb ? -1 : pteAllocOne(m, dst);
  if (!hugetlb && t < 0) return -1;
  const spi = pmdIndex(m, src, vpn);
  ptlLock2(m, src, dst);
  if (m.pmds[spi] !== pmd) {
    ptlUnlock2(m, src, dst);
    if (t >= 0) pteFree(m, dst, t);
    return COPY_AGAIN;
  }
  let entry = pmd;
  if (!shared) {
    // is_cow_mapping()
    entry = pmd & ~PTE_WRITE;
    m.pmds[spi] = entry;
    const head = pmd & PFN_MASK;
    for (let p = head; p < head + m.ptrsPerTable; p++) flagsFetchAnd(m.flags, p, ~PG_anon_exclusive);
  }
  if (t >= 0) {
    pgtableTransHugeDeposit(m, dst, t);
    addMmCounter(m, dst, MM_RSS_ANON, m.ptrsPerTable); // add_mm_counter(dst_mm, MM_ANONPAGES, HPAGE_PMD_NR)
  }
  m.pmds[pmdIndex(m, dst, vpn)] = entry;
  ptlUnlock2(m, src, dst);
  return 0;
}

/** Both page table locks of fork's copy, source first (the only place that holds two). */
function ptlLock2(m: Memmap, src: number, dst: number): void {
  ptlLock(m, src);
  if (dst !== src) ptlLock(m, dst);
}
function ptlUnlock2(m: Memmap, src: number, dst: number): void {
  if (dst !== src) ptlUnlock(m, dst);
  ptlUnlock(m, src);
}

/**
 * copy_pte_range() for one entry. The entry is read, checked (folio_try_dup_anon_rmap_pte(): a
 * maybe-pinned exclusive page is copied for the child instead) and copied with both page table locks
 * held, as the kernel holds them: a pin or a migration racing with fork sees the entry before or after.
 */
function copyPte(
  m: Memmap,
  dst: number,
  src: number,
  dslot: number,
  sslot: number,
  vpn: number,
  shared: boolean,
): number {
  for (let tries = 0; ; tries++) {
    const rc = copyPteOnce(m, dst, src, dslot, sslot, vpn, shared);
    if (rc !== COPY_AGAIN || tries > 16) return rc === COPY_AGAIN ? -1 : rc;
  }
}

const COPY_AGAIN = 1;

function copyPteOnce(
  m: Memmap,
  dst: number,
  src: number,
  dslot: number,
  sslot: number,
  vpn: number,
  shared: boolean,
): number {
  const pte = atomicRead(m.ptes, sslot);
  if (!(pte & PTE_PRESENT)) {
    ptlLock2(m, src, dst);
    const again = m.ptes[sslot] !== pte;
    if (!again && isHwpoisonPte(pte)) m.ptes[dslot] = pte; // copy_nonpresent_pte(): the child inherits the entry
    if (!again && pte & PTE_MIGRATION) {
      // copy_nonpresent_pte(): the child's entry counts in its RSS (rss[mm_counter(folio)]++); in a COW
      // mapping both entries become readable, so the page is no longer exclusive (see copyMigrationPmd)
      if (!shared) {
        m.ptes[sslot] = pte & ~PTE_WRITE;
        flagsFetchAnd(m.flags, ptePfn(pte), ~PG_anon_exclusive);
      }
      m.ptes[dslot] = shared ? pte : pte & ~PTE_WRITE;
      addMmCounter(m, dst, shared ? MM_RSS_SHMEM : MM_RSS_ANON, 1);
    }
    ptlUnlock2(m, src, dst);
    return again ? COPY_AGAIN : 0;
  }
  const pfn = ptePfn(pte);
  const head = m.compoundHead(pfn);
  const pinnedExclusive = (): boolean =>
    !shared && (m.flags[pfn]! & PG_anon_exclusive) !== 0 && folioMaybeDmaPinned(m, head);
  if (!(m.flags[pfn]! & PG_zero) && pinnedExclusive()) {
    // copy_present_page(): the child gets its own copy now; allocated before the locks are taken
    const n = allocPages(m, GFP_HIGHUSER_MOVABLE, 0);
    if (n === NO_PAGE) return -1;
    ptlLock2(m, src, dst);
    if (m.ptes[sslot] !== pte || m.compoundHead(pfn) !== head) {
      ptlUnlock2(m, src, dst);
      folioPut(m, n);
      return COPY_AGAIN;
    }
    m.content[n] = m.content[pfn]!;
    folioAddNewAnonRmap(m, n, m.mapping[head]!, vpn);
    m.flags[n] = m.flags[n]! | PG_anon_exclusive;
    pteMapInc(m, n);
    m.ptes[dslot] = mkPte(n, true);
    addMmCounter(m, dst, MM_RSS_ANON, 1);
    ptlUnlock2(m, src, dst);
    folioAddLru(m, n);
    return 0;
  }
  ptlLock2(m, src, dst);
  // the same PTE value may map a page of a folio split since it was read: its folio is read again
  if (m.ptes[sslot] !== pte || m.compoundHead(pfn) !== head || (!(m.flags[pfn]! & PG_zero) && pinnedExclusive())) {
    ptlUnlock2(m, src, dst); // changed, or pinned since we looked: look again
    return COPY_AGAIN;
  }
  if (m.flags[pfn]! & PG_zero) {
    m.ptes[dslot] = pte;
    ptlUnlock2(m, src, dst);
    return 0;
  }
  if (!shared) m.ptes[sslot] = pte & ~PTE_WRITE;
  m.ptes[dslot] = shared ? pte : pte & ~PTE_WRITE;
  if (!shared) flagsFetchAnd(m.flags, pfn, ~PG_anon_exclusive); // folio_try_dup_anon_rmap_pte()
  pteMapInc(m, pfn);
  folioGet(m, head);
  addMmCounter(m, dst, mmCounter(m, head), 1);
  ptlUnlock2(m, src, dst);
  return 0;
}
