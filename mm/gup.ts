// get_user_pages / pin_user_pages and long-term pinning (mm/gup.c, v6.12.117 with the older forms the
// kernel variants select). "Grab" means what try_grab_folio() means: take a FOLL_GET reference or a
// FOLL_PIN pin (GUP_PIN_COUNTING_BIAS on small folios, _pincount on large ones).
//
// Sections in the kernel's order: pin accounting and the unpin family; argument and VMA checks; the
// slow walk (__get_user_pages); long-term migration (collect / migrate, __gup_longterm_locked); the
// lockless fast walk (pin_user_pages_fast). Deviation: the -EAGAIN loop of __gup_longterm_locked,
// unbounded in the kernel (it ends only by SIGKILL), gives up after GUP_LONGTERM_RETRIES_MAX rounds as
// if SIGKILL had arrived, and reports the outcome "no-progress".

import { atomicFetchAdd, atomicFetchSub, flagsFetchOr } from './atomic';
import { Memmap } from './memmap';
import * as layout from './memmap';
import * as errnoNs from './errno';
import { folioIsLongtermPinnable } from './pinnable';
import { folioIsDeviceCoherent } from './memremap';

import * as pinnableNs from './pinnable';
import { variant, hasBug, releaseAtLeast } from './variants';
import { current, memallocPinSave, memallocPinRestore, yieldPoint, faultPoint } from './sched';
import { countVmEvents, vmItem } from './vmstat';
import { folioPutRefs, lruAddDrain, lruAddDrainAll } from './swap';
import { Translation, findVma, followPte, handleMmFault, handleUnshareFault } from './memory';
import { mmapReadLock, mmapReadUnlock, ptlLock, ptlUnlock, VM_FAULT_ERROR, VM_FAULT_OOM } from './mm_types';
import * as mmTypes from './mm_types';
import { vaPages } from './pgtable';
import { folioMapcount } from './rmap';
import {
  isolateFolio,
  migratePages,
  allocMigrationTarget,
  putbackMovablePages,
  MigrateStats,
  MigrateFailure,
  MR_LONGTERM_PIN,
  MR_CONTIG_RANGE,
  migrateDeviceCoherentFolio,
} from './migrate';
import { __GFP_NOWARN, __GFP_MOVABLE } from './gfp';
import * as gfpNs from './gfp';
import { bug, KernelOops, vmWarnOnOnce } from './debug';
import { folioGet, folioNrPages, folioOrder } from './page_ref';
import { vmaNeedsDirtyTracking } from './filemap';

// Numeric constants of leaf modules as module-level bindings: V8 reads an imported binding as a property
// of the other module's exports object at every use (again after every call, atomics included).
const {
  PG_zero,
  PG_anon,
  PG_anon_exclusive,
  PG_lru,
  PG_hugetlb,
  PG_dirty,
  PG_head,
  PG_swapbacked,
  VMA_FLAGS,
  VMA_START,
  VMA_END,
  VMA_SHMEM,
} = layout;
const { EFAULT, EINVAL, EINTR, ENOMEM, EAGAIN, EHWPOISON, EBUSY } = errnoNs;
const { GUP_PIN_COUNTING_BIAS } = pinnableNs;
const { VM_IO, VM_PFNMAP, VM_WRITE, VM_READ, VM_SHARED } = mmTypes;
const { GFP_USER } = gfpNs;

// FOLL_* (include/linux/mm_types.h, 6.12 values); FOLL_PIN and FOLL_TOUCH are internal (mm/internal.h).
const FOLL_WRITE = 1 << 0;
const FOLL_GET = 1 << 1;
const FOLL_FORCE = 1 << 3;
const FOLL_HWPOISON = 1 << 6; // a hwpoisoned page is -EHWPOISON, not -EFAULT
const FOLL_LONGTERM = 1 << 8;
const FOLL_PCI_P2PDMA = 1 << 10;
const FOLL_TOUCH = 1 << 16;
const FOLL_PIN = 1 << 19;
// Exported by name: uses in this file read local bindings, not properties of the exports object (hot paths).
export { FOLL_HWPOISON, FOLL_WRITE, FOLL_GET, FOLL_FORCE, FOLL_LONGTERM, FOLL_PCI_P2PDMA, FOLL_TOUCH, FOLL_PIN };
const INTERNAL_GUP_FLAGS = FOLL_PIN | FOLL_TOUCH;
/**
 * gup_fast_fallback()'s accepted flags; FOLL_NOFAULT (1 << 5), FOLL_HONOR_NUMA_FAULT (1 << 12), FOLL_FAST_ONLY (1 <<
 * 20) are not modelled.
 */
const GUP_FAST_FLAGS =
  FOLL_WRITE | FOLL_LONGTERM | FOLL_FORCE | FOLL_PIN | FOLL_GET | FOLL_PCI_P2PDMA | (1 << 5) | (1 << 12) | (1 << 20);

/** pinlab's bound on the __gup_longterm_locked() -EAGAIN loop (the kernel has none). */
export const GUP_LONGTERM_RETRIES_MAX = 64;

const NR_FOLL_PIN_ACQUIRED = vmItem('nr_foll_pin_acquired');
const NR_FOLL_PIN_RELEASED = vmItem('nr_foll_pin_released');
const GUP_LONGTERM_RETRY = vmItem('gup_longterm_retry');
/** Faults GUP takes for one page before giving up with -EFAULT (each retry follows a completed fault). */
export const GUP_FAULT_RETRIES_MAX = 16;
/** v5.12's check_and_migrate_cma_pages() gave up re-migrating after this many rounds. */
const PINNABLE_MIGRATE_MAX = 10;

/** How a pin ended, beyond its return value. */
export interface PinReport {
  outcome: 'pinned' | 'partial' | 'error' | 'no-progress' | 'killed';
  /** rounds of the long-term loop (0 = pinned at the first try) */
  retries: number;
  migrated: number;
  thpSplit: number;
  /** folios collected as unpinnable, over all rounds */
  collected: number;
  failures: MigrateFailure[];
  /** lru_add_drain() / lru_add_drain_all() calls made by collect */
  drains: number;
  /** the last folio migrated: source and target head pfn */
  lastMoved?: { src: number; dst: number };
}

export function newPinReport(): PinReport {
  return { outcome: 'pinned', retries: 0, migrated: 0, thpSplit: 0, collected: 0, failures: [], drains: 0 };
}

// ---------------------------------------------------------------------------------------------
// Pin accounting and the unpin family

function hasPincount(m: Memmap, head: number): boolean {
  return (m.flags[head]! & PG_head) !== 0 && folioOrder(m, head) >= variant().pincountMinOrder;
}

function isZeroFolio(m: Memmap, head: number): boolean {
  return (m.flags[head]! & PG_zero) !== 0;
}

/**
 * try_grab_folio(): FOLL_GET adds refs; FOLL_PIN adds refs * GUP_PIN_COUNTING_BIAS to a small folio,
 * or refs plus _pincount to a large one, and counts NR_FOLL_PIN_ACQUIRED. Since v6.5 pinning the
 * zero page is a no-op (R18). Returns 0 or -ENOMEM on refcount overflow.
 */
function tryGrabFolio(m: Memmap, head: number, refs: number, flags: number): number {
  if (flags & FOLL_GET) {
    atomicFetchAdd(m.refcount, head, refs);
    return 0;
  }
  if (!(flags & FOLL_PIN)) bug('try_grab_folio: neither FOLL_GET nor FOLL_PIN');
  if (isZeroFolio(m, head) && !variant().zeroPagePinCounts && !hasBug('R18')) return 0;
  if (hasPincount(m, head)) {
    atomicFetchAdd(m.refcount, head, refs);
    atomicFetchAdd(m.mapping, head + 1, refs); // folio->_pincount, in page[1]
  } else {
    const before = atomicFetchAdd(m.refcount, head, refs * GUP_PIN_COUNTING_BIAS);
    if (before + refs * GUP_PIN_COUNTING_BIAS > 0x7fffffff || before < 0) {
      // WARN_ON_ONCE(folio_ref_count(folio) < 0)
      atomicFetchSub(m.refcount, head, refs * GUP_PIN_COUNTING_BIAS);
      return -ENOMEM;
    }
  }
  countVmEvents(m, NR_FOLL_PIN_ACQUIRED, refs);
  current().pinsAcquired += refs;
  return 0;
}

/** gup_put_folio() */
function gupPutFolio(m: Memmap, head: number, refs: number, flags: number): void {
  if (flags & FOLL_PIN) {
    if (isZeroFolio(m, head) && !variant().zeroPagePinCounts && !hasBug('R18')) return;
    countVmEvents(m, NR_FOLL_PIN_RELEASED, refs);
    current().pinsReleased += refs;
    if (hasPincount(m, head)) atomicFetchSub(m.mapping, head + 1, refs);
    else refs *= GUP_PIN_COUNTING_BIAS;
  }
  folioPutRefs(m, head, refs);
}

/** unpin_user_page() */
export function unpinUserPage(m: Memmap, pfn: number): void {
  gupPutFolio(m, m.compoundHead(pfn), 1, FOLL_PIN);
}

/** unpin_user_pages(): skips NULL (-1) entries (6.13: "handle NULL pages"). */
export function unpinUserPages(m: Memmap, pages: number[], nr: number): void {
  for (let i = 0; i < nr; i++) if (pages[i]! >= 0) unpinUserPage(m, pages[i]!);
}

/** unpin_user_pages_dirty_lock(): make dirty first when asked (the device wrote). */
export function unpinUserPagesDirtyLock(m: Memmap, pages: number[], nr: number, makeDirty: boolean): void {
  for (let i = 0; i < nr; i++) {
    const p = pages[i]!;
    if (p < 0) continue;
    if (makeDirty) flagsFetchOr(m.flags, m.compoundHead(p), PG_dirty);
    unpinUserPage(m, p);
  }
}

/**
 * unpin_user_page_range_dirty_lock(): nr physically contiguous pages from pfn (an sg entry, as
 * __ib_umem_release() gives them), a folio at a time: gup_folio_range_next() takes the pages of the
 * range inside one folio, and one gup_put_folio() drops their pins together.
 */
export function unpinUserPageRangeDirtyLock(m: Memmap, pfn: number, nr: number, makeDirty: boolean): void {
  for (let i = 0; i < nr;) {
    const head = m.compoundHead(pfn + i);
    const n = Math.min(head + folioNrPages(m, head) - (pfn + i), nr - i);
    if (makeDirty) flagsFetchOr(m.flags, head, PG_dirty);
    gupPutFolio(m, head, n, FOLL_PIN);
    i += n;
  }
}

/** release_pages() (mm/swap.c): put_page() on each of the FOLL_GET references a get_user_pages() took. */
export function releasePages(m: Memmap, pages: number[], nr: number): void {
  for (let i = 0; i < nr; i++) if (pages[i]! >= 0) gupPutFolio(m, m.compoundHead(pages[i]!), 1, FOLL_GET);
}

// ---------------------------------------------------------------------------------------------
// Argument and VMA checks

/**
 * is_valid_gup_args(): internal flags from callers, GET with PIN, LONGTERM without PIN, no pages array
 * with GET/PIN, LONGTERM with P2PDMA are all rejected. Returns the flags to use or -EINVAL.
 */
export function isValidGupArgs(pages: number[] | null, gupFlags: number, toSet: number): number {
  if (gupFlags & INTERNAL_GUP_FLAGS) return -EINVAL;
  gupFlags |= toSet;
  if ((gupFlags & (FOLL_PIN | FOLL_GET)) === (FOLL_PIN | FOLL_GET)) return -EINVAL;
  if (!(gupFlags & FOLL_PIN) && gupFlags & FOLL_LONGTERM) return -EINVAL;
  if (gupFlags & (FOLL_GET | FOLL_PIN) && !pages) return -EINVAL;
  if (gupFlags & FOLL_LONGTERM && gupFlags & FOLL_PCI_P2PDMA) return -EINVAL;
  return gupFlags;
}

/**
 * writable_file_mapping_allowed() (v6.5, "mm/gup: disallow FOLL_LONGTERM GUP-nonfast writing to
 * file-backed mappings"): no FOLL_PIN|FOLL_LONGTERM write into a mapping that needs dirty tracking (a
 * shared mapping of a file on a filesystem with writeback). Before v6.5 it was allowed.
 */
function writableFileMappingAllowed(m: Memmap, vb: number, gupFlags: number): boolean {
  if ((gupFlags & (FOLL_PIN | FOLL_LONGTERM)) !== (FOLL_PIN | FOLL_LONGTERM)) return true;
  return !vmaNeedsDirtyTracking(m, vb) || !releaseAtLeast(variant(), 6, 5);
}

/** check_vma_flags(): VM_IO/VM_PFNMAP, protection mismatches and disallowed file writes are -EFAULT. */
export function checkVmaFlags(m: Memmap, vb: number, gupFlags: number): number {
  const f = m.vmas[vb + VMA_FLAGS]!;
  if (f & (VM_IO | VM_PFNMAP)) return -EFAULT;
  if (gupFlags & FOLL_WRITE) {
    // !vma_is_anonymous(vma) && !writable_file_mapping_allowed()
    if (m.vmas[vb + VMA_SHMEM] && !writableFileMappingAllowed(m, vb, gupFlags)) return -EFAULT;
    if (!(f & VM_WRITE) && !(gupFlags & FOLL_FORCE)) return -EFAULT;
  } else if (!(f & VM_READ) && !(gupFlags & FOLL_FORCE)) return -EFAULT;
  // fsdax (-EOPNOTSUPP for FOLL_LONGTERM) is not modelled
  return 0;
}

// ---------------------------------------------------------------------------------------------
// The slow walk

type Follow = number | 'fault' | 'unshare';

/**
 * follow_page_mask() + try_grab_folio() under the page table lock: the pfn grabbed, 'fault' when the
 * page must be faulted in (absent, a migration entry, or a write to a read-only PTE), 'unshare' for a
 * FOLL_PIN of a read-only anonymous page another process shares (gup_must_unshare()), or -errno.
 */
const scratch: Translation = { pfn: 0, write: false, migrating: false, huge: false };

/** follow_hugetlb_page()'s pinnability check through try_grab_folio(): the v6.1 variants (6.1 to 6.4). */
function hugetlbSlowGrabRefuses(): boolean {
  const v = variant();
  return releaseAtLeast(v, 6, 1) && !releaseAtLeast(v, 6, 5);
}

function followPage(m: Memmap, mm: number, vpn: number, flags: number, vmFlags: number): Follow {
  ptlLock(m, mm);
  try {
    const t = followPte(m, mm, vpn, scratch);
    if (!t || t.migrating) return 'fault';
    if (flags & FOLL_WRITE && !t.write) return 'fault';
    const head = m.compoundHead(t.pfn);
    if (
      flags & FOLL_PIN &&
      !t.write &&
      m.flags[head]! & PG_anon &&
      !(m.flags[t.pfn]! & PG_anon_exclusive) &&
      !(m.flags[head]! & PG_hugetlb)
    )
      return 'unshare';
    // gup_must_unshare(): a R/O long-term pin of a non-anonymous page (the zero page, or a page-cache
    // folio of a private file mapping) in a COW mapping (v6.1+)
    if (
      (flags & (FOLL_PIN | FOLL_LONGTERM)) === (FOLL_PIN | FOLL_LONGTERM) &&
      !t.write &&
      (m.flags[head]! & PG_zero || (!(m.flags[head]! & (PG_anon | PG_hugetlb)) && !(vmFlags & VM_SHARED))) &&
      variant().roLongtermUnshare
    )
      return 'unshare';
    // R15: the slow path used the fast-path grab, which refuses unpinnable large folios
    if (flags & FOLL_LONGTERM && m.flags[head]! & PG_head && hasBug('R15') && !folioIsLongtermPinnable(m, head))
      return -EFAULT;
    // follow_hugetlb_page() (v6.1 to v6.4) grabs with try_grab_folio(), the fast-path helper that refuses
    // a long-term pin of an unpinnable folio: WARN_ON_ONCE() and -ENOMEM before anything is migrated
    // (Debian's 6.1: scenarios/kernel/hugetlb-longterm-pin.yaml). "mm/gup: retire follow_hugetlb_page()"
    // (v6.5) removed it; the fast-path grab then stayed in the slow path until v6.10 (R15's fix)
    if (
      flags & FOLL_LONGTERM &&
      m.flags[head]! & PG_hugetlb &&
      hugetlbSlowGrabRefuses() &&
      !folioIsLongtermPinnable(m, head)
    ) {
      vmWarnOnOnce(true, 'follow_hugetlb_page: try_grab_folio() refused a long-term pin');
      return -ENOMEM;
    }
    const rc = tryGrabFolio(m, head, 1, flags);
    return rc < 0 ? rc : t.pfn;
  } finally {
    ptlUnlock(m, mm);
  }
}

/**
 * __get_user_pages_locked(): the walk (getUserPagesWalk(), __get_user_pages()) under mmap_read_lock(),
 * dropped again before the caller migrates. Returns how many pages were grabbed (a short count on a
 * later error), or -errno if none was.
 */
function getUserPagesLocked(
  m: Memmap,
  mm: number,
  vpn: number,
  nrPages: number,
  flags: number,
  pages: number[],
  offset = 0,
): number {
  mmapReadLock(m, mm); // __get_user_pages_locked(): mmap_read_lock() for the walk, dropped before migration
  try {
    return getUserPagesWalk(m, mm, vpn, nrPages, flags, pages, offset);
  } finally {
    mmapReadUnlock(m, mm);
  }
}

/**
 * __get_user_pages(): walk [vpn, vpn + nrPages), faulting in what is missing (faultin_page()) and
 * grabbing each page (try_grab_folio()); mmap_lock held for reading by the caller.
 */
function getUserPagesWalk(
  m: Memmap,
  mm: number,
  vpn: number,
  nrPages: number,
  flags: number,
  pages: number[],
  offset: number,
): number {
  let i = 0;
  let ret = 0;
  let vb = -1;
  let vmaEnd = -1;
  while (i < nrPages) {
    const v = vpn + i;
    if (vb < 0 || v >= vmaEnd) {
      vb = findVma(m, mm, v);
      if (vb < 0) {
        ret = -EFAULT;
        break;
      }
      vmaEnd = m.vmas[vb + VMA_END]!;
      ret = checkVmaFlags(m, vb, flags);
      if (ret) break;
    }
    let tries = 0;
    let r: number;
    for (;;) {
      if (current().fatalSignal) {
        r = -EINTR;
        break;
      }
      const f = followPage(m, mm, v, flags, m.vmas[vb + VMA_FLAGS]!);
      if (typeof f === 'number') {
        r = f;
        break;
      }
      if (++tries > GUP_FAULT_RETRIES_MAX) {
        current().gupFaultRetriesExhausted++;
        r = -EFAULT;
        break;
      } // pinlab's bound: the harness tells it from a bad address
      const fr = f === 'unshare' ? handleUnshareFault(m, mm, v) : handleMmFault(m, mm, v, (flags & FOLL_WRITE) !== 0);
      if (fr & VM_FAULT_OOM) {
        r = current().fatalSignal ? -EINTR : -ENOMEM;
        break;
      }
      if (fr & VM_FAULT_ERROR) {
        // vm_fault_to_errno()
        r = fr & mmTypes.VM_FAULT_HWPOISON && flags & FOLL_HWPOISON ? -EHWPOISON : -EFAULT;
        break;
      }
    }
    if (r < 0) {
      ret = r;
      break;
    }
    pages[offset + i] = r;
    i++;
  }
  return i ? i : ret;
}

// ---------------------------------------------------------------------------------------------
// Long-term pins: migrate unpinnable folios away first

/** folio_expected_ref_count(): mappings, plus the page cache's references for a shmem folio. */
function folioExpectedRefCount(m: Memmap, head: number): number {
  const mapped = folioMapcount(m, head);
  return m.flags[head]! & PG_anon ? mapped : mapped + (1 << folioOrder(m, head));
}

/** A small folio holds references beyond its mappings and our pin (an LRU batch, say): drain first. */
function collectBusy(m: Memmap, head: number, small: boolean, pinRefs: number): boolean {
  return small && m.refcount[head] !== folioExpectedRefCount(m, head) + pinRefs;
}

/** What collect_longterm_unpinnable_folios() found: how many folios are unpinnable, and the isolated ones. */
interface Collected {
  collected: number;
  list: number[];
}

/**
 * collect_longterm_unpinnable_folios(): every distinct unpinnable folio among the pinned pages is
 * counted and, when it can be isolated, listed. Drains LRU batches first when a folio's refcount says
 * something else holds it (6.12: local, then all CPUs; older: lru_add_drain_all once for a folio off the LRU).
 */
function collectLongtermUnpinnableFolios(m: Memmap, pages: number[], nr: number, report: PinReport): Collected {
  let collected = 0;
  // the isolated folios: sized at the first one for every page left, cut to size at the end (a pushed
  // array regrows and copies itself some 30 times on its way to 262,144 entries)
  let list: number[] | null = null;
  let listed = 0;
  let drained = 0;
  let prevHead = -1;
  const v = variant();
  const r10 = hasBug('R10');
  const r21 = hasBug('R21');
  // R13: before "mm/gup: check ref_count instead of lru before migration", a folio off the LRU was
  // the only drain trigger: one parked in an mlock batch with PG_lru still set was not drained
  const byRefcount = v.drain === 'refcount' && !hasBug('R13');
  for (let i = 0; i < nr; i++) {
    const head = m.compoundHead(pages[i]!);
    if (head === prevHead) continue; // pofs_next_folio(): one visit per folio
    prevHead = head;
    // a device-coherent folio is collected whatever the predicate says: the slow path migrated it even
    // in the series before folio_is_longterm_pinnable() learnt of it (R17), so only GUP-fast differs
    const coherent = folioIsDeviceCoherent(m, head);
    if (!coherent && folioIsLongtermPinnable(m, head)) continue;
    collected++;
    if (coherent) continue; // migrated in migrate_longterm_unpinnable_folios(), not from the LRU
    if (m.flags[head]! & PG_hugetlb) {
      if (isolateFolio(m, head)) {
        // isolate_hugetlb(): failure ignored, still collected
        list ??= new Array<number>(nr - i);
        list[listed++] = head;
      }
      continue;
    }
    const small = !(m.flags[head]! & PG_head);
    if (byRefcount) {
      if (small && drained < 2) {
        // only small folios can look busy
        const pinRefs = hasPincount(m, head) || r21 ? 1 : GUP_PIN_COUNTING_BIAS;
        if (drained === 0 && collectBusy(m, head, small, pinRefs)) {
          lruAddDrain(m);
          drained = 1;
          report.drains++;
        }
        if (drained === 1 && collectBusy(m, head, small, pinRefs)) {
          lruAddDrainAll(m);
          drained = 2;
          report.drains++;
        }
      }
    } else if (!(m.flags[head]! & PG_lru) && drained === 0) {
      lruAddDrainAll(m);
      drained = 2;
      report.drains++;
    }
    const isolated = isolateFolio(m, head);
    if (r10) continue; // inverted check: an isolated folio is neither listed nor put back
    if (!isolated) continue;
    list ??= new Array<number>(nr - i);
    list[listed++] = head;
  }
  report.collected += collected;
  if (list === null) return { collected, list: [] };
  list.length = listed;
  return { collected, list };
}

function pinTargetGfp(): number {
  return GFP_USER | __GFP_NOWARN | (hasBug('R1') ? __GFP_MOVABLE : 0);
}

function pinMigrate(m: Memmap, list: number[], report: PinReport): number {
  const stats: MigrateStats = { nrSucceeded: 0, nrFailedPages: 0, nrThpSplit: 0, failures: [] };
  yieldPoint('gup:before-migrate');
  const rc = migratePages(m, list, allocMigrationTarget(pinTargetGfp()), {
    reason: variant().reasonContigRange ? MR_CONTIG_RANGE : MR_LONGTERM_PIN,
    stats,
  });
  yieldPoint('gup:after-migrate');
  report.migrated += stats.nrSucceeded;
  if (stats.lastMoved) report.lastMoved = stats.lastMoved;
  report.thpSplit += stats.nrThpSplit;
  for (const f of stats.failures) report.failures.push(f); // (not push(...): 100k+ failures would overflow the stack)
  return rc;
}

/**
 * migrate_longterm_unpinnable_folios(): drop every pin, migrate the list (MR_LONGTERM_PIN, targets
 * GFP_USER | __GFP_NOWARN in the pin scope). -EAGAIN: re-pin and check again; -ENOMEM: migration left
 * folios behind. No pins are held on return.
 */
function migrateLongtermUnpinnableFolios(
  m: Memmap,
  list: number[],
  pages: number[],
  nr: number,
  report: PinReport,
): number {
  for (let i = 0; i < nr; i++) {
    const head = m.compoundHead(pages[i]!);
    if (folioIsDeviceCoherent(m, head)) {
      // the pin becomes a plain reference (migration fails on a pinned folio), which the move consumes
      pages[i] = -1;
      folioGet(m, head);
      unpinUserPage(m, head);
      if (migrateDeviceCoherentFolio(m, head)) {
        pofsUnpin(m, pages, nr); // err:
        putbackMovablePages(m, list);
        return -EBUSY;
      }
      report.migrated++;
      continue;
    }
    unpinUserPage(m, pages[i]!);
    pages[i] = -1;
  }
  if (list.length && pinMigrate(m, list, report)) {
    pofsUnpin(m, pages, nr); // err: every entry was cleared above
    putbackMovablePages(m, list);
    return -ENOMEM;
  }
  putbackMovablePages(m, list);
  return -EAGAIN;
}

/**
 * pofs_unpin() on migrate_longterm_unpinnable_folios()' error path, where every entry is NULL by then.
 * R14c (R14's part c): before "mm/gup: handle NULL pages in unpin_user_pages()" (6.13-rc, 6.12.5)
 * unpin_user_pages() took the first entry's folio (gup_folio_next()): a NULL dereference.
 */
function pofsUnpin(m: Memmap, pages: number[], nr: number): void {
  if (nr > 0 && pages[0]! < 0 && hasBug('R14c'))
    throw new KernelOops(
      'BUG: kernel NULL pointer dereference, address: 0000000000000008 (page_folio(NULL) in gup_folio_next()); ' +
        'RIP: unpin_user_pages <- pofs_unpin <- migrate_longterm_unpinnable_folios <- __gup_longterm_locked',
    );
  unpinUserPages(m, pages, nr);
}

/** check_and_migrate_movable_pages() (v6.1+): 0 = all pinnable, -EAGAIN = re-pin, else an error. */
function checkAndMigrateMovablePages(m: Memmap, nr: number, pages: number[], report: PinReport): number {
  if (hasBug('R14') && faultPoint('gup:pofs-alloc')) return -ENOMEM; // kmalloc_array() failed: pins leak (6.11)
  const { collected, list } = collectLongtermUnpinnableFolios(m, pages, nr, report);
  if (!collected) return 0;
  yieldPoint('gup:after-collect');
  if (hasBug('R12') && !list.length) return 0; // "fix infinite loop": an empty list passed as success
  return migrateLongtermUnpinnableFolios(m, list, pages, nr, report);
}

/**
 * check_and_migrate_movable_pages() as merged in v5.13: success when nothing is listed and nothing
 * failed isolation; otherwise unpin everything, migrate, and return 0 (retry) or -ENOMEM. Returns nr
 * on success.
 */
function checkAndMigrateV513(
  m: Memmap,
  mm: number,
  vpn: number,
  nr: number,
  pages: number[],
  flags: number,
  offset: number,
  report: PinReport,
): number {
  const list: number[] = [];
  let isolationErrors = 0;
  let drainAllow = true;
  let collected = 0;
  for (let i = 0; i < nr;) {
    const pfn = pages[offset + i]!;
    const head = m.compoundHead(pfn);
    // 83c02c23d074: dedup by head (prev_head); R2 stepped over the rest of the compound page instead
    let step = 1;
    if (hasBug('R2')) step = (1 << folioOrder(m, head)) - (pfn - head);
    else while (i + step < nr && m.compoundHead(pages[offset + i + step]!) === head) step++;
    i += step;
    if (folioIsLongtermPinnable(m, head)) continue;
    collected++;
    if (m.flags[head]! & PG_hugetlb) {
      if (isolateFolio(m, head)) list.push(head);
      else isolationErrors++;
      continue;
    }
    if (!(m.flags[head]! & PG_lru) && drainAllow) {
      lruAddDrainAll(m);
      drainAllow = false;
      report.drains++;
    }
    if (isolateFolio(m, head)) list.push(head);
    else isolationErrors++;
  }
  report.collected += collected;
  if (collected) yieldPoint('gup:after-collect');
  if (!list.length && (!isolationErrors || hasBug('R4'))) return nr;
  for (let i = 0; i < nr; i++) unpinUserPage(m, pages[offset + i]!);
  if (list.length) {
    const ret = pinMigrate(m, list, report);
    if (ret) {
      putbackMovablePages(m, list);
      if (hasBug('R3')) return getUserPagesLocked(m, mm, vpn, nr, flags, pages, offset); // re-pinned in place
      return ret > 0 ? -ENOMEM : ret;
    }
  }
  return 0;
}

/**
 * __gup_longterm_locked(): without FOLL_LONGTERM a plain walk; with it, pin, check, and while
 * folios had to move, unpin, migrate and pin again - all inside memalloc_pin_save().
 * Returns the number pinned or -errno; no pins are held after an error.
 */
function gupLongtermLocked(
  m: Memmap,
  mm: number,
  vpn: number,
  nrPages: number,
  pages: number[],
  flags: number,
  report: PinReport = newPinReport(),
  offset = 0,
): number {
  if (!(flags & FOLL_LONGTERM)) return getUserPagesLocked(m, mm, vpn, nrPages, flags, pages, offset);
  const saved = memallocPinSave();
  try {
    switch (variant().loop) {
      case 'v5.12':
        return longtermV512(m, mm, vpn, nrPages, pages, flags, report, offset);
      case 'v5.13':
        return longtermV513(m, mm, vpn, nrPages, pages, flags, report, offset);
      default:
        return longtermV61(m, mm, vpn, nrPages, pages, flags, report, offset);
    }
  } finally {
    memallocPinRestore(saved);
  }
}

function longtermV61(
  m: Memmap,
  mm: number,
  vpn: number,
  nrPages: number,
  pages: number[],
  flags: number,
  report: PinReport,
  offset: number,
): number {
  let rc: number;
  let pinned: number;
  for (;;) {
    pinned = getUserPagesLocked(m, mm, vpn, nrPages, flags, pages, offset);
    if (pinned <= 0) {
      rc = pinned;
      break;
    }
    const view = offset ? pages.slice(offset, offset + pinned) : pages;
    rc = checkAndMigrateMovablePages(m, pinned, view, report);
    if (offset) for (let i = 0; i < pinned; i++) pages[offset + i] = view[i]!;
    if (rc !== -EAGAIN) break;
    if (++report.retries >= GUP_LONGTERM_RETRIES_MAX) {
      report.outcome = 'no-progress';
      return -EINTR; // the kernel spins here until SIGKILL; pinlab stops as if it had come
    }
  }
  if (rc) return rc;
  return hasBug('R9') ? nrPages : pinned;
}

function longtermV513(
  m: Memmap,
  mm: number,
  vpn: number,
  nrPages: number,
  pages: number[],
  flags: number,
  report: PinReport,
  offset: number,
): number {
  let rc: number;
  do {
    rc = getUserPagesLocked(m, mm, vpn, nrPages, flags, pages, offset);
    if (rc <= 0) break;
    rc = checkAndMigrateV513(m, mm, vpn, rc, pages, flags, offset, report);
    if (rc === 0 && ++report.retries >= GUP_LONGTERM_RETRIES_MAX) {
      report.outcome = 'no-progress';
      return -EINTR;
    }
  } while (rc === 0);
  return rc;
}

/**
 * check_and_migrate_cma_pages() (v5.12): only CMA pages move, targets may be ZONE_MOVABLE, failures to isolate are
 * ignored.
 */
function longtermV512(
  m: Memmap,
  mm: number,
  vpn: number,
  nrPages: number,
  pages: number[],
  flags: number,
  report: PinReport,
  offset: number,
): number {
  let n = getUserPagesLocked(m, mm, vpn, nrPages, flags, pages, offset);
  for (let round = 0; n > 0 && round < PINNABLE_MIGRATE_MAX; round++) {
    const list: number[] = [];
    let drainAllow = true;
    let prev = -1;
    for (let i = 0; i < n; i++) {
      const head = m.compoundHead(pages[offset + i]!);
      if (head === prev || folioIsLongtermPinnable(m, head)) continue;
      prev = head;
      report.collected++;
      if (!(m.flags[head]! & PG_lru) && drainAllow) {
        lruAddDrainAll(m);
        drainAllow = false;
        report.drains++;
      }
      if (isolateFolio(m, head)) list.push(head);
    }
    if (!list.length) return n;
    yieldPoint('gup:after-collect');
    for (let i = 0; i < n; i++) unpinUserPage(m, pages[offset + i]!);
    const ret = pinMigrate(m, list, report);
    if (ret) {
      putbackMovablePages(m, list);
      return ret > 0 ? -ENOMEM : ret;
    }
    report.retries++;
    n = getUserPagesLocked(m, mm, vpn, nrPages, flags, pages, offset);
  }
  return n;
}

// ---------------------------------------------------------------------------------------------
// Entry points

function finish(m: Memmap, rc: number, nrPages: number, report: PinReport): number {
  if (report.outcome !== 'no-progress') {
    if (current().fatalSignal && rc < 0) report.outcome = 'killed';
    else if (rc < 0) report.outcome = 'error';
    else if (rc < nrPages) report.outcome = 'partial';
    else report.outcome = 'pinned';
  }
  if (report.retries) countVmEvents(m, GUP_LONGTERM_RETRY, report.retries);
  const path = PIN_OUTCOME_PATHS[report.outcome];
  if (path !== undefined) countVmEvents(m, path, 1);
  return rc;
}

/** The kernel paths a pin's outcome took (mm/vmstat.ts PATH_ITEMS); a full pin counts as nothing special. */
const PIN_OUTCOME_PATHS: Partial<Record<PinReport['outcome'], number>> = {
  partial: vmItem('gup_pin_partial'),
  error: vmItem('gup_pin_error'),
  killed: vmItem('gup_pin_killed'),
  'no-progress': vmItem('gup_longterm_no_progress'),
};

/**
 * pin_user_pages() / pin_user_pages_remote(): FOLL_PIN on another or the current mm. Bad arguments return 0 (6.12), not
 * -EINVAL.
 */
export function pinUserPages(
  m: Memmap,
  mm: number,
  vpn: number,
  nrPages: number,
  gupFlags: number,
  pages: number[],
  report: PinReport = newPinReport(),
): number {
  const flags = isValidGupArgs(pages, gupFlags, FOLL_PIN);
  if (flags < 0) {
    report.outcome = 'error';
    return 0;
  }
  if (nrPages <= 0) return finish(m, 0, nrPages, report);
  return finish(m, gupLongtermLocked(m, mm, vpn, nrPages, pages, flags, report), nrPages, report);
}
export const pinUserPagesRemote = pinUserPages;

/** get_user_pages(): FOLL_GET references (FOLL_LONGTERM is not allowed without FOLL_PIN). */
export function getUserPages(
  m: Memmap,
  mm: number,
  vpn: number,
  nrPages: number,
  gupFlags: number,
  pages: number[],
): number {
  const flags = isValidGupArgs(pages, gupFlags, FOLL_GET);
  if (flags < 0) return flags;
  return getUserPagesLocked(m, mm, vpn, nrPages, flags, pages);
}

/**
 * gup_fast_pte_range() + try_grab_folio_fast(): lockless, no faults. Stops at the first page that is
 * absent, PROT_NONE, read-only for a write, the (special) zero page, shared for a read-only pin, or
 * not long-term pinnable under FOLL_LONGTERM. Returns how many it pinned.
 */
function gupFast(m: Memmap, mm: number, vpn: number, nrPages: number, flags: number, pages: number[]): number {
  let i = 0;
  let vb = -1;
  // gup_fast_folio_allowed() (v6.5): a long-term write pin takes only anonymous, shmem and hugetlb folios
  // (anything else falls back to the slow path, which has the VMA); gup_must_unshare() without a VMA: a
  // R/O long-term pin of a page-cache folio falls back too (v6.1+)
  const lt = (flags & (FOLL_PIN | FOLL_LONGTERM)) === (FOLL_PIN | FOLL_LONGTERM);
  const notFile =
    lt && flags & FOLL_WRITE
      ? releaseAtLeast(variant(), 6, 5)
        ? PG_anon | PG_swapbacked | PG_hugetlb
        : 0
      : lt && variant().roLongtermUnshare
        ? PG_anon | PG_hugetlb
        : 0;
  for (; i < nrPages; i++) {
    // pte_protnone(): pinlab keeps PROT_NONE in the VMA only, so the walk asks it (the kernel reads the PTE);
    // the VMA slot of the previous page, while it still covers this one, is the one findVma() would return
    const v = vpn + i;
    if (vb < 0 || v < m.vmas[vb + VMA_START]! || v >= m.vmas[vb + VMA_END]!) vb = findVma(m, mm, v);
    if (vb < 0 || !(m.vmas[vb + VMA_FLAGS]! & (VM_READ | VM_WRITE))) break;
    ptlLock(m, mm); // stands for the lockless walk's re-check of the PTE after grabbing
    const t = followPte(m, mm, vpn + i, scratch);
    let ok = !!t && !t.migrating && (!(flags & FOLL_WRITE) || t.write);
    let head = -1;
    if (ok) {
      head = m.compoundHead(t!.pfn);
      const hf = m.flags[head]!;
      if (hf & PG_zero)
        ok = false; // pte_special(): the slow path handles it
      else if (flags & FOLL_PIN && !t!.write && hf & PG_anon && !(m.flags[t!.pfn]! & PG_anon_exclusive)) ok = false;
      else if (notFile && !(hf & notFile)) ok = false;
      else if (flags & FOLL_LONGTERM && !folioIsLongtermPinnable(m, head)) ok = false;
      else if (m.refcount[head]! <= 0) ok = false; // folio_try_get() failed: frozen or freed
    }
    // gup_fast_pmd_leaf(): a PMD-mapped THP is grabbed once for every page it covers in the range
    const refs = ok && t!.huge ? Math.min(nrPages - i, m.ptrsPerTable - ((vpn + i) & (m.ptrsPerTable - 1))) : 1;
    if (ok && tryGrabFolio(m, head, refs, flags) < 0) ok = false;
    ptlUnlock(m, mm);
    if (!ok) break;
    for (let k = 0; k < refs; k++) pages[i + k] = t!.pfn + k;
    i += refs - 1;
  }
  return i;
}

/**
 * pin_user_pages_fast() -> gup_fast_fallback(): the fast walk pins what it can; the rest goes through
 * __gup_longterm_locked(). If that fails after the fast walk pinned k > 0 pages, k is returned and the
 * caller must unpin them.
 */
export function pinUserPagesFast(
  m: Memmap,
  mm: number,
  vpn: number,
  nrPages: number,
  gupFlags: number,
  pages: number[],
  report: PinReport = newPinReport(),
): number {
  const flags = isValidGupArgs(pages, gupFlags, FOLL_PIN);
  if (flags < 0 || flags & ~GUP_FAST_FLAGS) return finish(m, -EINVAL, nrPages, report);
  return finish(m, gupFastFallback(m, mm, vpn, nrPages, flags, pages, report), nrPages, report);
}

/** gup_fast_fallback() with the flags checked: the fast walk, then the slow path for the rest. */
function gupFastFallback(
  m: Memmap,
  mm: number,
  vpn: number,
  nrPages: number,
  flags: number,
  pages: number[],
  report: PinReport,
): number {
  if (nrPages <= 0) return 0;
  // end > TASK_SIZE_MAX
  if (vpn < 0 || nrPages > vaPages(m) - vpn) return -EFAULT;
  const fast = gupFast(m, mm, vpn, nrPages, flags, pages);
  if (fast === nrPages) return fast;
  yieldPoint('gup:fast-to-slow'); // interrupts back on, the slow path may sleep
  const rest = gupLongtermLocked(m, mm, vpn + fast, nrPages - fast, pages, flags, report, fast);
  if (rest < 0) return fast ? fast : rest;
  return fast + rest;
}

/**
 * get_user_pages_fast(): FOLL_GET references through gup_fast_fallback() (KVM's hva_to_pfn(), the
 * futex and AIO paths); no FOLL_LONGTERM without FOLL_PIN. Returns the pages got, or an errno.
 */
export function getUserPagesFast(
  m: Memmap,
  mm: number,
  vpn: number,
  nrPages: number,
  gupFlags: number,
  pages: number[],
): number {
  const flags = isValidGupArgs(pages, gupFlags, FOLL_GET);
  if (flags < 0 || flags & ~GUP_FAST_FLAGS) return -EINVAL;
  return gupFastFallback(m, mm, vpn, nrPages, flags, pages, newPinReport());
}
