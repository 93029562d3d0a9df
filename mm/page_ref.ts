// Folio references and sizes (include/linux/page_ref.h and the folio helpers of include/linux/mm.h):
// the refcount a pin, a mapping, an LRU batch or an isolation holds, and the freeze migration uses to
// shut every new reference out.

import { atomicCmpxchg, atomicFetchAdd, atomicRead, atomicSet } from './atomic';
import { Memmap } from './memmap';
import * as layout from './memmap';

// Numeric constants of leaf modules as module-level bindings (V8 reads an imported binding as a property
// of the other module's exports object at every use).
const { PG_head } = layout;

/** folio_order() */
export function folioOrder(m: Memmap, pfn: number): number {
  return m.flags[pfn]! & PG_head ? m.pageOrder(pfn) : 0;
}
export function folioNrPages(m: Memmap, pfn: number): number {
  return 1 << folioOrder(m, pfn);
}
/** folio_get() */
export function folioGet(m: Memmap, pfn: number): void {
  atomicFetchAdd(m.refcount, pfn, 1);
}

/** folio_try_get(): only while the folio is not frozen or free. */
export function folioTryGet(m: Memmap, pfn: number): boolean {
  for (;;) {
    const r = atomicRead(m.refcount, pfn);
    if (r <= 0) return false;
    if (atomicCmpxchg(m.refcount, pfn, r, r + 1) === r) return true;
  }
}

/** folio_ref_freeze(): refcount from expected to 0 in one step; fails on any extra reference. */
export function folioRefFreeze(m: Memmap, pfn: number, expected: number): boolean {
  return atomicCmpxchg(m.refcount, pfn, expected, 0) === expected;
}
export function folioRefUnfreeze(m: Memmap, pfn: number, count: number): void {
  atomicSet(m.refcount, pfn, count);
}
