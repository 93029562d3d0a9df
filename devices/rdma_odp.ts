// rdma-odp: an RDMA device with on-demand paging (drivers/infiniband/core/umem_odp.c and the soft-RoCE
// driver drivers/infiniband/sw/rxe/rxe_odp.c, v6.12; mlx5's odp.c follows the same protocol). An
// IB_ACCESS_ON_DEMAND memory region pins nothing and charges nothing: registration only inserts an
// mmu interval notifier over the MR's pages. The device keeps its own page table (umem_odp->dma_list:
// pfn + read/write permission per page); an access through a missing entry faults it in through the
// process page tables, ib_umem_odp_map_dma_and_lock() style:
//
//   retry: seq = mmu_interval_read_begin()          | invalidate callback (rxe_ib_invalidate_range):
//          hmm_range_fault()  (may fault pages in)  |   mutex_lock(umem_mutex)
//          mutex_lock(umem_mutex)                   |   mmu_interval_set_seq(cur_seq)
//          if mmu_interval_read_retry(seq): unlock, |   clear the device entries of the range
//             goto retry                            |   mutex_unlock
//          install the pfns; DMA; mutex_unlock      | (returns before the PTEs change)
//
// so the device never uses a page after the mm has decided to move or drop it. Migration (and so
// offlining and long-term-pin migration), COW, zap, mprotect and fork all reach the callback through
// mm/mmu_notifier.ts.
//
// Ops (bytes, as the uapi): reg_mr {vaddr, len, hca_va = vaddr, access = LOCAL_WRITE|REMOTE_READ|
// REMOTE_WRITE|ON_DEMAND} -> lkey; dereg_mr {lkey}; rdma_write {key, addr, len = 4, value, remote};
// rdma_read {key, addr, len = 4, remote} -> the word read; prefetch {lkey, addr, len, write}
// (ibv_advise_mr PREFETCH[_WRITE]). addr is in the MR's hca address space. Generated ops name an MR
// by position instead ({mr: i, off}: the i-th live MR, modulo their number, off bytes into it).
// A DMA that uses a stale translation reports a violation: the frame is free, or not what the
// process maps at that address now (the ODP form of dma-integrity, docs/properties.md; common.ts
// notifierDmaViolation); so does an entry left stale between operations or at close, which a peer's
// RDMA could use at any time.
//
// Simplified: one word of payload per page; rxe's lkey/rkey, PD and QP checks reduced to a key and
// an access mask; no implicit ODP, no huge-page MRs (IB_ACCESS_HUGETLB); hmm_range_fault is walked
// page by page here (pinlab has no mm/hmm.ts); HMM_RANGE_DEFAULT_TIMEOUT is a retry budget.

import type * as fcType from 'fast-check';
import type { DeviceModel, DeviceEnv, DeviceState, DeviceOp, OpResult, GenShape, HeldPage } from './device';
import { Memmap, PG_dirty, VMA_FLAGS } from '../mm/memmap';
import { EBUSY, EACCES, EFAULT, EINVAL, ENOENT, ENOMEM, EOVERFLOW, errname } from '../mm/errno';
import { bug } from '../mm/debug';
import { findVma, handleMmFault, followPte } from '../mm/memory';
import {
  mmapReadLock,
  mmapReadUnlock,
  VM_IO,
  VM_PFNMAP,
  VM_READ,
  ptlLock,
  ptlUnlock,
  VM_FAULT_ERROR,
} from '../mm/mm_types';
import {
  MmuIntervalNotifier,
  MmuNotifierRange,
  mmuIntervalNotifierInsert,
  mmuIntervalNotifierRemove,
  mmuIntervalReadBegin,
  mmuIntervalReadRetry,
  mmuIntervalCheckRetry,
  mmuIntervalSetSeq,
  mmuIntervalNotifierMmAlive,
  mmuNotifierRangeBlockable,
  mmuNotifierCallbackLockTaken,
  mmuNotifierCallbackLockReleased,
  MMU_NOTIFY_EVENT_NAMES,
} from '../mm/mmu_notifier';
import {
  PAGE_SIZE,
  intField,
  isU64,
  hex,
  deviceRead,
  deviceWrite,
  arbRange,
  arbWord,
  trace,
  notifierDmaViolation,
  checkNotifierCoherent,
  GUP_FAULT_POINTS,
  DEVICE_PROGRAM_LENGTH,
} from './common';

const NAME = 'rdma-odp';

// enum ib_access_flags (include/rdma/ib_verbs.h)
export const IB_ACCESS_LOCAL_WRITE = 1 << 0;
export const IB_ACCESS_REMOTE_WRITE = 1 << 1;
export const IB_ACCESS_REMOTE_READ = 1 << 2;
export const IB_ACCESS_REMOTE_ATOMIC = 1 << 3;
export const IB_ACCESS_MW_BIND = 1 << 4;
export const IB_ZERO_BASED = 1 << 5;
export const IB_ACCESS_ON_DEMAND = 1 << 6;
export const IB_ACCESS_HUGETLB = 1 << 7;
export const IB_ACCESS_FLUSH_GLOBAL = 1 << 8;
export const IB_ACCESS_FLUSH_PERSISTENT = 1 << 9;
export const IB_ACCESS_RELAXED_ORDERING = 1 << 20; // IB_ACCESS_OPTIONAL
export const IB_ACCESS_SUPPORTED = ((IB_ACCESS_FLUSH_PERSISTENT << 1) - 1) | IB_ACCESS_RELAXED_ORDERING;
const REMOTE_ACCESS = IB_ACCESS_REMOTE_WRITE | IB_ACCESS_REMOTE_READ | IB_ACCESS_REMOTE_ATOMIC;

/** ibAccessWritable() (include/rdma/ib_umem.h) */
function ibAccessWritable(access: number): boolean {
  const writeBits = IB_ACCESS_LOCAL_WRITE | IB_ACCESS_REMOTE_WRITE | IB_ACCESS_REMOTE_ATOMIC | IB_ACCESS_MW_BIND;
  return (access & writeBits) !== 0;
}
export const ODP_DEFAULT_ACCESS =
  IB_ACCESS_LOCAL_WRITE | IB_ACCESS_REMOTE_READ | IB_ACCESS_REMOTE_WRITE | IB_ACCESS_ON_DEMAND;

// dma_list permission bits (include/rdma/ib_umem_odp.h)
export const ODP_READ_ALLOWED_BIT = 1 << 0;
export const ODP_WRITE_ALLOWED_BIT = 1 << 1;

/** hmm_range_fault() restarts of one walk (after faulting pages in) before -EBUSY. */
export const HMM_WALK_RESTARTS_MAX = 64;
/** ib_umem_odp_map_dma_and_lock() passes (hmm -EBUSY or a read_retry collision) before -EBUSY: the
 * kernel bounds the first by HMM_RANGE_DEFAULT_TIMEOUT (1 s) and retries the second unboundedly. */
export const ODP_MAP_RETRIES_MAX = 32;

/** The pfn list one hmm_range_fault() fills: -1 = not valid (HMM_PFN_ERROR or no page). */
export interface HmmRange {
  sub: MmuIntervalNotifier;
  notifierSeq: number;
  /** first vpn and number of pages */
  start: number;
  nrPages: number;
  /** HMM_PFN_REQ_FAULT, HMM_PFN_REQ_WRITE */
  fault: boolean;
  write: boolean;
  pfns: Int32Array;
  /** ODP_*_ALLOWED_BIT per page, from the CPU PTE */
  perm: Uint8Array;
}

/**
 * hmm_range_fault() (mm/hmm.c): snapshot the CPU translation of every page of the range, faulting
 * pages in (for write with `write`) when `fault` asks for it. Returns 0, -EBUSY (the range was
 * invalidated since notifierSeq, or a page is being migrated: the caller restarts with a new
 * sequence) or -EFAULT (no VMA, VM_IO/VM_PFNMAP, no permission, or the fault failed). Takes no
 * page references: that is the point.
 */
export function hmmRangeFault(m: Memmap, mm: number, r: HmmRange): number {
  let last = r.start;
  const end = r.start + r.nrPages;
  for (let pass = 0; pass < HMM_WALK_RESTARTS_MAX; pass++) {
    if (mmuIntervalCheckRetry(r.sub, r.notifierSeq)) return -EBUSY;
    let restart = false;
    for (let vpn = last; vpn < end && !restart; vpn++) {
      const i = vpn - r.start;
      r.pfns[i] = -1;
      r.perm[i] = 0;
      const vb = findVma(m, mm, vpn);
      const flags = vb < 0 ? 0 : m.vmas[vb + VMA_FLAGS]!;
      if (vb < 0 || flags & (VM_IO | VM_PFNMAP) || !(flags & VM_READ)) {
        // hmm_vma_walk_hole / hmm_vma_walk_test
        if (r.fault) return -EFAULT;
        continue;
      }
      ptlLock(m, mm);
      const t = followPte(m, mm, vpn);
      ptlUnlock(m, mm);
      const present = t !== null && !t.migrating;
      if (present && (!r.write || t.write)) {
        r.pfns[i] = t.pfn;
        r.perm[i] = ODP_READ_ALLOWED_BIT | (t.write ? ODP_WRITE_ALLOWED_BIT : 0);
        continue;
      }
      if (!r.fault) {
        if (present) {
          r.pfns[i] = t.pfn;
          r.perm[i] = ODP_READ_ALLOWED_BIT;
        }
        continue; // a snapshot leaves holes and migration entries invalid
      }
      // hmm_vma_fault(); on a migration entry handle_mm_fault() sleeps in migration_entry_wait() and
      // returns VM_FAULT_RETRY, as hmm_vma_handle_pte() does before its -EBUSY: walk again either way
      const rc = handleMmFault(m, mm, vpn, r.write);
      if (rc & VM_FAULT_ERROR) return -EFAULT;
      last = vpn;
      restart = true;
    }
    if (!restart) return 0;
  }
  return -EBUSY;
}

/** What notifierDmaViolation() calls this device's entries. */
const KIND = 'ODP';

/**
 * struct ib_umem_odp: the device page table of one MR (dma_list), its umem_mutex and the mmu
 * interval notifier over its pages.
 */
class IbUmemOdp {
  /** dma_list: the device page table, pfn per page (-1 = none) and ODP_*_ALLOWED_BIT */
  readonly pfns: Int32Array;
  readonly perm: Uint8Array;
  /** valid entries of dma_list */
  npages = 0;
  /** umem_mutex (the device's own lock; its callbacks run on the device's thread) */
  private locked = false;
  readonly notifier: MmuIntervalNotifier;
  /** read_retry collisions seen by faults on this umem */
  retries = 0;

  /** vpn, nrPages: the umem start (ib_umem_start) and length, in pages; lkey names it in traces */
  constructor(
    private readonly env: DeviceEnv,
    readonly lkey: number,
    readonly vpn: number,
    readonly nrPages: number,
  ) {
    this.pfns = new Int32Array(nrPages).fill(-1);
    this.perm = new Uint8Array(nrPages);
    this.notifier = new MmuIntervalNotifier({ invalidate: (_s, r, cur) => this.invalidateRange(r, cur) });
  }

  /** ib_init_umem_odp(): mmu_interval_notifier_insert() over the umem's pages. */
  initUmemOdp(): number {
    return mmuIntervalNotifierInsert(this.notifier, this.env.m, this.env.mm, this.vpn, this.nrPages);
  }

  /** mutex_lock(&umem_odp->umem_mutex) */
  mutexLock(): void {
    // the device's callbacks run on its own thread: while it holds the lock, the harness runs none for other
    // threads (mmuNotifierCallbackLockTaken(); their invalidators wait, as they would sleep on the mutex), and
    // its own invalidation reaching its own callback is the kernel's deadlock
    if (this.locked) bug(`${this.env.name}: umem_mutex of lkey ${hex(this.lkey)} taken twice (deadlock)`);
    this.locked = true;
    mmuNotifierCallbackLockTaken();
  }

  /** mutex_unlock(&umem_odp->umem_mutex) */
  mutexUnlock(): void {
    if (!this.locked) bug(`${this.env.name}: umem_mutex of lkey ${hex(this.lkey)} unlocked while not held`);
    this.locked = false;
    mmuNotifierCallbackLockReleased();
  }

  /** ib_umem_odp_unmap_dma_pages(): clear the entries of [start, end) (vpns), dirtying pages mapped for write. */
  unmapDmaPages(start: number, end: number): number {
    if (!this.locked) bug(`${this.env.name}: ib_umem_odp_unmap_dma_pages without umem_mutex`);
    const { m } = this.env;
    let n = 0;
    for (let vpn = Math.max(start, this.vpn); vpn < Math.min(end, this.vpn + this.nrPages); vpn++) {
      const i = vpn - this.vpn;
      const pfn = this.pfns[i]!;
      if (pfn < 0) continue;
      // set_page_dirty(head_page)
      if (this.perm[i]! & ODP_WRITE_ALLOWED_BIT) Atomics.or(m.flags, m.compoundHead(pfn), PG_dirty);
      this.pfns[i] = -1;
      this.perm[i] = 0;
      this.npages--;
      n++;
    }
    return n;
  }

  /**
   * Before the callback clears [start, end): an entry whose pfn the process no longer maps is stale (the
   * callback runs before the PTEs change), and ib_umem_odp_unmap_dma_pages() is about to dirty that
   * frame, maybe freed and soon another's ("bad page state" later): reported now, as dma-integrity.
   */
  private staleInvalidated(start: number, end: number): void {
    if (!this.env.violation) return;
    const { m, mm } = this.env;
    for (let vpn = Math.max(start, this.vpn); vpn < Math.min(end, this.vpn + this.nrPages); vpn++) {
      const pfn = this.pfns[vpn - this.vpn]!;
      if (pfn < 0) continue;
      const v = notifierDmaViolation(m, mm, vpn, pfn, false, `invalidation of lkey ${hex(this.lkey)}`, KIND);
      if (v) return this.env.violation(`${this.env.name}: ${v}`);
    }
  }

  /** rxe_ib_invalidate_range(): the notifier's invalidate callback. */
  private invalidateRange(r: Readonly<MmuNotifierRange>, curSeq: number): boolean {
    if (!mmuNotifierRangeBlockable(r)) return false;
    if (this.env.bugs.has('invalidate-noop')) return true; // BUG: acknowledges without touching the device page table
    this.mutexLock();
    mmuIntervalSetSeq(this.notifier, curSeq);
    this.staleInvalidated(r.start, r.end);
    const n = this.unmapDmaPages(r.start, r.end);
    this.mutexUnlock();
    if (n) {
      trace(
        this.env,
        `invalidate ${MMU_NOTIFY_EVENT_NAMES[r.event]} lkey ${hex(this.lkey)} vpn ${r.start}..${r.end}: ` +
          `${n} entries cleared`,
      );
    }
    return true;
  }

  /**
   * ib_umem_odp_map_dma_and_lock(): pages [first, first + n) of the umem (indexes). On success returns
   * the number of pages mapped with umem_mutex HELD; on error returns -errno with it not held.
   */
  mapDmaAndLock(first: number, n: number, accessMask: number, fault: boolean): number {
    if (!accessMask) return -EINVAL;
    if (first < 0 || first + n > this.nrPages) return -EFAULT;
    const { m, mm } = this.env;
    const range: HmmRange = {
      sub: this.notifier,
      notifierSeq: 0,
      start: this.vpn + first,
      nrPages: n,
      fault,
      write: (accessMask & ODP_WRITE_ALLOWED_BIT) !== 0,
      pfns: new Int32Array(n),
      perm: new Uint8Array(n),
    };
    for (let pass = 0; ; pass++) {
      if (pass >= ODP_MAP_RETRIES_MAX) return -EBUSY;
      if (!mmuIntervalNotifierMmAlive(this.notifier)) return -EINVAL; // get_pid_task() / mmget_not_zero() failed
      const seq = mmuIntervalReadBegin(this.notifier);
      range.notifierSeq = seq;
      this.env.yieldPoint('odp:read-begin');
      mmapReadLock(m, mm);
      const rc = hmmRangeFault(m, mm, range);
      mmapReadUnlock(m, mm);
      if (rc === -EBUSY) continue;
      if (rc < 0) return rc;
      this.env.yieldPoint('odp:after-fault'); // the window an invalidation can hit: read_retry must see it
      this.mutexLock();
      if (!this.env.bugs.has('no-seq-retry') && mmuIntervalReadRetry(this.notifier, seq)) {
        this.mutexUnlock();
        this.retries++;
        trace(
          this.env,
          `fault lkey ${hex(this.lkey)} vpn ${range.start}+${n}: ` +
            `collided with an invalidation (seq ${seq}), retrying`,
        );
        continue;
      }
      this.installPfns(range, first, accessMask, fault);
      return n;
    }
  }

  /** The install loop of ib_umem_odp_map_dma_and_lock() (umem_mutex held): the faulted pfns into dma_list. */
  private installPfns(range: HmmRange, first: number, accessMask: number, fault: boolean): void {
    for (let i = 0; i < range.nrPages; i++) {
      const pfn = range.pfns[i]!;
      if (pfn < 0) continue; // only a snapshot (fault == false) leaves holes
      const j = first + i;
      const mask = fault ? accessMask : range.perm[i]!;
      // already mapped: a non-invalidating transition (read-only to writable); resync the flags
      if (this.pfns[j]! >= 0) {
        this.perm[j] = mask;
        continue;
      }
      this.pfns[j] = pfn;
      this.perm[j] = mask;
      this.npages++;
    }
  }

  /** Are pages [first, first + n) all mapped with perm? */
  accessible(first: number, n: number, perm: number): boolean {
    for (let j = first; j < first + n; j++) if (this.pfns[j]! < 0 || (this.perm[j]! & perm) !== perm) return false;
    return true;
  }

  /** ib_umem_odp_release(): clear the device page table, then remove the notifier. */
  release(): void {
    this.mutexLock();
    this.unmapDmaPages(this.vpn, this.vpn + this.nrPages);
    this.mutexUnlock();
    mmuIntervalNotifierRemove(this.notifier);
  }

  /** The valid entries of dma_list, the umem's first page at device page iovaPage. */
  entries(iovaPage: number, out: HeldPage[]): void {
    for (let i = 0; i < this.nrPages; i++) {
      if (this.pfns[i]! >= 0) out.push({ iova: iovaPage + i, vpn: this.vpn + i, pfn: this.pfns[i]!, longterm: false });
    }
  }
}

/** struct rxe_mr of an ODP region: keys, access, its place in the hca address space, and its ib_umem_odp. */
class RxeOdpMr {
  readonly rkey: number;
  /** ib_access_writable() */
  readonly writable: boolean;
  /** hcaVa rounded down to the page: the device address of the umem's first page */
  readonly iova: number;

  /** hcaVa, length: the MR's address on the wire (ibmr.iova) and length (ibmr.length), bytes */
  constructor(
    private readonly env: DeviceEnv,
    readonly lkey: number,
    readonly access: number,
    readonly hcaVa: number,
    readonly length: number,
    vaddr: number,
    readonly umem: IbUmemOdp,
  ) {
    this.rkey = access & REMOTE_ACCESS ? lkey : 0;
    this.writable = ibAccessWritable(access);
    this.iova = hcaVa - (vaddr % PAGE_SIZE);
  }

  /** mr_check_range(): [addr, addr + len) inside the MR. */
  checkRange(addr: number, len: number): boolean {
    return !(addr < this.hcaVa || addr + len > this.hcaVa + this.length);
  }

  /** The umem pages [first, first + n) that [addr, addr + len) touches. */
  pages(addr: number, len: number): { first: number; n: number } {
    const first = Math.floor((addr - this.iova) / PAGE_SIZE);
    return { first, n: Math.floor((addr + len - 1 - this.iova) / PAGE_SIZE) - first + 1 };
  }

  /** rxe_odp_map_range_and_lock(): make pages [first, first + n) accessible; returns 0 with umem_mutex held. */
  mapRangeAndLock(first: number, n: number, write: boolean): number {
    const perm = ODP_READ_ALLOWED_BIT | (write ? ODP_WRITE_ALLOWED_BIT : 0);
    this.umem.mutexLock();
    if (this.umem.accessible(first, n, perm)) return 0;
    this.umem.mutexUnlock();
    // rxe_odp_do_pagefault_and_lock()
    const accessMask = ODP_READ_ALLOWED_BIT | (this.writable && write ? ODP_WRITE_ALLOWED_BIT : 0);
    const rc = this.umem.mapDmaAndLock(first, n, accessMask, true);
    if (rc < 0) return rc;
    // still not accessible after a successful fault (a write to a read-only umem)
    if (!this.umem.accessible(first, n, perm)) {
      this.umem.mutexUnlock();
      return -EFAULT;
    }
    return 0;
  }

  /** The copy of rxe_odp_mr_copy() (umem_mutex held, pages mapped): one word per page touched, then unlock. */
  copy(first: number, n: number, write: boolean, word: number): OpResult {
    const { m, mm } = this.env;
    const what = `${this.env.name} rdma_${write ? 'write' : 'read'} lkey ${hex(this.lkey)}`;
    let violation: string | undefined;
    let value = 0;
    for (let j = first; j < first + n; j++) {
      const pfn = this.umem.pfns[j]!;
      violation ??= notifierDmaViolation(m, mm, this.umem.vpn + j, pfn, write, what, KIND);
      if (write) deviceWrite(m, pfn, word);
      else if (j === first) value = deviceRead(m, pfn);
    }
    const pfn0 = this.umem.pfns[first]!;
    this.umem.mutexUnlock();
    return write
      ? { rc: n, detail: `wrote ${hex(word)} to ${n} pages from pfn ${pfn0}`, violation }
      : { rc: value, detail: `read ${hex(value)} from pfn ${pfn0}`, violation };
  }
}

/** The rxe device with its ODP MRs, as one verbs user sees it; checks its entries stay coherent. */
class RxeOdpDevice implements DeviceState {
  private readonly mrs = new Map<number, RxeOdpMr>(); // by lkey, in registration order
  private nextIndex = 1;

  constructor(private readonly env: DeviceEnv) {}

  step(op: DeviceOp): OpResult {
    const stale = this.staleEntries(`before ${op.op}`);
    const r = this.dispatch(op);
    return stale && !r.violation ? { ...r, violation: stale } : r;
  }

  private dispatch(op: DeviceOp): OpResult {
    switch (op.op) {
      case 'reg_mr':
        return this.regMr(op);
      case 'dereg_mr':
        return this.deregMr(op);
      case 'rdma_write':
        return this.mrCopy(op, true);
      case 'rdma_read':
        return this.mrCopy(op, false);
      case 'prefetch':
        return this.adviseMr(op);
      default:
        return { rc: -EINVAL, detail: `unknown op ${op.op}` };
    }
  }

  /** The MR an op names, and the hca address it names in it. */
  private findMr(op: DeviceOp): { mr?: RxeOdpMr; addr: number } {
    if (op.key === undefined && op.lkey === undefined && typeof op.mr === 'number') {
      // generated: the i-th live MR
      const list = [...this.mrs.values()];
      if (!list.length) return { addr: NaN };
      const mr = list[Math.abs(op.mr) % list.length]!;
      return { mr, addr: mr.hcaVa + intField(op, 'off', 0) };
    }
    const key = intField(op, op.key !== undefined ? 'key' : 'lkey');
    const remote = op.remote === true;
    for (const mr of this.mrs.values()) {
      if (remote ? mr.rkey !== 0 && mr.rkey === key : mr.lkey === key) return { mr, addr: intField(op, 'addr') };
    }
    return { addr: intField(op, 'addr') };
  }

  /** ib_uverbs_reg_mr() -> ib_check_mr_access(): -EINVAL for what rxe_odp_mr_init_user() is not given. */
  private static checkMrAccess(vaddr: number, len: number, hcaVa: number, access: number): OpResult | undefined {
    if (!isU64(vaddr) || !isU64(len) || !isU64(hcaVa) || !isU64(access)) return { rc: -EINVAL };
    if (vaddr % PAGE_SIZE !== hcaVa % PAGE_SIZE) return { rc: -EINVAL, detail: 'start and hca_va page offsets differ' };
    if (access & (IB_ACCESS_REMOTE_ATOMIC | IB_ACCESS_REMOTE_WRITE) && !(access & IB_ACCESS_LOCAL_WRITE)) {
      return { rc: -EINVAL, detail: 'remote write/atomic without local write' };
    }
    if (access & ~IB_ACCESS_SUPPORTED) return { rc: -EINVAL, detail: 'unknown access flags' };
    if (!(access & IB_ACCESS_ON_DEMAND)) {
      return { rc: -EINVAL, detail: 'not IB_ACCESS_ON_DEMAND: a pinned MR is rdma-umem' };
    }
    if (access & IB_ACCESS_HUGETLB) return { rc: -EINVAL, detail: 'IB_ACCESS_HUGETLB MRs are not modelled' };
    return undefined;
  }

  /** ib_uverbs_reg_mr() -> ib_check_mr_access() -> rxe_odp_mr_init_user() -> ib_umem_odp_get() */
  private regMr(op: DeviceOp): OpResult {
    const vaddr = intField(op, 'vaddr');
    const len = intField(op, 'len');
    const hcaVa = intField(op, 'hca_va', vaddr);
    const access = intField(op, 'access', ODP_DEFAULT_ACCESS);
    const bad = RxeOdpDevice.checkMrAccess(vaddr, len, hcaVa, access);
    if (bad) return bad;
    const vpn = Math.floor(vaddr / PAGE_SIZE);
    const nrPages = Math.ceil((vaddr + len) / PAGE_SIZE) - vpn;
    if (!nrPages) return { rc: -EINVAL, detail: 'empty MR (ndmas == 0)' }; // ib_init_umem_odp()
    const lkey = ((this.nextIndex << 8) | this.env.rand(256)) >>> 0;
    const mr = new RxeOdpMr(this.env, lkey, access, hcaVa, len, vaddr, new IbUmemOdp(this.env, lkey, vpn, nrPages));
    const rc = mr.umem.initUmemOdp();
    if (rc) return { rc, detail: `mmu_interval_notifier_insert: ${errname(rc)}` };
    this.nextIndex++;
    this.mrs.set(lkey, mr);
    // rxe_odp_init_pages(): map what is already present, without faulting (RXE_PAGEFAULT_SNAPSHOT)
    const mask = ODP_READ_ALLOWED_BIT | (mr.writable ? ODP_WRITE_ALLOWED_BIT : 0);
    const np = mr.umem.mapDmaAndLock(0, nrPages, mask, false);
    if (np < 0) {
      this.release(mr);
      return { rc: np, detail: `rxe_odp_init_pages: ${errname(np)}` };
    }
    mr.umem.mutexUnlock();
    const npages = mr.umem.npages;
    trace(
      this.env,
      `reg_mr lkey ${hex(lkey)} rkey ${hex(mr.rkey)} vpn ${vpn}+${nrPages} access ${hex(access)}: ` +
        `${npages} present pages mapped, nothing pinned`,
    );
    return { rc: lkey, detail: `lkey ${hex(lkey)} rkey ${hex(mr.rkey)}, ${npages}/${nrPages} pages mapped` };
  }

  /** ib_uverbs_dereg_mr() -> uobj_perform_destroy() -> rxe_dereg_mr() */
  private deregMr(op: DeviceOp): OpResult {
    const { mr } = this.findMr(op);
    if (!mr) return { rc: -ENOENT }; // uobj_perform_destroy(): no MR under that handle
    this.release(mr);
    trace(this.env, `dereg_mr lkey ${hex(mr.lkey)}`);
    return { rc: 0 };
  }

  /** ib_umem_odp_release() of the MR's umem, and the MR goes. */
  private release(mr: RxeOdpMr): void {
    mr.umem.release();
    this.mrs.delete(mr.lkey);
  }

  /** rxe_odp_mr_copy() for an RDMA WRITE (into the MR) or READ (from it): one word per page touched. */
  private mrCopy(op: DeviceOp, write: boolean): OpResult {
    const { mr, addr } = this.findMr(op);
    const len = intField(op, 'len', 4);
    const remote = op.remote === true;
    // lookup_mr() failed
    if (!mr) return { rc: -EINVAL, detail: `no MR for key ${String(op.key ?? op.lkey ?? op.mr)}` };
    const need = remote ? (write ? IB_ACCESS_REMOTE_WRITE : IB_ACCESS_REMOTE_READ) : write ? IB_ACCESS_LOCAL_WRITE : 0;
    if ((mr.access & need) !== need) {
      if (remote) return { rc: -EACCES, detail: 'IB_WC_REM_ACCESS_ERR' };
      return { rc: -EINVAL, detail: 'MR lacks IB_ACCESS_LOCAL_WRITE' };
    }
    if (!isU64(addr) || !Number.isSafeInteger(len)) return { rc: -EINVAL };
    if (len < 1) return { rc: -EINVAL };
    if (!mr.checkRange(addr, len)) return { rc: -EFAULT, detail: 'mr_check_range' };
    const { first, n } = mr.pages(addr, len);
    this.env.yieldPoint('odp:access');
    const rc = mr.mapRangeAndLock(first, n, write);
    if (rc < 0) return { rc, detail: `fault of lkey ${hex(mr.lkey)} page ${first}+${n}: ${errname(rc)}` };
    return mr.copy(first, n, write, intField(op, 'value', 0) >>> 0);
  }

  /** ib_uverbs_advise_mr() -> rxe_ib_advise_mr(): PREFETCH[_WRITE] through ib_umem_odp_map_dma_and_lock(). */
  private adviseMr(op: DeviceOp): OpResult {
    const { mr, addr } = this.findMr(op);
    if (!mr) return { rc: -EINVAL, detail: 'no MR for lkey' };
    const len = intField(op, 'len', PAGE_SIZE);
    if (!isU64(addr) || !Number.isSafeInteger(len) || len < 1) return { rc: -EINVAL };
    if (!mr.checkRange(addr, len)) return { rc: -EFAULT };
    const { first, n } = mr.pages(addr, len);
    const write = op.write === true && mr.writable;
    const np = mr.umem.mapDmaAndLock(first, n, ODP_READ_ALLOWED_BIT | (write ? ODP_WRITE_ALLOWED_BIT : 0), true);
    if (np < 0) return { rc: np };
    mr.umem.mutexUnlock();
    return { rc: 0, detail: `prefetched ${np} pages of lkey ${hex(mr.lkey)}` };
  }

  /** The device page tables' valid entries (dma_list), as inspect() reports them. */
  private entries(): HeldPage[] {
    const held: HeldPage[] = [];
    for (const mr of this.mrs.values()) mr.umem.entries(Math.floor(mr.iova / PAGE_SIZE), held);
    return held;
  }

  /**
   * A valid entry is one the device may DMA through at any time without a fault (a peer's RDMA READ
   * or WRITE needs no host involvement), so between operations every entry must map what the process
   * maps (checkNotifierCoherent): the invalidate callback clears an entry before its PTE changes, and a
   * fault installs only under a sequence no invalidation overtook. A stale entry is a DMA into the
   * wrong frame waiting to happen.
   */
  private staleEntries(when: string): string | undefined {
    const stale = checkNotifierCoherent(this.env.m, this.env.mm, this.entries(), KIND);
    if (!stale.length) return undefined;
    return `${this.env.name}: ${stale.length} stale entr${stale.length > 1 ? 'ies' : 'y'} ${when}: ${stale[0]}`;
  }

  inspect(): { held: HeldPage[]; accounting: Record<string, number> } {
    let npages = 0;
    let retries = 0;
    for (const mr of this.mrs.values()) {
      npages += mr.umem.npages;
      retries += mr.umem.retries;
    }
    return { held: this.entries(), accounting: { mrs: this.mrs.size, npages, retries } };
  }

  /** The ucontext goes: every MR is deregistered. */
  teardown(): OpResult {
    const stale = this.staleEntries('at close'); // every program is done (the harness's quiescence)
    const n = this.mrs.size;
    for (const mr of [...this.mrs.values()]) this.release(mr);
    return { rc: n, detail: `${n} ODP MRs deregistered`, violation: stale };
  }
}

function arbitrary(fc: typeof fcType, shape: GenShape): fcType.Arbitrary<DeviceOp> {
  const mrIdx = fc.nat(7);
  const off = fc.nat(shape.maxPages - 1).map((p) => p * PAGE_SIZE);
  // ODP MRs are often large (a whole buffer): a whole mapping now and then, so the process's zaps and migrations
  // land in it
  const whole = fc
    .constantFrom(...shape.maps.filter((x) => x.pages > 0))
    .map((mp) => ({ vaddr: { map: mp.name, off: 0 }, pages: mp.pages }));
  const range = fc.oneof({ weight: 1, arbitrary: arbRange(fc, shape) }, { weight: 1, arbitrary: whole });
  const reg = fc.record({ r: range, ro: fc.boolean() }).map(({ r, ro }): DeviceOp => ({
    op: 'reg_mr',
    vaddr: r.vaddr,
    len: r.pages * PAGE_SIZE,
    access: ro ? IB_ACCESS_REMOTE_READ | IB_ACCESS_ON_DEMAND : ODP_DEFAULT_ACCESS,
  }));
  // an access of one word, or of a run of pages from the MR's start (one word per page; past the MR's end it is
  // -EFAULT)
  const span = fc.oneof(
    { weight: 1, arbitrary: off.map((o) => ({ off: o })) },
    {
      weight: 1,
      arbitrary: fc.constantFrom(...shape.maps.map((x) => x.pages)).map((p) => ({ off: 0, len: p * PAGE_SIZE })),
    },
  );
  const wr = fc
    .record({ mr: mrIdx, at: span, value: arbWord(fc) })
    .map(({ mr, at, value }): DeviceOp => ({ op: 'rdma_write', mr, ...at, value }));
  const rd = fc.record({ mr: mrIdx, at: span }).map(({ mr, at }): DeviceOp => ({ op: 'rdma_read', mr, ...at }));
  const pf = fc
    .record({ mr: mrIdx, at: span, write: fc.boolean() })
    .map(({ mr, at, write }): DeviceOp => ({ op: 'prefetch', mr, len: PAGE_SIZE, ...at, write }));
  const dereg = mrIdx.map((i): DeviceOp => ({ op: 'dereg_mr', mr: i }));
  return fc.oneof(
    { weight: 2, arbitrary: reg },
    { weight: 4, arbitrary: wr },
    { weight: 3, arbitrary: rd },
    { weight: 1, arbitrary: pf },
    { weight: 1, arbitrary: dereg },
  );
}

export const rdmaOdp: DeviceModel = {
  name: NAME,
  summary:
    'RDMA on-demand-paging MRs: no pins; device page faults with mmu_interval_read_begin/retry, ' +
    'invalidation by notifier',
  source: 'drivers/infiniband/core/umem_odp.c, drivers/infiniband/sw/rxe/rxe_odp.c, mm/mmu_notifier.c',
  bugs: {
    'no-seq-retry':
      'installs faulted pfns without mmu_interval_read_retry(): ' +
      'a migration between the fault and the install leaves a stale pfn',
    'invalidate-noop':
      'the invalidate callback acknowledges without clearing device entries: ' +
      'DMA goes to pages already migrated or freed',
  },
  ops: {
    reg_mr: { vaddr: 'vaddr', len: 'int', hca_va: 'int', access: 'int' },
    // an MR by the i-th live one (mr), or by lkey/key (remote: the rkey) with a device address (addr)
    dereg_mr: { mr: 'int', key: 'int', lkey: 'int', remote: 'bool' },
    rdma_write: {
      mr: 'int',
      key: 'int',
      lkey: 'int',
      remote: 'bool',
      addr: 'int',
      off: 'int',
      len: 'int',
      value: 'int',
    },
    rdma_read: { mr: 'int', key: 'int', lkey: 'int', remote: 'bool', addr: 'int', off: 'int', len: 'int' },
    prefetch: {
      mr: 'int',
      key: 'int',
      lkey: 'int',
      remote: 'bool',
      addr: 'int',
      off: 'int',
      len: 'int',
      write: 'bool',
    },
  },
  setup: 'reg_mr', // the ODP MR its faults, prefetches and work requests use
  errnos: {
    // ib_uverbs_reg_mr() / ib_check_mr_access(): -EINVAL; ib_umem_odp_get() -> ib_init_umem_odp(): -EINVAL, -EOVERFLOW,
    // -ENOMEM, and mmu_interval_notifier_insert()'s -EOVERFLOW / -ENOMEM / -EINVAL; rxe_odp_init_pages() ->
    // ib_umem_odp_map_dma_and_lock(): -EINVAL (owner gone), -EFAULT, -EBUSY (hmm_range_fault timeout)
    reg_mr: [-EINVAL, -EOVERFLOW, -ENOMEM, -EFAULT, -EBUSY],
    // ib_uverbs_dereg_mr() -> uobj_perform_destroy(): -ENOENT for a handle that names no MR
    dereg_mr: [-ENOENT],
    // rxe_odp_mr_copy(): lookup_mr() fails -EINVAL, remote access denied -EACCES (pinlab's errnos for the completion
    // errors); ib_umem_odp_map_dma_and_lock(): -EFAULT (range, hmm_range_fault), -EINVAL, -EBUSY
    rdma_write: [-EINVAL, -EACCES, -EFAULT, -EBUSY],
    rdma_read: [-EINVAL, -EACCES, -EFAULT, -EBUSY],
    // ib_uverbs_advise_mr() -> rxe_ib_advise_mr(): -EINVAL (no MR), then ib_umem_odp_map_dma_and_lock(): -EFAULT,
    // -EINVAL, -EBUSY
    prefetch: [-EINVAL, -EFAULT, -EBUSY],
  },
  faultPoints: GUP_FAULT_POINTS,
  programLength: DEVICE_PROGRAM_LENGTH,
  arbitrary,
  create: (env) => new RxeOdpDevice(env),
};
