// The LRU's per-CPU add batches and the last folio_put() (mm/swap.c). The LRU is a flag (PG_lru):
// nothing is reclaimed. What matters for pinning is the per-CPU add batch: a new folio sits there
// holding an extra reference, off the LRU, until the batch fills or is drained (folio_add_lru,
// lru_add_drain).

import { folioIsDeviceCoherent, freeZoneDeviceFolio } from './memremap';
import { atomicFetchAdd, atomicFetchSub, atomicRead, flagsFetchAnd, flagsFetchOr } from './atomic';
import { Memmap } from './memmap';
import { folioGet } from './page_ref';
import * as layout from './memmap';
import { freeThePage } from './page_alloc';
import { spinLock, spinUnlock } from './locking';
import { current, faultPoint } from './sched';
import { bug } from './debug';
import { freeHugeFolio } from './hugetlb';
import { countVmEvents, vmItem } from './vmstat';
import { VM_LOCKED, VM_IO, VM_PFNMAP } from './mm_types';

const LRU_ADD_DRAIN_ALL = vmItem('lru_add_drain_all');

// Numeric constants of leaf modules as module-level bindings: V8 reads an imported binding as a property
// of the other module's exports object at every use (again after every call, atomics included).
const { PG_lru, PG_head, PG_hugetlb, H_LRU_DISABLED } = layout;
const VM_SPECIAL = VM_IO | VM_PFNMAP; // of the VM_SPECIAL flags, those pinlab has

/** folio_put(): the last reference frees the folio (__folio_put: hugetlb back to its pool). */
export function folioPut(m: Memmap, pfn: number): void {
  folioPutRefs(m, pfn, 1);
}

export function folioPutRefs(m: Memmap, pfn: number, refs: number): void {
  const r = atomicFetchSub(m.refcount, pfn, refs);
  if (r < refs) bug(`folio_put: pfn ${pfn} refcount was ${r}, dropping ${refs}`);
  if (r !== refs) return;
  const f = m.flags[pfn]!;
  if (f & PG_hugetlb) {
    freeHugeFolio(m, pfn);
    return;
  }
  // nobody holds a reference that could set PG_lru again: clear it only when it is set (an atomic costs)
  if (f & PG_lru) flagsFetchAnd(m.flags, pfn, ~PG_lru);
  if (folioIsDeviceCoherent(m, pfn)) {
    freeZoneDeviceFolio(m, pfn); // free_zone_device_folio(): back to the driver, not the buddy
    return;
  }
  freeThePage(m, pfn, f & PG_head ? m.pageOrder(pfn) : 0);
}

// ---- the LRU ----
function lruBase(m: Memmap, cpu: number): number {
  return cpu * (m.shape.lruBatch + 2);
}

/** folio_batch_move_lru(): every folio in cpu's batch goes on the LRU and drops the batch reference. */
function lruAddDrainCpu(m: Memmap, cpu: number): void {
  const b = lruBase(m, cpu);
  spinLock(m.lru, b);
  folioBatchMoveLru(m, b);
  spinUnlock(m.lru, b);
}

/** folio_batch_move_lru() with the batch at b locked. */
function folioBatchMoveLru(m: Memmap, b: number): void {
  const n = m.lru[b + 1]!;
  for (let i = 0; i < n; i++) {
    const pfn = m.lru[b + 2 + i]!;
    flagsFetchOr(m.flags, pfn, PG_lru);
    folioPut(m, pfn);
  }
  m.lru[b + 1] = 0;
}

/**
 * folio_add_lru(): a new folio takes a reference and waits in this CPU's batch; a full batch, a large
 * folio (folio_may_be_lru_cached() is false for them) or a disabled LRU cache moves the batch to the
 * LRU at once.
 */
export function folioAddLru(m: Memmap, pfn: number): void {
  if (m.flags[pfn]! & PG_head) {
    flagsFetchOr(m.flags, pfn, PG_lru);
    lruAddDrainCpu(m, current().cpu);
    return;
  }
  if (m.header[H_LRU_DISABLED]! > 0) {
    // lru_cache_disabled(): a plain read, as the kernel's atomic_read()
    flagsFetchOr(m.flags, pfn, PG_lru);
    return;
  }
  folioGet(m, pfn);
  const b = lruBase(m, current().cpu);
  spinLock(m.lru, b);
  const n = m.lru[b + 1]!;
  m.lru[b + 2 + n] = pfn;
  m.lru[b + 1] = n + 1;
  // folio_batch_add_and_move(): a full batch moves to the LRU under the same (local) lock hold
  if (n + 1 >= m.shape.lruBatch) folioBatchMoveLru(m, b);
  spinUnlock(m.lru, b);
}

/**
 * folio_add_lru_vma(): a new folio of a VM_LOCKED VMA (not VM_SPECIAL) goes to the mlock batch
 * (mlock_new_folio()), any other to the LRU add batch.
 */
export function folioAddLruVma(m: Memmap, pfn: number, vmaFlags: number): void {
  if ((vmaFlags & (VM_LOCKED | VM_SPECIAL)) === VM_LOCKED) mlockNewFolio(m, pfn);
  else folioAddLru(m, pfn);
}

/** Is the folio waiting in a CPU's LRU add batch (off the LRU, holding the batch's reference)? */
export function folioInLruBatch(m: Memmap, pfn: number): boolean {
  for (let cpu = 0; cpu < m.nrCpus; cpu++) {
    const b = lruBase(m, cpu);
    const n = atomicRead(m.lru, b + 1);
    for (let i = 0; i < n; i++) if (m.lru[b + 2 + i] === pfn) return true;
  }
  return false;
}

/** lru_add_drain(): this CPU's batch, then its mlock batch (mlock_drain_local()). */
export function lruAddDrain(m: Memmap): void {
  lruAddDrainCpu(m, current().cpu);
  mlockDrainLocal(m);
}

/** lru_add_drain_all(): every CPU's batches and mlock batch (cpu_needs_drain(), lru_add_and_bh_lrus_drain()). */
export function lruAddDrainAll(m: Memmap): void {
  countVmEvents(m, LRU_ADD_DRAIN_ALL, 1);
  // seeded fault: one remote CPU's batch still holds its folios (one added there just after the drain);
  // never while lru_cache_disable() is in force, which guarantees empty batches
  const hold = atomicRead(m.header, H_LRU_DISABLED) === 0 && faultPoint('lru:batch-hold') ? firstBusyRemoteCpu(m) : -1;
  for (let cpu = 0; cpu < m.nrCpus; cpu++) {
    if (cpu === hold) continue;
    lruAddDrainCpu(m, cpu);
    mlockDrainCpu(m, cpu);
  }
}

function firstBusyRemoteCpu(m: Memmap): number {
  for (let cpu = 0; cpu < m.nrCpus; cpu++)
    if (cpu !== current().cpu && (atomicRead(m.lru, lruBase(m, cpu) + 1) > 0 || needMlockDrain(m, cpu))) return cpu;
  return -1;
}

/** lru_cache_disable(): drain everywhere and bypass the batches until lru_cache_enable(). */
export function lruCacheDisable(m: Memmap): void {
  atomicFetchAdd(m.header, H_LRU_DISABLED, 1);
  lruAddDrainAll(m);
}
export function lruCacheEnable(m: Memmap): void {
  atomicFetchSub(m.header, H_LRU_DISABLED, 1);
}

// ---- mlock_fbatch (mm/mlock.c) ----
// mlock_folio(), mlock_new_folio() and munlock_folio() take a reference and park the folio in this
// CPU's batch until it fills or is drained (lru_add_drain() calls mlock_drain_local(),
// lru_add_drain_all() reaches every CPU's). A new folio parked there is off the LRU; a folio mlocked
// while on the LRU keeps PG_lru along with the batch's extra reference (R13). Kept here, not in
// mlock.ts, because mlock.ts imports memory.ts, which imports this file.
// Each CPU's record in m.mlock: [lock, count, entries...]; an entry is pfn << 2 | kind, the kind in
// the low bits as the kernel keeps it in the folio pointer's (LRU_FOLIO, NEW_FOLIO; 0 is munlock).
const LRU_FOLIO = 0x1;
const NEW_FOLIO = 0x2;

function mlockBase(m: Memmap, cpu: number): number {
  return cpu * (m.shape.lruBatch + 2);
}

/**
 * mlock_folio_batch() with the batch at b locked: __mlock_new_folio() puts a new folio on the
 * (unevictable) LRU; __mlock_folio() and __munlock_folio() move a folio between LRU lists and leave
 * PG_lru as it was. Then folios_put() drops every entry's batch reference.
 */
function mlockFolioBatch(m: Memmap, b: number): void {
  const n = m.mlock[b + 1]!;
  for (let i = 0; i < n; i++) {
    const e = m.mlock[b + 2 + i]!;
    const pfn = e >>> 2;
    if (e & NEW_FOLIO) flagsFetchOr(m.flags, pfn, PG_lru);
    folioPut(m, pfn);
  }
  m.mlock[b + 1] = 0;
}

/**
 * Add pfn (with its kind) to this CPU's batch; a full batch, a large folio or a disabled LRU cache
 * processes it at once.
 */
function mlockBatchAdd(m: Memmap, pfn: number, kind: number): void {
  folioGet(m, pfn);
  const b = mlockBase(m, current().cpu);
  spinLock(m.mlock, b);
  const n = m.mlock[b + 1]!;
  m.mlock[b + 2 + n] = (pfn << 2) | kind;
  m.mlock[b + 1] = n + 1;
  // folio_batch_add() full, !folio_may_be_lru_cached() (a large folio), lru_cache_disabled()
  if (n + 1 >= m.shape.lruBatch || m.flags[pfn]! & PG_head || atomicRead(m.header, H_LRU_DISABLED) > 0)
    mlockFolioBatch(m, b);
  spinUnlock(m.mlock, b);
}

/** mlock_folio(): mlock a folio already on (or briefly off) the LRU; it keeps PG_lru while it waits. */
export function mlockFolio(m: Memmap, pfn: number): void {
  mlockBatchAdd(m, pfn, LRU_FOLIO);
}

/** mlock_new_folio(): a new folio of a VM_LOCKED VMA waits here, off the LRU, instead of in the LRU add batch. */
export function mlockNewFolio(m: Memmap, pfn: number): void {
  mlockBatchAdd(m, pfn, NEW_FOLIO);
}

/** munlock_folio() */
export function munlockFolio(m: Memmap, pfn: number): void {
  mlockBatchAdd(m, pfn, 0);
}

/** mlock_vma_folio(): a folio mapped into a VM_LOCKED VMA that is not VM_SPECIAL is mlocked. */
export function mlockVmaFolio(m: Memmap, pfn: number, vmaFlags: number): void {
  if ((vmaFlags & (VM_LOCKED | VM_SPECIAL)) === VM_LOCKED) mlockFolio(m, pfn);
}

/** mlock_drain_local(): process this CPU's batch. */
export function mlockDrainLocal(m: Memmap): void {
  mlockDrainCpu(m, current().cpu);
}

/** mlock_drain_local() run on cpu (lru_add_drain_all()'s per-CPU work) or mlock_drain_remote(cpu). */
export function mlockDrainCpu(m: Memmap, cpu: number): void {
  const b = mlockBase(m, cpu);
  if (atomicRead(m.mlock, b + 1) === 0) return;
  spinLock(m.mlock, b);
  mlockFolioBatch(m, b);
  spinUnlock(m.mlock, b);
}

/** need_mlock_drain(cpu): the CPU's batch is not empty (cpu_needs_drain() asks it). */
export function needMlockDrain(m: Memmap, cpu: number): boolean {
  return atomicRead(m.mlock, mlockBase(m, cpu) + 1) > 0;
}

/** Is the folio waiting in a CPU's mlock batch (holding the batch's reference)? */
export function folioInMlockBatch(m: Memmap, pfn: number): boolean {
  for (let cpu = 0; cpu < m.nrCpus; cpu++) {
    const b = mlockBase(m, cpu);
    const n = atomicRead(m.mlock, b + 1);
    for (let i = 0; i < n; i++) if (m.mlock[b + 2 + i]! >>> 2 === pfn) return true;
  }
  return false;
}
