// Kernel variants: one mm core, behaviour chosen by data consulted at the few places the long-term
// pin path differs between versions, plus bug switches from the regression corpus (R1-R22 of
// docs/regression-corpus.md). `pinlab variants` lists them; docs/kernel-variants.md explains each.
import { own } from './own';

export type BugSwitch =
  | 'R1'
  | 'R2'
  | 'R3'
  | 'R4'
  | 'R5'
  | 'R6'
  | 'R8'
  | 'R9'
  | 'R10'
  | 'R11'
  | 'R12'
  | 'R13'
  | 'R14'
  | 'R14c'
  | 'R15'
  | 'R16'
  | 'R17'
  | 'R18'
  | 'R19'
  | 'R20'
  | 'R21'
  | 'R22';

export interface KernelVariant {
  name: string;
  /** the commit or release the behaviour comes from */
  commit: string;
  summary: string;
  /**
   * The release the behaviour comes from, [major, minor]: device models and version-dependent mm code
   * compare it with releaseAtLeast() (series-v1 was posted against v5.11).
   */
  release: readonly [number, number];
  /**
   * The pinnability predicate: 'cma-only' (v5.12: only CMA is migrated away), 'movable' (v5.13:
   * ZONE_MOVABLE or CMA, zero page excepted), 'movable-pageblock' (series-v1: a MOVABLE or CMA
   * pageblock, whatever the zone), 'movable-isolate' (v5.19+: CMA or ISOLATE first).
   */
  predicate: 'cma-only' | 'movable' | 'movable-pageblock' | 'movable-isolate';
  /** allocation scope inside the pin: PF_MEMALLOC_NOCMA (v5.12) or PF_MEMALLOC_PIN (v5.13+) */
  scope: 'nocma' | 'pin';
  /** the check-and-migrate loop: v5.12 (check_and_migrate_cma_pages), v5.13 (rc == 0 retries), v6.1+ (-EAGAIN) */
  loop: 'v5.12' | 'v5.13' | 'v6.1';
  /**
   * when collect drains LRU batches: only for a folio off the LRU (v5.x), or by refcount (6.1.155,
   * 6.12.49+); R13 turns a refcount variant back to the not-lru form (v6.1 has R13)
   */
  drain: 'not-lru' | 'refcount';
  /** pinning the zero page takes references and counts (before v6.5) */
  zeroPagePinCounts: boolean;
  /** a FOLL_LONGTERM read-only pin of the zero page in a COW mapping unshares it first (84209e87c696, v6.1) */
  roLongtermUnshare: boolean;
  /** lowest folio order with an exact _pincount (v5.13/v6.1: order > 1; v6.12: any large folio) */
  pincountMinOrder: number;
  /** migration reason of the pin path (MR_CONTIG_RANGE before v5.13) */
  reasonContigRange: boolean;
  bugs: Set<BugSwitch>;
}

export interface BugInfo {
  id: BugSwitch;
  commit: string;
  what: string;
}

/** The bug switches the model can express (docs/regression-corpus.md). */
export const BUGS: BugInfo[] = [
  {
    id: 'R1',
    commit: 'c991ffef7bce (v5.13)',
    what: 'pin migration targets keep __GFP_MOVABLE and can land in ZONE_MOVABLE',
  },
  {
    id: 'R2',
    commit: '83c02c23d074 (v5.13)',
    what: 'collect steps over the rest of a compound page and misses pages after split_huge_pmd + munmap',
  },
  {
    id: 'R3',
    commit: 'f0f4463837da (v5.13)',
    what: 'after a failed migration the pages are re-pinned in place instead of -ENOMEM',
  },
  {
    id: 'R4',
    commit: '6e7f34ebb8d2 (v5.13)',
    what: 'an isolation failure with nothing listed counts as success: the unpinnable page stays pinned',
  },
  {
    id: 'R5',
    commit: '"mm: apply per-task gfp constraints in fast path" (v5.13)',
    what: 'the pin scope is applied only on the allocator slow path',
  },
  {
    id: 'R6',
    commit: '9afaf30f7a1a (v5.13)',
    what: 'the zero page in ZONE_MOVABLE counts as unpinnable and is "migrated"',
  },
  {
    id: 'R8',
    commit: '"mm: fix is_pinnable_page against a cma page" (v5.19)',
    what: 'a CMA pageblock in MIGRATE_ISOLATE (mid cma_alloc) counts as pinnable',
  },
  {
    id: 'R9',
    commit: '"mm/gup.c: Fix return value for __gup_longterm_locked()" (syzbot, pre-merge v6.1)',
    what: 'returns the number of pages requested, not pinned',
  },
  {
    id: 'R10',
    commit: '"mm/gup: add folio to list when folio_isolate_lru() succeed" (6.1.13)',
    what: 'inverted isolation check: folios isolated but never listed or put back',
  },
  {
    id: 'R11',
    commit: 'fd4a7ac32918 "mm: migrate: try again if THP split is failed due to page refcnt" (v6.2; 6.1.116)',
    what: "a THP split failing on a transient reference fails the long-term pin's migration (-ENOMEM), no retry",
  },
  {
    id: 'R12',
    commit: '1aaf8c122918 (6.12.14), reverted by 517f496e1e61 (6.12.36)',
    what: 'an empty migration list counts as success: a CMA/MOVABLE folio briefly off the LRU gets pinned',
  },
  {
    id: 'R13',
    commit: '"mm/gup: check ref_count instead of lru before migration" (Hugh Dickins, v6.17; 6.12.49, 6.1.155)',
    what: 'collect drains only for a folio off the LRU: one held by an mlock batch with PG_lru set fails migration',
  },
  {
    id: 'R14',
    commit: '"stop leaking pinned pages in low memory conditions" (v6.12-rc)',
    what: 'a failed temporary allocation returns -ENOMEM with the pages still pinned',
  },
  {
    id: 'R14c',
    commit: '"mm/gup: handle NULL pages in unpin_user_pages()" (6.13-rc; 6.12.5), R14\'s part (c)',
    what: "migrate_longterm_unpinnable_folios()' error path hands its cleared (NULL) entries to unpin_user_pages(): an oops",
  },
  {
    id: 'R22',
    commit: '"mm/page_alloc.c: don\'t create ZONE_MOVABLE beyond the end of a node" (2022; Fixes 2a1e274acf0b)',
    what: "find_zone_movable_pfns_for_nodes() keeps a zone_movable_pfn[nid] rounded past a small node's end",
  },
  {
    id: 'R15',
    commit: '"mm: gup: do not call try_grab_folio() in slow path" (v6.10)',
    what: 'the slow path uses the fast grab: pinning a THP in MOVABLE/CMA fails with -EFAULT',
  },
  {
    id: 'R16',
    commit: 'bf14ed81f571 (v6.10; 6.1.97), fixes 5d0a661d808f (v6.0)',
    what: 'one per-CPU THP list for every migratetype: a pin target (non-movable) can get a CMA THP',
  },
  {
    id: 'R17',
    commit:
      '"mm: add device coherent checker to is_pinnable_page" (Alex Sierra, v6.0; in the device-coherent series b05a79d4377f, after review found GUP-fast would pin such pages)',
    what: 'folio_is_longterm_pinnable() lacks the device-coherent test: GUP-fast long-term pins a device-coherent page in place (the slow path migrates it)',
  },
  {
    id: 'R18',
    commit: '"mm: Don\'t pin ZERO_PAGE in pin_user_pages()" (v6.5)',
    what: 'pins of the zero page take 1024 references each and overflow after ~2M pins',
  },
  {
    id: 'R19',
    commit: '"mm/hugetlb: wait for hugetlb folios to be freed" (v6.14; 6.12.20)',
    what: 'test_pages_isolated() does not wait for deferred hugetlb frees: cma_alloc() fails with -EBUSY',
  },
  {
    id: 'R20',
    commit:
      '"mm: memory-hotplug: check folio ref count first in do_migrate_range", "hwpoison, memory_hotplug: lock folio before unmap hwpoisoned folio", "mm: memory-failure: update ttu flag inside unmap_poisoned_folio" (v6.14); "mm/memory_hotplug: fix hwpoisoned large folio handling in do_migrate_range()" (6.12.86)',
    what: 'offlining unmaps a poisoned folio without TTU_HWPOISON (v6.4+): a mapped anonymous page stays mapped in the offlined block; a poisoned PMD-mapped THP is a kernel BUG',
  },
  {
    id: 'R21',
    commit: '"mm/gup: fix always draining LRU caches in collect_longterm_unpinnable_folios()" (6.12.111)',
    what: 'the drain check ignores the pin bias, so every pin drains the LRU caches',
  },
];

const BASE: Record<string, Omit<KernelVariant, 'bugs'> & { bugs: BugSwitch[] }> = {
  'v5.12': {
    name: 'v5.12',
    commit: 'v5.12 (before "prohibit pinning pages in ZONE_MOVABLE")',
    summary: 'only CMA pages are migrated before a long-term pin; pins land in ZONE_MOVABLE',
    release: [5, 12],
    predicate: 'cma-only',
    scope: 'nocma',
    loop: 'v5.12',
    roLongtermUnshare: false,
    drain: 'not-lru',
    zeroPagePinCounts: true,
    pincountMinOrder: 2,
    reasonContigRange: true,
    bugs: ['R1'],
  },
  'series-v1': {
    name: 'series-v1',
    commit: 'Pavel Tatashin, "prohibit pinning pages in ZONE_MOVABLE" v1 (2 Dec 2020)',
    summary: 'the series as first posted: MOVABLE/CMA pageblocks migrated in the old loop; R1, R5 not in it',
    release: [5, 11],
    predicate: 'movable-pageblock',
    scope: 'pin',
    loop: 'v5.13',
    roLongtermUnshare: false,
    drain: 'not-lru',
    zeroPagePinCounts: true,
    pincountMinOrder: 2,
    reasonContigRange: true,
    bugs: ['R2', 'R3', 'R4', 'R6', 'R8'],
  },
  'v5.13': {
    name: 'v5.13',
    commit: 'd1e153fea2a8, f68749ec342b (v5.13)',
    summary: 'the series as merged: ZONE_MOVABLE and CMA migrated away under PF_MEMALLOC_PIN',
    release: [5, 13],
    predicate: 'movable',
    scope: 'pin',
    loop: 'v5.13',
    roLongtermUnshare: false,
    drain: 'not-lru',
    zeroPagePinCounts: true,
    pincountMinOrder: 2,
    reasonContigRange: false,
    bugs: ['R8'],
  },
  'v6.1': {
    name: 'v6.1',
    commit: '24a95998e9ba, 67e139b02d99 (v6.1.0)',
    summary:
      'collect/migrate split with the -EAGAIN loop, as released (the fixes for R10, 6.1.13, R16, 6.1.97, and R11, 6.1.116, not yet in)',
    release: [6, 1],
    predicate: 'movable-isolate',
    scope: 'pin',
    loop: 'v6.1',
    roLongtermUnshare: true,
    drain: 'refcount', // with R13: the pre-6.1.155 not-lru form
    zeroPagePinCounts: true,
    pincountMinOrder: 2,
    reasonContigRange: false,
    bugs: ['R10', 'R11', 'R13', 'R16'],
  },
  'v6.12': {
    name: 'v6.12',
    commit: 'v6.12.117 (Debian linux-source-6.12)',
    summary: 'current: pofs, refcount-based LRU drains, zero page not pinned (the default)',
    release: [6, 12],
    predicate: 'movable-isolate',
    scope: 'pin',
    loop: 'v6.1',
    roLongtermUnshare: true,
    drain: 'refcount',
    zeroPagePinCounts: false,
    pincountMinOrder: 1,
    reasonContigRange: false,
    bugs: [],
  },
};

export const DEFAULT_VARIANT = 'v6.12';
export const VARIANT_NAMES = Object.keys(BASE);

export class VariantError extends Error {
  constructor(msg: string) {
    super(msg);
    this.name = 'VariantError';
  }
}

/** "v6.12+R3+R12" -> the variant; an unknown base or switch is a VariantError naming it. */
export function parseVariant(spec: string): KernelVariant {
  const [base, ...switches] = spec.split('+');
  const b = own(BASE, base!);
  if (!b) throw new VariantError(`unknown kernel variant '${base}' (variants: ${VARIANT_NAMES.join(', ')})`);
  const bugs = new Set<BugSwitch>(b.bugs);
  for (const s of switches) {
    const neg = s.startsWith('-');
    const id = (neg ? s.slice(1) : s) as BugSwitch;
    if (!BUGS.some((x) => x.id === id))
      throw new VariantError(
        `unknown bug switch '${s}' (switches: ${BUGS.map((x) => x.id).join(', ')}; -Rn turns one off)`,
      );
    if (neg) bugs.delete(id);
    else bugs.add(id);
  }
  return { ...b, name: spec, bugs };
}

/** Whether variant v comes from release major.minor or later (a device model's per-version switch). */
export function releaseAtLeast(v: KernelVariant, major: number, minor: number): boolean {
  const [a, b] = v.release;
  return a > major || (a === major && b >= minor);
}

let active: KernelVariant = parseVariant(DEFAULT_VARIANT);

/** The variant this thread runs (each worker sets it from its task). */
export function variant(): KernelVariant {
  return active;
}
export function setVariant(v: KernelVariant): KernelVariant {
  const prev = active;
  active = v;
  return prev;
}
/**
 * How often this thread reached each bug switch's site, bug on or off (the campaign's coverage of the
 * regression corpus: harness/actor/ reads and clears it per actor). A site is where hasBug() is asked.
 */
export const bugSites: Partial<Record<BugSwitch, number>> = {};

export function hasBug(id: BugSwitch): boolean {
  bugSites[id] = (bugSites[id] ?? 0) + 1;
  return active.bugs.has(id);
}

/** bugSites as it is now, and back to that later (checks run the mm on copies: not the case's paths). */
export function bugSitesSave(): Partial<Record<BugSwitch, number>> {
  return { ...bugSites };
}
export function bugSitesRestore(saved: Partial<Record<BugSwitch, number>>): void {
  for (const k of Object.keys(bugSites) as BugSwitch[]) delete bugSites[k];
  Object.assign(bugSites, saved);
}
