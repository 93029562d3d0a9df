// The folio lock (PG_locked; folio_trylock() and folio_unlock() of include/linux/pagemap.h, mm/filemap.c).
// Migration and THP splits take it with trylock only: a locked folio is -EAGAIN for that pass.

import { flagsFetchAnd, flagsFetchOr } from './atomic';
import { Memmap } from './memmap';
import * as layout from './memmap';

const { PG_locked } = layout;

/** folio_trylock() */
export function folioTrylock(m: Memmap, pfn: number): boolean {
  return (flagsFetchOr(m.flags, pfn, PG_locked) & PG_locked) === 0;
}
export function folioUnlock(m: Memmap, pfn: number): void {
  flagsFetchAnd(m.flags, pfn, ~PG_locked);
}
