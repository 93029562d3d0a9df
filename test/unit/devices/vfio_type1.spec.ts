import * as fc from 'fast-check';
import { linkProgram } from '../../../devices/device';
import { zoneInfo } from '../../../mm/vmstat';
import { vfioType1 } from '../../../devices/vfio_type1';
import { DMA_ENTRY_LIMIT, IOMMU_ADDR_WIDTH, MSI_RESV_START, MSI_RESV_END } from '../../../devices/vfio_container';

const IOVA_APERTURE_END = 2 ** IOMMU_ADDR_WIDTH;
import { memlockCounters } from '../../../devices/common';
import { rig, fill, pfnOf, checkHeld, expectReleased, pinsHeld, PAGE } from './helpers';
import { getUser, putUser } from '../../../mm/memory';
import { doMadvise, MADV_DONTNEED, PROT_READ } from '../../../mm/mmap';
import { ZONE_MOVABLE, ZONE_NORMAL } from '../../../mm/mmzone';
import { EINVAL, EEXIST, ENOSPC, ENOMEM, EFAULT } from '../../../mm/errno';
import type { DeviceOp } from '../../../devices/device';
import { PG_dirty } from '../../../mm/memmap';

const map = (iova: number, off: number, pages: number, extra: Partial<DeviceOp> = {}): DeviceOp => ({
  op: 'map_dma',
  iova: iova * PAGE,
  vaddr: { map: 'buf', off },
  size: pages * PAGE,
  read: true,
  write: true,
  ...extra,
});

describe('vfio-type1 MAP_DMA (vfio_dma_do_map, vfio_pin_map_dma)', () => {
  it('pins the whole range long-term out of ZONE_MOVABLE, maps it, and charges locked_vm', () => {
    const r = rig(vfioType1);
    fill(r, 'buf', 8);
    expect(pfnOf(r.m, r.mm, r.maps.buf!)).toBeGreaterThan(0);
    expect(r.m.pageZonenum(pfnOf(r.m, r.mm, r.maps.buf!))).toBe(ZONE_MOVABLE);
    const res = r.run(map(0, 0, 8));
    expect(res.rc).toBe(0);
    const held = r.dev.inspect().held;
    expect(held.map((h) => h.iova)).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    expect(checkHeld(r.m, held)).toEqual([]);
    for (const h of held) {
      expect(r.m.pageZonenum(h.pfn)).toBe(ZONE_NORMAL);
      expect(h.pfn).toBe(pfnOf(r.m, r.mm, h.vpn)); // migrated before the pin: the process maps the pinned page
    }
    expect(memlockCounters(r.m, r.mm).locked_vm).toBe(8);
    expect(r.dev.inspect().accounting.locked_vm).toBe(8);
    expect(pinsHeld(r.m)).toBe(8);
    expect(r.yields).toContain('vfio-type1:pinned-not-mapped');
    expect(r.dev.teardown().rc).toBe(8);
    expectReleased(r);
  });

  it('DMA written by the device is what the process reads at that address, and the reverse', () => {
    const r = rig(vfioType1);
    fill(r, 'buf', 4);
    expect(r.run(map(16, 0, 4)).rc).toBe(0);
    for (let i = 0; i < 4; i++)
      expect(r.run({ op: 'dma_write', iova: (16 + i) * PAGE + 8, value: 0xabc0 + i }).rc).toBe(0);
    for (let i = 0; i < 4; i++) expect(getUser(r.m, r.mm, r.maps.buf! + i)).toBe(0xabc0 + i);
    expect(putUser(r.m, r.mm, r.maps.buf! + 2, 77)).toBe(77);
    const rd = r.run({ op: 'dma_read', iova: 18 * PAGE });
    expect(rd.rc).toBe(77);
    expect(rd.violation).toBeUndefined();
    r.dev.teardown();
    expectReleased(r);
  });

  it('the device keeps the pfn captured at map time when the process remaps the address', () => {
    const r = rig(vfioType1);
    fill(r, 'buf', 2);
    expect(r.run(map(0, 0, 2)).rc).toBe(0);
    const pinned = r.dev.inspect().held[0]!.pfn;
    expect(doMadvise(r.m, r.mm, r.maps.buf!, 1, MADV_DONTNEED)).toBe(0); // the process drops its page
    expect(putUser(r.m, r.mm, r.maps.buf!, 5)).toBe(5); // and faults a new one
    expect(pfnOf(r.m, r.mm, r.maps.buf!)).not.toBe(pinned);
    expect(r.run({ op: 'dma_write', iova: 0, value: 99 }).violation).toBeUndefined();
    expect(r.m.content[pinned]).toBe(99); // DMA hits the page pinned at map time ...
    expect(getUser(r.m, r.mm, r.maps.buf!)).toBe(5); // ... not the one the vaddr maps now
    expect(checkHeld(r.m, r.dev.inspect().held)).toEqual([]);
    r.dev.teardown();
    expectReleased(r);
  });

  it('argument errors: -EINVAL for size 0, misalignment, no READ/WRITE, u64 overflow, outside the IOVA list', () => {
    const r = rig(vfioType1);
    expect(r.run(map(0, 0, 0)).rc).toBe(-EINVAL);
    expect(r.run({ ...map(0, 0, 1), iova: 100 }).rc).toBe(-EINVAL);
    expect(r.run({ ...map(0, 0, 1), size: PAGE + 1 }).rc).toBe(-EINVAL);
    expect(r.run(map(0, 0, 1, { vaddr: { map: 'buf', off: 0, byte: 16 } })).rc).toBe(-EINVAL);
    expect(r.run(map(0, 0, 1, { read: false, write: false })).rc).toBe(-EINVAL);
    expect(r.run({ ...map(0, 0, 1), iova: 2 ** 64 }).rc).toBe(-EINVAL);
    expect(r.run({ ...map(0, 0, 1), iova: -PAGE }).rc).toBe(-EINVAL);
    expect(r.run({ ...map(0, 0, 1), iova: IOVA_APERTURE_END - PAGE }).rc).toBe(0);
    expect(r.run({ ...map(0, 1, 2), iova: IOVA_APERTURE_END - PAGE }).rc).toBe(-EEXIST);
    expect(r.run({ ...map(0, 1, 2), iova: IOVA_APERTURE_END }).rc).toBe(-EINVAL);
    expect(r.run({ op: 'no_such_ioctl' }).rc).toBe(-EINVAL);
    r.dev.teardown();
    expectReleased(r);
  });

  it('vfio_iommu_iova_dma_valid(): the MSI window and past the 39-bit aperture are -EINVAL; GET_INFO reports the ranges', () => {
    const r = rig(vfioType1);
    const mb = (iova: number, pages: number) => ({ ...map(0, 0, pages), iova });
    expect(r.run(mb(MSI_RESV_START, 1)).rc).toBe(-EINVAL); // inside the reserved region
    expect(r.run(mb(MSI_RESV_START + 0x80000, 1)).rc).toBe(-EINVAL);
    expect(r.run(mb(MSI_RESV_START - PAGE, 2)).rc).toBe(-EINVAL); // straddles its start
    expect(r.run(mb(MSI_RESV_END + 1 - PAGE, 2)).rc).toBe(-EINVAL); // straddles its end
    expect(r.run(mb(MSI_RESV_START - PAGE, 1)).rc).toBe(0); // just below
    expect(r.run({ ...map(0, 1, 1), iova: MSI_RESV_END + 1 }).rc).toBe(0); // just above
    expect(r.run({ ...map(0, 2, 2), iova: IOVA_APERTURE_END - PAGE }).rc).toBe(-EINVAL); // past the aperture
    expect(r.run({ op: 'get_info' }).detail).toBe(
      'iova ranges: 0x0-0xfedfffff, 0xfef00000-0x7fffffffff; dma_avail 65533',
    );
    // UNMAP_ALL takes the two mappings beside the window, and nothing was ever mapped inside it
    expect(r.run({ op: 'unmap_dma', all: true, iova: 0, size: 0 }).rc).toBe(2 * PAGE);
    r.dev.teardown();
    expectReleased(r);
  });

  it('parameters: addr_width sets the aperture, dma_entry_limit the mapping count (-ENOSPC past it)', () => {
    const r = rig(vfioType1, { params: { addr_width: 48, dma_entry_limit: 2 } });
    expect(r.run({ ...map(0, 0, 1), iova: 2 ** 39 }).rc).toBe(0); // inside a 48-bit aperture
    expect(r.run(map(0, 1, 1)).rc).toBe(0);
    expect(r.run(map(4, 2, 1)).rc).toBe(-ENOSPC);
    expect(r.run({ op: 'get_info' }).detail).toBe(
      'iova ranges: 0x0-0xfedfffff, 0xfef00000-0xffffffffffff; dma_avail 0',
    );
    expect(r.run({ op: 'unmap_dma', iova: 0, size: PAGE }).rc).toBe(PAGE);
    expect(r.run(map(4, 2, 1)).rc).toBe(0); // the entry came back
    r.dev.teardown();
    expectReleased(r);
  });

  it('-EEXIST on any overlap with an existing mapping', () => {
    const r = rig(vfioType1);
    expect(r.run(map(4, 0, 4)).rc).toBe(0);
    expect(r.run(map(4, 4, 1)).rc).toBe(-EEXIST);
    expect(r.run(map(7, 4, 2)).rc).toBe(-EEXIST);
    expect(r.run(map(2, 4, 3)).rc).toBe(-EEXIST);
    expect(r.run(map(0, 4, 16)).rc).toBe(-EEXIST);
    expect(r.run(map(8, 4, 2)).rc).toBe(0); // adjacent is fine
    expect(r.run(map(2, 8, 2)).rc).toBe(0);
    expect(r.dev.inspect().accounting.dmas).toBe(3);
    r.dev.teardown();
    expectReleased(r);
  });

  it('over RLIMIT_MEMLOCK: -ENOMEM and nothing stays pinned or charged (all-or-nothing); CAP_IPC_LOCK maps anyway', () => {
    const r = rig(vfioType1, { rlimitMemlockPages: 6 });
    fill(r, 'buf', 10);
    expect(r.run(map(0, 0, 4)).rc).toBe(0);
    const res = r.run(map(8, 4, 4));
    expect(res.rc).toBe(-ENOMEM);
    expect(r.traces.some((t) => t.includes('RLIMIT_MEMLOCK (24576) exceeded'))).toBe(true);
    expect(memlockCounters(r.m, r.mm).locked_vm).toBe(4);
    expect(pinsHeld(r.m)).toBe(4);
    expect(r.dev.inspect().held.length).toBe(4);
    expect(r.run(map(8, 4, 2)).rc).toBe(0); // exactly at the limit
    r.dev.teardown();
    expectReleased(r);

    const cap = rig(vfioType1, { rlimitMemlockPages: 2, capIpcLock: true });
    expect(cap.run(map(0, 0, 8)).rc).toBe(0);
    expect(memlockCounters(cap.m, cap.mm).locked_vm).toBe(8); // charged though over the limit
    cap.dev.teardown();
    expectReleased(cap);
  });

  it('-EFAULT when part of the range is not mapped or not writable, with nothing left pinned', () => {
    const r = rig(vfioType1, { maps: { buf: 4, ro: { nrPages: 4, prot: PROT_READ } } });
    fill(r, 'buf', 4);
    expect(r.run(map(0, 2, 4)).rc).toBe(-EFAULT); // pages 4, 5 lie past the mapping
    expect(pinsHeld(r.m)).toBe(0);
    expect(memlockCounters(r.m, r.mm).locked_vm).toBe(0);
    expect(r.run({ ...map(0, 0, 2), vaddr: { map: 'ro', off: 0 } }).rc).toBe(-EFAULT); // FOLL_WRITE on a read-only VMA
    expect(r.run({ ...map(0, 0, 2), vaddr: { map: 'ro', off: 0 }, write: false }).rc).toBe(0); // device-read-only is fine
    expect(r.run({ op: 'dma_write', iova: 0, value: 1 }).rc).toBe(-EFAULT); // IOMMU: no write permission
    expect(r.run({ op: 'dma_read', iova: 0 }).rc).toBe(0);
    r.dev.teardown();
    expectReleased(r);
  });

  it("the IOMMU's page tables are kernel memory: a page per level as the mapping needs it, freed when unmapped whole", () => {
    const r = rig(vfioType1, { cmd: 'mem=8M movablecore=4M sysctl.vm.min_free_kbytes=16', maps: { buf: 1024 } });
    fill(r, 'buf', 1024);
    const kernelFree = () => {
      const z = zoneInfo(r.m, ZONE_NORMAL);
      return z.free + z.pcp_count;
    };
    // one 4K page at IOVA 0: the root, a second-level and a last-level table (pfn_to_dma_pte())
    expect(r.run({ op: 'map_dma', iova: 0, vaddr: r.va('buf'), size: PAGE, read: true, write: true }).rc).toBe(0);
    expect(r.dev.inspect().accounting.iommu_pt_pages).toBe(3);
    // 2 MiB more in the next two 2 MiB blocks of IOVA: at most two more last-level tables (none for a superpage)
    expect(r.run({ op: 'map_dma', iova: 4 << 20, vaddr: r.va('buf', 1), size: 512 * PAGE, read: true }).rc).toBe(0);
    const tables = r.dev.inspect().accounting.iommu_pt_pages!;
    expect(tables).toBeGreaterThanOrEqual(3);
    expect(tables).toBeLessThanOrEqual(5);
    // a page of IOVA unmapped: its table covers 2 MiB, so it stays until the domain goes
    expect(r.run({ op: 'unmap_dma', iova: 0, size: PAGE }).rc).toBe(PAGE);
    expect(r.dev.inspect().accounting.iommu_pt_pages).toBe(tables);
    // the container goes: the pages stay mapped by the process, every table page goes back (domain_exit())
    const before = kernelFree();
    r.dev.teardown();
    expect(r.dev.inspect().accounting.iommu_pt_pages).toBe(0);
    expect(kernelFree() - before).toBe(tables);
    expectReleased(r);
  });

  it('-ENOSPC once dma_entry_limit mappings exist', () => {
    // 65535 one-page mappings span 256 MiB of IOVA: 128 last-level IOMMU tables, a machine big enough for them
    const r = rig(vfioType1, { rlimitMemlockPages: -1, cmd: 'mem=4M movablecore=1M sysctl.vm.min_free_kbytes=16' });
    fill(r, 'buf', 1);
    for (let i = 0; i < DMA_ENTRY_LIMIT; i++) {
      const rc = r.dev.step({
        op: 'map_dma',
        iova: i * PAGE,
        vaddr: r.va('buf'),
        size: PAGE,
        read: true,
        write: true,
      }).rc;
      if (rc !== 0) throw new Error(`map ${i}: ${rc}`);
    }
    expect(
      r.dev.step({ op: 'map_dma', iova: DMA_ENTRY_LIMIT * PAGE, vaddr: r.va('buf'), size: PAGE, read: true }).rc,
    ).toBe(-ENOSPC);
    expect(r.run({ op: 'unmap_dma', iova: 0, size: PAGE }).rc).toBe(PAGE);
    expect(
      r.dev.step({ op: 'map_dma', iova: DMA_ENTRY_LIMIT * PAGE, vaddr: r.va('buf'), size: PAGE, read: true }).rc,
    ).toBe(0);
    expect(memlockCounters(r.m, r.mm).locked_vm).toBe(DMA_ENTRY_LIMIT); // the same page is charged once per mapping
    r.dev.teardown();
    expectReleased(r);
  });

  it('pins in physically contiguous runs across several 512-page batches', () => {
    const r = rig(vfioType1, {
      cmd: 'mem=16M movablecore=4M sysctl.vm.min_free_kbytes=64',
      maps: { buf: 1100 },
      rlimitMemlockPages: -1,
    });
    const res = r.run(map(0, 0, 1100));
    expect(res.rc).toBe(0);
    const runs = Number(/(\d+) contiguous run/.exec(res.detail!)![1]);
    const held = r.dev.inspect().held;
    expect(held.length).toBe(1100);
    let breaks = 1;
    for (let i = 1; i < held.length; i++) if (held[i]!.pfn !== held[i - 1]!.pfn + 1) breaks++;
    expect(runs).toBeGreaterThanOrEqual(breaks); // each run is contiguous (a run may also end at a batch edge)
    expect(runs).toBeLessThanOrEqual(breaks + 2);
    expect(checkHeld(r.m, held)).toEqual([]);
    r.dev.teardown();
    expectReleased(r);
  });
});

describe('vfio-type1 UNMAP_DMA (vfio_dma_do_unmap)', () => {
  it('unmaps whole mappings, returns the bytes, refuses to bisect, and succeeds with 0 on nothing', () => {
    const r = rig(vfioType1);
    expect(r.run(map(0, 0, 4)).rc).toBe(0);
    expect(r.run(map(4, 4, 2)).rc).toBe(0);
    expect(r.run(map(10, 6, 2)).rc).toBe(0);
    expect(r.run({ op: 'unmap_dma', iova: 1 * PAGE, size: 3 * PAGE }).rc).toBe(-EINVAL); // starts inside
    expect(r.run({ op: 'unmap_dma', iova: 0, size: 5 * PAGE }).rc).toBe(-EINVAL); // ends inside
    expect(r.run({ op: 'unmap_dma', iova: 0, size: 0 }).rc).toBe(-EINVAL);
    expect(r.run({ op: 'unmap_dma', iova: 12, size: PAGE }).rc).toBe(-EINVAL);
    expect(r.run({ op: 'unmap_dma', iova: 0, size: PAGE + 1 }).rc).toBe(-EINVAL);
    expect(r.run({ op: 'unmap_dma', all: true, iova: PAGE, size: 0 }).rc).toBe(-EINVAL);
    expect(r.run({ op: 'unmap_dma', iova: 20 * PAGE, size: 4 * PAGE }).rc).toBe(0); // nothing there
    expect(r.run({ op: 'unmap_dma', iova: 0, size: 6 * PAGE }).rc).toBe(6 * PAGE); // two mappings at once
    expect(memlockCounters(r.m, r.mm).locked_vm).toBe(2);
    expect(r.run({ op: 'dma_write', iova: 0, value: 1 }).rc).toBe(-EFAULT); // IOMMU fault now
    expect(r.run({ op: 'unmap_dma', all: true, iova: 0, size: 0 }).rc).toBe(2 * PAGE);
    expect(pinsHeld(r.m)).toBe(0);
    expect(r.yields).toContain('vfio-type1:unmapped-not-unpinned');
    r.dev.teardown();
    expectReleased(r);
  });

  it('unpins dirty: pages the device could write are marked dirty at unmap', () => {
    const r = rig(vfioType1);
    fill(r, 'buf', 2);
    expect(r.run(map(0, 0, 1)).rc).toBe(0);
    expect(r.run(map(1, 1, 1, { write: false })).rc).toBe(0);
    const [w, ro] = r.dev.inspect().held.map((h) => h.pfn);
    r.m.flags[w!] = r.m.flags[w!]! & ~PG_dirty;
    r.m.flags[ro!] = r.m.flags[ro!]! & ~PG_dirty;
    r.run({ op: 'unmap_dma', all: true, iova: 0, size: 0 });
    expect(r.m.flags[w!]! & PG_dirty).toBeTruthy();
    expect(r.m.flags[ro!]! & PG_dirty).toBeFalsy();
    expectReleased(r);
  });
});

describe('vfio-type1 buggy variants', () => {
  it('no-longterm: the pins stay in ZONE_MOVABLE; the pinnable check catches it', () => {
    const held = (bugs: string[]) => {
      const r = rig(vfioType1, { bugs });
      fill(r, 'buf', 4);
      expect(r.run(map(0, 0, 4)).rc).toBe(0);
      const errs = checkHeld(r.m, r.dev.inspect().held);
      r.dev.teardown();
      expectReleased(r);
      return errs;
    };
    expect(held([])).toEqual([]);
    const errs = held(['no-longterm']);
    expect(errs.length).toBe(4);
    expect(errs[0]).toMatch(/not pinnable/);
  });

  it('dma-after-unmap: the device DMAs through a stale IOTLB entry into an unpinned page; the DMA check catches it', () => {
    const afterUnmap = (bugs: string[]) => {
      const r = rig(vfioType1, { bugs });
      fill(r, 'buf', 2);
      expect(r.run(map(0, 0, 2)).rc).toBe(0);
      expect(r.run({ op: 'dma_write', iova: 0, value: 1 }).violation).toBeUndefined(); // the IOTLB caches iova 0
      expect(r.run({ op: 'unmap_dma', iova: 0, size: 2 * PAGE }).rc).toBe(2 * PAGE);
      const res = r.run({ op: 'dma_write', iova: 0, value: 666 });
      const seen = getUser(r.m, r.mm, r.maps.buf!);
      r.dev.teardown();
      expectReleased(r);
      return { res, seen };
    };
    const ok = afterUnmap([]);
    expect(ok.res.rc).toBe(-EFAULT);
    expect(ok.res.violation).toBeUndefined();
    expect(ok.seen).toBe(1);
    const bad = afterUnmap(['dma-after-unmap']);
    expect(bad.res.violation).toMatch(/holds no pin/);
    expect(bad.seen).toBe(666); // the process's memory changed under it after the unmap
  });
});

describe('vfio-type1 generated ops', () => {
  it('random op sequences keep every promise: pinnable pins, no violations, everything released at teardown', () => {
    const shape = {
      maps: [
        { name: 'a', pages: 12 },
        { name: 'b', pages: 6 },
      ],
      maxPages: 8,
    };
    fc.assert(
      fc.property(
        fc.array(vfioType1.arbitrary(fc, shape), { maxLength: 25 }).map((p) => linkProgram(vfioType1, p)),
        (ops) => {
          const r = rig(vfioType1, { maps: { a: 12, b: 6 } });
          for (const op of ops) {
            const res = r.run(op);
            expect(res.violation).toBeUndefined();
            expect(checkHeld(r.m, r.dev.inspect().held)).toEqual([]);
            expect(memlockCounters(r.m, r.mm).locked_vm).toBe(r.dev.inspect().accounting.locked_vm);
            expect(memlockCounters(r.m, r.mm).locked_vm).toBeLessThanOrEqual(2048);
          }
          r.dev.teardown();
          expectReleased(r);
        },
      ),
      { numRuns: 40, seed: 7 },
    );
  });
});
