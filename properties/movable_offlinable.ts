// movable-offlinable: the promise ZONE_MOVABLE exists for (Documentation/admin-guide/mm/
// memory-hotplug.rst: "ZONE_MOVABLE ... memory can be offlined"; the series' cover letter). Checked on a
// copy of the machine, so the run goes on untouched: every online ZONE_MOVABLE block whose used pages
// fit in the free memory of the rest of the machine must go offline within the pass budget. Blocks with
// CMA pageblocks are exempt: the kernel never offlines them (has_unmovable_pages() refuses CMA); so are
// blocks holding boot memory the kernel reserved (its image and ZERO_PAGE under physical KASLR:
// PageReserved, which has_unmovable_pages() refuses too), and blocks holding a THP with a poisoned page
// that memory failure could not split (do_migrate_range() skips it, 6.12.86).
import {
  Memmap,
  MB_STRIDE,
  MB_STATE,
  MB_ZONE,
  Z_MANAGED,
  MEM_ONLINE,
  PG_buddy,
  PG_pcp,
  PG_reserved,
  PG_head,
  PG_hugetlb,
  PG_has_hwpoisoned,
} from '../mm/memmap';
import { ZONE_MOVABLE, MIGRATE_CMA } from '../mm/mmzone';
import { stateStore, OfflineReport } from '../mm/memory_hotplug';
import { vmItem, vmstatRead, zoneInfo } from '../mm/vmstat';
import { errname } from '../mm/errno';
import { cloneMachine } from './copy';
import type { Checked, Property } from './property';

/** offline_pages() passes a check gives a block. */
const PASSES = 100;
const NR_PIN_ACQUIRED = vmItem('nr_foll_pin_acquired');
const NR_PIN_RELEASED = vmItem('nr_foll_pin_released');

export const movableOfflinable = {
  name: 'movable-offlinable',
  promise:
    'Every online ZONE_MOVABLE block goes offline when the rest of memory has room for its pages, long-term pins held or not.',
  reference:
    'Documentation/admin-guide/mm/memory-hotplug.rst ("ZONE_MOVABLE ... can be offlined"); has_unmovable_pages() exempts CMA and reserved boot memory',
  phases: ['quiescence', 'teardown'],
  costly: true,
  atQuiescence(c) {
    // once, by the last actor to arrive; with no pin held anywhere it is the teardown check's question
    if (!c.last || vmstatRead(c.m, NR_PIN_ACQUIRED) === vmstatRead(c.m, NR_PIN_RELEASED)) return [];
    return movableBlocksOfflinable(c.m, PASSES, c.scratch, c).map((f) => ({
      message: `with every actor idle and its long-term pins held, ${formatOfflinable(f)}`,
      dedupe: `block ${f.block}`,
    }));
  },
  atTeardown: (c) => movableBlocksOfflinable(c.m, PASSES, c.scratch).map(formatOfflinable),
} as const satisfies Property<'movable-offlinable'>;

/** Frames of block b that are in use (not free in the buddy or a per-CPU list). */
export function blockUsedPages(m: Memmap, b: number): number {
  let used = 0;
  const start = b * m.blockPages;
  const end = Math.min(start + m.blockPages, m.nrFrames);
  for (let pfn = start; pfn < end;) {
    const f = m.flags[pfn]!;
    if (f & (PG_buddy | PG_pcp)) {
      pfn += 1 << m.pageOrder(pfn); // a THP on a per-CPU list carries its order too
      continue;
    }
    used++;
    pfn++;
  }
  return used;
}

function hasCmaPageblock(m: Memmap, b: number): boolean {
  const step = 1 << m.pageblockOrder;
  for (let pfn = b * m.blockPages; pfn < (b + 1) * m.blockPages && pfn < m.nrFrames; pfn += step) {
    if (m.getPageblockMigratetype(pfn) === MIGRATE_CMA) return true;
  }
  return false;
}

/** A page of block b the kernel reserved at boot (memblock: the kernel image, ZERO_PAGE). */
function hasReservedPage(m: Memmap, b: number): boolean {
  for (let pfn = b * m.blockPages; pfn < (b + 1) * m.blockPages && pfn < m.nrFrames; pfn++)
    if (m.flags[pfn]! & PG_reserved) return true;
  return false;
}

/** A THP of block b that memory failure marked PG_has_hwpoisoned but could not split. */
function hasHwpoisonedLargeFolio(m: Memmap, b: number): boolean {
  for (let pfn = b * m.blockPages; pfn < (b + 1) * m.blockPages && pfn < m.nrFrames; pfn++)
    if ((m.flags[pfn]! & (PG_head | PG_has_hwpoisoned | PG_hugetlb)) === (PG_head | PG_has_hwpoisoned)) return true;
  return false;
}

/** Free pages of the machine outside block b, above every zone's min watermark. */
function roomOutside(m: Memmap, b: number): number {
  let room = 0;
  for (let z = 0; z < m.nrZones; z++) {
    if (!m.zones[m.zoneBase(z) + Z_MANAGED]) continue;
    const zi = zoneInfo(m, z);
    room += Math.max(0, zi.free - zi.high);
  }
  const start = b * m.blockPages;
  for (let pfn = start; pfn < start + m.blockPages && pfn < m.nrFrames;) {
    if (m.flags[pfn]! & PG_buddy) {
      const n = 1 << m.pageOrder(pfn);
      room -= n;
      pfn += n;
    } else pfn++;
  }
  return room;
}

export interface OfflinableFailure {
  block: number;
  rc: number;
  used: number;
  room: number;
  report: OfflineReport;
}

/**
 * Offline every online ZONE_MOVABLE block, one at a time, each on a fresh copy of the machine (made
 * in scratch, a buffer of the machine's size, when given; one copy serves every block).
 * Returns the blocks that failed although the rest of the machine had room for their pages.
 */
export function movableBlocksOfflinable(
  m: Memmap,
  passesMax = 20,
  scratch?: SharedArrayBuffer,
  tried?: Checked,
): OfflinableFailure[] {
  const out: OfflinableFailure[] = [];
  let buf = scratch;
  for (let b = 0; b < m.nrBlocks; b++) {
    if (m.blocks[b * MB_STRIDE + MB_STATE] !== MEM_ONLINE || m.blocks[b * MB_STRIDE + MB_ZONE] !== ZONE_MOVABLE)
      continue;
    // has_unmovable_pages(): CMA pageblocks fail MIGRATE_MOVABLE isolation (-EBUSY), by design
    if (hasCmaPageblock(m, b)) continue;
    // has_unmovable_pages(): PageReserved (the kernel image under KASLR), by design
    if (hasReservedPage(m, b)) continue;
    // do_migrate_range() skips a large folio holding a poisoned page until memory failure splits it (6.12.86)
    if (hasHwpoisonedLargeFolio(m, b)) continue;
    const used = blockUsedPages(m, b);
    if (!used) continue;
    const room = roomOutside(m, b);
    if (room < used) continue; // nowhere to put its pages: offline may legitimately fail
    const copy = cloneMachine(m, buf);
    buf = copy.sab;
    if (tried) tried.checked++;
    const report: OfflineReport = { reason: '', pfn: -1, passes: 0, failures: [] };
    const rc = stateStore(copy, b, 'offline', { report, passesMax });
    if (rc) out.push({ block: b, rc, used, room, report });
  }
  return out;
}

export function formatOfflinable(f: OfflinableFailure): string {
  const first = f.report.failures[0];
  return (
    `memory${f.block} (ZONE_MOVABLE, ${f.used} pages used, room for ${f.room} elsewhere) failed to go offline: ${errname(f.rc)}, ` +
    `${f.report.reason}${f.report.pfn >= 0 ? ` at pfn ${f.report.pfn}` : ''}${first ? `; pfn ${first.pfn}: ${errname(first.rc)} ${first.why}` : ''}`
  );
}
