// no-longterm-pin-in-movable: the series' promise. A FOLL_LONGTERM pin never holds a frame in
// ZONE_MOVABLE, a CMA pageblock or device-coherent memory (folio_is_longterm_pinnable(); "coherent device
// memory must always allow eviction", v6.0, R17), nor, since v5.19 (R8's fix), a new one
// in a pageblock a cma_alloc() or an offline had isolated before the pin began and still has. The zero
// page is exempt: ZERO_PAGE is reserved kernel memory, never migrated or offlined (9afaf30f7a1a); v5.13+
// count it pinnable wherever it sits, v6.1+ unshare it before a long-term pin in a COW mapping.
import { Memmap, PG_zero, folioPincount } from '../mm/memmap';
import { ZONE_MOVABLE, ZONE_DEVICE, MIGRATE_CMA, MIGRATE_ISOLATE } from '../mm/mmzone';
import { folioMaybeDmaPinned } from '../mm/rmap';
import type { HeldPage } from '../devices/device';
import type { Finding, Property } from './property';

export const noLongtermPinInMovable = {
  name: 'no-longterm-pin-in-movable',
  promise:
    'A long-term pin never holds a frame in ZONE_MOVABLE, a CMA pageblock or device-coherent memory, nor a new one in a pageblock isolated since before the pin began.',
  reference:
    "folio_is_longterm_pinnable() (include/linux/mm.h); the series' cover letter; R8's fix (v5.19) for MIGRATE_ISOLATE",
  phases: ['op'],
  afterOp(c) {
    const out: Finding[] = [];
    for (const h of c.held) {
      if (!h.longterm || h.pfn < 0 || h.pfn >= c.m.nrFrames || c.m.flags[h.pfn]! & PG_zero) continue;
      c.checked++;
      const mt = c.m.getPageblockMigratetype(h.pfn);
      const what = `pfn ${h.pfn} (vpn ${h.vpn}) is long-term pinned`;
      const zone = c.m.pageZonenum(h.pfn);
      if (zone === ZONE_MOVABLE) {
        out.push({
          message: `${what} in ZONE_MOVABLE: the block cannot go offline while the pin lasts`,
          dedupe: `movable ${h.pfn}`,
        });
      } else if (zone === ZONE_DEVICE) {
        out.push({
          message: `${what} in device-coherent memory (ZONE_DEVICE): the device cannot evict it while the pin lasts`,
          dedupe: `device ${h.pfn}`,
        });
      } else if (mt === MIGRATE_CMA) {
        out.push({ message: `${what} in a CMA pageblock: cma_alloc() cannot have it back`, dedupe: `cma ${h.pfn}` });
      } else if (
        c.isolatedBefore &&
        c.heldBefore &&
        !c.heldBefore.has(heldKey(h)) &&
        mt === MIGRATE_ISOLATE &&
        c.isolatedBefore[h.pfn >>> c.m.pageblockOrder]
      ) {
        out.push({
          message: `${what} in pageblock ${h.pfn >>> c.m.pageblockOrder}, which was MIGRATE_ISOLATE before the pin began and still is`,
          dedupe: `isolate ${h.pfn}`,
        });
      }
    }
    return out;
  },
} as const satisfies Property<'no-longterm-pin-in-movable'>;

/** A held page's identity across ops (what heldBefore holds). */
export function heldKey(h: HeldPage): string {
  return `${h.iova}:${h.vpn}:${h.pfn}`;
}

/** Which pageblocks are MIGRATE_ISOLATE now (one byte each): isolatedBefore. */
export function isolatedPageblocks(m: Memmap): Uint8Array {
  const out = new Uint8Array(m.pageblock.length);
  for (let i = 0; i < out.length; i++) out[i] = m.pageblock[i] === MIGRATE_ISOLATE ? 1 : 0;
  return out;
}

/**
 * The long-term pin promise (folio_is_longterm_pinnable()): every frame a FOLL_LONGTERM pin holds is
 * outside ZONE_MOVABLE, CMA pageblocks and device memory, and its folio still reads as pinned (folio_maybe_dma_pinned).
 * The shared zero page is pinnable and carries no pin (6.12).
 */
export function longtermPinErrors(m: Memmap, pages: number[], n: number, zeroPfn: number): string[] {
  const errors: string[] = [];
  for (let i = 0; i < n; i++) {
    const pfn = pages[i]!;
    if (pfn === zeroPfn) continue;
    if (m.pageZonenum(pfn) === ZONE_MOVABLE) errors.push(`long-term pin of pfn ${pfn} in ZONE_MOVABLE`);
    if (m.pageZonenum(pfn) === ZONE_DEVICE) errors.push(`long-term pin of pfn ${pfn} in device-coherent memory`);
    if (m.getPageblockMigratetype(pfn) === MIGRATE_CMA) errors.push(`long-term pin of pfn ${pfn} in a CMA pageblock`);
    const head = m.compoundHead(pfn);
    if (!folioMaybeDmaPinned(m, head))
      errors.push(
        `pfn ${pfn} is held by a pin but its folio does not look pinned (refcount ${m.refcount[head]}, pincount ${folioPincount(m, head)})`,
      );
  }
  return errors;
}
