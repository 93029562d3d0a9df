// iommufd-access: an emulated device (an mdev bound through iommufd) that reaches guest memory through
// an iommufd_access on an IOAS with no hardware domain attached (drivers/iommu/iommufd/device.c,
// pages.c, io_pagetable.c; 6.12). IOMMU_IOAS_MAP only records the area; pages are pinned when the
// driver calls iommufd_access_pin_pages(), exactly once per page however many accesses cover it
// (the iopt_pages pinned_pfns xarray), with FOLL_LONGTERM, and charged after pinning to
// user->locked_vm (IOPT_PAGES_ACCOUNT_USER; nothing with CAP_IPC_LOCK) plus mm->pinned_vm.
// iommufd_access_unpin_pages() must name exactly a range that was pinned. IOMMU_IOAS_UNMAP of an area
// with accesses sets prevent_access and calls the driver's ops->unmap(iova, length), retrying; after
// 100 tries it WARNs and fails with -EDEADLOCK.
//
// Ops (bytes): ioas_map {iova, vaddr, length, read, write}; ioas_unmap {iova, length} or {all: true};
// access_pin {iova, length, write}; access_unpin {iova, length}; access_rw {iova, write, value}
// (iommufd_access_rw of one word); dma_write {iova, value} / dma_read {iova} through the driver's
// pinned pages. Simplified: one area per IOAS_MAP (no area splitting), FIXED_IOVA only, page-aligned
// iova, vaddr and length (an access needing pin_pages makes the IOAS alignment PAGE_SIZE).

import type * as fcType from 'fast-check';
import type { DeviceModel, DeviceEnv, DeviceState, DeviceOp, OpResult, GenShape, HeldPage } from './device';
import { pinUserPagesFast, unpinUserPagesDirtyLock, FOLL_LONGTERM, FOLL_WRITE } from '../mm/gup';
import { getUser, putUser } from '../mm/memory';
import { EINVAL, EOVERFLOW, EEXIST, ENOENT, EPERM, EFAULT, EDEADLK, ENOMEM, EINTR, errname } from '../mm/errno';
import { vmWarnOnOnce } from '../mm/debug';
import {
  PAGE_SIZE,
  intField,
  isU64,
  pageAligned,
  capableIpcLock,
  incrUserLockedVm,
  decrUserLockedVm,
  pinnedVmAddReturn,
  deviceRead,
  deviceWrite,
  hex,
  arbRange,
  arbWord,
  trace,
  dmaAccess,
  arbRef,
  arbSlotBase,
  linkOps,
  insideIova,
  pinInside,
  atSameIova,
  type LinkRule,
  arbSlotPage,
  arbSlotSpan,
  GUP_FAULT_POINTS,
  DEVICE_PROGRAM_LENGTH,
} from './common';

const NAME = 'iommufd-access';
/** iopt_unmap_iova_range(): WARN_ON(tries > 100) -> -EDEADLOCK */
export const IOPT_UNMAP_TRIES_MAX = 100;

/** struct iopt_pages_access: one exact index range and how many pins of it are outstanding. */
interface PagesAccess {
  start: number;
  last: number;
  users: number;
}

/** struct iopt_area with its own struct iopt_pages: the pinned_pfns xarray and the exact-range accesses. */
class IoptArea {
  /** pinned_pfns: page index -> pfn */
  readonly pinned = new Map<number, number>();
  readonly accesses = new Map<string, PagesAccess>();
  numAccesses = 0;
  preventAccess = false;
  /** pages charged (pages->npinned as last accounted) */
  npinned = 0;

  /** iova, length, vaddr in bytes; readable, writable: IOMMU_READ | IOMMU_WRITE; accountUser: ACCOUNT_USER */
  constructor(
    private readonly env: DeviceEnv,
    readonly iova: number,
    readonly length: number,
    readonly vaddr: number,
    readonly readable: boolean,
    readonly writable: boolean,
    readonly accountUser: boolean,
  ) {}

  /** do_update_pinned(): user->locked_vm (ACCOUNT_USER) then mm->pinned_vm. */
  private updatePinned(npages: number, inc: boolean): number {
    const { m, mm } = this.env;
    if (this.accountUser) {
      if (inc) {
        const rc = incrUserLockedVm(m, mm, npages);
        if (rc) return rc;
      } else decrUserLockedVm(m, mm, npages);
    }
    pinnedVmAddReturn(m, mm, inc ? npages : -npages);
    this.npinned += inc ? npages : -npages;
    return 0;
  }

  /** pfn_reader_user_pin(): pin the pages at the given indexes, a run of consecutive ones per GUP call. */
  private userPin(missing: number[], got: [number, number][]): number {
    const { m, mm } = this.env;
    let rc = 0;
    for (let k = 0; k < missing.length && !rc;) {
      let n = 1;
      while (k + n < missing.length && missing[k + n] === missing[k]! + n) n++;
      const pages: number[] = new Array(n).fill(-1);
      const vpn = this.vaddr / PAGE_SIZE + missing[k]!;
      const r = pinUserPagesFast(m, mm, vpn, n, FOLL_LONGTERM | (this.writable ? FOLL_WRITE : 0), pages);
      for (let i = 0; i < Math.max(r, 0); i++) got.push([missing[k]! + i, pages[i]!]);
      if (r < n) rc = r < 0 ? r : -EFAULT;
      k += n;
    }
    return rc;
  }

  /** iopt_pages_fill_xarray(): pin every page of [start, last] not pinned yet, then account them. */
  private fillXarray(start: number, last: number): number {
    const missing: number[] = [];
    for (let i = start; i <= last; i++) if (!this.pinned.has(i)) missing.push(i);
    const got: [number, number][] = [];
    let rc = this.userPin(missing, got);
    if (!rc && got.length) {
      this.env.yieldPoint(`${NAME}:pinned-not-accounted`);
      rc = this.updatePinned(got.length, true); // accounting happens after pinning; unwind on -ENOMEM
      if (rc) trace(this.env, `iopt_pages: RLIMIT_MEMLOCK exceeded pinning ${got.length} page(s)`);
    }
    if (rc) {
      unpinUserPagesDirtyLock(
        this.env.m,
        got.map((g) => g[1]),
        got.length,
        false,
      );
      return rc;
    }
    for (const [i, pfn] of got) this.pinned.set(i, pfn);
    return 0;
  }

  /** iopt_pages_unfill_xarray(): unpin pages of [start, last] no remaining access covers. */
  private unfillXarray(start: number, last: number): void {
    const drop: number[] = [];
    for (let i = start; i <= last; i++) {
      if (![...this.accesses.values()].some((x) => i >= x.start && i <= x.last) && this.pinned.has(i)) drop.push(i);
    }
    unpinUserPagesDirtyLock(
      this.env.m,
      drop.map((i) => this.pinned.get(i)!),
      drop.length,
      this.writable,
    );
    for (const i of drop) this.pinned.delete(i);
    if (drop.length) this.updatePinned(drop.length, false);
  }

  /** iopt_area_add_access(): an exact-range access record, pinning on first use. */
  addAccess(start: number, last: number, write: boolean): number {
    if (write && !this.writable) return -EPERM;
    const key = `${start}:${last}`;
    const x = this.accesses.get(key);
    if (x) {
      x.users++;
      this.numAccesses++;
      return 0;
    }
    const rc = this.fillXarray(start, last);
    if (rc) return rc;
    this.accesses.set(key, { start, last, users: 1 });
    this.numAccesses++;
    return 0;
  }

  /** iopt_area_remove_access(): the exact range must exist (else WARN). */
  removeAccess(start: number, last: number): void {
    const key = `${start}:${last}`;
    const x = this.accesses.get(key);
    if (vmWarnOnOnce(!x, 'iopt_area_remove_access: no access of exactly this range')) return;
    this.numAccesses--;
    if (--x!.users) return;
    this.accesses.delete(key);
    this.unfillXarray(start, last);
  }
}

/** iommufd_access_ops.unmap: the driver must unpin everything it holds in [iova, iova + length). */
type AccessUnmap = (iova: number, length: number) => void;

/** struct iommufd_ioas with its io_pagetable: the areas by iova, and the accesses attached to it. */
class Ioas {
  readonly areas: IoptArea[] = []; // sorted by iova
  /** iopt->access_list: the ops->unmap of every access */
  readonly accesses: AccessUnmap[] = [];

  constructor(private readonly env: DeviceEnv) {}

  areaAt(iova: number): IoptArea | undefined {
    return this.areas.find((a) => iova >= a.iova && iova < a.iova + a.length);
  }

  /** iopt_for_each_contig_area(): the areas covering [iova, last] in order, or undefined on a hole. */
  contigAreas(iova: number, last: number): { area: IoptArea; cur: number; end: number }[] | undefined {
    const out: { area: IoptArea; cur: number; end: number }[] = [];
    let cur = iova;
    while (cur <= last) {
      const a = this.areaAt(cur);
      if (!a) return undefined;
      const end = Math.min(last, a.iova + a.length - 1);
      out.push({ area: a, cur, end });
      cur = end + 1;
    }
    return out;
  }

  /** iommufd_ioas_map() with IOMMU_IOAS_MAP_FIXED_IOVA. */
  map(op: DeviceOp): OpResult {
    const iova = intField(op, 'iova');
    const vaddr = intField(op, 'vaddr');
    const length = intField(op, 'length');
    if (!isU64(iova) || !isU64(length) || !isU64(vaddr)) return { rc: -EOVERFLOW };
    if (!op.read && !op.write) return { rc: -EINVAL, detail: 'neither READABLE nor WRITEABLE' };
    if (!length) return { rc: -EINVAL };
    if (!isU64(iova + length) || !isU64(vaddr + length)) return { rc: -EOVERFLOW };
    if (!pageAligned(iova) || !pageAligned(length) || !pageAligned(vaddr)) {
      return { rc: -EINVAL, detail: 'not aligned to the IOAS alignment' };
    }
    if (this.areas.some((a) => iova < a.iova + a.length && a.iova < iova + length)) return { rc: -EEXIST };
    const a = new IoptArea(
      this.env,
      iova,
      length,
      vaddr,
      op.read === true,
      op.write === true,
      !capableIpcLock(this.env.m, this.env.mm),
    );
    let i = 0;
    while (i < this.areas.length && this.areas[i]!.iova < iova) i++;
    this.areas.splice(i, 0, a);
    return { rc: 0, detail: `area ${hex(iova)}+${hex(length)} (nothing pinned)` };
  }

  /** iommufd_ioas_unmap(): a range, or everything (iopt_unmap_all(): an empty IOAS is success). */
  unmap(op: DeviceOp): OpResult {
    if (op.all === true) {
      const r = this.unmapIovaRange(0, Number.MAX_SAFE_INTEGER);
      return { rc: r.rc === -ENOENT ? r.unmapped : r.rc < 0 ? r.rc : r.unmapped, violation: r.violation };
    }
    const iova = intField(op, 'iova');
    const length = intField(op, 'length');
    if (!isU64(iova) || !isU64(length)) return { rc: -EOVERFLOW };
    if (!length) return { rc: -EINVAL };
    if (!isU64(iova + length)) return { rc: -EOVERFLOW };
    const r = this.unmapIovaRange(iova, iova + length - 1);
    const detail = `${r.unmapped} bytes unmapped${r.rc < 0 ? `, ${errname(r.rc)}` : ''}`;
    return { rc: r.rc < 0 ? r.rc : r.unmapped, detail, violation: r.violation };
  }

  /**
   * iopt_unmap_iova_range(): whole areas only (-ENOENT), ops->unmap while accesses remain, -EDEADLOCK
   * after 100 tries.
   */
  unmapIovaRange(start: number, last: number): { rc: number; unmapped: number; violation?: string } {
    let unmapped = 0;
    let tries = 0;
    let lastFirst = -1;
    for (;;) {
      const a = this.areas.find((x) => x.iova <= last && start <= x.iova + x.length - 1);
      if (!a) break;
      if (a.iova < start || a.iova + a.length - 1 > last) return { rc: -ENOENT, unmapped };
      if (a.iova !== lastFirst) tries = 0;
      lastFirst = a.iova;
      if (a.numAccesses) {
        a.preventAccess = true;
        this.env.yieldPoint(`${NAME}:notify-unmap`);
        this.accessNotifyUnmap(a.iova, a.length);
        if (++tries > IOPT_UNMAP_TRIES_MAX) {
          const held = `${a.pinned.size} page(s) of ${hex(a.iova)}+${hex(a.length)}`;
          const violation =
            `${this.env.name}: WARN_ON(tries > 100) in iopt_unmap_iova_range: ` + `accesses still hold ${held}`;
          return { rc: -EDEADLK, unmapped, violation };
        }
        continue;
      }
      vmWarnOnOnce(a.pinned.size > 0, 'iopt_unmap_iova_range: pages pinned without an access');
      this.areas.splice(this.areas.indexOf(a), 1);
      unmapped += a.length;
    }
    return { rc: unmapped ? 0 : -ENOENT, unmapped };
  }

  /** iommufd_access_notify_unmap(): ops->unmap of every access. */
  private accessNotifyUnmap(iova: number, length: number): void {
    for (const unmap of this.accesses) unmap(iova, length);
  }
}

/** A pin the driver holds: the exact range it asked for and the pages it got. */
interface DriverPin {
  iova: number;
  length: number;
  pfns: number[];
  write: boolean;
}

/** struct iommufd_access of the emulated device's driver on its IOAS, with the pins the driver holds. */
class IommufdAccess implements DeviceState {
  private readonly ioas: Ioas;
  private readonly pins: DriverPin[] = [];

  constructor(private readonly env: DeviceEnv) {
    this.ioas = new Ioas(env);
    this.ioas.accesses.push((iova, length) => this.opsUnmap(iova, length));
  }

  step(op: DeviceOp): OpResult {
    switch (op.op) {
      case 'ioas_map':
        return this.ioas.map(op);
      case 'ioas_unmap':
        return this.ioas.unmap(op);
      case 'access_pin':
        return this.accessPin(op);
      case 'access_unpin':
        return this.accessUnpin(op);
      case 'access_rw':
        return this.accessRw(op);
      case 'dma_write':
        return this.dma(op, true);
      case 'dma_read':
        return this.dma(op, false);
      default:
        return { rc: -EINVAL, detail: `unknown op ${op.op}` };
    }
  }

  /** iommufd_access_pin_pages(): 0 and the pfns, or -errno with nothing added. */
  private accessPinPages(iova: number, length: number, write: boolean, out: number[]): number {
    if (!isU64(iova) || !isU64(length)) return -EOVERFLOW;
    if (!length) return -EINVAL;
    const last = iova + length - 1;
    if (!isU64(last + 1)) return -EOVERFLOW;
    const done: { area: IoptArea; start: number; last: number }[] = [];
    let cur = iova;
    let rc = 0;
    while (cur <= last) {
      const a = this.ioas.areaAt(cur);
      if (!a) {
        rc = -ENOENT;
        break;
      } // !iopt_area_contig_done()
      const end = Math.min(last, a.iova + a.length - 1);
      // iopt_area_contig_is_aligned(): page-aligned start, and a page end where the range continues
      if (a.preventAccess || cur % PAGE_SIZE || (end < last && (end + 1) % PAGE_SIZE)) {
        rc = -EINVAL;
        break;
      }
      if (!(write ? a.writable : a.readable)) {
        rc = -EPERM;
        break;
      } // check_area_prot()
      const s = (cur - a.iova) / PAGE_SIZE;
      const l = Math.floor((end - a.iova) / PAGE_SIZE);
      rc = a.addAccess(s, l, write);
      if (rc) break;
      done.push({ area: a, start: s, last: l });
      for (let i = s; i <= l; i++) out.push(a.pinned.get(i)!);
      cur = end + 1;
    }
    if (rc) for (const d of done) d.area.removeAccess(d.start, d.last); // err_remove:
    return rc;
  }

  /** iommufd_access_unpin_pages(): the iova/length of a previous pin, exactly. */
  private accessUnpinPages(iova: number, length: number): void {
    const parts = this.ioas.contigAreas(iova, iova + length - 1);
    if (vmWarnOnOnce(!parts, 'iommufd_access_unpin_pages: range not contiguous')) return;
    for (const p of parts!) {
      p.area.removeAccess((p.cur - p.area.iova) / PAGE_SIZE, Math.floor((p.end - p.area.iova) / PAGE_SIZE));
    }
  }

  /** The driver's iommufd_access_ops.unmap: unpin every pin intersecting [iova, iova + length). */
  private opsUnmap(iova: number, length: number): void {
    if (this.env.bugs.has('callback-never-unpins')) return;
    let n = 0;
    for (const p of [...this.pins]) {
      if (p.iova < iova + length && iova < p.iova + p.length) {
        this.accessUnpinPages(p.iova, p.length);
        this.pins.splice(this.pins.indexOf(p), 1);
        n++;
      }
    }
    trace(this.env, `ops->unmap ${hex(iova)}+${hex(length)}: ${n} pin(s) dropped`);
  }

  /** The driver pins a range for its device: iommufd_access_pin_pages(). */
  private accessPin(op: DeviceOp): OpResult {
    const iova = intField(op, 'iova');
    const length = intField(op, 'length');
    const write = op.write === true;
    const pfns: number[] = [];
    const rc = this.accessPinPages(iova, length, write, pfns);
    if (rc) return { rc, detail: `iommufd_access_pin_pages: ${errname(rc)}` };
    this.pins.push({ iova, length, pfns, write });
    return { rc: 0, detail: `pinned ${pfns.length} page(s)` };
  }

  /** The driver drops one of its pins: iommufd_access_unpin_pages(). */
  private accessUnpin(op: DeviceOp): OpResult {
    const iova = intField(op, 'iova');
    const length = intField(op, 'length');
    const p = this.pins.find((x) => x.iova === iova && x.length === length);
    if (!p) return { rc: -ENOENT, detail: 'the driver holds no pin of exactly this range' };
    this.accessUnpinPages(iova, length);
    this.pins.splice(this.pins.indexOf(p), 1);
    return { rc: 0 };
  }

  /** iommufd_access_rw() of one word: the pinned page if there is one, else a copy through the page tables. */
  private accessRw(op: DeviceOp): OpResult {
    const { m, mm } = this.env;
    const iova = intField(op, 'iova');
    const write = op.write === true;
    if (!isU64(iova)) return { rc: -EOVERFLOW };
    const a = this.ioas.areaAt(iova);
    if (!a) return { rc: -ENOENT };
    if (a.preventAccess) return { rc: -EINVAL };
    if (!(write ? a.writable : a.readable)) return { rc: -EPERM };
    const index = Math.floor((iova - a.iova) / PAGE_SIZE);
    const pfn = a.pinned.get(index);
    if (pfn !== undefined) {
      // iopt_pages_rw_access() -> the pinned_pfns xarray
      if (write) deviceWrite(m, pfn, intField(op, 'value', 0));
      return { rc: write ? 0 : deviceRead(m, pfn) };
    }
    const vpn = a.vaddr / PAGE_SIZE + index;
    const r = write ? putUser(m, mm, vpn, intField(op, 'value', 0)) : getUser(m, mm, vpn); // copy_{to,from}_user
    if (r < 0) return { rc: -EFAULT };
    return { rc: write ? 0 : r };
  }

  /** The device's DMA through a page its driver pinned. */
  private dma(op: DeviceOp, write: boolean): OpResult {
    const iova = intField(op, 'iova');
    if (!isU64(iova)) return { rc: -EINVAL };
    const p = this.pins.find((x) => iova >= x.iova && iova < x.iova + x.length && (!write || x.write));
    if (!p) return { rc: -EFAULT, detail: `iova ${hex(iova)} not pinned${write ? ' for write' : ''} by the driver` };
    const pfn = p.pfns[Math.floor(iova / PAGE_SIZE) - Math.floor(p.iova / PAGE_SIZE)]!;
    const what = `${this.env.name} ${write ? 'dma_write' : 'dma_read'} iova ${hex(iova)}`;
    return dmaAccess(this.env.m, pfn, write, op, what);
  }

  private held(): HeldPage[] {
    const out: HeldPage[] = [];
    for (const a of this.ioas.areas) {
      for (const [i, pfn] of a.pinned) {
        out.push({ iova: a.iova / PAGE_SIZE + i, vpn: a.vaddr / PAGE_SIZE + i, pfn, longterm: true });
      }
    }
    return out.sort((x, y) => x.iova - y.iova);
  }

  inspect(): { held: HeldPage[]; accounting: Record<string, number> } {
    const { areas } = this.ioas;
    const user = areas.filter((a) => a.accountUser).reduce((s, a) => s + a.npinned, 0);
    const pinnedVm = areas.reduce((s, a) => s + a.npinned, 0);
    const accounting = { user_locked_vm: user, pinned_vm: pinnedVm, driver_pins: this.pins.length };
    return { held: this.held(), accounting };
  }

  /** The driver stops (iommufd_access_destroy()), then the IOAS goes with the iommufd. */
  teardown(): OpResult {
    const n = this.held().length;
    for (const p of this.pins.splice(0)) this.accessUnpinPages(p.iova, p.length);
    const r = this.ioas.unmapIovaRange(0, Number.MAX_SAFE_INTEGER);
    return { rc: r.rc === -EDEADLK ? r.rc : n, detail: `released ${n} pinned page(s)`, violation: r.violation };
  }
}

const IOVA_PAGES = 48;

function arbitrary(fc: typeof fcType, shape: GenShape): fcType.Arbitrary<DeviceOp> {
  // a few slots (common.ts arbSlotBase): an area, the access pins in it and the unmap that must revoke them name
  // the same IOVAs
  const base = arbSlotBase(fc, shape, IOVA_PAGES);
  const iovaPage = arbSlotPage(fc, shape, IOVA_PAGES);
  const pages = fc.integer({ min: 1, max: shape.maxPages });
  const ref = arbRef(fc);
  const map = fc.record({ at: base, r: arbRange(fc, shape), ro: fc.boolean() }).map(({ at, r, ro }): DeviceOp => ({
    op: 'ioas_map',
    iova: at * PAGE_SIZE,
    vaddr: r.vaddr,
    length: r.pages * PAGE_SIZE,
    read: true,
    write: !ro,
  }));
  const pin = fc
    .record({ at: iovaPage, n: pages, write: fc.boolean(), ref })
    .map(({ at, n, write, ref: k }): DeviceOp => ({
      op: 'access_pin',
      iova: at * PAGE_SIZE,
      length: n * PAGE_SIZE,
      write,
      ref: k,
    }));
  const unpin = fc.record({ at: iovaPage, n: pages, ref }).map(({ at, n, ref: k }): DeviceOp => ({
    op: 'access_unpin',
    iova: at * PAGE_SIZE,
    length: n * PAGE_SIZE,
    ref: k,
  }));
  const unmapRange = fc
    .record({ at: base, n: arbSlotSpan(fc, shape), ref })
    .map(({ at, n, ref: k }): DeviceOp => ({ op: 'ioas_unmap', iova: at * PAGE_SIZE, length: n * PAGE_SIZE, ref: k }));
  const unmap = fc.oneof(
    { weight: 6, arbitrary: unmapRange },
    { weight: 1, arbitrary: fc.constant<DeviceOp>({ op: 'ioas_unmap', all: true }) },
  );
  const rw = fc
    .record({ at: iovaPage, write: fc.boolean(), value: arbWord(fc), ref })
    .map(({ at, write, value, ref: k }): DeviceOp => ({ op: 'access_rw', iova: at * PAGE_SIZE, write, value, ref: k }));
  const dw = fc
    .record({ at: iovaPage, value: arbWord(fc), ref })
    .map(({ at, value, ref: k }): DeviceOp => ({ op: 'dma_write', iova: at * PAGE_SIZE, value, ref: k }));
  const dr = fc
    .record({ at: iovaPage, ref })
    .map(({ at, ref: k }): DeviceOp => ({ op: 'dma_read', iova: at * PAGE_SIZE, ref: k }));
  return fc.oneof(
    { weight: 3, arbitrary: map },
    { weight: 3, arbitrary: pin },
    { weight: 2, arbitrary: unpin },
    { weight: 2, arbitrary: unmap },
    { weight: 1, arbitrary: rw },
    { weight: 2, arbitrary: dw },
    { weight: 1, arbitrary: dr },
  );
}

/** What generated ops follow (arbRef()): access pins inside an area, DMAs through its pins, an unmap of an area. */
const areaPages = (src: DeviceOp): number => Number(src.length) / PAGE_SIZE;
const within = insideIova(areaPages);
const pinWithin = pinInside(areaPages, (op, left) => ({
  ...op,
  length: Math.min(Number(op.length), left * PAGE_SIZE),
}));
const LINKS: Record<string, LinkRule> = {
  access_pin: { from: 'ioas_map', to: pinWithin },
  access_unpin: { from: 'access_pin', to: atSameIova },
  ioas_unmap: { from: 'ioas_map', to: atSameIova },
  access_rw: { from: 'ioas_map', to: within },
  dma_write: { from: 'access_pin', to: within },
  dma_read: { from: 'access_pin', to: within },
};

export const iommufdAccess: DeviceModel = {
  name: NAME,
  summary: 'iommufd access of an emulated device: exact-range pins on demand, revoked by ops->unmap on IOAS unmap',
  source:
    'drivers/iommu/iommufd/device.c (iommufd_access_pin_pages/unpin_pages/rw), pages.c, ' +
    'io_pagetable.c (iopt_unmap_iova_range)',
  bugs: {
    'callback-never-unpins': 'ops->unmap drops nothing: IOAS unmap retries 100 times, WARNs and fails with -EDEADLOCK',
  },
  ops: {
    ioas_map: { iova: 'int', vaddr: 'vaddr', length: 'int', read: 'bool', write: 'bool' },
    ioas_unmap: { iova: 'int', length: 'int', all: 'bool' },
    access_pin: { iova: 'int', length: 'int', write: 'bool' },
    access_unpin: { iova: 'int', length: 'int' },
    access_rw: { iova: 'int', write: 'bool', value: 'int' },
    dma_write: { iova: 'int', value: 'int' },
    dma_read: { iova: 'int' },
  },
  charges: ['ioas_map', 'access_pin'], // do_update_pinned() at an access's pin of a mapped area
  setup: 'ioas_map', // the area its access pins and reads
  errnos: {
    // iommufd_ioas_map() -> iopt_map_user_pages(): -EOVERFLOW, -EINVAL (flags, length 0, alignment), -EEXIST
    // (iopt_check_iova), -ENOMEM
    ioas_map: [-EOVERFLOW, -EINVAL, -EEXIST, -ENOMEM],
    // iommufd_ioas_unmap() -> iopt_unmap_iova_range(): -EOVERFLOW, -EINVAL (length 0), -ENOENT (a bisected area,
    // nothing unmapped), -EDEADLOCK (WARN_ON(tries > 100): accesses do not let go)
    ioas_unmap: [-EOVERFLOW, -EINVAL, -ENOENT, -EDEADLK],
    // iommufd_access_pin_pages(): -EINVAL (length 0, prevent_access, alignment), -EOVERFLOW, -ENOENT (a hole), -EPERM
    // (check_area_prot); iopt_area_add_access() -> pin_user_pages_fast() and do_update_pinned(): -EFAULT, -ENOMEM,
    // -EINTR
    access_pin: [-EINVAL, -EOVERFLOW, -ENOENT, -EPERM, -ENOMEM, -EFAULT, -EINTR],
    // iommufd_access_unpin_pages() is void: -ENOENT is the driver holding no pin of exactly this range (pinlab)
    access_unpin: [-ENOENT],
    // iommufd_access_rw(): -EINVAL (prevent_access), -EOVERFLOW, -ENOENT, -EPERM; iopt_pages_rw_access(): -EFAULT, and
    // through iopt_pages_rw_slow()'s pin -ENOMEM / -EINTR (pinlab copies through the page tables: -EFAULT only)
    access_rw: [-EINVAL, -EOVERFLOW, -ENOENT, -EPERM, -EFAULT, -ENOMEM, -EINTR],
    // no kernel function: the device's DMA through a page its driver pinned; not pinned (for write) is -EFAULT
    dma_write: [-EINVAL, -EFAULT],
    dma_read: [-EINVAL, -EFAULT],
  },
  faultPoints: GUP_FAULT_POINTS,
  programLength: DEVICE_PROGRAM_LENGTH,
  link: (p) => linkOps(p, LINKS),
  arbitrary,
  create: (env) => new IommufdAccess(env),
};
