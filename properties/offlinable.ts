// movable-blocks-offlinable: the promise ZONE_MOVABLE exists for (Documentation/admin-guide/mm/
// memory-hotplug.rst: "ZONE_MOVABLE ... memory can be offlined"; the series' cover letter). Checked on a
// copy of the machine, so the run goes on untouched: every online ZONE_MOVABLE block whose used pages
// fit in the free memory of the rest of the machine must go offline within the pass budget. Blocks with
// CMA pageblocks are exempt: the kernel never offlines them (has_unmovable_pages() refuses CMA); so are
// blocks holding boot memory the kernel reserved (its image and ZERO_PAGE under physical KASLR:
// PageReserved, which has_unmovable_pages() refuses too).
import { Memmap, MB_STRIDE, MB_STATE, MB_ZONE, Z_MANAGED, MEM_ONLINE } from '../mm/memmap';
import { ZONE_MOVABLE, ZONE_NAMES, MIGRATE_CMA } from '../mm/mmzone';
import { stateStore, OfflineReport } from '../mm/memory_hotplug';
import { zoneInfo } from '../mm/vmstat';
import { errname } from '../mm/errno';
import { PG_buddy, PG_pcp, PG_reserved } from '../mm/memmap';

/** Machines above this size are copied page by page, skipping pages of zeros (cloneMachine()). */
const SPARSE_COPY_MIN_BYTES = 1 << 20;
const COPY_PAGE = 4096;
const COPY_WINDOW = 1 << 30; // a Buffer view spans at most 4 GiB
const ZERO_PAGE = Buffer.alloc(COPY_PAGE);

/**
 * A private copy of the machine, in `into` (a buffer of the same size, e.g. the previous copy) or a new
 * SharedArrayBuffer. A large machine is copied a 4 KiB page at a time and pages that are zero on both
 * sides are skipped: a fresh buffer is zero-filled on demand, so what the machine never wrote (most
 * page tables, shmem slots, the counts of free frames) costs the copy no memory.
 */
export function cloneMachine(m: Memmap, into?: SharedArrayBuffer): Memmap {
  const n = m.sab.byteLength;
  if (into && into.byteLength !== n) throw new Error(`cloneMachine: buffer is ${into.byteLength} bytes, the machine ${n}`);
  const sab = into ?? new SharedArrayBuffer(n);
  if (n < SPARSE_COPY_MIN_BYTES) {
    new Uint8Array(sab).set(new Uint8Array(m.sab));
    return new Memmap(m.shape, sab);
  }
  for (let w = 0; w < n; w += COPY_WINDOW) {
    const len = Math.min(COPY_WINDOW, n - w);
    const src = Buffer.from(m.sab, w, len);
    const dst = Buffer.from(sab, w, len);
    for (let p = 0; p < len; p += COPY_PAGE) {
      const e = Math.min(p + COPY_PAGE, len);
      if (src.compare(ZERO_PAGE, 0, e - p, p, e) !== 0) src.copy(dst, p, p, e);
      else if (into && dst.compare(ZERO_PAGE, 0, e - p, p, e) !== 0) dst.fill(0, p, e);
    }
  }
  return new Memmap(m.shape, sab);
}

/** Frames of block b that are in use (not free in the buddy or a per-CPU list). */
export function blockUsedPages(m: Memmap, b: number): number {
  let used = 0;
  const start = b * m.blockPages;
  const end = Math.min(start + m.blockPages, m.nrFrames);
  for (let pfn = start; pfn < end;) {
    const f = m.flags[pfn]!;
    if (f & PG_buddy) { pfn += 1 << m.pageOrder(pfn); continue; }
    if (!(f & PG_pcp)) used++;
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
  for (let pfn = b * m.blockPages; pfn < (b + 1) * m.blockPages && pfn < m.nrFrames; pfn++) if (m.flags[pfn]! & PG_reserved) return true;
  return false;
}

/** Free pages of the machine outside block b, above every zone's min watermark. */
function roomOutside(m: Memmap, b: number): number {
  let room = 0;
  for (let z = 0; z < ZONE_NAMES.length; z++) {
    if (!m.zones[m.zoneBase(z) + Z_MANAGED]) continue;
    const zi = zoneInfo(m, z);
    room += Math.max(0, zi.free - zi.high);
  }
  const start = b * m.blockPages;
  for (let pfn = start; pfn < start + m.blockPages && pfn < m.nrFrames;) {
    if (m.flags[pfn]! & PG_buddy) { const n = 1 << m.pageOrder(pfn); room -= n; pfn += n; } else pfn++;
  }
  return room;
}

export interface OfflinableFailure { block: number; rc: number; used: number; room: number; report: OfflineReport }

/**
 * Offline every online ZONE_MOVABLE block, one at a time, each on a fresh copy of the machine (made
 * in scratch, a buffer of the machine's size, when given; one copy serves every block).
 * Returns the blocks that failed although the rest of the machine had room for their pages.
 */
export function movableBlocksOfflinable(m: Memmap, passesMax = 20, scratch?: SharedArrayBuffer): OfflinableFailure[] {
  const out: OfflinableFailure[] = [];
  let buf = scratch;
  for (let b = 0; b < m.nrBlocks; b++) {
    if (m.blocks[b * MB_STRIDE + MB_STATE] !== MEM_ONLINE || m.blocks[b * MB_STRIDE + MB_ZONE] !== ZONE_MOVABLE) continue;
    if (hasCmaPageblock(m, b)) continue; // has_unmovable_pages(): CMA pageblocks fail MIGRATE_MOVABLE isolation (-EBUSY), by design
    if (hasReservedPage(m, b)) continue; // has_unmovable_pages(): PageReserved (the kernel image under KASLR), by design
    const used = blockUsedPages(m, b);
    if (!used) continue;
    const room = roomOutside(m, b);
    if (room < used) continue; // nowhere to put its pages: offline may legitimately fail
    const copy = cloneMachine(m, buf);
    buf = copy.sab;
    const report: OfflineReport = { reason: '', pfn: -1, passes: 0, failures: [] };
    const rc = stateStore(copy, b, 'offline', { report, passesMax });
    if (rc) out.push({ block: b, rc, used, room, report });
  }
  return out;
}

export function formatOfflinable(f: OfflinableFailure): string {
  const first = f.report.failures[0];
  return `memory${f.block} (ZONE_MOVABLE, ${f.used} pages used, room for ${f.room} elsewhere) failed to go offline: ${errname(f.rc)}, ` +
    `${f.report.reason}${f.report.pfn >= 0 ? ` at pfn ${f.report.pfn}` : ''}${first ? `; pfn ${first.pfn}: ${errname(first.rc)} ${first.why}` : ''}`;
}
