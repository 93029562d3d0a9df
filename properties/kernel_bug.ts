// kernel-bug: the mm core hit a BUG_ON() or a "bad page state" (an actor threw KernelBug), or at the end
// of the run its page tables and struct pages disagree (CONFIG_PAGE_TABLE_CHECK's and the rmap debug
// checks' view).
import {
  Memmap,
  MM_USERS,
  PG_zero,
  PG_head,
  PG_buddy,
  PG_hwpoison,
  PG_anon,
  VMA_ANON_VMA,
  NO_ZONE,
} from '../mm/memmap';
import { mmBase } from '../mm/mm_types';
import { findVma } from '../mm/memory';
import { entireMapcount } from '../mm/rmap';
import { pmdIsHuge, pmdIsTable, PFN_MASK, PTE_PRESENT, PTE_MIGRATION } from '../mm/pgtable';
import { mmWarningsFired } from '../mm/debug';
import type { Property } from './property';

export const kernelBug = {
  name: 'kernel-bug',
  promise:
    'The mm core never hits a BUG_ON(), a bad page state or a WARN_ON_ONCE() of its page-table, split and offlining code, and its page tables agree with struct page: every mapcount counts the entries that map the frame, every mapped anonymous folio is reachable by its rmap walk, no PTE maps a frame of an offline memory block but a poisoned one (offlining takes those in use).',
  reference:
    'VM_BUG_ON(), WARN_ON_ONCE() and bad_page() (mm/page_alloc.c); mm/page_table_check.c; print_bad_pte() (mm/memory.c); __offline_isolated_pages()',
  phases: ['op', 'teardown'],
  runFailure: true,
  atTeardown(c) {
    c.checked++;
    return [
      ...mmWarningsFired(c.m).map((w) => `WARNING: ${w}`),
      ...pageTableErrors(c.m).map((e) => `page_table_check after the run: ${e}`),
    ];
  },
} as const satisfies Property<'kernel-bug'>;

/**
 * The page tables against struct page, as CONFIG_PAGE_TABLE_CHECK and the rmap debug checks see it
 * (mm/page_table_check.c, print_bad_pte()): with nothing in flight, every frame's _mapcount equals the
 * PTEs that map it and a THP's entire mapcount the PMDs that map it, and every mapped anonymous folio
 * is reachable by its rmap walk - it names its VMA's anon_vma and the virtual page it sits at - or
 * migration and offlining could never unmap it.
 */
export function pageTableErrors(m: Memmap): string[] {
  const errors: string[] = [];
  const ptes = new Int32Array(m.nrFrames);
  const pmds = new Int32Array(m.nrFrames);
  const bad = (s: string): void => {
    if (errors.length < 8) errors.push(s);
  };
  for (let mm = 0; mm < m.maxMms; mm++) {
    if (!Atomics.load(m.mms, mmBase(mm) + MM_USERS)) continue;
    for (let p = 0; p < m.vaPmds; p++) {
      const pmd = m.pmds[mm * m.vaPmds + p]!;
      const v0 = p << m.pmdOrder;
      if (pmdIsHuge(pmd)) {
        const pfn = pmd & PFN_MASK;
        if (pmd & PTE_PRESENT) pmds[pfn]!++;
        else bad(`mm ${mm} vpn ${v0}: a PMD migration entry for pfn ${pfn} with nothing migrating`);
        rmapLabelErrors(m, mm, v0, pfn, bad);
        continue;
      }
      if (!pmdIsTable(pmd)) continue;
      const base = (pmd & PFN_MASK) << m.pmdOrder;
      for (let k = 0; k < m.ptrsPerTable; k++) {
        const pte = m.ptes[base + k]!;
        if (!(pte & (PTE_PRESENT | PTE_MIGRATION))) continue;
        const pfn = pte & PFN_MASK;
        if (!(pte & PTE_PRESENT)) {
          bad(`mm ${mm} vpn ${v0 + k}: a migration entry for pfn ${pfn} with nothing migrating`);
          continue;
        }
        if (m.flags[pfn]! & PG_zero) continue;
        // offline_pages() succeeded under a mapped page. Not for a poisoned one: test_pages_isolated() passes
        // it and __offline_isolated_pages() offlines it "not in buddy system, and page_count() is not 0"
        // (memory failure could not unmap it; R20 shows by its WARN_ON_ONCE()s instead)
        if (m.pageZonenum(pfn) === NO_ZONE && !(m.flags[pfn]! & PG_hwpoison))
          bad(`mm ${mm} vpn ${v0 + k} maps pfn ${pfn} of an offline memory block`);
        ptes[pfn]!++;
        rmapLabelErrors(m, mm, v0 + k, pfn, bad);
      }
    }
  }
  for (let pfn = 0; pfn < m.nrFrames; pfn++) {
    if (m.flags[pfn]! & (PG_zero | PG_buddy)) continue;
    if (m.mapcount[pfn] !== ptes[pfn]) bad(`pfn ${pfn}: _mapcount ${m.mapcount[pfn]} but ${ptes[pfn]} PTEs map it`);
    if (m.flags[pfn]! & PG_head && entireMapcount(m, pfn) !== pmds[pfn])
      bad(`pfn ${pfn}: entire mapcount ${entireMapcount(m, pfn)} but ${pmds[pfn]} PMDs map it`);
  }
  return errors;
}

/** The VMA mapping vpn must be one an rmap walk for the folio of pfn visits (folio_anon_vma(), folio->index). */
function rmapLabelErrors(m: Memmap, mm: number, vpn: number, pfn: number, bad: (s: string) => void): void {
  const head = m.compoundHead(pfn);
  if (!(m.flags[head]! & PG_anon)) return;
  const vb = findVma(m, mm, vpn);
  if (vb < 0) {
    bad(`mm ${mm} vpn ${vpn} maps pfn ${pfn} outside any VMA`);
    return;
  }
  const av = m.vmas[vb + VMA_ANON_VMA]!;
  if (av !== m.mapping[head])
    bad(
      `mm ${mm} vpn ${vpn} maps pfn ${pfn}, whose anon_vma is ${m.mapping[head]}, in a VMA of anon_vma ${av}: rmap walks cannot find the mapping`,
    );
  else if (m.index[head]! + (pfn - head) !== vpn)
    bad(
      `mm ${mm} vpn ${vpn} maps pfn ${pfn}, whose folio index says vpn ${m.index[head]! + (pfn - head)}: rmap walks cannot find the mapping`,
    );
}
