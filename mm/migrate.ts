// Page migration (mm/migrate.c, v6.12): isolate, unmap to migration entries, freeze the refcount at
// the expected count, copy, remap, unfreeze. An extra reference (a pin, a concurrent GUP, an LRU
// batch) makes the freeze fail: -EAGAIN, retried for up to NR_MAX_MIGRATE_PAGES_RETRY passes.
//
// Simplified: migration is synchronous and never waits for a page lock or writeback (a locked folio
// is -EAGAIN for this pass); no batching of unmaps across folios; no NUMA.

import { atomicFetchAdd, atomicSet, flagsFetchAnd, flagsFetchOr } from './atomic';
import { Memmap } from './memmap';
import * as layout from './memmap';
import { allocPages, NO_PAGE } from './page_alloc';
import { __GFP_RECLAIM, __GFP_HIGHMEM, __GFP_COMP, __GFP_MOVABLE, __GFP_THISNODE, GFP_USER, __GFP_NOWARN } from './gfp';
import * as gfpNs from './gfp';
import { followPte, Translation } from './memory';
import { ptlLock, ptlUnlock } from './mm_types';
import * as mmzoneNs from './mmzone';
import { folioPut, folioAddLru, lruAddDrainAll } from './swap';
import { tryToMigrate, removeMigrationPtes, folioMapped, folioPartiallyMapped } from './rmap';
import { countVmEvents, vmItem } from './vmstat';
import * as errnoNs from './errno';
import { dequeueHugetlbFolio, hstateIndex, allocMigrateHugetlbFolio, moveHugetlbState } from './hugetlb';
import { splitFolio } from './huge_memory';
import { yieldPoint, faultPoint, traceEvent } from './sched';
import { folioGet, folioOrder, folioRefFreeze, folioRefUnfreeze } from './page_ref';
import { folioTrylock, folioUnlock } from './filemap';
import { folioIsolateLruMark, folioPutbackLru } from './vmscan';
import { vaPages } from './pgtable';
import { hasBug, releaseAtLeast, variant } from './variants';

// Numeric constants of leaf modules as module-level bindings: V8 reads an imported binding as a property
// of the other module's exports object at every use (again after every call, atomics included).
const {
  PG_anon,
  PG_dirty,
  PG_swapbacked,
  PG_hugetlb,
  PG_isolated,
  PG_mlocked,
  PG_lru,
  SH_BASE,
  SH_STRIDE,
  PG_zero,
  PG_anon_exclusive,
} = layout;
const { GFP_TRANSHUGE, GFP_HIGHUSER, GFP_HIGHUSER_MOVABLE } = gfpNs;
const { ZONE_MOVABLE, ZONE_DEVICE } = mmzoneNs;
const { EAGAIN, ENOMEM, EBUSY } = errnoNs;

// enum migrate_reason (include/linux/migrate_mode.h) and migrate_reason_names[] (mm/debug.c)
export const MR_COMPACTION = 0;
export const MR_MEMORY_FAILURE = 1;
export const MR_MEMORY_HOTPLUG = 2;
export const MR_SYSCALL = 3;
export const MR_MEMPOLICY_MBIND = 4;
export const MR_NUMA_MISPLACED = 5;
export const MR_CONTIG_RANGE = 6;
export const MR_LONGTERM_PIN = 7;
export const MR_DEMOTION = 8;
export const MR_DAMON = 9;
export const MR_TYPES = 10;
export const MIGRATE_REASON_NAMES = [
  'compaction',
  'memory_failure',
  'memory_hotplug',
  'syscall_or_cpuset',
  'mempolicy_mbind',
  'numa_misplaced',
  'contig_range',
  'longterm_pin',
  'demotion',
  'damon',
] as const;

/** migrate_pages() by reason, as trace_mm_migrate_pages() reports it (mm/vmstat.ts PATH_ITEMS). */
const MIGRATE_REASON_PATHS: Partial<Record<number, number>> = {
  [MR_COMPACTION]: vmItem('migrate_reason_compaction'),
  [MR_MEMORY_HOTPLUG]: vmItem('migrate_reason_memory_hotplug'),
  [MR_SYSCALL]: vmItem('migrate_reason_syscall'),
  [MR_CONTIG_RANGE]: vmItem('migrate_reason_contig_range'),
  [MR_LONGTERM_PIN]: vmItem('migrate_reason_longterm_pin'),
};

export const NR_MAX_MIGRATE_PAGES_RETRY = 10;

const NR_ISOLATED_ANON = vmItem('nr_isolated_anon');
const ISOLATE_FOLIO_FAIL = vmItem('isolate_folio_fail');
const NR_ISOLATED_FILE = vmItem('nr_isolated_file');
const PGMIGRATE_SUCCESS = vmItem('pgmigrate_success');
const PGMIGRATE_FAIL = vmItem('pgmigrate_fail');
const THP_MIGRATION_SUCCESS = vmItem('thp_migration_success');
const THP_MIGRATION_SPLIT = vmItem('thp_migration_split');
const THP_MIGRATION_FAIL = vmItem('thp_migration_fail');

/** new_folio_t: allocate the target for src, or NO_PAGE. */
export type NewFolio = (m: Memmap, src: number) => number;

/** What happened to each folio, for callers that explain failures (offline, pin). */
export interface MigrateFailure {
  pfn: number;
  rc: number;
  why: string;
}
export interface MigrateStats {
  nrSucceeded: number;
  nrFailedPages: number;
  nrThpSplit: number;
  failures: MigrateFailure[];
  /** the last folio moved: source and target head pfn */
  lastMoved?: { src: number; dst: number };
}

/**
 * alloc_migration_target(): same order as the source; large folios add GFP_TRANSHUGE (__GFP_MOVABLE
 * included) without reclaim; ZONE_MOVABLE sources add __GFP_HIGHMEM; hugetlb comes from the pool.
 * nodeHasNoMovable: the target node has no ZONE_MOVABLE (one node here, so the mask says it).
 */
export function allocMigrationTarget(gfp: number, nodeHasNoMovable = false): NewFolio {
  return (m, src) => {
    if (faultPoint('migrate:alloc-target')) return NO_PAGE; // seeded: the target allocation fails
    if (m.flags[src]! & PG_hugetlb) {
      // alloc_hugetlb_folio_nodemask()
      const hs = hstateIndex(m, folioOrder(m, src));
      if (hs < 0) return NO_PAGE;
      const pfn = dequeueHugetlbFolio(m, hs);
      return pfn !== NO_PAGE ? pfn : allocMigrateHugetlbFolio(m, folioOrder(m, src));
    }
    let mask = gfp;
    const order = folioOrder(m, src);
    // GFP_TRANSHUGE carries __GFP_MOVABLE: a long-term pin relies on current_gfp_context() (PF_MEMALLOC_PIN)
    // in the allocator to strip it, so R5 (scope on the slow path only) lets a THP target into ZONE_MOVABLE
    if (order > 0) mask = (mask & ~__GFP_RECLAIM) | GFP_TRANSHUGE | __GFP_COMP;
    // pinlab has one node: a target node without ZONE_MOVABLE (move_pages 'kernel') is this mask
    if (nodeHasNoMovable) mask &= ~__GFP_MOVABLE;
    if (m.pageZonenum(src) === ZONE_MOVABLE) mask |= __GFP_HIGHMEM;
    return allocPages(m, mask, order);
  };
}

/**
 * isolate_folio_to_list() / folio_isolate_lru() / isolate_hugetlb(): take the folio off the LRU (or
 * the hugetlb active list) with a reference. False when it is not there (per-CPU batch, isolated by
 * someone else, never on the LRU).
 */
export function isolateFolio(m: Memmap, head: number): boolean {
  const ok = isolateFolioOnce(m, head);
  if (!ok) countVmEvents(m, ISOLATE_FOLIO_FAIL, 1);
  return ok;
}

function isolateFolioOnce(m: Memmap, head: number): boolean {
  if (faultPoint('migrate:isolate')) return false; // seeded: a transient isolation failure (a racing isolator)
  if (m.flags[head]! & PG_hugetlb) {
    if (flagsFetchOr(m.flags, head, PG_isolated) & PG_isolated) return false;
    if (m.refcount[head]! === 0) {
      flagsFetchAnd(m.flags, head, ~PG_isolated);
      return false;
    } // a free pool folio
    folioGet(m, head);
    yieldPoint('migrate:isolate');
    return true;
  }
  if (!folioIsolateLruMark(m, head, PG_isolated)) return false;
  countVmEvents(m, m.flags[head]! & PG_anon ? NR_ISOLATED_ANON : NR_ISOLATED_FILE, 1 << folioOrder(m, head));
  yieldPoint('migrate:isolate');
  return true;
}

/** putback_movable_pages(): every folio left on the list goes back, dropping the isolation reference. */
export function putbackMovablePages(m: Memmap, list: number[]): void {
  for (const head of list) putbackOne(m, head);
  list.length = 0;
}

function putbackOne(m: Memmap, head: number): void {
  flagsFetchAnd(m.flags, head, ~PG_isolated);
  if (m.flags[head]! & PG_hugetlb) {
    folioPut(m, head);
    return;
  }
  countVmEvents(m, m.flags[head]! & PG_anon ? NR_ISOLATED_ANON : NR_ISOLATED_FILE, -(1 << folioOrder(m, head)));
  folioPutbackLru(m, head);
}

/** The references a mapped-nowhere folio must have, besides the caller's isolation one (folio_expected_ref_count). */
function expectedRefs(m: Memmap, head: number): number {
  const f = m.flags[head]!;
  if (f & PG_anon || f & PG_hugetlb) return 0;
  return 1 << folioOrder(m, head); // the page cache's references (shmem)
}

/** The page-cache slot of a shmem folio, for folio_migrate_mapping(). */
function shmemSlot(m: Memmap, head: number): number {
  return m.shmem[m.mapping[head]! * SH_STRIDE + SH_BASE]! + m.index[head]!;
}

/** Why the last migrateFolio() call on this thread failed (read at once by migratePages()). */
let migrateWhy = '';
/** the target of the last folio migrateFolio() moved */
let migrateDst = -1;

/** The undo of a failed migrate_folio_unmap()/move: remap src, unlock both, free the target. */
function migrateFolioUndo(m: Memmap, src: number, dst: number, wasMapped: boolean, rc: number, why: string): number {
  if (wasMapped) removeMigrationPtes(m, src, src);
  folioUnlock(m, src);
  folioUnlock(m, dst);
  folioPut(m, dst);
  migrateWhy = why;
  return rc;
}

/**
 * One folio through migrate_folio_unmap() and migrate_folio_move(). Returns 0, -EAGAIN (try again in
 * the next pass), -ENOMEM (no target) or -EBUSY; migrateWhy says why it failed.
 */
function migrateFolio(m: Memmap, src: number, getNew: NewFolio): number {
  const nr = 1 << folioOrder(m, src);
  const anonOrHuge = (m.flags[src]! & (PG_anon | PG_hugetlb)) !== 0;
  if (m.refcount[src] === 1 && !folioMapped(m, src) && anonOrHuge) {
    // the folio was freed from under us (only our isolation reference is left): done
    return 0;
  }
  if (!folioTrylock(m, src)) {
    migrateWhy = 'folio locked';
    return -EAGAIN;
  }
  const dst = getNew(m, src);
  if (dst === NO_PAGE) {
    folioUnlock(m, src);
    migrateWhy = 'no target memory';
    return -ENOMEM;
  }
  folioTrylock(m, dst);
  const wasMapped = folioMapped(m, src);
  if (wasMapped && !tryToMigrate(m, src)) {
    return migrateFolioUndo(m, src, dst, wasMapped, -EAGAIN, 'still mapped (maybe DMA-pinned anonymous folio)');
  }
  yieldPoint('migrate:unmap'); // migrate_folio_unmap() done: migration entries installed
  const expected = expectedRefs(m, src) + 1;
  if (!folioRefFreeze(m, src, expected)) {
    const refs = m.refcount[src]!;
    return migrateFolioUndo(
      m,
      src,
      dst,
      wasMapped,
      -EAGAIN,
      `extra references: refcount ${refs}, expected ${expected}`,
    );
  }
  yieldPoint('migrate:freeze'); // folio_ref_freeze() held: concurrent folio_try_get() fails
  // No turning back: folio_migrate_mapping() + folio_migrate_flags() + folio_copy()
  const flags = m.flags;
  const keep = PG_anon | PG_dirty | PG_swapbacked | PG_mlocked | PG_hugetlb;
  const srcFlags = flags[src]!;
  if (nr === 1) {
    flags[dst] = flags[dst]! | (srcFlags & (keep | PG_anon_exclusive));
    m.content[dst] = m.content[src]!; // folio_copy() of one page (copyWithin costs more than the copy)
  } else {
    for (let i = 0; i < nr; i++) flags[dst + i] = flags[dst + i]! | (flags[src + i]! & PG_anon_exclusive);
    flags[dst] = flags[dst]! | (srcFlags & keep);
    m.content.copyWithin(dst, src, src + nr);
  }
  m.mapping[dst] = m.mapping[src]!;
  m.index[dst] = m.index[src]!;
  if (!(srcFlags & (PG_anon | PG_hugetlb))) {
    atomicSet(m.shmemPages, shmemSlot(m, src), dst + 1);
    atomicFetchAdd(m.refcount, dst, nr);
  }
  if (srcFlags & PG_hugetlb) moveHugetlbState(m, src, dst);
  folioRefUnfreeze(m, src, 1);
  // atomic: fork clears PG_anon_exclusive of a source page whose migration entry it copies, until the
  // entries are gone (remove_migration_ptes() reads it: rmap.ts migrateAnonExclusive)
  flagsFetchAnd(flags, src, ~(PG_anon | PG_swapbacked | PG_dirty | PG_mlocked | PG_isolated));
  yieldPoint('migrate:copy'); // copied, the old folio unfrozen; PTEs still hold migration entries
  if (wasMapped) removeMigrationPtes(m, src, dst);
  for (let i = 0; i < nr; i++)
    if (flags[src + i]! & PG_anon_exclusive) flagsFetchAnd(flags, src + i, ~PG_anon_exclusive);
  folioUnlock(m, dst);
  folioUnlock(m, src);
  // a ZONE_DEVICE target is never on the LRU (migrate_device_finalize())
  if (!(flags[dst]! & PG_hugetlb) && m.pageZonenum(dst) !== ZONE_DEVICE) folioAddLru(m, dst);
  folioPut(m, dst);
  yieldPoint('migrate:remap'); // remove_migration_ptes() done: the new folio is mapped
  migrateDst = dst;
  return 0;
}

/**
 * One folio moved to getNew's target outside migrate_pages() (migrate_device_pages() and
 * migrate_device_finalize(), mm/migrate_device.ts): the caller holds the reference migrate_pages()'s
 * isolation would. 0 with the target pfn, or the errno and why.
 */
export function migrateOneFolio(m: Memmap, src: number, getNew: NewFolio): { rc: number; dst: number; why: string } {
  migrateDst = -1;
  const rc = migrateFolio(m, src, getNew);
  return { rc, dst: rc === 0 ? migrateDst : -1, why: rc === 0 ? '' : migrateWhy };
}

/** migrateOneFolio() of a folio isolateFolio() took: a moved one leaves the isolation (migrate_folio_done()). */
export function migrateIsolatedFolio(
  m: Memmap,
  src: number,
  getNew: NewFolio,
): { rc: number; dst: number; why: string } {
  const isolatedItem = m.flags[src]! & PG_anon ? NR_ISOLATED_ANON : NR_ISOLATED_FILE;
  const r = migrateOneFolio(m, src, getNew);
  if (r.rc === 0) dropFromList(m, src, isolatedItem, 1);
  return r;
}

/** The target of migrate_device_coherent_folio(): folio_alloc(GFP_USER | __GFP_NOWARN, 0). */
const toRam: NewFolio = (m) => allocPages(m, GFP_USER | __GFP_NOWARN, 0);

/**
 * migrate_device_coherent_folio() (mm/migrate_device.c): move one device-coherent folio back to system
 * memory. The caller holds a reference, which this consumes (moved with the folio, or dropped on
 * failure). 0 or -EBUSY (still mapped or referenced elsewhere, locked, or no memory for the copy).
 */
export function migrateDeviceCoherentFolio(m: Memmap, head: number): number {
  const r = migrateOneFolio(m, head, toRam);
  folioPut(m, head);
  return r.rc === 0 ? 0 : -EBUSY;
}

export interface MigrateOptions {
  reason: number;
  /** never split a large folio that cannot get a large target (MR_NUMA_MISPLACED sets this) */
  nosplit?: boolean;
  stats?: MigrateStats;
  /** the pass budget (default NR_MAX_MIGRATE_PAGES_RETRY) */
  passes?: number;
}

/**
 * migrate_pages(): migrate every isolated folio on list. Migrated folios leave the list; the ones that
 * failed stay for the caller's putback_movable_pages(). Returns the number of folios not migrated,
 * or -ENOMEM when a target could not be allocated (the rest of the list is not tried).
 */
export function migratePages(m: Memmap, list: number[], getNew: NewFolio, opts: MigrateOptions): number {
  const path = MIGRATE_REASON_PATHS[opts.reason];
  if (path !== undefined) countVmEvents(m, path, list.length);
  const stats = opts.stats ?? { nrSucceeded: 0, nrFailedPages: 0, nrThpSplit: 0, failures: [] };
  const passes = opts.passes ?? NR_MAX_MIGRATE_PAGES_RETRY;
  let pending = list; // the first pass reads the caller's list, which is only rewritten at the end
  const splitDeferred = releaseAtLeast(variant(), 6, 10);
  const failed: number[] = [];
  let rcSaved = 0;
  for (let pass = 0; pass < passes && pending.length; pass++) {
    const retry: number[] = [];
    for (let i = 0; i < pending.length; i++) {
      const src = pending[i]!;
      const nr = 1 << folioOrder(m, src);
      const large = nr > 1 && !(m.flags[src]! & PG_hugetlb);
      const isolatedItem =
        m.flags[src]! & PG_hugetlb ? -1 : m.flags[src]! & PG_anon ? NR_ISOLATED_ANON : NR_ISOLATED_FILE;
      // migrate_pages_batch() since v6.10 (7262f208ca68): a partially mapped THP (on the deferred split
      // list) is split rather than migrated whole; it counts as a failed THP, its pages go round again
      // (Debian's 6.12 splits it, its 6.1 migrates it whole: a pin of a THP with a page unmapped)
      if (large && splitDeferred && folioPartiallyMapped(m, src) && splitFolio(m, src) === 0) {
        stats.nrThpSplit++;
        countVmEvents(m, THP_MIGRATION_SPLIT, 1);
        countVmEvents(m, THP_MIGRATION_FAIL, 1);
        for (let p = src; p < src + nr; p++) retry.push(p);
        continue;
      }
      migrateDst = -1;
      const rc = migrateFolio(m, src, getNew);
      if (rc === 0) {
        if (migrateDst >= 0) {
          const dst = migrateDst;
          stats.lastMoved = { src, dst };
          // (pinlab's tracepoint: the kernel's mm_migrate_pages counts, it names no pfn)
          traceEvent(
            () =>
              `mm_migrate_folio: pfn ${src} (${mmzoneNs.zoneName(m.pageZonenum(src))}) -> pfn ${dst} ` +
              `(${mmzoneNs.zoneName(m.pageZonenum(dst))}) order=${folioOrder(m, dst)} reason=${MIGRATE_REASON_NAMES[opts.reason] ?? opts.reason}`,
          );
        }
        stats.nrSucceeded += nr;
        countVmEvents(m, PGMIGRATE_SUCCESS, nr);
        if (large) countVmEvents(m, THP_MIGRATION_SUCCESS, 1);
        // migrate_folio_done(): memory failure keeps the source's reference (page_handle_poison() drops it)
        dropFromList(m, src, isolatedItem, nr, opts.reason === MR_MEMORY_FAILURE);
        continue;
      }
      if (rc === -EAGAIN) {
        retry.push(src);
        if (pass === passes - 1) stats.failures.push({ pfn: src, rc, why: migrateWhy });
        continue;
      }
      if (rc === -ENOMEM && large && !opts.nosplit) {
        const split = splitFolio(m, src);
        if (split === 0) {
          // THP broken by migration: the base pages go on the list instead; the THP counts as failed
          stats.nrThpSplit++;
          countVmEvents(m, THP_MIGRATION_SPLIT, 1);
          countVmEvents(m, THP_MIGRATION_FAIL, 1);
          for (let p = src; p < src + nr; p++) retry.push(p);
          continue;
        }
        // fd4a7ac32918: a long-term pin tries the split again next pass when it failed on a transient
        // reference (-EAGAIN), instead of failing the whole migration with -ENOMEM (R11: not yet)
        if (split === -EAGAIN && opts.reason === MR_LONGTERM_PIN && !hasBug('R11')) {
          retry.push(src);
          if (pass === passes - 1)
            stats.failures.push({ pfn: src, rc: split, why: 'THP split failed: extra references' });
          continue;
        }
      }
      stats.failures.push({ pfn: src, rc, why: migrateWhy });
      stats.nrFailedPages += nr;
      countVmEvents(m, PGMIGRATE_FAIL, nr);
      if (large) countVmEvents(m, THP_MIGRATION_FAIL, 1);
      failed.push(src);
      if (rc === -ENOMEM) {
        // out of memory: stop here, the rest stays on the list untried
        rcSaved = -ENOMEM;
        // (loops, not push(...rest): a spread of 100k+ folios overflows the stack)
        for (let k = i + 1; k < pending.length; k++) failed.push(pending[k]!);
        for (let k = 0; k < retry.length; k++) failed.push(retry[k]!);
        retry.length = 0;
        break;
      }
    }
    pending = retry;
  }
  for (const src of pending) {
    const nr = 1 << folioOrder(m, src);
    stats.nrFailedPages += nr;
    countVmEvents(m, PGMIGRATE_FAIL, nr);
    if (nr > 1 && !(m.flags[src]! & PG_hugetlb)) countVmEvents(m, THP_MIGRATION_FAIL, 1);
    failed.push(src);
  }
  list.length = 0;
  for (let k = 0; k < failed.length; k++) list.push(failed[k]!);
  return rcSaved || failed.length;
}

/** A migrated folio leaves the list: drop the isolation reference (migrate_folio_done). */
function dropFromList(m: Memmap, src: number, isolatedItem: number, nr: number, keepRef = false): void {
  // migrateFolio() cleared PG_isolated (PG_lru went at isolation): the atomic only for a folio freed under us
  if (m.flags[src]! & (PG_isolated | PG_lru)) flagsFetchAnd(m.flags, src, ~(PG_isolated | PG_lru));
  if (isolatedItem >= 0) countVmEvents(m, isolatedItem, -nr);
  if (!keepRef) folioPut(m, src);
}

const scratchT: Translation = { pfn: 0, write: false, migrating: false, huge: false };

/**
 * The distinct folios mapped in [vpn, vpn + nrPages) (no migration entries, no zero page), in the
 * order of their first mapping, under one hold of the page table lock.
 */
export function collectMappedFolios(m: Memmap, mm: number, vpn: number, nrPages: number): number[] {
  const heads: number[] = [];
  let lo = 0x7fffffff;
  let hi = -1;
  let prev = -1;
  ptlLock(m, mm);
  for (let v = vpn; v < vpn + nrPages; v++) {
    const t = followPte(m, mm, v, scratchT);
    if (!t || t.migrating || m.flags[t.pfn]! & PG_zero) continue;
    const h = m.compoundHead(t.pfn);
    if (h === prev) continue; // the next page of the same folio
    prev = h;
    heads.push(h);
    if (h < lo) lo = h;
    if (h > hi) hi = h;
  }
  ptlUnlock(m, mm);
  if (heads.length > 1) dedupFolios(heads, lo, hi);
  return heads;
}

/** A folio mapped again further on (a shmem page mapped twice) counts once: a bitmap over [lo, hi]. */
function dedupFolios(heads: number[], lo: number, hi: number): void {
  const seen = new Uint8Array(hi - lo + 1);
  let k = 0;
  for (let i = 0; i < heads.length; i++) {
    const h = heads[i]!;
    if (seen[h - lo]) continue;
    seen[h - lo] = 1;
    heads[k++] = h;
  }
  heads.length = k;
}

/** isolate_folio_to_list() for each folio; the isolated ones go on list. */
function isolateFolios(m: Memmap, heads: number[], list: number[]): void {
  for (let i = 0; i < heads.length; i++) if (isolateFolio(m, heads[i]!)) list.push(heads[i]!);
}

/**
 * do_move_pages_to_node() for one address range (the move_pages(2) path, MR_SYSCALL): isolate every
 * folio mapped in [vpn, vpn + nrPages) and migrate it to memory the target mask allows: 'kernel'
 * (a node with no ZONE_MOVABLE: ZONE_NORMAL and below, THP targets too), 'movable' or 'any' (GFP_HIGHUSER_MOVABLE).
 */
export function migrateRange(
  m: Memmap,
  mm: number,
  vpn: number,
  nrPages: number,
  to: 'kernel' | 'movable' | 'any',
): { rc: number; migrated: number; failed: number } {
  // do_pages_move(): an address beyond TASK_SIZE maps nothing (its status is -EFAULT)
  const heads = collectMappedFolios(m, mm, vpn, Math.max(0, Math.min(nrPages, vaPages(m) - vpn)));
  lruAddDrainAll(m);
  const list: number[] = [];
  isolateFolios(m, heads, list);
  const stats: MigrateStats = { nrSucceeded: 0, nrFailedPages: 0, nrThpSplit: 0, failures: [] };
  // add_page_for_migration() targets: __GFP_THISNODE, so a shortage fails instead of invoking the OOM killer
  const gfp = (to === 'kernel' ? GFP_HIGHUSER : GFP_HIGHUSER_MOVABLE) | __GFP_THISNODE;
  const target = allocMigrationTarget(gfp, to === 'kernel');
  const rc = list.length ? migratePages(m, list, target, { reason: MR_SYSCALL, stats }) : 0;
  if (list.length) putbackMovablePages(m, list);
  return { rc: rc > 0 ? 0 : rc, migrated: stats.nrSucceeded, failed: stats.nrFailedPages };
}
