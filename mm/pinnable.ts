// folio_is_longterm_pinnable() and friends (include/linux/mm.h, v6.12). Kernel variants change this
// predicate; see mm/variants.ts.
import { Memmap, PG_zero } from './memmap';
import { variant, hasBug } from './variants';
import { MIGRATE_CMA, MIGRATE_ISOLATE, MIGRATE_MOVABLE, ZONE_MOVABLE, ZONE_DEVICE } from './mmzone';

/** GUP_PIN_COUNTING_BIAS: a FOLL_PIN on a small folio adds this much to its refcount. */
export const GUP_PIN_COUNTING_BIAS = 1024;

/**
 * folio_is_longterm_pinnable() (v5.19+): not in a CMA or isolated pageblock (read once), then the
 * zero page is fine, then anything outside ZONE_MOVABLE. The variant picks the older forms:
 * is_pinnable_page() of v5.13 (MOVABLE or CMA; zero page excepted), series-v1's pageblock test and
 * v5.12's CMA-only check.
 * Device-coherent folios (ZONE_DEVICE, mm/memremap.ts) are never pinnable; fsdax folios are not modelled.
 */
export function folioIsLongtermPinnable(m: Memmap, pfn: number): boolean {
  const v = variant();
  const mt = m.getPageblockMigratetype(pfn);
  const zone = m.pageZonenum(pfn);
  // "Coherent device memory must always allow eviction" (v6.0); R17: the series before that check, where
  // GUP-fast pinned such pages in place
  if (zone === ZONE_DEVICE) return hasBug('R17');
  if (v.predicate === 'cma-only') return mt !== MIGRATE_CMA;
  const zeroOk = (m.flags[pfn]! & PG_zero) !== 0 && !hasBug('R6');
  // series-v1's check_and_migrate_movable_pages(): is_migrate_movable(get_pageblock_migratetype(head)),
  // the pageblock type and not the zone (an ISOLATE pageblock is pinnable: R8)
  if (v.predicate === 'movable-pageblock') {
    if (zeroOk) return true;
    if (mt === MIGRATE_ISOLATE) return hasBug('R8');
    return mt !== MIGRATE_MOVABLE && mt !== MIGRATE_CMA;
  }
  if (v.predicate === 'movable-isolate' && mt === MIGRATE_CMA) return false;
  // v5.19 "fix is_pinnable_page against a cma page": an isolated pageblock is not pinnable (R8 lacks it;
  // v5.13 has R8, v5.13+-R8 gets the fix)
  if (mt === MIGRATE_ISOLATE && !hasBug('R8')) return false;
  if (zeroOk) return true;
  return mt !== MIGRATE_CMA && zone !== ZONE_MOVABLE;
}
