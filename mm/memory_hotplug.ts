// Memory hotplug: onlining memory blocks into zones, the online policies, and the memory block device
// (mm/memory_hotplug.c, drivers/base/memory.c, v6.12). Offlining: offline_pages() below.
//
// Simplified: one node, no memory groups (each block onlines on its own), no memmap_on_memory.

import {
  Memmap,
  MB_STATE,
  MB_ZONE,
  MB_ONLINE_TYPE,
  MB_PRESENT,
  MB_EARLY,
  MB_STRIDE,
  MEM_ONLINE,
  MEM_OFFLINE,
  MEM_GOING_OFFLINE,
  MEM_GOING_ONLINE,
  MEM_CANCEL_ONLINE,
  Z_LOCK,
  Z_START_PFN,
  Z_SPANNED,
  Z_PRESENT,
  Z_PRESENT_EARLY,
  Z_CMA_PAGES,
  H_ONLINE_POLICY,
  H_AUTO_MOVABLE_RATIO,
  H_MOVABLE_NODE,
  H_HOTPLUG_LOCK,
  PG_ZONE_SHIFT,
  PG_ZONE_MASK,
  zoneBits,
  pfnToNid,
  PG_reserved,
  MEM_CANCEL_OFFLINE,
  Z_MANAGED,
  Z_NR_ISOLATE_PAGEBLOCK,
  PG_lru,
  PG_movable_ops,
  PG_offline,
  PG_hugetlb,
  PG_tail,
  PG_head,
  PG_buddy,
  PG_hole,
  PG_hwpoison,
  NO_ZONE,
  ND_STRIDE,
  ND_START,
  ND_END,
} from './memmap';
import {
  ZONE_DMA,
  ZONE_NORMAL,
  ZONE_MOVABLE,
  MAX_NR_ZONES,
  MIGRATE_MOVABLE,
  MIGRATE_ISOLATE,
  zoneName,
} from './mmzone';
import { EINVAL, ENODEV, EBUSY, EINTR, ENOENT, EHWPOISON } from './errno';
import {
  MigrateFailure,
  MigrateStats,
  isolateFolio,
  migratePages,
  allocMigrationTarget,
  putbackMovablePages,
  MR_MEMORY_HOTPLUG,
} from './migrate';
import { folioPut, lruCacheDisable, lruCacheEnable } from './swap';
import { zonePcpDisable, zonePcpEnable, delPageFromFreeList, freeRange, initPerZoneWmarkMin } from './page_alloc';
import {
  startIsolatePageRange,
  undoIsolatePageRange,
  testPagesIsolated,
  MEMORY_OFFLINE,
  REPORT_FAILURE,
} from './page_isolation';
import { dissolveFreeHugetlbFolios, freeHpageWorkfn, hugetlbFreesPending } from './hugetlb';
import { current, yieldPoint } from './sched';
import { GFP_USER, __GFP_MOVABLE, __GFP_RETRY_MAYFAIL } from './gfp';
import { spinLock, spinUnlock, mutexLock, mutexUnlock } from './locking';
import { isolatePageblockLocked, unsetMigratetypeIsolate } from './page_isolation';
import { folioTryGet, folioOrder } from './page_ref';
import { countVmEvents, vmItem } from './vmstat';
import { hasBug, releaseAtLeast, variant } from './variants';
import { folioContainHwpoisonedPage, unmapPoisonedFolio } from './memory_failure';
import { folioMapped, tryToUnmap, TTU_IGNORE_MLOCK, TTU_HWPOISON } from './rmap';
import { folioIsolateLruMark } from './vmscan';
import { folioLock, folioUnlock } from './filemap';
import { vmWarnOnOnceMm } from './debug';
import { atomicRead, flagsCmpxchg } from './atomic';

const OFFLINE_RETRY = vmItem('offline_pages_retry');
const OFFLINE_FAIL = vmItem('offline_pages_fail');
const OFFLINE_SUCCESS = vmItem('offline_pages_success');

// include/linux/memory_hotplug.h
export const MMOP_OFFLINE = 0;
export const MMOP_ONLINE = 1;
export const MMOP_ONLINE_KERNEL = 2;
export const MMOP_ONLINE_MOVABLE = 3;
const ONLINE_TYPE_TO_STR = ['offline', 'online', 'online_kernel', 'online_movable'];

/** mhp_online_type_from_str() */
function mhpOnlineTypeFromStr(s: string): number {
  const i = ONLINE_TYPE_TO_STR.indexOf(s.trim());
  return i >= 0 ? i : -EINVAL;
}

// ---- memory notifier (memory_notify / register_memory_notifier), per thread ----
export interface MemoryNotifyArg {
  startPfn: number;
  nrPages: number;
}
export type MemoryNotifier = (m: Memmap, action: number, arg: MemoryNotifyArg) => number;
const notifiers: MemoryNotifier[] = [];
export function registerMemoryNotifier(fn: MemoryNotifier): () => void {
  notifiers.push(fn);
  return () => {
    const i = notifiers.indexOf(fn);
    if (i >= 0) notifiers.splice(i, 1);
  };
}
/** memory_notify(): the first notifier error wins (notifier_to_errno). */
function memoryNotify(m: Memmap, action: number, arg: MemoryNotifyArg): number {
  for (const fn of notifiers) {
    const rc = fn(m, action, arg);
    if (rc < 0) return rc;
  }
  return 0;
}

// ---- zones ----

function zoneSpan(m: Memmap, zid: number): [number, number] {
  const zb = m.zoneBase(zid);
  const s = m.zones[zb + Z_START_PFN]!;
  return [s, s + m.zones[zb + Z_SPANNED]!];
}

/** zone_intersects() */
function zoneIntersects(m: Memmap, zid: number, startPfn: number, nrPages: number): boolean {
  const [s, e] = zoneSpan(m, zid);
  if (e === s) return false;
  return startPfn < e && s < startPfn + nrPages;
}

/** default_kernel_zone_for_pfn(): the first kernel zone the range intersects, else ZONE_NORMAL. */
function defaultKernelZoneForPfn(m: Memmap, startPfn: number, nrPages: number): number {
  const nb = pfnToNid(m, startPfn) * MAX_NR_ZONES; // NODE_DATA(nid)->node_zones
  for (let zid = ZONE_DMA; zid <= ZONE_NORMAL; zid++) if (zoneIntersects(m, nb + zid, startPfn, nrPages)) return zid;
  return ZONE_NORMAL;
}

/**
 * default_zone_for_pfn() (contig-zones): inherit the one zone the range touches, else kernel (movable_node: movable).
 */
function defaultZoneForPfn(m: Memmap, startPfn: number, nrPages: number): number {
  const kernelZone = defaultKernelZoneForPfn(m, startPfn, nrPages);
  const nb = pfnToNid(m, startPfn) * MAX_NR_ZONES;
  const inKernel = zoneIntersects(m, nb + kernelZone, startPfn, nrPages);
  const inMovable = zoneIntersects(m, nb + ZONE_MOVABLE, startPfn, nrPages);
  if (inKernel !== inMovable) return inKernel ? kernelZone : ZONE_MOVABLE;
  return m.header[H_MOVABLE_NODE] ? ZONE_MOVABLE : kernelZone;
}

/**
 * auto_movable_can_online_movable(): MOVABLE (plus CMA) : KERNEL_EARLY (boot kernel memory minus CMA)
 * must stay within auto_movable_ratio percent after onlining nrPages more as movable.
 */
export function autoMovableCanOnlineMovable(m: Memmap, nrPages: number): boolean {
  let kernelEarly = 0;
  let movable = 0;
  for (let zid = 0; zid < m.nrZones; zid++) {
    const zb = m.zoneBase(zid);
    if (zid % MAX_NR_ZONES === ZONE_MOVABLE) movable += m.zones[zb + Z_PRESENT]!;
    else {
      kernelEarly += m.zones[zb + Z_PRESENT_EARLY]!;
      movable += m.zones[zb + Z_CMA_PAGES]!;
      kernelEarly -= m.zones[zb + Z_CMA_PAGES]!;
    }
  }
  movable += nrPages;
  return movable <= Math.floor((m.header[H_AUTO_MOVABLE_RATIO]! * kernelEarly) / 100);
}

/** auto_movable_zone_for_pfn() */
function autoMovableZoneForPfn(m: Memmap, startPfn: number, nrPages: number): number {
  if (!m.header[H_AUTO_MOVABLE_RATIO]) return defaultKernelZoneForPfn(m, startPfn, nrPages);
  if (!autoMovableCanOnlineMovable(m, nrPages)) return defaultKernelZoneForPfn(m, startPfn, nrPages);
  return ZONE_MOVABLE;
}

/** zone_for_pfn_range() */
export function zoneForPfnRange(m: Memmap, onlineType: number, startPfn: number, nrPages: number): number {
  if (onlineType === MMOP_ONLINE_KERNEL) return defaultKernelZoneForPfn(m, startPfn, nrPages);
  if (onlineType === MMOP_ONLINE_MOVABLE) return ZONE_MOVABLE;
  if (m.header[H_ONLINE_POLICY] === 1) return autoMovableZoneForPfn(m, startPfn, nrPages);
  return defaultZoneForPfn(m, startPfn, nrPages);
}

/** resize_zone_range() + memmap_init_range(MEMINIT_HOTPLUG): frames join the zone, pageblocks isolated. */
function movePfnRangeToZone(m: Memmap, zid: number, startPfn: number, nrPages: number): void {
  const zb = m.zoneBase(zid);
  const lk = zb + Z_LOCK;
  spinLock(m.zones, lk);
  const [s, e] = zoneSpan(m, zid);
  const ns = e === s ? startPfn : Math.min(s, startPfn);
  const ne = e === s ? startPfn + nrPages : Math.max(e, startPfn + nrPages);
  m.zones[zb + Z_START_PFN] = ns;
  m.zones[zb + Z_SPANNED] = ne - ns;
  resizePgdatRange(m, Math.floor(zid / MAX_NR_ZONES), startPfn, nrPages);
  m.flags.fill(zoneBits(zid) | PG_reserved, startPfn, startPfn + nrPages);
  // __init_single_page(): a page memory failure held when the block went offline starts afresh, its
  // whole struct page (a mapping left on it would be a bad page when it is next allocated)
  m.refcount.fill(0, startPfn, startPfn + nrPages);
  m.mapcount.fill(0, startPfn, startPfn + nrPages);
  m.mapping.fill(0, startPfn, startPfn + nrPages);
  m.index.fill(0, startPfn, startPfn + nrPages);
  for (let p = startPfn; p < startPfn + nrPages; p += m.pageblockNrPages) {
    m.setPageblockMigratetype(p, MIGRATE_MOVABLE);
    isolatePageblockLocked(m, zid, p);
  }
  spinUnlock(m.zones, lk);
}

/**
 * resize_pgdat_range(): the node spans what went online. Not shrunk again when it goes offline
 * (update_pgdat_span()): pfnToNid() finds a hot-added range's node by the node starts (docs/simplifications.md).
 */
function resizePgdatRange(m: Memmap, nid: number, startPfn: number, nrPages: number): void {
  const o = nid * ND_STRIDE;
  const s = m.nodes[o + ND_START]!;
  const e = m.nodes[o + ND_END]!;
  m.nodes[o + ND_START] = e === s ? startPfn : Math.min(s, startPfn);
  m.nodes[o + ND_END] = e === s ? startPfn + nrPages : Math.max(e, startPfn + nrPages);
}

/** remove_pfn_range_from_zone() + shrink_zone_span(): the range leaves the zone (frames have no zone). */
function removePfnRangeFromZone(m: Memmap, zid: number, startPfn: number, nrPages: number): void {
  const zb = m.zoneBase(zid);
  const lk = zb + Z_LOCK;
  spinLock(m.zones, lk);
  for (let p = startPfn; p < startPfn + nrPages; p++) {
    // the memmap stays while the block is offline: a poisoned page keeps PG_hwpoison (and its reference).
    // One still in use (a migration holds it isolated, a process maps it: __offline_isolated_pages()
    // offlines it anyway) keeps its whole struct page but for the zone, as the kernel leaves the memmap
    // alone (page_init_poison() is CONFIG_DEBUG_VM's); others run on it, so only the zone bits change
    if (m.flags[p]! & PG_hwpoison && m.refcount[p]! > 0) {
      for (let f = m.flags[p]!; ;) {
        const seen = flagsCmpxchg(m.flags, p, f, (f & ~PG_ZONE_MASK) | (NO_ZONE << PG_ZONE_SHIFT));
        if (seen === f) break;
        f = seen;
      }
      continue;
    }
    m.flags[p] = (NO_ZONE << PG_ZONE_SHIFT) | PG_reserved | (m.flags[p]! & PG_hwpoison);
  }
  let [s, e] = zoneSpan(m, zid);
  // shrink_zone_span(): find the first/last pfn still in the zone
  if (startPfn <= s) {
    s = startPfn + nrPages;
    while (s < e && m.pageZone(s) !== zid) s++;
  }
  if (startPfn + nrPages >= e) {
    e = startPfn;
    while (e > s && m.pageZone(e - 1) !== zid) e--;
  }
  if (e <= s) {
    s = 0;
    e = 0;
  }
  m.zones[zb + Z_START_PFN] = s;
  m.zones[zb + Z_SPANNED] = e - s;
  spinUnlock(m.zones, lk);
}

/**
 * online_pages(): join the zone isolated, free the frames to the buddy, un-isolate, recompute
 * watermarks. Returns 0 or -errno (a MEM_GOING_ONLINE notifier's error).
 */
function onlinePages(m: Memmap, pfn: number, nrPages: number, zid: number): number {
  if (!nrPages || pfn % m.pageblockNrPages || (pfn + nrPages) % m.blockPages) return -EINVAL;
  movePfnRangeToZone(m, zid, pfn, nrPages);
  const arg = { startPfn: pfn, nrPages };
  const rc = memoryNotify(m, MEM_GOING_ONLINE, arg);
  if (rc) {
    memoryNotify(m, MEM_CANCEL_ONLINE, arg);
    for (let p = pfn; p < pfn + nrPages; p += m.pageblockNrPages) unsetMigratetypeIsolate(m, zid, p, MIGRATE_MOVABLE);
    removePfnRangeFromZone(m, zid, pfn, nrPages);
    return rc;
  }
  freeRange(m, pfn, pfn + nrPages); // online_pages_range() -> generic_online_page()
  m.zones[m.zoneBase(zid) + Z_PRESENT]! += nrPages; // adjust_present_page_count()
  for (let p = pfn; p < pfn + nrPages; p += m.pageblockNrPages) unsetMigratetypeIsolate(m, zid, p, MIGRATE_MOVABLE);
  initPerZoneWmarkMin(m);
  memoryNotify(m, MEM_ONLINE, arg);
  return 0;
}

// ---- memory block devices (drivers/base/memory.c) ----

export function blockStartPfn(m: Memmap, b: number): number {
  return b * m.blockPages;
}

/**
 * mem_hotplug_begin()/mem_hotplug_done(), and lock_device_hotplug() around them: serialises online and
 * offline (pinlab has one lock for both).
 */
function memHotplugBegin(m: Memmap): void {
  mutexLock(m.header, H_HOTPLUG_LOCK); // a sleeping lock: held across offline_pages()' preemption points
}
function memHotplugDone(m: Memmap): void {
  mutexUnlock(m.header, H_HOTPLUG_LOCK);
}

/** memory_block_online() */
export function onlineMemoryBlock(m: Memmap, b: number, onlineType: number): number {
  memHotplugBegin(m);
  const rc = onlineMemoryBlockLocked(m, b, onlineType);
  memHotplugDone(m);
  return rc;
}

/** memory_block_online() with the hotplug lock held. */
function onlineMemoryBlockLocked(m: Memmap, b: number, onlineType: number): number {
  // memblk_nr_poison() (v6.2): a block memory failure poisoned a page of stays offline. Before, onlining
  // initialises its struct pages afresh and frees the poisoned page while whoever held it still does:
  // Debian's 6.1 reports "BUG: Bad page state" once the page is allocated again
  // (scenarios/kernel/hwpoison-offline-online.yaml)
  if (releaseAtLeast(variant(), 6, 2) && atomicRead(m.blockNrHwpoison, b)) return -EHWPOISON;
  const start = blockStartPfn(m, b);
  const zid = zoneForPfnRange(m, onlineType, start, m.blockPages);
  // the block's node (memory_block->nid): its zone of that index
  const rc = onlinePages(m, start, m.blockPages, pfnToNid(m, start) * MAX_NR_ZONES + zid);
  if (rc === 0) {
    const o = b * MB_STRIDE;
    m.blocks[o + MB_STATE] = MEM_ONLINE;
    m.blocks[o + MB_ZONE] = zid;
    m.blocks[o + MB_ONLINE_TYPE] = onlineType;
  }
  return rc;
}

/** memory_block_offline(), the hotplug lock held. */
function offlineMemoryBlockLocked(m: Memmap, b: number, opts?: OfflineOptions): number {
  const o = b * MB_STRIDE;
  const zid = m.blocks[o + MB_ZONE]!;
  // A block spanning zones (mem->zone == NULL) cannot be offlined.
  if (zid < 0) return -EINVAL;
  m.blocks[o + MB_STATE] = MEM_GOING_OFFLINE;
  const rc = offlinePages(m, blockStartPfn(m, b), m.blockPages, opts);
  if (rc === 0) {
    m.blocks[o + MB_STATE] = MEM_OFFLINE;
    m.blocks[o + MB_ZONE] = -1;
  } else m.blocks[o + MB_STATE] = MEM_ONLINE;
  return rc;
}

export function blockPresent(m: Memmap, b: number): boolean {
  return b >= 0 && b < m.nrBlocks && m.blocks[b * MB_STRIDE + MB_PRESENT] === 1;
}

/**
 * state_store() (drivers/base/memory.c), a write to memoryN/state: "online", "online_kernel", "online_movable" or
 * "offline". Returns 0 or -errno:
 * -EINVAL for an unknown string or a block already in that state (device_online()/device_offline()
 * return 1, which state_store turns into -EINVAL).
 */
export function stateStore(m: Memmap, b: number, text: string, opts?: OfflineOptions): number {
  if (!blockPresent(m, b)) return -ENODEV;
  const type = mhpOnlineTypeFromStr(text);
  if (type < 0) return -EINVAL;
  // lock_device_hotplug_sysfs(), then device_offline()/device_online()'s look at the block: its state is
  // read under the lock, so a write racing another write to the same block sees what that one did
  memHotplugBegin(m);
  const state = m.blocks[b * MB_STRIDE + MB_STATE]!;
  let rc = -EINVAL;
  if (type === MMOP_OFFLINE) {
    if (state !== MEM_OFFLINE) rc = offlineMemoryBlockLocked(m, b, opts);
  } else if (state !== MEM_ONLINE) rc = onlineMemoryBlockLocked(m, b, type);
  memHotplugDone(m);
  return rc;
}

/** state_show() */
export function stateShow(m: Memmap, b: number): string {
  switch (m.blocks[b * MB_STRIDE + MB_STATE]) {
    case MEM_ONLINE:
      return 'online';
    case MEM_OFFLINE:
      return 'offline';
    case MEM_GOING_OFFLINE:
      return 'going-offline';
    default:
      return `ERROR-UNKNOWN-${m.blocks[b * MB_STRIDE + MB_STATE]}`;
  }
}

/**
 * valid_zones_show(): an online block shows its zone ("none" when it spans zones); an offline block
 * lists the zone plain "online" would pick first, then the other kernel/movable choices.
 */
export function validZonesShow(m: Memmap, b: number): string {
  const o = b * MB_STRIDE;
  if (m.blocks[o + MB_STATE] === MEM_ONLINE) {
    const z = m.blocks[o + MB_ZONE]!;
    return z >= 0 ? zoneName(z) : 'none';
  }
  const start = blockStartPfn(m, b);
  const def = zoneForPfnRange(m, MMOP_ONLINE, start, m.blockPages);
  const out = [zoneName(def)];
  for (const t of [MMOP_ONLINE_KERNEL, MMOP_ONLINE_MOVABLE]) {
    const z = zoneForPfnRange(m, t, start, m.blockPages);
    if (z !== def) out.push(zoneName(z));
  }
  return out.join(' ');
}

/** removable_show(): always 1 since v5.9 ("indicate all memory blocks as removable"). */
export function removableShow(_m: Memmap, _b: number): string {
  return '1';
}

export function blockIsEarly(m: Memmap, b: number): boolean {
  return m.blocks[b * MB_STRIDE + MB_EARLY] === 1;
}

/** Options and report of offline_pages(). */
export interface OfflineOptions {
  /**
   * The kernel retries forever until a signal; pinlab gives up after this many scan passes and then
   * behaves as if `timeout` had sent a signal (-EINTR, "signal backoff"). Default OFFLINE_PASSES_MAX.
   */
  passesMax?: number;
  /** filled in: why it failed, which pfns would not go and why */
  report?: OfflineReport;
}
export interface OfflineReport {
  reason: string;
  /** the pfn isolation or the final test stopped at */
  pfn: number;
  passes: number;
  failures: MigrateFailure[];
}

/** Default retry budget of offline_pages() in scan passes (see docs/simplifications.md). */
export const OFFLINE_PASSES_MAX = 100;

/**
 * scan_movable_pages(): the first pfn in [start, end) holding an LRU, __PageMovable or in-use
 * hugetlb folio; -ENOENT when there is none; -EBUSY for a referenced PageOffline page.
 */
function scanMovablePages(m: Memmap, start: number, end: number, out: { pfn: number }): number {
  for (let pfn = start; pfn < end; pfn++) {
    const f = m.flags[pfn]!;
    if (f & (PG_lru | PG_movable_ops)) {
      out.pfn = pfn;
      return 0;
    }
    if (f & PG_offline && m.refcount[pfn]! > 0) {
      out.pfn = pfn;
      return -EBUSY;
    }
    if (!(f & PG_hugetlb)) {
      if (f & PG_tail) {
        const head = m.compoundHead(pfn);
        if (m.flags[head]! & PG_lru) {
          out.pfn = head;
          return 0;
        }
      }
      continue;
    }
    if (f & PG_head && m.refcount[pfn]! > 0) {
      out.pfn = pfn;
      return 0;
    }
    pfn = m.compoundHead(pfn) + (1 << m.pageOrder(m.compoundHead(pfn))) - 1;
  }
  return -ENOENT;
}

/**
 * do_migrate_range(): isolate what can be isolated in [start, end) and migrate it with
 * GFP_USER | __GFP_MOVABLE | __GFP_RETRY_MAYFAIL (MR_MEMORY_HOTPLUG); failures go back, errors ignored.
 */
function doMigrateRange(m: Memmap, start: number, end: number, stats: MigrateStats): void {
  const list: number[] = [];
  const beforeV64 = !releaseAtLeast(variant(), 6, 4);
  for (let pfn = start; pfn < end; pfn++) {
    const head = m.compoundHead(pfn);
    if (folioContainHwpoisonedPage(m, head) && hasBug('R20')) {
      pfn = Math.max(pfn, head + (1 << folioOrder(m, head)) - 1);
      hwpoisonedFolioBeforeV614(m, head, TTU_IGNORE_MLOCK);
      continue;
    }
    if (beforeV64 && m.flags[pfn]! & PG_hwpoison) {
      // before v6.4 the check is PageHWPoison() of the page the walk is at (a THP's first one in the range),
      // and try_to_unmap() without TTU_IGNORE_HWPOISON leaves hwpoison entries
      pfn = Math.max(pfn, head + (1 << folioOrder(m, head)) - 1);
      hwpoisonedFolioBeforeV614(m, head, TTU_IGNORE_MLOCK | TTU_HWPOISON);
      continue;
    }
    if (!folioTryGet(m, head)) continue;
    if (m.compoundHead(pfn) !== head) {
      folioPut(m, head); // split meanwhile: the next pass comes back to the pages
      continue;
    }
    pfn = Math.max(pfn, head + (1 << folioOrder(m, head)) - 1);
    // before v6.4 a THP with a poisoned page further in is isolated and migrated like any other, poison
    // and all: Debian's 6.1 offlines it (scenarios/kernel/hwpoison-thp-unsplit.yaml)
    if (!beforeV64 && folioContainHwpoisonedPage(m, head)) {
      // unmap_poisoned_folio() cannot handle large folios in all cases yet: a THP is skipped
      if (m.flags[head]! & PG_head && !(m.flags[head]! & PG_hugetlb))
        stats.failures.push({ pfn: head, rc: -EBUSY, why: HWPOISONED_LARGE_SKIPPED });
      else hwpoisonedFolio(m, head);
      folioPut(m, head);
      continue;
    }
    if (isolateFolio(m, head)) list.push(head);
    else stats.failures.push({ pfn: head, rc: -EBUSY, why: 'failed to isolate (not on the LRU)' });
    folioPut(m, head);
  }
  if (!list.length) return;
  const rc = migratePages(m, list, allocMigrationTarget(GFP_USER | __GFP_MOVABLE | __GFP_RETRY_MAYFAIL), {
    reason: MR_MEMORY_HOTPLUG,
    stats,
  });
  if (rc) putbackMovablePages(m, list);
}

/**
 * do_migrate_range() on a folio holding a poisoned page (6.12.86: "fix hwpoisoned large folio handling",
 * after v6.14's "check folio ref count first" and "lock folio before unmap hwpoisoned folio"), with a
 * reference held: not migrated. A small or hugetlb folio (the caller skips a THP) goes off the LRU for
 * good and a mapping left is unmapped under the folio lock with TTU_HWPOISON, so test_pages_isolated()
 * can pass it.
 */
function hwpoisonedFolio(m: Memmap, head: number): void {
  if (m.flags[head]! & PG_lru && !folioIsolateLruMark(m, head, 0)) return; // folio_isolate_lru(): kept
  if (!folioMapped(m, head)) return;
  // folio_lock(), not a try: the folio is off the LRU now, no later pass would find it, and
  // test_pages_isolated() passes a poisoned page mapped or not
  folioLock(m, head);
  unmapPoisonedFolio(m, head);
  folioUnlock(m, head);
}

/**
 * Why offlining stops at a THP memory failure could not split: every pass of offline_pages() finds it again and
 * skips it, until a signal (as 6.12 does; the quiescence checks exempt it, harness/agents/agent.ts failureReasons()).
 */
export const HWPOISONED_LARGE_SKIPPED = 'a large folio holding a hwpoisoned page, which do_migrate_range() skips';

/**
 * do_migrate_range() before those fixes, with no reference held: a poisoned folio still on the LRU is
 * taken off it (WARN_ON), and a mapped one unmapped with try_to_unmap(folio, TTU_IGNORE_MLOCK),
 * unlocked. Before v6.4 an unset TTU_IGNORE_HWPOISON makes hwpoison entries (ttu has TTU_HWPOISON).
 * R20 (v6.4 to 6.12.85): without TTU_HWPOISON (6da6b1d4a7df, v6.4, the flag that asks for them) an
 * anonymous page has no entry to become (try_to_unmap_one() WARNs and gives up): it stays mapped while
 * test_pages_isolated() lets the block go offline under it. A PMD-mapped THP is VM_BUG_ON_FOLIO(!pvmw.pte)
 * (a NULL dereference).
 */
function hwpoisonedFolioBeforeV614(m: Memmap, head: number, ttu: number): void {
  if (vmWarnOnOnceMm(m, (m.flags[head]! & PG_lru) !== 0, 'do_migrate_range: a hwpoisoned folio on the LRU'))
    folioIsolateLruMark(m, head, 0);
  if (folioMapped(m, head)) tryToUnmap(m, head, ttu);
}

/**
 * __offline_isolated_pages(): take every free page of the isolated range out of the buddy; returns
 * how many (they stop being managed).
 */
function offlineIsolatedPages(m: Memmap, zid: number, start: number, end: number): number {
  const lk = m.zoneBase(zid) + Z_LOCK;
  let n = 0;
  spinLock(m.zones, lk);
  for (let pfn = start; pfn < end;) {
    const f = m.flags[pfn]!;
    if (f & PG_buddy) {
      const order = m.pageOrder(pfn);
      delPageFromFreeList(m, zid, pfn, order, MIGRATE_ISOLATE);
      n += 1 << order;
      pfn += 1 << order;
      continue;
    }
    if (f & PG_hwpoison) n++; // memory failure's page, still managed: it goes with the block
    pfn++;
  }
  m.zones[m.zoneBase(zid) + Z_NR_ISOLATE_PAGEBLOCK]! -= (end - start) / m.pageblockNrPages;
  spinUnlock(m.zones, lk);
  return n;
}

/**
 * offline_pages(): isolate the range, then scan / migrate / dissolve free hugetlb / test until every
 * page is free, undoing everything on failure. Returns 0, -EINVAL (holes, several zones), -EBUSY
 * (isolation failed, an unmovable page, a notifier) or -EINTR (a signal, or the pass budget spent).
 */
export function offlinePages(m: Memmap, startPfn: number, nrPages: number, opts: OfflineOptions = {}): number {
  const rc = doOfflinePages(m, startPfn, nrPages, opts);
  countVmEvents(m, rc ? OFFLINE_FAIL : OFFLINE_SUCCESS, 1);
  return rc;
}

/** offline_pages()'s body. */
function doOfflinePages(m: Memmap, startPfn: number, nrPages: number, opts: OfflineOptions): number {
  const report: OfflineReport = opts.report ?? { reason: '', pfn: -1, passes: 0, failures: [] };
  const passesMax = opts.passesMax ?? OFFLINE_PASSES_MAX;
  const end = startPfn + nrPages;
  if (!nrPages || startPfn % m.pageblockNrPages || end % m.blockPages) {
    report.reason = 'unaligned range';
    return -EINVAL;
  }
  for (let pfn = startPfn; pfn < end; pfn++) {
    if (m.flags[pfn]! & PG_hole) {
      report.reason = 'memory holes';
      report.pfn = pfn;
      return -EINVAL;
    }
  }
  const zid = m.pageZone(startPfn);
  for (let pfn = startPfn; pfn < end; pfn++) {
    if (m.pageZone(pfn) !== zid) {
      report.reason = 'multizone range';
      report.pfn = pfn;
      return -EINVAL;
    }
  }
  zonePcpDisable(m, zid);
  lruCacheDisable(m);
  const out = { pfn: -1 };
  let rc = startIsolatePageRange(m, startPfn, end, MIGRATE_MOVABLE, MEMORY_OFFLINE | REPORT_FAILURE, out);
  if (rc) {
    report.reason = 'failure to isolate range';
    report.pfn = out.pfn;
    lruCacheEnable(m);
    zonePcpEnable(m, zid);
    return rc;
  }
  yieldPoint('offline:isolate');
  const arg = { startPfn, nrPages };
  const failed = (e: number, reason: string): number => {
    report.reason = reason;
    undoIsolatePageRange(m, startPfn, end, MIGRATE_MOVABLE);
    memoryNotify(m, MEM_CANCEL_OFFLINE, arg);
    lruCacheEnable(m);
    zonePcpEnable(m, zid);
    return e;
  };
  rc = memoryNotify(m, MEM_GOING_OFFLINE, arg);
  if (rc) return failed(rc, 'notifier failure');
  const stats: MigrateStats = { nrSucceeded: 0, nrFailedPages: 0, nrThpSplit: 0, failures: [] };
  do {
    let pfn = startPfn;
    do {
      if (current().sigpending || report.passes >= passesMax) {
        report.failures = lastFailures(m, stats, startPfn, end);
        return failed(
          -EINTR,
          current().sigpending ? 'signal backoff' : `signal backoff (retry budget of ${passesMax} passes spent)`,
        );
      }
      if (report.passes++) countVmEvents(m, OFFLINE_RETRY, 1);
      yieldPoint('offline:scan'); // cond_resched() before scan_movable_pages()
      // the kworker gets the CPU at that cond_resched(): deferred hugetlb frees reach the buddy (R19)
      if (hugetlbFreesPending(m)) freeHpageWorkfn(m);
      rc = scanMovablePages(m, pfn, end, out);
      pfn = out.pfn;
      if (!rc) {
        doMigrateRange(m, pfn, end, stats);
        yieldPoint('offline:migrate');
      }
    } while (!rc);
    if (rc !== -ENOENT) {
      report.pfn = out.pfn;
      return failed(rc, 'unmovable page');
    }
    rc = dissolveFreeHugetlbFolios(m, startPfn, end);
    if (rc) return failed(rc, 'failure to dissolve huge pages');
    yieldPoint('offline:test');
    rc = testPagesIsolated(m, startPfn, end, MEMORY_OFFLINE, out);
    if (rc) {
      report.pfn = out.pfn;
      stats.failures.push({ pfn: out.pfn, rc, why: 'not free after migration (held off the LRU or re-referenced)' });
    }
  } while (rc);
  const managed = offlineIsolatedPages(m, zid, startPfn, end);
  lruCacheEnable(m);
  zonePcpEnable(m, zid);
  const zb = m.zoneBase(zid);
  m.zones[zb + Z_MANAGED]! -= managed;
  m.zones[zb + Z_PRESENT]! -= nrPages;
  removePfnRangeFromZone(m, zid, startPfn, nrPages);
  initPerZoneWmarkMin(m);
  memoryNotify(m, MEM_OFFLINE, arg);
  report.reason = '';
  return 0;
}

/** The latest reason for every pfn of the range that is still not free. */
function lastFailures(m: Memmap, stats: MigrateStats, start: number, end: number): MigrateFailure[] {
  const seen = new Map<number, MigrateFailure>();
  for (const f of stats.failures)
    if (f.pfn >= start && f.pfn < end && !(m.flags[f.pfn]! & PG_buddy)) seen.set(f.pfn, f);
  return [...seen.values()].sort((a, b) => a.pfn - b.pfn);
}
