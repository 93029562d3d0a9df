// Compact per-step summaries of the machine for the HTML report's memory map (docs/report.md): frame
// classes per frame on a small machine, class counts per pageblock or memory block on a large one,
// pageblock migratetypes, zone spans and memory block states. Taken by the running actor after each op
// of a deterministic replay (one actor runs: the machine is still), and by the main thread at boot and
// around the end-of-run checks. Reads the machine only; imports only mm/ (it runs in worker threads).
import { Memmap, PG_hole, PG_buddy, PG_pcp, PG_hugetlb, PG_anon, PG_head, PG_reserved, PG_zero } from '../../mm/memmap';
import { MB_STATE, MB_STRIDE, MEM_OFFLINE, PG_offline } from '../../mm/memmap';
import { Z_START_PFN, Z_SPANNED, Z_PRESENT } from '../../mm/memmap';
import { MAX_NR_ZONES, ZONE_NAMES, ZONE_MOVABLE, MIGRATE_CMA, MIGRATE_ISOLATE, MIGRATE_TYPES } from '../../mm/mmzone';
import { folioMaybeDmaPinned } from '../../mm/rmap';
import { blockPresent, stateShow, validZonesShow } from '../../mm/memory_hotplug';

/** What a frame holds, by index; 'pinned' is a frame of a folio that holds a pin (folio_maybe_dma_pinned()). */
export const FRAME_CLASSES = ['hole', 'offline', 'free', 'anon', 'thp', 'hugetlb', 'kernel', 'pinned'] as const;
export const C_HOLE = 0;
export const C_OFFLINE = 1;
export const C_FREE = 2;
export const C_ANON = 3;
export const C_THP = 4;
export const C_HUGETLB = 5;
export const C_KERNEL = 6;
export const C_PINNED = 7;
/** aggregate units add one count: pinned frames in ZONE_MOVABLE, a CMA or an isolated pageblock */
export const C_BAD = 8;
export const NR_COUNTS = 9;

/** Machines up to this many frames are shown frame by frame; larger ones per pageblock, then per block. */
export const FRAMES_SHOWN_MAX = 4096;
const BAD_LISTED_MAX = 64;

export interface MachineSnapshot {
  /** trace position: the snapshot shows the machine right after this point */
  seq: number;
  /** actor index (-1: the main thread) */
  actor: number;
  /** what had just happened ("pin rc=1", "boot", "after teardown") */
  label: string;
  zones: { name: string; start: number; spanned: number; present: number }[];
  /** memory blocks as runs of identical ones: first block, count, state (online/offline/...), valid_zones */
  blocks: { b: number; n: number; state: string; valid: string }[];
  /** number of memory blocks and frames a block */
  nrBlocks: number;
  blockPages: number;
  /** frames per unit: 1, pageblock_nr_pages or the block size */
  unit: number;
  /** pageblock_nr_pages */
  pb: number;
  /** unit 1: the class of each frame; else NR_COUNTS counts per unit */
  cls: number[];
  /** migratetype of each pageblock (unit <= pageblock); per unit the notable one (Isolate, CMA, else majority) */
  mt: number[];
  /** pinned frames in ZONE_MOVABLE, a CMA or an isolated pageblock (the first few) */
  bad: number[];
}

/**
 * A pin in a CMA pageblock (cma_alloc() cannot have it back) or an isolated one (the cma_alloc() or
 * offline that isolated it cannot finish): folio_is_longterm_pinnable() refuses both (v5.19+).
 */
const offendingMt = (mt: number): boolean => mt === MIGRATE_CMA || mt === MIGRATE_ISOLATE;

/** The class of one frame. */
export function frameClass(m: Memmap, pfn: number, offline: boolean): number {
  const f = m.flags[pfn]!;
  if (f & PG_hole) return C_HOLE;
  if (offline || f & PG_offline) return C_OFFLINE;
  if (f & (PG_buddy | PG_pcp)) return C_FREE;
  const head = m.compoundHead(pfn);
  const hf = m.flags[head]!;
  if (m.refcount[head]! === 0) return C_FREE;
  if (folioMaybeDmaPinned(m, head) && !(hf & PG_zero)) return C_PINNED;
  if (hf & PG_hugetlb) return C_HUGETLB;
  if (hf & PG_anon) return hf & PG_head ? C_THP : C_ANON;
  if (hf & (PG_reserved | PG_zero)) return C_KERNEL;
  return C_KERNEL; // page tables, kernel allocations, shmem: not the process's anonymous memory
}

/** The unit a machine is summarised by (frames per unit). */
export function snapshotUnit(m: Memmap): number {
  if (m.nrFrames <= FRAMES_SHOWN_MAX) return 1;
  if (m.nrFrames / m.pageblockNrPages <= FRAMES_SHOWN_MAX) return m.pageblockNrPages;
  let unit = m.blockPages;
  while (m.nrFrames / unit > FRAMES_SHOWN_MAX) unit *= 2;
  return unit;
}

/** Take a snapshot of the machine. */
export function takeSnapshot(m: Memmap, seq: number, actor: number, label: string): MachineSnapshot {
  const zones: MachineSnapshot['zones'] = [];
  for (let z = 0; z < m.nrZones; z++) {
    const b = m.zoneBase(z);
    const spanned = m.zones[b + Z_SPANNED]!;
    const name =
      z < MAX_NR_ZONES ? ZONE_NAMES[z]! : `Node ${Math.floor(z / MAX_NR_ZONES)} ${ZONE_NAMES[z % MAX_NR_ZONES]}`;
    if (spanned) zones.push({ name, start: m.zones[b + Z_START_PFN]!, spanned, present: m.zones[b + Z_PRESENT]! });
  }
  const blocks: MachineSnapshot['blocks'] = [];
  for (let b = 0; b < m.nrBlocks; b++) {
    if (!blockPresent(m, b)) continue;
    const state = stateShow(m, b);
    const valid = validZonesShow(m, b);
    const last = blocks[blocks.length - 1];
    if (last && last.b + last.n === b && last.state === state && last.valid === valid) last.n++;
    else blocks.push({ b, n: 1, state, valid });
  }
  const unit = snapshotUnit(m);
  const cls: number[] = [];
  const bad: number[] = [];
  const pb = m.pageblockNrPages;
  for (let pfn = 0; pfn < m.nrFrames; pfn++) {
    const blk = m.blocks[m.blockIndex(pfn) * MB_STRIDE + MB_STATE]!;
    const c = frameClass(m, pfn, (blk & MEM_OFFLINE) !== 0);
    const isBad =
      c === C_PINNED && (m.pageZonenum(pfn) === ZONE_MOVABLE || offendingMt(m.getPageblockMigratetype(pfn)));
    if (isBad && bad.length < BAD_LISTED_MAX) bad.push(pfn);
    if (unit === 1) cls.push(c);
    else {
      const u = Math.floor(pfn / unit) * NR_COUNTS;
      while (cls.length < u + NR_COUNTS) cls.push(0);
      cls[u + c]!++;
      if (isBad) cls[u + C_BAD]!++;
    }
  }
  const mt: number[] = [];
  if (unit <= pb) for (let p = 0; p < m.nrFrames; p += pb) mt.push(m.getPageblockMigratetype(p));
  else {
    for (let u = 0; u < m.nrFrames; u += unit) {
      const n = new Array<number>(MIGRATE_TYPES).fill(0);
      for (let p = u; p < Math.min(u + unit, m.nrFrames); p += pb) n[m.getPageblockMigratetype(p)]!++;
      mt.push(n[MIGRATE_ISOLATE] ? MIGRATE_ISOLATE : n[MIGRATE_CMA] ? MIGRATE_CMA : n.indexOf(Math.max(...n)));
    }
  }
  return { seq, actor, label, zones, blocks, nrBlocks: m.nrBlocks, blockPages: m.blockPages, unit, pb, cls, mt, bad };
}

/** Snapshots kept per actor: past this, every other one is dropped and only every other op is taken. */
export const SNAPSHOTS_PER_ACTOR_MAX = 96;

/** A bounded list of snapshots: when full, every other is dropped and the stride doubles. */
export class SnapshotLog {
  readonly list: MachineSnapshot[] = [];
  private stride = 1;
  private n = 0;
  constructor(private readonly max = SNAPSHOTS_PER_ACTOR_MAX) {}
  take(m: Memmap, seq: number, actor: number, label: string): void {
    if (this.n++ % this.stride) return;
    if (this.list.length >= this.max) {
      for (let k = this.list.length - 1; k >= 0; k -= 2) this.list.splice(k, 1);
      this.stride *= 2;
    }
    this.list.push(takeSnapshot(m, seq, actor, label));
  }
}
