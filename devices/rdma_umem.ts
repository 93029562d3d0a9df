// rdma-umem: an RDMA NIC with pinned memory regions, shaped after rxe (Soft-RoCE) over ib_umem
// (drivers/infiniband/core/umem.c ib_umem_get / ib_umem_release, uverbs_cmd.c ib_uverbs_reg_mr,
// sw/rxe/rxe_mr.c; 6.12). reg_mr charges mm->pinned_vm first, atomically (atomic64_add_return, then
// undo over RLIMIT_MEMLOCK without CAP_IPC_LOCK: -ENOMEM; a zero limit without the capability is
// -EPERM), then pins with pin_user_pages_fast(FOLL_LONGTERM | FOLL_WRITE if writable) in chunks of
// 512. Work requests look the MR up by lkey/rkey and hold a reference while in flight; dereg_mr
// invalidates the keys at once but the umem (the pins) is released only when the last in-flight
// request completes (rxe_mr_cleanup after the pool reference drops).
//
// Ops (bytes): reg_mr {vaddr, length, hca_va?, access: [...]} -> rc = MR handle; dereg_mr {mr};
// post {mr, via: 'lkey' | 'rkey', kind: 'write' | 'read', offset, value} (or {key} for a raw key),
// which queues the request holding an MR reference; complete {} runs the oldest queued request: the
// DMA into / out of the pinned page (rc = the word read, or 0). Access names: local_write,
// remote_write, remote_read, remote_atomic, mw_bind, on_demand. Completion errors are errnos:
// -EINVAL no such key (IBV_WC_LOC_PROT_ERR / REM_ACCESS_ERR), -EACCES access, -EFAULT range.

import type * as fcType from 'fast-check';
import type { DeviceModel, DeviceEnv, DeviceState, DeviceOp, OpResult, GenShape, HeldPage } from './device';
import { kernelOf } from './device';
import { releaseAtLeast, type KernelVariant } from '../mm/variants';
import type { Memmap } from '../mm/memmap';
import { pinUserPagesFast, unpinUserPageRangeDirtyLock, FOLL_LONGTERM, FOLL_WRITE } from '../mm/gup';
import { KBuf, getFreePage, kvfree } from '../mm/slab';
import { GFP_KERNEL } from '../mm/gfp';
import { EINVAL, EPERM, ENOMEM, EOPNOTSUPP, EFAULT, EACCES, ENOENT, EINTR, errname } from '../mm/errno';
import { own } from '../mm/own';
import {
  PAGE_SIZE,
  intField,
  isU64,
  canDoMlock,
  capableIpcLock,
  rlimitMemlock,
  pinnedVmAddReturn,
  memlockCounters,
  dmaTargetViolation,
  deviceRead,
  deviceWrite,
  hex,
  arbRange,
  arbRef,
  linkOps,
  type LinkRule,
  arbWord,
  trace,
  memlockViolation,
  GUP_FAULT_POINTS,
  DEVICE_PROGRAM_LENGTH,
} from './common';

const NAME = 'rdma-umem';

// enum ib_access_flags
export const IB_ACCESS_LOCAL_WRITE = 1;
export const IB_ACCESS_REMOTE_WRITE = 2;
export const IB_ACCESS_REMOTE_READ = 4;
export const IB_ACCESS_REMOTE_ATOMIC = 8;
export const IB_ACCESS_MW_BIND = 16;
export const IB_ACCESS_ON_DEMAND = 64;
const ACCESS_NAMES: Record<string, number> = {
  local_write: IB_ACCESS_LOCAL_WRITE,
  remote_write: IB_ACCESS_REMOTE_WRITE,
  remote_read: IB_ACCESS_REMOTE_READ,
  remote_atomic: IB_ACCESS_REMOTE_ATOMIC,
  mw_bind: IB_ACCESS_MW_BIND,
  on_demand: IB_ACCESS_ON_DEMAND,
};
const IB_ACCESS_REMOTE = IB_ACCESS_REMOTE_WRITE | IB_ACCESS_REMOTE_READ | IB_ACCESS_REMOTE_ATOMIC;
/** ib_umem_get() pins PAGE_SIZE / sizeof(struct page *) pages per pin_user_pages_fast() call. */
export const UMEM_PIN_CHUNK = 512;

/** ib_access_writable() (include/rdma/ib_umem.h) */
function ibAccessWritable(access: number): boolean {
  const writeBits = IB_ACCESS_LOCAL_WRITE | IB_ACCESS_REMOTE_WRITE | IB_ACCESS_REMOTE_ATOMIC | IB_ACCESS_MW_BIND;
  return (access & writeBits) !== 0;
}

/** ib_umem_num_pages() */
function numPages(addr: number, size: number): number {
  return Math.ceil((addr + size) / PAGE_SIZE) - Math.floor(addr / PAGE_SIZE);
}

/** The broken memlock promise of the charge a reg_mr kept (common.ts memlockViolation), reported with its result. */
interface Charge {
  over?: ReturnType<typeof memlockViolation>;
}

/** SG_MAX_SINGLE_ALLOC: scatterlist entries in one page (a chained chunk gives its last to the chain link). */
const SG_MAX_SINGLE_ALLOC = PAGE_SIZE / 32;

/**
 * The pages of umem->sgt_append for these pinned pages (sg_alloc_append_table_from_pages()): one entry per
 * physically contiguous run (rxe uses virtual DMA, so ib_dma_max_seg_size() is UINT_MAX), in chunks of
 * SG_MAX_SINGLE_ALLOC; a full chunk is a page (sg_kmalloc(): __get_free_page()), a shorter last one a
 * kmalloc() from a slab cache (no frames in pinlab).
 */
export function sgTablePages(pages: number[]): number {
  let nents = pages.length ? 1 : 0;
  for (let i = 1; i < pages.length; i++) if (pages[i] !== pages[i - 1]! + 1) nents++;
  let n = 0;
  for (; nents > SG_MAX_SINGLE_ALLOC; nents -= SG_MAX_SINGLE_ALLOC - 1) n++;
  return n + (nents === SG_MAX_SINGLE_ALLOC ? 1 : 0);
}

/** struct ib_umem: the user pages one MR pinned, and the pinned_vm charge they carry. */
class IbUmem {
  released = false;
  /** the scatter table's pages */
  private sg: KBuf[] = [];

  /** address: the user address the umem starts at, bytes; pages: from the page holding it */
  constructor(
    private readonly env: DeviceEnv,
    readonly address: number,
    readonly pages: number[],
    readonly writable: boolean,
  ) {}

  /** ib_umem_get(): the pinned umem or -errno; nothing pinned or charged on error. */
  static get(env: DeviceEnv, addr: number, size: number, access: number, charge: Charge): IbUmem | number {
    const { m, mm } = env;
    if (!isU64(addr + size) || !isU64(Math.ceil((addr + size) / PAGE_SIZE) * PAGE_SIZE)) return -EINVAL;
    if (!canDoMlock(m, mm)) return -EPERM;
    if (access & IB_ACCESS_ON_DEMAND) return -EOPNOTSUPP;
    // page_list: a page of struct page pointers for the pin loop (__get_free_page(GFP_KERNEL))
    const pageList = getFreePage(m, GFP_KERNEL);
    if (!pageList) return -ENOMEM;
    const pages = IbUmem.accountAndPin(env, addr, size, access, charge);
    kvfree(m, pageList);
    if (typeof pages === 'number') return pages;
    const writable = ibAccessWritable(access);
    const umem = new IbUmem(env, addr, pages, writable);
    // the scatter table, appended to as the loop pins (GFP_KERNEL); without it: umem_release, -ENOMEM
    for (let i = sgTablePages(pages); i > 0; i--) {
      const b = getFreePage(m, GFP_KERNEL);
      if (!b) {
        umem.release();
        return -ENOMEM;
      }
      umem.sg.push(b);
    }
    return umem;
  }

  /** ib_umem_get() between its page_list and its scatter table: the checks, the charge, the pin loop. */
  private static accountAndPin(
    env: DeviceEnv,
    addr: number,
    size: number,
    access: number,
    charge: Charge,
  ): number[] | number {
    const npages = numPages(addr, size);
    if (!size || npages <= 0 || npages > 0xffffffff) return -EINVAL;
    const rc = IbUmem.accountPinned(env, npages, charge);
    if (rc) return rc;
    env.yieldPoint(`${NAME}:accounted-not-pinned`);
    const flags = FOLL_LONGTERM | (ibAccessWritable(access) ? FOLL_WRITE : 0);
    return IbUmem.pinPages(env, Math.floor(addr / PAGE_SIZE), npages, flags);
  }

  /** The pinned_vm charge of ib_umem_get(): 0 or -ENOMEM. The bug variant is the old siw check-then-add. */
  private static accountPinned(env: DeviceEnv, npages: number, charge: Charge): number {
    const { m, mm } = env;
    const limit = rlimitMemlock(m, mm);
    const cap = capableIpcLock(m, mm);
    const what = `${env.name} reg_mr of ${npages} page(s)`;
    if (env.bugs.has('check-then-add')) {
      if (memlockCounters(m, mm).pinned_vm + npages > limit && !cap) return -ENOMEM;
      env.yieldPoint(`${NAME}:check-then-add`); // another registration can pass the same check here
      charge.over = memlockViolation(m, mm, 'pinned_vm', pinnedVmAddReturn(m, mm, npages), what);
      return 0;
    }
    const after = pinnedVmAddReturn(m, mm, npages); // atomic64_add_return(), undone over the limit
    if (after > limit && !cap) {
      pinnedVmAddReturn(m, mm, -npages);
      return -ENOMEM;
    }
    charge.over = memlockViolation(m, mm, 'pinned_vm', after, what);
    return 0;
  }

  /** The pin loop of ib_umem_get(): pin_user_pages_fast() by chunks; on failure unpin and uncharge (umem_release). */
  private static pinPages(env: DeviceEnv, vpn: number, npages: number, flags: number): number[] | number {
    const { m, mm } = env;
    const pages: number[] = [];
    for (let left = npages; left > 0;) {
      const chunk: number[] = new Array(Math.min(left, UMEM_PIN_CHUNK)).fill(-1);
      const pinned = pinUserPagesFast(m, mm, vpn, chunk.length, flags, chunk);
      if (pinned <= 0) {
        // umem_release: __ib_umem_release(device, umem, 0), the pages appended to the sg table so far
        unpinSgRanges(m, pages, false);
        pinnedVmAddReturn(m, mm, -npages);
        return pinned < 0 ? pinned : -EFAULT;
      }
      pages.push(...chunk.slice(0, pinned));
      vpn += pinned;
      left -= pinned;
    }
    return pages;
  }

  /** ib_umem_release(): unpin (dirty if writable) and uncharge pinned_vm. */
  release(): number {
    if (this.released) return 0;
    for (const b of this.sg) kvfree(this.env.m, b); // sg_free_append_table()
    this.sg = [];
    unpinSgRanges(this.env.m, this.pages, this.writable);
    pinnedVmAddReturn(this.env.m, this.env.mm, -this.pages.length);
    this.released = true;
    return this.pages.length;
  }
}

/**
 * __ib_umem_release()'s loop: the sg table holds the pinned pages as runs of physically contiguous
 * ones (sg_alloc_append_table_from_pages() merges them), each unpinned with
 * unpin_user_page_range_dirty_lock(sg_page(sg), DIV_ROUND_UP(sg->length, PAGE_SIZE), make_dirty).
 */
function unpinSgRanges(m: Memmap, pages: number[], makeDirty: boolean): void {
  for (let i = 0; i < pages.length;) {
    let n = 1;
    while (i + n < pages.length && pages[i + n] === pages[i]! + n) n++;
    unpinUserPageRangeDirtyLock(m, pages[i]!, n, makeDirty);
    i += n;
  }
}

/** struct rxe_mr: keys, access, the MR's iova and length (bytes), its umem, and the requests holding it. */
class RxeMr {
  /** 0 when no remote access was asked for */
  readonly rkey: number;
  /** RXE_MR_STATE_VALID until dereg */
  valid = true;
  /** in-flight work requests holding a reference */
  refs = 0;

  constructor(
    readonly handle: number,
    readonly lkey: number,
    readonly access: number,
    readonly iova: number,
    readonly length: number,
    readonly umem: IbUmem,
  ) {
    this.rkey = access & IB_ACCESS_REMOTE ? lkey : 0;
  }

  /** The pinned frame of hca address iova (rxe_mr_copy()'s page lookup). */
  pfnAt(iova: number): number {
    return this.umem.pages[Math.floor(((this.umem.address % PAGE_SIZE) + (iova - this.iova)) / PAGE_SIZE)]!;
  }
}

/** A work request in flight: struct rxe_send_wqe reduced to one word. */
interface Wqe {
  mr: RxeMr;
  kind: 'write' | 'read';
  iova: number;
  value: number;
}

/** ib_access_flags from the op's access names, or the first name that is none. */
function accessFlags(op: DeviceOp): number | string {
  const names = Array.isArray(op.access) ? op.access : [];
  let access = 0;
  for (const n of names) {
    const bit = typeof n === 'string' ? own(ACCESS_NAMES, n) : undefined;
    if (bit === undefined) return String(n);
    access |= bit;
  }
  return access;
}

/**
 * ib_check_mr_access() and ib_uverbs_reg_mr()'s own checks: the refusal, or undefined. ON_DEMAND on a
 * device without IBK_ON_DEMAND_PAGING: -EINVAL up to 6.1, -EOPNOTSUPP after ("RDMA/core: Return
 * -EOPNOTSUPP for ODP unsupported device").
 */
function checkMrAccess(
  kernel: KernelVariant,
  vaddr: number,
  length: number,
  hcaVa: number,
  access: number,
): OpResult | undefined {
  if (!isU64(vaddr) || !isU64(length) || !isU64(hcaVa)) return { rc: -EINVAL };
  if (vaddr % PAGE_SIZE !== hcaVa % PAGE_SIZE) return { rc: -EINVAL, detail: 'start and hca_va page offsets differ' };
  if (access & (IB_ACCESS_REMOTE_WRITE | IB_ACCESS_REMOTE_ATOMIC) && !(access & IB_ACCESS_LOCAL_WRITE)) {
    return { rc: -EINVAL, detail: 'remote write/atomic without local write' };
  }
  if (access & IB_ACCESS_ON_DEMAND) {
    return { rc: releaseAtLeast(kernel, 6, 2) ? -EOPNOTSUPP : -EINVAL, detail: 'no IBK_ON_DEMAND_PAGING' };
  }
  return undefined;
}

/** The rxe device as one verbs user sees it: its MRs by handle and its send queue. */
class RxeDevice implements DeviceState {
  private readonly mrs = new Map<number, RxeMr>();
  private readonly queue: Wqe[] = [];
  private nextHandle = 0;
  private readonly charge: Charge = {};

  constructor(private readonly env: DeviceEnv) {}

  step(op: DeviceOp): OpResult {
    switch (op.op) {
      case 'reg_mr':
        return this.regMr(op);
      case 'dereg_mr':
        return this.deregMr(op);
      case 'post':
        return this.post(op);
      case 'complete':
        return this.complete();
      default:
        return { rc: -EINVAL, detail: `unknown op ${op.op}` };
    }
  }

  /** ib_uverbs_reg_mr() -> ib_check_mr_access() -> ib_umem_get() -> rxe_reg_user_mr(). */
  private regMr(op: DeviceOp): OpResult {
    const vaddr = intField(op, 'vaddr');
    const length = intField(op, 'length');
    const hcaVa = intField(op, 'hca_va', vaddr);
    const access = accessFlags(op);
    if (typeof access === 'string') return { rc: -EINVAL, detail: `unknown access ${access}` };
    const bad = checkMrAccess(kernelOf(this.env), vaddr, length, hcaVa, access);
    if (bad) return bad;
    this.charge.over = undefined;
    const umem = IbUmem.get(this.env, vaddr, length, access, this.charge);
    const over = this.charge.over ?? {};
    if (typeof umem === 'number') return { rc: umem, detail: `ib_umem_get: ${errname(umem)}`, ...over };
    const handle = this.nextHandle++;
    const lkey = ((handle + 1) << 8) | this.env.rand(256); // rxe: pool index << 8 | a random byte
    const mr = new RxeMr(handle, lkey, access, hcaVa, length, umem);
    this.mrs.set(handle, mr);
    const detail = `mr ${handle}: lkey ${hex(lkey)} rkey ${hex(mr.rkey)}, ${umem.pages.length} page(s) pinned`;
    return { rc: handle, detail, ...over };
  }

  /** ib_umem_release() of the MR's umem, and the MR leaves the pool. */
  private umemRelease(mr: RxeMr): number {
    if (mr.umem.released) return 0;
    const n = mr.umem.release();
    this.mrs.delete(mr.handle);
    return n;
  }

  /** rxe_dereg_mr(): keys invalid at once; the umem goes when the last reference does. */
  private deregMr(op: DeviceOp): OpResult {
    const mr = this.mrs.get(intField(op, 'mr'));
    // uobj_perform_destroy(): lookup_get_idr_uobject() finds no handle
    if (!mr || !mr.valid) return { rc: -ENOENT, detail: 'no such MR' };
    mr.valid = false;
    if (mr.refs && !this.env.bugs.has('dereg-during-dma')) {
      trace(this.env, `dereg mr ${mr.handle}: ${mr.refs} request(s) in flight, umem release deferred`);
      return { rc: 0, detail: 'release deferred' };
    }
    const n = this.umemRelease(mr);
    return { rc: 0, detail: `${n} page(s) unpinned` };
  }

  /** lookup_mr(): a valid MR whose lkey (or rkey) is key. */
  private lookupMr(key: number, remote: boolean): RxeMr | undefined {
    for (const mr of this.mrs.values()) if (mr.valid && key !== 0 && (remote ? mr.rkey : mr.lkey) === key) return mr;
    return undefined;
  }

  /** rxe_post_send(): queue a request holding its MR (key, access and range checked here, not at execution). */
  private post(op: DeviceOp): OpResult {
    const remote = op.via === 'rkey';
    const kind = op.kind === 'read' ? 'read' : 'write';
    let key = intField(op, 'key', -1);
    if (key < 0) {
      const byHandle = this.mrs.get(intField(op, 'mr'));
      key = byHandle ? (remote ? byHandle.rkey : byHandle.lkey) : 0;
    }
    const mr = this.lookupMr(key, remote);
    if (!mr) return { rc: -EINVAL, detail: `no valid MR with ${remote ? 'rkey' : 'lkey'} ${hex(key)}` };
    const need = remote
      ? kind === 'write'
        ? IB_ACCESS_REMOTE_WRITE
        : IB_ACCESS_REMOTE_READ
      : kind === 'write'
        ? IB_ACCESS_LOCAL_WRITE
        : 0;
    if ((mr.access & need) !== need) return { rc: -EACCES, detail: `mr ${mr.handle} lacks access ${need}` };
    const offset = intField(op, 'offset', 0);
    if (!isU64(offset) || offset + 4 > mr.length) return { rc: -EFAULT, detail: 'outside the MR (mr_check_range)' };
    mr.refs++; // the request holds the MR until it completes
    this.queue.push({ mr, kind, iova: mr.iova + offset, value: intField(op, 'value', 0) });
    return { rc: this.queue.length, detail: `${kind} mr ${mr.handle} iova ${hex(mr.iova + offset)} queued` };
  }

  /** The HCA executes the oldest request: rxe_mr_copy() through the pinned page. */
  private complete(): OpResult {
    const { m } = this.env;
    const w = this.queue.shift();
    if (!w) return { rc: 0, detail: 'no request in flight' };
    const { mr } = w;
    this.env.yieldPoint(`${NAME}:dma`);
    const pfn = mr.pfnAt(w.iova);
    const violation = dmaTargetViolation(m, pfn, `${this.env.name} ${w.kind} mr ${mr.handle} iova ${hex(w.iova)}`);
    let rc = 0;
    if (w.kind === 'write') deviceWrite(m, pfn, w.value);
    else rc = deviceRead(m, pfn);
    if (--mr.refs === 0 && !mr.valid) this.umemRelease(mr); // rxe_mr_cleanup() after the last reference
    return { rc, violation };
  }

  private held(): HeldPage[] {
    const out: HeldPage[] = [];
    for (const mr of this.mrs.values()) {
      if (mr.umem.released) continue;
      const first = Math.floor(mr.iova / PAGE_SIZE);
      const vpn = Math.floor(mr.umem.address / PAGE_SIZE);
      mr.umem.pages.forEach((pfn, i) => out.push({ iova: first + i, vpn: vpn + i, pfn, longterm: true }));
    }
    return out;
  }

  inspect(): { held: HeldPage[]; accounting: Record<string, number> } {
    const mrs = [...this.mrs.values()];
    const pinnedVm = mrs.filter((x) => !x.umem.released).reduce((s, x) => s + x.umem.pages.length, 0);
    const accounting = { pinned_vm: pinnedVm, mrs: mrs.filter((x) => x.valid).length, inflight: this.queue.length };
    return { held: this.held(), accounting };
  }

  /** The ucontext goes: the QPs are destroyed (requests flushed in error), then every MR. */
  teardown(): OpResult {
    this.queue.splice(0);
    let n = 0;
    for (const mr of [...this.mrs.values()]) {
      mr.refs = 0;
      mr.valid = false;
      n += this.umemRelease(mr);
    }
    return { rc: n, detail: `${n} page(s) unpinned` };
  }
}

function arbitrary(fc: typeof fcType, shape: GenShape): fcType.Arbitrary<DeviceOp> {
  // IB_ACCESS_LOCAL_WRITE most of the time (remote write and atomic need it), the remote bits at random
  const local = fc.oneof({ weight: 3, arbitrary: fc.constant(true) }, { weight: 1, arbitrary: fc.constant(false) });
  const access = fc
    .record({ local, remote: fc.subarray(['remote_write', 'remote_read', 'remote_atomic']) })
    .map(({ local: l, remote }) => (l ? ['local_write', ...remote] : remote))
    .chain((a) =>
      fc.oneof({ weight: 20, arbitrary: fc.constant(a) }, { weight: 1, arbitrary: fc.constant([...a, 'on_demand']) }),
    );
  const skew = fc.oneof(
    { weight: 6, arbitrary: fc.constant(0) },
    { weight: 1, arbitrary: fc.integer({ min: 1, max: PAGE_SIZE - 1 }) },
  );
  const reg = fc
    .record({ r: arbRange(fc, shape), access, skew, trim: fc.integer({ min: 0, max: PAGE_SIZE - 1 }) })
    .map(({ r, access: a, skew: sk, trim }): DeviceOp => ({
      op: 'reg_mr',
      vaddr: { ...r.vaddr, byte: sk },
      length: Math.max(0, r.pages * PAGE_SIZE - sk - trim),
      access: a,
    }));
  // MR handles count up from 0 per device: name the first ones most often, so posts and deregs meet the MRs registered
  const mr = fc.oneof(
    { weight: 4, arbitrary: fc.constant(0) },
    { weight: 2, arbitrary: fc.nat(2) },
    { weight: 1, arbitrary: fc.nat(5) },
  );
  const ref = arbRef(fc);
  const dereg = fc.record({ h: mr, ref }).map(({ h, ref: k }): DeviceOp => ({ op: 'dereg_mr', mr: h, ref: k }));
  const offset = fc
    .oneof(
      { weight: 3, arbitrary: fc.nat(PAGE_SIZE - 4) },
      { weight: 1, arbitrary: fc.nat(shape.maxPages * PAGE_SIZE) },
    )
    .map((o) => o & ~3);
  const post = fc
    .record({
      mr,
      via: fc.constantFrom('lkey', 'lkey', 'rkey'),
      kind: fc.constantFrom('write', 'read'),
      offset,
      value: arbWord(fc),
      ref,
    })
    .map((p): DeviceOp => ({ op: 'post', ...p }));
  return fc.oneof(
    { weight: 3, arbitrary: reg },
    { weight: 2, arbitrary: dereg },
    { weight: 4, arbitrary: post },
    { weight: 3, arbitrary: fc.constant<DeviceOp>({ op: 'complete' }) },
  );
}

/**
 * What generated ops follow (arbRef()): a work request names a registration made before it (its handle, counting
 * the registrations before it; its offset wrapped into the MR's length), a dereg the MR of a request posted before.
 */
const LINKS: Record<string, LinkRule> = {
  post: {
    from: 'reg_mr',
    to: (op, reg, nth) => ({ ...op, mr: nth, offset: (Number(op.offset) % Math.max(4, Number(reg.length) - 3)) & ~3 }),
  },
  dereg_mr: { from: 'post', to: (op, post) => ({ ...op, mr: post.mr }) },
};

export const rdmaUmem: DeviceModel = {
  name: NAME,
  summary:
    'RDMA NIC with pinned MRs (ib_umem_get): pinned_vm charged first, lkey/rkey DMA, ' +
    'dereg deferred while requests are in flight',
  source:
    'drivers/infiniband/core/umem.c (ib_umem_get, ib_umem_release), uverbs_cmd.c ib_uverbs_reg_mr, ' +
    'sw/rxe/rxe_mr.c',
  bugs: {
    'check-then-add':
      'the old siw accounting: check pinned_vm against the limit, then add, with a window between ' +
      '(two registrations pass together)',
    'dereg-during-dma':
      'dereg_mr releases the umem at once although requests are in flight: ' + 'their DMA hits unpinned pages',
  },
  ops: {
    reg_mr: { vaddr: 'vaddr', length: 'int', hca_va: 'int', access: { list: Object.keys(ACCESS_NAMES) } },
    dereg_mr: { mr: 'int' },
    // a work request names its MR by handle (mr) or key; via: which key (lkey: local, rkey: remote)
    post: { mr: 'int', key: 'int', via: ['lkey', 'rkey'], kind: ['read', 'write'], offset: 'int', value: 'int' },
    complete: {},
  },
  charges: ['reg_mr'], // ib_umem_get() charges pinned_vm
  setup: 'reg_mr', // the MR its work requests name
  errnos: {
    // ib_uverbs_reg_mr(): -EINVAL (start/hca_va offsets); ib_check_mr_access(): -EINVAL, -EOPNOTSUPP (ON_DEMAND);
    // ib_umem_get(): -EINVAL, -EPERM (!can_do_mlock), -ENOMEM (pinned_vm over RLIMIT_MEMLOCK), and from
    // pin_user_pages_fast() -EFAULT, -ENOMEM, -EINTR
    reg_mr: [-EINVAL, -EOPNOTSUPP, -EPERM, -ENOMEM, -EFAULT, -EINTR],
    // ib_uverbs_dereg_mr() -> uobj_perform_destroy(): -ENOENT for a handle that names no MR
    dereg_mr: [-ENOENT],
    // a work request: pinlab's errnos for rxe's completion errors - lookup_mr() fails -EINVAL (IB_WC_LOC_PROT_ERR),
    // remote access denied -EACCES (IB_WC_REM_ACCESS_ERR), outside the MR -EFAULT (mr_check_range())
    post: [-EINVAL, -EACCES, -EFAULT],
    // rxe_mr_copy() through the pinned page: the word read or 0, no error
    complete: [],
  },
  faultPoints: GUP_FAULT_POINTS,
  programLength: DEVICE_PROGRAM_LENGTH,
  link: (p) => linkOps(p, LINKS),
  arbitrary,
  create: (env) => new RxeDevice(env),
};
