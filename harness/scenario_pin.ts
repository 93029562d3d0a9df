// Scenario steps that pin, hold kernel memory and poke the allocator: pin/unpin (pin_user_pages*),
// kalloc/kfree (GFP_KERNEL pages), isolate/putback (a folio off the LRU), fragment (a zone left with
// only order-0 free pages), inject (a fault point), vmstat, pin_max, and isolate_range/undo_isolate (a
// memory block held MIGRATE_ISOLATE as mid cma_alloc/offline). See docs/scenarios.md.
import { z } from 'zod';
import {
  ScenarioContext,
  Step,
  StepKind,
  fail,
  sizePages,
  addrVpn,
  proc,
  hex,
  vmstatItems,
  FIELD as F,
} from './scenario_ctx';
import { Memmap, PG_zero, PG_hwpoison, PG_has_hwpoisoned, PG_lru } from '../mm/memmap';
import { memoryFailure } from '../mm/memory_failure';
import { folioMapped } from '../mm/rmap';
import { ZONE_NAMES, MIGRATE_CMA, MIGRATE_ISOLATE, MIGRATE_MOVABLE } from '../mm/mmzone';
import { startIsolatePageRange, undoIsolatePageRange } from '../mm/page_isolation';
import { blockPresent, blockStartPfn } from '../mm/memory_hotplug';
import {
  pinUserPages,
  pinUserPagesFast,
  unpinUserPagesDirtyLock,
  newPinReport,
  FOLL_WRITE,
  FOLL_LONGTERM,
  PinReport,
} from '../mm/gup';
import { allocPages, freePages, NO_PAGE } from '../mm/page_alloc';
import {
  GFP_KERNEL,
  GFP_HIGHUSER_MOVABLE,
  __GFP_NOWARN,
  __GFP_NORETRY,
  __GFP_THISNODE,
  __GFP_MEMALLOC,
} from '../mm/gfp';
import { isolateFolio, putbackMovablePages } from '../mm/migrate';
import { followPte } from '../mm/memory';
import { ptlLock, ptlUnlock } from '../mm/mm_types';
import { vmstatSnapshot, VM_ITEMS } from '../mm/vmstat';
import { errname, ENOMEM, EFAULT, EBUSY, ENOENT, ESRCH } from '../mm/errno';
import { closeProcDevices } from './scenario_dev';
import { pinChunks } from './pin_fraction';
import { allocContigRange, freeContigRange, ContigReport } from '../mm/page_alloc_contig';
import { freeHpageWorkfn } from '../mm/hugetlb';
import { KBuf, kvfree } from '../mm/slab';
import { imuAlloc } from '../devices/io_uring_fixed';
import { vaPages } from '../mm/pgtable';
import { holdTransientRef, transientRefsHeld } from '../mm/huge_memory';

/** "pfn P hwpoison, mapped 1, off the LRU": what memory failure left of a frame. */
export function poisonState(m: Memmap, pfn: number): string {
  const head = m.compoundHead(pfn);
  const f = m.flags[head]!;
  const parts = [`pfn ${pfn}${m.flags[pfn]! & PG_hwpoison ? ' hwpoison' : ''}`];
  if (head !== pfn) parts.push(`in a THP at ${head}${f & PG_has_hwpoisoned ? ' (has_hwpoisoned)' : ''}`);
  parts.push(folioMapped(m, head) ? 'mapped' : 'unmapped', f & PG_lru ? 'on the LRU' : 'off the LRU');
  return parts.join(', ');
}

function holdName(ctx: ScenarioContext, s: Step, field = 'as'): string {
  const v = s[field];
  if (typeof v !== 'string' || !/^[A-Za-z_][A-Za-z0-9_]*$/.test(v))
    fail(field, `needs '${field}:' naming what the step holds`);
  if (ctx.held.has(v)) fail(field, `'${v}' is already held (unpin or free it first)`);
  ctx.released.delete(v);
  return v;
}

function held(ctx: ScenarioContext, s: Step, field: string, kind: string) {
  const name = s[field];
  const h = typeof name === 'string' ? ctx.held.get(name) : undefined;
  if (!h || h.kind !== kind) fail(field, `no ${kind} named ${JSON.stringify(name)}`);
  ctx.held.delete(name as string);
  return h;
}

/** "Normal 12, Movable 4": the zones of a list of frames. */
export function zonesOf(m: Memmap, pages: number[], n = pages.length): string {
  const byZone = new Array(ZONE_NAMES.length).fill(0);
  let unset = 0; // entries the call claims but never filled in (R9's over-count)
  for (let i = 0; i < n; i++)
    if (pages[i]! < 0) unset++;
    else byZone[m.pageZonenum(pages[i]!)]++;
  const zones = byZone.map((c, z) => (c ? `${ZONE_NAMES[z]} ${c}` : ''));
  if (unset) zones.push(`${unset} not filled in`);
  return zones.filter(Boolean).join(', ') || 'none';
}

function pinDetail(m: Memmap, rc: number, pages: number[], r: PinReport): string {
  const parts = [`outcome ${r.outcome}`];
  if (rc > 0) parts.push(`${rc} pinned (${zonesOf(m, pages, rc)})`);
  if (rc > 0) {
    // pins left in CMA or isolated pageblocks (R8, R12) are invisible in the zone counts
    let cma = 0;
    let iso = 0;
    for (let i = 0; i < rc; i++) {
      if (pages[i]! < 0) continue;
      const mt = m.getPageblockMigratetype(pages[i]!);
      if (mt === MIGRATE_CMA) cma++;
      else if (mt === MIGRATE_ISOLATE) iso++;
    }
    if (cma) parts.push(`${cma} in CMA pageblocks`);
    if (iso) parts.push(`${iso} in isolated pageblocks`);
  }
  if (r.migrated) parts.push(`${r.migrated} migrated`);
  if (r.thpSplit) parts.push(`${r.thpSplit} THP split`);
  if (r.retries) parts.push(`${r.retries} retries`);
  if (r.drains) parts.push(`${r.drains} LRU drains`); // lru_add_drain{,_all}() from collect (R21)
  for (const f of r.failures.slice(0, 3)) parts.push(`pfn ${f.pfn}: ${errname(f.rc)} ${f.why}`);
  return parts.join('; ');
}

/** Free pages of one order-0 GFP mask, allocated until the allocator says no. */
function allocUntilFail(m: Memmap, gfp: number): number[] {
  const got: number[] = [];
  for (;;) {
    const pfn = allocPages(m, gfp | __GFP_NOWARN | __GFP_NORETRY, 0);
    if (pfn === NO_PAGE) break;
    got.push(pfn);
  }
  return got;
}

/** vmstat items: /proc/vmstat names, space- or comma-separated. */
const VMSTAT_ITEMS = z
  .string({ errorMap: () => ({ message: 'expected /proc/vmstat names separated by spaces or commas' }) })
  .superRefine((v, ctx) => {
    for (const it of v.split(/[ ,]+/).filter(Boolean)) {
      if (!(VM_ITEMS as readonly string[]).includes(it))
        ctx.addIssue({ code: 'custom', message: `unknown vmstat item '${it}'` });
    }
  });

/** The memory block named by s.block, a MOVABLE or CMA range; with uniform (op names the caller), all its
 * pageblocks must share that type. */
function contigBlock(
  ctx: ScenarioContext,
  s: Step,
  uniform?: string,
): { b: number; start: number; end: number; mt: number } {
  const b = s.block as number;
  if (!Number.isInteger(b) || !blockPresent(ctx.m, b)) fail('block', `no memory block ${JSON.stringify(b)}`);
  const start = blockStartPfn(ctx.m, b);
  const end = start + ctx.m.blockPages;
  const mt = ctx.m.getPageblockMigratetype(start);
  for (let pfn = start; uniform && pfn < end; pfn += ctx.m.pageblockNrPages) {
    if (ctx.m.getPageblockMigratetype(pfn) !== mt)
      fail('block', `memory${b} mixes pageblock types; ${uniform} needs one`);
  }
  if (mt !== MIGRATE_CMA && mt !== MIGRATE_MOVABLE) fail('block', `memory${b} is not a movable or CMA range`);
  return { b, start, end, mt };
}

/** The frame the PTE at s.addr of s.proc maps (follow_page_pte()), or the step's -EFAULT: past TASK_SIZE,
 * not present, a migration entry, or (unless zeroOk) the zero page. */
function mappedFrame(
  ctx: ScenarioContext,
  s: Step,
  op: string,
  zeroOk: boolean,
): { pfn: number } | { rc: number; detail: string } {
  const mm = proc(ctx, op, s);
  if (mm < 0) return { rc: mm, detail: '' };
  const vpn = addrVpn(ctx, 'addr', s.addr);
  if (vpn >= vaPages(ctx.m)) return { rc: -EFAULT, detail: `${hex(vpn)} is past TASK_SIZE` };
  ptlLock(ctx.m, mm);
  const t = followPte(ctx.m, mm, vpn);
  ptlUnlock(ctx.m, mm);
  if (!t || t.migrating || (!zeroOk && ctx.m.flags[t.pfn]! & PG_zero))
    return { rc: -EFAULT, detail: `${hex(vpn)} not present` };
  return { pfn: t.pfn };
}

export const PIN_STEPS: Record<string, StepKind> = {
  pin: {
    fields: { proc: F.proc, addr: F.addr, len: F.size, as: F.name, write: F.bool, longterm: F.bool, fast: F.bool },
    required: ['proc', 'addr', 'len', 'as'],
    run(ctx, s) {
      const mm = proc(ctx, 'pin', s);
      const name = holdName(ctx, s);
      if (mm < 0) return { rc: mm, detail: `${s.proc} was killed` };
      const vpn = addrVpn(ctx, 'addr', s.addr);
      const n = sizePages('len', s.len);
      const flags = (s.write === false ? 0 : FOLL_WRITE) | (s.longterm === false ? 0 : FOLL_LONGTERM);
      const report = newPinReport();
      let rc: number;
      let pages: number[];
      if (s.fast !== false) {
        // pin_user_pages_fast(): -EFAULT for a range past TASK_SIZE before it looks at a page
        pages = new Array(Math.max(0, Math.min(n, vaPages(ctx.m) - vpn))).fill(-1);
        rc = pinUserPagesFast(ctx.m, mm, vpn, n, flags, pages, report);
      } else {
        // pin_user_pages(): __get_user_pages() stops at the first address without a VMA, at TASK_SIZE at
        // the latest, so the caller's array never needs more entries than that
        const room = Math.max(0, Math.min(n, vaPages(ctx.m) - vpn));
        pages = new Array(room).fill(-1);
        rc = room ? pinUserPages(ctx.m, mm, vpn, room, flags, pages, report) : -EFAULT;
        if (!room) report.outcome = 'error';
      }
      // the process's: an io_uring fixed buffer on the kernel, released with its ring when the process
      // exits; a long-term one holds the buffer's io_mapped_ubuf as the kernel's does (-ENOMEM without it)
      let kmem: KBuf[] | undefined;
      if (rc > 0 && flags & FOLL_LONGTERM) {
        const imu = imuAlloc(ctx.m, rc);
        if (imu) kmem = [imu];
        else {
          unpinUserPagesDirtyLock(ctx.m, pages, rc, false);
          rc = -ENOMEM;
        }
      }
      if (rc > 0)
        ctx.held.set(name, {
          kind: 'pin',
          pages: pages.slice(0, rc),
          n: rc,
          flags,
          proc: s.proc as string,
          at: ctx.step,
          kmem,
        });
      return { rc, detail: `${hex(vpn)} ${n} pages: ${pinDetail(ctx.m, rc, pages, report)}` };
    },
  },
  unpin: {
    // if_pinned: true skips a name whose pin step failed (a scenario run under kernels where one pins and
    // one does not, scenarios/bugs/); without it an unknown name is an error
    fields: { pin: F.name, dirty: F.bool, if_pinned: F.bool },
    required: ['pin'],
    run(ctx, s) {
      // a pin its process took with it (exit, OOM kill): what the probe answers on the kernel, where the
      // buffers went with the ring - a pin step the process died in left nothing (-ENOENT, or nothing to
      // do with if_pinned); a process that died later is gone (-ESRCH)
      const gone = typeof s.pin === 'string' ? ctx.released.get(s.pin) : undefined;
      if (gone && !ctx.held.has(s.pin as string)) {
        if (!gone.inStep) return { rc: -ESRCH, detail: '' };
        if (s.if_pinned === true)
          return { rc: 0, detail: 'not pinned: its process died and io_uring released the buffers with it' };
        return { rc: -ENOENT, detail: '' };
      }
      if (s.if_pinned === true && typeof s.pin === 'string' && ctx.held.get(s.pin)?.kind !== 'pin')
        return { rc: 0, detail: 'not pinned' };
      const h = held(ctx, s, 'pin', 'pin');
      unpinUserPagesDirtyLock(ctx.m, h.pages, h.n, s.dirty !== false && ((h.flags ?? 0) & FOLL_WRITE) !== 0);
      for (const b of h.kmem ?? []) kvfree(ctx.m, b);
      return { rc: 0, detail: `${h.n} pages unpinned` };
    },
  },
  kalloc: {
    fields: { size: F.size, as: F.name, movable: F.bool },
    required: ['size', 'as'],
    run(ctx, s) {
      const name = holdName(ctx, s);
      const n = sizePages('size', s.size);
      const gfp = s.movable === true ? GFP_HIGHUSER_MOVABLE : GFP_KERNEL;
      const pages: number[] = [];
      for (let i = 0; i < n; i++) {
        const pfn = allocPages(ctx.m, gfp, 0);
        if (pfn === NO_PAGE) break;
        pages.push(pfn);
      }
      ctx.held.set(name, { kind: 'kalloc', pages, n: pages.length });
      const rc = pages.length === n ? n : -ENOMEM;
      return { rc, detail: `${pages.length}/${n} pages (${zonesOf(ctx.m, pages)})` };
    },
  },
  kfree: {
    fields: { as: F.name },
    required: ['as'],
    run(ctx, s) {
      const h = held(ctx, s, 'as', 'kalloc');
      for (const pfn of h.pages) freePages(ctx.m, pfn, 0);
      return { rc: 0, detail: `${h.n} pages freed` };
    },
  },
  isolate: {
    fields: { proc: F.proc, addr: F.addr, as: F.name },
    required: ['proc', 'addr', 'as'],
    run(ctx, s) {
      const name = holdName(ctx, s);
      const f = mappedFrame(ctx, s, 'isolate', false);
      if ('rc' in f) return f;
      const head = ctx.m.compoundHead(f.pfn);
      if (!isolateFolio(ctx.m, head)) return { rc: -EBUSY, detail: `pfn ${head} not on the LRU` };
      ctx.held.set(name, { kind: 'isolated', pages: [head], n: 1 });
      return { rc: 0, detail: `pfn ${head} isolated from the LRU` };
    },
  },
  // memory_failure: a hardware memory error at the frame behind addr (a machine check reported with
  // memory_failure(pfn, 0), not madvise(MADV_HWPOISON)'s MF_COUNT_INCREASED), R20
  memory_failure: {
    fields: { proc: F.proc, addr: F.addr },
    required: ['proc', 'addr'],
    run(ctx, s) {
      const f = mappedFrame(ctx, s, 'memory_failure', true);
      if ('rc' in f) return f;
      const rc = memoryFailure(ctx.m, f.pfn, 0);
      return { rc, detail: poisonState(ctx.m, f.pfn) };
    },
  },
  // hold_ref: a transient extra reference on the folio at addr (folio_try_get() elsewhere, e.g. drop_caches),
  // let go after `passes` failed splits of that folio (R11: can_split_folio() fails with -EAGAIN meanwhile)
  hold_ref: {
    fields: { proc: F.proc, addr: F.addr, passes: F.int(1, 100, 'a number of failed splits') },
    required: ['proc', 'addr', 'passes'],
    run(ctx, s) {
      const f = mappedFrame(ctx, s, 'hold_ref', false);
      if ('rc' in f) return f;
      const head = ctx.m.compoundHead(f.pfn);
      if (transientRefsHeld(ctx.m).some(([h]) => h === head))
        return { rc: -EBUSY, detail: `pfn ${head} already holds a transient reference` };
      const passes = s.passes as number;
      holdTransientRef(ctx.m, head, passes);
      return { rc: 0, detail: `pfn ${head} referenced until ${passes} split${passes > 1 ? 's' : ''} of it fail` };
    },
  },
  putback: {
    fields: { as: F.name },
    required: ['as'],
    run(ctx, s) {
      const h = held(ctx, s, 'as', 'isolated');
      const pfn = h.pages[0];
      putbackMovablePages(ctx.m, h.pages); // empties the list it is given
      return { rc: 0, detail: `pfn ${pfn} back on the LRU` };
    },
  },
  fragment: {
    fields: { zone: F.enum(ZONE_NAMES), as: F.name },
    required: ['zone', 'as'],
    run(ctx, s) {
      const name = holdName(ctx, s);
      const z = ZONE_NAMES.indexOf(String(s.zone) as (typeof ZONE_NAMES)[number]);
      if (z < 0) fail('zone', `'${String(s.zone)}' is not one of ${ZONE_NAMES.join(', ')}`);
      // take every free page down to the reserves (__GFP_MEMALLOC), then free every other one of the zone
      const gfp = z === 3 ? GFP_HIGHUSER_MOVABLE : GFP_KERNEL;
      const all = allocUntilFail(ctx.m, gfp | __GFP_THISNODE | __GFP_MEMALLOC);
      const keep: number[] = [];
      const other: number[] = [];
      all.sort((a, b) => a - b);
      for (const pfn of all) {
        if (ctx.m.pageZonenum(pfn) === z && pfn % 2 === 0) keep.push(pfn);
        else other.push(pfn);
      }
      for (const pfn of other) freePages(ctx.m, pfn, 0);
      ctx.held.set(name, { kind: 'kalloc', pages: keep, n: keep.length });
      return { rc: 0, detail: `${keep.length} even pfns of ${ZONE_NAMES[z]} held; its free memory is order-0 only` };
    },
  },
  inject: {
    fields: { fault: F.enum(['pofs_alloc']), on: F.bool },
    required: ['fault'],
    run(ctx, s) {
      if (s.fault !== 'pofs_alloc') fail('fault', `'${String(s.fault)}' is not a fault point (pofs_alloc)`);
      if (s.on !== false) ctx.faults.add('gup:pofs-alloc');
      else ctx.faults.delete('gup:pofs-alloc');
      return { rc: 0, detail: `pofs_alloc ${ctx.faults.has('gup:pofs-alloc') ? 'fails' : 'succeeds'}` };
    },
  },
  vmstat: {
    fields: { items: VMSTAT_ITEMS },
    required: [],
    run(ctx, s) {
      const snap = vmstatSnapshot(ctx.m);
      const items = vmstatItems(s.items);
      for (const it of items)
        if (!(VM_ITEMS as readonly string[]).includes(it)) fail('items', `unknown vmstat item '${it}'`);
      return { rc: 0, detail: items.map((it) => `${it} ${snap[it as keyof typeof snap]}`).join('; ') };
    },
  },
  // isolate_range / undo_isolate: start_isolate_page_range() over a memory block and its undo, the
  // state cma_alloc() (alloc_contig_range) or offline_pages() leaves a range in while it migrates.
  // Lets a scenario pin while that is "in progress" (R8: an isolated CMA pageblock counted as pinnable).
  isolate_range: {
    fields: { block: F.block, as: F.name },
    required: ['block', 'as'],
    run(ctx, s) {
      const name = holdName(ctx, s);
      const { b, start, end, mt } = contigBlock(ctx, s, 'isolate_range');
      const out = { pfn: -1 };
      const rc = startIsolatePageRange(ctx.m, start, end, mt, 0, out);
      if (rc) return { rc, detail: `memory${b}: unmovable or isolated page at pfn ${out.pfn}` };
      ctx.held.set(name, { kind: 'isolated_range', pages: [start, end, mt], n: end - start });
      return {
        rc: 0,
        detail: `memory${b} (pfn ${start}-${end - 1}) ${mt === MIGRATE_CMA ? 'CMA' : 'movable'} pageblocks isolated`,
      };
    },
  },
  undo_isolate: {
    fields: { as: F.name },
    required: ['as'],
    run(ctx, s) {
      const h = held(ctx, s, 'as', 'isolated_range');
      const [start, end, mt] = h.pages as [number, number, number];
      undoIsolatePageRange(ctx.m, start, end, mt);
      return { rc: 0, detail: `pfn ${start}-${end - 1} back to ${mt === MIGRATE_CMA ? 'CMA' : 'movable'}` };
    },
  },
  // alloc_contig_range / free_contig_range: alloc_contig_range() over a memory block of MOVABLE or CMA
  // pageblocks (what cma_alloc() and alloc_contig_pages() do): in-use folios migrate out, then every
  // page must be free in the buddy (test_pages_isolated(): R19's deferred hugetlb frees).
  alloc_contig_range: {
    fields: { block: F.block, as: F.name },
    required: ['block', 'as'],
    run(ctx, s) {
      const name = holdName(ctx, s);
      const { b, start, end, mt } = contigBlock(ctx, s);
      const report: ContigReport = { busyPfn: -1, migrated: 0 };
      const rc = allocContigRange(ctx.m, start, end, mt, report);
      const moved = `${report.migrated} migrated`;
      if (rc) return { rc, detail: `memory${b}: ${moved}; ${errname(rc)} at pfn ${report.busyPfn}` };
      ctx.held.set(name, { kind: 'contig_range', pages: [start, end], n: end - start });
      return { rc: 0, detail: `memory${b} (pfn ${start}-${end - 1}) allocated; ${moved}` };
    },
  },
  free_contig_range: {
    fields: { as: F.name },
    required: ['as'],
    run(ctx, s) {
      const h = held(ctx, s, 'as', 'contig_range');
      const [start, end] = h.pages as [number, number];
      freeContigRange(ctx.m, start, end - start);
      return { rc: 0, detail: `pfn ${start}-${end - 1} freed` };
    },
  },
  // kworker: the workqueue runs free_hpage_workfn() (hugetlb folios whose free was deferred, R19)
  kworker: {
    fields: {},
    required: [],
    run(ctx) {
      const n = freeHpageWorkfn(ctx.m);
      return { rc: 0, detail: `free_hpage_work: ${n} hugetlb folios freed to the buddy` };
    },
  },
  pin_max: {
    fields: { proc: F.proc, addr: F.addr, len: F.size, chunk: F.size, as: F.name },
    required: ['proc', 'addr', 'len', 'chunk', 'as'],
    run(ctx, s) {
      // how much of the range a long-term pinner can hold (pinChunks)
      const mm = proc(ctx, 'pin_max', s);
      const name = holdName(ctx, s);
      if (mm < 0) return { rc: mm, detail: '' };
      const vpn = addrVpn(ctx, 'addr', s.addr);
      const n = sizePages('len', s.len);
      const chunk = sizePages('chunk', s.chunk);
      // past TASK_SIZE nothing can be pinned: the chunk there fails with -EFAULT (pin_user_pages)
      const room = Math.max(0, Math.min(n, vaPages(ctx.m) - vpn));
      const {
        pages: all,
        kmem,
        last,
      } = room ? pinChunks(ctx.m, mm, vpn, room, Math.min(chunk, room)) : { pages: [], kmem: [], last: -EFAULT };
      const end = room < n && last === 'all' ? -EFAULT : last;
      ctx.held.set(name, {
        kind: 'pin',
        pages: all,
        n: all.length,
        flags: FOLL_WRITE | FOLL_LONGTERM,
        proc: s.proc as string,
        at: ctx.step,
        kmem,
      });
      const pct = ((100 * all.length) / n).toFixed(1);
      const then = end !== 'all' && end < 0 ? `, then ${errname(end)}` : '';
      return { rc: all.length, detail: `${all.length}/${n} pages pinned (${pct}%; ${zonesOf(ctx.m, all)})${then}` };
    },
  },
};

/**
 * A process leaves (exit, OOM kill): its files close (exit_files()), and with them what they pinned - an
 * io_uring ring's buffers (io_ring_exit_work() -> io_sqe_buffers_unregister()), a device's container or
 * context (the model's teardown). Kernel allocations (kalloc) and isolated folios are the kernel's: they
 * stay. Returns the pages released.
 */
export function releaseProcess(ctx: ScenarioContext, procName: string): number {
  let n = closeProcDevices(ctx, procName);
  for (const [name, h] of ctx.held) {
    if (h.kind !== 'pin' || h.proc !== procName) continue;
    ctx.held.delete(name);
    unpinUserPagesDirtyLock(ctx.m, h.pages, h.n, ((h.flags ?? 0) & FOLL_WRITE) !== 0);
    for (const b of h.kmem ?? []) kvfree(ctx.m, b);
    ctx.released.set(name, { proc: procName, inStep: h.at === ctx.step });
    n += h.n;
  }
  return n;
}
