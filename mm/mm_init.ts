// Boot: zone sizing, ZONE_MOVABLE from kernelcore=/movablecore=, memblock reservations, memmap init,
// handing memory to the buddy, watermarks (mm/mm_init.c, mm/memblock.c, mm/page_alloc.c, v6.12).
//
// Simplified (docs/simplifications.md): one node unless numa=fake=N or pinlab.numa_nodes= asks for
// more; the x86_64 geometry boots from QEMU's e820 map (mm/e820.ts) and places memblock reservations
// as x86 does (the image low, the memmap and the large system hashes top-down, so inside ZONE_MOVABLE
// when it holds the top of RAM: mmzone.h exception 2); a miniature geometry boots from one flat range
// at pfn 0 with its reservations low. What a booted Debian kernel keeps for itself is measured, not
// booted (KERNEL_FOOTPRINTS).

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
  NO_ZONE_HANDLE,
  H_BOOT_END_PFN,
  H_ZONE_MOVABLE_PFN,
  ND_START,
  ND_END,
  ND_ZONE_MOVABLE_PFN,
  ND_STRIDE,
  zoneBits,
  H_HOTPLUG_START_PFN,
  H_HOTPLUG_END_PFN,
  H_ZERO_PFN,
  H_USER_MIN_FREE_KBYTES,
  H_WATERMARK_SCALE_FACTOR,
  H_ONLINE_POLICY,
  H_AUTO_MOVABLE_RATIO,
  H_MOVABLE_NODE,
  H_HUGETLB_VMEMMAP,
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
  NR_PCP_LISTS,
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
import { memmapInitZoneDevice } from './memremap';
import {
  MAX_NR_ZONES,
  ZONE_DMA,
  ZONE_NORMAL,
  ZONE_MOVABLE,
  ZONE_DEVICE,
  MIGRATE_MOVABLE,
  MIGRATE_TYPES,
  MIGRATE_CMA,
} from './mmzone';
import {
  NO_PAGE,
  FPI_NONE,
  allocPages,
  freeRange,
  initPerZoneWmarkMin,
  setMinFreeKbytes,
  totalramPages,
} from './page_alloc';
import { getOrder } from './slab';
import { oomKillerInit, OOM_SCORE_ADJ_MIN } from './oom_kill';
import { bprmMmInit, doMmap, populateRange, PROT_READ, PROT_WRITE } from './mmap';
import { newTask, setCurrent } from './sched';
import { NR_VM_ITEMS } from './vmstat';
import { hugetlbInit, sizeString } from './hugetlb';
import { mmInitProcessSpace } from './mm_types';
import { lruAddDrainAll } from './swap';
import { hasBug, releaseAtLeast, variant } from './variants';
import { GFP_KERNEL, GFP_DMA, GFP_DMA32, __GFP_NOWARN } from './gfp';
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
  /** pinlab.device_coherent=: the ZONE_DEVICE range memremap_pages() adds after everything else */
  deviceStartPfn: number;
  devicePages: number;
  /** zone_movable_pfn[0]; 0 = no ZONE_MOVABLE */
  zoneMovablePfn: number;
  /** [start, end) of each zone at boot, after ZONE_MOVABLE is carved out (node 0's) */
  zoneSpans: [number, number][];
  /** pg_data_t of every node (one unless numa=fake=N): its memblock ranges, zone_movable_pfn[nid], zones */
  nodes: NodePlan[];
  cmaAreas: { basePfn: number; count: number }[];
  reservations: Reservation[];
  zeroPfn: number;
  warnings: string[];
}

export interface NodePlan {
  nid: number;
  /** memblock.memory's ranges of this node (for_each_mem_pfn_range(i, nid, ...)) */
  memRanges: [number, number][];
  /** get_pfn_range_for_nid() */
  startPfn: number;
  endPfn: number;
  hotpluggable: boolean;
  /** zone_movable_pfn[nid]; 0 = none */
  zoneMovablePfn: number;
  /** [start, end) of each zone of the node (zone_spanned_pages_in_node()) */
  zoneSpans: [number, number][];
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

// ---- NUMA (numa=fake=N) ----

/** FAKE_NODE_MIN_SIZE (mm/numa_emulation.c: 32 MiB); a miniature geometry scales it as 32M:128M to its blocks. */
export function fakeNodeMinPages(p: BootParams): number {
  return p.geometry.dma32EndPfn ? (32 << 20) >> PAGE_SHIFT : Math.max(1, p.geometry.blockPages >> 2);
}

/**
 * split_nodes_interleave() (mm/numa_emulation.c) over the one physical node [0, max_pfn): each fake node
 * gets an even share of the RAM (holes do not count: mem_hole_size()), sizes rounded down to
 * FAKE_NODE_MIN_SIZE with the remainder spread as "big" nodes; a node stops at ZONE_DMA32's end when the
 * next would get less than FAKE_NODE_MIN_SIZE below it, and the last takes what is left. Returns each
 * node's pfn intervals, or null when there is not enough memory for each node (emulation disabled).
 */
export function splitNodesInterleave(
  memRanges: [number, number][],
  nrNodes: number,
  minPages: number,
  dma32EndPfn: number,
): [number, number][][] | null {
  const maxPfn = memRanges[memRanges.length - 1]![1];
  // mem_hole_size(): pages of [a, b) that are not RAM, past max_pfn included
  const hole = (a: number, b: number) => b - a - ramPagesIn(memRanges, a, b);
  let size = Math.floor((maxPfn - hole(0, maxPfn)) / nrNodes);
  const big = Math.floor(((size % minPages) * nrNodes) / minPages);
  size -= size % minPages;
  if (!size) return null;
  const nodes: [number, number][][] = Array.from({ length: nrNodes }, () => []);
  let start = 0;
  const limit = maxPfn;
  for (let nid = 0; start < limit; nid++) {
    let end = start + size;
    if (nid < big) end += minPages;
    while (end - start - hole(start, end) < size) {
      end += minPages;
      if (end > limit) {
        end = limit;
        break;
      }
    }
    if (dma32EndPfn && end < dma32EndPfn && dma32EndPfn - end - hole(end, dma32EndPfn) < minPages) end = dma32EndPfn;
    if (limit - end - hole(end, limit) < size) end = limit;
    end = Math.min(end, limit);
    nodes[nid % nrNodes]!.push([start, end]);
    start = end;
  }
  return nodes;
}

/**
 * The firmware's nodes (acpi_numa_memory_affinity_init() from QEMU's `-numa node,mem=`): consecutive
 * pfn ranges of the given sizes from pfn 0, holes included in the node they fall in; the last node
 * takes the rest of memory.
 */
function sratNodes(memRanges: [number, number][], sizes: number[]): [number, number][][] {
  const maxPfn = memRanges[memRanges.length - 1]![1];
  const out: [number, number][][] = [];
  let start = 0;
  sizes.forEach((bytes, i) => {
    const end = i === sizes.length - 1 ? maxPfn : Math.min(maxPfn, start + Math.floor(bytes / 2 ** PAGE_SHIFT));
    out.push([[start, end]]);
    start = end;
  });
  return out;
}

/** memblock_set_node(): the node plans for the boot RAM (one node without numa=fake). */
export function planNodes(p: BootParams, memRanges: [number, number][], warnings: string[]): NodePlan[] {
  let spans: [number, number][][] = [[[memRanges[0]![0], memRanges[memRanges.length - 1]![1]]]];
  if (p.numaNodeBytes.length > 1) spans = sratNodes(memRanges, p.numaNodeBytes);
  else if (p.numaFake > 1) {
    const split = splitNodesInterleave(memRanges, p.numaFake, fakeNodeMinPages(p), p.geometry.dma32EndPfn);
    if (split) spans = split;
    else warnings.push('Not enough memory for each node.  NUMA emulation disabled.');
  }
  const nodes: NodePlan[] = [];
  for (const iv of spans) {
    const ranges: [number, number][] = [];
    for (const [a, b] of memRanges)
      for (const [s, e] of iv) if (Math.max(a, s) < Math.min(b, e)) ranges.push([Math.max(a, s), Math.min(b, e)]);
    ranges.sort((x, y) => x[0] - y[0]);
    const nid = nodes.length;
    if (!ranges.length) continue; // a node without memory is not N_MEMORY
    nodes.push({
      nid,
      memRanges: ranges,
      startPfn: ranges[0]![0],
      endPfn: ranges[ranges.length - 1]![1],
      hotpluggable: p.hotpluggableNodes.includes(nid),
      zoneMovablePfn: 0,
      zoneSpans: [],
    });
  }
  return nodes;
}

/**
 * find_zone_movable_pfns_for_nodes() over several nodes: movable_node takes each hotpluggable node's
 * memory from its lowest pfn; kernelcore=/movablecore= spread kernelcore evenly over the nodes
 * (kernelcore_node = required_kernelcore / usable_nodes), restarting with one node fewer while some is
 * left; out2 rounds zone_movable_pfn[nid] up to MAX_ORDER_NR_PAGES and, fixed (R22), drops it where that
 * reaches the node's end. Writes node.zoneMovablePfn.
 */
export function findZoneMovablePfnsForNodes(p: BootParams, nodes: NodePlan[], warnings: string[]): void {
  const all = nodes.flatMap((n) => n.memRanges);
  const totalPages = all.reduce((t, [a, b]) => t + b - a, 0);
  const ranges = archZoneRanges(p, nodes[0]!.startPfn, nodes[nodes.length - 1]!.endPfn);
  const zmp = nodes.map(() => 0);
  const out2 = (): void => {
    nodes.forEach((n, i) => {
      zmp[i] = roundup(zmp[i]!, maxOrderNrPages(p));
      if (zmp[i]! >= n.endPfn) {
        if (zmp[i] && hasBug('R22'))
          warnings.push(`R22: node ${n.nid}'s ZONE_MOVABLE start ${zmp[i]} is at or past the node's end ${n.endPfn}`);
        else zmp[i] = 0;
      }
      n.zoneMovablePfn = zmp[i]!;
    });
  };
  if (p.movableNode) {
    if (p.kernelcore || p.movablecore)
      warnings.push('movable_node: kernelcore=/movablecore= are ignored (find_zone_movable_pfns_for_nodes)');
    nodes.forEach((n, i) => {
      if (n.hotpluggable) zmp[i] = n.startPfn; // every range of a hotpluggable node is hotpluggable
    });
    out2();
    return;
  }
  let movableZone = ZONE_DMA;
  for (let z = ZONE_NORMAL; z >= ZONE_DMA; z--)
    if (ranges[z]![1] > ranges[z]![0]) {
      movableZone = z;
      break;
    }
  const pages = (c: { bytes?: number; percent?: number }) =>
    c.percent !== undefined ? Math.floor((totalPages * c.percent) / 100) : Math.floor(c.bytes! / 2 ** PAGE_SHIFT);
  let requiredKernelcore = p.kernelcore ? pages(p.kernelcore) : 0;
  if (p.movablecore) {
    let requiredMovablecore = roundup(pages(p.movablecore), maxOrderNrPages(p));
    requiredMovablecore = Math.min(totalPages, requiredMovablecore);
    requiredKernelcore = Math.max(requiredKernelcore, totalPages - requiredMovablecore);
  }
  if (!requiredKernelcore || requiredKernelcore >= totalPages) {
    nodes.forEach((n) => (n.zoneMovablePfn = 0));
    return;
  }
  const usableStartPfn = ranges[movableZone]![0];
  let usableNodes = nodes.length;
  for (;;) {
    // restart: spread kernelcore memory as evenly as possible throughout nodes
    let kernelcoreNode = Math.floor(requiredKernelcore / usableNodes);
    nodes.forEach((n, i) => {
      if (requiredKernelcore < kernelcoreNode) kernelcoreNode = Math.floor(requiredKernelcore / usableNodes);
      let remaining = kernelcoreNode;
      for (const [rs, end] of n.memRanges) {
        let start = Math.max(rs, zmp[i]!);
        if (start >= end) continue;
        if (start < usableStartPfn) {
          const kernelPages = Math.min(end, usableStartPfn) - start;
          remaining -= Math.min(kernelPages, remaining);
          requiredKernelcore -= Math.min(kernelPages, requiredKernelcore);
          if (end <= usableStartPfn) {
            zmp[i] = end;
            continue;
          }
          start = usableStartPfn;
        }
        const sizePages = Math.min(end - start, remaining);
        zmp[i] = start + sizePages;
        requiredKernelcore -= Math.min(requiredKernelcore, sizePages);
        remaining -= sizePages;
        if (!remaining) break;
      }
    });
    usableNodes--;
    if (!(usableNodes && requiredKernelcore > usableNodes)) break;
  }
  out2();
}

/** zone_spanned_pages_in_node() with adjust_zone_range_for_zone_movable() for each zone of a node. */
export function nodeZoneSpans(p: BootParams, n: NodePlan, maxPfn: number): [number, number][] {
  const r = archZoneRanges(p, 0, maxPfn);
  const zmp = n.zoneMovablePfn;
  const out: [number, number][] = [];
  for (let z = 0; z < MAX_NR_ZONES; z++) {
    let [s, e] = r[z]!;
    s = Math.min(Math.max(n.startPfn, s), e);
    e = Math.max(Math.min(n.endPfn, e), s);
    if (z === ZONE_MOVABLE) [s, e] = zmp ? [zmp, n.endPfn] : [0, 0];
    else if (z < ZONE_MOVABLE && zmp) {
      if (s < zmp && e > zmp) e = zmp;
      else if (s >= zmp) s = e;
    }
    if (z === ZONE_DEVICE || e < n.startPfn || s > n.endPfn) {
      out.push([0, 0]);
      continue;
    }
    e = Math.min(e, n.endPfn);
    s = Math.max(s, n.startPfn);
    out.push(e > s ? [s, e] : [0, 0]); // spanned 0: zone_start_pfn 0 (calculate_node_totalpages())
  }
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
  // ZERO_PAGE), then the memmap: top-down on x86_64 (below, after CMA), right after the image on a
  // miniature machine
  const memmapPages = memmapPagesFor(p, memRanges);
  const footprint = e820 ? kernelFootprint() : null;
  const imagePages = footprint ? footprint.imagePages : Math.max(1, g.kernelImagePages);
  const reservations: Reservation[] = [{ startPfn: g.kernelStartPfn, nrPages: imagePages, what: 'kernel image' }];
  if (e820) reservations.push({ startPfn: 0, nrPages: 256, what: 'the first 1M (reserve_real_mode)' });
  else reservations.push({ startPfn: g.kernelStartPfn + imagePages, nrPages: memmapPages, what: 'memmap' });
  const reservedEnd = g.kernelStartPfn + imagePages + (e820 ? 0 : memmapPages);
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
  const ramFrames = hotplugPages ? hotplugStartPfn + hotplugPages : roundup(bootPages, blockPages);
  // memremap_pages() maps whole sections: the device's range starts and ends on a memory block
  const devicePages = roundup(Math.ceil(p.deviceCoherentBytes / 2 ** PAGE_SHIFT), blockPages);
  const nrFrames = ramFrames + devicePages;
  if (nrFrames > maxFrames)
    throw new CmdlineError(`mem: the machine needs ${nrFrames} frames; pinlab handles at most ${maxFrames} (512 GiB)`);
  const nodes = planNodes(p, memRanges, warnings);
  const numa = nodes.length > 1 || p.hotpluggableNodes.length > 0;
  const zoneMovablePfn = numa ? 0 : findZoneMovablePfn(p, memRanges, warnings);
  if (numa) findZoneMovablePfnsForNodes(p, nodes, warnings);
  else nodes[0]!.zoneMovablePfn = zoneMovablePfn;
  const spans = zoneSpans(p, memRanges, numa ? nodes[0]!.zoneMovablePfn : zoneMovablePfn);
  for (const n of nodes) n.zoneSpans = numa ? nodeZoneSpans(p, n, bootPages) : spans;
  const cmaAreas = placeCma(p, memRanges, reservations, warnings);
  if (footprint) memblockTopDown(p, memRanges, reservations, cmaAreas, memmapPages, footprint);
  for (const h of p.hugepages)
    if (h.order > g.maxOrder) reserveGigantic(h, memRanges, nodes, reservations, cmaAreas, warnings);
  return {
    params: p,
    bootPages,
    memRanges,
    e820,
    nrFrames,
    hotplugStartPfn,
    hotplugPages,
    deviceStartPfn: ramFrames,
    devicePages,
    zoneMovablePfn: nodes[0]!.zoneMovablePfn,
    zoneSpans: nodes[0]!.zoneSpans,
    nodes,
    cmaAreas,
    reservations,
    zeroPfn: g.kernelStartPfn + imagePages - 1,
    warnings,
  };
}

/**
 * What a booted Debian kernel keeps of a QEMU guest's memory beyond what pinlab derives (the memmap, the
 * dentry and inode hashes, the DMA atomic pools). The model does not boot Linux, so these are inputs,
 * measured with `pinlab kernel` (a `zones` step right after boot, per-CPU list pages subtracted) on
 * mem=512M..4G with and without ZONE_MOVABLE; docs/simplifications.md has the table.
 */
export interface KernelFootprint {
  name: string;
  /** memblock-reserved pages from the image's start: text, data, bss and the early allocations below it */
  imagePages: number;
  /** top-down memblock allocations besides the memmap and the hashes (the first per-CPU chunk, ...) */
  earlyTopDownPages: number;
  /** unmovable pages a booted kernel holds beside the DMA atomic pools: slab, stacks, per-CPU, page tables, vmalloc */
  runtimeBasePages: number;
  /** ... and per GiB of managed memory */
  runtimePagesPerGiB: number;
  /** the guest's user space once booted: the initramfs unpacked into tmpfs (shmem), and init's own pages */
  rootfsPages: number;
  initAnonPages: number;
}

export const KERNEL_FOOTPRINTS: readonly KernelFootprint[] = [
  {
    name: 'debian:6.1',
    imagePages: 11318,
    earlyTopDownPages: 122,
    runtimeBasePages: 6148,
    runtimePagesPerGiB: 167,
    rootfsPages: 714,
    initAnonPages: 41,
  },
  {
    name: 'debian:6.12',
    imagePages: 9557,
    earlyTopDownPages: 125,
    runtimeBasePages: 4280,
    runtimePagesPerGiB: 161,
    rootfsPages: 714,
    initAnonPages: 42,
  },
];

/** The measured kernel nearest the running variant's release: 6.1's figures before 6.7, 6.12's from it. */
export function kernelFootprint(): KernelFootprint {
  return KERNEL_FOOTPRINTS[releaseAtLeast(variant(), 6, 7) ? 1 : 0]!;
}

/**
 * memblock_alloc() on x86_64: top-down (memblock_find_in_range_node()), below every earlier reservation
 * and CMA area, never across a hole. Returns the start pfn or -1.
 */
function memblockAllocTopDown(
  memRanges: [number, number][],
  taken: { startPfn: number; nrPages: number }[],
  n: number,
  align: number,
): number {
  for (let i = memRanges.length - 1; i >= 0; i--) {
    const [a, b] = memRanges[i]!;
    let s = Math.floor((b - n) / align) * align;
    while (s >= a) {
      const hit = taken.find((r) => s < r.startPfn + r.nrPages && r.startPfn < s + n);
      if (!hit) return s;
      s = Math.floor((hit.startPfn - n) / align) * align;
    }
  }
  return -1;
}

/**
 * The x86_64 top-down memblock allocations after CMA: sparse_init()'s memmap (one PMD-aligned buffer,
 * sparse_buffer_init()), then vfs_caches_init_early()'s dentry and inode hashes (alloc_large_system_hash():
 * one bucket per 2^13 and 2^14 bytes of nr_kernel_pages, 8-byte buckets), then the rest the footprint names.
 */
function memblockTopDown(
  p: BootParams,
  memRanges: [number, number][],
  reservations: Reservation[],
  cma: { basePfn: number; count: number }[],
  memmapPages: number,
  fp: KernelFootprint,
): void {
  const taken = () => [...reservations, ...cma.map((c) => ({ startPfn: c.basePfn, nrPages: c.count }))];
  const reserve = (n: number, align: number, what: string): void => {
    if (n <= 0) return;
    const s = memblockAllocTopDown(memRanges, taken(), n, align);
    if (s < 0) throw new CmdlineError(`mem: ${p.memBytes} bytes is too small: no room for the ${what} (${n * 4}K)`);
    reservations.push({ startPfn: s, nrPages: n, what });
  };
  reserve(memmapPages, 1 << p.geometry.pageblockOrder, 'memmap');
  // calc_nr_kernel_pages(): the free memblock ranges once the memmap is reserved
  let nrKernelPages = memRanges.reduce((t, [a, b]) => t + b - a, 0);
  for (const r of taken()) nrKernelPages -= r.nrPages;
  const hashPages = (scale: number): number => {
    const entries = roundupPowOfTwo(roundup(nrKernelPages, 256) >> (scale - PAGE_SHIFT));
    return Math.max(1, (entries * 8) >> PAGE_SHIFT);
  };
  reserve(hashPages(13), 1, 'Dentry cache hash table');
  reserve(hashPages(14), 1, 'Inode-cache hash table');
  reserve(fp.earlyTopDownPages, 1, 'early allocations (first per-CPU chunk, ...)');
}

function roundupPowOfTwo(n: number): number {
  return n <= 1 ? 1 : 2 ** Math.ceil(Math.log2(n));
}

/** hugetlb_hstate_alloc_pages() for gigantic pages: memblock, top-down, naturally aligned. */
function reserveGigantic(
  h: HugepageParam,
  memRanges: [number, number][],
  nodes: NodePlan[],
  reservations: Reservation[],
  cma: { basePfn: number; count: number }[],
  warnings: string[],
): void {
  const n = 1 << h.order;
  const bootPages = memRanges[memRanges.length - 1]![1];
  let got = 0;
  // memblock's regions are split where the nodes split them (a numa=fake node's intervals too): an
  // allocation never spans two nodes
  const busy = (s: number) =>
    !inRam(memRanges, s, n) ||
    !nodes.some((x) => x.memRanges.some(([a, b]) => a <= s && s + n <= b)) ||
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

/** The machine's buffer shape for a boot plan (bootMachine() allocates it). */
export function shapeFor(plan: BootPlan): MemmapShape {
  const g = plan.params.geometry;
  return {
    nrFrames: plan.nrFrames,
    nrCpus: g.nrCpus,
    maxOrder: g.maxOrder,
    pageblockOrder: g.pageblockOrder,
    blockPages: g.blockPages,
    nrVmItems: NR_VM_ITEMS,
    ...processShape(plan.nrFrames, g.pageblockOrder),
    ...(plan.nodes.length > 1 ? { nrNodes: plan.nodes.length } : {}),
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
  for (const n of plan.nodes) {
    const o = n.nid * ND_STRIDE;
    m.nodes[o + ND_START] = n.startPfn;
    m.nodes[o + ND_END] = n.endPfn;
    m.nodes[o + ND_ZONE_MOVABLE_PFN] = n.zoneMovablePfn;
  }
  h[H_HOTPLUG_START_PFN] = plan.hotplugStartPfn;
  h[H_HOTPLUG_END_PFN] = plan.hotplugStartPfn + plan.hotplugPages;
  h[H_ZERO_PFN] = plan.zeroPfn;
  h[H_USER_MIN_FREE_KBYTES] = -1;
  h[H_WATERMARK_SCALE_FACTOR] = p.watermarkScaleFactor;
  h[H_ONLINE_POLICY] = p.onlinePolicy === 'auto-movable' ? 1 : 0;
  h[H_AUTO_MOVABLE_RATIO] = p.autoMovableRatio;
  h[H_MOVABLE_NODE] = p.movableNode ? 1 : 0;
  h[H_HUGETLB_VMEMMAP] = p.hugetlbFreeVmemmap ? 1 : 0;
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
    for (let z = 0; z < m.nrZones; z++)
      if (z % MAX_NR_ZONES < ZONE_MOVABLE) lowmem += m.zones[m.zoneBase(z) + Z_MANAGED]!;
    const lowmemKbytes = lowmem << (PAGE_SHIFT - 10);
    if (p.minFreeKbytes > lowmemKbytes) {
      plan.warnings.push(
        `sysctl.vm.min_free_kbytes=${p.minFreeKbytes} is more than the kernel zones' ${lowmemKbytes}K of memory: ` +
          'not clamped (min_free_kbytes_sysctl_handler); every kernel zone is below its min watermark, so its allocations fail ' +
          'or invoke the OOM killer',
      );
    }
  }
  if (plan.e820 && p.kmem) kernelOwnMemory(m, kernelFootprint());
  hugetlbInit(
    m,
    p.hugepages.filter((x) => x.order <= p.geometry.maxOrder),
    plan.reservations,
    plan.warnings,
  );
  memoryDevInit(m, plan);
  mmInitProcessSpace(m);
  if (plan.e820 && p.kmem) bootUserSpace(m, kernelFootprint());
  bootWarnings.set(m, plan.warnings);
  bootRamOf.set(m, { memRanges: plan.memRanges, e820: plan.e820 });
  return m;
}

/**
 * The running kernel's own memory, allocated through the buddy as the kernel does at boot, before the
 * hugetlb pool: dma_atomic_pool_init()'s three pools (GFP_KERNEL, GFP_DMA, GFP_DMA32; 128K per GiB of
 * totalram_pages(), at least 128K, at most MAX_ORDER_NR_PAGES, one block of get_order(size) each), then
 * the measured rest (slab, stacks, per-CPU areas, page tables, vmalloc) as GFP_KERNEL order-0 pages.
 * Nothing frees them: like the kernel's, they are unmovable and not on the LRU.
 */
function kernelOwnMemory(m: Memmap, fp: KernelFootprint): void {
  const totalram = totalramPages(m);
  const poolPages = Math.min(1 << m.maxOrder, Math.max(32, Math.floor(totalram / 8192)));
  const order = getOrder(poolPages << PAGE_SHIFT);
  for (const gfp of [GFP_KERNEL, GFP_KERNEL | GFP_DMA, GFP_KERNEL | GFP_DMA32]) {
    // has_managed_dma(): no GFP_DMA pool without ZONE_DMA memory
    if (gfp & GFP_DMA && !m.zones[m.zoneBase(ZONE_DMA) + Z_MANAGED]) continue;
    allocPages(m, gfp | __GFP_NOWARN, order);
  }
  const rest = fp.runtimeBasePages + Math.round((fp.runtimePagesPerGiB * totalram) / 262144);
  for (let i = 0; i < rest; i++) if (allocPages(m, GFP_KERNEL | __GFP_NOWARN, 0) === NO_PAGE) break;
}

/**
 * The guest's user space as `pinlab kernel` boots it: init (PID 1, which the OOM killer never picks:
 * oom_score_adj -1000 stands for is_global_init()) with the initramfs unpacked into tmpfs, mapped shared,
 * and a few pages of its own. Movable allocations after boot, so they take ZONE_MOVABLE's free blocks
 * smallest first (the fragments beside memblock's top-down reservations); they migrate when their block
 * goes offline. It is mm 0: the first process a scenario spawns is mm 1.
 */
function bootUserSpace(m: Memmap, fp: KernelFootprint): void {
  const mm = bprmMmInit(m, { oomScoreAdj: OOM_SCORE_ADJ_MIN });
  if (mm < 0) return;
  const prev = setCurrent(newTask(1, 'init', 0, mm));
  try {
    for (const [nrPages, shared] of [
      [fp.rootfsPages, true],
      [fp.initAnonPages, false],
    ] as const) {
      const vpn = doMmap(m, mm, { nrPages, prot: PROT_READ | PROT_WRITE, shared });
      if (vpn < 0 || populateRange(m, mm, vpn, vpn + nrPages, true) < 0) return;
    }
    // the folio batches' references go by the time anyone looks: lru_add_drain() at exec and exit
    lruAddDrainAll(m);
  } finally {
    setCurrent(prev);
  }
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
  for (let zh = 0; zh < m.nrZones; zh++) {
    const z = zh % MAX_NR_ZONES; // a zone handle: node zh / MAX_NR_ZONES, zone index z
    const zb = m.zoneBase(zh);
    const node = plan.nodes[(zh - z) / MAX_NR_ZONES]!;
    const [s, e] = node.zoneSpans[z]!;
    // calculate_node_totalpages(): spanned less what is not this node's memory (__absent_pages_in_range(nid)):
    // holes, and the other nodes' intervals inside a numa=fake node's span (split_nodes_interleave())
    const present = ramPagesIn(node.memRanges, s, e);
    m.zones[zb + Z_START_PFN] = s;
    m.zones[zb + Z_SPANNED] = e - s;
    m.zones[zb + Z_PRESENT] = present;
    m.zones[zb + Z_PRESENT_EARLY] = present;
    for (let o = 0; o <= m.maxOrder; o++)
      for (let mt = 0; mt < MIGRATE_TYPES; mt++)
        m.zones[freeAreaHead(m, zh, o, mt)] = m.zones[freeAreaTail(m, zh, o, mt)] = NO_PAGE;
    for (let cpu = 0; cpu < m.nrCpus; cpu++) {
      const pb = pcpBase(m, cpu, zh);
      for (let pi = 0; pi < NR_PCP_LISTS; pi++) m.pcp[pb + PCP_LISTS + pi] = m.pcp[pb + PCP_TAILS + pi] = NO_PAGE;
    }
  }
  // memmap_init(): a node's RAM gets its own zone's links (memblock's regions carry their nid); a hole
  // inside a span keeps a zone (init_unavailable_range()) and stays PageReserved. Every span's holes
  // first, then RAM: numa=fake's interleaved nodes span each other's frames, which keep their own links.
  for (let zh = 0; zh < m.nrZones; zh++) {
    const [s, e] = plan.nodes[Math.floor(zh / MAX_NR_ZONES)]!.zoneSpans[zh % MAX_NR_ZONES]!;
    m.flags.fill(zoneBits(zh) | PG_reserved | PG_hole, s, e);
  }
  for (let zh = 0; zh < m.nrZones; zh++) {
    const node = plan.nodes[Math.floor(zh / MAX_NR_ZONES)]!;
    const [s, e] = node.zoneSpans[zh % MAX_NR_ZONES]!;
    for (const [a, b] of node.memRanges)
      if (Math.max(a, s) < Math.min(b, e)) m.flags.fill(zoneBits(zh) | PG_reserved, Math.max(a, s), Math.min(b, e));
  }
  // hot-pluggable memory exists (reserved, offline) but has no zone until onlined
  m.flags.fill(
    (NO_ZONE << PG_ZONE_SHIFT) | PG_reserved,
    plan.hotplugStartPfn,
    plan.hotplugStartPfn + plan.hotplugPages,
  );
  if (plan.devicePages) memmapInitZoneDevice(m, plan.deviceStartPfn, plan.devicePages);
  m.pageblock.fill(MIGRATE_MOVABLE);
  m.flags[plan.zeroPfn] = m.flags[plan.zeroPfn]! | PG_zero;
  m.refcount[plan.zeroPfn] = 1; // a reserved page keeps init_page_count()'s reference: pins of ZERO_PAGE never free it
}

/** cma_areas[]: the CMA areas boot activated, each a base pfn and a page count. */
export function cmaAreas(m: Memmap): { basePfn: number; count: number }[] {
  const out: { basePfn: number; count: number }[] = [];
  for (let i = 0; i < m.header[H_NR_CMA_AREAS]!; i++)
    out.push({ basePfn: m.header[H_CMA_AREAS + 2 * i]!, count: m.header[H_CMA_AREAS + 2 * i + 1]! });
  return out;
}

/**
 * memblock_free_all() then cma_init_reserved_areas(): every unreserved boot frame goes to the buddy in
 * the largest aligned blocks (__free_pages_memory, FPI_TO_TAIL); CMA areas are memblock-reserved until
 * init_cma_reserved_pageblock() frees them a pageblock at a time (__free_pages(), FPI_NONE).
 */
function memblockFreeAll(m: Memmap, plan: BootPlan): void {
  // cma_activate_area(): an area across two zones is not activated; its pages go to the buddy as any others
  plan.cmaAreas = plan.cmaAreas.filter((c) => {
    const zh = m.pageZone(c.basePfn);
    for (let pfn = c.basePfn + 1; pfn < c.basePfn + c.count; pfn++) {
      if (m.pageZone(pfn) === zh) continue;
      plan.warnings.push(
        `CMA area cma could not be activated: pfn ${c.basePfn}-${c.basePfn + c.count} spans two zones (cma_activate_area())`,
      );
      return false;
    }
    return true;
  });
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
      const zb = m.zoneBase(m.pageZone(pfn));
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
    const z = m.pageZone(pfn);
    if (z === NO_ZONE_HANDLE) continue;
    if (zid === -1) zid = z;
    else if (zid !== z) return -1;
  }
  return zid < 0 ? zid : zid % MAX_NR_ZONES; // mem->zone's zone index
}
