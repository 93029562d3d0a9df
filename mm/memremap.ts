// ZONE_DEVICE memory of the MEMORY_DEVICE_COHERENT kind (mm/memremap.c, mm/mm_init.c, v6.12): a
// device's memory that the CPU can map like RAM (an AMD GPU's VRAM on a coherent link, CXL). A driver
// maps it with memremap_pages(); its pages live in ZONE_DEVICE, never in the buddy allocator: a free
// one has refcount 0 and belongs to the driver's own allocator, which hands it out with
// zone_device_page_init() and gets it back through free_zone_device_folio() -> pgmap->ops->page_free().
// pinlab has one such range per machine (`pinlab.device_coherent=SIZE`), after every RAM frame, and a
// driver allocator like lib/test_hmm.c's (first free page). Only small anonymous folios go there
// (migrate_vma_*(): mm/migrate_device.ts). R17: such pages must never be long-term pinned in place.
import { Memmap, PG_reserved, Z_START_PFN, Z_SPANNED, zoneBits } from './memmap';
import { ZONE_DEVICE } from './mmzone';
import { atomicSet, flagsCmpxchg } from './atomic';

/** NO_PAGE of the page allocator: no free device page */
const NO_PAGE = -1;

/** folio_is_device_coherent(): pinlab's ZONE_DEVICE pages are all MEMORY_DEVICE_COHERENT. */
export function folioIsDeviceCoherent(m: Memmap, pfn: number): boolean {
  return m.pageZonenum(pfn) === ZONE_DEVICE;
}

/** The device range: [start, start + pages) of node 0's ZONE_DEVICE; pages 0 when the machine has none. */
export function deviceRange(m: Memmap): { start: number; pages: number } {
  const zb = m.zoneBase(ZONE_DEVICE);
  return { start: m.zones[zb + Z_START_PFN]!, pages: m.zones[zb + Z_SPANNED]! };
}

/**
 * memremap_pages() at boot: move_pfn_range_to_zone(ZONE_DEVICE) spans the zone over the range (no
 * present or managed pages), and memmap_init_zone_device() makes every page PageReserved with refcount
 * 0 (__init_zone_device_page(): MEMORY_DEVICE_COHERENT pages start free, owned by the driver).
 */
export function memmapInitZoneDevice(m: Memmap, start: number, pages: number): void {
  const zb = m.zoneBase(ZONE_DEVICE);
  m.zones[zb + Z_START_PFN] = start;
  m.zones[zb + Z_SPANNED] = pages;
  m.flags.fill(zoneBits(ZONE_DEVICE) | PG_reserved, start, start + pages);
  m.refcount.fill(0, start, start + pages);
}

/**
 * The driver's page allocator (dmirror_devmem_alloc_page() in lib/test_hmm.c): the first free device
 * page, given out by zone_device_page_init() (refcount 1). A free page is one the driver got back
 * (PageReserved, nothing else), not any page at refcount 0: a folio being migrated is frozen at 0.
 * NO_PAGE when the device memory is full.
 */
export function allocDeviceCoherentPage(m: Memmap): number {
  const { start, pages } = deviceRange(m);
  const free = zoneBits(ZONE_DEVICE) | PG_reserved;
  for (let pfn = start; pfn < start + pages; pfn++) {
    if (m.flags[pfn] !== free || flagsCmpxchg(m.flags, pfn, free, zoneBits(ZONE_DEVICE)) !== free) continue;
    m.mapping[pfn] = 0;
    m.index[pfn] = 0;
    atomicSet(m.refcount, pfn, 1); // zone_device_page_init()
    return pfn;
  }
  return NO_PAGE;
}

/**
 * free_zone_device_folio(): the last reference went; the page goes back to the driver's allocator
 * (pgmap->ops->page_free()), not to the buddy.
 */
export function freeZoneDeviceFolio(m: Memmap, pfn: number): void {
  m.mapping[pfn] = 0;
  m.index[pfn] = 0;
  m.flags[pfn] = zoneBits(ZONE_DEVICE) | PG_reserved; // last: the page is the driver's again
}
