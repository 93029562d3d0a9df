// folio_is_longterm_pinnable() and friends (include/linux/mm.h, v6.12). Kernel variants change this
// predicate; see mm/variants.ts.
import { Memmap, PG_zero } from './memmap';
import { MIGRATE_CMA, MIGRATE_ISOLATE, ZONE_MOVABLE } from './mmzone';

/** GUP_PIN_COUNTING_BIAS: a FOLL_PIN on a small folio adds this much to its refcount. */
export const GUP_PIN_COUNTING_BIAS = 1024;

/**
 * folio_is_longterm_pinnable(): not in a CMA or isolated pageblock (read once), then the zero page is
 * fine, then anything outside ZONE_MOVABLE. (Device-coherent and fsdax folios are not modelled.)
 */
export function folioIsLongtermPinnable(m: Memmap, pfn: number): boolean {
  const mt = m.getPageblockMigratetype(pfn);
  if (mt === MIGRATE_CMA || mt === MIGRATE_ISOLATE) return false;
  if (m.flags[pfn]! & PG_zero) return true;
  return m.pageZonenum(pfn) !== ZONE_MOVABLE;
}
