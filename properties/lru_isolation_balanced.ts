// lru-isolation-balanced: a folio taken off the LRU to be migrated is put back or freed. A long-term
// pin, an offline and a compaction each isolate the folios they will migrate (folio_isolate_lru()
// clears PG_lru and takes a reference) and put back what they could not move (folio_putback_lru(),
// putback_movable_pages()). One left isolated stays off the LRU for ever: no later migration can
// isolate it again, so its block never goes offline and a long-term pin of it retries until it gives
// up. Checked once every device is closed, with nothing in flight: every folio a live process maps is
// on the LRU, or waiting in a CPU's LRU add or mlock batch to join it (mlock_new_folio() keeps a new
// folio of a VM_LOCKED VMA off the LRU until mlock_folio_batch()), and nr_isolated_anon/file are back
// to 0. R10 (6.1.0-6.1.12) broke it.
import { Memmap, PG_lru, PG_zero, PG_hugetlb } from '../mm/memmap';
import { folioMapped } from '../mm/rmap';
import { folioInLruBatch, folioInMlockBatch } from '../mm/swap';
import { vmstatSnapshot } from '../mm/vmstat';
import { ZONE_DEVICE } from '../mm/mmzone';
import type { Property } from './property';

export const lruIsolationBalanced = {
  name: 'lru-isolation-balanced',
  promise:
    'Every folio isolated from the LRU to be migrated is put back or freed: with nothing in flight, every folio a live process maps is on the LRU or in a per-CPU LRU add or mlock batch.',
  reference:
    "folio_isolate_lru() and folio_putback_lru() (mm/vmscan.c); migrate_pages()'s caller puts back what did not move (putback_movable_pages(), mm/migrate.c); R10's fix (6.1.13)",
  phases: ['teardown'],
  atTeardown(c) {
    // folios isolated to be migrated in the run, each to be put back or freed
    const s = vmstatSnapshot(c.m);
    c.checked += s.pgmigrate_success + s.pgmigrate_fail;
    const out = leftIsolated(c.m);
    // node_page_state(NR_ISOLATED_*): what is isolated now; too_many_isolated() throttles on a leaked count
    for (const k of ['nr_isolated_anon', 'nr_isolated_file'] as const)
      if (s[k] !== 0) out.push(`${k} is ${s[k]} with nothing in flight: an isolation not accounted back`);
    return out;
  },
} as const satisfies Property<'lru-isolation-balanced'>;

/** Mapped folios off the LRU and out of every LRU batch (at most 5). */
export function leftIsolated(m: Memmap): string[] {
  const out: string[] = [];
  for (let pfn = 0; pfn < m.nrFrames && out.length < 5; pfn++) {
    if (m.compoundHead(pfn) !== pfn) continue; // one visit per folio
    const f = m.flags[pfn]!;
    // hugetlb folios and device memory (ZONE_DEVICE) are never on the LRU
    if (f & (PG_lru | PG_zero | PG_hugetlb) || !folioMapped(m, pfn) || m.pageZonenum(pfn) === ZONE_DEVICE) continue;
    if (folioInLruBatch(m, pfn) || folioInMlockBatch(m, pfn)) continue;
    out.push(
      `pfn ${pfn} is mapped but off the LRU and in no LRU batch (refcount ${m.refcount[pfn]}): isolated and never put back`,
    );
  }
  return out;
}
