// Checkers: they only observe the machine and report what is wrong, in the kernel's terms. The
// allocator checker walks every free list and per-CPU list (the kernel's check_free_page()/
// debug_pagealloc spirit) and accounts every managed frame exactly once.

import { Memmap, PG_buddy, PG_pcp, PG_ORDER_SHIFT, Z_MANAGED, Z_NR_FREE, Z_NR_FREE_CMA, PCP_COUNT, PCP_LISTS,
  freeAreaHead, freeAreaCount, pcpBase, NO_ZONE, MM_USERS, PG_zero, PG_head, PG_anon, VMA_ANON_VMA, MM_LOCKED_VM, MM_PINNED_VM, MM_USER_LOCKED_VM } from '../mm/memmap';
import { mmBase } from '../mm/mm_types';
import { findVma } from '../mm/memory';
import { MAX_NR_ZONES, MIGRATE_TYPES, MIGRATE_PCPTYPES, MIGRATE_CMA, MIGRATE_ISOLATE, ZONE_MOVABLE, zoneName,
  MIGRATETYPE_NAMES } from '../mm/mmzone';
import { folioMaybeDmaPinned, entireMapcount } from '../mm/rmap';
import { doMunmap, dupMm, exitMmap } from '../mm/mmap';
import { getUser } from '../mm/memory';
import { pmdIsHuge, pmdIsTable, PFN_MASK, PTE_PRESENT, PTE_MIGRATION } from '../mm/pgtable';

export interface AllocatorCensus {
  /** per zone: frames on buddy free lists (all types), on per-CPU lists, and the remainder (in use) */
  free: number[];
  pcp: number[];
  used: number[];
  /** frame -> 1 if on a free or per-CPU list */
  onList: Uint8Array;
}

/**
 * Walk the free lists and per-CPU lists; returns the census and every violation found:
 * a frame listed twice, a list entry that is not marked free, a wrong order/zone/migratetype,
 * counters that disagree with the lists, free + pcp exceeding managed.
 */
export function checkAllocator(m: Memmap): { census: AllocatorCensus; errors: string[] } {
  const errors: string[] = [];
  const onList = new Uint8Array(m.nrFrames);
  const free = new Array(MAX_NR_ZONES).fill(0);
  const pcp = new Array(MAX_NR_ZONES).fill(0);
  const used = new Array(MAX_NR_ZONES).fill(0);
  const mark = (pfn: number, n: number, what: string): void => {
    for (let p = pfn; p < pfn + n; p++) {
      if (p >= m.nrFrames) { errors.push(`${what}: pfn ${p} beyond the end of memory`); return; }
      if (onList[p]) { errors.push(`${what}: pfn ${p} is on two lists (handed out twice)`); return; }
      onList[p] = 1;
    }
  };
  for (let zid = 0; zid < MAX_NR_ZONES; zid++) {
    let nrFree = 0;
    let nrFreeCma = 0;
    for (let o = 0; o <= m.maxOrder; o++) {
      for (let mt = 0; mt < MIGRATE_TYPES; mt++) {
        let n = 0;
        let prev = -1;
        const where = `zone ${zoneName(zid)} order ${o} ${MIGRATETYPE_NAMES[mt]}`;
        for (let pfn = m.zones[freeAreaHead(m, zid, o, mt)]!; pfn !== -1; pfn = m.mapping[pfn]!) {
          if (n > m.nrFrames) { errors.push(`${where}: free list loops`); break; }
          const f = m.flags[pfn]!;
          if (!(f & PG_buddy)) errors.push(`${where}: pfn ${pfn} listed but not PageBuddy`);
          if (((f >>> PG_ORDER_SHIFT) & 31) !== o) errors.push(`${where}: pfn ${pfn} has buddy_order ${(f >>> PG_ORDER_SHIFT) & 31}`);
          if (m.pageZonenum(pfn) !== zid) errors.push(`${where}: pfn ${pfn} belongs to zone ${m.pageZonenum(pfn)}`);
          if (pfn & ((1 << o) - 1)) errors.push(`${where}: pfn ${pfn} not aligned to its order`);
          if (m.index[pfn] !== prev) errors.push(`${where}: pfn ${pfn} has a broken back link`);
          if (m.refcount[pfn] !== 0) errors.push(`${where}: free pfn ${pfn} has refcount ${m.refcount[pfn]}`);
          // freelist hygiene (6.10+): every pageblock a free block covers has the type of its list
          for (let pb = pfn; pb < pfn + (1 << o); pb += m.pageblockNrPages) {
            const bmt = m.getPageblockMigratetype(pb);
            if (bmt !== mt) { errors.push(`${where}: pfn ${pfn} covers pfn ${pb} of a ${MIGRATETYPE_NAMES[bmt]} pageblock (freelist hygiene)`); break; }
          }
          mark(pfn, 1 << o, where);
          prev = pfn;
          n++;
          if (mt !== MIGRATE_ISOLATE) nrFree += 1 << o;
          if (mt === MIGRATE_CMA) nrFreeCma += 1 << o;
          free[zid] += 1 << o;
        }
        if (n !== m.zones[freeAreaCount(m, zid, o, mt)]) errors.push(`${where}: ${n} blocks listed, nr_free says ${m.zones[freeAreaCount(m, zid, o, mt)]}`);
      }
    }
    const zb = m.zoneBase(zid);
    if (nrFree !== m.zones[zb + Z_NR_FREE]) errors.push(`zone ${zoneName(zid)}: NR_FREE_PAGES ${m.zones[zb + Z_NR_FREE]} but lists hold ${nrFree}`);
    if (nrFreeCma !== m.zones[zb + Z_NR_FREE_CMA]) errors.push(`zone ${zoneName(zid)}: NR_FREE_CMA_PAGES ${m.zones[zb + Z_NR_FREE_CMA]} but lists hold ${nrFreeCma}`);
    for (let cpu = 0; cpu < m.nrCpus; cpu++) {
      const pb = pcpBase(m, cpu, zid);
      let n = 0;
      for (let mt = 0; mt < MIGRATE_PCPTYPES; mt++) {
        for (let pfn = m.pcp[pb + PCP_LISTS + mt]!; pfn !== -1; pfn = m.mapping[pfn]!) {
          if (n > m.nrFrames) { errors.push(`cpu ${cpu} zone ${zoneName(zid)}: pcp list loops`); break; }
          if (!(m.flags[pfn]! & PG_pcp)) errors.push(`cpu ${cpu} zone ${zoneName(zid)}: pfn ${pfn} on pcp list but not marked`);
          if (m.pageZonenum(pfn) !== zid) errors.push(`cpu ${cpu}: pfn ${pfn} of zone ${m.pageZonenum(pfn)} on zone ${zoneName(zid)}'s pcp list`);
          mark(pfn, 1, `cpu ${cpu} pcp`);
          n++;
        }
      }
      if (n !== m.pcp[pb + PCP_COUNT]) errors.push(`cpu ${cpu} zone ${zoneName(zid)}: pcp count ${m.pcp[pb + PCP_COUNT]} but lists hold ${n}`);
      pcp[zid] += n;
    }
    used[zid] = m.zones[zb + Z_MANAGED]! - free[zid] - pcp[zid];
    if (used[zid] < 0) errors.push(`zone ${zoneName(zid)}: free ${free[zid]} + pcp ${pcp[zid]} exceeds managed ${m.zones[zb + Z_MANAGED]}`);
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
 * The long-term pin promise (folio_is_longterm_pinnable()): every frame a FOLL_LONGTERM pin holds is
 * outside ZONE_MOVABLE and CMA pageblocks, and its folio still reads as pinned (folio_maybe_dma_pinned).
 * The shared zero page is pinnable and carries no pin (6.12).
 */
export function longtermPinErrors(m: Memmap, pages: number[], n: number, zeroPfn: number): string[] {
  const errors: string[] = [];
  for (let i = 0; i < n; i++) {
    const pfn = pages[i]!;
    if (pfn === zeroPfn) continue;
    if (m.pageZonenum(pfn) === ZONE_MOVABLE) errors.push(`long-term pin of pfn ${pfn} in ZONE_MOVABLE`);
    if (m.getPageblockMigratetype(pfn) === MIGRATE_CMA) errors.push(`long-term pin of pfn ${pfn} in a CMA pageblock`);
    const head = m.compoundHead(pfn);
    if (!folioMaybeDmaPinned(m, head)) errors.push(`pfn ${pfn} is held by a pin but its folio does not look pinned (refcount ${m.refcount[head]}, pincount ${m.pincount[head]})`);
  }
  return errors;
}

/**
 * The page tables against struct page, as CONFIG_PAGE_TABLE_CHECK and the rmap debug checks see it
 * (mm/page_table_check.c, print_bad_pte()): with nothing in flight, every frame's _mapcount equals the
 * PTEs that map it and a THP's entire mapcount the PMDs that map it, and every mapped anonymous folio
 * is reachable by its rmap walk - it names its VMA's anon_vma and the virtual page it sits at - or
 * migration and offlining could never unmap it.
 */
export function pageTableErrors(m: Memmap): string[] {
  const errors: string[] = [];
  const ptes = new Int32Array(m.nrFrames);
  const pmds = new Int32Array(m.nrFrames);
  const bad = (s: string): void => { if (errors.length < 8) errors.push(s); };
  for (let mm = 0; mm < m.maxMms; mm++) {
    if (!Atomics.load(m.mms, mmBase(mm) + MM_USERS)) continue;
    for (let p = 0; p < m.vaPmds; p++) {
      const pmd = m.pmds[mm * m.vaPmds + p]!;
      const v0 = p << m.pmdOrder;
      if (pmdIsHuge(pmd)) {
        const pfn = pmd & PFN_MASK;
        if (pmd & PTE_PRESENT) pmds[pfn]!++;
        else bad(`mm ${mm} vpn ${v0}: a PMD migration entry for pfn ${pfn} with nothing migrating`);
        rmapLabelErrors(m, mm, v0, pfn, bad);
        continue;
      }
      if (!pmdIsTable(pmd)) continue;
      const base = (pmd & PFN_MASK) << m.pmdOrder;
      for (let k = 0; k < m.ptrsPerTable; k++) {
        const pte = m.ptes[base + k]!;
        if (!(pte & (PTE_PRESENT | PTE_MIGRATION))) continue;
        const pfn = pte & PFN_MASK;
        if (!(pte & PTE_PRESENT)) { bad(`mm ${mm} vpn ${v0 + k}: a migration entry for pfn ${pfn} with nothing migrating`); continue; }
        if (m.flags[pfn]! & PG_zero) continue;
        ptes[pfn]!++;
        rmapLabelErrors(m, mm, v0 + k, pfn, bad);
      }
    }
  }
  for (let pfn = 0; pfn < m.nrFrames; pfn++) {
    if (m.flags[pfn]! & (PG_zero | PG_buddy)) continue;
    if (m.mapcount[pfn] !== ptes[pfn]) bad(`pfn ${pfn}: _mapcount ${m.mapcount[pfn]} but ${ptes[pfn]} PTEs map it`);
    if (m.flags[pfn]! & PG_head && entireMapcount(m, pfn) !== pmds[pfn]) bad(`pfn ${pfn}: entire mapcount ${entireMapcount(m, pfn)} but ${pmds[pfn]} PMDs map it`);
  }
  return errors;
}

/** The VMA mapping vpn must be one an rmap walk for the folio of pfn visits (folio_anon_vma(), folio->index). */
function rmapLabelErrors(m: Memmap, mm: number, vpn: number, pfn: number, bad: (s: string) => void): void {
  const head = m.compoundHead(pfn);
  if (!(m.flags[head]! & PG_anon)) return;
  const vb = findVma(m, mm, vpn);
  if (vb < 0) { bad(`mm ${mm} vpn ${vpn} maps pfn ${pfn} outside any VMA`); return; }
  const av = m.vmas[vb + VMA_ANON_VMA]!;
  if (av !== m.mapping[head]) bad(`mm ${mm} vpn ${vpn} maps pfn ${pfn}, whose anon_vma is ${m.mapping[head]}, in a VMA of anon_vma ${av}: rmap walks cannot find the mapping`);
  else if (m.index[head]! + (pfn - head) !== vpn) bad(`mm ${mm} vpn ${vpn} maps pfn ${pfn}, whose folio index says vpn ${m.index[head]! + (pfn - head)}: rmap walks cannot find the mapping`);
}

/**
 * struct page snapshot for pin-balance checks: refcount, _pincount and _mapcount of every frame that has
 * one not zero (pfns ascending; counts three per pfn). A booted machine has few, so a large one costs little.
 */
export interface PageCounts { pfns: Int32Array; counts: Int32Array }
export function snapshotPageCounts(m: Memmap): PageCounts {
  const pfns: number[] = [];
  const counts: number[] = [];
  for (let pfn = 0; pfn < m.nrFrames; pfn++) {
    const r = m.refcount[pfn]!;
    const p = m.pincount[pfn]!;
    const c = m.mapcount[pfn]!;
    if (r === 0 && p === 0 && c === 0) continue;
    pfns.push(pfn);
    counts.push(r, p, c);
  }
  return { pfns: Int32Array.from(pfns), counts: Int32Array.from(counts) };
}

/**
 * Memlock accounting back at zero once every device is closed: mm->locked_vm (VmLck), mm->pinned_vm
 * (VmPin) and the user's locked_vm of every live process (devices/common.ts charges them; each
 * close must give back what it charged, vfio_dma_do_unmap / ib_umem_release / io_sqe_buffers_unregister).
 */
export function memlockBalanceErrors(m: Memmap): string[] {
  const errors: string[] = [];
  for (let mm = 0; mm < m.maxMms; mm++) {
    const b = mmBase(mm);
    if (!Atomics.load(m.mms, b + MM_USERS)) continue;
    for (const [name, slot] of [['locked_vm', MM_LOCKED_VM], ['pinned_vm', MM_PINNED_VM], ['user locked_vm', MM_USER_LOCKED_VM]] as const) {
      const v = m.mms[b + slot]!;
      if (v !== 0) errors.push(`mm ${mm}: ${name} ${v} pages after every device was closed (must be 0)`);
    }
  }
  return errors;
}

/**
 * Pins balance: NR_FOLL_PIN_ACQUIRED == NR_FOLL_PIN_RELEASED, and every frame's refcount, _pincount and
 * _mapcount are back to what they were (the caller drains the LRU batches and per-CPU lists first).
 */
export function pinBalanceErrors(m: Memmap, acquired: number, released: number, base: PageCounts): string[] {
  const errors: string[] = [];
  if (acquired !== released) errors.push(`nr_foll_pin_acquired ${acquired} != nr_foll_pin_released ${released} (${acquired - released} pins leaked)`);
  let k = 0; // the next snapshot entry
  for (let pfn = 0; pfn < m.nrFrames && errors.length < 8; pfn++) {
    let r0 = 0;
    let p0 = 0;
    let c0 = 0;
    if (k < base.pfns.length && base.pfns[k] === pfn) {
      r0 = base.counts[3 * k]!;
      p0 = base.counts[3 * k + 1]!;
      c0 = base.counts[3 * k + 2]!;
      k++;
    }
    if (m.refcount[pfn] !== r0) errors.push(`pfn ${pfn}: refcount ${m.refcount[pfn]}, was ${r0}`);
    if (m.pincount[pfn] !== p0) errors.push(`pfn ${pfn}: _pincount ${m.pincount[pfn]}, was ${p0}`);
    if (m.mapcount[pfn] !== c0) errors.push(`pfn ${pfn}: _mapcount ${m.mapcount[pfn]}, was ${c0}`);
  }
  return errors;
}

/** A process as the property specs model it: its mappings and the word it last wrote at each vpn. */
export interface ProcModel { mm: number; maps: { vpn: number; pages: number }[]; content: Map<number, number> }

/** Every word each process wrote still reads back; throws naming the first that does not. */
export function checkContent(m: Memmap, procs: (ProcModel | null)[], where: string): void {
  for (const p of procs) {
    if (!p) continue;
    for (const [vpn, want] of p.content) {
      const got = getUser(m, p.mm, vpn);
      if (got !== want) throw new Error(`${where}: mm ${p.mm} vpn ${vpn} reads ${got}, wrote ${want}`);
    }
  }
}

/** munmap() of pages [page, page + pages) of one of p's maps (clamped to it); the model forgets them. */
export function modelMunmap(m: Memmap, p: ProcModel, map: { vpn: number; pages: number }, page: number, pages: number, where: string): void {
  const start = map.vpn + (page % map.pages);
  const n = Math.min(pages, map.vpn + map.pages - start);
  if (doMunmap(m, p.mm, start, n) !== 0) throw new Error(`${where}: munmap failed`);
  forgetUnmapped(p, map, start, n);
}

/** fork() of p into the first free slot (none free: nothing happens); the child sees what p wrote. */
export function modelFork(m: Memmap, procs: (ProcModel | null)[], p: ProcModel): void {
  const slot = procs.findIndex((x) => x === null);
  if (slot < 0) return;
  const c = dupMm(m, p.mm);
  if (c >= 0) procs[slot] = { mm: c, maps: p.maps.map((x) => ({ ...x })), content: new Map(p.content) };
}

/** exit of the process in slot i, if any. */
export function modelExit(m: Memmap, procs: (ProcModel | null)[], i: number): void {
  const p = procs[i];
  if (p) { exitMmap(m, p.mm); procs[i] = null; }
}

/** A process model's bookkeeping after munmap of [start, start + n) inside one of its maps: forget the pages, split the map. */
export function forgetUnmapped(p: { maps: { vpn: number; pages: number }[]; content: Map<number, unknown> }, map: { vpn: number; pages: number },
  start: number, n: number): void {
  for (let v = start; v < start + n; v++) p.content.delete(v);
  p.maps = p.maps.flatMap((mp) => (mp !== map ? [mp] : [
    ...(start > mp.vpn ? [{ vpn: mp.vpn, pages: start - mp.vpn }] : []),
    ...(start + n < mp.vpn + mp.pages ? [{ vpn: start + n, pages: mp.vpn + mp.pages - start - n }] : []),
  ]));
}
