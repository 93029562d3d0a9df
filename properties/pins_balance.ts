// pins-balance: every pin and reference taken is given back. After teardown the memlock counters are
// back at zero; after every process has exited, NR_FOLL_PIN_ACQUIRED == NR_FOLL_PIN_RELEASED and every
// frame's refcount, _pincount and _mapcount is what it was before the run (mm/gup.c accounting).
// Devices also check, where they keep a charge, that it left the counter within RLIMIT_MEMLOCK.
import {
  Memmap,
  MM_USERS,
  MM_LOCKED_VM,
  MM_PINNED_VM,
  MM_USER_LOCKED_VM,
  MM_NR_VMAS,
  PG_hwpoison,
  VMA_START,
  VMA_END,
  pincountAt,
} from '../mm/memmap';
import { mmBase, vmaBase } from '../mm/mm_types';
import { followPte } from '../mm/memory';
import { vmstatSnapshot } from '../mm/vmstat';
import type { Property } from './property';

export const pinsBalance = {
  name: 'pins-balance',
  promise:
    "Every FOLL_PIN is released and every reference and mapping given back, and locked_vm, pinned_vm and the user's locked_vm return to zero without ever passing RLIMIT_MEMLOCK unless CAP_IPC_LOCK.",
  reference:
    'mm/gup.c (nr_foll_pin_acquired, nr_foll_pin_released); __account_locked_vm() (mm/util.c), ib_umem_get(), __io_account_mem()',
  phases: ['op', 'teardown', 'exit'],
  atTeardown: (c) => memlockBalanceErrors(c.m).map((e) => `after teardown: ${e}`),
  atExit(c) {
    const s = vmstatSnapshot(c.m);
    c.checked += s.nr_foll_pin_acquired; // pins that had to come back
    return pinBalanceErrors(c.m, s.nr_foll_pin_acquired, s.nr_foll_pin_released, c.base).map(
      (e) => `after teardown and exit: ${e}`,
    );
  },
} as const satisfies Property<'pins-balance'>;

/**
 * struct page snapshot for pin-balance checks: refcount, _pincount and _mapcount of every frame that has
 * one not zero (pfns ascending; counts three per pfn). A booted machine has few, so a large one costs little.
 * bootMms (a bit per mm slot) are the processes the machine booted with (init on the x86_64 geometry), which
 * outlive the case; boot holds the pfns they map, whose pages may migrate during the case.
 */
export interface PageCounts {
  pfns: Int32Array;
  counts: Int32Array;
  bootMms: number;
  boot: Int32Array;
}
export function snapshotPageCounts(m: Memmap, bootMms = 0): PageCounts {
  const pfns: number[] = [];
  const counts: number[] = [];
  for (let pfn = 0; pfn < m.nrFrames; pfn++) {
    const r = m.refcount[pfn]!;
    const p = pincountAt(m, pfn);
    const c = m.mapcount[pfn]!;
    if (r === 0 && p === 0 && c === 0) continue;
    pfns.push(pfn);
    counts.push(r, p, c);
  }
  return { pfns: Int32Array.from(pfns), counts: Int32Array.from(counts), bootMms, boot: mappedPfns(m, bootMms) };
}

/** The pfns the processes of mms (a bit per mm slot) map, ascending: a walk of their VMAs' page tables. */
function mappedPfns(m: Memmap, mms: number): Int32Array {
  const pfns = new Set<number>();
  for (let mm = 0; mm < m.maxMms; mm++) {
    if (!(mms & (1 << mm)) || !Atomics.load(m.mms, mmBase(mm) + MM_USERS)) continue;
    const nv = m.mms[mmBase(mm) + MM_NR_VMAS]!;
    for (let i = 0; i < nv; i++) {
      const vb = vmaBase(m, mm, i);
      for (let vpn = m.vmas[vb + VMA_START]!; vpn < m.vmas[vb + VMA_END]!; vpn++) {
        const t = followPte(m, mm, vpn);
        if (t && !t.migrating) pfns.add(t.pfn);
      }
    }
  }
  return Int32Array.from([...pfns].sort((a, b) => a - b));
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
    for (const [name, slot] of [
      ['locked_vm', MM_LOCKED_VM],
      ['pinned_vm', MM_PINNED_VM],
      ['user locked_vm', MM_USER_LOCKED_VM],
    ] as const) {
      const v = m.mms[b + slot]!;
      if (v !== 0) errors.push(`mm ${mm}: ${name} ${v} pages after every device was closed (must be 0)`);
    }
  }
  return errors;
}

/**
 * Pins balance: NR_FOLL_PIN_ACQUIRED == NR_FOLL_PIN_RELEASED, and every frame's refcount, _pincount and
 * _mapcount are back to what they were (the caller drains the LRU batches and per-CPU lists first). The
 * pages of the processes the machine booted with may have migrated (an offline moves them): their frames,
 * before and after, must hold the same counts as a whole, a page's counts having moved with it.
 */
export function pinBalanceErrors(m: Memmap, acquired: number, released: number, base: PageCounts): string[] {
  const errors: string[] = [];
  if (acquired !== released)
    errors.push(
      `nr_foll_pin_acquired ${acquired} != nr_foll_pin_released ${released} (${acquired - released} pins leaked)`,
    );
  const bootAfter = base.bootMms ? mappedPfns(m, base.bootMms) : base.boot;
  const moved = Int32Array.from(new Set([...base.boot, ...bootAfter])).sort();
  const before: string[] = [];
  const after: string[] = [];
  let k = 0; // the next snapshot entry
  let j = 0; // the next moved frame
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
    if (j < moved.length && moved[j] === pfn) {
      j++;
      if (r0 || p0 || c0) before.push(`${r0}/${p0}/${c0}`);
      const p = pincountAt(m, pfn);
      if (m.refcount[pfn] || p || m.mapcount[pfn]) after.push(`${m.refcount[pfn]}/${p}/${m.mapcount[pfn]}`);
      continue;
    }
    // memory failure (or do_migrate_range()'s folio_isolate_lru()) keeps a reference on a poisoned page
    // for good, also once its block is offline
    if (m.refcount[pfn] !== r0 && !(m.flags[pfn]! & PG_hwpoison && m.refcount[pfn]! > r0))
      errors.push(`pfn ${pfn}: refcount ${m.refcount[pfn]}, was ${r0}`);
    const p = pincountAt(m, pfn);
    if (p !== p0) errors.push(`pfn ${pfn}: _pincount ${p}, was ${p0}`);
    if (m.mapcount[pfn] !== c0) errors.push(`pfn ${pfn}: _mapcount ${m.mapcount[pfn]}, was ${c0}`);
  }
  const tally = (xs: string[]) => xs.sort().join(' ');
  if (errors.length < 8 && tally(before) !== tally(after))
    errors.push(
      `the boot processes' ${base.boot.length} pages (now ${bootAfter.length}): refcount/_pincount/_mapcount ` +
        `${summary(after)}, were ${summary(before)}`,
    );
  return errors;
}

/** "2/0/1 x 40, 3/0/1 x 2": counts and how many frames hold them. */
function summary(xs: string[]): string {
  const n = new Map<string, number>();
  for (const x of xs) n.set(x, (n.get(x) ?? 0) + 1);
  return [...n].map(([x, c]) => `${x} x ${c}`).join(', ') || 'none';
}
