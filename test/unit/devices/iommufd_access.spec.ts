import * as fc from 'fast-check';
import { iommufdAccess } from '../../../devices/iommufd_access';
import { memlockCounters } from '../../../devices/common';
import { rig, fill, pfnOf, checkHeld, expectReleased, pinsHeld, PAGE } from './helpers';
import { getUser } from '../../../mm/memory';
import { PROT_READ } from '../../../mm/mmap';
import { ZONE_NORMAL } from '../../../mm/mmzone';
import { EINVAL, EOVERFLOW, EEXIST, ENOENT, EPERM, ENOMEM, EFAULT, EDEADLK } from '../../../mm/errno';
import type { DeviceOp } from '../../../devices/device';

const map = (iova: number, off: number, pages: number, write = true): DeviceOp => ({
  op: 'ioas_map',
  iova: iova * PAGE,
  vaddr: { map: 'buf', off },
  length: pages * PAGE,
  read: true,
  write,
});
const pin = (iova: number, pages: number, write = true): DeviceOp => ({
  op: 'access_pin',
  iova: iova * PAGE,
  length: pages * PAGE,
  write,
});
const unpin = (iova: number, pages: number): DeviceOp => ({
  op: 'access_unpin',
  iova: iova * PAGE,
  length: pages * PAGE,
});

describe('iommufd-access: IOMMU_IOAS_MAP and iommufd_access_pin_pages', () => {
  it('IOAS_MAP pins nothing; access_pin pins long-term, once per page, charging user locked_vm and pinned_vm', () => {
    const r = rig(iommufdAccess);
    fill(r, 'buf', 8);
    expect(r.run(map(0, 0, 8)).rc).toBe(0);
    expect(pinsHeld(r.m)).toBe(0);
    expect(r.run(pin(0, 4)).rc).toBe(0);
    expect(r.run(pin(2, 4)).rc).toBe(0); // overlaps: pages 2, 3 are not pinned again
    expect(r.run(pin(0, 4)).rc).toBe(0); // the same exact range again: one more user of the access
    expect(pinsHeld(r.m)).toBe(6);
    expect(memlockCounters(r.m, r.mm)).toEqual({ locked_vm: 0, pinned_vm: 6, user_locked_vm: 6 });
    const held = r.dev.inspect().held;
    expect(held.map((h) => h.iova)).toEqual([0, 1, 2, 3, 4, 5]);
    expect(checkHeld(r.m, held)).toEqual([]);
    for (const h of held) {
      expect(r.m.pageZonenum(h.pfn)).toBe(ZONE_NORMAL);
      expect(pfnOf(r.m, r.mm, h.vpn)).toBe(h.pfn);
    }
    expect(r.yields).toContain('iommufd-access:pinned-not-accounted');
    r.dev.teardown();
    expectReleased(r);
  });

  it('unpin must match a pin exactly; pages stay pinned while another access covers them', () => {
    const r = rig(iommufdAccess);
    fill(r, 'buf', 8);
    r.run(map(0, 0, 8));
    r.run(pin(0, 4));
    r.run(pin(2, 4));
    expect(r.run(unpin(0, 1)).rc).toBe(-ENOENT); // a sub-range of a pin is not a pin
    expect(r.run(unpin(0, 6)).rc).toBe(-ENOENT);
    expect(pinsHeld(r.m)).toBe(6);
    expect(r.run(unpin(0, 4)).rc).toBe(0);
    expect(pinsHeld(r.m)).toBe(4); // pages 0, 1 go; 2, 3 stay for the other access
    expect(r.dev.inspect().held.map((h) => h.iova)).toEqual([2, 3, 4, 5]);
    expect(memlockCounters(r.m, r.mm).user_locked_vm).toBe(4);
    expect(r.run(unpin(2, 4)).rc).toBe(0);
    expect(pinsHeld(r.m)).toBe(0);
    expect(memlockCounters(r.m, r.mm)).toEqual({ locked_vm: 0, pinned_vm: 0, user_locked_vm: 0 });
    expectReleased(r);
  });

  it('errnos of IOAS_MAP: -EINVAL no prot, length 0 or misaligned; -EOVERFLOW; -EEXIST on overlap', () => {
    const r = rig(iommufdAccess);
    expect(r.run({ ...map(0, 0, 1), read: false, write: false }).rc).toBe(-EINVAL);
    expect(r.run(map(0, 0, 0)).rc).toBe(-EINVAL);
    expect(r.run({ ...map(0, 0, 1), iova: 512 }).rc).toBe(-EINVAL);
    expect(r.run({ ...map(0, 0, 1), length: 100 }).rc).toBe(-EINVAL);
    expect(r.run({ ...map(0, 0, 1), iova: 2 ** 64 }).rc).toBe(-EOVERFLOW);
    expect(r.run(map(4, 0, 4)).rc).toBe(0);
    expect(r.run(map(7, 0, 2)).rc).toBe(-EEXIST);
    expect(r.run(map(0, 0, 5)).rc).toBe(-EEXIST);
    expect(r.run(map(0, 0, 4)).rc).toBe(0);
    r.dev.teardown();
    expectReleased(r);
  });

  it('errnos of access_pin: -EINVAL length 0 or misaligned, -ENOENT on a hole, -EPERM, -ENOMEM over the limit, -EFAULT', () => {
    const r = rig(iommufdAccess, { rlimitMemlockPages: 4, maps: { buf: 8, ro: { nrPages: 2, prot: PROT_READ } } });
    fill(r, 'buf', 8);
    r.run(map(0, 0, 4));
    r.run(map(4, 4, 2, false));
    r.run(map(8, 6, 2));
    expect(r.run(pin(0, 0)).rc).toBe(-EINVAL);
    expect(r.run({ op: 'access_pin', iova: 8, length: PAGE }).rc).toBe(-EINVAL);
    expect(r.run({ op: 'access_pin', iova: 2 ** 64, length: PAGE }).rc).toBe(-EOVERFLOW);
    expect(r.run(pin(5, 4, false)).rc).toBe(-ENOENT); // page 6, 7: a hole between the areas
    expect(r.run(pin(3, 2, true)).rc).toBe(-EPERM); // page 4 lies in a read-only area; page 3 unwound
    expect(pinsHeld(r.m)).toBe(0);
    expect(r.run(pin(3, 2, false)).rc).toBe(0); // spans two areas
    expect(r.run(pin(0, 4)).rc).toBe(-ENOMEM); // 2 + 3 new pages > 4: pinned, then unwound when accounting fails
    expect(r.traces.some((t) => t.includes('RLIMIT_MEMLOCK exceeded'))).toBe(true);
    expect(pinsHeld(r.m)).toBe(2);
    expect(memlockCounters(r.m, r.mm).user_locked_vm).toBe(2);
    expect(r.run(unpin(3, 2)).rc).toBe(0);
    r.run({ ...map(12, 0, 2), vaddr: { map: 'ro', off: 0 } });
    expect(r.run(pin(12, 1)).rc).toBe(-EFAULT); // a writable area over a read-only VMA: GUP faults
    r.dev.teardown();
    expectReleased(r);

    const cap = rig(iommufdAccess, { rlimitMemlockPages: 0, capIpcLock: true });
    cap.run(map(0, 0, 4));
    expect(cap.run(pin(0, 4)).rc).toBe(0); // IOPT_PAGES_ACCOUNT_NONE: only pinned_vm grows
    expect(memlockCounters(cap.m, cap.mm)).toEqual({ locked_vm: 0, pinned_vm: 4, user_locked_vm: 0 });
    cap.dev.teardown();
    expectReleased(cap);
  });

  it('DMA through the pinned pages is what the process reads; access_rw goes through pins or the page tables', () => {
    const r = rig(iommufdAccess, { maps: { buf: 8, ro: { nrPages: 2, prot: PROT_READ } } });
    fill(r, 'buf', 4);
    r.run(map(0, 0, 4));
    expect(r.run({ op: 'dma_write', iova: 0, value: 3 }).rc).toBe(-EFAULT); // not pinned
    r.run(pin(0, 2));
    expect(r.run({ op: 'dma_write', iova: PAGE + 4, value: 0x1234 }).violation).toBeUndefined();
    expect(getUser(r.m, r.mm, r.maps.buf! + 1)).toBe(0x1234);
    expect(r.run({ op: 'dma_read', iova: 0 }).rc).toBe(1000);
    expect(r.run({ op: 'access_rw', iova: 3 * PAGE, write: true, value: 55 }).rc).toBe(0); // unpinned: copy_to_user
    expect(getUser(r.m, r.mm, r.maps.buf! + 3)).toBe(55);
    expect(r.run({ op: 'access_rw', iova: 0, write: false }).rc).toBe(1000); // pinned: the xarray pfn
    expect(r.run({ op: 'access_rw', iova: 9 * PAGE, write: false }).rc).toBe(-ENOENT);
    r.run({ ...map(16, 0, 2, false), vaddr: { map: 'ro', off: 0 } });
    expect(r.run({ op: 'access_rw', iova: 16 * PAGE, write: true, value: 1 }).rc).toBe(-EPERM);
    expect(pinsHeld(r.m)).toBe(2);
    r.dev.teardown();
    expectReleased(r);
  });

  it('IOAS_UNMAP: whole areas only (-ENOENT), ops->unmap revokes pins first, then the bytes unmapped', () => {
    const r = rig(iommufdAccess);
    fill(r, 'buf', 8);
    r.run(map(0, 0, 4));
    r.run(map(4, 4, 4));
    r.run(pin(1, 2));
    r.run(pin(3, 3)); // spans both areas
    expect(r.run({ op: 'ioas_unmap', iova: 0, length: 2 * PAGE }).rc).toBe(-ENOENT);
    expect(r.run({ op: 'ioas_unmap', iova: 20 * PAGE, length: PAGE }).rc).toBe(-ENOENT);
    expect(r.run({ op: 'ioas_unmap', iova: 0, length: 0 }).rc).toBe(-EINVAL);
    expect(pinsHeld(r.m)).toBe(5);
    expect(r.run({ op: 'ioas_unmap', iova: 0, length: 4 * PAGE }).rc).toBe(4 * PAGE);
    expect(r.traces.some((t) => t.includes('ops->unmap 0x0+0x4000: 2 pin(s) dropped'))).toBe(true);
    expect(pinsHeld(r.m)).toBe(0); // the spanning pin went too, in both areas
    expect(r.run({ op: 'ioas_unmap', all: true }).rc).toBe(4 * PAGE);
    expect(r.run({ op: 'ioas_unmap', all: true }).rc).toBe(0);
    expectReleased(r);
  });
});

describe('iommufd-access buggy variant', () => {
  it('callback-never-unpins: IOAS unmap WARNs after 100 tries with -EDEADLOCK; prevent_access then refuses pins', () => {
    const unmap = (bugs: string[]) => {
      const r = rig(iommufdAccess, { bugs });
      fill(r, 'buf', 4);
      r.run(map(0, 0, 4));
      r.run(pin(0, 2));
      const res = r.run({ op: 'ioas_unmap', iova: 0, length: 4 * PAGE });
      const after = r.run(pin(2, 1)).rc;
      r.dev.teardown();
      expectReleased(r);
      return { res, after };
    };
    const ok = unmap([]);
    expect(ok.res.rc).toBe(4 * PAGE);
    expect(ok.res.violation).toBeUndefined();
    expect(ok.after).toBe(-ENOENT);
    const bad = unmap(['callback-never-unpins']);
    expect(bad.res.rc).toBe(-EDEADLK);
    expect(bad.res.violation).toMatch(/WARN_ON\(tries > 100\)/);
    expect(bad.after).toBe(-EINVAL);
  });
});

describe('iommufd-access generated ops', () => {
  it('random op sequences: pinned once, pinnable, accounted, no violations, all released', () => {
    const shape = {
      maps: [
        { name: 'a', pages: 10 },
        { name: 'b', pages: 6 },
      ],
      maxPages: 6,
    };
    fc.assert(
      fc.property(fc.array(iommufdAccess.arbitrary(fc, shape), { maxLength: 30 }), (ops) => {
        const r = rig(iommufdAccess, { maps: { a: 10, b: 6 } });
        for (const op of ops) {
          expect(r.run(op).violation).toBeUndefined();
          const { held, accounting } = r.dev.inspect();
          expect(checkHeld(r.m, held)).toEqual([]);
          const c = memlockCounters(r.m, r.mm);
          expect(c.pinned_vm).toBe(accounting.pinned_vm);
          expect(c.user_locked_vm).toBe(accounting.user_locked_vm);
        }
        r.dev.teardown();
        expectReleased(r);
      }),
      { numRuns: 40, seed: 3 },
    );
  });
});
