// rdma-odp (devices/rdma_odp.ts): ODP memory regions pin nothing; device faults go through
// mmu_interval_read_begin / hmm_range_fault / read_retry; every mm event that moves or drops a page
// invalidates the device entries first. The race the sequence exists for is driven in-thread: the
// device's preemption point 'odp:after-fault' runs a migration (or an offline) before it installs.
import * as fc from 'fast-check';
import { rig, Rig, fill, pfnOf, pinsHeld, expectReleased, CMD, PAGE } from './helpers';
import {
  rdmaOdp,
  IB_ACCESS_LOCAL_WRITE,
  IB_ACCESS_REMOTE_READ,
  IB_ACCESS_REMOTE_WRITE,
  IB_ACCESS_ON_DEMAND,
  IB_ACCESS_HUGETLB,
  ODP_DEFAULT_ACCESS,
  ODP_MAP_RETRIES_MAX,
} from '../../../devices/rdma_odp';
import { getUser, putUser } from '../../../mm/memory';
import { doMadvise, doMunmap, doMprotect, dupMm, exitMmap, MADV_DONTNEED, PROT_READ } from '../../../mm/mmap';
import { migrateRange } from '../../../mm/migrate';
import { stateStore } from '../../../mm/memory_hotplug';
import { memlockCounters, checkNotifierCoherent } from '../../../devices/common';
import { EACCES, EBUSY, EFAULT, EINVAL, ENOMEM, EOVERFLOW, EAGAIN, ENOENT } from '../../../mm/errno';
import {
  mmuIntervalNotifiers,
  mmuNotifierNrSubscriptions,
  mmuNotifierInvalidateRangeStartNonblock,
  MMU_NOTIFY_UNMAP,
} from '../../../mm/mmu_notifier';
import { MMU_NOTIFIER_SUBS_MAX } from '../../../mm/memmap';
import { ZONE_MOVABLE, ZONE_NORMAL } from '../../../mm/mmzone';
import type { DeviceOp } from '../../../devices/device';
import { deviceModel } from '../../../devices/index';

const BUF = 16;

function odp(o: Parameters<typeof rig>[1] = {}): Rig {
  return rig(rdmaOdp, o);
}

/** reg_mr over pages [off, off + n) of buf; returns the lkey. */
function reg(r: Rig, off = 0, n = 8, access = ODP_DEFAULT_ACCESS): number {
  const res = r.run({ op: 'reg_mr', vaddr: r.va('buf', off), len: n * PAGE, access });
  expect(res.rc).toBeGreaterThan(0);
  return res.rc;
}

function coherent(r: Rig): string[] {
  return checkNotifierCoherent(r.m, r.mm, r.dev.inspect().held, 'ODP');
}

describe('rdma-odp: registration pins and charges nothing', () => {
  it('reg_mr maps what is present (rxe_odp_init_pages snapshot) without a reference, a pin or a charge', () => {
    const r = odp();
    fill(r, 'buf', 4);
    const p0 = pfnOf(r.m, r.mm, r.maps.buf!);
    const ref = r.m.refcount[p0]!;
    const lkey = reg(r, 0, 8);
    expect(lkey & 0xff).toBeLessThan(256);
    expect(lkey >>> 8).toBe(1); // pool index 1
    expect(pinsHeld(r.m)).toBe(0);
    expect(r.m.refcount[p0]).toBe(ref); // hmm takes no page references
    expect(memlockCounters(r.m, r.mm)).toEqual({ locked_vm: 0, pinned_vm: 0, user_locked_vm: 0 });
    const held = r.dev.inspect().held;
    expect(held.map((h) => h.vpn)).toEqual([0, 1, 2, 3].map((i) => r.maps.buf! + i)); // untouched pages stay unmapped
    expect(held.every((h) => !h.longterm)).toBe(true);
    expect(held[0]!.pfn).toBe(p0);
    expect(r.dev.inspect().accounting).toMatchObject({ mrs: 1, npages: 4 });
    expect(mmuIntervalNotifiers(r.m, r.mm)).toEqual([
      expect.objectContaining({ start: r.maps.buf!, end: r.maps.buf! + 8, state: 'tree' }),
    ]);
    expect(r.m.pageZonenum(p0)).toBe(ZONE_MOVABLE); // and it may stay there: nothing is pinned
  });

  it('reg_mr errnos (ib_uverbs_reg_mr, ib_check_mr_access, ib_umem_odp_get, mmu_interval_notifier_insert)', () => {
    const r = odp();
    const va = r.va('buf');
    const regRc = (o: Partial<DeviceOp>): number =>
      r.run({ op: 'reg_mr', vaddr: va, len: 4 * PAGE, access: ODP_DEFAULT_ACCESS, ...o }).rc;
    expect(regRc({ vaddr: -PAGE })).toBe(-EINVAL);
    expect(regRc({ len: 1.5 })).toBe(-EINVAL);
    expect(regRc({ hca_va: va + 12 })).toBe(-EINVAL); // page offsets of start and hca_va differ
    // remote write needs local write
    expect(regRc({ access: IB_ACCESS_REMOTE_WRITE | IB_ACCESS_ON_DEMAND })).toBe(-EINVAL);
    expect(regRc({ access: ODP_DEFAULT_ACCESS | (1 << 12) })).toBe(-EINVAL); // unknown bits
    expect(regRc({ access: IB_ACCESS_LOCAL_WRITE })).toBe(-EINVAL); // not ON_DEMAND: that is rdma-umem
    expect(regRc({ access: ODP_DEFAULT_ACCESS | IB_ACCESS_HUGETLB })).toBe(-EINVAL);
    expect(regRc({ len: 0 })).toBe(-EINVAL); // ndmas == 0
    expect(regRc({ vaddr: 2 ** 44, hca_va: 2 ** 44 })).toBe(-EOVERFLOW); // the range does not fit the interval
    // an unmapped range registers fine (ODP faults later) and fails at access
    const hole = r.run({ op: 'reg_mr', vaddr: 0x40000000, len: PAGE });
    expect(hole.rc).toBeGreaterThan(0);
    expect(r.run({ op: 'rdma_write', key: hole.rc, addr: 0x40000000, value: 1 }).rc).toBe(-EFAULT);
    // the per-mm subscription table is finite here (the kernel's interval tree is not): -ENOMEM
    for (let i = 1; i < MMU_NOTIFIER_SUBS_MAX; i++) expect(regRc({})).toBeGreaterThan(0);
    expect(regRc({})).toBe(-ENOMEM);
    expect(r.dev.inspect().accounting.mrs).toBe(MMU_NOTIFIER_SUBS_MAX);
    expect(r.dev.teardown().rc).toBe(MMU_NOTIFIER_SUBS_MAX);
    expectReleased(r);
  });

  it('dereg_mr clears the device table and removes the notifier; the key is gone', () => {
    const r = odp();
    const lkey = reg(r);
    expect(r.run({ op: 'rdma_write', key: lkey, addr: r.va('buf', 1), value: 5 }).rc).toBe(1);
    expect(r.run({ op: 'dereg_mr', lkey: lkey + 1 }).rc).toBe(-ENOENT);
    expect(r.run({ op: 'dereg_mr', lkey }).rc).toBe(0);
    expect(r.run({ op: 'dereg_mr', lkey }).rc).toBe(-ENOENT);
    expect(r.run({ op: 'rdma_write', key: lkey, addr: r.va('buf', 1), value: 6 }).rc).toBe(-EINVAL);
    expect(mmuNotifierNrSubscriptions(r.m)).toBe(0);
    expect(getUser(r.m, r.mm, r.maps.buf! + 1)).toBe(5);
    expectReleased(r);
  });
});

describe('rdma-odp: DMA through the device page table', () => {
  it('RDMA WRITE faults untouched pages in and lands where the process reads; RDMA READ sees what the process wrote', () => {
    const r = odp();
    const lkey = reg(r, 0, 8);
    expect(r.dev.inspect().held).toEqual([]);
    const w = r.run({ op: 'rdma_write', key: lkey, addr: r.va('buf', 2), len: 3 * PAGE, value: 0xabc });
    expect(w.rc).toBe(3);
    expect(w.violation).toBeUndefined();
    for (const i of [2, 3, 4]) expect(getUser(r.m, r.mm, r.maps.buf! + i)).toBe(0xabc);
    expect(r.dev.inspect().held.map((h) => h.vpn - r.maps.buf!)).toEqual([2, 3, 4]);
    expect(putUser(r.m, r.mm, r.maps.buf! + 6, 77)).toBe(77);
    const rd = r.run({ op: 'rdma_read', key: lkey, addr: r.va('buf', 6) + 8 });
    expect(rd).toMatchObject({ rc: 77, violation: undefined });
    // a remote peer through the rkey (== lkey with remote access)
    expect(r.run({ op: 'rdma_write', key: lkey, remote: true, addr: r.va('buf', 7), value: 9 }).rc).toBe(1);
    expect(getUser(r.m, r.mm, r.maps.buf! + 7)).toBe(9);
    expect(pinsHeld(r.m)).toBe(0);
    expect(coherent(r)).toEqual([]);
  });

  it('the MR has its own wire address (hca_va) and exact byte bounds (mr_check_range)', () => {
    const r = odp();
    const hca = 0x7000_0000 + 100;
    const lkey = r.run({ op: 'reg_mr', vaddr: r.va('buf', 2) + 100, len: PAGE, hca_va: hca }).rc;
    expect(lkey).toBeGreaterThan(0);
    expect(r.run({ op: 'rdma_write', key: lkey, addr: hca, value: 0x51 }).rc).toBe(1);
    expect(getUser(r.m, r.mm, r.maps.buf! + 2)).toBe(0x51);
    expect(r.run({ op: 'rdma_write', key: lkey, addr: hca + PAGE - 4, value: 0x52 }).rc).toBe(1); // the MR's second page
    expect(getUser(r.m, r.mm, r.maps.buf! + 3)).toBe(0x52);
    expect(r.run({ op: 'rdma_write', key: lkey, addr: hca + PAGE - 3, value: 1 }).rc).toBe(-EFAULT); // past ibmr.length
    expect(r.run({ op: 'rdma_read', key: lkey, addr: hca - 1 }).rc).toBe(-EFAULT);
    expect(r.dev.inspect().held.map((h) => [h.iova, h.vpn])).toEqual([
      [0x70000, r.maps.buf! + 2],
      [0x70001, r.maps.buf! + 3],
    ]);
  });

  it('a read faults read-only (the zero page); a later write breaks COW through the notifier and retries', () => {
    const r = odp();
    const lkey = reg(r, 0, 4);
    expect(r.run({ op: 'rdma_read', key: lkey, addr: r.va('buf') }).rc).toBe(0);
    const z = r.dev.inspect().held[0]!;
    expect(r.m.zeroPfn()).toBe(z.pfn);
    const w = r.run({ op: 'rdma_write', key: lkey, addr: r.va('buf'), value: 42 });
    expect(w).toMatchObject({ rc: 1, violation: undefined });
    expect(r.dev.inspect().held[0]!.pfn).not.toBe(r.m.zeroPfn());
    expect(getUser(r.m, r.mm, r.maps.buf!)).toBe(42);
    expect(r.traces.some((t) => t.includes('invalidate clear'))).toBe(true); // wp_page_copy invalidated the zero-page entry
  });

  it('access errnos: key, permission, range, length, unmapped or read-only memory, a dead process', () => {
    const r = odp({ maps: { buf: BUF, ro: { nrPages: 2, prot: PROT_READ } } });
    const lkey = reg(r, 0, 4);
    const ronly = r.run({
      op: 'reg_mr',
      vaddr: r.va('buf', 4),
      len: 2 * PAGE,
      access: IB_ACCESS_REMOTE_READ | IB_ACCESS_ON_DEMAND,
    }).rc;
    expect(ronly).toBeGreaterThan(0);
    const local = r.run({
      op: 'reg_mr',
      vaddr: r.va('buf', 6),
      len: PAGE,
      access: IB_ACCESS_LOCAL_WRITE | IB_ACCESS_ON_DEMAND,
    }).rc;
    expect(r.run({ op: 'rdma_write', key: 12345, addr: r.va('buf'), value: 1 }).rc).toBe(-EINVAL);
    expect(r.run({ op: 'rdma_write', key: lkey, addr: r.va('buf'), len: 0, value: 1 }).rc).toBe(-EINVAL);
    expect(r.run({ op: 'rdma_write', key: lkey, addr: r.va('buf', 3) + 4, len: PAGE, value: 1 }).rc).toBe(-EFAULT); // mr_check_range
    expect(r.run({ op: 'rdma_read', key: lkey, addr: r.va('buf') - 4 }).rc).toBe(-EFAULT);
    expect(r.run({ op: 'rdma_write', key: ronly, addr: r.va('buf', 4), value: 1 }).rc).toBe(-EINVAL); // no IB_ACCESS_LOCAL_WRITE
    expect(r.run({ op: 'rdma_write', key: ronly, remote: true, addr: r.va('buf', 4), value: 1 })).toMatchObject({
      rc: -EACCES,
      detail: 'IB_WC_REM_ACCESS_ERR',
    });
    expect(r.run({ op: 'rdma_read', key: ronly, remote: true, addr: r.va('buf', 4) }).rc).toBe(0);
    expect(r.run({ op: 'rdma_read', key: local, remote: true, addr: r.va('buf', 6) }).rc).toBe(-EINVAL); // rkey 0: no such rkey
    // a write MR over a read-only mapping registers, and its write faults fail (SIGSEGV -> -EFAULT)
    const rokey = r.run({ op: 'reg_mr', vaddr: r.va('ro'), len: 2 * PAGE }).rc;
    expect(rokey).toBeGreaterThan(0);
    expect(r.run({ op: 'rdma_write', key: rokey, addr: r.va('ro'), value: 1 }).rc).toBe(-EFAULT);
    expect(r.run({ op: 'rdma_read', key: rokey, addr: r.va('ro') }).rc).toBe(0);
    // part of the MR unmapped after registration: the notifier cleared it, the fault finds no VMA
    expect(r.run({ op: 'rdma_write', key: lkey, addr: r.va('buf', 3), value: 3 }).rc).toBe(1);
    expect(doMunmap(r.m, r.mm, r.maps.buf! + 3, 1)).toBe(0);
    expect(r.dev.inspect().held.some((h) => h.vpn === r.maps.buf! + 3)).toBe(false);
    expect(r.run({ op: 'rdma_write', key: lkey, addr: r.va('buf', 3), value: 3 }).rc).toBe(-EFAULT);
    // the process exits: MMU_NOTIFY_RELEASE clears everything; the owner is gone (-EINVAL)
    expect(r.run({ op: 'rdma_write', key: lkey, addr: r.va('buf', 1), value: 3 }).rc).toBe(1);
    exitMmap(r.m, r.mm);
    expect(r.dev.inspect().held).toEqual([]);
    expect(r.run({ op: 'rdma_write', key: lkey, addr: r.va('buf', 1), value: 3 }).rc).toBe(-EINVAL);
    expect(r.run({ op: 'prefetch', lkey, addr: r.va('buf', 1), len: PAGE }).rc).toBe(-EINVAL);
    expect(r.dev.teardown().rc).toBe(4);
  });

  it('prefetch (ibv_advise_mr) maps pages without DMA; a write prefetch breaks COW up front', () => {
    const r = odp();
    const lkey = reg(r, 0, 8);
    expect(r.run({ op: 'prefetch', lkey, addr: r.va('buf', 1), len: 2 * PAGE }).rc).toBe(0);
    expect(r.dev.inspect().held.map((h) => h.pfn)).toEqual([r.m.zeroPfn(), r.m.zeroPfn()]);
    expect(r.run({ op: 'prefetch', lkey, addr: r.va('buf', 1), len: 2 * PAGE, write: true }).rc).toBe(0);
    expect(r.dev.inspect().held.every((h) => h.pfn !== r.m.zeroPfn() && h.pfn === pfnOf(r.m, r.mm, h.vpn))).toBe(true);
    expect(r.run({ op: 'prefetch', lkey: 7, addr: r.va('buf'), len: PAGE }).rc).toBe(-EINVAL);
    expect(r.run({ op: 'prefetch', lkey, addr: r.va('buf', 8), len: PAGE }).rc).toBe(-EFAULT);
    expect(r.run({ op: 'prefetch', lkey, addr: r.va('buf'), len: 0 }).rc).toBe(-EINVAL);
    expect(r.run({ op: 'frobnicate' }).rc).toBe(-EINVAL);
    expect(coherent(r)).toEqual([]);
  });
});

describe('rdma-odp: the mm invalidates before pages move or go', () => {
  it('MADV_DONTNEED clears the entries (dirtying pages mapped for write); the next DMA refaults a fresh page', () => {
    const r = odp();
    const lkey = reg(r, 0, 4);
    expect(r.run({ op: 'rdma_write', key: lkey, addr: r.va('buf', 1), value: 11 }).rc).toBe(1);
    expect(doMadvise(r.m, r.mm, r.maps.buf!, 4, MADV_DONTNEED)).toBe(0);
    expect(r.dev.inspect().held).toEqual([]);
    expect(r.run({ op: 'rdma_read', key: lkey, addr: r.va('buf', 1) }).rc).toBe(0); // anonymous memory refaults as zero
    expect(r.run({ op: 'rdma_write', key: lkey, addr: r.va('buf', 1), value: 12 }).rc).toBe(1);
    expect(getUser(r.m, r.mm, r.maps.buf! + 1)).toBe(12);
    expect(coherent(r)).toEqual([]);
  });

  it("fork: the parent's write-protect invalidates; a later DMA write breaks COW for the parent, the child keeps the old data", () => {
    const r = odp();
    fill(r, 'buf', 4, 500);
    const lkey = reg(r, 0, 4);
    expect(r.run({ op: 'rdma_write', key: lkey, addr: r.va('buf', 2), value: 1 }).rc).toBe(1);
    const child = dupMm(r.m, r.mm);
    expect(child).toBeGreaterThanOrEqual(0);
    expect(r.dev.inspect().held).toEqual([]); // MMU_NOTIFY_PROTECTION_PAGE over the COW mapping
    expect(r.run({ op: 'rdma_write', key: lkey, addr: r.va('buf', 2), value: 2 })).toMatchObject({
      rc: 1,
      violation: undefined,
    });
    expect(getUser(r.m, r.mm, r.maps.buf! + 2)).toBe(2);
    expect(getUser(r.m, child, r.maps.buf! + 2)).toBe(1);
    expect(coherent(r)).toEqual([]);
  });

  it('mprotect(PROT_READ) invalidates; DMA writes then fail, reads still work', () => {
    const r = odp();
    const lkey = reg(r, 0, 4);
    expect(r.run({ op: 'rdma_write', key: lkey, addr: r.va('buf'), value: 3 }).rc).toBe(1);
    expect(doMprotect(r.m, r.mm, r.maps.buf!, 4, PROT_READ)).toBe(0);
    expect(r.dev.inspect().held).toEqual([]);
    expect(r.run({ op: 'rdma_write', key: lkey, addr: r.va('buf'), value: 4 }).rc).toBe(-EFAULT);
    expect(r.run({ op: 'rdma_read', key: lkey, addr: r.va('buf') }).rc).toBe(3);
  });

  it('THP: splitting the PMD under a partial zap invalidates the whole huge page', () => {
    const r = odp({ cmd: `${CMD} transparent_hugepage=always`, maps: { buf: 8 } });
    const lkey = reg(r, 0, 8);
    expect(r.run({ op: 'rdma_write', key: lkey, addr: r.va('buf'), len: 8 * PAGE, value: 8 }).rc).toBe(8);
    expect(r.dev.inspect().held).toHaveLength(8);
    expect(doMadvise(r.m, r.mm, r.maps.buf! + 6, 2, MADV_DONTNEED)).toBe(0);
    expect(r.dev.inspect().held).toEqual([]);
    expect(getUser(r.m, r.mm, r.maps.buf! + 5)).toBe(8);
    expect(r.run({ op: 'rdma_read', key: lkey, addr: r.va('buf', 5) }).rc).toBe(8);
    expect(coherent(r)).toEqual([]);
  });

  it('migration: entries are dropped before the copy, the device refaults to the new frame', () => {
    const r = odp();
    const lkey = reg(r, 0, 4);
    expect(r.run({ op: 'rdma_write', key: lkey, addr: r.va('buf'), len: 4 * PAGE, value: 21 }).rc).toBe(4);
    const old = pfnOf(r.m, r.mm, r.maps.buf!);
    expect(migrateRange(r.m, r.mm, r.maps.buf!, 4, 'kernel').migrated).toBe(4);
    expect(r.dev.inspect().held).toEqual([]);
    expect(coherent(r)).toEqual([]);
    const w = r.run({ op: 'rdma_write', key: lkey, addr: r.va('buf'), value: 22 });
    expect(w.violation).toBeUndefined();
    const now = r.dev.inspect().held[0]!.pfn;
    expect(now).not.toBe(old);
    expect(r.m.pageZonenum(now)).toBe(ZONE_NORMAL);
    expect(getUser(r.m, r.mm, r.maps.buf!)).toBe(22);
    expect(getUser(r.m, r.mm, r.maps.buf! + 3)).toBe(21);
  });

  it('nothing is pinned, so the ZONE_MOVABLE blocks under an active MR go offline', () => {
    const r = odp();
    const lkey = reg(r, 0, 8);
    expect(r.run({ op: 'rdma_write', key: lkey, addr: r.va('buf'), len: 8 * PAGE, value: 31 }).rc).toBe(8);
    const blocks = new Set(r.dev.inspect().held.map((h) => Math.floor(h.pfn / r.m.blockPages)));
    for (const b of blocks) expect(stateStore(r.m, b, 'offline')).toBe(0);
    expect(r.dev.inspect().held).toEqual([]);
    expect(r.run({ op: 'rdma_read', key: lkey, addr: r.va('buf', 7) }).rc).toBe(31);
    expect(r.dev.inspect().held.every((h) => !blocks.has(Math.floor(h.pfn / r.m.blockPages)))).toBe(true);
  });

  it("a non-blockable invalidation (the OOM reaper's) is refused: -EAGAIN, the entries stay", () => {
    const r = odp();
    const lkey = reg(r, 0, 2);
    expect(r.run({ op: 'rdma_write', key: lkey, addr: r.va('buf'), value: 1 }).rc).toBe(1);
    const nb = mmuNotifierInvalidateRangeStartNonblock(r.m, r.mm, r.maps.buf!, r.maps.buf! + 1, MMU_NOTIFY_UNMAP);
    expect(nb.rc).toBe(-EAGAIN);
    expect(r.dev.inspect().held).toHaveLength(1);
  });

  it('teardown deregisters everything; counters, pins and subscriptions back to zero', () => {
    const r = odp();
    reg(r, 0, 4);
    const l2 = reg(r, 4, 4);
    expect(r.run({ op: 'rdma_write', key: l2, addr: r.va('buf', 5), value: 1 }).rc).toBe(1);
    expect(r.dev.teardown()).toMatchObject({ rc: 2 });
    expect(mmuNotifierNrSubscriptions(r.m)).toBe(0);
    expectReleased(r);
  });
});

/**
 * The ODP race: a migration (or an offline) lands between hmm_range_fault() and the install. Returns
 * what the process reads afterwards, the DMA's violation and the retries the device made.
 */
function raceMigration(
  bugs: string[],
  how: 'migrate' | 'offline',
): { violation?: string; reads: number; retries: number; coherent: string[]; r: Rig } {
  let r: Rig | undefined;
  let armed = false; // only the RDMA WRITE's fault, not reg_mr's snapshot
  let fired = false;
  // eslint-disable-next-line prefer-const -- the hook runs inside odp() and must see r still undefined
  r = odp({
    bugs,
    onYield: (label) => {
      if (label !== 'odp:after-fault' || !armed || fired || !r) return;
      fired = true;
      const vpn = r.maps.buf! + 1;
      if (how === 'migrate') expect(migrateRange(r.m, r.mm, vpn, 1, 'kernel').migrated).toBe(1);
      else expect(stateStore(r.m, Math.floor(pfnOf(r.m, r.mm, vpn) / r.m.blockPages), 'offline')).toBe(0);
    },
  });
  for (const i of [0, 2, 3]) putUser(r.m, r.mm, r.maps.buf! + i, 600 + i);
  const lkey = r.run({ op: 'reg_mr', vaddr: r.va('buf'), len: 4 * PAGE }).rc;
  expect(lkey).toBeGreaterThan(0);
  putUser(r.m, r.mm, r.maps.buf! + 1, 601); // after the snapshot: the device has no entry for page 1
  armed = true;
  const w = r.run({ op: 'rdma_write', key: lkey, addr: r.va('buf', 1), value: 0xfeed });
  expect(fired).toBe(true);
  expect(w.rc).toBe(1);
  return {
    violation: w.violation,
    reads: getUser(r.m, r.mm, r.maps.buf! + 1),
    retries: r.dev.inspect().accounting.retries!,
    coherent: coherent(r),
    r,
  };
}

/** invalidate-noop's failure: entries survive a migration, the next DMA goes to the freed frame. */
function staleAfterMigration(bugs: string[]): { violation?: string; reads: number; coherent: string[] } {
  const r = odp({ bugs });
  const lkey = reg(r, 0, 4);
  expect(r.run({ op: 'rdma_write', key: lkey, addr: r.va('buf'), len: 4 * PAGE, value: 1 }).rc).toBe(4);
  expect(migrateRange(r.m, r.mm, r.maps.buf!, 4, 'kernel').migrated).toBe(4);
  const afterMigration = coherent(r);
  const w = r.run({ op: 'rdma_write', key: lkey, addr: r.va('buf', 2), value: 0xbeef });
  return { violation: w.violation, reads: getUser(r.m, r.mm, r.maps.buf! + 2), coherent: afterMigration };
}

describe('rdma-odp: buggy variants are caught', () => {
  it.each(['migrate', 'offline'] as const)(
    'a %s between fault and install: the fixed model retries and the DMA lands in the new frame',
    (how) => {
      const ok = raceMigration([], how);
      expect(ok.retries).toBeGreaterThanOrEqual(1);
      expect(ok.violation).toBeUndefined();
      expect(ok.reads).toBe(0xfeed);
      expect(ok.coherent).toEqual([]);
    },
  );

  it.each([
    ['no-seq-retry', 'migrate'],
    ['no-seq-retry', 'offline'],
    ['invalidate-noop', 'migrate'],
    ['invalidate-noop', 'offline'],
  ] as const)('%s: after a %s in the window the device installs the old pfn and writes a freed frame', (bug, how) => {
    const bad = raceMigration([bug], how);
    expect(bad.retries).toBe(0);
    expect(bad.violation).toMatch(/stale ODP entry/);
    expect(bad.reads).toBe(601); // the process never sees the DMA
    expect(bad.coherent.length).toBeGreaterThan(0);
  });

  it('no-seq-retry: the next invalidation of the stale entry reports it from the callback, before the unmap dirties the frame', () => {
    for (const bugs of [[], ['no-seq-retry']]) {
      const { r } = raceMigration(bugs, 'migrate');
      expect(r.violations).toEqual([]); // nothing invalidated the entry yet
      expect(migrateRange(r.m, r.mm, r.maps.buf!, 4, 'movable').migrated).toBe(4); // the callback clears pages 0-3
      if (!bugs.length) expect(r.violations).toEqual([]);
      else
        expect(r.violations).toEqual([expect.stringMatching(/^rdma-odp\/0: invalidation of lkey .*stale ODP entry/)]);
      expect(coherent(r)).toEqual([]); // cleared either way
    }
  });

  it('invalidate-noop: entries survive the migration; the check passes without the bug and fails with it', () => {
    const ok = staleAfterMigration([]);
    expect(ok).toEqual({ violation: undefined, reads: 0xbeef, coherent: [] });
    const bad = staleAfterMigration(['invalidate-noop']);
    expect(bad.violation).toMatch(/a free page \(stale ODP entry|stale ODP entry/);
    expect(bad.reads).toBe(1);
    expect(bad.coherent).toHaveLength(4);
  });

  it('the sequence loop is bounded: a migration at every fault ends in -EBUSY, not a hang', () => {
    let r: Rig | undefined;
    let flip = false;
    // eslint-disable-next-line prefer-const -- the hook runs inside odp() and must see r still undefined
    r = odp({
      onYield: (label) => {
        if (label !== 'odp:after-fault' || !r) return;
        flip = !flip; // bounce the page between the zones
        migrateRange(r.m, r.mm, r.maps.buf!, 1, flip ? 'kernel' : 'movable');
      },
    });
    const lkey = reg(r, 0, 1);
    const w = r.run({ op: 'rdma_write', key: lkey, addr: r.va('buf'), value: 1 });
    expect(w.rc).toBe(-EBUSY);
    expect(r.dev.inspect().accounting.retries).toBe(ODP_MAP_RETRIES_MAX);
    expect(r.dev.inspect().held).toEqual([]);
  });
});

describe('rdma-odp: generated programs against a moving mm', () => {
  // Random device ops interleaved with mm events (migration both ways, MADV_DONTNEED, fork + COW,
  // offline/online of a movable block) and, at the device's fault window, an occasional migration.
  type Ev = { kind: 'op'; op: DeviceOp } | { kind: 'mm'; what: number; page: number };
  function run(bugs: string[], evs: Ev[], raceEvery: number): string | undefined {
    let r: Rig | undefined;
    let faults = 0;
    // eslint-disable-next-line prefer-const -- the hook runs inside odp() and must see r still undefined
    r = odp({
      bugs,
      maps: { buf: 8 },
      onYield: (label) => {
        if (label !== 'odp:after-fault' || !r || raceEvery === 0 || ++faults % raceEvery) return;
        migrateRange(r.m, r.mm, r.maps.buf!, 8, faults % 2 ? 'kernel' : 'movable');
      },
    });
    const rr = r;
    for (const e of evs) {
      if (e.kind === 'op') {
        const res = rr.run(e.op);
        if (res.violation) return res.violation;
      } else {
        const vpn = rr.maps.buf! + e.page;
        switch (e.what) {
          case 0:
            migrateRange(rr.m, rr.mm, rr.maps.buf!, 8, 'kernel');
            break;
          case 1:
            migrateRange(rr.m, rr.mm, rr.maps.buf!, 8, 'movable');
            break;
          case 2:
            doMadvise(rr.m, rr.mm, vpn, 1, MADV_DONTNEED);
            break;
          case 3: {
            const c = dupMm(rr.m, rr.mm);
            if (c >= 0) {
              putUser(rr.m, rr.mm, vpn, 5);
              exitMmap(rr.m, c);
            }
            break;
          }
          default:
            putUser(rr.m, rr.mm, vpn, e.page + 1);
            break;
        }
      }
      const errs = coherent(rr);
      if (errs.length) return errs[0];
    }
    rr.dev.teardown();
    return pinsHeld(rr.m) !== 0 ? 'pins left behind' : undefined;
  }
  const shape = { maps: [{ name: 'buf', pages: 8 }], maxPages: 4 };
  const ev: fc.Arbitrary<Ev> = fc.oneof(
    { weight: 3, arbitrary: rdmaOdp.arbitrary(fc, shape).map((op): Ev => ({ kind: 'op', op })) },
    { weight: 1, arbitrary: fc.record({ what: fc.nat(4), page: fc.nat(7) }).map((x): Ev => ({ kind: 'mm', ...x })) },
  );
  const regFirst = (evs: Ev[]): Ev[] => [
    { kind: 'op', op: { op: 'reg_mr', vaddr: { map: 'buf', off: 0 }, len: 8 * PAGE } },
    ...evs,
  ];

  it('the fixed model never uses a stale translation (fast-check, 150 programs)', () => {
    fc.assert(
      fc.property(
        fc.array(ev, { maxLength: 30 }),
        fc.nat(3),
        (evs, race) => run([], regFirst(evs), race) === undefined,
      ),
      { numRuns: 150, seed: 20240601 },
    );
  });

  it.each([
    ['invalidate-noop', 0],
    ['no-seq-retry', 1],
  ] as const)('%s is found by the same property', (bug, race) => {
    const out = fc.check(
      fc.property(fc.array(ev, { maxLength: 30 }), (evs) => run([bug], regFirst(evs), race) === undefined),
      { numRuns: 300, seed: 20240601 },
    );
    expect(out.failed).toBe(true);
  });
});

it('is registered as rdma-odp', () => {
  expect(deviceModel('rdma-odp')).toBe(rdmaOdp);
});
