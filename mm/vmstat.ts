// Event and node counters (include/linux/vm_event_item.h, mmzone.h node_stat_item), kept per CPU and
// summed on read, as mm/vmstat.c does: a CPU's slot is written only by the thread running on it.
import { Memmap } from './memmap';
import { current } from './sched';
import { own } from './own';

export const VM_ITEMS = [
  'nr_foll_pin_acquired',
  'nr_foll_pin_released',
  'nr_isolated_anon',
  'nr_isolated_file',
  'nr_anon_transparent_hugepages',
  'pgalloc_dma',
  'pgalloc_dma32',
  'pgalloc_normal',
  'pgalloc_movable',
  'allocstall_normal',
  'allocstall_movable',
  'pgfree',
  'pgfault',
  'pgmigrate_success',
  'pgmigrate_fail',
  'thp_migration_success',
  'thp_migration_fail',
  'thp_migration_split',
  'thp_fault_alloc',
  'thp_fault_fallback',
  'thp_split_page',
  'thp_split_page_failed',
  'thp_split_pmd',
  'compact_migrate_scanned',
  'compact_isolated',
  'htlb_buddy_alloc_success',
  'htlb_buddy_alloc_fail',
  'oom_kill',
  'pcp_drain_all',
] as const;
export type VmItem = (typeof VM_ITEMS)[number];

/**
 * Kernel paths that have no /proc/vmstat counter, counted where a tracepoint would fire: pinlab's
 * coverage of the mm core (the campaign's "kernel paths" table). Kept after VM_ITEMS in the same per-CPU
 * array, never shown as /proc/vmstat.
 */
export const PATH_ITEMS = [
  'gup_longterm_retry', // __gup_longterm_locked() pins again after migrating (-EAGAIN)
  'gup_longterm_no_progress', // its retry budget spent (the kernel would spin until SIGKILL)
  'gup_pin_partial', // a pin returned fewer pages than asked
  'gup_pin_error', // a pin returned an errno
  'gup_pin_killed', // a fatal signal ended it
  'migrate_reason_compaction', // migrate_pages() by reason (trace_mm_migrate_pages), folios listed
  'migrate_reason_memory_hotplug',
  'migrate_reason_syscall',
  'migrate_reason_contig_range',
  'migrate_reason_longterm_pin',
  'isolate_folio_fail', // folio_isolate_lru() / isolate_hugetlb() refused a folio
  'lru_add_drain_all',
  'offline_pages_retry', // another pass of offline_pages()'s loop
  'offline_pages_fail',
  'offline_pages_success',
] as const;
export type PathItem = (typeof PATH_ITEMS)[number];

/**
 * Counters /proc/vmstat has that nothing in pinlab counts: it does not model compaction
 * (docs/simplifications.md). The campaign lists them apart from the paths its cases never took.
 */
export const NOT_MODELLED: readonly (VmItem | PathItem)[] = [
  'compact_migrate_scanned',
  'compact_isolated',
  'migrate_reason_compaction',
];

export const NR_VM_ITEMS = VM_ITEMS.length + PATH_ITEMS.length;
const ITEM_INDEX: Record<string, number> = Object.fromEntries([...VM_ITEMS, ...PATH_ITEMS].map((n, i) => [n, i]));

export function vmItem(name: VmItem | PathItem): number {
  return own(ITEM_INDEX, name)!;
}

/** count_vm_events() / mod_node_page_state() on the running CPU. */
export function countVmEvents(m: Memmap, item: number, delta: number): void {
  m.vmstat[current().cpu * m.nrVmItems + item]! += delta;
}

/** global_node_page_state() / sum of all CPUs' events. */
export function vmstatRead(m: Memmap, item: number): number {
  let s = 0;
  for (let c = 0; c < m.nrCpus; c++) s += m.vmstat[c * m.nrVmItems + item]!;
  return s;
}

export function vmstatSnapshot(m: Memmap): Record<VmItem, number> {
  const out = {} as Record<VmItem, number>;
  VM_ITEMS.forEach((n, i) => (out[n] = vmstatRead(m, i)));
  return out;
}

/** The PATH_ITEMS counters, summed over CPUs. */
export function pathSnapshot(m: Memmap): Record<PathItem, number> {
  const out = {} as Record<PathItem, number>;
  PATH_ITEMS.forEach((n, i) => (out[n] = vmstatRead(m, VM_ITEMS.length + i)));
  return out;
}

// ---------------------------------------------------------------------------------------------
// /proc/zoneinfo, /proc/pagetypeinfo, /proc/vmstat (mm/vmstat.c) and their JSON twins.

import {
  Z_START_PFN,
  Z_SPANNED,
  Z_PRESENT,
  Z_MANAGED,
  Z_CMA_PAGES,
  Z_NR_FREE,
  Z_NR_FREE_CMA,
  Z_WMARK_MIN,
  Z_WMARK_LOW,
  Z_WMARK_HIGH,
  Z_LOWMEM_RESERVE,
  PCP_COUNT,
  PCP_HIGH,
  PCP_BATCH,
  freeAreaCount,
  pcpBase,
} from './memmap';
import { MAX_NR_ZONES, MIGRATE_TYPES, MIGRATETYPE_NAMES, ZONE_NAMES } from './mmzone';

export interface ZoneInfo {
  name: string;
  start_pfn: number;
  spanned: number;
  present: number;
  managed: number;
  free: number;
  cma: number;
  nr_free_cma: number;
  min: number;
  low: number;
  high: number;
  protection: number[];
  /** free blocks per order per migratetype (pagetypeinfo) */
  free_area: Record<string, number[]>;
  /** pageblocks per migratetype (pagetypeinfo "Number of blocks type") */
  pageblocks: Record<string, number>;
  pcp_count: number;
}

function zfield(m: Memmap, zid: number, slot: number): number {
  return m.zones[m.zoneBase(zid) + slot]!;
}

/** A zone's counters and span (zoneInfo() without its walks of the free lists, pageblocks and per-CPU lists). */
export function zoneCounters(
  m: Memmap,
  zid: number,
): Omit<ZoneInfo, 'protection' | 'free_area' | 'pageblocks' | 'pcp_count'> {
  return {
    name: ZONE_NAMES[zid % MAX_NR_ZONES]!,
    start_pfn: zfield(m, zid, Z_START_PFN),
    spanned: zfield(m, zid, Z_SPANNED),
    present: zfield(m, zid, Z_PRESENT),
    managed: zfield(m, zid, Z_MANAGED),
    free: zfield(m, zid, Z_NR_FREE),
    cma: zfield(m, zid, Z_CMA_PAGES),
    nr_free_cma: zfield(m, zid, Z_NR_FREE_CMA),
    min: zfield(m, zid, Z_WMARK_MIN),
    low: zfield(m, zid, Z_WMARK_LOW),
    high: zfield(m, zid, Z_WMARK_HIGH),
  };
}

export function zoneInfo(m: Memmap, zid: number): ZoneInfo {
  const freeArea: Record<string, number[]> = {};
  const blocks: Record<string, number> = {};
  for (let mt = 0; mt < MIGRATE_TYPES; mt++) {
    const name = MIGRATETYPE_NAMES[mt]!;
    freeArea[name] = [];
    for (let o = 0; o <= m.maxOrder; o++) freeArea[name]!.push(m.zones[freeAreaCount(m, zid, o, mt)]!);
    blocks[name] = 0;
  }
  const start = zfield(m, zid, Z_START_PFN);
  const end = start + zfield(m, zid, Z_SPANNED);
  for (let pfn = start - (start % m.pageblockNrPages); pfn < end; pfn += m.pageblockNrPages) {
    const p = Math.max(pfn, start);
    if (m.pageZone(p) !== zid) continue;
    blocks[MIGRATETYPE_NAMES[m.getPageblockMigratetype(p)]!]!++;
  }
  let pcpCount = 0;
  for (let cpu = 0; cpu < m.nrCpus; cpu++) pcpCount += m.pcp[pcpBase(m, cpu, zid) + PCP_COUNT]!;
  const protection: number[] = [];
  for (let j = 0; j < MAX_NR_ZONES; j++) protection.push(zfield(m, zid, Z_LOWMEM_RESERVE + j));
  return {
    ...zoneCounters(m, zid),
    protection,
    free_area: freeArea,
    pageblocks: blocks,
    pcp_count: pcpCount,
  };
}

/** zoneinfo_show_print() for every zone of every node. */
export function procZoneinfo(m: Memmap): string {
  const out: string[] = [];
  for (let zid = 0; zid < m.nrZones; zid++) {
    const z = zoneInfo(m, zid);
    const promo = z.high + (z.high - z.low);
    let s = `Node ${Math.floor(zid / MAX_NR_ZONES)}, zone ${z.name.padStart(8)}`;
    s += `\n  pages free     ${z.free}\n        boost    0\n        min      ${z.min}\n        low      ${z.low}`;
    s += `\n        high     ${z.high}\n        promo    ${promo}\n        spanned  ${z.spanned}`;
    s += `\n        present  ${z.present}\n        managed  ${z.managed}\n        cma      ${z.cma}`;
    s += `\n        protection: (${z.protection.join(', ')})`;
    if (z.managed === 0 && z.present === 0) {
      out.push(s + '\n');
      continue;
    }
    s += `\n      ${'nr_free_pages'.padEnd(12)} ${z.free}\n      ${'nr_free_cma'.padEnd(12)} ${z.nr_free_cma}`;
    s += '\n  pagesets';
    for (let cpu = 0; cpu < m.nrCpus; cpu++) {
      const pb = pcpBase(m, cpu, zid);
      s += `\n    cpu: ${cpu}\n              count: ${m.pcp[pb + PCP_COUNT]}\n              high:  ${m.pcp[pb + PCP_HIGH]}`;
      s += `\n              batch: ${m.pcp[pb + PCP_BATCH]}`;
    }
    s += `\n  node_unreclaimable:  0\n  start_pfn:           ${z.start_pfn}\n`;
    out.push(s);
  }
  return out.join('');
}

/** pagetypeinfo_show(): free blocks by order and type, then pageblocks by type (populated zones only). */
export function procPagetypeinfo(m: Memmap): string {
  const zones = [...Array(m.nrZones).keys()]
    .map((z) => ({ ...zoneInfo(m, z), nid: Math.floor(z / MAX_NR_ZONES) }))
    .filter((z) => z.managed > 0 || z.present > 0);
  let s = `Page block order: ${m.pageblockOrder}\nPages per block:  ${m.pageblockNrPages}\n\n`;
  s += `${'Free pages count per migrate type at order'.padEnd(43)} `;
  for (let o = 0; o <= m.maxOrder; o++) s += `${String(o).padStart(6)} `;
  s += '\n';
  for (const z of zones) {
    for (let mt = 0; mt < MIGRATE_TYPES; mt++) {
      const name = MIGRATETYPE_NAMES[mt]!;
      s += `Node ${String(z.nid).padStart(4)}, zone ${z.name.padStart(8)}, type ${name.padStart(12)} `;
      for (const c of z.free_area[name]!)
        s += c >= 100000 ? `>${String(100000).padStart(6)} ` : `${String(c).padStart(6)} `;
      s += '\n';
    }
  }
  s += `\n${'Number of blocks type '.padEnd(23)}`;
  for (const name of MIGRATETYPE_NAMES) s += `${name.padStart(12)} `;
  s += '\n';
  for (const z of zones) {
    s += `Node ${z.nid}, zone ${z.name.padStart(8)} `;
    for (const name of MIGRATETYPE_NAMES) s += `${String(z.pageblocks[name]).padStart(12)} `;
    s += '\n';
  }
  return s;
}
