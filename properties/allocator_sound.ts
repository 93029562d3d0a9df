// allocator-sound: every managed frame is free in the buddy, on a per-CPU list or in use, exactly once,
// and the counters agree with the lists (the kernel's check_free_page() and debug_pagealloc spirit);
// zone spans, present pages and memory block states agree with the frames (memory hotplug's books).
import {
  Memmap,
  MB_STRIDE,
  MB_STATE,
  MB_ZONE,
  MB_PRESENT,
  MEM_ONLINE,
  MEM_OFFLINE,
  NO_ZONE_HANDLE,
  PG_hole,
  Z_START_PFN,
  Z_SPANNED,
  Z_PRESENT,
  PG_buddy,
  PG_pcp,
  PG_ORDER_SHIFT,
  Z_MANAGED,
  Z_NR_FREE,
  Z_NR_FREE_CMA,
  PCP_COUNT,
  PCP_LISTS,
  PCP_TAILS,
  NR_PCP_LISTS,
  freeAreaHead,
  freeAreaTail,
  freeAreaCount,
  pcpBase,
} from '../mm/memmap';
import {
  MIGRATE_TYPES,
  MIGRATE_PCPTYPES,
  MIGRATE_CMA,
  MIGRATE_ISOLATE,
  ZONE_MOVABLE,
  ZONE_DEVICE,
  MAX_NR_ZONES,
  zoneName,
  MIGRATETYPE_NAMES,
} from '../mm/mmzone';
import type { Property } from './property';

export const allocatorSound = {
  name: 'allocator-sound',
  promise:
    "Every managed frame is free, on a per-CPU list or in use exactly once, and NR_FREE_PAGES, NR_FREE_CMA_PAGES and each nr_free count what the lists hold; each zone's span and present pages, and each memory block's state, agree with its frames.",
  reference:
    "mm/page_alloc.c free lists and per-CPU lists (check_free_page(), __del_page_from_free_list()'s list checks); shrink_zone_span() and resize_zone_range() (mm/memory_hotplug.c); /sys/devices/system/memory/memoryN/state",
  phases: ['teardown', 'exit'],
  atTeardown(c) {
    c.checked++; // every frame's list membership, every count
    return checkAllocator(c.m).errors.map((e) => `after the run: ${e}`);
  },
  atExit(c) {
    c.checked++;
    // zones and blocks change only in hotplug operations, which are all over by the teardown: once, here
    return [...checkAllocator(c.m).errors, ...checkZonesAndBlocks(c.m)].map((e) => `after exit: ${e}`);
  },
} as const satisfies Property<'allocator-sound'>;

export interface AllocatorCensus {
  /** per zone: frames on buddy free lists (all types), on per-CPU lists, and the remainder (in use) */
  free: number[];
  pcp: number[];
  used: number[];
  /** frame -> 1 if on a free or per-CPU list */
  onList: Uint8Array;
}

/**
 * The per-CPU lists of one zone: each entry marked, in the zone, linked both ways, the tail its last
 * page; order 0 on the MIGRATE_PCPTYPES lists, pageblock_order (aligned) on the THP lists.
 */
function checkPcpLists(
  m: Memmap,
  zid: number,
  mark: (pfn: number, n: number, what: string) => void,
  errors: string[],
): number {
  let total = 0;
  for (let cpu = 0; cpu < m.nrCpus; cpu++) {
    const pb = pcpBase(m, cpu, zid);
    let n = 0;
    for (let pi = 0; pi < NR_PCP_LISTS; pi++) {
      let prev = -1;
      const order = pi < MIGRATE_PCPTYPES ? 0 : m.pageblockOrder;
      for (let pfn = m.pcp[pb + PCP_LISTS + pi]!; pfn !== -1; pfn = m.mapping[pfn]!) {
        if (n > m.nrFrames) {
          errors.push(`cpu ${cpu} zone ${zoneName(zid)}: pcp list loops`);
          break;
        }
        if (!(m.flags[pfn]! & PG_pcp))
          errors.push(`cpu ${cpu} zone ${zoneName(zid)}: pfn ${pfn} on pcp list but not marked`);
        if (m.pageZone(pfn) !== zid)
          errors.push(`cpu ${cpu}: pfn ${pfn} of zone ${m.pageZone(pfn)} on zone ${zoneName(zid)}'s pcp list`);
        if (m.index[pfn] !== prev)
          errors.push(`cpu ${cpu} zone ${zoneName(zid)}: pcp pfn ${pfn} has a broken back link`);
        if (m.pageOrder(pfn) !== order || pfn & ((1 << order) - 1))
          errors.push(`cpu ${cpu} zone ${zoneName(zid)}: pfn ${pfn} of order ${m.pageOrder(pfn)} on pcp list ${pi}`);
        mark(pfn, 1 << order, `cpu ${cpu} pcp`);
        prev = pfn;
        n += 1 << order;
      }
      if (m.pcp[pb + PCP_TAILS + pi] !== prev)
        errors.push(
          `cpu ${cpu} zone ${zoneName(zid)}: pcp list ${pi}'s tail is ${m.pcp[pb + PCP_TAILS + pi]}, its last page ${prev}`,
        );
    }
    if (n !== m.pcp[pb + PCP_COUNT])
      errors.push(`cpu ${cpu} zone ${zoneName(zid)}: pcp count ${m.pcp[pb + PCP_COUNT]} but lists hold ${n}`);
    total += n;
  }
  return total;
}

/**
 * Walk the free lists and per-CPU lists; returns the census and every violation found:
 * a frame listed twice, a list entry that is not marked free, a wrong order/zone/migratetype,
 * counters that disagree with the lists, free + pcp exceeding managed.
 */
export function checkAllocator(m: Memmap): { census: AllocatorCensus; errors: string[] } {
  const errors: string[] = [];
  const onList = new Uint8Array(m.nrFrames);
  // indexed by zone handle (node * MAX_NR_ZONES + zone index): one node's are the zone indices
  const free = new Array(m.nrZones).fill(0);
  const pcp = new Array(m.nrZones).fill(0);
  const used = new Array(m.nrZones).fill(0);
  const mark = (pfn: number, n: number, what: string): void => {
    for (let p = pfn; p < pfn + n; p++) {
      if (p >= m.nrFrames) {
        errors.push(`${what}: pfn ${p} beyond the end of memory`);
        return;
      }
      if (onList[p]) {
        errors.push(`${what}: pfn ${p} is on two lists (handed out twice)`);
        return;
      }
      onList[p] = 1;
    }
  };
  for (let zid = 0; zid < m.nrZones; zid++) {
    let nrFree = 0;
    let nrFreeCma = 0;
    for (let o = 0; o <= m.maxOrder; o++) {
      for (let mt = 0; mt < MIGRATE_TYPES; mt++) {
        let n = 0;
        let prev = -1;
        const where = `zone ${zoneName(zid)} order ${o} ${MIGRATETYPE_NAMES[mt]}`;
        for (let pfn = m.zones[freeAreaHead(m, zid, o, mt)]!; pfn !== -1; pfn = m.mapping[pfn]!) {
          if (n > m.nrFrames) {
            errors.push(`${where}: free list loops`);
            break;
          }
          const f = m.flags[pfn]!;
          if (!(f & PG_buddy)) errors.push(`${where}: pfn ${pfn} listed but not PageBuddy`);
          if (((f >>> PG_ORDER_SHIFT) & 31) !== o)
            errors.push(`${where}: pfn ${pfn} has buddy_order ${(f >>> PG_ORDER_SHIFT) & 31}`);
          if (m.pageZone(pfn) !== zid) errors.push(`${where}: pfn ${pfn} belongs to zone ${m.pageZone(pfn)}`);
          if (pfn & ((1 << o) - 1)) errors.push(`${where}: pfn ${pfn} not aligned to its order`);
          if (m.index[pfn] !== prev) errors.push(`${where}: pfn ${pfn} has a broken back link`);
          if (m.refcount[pfn] !== 0) errors.push(`${where}: free pfn ${pfn} has refcount ${m.refcount[pfn]}`);
          // freelist hygiene (6.10+): every pageblock a free block covers has the type of its list
          for (let pb = pfn; pb < pfn + (1 << o); pb += m.pageblockNrPages) {
            const bmt = m.getPageblockMigratetype(pb);
            if (bmt !== mt) {
              errors.push(
                `${where}: pfn ${pfn} covers pfn ${pb} of a ${MIGRATETYPE_NAMES[bmt]} pageblock (freelist hygiene)`,
              );
              break;
            }
          }
          mark(pfn, 1 << o, where);
          prev = pfn;
          n++;
          if (mt !== MIGRATE_ISOLATE) nrFree += 1 << o;
          if (mt === MIGRATE_CMA) nrFreeCma += 1 << o;
          free[zid] += 1 << o;
        }
        if (n !== m.zones[freeAreaCount(m, zid, o, mt)])
          errors.push(`${where}: ${n} blocks listed, nr_free says ${m.zones[freeAreaCount(m, zid, o, mt)]}`);
        if (m.zones[freeAreaTail(m, zid, o, mt)] !== prev)
          errors.push(`${where}: the list's tail is ${m.zones[freeAreaTail(m, zid, o, mt)]}, its last block ${prev}`);
      }
    }
    const zb = m.zoneBase(zid);
    if (nrFree !== m.zones[zb + Z_NR_FREE])
      errors.push(`zone ${zoneName(zid)}: NR_FREE_PAGES ${m.zones[zb + Z_NR_FREE]} but lists hold ${nrFree}`);
    if (nrFreeCma !== m.zones[zb + Z_NR_FREE_CMA])
      errors.push(
        `zone ${zoneName(zid)}: NR_FREE_CMA_PAGES ${m.zones[zb + Z_NR_FREE_CMA]} but lists hold ${nrFreeCma}`,
      );
    pcp[zid] = checkPcpLists(m, zid, mark, errors);
    used[zid] = m.zones[zb + Z_MANAGED]! - free[zid] - pcp[zid];
    if (used[zid] < 0)
      errors.push(
        `zone ${zoneName(zid)}: free ${free[zid]} + pcp ${pcp[zid]} exceeds managed ${m.zones[zb + Z_MANAGED]}`,
      );
  }
  return { census: { free, pcp, used, onList }, errors };
}

/** Nothing non-movable in ZONE_MOVABLE: every in-use frame there must belong to a movable allocation. */
export function checkMovableZone(m: Memmap, isMovableAllocation: (pfn: number) => boolean): string[] {
  const errors: string[] = [];
  for (let pfn = 0; pfn < m.nrFrames; pfn++) {
    if (m.pageZonenum(pfn) !== ZONE_MOVABLE || m.refcount[pfn] === 0) continue;
    if (!isMovableAllocation(pfn)) errors.push(`pfn ${pfn} in ZONE_MOVABLE holds a non-movable allocation`);
  }
  return errors;
}

/**
 * A boot zone's span may run past its first or last frame over another node's frames: a numa=fake node
 * of interleaved intervals (split_nodes_interleave()) spans them, and free_area_init() sets each zone's
 * span from the node's span, zone_movable_pfn and the arch zone limits, not from the node's own frames.
 */
function spanEdgesOtherNodes(m: Memmap, z: number, start: number, end: number, first: number, last: number): boolean {
  if (first === -1 || start > first || end < last + 1) return false;
  const nid = Math.floor(z / MAX_NR_ZONES);
  const other = (pfn: number): boolean => {
    const zh = m.pageZone(pfn);
    return zh !== NO_ZONE_HANDLE && Math.floor(zh / MAX_NR_ZONES) !== nid;
  };
  for (let pfn = start; pfn < first; pfn++) if (!other(pfn)) return false;
  for (let pfn = last + 1; pfn < end; pfn++) if (!other(pfn)) return false;
  return true;
}

/**
 * Zones and memory blocks against the frames, with no hotplug operation in flight:
 * - a zone's span runs from its first frame to its last (init_unavailable_range() gives holes inside
 *   a span the zone; shrink_zone_span() and resize_zone_range() keep both ends tight across offline
 *   and online), or at boot past them over other nodes' frames (spanEdgesOtherNodes()); an empty zone
 *   spans nothing;
 * - present_pages counts its frames that are not holes (adjust_present_page_count());
 * - a memory block is online or offline (never going-offline or going-online between operations); an
 *   offline one's frames have no zone (remove_pfn_range_from_zone()), an online one's RAM frames all
 *   have one, its zone when it names one (valid_zones: a block in one zone).
 */
export function checkZonesAndBlocks(m: Memmap): string[] {
  const errors: string[] = [];
  const first = new Int32Array(m.nrZones).fill(-1);
  const last = new Int32Array(m.nrZones).fill(-1);
  const present = new Int32Array(m.nrZones);
  const flags = m.flags;
  for (let b = 0; b < m.nrBlocks; b++) {
    const o = b * MB_STRIDE;
    const state = m.blocks[o + MB_PRESENT] ? m.blocks[o + MB_STATE]! : -1;
    const zone = m.blocks[o + MB_ZONE]!;
    if (state !== -1 && state !== MEM_ONLINE && state !== MEM_OFFLINE)
      errors.push(`memory${b}: state ${state} (neither online nor offline) with no operation in flight`);
    let bad = -1;
    const end = Math.min((b + 1) * m.blockPages, m.nrFrames);
    for (let pfn = b * m.blockPages; pfn < end; pfn++) {
      const f = flags[pfn]!;
      const z = m.pageZone(pfn);
      if (z === NO_ZONE_HANDLE) {
        if (state === MEM_ONLINE && !(f & PG_hole) && bad < 0) bad = pfn;
        continue;
      }
      const zn = z % MAX_NR_ZONES;
      if (bad < 0 && (state === MEM_OFFLINE || (state === MEM_ONLINE && zone >= 0 && zn !== zone))) bad = pfn;
      if (zn === ZONE_DEVICE) continue;
      if (first[z] === -1) first[z] = pfn;
      last[z] = pfn;
      if (!(f & PG_hole)) present[z]++;
    }
    if (bad >= 0) {
      const z = m.pageZone(bad);
      errors.push(
        `memory${b} is ${state === MEM_ONLINE ? 'online' : 'offline'}${zone >= 0 ? ` in ${zoneName(zone)}` : ''} but pfn ${bad} is in ${z === NO_ZONE_HANDLE ? 'no zone' : `zone ${zoneName(z)}`}`,
      );
    }
  }
  for (let z = 0; z < m.nrZones; z++) {
    if (z % MAX_NR_ZONES === ZONE_DEVICE) continue; // memremap_pages(): its own span, no memory blocks
    const zb = m.zoneBase(z);
    const start = m.zones[zb + Z_START_PFN]!;
    const spanned = m.zones[zb + Z_SPANNED]!;
    const want = first[z] === -1 ? [start, 0] : [first[z]!, last[z]! + 1 - first[z]!];
    if (
      (start !== want[0] || spanned !== want[1]) &&
      !spanEdgesOtherNodes(m, z, start, start + spanned, first[z]!, last[z]!)
    )
      errors.push(
        `zone ${zoneName(z)}: spans [${start}, ${start + spanned}) but its frames run [${want[0]}, ${want[0]! + want[1]!})`,
      );
    if (m.zones[zb + Z_PRESENT] !== present[z])
      errors.push(`zone ${zoneName(z)}: present_pages ${m.zones[zb + Z_PRESENT]} but ${present[z]} frames are in it`);
  }
  return errors;
}
