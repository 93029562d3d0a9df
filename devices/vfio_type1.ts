// vfio-type1: a passthrough PCI device behind an IOMMU, in a VFIO type1 v2 container with an IOMMU
// domain (drivers/vfio/vfio_iommu_type1.c, 6.12). MAP_DMA pins the whole range long-term in
// physically contiguous runs (vfio_pin_pages_remote) and maps each run into the domain, charging
// mm->locked_vm; UNMAP_DMA unmaps, flushes the IOTLB, then unpins. The device's DMA goes by IOVA
// through its IOTLB and the domain: the pfn captured at map time, never the process page table
// (docs/properties.md, dma-integrity).
//
// Ops (bytes): map_dma {iova, vaddr, size, read, write}; unmap_dma {iova, size} or {all: true};
// dma_write {iova, value}; dma_read {iova}; get_info {} (VFIO_IOMMU_GET_INFO: the valid IOVA ranges and
// dma_avail). Parameters (DeviceEnv.params): dma_entry_limit (default 65535), addr_width (default 39).
// An IOMMU fault (no translation, or the wrong direction) is rc -EFAULT with a "DMAR fault" detail.

import type { DeviceModel, DeviceEnv, DeviceState, DeviceOp, OpResult, GenShape, HeldPage } from './device';
import { EFAULT, EINVAL, EEXIST, ENOSPC, ENOMEM, EINTR, EBUSY } from '../mm/errno';
import {
  Type1Container,
  IOMMU_READ,
  IOMMU_WRITE,
  VFIO_MAP_DMA_FIELDS,
  VFIO_UNMAP_DMA_FIELDS,
  MSI_RESV_START,
  MSI_RESV_END,
  IOMMU_ADDR_WIDTH,
} from './vfio_container';
import {
  PAGE_SIZE,
  intField,
  isU64,
  dmaTargetViolation,
  deviceRead,
  deviceWrite,
  hex,
  arbRange,
  arbWord,
  arbRef,
  arbSlotBase,
  linkOps,
  insideIova,
  atSameIova,
  type LinkRule,
  arbSlotPage,
  arbSlotSpan,
  GUP_FAULT_POINTS,
  DEVICE_PROGRAM_LENGTH,
} from './common';
import type * as fcType from 'fast-check';

const NAME = 'vfio-type1';

/**
 * A vfio-pci device behind an IOMMU, in its type1 container with a domain: the ioctls go to the
 * container, the device's DMA goes by IOVA through its IOTLB and the domain.
 */
class VfioPciDevice implements DeviceState {
  private readonly container: Type1Container;

  constructor(private readonly env: DeviceEnv) {
    this.container = new Type1Container(env, NAME, true);
  }

  step(op: DeviceOp): OpResult {
    switch (op.op) {
      case 'map_dma':
        return this.container.doMap(op);
      case 'unmap_dma':
        return this.container.doUnmap(op);
      case 'dma_write':
        return this.dma(op, true);
      case 'dma_read':
        return this.dma(op, false);
      case 'get_info': // a query: not among opKinds, so generated programs never pick it
        return this.container.getInfo();
      default:
        return { rc: -EINVAL, detail: `unknown op ${op.op}` };
    }
  }

  /** The device's DMA of one word at iova, through the IOMMU (a DMAR fault without a translation). */
  private dma(op: DeviceOp, write: boolean): OpResult {
    const { m } = this.env;
    const iova = intField(op, 'iova');
    if (!isU64(iova)) return { rc: -EINVAL };
    const pte = this.container.translate(Math.floor(iova / PAGE_SIZE));
    if (!pte) return { rc: -EFAULT, detail: `DMAR fault: no translation for iova ${hex(iova)}` };
    if (!(pte.prot & (write ? IOMMU_WRITE : IOMMU_READ))) {
      const dir = write ? 'write to' : 'read from';
      return { rc: -EFAULT, detail: `DMAR fault: ${dir} iova ${hex(iova)} without permission` };
    }
    const what = `${this.env.name} ${write ? 'dma_write' : 'dma_read'} iova ${hex(iova)}`;
    const violation = dmaTargetViolation(m, pte.pfn, what);
    if (write) {
      const value = intField(op, 'value', 0);
      deviceWrite(m, pte.pfn, value);
      return { rc: 0, detail: `wrote ${hex(value >>> 0)} to pfn ${pte.pfn}`, violation };
    }
    const v = deviceRead(m, pte.pfn);
    return { rc: v, detail: `read ${hex(v)} from pfn ${pte.pfn}`, violation };
  }

  inspect(): { held: HeldPage[]; accounting: Record<string, number> } {
    const c = this.container;
    const accounting = { locked_vm: c.lockedVm(), dmas: c.nrDmas(), iommu_pt_pages: c.iommuTablePages() };
    return { held: c.domainHeld(), accounting };
  }

  /** vfio_iommu_type1_release(): the container goes with its last fd. */
  teardown(): OpResult {
    const n = this.container.releaseAll();
    return { rc: n, detail: `container released: ${n} pages unpinned` };
  }
}

/** IOVAs of generated ops: a small window so that maps overlap and unmaps hit. */
const IOVA_PAGES = 64;

function arbitrary(fc: typeof fcType, shape: GenShape): fcType.Arbitrary<DeviceOp> {
  // a few slots (common.ts arbSlotBase): a map, the DMAs through it, its unmap and a DMA after it name the same IOVAs
  const base = arbSlotBase(fc, shape, IOVA_PAGES);
  const ref = arbRef(fc);
  const skew = fc.oneof(
    { weight: 9, arbitrary: fc.constant(0) },
    { weight: 1, arbitrary: fc.integer({ min: 1, max: PAGE_SIZE - 1 }) },
  );
  // now and then the edges of the valid IOVA list (around the MSI window, the 39-bit aperture's end):
  // taken from a quarter of the misaligned skews, so the op mix draws no more random values than before
  const edges = [
    MSI_RESV_START - PAGE_SIZE,
    MSI_RESV_START,
    MSI_RESV_END + 1,
    2 ** IOMMU_ADDR_WIDTH - PAGE_SIZE,
    2 ** IOMMU_ADDR_WIDTH,
  ];
  const map = fc
    .record({ at: base, r: arbRange(fc, shape), prot: fc.constantFrom('rw', 'rw', 'r', 'w'), skew })
    .map(({ at, r, prot, skew: sk }): DeviceOp => ({
      op: 'map_dma',
      iova: sk && sk % 4 === 0 ? edges[(sk / 4) % edges.length]! : at * PAGE_SIZE + sk,
      vaddr: r.vaddr,
      size: r.pages * PAGE_SIZE,
      read: prot.includes('r'),
      write: prot.includes('w'),
    }));
  const unmap = fc.oneof(
    {
      weight: 8,
      arbitrary: fc.record({ at: base, pages: arbSlotSpan(fc, shape), ref }).map(({ at, pages, ref: k }): DeviceOp => ({
        op: 'unmap_dma',
        iova: at * PAGE_SIZE,
        size: pages * PAGE_SIZE,
        ref: k,
      })),
    },
    {
      weight: 1,
      arbitrary: fc
        .record({ at: base, pages: fc.constant(0) })
        .map(({ at, pages }): DeviceOp => ({ op: 'unmap_dma', iova: at * PAGE_SIZE, size: pages * PAGE_SIZE })),
    },
    { weight: 1, arbitrary: fc.constant<DeviceOp>({ op: 'unmap_dma', all: true, iova: 0, size: 0 }) },
  );
  const page = arbSlotPage(fc, shape, IOVA_PAGES);
  const dw = fc
    .record({ at: page, value: arbWord(fc), ref })
    .map(({ at, value, ref: k }): DeviceOp => ({ op: 'dma_write', iova: at * PAGE_SIZE, value, ref: k }));
  const dr = fc
    .record({ at: page, ref })
    .map(({ at, ref: k }): DeviceOp => ({ op: 'dma_read', iova: at * PAGE_SIZE, ref: k }));
  return fc.oneof(
    { weight: 3, arbitrary: map },
    { weight: 2, arbitrary: unmap },
    { weight: 3, arbitrary: dw },
    { weight: 2, arbitrary: dr },
  );
}

/** What generated ops follow (arbRef()): DMAs through a map (before or after its unmap), an unmap of a map. */
const through = insideIova((m) => Math.ceil(Number(m.size) / PAGE_SIZE));
const LINKS: Record<string, LinkRule> = {
  unmap_dma: { from: 'map_dma', to: atSameIova },
  dma_write: { from: 'map_dma', to: through },
  dma_read: { from: 'map_dma', to: through },
};

export const vfioType1: DeviceModel = {
  name: NAME,
  summary: 'VFIO type1 passthrough device: MAP_DMA pins and maps long-term, DMA by IOVA through the IOMMU',
  source:
    'drivers/vfio/vfio_iommu_type1.c ' +
    '(vfio_dma_do_map, vfio_pin_pages_remote, vfio_dma_do_unmap, vfio_unmap_unpin)',
  bugs: {
    'no-longterm': 'vaddr_get_pfns() pins without FOLL_LONGTERM: pinned pages may stay in ZONE_MOVABLE/CMA',
    'dma-after-unmap':
      'UNMAP_DMA skips the IOTLB invalidation: ' + 'the device keeps DMAing to the old pfn after it is unpinned',
  },
  ops: {
    map_dma: VFIO_MAP_DMA_FIELDS,
    unmap_dma: VFIO_UNMAP_DMA_FIELDS,
    dma_write: { iova: 'int', value: 'int' },
    dma_read: { iova: 'int' },
    get_info: {},
  },
  // swarm testing's op kinds: the ones that change state (get_info only reads)
  charges: ['map_dma'], // vfio_pin_pages_remote(): MAP_DMA charges locked_vm
  setup: 'map_dma', // the map its DMAs go through
  opKinds: ['map_dma', 'unmap_dma', 'dma_write', 'dma_read'],
  errnos: {
    // vfio_dma_do_map(): -EINVAL (u64 overflow, no READ/WRITE, alignment, wrap, outside the IOVA list), -EEXIST,
    // -ENOSPC (dma_entry_limit), -ENOMEM (RLIMIT_MEMLOCK in vfio_pin_pages_remote); vaddr_get_pfns() ->
    // pin_user_pages_remote(): -EFAULT, -ENOMEM (migration), -EINTR (fatal_signal_pending in __get_user_pages)
    map_dma: [-EINVAL, -EEXIST, -ENOSPC, -ENOMEM, -EFAULT, -EINTR],
    // vfio_dma_do_unmap(): -EINVAL (alignment, size 0, wrap, a bisected mapping). -EBUSY is pinlab's rc for
    // BUG_ON(++retries > 10), which the kernel never returns from: the op reports it as a violation
    unmap_dma: [-EINVAL, -EBUSY],
    // no kernel function: the device's DMA through the IOMMU; a DMAR fault is -EFAULT, an iova pinlab cannot
    // represent -EINVAL
    dma_write: [-EINVAL, -EFAULT],
    dma_read: [-EINVAL, -EFAULT],
    // vfio_iommu_type1_get_info(): -EFAULT/-EINVAL only for a bad user buffer, which pinlab's op has none of
    get_info: [],
  },
  faultPoints: GUP_FAULT_POINTS,
  programLength: DEVICE_PROGRAM_LENGTH,
  link: (p) => linkOps(p, LINKS),
  arbitrary,
  create: (env) => new VfioPciDevice(env),
};
