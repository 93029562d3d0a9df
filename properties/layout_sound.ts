// layout-sound: a kernel command line boots the machine it describes, or is refused with one line that
// names the parameter at fault. Booted, the nodes, zones, memory blocks, CMA areas and hugetlb pools
// agree with each other: each node's zone_movable_pfn lies inside the node (R22: "mm/page_alloc.c:
// don't create ZONE_MOVABLE beyond the end of a node"), every boot frame at or above it is in
// ZONE_MOVABLE and every one below in a kernel zone, every zone lies inside its node and counts as
// present exactly the frames that name it, a CMA area lies in one zone (cma_activate_area() drops one
// that does not) with every pageblock MIGRATE_CMA, a boot block is online in the zone of its frames,
// and no hugetlb pool holds more pages than asked for. Checked once per command line, right after
// boot (phase 'boot'): each frame is walked, but a machine's checks are kept with its boot image.
import {
  Memmap,
  nodeSpan,
  ND_STRIDE,
  ND_ZONE_MOVABLE_PFN,
  MB_STRIDE,
  MB_STATE,
  MB_ZONE,
  MB_EARLY,
  MEM_ONLINE,
  NO_ZONE_HANDLE,
  PG_hole,
} from '../mm/memmap';
import { MAX_NR_ZONES, ZONE_MOVABLE, ZONE_NAMES, ZONE_DEVICE, MIGRATE_CMA } from '../mm/mmzone';
import { hstates } from '../mm/hugetlb';
import { bootRamOf, cmaAreas } from '../mm/mm_init';
import { zoneCounters } from '../mm/vmstat';
import type { BootParams } from '../mm/cmdline';
import type { BootCheck, Property } from './property';

export const layoutSound = {
  name: 'layout-sound',
  promise:
    'A kernel command line boots a machine whose nodes, zones, memory blocks, CMA areas and hugetlb pools agree with each other (ZONE_MOVABLE starts inside its node), or is refused with one line naming the parameter at fault.',
  reference:
    "find_zone_movable_pfns_for_nodes() and free_area_init() (mm/mm_init.c), R22's fix; cma_activate_area() (mm/cma.c); memory_dev_init() (drivers/base/memory.c); hugetlb_hstate_alloc_pages() (mm/hugetlb.c)",
  phases: ['boot'],
  atBoot(c) {
    c.checked++;
    if (c.refused !== null) return refusalNamesItsParameter(c);
    return layoutErrors(c.m!, c.params!);
  },
} as const satisfies Property<'layout-sound'>;

/** A refusal is one line and names a parameter of the command line (or says it knows none). */
function refusalNamesItsParameter(c: BootCheck): string[] {
  const msg = c.refused!;
  const out: string[] = [];
  if (msg.includes('\n')) out.push(`the refusal is more than one line: ${JSON.stringify(msg)}`);
  const keys = c.cmdline
    .split(/\s+/)
    .filter(Boolean)
    .map((a) => a.replace(/^"/, '').split('=', 1)[0]!);
  const named =
    /^unknown kernel parameter /.test(msg) ||
    /^an empty argument /.test(msg) ||
    keys.some((k) => msg.startsWith(`${k}:`) || msg.startsWith(`${k}=`) || msg.startsWith(`${k} `));
  if (!named)
    out.push(`the refusal names no parameter of the command line ${JSON.stringify(c.cmdline)}: ${JSON.stringify(msg)}`);
  return out;
}

/** Every inconsistency of a booted machine's layout (at most a few of each kind). */
export function layoutErrors(m: Memmap, params: BootParams): string[] {
  const out: string[] = [];
  const maxOrderPages = 1 << m.maxOrder;
  const ram = bootRamOf.get(m)?.memRanges ?? [[0, m.nrFrames]];
  const spans = [...Array(m.nrNodes).keys()].map((nid) => nodeSpan(m, nid));
  const present = new Int32Array(m.nrNodes * MAX_NR_ZONES); // frames naming each zone, by zone handle
  for (let nid = 0; nid < m.nrNodes; nid++) {
    const [s, e] = spans[nid]!;
    const zmp = m.nodes[nid * ND_STRIDE + ND_ZONE_MOVABLE_PFN]!;
    // find_zone_movable_pfns_for_nodes(): out2 drops a start at or past the node's end (R22)
    if (zmp && (zmp < s || zmp >= e))
      out.push(
        `node ${nid}: zone_movable_pfn ${zmp} is outside the node (pfn ${s}-${e}): ZONE_MOVABLE beyond the node`,
      );
    else if (zmp % maxOrderPages)
      out.push(`node ${nid}: zone_movable_pfn ${zmp} is not aligned to MAX_ORDER_NR_PAGES (${maxOrderPages})`);
    for (let z = 0; z < MAX_NR_ZONES; z++) {
      if (z === ZONE_DEVICE) continue;
      const zi = zoneCounters(m, nid * MAX_NR_ZONES + z);
      if (!zi.spanned) continue;
      const name = `node ${nid} ${zi.name}`;
      if (zi.start_pfn < s || zi.start_pfn + zi.spanned > e)
        out.push(`${name}: spans pfn ${zi.start_pfn}-${zi.start_pfn + zi.spanned}, outside its node (pfn ${s}-${e})`);
      if (zi.managed > zi.present || zi.present > zi.spanned)
        out.push(`${name}: managed ${zi.managed} > present ${zi.present} or present > spanned ${zi.spanned}`);
      if (zi.present && !(zi.min <= zi.low && zi.low <= zi.high))
        out.push(`${name}: watermarks min ${zi.min} low ${zi.low} high ${zi.high} out of order`);
    }
  }
  // every frame once (node spans may overlap: numa=fake interleaves a node's intervals, as
  // split_nodes_interleave() does): its zone, inside its node, against its node's zone_movable_pfn
  let bad = 0;
  let r = 0; // the first boot RAM range not below pfn (memblock.memory is sorted)
  for (let pfn = 0; pfn < m.nrFrames; pfn++) {
    while (r < ram.length && ram[r]![1] <= pfn) r++;
    const inRam = r < ram.length && ram[r]![0] <= pfn;
    const zh = m.pageZone(pfn);
    // a hole's struct page has its zone links too (init_unavailable_range()), but is not present
    if (zh === NO_ZONE_HANDLE || m.flags[pfn]! & PG_hole) continue;
    present[zh]!++;
    if (bad >= 3) continue;
    const nid = Math.floor(zh / MAX_NR_ZONES);
    const z = zh % MAX_NR_ZONES;
    if (z === ZONE_DEVICE) continue;
    const [s, e] = spans[nid]!;
    if (pfn < s || pfn >= e) {
      bad++;
      out.push(`pfn ${pfn}'s page links name node ${nid}, whose span is pfn ${s}-${e}`);
      continue;
    }
    if (!inRam) continue; // hot-added memory: its zone is the online's choice
    const zmp = m.nodes[nid * ND_STRIDE + ND_ZONE_MOVABLE_PFN]!;
    const wantMovable = zmp !== 0 && pfn >= zmp;
    if ((z === ZONE_MOVABLE) !== wantMovable && !(params.movableNode && z === ZONE_MOVABLE)) {
      bad++;
      out.push(
        `pfn ${pfn} (node ${nid}) is in ${ZONE_NAMES[z]} but zone_movable_pfn is ${zmp || 'none'}: ` +
          `boot memory ${wantMovable ? 'at or above it is ZONE_MOVABLE' : 'below it is a kernel zone'}`,
      );
    }
  }
  for (let zh = 0; zh < m.nrNodes * MAX_NR_ZONES; zh++) {
    if (zh % MAX_NR_ZONES === ZONE_DEVICE) continue;
    const zi = zoneCounters(m, zh);
    const n = present[zh]!;
    if (zi.present !== n)
      out.push(
        `node ${Math.floor(zh / MAX_NR_ZONES)} ${zi.name}: present_pages ${zi.present} but ${n} frames name the zone`,
      );
  }
  out.push(...cmaErrors(m), ...blockErrors(m), ...hugetlbErrors(m, params));
  return out;
}

/** cma_activate_area(): an area lies in one zone, each of its pageblocks MIGRATE_CMA; zone->cma_pages adds them up. */
function cmaErrors(m: Memmap): string[] {
  const out: string[] = [];
  const cmaPages = new Map<number, number>();
  for (const [i, { basePfn: base, count }] of cmaAreas(m).entries()) {
    if (!count) continue;
    const zh = m.pageZone(base);
    let other = base;
    while (other < base + count && m.pageZone(other) === zh) other++;
    if (other < base + count) {
      out.push(
        `cma area ${i} (pfn ${base}-${base + count}) spans zones: pfn ${base} is in ${zoneLabel(zh)}, ` +
          `pfn ${other} in ${zoneLabel(m.pageZone(other))} (cma_activate_area() does not activate such an area)`,
      );
      continue;
    }
    cmaPages.set(zh, (cmaPages.get(zh) ?? 0) + count);
    for (let pfn = base - (base % m.pageblockNrPages); pfn < base + count; pfn += m.pageblockNrPages) {
      if (m.getPageblockMigratetype(pfn) !== MIGRATE_CMA) {
        out.push(`cma area ${i}: the pageblock at pfn ${pfn} is not MIGRATE_CMA`);
        break;
      }
    }
  }
  for (let zh = 0; zh < m.nrNodes * MAX_NR_ZONES; zh++) {
    const zi = zoneCounters(m, zh);
    const n = cmaPages.get(zh) ?? 0;
    if (zi.cma !== n) out.push(`${zoneLabel(zh)}: cma_pages ${zi.cma} but its CMA areas hold ${n} pages`);
  }
  return out;
}

/** memory_dev_init(): boot memory blocks come up online; one in a single zone has all its frames there. */
function blockErrors(m: Memmap): string[] {
  const out: string[] = [];
  for (let b = 0; b < m.nrBlocks && out.length < 3; b++) {
    const o = b * MB_STRIDE;
    if (!m.blocks[o + MB_EARLY]) continue;
    if (m.blocks[o + MB_STATE] !== MEM_ONLINE) {
      out.push(`memory${b}: boot memory, but its state is not online`);
      continue;
    }
    const z = m.blocks[o + MB_ZONE]!; // mem->zone: a zone index of the block's node
    if (z < 0) continue; // spans zones or nodes: valid_zones "none"
    let first = NO_ZONE_HANDLE;
    for (let pfn = b * m.blockPages; pfn < (b + 1) * m.blockPages; pfn++) {
      const zh = m.pageZone(pfn);
      if (zh === NO_ZONE_HANDLE) continue;
      if (first === NO_ZONE_HANDLE) first = zh;
      if (zh % MAX_NR_ZONES !== z || zh !== first) {
        const of = `node ${Math.floor(first / MAX_NR_ZONES)} ${ZONE_NAMES[z]}`;
        out.push(`memory${b}: valid_zones says ${of}, but pfn ${pfn} is in ${zoneLabel(zh)} (memory_block_add_nid())`);
        break;
      }
    }
  }
  return out;
}

/** hugetlb_hstate_alloc_pages(): a boot pool has at most the pages asked for, every one free. */
function hugetlbErrors(m: Memmap, params: BootParams): string[] {
  const out: string[] = [];
  for (const { order, nr, free } of hstates(m)) {
    const asked = params.hugepages.find((h) => h.order === order)?.count ?? 0;
    if (nr > asked) out.push(`hugetlb order ${order}: nr_hugepages ${nr} but the command line asked for ${asked}`);
    if (free !== nr) out.push(`hugetlb order ${order}: free_hugepages ${free} != nr_hugepages ${nr} right after boot`);
  }
  return out;
}

function zoneLabel(zh: number): string {
  if (zh === NO_ZONE_HANDLE) return 'no zone';
  return `node ${Math.floor(zh / MAX_NR_ZONES)} ${ZONE_NAMES[zh % MAX_NR_ZONES]}`;
}
