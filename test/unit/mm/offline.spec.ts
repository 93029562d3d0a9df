import { boot, zone } from '../../helpers';
import { bprmMmInit, doMmap, PROT_READ, PROT_WRITE, exitMmap } from '../../../mm/mmap';
import { getUser, putUser } from '../../../mm/memory';
import {
  stateStore,
  offlinePages,
  OfflineReport,
  stateShow,
  registerMemoryNotifier,
  OFFLINE_PASSES_MAX,
} from '../../../mm/memory_hotplug';
import { Memmap, MEM_GOING_OFFLINE, PG_hugetlb } from '../../../mm/memmap';
import { EINTR, EINVAL, EBUSY } from '../../../mm/errno';
import { folioPut, lruAddDrainAll } from '../../../mm/swap';
import { drainAllPages, allocPages, freePages } from '../../../mm/page_alloc';
import { GFP_KERNEL } from '../../../mm/gfp';
import { setCurrent, current } from '../../../mm/sched';
import { checkAllocator } from '../../../properties/allocator_sound';
import { pfnOf } from '../../../mm/memory';
import { folioGet } from '../../../mm/page_ref';

const MINI = 'mini';
const CMD = 'mem=1M movablecore=512K sysctl.vm.min_free_kbytes=16';
const RW = PROT_READ | PROT_WRITE;
const report = (): OfflineReport => ({ reason: '', pfn: -1, passes: 0, failures: [] });

function sound(m: Memmap): void {
  lruAddDrainAll(m);
  drainAllPages(m);
  expect(checkAllocator(m).errors).toEqual([]);
  expect(zone(m, 'Movable').pageblocks.Isolate).toBe(0);
  expect(zone(m, 'Normal').pageblocks.Isolate).toBe(0);
}

/** A process with n written pages, all in ZONE_MOVABLE's last block (block 7 of the mini machine). */
function filled(cmd = CMD, n = 20): { m: Memmap; mm: number; v: number } {
  const m = boot(cmd, MINI);
  const mm = bprmMmInit(m);
  const v = doMmap(m, mm, { nrPages: n, prot: RW });
  for (let i = 0; i < n; i++) putUser(m, mm, v + i, 7000 + i);
  return { m, mm, v };
}

function blockOf(m: Memmap, pfn: number): number {
  return Math.floor(pfn / m.blockPages);
}

describe('offline_pages (mm/memory_hotplug.c)', () => {
  it('a ZONE_MOVABLE block of unpinned anonymous pages goes offline; their contents move', () => {
    const { m, mm, v } = filled();
    const b = blockOf(m, pfnOf(m, mm, v));
    const r = report();
    expect(stateStore(m, b, 'offline', { report: r })).toBe(0);
    expect(stateShow(m, b)).toBe('offline');
    for (let i = 0; i < 20; i++) {
      expect(getUser(m, mm, v + i)).toBe(7000 + i);
      expect(blockOf(m, pfnOf(m, mm, v + i))).not.toBe(b);
    }
    expect(zone(m, 'Movable').managed).toBe(96);
    sound(m);
  });

  it('a block holding a page with an extra reference: -EINTR after the pass budget, nothing lost, undone', () => {
    const { m, mm, v } = filled();
    const p = pfnOf(m, mm, v + 5);
    folioGet(m, p);
    const b = blockOf(m, p);
    const r = report();
    expect(stateStore(m, b, 'offline', { report: r, passesMax: 25 })).toBe(-EINTR);
    expect(r.passes).toBe(25);
    expect(r.reason).toMatch(/signal backoff/);
    expect(r.failures).toEqual([{ pfn: p, rc: -11, why: expect.stringMatching(/extra references/) }]);
    expect(stateShow(m, b)).toBe('online');
    for (let i = 0; i < 20; i++) expect(getUser(m, mm, v + i)).toBe(7000 + i);
    sound(m);
    folioPut(m, p);
    expect(stateStore(m, b, 'offline')).toBe(0);
    sound(m);
  });

  it('a pending signal ends the loop at once with -EINTR ("signal backoff")', () => {
    const { m, mm, v } = filled();
    const p = pfnOf(m, mm, v);
    folioGet(m, p);
    const prev = setCurrent({ ...current(), sigpending: true });
    try {
      const r = report();
      expect(stateStore(m, blockOf(m, p), 'offline', { report: r })).toBe(-EINTR);
      expect(r.reason).toBe('signal backoff');
    } finally {
      setCurrent(prev);
    }
    folioPut(m, p);
    sound(m);
  });

  it('refuses holes (-EINVAL), a block spanning zones (-EINVAL), unmovable kernel pages (-EBUSY)', () => {
    const m = boot('mem=1G movablecore=512M');
    expect(stateStore(m, 0, 'offline')).toBe(-EINVAL); // DMA + DMA32: mem->zone == NULL
    expect(stateStore(m, 1, 'offline')).toBe(0); // free DMA32 memory: fine
    // the lowest pfns go first (memblock_free_all()'s FPI_TO_TAIL): the first pages sit in memory0, which
    // spans DMA and DMA32; allocate until one lands in a block of its own zone
    const taken: number[] = [];
    let kernelPage = allocPages(m, GFP_KERNEL, 0);
    while (Math.floor(kernelPage / m.blockPages) === 0) {
      taken.push(kernelPage);
      kernelPage = allocPages(m, GFP_KERNEL, 0);
    }
    expect(taken.length).toBeGreaterThan(0);
    for (const p of taken) freePages(m, p, 0);
    const r = report();
    expect(stateStore(m, Math.floor(kernelPage / m.blockPages), 'offline', { report: r })).toBe(-EBUSY);
    expect(r.reason).toBe('failure to isolate range');
    expect(r.pfn).toBe(kernelPage);
    freePages(m, kernelPage, 0);
    const holes = boot('mem=900K', MINI); // the last block is partly a hole
    const rh = report();
    expect(offlinePages(holes, 7 * 32, 32, { report: rh })).toBe(-EINVAL);
    expect(rh.reason).toBe('memory holes');
    sound(m);
  });

  it('a MEM_GOING_OFFLINE notifier error cancels the offline', () => {
    const { m } = filled();
    const off = registerMemoryNotifier((_m, action) => (action === MEM_GOING_OFFLINE ? -EBUSY : 0));
    try {
      const r = report();
      expect(stateStore(m, 6, 'offline', { report: r })).toBe(-EBUSY);
      expect(r.reason).toBe('notifier failure');
    } finally {
      off();
    }
    sound(m);
  });

  it('free hugetlb folios are dissolved; in-use ones migrate', () => {
    const m = boot(`${CMD} hugepages=6`, MINI);
    const mm = bprmMmInit(m);
    const v = doMmap(m, mm, { nrPages: 8, prot: RW, hugetlb: true });
    putUser(m, mm, v, 42);
    const p = pfnOf(m, mm, v);
    expect(m.flags[p]! & PG_hugetlb).toBeTruthy();
    const b = blockOf(m, p);
    expect(stateStore(m, b, 'offline')).toBe(0);
    expect(getUser(m, mm, v)).toBe(42);
    expect(blockOf(m, pfnOf(m, mm, v))).not.toBe(b);
    exitMmap(m, mm);
    sound(m);
  });

  it('an in-use hugetlb folio migrates to a temporary folio when the pool has none free elsewhere', () => {
    const m = boot(`${CMD} hugepages=1`, MINI);
    const mm = bprmMmInit(m);
    const v = doMmap(m, mm, { nrPages: 8, prot: RW, hugetlb: true });
    putUser(m, mm, v, 77);
    const p = pfnOf(m, mm, v);
    expect(stateStore(m, blockOf(m, p), 'offline')).toBe(0);
    expect(getUser(m, mm, v)).toBe(77);
    expect(m.flags[pfnOf(m, mm, v)]! & PG_hugetlb).toBeTruthy();
    exitMmap(m, mm);
    sound(m);
  });

  it('offline and online a block many times: no frame leaks', () => {
    const { m, mm } = filled();
    const before = checkAllocator(m).census;
    for (let i = 0; i < 20; i++) {
      const b = 4 + (i % 4);
      const rc = stateStore(m, b, 'offline');
      if (rc === 0) expect(stateStore(m, b, 'online_movable')).toBe(0);
    }
    exitMmap(m, mm);
    sound(m);
    expect(checkAllocator(m).census.used.reduce((a, c) => a + c, 0)).toBe(0);
    expect(zone(m, 'Movable').managed).toBe(128);
    void before;
    expect(OFFLINE_PASSES_MAX).toBe(100);
  });
});
