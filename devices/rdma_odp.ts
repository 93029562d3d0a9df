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
import { mmapReadLock, mmapReadUnlock, VM_IO, VM_PFNMAP, VM_READ, ptlLock, ptlUnlock, VM_FAULT_ERROR } from '../mm/mm_types';
import { MmuIntervalNotifier, MmuNotifierRange, mmuIntervalNotifierInsert, mmuIntervalNotifierRemove, mmuIntervalReadBegin,
  mmuIntervalReadRetry, mmuIntervalCheckRetry, mmuIntervalSetSeq, mmuIntervalNotifierMmAlive, mmuNotifierRangeBlockable,
  MMU_NOTIFY_EVENT_NAMES } from '../mm/mmu_notifier';
import { PAGE_SIZE, intField, isU64, hex, deviceRead, deviceWrite, arbRange, arbWord, notifierDmaViolation,
  checkNotifierCoherent, GUP_FAULT_POINTS, DEVICE_PROGRAM_LENGTH } from './common';

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
  return (access & (IB_ACCESS_LOCAL_WRITE | IB_ACCESS_REMOTE_WRITE | IB_ACCESS_REMOTE_ATOMIC | IB_ACCESS_MW_BIND)) !== 0;
}
export const ODP_DEFAULT_ACCESS = IB_ACCESS_LOCAL_WRITE | IB_ACCESS_REMOTE_READ | IB_ACCESS_REMOTE_WRITE | IB_ACCESS_ON_DEMAND;

// dma_list permission bits (include/rdma/ib_umem_odp.h)
export const ODP_READ_ALLOWED_BIT = 1 << 0;
export const ODP_WRITE_ALLOWED_BIT = 1 << 1;

/** hmm_range_fault() restarts of one walk (after faulting pages in) before -EBUSY. */
export const HMM_WALK_RESTARTS_MAX = 64;
/** ib_umem_odp_map_dma_and_lock() passes (hmm -EBUSY or a read_retry collision) before -EBUSY: the
 * kernel bounds the first by HMM_RANGE_DEFAULT_TIMEOUT (1 s) and retries the second unboundedly. */
export const ODP_MAP_RETRIES_MAX = 32;

/** One ODP memory region: struct rxe_mr + struct ib_umem_odp. */
interface OdpMr {
  lkey: number;
  rkey: number;
  access: number;
  writable: boolean; // ibAccessWritable()
  /** the MR's address on the wire (ibmr.iova) and length (ibmr.length), bytes */
  hcaVa: number;
  length: number;
  /** hcaVa rounded down to the page: the device address of the umem's first page */
  iova: number;
  /** umem start (ib_umem_start), in pages, and its length in pages */
  vpn: number;
  nrPages: number;
  /** dma_list: the device page table, pfn per page (-1 = none) and ODP_*_ALLOWED_BIT */
  pfns: Int32Array;
  perm: Uint8Array;
  npages: number;
  /** umem_mutex (the device's own lock; its callbacks run on the device's thread) */
  locked: boolean;
  sub: MmuIntervalNotifier;
  /** read_retry collisions seen by faults on this MR */
  retries: number;
}

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
      if (vb < 0 || flags & (VM_IO | VM_PFNMAP) || !(flags & VM_READ)) { // hmm_vma_walk_hole / hmm_vma_walk_test
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
        if (present) { r.pfns[i] = t.pfn; r.perm[i] = ODP_READ_ALLOWED_BIT; }
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

function create(env: DeviceEnv): DeviceState {
  const { m, mm } = env;
  const bugNoSeqRetry = env.bugs.has('no-seq-retry');
  const bugInvalidateNoop = env.bugs.has('invalidate-noop');
  const mrs = new Map<number, OdpMr>(); // by lkey, in registration order
  let nextIndex = 1;
  const log = (line: string): void => env.trace(`${env.name}: ${line}`);

  const mutexLock = (mr: OdpMr): void => {
    // the device's callbacks run on its own thread, never while it holds the lock (no preemption point inside)
    if (mr.locked) bug(`${env.name}: umem_mutex of lkey ${hex(mr.lkey)} taken twice (deadlock)`);
    mr.locked = true;
  };
  const mutexUnlock = (mr: OdpMr): void => {
    if (!mr.locked) bug(`${env.name}: umem_mutex of lkey ${hex(mr.lkey)} unlocked while not held`);
    mr.locked = false;
  };

  /** ib_umem_odp_unmap_dma_pages(): clear the entries of [start, end) (vpns), dirtying pages mapped for write. */
  const unmapDmaPages = (mr: OdpMr, start: number, end: number): number => {
    if (!mr.locked) bug(`${env.name}: ib_umem_odp_unmap_dma_pages without umem_mutex`);
    let n = 0;
    for (let vpn = Math.max(start, mr.vpn); vpn < Math.min(end, mr.vpn + mr.nrPages); vpn++) {
      const i = vpn - mr.vpn;
      const pfn = mr.pfns[i]!;
      if (pfn < 0) continue;
      if (mr.perm[i]! & ODP_WRITE_ALLOWED_BIT) Atomics.or(m.flags, m.compoundHead(pfn), PG_dirty); // set_page_dirty(head_page)
      mr.pfns[i] = -1;
      mr.perm[i] = 0;
      mr.npages--;
      n++;
    }
    return n;
  };

  /** rxe_ib_invalidate_range() */
  const invalidate = (mr: OdpMr, r: Readonly<MmuNotifierRange>, curSeq: number): boolean => {
    if (!mmuNotifierRangeBlockable(r)) return false;
    if (bugInvalidateNoop) return true; // BUG: acknowledges without touching the device page table
    mutexLock(mr);
    mmuIntervalSetSeq(mr.sub, curSeq);
    const n = unmapDmaPages(mr, r.start, r.end);
    mutexUnlock(mr);
    if (n) log(`invalidate ${MMU_NOTIFY_EVENT_NAMES[r.event]} lkey ${hex(mr.lkey)} vpn ${r.start}..${r.end}: ${n} entries cleared`);
    return true;
  };

  /**
   * ib_umem_odp_map_dma_and_lock(): pages [first, first + n) of the MR (indexes). On success returns
   * the number of pages mapped with umem_mutex HELD; on error returns -errno with it not held.
   */
  const mapDmaAndLock = (mr: OdpMr, first: number, n: number, accessMask: number, fault: boolean): number => {
    if (!accessMask) return -EINVAL;
    if (first < 0 || first + n > mr.nrPages) return -EFAULT;
    const range: HmmRange = { sub: mr.sub, notifierSeq: 0, start: mr.vpn + first, nrPages: n, fault,
      write: (accessMask & ODP_WRITE_ALLOWED_BIT) !== 0, pfns: new Int32Array(n), perm: new Uint8Array(n) };
    for (let pass = 0; ; pass++) {
      if (pass >= ODP_MAP_RETRIES_MAX) return -EBUSY;
      if (!mmuIntervalNotifierMmAlive(mr.sub)) return -EINVAL; // get_pid_task() / mmget_not_zero() failed
      const seq = mmuIntervalReadBegin(mr.sub);
      range.notifierSeq = seq;
      env.yieldPoint('odp:read-begin');
      mmapReadLock(m, mm);
      const rc = hmmRangeFault(m, mm, range);
      mmapReadUnlock(m, mm);
      if (rc === -EBUSY) continue;
      if (rc < 0) return rc;
      env.yieldPoint('odp:after-fault'); // the window an invalidation can hit: read_retry must see it
      mutexLock(mr);
      if (!bugNoSeqRetry && mmuIntervalReadRetry(mr.sub, seq)) {
        mutexUnlock(mr);
        mr.retries++;
        log(`fault lkey ${hex(mr.lkey)} vpn ${range.start}+${n}: collided with an invalidation (seq ${seq}), retrying`);
        continue;
      }
      for (let i = 0; i < n; i++) {
        const pfn = range.pfns[i]!;
        if (pfn < 0) continue; // only a snapshot (fault == false) leaves holes
        const j = first + i;
        const mask = fault ? accessMask : range.perm[i]!;
        if (mr.pfns[j]! >= 0) { // already mapped: a non-invalidating transition (read-only to writable); resync the flags
          mr.perm[j] = mask;
          continue;
        }
        mr.pfns[j] = pfn;
        mr.perm[j] = mask;
        mr.npages++;
      }
      return n;
    }
  };

  /** rxe_odp_map_range_and_lock(): make [addr, addr + len) of the MR accessible with perm; returns 0 with umem_mutex held. */
  const mapRangeAndLock = (mr: OdpMr, first: number, n: number, write: boolean): number => {
    const perm = ODP_READ_ALLOWED_BIT | (write ? ODP_WRITE_ALLOWED_BIT : 0);
    const missing = (): boolean => {
      for (let j = first; j < first + n; j++) if (mr.pfns[j]! < 0 || (mr.perm[j]! & perm) !== perm) return true;
      return false;
    };
    mutexLock(mr);
    if (!missing()) return 0;
    mutexUnlock(mr);
    const accessMask = ODP_READ_ALLOWED_BIT | (mr.writable && write ? ODP_WRITE_ALLOWED_BIT : 0); // rxe_odp_do_pagefault_and_lock()
    const rc = mapDmaAndLock(mr, first, n, accessMask, true);
    if (rc < 0) return rc;
    if (missing()) { // still not accessible after a successful fault (a write to a read-only umem)
      mutexUnlock(mr);
      return -EFAULT;
    }
    return 0;
  };

  const findMr = (op: DeviceOp): { mr?: OdpMr; addr: number } => {
    if (op.key === undefined && op.lkey === undefined && typeof op.mr === 'number') { // generated: the i-th live MR
      const list = [...mrs.values()];
      if (!list.length) return { addr: NaN };
      const mr = list[Math.abs(op.mr) % list.length]!;
      return { mr, addr: mr.hcaVa + intField(op, 'off', 0) };
    }
    const key = intField(op, op.key !== undefined ? 'key' : 'lkey');
    const remote = op.remote === true;
    for (const mr of mrs.values()) if (remote ? mr.rkey !== 0 && mr.rkey === key : mr.lkey === key) return { mr, addr: intField(op, 'addr') };
    return { addr: intField(op, 'addr') };
  };

  /** rxe_odp_mr_copy() for an RDMA WRITE (into the MR) or READ (from it): one word per page touched. */
  const rdma = (op: DeviceOp, write: boolean): OpResult => {
    const { mr, addr } = findMr(op);
    const len = intField(op, 'len', 4);
    const remote = op.remote === true;
    if (!mr) return { rc: -EINVAL, detail: `no MR for key ${String(op.key ?? op.lkey ?? op.mr)}` }; // lookup_mr() failed
    const need = remote ? (write ? IB_ACCESS_REMOTE_WRITE : IB_ACCESS_REMOTE_READ) : write ? IB_ACCESS_LOCAL_WRITE : 0;
    if ((mr.access & need) !== need) return remote ? { rc: -EACCES, detail: 'IB_WC_REM_ACCESS_ERR' } : { rc: -EINVAL, detail: 'MR lacks IB_ACCESS_LOCAL_WRITE' };
    if (!isU64(addr) || !Number.isSafeInteger(len)) return { rc: -EINVAL };
    if (len < 1) return { rc: -EINVAL };
    if (addr < mr.hcaVa || addr + len > mr.hcaVa + mr.length) return { rc: -EFAULT, detail: 'mr_check_range' };
    const first = Math.floor((addr - mr.iova) / PAGE_SIZE);
    const n = Math.floor((addr + len - 1 - mr.iova) / PAGE_SIZE) - first + 1;
    env.yieldPoint('odp:access');
    const rc = mapRangeAndLock(mr, first, n, write);
    if (rc < 0) return { rc, detail: `fault of lkey ${hex(mr.lkey)} page ${first}+${n}: ${errname(rc)}` };
    let violation: string | undefined;
    let value = 0;
    const word = intField(op, 'value', 0) >>> 0;
    for (let j = first; j < first + n; j++) {
      const pfn = mr.pfns[j]!;
      violation ??= notifierDmaViolation(m, mm, mr.vpn + j, pfn, write, `${env.name} rdma_${write ? 'write' : 'read'} lkey ${hex(mr.lkey)}`, 'ODP');
      if (write) deviceWrite(m, pfn, word);
      else if (j === first) value = deviceRead(m, pfn);
    }
    const pfn0 = mr.pfns[first]!;
    mutexUnlock(mr);
    return write
      ? { rc: n, detail: `wrote ${hex(word)} to ${n} pages from pfn ${pfn0}`, violation }
      : { rc: value, detail: `read ${hex(value)} from pfn ${pfn0}`, violation };
  };

  /** ib_uverbs_reg_mr() -> ib_check_mr_access() -> rxe_odp_mr_init_user() -> ib_umem_odp_get() */
  const regMr = (op: DeviceOp): OpResult => {
    const vaddr = intField(op, 'vaddr');
    const len = intField(op, 'len');
    const hcaVa = intField(op, 'hca_va', vaddr);
    const access = intField(op, 'access', ODP_DEFAULT_ACCESS);
    if (!isU64(vaddr) || !isU64(len) || !isU64(hcaVa) || !isU64(access)) return { rc: -EINVAL };
    if (vaddr % PAGE_SIZE !== hcaVa % PAGE_SIZE) return { rc: -EINVAL, detail: 'start and hca_va page offsets differ' };
    if (access & (IB_ACCESS_REMOTE_ATOMIC | IB_ACCESS_REMOTE_WRITE) && !(access & IB_ACCESS_LOCAL_WRITE)) return { rc: -EINVAL, detail: 'remote write/atomic without local write' };
    if (access & ~IB_ACCESS_SUPPORTED) return { rc: -EINVAL, detail: 'unknown access flags' };
    if (!(access & IB_ACCESS_ON_DEMAND)) return { rc: -EINVAL, detail: 'not IB_ACCESS_ON_DEMAND: a pinned MR is rdma-umem' };
    if (access & IB_ACCESS_HUGETLB) return { rc: -EINVAL, detail: 'IB_ACCESS_HUGETLB MRs are not modelled' };
    const vpn = Math.floor(vaddr / PAGE_SIZE);
    const nrPages = Math.ceil((vaddr + len) / PAGE_SIZE) - vpn;
    if (!nrPages) return { rc: -EINVAL, detail: 'empty MR (ndmas == 0)' }; // ib_init_umem_odp()
    const index = nextIndex;
    const lkey = ((index << 8) | env.rand(256)) >>> 0;
    const mr: OdpMr = { lkey, rkey: access & REMOTE_ACCESS ? lkey : 0, access, writable: ibAccessWritable(access),
      hcaVa, length: len, iova: hcaVa - (vaddr % PAGE_SIZE), vpn, nrPages, pfns: new Int32Array(nrPages).fill(-1), perm: new Uint8Array(nrPages), npages: 0,
      locked: false, sub: new MmuIntervalNotifier({ invalidate: (_s, r, cur) => invalidate(mr, r, cur) }), retries: 0 };
    const rc = mmuIntervalNotifierInsert(mr.sub, m, mm, vpn, nrPages);
    if (rc) return { rc, detail: `mmu_interval_notifier_insert: ${errname(rc)}` };
    nextIndex++;
    mrs.set(lkey, mr);
    // rxe_odp_init_pages(): map what is already present, without faulting (RXE_PAGEFAULT_SNAPSHOT)
    const np = mapDmaAndLock(mr, 0, nrPages, ODP_READ_ALLOWED_BIT | (mr.writable ? ODP_WRITE_ALLOWED_BIT : 0), false);
    if (np < 0) {
      release(mr);
      return { rc: np, detail: `rxe_odp_init_pages: ${errname(np)}` };
    }
    mutexUnlock(mr);
    log(`reg_mr lkey ${hex(lkey)} rkey ${hex(mr.rkey)} vpn ${vpn}+${nrPages} access ${hex(access)}: ${mr.npages} present pages mapped, nothing pinned`);
    return { rc: lkey, detail: `lkey ${hex(lkey)} rkey ${hex(mr.rkey)}, ${mr.npages}/${nrPages} pages mapped` };
  };

  /** ib_umem_odp_release(): clear the device page table, then remove the notifier. */
  const release = (mr: OdpMr): void => {
    mutexLock(mr);
    unmapDmaPages(mr, mr.vpn, mr.vpn + mr.nrPages);
    mutexUnlock(mr);
    mmuIntervalNotifierRemove(mr.sub);
    mrs.delete(mr.lkey);
  };

  const prefetch = (op: DeviceOp): OpResult => {
    const { mr, addr } = findMr(op);
    if (!mr) return { rc: -EINVAL, detail: 'no MR for lkey' };
    const len = intField(op, 'len', PAGE_SIZE);
    if (!isU64(addr) || !Number.isSafeInteger(len) || len < 1) return { rc: -EINVAL };
    if (addr < mr.hcaVa || addr + len > mr.hcaVa + mr.length) return { rc: -EFAULT };
    const first = Math.floor((addr - mr.iova) / PAGE_SIZE);
    const n = Math.floor((addr + len - 1 - mr.iova) / PAGE_SIZE) - first + 1;
    const write = op.write === true && mr.writable;
    const np = mapDmaAndLock(mr, first, n, ODP_READ_ALLOWED_BIT | (write ? ODP_WRITE_ALLOWED_BIT : 0), true);
    if (np < 0) return { rc: np };
    mutexUnlock(mr);
    return { rc: 0, detail: `prefetched ${np} pages of lkey ${hex(mr.lkey)}` };
  };

  const step = (op: DeviceOp): OpResult => {
    switch (op.op) {
      case 'reg_mr': return regMr(op);
      case 'dereg_mr': {
        const { mr } = findMr(op);
        if (!mr) return { rc: -ENOENT }; // uobj_perform_destroy(): no MR under that handle
        release(mr);
        log(`dereg_mr lkey ${hex(mr.lkey)}`);
        return { rc: 0 };
      }
      case 'rdma_write': return rdma(op, true);
      case 'rdma_read': return rdma(op, false);
      case 'prefetch': return prefetch(op);
      default: return { rc: -EINVAL, detail: `unknown op ${op.op}` };
    }
  };

  /** The device page table's valid entries (dma_list), as inspect() reports them. */
  const entries = (): HeldPage[] => {
    const held: HeldPage[] = [];
    for (const mr of mrs.values()) {
      const iovaPage = Math.floor(mr.iova / PAGE_SIZE);
      for (let i = 0; i < mr.nrPages; i++) if (mr.pfns[i]! >= 0) held.push({ iova: iovaPage + i, vpn: mr.vpn + i, pfn: mr.pfns[i]!, longterm: false });
    }
    return held;
  };

  /**
   * A valid entry is one the device may DMA through at any time without a fault (a peer's RDMA READ
   * or WRITE needs no host involvement), so between operations every entry must map what the process
   * maps (checkNotifierCoherent): the invalidate callback clears an entry before its PTE changes, and a
   * fault installs only under a sequence no invalidation overtook. A stale entry is a DMA into the
   * wrong frame waiting to happen.
   */
  const staleEntries = (when: string): string | undefined => {
    const stale = checkNotifierCoherent(m, mm, entries(), 'ODP');
    return stale.length ? `${env.name}: ${stale.length} stale entr${stale.length > 1 ? 'ies' : 'y'} ${when}: ${stale[0]}` : undefined;
  };

  return {
    step(op) {
      const stale = staleEntries(`before ${op.op}`);
      const r = step(op);
      return stale && !r.violation ? { ...r, violation: stale } : r;
    },
    inspect() {
      let npages = 0;
      let retries = 0;
      for (const mr of mrs.values()) {
        npages += mr.npages;
        retries += mr.retries;
      }
      return { held: entries(), accounting: { mrs: mrs.size, npages, retries } };
    },
    teardown() {
      const stale = staleEntries('at close'); // every program is done (the harness's quiescence)
      const n = mrs.size;
      for (const mr of [...mrs.values()]) release(mr);
      return { rc: n, detail: `${n} ODP MRs deregistered`, violation: stale };
    },
  };
}

function arbitrary(fc: typeof fcType, shape: GenShape): fcType.Arbitrary<DeviceOp> {
  const mrIdx = fc.nat(7);
  const off = fc.nat(shape.maxPages - 1).map((p) => p * PAGE_SIZE);
  // ODP MRs are often large (a whole buffer): a whole mapping now and then, so the process's zaps and migrations land in it
  const whole = fc.constantFrom(...shape.maps.filter((x) => x.pages > 0)).map((mp) => ({ vaddr: { map: mp.name, off: 0 }, pages: mp.pages }));
  const range = fc.oneof({ weight: 1, arbitrary: arbRange(fc, shape) }, { weight: 1, arbitrary: whole });
  const reg = fc.record({ r: range, ro: fc.boolean() }).map(({ r, ro }): DeviceOp => ({ op: 'reg_mr', vaddr: r.vaddr,
    len: r.pages * PAGE_SIZE, access: ro ? IB_ACCESS_REMOTE_READ | IB_ACCESS_ON_DEMAND : ODP_DEFAULT_ACCESS }));
  // an access of one word, or of a run of pages from the MR's start (one word per page; past the MR's end it is -EFAULT)
  const span = fc.oneof({ weight: 1, arbitrary: off.map((o) => ({ off: o })) },
    { weight: 1, arbitrary: fc.constantFrom(...shape.maps.map((x) => x.pages)).map((p) => ({ off: 0, len: p * PAGE_SIZE })) });
  const wr = fc.record({ mr: mrIdx, at: span, value: arbWord(fc) }).map(({ mr, at, value }): DeviceOp => ({ op: 'rdma_write', mr, ...at, value }));
  const rd = fc.record({ mr: mrIdx, at: span }).map(({ mr, at }): DeviceOp => ({ op: 'rdma_read', mr, ...at }));
  const pf = fc.record({ mr: mrIdx, at: span, write: fc.boolean() }).map(({ mr, at, write }): DeviceOp => ({ op: 'prefetch', mr, len: PAGE_SIZE, ...at, write }));
  const dereg = mrIdx.map((i): DeviceOp => ({ op: 'dereg_mr', mr: i }));
  return fc.oneof({ weight: 2, arbitrary: reg }, { weight: 4, arbitrary: wr }, { weight: 3, arbitrary: rd }, { weight: 1, arbitrary: pf },
    { weight: 1, arbitrary: dereg });
}

export const rdmaOdp: DeviceModel = {
  faultPoints: GUP_FAULT_POINTS,
  programLength: DEVICE_PROGRAM_LENGTH,
  name: NAME,
  summary: 'RDMA on-demand-paging MRs: no pins; device page faults with mmu_interval_read_begin/retry, invalidation by notifier',
  source: 'drivers/infiniband/core/umem_odp.c, drivers/infiniband/sw/rxe/rxe_odp.c, mm/mmu_notifier.c',
  bugs: {
    'no-seq-retry': 'installs faulted pfns without mmu_interval_read_retry(): a migration between the fault and the install leaves a stale pfn',
    'invalidate-noop': 'the invalidate callback acknowledges without clearing device entries: DMA goes to pages already migrated or freed',
  },
  create,
  arbitrary,
  ops: {
    reg_mr: { vaddr: 'vaddr', len: 'int', hca_va: 'int', access: 'int' },
    // an MR by the i-th live one (mr), or by lkey/key (remote: the rkey) with a device address (addr)
    dereg_mr: { mr: 'int', key: 'int', lkey: 'int', remote: 'bool' },
    rdma_write: { mr: 'int', key: 'int', lkey: 'int', remote: 'bool', addr: 'int', off: 'int', len: 'int', value: 'int' },
    rdma_read: { mr: 'int', key: 'int', lkey: 'int', remote: 'bool', addr: 'int', off: 'int', len: 'int' },
    prefetch: { mr: 'int', key: 'int', lkey: 'int', remote: 'bool', addr: 'int', off: 'int', len: 'int', write: 'bool' },
  },
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
    // ib_uverbs_advise_mr() -> rxe_ib_advise_mr(): -EINVAL (no MR), then ib_umem_odp_map_dma_and_lock(): -EFAULT, -EINVAL, -EBUSY
    prefetch: [-EINVAL, -EFAULT, -EBUSY],
  },
};
