import * as fc from 'fast-check';
import { ioUringFixed, IORING_MAX_REG_BUFFERS } from '../../../devices/io_uring_fixed';
import { memlockCounters } from '../../../devices/common';
import { rig, fill, pfnOf, checkHeld, expectReleased, pinsHeld, PAGE, RW, CMD } from './helpers';
import { getUser, putUser } from '../../../mm/memory';
import { PROT_READ, bprmMmInit, fileInodeCreate, fileInodePut } from '../../../mm/mmap';
import { AS_SHMEM, AS_WRITEBACK } from '../../../mm/filemap';
import { boot } from '../../helpers';
import { ZONE_NORMAL } from '../../../mm/mmzone';
import { PG_head } from '../../../mm/memmap';
import { zoneInfo, vmstatSnapshot } from '../../../mm/vmstat';
import { allocPages, freePages, NO_PAGE } from '../../../mm/page_alloc';
import { GFP_KERNEL, __GFP_MEMALLOC, __GFP_NOWARN, __GFP_NORETRY } from '../../../mm/gfp';
import { EBUSY, EINVAL, EFAULT, ENOMEM, ENXIO, EOPNOTSUPP } from '../../../mm/errno';
import type { DeviceOp } from '../../../devices/device';
import { parseVariant, setVariant } from '../../../mm/variants';
import { folioPincount } from '../../../mm/memmap';

const iov = (map: string, off: number, pages: number, byte = 0) => ({
  base: { map, off, byte },
  len: pages * PAGE - byte,
});
const register = (...iovecs: unknown[]): DeviceOp => ({ op: 'register', iovecs });

describe('io_uring-fixed IORING_REGISTER_BUFFERS', () => {
  it('pins every buffer long-term out of ZONE_MOVABLE, charging user locked_vm and pinned_vm', () => {
    const r = rig(ioUringFixed, { maps: { buf: 8, b2: 4 } });
    fill(r, 'buf', 8);
    const res = r.run(register(iov('buf', 0, 5), { base: 0, len: 0 }, iov('b2', 1, 2)));
    expect(res.rc).toBe(0);
    expect(res.detail).toBe('3 buffer(s), 7 page(s) pinned, 7 charged');
    const held = r.dev.inspect().held;
    expect(held.length).toBe(7);
    expect(checkHeld(r.m, held)).toEqual([]);
    for (const h of held) {
      expect(r.m.pageZonenum(h.pfn)).toBe(ZONE_NORMAL);
      expect(pfnOf(r.m, r.mm, h.vpn)).toBe(h.pfn);
    }
    expect(memlockCounters(r.m, r.mm)).toEqual({ locked_vm: 0, pinned_vm: 7, user_locked_vm: 7 });
    expect(r.yields).toContain('io_uring-fixed:pinned-not-accounted');
    expect(r.run({ op: 'unregister' }).rc).toBe(0);
    expectReleased(r);
  });

  it("holds each buffer's io_mapped_ubuf in the kernel zones (kvmalloc of 32 + 16 bytes a bvec); the OOM killer when it cannot be had", () => {
    const r = rig(ioUringFixed, { cmd: 'mem=8M movablecore=4M sysctl.vm.min_free_kbytes=16', maps: { buf: 600 } });
    fill(r, 'buf', 600);
    const normal = () => {
      const z = zoneInfo(r.m, ZONE_NORMAL);
      return z.free + z.pcp_count;
    };
    const free0 = normal();
    expect(r.run(register(iov('buf', 0, 600))).rc).toBe(0);
    // 600 pages migrated in, and 9632 bytes of io_mapped_ubuf: kmalloc_large, order 2
    expect(free0 - normal()).toBe(600 + 4);
    expect(r.run({ op: 'unregister' }).rc).toBe(0);
    expect(free0 - normal()).toBe(600); // the buffer's pages stay where the pin put them; the ubuf is freed
    // with the kernel zone exhausted the fallback's GFP_KERNEL vmalloc() enters the OOM killer rather than
    // failing: the registering process is the victim, and its reserves (ALLOC_OOM) get the buffer through
    const taken: number[] = [];
    for (;;) {
      const pfn = allocPages(r.m, GFP_KERNEL | __GFP_MEMALLOC | __GFP_NOWARN | __GFP_NORETRY, 0);
      if (pfn === NO_PAGE) break;
      taken.push(pfn);
    }
    expect(normal()).toBe(0);
    expect(r.run(register(iov('buf', 0, 600))).rc).toBe(0);
    expect(vmstatSnapshot(r.m).oom_kill).toBe(1);
    for (const p of taken) freePages(r.m, p, 0);
    expect(r.run({ op: 'unregister' }).rc).toBe(0);
    expectReleased(r);
  });

  it('errnos: -EBUSY registered twice, -EINVAL 0 or too many, -EFAULT bad iovecs, read-only or partial pins', () => {
    const r = rig(ioUringFixed, { maps: { buf: 8, ro: { nrPages: 2, prot: PROT_READ } } });
    expect(r.run(register()).rc).toBe(-EINVAL);
    expect(r.run({ op: 'register', iovecs: new Array(IORING_MAX_REG_BUFFERS + 1).fill({ base: 0, len: 0 }) }).rc).toBe(
      -EINVAL,
    );
    expect(r.run(register({ base: 0, len: PAGE })).rc).toBe(-EFAULT); // NULL base with a length
    expect(r.run(register({ ...iov('buf', 0, 1), len: 0 })).rc).toBe(-EFAULT);
    expect(r.run(register({ ...iov('buf', 0, 1), len: 2 ** 30 + 1 })).rc).toBe(-EFAULT);
    expect(r.run(register(iov('buf', 0, 2), iov('ro', 0, 1))).rc).toBe(-EFAULT); // FOLL_WRITE: always
    expect(r.run(register(iov('buf', 6, 3))).rc).toBe(-EFAULT); // runs past the mapping: partial pin
    expect(pinsHeld(r.m)).toBe(0);
    expect(memlockCounters(r.m, r.mm)).toEqual({ locked_vm: 0, pinned_vm: 0, user_locked_vm: 0 });
    expect(r.run({ op: 'unregister' }).rc).toBe(-ENXIO);
    expect(r.run(register(iov('buf', 0, 2))).rc).toBe(0);
    expect(r.run(register(iov('buf', 2, 2))).rc).toBe(-EBUSY);
    r.dev.teardown();
    expectReleased(r);
  });

  it('over RLIMIT_MEMLOCK: -ENOMEM, all buffers dropped; CAP_IPC_LOCK charges only pinned_vm', () => {
    const r = rig(ioUringFixed, { rlimitMemlockPages: 4 });
    expect(r.run(register(iov('buf', 0, 3), iov('buf', 4, 2))).rc).toBe(-ENOMEM);
    expect(pinsHeld(r.m)).toBe(0);
    expect(memlockCounters(r.m, r.mm)).toEqual({ locked_vm: 0, pinned_vm: 0, user_locked_vm: 0 });
    expect(r.run(register(iov('buf', 0, 3), iov('buf', 4, 1))).rc).toBe(0);
    r.dev.teardown();
    expectReleased(r);

    const cap = rig(ioUringFixed, { rlimitMemlockPages: 0, capIpcLock: true });
    expect(cap.run(register(iov('buf', 0, 6))).rc).toBe(0);
    expect(memlockCounters(cap.m, cap.mm)).toEqual({ locked_vm: 0, pinned_vm: 6, user_locked_vm: 0 });
    cap.dev.teardown();
    expectReleased(cap);
  });

  it('hugetlb buffers: coalesced to one pin per folio, each huge page charged once by its full size', () => {
    const r = rig(ioUringFixed, {
      cmd: `${CMD} hugepagesz=2M hugepages=3`,
      maps: { huge: { nrPages: 16, prot: RW, hugetlb: true } },
    });
    const hp = r.m.ptrsPerTable; // pages per huge page on this geometry
    for (let i = 0; i < 2 * hp; i++) putUser(r.m, r.mm, r.maps.huge! + i, 500 + i);
    // buffer 0: the whole first huge page and part of the second; buffer 1: inside the second again
    const res = r.run(register(iov('huge', 0, hp + 2), iov('huge', hp + 3, 2, 40)));
    expect(res.rc).toBe(0);
    expect(res.detail).toBe(`2 buffer(s), ${hp + 4} page(s) pinned, ${2 * hp} charged`);
    const held = r.dev.inspect().held;
    expect(checkHeld(r.m, held)).toEqual([]);
    expect(r.m.flags[r.m.compoundHead(held[0]!.pfn)]! & PG_head).toBeTruthy();
    expect(folioPincount(r.m, r.m.compoundHead(held[0]!.pfn))).toBe(1); // coalesced: one pin for the folio
    expect(memlockCounters(r.m, r.mm).user_locked_vm).toBe(2 * hp);
    // I/O through the coalesced buffer lands where the process looks
    expect(r.run({ op: 'read_fixed', buf: 0, off: (hp + 1) * PAGE + 8, value: 0xcafe }).violation).toBeUndefined();
    expect(getUser(r.m, r.mm, r.maps.huge! + hp + 1)).toBe(0xcafe);
    expect(r.run({ op: 'write_fixed', buf: 1, addr: r.va('huge', hp + 4) }).rc).toBe(500 + hp + 4);
    expect(r.run({ op: 'write_fixed', buf: 1, addr: r.va('huge', hp + 3) + 36 }).rc).toBe(-EFAULT); // before ubuf
    r.run({ op: 'unregister' });
    expectReleased(r);
  });

  it('6.1 has no io_try_coalesce_buffer(): one bvec entry and one pin per 4 KiB page of a huge page', () => {
    const prev = setVariant(parseVariant('v6.1'));
    try {
      // no ZONE_MOVABLE: 6.1 refuses a long-term pin of a hugetlb page there (-ENOMEM, follow_hugetlb_page())
      const r = rig(ioUringFixed, {
        cmd: 'mem=1M sysctl.vm.min_free_kbytes=16 hugepagesz=2M hugepages=3',
        maps: { huge: { nrPages: 16, prot: RW, hugetlb: true } },
      });
      const hp = r.m.ptrsPerTable;
      for (let i = 0; i < 2 * hp; i++) putUser(r.m, r.mm, r.maps.huge! + i, 500 + i);
      const res = r.run(register(iov('huge', 0, hp + 2), iov('huge', hp + 3, 2, 40)));
      expect(res.detail).toBe(`2 buffer(s), ${hp + 4} page(s) pinned, ${2 * hp} charged`);
      const held = r.dev.inspect().held;
      expect(held.length).toBe(hp + 4); // v6.12 holds one entry per folio (3)
      expect(folioPincount(r.m, r.m.compoundHead(held[0]!.pfn))).toBe(hp); // one pin per page
      expect(folioPincount(r.m, r.m.compoundHead(held[hp]!.pfn))).toBe(4);
      expect(r.run({ op: 'read_fixed', buf: 0, off: (hp + 1) * PAGE + 8, value: 0xcafe }).violation).toBeUndefined();
      expect(getUser(r.m, r.mm, r.maps.huge! + hp + 1)).toBe(0xcafe);
      expect(r.run({ op: 'write_fixed', buf: 1, addr: r.va('huge', hp + 4) }).rc).toBe(500 + hp + 4);
      r.run({ op: 'unregister' });
      expectReleased(r);
    } finally {
      setVariant(prev);
    }
  });

  it('read_fixed / write_fixed move data through the pinned pages; -EFAULT outside [ubuf, ubuf + len) or on a sparse slot', () => {
    const r = rig(ioUringFixed);
    fill(r, 'buf', 4);
    expect(r.run({ op: 'read_fixed', buf: 0, off: 0, value: 1 }).rc).toBe(-EFAULT); // nothing registered
    r.run(register(iov('buf', 1, 2, 100), { base: 0, len: 0 }));
    expect(r.run({ op: 'read_fixed', buf: 0, off: PAGE, value: 0x4242 }).rc).toBe(0);
    expect(getUser(r.m, r.mm, r.maps.buf! + 2)).toBe(0x4242);
    putUser(r.m, r.mm, r.maps.buf! + 1, 88);
    expect(r.run({ op: 'write_fixed', buf: 0, off: 0 }).rc).toBe(88);
    expect(r.run({ op: 'write_fixed', buf: 0, addr: r.va('buf', 1) + 96 }).rc).toBe(-EFAULT);
    expect(r.run({ op: 'write_fixed', buf: 0, off: 2 * PAGE - 100 - 3 }).rc).toBe(-EFAULT); // word crosses the end
    expect(r.run({ op: 'write_fixed', buf: 0, off: 2 * PAGE - 100 - 4 }).rc).toBe(0x4242); // the last word: page 2
    expect(r.run({ op: 'write_fixed', buf: 1, off: 0 }).rc).toBe(-EFAULT); // sparse
    expect(r.run({ op: 'write_fixed', buf: 2, off: 0 }).rc).toBe(-EFAULT); // no such index
    r.dev.teardown();
    expectReleased(r);
  });
});

describe('io_uring-fixed buggy variant', () => {
  it('no-longterm: registered buffers stay in ZONE_MOVABLE; the pinnable check catches it', () => {
    const errs = (bugs: string[]) => {
      const r = rig(ioUringFixed, { bugs });
      fill(r, 'buf', 4);
      expect(r.run(register(iov('buf', 0, 4))).rc).toBe(0);
      const e = checkHeld(r.m, r.dev.inspect().held);
      r.dev.teardown();
      expectReleased(r);
      return e;
    };
    expect(errs([])).toEqual([]);
    expect(errs(['no-longterm']).length).toBe(4);
  });
});

describe('io_uring-fixed generated ops', () => {
  it('random op sequences: pinnable pins, accounting matches, no violations, all released', () => {
    const shape = {
      maps: [
        { name: 'a', pages: 10 },
        { name: 'b', pages: 6 },
      ],
      maxPages: 6,
    };
    fc.assert(
      fc.property(fc.array(ioUringFixed.arbitrary(fc, shape), { maxLength: 25 }), (ops) => {
        const r = rig(ioUringFixed, { maps: { a: 10, b: 6 } });
        for (const op of ops) {
          expect(r.run(op).violation).toBeUndefined();
          const { held, accounting } = r.dev.inspect();
          expect(checkHeld(r.m, held)).toEqual([]);
          const c = memlockCounters(r.m, r.mm);
          expect(c.user_locked_vm).toBe(accounting.user_locked_vm);
          expect(c.pinned_vm).toBe(accounting.pinned_vm);
        }
        r.dev.teardown();
        expectReleased(r);
      }),
      { numRuns: 40, seed: 9 },
    );
  });
});

describe('io_uring-fixed and file mappings (io_pin_pages())', () => {
  /** A rig whose maps are a file with writeback, MAP_SHARED and MAP_PRIVATE, and a memfd, MAP_SHARED. */
  const fileRig = () => {
    const m = boot(CMD, 'mini');
    const mm = bprmMmInit(m);
    const file = fileInodeCreate(m, 4, AS_WRITEBACK);
    const memfd = fileInodeCreate(m, 2, AS_SHMEM);
    const r = rig(ioUringFixed, {
      m,
      mm,
      maps: {
        fshared: { nrPages: 2, prot: RW, shared: true, inode: file },
        fprivate: { nrPages: 2, prot: RW, inode: file },
        memfd: { nrPages: 2, prot: RW, shared: true, inode: memfd },
      },
    });
    fileInodePut(m, file);
    fileInodePut(m, memfd);
    for (const map of ['fshared', 'fprivate', 'memfd']) fill(r, map, 2);
    return r;
  };

  it.each([
    // 6.12: GUP decides (a shared writable mapping of a file with writeback is -EFAULT); 6.1: io_pin_pages()
    // refuses every file-backed VMA that is not shmem or hugetlbfs with -EOPNOTSUPP
    ['v6.12', { fshared: -EFAULT, fprivate: 0, memfd: 0 }],
    ['v6.1+-R10', { fshared: -EOPNOTSUPP, fprivate: -EOPNOTSUPP, memfd: 0 }],
  ])('%s', (variant, want) => {
    const prev = setVariant(parseVariant(variant));
    try {
      const r = fileRig();
      for (const [map, rc] of Object.entries(want)) {
        expect([map, r.run(register(iov(map, 0, 2))).rc]).toEqual([map, rc]);
        if (rc === 0) expect(r.run({ op: 'unregister' }).rc).toBe(0);
        expect(pinsHeld(r.m)).toBe(0); // a refused register unpins what it pinned
      }
    } finally {
      setVariant(prev);
    }
  });
});
