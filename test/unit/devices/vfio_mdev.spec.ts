import * as fc from 'fast-check';
import { linkProgram } from '../../../devices/device';
import { vfioMdev } from '../../../devices/vfio_mdev';
import { memlockCounters } from '../../../devices/common';
import { rig, fill, pfnOf, checkHeld, expectReleased, pinsHeld, PAGE } from './helpers';
import { getUser, putUser } from '../../../mm/memory';
import { PROT_READ } from '../../../mm/mmap';
import { ZONE_MOVABLE, ZONE_NORMAL } from '../../../mm/mmzone';
import { EINVAL, E2BIG, EPERM, ENOMEM, EFAULT, EBUSY } from '../../../mm/errno';
import type { DeviceOp } from '../../../devices/device';
import { PG_zero } from '../../../mm/memmap';

const map = (iova: number, off: number, pages: number, write = true): DeviceOp => ({
  op: 'map_dma',
  iova: iova * PAGE,
  vaddr: { map: 'buf', off },
  size: pages * PAGE,
  read: true,
  write,
});
const pin = (iova: number, npage: number, write = true): DeviceOp => ({
  op: 'pin_pages',
  iova: iova * PAGE,
  npage,
  write,
});

describe('vfio-mdev: vfio_pin_pages / vfio_unpin_pages', () => {
  it('MAP_DMA pins nothing; vfio_pin_pages pins long-term per IOVA page and charges locked_vm', () => {
    const r = rig(vfioMdev);
    fill(r, 'buf', 8);
    expect(r.run(map(0, 0, 8)).rc).toBe(0);
    expect(pinsHeld(r.m)).toBe(0);
    expect(memlockCounters(r.m, r.mm).locked_vm).toBe(0);
    expect(r.m.pageZonenum(pfnOf(r.m, r.mm, r.maps.buf!))).toBe(ZONE_MOVABLE);
    expect(r.run(pin(2, 3)).rc).toBe(3);
    const held = r.dev.inspect().held;
    expect(held.map((h) => h.iova)).toEqual([2, 3, 4]);
    expect(checkHeld(r.m, held)).toEqual([]);
    for (const h of held) {
      expect(r.m.pageZonenum(h.pfn)).toBe(ZONE_NORMAL);
      expect(h.pfn).toBe(pfnOf(r.m, r.mm, r.maps.buf! + h.iova));
    }
    expect(memlockCounters(r.m, r.mm).locked_vm).toBe(3);
    expect(r.dev.teardown().rc).toBe(3);
    expectReleased(r);
  });

  it('pins are refcounted per IOVA: a repeat pin takes a reference, not a new pin or charge', () => {
    const r = rig(vfioMdev);
    fill(r, 'buf', 4);
    r.run(map(0, 0, 4));
    expect(r.run(pin(0, 2)).rc).toBe(2);
    expect(r.run(pin(1, 2)).rc).toBe(2); // page 1 again, page 2 new
    expect(pinsHeld(r.m)).toBe(3);
    expect(memlockCounters(r.m, r.mm).locked_vm).toBe(3);
    expect(r.run({ op: 'unpin_pages', iova: PAGE, npage: 1 }).rc).toBe(1);
    expect(pinsHeld(r.m)).toBe(3); // page 1 still has a reference
    expect(r.run({ op: 'unpin_pages', iova: 0, npage: 3 }).rc).toBe(3);
    expect(pinsHeld(r.m)).toBe(0);
    expect(memlockCounters(r.m, r.mm).locked_vm).toBe(0);
    expect(r.run({ op: 'unpin_pages', iova: 0, npage: 3 }).rc).toBe(0); // nothing held: nothing to do
    expect(r.run({ op: 'unpin_pages', iova: 0, npage: 0 }).rc).toBe(-EINVAL);
    r.dev.teardown();
    expectReleased(r);
  });

  it('errnos: -EINVAL npage 0 or unmapped iova, -E2BIG over 512, -EPERM prot mismatch, -ENOMEM over RLIMIT_MEMLOCK, -EFAULT', () => {
    const r = rig(vfioMdev, { rlimitMemlockPages: 3, maps: { buf: 8, ro: { nrPages: 2, prot: PROT_READ } } });
    fill(r, 'buf', 8);
    r.run(map(0, 0, 4));
    r.run(map(4, 4, 2, false));
    expect(r.run(pin(0, 0)).rc).toBe(-EINVAL);
    expect(r.run(pin(0, 513)).rc).toBe(-E2BIG);
    expect(r.run(pin(2, 3)).rc).toBe(-EPERM); // pages 2, 3 pin, page 4 lies in the read-only mapping: unwound
    expect(pinsHeld(r.m)).toBe(0);
    expect(r.run(pin(5, 2, false)).rc).toBe(-EINVAL); // page 6 is not mapped: page 5 unwound
    expect(pinsHeld(r.m)).toBe(0);
    expect(r.run(pin(4, 1, true)).rc).toBe(-EPERM); // write pin of a read-only mapping
    expect(r.run(pin(4, 1, false)).rc).toBe(1);
    expect(r.run(pin(0, 3)).rc).toBe(-ENOMEM); // 1 + 3 > 3: the third page fails, the first two unwind
    expect(memlockCounters(r.m, r.mm).locked_vm).toBe(1);
    expect(pinsHeld(r.m)).toBe(1);
    expect(r.run(pin(0, 2)).rc).toBe(2);
    expect(r.run({ ...map(8, 0, 1), vaddr: { map: 'ro', off: 0 } }).rc).toBe(0);
    expect(r.run({ op: 'unpin_pages', iova: 0, npage: 2 }).rc).toBe(2);
    expect(r.run(pin(8, 1)).rc).toBe(-EFAULT); // the mapping is writable but the VMA is not: FOLL_WRITE faults
    expect(pinsHeld(r.m)).toBe(1);
    r.dev.teardown();
    expectReleased(r);
  });

  it('DMA through the pinned page is what the process reads; vfio_dma_rw copies through the page tables', () => {
    const r = rig(vfioMdev);
    fill(r, 'buf', 4);
    r.run(map(0, 0, 4));
    expect(r.run({ op: 'dma_write', iova: 0, value: 5 }).rc).toBe(-EFAULT); // not pinned yet
    r.run(pin(0, 2));
    expect(r.run({ op: 'dma_write', iova: PAGE + 12, value: 0xbeef }).violation).toBeUndefined();
    expect(getUser(r.m, r.mm, r.maps.buf! + 1)).toBe(0xbeef);
    putUser(r.m, r.mm, r.maps.buf!, 42);
    expect(r.run({ op: 'dma_read', iova: 0 }).rc).toBe(42);
    expect(r.run({ op: 'dma_rw', iova: 3 * PAGE, write: true, value: 31 }).rc).toBe(0);
    expect(getUser(r.m, r.mm, r.maps.buf! + 3)).toBe(31);
    expect(r.run({ op: 'dma_rw', iova: 3 * PAGE + 8, write: false }).rc).toBe(31);
    expect(r.run({ op: 'dma_rw', iova: 9 * PAGE, write: false }).rc).toBe(-EINVAL);
    expect(pinsHeld(r.m)).toBe(2); // dma_rw pins nothing
    r.dev.teardown();
    expectReleased(r);
  });

  it('vfio_dma_rw: -EPERM writing a read-only mapping, -EFAULT when the page cannot be touched', () => {
    const r = rig(vfioMdev, { maps: { buf: 4, ro: { nrPages: 2, prot: PROT_READ } } });
    r.run(map(0, 0, 2, false));
    r.run({ ...map(4, 0, 2), vaddr: { map: 'ro', off: 0 } });
    expect(r.run({ op: 'dma_rw', iova: 0, write: true, value: 1 }).rc).toBe(-EPERM);
    expect(r.run({ op: 'dma_rw', iova: 4 * PAGE, write: true, value: 1 }).rc).toBe(-EFAULT);
    r.dev.teardown();
    expectReleased(r);
  });

  it('UNMAP_DMA calls dma_unmap; the driver unpins the whole range and the unmap completes', () => {
    const r = rig(vfioMdev);
    fill(r, 'buf', 8);
    r.run(map(0, 0, 8));
    r.run(pin(1, 3));
    r.run(pin(6, 2));
    expect(pinsHeld(r.m)).toBe(5);
    const res = r.run({ op: 'unmap_dma', iova: 0, size: 8 * PAGE });
    expect(res.rc).toBe(8 * PAGE);
    expect(res.violation).toBeUndefined();
    expect(r.traces.some((t) => /dma_unmap 0x0\+0x8000: unpinned 5/.test(t))).toBe(true);
    expect(r.yields).toContain('vfio-mdev:notify-dma-unmap');
    expect(pinsHeld(r.m)).toBe(0);
    expect(memlockCounters(r.m, r.mm).locked_vm).toBe(0);
    expectReleased(r);
  });
});

describe('vfio-mdev buggy variants', () => {
  const unmapWithPins = (bugs: string[]) => {
    const r = rig(vfioMdev, { bugs });
    fill(r, 'buf', 8);
    r.run(map(0, 0, 8));
    r.run(pin(0, 4));
    const res = r.run({ op: 'unmap_dma', iova: 0, size: 8 * PAGE });
    const calls = r.traces.filter((t) => t.includes('dma_unmap')).length;
    r.dev.teardown();
    expectReleased(r);
    return { res, calls };
  };

  it('unmap-ignores-length: pages after the first stay pinned; type1 BUGs after 10 retries (a violation)', () => {
    const ok = unmapWithPins([]);
    expect(ok.res.rc).toBe(8 * PAGE);
    expect(ok.res.violation).toBeUndefined();
    expect(ok.calls).toBe(1);
    const bad = unmapWithPins(['unmap-ignores-length']);
    expect(bad.res.rc).toBe(-EBUSY);
    expect(bad.res.violation).toMatch(/BUG_ON\(\+\+retries > 10\): 3 page\(s\)/);
    expect(bad.calls).toBe(11); // the first call sets dma_last, then 10 retries; the 11th retry is the BUG
  });

  it('callback-never-unpins: the same BUG; a single-page pin shows ignores-length is harmless there', () => {
    const bad = unmapWithPins(['callback-never-unpins']);
    expect(bad.res.violation).toMatch(/4 page\(s\)/);
    const r = rig(vfioMdev, { bugs: ['unmap-ignores-length'] });
    fill(r, 'buf', 2);
    r.run(map(0, 0, 2));
    r.run(pin(0, 1));
    expect(r.run({ op: 'unmap_dma', iova: 0, size: 2 * PAGE }).violation).toBeUndefined();
    expectReleased(r);
  });
});

describe('vfio-mdev generated ops', () => {
  it('random op sequences: pins pinnable, accounting matches, no violations, all released', () => {
    const shape = {
      maps: [
        { name: 'a', pages: 10 },
        { name: 'b', pages: 6 },
      ],
      maxPages: 6,
    };
    fc.assert(
      fc.property(
        fc.array(vfioMdev.arbitrary(fc, shape), { maxLength: 30 }).map((p) => linkProgram(vfioMdev, p)),
        (ops) => {
          const r = rig(vfioMdev, { maps: { a: 10, b: 6 } });
          for (const op of ops) {
            expect(r.run(op).violation).toBeUndefined();
            const { held, accounting } = r.dev.inspect();
            expect(checkHeld(r.m, held)).toEqual([]);
            expect(memlockCounters(r.m, r.mm).locked_vm).toBe(accounting.locked_vm);
            expect(pinsHeld(r.m)).toBe(held.filter((h) => !(r.m.flags[h.pfn]! & PG_zero)).length);
          }
          r.dev.teardown();
          expectReleased(r);
        },
      ),
      { numRuns: 40, seed: 11 },
    );
  });
});
