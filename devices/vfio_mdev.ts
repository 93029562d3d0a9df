// vfio-mdev: an emulated (mediated) device whose vendor driver pins guest pages lazily, one IOVA page
// at a time, with vfio_pin_pages() (drivers/vfio/vfio_main.c -> vfio_iommu_type1_pin_pages), as i915
// GVT-g, vfio_ccw and vfio_ap do. The container has no IOMMU domain, so MAP_DMA pins nothing and
// mm->locked_vm is charged per pinned page; pins are refcounted per IOVA page. UNMAP_DMA of a range
// with pinned pages calls the driver's dma_unmap(iova, length), which must unpin everything in the
// range; type1 retries and BUG_ON()s after 10 more tries (reported as a violation).
//
// Simplification: the container lives inside the model (one container, one mdev, one process).
//
// Ops (bytes): map_dma / unmap_dma as vfio-type1; pin_pages {iova, npage, write}; unpin_pages
// {iova, npage} (the driver drops the pins it holds in the range); dma_write {iova, value} /
// dma_read {iova} through the pages the driver pinned; dma_rw {iova, write, value} (vfio_dma_rw: a
// CPU copy through the process page tables, no pin).

import type * as fcType from 'fast-check';
import type { DeviceModel, DeviceEnv, DeviceState, DeviceOp, OpResult, GenShape, HeldPage } from './device';
import { EFAULT, EINVAL, EEXIST, ENOSPC, ENOMEM, EINTR, EBUSY, EPERM, E2BIG, errname } from '../mm/errno';
import {
  Type1Container,
  IOMMU_READ,
  IOMMU_WRITE,
  VFIO_PIN_PAGES_MAX_ENTRIES,
  VFIO_MAP_DMA_FIELDS,
  VFIO_UNMAP_DMA_FIELDS,
} from './vfio_container';
import {
  PAGE_SIZE,
  intField,
  isU64,
  pageAligned,
  dmaTargetViolation,
  deviceRead,
  deviceWrite,
  hex,
  arbRange,
  arbWord,
  linkOps,
  insideIova,
  pinInside,
  atSameIova,
  type LinkRule,
  trace,
  arbRef,
  arbSlotBase,
  arbSlotPage,
  arbSlotSpan,
  GUP_FAULT_POINTS,
  DEVICE_PROGRAM_LENGTH,
} from './common';

const NAME = 'vfio-mdev';

/** A page the vendor driver pinned: the pfn vfio_pin_pages() returned and how many times it pinned it. */
interface DriverPin {
  pfn: number;
  count: number;
  write: boolean;
}

/**
 * The mdev's vfio_device with the pages its vendor driver pinned, in a type1 container without an
 * IOMMU domain; its dma_unmap callback is registered with the container.
 */
class MdevDevice implements DeviceState {
  private readonly container: Type1Container;
  private readonly pins = new Map<number, DriverPin>(); // by IOVA page

  constructor(private readonly env: DeviceEnv) {
    this.container = new Type1Container(env, NAME, false);
    this.container.devices.push((iova, length) => this.dmaUnmap(iova, length));
  }

  step(op: DeviceOp): OpResult {
    switch (op.op) {
      case 'map_dma':
        return this.container.doMap(op);
      case 'unmap_dma':
        return this.container.doUnmap(op);
      case 'pin_pages':
        return this.pinPages(op);
      case 'unpin_pages':
        return this.unpinPages(op);
      case 'dma_write':
        return this.dma(op, true);
      case 'dma_read':
        return this.dma(op, false);
      case 'dma_rw':
        return this.dmaRw(op);
      default:
        return { rc: -EINVAL, detail: `unknown op ${op.op}` };
    }
  }

  /** Drop every pin the driver holds on one IOVA page. */
  private unpinAll(page: number): number {
    const p = this.pins.get(page);
    if (!p) return 0;
    for (; p.count > 0; p.count--) this.container.unpinPages(page * PAGE_SIZE, 1);
    this.pins.delete(page);
    return 1;
  }

  /** The vendor driver's vfio_device_ops.dma_unmap (intel_vgpu_dma_unmap, vfio_ccw_dma_unmap). */
  private dmaUnmap(iova: number, length: number): void {
    if (this.env.bugs.has('callback-never-unpins')) return;
    const first = iova / PAGE_SIZE;
    // the ap/ccw history: only the first page of the range was looked at
    const last = this.env.bugs.has('unmap-ignores-length') ? first + 1 : first + length / PAGE_SIZE;
    let n = 0;
    for (const page of [...this.pins.keys()]) if (page >= first && page < last) n += this.unpinAll(page);
    trace(this.env, `dma_unmap ${hex(iova)}+${hex(length)}: unpinned ${n} page(s)`);
  }

  /** The driver's vfio_pin_pages(): refcounted per IOVA page, on the driver's side too. */
  private pinPages(op: DeviceOp): OpResult {
    const iova = intField(op, 'iova');
    const npage = intField(op, 'npage');
    const write = op.write === true;
    const pfns: number[] = [];
    const rc = this.container.pinPages(iova, npage, IOMMU_READ | (write ? IOMMU_WRITE : 0), pfns);
    if (rc < 0) return { rc, detail: `vfio_pin_pages ${hex(iova)} x${npage}: ${errname(rc)}` };
    for (let i = 0; i < rc; i++) {
      const page = iova / PAGE_SIZE + i;
      const p = this.pins.get(page) ?? { pfn: pfns[i]!, count: 0, write: false };
      p.count++;
      p.write ||= write;
      this.pins.set(page, p);
    }
    return { rc, detail: `pinned ${rc} page(s) from pfn ${pfns[0]}` };
  }

  /** The driver's vfio_unpin_pages(): one pin of each page it holds in the range. */
  private unpinPages(op: DeviceOp): OpResult {
    const iova = intField(op, 'iova');
    const npage = intField(op, 'npage');
    // the driver never hands vfio_unpin_pages() what it would WARN on
    if (!isU64(iova) || !pageAligned(iova) || !(npage > 0) || npage > VFIO_PIN_PAGES_MAX_ENTRIES) {
      return { rc: -EINVAL };
    }
    let n = 0;
    for (let i = 0; i < npage; i++) {
      const page = iova / PAGE_SIZE + i;
      const p = this.pins.get(page);
      if (!p) continue;
      this.container.unpinPages(page * PAGE_SIZE, 1);
      if (--p.count === 0) this.pins.delete(page);
      n++;
    }
    return { rc: n, detail: `unpinned ${n} page(s)` };
  }

  /** The device's DMA through a page its driver pinned. */
  private dma(op: DeviceOp, write: boolean): OpResult {
    const { m } = this.env;
    const iova = intField(op, 'iova');
    if (!isU64(iova)) return { rc: -EINVAL };
    const p = this.pins.get(Math.floor(iova / PAGE_SIZE));
    if (!p) return { rc: -EFAULT, detail: `iova ${hex(iova)} not pinned by the driver` };
    if (write && !p.write) return { rc: -EFAULT, detail: `iova ${hex(iova)} pinned read-only` };
    const what = `${this.env.name} ${write ? 'dma_write' : 'dma_read'} iova ${hex(iova)}`;
    const violation = dmaTargetViolation(m, p.pfn, what);
    if (write) {
      deviceWrite(m, p.pfn, intField(op, 'value', 0));
      return { rc: 0, violation };
    }
    return { rc: deviceRead(m, p.pfn), violation };
  }

  /** vfio_dma_rw(): a CPU copy through the process page tables, no pin. */
  private dmaRw(op: DeviceOp): OpResult {
    const write = op.write === true;
    const rc = this.container.dmaRw(intField(op, 'iova'), write, intField(op, 'value', 0));
    return { rc, detail: rc < 0 ? `vfio_dma_rw: ${errname(rc)}` : undefined };
  }

  inspect(): { held: HeldPage[]; accounting: Record<string, number> } {
    const c = this.container;
    const driverPins = [...this.pins.values()].reduce((s, p) => s + p.count, 0);
    const accounting = { locked_vm: c.lockedVm(), dmas: c.nrDmas(), driver_pins: driverPins };
    return { held: c.externalHeld(), accounting };
  }

  /** The mdev's close_device unpins what it holds, then the container goes. */
  teardown(): OpResult {
    let n = 0;
    for (const page of [...this.pins.keys()]) n += this.unpinAll(page);
    n += this.container.releaseAll();
    return { rc: n, detail: `released ${n} pinned page(s)` };
  }
}

const IOVA_PAGES = 48;

function arbitrary(fc: typeof fcType, shape: GenShape): fcType.Arbitrary<DeviceOp> {
  // a few slots (common.ts arbSlotBase): a map, the driver's pins in it and the unmap that must revoke them name
  // the same IOVAs
  const base = arbSlotBase(fc, shape, IOVA_PAGES);
  const iovaPage = arbSlotPage(fc, shape, IOVA_PAGES);
  const ref = arbRef(fc);
  const map = fc.record({ at: base, r: arbRange(fc, shape), ro: fc.boolean() }).map(({ at, r, ro }): DeviceOp => ({
    op: 'map_dma',
    iova: at * PAGE_SIZE,
    vaddr: r.vaddr,
    size: r.pages * PAGE_SIZE,
    read: true,
    write: !ro,
  }));
  const npage = fc.oneof(
    { weight: 8, arbitrary: fc.constant(1) },
    { weight: 4, arbitrary: fc.integer({ min: 1, max: shape.maxPages }) },
    { weight: 1, arbitrary: fc.constantFrom(0, VFIO_PIN_PAGES_MAX_ENTRIES + 1) },
  );
  const pin = fc
    .record({ at: iovaPage, npage, write: fc.boolean(), ref })
    .map(({ at, npage: n, write, ref: k }): DeviceOp => ({
      op: 'pin_pages',
      iova: at * PAGE_SIZE,
      npage: n,
      write,
      ref: k,
    }));
  const unpin = fc
    .record({ at: iovaPage, npage: fc.integer({ min: 1, max: shape.maxPages }), ref })
    .map(({ at, npage: n, ref: k }): DeviceOp => ({ op: 'unpin_pages', iova: at * PAGE_SIZE, npage: n, ref: k }));
  const unmap = fc.record({ at: base, pages: arbSlotSpan(fc, shape), ref }).map(({ at, pages, ref: k }): DeviceOp => ({
    op: 'unmap_dma',
    iova: at * PAGE_SIZE,
    size: pages * PAGE_SIZE,
    ref: k,
  }));
  const dw = fc
    .record({ at: iovaPage, value: arbWord(fc), ref })
    .map(({ at, value, ref: k }): DeviceOp => ({ op: 'dma_write', iova: at * PAGE_SIZE, value, ref: k }));
  const dr = fc
    .record({ at: iovaPage, ref })
    .map(({ at, ref: k }): DeviceOp => ({ op: 'dma_read', iova: at * PAGE_SIZE, ref: k }));
  const rw = fc
    .record({ at: iovaPage, write: fc.boolean(), value: arbWord(fc), ref })
    .map(({ at, write, value, ref: k }): DeviceOp => ({
      op: 'dma_rw',
      iova: at * PAGE_SIZE + 4,
      write,
      value,
      ref: k,
    }));
  return fc.oneof(
    { weight: 3, arbitrary: map },
    { weight: 3, arbitrary: pin },
    { weight: 2, arbitrary: unpin },
    { weight: 2, arbitrary: unmap },
    { weight: 2, arbitrary: dw },
    { weight: 1, arbitrary: dr },
    { weight: 1, arbitrary: rw },
  );
}

/** What generated ops follow (arbRef()): the driver pins inside a map, DMAs through its pins, unmaps a map. */
const mapPages = (m: DeviceOp): number => Number(m.size) / PAGE_SIZE;
const inMap = insideIova(mapPages);
const inPin = insideIova((p) => Number(p.npage));
// npage 0 and past VFIO_PIN_PAGES_MAX_ENTRIES are the generator's errno cases: kept
const pinInMap = pinInside(mapPages, (op, left) => {
  const n = Number(op.npage);
  return n >= 1 && n <= VFIO_PIN_PAGES_MAX_ENTRIES ? { ...op, npage: Math.min(n, left) } : op;
});
const LINKS: Record<string, LinkRule> = {
  pin_pages: { from: 'map_dma', to: pinInMap },
  unpin_pages: { from: 'pin_pages', to: atSameIova },
  unmap_dma: { from: 'map_dma', to: atSameIova },
  dma_write: { from: 'pin_pages', to: inPin },
  dma_read: { from: 'pin_pages', to: inPin },
  dma_rw: { from: 'map_dma', to: inMap },
};

export const vfioMdev: DeviceModel = {
  name: NAME,
  summary: 'VFIO mediated device: the vendor driver pins per IOVA (vfio_pin_pages) and must unpin in dma_unmap',
  source:
    'drivers/vfio/vfio_main.c vfio_pin_pages; vfio_iommu_type1.c vfio_iommu_type1_pin_pages, vfio_dma_do_unmap; ' +
    'vfio_ccw/kvmgt dma_unmap',
  bugs: {
    'unmap-ignores-length': 'dma_unmap unpins only the page at iova, ignoring length (the vfio_ap/vfio_ccw history)',
    'callback-never-unpins': 'dma_unmap unpins nothing: UNMAP_DMA hits BUG_ON(++retries > 10)',
  },
  ops: {
    map_dma: VFIO_MAP_DMA_FIELDS,
    unmap_dma: VFIO_UNMAP_DMA_FIELDS,
    pin_pages: { iova: 'int', npage: 'int', write: 'bool' },
    unpin_pages: { iova: 'int', npage: 'int' },
    dma_write: { iova: 'int', value: 'int' },
    dma_read: { iova: 'int' },
    dma_rw: { iova: 'int', write: 'bool', value: 'int' },
  },
  charges: ['map_dma', 'pin_pages'], // vfio_iommu_type1_pin_pages() charges locked_vm per page pinned in a map
  setup: 'map_dma', // the map its driver pins in
  errnos: {
    // vfio_dma_do_map() without an IOMMU domain (nothing pinned): -EINVAL, -EEXIST, -ENOSPC, -ENOMEM (kzalloc)
    map_dma: [-EINVAL, -EEXIST, -ENOSPC, -ENOMEM],
    // vfio_dma_do_unmap(): -EINVAL; -EBUSY is pinlab's rc for BUG_ON(++retries > 10) (never returned; reported as a
    // violation)
    unmap_dma: [-EINVAL, -EBUSY],
    // vfio_pin_pages() -> vfio_iommu_type1_pin_pages(): -EINVAL (npage 0, no vfio_dma, no dma_unmap), -E2BIG
    // (> VFIO_PIN_PAGES_MAX_ENTRIES), -EPERM (prot), -ENOMEM (vfio_lock_acct over RLIMIT_MEMLOCK);
    // vfio_pin_page_external() -> pin_user_pages_remote(): -EFAULT, -ENOMEM, -EINTR
    pin_pages: [-EINVAL, -E2BIG, -EPERM, -ENOMEM, -EFAULT, -EINTR],
    // vfio_unpin_pages() is void: -EINVAL is the driver refusing what it would WARN_ON (pinlab)
    unpin_pages: [-EINVAL],
    // no kernel function: the device's DMA through a page its driver pinned; not pinned (for write) is -EFAULT
    dma_write: [-EINVAL, -EFAULT],
    dma_read: [-EINVAL, -EFAULT],
    // vfio_dma_rw() -> vfio_iommu_type1_dma_rw_chunk(): -EINVAL (no vfio_dma), -EPERM (prot), -EFAULT
    // (copy_{to,from}_user)
    dma_rw: [-EINVAL, -EPERM, -EFAULT],
  },
  faultPoints: GUP_FAULT_POINTS,
  programLength: DEVICE_PROGRAM_LENGTH,
  link: (p) => linkOps(p, LINKS),
  arbitrary,
  create: (env) => new MdevDevice(env),
};
