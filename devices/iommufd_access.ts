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
import { PAGE_SIZE, intField, isU64, pageAligned, capableIpcLock, incrUserLockedVm, decrUserLockedVm, pinnedVmAddReturn,
  dmaTargetViolation, deviceRead, deviceWrite, hex, arbRange, arbWord, trace, dmaAccess, arbSlotBase, arbSlotPage, arbSlotSpan, GUP_FAULT_POINTS, DEVICE_PROGRAM_LENGTH } from './common';

const NAME = 'iommufd-access';
/** iopt_unmap_iova_range(): WARN_ON(tries > 100) -> -EDEADLOCK */
export const IOPT_UNMAP_TRIES_MAX = 100;

/** struct iopt_pages_access: one exact index range and how many pins of it are outstanding. */
interface PagesAccess { start: number; last: number; users: number }

/** struct iopt_area with its own struct iopt_pages. */
interface Area {
  iova: number;
  length: number;
  vaddr: number;
  /** IOMMU_READ | IOMMU_WRITE */
  readable: boolean;
  writable: boolean;
  accountUser: boolean;
  /** pinned_pfns: page index -> pfn */
  pinned: Map<number, number>;
  accesses: Map<string, PagesAccess>;
  numAccesses: number;
  preventAccess: boolean;
  /** pages charged (pages->npinned as last accounted) */
  npinned: number;
}

/** A pin the driver holds: the exact range it asked for and the pages it got. */
interface DriverPin { iova: number; length: number; pfns: number[]; write: boolean }

function create(env: DeviceEnv): DeviceState {
  const { m, mm } = env;
  const areas: Area[] = []; // sorted by iova
  const pins: DriverPin[] = [];

  const areaAt = (iova: number): Area | undefined => areas.find((a) => iova >= a.iova && iova < a.iova + a.length);

  /** iopt_for_each_contig_area(): the areas covering [iova, last] in order, or undefined on a hole. */
  const contigAreas = (iova: number, last: number): { area: Area; cur: number; end: number }[] | undefined => {
    const out: { area: Area; cur: number; end: number }[] = [];
    let cur = iova;
    while (cur <= last) {
      const a = areaAt(cur);
      if (!a) return undefined;
      const end = Math.min(last, a.iova + a.length - 1);
      out.push({ area: a, cur, end });
      cur = end + 1;
    }
    return out;
  };

  // ---- iopt_pages: pin / unpin with accounting (pfn_reader_user_pin, do_update_pinned) ----

  /** do_update_pinned(): user->locked_vm (ACCOUNT_USER) then mm->pinned_vm. */
  const updatePinned = (a: Area, npages: number, inc: boolean): number => {
    if (a.accountUser) {
      if (inc) {
        const rc = incrUserLockedVm(m, mm, npages);
        if (rc) return rc;
      } else decrUserLockedVm(m, mm, npages);
    }
    pinnedVmAddReturn(m, mm, inc ? npages : -npages);
    a.npinned += inc ? npages : -npages;
    return 0;
  };

  /** iopt_pages_fill_xarray(): pin every page of [start, last] not pinned yet, then account them. */
  const fillXarray = (a: Area, start: number, last: number): number => {
    const missing: number[] = [];
    for (let i = start; i <= last; i++) if (!a.pinned.has(i)) missing.push(i);
    const got: [number, number][] = [];
    let rc = 0;
    for (let k = 0; k < missing.length && !rc;) { // runs of consecutive missing indexes, one GUP call each
      let n = 1;
      while (k + n < missing.length && missing[k + n] === missing[k]! + n) n++;
      const pages: number[] = new Array(n).fill(-1);
      const vpn = a.vaddr / PAGE_SIZE + missing[k]!;
      const r = pinUserPagesFast(m, mm, vpn, n, FOLL_LONGTERM | (a.writable ? FOLL_WRITE : 0), pages);
      for (let i = 0; i < Math.max(r, 0); i++) got.push([missing[k]! + i, pages[i]!]);
      if (r < n) rc = r < 0 ? r : -EFAULT;
      k += n;
    }
    if (!rc && got.length) {
      env.yieldPoint(`${NAME}:pinned-not-accounted`);
      rc = updatePinned(a, got.length, true); // accounting happens after pinning; unwind on -ENOMEM
      if (rc) trace(env, `iopt_pages: RLIMIT_MEMLOCK exceeded pinning ${got.length} page(s)`);
    }
    if (rc) {
      unpinUserPagesDirtyLock(m, got.map((g) => g[1]), got.length, false);
      return rc;
    }
    for (const [i, pfn] of got) a.pinned.set(i, pfn);
    return 0;
  };

  /** iopt_pages_unfill_xarray(): unpin pages of [start, last] no remaining access covers. */
  const unfillXarray = (a: Area, start: number, last: number): void => {
    const drop: number[] = [];
    for (let i = start; i <= last; i++) {
      if (![...a.accesses.values()].some((x) => i >= x.start && i <= x.last) && a.pinned.has(i)) drop.push(i);
    }
    unpinUserPagesDirtyLock(m, drop.map((i) => a.pinned.get(i)!), drop.length, a.writable);
    for (const i of drop) a.pinned.delete(i);
    if (drop.length) updatePinned(a, drop.length, false);
  };

  /** iopt_area_add_access(): an exact-range access record, pinning on first use. */
  const areaAddAccess = (a: Area, start: number, last: number, write: boolean): number => {
    if (write && !a.writable) return -EPERM;
    const key = `${start}:${last}`;
    const x = a.accesses.get(key);
    if (x) {
      x.users++;
      a.numAccesses++;
      return 0;
    }
    const rc = fillXarray(a, start, last);
    if (rc) return rc;
    a.accesses.set(key, { start, last, users: 1 });
    a.numAccesses++;
    return 0;
  };

  /** iopt_area_remove_access(): the exact range must exist (else WARN). */
  const areaRemoveAccess = (a: Area, start: number, last: number): void => {
    const key = `${start}:${last}`;
    const x = a.accesses.get(key);
    if (vmWarnOnOnce(!x, 'iopt_area_remove_access: no access of exactly this range')) return;
    a.numAccesses--;
    if (--x!.users) return;
    a.accesses.delete(key);
    unfillXarray(a, start, last);
  };

  // ---- the kernel API the driver calls ----

  /** iommufd_access_pin_pages(): 0 and the pfns, or -errno with nothing added. */
  const accessPinPages = (iova: number, length: number, write: boolean, out: number[]): number => {
    if (!isU64(iova) || !isU64(length)) return -EOVERFLOW;
    if (!length) return -EINVAL;
    const last = iova + length - 1;
    if (!isU64(last + 1)) return -EOVERFLOW;
    const done: { area: Area; start: number; last: number }[] = [];
    let cur = iova;
    let rc = 0;
    while (cur <= last) {
      const a = areaAt(cur);
      if (!a) { rc = -ENOENT; break; } // !iopt_area_contig_done()
      const end = Math.min(last, a.iova + a.length - 1);
      // iopt_area_contig_is_aligned(): page-aligned start, and a page end where the range continues
      if (a.preventAccess || cur % PAGE_SIZE || (end < last && (end + 1) % PAGE_SIZE)) { rc = -EINVAL; break; }
      if (!(write ? a.writable : a.readable)) { rc = -EPERM; break; } // check_area_prot()
      const s = (cur - a.iova) / PAGE_SIZE;
      const l = Math.floor((end - a.iova) / PAGE_SIZE);
      rc = areaAddAccess(a, s, l, write);
      if (rc) break;
      done.push({ area: a, start: s, last: l });
      for (let i = s; i <= l; i++) out.push(a.pinned.get(i)!);
      cur = end + 1;
    }
    if (rc) for (const d of done) areaRemoveAccess(d.area, d.start, d.last); // err_remove:
    return rc;
  };

  /** iommufd_access_unpin_pages(): the iova/length of a previous pin, exactly. */
  const accessUnpinPages = (iova: number, length: number): void => {
    const parts = contigAreas(iova, iova + length - 1);
    if (vmWarnOnOnce(!parts, 'iommufd_access_unpin_pages: range not contiguous')) return;
    for (const p of parts!) areaRemoveAccess(p.area, (p.cur - p.area.iova) / PAGE_SIZE, Math.floor((p.end - p.area.iova) / PAGE_SIZE));
  };

  /** The driver's iommufd_access_ops.unmap: unpin every pin intersecting [iova, iova + length). */
  const opsUnmap = (iova: number, length: number): void => {
    if (env.bugs.has('callback-never-unpins')) return;
    let n = 0;
    for (const p of [...pins]) {
      if (p.iova < iova + length && iova < p.iova + p.length) {
        accessUnpinPages(p.iova, p.length);
        pins.splice(pins.indexOf(p), 1);
        n++;
      }
    }
    trace(env, `ops->unmap ${hex(iova)}+${hex(length)}: ${n} pin(s) dropped`);
  };

  // ---- ioctls ----

  /** iommufd_ioas_map() with IOMMU_IOAS_MAP_FIXED_IOVA. */
  const ioasMap = (op: DeviceOp): OpResult => {
    const iova = intField(op, 'iova');
    const vaddr = intField(op, 'vaddr');
    const length = intField(op, 'length');
    if (!isU64(iova) || !isU64(length) || !isU64(vaddr)) return { rc: -EOVERFLOW };
    if (!op.read && !op.write) return { rc: -EINVAL, detail: 'neither READABLE nor WRITEABLE' };
    if (!length) return { rc: -EINVAL };
    if (!isU64(iova + length) || !isU64(vaddr + length)) return { rc: -EOVERFLOW };
    if (!pageAligned(iova) || !pageAligned(length) || !pageAligned(vaddr)) return { rc: -EINVAL, detail: 'not aligned to the IOAS alignment' };
    if (areas.some((a) => iova < a.iova + a.length && a.iova < iova + length)) return { rc: -EEXIST };
    const a: Area = { iova, length, vaddr, readable: op.read === true, writable: op.write === true, accountUser: !capableIpcLock(m, mm),
      pinned: new Map(), accesses: new Map(), numAccesses: 0, preventAccess: false, npinned: 0 };
    let i = 0;
    while (i < areas.length && areas[i]!.iova < iova) i++;
    areas.splice(i, 0, a);
    return { rc: 0, detail: `area ${hex(iova)}+${hex(length)} (nothing pinned)` };
  };

  /** iopt_unmap_iova_range(): whole areas only (-ENOENT), ops->unmap while accesses remain, -EDEADLOCK after 100 tries. */
  const unmapRange = (start: number, last: number): { rc: number; unmapped: number; violation?: string } => {
    let unmapped = 0;
    let tries = 0;
    let lastFirst = -1;
    for (;;) {
      const a = areas.find((x) => x.iova <= last && start <= x.iova + x.length - 1);
      if (!a) break;
      if (a.iova < start || a.iova + a.length - 1 > last) return { rc: -ENOENT, unmapped };
      if (a.iova !== lastFirst) tries = 0;
      lastFirst = a.iova;
      if (a.numAccesses) {
        a.preventAccess = true;
        env.yieldPoint(`${NAME}:notify-unmap`);
        opsUnmap(a.iova, a.length); // iommufd_access_notify_unmap()
        if (++tries > IOPT_UNMAP_TRIES_MAX) {
          return { rc: -EDEADLK, unmapped, violation: `${env.name}: WARN_ON(tries > 100) in iopt_unmap_iova_range: accesses still hold ${a.pinned.size} page(s) of ${hex(a.iova)}+${hex(a.length)}` };
        }
        continue;
      }
      vmWarnOnOnce(a.pinned.size > 0, 'iopt_unmap_iova_range: pages pinned without an access');
      areas.splice(areas.indexOf(a), 1);
      unmapped += a.length;
    }
    return { rc: unmapped ? 0 : -ENOENT, unmapped };
  };

  const ioasUnmap = (op: DeviceOp): OpResult => {
    if (op.all === true) { // iopt_unmap_all(): an empty IOAS is success
      const r = unmapRange(0, Number.MAX_SAFE_INTEGER);
      return { rc: r.rc === -ENOENT ? r.unmapped : r.rc < 0 ? r.rc : r.unmapped, violation: r.violation };
    }
    const iova = intField(op, 'iova');
    const length = intField(op, 'length');
    if (!isU64(iova) || !isU64(length)) return { rc: -EOVERFLOW };
    if (!length) return { rc: -EINVAL };
    if (!isU64(iova + length)) return { rc: -EOVERFLOW };
    const r = unmapRange(iova, iova + length - 1);
    return { rc: r.rc < 0 ? r.rc : r.unmapped, detail: `${r.unmapped} bytes unmapped${r.rc < 0 ? `, ${errname(r.rc)}` : ''}`, violation: r.violation };
  };

  const accessPin = (op: DeviceOp): OpResult => {
    const iova = intField(op, 'iova');
    const length = intField(op, 'length');
    const write = op.write === true;
    const pfns: number[] = [];
    const rc = accessPinPages(iova, length, write, pfns);
    if (rc) return { rc, detail: `iommufd_access_pin_pages: ${errname(rc)}` };
    pins.push({ iova, length, pfns, write });
    return { rc: 0, detail: `pinned ${pfns.length} page(s)` };
  };

  const accessUnpin = (op: DeviceOp): OpResult => {
    const iova = intField(op, 'iova');
    const length = intField(op, 'length');
    const p = pins.find((x) => x.iova === iova && x.length === length);
    if (!p) return { rc: -ENOENT, detail: 'the driver holds no pin of exactly this range' };
    accessUnpinPages(iova, length);
    pins.splice(pins.indexOf(p), 1);
    return { rc: 0 };
  };

  /** iommufd_access_rw() of one word: the pinned page if there is one, else a copy through the page tables. */
  const accessRw = (op: DeviceOp): OpResult => {
    const iova = intField(op, 'iova');
    const write = op.write === true;
    if (!isU64(iova)) return { rc: -EOVERFLOW };
    const a = areaAt(iova);
    if (!a) return { rc: -ENOENT };
    if (a.preventAccess) return { rc: -EINVAL };
    if (!(write ? a.writable : a.readable)) return { rc: -EPERM };
    const index = Math.floor((iova - a.iova) / PAGE_SIZE);
    const pfn = a.pinned.get(index);
    if (pfn !== undefined) { // iopt_pages_rw_access() -> the pinned_pfns xarray
      if (write) deviceWrite(m, pfn, intField(op, 'value', 0));
      return { rc: write ? 0 : deviceRead(m, pfn) };
    }
    const vpn = a.vaddr / PAGE_SIZE + index;
    const r = write ? putUser(m, mm, vpn, intField(op, 'value', 0)) : getUser(m, mm, vpn); // copy_{to,from}_user
    if (r < 0) return { rc: -EFAULT };
    return { rc: write ? 0 : r };
  };

  /** The device's DMA through a page its driver pinned. */
  const dma = (op: DeviceOp, write: boolean): OpResult => {
    const iova = intField(op, 'iova');
    if (!isU64(iova)) return { rc: -EINVAL };
    const p = pins.find((x) => iova >= x.iova && iova < x.iova + x.length && (!write || x.write));
    if (!p) return { rc: -EFAULT, detail: `iova ${hex(iova)} not pinned${write ? ' for write' : ''} by the driver` };
    const pfn = p.pfns[Math.floor(iova / PAGE_SIZE) - Math.floor(p.iova / PAGE_SIZE)]!;
    return dmaAccess(m, pfn, write, op, `${env.name} ${write ? 'dma_write' : 'dma_read'} iova ${hex(iova)}`);
  };

  const held = (): HeldPage[] => {
    const out: HeldPage[] = [];
    for (const a of areas) {
      for (const [i, pfn] of a.pinned) out.push({ iova: a.iova / PAGE_SIZE + i, vpn: a.vaddr / PAGE_SIZE + i, pfn, longterm: true });
    }
    return out.sort((x, y) => x.iova - y.iova);
  };

  return {
    step(op) {
      switch (op.op) {
        case 'ioas_map': return ioasMap(op);
        case 'ioas_unmap': return ioasUnmap(op);
        case 'access_pin': return accessPin(op);
        case 'access_unpin': return accessUnpin(op);
        case 'access_rw': return accessRw(op);
        case 'dma_write': return dma(op, true);
        case 'dma_read': return dma(op, false);
        default: return { rc: -EINVAL, detail: `unknown op ${op.op}` };
      }
    },
    inspect: () => {
      const user = areas.filter((a) => a.accountUser).reduce((s, a) => s + a.npinned, 0);
      return { held: held(), accounting: { user_locked_vm: user, pinned_vm: areas.reduce((s, a) => s + a.npinned, 0), driver_pins: pins.length } };
    },
    teardown: () => {
      const n = held().length;
      for (const p of pins.splice(0)) accessUnpinPages(p.iova, p.length); // the driver stops: iommufd_access_destroy()
      const r = unmapRange(0, Number.MAX_SAFE_INTEGER); // the IOAS goes with the iommufd
      return { rc: r.rc === -EDEADLK ? r.rc : n, detail: `released ${n} pinned page(s)`, violation: r.violation };
    },
  };
}

const IOVA_PAGES = 48;

function arbitrary(fc: typeof fcType, shape: GenShape): fcType.Arbitrary<DeviceOp> {
  // a few slots (common.ts arbSlotBase): an area, the access pins in it and the unmap that must revoke them name the same IOVAs
  const base = arbSlotBase(fc, shape, IOVA_PAGES);
  const iovaPage = arbSlotPage(fc, shape, IOVA_PAGES);
  const pages = fc.integer({ min: 1, max: shape.maxPages });
  const map = fc.record({ at: base, r: arbRange(fc, shape), ro: fc.boolean() })
    .map(({ at, r, ro }): DeviceOp => ({ op: 'ioas_map', iova: at * PAGE_SIZE, vaddr: r.vaddr, length: r.pages * PAGE_SIZE, read: true, write: !ro }));
  const pin = fc.record({ at: iovaPage, n: pages, write: fc.boolean() })
    .map(({ at, n, write }): DeviceOp => ({ op: 'access_pin', iova: at * PAGE_SIZE, length: n * PAGE_SIZE, write }));
  const unpin = fc.record({ at: iovaPage, n: pages }).map(({ at, n }): DeviceOp => ({ op: 'access_unpin', iova: at * PAGE_SIZE, length: n * PAGE_SIZE }));
  const unmap = fc.oneof({ weight: 6, arbitrary: fc.record({ at: base, n: arbSlotSpan(fc, shape) }).map(({ at, n }): DeviceOp => ({ op: 'ioas_unmap', iova: at * PAGE_SIZE, length: n * PAGE_SIZE })) },
    { weight: 1, arbitrary: fc.constant<DeviceOp>({ op: 'ioas_unmap', all: true }) });
  const rw = fc.record({ at: iovaPage, write: fc.boolean(), value: arbWord(fc) })
    .map(({ at, write, value }): DeviceOp => ({ op: 'access_rw', iova: at * PAGE_SIZE, write, value }));
  const dw = fc.record({ at: iovaPage, value: arbWord(fc) }).map(({ at, value }): DeviceOp => ({ op: 'dma_write', iova: at * PAGE_SIZE, value }));
  const dr = iovaPage.map((at): DeviceOp => ({ op: 'dma_read', iova: at * PAGE_SIZE }));
  return fc.oneof({ weight: 3, arbitrary: map }, { weight: 3, arbitrary: pin }, { weight: 2, arbitrary: unpin }, { weight: 2, arbitrary: unmap },
    { weight: 1, arbitrary: rw }, { weight: 2, arbitrary: dw }, { weight: 1, arbitrary: dr });
}

export const iommufdAccess: DeviceModel = {
  faultPoints: GUP_FAULT_POINTS,
  programLength: DEVICE_PROGRAM_LENGTH,
  name: NAME,
  summary: 'iommufd access of an emulated device: exact-range pins on demand, revoked by ops->unmap on IOAS unmap',
  source: 'drivers/iommu/iommufd/device.c (iommufd_access_pin_pages/unpin_pages/rw), pages.c, io_pagetable.c (iopt_unmap_iova_range)',
  bugs: { 'callback-never-unpins': 'ops->unmap drops nothing: IOAS unmap retries 100 times, WARNs and fails with -EDEADLOCK' },
  create,
  arbitrary,
  ops: {
    ioas_map: { iova: 'int', vaddr: 'vaddr', length: 'int', read: 'bool', write: 'bool' }, ioas_unmap: { iova: 'int', length: 'int', all: 'bool' },
    access_pin: { iova: 'int', length: 'int', write: 'bool' }, access_unpin: { iova: 'int', length: 'int' },
    access_rw: { iova: 'int', write: 'bool', value: 'int' }, dma_write: { iova: 'int', value: 'int' }, dma_read: { iova: 'int' },
  },
  errnos: {
    // iommufd_ioas_map() -> iopt_map_user_pages(): -EOVERFLOW, -EINVAL (flags, length 0, alignment), -EEXIST (iopt_check_iova), -ENOMEM
    ioas_map: [-EOVERFLOW, -EINVAL, -EEXIST, -ENOMEM],
    // iommufd_ioas_unmap() -> iopt_unmap_iova_range(): -EOVERFLOW, -EINVAL (length 0), -ENOENT (a bisected area,
    // nothing unmapped), -EDEADLOCK (WARN_ON(tries > 100): accesses do not let go)
    ioas_unmap: [-EOVERFLOW, -EINVAL, -ENOENT, -EDEADLK],
    // iommufd_access_pin_pages(): -EINVAL (length 0, prevent_access, alignment), -EOVERFLOW, -ENOENT (a hole), -EPERM
    // (check_area_prot); iopt_area_add_access() -> pin_user_pages_fast() and do_update_pinned(): -EFAULT, -ENOMEM, -EINTR
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
};
