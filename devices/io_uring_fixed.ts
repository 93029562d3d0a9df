// io_uring-fixed: io_uring registered (fixed) buffers (io_uring/rsrc.c, 6.12): IORING_REGISTER_BUFFERS
// pins each iovec with pin_user_pages_fast(FOLL_WRITE | FOLL_LONGTERM) (io_pin_pages; a partial pin is
// -EFAULT), coalesces buffers made of whole large folios to one pin per folio (6.10+), and charges
// user->locked_vm (only without CAP_IPC_LOCK: ctx->user is unset then) plus mm->pinned_vm, counting
// each compound page once, by its full size, across the whole table (io_buffer_account_pin). The
// pages stay pinned until IORING_UNREGISTER_BUFFERS. READ_FIXED / WRITE_FIXED do their I/O straight
// into / out of the pinned pages.
//
// Ops: register {iovecs: [{base, len}]} (bytes; base 0 with len 0 is a sparse slot); unregister {};
// read_fixed {buf, addr | off, value} (the "file" data lands in the buffer); write_fixed {buf, addr | off}
// (rc = the word the buffer holds). Each I/O is one 4-byte word.
// 6.12 file rules: io_uring no longer checks the VMA itself; GUP refuses FOLL_LONGTERM|FOLL_WRITE on
// a read-only VMA or on VM_PFNMAP/VM_IO (-EFAULT); shmem and hugetlb pin fine. pinlab has no
// regular-file mappings, so the GUP -EFAULT for writable file-backed (non-shmem) memory cannot arise.

import type * as fcType from 'fast-check';
import type { DeviceModel, DeviceEnv, DeviceState, DeviceOp, OpResult, GenShape, HeldPage } from './device';
import { kernelOf } from './device';
import { releaseAtLeast } from '../mm/variants';
import { pinUserPagesFast, unpinUserPages, FOLL_LONGTERM, FOLL_WRITE } from '../mm/gup';
import { Memmap, PG_head, PG_tail } from '../mm/memmap';
import { KBuf, kvfree, kvmalloc } from '../mm/slab';
import { GFP_KERNEL_ACCOUNT } from '../mm/gfp';
import { EBUSY, EINVAL, EFAULT, EOVERFLOW, ENXIO, ENOMEM, EINTR, EOPNOTSUPP, errname } from '../mm/errno';
import { vmaIsFileNotShmem } from '../mm/filemap';
import { findVma } from '../mm/memory';
import { mmapReadLock, mmapReadUnlock } from '../mm/mm_types';
import {
  PAGE_SIZE,
  intField,
  isU64,
  capableIpcLock,
  incrUserLockedVm,
  decrUserLockedVm,
  pinnedVmAddReturn,
  hex,
  arbRange,
  arbWord,
  dmaAccess,
  GUP_FAULT_POINTS,
  DEVICE_PROGRAM_LENGTH,
} from './common';
import { folioNrPages } from '../mm/page_ref';

const NAME = 'io_uring-fixed';
/** IORING_MAX_REG_BUFFERS */
export const IORING_MAX_REG_BUFFERS = 1 << 14;
/** io_buffer_validate(): "arbitrary limit, but we need something" */
export const IO_BUF_MAX_LEN = 1 << 30;

/** struct io_mapped_ubuf: one registered buffer, its pinned pages as bvec entries. */
class IoMappedUbuf {
  /** pages charged for this buffer by io_buffer_account_pin() */
  acctPages = 0;
  /** the struct itself with its bvec array, kvmalloc()ed (imuAlloc) */
  kmem: KBuf | null = null;

  /**
   * ubuf, len: the user buffer (bytes); pages: the bvec pages, every page or the first pinned page of
   * each folio when coalesced; folioPages: pages per bvec entry (1 << (folio_shift - PAGE_SHIFT)), else 1;
   * offset: byte offset of ubuf into the first bvec entry; vpn, nrPages: the user pages it covers.
   */
  constructor(
    readonly ubuf: number,
    readonly len: number,
    readonly pages: number[],
    readonly folioPages: number,
    readonly offset: number,
    readonly vpn: number,
    readonly nrPages: number,
  ) {}

  /** The frame at byte off from the start of the first bvec entry (io_import_fixed()'s bvec walk). */
  pfnAt(off: number): number {
    const entry = Math.floor(off / (this.folioPages * PAGE_SIZE));
    return this.pages[entry]! + Math.floor((off % (this.folioPages * PAGE_SIZE)) / PAGE_SIZE);
  }

  /** Every user page the buffer covers, as buffer index b holds it. */
  held(b: number, out: HeldPage[]): void {
    for (let i = 0; i < this.nrPages; i++) {
      const pfn = this.pfnAt(this.offset - (this.ubuf % PAGE_SIZE) + i * PAGE_SIZE);
      out.push({ iova: b * (IO_BUF_MAX_LEN / PAGE_SIZE + 1) + i, vpn: this.vpn + i, pfn, longterm: true });
    }
  }
}

/** kvmalloc(struct_size(imu, bvec, nr_bvecs)): a 32-byte header and a 16-byte bio_vec per entry. */
export function imuBytes(nrBvecs: number): number {
  return 32 + 16 * nrBvecs;
}

/** io_sqe_buffer_register()'s allocation of a buffer's io_mapped_ubuf (GFP_KERNEL_ACCOUNT), or null. */
export function imuAlloc(m: Memmap, nrBvecs: number): KBuf | null {
  return kvmalloc(m, imuBytes(nrBvecs), GFP_KERNEL_ACCOUNT);
}

const isCompound = (f: number): boolean => (f & (PG_head | PG_tail)) !== 0;

/** One folio per bvec entry: what io_do_coalesce_buffer() keeps of a pinned page array. */
interface Coalesced {
  pages: number[];
  folioPages: number;
  firstIdx: number;
}

/** The io_ring_ctx of one process, with its registered buffer table (ctx->user_bufs). */
class IoRingCtx implements DeviceState {
  private table: (IoMappedUbuf | null)[] | null = null; // null entries are sparse slots (dummy_ubuf)
  private readonly chargeUser: boolean;

  constructor(private readonly env: DeviceEnv) {
    this.chargeUser = !capableIpcLock(env.m, env.mm); // io_uring_create(): ctx->user only without CAP_IPC_LOCK
  }

  step(op: DeviceOp): OpResult {
    switch (op.op) {
      case 'register':
        return this.sqeBuffersRegister(op);
      case 'unregister':
        return this.sqeBuffersUnregister();
      case 'read_fixed':
        return this.rwFixed(op, true);
      case 'write_fixed':
        return this.rwFixed(op, false);
      default:
        return { rc: -EINVAL, detail: `unknown op ${op.op}` };
    }
  }

  /** io_pin_pages(): all nr_pages pinned or -errno (a partial pin is -EFAULT). */
  private pinPages(uaddr: number, len: number): number[] | number {
    const { m, mm } = this.env;
    const end = uaddr + len;
    if (!isU64(end) || !isU64(end + PAGE_SIZE - 1)) return -EOVERFLOW;
    const start = Math.floor(uaddr / PAGE_SIZE);
    const nr = Math.floor((end + PAGE_SIZE - 1) / PAGE_SIZE) - start;
    if (!nr) return -EINVAL;
    const pages: number[] = new Array(nr).fill(-1);
    const flags = FOLL_WRITE | (this.env.bugs.has('no-longterm') ? 0 : FOLL_LONGTERM);
    const ret = pinUserPagesFast(m, mm, start, nr, flags, pages);
    if (ret === nr && !releaseAtLeast(kernelOf(this.env), 6, 5) && this.fileBacked(start, nr)) {
      unpinUserPages(m, pages, ret);
      return -EOPNOTSUPP;
    }
    if (ret === nr) return pages;
    if (ret > 0) unpinUserPages(m, pages, ret);
    return ret < 0 ? ret : -EFAULT;
  }

  /**
   * Up to 6.4 io_pin_pages() looked at the pinned range's VMAs itself ("don't support file backed
   * memory"): a file-backed VMA that is neither shmem nor hugetlbfs is -EOPNOTSUPP. From 6.5 ("io_uring:
   * rsrc: delegate VMA file-backed check to GUP") GUP alone decides: only a shared writable mapping of
   * a file with writeback fails (-EFAULT). The 6.1 check that every page lies in the same file (-EINVAL
   * otherwise) is not modelled.
   */
  private fileBacked(start: number, nr: number): boolean {
    const { m, mm } = this.env;
    mmapReadLock(m, mm);
    try {
      for (let v = start; v < start + nr; v++) {
        const vb = findVma(m, mm, v);
        if (vb >= 0 && vmaIsFileNotShmem(m, vb)) return true;
      }
      return false;
    } finally {
      mmapReadUnlock(m, mm);
    }
  }

  /**
   * io_try_coalesce_buffer() + io_do_coalesce_buffer(): when every page lies in large folios of one
   * size - the first possibly entered mid-way, the middle ones whole - keep one pin per folio.
   */
  private tryCoalesceBuffer(pages: number[]): Coalesced | null {
    const { m } = this.env;
    if (pages.length <= 1) return null;
    let folio = m.compoundHead(pages[0]!);
    const mid = folioNrPages(m, folio);
    if (mid === 1) return null;
    let count = 1;
    const firsts = [0];
    for (let i = 1; i < pages.length; i++) {
      if (m.compoundHead(pages[i]!) === folio && pages[i] === pages[i - 1]! + 1) {
        count++;
        continue;
      }
      if (firsts.length === 1) {
        if (pages[i - 1]! - folio !== mid - 1) return null; // the head folio must run to its end
      } else if (count !== mid) return null; // middle folios whole
      folio = m.compoundHead(pages[i]!);
      if (folioNrPages(m, folio) !== mid || pages[i] !== folio) return null;
      firsts.push(i);
      count = 1;
    }
    const keep = firsts.map((i) => (i === 0 ? m.compoundHead(pages[0]!) : pages[i]!));
    // drop all but one pin per folio (the first pinned page of each keeps it)
    const drop = pages.filter((_, i) => !firsts.includes(i));
    unpinUserPages(m, drop, drop.length);
    return { pages: keep, folioPages: mid, firstIdx: pages[0]! - m.compoundHead(pages[0]!) };
  }

  /** headpage_already_acct(): hpage among pages[0..i) or any registered buffer. */
  private headpageAlreadyAcct(pages: number[], i: number, hpage: number, registered: (IoMappedUbuf | null)[]): boolean {
    const { m } = this.env;
    for (let j = 0; j < i; j++) if (isCompound(m.flags[pages[j]!]!) && m.compoundHead(pages[j]!) === hpage) return true;
    for (const imu of registered) {
      if (!imu) continue;
      for (const p of imu.pages) if (isCompound(m.flags[p]!) && m.compoundHead(p) === hpage) return true;
    }
    return false;
  }

  /** io_buffer_account_pin() -> io_account_mem(): 0 or -ENOMEM. */
  private bufferAccountPin(imu: IoMappedUbuf, last: { hpage: number }, registered: (IoMappedUbuf | null)[]): number {
    const { m, mm } = this.env;
    const { pages } = imu;
    imu.acctPages = 0;
    for (let i = 0; i < pages.length; i++) {
      if (!isCompound(m.flags[pages[i]!]!)) {
        imu.acctPages++;
        continue;
      }
      const hpage = m.compoundHead(pages[i]!);
      if (hpage === last.hpage) continue;
      last.hpage = hpage;
      if (this.headpageAlreadyAcct(pages, i, hpage, registered)) continue;
      imu.acctPages += folioNrPages(m, hpage); // page_size(hpage) >> PAGE_SHIFT
    }
    if (!imu.acctPages) return 0;
    if (this.chargeUser) {
      const rc = incrUserLockedVm(m, mm, imu.acctPages); // __io_account_mem()
      if (rc) {
        imu.acctPages = 0;
        return rc;
      }
    }
    pinnedVmAddReturn(m, mm, imu.acctPages);
    return 0;
  }

  /** io_buffer_unmap(): unpin each bvec page (no dirtying), uncharge. */
  private bufferUnmap(imu: IoMappedUbuf): number {
    const { m, mm } = this.env;
    unpinUserPages(m, imu.pages, imu.pages.length);
    kvfree(m, imu.kmem);
    imu.kmem = null;
    if (imu.acctPages) {
      if (this.chargeUser) decrUserLockedVm(m, mm, imu.acctPages);
      pinnedVmAddReturn(m, mm, -imu.acctPages);
    }
    return imu.nrPages;
  }

  /** io_sqe_buffer_register(): null for a sparse slot, the buffer, or -errno with nothing held. */
  private sqeBufferRegister(
    base: number,
    len: number,
    last: { hpage: number },
    registered: (IoMappedUbuf | null)[],
  ): IoMappedUbuf | null | number {
    if (!base) return null;
    const pinned = this.pinPages(base, len);
    if (typeof pinned === 'number') return pinned;
    this.env.yieldPoint(`${NAME}:pinned-not-accounted`);
    // io_try_coalesce_buffer() is 6.10+; 6.1 keeps one bvec entry and one pin per 4 KiB page
    const c = releaseAtLeast(kernelOf(this.env), 6, 10) ? this.tryCoalesceBuffer(pinned) : null;
    const imu = new IoMappedUbuf(
      base,
      len,
      c ? c.pages : pinned,
      c ? c.folioPages : 1,
      (base % PAGE_SIZE) + (c ? c.firstIdx * PAGE_SIZE : 0),
      Math.floor(base / PAGE_SIZE),
      pinned.length,
    );
    imu.kmem = imuAlloc(this.env.m, imu.pages.length);
    const rc = imu.kmem ? this.bufferAccountPin(imu, last, registered) : -ENOMEM;
    if (rc) {
      kvfree(this.env.m, imu.kmem);
      unpinUserPages(this.env.m, imu.pages, imu.pages.length);
      return rc;
    }
    return imu;
  }

  /** io_buffer_validate() of one iovec, then io_sqe_buffer_register(): the buffer, null (sparse), or -errno. */
  private registerIovec(
    iov: Record<string, unknown>,
    last: { hpage: number },
    bufs: (IoMappedUbuf | null)[],
  ): IoMappedUbuf | null | number {
    const base = intField(iov, 'base', 0);
    const len = intField(iov, 'len', 0);
    if (!isU64(base) || !isU64(len)) return -EFAULT;
    if (!base) return len ? -EFAULT : null;
    if (!len || len > IO_BUF_MAX_LEN) return -EFAULT;
    if (!isU64(base + len + PAGE_SIZE - 1)) return -EOVERFLOW;
    return this.sqeBufferRegister(base, len, last, bufs);
  }

  /** io_sqe_buffers_register(): all or nothing. */
  private sqeBuffersRegister(op: DeviceOp): OpResult {
    if (this.table) return { rc: -EBUSY };
    const iovecs = Array.isArray(op.iovecs) ? (op.iovecs as Record<string, unknown>[]) : [];
    if (!iovecs.length || iovecs.length > IORING_MAX_REG_BUFFERS) return { rc: -EINVAL };
    const bufs: (IoMappedUbuf | null)[] = [];
    const last = { hpage: -1 };
    let ret = 0;
    for (const iov of iovecs) {
      const imu = this.registerIovec(iov, last, bufs);
      if (typeof imu === 'number') {
        ret = imu;
        break;
      }
      bufs.push(imu);
    }
    if (ret) {
      // __io_sqe_buffers_unregister()
      for (const b of bufs) if (b) this.bufferUnmap(b);
      return { rc: ret, detail: `buffer ${bufs.length}: ${errname(ret)}` };
    }
    this.table = bufs;
    const pages = bufs.reduce((s, b) => s + (b ? b.nrPages : 0), 0);
    const charged = bufs.reduce((s, b) => s + (b ? b.acctPages : 0), 0);
    return { rc: 0, detail: `${bufs.length} buffer(s), ${pages} page(s) pinned, ${charged} charged` };
  }

  /** io_sqe_buffers_unregister(): -ENXIO when no buffers are registered. */
  private sqeBuffersUnregister(): OpResult {
    if (!this.table) return { rc: -ENXIO };
    let n = 0;
    for (const b of this.table) if (b) n += this.bufferUnmap(b);
    this.table = null;
    return { rc: 0, detail: `${n} page(s) unpinned` };
  }

  /** io_prep_rw_fixed() + io_import_fixed() + the copy: one word at addr of fixed buffer buf. */
  private rwFixed(op: DeviceOp, intoBuffer: boolean): OpResult {
    const idx = intField(op, 'buf');
    if (!this.table || !(idx >= 0) || idx >= this.table.length) return { rc: -EFAULT, detail: 'no such fixed buffer' };
    const imu = this.table[idx];
    if (!imu) return { rc: -EFAULT, detail: 'sparse slot' };
    const addr = op.addr !== undefined ? intField(op, 'addr') : imu.ubuf + intField(op, 'off', 0);
    if (!isU64(addr) || addr < imu.ubuf || addr + 4 > imu.ubuf + imu.len) {
      return { rc: -EFAULT, detail: `${hex(addr)} outside the buffer` };
    }
    const pfn = imu.pfnAt(imu.offset + (addr - imu.ubuf));
    const what = `${this.env.name} ${intoBuffer ? 'read_fixed' : 'write_fixed'} ${hex(addr)}`;
    return dmaAccess(this.env.m, pfn, intoBuffer, op, what);
  }

  private held(): HeldPage[] {
    const out: HeldPage[] = [];
    (this.table ?? []).forEach((imu, b) => imu?.held(b, out));
    return out;
  }

  inspect(): { held: HeldPage[]; accounting: Record<string, number> } {
    const acct = (this.table ?? []).reduce((s, b) => s + (b ? b.acctPages : 0), 0);
    const buffers = this.table ? this.table.length : 0;
    const accounting = { user_locked_vm: this.chargeUser ? acct : 0, pinned_vm: acct, buffers };
    return { held: this.held(), accounting };
  }

  /** io_ring_ctx_free(): the buffers go with the ring. */
  teardown(): OpResult {
    const r = this.sqeBuffersUnregister();
    return { rc: r.rc === -ENXIO ? 0 : this.held().length, detail: r.detail };
  }
}

function arbitrary(fc: typeof fcType, shape: GenShape): fcType.Arbitrary<DeviceOp> {
  const buffer = fc
    .record({ r: arbRange(fc, shape), skew: fc.nat(PAGE_SIZE - 1), trim: fc.nat(PAGE_SIZE - 1) })
    .map(({ r, skew, trim }) => ({
      base: { ...r.vaddr, byte: skew },
      len: Math.max(1, r.pages * PAGE_SIZE - skew - trim),
    }));
  const iov = fc.oneof(
    { weight: 12, arbitrary: buffer },
    { weight: 1, arbitrary: fc.constant({ base: 0, len: 0 }) },
    { weight: 1, arbitrary: arbRange(fc, shape).map((r) => ({ base: r.vaddr, len: 0 })) },
  );
  const register = fc
    .array(iov, { minLength: 1, maxLength: 3 })
    .map((iovecs): DeviceOp => ({ op: 'register', iovecs }));
  const off = fc.nat(shape.maxPages * PAGE_SIZE).map((o) => o & ~3);
  const rw = fc
    .record({ buf: fc.nat(3), off, value: arbWord(fc), read: fc.boolean() })
    .map(({ buf, off: o, value, read }): DeviceOp =>
      read ? { op: 'read_fixed', buf, off: o, value } : { op: 'write_fixed', buf, off: o },
    );
  const unregister = fc.constant<DeviceOp>({ op: 'unregister' });
  return fc.oneof(
    { weight: 3, arbitrary: register },
    { weight: 2, arbitrary: unregister },
    { weight: 5, arbitrary: rw },
  );
}

export const ioUringFixed: DeviceModel = {
  name: NAME,
  summary: 'io_uring registered buffers: FOLL_WRITE|FOLL_LONGTERM pins until unregister, compound pages charged once',
  source:
    'io_uring/rsrc.c (io_sqe_buffers_register, io_sqe_buffer_register, io_pin_pages, io_buffer_account_pin, ' +
    'io_import_fixed)',
  bugs: { 'no-longterm': 'io_pin_pages() pins without FOLL_LONGTERM: registered buffers may stay in ZONE_MOVABLE/CMA' },
  ops: {
    register: { iovecs: { list: { record: { base: 'vaddr', len: 'int' } } } },
    unregister: {},
    read_fixed: { buf: 'int', off: 'int', addr: 'int', value: 'int' },
    write_fixed: { buf: 'int', off: 'int', addr: 'int' },
  },
  charges: ['register'], // io_account_mem() at buffer registration
  setup: 'register', // the buffers its fixed reads and writes use
  errnos: {
    // io_sqe_buffers_register(): -EBUSY (a table exists), -EINVAL (nr_args); io_buffer_validate(): -EFAULT, -EOVERFLOW;
    // io_pin_pages(): -EOVERFLOW, -EINVAL, -EFAULT (a partial pin), and pin_user_pages_fast()'s -EFAULT / -ENOMEM /
    // -EINTR; io_buffer_account_pin() -> __io_account_mem(): -ENOMEM
    // io_pin_pages() up to 6.4: -EOPNOTSUPP for a file-backed VMA that is not shmem or hugetlbfs
    register: [-EBUSY, -EINVAL, -EFAULT, -EOVERFLOW, -ENOMEM, -EINTR, -EOPNOTSUPP],
    // io_sqe_buffers_unregister(): -ENXIO when no buffers are registered
    unregister: [-ENXIO],
    // io_prep_rw_fixed() (buf_index out of range) and io_import_fixed() (range outside the buffer): -EFAULT
    read_fixed: [-EFAULT],
    write_fixed: [-EFAULT],
  },
  faultPoints: GUP_FAULT_POINTS,
  programLength: DEVICE_PROGRAM_LENGTH,
  arbitrary,
  create: (env) => new IoRingCtx(env),
};
