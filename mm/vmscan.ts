// Taking folios off the LRU and putting them back (folio_isolate_lru(), folio_putback_lru(): mm/vmscan.c).
// Nothing is reclaimed in pinlab; isolation is what migration needs.

import { flagsCmpxchg, flagsFetchOr } from './atomic';
import { Memmap } from './memmap';
import * as layout from './memmap';
import { folioGet } from './page_ref';
import { folioPut } from './swap';

const { PG_lru } = layout;

/**
 * folio_isolate_lru() that also sets the flags in mark (PG_isolated for migration) in the same
 * atomic step that clears PG_lru: one compare-exchange instead of two read-modify-writes.
 */
export function folioIsolateLruMark(m: Memmap, pfn: number, mark: number): boolean {
  const flags = m.flags;
  for (let f = flags[pfn]!; ;) {
    if (!(f & PG_lru)) return false;
    const seen = flagsCmpxchg(flags, pfn, f, (f & ~PG_lru) | mark);
    if (seen === f) break;
    f = seen; // another CPU changed a flag (PG_locked, PG_dirty): try again with its value
  }
  folioGet(m, pfn);
  return true;
}

/** folio_putback_lru(): back on the LRU, dropping the isolation reference. */
export function folioPutbackLru(m: Memmap, pfn: number): void {
  flagsFetchOr(m.flags, pfn, PG_lru);
  folioPut(m, pfn);
}
