// Reverse mapping (mm/rmap.c, v6.12): from a folio back to every page-table entry that maps it, so
// migration can replace them with migration entries and later with the new folio.
//
// An anonymous folio records its anon_vma (mapping) and the virtual page of its first page (index);
// forked VMAs share the anon_vma root, so a walk visits parent and children. A shmem folio records its
// inode and page offset. A PTE mapping of page i counts in _mapcount[i]; a PMD mapping of the whole
// folio counts in _entire_mapcount, which lives in the first tail page (page[1]) as in the kernel.

import { atomicFetchAdd, atomicFetchSub, atomicRead, flagsFetchAnd, flagsFetchOr, mapcountFetchAdd } from './atomic';
import { Memmap, folioPincount } from './memmap';
import * as layout from './memmap';
import { ptlLock, ptlUnlock, mmBase, vmaBase, mmSlotsInUse, addMmCounter } from './mm_types';
import { bug, vmWarnOnOnceMm } from './debug';
import * as pgtableNs from './pgtable';
import { spinLock, spinUnlock } from './locking';
import * as pinnableNs from './pinnable';
import { variant } from './variants';
import { countVmEvents, vmItem } from './vmstat';
import {
  mmuNotifierInvalidateRangeStart,
  mmuNotifierInvalidateRangeEnd,
  mmuNotifierBlindStart,
  BLIND_RANGE,
  MmuNotifierRange,
  MMU_NOTIFY_CLEAR,
} from './mmu_notifier';
import { folioOrder, folioGet } from './page_ref';
import { pmdIndex, pmdIsHuge, pmdIsTable, ptePfn, mkPte, mkMigrationEntry, mkHwpoisonEntry } from './pgtable';

// Numeric constants of leaf modules as module-level bindings: V8 reads an imported binding as a property
// of the other module's exports object at every use (again after every call, atomics included).
const {
  H_ANON_VMA_NEXT,
  PG_anon,
  PG_head,
  PG_zero,
  MM_USERS,
  VMA_START,
  VMA_END,
  VMA_ANON_VMA,
  VMA_SHMEM,
  VMA_PGOFF,
  MM_NR_VMAS,
  MM_PTL,
  PG_hugetlb,
  PG_anon_exclusive,
  MM_STRIDE,
  VMA_STRIDE,
  H_FORK_SEQ,
  PG_hwpoison,
  MM_RSS_ANON,
  MM_RSS_SHMEM,
} = layout;
const { PTE_MIGRATION, PTE_PRESENT, PTE_WRITE, PMD_HUGE, PFN_MASK } = pgtableNs;
const { GUP_PIN_COUNTING_BIAS } = pinnableNs;

const NR_ANON_THPS = vmItem('nr_anon_transparent_hugepages');

/** folio_mapcount(): PTE mappings of every page plus PMD mappings of the whole folio. */
export function folioMapcount(m: Memmap, head: number): number {
  const n = 1 << folioOrder(m, head);
  let c = 0;
  for (let p = head; p < head + n; p++) c += m.mapcount[p]!;
  return c + entireMapcount(m, head);
}

/** folio_entire_mapcount(): PMD mappings, kept in page[1] apart from page[1]'s own PTE count. */
export function entireMapcount(m: Memmap, head: number): number {
  return m.flags[head]! & PG_head ? m.index[head + 1]! : 0; // page[1]'s index word (struct folio)
}

export function folioMapped(m: Memmap, head: number): boolean {
  return folioMapcount(m, head) > 0;
}

/**
 * folio_test_partially_mapped(): an anonymous THP some of whose pages lost their last mapping while
 * others are still mapped (__folio_remove_rmap() then queues it for deferred split). Computed from the
 * mapcounts: pinlab keeps no deferred split queue, and an anonymous page once unmapped is never mapped again.
 */
export function folioPartiallyMapped(m: Memmap, head: number): boolean {
  const f = m.flags[head]!;
  if ((f & (PG_head | PG_anon | PG_hugetlb)) !== (PG_head | PG_anon) || entireMapcount(m, head) > 0) return false;
  let mapped = false;
  let unmapped = false;
  for (let p = head, end = head + (1 << folioOrder(m, head)); p < end; p++) {
    if (m.mapcount[p]) mapped = true;
    else unmapped = true;
    if (mapped && unmapped) return true;
  }
  return false;
}

/**
 * folio_maybe_dma_pinned(): large folios keep an exact _pincount; small ones infer it from the
 * refcount bias (false positives at >= 1024 plain references).
 */
export function folioMaybeDmaPinned(m: Memmap, head: number): boolean {
  if (m.flags[head]! & PG_head && folioOrder(m, head) >= variant().pincountMinOrder) return folioPincount(m, head) > 0;
  return m.refcount[head]! >= GUP_PIN_COUNTING_BIAS;
}

/** anon_vma_alloc(): a new anon_vma id. Forked VMAs share their parent's (the anon_vma root). */
function anonVmaAlloc(m: Memmap): number {
  return atomicFetchAdd(m.header, H_ANON_VMA_NEXT, 1);
}

/**
 * anon_vma_prepare() / __anon_vma_prepare() (mm/rmap.c): the VMA's first anonymous fault gives it an
 * anon_vma. Faults hold mmap_lock only for reading, so two can race here: the check is repeated under
 * mm->page_table_lock and the loser takes the winner's (else each would label its folio differently
 * and an rmap walk through the VMA would miss one of them).
 */
export function anonVmaPrepare(m: Memmap, mm: number, vb: number): number {
  const av = atomicRead(m.vmas, vb + VMA_ANON_VMA);
  if (av) return av;
  ptlLock(m, mm);
  if (!m.vmas[vb + VMA_ANON_VMA]) m.vmas[vb + VMA_ANON_VMA] = anonVmaAlloc(m);
  const won = m.vmas[vb + VMA_ANON_VMA]!;
  ptlUnlock(m, mm);
  return won;
}

/** folio_add_new_anon_rmap(): a new anonymous folio at virtual page vpn (of its first page). */
export function folioAddNewAnonRmap(m: Memmap, head: number, anonVma: number, vpn: number): void {
  m.flags[head] = m.flags[head]! | PG_anon;
  m.mapping[head] = anonVma;
  m.index[head] = vpn;
}

/** Setting folio->mapping for a shmem folio (filemap_add_folio). */
export function folioSetShmem(m: Memmap, head: number, inode: number, pgoff: number): void {
  m.mapping[head] = inode;
  m.index[head] = pgoff;
}

// Atomic, as in the kernel (atomic_inc(&page->_mapcount)): mappings in different mms change under different PTLs.
export function pteMapInc(m: Memmap, pfn: number): void {
  if (mapcountFetchAdd(m.mapcount, pfn, 1) === 0x7fff) bug(`pfn ${pfn}: _mapcount overflows 16 bits`);
}
export function pteMapDec(m: Memmap, pfn: number): void {
  mapcountFetchAdd(m.mapcount, pfn, -1);
}
/** The entire mapcount sits in page[1]'s index word (page[1]'s mapcount counts its own PTEs). */
export function pmdMapInc(m: Memmap, head: number): void {
  // NR_ANON_THPS, in folios
  if (atomicFetchAdd(m.index, head + 1, 1) === 0 && !(m.flags[head]! & PG_hugetlb)) countVmEvents(m, NR_ANON_THPS, 1);
}
export function pmdMapDec(m: Memmap, head: number): void {
  if (atomicFetchSub(m.index, head + 1, 1) === 1 && !(m.flags[head]! & PG_hugetlb)) countVmEvents(m, NR_ANON_THPS, -1);
}

export interface RmapSite {
  mm: number;
  /** virtual page of the entry: of the page for a PTE, of the folio's first page for a PMD */
  vpn: number;
  pmd: boolean;
  /** index of the entry in m.ptes (PTE) or m.pmds (PMD) */
  slot: number;
}

/**
 * rmap_walk(): every VMA that can map the folio (same anon_vma root, or same shmem inode) and every
 * page-table entry there that holds it or a migration entry for it. The caller holds no PTL; each
 * visit runs under the mm's page_table_lock.
 */
export function rmapWalk(m: Memmap, head: number, visit: (s: RmapSite, entry: number) => void, matchHead = head): void {
  if (m.flags[head]! & PG_zero) return;
  const anon = (m.flags[head]! & PG_anon) !== 0;
  const id = m.mapping[head]!;
  const index = m.index[head]!;
  const n = 1 << folioOrder(m, head);
  const mask = m.ptrsPerTable - 1;
  const site: RmapSite = { mm: 0, vpn: 0, pmd: false, slot: 0 }; // one per walk: visitors read it, never keep it
  for (let mm = 0; mm < mmSlotsInUse(m); mm++) {
    const mb = mmBase(mm);
    if (m.mms[mb + MM_USERS] === 0) continue;
    spinLock(m.mms, mb + MM_PTL);
    const nv = m.mms[mb + MM_NR_VMAS]!;
    for (let i = 0; i < nv; i++) {
      const vb = vmaBase(m, mm, i);
      if (anon ? m.vmas[vb + VMA_ANON_VMA] !== id : m.vmas[vb + VMA_SHMEM] !== id + 1) continue;
      const start = m.vmas[vb + VMA_START]!;
      const end = m.vmas[vb + VMA_END]!;
      const first = anon ? index : start + (index - m.vmas[vb + VMA_PGOFF]!);
      for (let v = Math.max(first, start); v < Math.min(first + n, end); v++) {
        const pi = pmdIndex(m, mm, v);
        const pmd = m.pmds[pi]!;
        if (pmdIsHuge(pmd)) {
          // a PMD maps the folio as a whole: visit once, at its first page
          if ((v & mask) === 0 && pmdHolds(pmd, matchHead, n)) {
            site.mm = mm;
            site.vpn = v;
            site.pmd = true;
            site.slot = pi;
            visit(site, pmd);
          }
          continue;
        }
        if (!pmdIsTable(pmd)) continue;
        const slot = ((pmd & PFN_MASK) << m.pmdOrder) + (v & mask);
        const pte = m.ptes[slot]!;
        if (pte & (PTE_PRESENT | PTE_MIGRATION) && ptePfn(pte) === matchHead + (v - first)) {
          site.mm = mm;
          site.vpn = v;
          site.pmd = false;
          site.slot = slot;
          visit(site, pte);
        }
      }
    }
    spinUnlock(m.mms, mb + MM_PTL);
  }
}

function anyExclusive(m: Memmap, head: number): boolean {
  const n = 1 << folioOrder(m, head);
  for (let p = head; p < head + n; p++) if (m.flags[p]! & PG_anon_exclusive) return true;
  return false;
}

function pmdHolds(pmd: number, head: number, n: number): boolean {
  const pfn = pmd & PFN_MASK;
  return pfn >= head && pfn < head + n;
}

/** What mmuNotifierFolioInvalidateStart() returns when the machine has no subscription at all. */
const BLIND_ONLY: MmuNotifierRange[] = [BLIND_RANGE];

/**
 * try_to_migrate_one()'s mmu notifier (mmu_notifier_invalidate_range_start() per VMA in the kernel, inside
 * the rmap walk), for every mm mapping the folio: the range of the folio's pages mapped there (the
 * kernel's is per VMA, [address, vma_address_end)). When no mm on the machine has a subscription:
 * BLIND_ONLY, counted until the end for a first registration to wait out (mmuNotifierBlindStart(), as
 * mm_take_all_locks() waits for the anon_vma lock). The rmap walk collects the mappings first and the
 * callbacks run after it, outside the page-table locks (the kernel runs them under the anon_vma lock,
 * which pinlab does not model): a mapping added between the walk and the unmap is not notified.
 */
function mmuNotifierFolioInvalidateStart(m: Memmap, head: number, event: number): MmuNotifierRange[] | null {
  if (mmuNotifierBlindStart(m, -1)) return BLIND_ONLY;
  const nr = 1 << folioOrder(m, head);
  let spans: Map<number, [number, number]> | null = null;
  rmapWalk(m, head, (s) => {
    const end = s.pmd ? s.vpn + nr : s.vpn + 1;
    spans ??= new Map();
    const cur = spans.get(s.mm);
    spans.set(s.mm, cur ? [Math.min(cur[0], s.vpn), Math.max(cur[1], end)] : [s.vpn, end]);
  });
  if (!spans) return null;
  const out: MmuNotifierRange[] = [];
  for (const [mm, [start, end]] of spans as Map<number, [number, number]>) {
    const r = mmuNotifierInvalidateRangeStart(m, mm, start, end, event);
    if (r) out.push(r);
  }
  return out.length ? out : null;
}

/** The ends for mmuNotifierFolioInvalidateStart(). */
function mmuNotifierFolioInvalidateEnd(m: Memmap, rs: MmuNotifierRange[] | null): void {
  if (rs) for (const r of rs) mmuNotifierInvalidateRangeEnd(m, r);
}

/**
 * try_to_migrate(): replace every mapping of the folio with a migration entry, dropping the mapping's
 * reference. An anonymous folio that may be DMA-pinned cannot be unshared (try_to_migrate_one():
 * folio_try_share_anon_rmap_pte fails), so the walk stops there and the folio stays (partly) mapped.
 * Returns whether the folio is now unmapped.
 */
export function tryToMigrate(m: Memmap, head: number): boolean {
  // try_to_migrate_one(): before the PTEs change
  const inv = mmuNotifierFolioInvalidateStart(m, head, MMU_NOTIFY_CLEAR);
  const unmapped = tryToMigrateOne(m, head);
  mmuNotifierFolioInvalidateEnd(m, inv);
  return unmapped;
}

function tryToMigrateOne(m: Memmap, head: number): boolean {
  if ((m.flags[head]! & (PG_anon | PG_hugetlb)) === PG_anon && folioMaybeDmaPinned(m, head) && anyExclusive(m, head))
    return false;
  rmapWalkMigration(m, head, head, false);
  return !folioMapped(m, head);
}

// enum ttu_flags (include/linux/rmap.h)
export const TTU_SPLIT_HUGE_PMD = 0x4;
export const TTU_IGNORE_MLOCK = 0x8;
export const TTU_HWPOISON = 0x20;

/**
 * try_to_unmap() of a small folio or a hugetlb-free large one (the caller holds a reference): every
 * present PTE of it goes, dropping the mapping's reference and RSS. With TTU_HWPOISON a hwpoisoned
 * page's PTE becomes a hwpoison entry. Otherwise an anonymous page needs a swap entry, and pinlab has
 * no swap cache (swapbacked != swapcache): try_to_unmap_one() WARNs and aborts the walk, the folio
 * stays mapped. A shmem page's PTE is just cleared. A PMD mapping without TTU_SPLIT_HUGE_PMD is
 * VM_BUG_ON_FOLIO(!pvmw.pte) (a NULL dereference without CONFIG_DEBUG_VM): a kernel BUG.
 */
export function tryToUnmap(m: Memmap, head: number, flags: number): void {
  if (flags & TTU_SPLIT_HUGE_PMD) bug('try_to_unmap: TTU_SPLIT_HUGE_PMD is not modelled');
  const inv = mmuNotifierFolioInvalidateStart(m, head, MMU_NOTIFY_CLEAR);
  let abort = false;
  try {
    rmapWalk(m, head, (s, entry) => {
      if (abort || !(entry & PTE_PRESENT)) return;
      if (s.pmd) bug(`try_to_unmap_one: unexpected PMD-mapped folio ${head} (VM_BUG_ON_FOLIO(!pvmw.pte))`);
      const pfn = ptePfn(entry);
      const anon = (m.flags[head]! & PG_anon) !== 0;
      if (m.flags[pfn]! & PG_hwpoison && flags & TTU_HWPOISON) m.ptes[s.slot] = mkHwpoisonEntry(pfn);
      else if (anon) {
        vmWarnOnOnceMm(m, true, 'try_to_unmap_one: an anonymous folio with no swap entry (swapbacked != swapcache)');
        abort = true;
        return;
      } else m.ptes[s.slot] = 0;
      addMmCounter(m, s.mm, anon ? MM_RSS_ANON : MM_RSS_SHMEM, -1);
      pteMapDec(m, pfn);
      atomicFetchSub(m.refcount, head, 1);
    });
  } finally {
    mmuNotifierFolioInvalidateEnd(m, inv);
  }
}

/**
 * remove_migration_ptes(src, dst): every migration entry for src becomes a mapping of dst (dst == src
 * when migration failed and the old mappings come back). Each mapping takes a reference on dst.
 */
export function removeMigrationPtes(m: Memmap, src: number, dst: number): void {
  // The kernel's anon_vma lock keeps fork from linking a child between the walk's visits; pinlab walks
  // mm slots in index order, so a fork may copy a parent's entry into a child whose slot the walk has
  // passed. Walk again while forks ran meanwhile, until a walk with no fork during it, or one that
  // found nothing left to restore (no entry remained anywhere for a fork to copy).
  for (;;) {
    const seq = atomicRead(m.header, H_FORK_SEQ);
    const before = restoredEntries;
    rmapWalkMigration(m, dst, src, true);
    if (restoredEntries === before || ((seq & 1) === 0 && atomicRead(m.header, H_FORK_SEQ) === seq)) return;
  }
}

/** Migration entries this thread's remove walks turned back into mappings (removeMigrationPtes()). */
let restoredEntries = 0;

/**
 * rmap_walk() specialised for migration, with the entry updates inline instead of a visitor (the
 * generic walk's callback is megamorphic and allocates a closure per folio): walk the VMAs of the
 * folio at head (its anon_vma or shmem inode and index) under each mm's page_table_lock.
 *   remove = false: try_to_migrate_one() on every present entry of the folio; like the kernel's
 *     rwc->done = folio_not_mapped, the walk stops once the folio is mapped nowhere.
 *   remove = true: remove_migration_pte(): every migration entry for src's pages maps head's
 *     instead (head = dst; dst == src after a failed migration).
 */
function rmapWalkMigration(m: Memmap, head: number, src: number, remove: boolean): void {
  const f = m.flags[head]!;
  if (f & PG_zero) return;
  const anon = (f & PG_anon) !== 0;
  const id = anon ? m.mapping[head]! : m.mapping[head]! + 1; // VMA_ANON_VMA, or VMA_SHMEM (inode + 1)
  const key = anon ? VMA_ANON_VMA : VMA_SHMEM;
  const index = m.index[head]!;
  const n = f & PG_head ? 1 << m.pageOrder(head) : 1;
  // the shape lives in locals: the atomics below are calls, after which V8 reloads every field of m
  const mms = m.mms;
  const vmas = m.vmas;
  const vmasPerMm = m.maxVmas * VMA_STRIDE;
  for (let mm = 0, mb = 0; mm < mmSlotsInUse(m); mm++, mb += MM_STRIDE) {
    if (mms[mb + MM_USERS] === 0) continue;
    spinLock(mms, mb + MM_PTL);
    const nv = mms[mb + MM_NR_VMAS]!;
    let done = false;
    for (let i = 0, vb = mm * vmasPerMm; i < nv; i++, vb += VMA_STRIDE) {
      if (vmas[vb + key] !== id) continue;
      const start = vmas[vb + VMA_START]!;
      const end = vmas[vb + VMA_END]!;
      const first = anon ? index : start + (index - vmas[vb + VMA_PGOFF]!);
      const lo = first > start ? first : start;
      const hi = first + n < end ? first + n : end;
      if (lo >= hi) continue; // not in the interval tree's range for this folio
      migrationEntriesVma(m, mm, head, src, n, first, lo, hi, remove);
      if (!remove && !folioMapped(m, head)) {
        done = true;
        break;
      } // rwc->done: folio_not_mapped()
    }
    spinUnlock(mms, mb + MM_PTL);
    if (done) return;
  }
}

/**
 * try_to_migrate_one() (remove = false) or remove_migration_pte() (remove = true) for the pages
 * [lo, hi) of one VMA, where the folio's first page sits at virtual page first (PTL held).
 */
function migrationEntriesVma(
  m: Memmap,
  mm: number,
  head: number,
  src: number,
  n: number,
  first: number,
  lo: number,
  hi: number,
  remove: boolean,
): void {
  const pmds = m.pmds;
  const ptes = m.ptes;
  const pmdOrder = m.pmdOrder;
  const mask = m.ptrsPerTable - 1;
  const pmdBase = mm * m.vaPmds;
  for (let v = lo; v < hi; v++) {
    const pi = pmdBase + (v >>> pmdOrder);
    const pmd = pmds[pi]!;
    if (pmdIsHuge(pmd)) {
      // a PMD maps the folio as a whole: visit once, at its first page
      if ((v & mask) === 0 && pmdHolds(pmd, src, n)) {
        if (remove) removeMigrationPmd(m, pi, pmd, src, head, n);
        else tryToMigratePmd(m, pi, pmd, head);
      }
      continue;
    }
    if (!pmdIsTable(pmd)) continue;
    const slot = ((pmd & PFN_MASK) << pmdOrder) + (v & mask);
    const pte = ptes[slot]!;
    if (!(pte & (PTE_PRESENT | PTE_MIGRATION)) || ptePfn(pte) !== src + (v - first)) continue;
    if (remove) {
      if (pte & PTE_PRESENT) continue; // not a migration entry
      const pfn = head + (ptePfn(pte) - src);
      if (head !== src) migrateAnonExclusive(m, ptePfn(pte), pfn);
      ptes[slot] = mkPte(pfn, (pte & PTE_WRITE) !== 0);
      pteMapInc(m, pfn);
      folioGet(m, head);
      restoredEntries++;
    } else {
      if (!(pte & PTE_PRESENT)) continue; // already a migration entry
      ptes[slot] = mkMigrationEntry(ptePfn(pte), (pte & PTE_WRITE) !== 0);
      pteMapDec(m, ptePfn(pte));
      atomicFetchSub(m.refcount, head, 1);
    }
  }
}

/** try_to_migrate_one() for a PMD mapping (set_pmd_migration_entry()). */
function tryToMigratePmd(m: Memmap, pi: number, pmd: number, head: number): void {
  if (!(pmd & PTE_PRESENT)) return; // already a migration entry
  m.pmds[pi] = PMD_HUGE | mkMigrationEntry(pmd & PFN_MASK, (pmd & PTE_WRITE) !== 0);
  pmdMapDec(m, head);
  atomicFetchSub(m.refcount, head, 1);
}

/**
 * remove_migration_pte() maps the new page exclusive (RMAP_EXCLUSIVE) exactly when the entry was: the
 * kernel keeps that in the entry (writable or readable_exclusive migration entry), pinlab in the source
 * page's PG_anon_exclusive, which a PMD split copies to every page and fork clears when it copies the
 * entry (copy_nonpresent_pte, copy_huge_pmd: make_readable_migration_entry). An exclusive page has one
 * entry, so the new page takes the source page's bit as its entry is restored.
 */
function migrateAnonExclusive(m: Memmap, srcPage: number, dstPage: number): void {
  const want = m.flags[srcPage]! & PG_anon_exclusive;
  if ((m.flags[dstPage]! & PG_anon_exclusive) === want) return;
  if (want) flagsFetchOr(m.flags, dstPage, PG_anon_exclusive);
  else flagsFetchAnd(m.flags, dstPage, ~PG_anon_exclusive);
}

/** remove_migration_pmd(): a PMD migration entry for src maps dst. */
function removeMigrationPmd(m: Memmap, pi: number, pmd: number, src: number, dst: number, n: number): void {
  if (!(pmd & PTE_MIGRATION) || pmd & PTE_PRESENT) return;
  const old = pmd & PFN_MASK;
  if (old < src || old >= src + n) return;
  if (dst !== src) for (let i = 0; i < n; i++) migrateAnonExclusive(m, src + i, dst + i);
  m.pmds[pi] = PMD_HUGE | mkPte(dst, (pmd & PTE_WRITE) !== 0);
  pmdMapInc(m, dst);
  folioGet(m, dst);
  restoredEntries++;
}
