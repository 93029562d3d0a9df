// `pinlab layout`: a booted machine shown the way the kernel shows it — the boot log's zone ranges,
// /proc/zoneinfo, /proc/pagetypeinfo and /sys/devices/system/memory — or the same as JSON.

import {
  Memmap,
  H_ZONE_MOVABLE_PFN,
  H_BOOT_END_PFN,
  H_MIN_FREE_KBYTES,
  PAGE_SIZE,
  Geometry,
  ND_STRIDE,
  ND_ZONE_MOVABLE_PFN,
  nodeSpan,
} from '../mm/memmap';
import { MAX_NR_ZONES } from '../mm/mmzone';
import { zoneInfo, procZoneinfo, procPagetypeinfo, ZoneInfo } from '../mm/vmstat';
import { blockPresent, stateShow, validZonesShow, removableShow, blockIsEarly } from '../mm/memory_hotplug';
import { hstates, sizeString } from '../mm/hugetlb';
import { parseCmdline, parseGeometry, BootParams } from '../mm/cmdline';
import { bootMachine, bootRamOf, bootWarnings, cmaAreas } from '../mm/mm_init';
import { E820Entry, e820PrintTable } from '../mm/e820';

export interface MachineSpec {
  cmdline: string;
  geometry?: string;
}

export function bootFromSpec(spec: MachineSpec): { m: Memmap; params: BootParams } {
  const geometry = parseGeometry(spec.geometry);
  const params = parseCmdline(spec.cmdline, geometry);
  return { m: bootMachine(params), params };
}

export interface BlockInfo {
  index: number;
  start_pfn: number;
  state: string;
  zone: string | null;
  valid_zones: string;
  removable: number;
  boot: boolean;
}

export interface LayoutJson {
  cmdline: string;
  geometry: Geometry;
  warnings: string[];
  /** the x86_64 geometry's QEMU machine and e820 maps (null on a miniature geometry) */
  e820: { machine: string; firmware: E820Entry[]; user: E820Entry[] | null } | null;
  /** memblock.memory: the boot RAM's [start_pfn, end_pfn) ranges */
  memory_ranges: [number, number][];
  movable_zone_start_pfn: number;
  min_free_kbytes: number;
  zones: ZoneInfo[];
  blocks: BlockInfo[];
  cma_areas: { base_pfn: number; count: number }[];
  hugetlb: { page_size: number; nr_hugepages: number; free_hugepages: number }[];
  /** NUMA nodes beyond one (numa=fake=N): each node's pfns, zone_movable_pfn[nid] and zones */
  nodes?: { nid: number; start_pfn: number; end_pfn: number; zone_movable_pfn: number; zones: ZoneInfo[] }[];
}

/** The machine's nodes (numa=fake=N) for `layout --json`; none on a one-node machine. */
function nodesJson(m: Memmap): LayoutJson['nodes'] {
  if (m.nrNodes === 1) return undefined;
  return [...Array(m.nrNodes).keys()].map((nid) => {
    const [start, end] = nodeSpan(m, nid);
    return {
      nid,
      start_pfn: start,
      end_pfn: end,
      zone_movable_pfn: m.nodes[nid * ND_STRIDE + ND_ZONE_MOVABLE_PFN]!,
      zones: [...Array(MAX_NR_ZONES).keys()].map((z) => zoneInfo(m, nid * MAX_NR_ZONES + z)),
    };
  });
}

export function layoutJson(m: Memmap, params: BootParams): LayoutJson {
  const zones = [...Array(MAX_NR_ZONES).keys()].map((z) => zoneInfo(m, z));
  const blocks: BlockInfo[] = [];
  for (let b = 0; b < m.nrBlocks; b++) {
    if (!blockPresent(m, b)) continue;
    const state = stateShow(m, b);
    const vz = validZonesShow(m, b);
    blocks.push({
      index: b,
      start_pfn: b * m.blockPages,
      state,
      zone: state === 'online' && vz !== 'none' ? vz : null,
      valid_zones: vz,
      removable: Number(removableShow(m, b)),
      boot: blockIsEarly(m, b),
    });
  }
  const cma = cmaAreas(m).map((c) => ({ base_pfn: c.basePfn, count: c.count }));
  const hugetlb: LayoutJson['hugetlb'] = hstates(m).map((h) => ({
    page_size: PAGE_SIZE * 2 ** h.order,
    nr_hugepages: h.nr,
    free_hugepages: h.free,
  }));
  const ram = bootRamOf.get(m);
  const e = ram?.e820;
  return {
    cmdline: params.cmdline,
    geometry: params.geometry,
    warnings: bootWarnings.get(m) ?? [],
    e820: e ? { machine: e.machine, firmware: e.firmware, user: e.user } : null,
    memory_ranges: ram?.memRanges ?? [[0, m.header[H_BOOT_END_PFN]!]],
    movable_zone_start_pfn: m.header[H_ZONE_MOVABLE_PFN]!,
    min_free_kbytes: m.header[H_MIN_FREE_KBYTES]!,
    zones,
    blocks,
    cma_areas: cma,
    hugetlb,
    ...(m.nrNodes > 1 ? { nodes: nodesJson(m) } : {}),
  };
}

function hex16(pfn: number): string {
  return '0x' + (pfn * PAGE_SIZE).toString(16).padStart(16, '0');
}
/** The inclusive end address the kernel prints for [start, end). */
function hexEnd(pfn: number): string {
  return '0x' + (pfn * PAGE_SIZE - 1).toString(16).padStart(16, '0');
}

/** The boot log lines free_area_init() prints (print of zone ranges and the movable zone start). */
function dmesgZoneRanges(j: LayoutJson): string {
  let s = '';
  if (j.e820) {
    // e820__memory_setup() and e820__finish_early_params()
    s += `BIOS-provided physical RAM map (QEMU ${j.e820.machine}):\n${e820PrintTable(j.e820.firmware, 'BIOS-e820')}`;
    if (j.e820.user) s += `user-defined physical RAM map:\n${e820PrintTable(j.e820.user, 'user')}`;
  }
  // print_zone_ranges: arch_zone_lowest/highest_possible_pfn, before ZONE_MOVABLE is carved out
  const first = j.memory_ranges[0]![0];
  const last = j.memory_ranges[j.memory_ranges.length - 1]![1];
  const dmaEnd = Math.max(first, Math.min(j.geometry.dmaEndPfn, last));
  const dma32End = j.geometry.dma32EndPfn ? Math.max(dmaEnd, Math.min(j.geometry.dma32EndPfn, last)) : dmaEnd;
  const arch: [number, number][] = [
    [first, dmaEnd],
    [dmaEnd, dma32End],
    [dma32End, last],
  ];
  s += 'Zone ranges:\n';
  for (const z of j.zones) {
    if (z.name === 'Movable') continue;
    const [a, b] = arch[j.zones.indexOf(z)] ?? [0, 0];
    s += a < b ? `  ${z.name.padEnd(8)} [mem ${hex16(a)}-${hexEnd(b)}]\n` : `  ${z.name.padEnd(8)} empty\n`;
  }
  s += 'Movable zone start for each node\n';
  if (j.nodes) {
    for (const n of j.nodes) if (n.zone_movable_pfn) s += `  Node ${n.nid}: ${hex16(n.zone_movable_pfn)}\n`;
  } else if (j.movable_zone_start_pfn) s += `  Node 0: ${hex16(j.movable_zone_start_pfn)}\n`;
  s += 'Early memory node ranges\n';
  const nodeOf = (pfn: number) => (j.nodes ? j.nodes.filter((n) => n.start_pfn <= pfn).length - 1 : 0);
  for (const [a, b] of j.memory_ranges) {
    // a memblock range split where the nodes split it (memblock_set_node())
    const cuts = (j.nodes ?? []).map((n) => n.start_pfn).filter((p) => p > a && p < b);
    let s0 = a;
    for (const c of [...cuts, b]) {
      s += `  node ${String(nodeOf(s0)).padStart(3)}: [mem ${hex16(s0)}-${hexEnd(c)}]\n`;
      s0 = c;
    }
  }
  for (const c of j.cma_areas) s += `cma: Reserved ${(c.count * 4) >> 10} MiB at ${hex16(c.base_pfn)}\n`;
  for (const h of j.hugetlb)
    s += `HugeTLB: registered ${sizeString(h.page_size)} page size, pre-allocated ${h.nr_hugepages} pages\n`;
  return s;
}

/** Memory block devices, runs of identical blocks folded as memory{a..b} (the shell's brace form). */
function sysMemory(m: Memmap, j: LayoutJson): string {
  let s = `/sys/devices/system/memory/block_size_bytes: ${(m.blockPages * PAGE_SIZE).toString(16)}\n`;
  s += `${'block'.padEnd(18)} ${'state'.padEnd(14)} ${'valid_zones'.padEnd(20)} removable\n`;
  let i = 0;
  while (i < j.blocks.length) {
    const a = j.blocks[i]!;
    let k = i;
    while (
      k + 1 < j.blocks.length &&
      j.blocks[k + 1]!.index === j.blocks[k]!.index + 1 &&
      j.blocks[k + 1]!.state === a.state &&
      j.blocks[k + 1]!.valid_zones === a.valid_zones
    )
      k++;
    const name = k === i ? `memory${a.index}` : `memory{${a.index}..${j.blocks[k]!.index}}`;
    s += `${name.padEnd(18)} ${a.state.padEnd(14)} ${a.valid_zones.padEnd(20)} ${a.removable}\n`;
    i = k + 1;
  }
  return s;
}

export function layoutText(m: Memmap, params: BootParams): string {
  const j = layoutJson(m, params);
  const g = params.geometry;
  let s = `# pinlab layout: ${params.cmdline || '(empty command line)'}\n`;
  s += `# geometry: 4K pages, pageblock_order ${g.pageblockOrder}, MAX_PAGE_ORDER ${g.maxOrder}, memory block ${sizeString(g.blockPages * PAGE_SIZE)}, ${g.nrCpus} CPUs\n`;
  for (const w of j.warnings) s += `warning: ${w}\n`;
  s += `\n== dmesg ==\n${dmesgZoneRanges(j)}min_free_kbytes: ${j.min_free_kbytes}\n`;
  s += `\n== /proc/zoneinfo ==\n${procZoneinfo(m)}`;
  s += `\n== /proc/pagetypeinfo ==\n${procPagetypeinfo(m)}`;
  s += `\n== /sys/devices/system/memory ==\n${sysMemory(m, j)}`;
  return s;
}
