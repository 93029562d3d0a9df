// A VFIO type1 v2 container (drivers/vfio/vfio_iommu_type1.c, 6.12): the vfio_dma list,
// VFIO_IOMMU_MAP_DMA / UNMAP_DMA, the external pin API emulated devices use (vfio_pin_pages /
// vfio_unpin_pages / vfio_dma_rw) and, when the container has an IOMMU domain, the domain's page
// table plus the device's IOTLB. vfio-type1 uses it with a domain (pages pinned and mapped at
// MAP_DMA); vfio-mdev without one (nothing pinned at MAP_DMA; the vendor driver pins per IOVA).
//
// Units: iova, vaddr and size are bytes, as in struct vfio_iommu_type1_dma_map; the IOMMU page size is
// PAGE_SIZE. The valid IOVA list (with a domain) is the aperture [0, 2^addr_width) less the MSI window
// (vfio_iommu_iova_dma_valid(), default 39 bits); dma_entry_limit and addr_width are model
// parameters (DeviceEnv.params). Simplified: a u64 field pinlab
// cannot represent (not a safe integer) is an overflow, -EINVAL; no VM_PFNMAP (BAR) mappings, so
// vaddr_get_pfns() never takes the follow_fault_pfn() path and no pfn is reserved; no VADDR
// (live update) flags, no dirty tracking.

import type { DeviceEnv, OpResult, HeldPage, OpField } from './device';
import { pinUserPagesRemote, unpinUserPagesDirtyLock, FOLL_LONGTERM, FOLL_WRITE } from '../mm/gup';
import { getUser, putUser } from '../mm/memory';
import { EINVAL, EEXIST, ENOSPC, EFAULT, EPERM, E2BIG, ENOMEM, EBUSY, errname } from '../mm/errno';
import { vmWarnOnOnce } from '../mm/debug';
import {
  PAGE_SIZE,
  isU64,
  intField,
  pageAligned,
  accountLockedVm,
  capableIpcLock,
  rlimitMemlock,
  memlockCounters,
  hex,
  trace,
} from './common';
import { KBuf, getFreePage, kvfree } from '../mm/slab';
import { GFP_KERNEL_ACCOUNT, __GFP_ZERO } from '../mm/gfp';

/** Pages per last-level IOMMU table (512 8-byte PTEs) and per second-level one: 2 MiB and 1 GiB of IOVA. */
const PT_SPAN = 512;

/** VFIO_IOMMU_MAP_DMA / UNMAP_DMA fields (struct vfio_iommu_type1_dma_map / _unmap; all: VFIO_DMA_UNMAP_FLAG_ALL). */
export const VFIO_MAP_DMA_FIELDS: Record<string, OpField> = {
  iova: 'int',
  vaddr: 'vaddr',
  size: 'int',
  read: 'bool',
  write: 'bool',
};
export const VFIO_UNMAP_DMA_FIELDS: Record<string, OpField> = { iova: 'int', size: 'int', all: 'bool' };

export const IOMMU_READ = 1;
export const IOMMU_WRITE = 2;
/** VFIO_PIN_PAGES_MAX_ENTRIES (include/linux/vfio.h) */
export const VFIO_PIN_PAGES_MAX_ENTRIES = 512;
/** dma_entry_limit module parameter default */
export const DMA_ENTRY_LIMIT = 65535;
/** VFIO_BATCH_MAX_CAPACITY: PAGE_SIZE / sizeof(struct page *) */
export const VFIO_BATCH_MAX_CAPACITY = 512;
/** The IOMMU's address width by default: QEMU's intel-iommu (aw-bits=39), aperture [0, 2^39). */
export const IOMMU_ADDR_WIDTH = 39;
/** The reserved region iommu_get_group_resv_regions() reports on Intel: the MSI window (IOMMU_RESV_MSI). */
export const MSI_RESV_START = 0xfee00000;
export const MSI_RESV_END = 0xfeefffff;
/** Model parameters (DeviceEnv.params): the module's dma_entry_limit and the IOMMU address width. */
export const VFIO_PARAMS = { dma_entry_limit: DMA_ENTRY_LIMIT, addr_width: IOMMU_ADDR_WIDTH } as const;

/** struct vfio_iova: one valid IOVA range, inclusive. */
export interface IovaRange {
  start: number;
  end: number;
}

/**
 * vfio_iommu_aper_expand() + vfio_iommu_resv_exclude(): the aperture [0, 2^width - 1] less the
 * reserved regions (the MSI window when it lies inside).
 */
export function buildIovaList(addrWidth: number): IovaRange[] {
  const end = 2 ** addrWidth - 1;
  if (MSI_RESV_START > end) return [{ start: 0, end }];
  const list = [{ start: 0, end: MSI_RESV_START - 1 }];
  if (MSI_RESV_END < end) list.push({ start: MSI_RESV_END + 1, end });
  return list;
}
/** vfio_dma_do_unmap(): BUG_ON(++retries > 10) while the same vfio_dma keeps pinned pages. */
export const VFIO_UNMAP_RETRIES_MAX = 10;

/** struct vfio_pfn: one externally pinned IOVA page, refcounted. */
interface VfioPfn {
  pfn: number;
  ref: number;
}

/** struct vfio_dma */
export interface VfioDma {
  iova: number;
  vaddr: number;
  /** bytes mapped so far (grows chunk by chunk during MAP_DMA) */
  size: number;
  prot: number;
  lockCap: boolean;
  /** pages charged to mm->locked_vm for this mapping */
  lockedVm: number;
  /** external pins by IOVA page (vfio_pin_pages) */
  pfnList: Map<number, VfioPfn>;
}

/** An IOMMU page-table entry (iommu_map) and what the device's IOTLB caches. */
interface IoPte {
  pfn: number;
  prot: number;
  vpn: number;
}

/** struct vfio_batch: pages pinned ahead, consumed run by run. */
interface VfioBatch {
  pages: number[];
  offset: number;
  size: number;
}

/** vfio_device_ops.dma_unmap(iova, length): the emulated device must unpin everything it holds in the range. */
export type DmaUnmapCallback = (iova: number, length: number) => void;

export class Type1Container {
  private readonly dmas: VfioDma[] = []; // sorted by iova (the kernel's rb-tree)
  private dmaAvail: number;
  /** iommu->iova_list: empty for a container without an IOMMU domain (a single mdev: every IOVA valid) */
  readonly iovaList: IovaRange[];
  /** the IOMMU domain's page table, by IOVA page; null: no IOMMU-capable domain (mdev-only container) */
  private readonly domain: Map<number, IoPte> | null;
  /** the device's IOTLB: translations it has used, valid until an invalidation */
  private readonly iotlb = new Map<number, IoPte>();
  /** emulated devices registered with a dma_unmap callback (iommu->device_list) */
  readonly devices: DmaUnmapCallback[] = [];
  /**
   * The IOMMU's own page-table pages (intel-iommu: three levels for 39 bits, four for 48): 'root',
   * 'l3:<512 GiB>' (four levels), 'l2:<GiB>', 'l1:<2 MiB block>', each one page the kernel allocates as
   * it maps (a 2 MiB superpage has no 'l1').
   */
  private readonly ptables = new Map<string, KBuf>();
  /** page-table levels: three for a 39-bit address width, four above it (agaw) */
  private readonly levels: number;

  constructor(
    private readonly env: DeviceEnv,
    private readonly model: string,
    withDomain: boolean,
  ) {
    this.domain = withDomain ? new Map() : null;
    // vfio_iommu_type1_open(): iommu->dma_avail = dma_entry_limit
    this.dmaAvail = env.params?.dma_entry_limit ?? DMA_ENTRY_LIMIT;
    this.iovaList = withDomain ? buildIovaList(env.params?.addr_width ?? IOMMU_ADDR_WIDTH) : [];
    this.levels = (env.params?.addr_width ?? IOMMU_ADDR_WIDTH) > 39 ? 4 : 3;
  }

  /** vfio_iommu_iova_dma_valid(): [start, end] inside one valid range, or no list at all. */
  iovaDmaValid(start: number, end: number): boolean {
    return !this.iovaList.length || this.iovaList.some((r) => start >= r.start && end <= r.end);
  }

  /** VFIO_IOMMU_GET_INFO's VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE (vfio_iommu_iova_build_caps()). */
  iovaRanges(): string {
    return this.iovaList.map((r) => `${hex(r.start)}-${hex(r.end)}`).join(', ');
  }

  /** vfio_iommu_type1_get_info(): the IOVA-range capability (vfio_iommu_iova_build_caps()) and dma_avail. */
  getInfo(): OpResult {
    return {
      rc: 0,
      detail: `iova ranges: ${this.iovaRanges() || 'none (no IOMMU domain)'}; dma_avail ${this.dmaAvail}`,
    };
  }

  /** vfio_find_dma(): the mapping overlapping [start, start + size), as the rb-tree search finds it. */
  findDma(start: number, size: number): VfioDma | undefined {
    // mappings never overlap: only the last one starting below start + size can reach start
    const i = this.lowerBound(start + size) - 1;
    const d = i >= 0 ? this.dmas[i]! : undefined;
    return d && !(start + size <= d.iova) && !(start >= d.iova + d.size) ? d : undefined;
  }

  /** Index of the first mapping with iova >= at. */
  private lowerBound(at: number): number {
    let lo = 0;
    let hi = this.dmas.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.dmas[mid]!.iova < at) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  // -------------------------------------------------------------------------------------------
  // VFIO_IOMMU_MAP_DMA

  /** vfio_dma_do_map(): 0, or -EINVAL / -EEXIST / -ENOSPC / -ENOMEM / -EFAULT with nothing left mapped. */
  doMap(op: Record<string, unknown>): OpResult {
    const iova = intField(op, 'iova');
    const vaddr = intField(op, 'vaddr');
    const size = intField(op, 'size');
    const prot = (op.write ? IOMMU_WRITE : 0) | (op.read ? IOMMU_READ : 0);
    if (!isU64(iova) || !isU64(vaddr) || !isU64(size) || !isU64(iova + size) || !isU64(vaddr + size))
      return { rc: -EINVAL, detail: 'u64 overflow' };
    if (!prot) return { rc: -EINVAL, detail: 'neither READ nor WRITE' };
    if (!size || !pageAligned(size) || !pageAligned(iova) || !pageAligned(vaddr))
      return { rc: -EINVAL, detail: 'size 0 or not page aligned' };
    if (this.findDma(iova, size)) return { rc: -EEXIST, detail: `${hex(iova)}+${hex(size)} overlaps a mapping` };
    if (!this.dmaAvail) return { rc: -ENOSPC, detail: 'dma_entry_limit reached' };
    if (!this.iovaDmaValid(iova, iova + size - 1))
      return { rc: -EINVAL, detail: `${hex(iova)}+${hex(size)} outside the valid IOVA list (${this.iovaRanges()})` };
    const { m, mm } = this.env;
    this.dmaAvail--;
    const dma: VfioDma = {
      iova,
      vaddr,
      size: 0,
      prot,
      lockCap: capableIpcLock(m, mm),
      lockedVm: 0,
      pfnList: new Map(),
    };
    this.link(dma);
    if (!this.domain) {
      // no IOMMU-capable domain: nothing is pinned or mapped now
      dma.size = size;
      return { rc: 0, detail: `${hex(iova)}+${hex(size)} (no IOMMU domain: not pinned)` };
    }
    const r = this.pinMapDma(dma, size);
    if (r.rc) return r;
    return { rc: 0, detail: `${hex(iova)}+${hex(size)} pinned and mapped, ${r.detail}` };
  }

  private link(dma: VfioDma): void {
    this.dmas.splice(this.lowerBound(dma.iova), 0, dma);
  }

  /** vfio_pin_map_dma(): pin a contiguous run, map it, repeat; on failure vfio_remove_dma(). */
  private pinMapDma(dma: VfioDma, mapSize: number): OpResult {
    const batch: VfioBatch = { pages: [], offset: 0, size: 0 };
    const limit = rlimitMemlock(this.env.m, this.env.mm);
    let size = mapSize;
    let runs = 0;
    let ret = 0;
    while (size) {
      const run = this.pinPagesRemote(dma, dma.vaddr + dma.size, size / PAGE_SIZE, limit, batch);
      if (run.npage <= 0) {
        vmWarnOnOnce(run.npage === 0, 'vfio_pin_map_dma: vfio_pin_pages_remote pinned nothing');
        ret = run.npage || -EFAULT;
        break;
      }
      this.env.yieldPoint(`${this.model}:pinned-not-mapped`); // between vfio_pin_pages_remote and vfio_iommu_map
      const mapped = this.iommuMap(
        dma.iova + dma.size,
        run.pfnBase,
        run.npage,
        dma.prot,
        dma.vaddr / PAGE_SIZE + dma.size / PAGE_SIZE,
      );
      if (mapped) {
        // vfio_unpin_pages_remote(dma, iova + dma->size, pfn, npage, true): this run, and its charge
        unpinUserPagesDirtyLock(this.env.m, range(run.pfnBase, run.npage), run.npage, false);
        accountLockedVm(this.env.m, this.env.mm, run.npage, false, dma.lockCap);
        dma.lockedVm -= run.npage;
        ret = mapped;
        break;
      }
      runs++;
      size -= run.npage * PAGE_SIZE;
      dma.size += run.npage * PAGE_SIZE;
    }
    if (ret) {
      this.batchUnpin(batch);
      this.removeDma(dma);
      return { rc: ret, detail: `MAP_DMA ${hex(dma.iova)} failed: ${errname(ret)}, nothing left pinned` };
    }
    vmWarnOnOnce(batch.size !== 0, 'vfio_pin_map_dma: pages left in the batch');
    return { rc: 0, detail: `${runs} contiguous run(s)` };
  }

  /**
   * vaddr_get_pfns(): pin_user_pages_remote(FOLL_LONGTERM | FOLL_WRITE if the mapping is writable);
   * 0 pinned is -EFAULT.
   */
  private vaddrGetPfns(vaddr: number, npage: number, prot: number, pages: number[]): number {
    const flags = (prot & IOMMU_WRITE ? FOLL_WRITE : 0) | (this.env.bugs.has('no-longterm') ? 0 : FOLL_LONGTERM);
    const rc = pinUserPagesRemote(this.env.m, this.env.mm, vaddr / PAGE_SIZE, npage, flags, pages);
    return rc === 0 ? -EFAULT : rc;
  }

  /**
   * vfio_pin_pages_remote(): one physically contiguous run starting at vaddr, refilling the batch as
   * needed; each new page is checked against RLIMIT_MEMLOCK (-ENOMEM unless lock_cap) and the run is
   * charged with vfio_lock_acct(). On error the run and the batch are unpinned.
   */
  private pinPagesRemote(
    dma: VfioDma,
    vaddr: number,
    npage: number,
    limit: number,
    batch: VfioBatch,
  ): { npage: number; pfnBase: number } {
    const { m, mm } = this.env;
    let pinned = 0;
    let lockAcct = 0;
    let pfnBase = batch.size ? batch.pages[batch.offset]! : -1;
    let ret = 0;
    out: while (npage) {
      if (!batch.size) {
        const req = Math.min(npage, VFIO_BATCH_MAX_CAPACITY);
        const pages: number[] = new Array(req).fill(-1);
        const got = this.vaddrGetPfns(vaddr, req, dma.prot, pages);
        if (got < 0) {
          ret = got;
          break;
        }
        batch.pages = pages;
        batch.size = got;
        batch.offset = 0;
        if (pfnBase < 0) pfnBase = pages[0]!;
      }
      for (;;) {
        const pfn = batch.pages[batch.offset]!;
        if (pfn !== pfnBase + pinned) break out;
        if (!dma.lockCap && memlockCounters(m, mm).locked_vm + lockAcct + 1 > limit) {
          trace(this.env, `vfio_pin_pages_remote: RLIMIT_MEMLOCK (${limit * PAGE_SIZE}) exceeded`);
          ret = -ENOMEM;
          break out;
        }
        lockAcct++;
        pinned++;
        npage--;
        vaddr += PAGE_SIZE;
        batch.offset++;
        batch.size--;
        if (!batch.size) break;
      }
    }
    if (!ret) {
      ret = accountLockedVm(m, mm, lockAcct, true, dma.lockCap); // vfio_lock_acct()
      if (!ret) dma.lockedVm += lockAcct;
    }
    if (ret < 0) {
      // unpin_out:
      if (pinned) unpinUserPagesDirtyLock(m, range(pfnBase, pinned), pinned, false);
      this.batchUnpin(batch);
      return { npage: ret, pfnBase };
    }
    return { npage: pinned, pfnBase };
  }

  /** vfio_batch_unpin(): drop the pages pinned ahead and not yet consumed. */
  private batchUnpin(batch: VfioBatch): void {
    if (batch.size)
      unpinUserPagesDirtyLock(
        this.env.m,
        batch.pages.slice(batch.offset, batch.offset + batch.size),
        batch.size,
        false,
      );
    batch.size = 0;
  }

  /**
   * vfio_iommu_map() -> iommu_map() -> intel_iommu_map_pages(): npage IOMMU PTEs from iova to pfn. The
   * page-table levels that are missing are allocated first (pfn_to_dma_pte(), GFP_KERNEL_ACCOUNT from
   * VFIO); a 2 MiB block the run covers whole from a 2 MiB-aligned pfn is one superpage
   * (hardware_largepage_caps(): QEMU's intel-iommu offers 2 MiB), needing no last-level table.
   * 0, or -ENOMEM when a table page cannot be had (nothing of the run mapped).
   */
  private iommuMap(iova: number, pfn: number, npage: number, prot: number, vpn: number): number {
    const first = iova / PAGE_SIZE;
    const end = first + npage;
    if (!this.ptable('root')) return -ENOMEM;
    for (let blk = Math.floor(first / PT_SPAN); blk * PT_SPAN < end; blk++) {
      const s = blk * PT_SPAN;
      if (this.levels === 4 && !this.ptable(`l3:${Math.floor(blk / (PT_SPAN * PT_SPAN))}`)) return -ENOMEM;
      if (!this.ptable(`l2:${Math.floor(blk / PT_SPAN)}`)) return -ENOMEM;
      const whole = s >= first && s + PT_SPAN <= end && (pfn + s - first) % PT_SPAN === 0;
      const superpage = whole && !this.ptables.has(`l1:${blk}`);
      if (!superpage && !this.ptable(`l1:${blk}`)) return -ENOMEM;
    }
    for (let i = 0; i < npage; i++) this.domain!.set(first + i, { pfn: pfn + i, prot, vpn: vpn + i });
    return 0;
  }

  /** The page-table page named key, allocated (zeroed) when missing; false when it cannot be. */
  private ptable(key: string): boolean {
    if (this.ptables.has(key)) return true;
    const b = getFreePage(this.env.m, GFP_KERNEL_ACCOUNT | __GFP_ZERO);
    if (!b) return false;
    this.ptables.set(key, b);
    return true;
  }

  /**
   * iommu_unmap_fast() of one contiguous run -> domain_unmap(): the tables whose whole span the range
   * covers are freed (dma_pte_free_level(): the freelist); a table only partly unmapped stays until the
   * domain goes.
   */
  private iommuUnmapTables(first: number, n: number): void {
    const end = first + n;
    for (let blk = Math.ceil(first / PT_SPAN); (blk + 1) * PT_SPAN <= end; blk++) this.freeTable(`l1:${blk}`);
    const gib = PT_SPAN * PT_SPAN;
    for (let g = Math.ceil(first / gib); (g + 1) * gib <= end; g++) this.freeTable(`l2:${g}`);
    const top = gib * PT_SPAN;
    for (let t = Math.ceil(first / top); (t + 1) * top <= end; t++) this.freeTable(`l3:${t}`);
  }

  private freeTable(key: string): void {
    const b = this.ptables.get(key);
    if (!b) return;
    kvfree(this.env.m, b);
    this.ptables.delete(key);
  }

  /** Frames the IOMMU's page tables hold now. */
  iommuTablePages(): number {
    return this.ptables.size;
  }

  // -------------------------------------------------------------------------------------------
  // VFIO_IOMMU_UNMAP_DMA and teardown

  /**
   * vfio_dma_do_unmap() (v2): unmaps every mapping inside [iova, iova + size) and returns the bytes
   * unmapped (0 when nothing was there). -EINVAL for misalignment, size 0 or a range that bisects a
   * mapping. A mapping with external pins first has every registered device's dma_unmap called; the
   * kernel BUG_ON()s when the same mapping still has pins after the 11th call: a violation here.
   */
  doUnmap(op: Record<string, unknown>): OpResult {
    const all = op.all === true;
    const iova = intField(op, 'iova', all ? 0 : undefined);
    let size = intField(op, 'size', all ? 0 : undefined);
    if (!isU64(iova) || !isU64(size) || !pageAligned(iova)) return { rc: -EINVAL, detail: 'iova not page aligned' };
    if (all) {
      if (iova || size) return { rc: -EINVAL, detail: 'UNMAP_ALL needs iova = size = 0' };
      size = Number.MAX_SAFE_INTEGER;
    } else if (!size || !pageAligned(size) || !isU64(iova + size))
      return { rc: -EINVAL, detail: 'size 0, misaligned or wrapping' };
    let unmapped = 0;
    let dmaLast: VfioDma | undefined;
    let retries = 0;
    again: for (;;) {
      if (!all) {
        const first = this.findDma(iova, 1);
        if (first && first.iova !== iova)
          return { rc: -EINVAL, detail: `${hex(iova)} bisects the mapping at ${hex(first.iova)}` };
        const last = this.findDma(iova + size - 1, 0);
        if (last && last.iova + last.size !== iova + size)
          return { rc: -EINVAL, detail: `end ${hex(iova + size)} bisects the mapping at ${hex(last.iova)}` };
      }
      const first = this.lowerBound(iova);
      for (const dma of this.dmas.slice(first, this.lowerBound(iova + size))) {
        if (dma.pfnList.size) {
          if (dma === dmaLast) {
            if (++retries > VFIO_UNMAP_RETRIES_MAX) {
              return {
                rc: -EBUSY,
                detail: `unmapped ${unmapped} bytes before the BUG`,
                violation: `${this.env.name}: kernel BUG at vfio_dma_do_unmap: BUG_ON(++retries > 10): ${dma.pfnList.size} page(s) of ${hex(dma.iova)}+${hex(dma.size)} still pinned after ${retries} dma_unmap calls`,
              };
            }
          } else {
            dmaLast = dma;
            retries = 0;
          }
          this.notifyDmaUnmap(dma);
          continue again;
        }
        unmapped += dma.size;
        this.removeDma(dma);
      }
      break;
    }
    return { rc: unmapped, detail: `${unmapped} bytes unmapped` };
  }

  /** vfio_notify_dma_unmap(): iommu->lock dropped, each device's dma_unmap(iova, size). */
  private notifyDmaUnmap(dma: VfioDma): void {
    this.env.yieldPoint(`${this.model}:notify-dma-unmap`);
    for (const cb of this.devices) cb(dma.iova, dma.size);
  }

  /** vfio_remove_dma() -> vfio_unmap_unpin(): unmap the IOMMU, flush the IOTLB, then unpin and uncharge. */
  private removeDma(dma: VfioDma): number {
    vmWarnOnOnce(dma.pfnList.size > 0, 'vfio_remove_dma: pfn_list not empty');
    let unlocked = 0;
    if (this.domain) {
      const pages: number[] = [];
      const first = dma.iova / PAGE_SIZE;
      let runStart = first;
      for (let p = first; p < first + dma.size / PAGE_SIZE; p++) {
        const pte = this.domain.get(p);
        if (vmWarnOnOnce(!pte, 'vfio_unmap_unpin: iova not mapped')) continue;
        this.domain.delete(p); // iommu_unmap_fast(), one physically contiguous run at a time
        if (pages.length && pte!.pfn !== pages[pages.length - 1]! + 1) {
          this.iommuUnmapTables(runStart, p - runStart);
          runStart = p;
        }
        pages.push(pte!.pfn);
      }
      this.iommuUnmapTables(runStart, first + dma.size / PAGE_SIZE - runStart);
      // iommu_iotlb_sync(): the device's cached translations go before any page is unpinned
      if (!this.env.bugs.has('dma-after-unmap'))
        for (let p = first; p < first + dma.size / PAGE_SIZE; p++) this.iotlb.delete(p);
      this.env.yieldPoint(`${this.model}:unmapped-not-unpinned`);
      unpinUserPagesDirtyLock(this.env.m, pages, pages.length, (dma.prot & IOMMU_WRITE) !== 0); // put_pfn()
      unlocked = pages.length;
      accountLockedVm(this.env.m, this.env.mm, unlocked, false, dma.lockCap); // vfio_lock_acct(dma, -unlocked)
      dma.lockedVm -= unlocked;
    }
    vmWarnOnOnce(dma.lockedVm !== 0, 'vfio_remove_dma: locked_vm left charged');
    this.dmas.splice(this.lowerBound(dma.iova), 1);
    this.dmaAvail++;
    return unlocked;
  }

  /** vfio_iommu_unmap_unpin_all() at container release: every mapping, pins or not. Returns pages unpinned. */
  releaseAll(): number {
    let n = 0;
    for (const dma of [...this.dmas].reverse()) {
      // from the end: each removal is then O(1)
      n += this.dropExternalPins(dma);
      n += this.removeDma(dma);
    }
    this.iotlb.clear();
    // the domain goes (domain_exit()): every table left, the root too
    for (const key of [...this.ptables.keys()]) this.freeTable(key);
    return n;
  }

  /** Pins the devices failed to give back, dropped at release (the kernel WARNs in vfio_sanity_check_pfn_list). */
  private dropExternalPins(dma: VfioDma): number {
    let n = 0;
    for (const [, v] of dma.pfnList) {
      unpinUserPagesDirtyLock(this.env.m, [v.pfn], 1, (dma.prot & IOMMU_WRITE) !== 0);
      n++;
    }
    if (!this.domain && n) {
      accountLockedVm(this.env.m, this.env.mm, n, false, dma.lockCap);
      dma.lockedVm -= n;
    }
    dma.pfnList.clear();
    return n;
  }

  // -------------------------------------------------------------------------------------------
  // The device's view through the IOMMU (type1 with a domain)

  /** A DMA's translation: the IOTLB first, else the domain's page table (which refills the IOTLB). */
  translate(iovaPage: number): IoPte | undefined {
    const hit = this.iotlb.get(iovaPage);
    if (hit) return hit;
    const pte = this.domain?.get(iovaPage);
    if (pte) this.iotlb.set(iovaPage, pte);
    return pte;
  }

  // -------------------------------------------------------------------------------------------
  // The external pin API (vfio_main.c -> vfio_iommu_type1_pin_pages / unpin_pages / dma_rw)

  /**
   * vfio_pin_pages(): pin npage IOVA pages from iova; returns npage and fills pfns, or a negative
   * errno with nothing pinned. Pins are refcounted per IOVA page; mm->locked_vm is charged here only
   * when the container has no IOMMU domain.
   */
  pinPages(iova: number, npage: number, prot: number, pfns: number[]): number {
    if (!npage || npage < 0 || !Number.isSafeInteger(npage)) return -EINVAL;
    if (npage > VFIO_PIN_PAGES_MAX_ENTRIES) return -E2BIG;
    if (!isU64(iova) || !pageAligned(iova)) return -EINVAL; // callers pass PAGE_ALIGNED iovas
    if (!this.devices.length) return -EINVAL; // no dma_unmap callback registered
    const doAccounting = !this.domain;
    let i = 0;
    let ret = 0;
    for (; i < npage; i++) {
      const at = iova + i * PAGE_SIZE;
      const dma = this.findDma(at, PAGE_SIZE);
      if (!dma) {
        ret = -EINVAL;
        break;
      }
      if ((dma.prot & prot) !== prot) {
        ret = -EPERM;
        break;
      }
      const vpfn = dma.pfnList.get(at / PAGE_SIZE);
      if (vpfn) {
        // vfio_iova_get_vfio_pfn(): already pinned, take a reference
        vpfn.ref++;
        pfns[i] = vpfn.pfn;
        continue;
      }
      const got = [-1];
      const rc = this.vaddrGetPfns(dma.vaddr + (at - dma.iova), 1, dma.prot, got); // vfio_pin_page_external()
      if (rc !== 1) {
        ret = rc < 0 ? rc : -EFAULT;
        break;
      }
      if (doAccounting) {
        const a = accountLockedVm(this.env.m, this.env.mm, 1, true, dma.lockCap);
        if (a) {
          unpinUserPagesDirtyLock(this.env.m, got, 1, false);
          trace(
            this.env,
            `vfio_pin_page_external: RLIMIT_MEMLOCK (${rlimitMemlock(this.env.m, this.env.mm) * PAGE_SIZE}) exceeded`,
          );
          ret = a;
          break;
        }
        dma.lockedVm++;
      }
      dma.pfnList.set(at / PAGE_SIZE, { pfn: got[0]!, ref: 1 });
      pfns[i] = got[0]!;
    }
    if (ret) {
      // pin_unwind:
      for (let j = 0; j < i; j++) this.unpinPageExternal(iova + j * PAGE_SIZE, doAccounting);
      return ret;
    }
    return npage;
  }

  /** vfio_unpin_pages(): drop one reference per IOVA page; the last one unpins (dirty if writable) and uncharges. */
  unpinPages(iova: number, npage: number): void {
    if (vmWarnOnOnce(npage <= 0 || npage > VFIO_PIN_PAGES_MAX_ENTRIES, 'vfio_unpin_pages: bad npage')) return;
    let i = 0;
    for (; i < npage; i++) {
      const at = iova + i * PAGE_SIZE;
      if (!this.findDma(at, PAGE_SIZE)) break;
      this.unpinPageExternal(at, !this.domain);
    }
    vmWarnOnOnce(i !== npage, 'vfio_unpin_pages: iova not mapped');
  }

  /** vfio_unpin_page_external() -> vfio_iova_put_vfio_pfn() */
  private unpinPageExternal(at: number, doAccounting: boolean): number {
    const dma = this.findDma(at, PAGE_SIZE);
    const vpfn = dma?.pfnList.get(at / PAGE_SIZE);
    if (!dma || !vpfn) return 0;
    if (--vpfn.ref) return 0;
    unpinUserPagesDirtyLock(this.env.m, [vpfn.pfn], 1, (dma.prot & IOMMU_WRITE) !== 0); // put_pfn()
    dma.pfnList.delete(at / PAGE_SIZE);
    if (doAccounting) {
      accountLockedVm(this.env.m, this.env.mm, 1, false, dma.lockCap);
      dma.lockedVm--;
    }
    return 1;
  }

  /**
   * vfio_dma_rw(): a CPU copy of one word at iova through the process's page tables (no pin):
   * -EINVAL unmapped, -EPERM without the direction's permission, -EFAULT when the copy faults.
   * Returns the word read, or 0 after a write.
   */
  dmaRw(iova: number, write: boolean, value: number): number {
    if (!isU64(iova)) return -EINVAL;
    const dma = this.findDma(iova, 1);
    if (!dma) return -EINVAL;
    if (!(dma.prot & (write ? IOMMU_WRITE : IOMMU_READ))) return -EPERM;
    const vpn = Math.floor((dma.vaddr + (iova - dma.iova)) / PAGE_SIZE);
    // copy_{to,from}_user() on dma->mm
    const r = write ? putUser(this.env.m, this.env.mm, vpn, value) : getUser(this.env.m, this.env.mm, vpn);
    if (r < 0) return -EFAULT;
    return write ? 0 : r;
  }

  // -------------------------------------------------------------------------------------------
  // For inspect()

  /** Pages the IOMMU domain maps now (pinned at MAP_DMA). */
  domainHeld(): HeldPage[] {
    const out: HeldPage[] = [];
    if (this.domain)
      for (const [iovaPage, pte] of this.domain)
        out.push({ iova: iovaPage, vpn: pte.vpn, pfn: pte.pfn, longterm: true });
    return out.sort((a, b) => a.iova - b.iova);
  }

  /** Pages pinned through vfio_pin_pages, once per IOVA page. */
  externalHeld(): HeldPage[] {
    const out: HeldPage[] = [];
    for (const dma of this.dmas) {
      for (const [iovaPage, v] of dma.pfnList) {
        out.push({
          iova: iovaPage,
          vpn: Math.floor((dma.vaddr + iovaPage * PAGE_SIZE - dma.iova) / PAGE_SIZE),
          pfn: v.pfn,
          longterm: true,
        });
      }
    }
    return out.sort((a, b) => a.iova - b.iova);
  }

  /** Pages charged to mm->locked_vm by this container. */
  lockedVm(): number {
    return this.dmas.reduce((s, d) => s + d.lockedVm, 0);
  }

  /** Number of vfio_dma mappings. */
  nrDmas(): number {
    return this.dmas.length;
  }
}

function range(start: number, n: number): number[] {
  return Array.from({ length: n }, (_, i) => start + i);
}
