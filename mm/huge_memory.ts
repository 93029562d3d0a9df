// Splitting transparent huge pages (mm/huge_memory.c, v6.12): split_huge_page_to_list_to_order() for
// an isolated anonymous THP, used when migration cannot get a huge target ("THP broken by pinning").
import { Memmap, PG_head, PG_tail, PG_ORDER_MASK, PG_isolated, PG_hugetlb, PG_anon } from './memmap';
import { EAGAIN, EBUSY } from './errno';
import { folioOrder, folioTrylock, folioUnlock, folioRefFreeze, folioRefUnfreeze } from './swap';
import { rmapWalk, tryToMigrate, removeMigrationPtes, folioMapcount } from './rmap';
import { splitHugePmd } from './memory';
import { countVmEvents, vmItem } from './vmstat';
import { vmWarnOnOnce } from './debug';

/** Rounds of PMD splitting before splitFolio() gives up (each round's __split_huge_pmd() may wait for notifiers). */
const SPLIT_PMD_ROUNDS_MAX = 8;

/** The PMD entries (present or migration) that map the folio at head, as [mm, vpn]. */
function pmdSitesOf(m: Memmap, head: number): [number, number][] {
  const sites: [number, number][] = [];
  rmapWalk(m, head, (s) => { if (s.pmd) sites.push([s.mm, s.vpn]); });
  return sites;
}

/**
 * split_folio_to_list(): the caller holds one reference (isolation). Every PMD mapping is split to
 * PTEs, the folio is unmapped to migration entries, frozen at its expected count, turned into base
 * pages that each carry the caller's reference (and PG_isolated), and remapped. Returns 0, -EAGAIN
 * (folio locked, extra references such as a pin, or PMDs still appearing after 8 rounds) or -EBUSY
 * (not an anonymous THP).
 */
export function splitFolio(m: Memmap, head: number): number {
  const order = folioOrder(m, head);
  if (order === 0 || m.flags[head]! & PG_hugetlb || !(m.flags[head]! & PG_anon)) return -EBUSY;
  if (!folioTrylock(m, head)) return -EAGAIN;
  const nr = 1 << order;
  const failed = (): number => {
    countVmEvents(m, vmItem('thp_split_page_failed'), 1);
    return -EAGAIN;
  };
  // unmap_folio() unmaps with TTU_SPLIT_HUGE_PMD: try_to_migrate_one() splits each VMA's PMD mapping
  // (split_huge_pmd_address(freeze)), so no PMD entry survives the unmap. Here the PMDs are split first,
  // walking again until none is left: fork's copy_huge_pmd() can add one in another mm while
  // __split_huge_pmd() waits in mmu_notifier_invalidate_range_start().
  for (let round = 0; ; round++) {
    const pmdSites = pmdSitesOf(m, head);
    if (!pmdSites.length) break;
    if (round === SPLIT_PMD_ROUNDS_MAX) { folioUnlock(m, head); return failed(); }
    for (const [mm, vpn] of pmdSites) splitHugePmd(m, mm, vpn); // into the PMD's deposited table: cannot fail
  }
  const wasMapped = folioMapcount(m, head) > 0;
  const undo = (): number => {
    if (wasMapped) removeMigrationPtes(m, head, head);
    folioUnlock(m, head);
    return failed();
  };
  if (wasMapped && !tryToMigrate(m, head)) return undo();
  // never expected: a PMD (migration) entry must not outlive the compound page
  if (wasMapped && vmWarnOnOnce(pmdSitesOf(m, head).length > 0, 'split_folio: a PMD entry survived unmap_folio()')) return undo();
  if (!folioRefFreeze(m, head, 1)) return undo();
  const anonVma = m.mapping[head]!;
  const index = m.index[head]!;
  const keep = ~(PG_head | PG_tail | PG_ORDER_MASK);
  for (let p = head; p < head + nr; p++) {
    m.flags[p] = (m.flags[p]! & keep) | PG_anon | PG_isolated;
    m.mapping[p] = anonVma;
    m.index[p] = index + (p - head);
    m.pincount[p] = 0;
    if (p !== head) folioRefUnfreeze(m, p, 1);
  }
  folioRefUnfreeze(m, head, 1);
  for (let p = head; p < head + nr; p++) if (wasMapped) removeMigrationPtes(m, p, p);
  folioUnlock(m, head);
  countVmEvents(m, vmItem('thp_split_page'), 1);
  return 0;
}
