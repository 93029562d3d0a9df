// Device migration (mm/migrate_device.c, v6.12): migrate_vma_setup(), migrate_vma_pages() and
// migrate_vma_finalize() as a driver uses them to move a process's anonymous pages into its
// device-coherent memory (lib/test_hmm.c dmirror_migrate_to_device()). The way back,
// migrate_device_coherent_folio(), which GUP uses before a long-term pin (R17), is in migrate.ts: gup.ts
// must not import the fault code this file uses.
// Simplified: only small anonymous folios move to the device (6.12 splits a THP first; pinlab leaves it);
// a hole is faulted in before it moves; the copies go through migrate.ts's folio migration, so they
// count in pgmigrate_success.
import { Memmap, PG_anon, PG_lru, PG_head } from './memmap';
import { collectMappedFolios, isolateFolio, migrateIsolatedFolio, putbackMovablePages, type NewFolio } from './migrate';
import { allocDeviceCoherentPage, folioIsDeviceCoherent } from './memremap';
import { lruAddDrainAll } from './swap';
import { vaPages } from './pgtable';
import { vmaList } from './mmap';
import { pfnOf, putUser } from './memory';
import { VM_SHARED, VM_HUGETLB, VM_PFNMAP, VM_WRITE } from './mm_types';

/** The driver's target for each source: a page of its coherent memory (dmirror_devmem_alloc_page()). */
const toDevice: NewFolio = (m) => allocDeviceCoherentPage(m);

/**
 * migrate_vma_setup() + migrate_vma_pages() + migrate_vma_finalize() over [vpn, vpn + nrPages) of mm:
 * every small anonymous folio mapped there, not already device memory, isolated from the LRU (one
 * lru_add_drain_all() first if one is not on it) and moved to a device page; a folio with extra
 * references (a pin), or no free device page, stays where it is. Returns how many moved and how many not.
 */
export function migrateVmaToDevice(
  m: Memmap,
  mm: number,
  vpn: number,
  nrPages: number,
): { migrated: number; failed: number } {
  const n = Math.max(0, Math.min(nrPages, vaPages(m) - vpn));
  populateHoles(m, mm, vpn, n);
  const heads = collectMappedFolios(m, mm, vpn, n);
  const cand = heads.filter((h) => m.flags[h]! & PG_anon && !(m.flags[h]! & PG_head) && !folioIsDeviceCoherent(m, h));
  if (cand.some((h) => !(m.flags[h]! & PG_lru))) lruAddDrainAll(m); // migrate_device_unmap(): allow_drain
  const list: number[] = [];
  for (const h of cand) if (isolateFolio(m, h)) list.push(h);
  let migrated = 0;
  const left: number[] = [];
  for (const src of list) {
    if (migrateIsolatedFolio(m, src, toDevice).rc === 0) migrated++;
    else left.push(src);
  }
  putbackMovablePages(m, left);
  return { migrated, failed: heads.length - migrated };
}

/**
 * migrate_vma_collect_hole() and the zero page: an unpopulated page of a private anonymous VMA is
 * migrated too, as a new zeroed device page (migrate_vma_insert_page()). pinlab faults such a page in
 * (a zeroed RAM page, as a write would) and then moves it like the others.
 */
function populateHoles(m: Memmap, mm: number, vpn: number, n: number): void {
  for (const v of vmaList(m, mm)) {
    if (v.shmem || v.flags & (VM_SHARED | VM_HUGETLB | VM_PFNMAP) || !(v.flags & VM_WRITE)) continue;
    for (let p = Math.max(v.start, vpn); p < Math.min(v.end, vpn + n); p++) {
      const pfn = pfnOf(m, mm, p);
      if (pfn < 0 || pfn === m.zeroPfn()) putUser(m, mm, p, 0);
    }
  }
}
