// The LRU's per-CPU add batches and the last folio_put() (mm/swap.c). The LRU is a flag (PG_lru):
// nothing is reclaimed. What matters for pinning is the per-CPU add batch: a new folio sits there
// holding an extra reference, off the LRU, until the batch fills or is drained (folio_add_lru,
// lru_add_drain).

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

const LRU_ADD_DRAIN_ALL = vmItem('lru_add_drain_all');

// Numeric constants of leaf modules as module-level bindings: V8 reads an imported binding as a property
// of the other module's exports object at every use (again after every call, atomics included).
const { PG_lru, PG_head, PG_hugetlb, H_LRU_DISABLED } = layout;

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

/** Is the folio waiting in a CPU's LRU add batch (off the LRU, holding the batch's reference)? */
export function folioInLruBatch(m: Memmap, pfn: number): boolean {
  for (let cpu = 0; cpu < m.nrCpus; cpu++) {
    const b = lruBase(m, cpu);
    const n = atomicRead(m.lru, b + 1);
    for (let i = 0; i < n; i++) if (m.lru[b + 2 + i] === pfn) return true;
  }
  return false;
}

/** lru_add_drain(): this CPU's batch. */
export function lruAddDrain(m: Memmap): void {
  lruAddDrainCpu(m, current().cpu);
}

/** lru_add_drain_all(): every CPU's batch. */
export function lruAddDrainAll(m: Memmap): void {
  countVmEvents(m, LRU_ADD_DRAIN_ALL, 1);
  // seeded fault: one remote CPU's batch still holds its folios (one added there just after the drain);
  // never while lru_cache_disable() is in force, which guarantees empty batches
  const hold = atomicRead(m.header, H_LRU_DISABLED) === 0 && faultPoint('lru:batch-hold') ? firstBusyRemoteCpu(m) : -1;
  for (let cpu = 0; cpu < m.nrCpus; cpu++) if (cpu !== hold) lruAddDrainCpu(m, cpu);
}

function firstBusyRemoteCpu(m: Memmap): number {
  for (let cpu = 0; cpu < m.nrCpus; cpu++)
    if (cpu !== current().cpu && atomicRead(m.lru, lruBase(m, cpu) + 1) > 0) return cpu;
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
