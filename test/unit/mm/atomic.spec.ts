// mm/atomic.ts: UP (plain accesses, one thread) and SMP (Atomics) must give the same results, op by op
// and over a whole workload. UP runs first: smpEnable() is one-way, and a jest test file has its own
// module instances, so this file starts UP (main thread, no worker pool yet).
import {
  atomicFetchAdd,
  atomicFetchSub,
  atomicCmpxchg,
  atomicXchg,
  atomicRead,
  atomicSet,
  flagsFetchAnd,
  flagsFetchOr,
  flagsCmpxchg,
  flagsRead,
  mapcountFetchAdd,
  smpEnable,
  smpEnabled,
} from '../../../mm/atomic';
import { boot } from '../../helpers';
import { bprmMmInit, doMmap, doMunmap, dupMm, exitMmap, PROT_READ, PROT_WRITE } from '../../../mm/mmap';
import { putUser } from '../../../mm/memory';
import { pinUserPagesFast, unpinUserPages, FOLL_LONGTERM, FOLL_WRITE, newPinReport } from '../../../mm/gup';
import { stateStore } from '../../../mm/memory_hotplug';
import { setCurrent, newTask } from '../../../mm/sched';
import { vmstatSnapshot } from '../../../mm/vmstat';
import { ZONE_MOVABLE } from '../../../mm/mmzone';
import { pteMapInc } from '../../../mm/rmap';

/** Every op on fresh arrays, with values that wrap (int32 and uint32 edges): returns and final contents. */
function opTrace(): number[] {
  const a = new Int32Array(new SharedArrayBuffer(64));
  const f = new Uint32Array(new SharedArrayBuffer(64));
  const out: number[] = [];
  a[0] = 0x7fffffff;
  out.push(atomicFetchAdd(a, 0, 1), a[0]!); // wraps to -2^31
  a[1] = -0x80000000;
  out.push(atomicFetchSub(a, 1, 1), a[1]!);
  out.push(atomicCmpxchg(a, 2, 0, 1), atomicCmpxchg(a, 2, 0, 7), a[2]!);
  out.push(atomicCmpxchg(a, 3, 0, -1), atomicCmpxchg(a, 3, -1, 5), a[3]!);
  out.push(atomicXchg(a, 4, 2), atomicXchg(a, 4, 0), a[4]!);
  out.push(atomicSet(a, 5, -3), atomicRead(a, 5));
  f[0] = 0x80000001;
  out.push(flagsFetchOr(f, 0, 1 << 10), flagsFetchAnd(f, 0, ~1), f[0]!);
  const seen = flagsRead(f, 0);
  out.push(flagsCmpxchg(f, 0, seen, (seen & ~(1 << 10)) | 4), flagsCmpxchg(f, 0, seen, 0), f[0]!);
  const c = new Int16Array(new SharedArrayBuffer(8));
  out.push(mapcountFetchAdd(c, 0, 1), mapcountFetchAdd(c, 0, -1), mapcountFetchAdd(c, 0, -1), c[0]!);
  return out;
}

/**
 * A workload through faults, THP, a migrating long-term pin, fork, munmap, offlining and exit; returns
 * the whole machine buffer and the counters.
 */
function workload(): {
  bytes: Uint8Array;
  pinned: number;
  migrated: number;
  vmstat: Record<string, number>;
  offline: number;
} {
  const m = boot('mem=1G movablecore=512M transparent_hugepage=always');
  const mm = bprmMmInit(m);
  setCurrent(newTask(1, 'atomic', 0, mm));
  const n = 4096;
  const v = doMmap(m, mm, { nrPages: n, prot: PROT_READ | PROT_WRITE });
  for (let i = 0; i < n; i++) putUser(m, mm, v + i, i + 1);
  const pages = new Array<number>(1024).fill(-1);
  const report = newPinReport();
  const pinned = pinUserPagesFast(m, mm, v + 512, 1024, FOLL_LONGTERM | FOLL_WRITE, pages, report);
  for (let i = 0; i < pinned; i++) expect(m.pageZonenum(pages[i]!)).not.toBe(ZONE_MOVABLE);
  const child = dupMm(m, mm); // copies the pinned pages at once (copy_present_page), shares the rest COW
  putUser(m, child, v + 2048, 7); // and breaks one COW share
  doMunmap(m, mm, v, 256);
  unpinUserPages(m, pages, pinned);
  exitMmap(m, child);
  // offline the first ZONE_MOVABLE block (the user pages' block; the last one holds the memmap)
  const offline = stateStore(m, 4, 'offline');
  exitMmap(m, mm);
  return {
    bytes: new Uint8Array(m.sab.slice(0)),
    pinned,
    migrated: report.migrated,
    vmstat: vmstatSnapshot(m),
    offline,
  };
}

describe('mm/atomic: UP and SMP', () => {
  it('a main thread without workers starts UP; smpEnable() turns SMP on for good', () => {
    expect(smpEnabled()).toBe(false);
    const up = opTrace();
    const upRun = workload();
    smpEnable();
    expect(smpEnabled()).toBe(true);
    const smp = opTrace();
    const smpRun = workload();
    expect(up).toEqual(smp);
    // the op trace means something: the wrap-arounds and failed exchanges are in it
    expect(up.slice(0, 4)).toEqual([0x7fffffff, -0x80000000, -0x80000000, 0x7fffffff]);
    expect(up.slice(-4)).toEqual([0, 1, 0, -1]); // the 16-bit _mapcount goes below zero and back
    expect(upRun.pinned).toBe(1024);
    expect(upRun.migrated).toBeGreaterThan(0);
    expect(upRun.offline).toBe(0);
    expect(smpRun.vmstat).toEqual(upRun.vmstat);
    expect(smpRun.pinned).toBe(upRun.pinned);
    expect(smpRun.migrated).toBe(upRun.migrated);
    // byte for byte the same machine at the end
    expect(Buffer.compare(Buffer.from(smpRun.bytes), Buffer.from(upRun.bytes))).toBe(0);
  });
});

describe('page->_mapcount in 16 bits', () => {
  it('a page mapped by every VMA a machine can hold still counts; one more mapping is a kernel bug', () => {
    const m = boot('mem=64M');
    expect(m.maxMms * m.maxVmas).toBeLessThan(0x7fff);
    const pfn = 100;
    for (let i = 0; i < m.maxMms * m.maxVmas; i++) pteMapInc(m, pfn);
    expect(m.mapcount[pfn]).toBe(m.maxMms * m.maxVmas);
    m.mapcount[pfn] = 0x7ffe;
    pteMapInc(m, pfn);
    expect(() => pteMapInc(m, pfn)).toThrow(/_mapcount overflows 16 bits/);
  });
});
