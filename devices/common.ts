// What device models share: memlock accounting on the kernel's three counters, the device side of a
// DMA (one content word of a frame, checked to be pinned), byte/page arithmetic on uapi fields, and
// generator pieces. Each accounting helper names the kernel function it stands for:
//   mm->locked_vm   __account_locked_vm() (mm/util.c)             vfio type1, iommufd ACCOUNT_MM
//   mm->pinned_vm   atomic64_add_return() in ib_umem_get()       RDMA, io_uring, iommufd (always)
//   user->locked_vm __io_account_mem() / incr_user_locked_vm()   io_uring, iommufd ACCOUNT_USER
// Counters live in the shared mm record (MM_LOCKED_VM, MM_PINNED_VM, MM_USER_LOCKED_VM), in pages.
// A device that maps without pinning, under an mmu interval notifier (RDMA ODP; GPU userptr with plain
// FOLL_GET references), checks its entries against the process page table: notifierDmaViolation().

import type * as fcType from 'fast-check';
import {
  Memmap,
  PAGE_SIZE,
  MM_LOCKED_VM,
  MM_PINNED_VM,
  MM_USER_LOCKED_VM,
  MM_RLIMIT_MEMLOCK,
  MM_CAP_IPC_LOCK,
  PG_buddy,
  PG_zero,
} from '../mm/memmap';
import { mmBase, ptlLock, ptlUnlock } from '../mm/mm_types';
import { followPte } from '../mm/memory';
import { ENOMEM } from '../mm/errno';
import { folioMaybeDmaPinned } from '../mm/rmap';
import { vmWarnOnOnce } from '../mm/debug';
import type { GenShape, VaddrRef, DeviceEnv, DeviceOp, HeldPage } from './device';
import type { PropertyName } from '../properties/index';
import { pinsBalance } from '../properties/pins_balance';

export { PAGE_SIZE };

/**
 * The seeded fault points a device that pins through GUP meets: the migration of what it pins (the
 * target allocation, a transient isolation failure, a folio left in another CPU's LRU batch), a fatal
 * signal, and the pofs temporary allocation of R14.
 */
export const GUP_FAULT_POINTS = [
  'migrate:alloc-target',
  'migrate:isolate',
  'lru:batch-hold',
  'fatal-signal',
  'gup:pofs-alloc',
] as const;

/** The most ops a generated device program holds. */
export const DEVICE_PROGRAM_LENGTH = 10;

// ---------------------------------------------------------------------------------------------
// Memlock accounting

/** rlimit(RLIMIT_MEMLOCK) >> PAGE_SHIFT of the process; Infinity for RLIM_INFINITY. */
export function rlimitMemlock(m: Memmap, mm: number): number {
  const l = m.mms[mmBase(mm) + MM_RLIMIT_MEMLOCK]!;
  return l < 0 ? Infinity : l;
}

/** capable(CAP_IPC_LOCK) of the process. */
export function capableIpcLock(m: Memmap, mm: number): boolean {
  return m.mms[mmBase(mm) + MM_CAP_IPC_LOCK]! !== 0;
}

/** can_do_mlock() (mm/mlock.c): CAP_IPC_LOCK, or a non-zero RLIMIT_MEMLOCK. */
export function canDoMlock(m: Memmap, mm: number): boolean {
  return capableIpcLock(m, mm) || rlimitMemlock(m, mm) !== 0;
}

/**
 * __account_locked_vm() (mm/util.c): add or subtract pages from mm->locked_vm. Adding fails with
 * -ENOMEM when it would exceed RLIMIT_MEMLOCK and the caller has no CAP_IPC_LOCK (lockCap).
 * The kernel holds mmap_write_lock; pinlab makes the check-and-add one compare-exchange.
 */
export function accountLockedVm(m: Memmap, mm: number, pages: number, inc: boolean, lockCap: boolean): number {
  const slot = mmBase(mm) + MM_LOCKED_VM;
  if (!inc) {
    const before = Atomics.sub(m.mms, slot, pages);
    vmWarnOnOnce(before < pages, '__account_locked_vm: locked_vm would go negative');
    return 0;
  }
  const limit = rlimitMemlock(m, mm);
  for (;;) {
    const cur = Atomics.load(m.mms, slot);
    if (!lockCap && cur + pages > limit) return -ENOMEM;
    if (Atomics.compareExchange(m.mms, slot, cur, cur + pages) === cur) return 0;
  }
}

/** atomic64_add_return(delta, &mm->pinned_vm): the new value. */
export function pinnedVmAddReturn(m: Memmap, mm: number, delta: number): number {
  return Atomics.add(m.mms, mmBase(mm) + MM_PINNED_VM, delta) + delta;
}

/**
 * __io_account_mem() (io_uring/rsrc.c), incr_user_locked_vm() (iommufd/pages.c): a cmpxchg loop on
 * user->locked_vm that refuses to pass RLIMIT_MEMLOCK (-ENOMEM). No capability check: callers charge
 * the user only when it lacks CAP_IPC_LOCK.
 */
export function incrUserLockedVm(m: Memmap, mm: number, pages: number): number {
  const slot = mmBase(mm) + MM_USER_LOCKED_VM;
  const limit = rlimitMemlock(m, mm);
  for (;;) {
    const cur = Atomics.load(m.mms, slot);
    if (cur + pages > limit) return -ENOMEM;
    if (Atomics.compareExchange(m.mms, slot, cur, cur + pages) === cur) return 0;
  }
}

/** __io_unaccount_mem() / decr_user_locked_vm() */
export function decrUserLockedVm(m: Memmap, mm: number, pages: number): void {
  const before = Atomics.sub(m.mms, mmBase(mm) + MM_USER_LOCKED_VM, pages);
  vmWarnOnOnce(before < pages, 'decr_user_locked_vm: user locked_vm would go negative');
}

/**
 * The memlock promise, checked where a charge is kept: the value the charge left in the counter (the
 * atomic add's return) is within RLIMIT_MEMLOCK unless the process has CAP_IPC_LOCK. ib_umem_get()
 * keeps only a charge whose atomic64_add_return() stayed within the limit; a check of the old value
 * followed by a separate add (the old siw) keeps charges two racing registrations pushed over it.
 */
export function memlockViolation(
  m: Memmap,
  mm: number,
  counter: string,
  after: number,
  what: string,
): { property: PropertyName; violation: string } | undefined {
  const limit = rlimitMemlock(m, mm);
  if (after <= limit || capableIpcLock(m, mm)) return undefined;
  return {
    property: pinsBalance.name,
    violation: `${what}: ${counter} is ${after} pages after the charge, above RLIMIT_MEMLOCK (${limit} pages) without CAP_IPC_LOCK`,
  };
}

/** The three counters of a process, in pages (VmLck, VmPin, and the user's locked_vm). */
export function memlockCounters(
  m: Memmap,
  mm: number,
): { locked_vm: number; pinned_vm: number; user_locked_vm: number } {
  const b = mmBase(mm);
  return {
    locked_vm: m.mms[b + MM_LOCKED_VM]!,
    pinned_vm: m.mms[b + MM_PINNED_VM]!,
    user_locked_vm: m.mms[b + MM_USER_LOCKED_VM]!,
  };
}

// ---------------------------------------------------------------------------------------------
// The device side of DMA: one 32-bit content word per frame

/** DMAs checked in this thread (dma-integrity's coverage: harness/actor/checks.ts reads and clears it). */
export const dmaChecks = { n: 0 };

/**
 * Why a DMA to pfn breaks the pinning promise, or undefined when it is fine: the frame must not be
 * free and its folio must carry a pin (folio_maybe_dma_pinned()). Devices check this before every
 * access through a pinned translation (the device half of "pin before DMA").
 */
export function dmaTargetViolation(m: Memmap, pfn: number, what: string): string | undefined {
  dmaChecks.n++;
  if (pfn < 0 || pfn >= m.nrFrames) return `${what}: pfn ${pfn} outside memory`;
  const head = m.compoundHead(pfn);
  // the shared zero page: pins of it are not counted (v6.5+) and it is never freed
  if (m.flags[head]! & PG_zero) return undefined;
  if (m.flags[pfn]! & PG_buddy || m.flags[head]! & PG_buddy || m.refcount[head]! <= 0)
    return `${what}: DMA to pfn ${pfn}, a free page`;
  if (!folioMaybeDmaPinned(m, head)) return `${what}: DMA to pfn ${pfn}, which holds no pin`;
  return undefined;
}

/** The device writes one word into a frame (a DMA write: no dirty bit; unpin_user_pages_dirty_lock sets it). */
export function deviceWrite(m: Memmap, pfn: number, value: number): void {
  Atomics.store(m.content, pfn, value >>> 0);
}

/** One DMA through a device's own table: checked (dmaTargetViolation), then a write of op.value or a read. */
export function dmaAccess(
  m: Memmap,
  pfn: number,
  write: boolean,
  op: Record<string, unknown>,
  what: string,
): { rc: number; violation?: string } {
  const violation = dmaTargetViolation(m, pfn, what);
  if (write) {
    deviceWrite(m, pfn, intField(op, 'value', 0));
    return { rc: 0, violation };
  }
  return { rc: deviceRead(m, pfn), violation };
}

/** The device reads a frame's word (a DMA read). */
export function deviceRead(m: Memmap, pfn: number): number {
  return Atomics.load(m.content, pfn);
}

// ---------------------------------------------------------------------------------------------
// Devices that map without pinning, under an mmu interval notifier

/**
 * Why a DMA to pfn on behalf of process page vpn breaks the promise of a device that holds no pin
 * but an mmu interval notifier, or undefined. Such a device keeps its own translations, taken by
 * hmm_range_fault() (RDMA ODP: no reference) or with plain FOLL_GET references (get_user_pages(), as
 * GPU userptr drivers did): a reference keeps the frame allocated, not mapped (COW, zap and munmap
 * change the PTE anyway), so an entry is valid only while it maps what the process maps now. The
 * invalidate callback clears it before the PTE changes (mmu_interval_set_seq()), and a fault installs
 * it only when mmu_interval_read_retry() saw no invalidation. Checked here: the frame is not free and
 * is what the PTE of vpn points at now, writable for a write. `kind` names the entries ("ODP").
 * Use it where a pinning device uses dmaTargetViolation(), which would demand a pin.
 */
export function notifierDmaViolation(
  m: Memmap,
  mm: number,
  vpn: number,
  pfn: number,
  write: boolean,
  what: string,
  kind: string,
): string | undefined {
  dmaChecks.n++;
  if (pfn < 0 || pfn >= m.nrFrames) return `${what}: pfn ${pfn} outside memory`;
  const head = m.compoundHead(pfn);
  const zero = (m.flags[head]! & PG_zero) !== 0;
  if (!zero && (m.flags[pfn]! & PG_buddy || m.refcount[head]! <= 0)) {
    return `${what}: DMA to pfn ${pfn}, a free page (stale ${kind} entry for vpn ${vpn})`;
  }
  ptlLock(m, mm);
  const t = followPte(m, mm, vpn);
  ptlUnlock(m, mm);
  if (!t || t.migrating || t.pfn !== pfn) {
    const now = !t ? 'nothing' : t.migrating ? `a migration entry for pfn ${t.pfn}` : `pfn ${t.pfn}`;
    return `${what}: DMA to pfn ${pfn} for vpn ${vpn}, which maps ${now} (stale ${kind} entry)`;
  }
  if (write && !t.write) return `${what}: DMA write to pfn ${pfn} through a read-only mapping of vpn ${vpn}`;
  return undefined;
}

/**
 * notifierDmaViolation() over every entry a device reports holding that is not a long-term pin (its
 * notifier-protected ones): a stale entry is a DMA into the wrong frame waiting to happen. Holds at
 * any step boundary for a correct device, since its invalidate callback runs before the PTEs change.
 */
export function checkNotifierCoherent(m: Memmap, mm: number, held: HeldPage[], kind: string): string[] {
  const errors: string[] = [];
  for (const h of held) {
    if (h.longterm) continue;
    const v = notifierDmaViolation(m, mm, h.vpn, h.pfn, false, `device page ${h.iova}`, kind);
    if (v) errors.push(v);
  }
  return errors;
}

// ---------------------------------------------------------------------------------------------
// uapi arguments

/** A u64 field pinlab can represent: a non-negative safe integer (anything else counts as an overflowing u64). */
export function isU64(x: unknown): x is number {
  return typeof x === 'number' && Number.isSafeInteger(x) && x >= 0;
}

/** An integer op field, or def when absent; NaN when present but not an integer (callers turn that into -EINVAL). */
export function intField(op: Record<string, unknown>, name: string, def?: number): number {
  const v = op[name];
  if (v === undefined) return def ?? NaN;
  return typeof v === 'number' && Number.isSafeInteger(v) ? v : NaN;
}

export function pageAligned(x: number): boolean {
  return x % PAGE_SIZE === 0;
}

export function hex(x: number): string {
  return `0x${x.toString(16)}`;
}

/** A trace line prefixed with the instance name. */
export function trace(env: DeviceEnv, line: string): void {
  env.trace(`${env.name}: ${line}`);
}

// ---------------------------------------------------------------------------------------------
// Generator pieces (ops over shape.maps)

/** A range inside one of the shape's mappings: its start as a VaddrRef and its length in pages. */
export interface GenRange {
  vaddr: VaddrRef;
  pages: number;
}

/** A page range inside one mapping, at most shape.maxPages long. */
export function arbRange(fc: typeof fcType, shape: GenShape): fcType.Arbitrary<GenRange> {
  const maps = shape.maps.filter((x) => x.pages > 0);
  if (!maps.length) throw new Error('device generators need at least one mapping in shape.maps');
  return fc
    .constantFrom(...maps)
    .chain((mp) =>
      fc
        .integer({ min: 0, max: mp.pages - 1 })
        .chain((off) =>
          fc
            .integer({ min: 1, max: Math.max(1, Math.min(shape.maxPages, mp.pages - off)) })
            .map((pages) => ({ vaddr: { map: mp.name, off }, pages })),
        ),
    );
}

/**
 * An op's reference to an earlier op of its program (linkOps()): k names the k-th most recent of the ops it may
 * follow (wrapping), or undefined keeps the address the op drew. Two in three ops refer: a pin into the map
 * made before it, an unmap of that map, a DMA through that pin, as syzkaller's resources tie its calls together.
 */
export function arbRef(fc: typeof fcType): fcType.Arbitrary<number | undefined> {
  return fc.oneof({ weight: 2, arbitrary: fc.nat(3) }, { weight: 1, arbitrary: fc.constant(undefined) });
}

/**
 * How an op kind follows an earlier op: `to` gives the op aimed at `src`, an earlier op of kind `from` and the
 * nth of its kind in the program (an RDMA MR's handle, when every registration before it succeeded).
 */
export interface LinkRule {
  from: string;
  to: (op: DeviceOp, src: DeviceOp, nth: number) => DeviceOp;
}

/**
 * A generated program with its references (arbRef(), the op's `ref` field) resolved by the model's rules and
 * removed: a case holds plain ops. An op with no earlier op of the kind it follows keeps its own address.
 */
export function linkOps(ops: readonly DeviceOp[], rules: Readonly<Record<string, LinkRule>>): DeviceOp[] {
  const seen = new Map<string, DeviceOp[]>();
  return ops.map((drawn) => {
    let op = drawn;
    if ('ref' in drawn) {
      const { ref, ...rest } = drawn;
      op = rest as DeviceOp;
      const rule = rules[op.op];
      const srcs = rule && seen.get(rule.from);
      if (rule && srcs?.length && typeof ref === 'number') {
        const nth = srcs.length - 1 - (ref % srcs.length);
        op = rule.to(op, srcs[nth]!, nth);
      }
    }
    const list = seen.get(op.op);
    if (list) list.push(op);
    else seen.set(op.op, [op]);
    return op;
  });
}

/** LinkRule.to of an op that starts where the op it follows does (an unmap of a map, an unpin of a pin). */
export function atSameIova(op: DeviceOp, src: DeviceOp): DeviceOp {
  return { ...op, iova: src.iova };
}

/**
 * LinkRule.to of an op that aims inside the op it follows (a pin in a map, a DMA through a pin): its iova moved
 * into the source's [iova, iova + pages(src) pages) by linkedIova().
 */
export function insideIova(pages: (src: DeviceOp) => number): LinkRule['to'] {
  return (op, src) => ({ ...op, iova: linkedIova(op, Number(src.iova), pages(src)) });
}

/**
 * LinkRule.to of a pin that aims inside the map it follows (a vendor driver pinning what the guest mapped):
 * insideIova(), then `fit` cuts its length to the pages the map has left from there, and it asks to write only
 * where the map allows it. Pins drawn on their own (arbRef()'s third) still run past a map's end or ask a
 * read-only map for write (-EINVAL, -EPERM).
 */
export function pinInside(
  pages: (src: DeviceOp) => number,
  fit: (op: DeviceOp, left: number) => DeviceOp,
): LinkRule['to'] {
  const inside = insideIova(pages);
  return (op, src, nth) => {
    const o = inside(op, src, nth);
    const left = pages(src) - Math.floor((Number(o.iova) - Number(src.iova)) / PAGE_SIZE);
    return fit({ ...o, write: o.write === true && src.write !== false }, left);
  };
}

/**
 * The address an op that follows an earlier op aims at: in [base, base + pages pages), at the page its own drawn
 * iova names (wrapped) and the same offset in that page.
 */
export function linkedIova(op: DeviceOp, base: number, pages: number): number {
  const iova = Number(op.iova);
  const page = Math.floor(iova / PAGE_SIZE);
  return base + (pages > 0 ? page % pages : 0) * PAGE_SIZE + (iova % PAGE_SIZE);
}

/** A 32-bit payload word. */
export function arbWord(fc: typeof fcType): fcType.Arbitrary<number> {
  return fc.integer({ min: 1, max: 0x7fffffff });
}

/**
 * Device addresses (IOVA pages) for generated ops. Most name one of a few slots of shape.maxPages pages
 * (slot k starts at page k * maxPages), and a DMA or pin most often the slot's first page, so a map, the
 * pins and DMAs into it, the unmap that ends it and a DMA after that meet often; the rest are any page
 * of [0, window) (misses, overlaps and bisected ranges).
 */
export const IOVA_SLOTS = 2;

/** The first page of a slot, or now and then any page of the window (a map's or an unmap's start). */
export function arbSlotBase(fc: typeof fcType, shape: GenShape, window: number): fcType.Arbitrary<number> {
  return fc.oneof(
    { weight: 6, arbitrary: fc.nat(IOVA_SLOTS - 1).map((k) => k * shape.maxPages) },
    { weight: 1, arbitrary: fc.nat(window - 1) },
  );
}

/**
 * A page in a slot (its first page half the time), or now and then any page of the window (a pin's or a DMA's address).
 */
export function arbSlotPage(fc: typeof fcType, shape: GenShape, window: number): fcType.Arbitrary<number> {
  const off = fc.oneof({ weight: 1, arbitrary: fc.constant(0) }, { weight: 1, arbitrary: fc.nat(shape.maxPages - 1) });
  return fc.oneof(
    {
      weight: 6,
      arbitrary: fc.record({ k: fc.nat(IOVA_SLOTS - 1), off }).map(({ k, off: o }) => k * shape.maxPages + o),
    },
    { weight: 1, arbitrary: fc.nat(window - 1) },
  );
}

/**
 * An unmap's length in pages: whole slots (every mapping a slot holds goes, none is bisected), or any length up to
 * maxPages.
 */
export function arbSlotSpan(fc: typeof fcType, shape: GenShape): fcType.Arbitrary<number> {
  return fc.oneof(
    { weight: 3, arbitrary: fc.integer({ min: 1, max: IOVA_SLOTS }).map((k) => k * shape.maxPages) },
    { weight: 1, arbitrary: fc.integer({ min: 1, max: shape.maxPages }) },
  );
}
