// Boot: zone sizing, ZONE_MOVABLE from kernelcore=/movablecore=, memblock reservations, memmap init,
// handing memory to the buddy, watermarks (mm/mm_init.c, mm/memblock.c, mm/page_alloc.c, v6.12).
//
// Simplified (docs/simplifications.md): one node; the x86_64 geometry boots from QEMU's e820 map
// (mm/e820.ts), a miniature one from one flat range at pfn 0; memblock reservations (kernel image,
// then the memmap) sit low in RAM, whereas the kernel allocates the memmap top-down and can leave it
// inside ZONE_MOVABLE (mmzone.h exception 2).

import { BootParams, CmdlineError, HugepageParam } from './cmdline';
import { BootE820, bootE820, qemuRam } from './e820';
import {
  Memmap,
  MemmapShape,
  processShape,
  PAGE_SHIFT,
  PG_reserved,
  PG_hole,
  PG_ZONE_SHIFT,
  NO_ZONE,
  H_BOOT_END_PFN,
  H_ZONE_MOVABLE_PFN,
  H_HOTPLUG_START_PFN,
  H_HOTPLUG_END_PFN,
  H_ZERO_PFN,
  H_USER_MIN_FREE_KBYTES,
  H_WATERMARK_SCALE_FACTOR,
  H_ONLINE_POLICY,
  H_AUTO_MOVABLE_RATIO,
  H_MOVABLE_NODE,
  H_DEFAULT_ONLINE_TYPE,
  H_THP_ENABLED,
  H_NR_CMA_AREAS,
  H_CMA_AREAS,
  MAX_CMA_AREAS,
  Z_START_PFN,
  Z_SPANNED,
  Z_PRESENT,
  Z_PRESENT_EARLY,
  Z_MANAGED,
  Z_CMA_PAGES,
  PCP_LISTS,
  PCP_TAILS,
  MB_STATE,
  MB_ZONE,
  MB_ONLINE_TYPE,
  MB_PRESENT,
  MB_EARLY,
  MB_STRIDE,
  MEM_ONLINE,
  MEM_OFFLINE,
  freeAreaHead,
  freeAreaTail,
  pcpBase,
  PG_zero,
} from './memmap';
import {
  MAX_NR_ZONES,
  ZONE_DMA,
  ZONE_NORMAL,
  ZONE_MOVABLE,
  MIGRATE_MOVABLE,
  MIGRATE_TYPES,
  MIGRATE_CMA,
  MIGRATE_PCPTYPES,
} from './mmzone';
import { NO_PAGE, FPI_NONE, freeRange, initPerZoneWmarkMin, setMinFreeKbytes } from './page_alloc';
import { oomKillerInit } from './oom_kill';
import { NR_VM_ITEMS } from './vmstat';
import { hugetlbInit, sizeString } from './hugetlb';
import { mmInitProcessSpace } from './mm_types';
import {
  MMOP_OFFLINE,
  MMOP_ONLINE,
  MMOP_ONLINE_KERNEL,
  MMOP_ONLINE_MOVABLE,
  onlineMemoryBlock,
} from './memory_hotplug';

export interface Reservation {
  startPfn: number;
  nrPages: number;
  what: string;
}

/** Everything boot decides before the buffer exists. */
export interface BootPlan {
  params: BootParams;
  /** the end of boot RAM (max_pfn) */
  bootPages: number;
  /** memblock.memory: the boot RAM's pfn ranges, holes between them */
  memRanges: [number, number][];
  /** the x86_64 geometry's e820 map (null: a miniature geometry, one range from pfn 0) */
  e820: BootE820 | null;
  nrFrames: number;
  hotplugStartPfn: number;
  hotplugPages: number;
  /** zone_movable_pfn[0]; 0 = no ZONE_MOVABLE */
  zoneMovablePfn: number;
  /** [start, end) of each zone at boot, after ZONE_MOVABLE is carved out */
  zoneSpans: [number, number][];
  cmaAreas: { basePfn: number; count: number }[];
  reservations: Reservation[];
  zeroPfn: number;
  warnings: string[];
}

function maxOrderNrPages(p: BootParams): number {
  return 1 << p.geometry.maxOrder;
}

function roundup(x: number, a: number): number {
  return Math.ceil(x / a) * a;
}

/** Pages of [s, e) that are RAM (memblock.memory): the kernel's present pages (__absent_pages_in_range). */
export function ramPagesIn(ranges: [number, number][], s: number, e: number): number {
  let n = 0;
  for (const [a, b] of ranges) n += Math.max(0, Math.min(b, e) - Math.max(a, s));
  return n;
}

/** arch_zone_lowest/highest_possible_pfn for the boot RAM [start, end) (zone spans clamped to the node). */
function archZoneRanges(p: BootParams, start: number, end: number): [number, number][] {
  const g = p.geometry;
  const dmaEnd = Math.max(Math.min(g.dmaEndPfn, end), start);
  const dma32End = g.dma32EndPfn ? Math.max(Math.min(g.dma32EndPfn, end), dmaEnd) : dmaEnd;
  return [
    [start, dmaEnd],
    [dmaEnd, dma32End],
    [dma32End, end],
    [0, 0],
    [0, 0],
  ];
}

/**
 * find_zone_movable_pfns_for_nodes() for one node: turn kernelcore=/movablecore= into the first pfn of
 * ZONE_MOVABLE, carved from the highest populated zone; memory in lower zones counts as kernelcore.
 * Both count present pages (early_calculate_totalpages), walking memblock's ranges over the holes.
 */
function findZoneMovablePfn(p: BootParams, memRanges: [number, number][], warnings: string[]): number {
  const nodeStart = memRanges[0]![0];
  const nodeEnd = memRanges[memRanges.length - 1]![1];
  const totalPages = ramPagesIn(memRanges, nodeStart, nodeEnd);
  const ranges = archZoneRanges(p, nodeStart, nodeEnd);
  let movableZone = ZONE_DMA; // find_usable_zone_for_movable()
  for (let z = ZONE_NORMAL; z >= ZONE_DMA; z--)
    if (ranges[z]![1] > ranges[z]![0]) {
      movableZone = z;
      break;
    }
  const usableStartPfn = ranges[movableZone]![0];
  let requiredKernelcore = 0;
  let requiredMovablecore = 0;
  const pages = (c: { bytes?: number; percent?: number }) =>
    c.percent !== undefined ? Math.floor((totalPages * c.percent) / 100) : Math.floor(c.bytes! / 2 ** PAGE_SHIFT);
  if (p.movableNode) {
    // movable_node: ZONE_MOVABLE from the firmware's hotpluggable ranges; boot RAM has none here.
    if (p.kernelcore || p.movablecore)
      warnings.push('movable_node: kernelcore=/movablecore= are ignored (find_zone_movable_pfns_for_nodes)');
    return 0;
  }
  if (p.kernelcore) requiredKernelcore = pages(p.kernelcore);
  if (p.movablecore) requiredMovablecore = pages(p.movablecore);
  if (requiredMovablecore) {
    requiredMovablecore = roundup(requiredMovablecore, maxOrderNrPages(p));
    requiredMovablecore = Math.min(totalPages, requiredMovablecore);
    const corepages = totalPages - requiredMovablecore;
    if (p.kernelcore && requiredKernelcore > corepages) {
      warnings.push(
        `kernelcore= and movablecore= both given: kernelcore (${requiredKernelcore} pages) is at least its value, ZONE_MOVABLE shrinks`,
      );
    }
    requiredKernelcore = Math.max(requiredKernelcore, corepages);
  }
  if (!p.kernelcore && !p.movablecore) return 0;
  if (!requiredKernelcore || requiredKernelcore >= totalPages) {
    warnings.push(
      requiredKernelcore
        ? `kernelcore covers all ${totalPages} pages of memory: no ZONE_MOVABLE (find_zone_movable_pfns_for_nodes)`
        : `movablecore covers all of memory, leaving kernelcore 0: no ZONE_MOVABLE (find_zone_movable_pfns_for_nodes)`,
    );
    return 0;
  }
  let zoneMovablePfn = 0;
  let kernelcoreRemaining = requiredKernelcore;
  for (const [rs, end] of memRanges) {
    let start = Math.max(rs, zoneMovablePfn);
    if (start >= end) continue;
    if (start < usableStartPfn) {
      const kernelPages = Math.min(end, usableStartPfn) - start;
      kernelcoreRemaining -= Math.min(kernelPages, kernelcoreRemaining);
      if (end <= usableStartPfn) {
        zoneMovablePfn = end;
        continue;
      }
      start = usableStartPfn;
    }
    const sizePages = Math.min(end - start, kernelcoreRemaining);
    zoneMovablePfn = start + sizePages;
    kernelcoreRemaining -= sizePages;
    if (!kernelcoreRemaining) break;
  }
  // out2: align the start of ZONE_MOVABLE to MAX_ORDER_NR_PAGES; none if that passes the node's end
  zoneMovablePfn = roundup(zoneMovablePfn, maxOrderNrPages(p));
  if (zoneMovablePfn >= nodeEnd) {
    warnings.push('ZONE_MOVABLE would start at or past the end of memory after rounding: none created');
    return 0;
  }
  return zoneMovablePfn;
}

/** adjust_zone_range_for_zone_movable() */
function zoneSpans(p: BootParams, memRanges: [number, number][], zoneMovablePfn: number): [number, number][] {
  const bootPages = memRanges[memRanges.length - 1]![1];
  const r = archZoneRanges(p, memRanges[0]![0], bootPages);
  const out: [number, number][] = [];
  for (let z = 0; z < ZONE_MOVABLE; z++) {
    let [s, e] = r[z]!;
    if (zoneMovablePfn) {
      if (s < zoneMovablePfn && e > zoneMovablePfn) e = zoneMovablePfn;
      else if (s >= zoneMovablePfn) s = e;
    }
    out.push(s < e ? [s, e] : [0, 0]);
  }
  out.push(zoneMovablePfn ? [zoneMovablePfn, bootPages] : [0, 0]);
  out.push([0, 0]); // ZONE_DEVICE
  return out;
}

/**
 * cma_declare_contiguous_nid() (mm/cma.c): size and base aligned to pageblocks; without a fixed base,
 * bottom-up from 4 GiB when memory extends above it, else top-down below the end of memory.
 */
function placeCma(
  p: BootParams,
  memRanges: [number, number][],
  reservations: Reservation[],
  warnings: string[],
): { basePfn: number; count: number }[] {
  const bootPages = memRanges[memRanges.length - 1]![1];
  if (!p.cma) return [];
  const align = 1 << p.geometry.pageblockOrder; // CMA_MIN_ALIGNMENT_PAGES
  const count = roundup(Math.ceil(p.cma.bytes / 2 ** PAGE_SHIFT), align);
  const limit =
    p.cma.limitBytes !== undefined ? Math.min(bootPages, Math.floor(p.cma.limitBytes / 2 ** PAGE_SHIFT)) : bootPages;
  const overlaps = (s: number) =>
    !inRam(memRanges, s, count) || reservations.some((r) => s < r.startPfn + r.nrPages && r.startPfn < s + count);
  if (p.cma.baseBytes !== undefined && p.cma.baseBytes !== 0) {
    const base = p.cma.baseBytes / 2 ** PAGE_SHIFT;
    if (!Number.isInteger(base) || base % align)
      throw new CmdlineError(`cma: base ${p.cma.baseBytes} is not aligned to a pageblock (${align * 4}K)`);
    if (base + count > bootPages || overlaps(base)) {
      warnings.push(
        `cma: failed to reserve ${count} pages at pfn ${base}: range not free (cma_declare_contiguous_nid: -EBUSY); no CMA area`,
      );
      return [];
    }
    return [{ basePfn: base, count }];
  }
  const g = p.geometry;
  if (g.dma32EndPfn && bootPages > g.dma32EndPfn) {
    for (let s = roundup(g.dma32EndPfn, align); s + count <= limit; s += align)
      if (!overlaps(s)) return [{ basePfn: s, count }];
  }
  for (let s = Math.floor((limit - count) / align) * align; s >= 0; s -= align)
    if (!overlaps(s)) return [{ basePfn: s, count }];
  warnings.push(
    `cma: failed to reserve ${count} pages: not enough memory (cma_declare_contiguous_nid: -ENOMEM); no CMA area`,
  );
  return [];
}

/** [s, s+n) lies in one RAM range (memblock allocations never span a hole). */
function inRam(memRanges: [number, number][], s: number, n: number): boolean {
  return memRanges.some(([a, b]) => a <= s && s + n <= b);
}

/** The boot RAM: e820 (QEMU's map, mem=, memmap=, trim_bios_range) on x86_64; one flat range on a mini machine. */
function bootRam(p: BootParams, warnings: string[]): { memRanges: [number, number][]; e820: BootE820 | null } {
  if (!p.geometry.dma32EndPfn) {
    const bootPages = Math.floor(p.memBytes / 2 ** PAGE_SHIFT);
    if (bootPages * 2 ** PAGE_SHIFT !== p.memBytes)
      warnings.push(`mem=${p.memBytes}: not a multiple of 4K, rounded down`);
    return { memRanges: [[0, bootPages]], e820: null };
  }
  const { ramBytes, memLimit } = qemuRam(p.memBytes, p.machine);
  const edits = [...(memLimit !== null ? [{ kind: 'limit' as const, bytes: memLimit }] : []), ...p.memmap];
  const e820 = bootE820(p.machine, ramBytes, edits);
  if (!e820.memRanges.length) throw new CmdlineError('memmap: the e820 map has no usable RAM left');
  return { memRanges: e820.memRanges, e820 };
}

/** The memmap's size: 64 bytes per frame of every present section (a miniature machine: of every frame). */
function memmapPagesFor(p: BootParams, memRanges: [number, number][]): number {
  const g = p.geometry;
  const section = g.dma32EndPfn ? g.blockPages : 1;
  // memRanges are sorted and disjoint (memblock): count each section once, without a per-section walk
  let frames = 0;
  let last = -1;
  for (const [a, b] of memRanges) {
    const first = Math.max(Math.floor(a / section), last + 1);
    const end = Math.ceil(b / section) - 1;
    if (end < first) continue;
    frames += (end - first + 1) * section;
    last = end;
  }
  return Math.ceil((frames * g.structPageBytes) / 2 ** PAGE_SHIFT);
}

export function planBoot(p: BootParams): BootPlan {
  const g = p.geometry;
  const warnings = [...p.warnings];
  const { memRanges, e820 } = bootRam(p, warnings);
  const bootPages = memRanges[memRanges.length - 1]![1];
  // memblock reservations: the first 1M on x86 (reserve_real_mode), the kernel image (its .bss holds
  // ZERO_PAGE), then the memmap
  const memmapPages = memmapPagesFor(p, memRanges);
  const imagePages = Math.max(1, g.kernelImagePages);
  const reservations: Reservation[] = [
    { startPfn: g.kernelStartPfn, nrPages: imagePages, what: 'kernel image' },
    { startPfn: g.kernelStartPfn + imagePages, nrPages: memmapPages, what: 'memmap' },
  ];
  if (e820) reservations.push({ startPfn: 0, nrPages: 256, what: 'the first 1M (reserve_real_mode)' });
  const reservedEnd = g.kernelStartPfn + imagePages + memmapPages;
  const minPages = reservedEnd + 4 * (1 << g.pageblockOrder);
  if (bootPages < minPages) {
    throw new CmdlineError(
      `mem: ${p.memBytes} bytes is too small: the kernel image and memmap end at ${reservedEnd * 4}K; give at least ${minPages * 4}K`,
    );
  }
  if (!inRam(memRanges, g.kernelStartPfn, reservedEnd - g.kernelStartPfn))
    throw new CmdlineError(
      `memmap: the kernel image and memmap (${g.kernelStartPfn * 4}K-${reservedEnd * 4}K) are not all usable RAM`,
    );
  const maxFrames = 2 ** 27; // page-table entries keep 27 bits of pfn (mm/mm_types.ts)
  const blockPages = g.blockPages;
  let hotplugStartPfn = roundup(bootPages, blockPages);
  if (g.dma32EndPfn && bootPages < g.dma32EndPfn && p.hotplugBytes)
    hotplugStartPfn = roundup(g.dma32EndPfn, blockPages); // x86: hotplug ranges above 4G
  const hotplugPages = roundup(Math.floor(p.hotplugBytes / 2 ** PAGE_SHIFT), blockPages);
  if (hotplugPages * 2 ** PAGE_SHIFT !== p.hotplugBytes && p.hotplugBytes) {
    warnings.push(
      `pinlab.hotplug: ${p.hotplugBytes} bytes is not a whole number of memory blocks: rounded up to ${hotplugPages / blockPages}`,
    );
  }
  const nrFrames = hotplugPages ? hotplugStartPfn + hotplugPages : roundup(bootPages, blockPages);
  if (nrFrames > maxFrames)
    throw new CmdlineError(`mem: the machine needs ${nrFrames} frames; pinlab handles at most ${maxFrames} (512 GiB)`);
  const zoneMovablePfn = findZoneMovablePfn(p, memRanges, warnings);
  const cmaAreas = placeCma(p, memRanges, reservations, warnings);
  for (const h of p.hugepages)
    if (h.order > g.maxOrder) reserveGigantic(h, memRanges, reservations, cmaAreas, warnings);
  return {
    params: p,
    bootPages,
    memRanges,
    e820,
    nrFrames,
    hotplugStartPfn,
    hotplugPages,
    zoneMovablePfn,
    zoneSpans: zoneSpans(p, memRanges, zoneMovablePfn),
    cmaAreas,
    reservations,
    zeroPfn: g.kernelStartPfn + imagePages - 1,
    warnings,
  };
}

/** hugetlb_hstate_alloc_pages() for gigantic pages: memblock, top-down, naturally aligned. */
function reserveGigantic(
  h: HugepageParam,
  memRanges: [number, number][],
  reservations: Reservation[],
  cma: { basePfn: number; count: number }[],
  warnings: string[],
): void {
  const n = 1 << h.order;
  const bootPages = memRanges[memRanges.length - 1]![1];
  let got = 0;
  const busy = (s: number) =>
    !inRam(memRanges, s, n) ||
    [...reservations, ...cma.map((c) => ({ startPfn: c.basePfn, nrPages: c.count }))].some(
      (r) => s < r.startPfn + r.nrPages && r.startPfn < s + n,
    );
  for (let s = Math.floor((bootPages - n) / n) * n; s >= 0 && got < h.count; s -= n) {
    if (busy(s)) continue;
    reservations.push({ startPfn: s, nrPages: n, what: 'gigantic hugetlb page' });
    got++;
  }
  if (got < h.count)
    warnings.push(
      `HugeTLB: allocating ${h.count} of page size ${sizeString(4096 * n)} failed.  Only allocated ${got} hugepages.`,
    );
}

function shapeFor(plan: BootPlan): MemmapShape {
  const g = plan.params.geometry;
  return {
    nrFrames: plan.nrFrames,
    nrCpus: g.nrCpus,
    maxOrder: g.maxOrder,
    pageblockOrder: g.pageblockOrder,
    blockPages: g.blockPages,
    nrVmItems: NR_VM_ITEMS,
    ...processShape(plan.nrFrames, g.pageblockOrder),
  };
}

/** Boot a machine from its command line: the buffer, the buddy, watermarks, hugetlb, memory blocks. */
export function bootMachine(p: BootParams): Memmap {
  const plan = planBoot(p);
  const m = new Memmap(shapeFor(plan));
  oomKillerInit();
  const h = m.header;
  h[H_BOOT_END_PFN] = plan.bootPages;
  h[H_ZONE_MOVABLE_PFN] = plan.zoneMovablePfn;
  h[H_HOTPLUG_START_PFN] = plan.hotplugStartPfn;
  h[H_HOTPLUG_END_PFN] = plan.hotplugStartPfn + plan.hotplugPages;
  h[H_ZERO_PFN] = plan.zeroPfn;
  h[H_USER_MIN_FREE_KBYTES] = -1;
  h[H_WATERMARK_SCALE_FACTOR] = p.watermarkScaleFactor;
  h[H_ONLINE_POLICY] = p.onlinePolicy === 'auto-movable' ? 1 : 0;
  h[H_AUTO_MOVABLE_RATIO] = p.autoMovableRatio;
  h[H_MOVABLE_NODE] = p.movableNode ? 1 : 0;
  h[H_DEFAULT_ONLINE_TYPE] = onlineTypeOf(p.memhpDefaultState);
  // hugepage_init(): THP is disabled on machines below 512 MiB (geometry.thpMinPages)
  h[H_THP_ENABLED] = p.thp === 'never' || plan.bootPages < p.geometry.thpMinPages ? 0 : p.thp === 'madvise' ? 1 : 2;
  freeAreaInit(m, plan);
  memblockFreeAll(m, plan);
  initPerZoneWmarkMin(m);
  if (p.minFreeKbytes !== null) {
    setMinFreeKbytes(m, p.minFreeKbytes);
    // the sysctl handler takes any int >= 0 and __setup_per_zone_wmarks() does not clamp it: above the
    // kernel zones' memory every kernel zone's min watermark is above its managed pages
    let lowmem = 0;
    for (let z = 0; z < ZONE_MOVABLE; z++) lowmem += m.zones[m.zoneBase(z) + Z_MANAGED]!;
    const lowmemKbytes = lowmem << (PAGE_SHIFT - 10);
    if (p.minFreeKbytes > lowmemKbytes) {
      plan.warnings.push(
        `sysctl.vm.min_free_kbytes=${p.minFreeKbytes} is more than the kernel zones' ${lowmemKbytes}K of memory: ` +
          'not clamped (min_free_kbytes_sysctl_handler); every kernel zone is below its min watermark, so its allocations fail ' +
          'or invoke the OOM killer',
      );
    }
  }
  hugetlbInit(
    m,
    p.hugepages.filter((x) => x.order <= p.geometry.maxOrder),
    plan.reservations,
    plan.warnings,
  );
  memoryDevInit(m, plan);
  mmInitProcessSpace(m);
  bootWarnings.set(m, plan.warnings);
  bootRamOf.set(m, { memRanges: plan.memRanges, e820: plan.e820 });
  return m;
}

/** Warnings printed while booting (the kernel's pr_warn/pr_info lines about the command line). */
export const bootWarnings = new WeakMap<Memmap, string[]>();
/** The boot RAM a machine came up with: memblock.memory's ranges and (x86_64) the e820 map, for `pinlab layout`. */
export const bootRamOf = new WeakMap<Memmap, { memRanges: [number, number][]; e820: BootE820 | null }>();

function onlineTypeOf(s: string | null): number {
  switch (s) {
    case 'online':
      return MMOP_ONLINE;
    case 'online_kernel':
      return MMOP_ONLINE_KERNEL;
    case 'online_movable':
      return MMOP_ONLINE_MOVABLE;
    default:
      return MMOP_OFFLINE;
  }
}

/** free_area_init() + memmap_init(): zone spans, struct pages (reserved until freed), pageblock types. */
function freeAreaInit(m: Memmap, plan: BootPlan): void {
  m.flags.fill((NO_ZONE << PG_ZONE_SHIFT) | PG_reserved | PG_hole, 0, m.nrFrames);
  for (let z = 0; z < MAX_NR_ZONES; z++) {
    const zb = m.zoneBase(z);
    const [s, e] = plan.zoneSpans[z]!;
    const present = ramPagesIn(plan.memRanges, s, e); // calculate_node_totalpages(): spanned less holes
    m.zones[zb + Z_START_PFN] = s;
    m.zones[zb + Z_SPANNED] = e - s;
    m.zones[zb + Z_PRESENT] = present;
    m.zones[zb + Z_PRESENT_EARLY] = present;
    for (let o = 0; o <= m.maxOrder; o++)
      for (let mt = 0; mt < MIGRATE_TYPES; mt++)
        m.zones[freeAreaHead(m, z, o, mt)] = m.zones[freeAreaTail(m, z, o, mt)] = NO_PAGE;
    for (let cpu = 0; cpu < m.nrCpus; cpu++) {
      const pb = pcpBase(m, cpu, z);
      for (let mt = 0; mt < MIGRATE_PCPTYPES; mt++) m.pcp[pb + PCP_LISTS + mt] = m.pcp[pb + PCP_TAILS + mt] = NO_PAGE;
    }
    // a hole inside a span keeps the zone (init_unavailable_range) and stays PageReserved
    m.flags.fill((z << PG_ZONE_SHIFT) | PG_reserved | PG_hole, s, e);
    for (const [a, b] of plan.memRanges)
      if (Math.max(a, s) < Math.min(b, e))
        m.flags.fill((z << PG_ZONE_SHIFT) | PG_reserved, Math.max(a, s), Math.min(b, e));
  }
  // hot-pluggable memory exists (reserved, offline) but has no zone until onlined
  m.flags.fill(
    (NO_ZONE << PG_ZONE_SHIFT) | PG_reserved,
    plan.hotplugStartPfn,
    plan.hotplugStartPfn + plan.hotplugPages,
  );
  m.pageblock.fill(MIGRATE_MOVABLE);
  m.flags[plan.zeroPfn] = m.flags[plan.zeroPfn]! | PG_zero;
  m.refcount[plan.zeroPfn] = 1; // a reserved page keeps init_page_count()'s reference: pins of ZERO_PAGE never free it
}

/**
 * memblock_free_all() then cma_init_reserved_areas(): every unreserved boot frame goes to the buddy in
 * the largest aligned blocks (__free_pages_memory, FPI_TO_TAIL); CMA areas are memblock-reserved until
 * init_cma_reserved_pageblock() frees them a pageblock at a time (__free_pages(), FPI_NONE).
 */
function memblockFreeAll(m: Memmap, plan: BootPlan): void {
  const reserved = new Uint8Array(plan.bootPages);
  for (const r of plan.reservations) reserved.fill(1, r.startPfn, Math.min(plan.bootPages, r.startPfn + r.nrPages));
  for (const c of plan.cmaAreas) reserved.fill(1, c.basePfn, Math.min(plan.bootPages, c.basePfn + c.count));
  m.header[H_NR_CMA_AREAS] = Math.min(plan.cmaAreas.length, MAX_CMA_AREAS);
  plan.cmaAreas.forEach((c, i) => {
    m.header[H_CMA_AREAS + 2 * i] = c.basePfn;
    m.header[H_CMA_AREAS + 2 * i + 1] = c.count;
    for (let pfn = c.basePfn; pfn < c.basePfn + c.count; pfn += m.pageblockNrPages)
      m.setPageblockMigratetype(pfn, MIGRATE_CMA);
    for (let pfn = c.basePfn; pfn < c.basePfn + c.count; pfn++) {
      const zb = m.zoneBase(m.pageZonenum(pfn));
      m.zones[zb + Z_CMA_PAGES]!++;
    }
  });
  for (const [a, b] of plan.memRanges) {
    let start = a;
    while (start < b) {
      if (reserved[start]) {
        start++;
        continue;
      }
      let end = start;
      while (end < b && !reserved[end]) end++;
      freeRange(m, start, end);
      start = end;
    }
  }
  for (const c of plan.cmaAreas) {
    const end = Math.min(plan.bootPages, c.basePfn + c.count);
    for (let pfn = c.basePfn; pfn < end; pfn += m.pageblockNrPages)
      freeRange(m, pfn, Math.min(end, pfn + m.pageblockNrPages), FPI_NONE);
  }
}

// ---------------------------------------------------------------------------------------------

/**
 * Another thread takes part in a booted machine (a worker, a CPU coming up): its views over the shared
 * buffer, and the per-thread wiring boot did for the booting thread (the OOM killer in the allocator's
 * slow path).
 */
export function attachMachine(shape: MemmapShape, sab: SharedArrayBuffer): Memmap {
  const m = new Memmap(shape, sab);
  oomKillerInit();
  return m;
}

/** memory_dev_init() / add_memory(): one device per present block; hot-added ones auto-online per policy. */
function memoryDevInit(m: Memmap, plan: BootPlan): void {
  for (let b = 0; b < m.nrBlocks; b++) {
    const o = b * MB_STRIDE;
    const start = b * m.blockPages;
    const end = start + m.blockPages;
    const early = plan.memRanges.some(([a, z]) => a < end && start < z); // a section with RAM is present
    const hot = start >= plan.hotplugStartPfn && end <= plan.hotplugStartPfn + plan.hotplugPages;
    m.blocks[o + MB_PRESENT] = early || hot ? 1 : 0;
    m.blocks[o + MB_EARLY] = early ? 1 : 0;
    m.blocks[o + MB_STATE] = early ? MEM_ONLINE : hot ? MEM_OFFLINE : 0;
    m.blocks[o + MB_ONLINE_TYPE] = early ? MMOP_ONLINE : MMOP_OFFLINE;
    m.blocks[o + MB_ZONE] = early ? earlyBlockZone(m, start, Math.min(end, plan.bootPages)) : -1;
  }
  const type = m.header[H_DEFAULT_ONLINE_TYPE]!;
  if (type !== MMOP_OFFLINE) {
    for (let b = 0; b < m.nrBlocks; b++) {
      if (m.blocks[b * MB_STRIDE + MB_STATE] !== MEM_OFFLINE) continue;
      const rc = onlineMemoryBlock(m, b, type);
      if (rc < 0) plan.warnings.push(`memory${b}: auto-online failed (${rc}); the kernel won't retry`);
    }
  }
}

/** early_node_zone_for_memory_block(): the zone of a boot block, or -1 when it spans several. */
function earlyBlockZone(m: Memmap, start: number, end: number): number {
  let zid = -1;
  for (let pfn = start; pfn < end; pfn++) {
    const z = m.pageZonenum(pfn);
    if (z === NO_ZONE) continue;
    if (zid === -1) zid = z;
    else if (zid !== z) return -1;
  }
  return zid;
}
