// example-pinbuf: the smallest real long-term pinner, the worked example of docs/adding-a-device.md.
// It pins one user buffer the way ib_umem_get() does (drivers/infiniband/core/umem.c): charge
// mm->pinned_vm first, then pin_user_pages_fast(FOLL_LONGTERM | FOLL_WRITE); the device then DMAs
// into the frames captured at pin time, and release unpins (dirty) and uncharges.

import type { DeviceModel, DeviceEnv, DeviceState, DeviceOp, OpResult, HeldPage } from './device';
import { pinUserPagesFast, unpinUserPagesDirtyLock, FOLL_LONGTERM, FOLL_WRITE } from '../mm/gup';
import { EBUSY, EINVAL, ENOMEM, EPERM, EFAULT, EINTR, errname } from '../mm/errno';
import {
  PAGE_SIZE,
  canDoMlock,
  capableIpcLock,
  rlimitMemlock,
  pinnedVmAddReturn,
  dmaTargetViolation,
  deviceWrite,
  deviceRead,
  intField,
  isU64,
  pageAligned,
  arbRange,
  arbWord,
  GUP_FAULT_POINTS,
  DEVICE_PROGRAM_LENGTH,
} from './common';

/** The pinbuf object: one user buffer pinned long-term, as an ib_umem holds it. */
class Pinbuf implements DeviceState {
  private pages: number[] = []; // the frames the device DMAs into, captured at pin time
  private vpn0 = 0;

  constructor(private readonly env: DeviceEnv) {}

  step(op: DeviceOp): OpResult {
    switch (op.op) {
      case 'pin':
        return this.umemGet(op);
      case 'dma_write':
        return this.dma(op, true);
      case 'dma_read':
        return this.dma(op, false);
      case 'release':
        return this.pages.length ? { rc: this.umemRelease() } : { rc: -EINVAL, detail: errname(-EINVAL) };
      default:
        return { rc: -EINVAL, detail: `unknown op ${op.op}` };
    }
  }

  /** ib_umem_get(): account first, then pin; a short pin is a failure that gives back what was pinned. */
  private umemGet(op: DeviceOp): OpResult {
    const { m, mm } = this.env;
    const vaddr = intField(op, 'vaddr');
    const len = intField(op, 'len');
    if (this.pages.length) return { rc: -EBUSY };
    if (!isU64(vaddr) || !isU64(len) || !len || !pageAligned(vaddr) || !pageAligned(len)) return { rc: -EINVAL };
    if (!canDoMlock(m, mm)) return { rc: -EPERM };
    const n = len / PAGE_SIZE;
    if (pinnedVmAddReturn(m, mm, n) > rlimitMemlock(m, mm) && !capableIpcLock(m, mm)) {
      // account first
      pinnedVmAddReturn(m, mm, -n);
      return { rc: -ENOMEM };
    }
    this.env.yieldPoint('example-pinbuf:accounted');
    const got: number[] = new Array(n).fill(-1);
    const flags = FOLL_WRITE | (this.env.bugs.has('no-longterm') ? 0 : FOLL_LONGTERM);
    const rc = pinUserPagesFast(m, mm, vaddr / PAGE_SIZE, n, flags, got);
    if (rc !== n) {
      // a short pin is a failure here: give back what was pinned
      if (rc > 0) unpinUserPagesDirtyLock(m, got, rc, false);
      pinnedVmAddReturn(m, mm, -n);
      return { rc: rc < 0 ? rc : -EFAULT };
    }
    this.pages = got;
    this.vpn0 = vaddr / PAGE_SIZE;
    return { rc: n, detail: `pinned ${n} pages at pfn ${got[0]}...` };
  }

  /** ib_umem_release(): unpin, dirty (the device may have written), and uncharge. */
  private umemRelease(): number {
    const n = this.pages.length;
    unpinUserPagesDirtyLock(this.env.m, this.pages, n, true);
    pinnedVmAddReturn(this.env.m, this.env.mm, -n);
    this.pages = [];
    return n;
  }

  /** The device's DMA of one word through the frames captured at pin time. */
  private dma(op: DeviceOp, write: boolean): OpResult {
    const { m } = this.env;
    const off = intField(op, 'off');
    if (!isU64(off) || Math.floor(off / PAGE_SIZE) >= this.pages.length) return { rc: -EFAULT };
    const pfn = this.pages[Math.floor(off / PAGE_SIZE)]!;
    const violation = dmaTargetViolation(m, pfn, `example-pinbuf ${write ? 'write' : 'read'}`);
    if (write) deviceWrite(m, pfn, intField(op, 'value', 0));
    return { rc: write ? 0 : deviceRead(m, pfn), violation };
  }

  inspect(): { held: HeldPage[]; accounting: Record<string, number> } {
    const held = this.pages.map((pfn, i) => ({ iova: i, vpn: this.vpn0 + i, pfn, longterm: true }));
    return { held, accounting: { pinned_vm: this.pages.length } };
  }

  teardown(): OpResult {
    return { rc: this.umemRelease() };
  }
}

export const examplePinbuf: DeviceModel = {
  name: 'example-pinbuf',
  summary: 'worked example: pins one buffer (pinned_vm, FOLL_LONGTERM) and DMAs into it',
  source: 'drivers/infiniband/core/umem.c ib_umem_get() (pattern only)',
  bugs: { 'no-longterm': 'pins without FOLL_LONGTERM, so the buffer may stay in ZONE_MOVABLE/CMA' },
  ops: {
    pin: { vaddr: 'vaddr', len: 'int' },
    dma_write: { off: 'int', value: 'int' },
    dma_read: { off: 'int' },
    release: {},
  },
  charges: ['pin'], // pinned_vm before the pin
  setup: 'pin', // the buffer its DMAs use
  errnos: {
    // ib_umem_get(): -EINVAL, -EPERM, -ENOMEM; pin_user_pages_fast(): -EFAULT, -ENOMEM, -EINTR; -EBUSY: one buffer only
    pin: [-EBUSY, -EINVAL, -EPERM, -ENOMEM, -EFAULT, -EINTR],
    // the device's DMA through the captured frames: -EFAULT outside the buffer
    dma_write: [-EFAULT],
    dma_read: [-EFAULT],
    // ib_umem_release() cannot fail: -EINVAL is this model's "nothing pinned"
    release: [-EINVAL],
  },
  faultPoints: GUP_FAULT_POINTS,
  programLength: DEVICE_PROGRAM_LENGTH,
  arbitrary: (fc, shape) =>
    fc.oneof(
      arbRange(fc, shape).map((r): DeviceOp => ({ op: 'pin', vaddr: r.vaddr, len: r.pages * PAGE_SIZE })),
      fc
        .record({ off: fc.nat(shape.maxPages - 1).map((p) => p * PAGE_SIZE), value: arbWord(fc) })
        .map((r): DeviceOp => ({ op: 'dma_write', ...r })),
      fc.nat(shape.maxPages - 1).map((p): DeviceOp => ({ op: 'dma_read', off: p * PAGE_SIZE })),
      fc.constant<DeviceOp>({ op: 'release' }),
    ),
  create: (env) => new Pinbuf(env),
};
