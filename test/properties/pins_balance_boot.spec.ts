// pins-balance on the x86_64 geometry, whose machines boot with a process of their own (init, mapping the
// unpacked initramfs and a few anonymous pages: mm/mm_init.ts bootUserSpace()). Init outlives the case,
// and an offline of its ZONE_MOVABLE block migrates its pages: the check follows them rather than
// comparing frame by frame, and still sees a reference left on one of them.
import { enterContext, leaveContext } from '../../harness/context';
import { bootFromSpec } from '../../harness/layout';
import { Memmap, H_MM_LIVE, H_ZONE_MOVABLE_PFN, MEM_OFFLINE, MB_STATE, MB_STRIDE } from '../../mm/memmap';
import { lruAddDrainAll } from '../../mm/swap';
import { drainAllPages } from '../../mm/page_alloc';
import { folioGet } from '../../mm/page_ref';
import { blockStartPfn, stateStore } from '../../mm/memory_hotplug';
import { newTask } from '../../mm/sched';
import { parseVariant } from '../../mm/variants';
import { pinBalanceErrors, snapshotPageCounts } from '../../properties/pins_balance';

let saved: ReturnType<typeof enterContext>;
beforeEach(() => {
  saved = enterContext({ variant: parseVariant('v6.12'), task: newTask(1, 'pins_balance_boot', 0) });
});
afterEach(() => leaveContext(saved));

function settle(m: Memmap): void {
  lruAddDrainAll(m);
  drainAllPages(m);
}

/**
 * The x86_64 machine and its boot processes (a bit per mm slot); offline() takes the first block holding
 * pages of init that can go offline (memblock's reservations at the top of memory pin the others).
 */
function boot(): { m: Memmap; bootMms: number; blocks: number[]; offline: () => number } {
  const { m } = bootFromSpec({ cmdline: 'mem=512M movablecore=256M', geometry: 'x86_64' });
  const bootMms = m.header[H_MM_LIVE]!;
  const { boot: pfns } = snapshotPageCounts(m, bootMms);
  const blocks = [...new Set([...pfns].map((pfn) => Math.floor(pfn / m.blockPages)))];
  const offline = () => {
    for (const b of blocks) if (stateStore(m, b, 'offline') === 0) return b;
    return -1;
  };
  return { m, bootMms, blocks, offline };
}

describe('pins-balance with the boot processes of an x86_64 machine', () => {
  it('init is alive after boot and maps pages in ZONE_MOVABLE', () => {
    const { m, bootMms, blocks } = boot();
    expect(bootMms).toBe(1); // mm 0
    const base = snapshotPageCounts(m, bootMms);
    expect(base.boot.length).toBeGreaterThan(100);
    for (const b of blocks) expect(blockStartPfn(m, b)).toBeGreaterThanOrEqual(m.header[H_ZONE_MOVABLE_PFN]!);
  });

  it("an offline that migrates init's pages leaves the pins balanced; compared frame by frame they are not", () => {
    const { m, bootMms, offline } = boot();
    settle(m);
    const base = snapshotPageCounts(m, bootMms);
    const blind = snapshotPageCounts(m); // no boot processes named: the frame-by-frame comparison
    const block = offline();
    expect(block).toBeGreaterThanOrEqual(0);
    expect(m.blocks[block * MB_STRIDE + MB_STATE]).toBe(MEM_OFFLINE);
    settle(m);
    const after = snapshotPageCounts(m, bootMms);
    expect([...after.boot].some((pfn) => !base.boot.includes(pfn))).toBe(true); // they moved
    expect(pinBalanceErrors(m, 0, 0, base)).toEqual([]);
    expect(pinBalanceErrors(m, 0, 0, blind).length).toBeGreaterThan(0);
  });

  it('a reference left on a page of init is still an error, also after the page moved', () => {
    const { m, bootMms, offline } = boot();
    settle(m);
    const base = snapshotPageCounts(m, bootMms);
    expect(offline()).toBeGreaterThanOrEqual(0);
    settle(m);
    const moved = snapshotPageCounts(m, bootMms).boot[0]!;
    folioGet(m, moved);
    const errors = pinBalanceErrors(m, 0, 0, base);
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatch(/^the boot processes' \d+ pages \(now \d+\): refcount\/_pincount\/_mapcount .*, were /);
  });
});
