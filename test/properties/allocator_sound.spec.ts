// allocator-sound, at the buddy level: random machines and random alloc/free/drain programs, checked
// after every step. free + per-CPU + in use = managed per zone; no frame handed out twice; nothing
// non-movable in ZONE_MOVABLE or in a CMA pageblock; freeing everything merges back to the boot lists.
import { fc, it } from '@fast-check/jest';
import { allocPages, freePages, NO_PAGE, drainAllPages } from '../../mm/page_alloc';
import { GFP_KERNEL, GFP_HIGHUSER_MOVABLE, GFP_USER, __GFP_COMP, __GFP_NORETRY, gfpMigratetype } from '../../mm/gfp';
import { memallocPinSave, memallocPinRestore, setCurrent, current } from '../../mm/sched';
import { MAX_NR_ZONES, MIGRATE_CMA, MIGRATE_MOVABLE, ZONE_MOVABLE } from '../../mm/mmzone';
import {
  Memmap,
  freeAreaCount,
  MB_STRIDE,
  MB_STATE,
  MB_ZONE,
  MEM_ONLINE,
  MEM_GOING_OFFLINE,
  Z_SPANNED,
  Z_START_PFN,
  Z_PRESENT,
} from '../../mm/memmap';
import { checkAllocator, checkZonesAndBlocks } from '../../properties/allocator_sound';
import { stateStore } from '../../mm/memory_hotplug';
import { bootFromSpec } from '../../harness/layout';

const GFPS = [GFP_KERNEL, GFP_USER, GFP_HIGHUSER_MOVABLE] as const;

type Op =
  | { op: 'alloc'; gfp: number; order: number; pin: boolean; cpu: number }
  | { op: 'free'; which: number; cpu: number }
  | { op: 'drain' };

const machineArb = fc.record({
  memKiB: fc.integer({ min: 3, max: 8 }).map((n) => n * 128),
  movablePct: fc.integer({ min: 0, max: 80 }),
  cmaPageblocks: fc.integer({ min: 0, max: 4 }),
});

const opArb: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 5,
    arbitrary: fc.record({
      op: fc.constant('alloc' as const),
      gfp: fc.constantFrom(...GFPS),
      order: fc.integer({ min: 0, max: 4 }),
      pin: fc.boolean(),
      cpu: fc.integer({ min: 0, max: 3 }),
    }),
  },
  {
    weight: 3,
    arbitrary: fc.record({ op: fc.constant('free' as const), which: fc.nat(), cpu: fc.integer({ min: 0, max: 3 }) }),
  },
  { weight: 1, arbitrary: fc.constant({ op: 'drain' as const }) },
);

function cmdlineFor(mc: { memKiB: number; movablePct: number; cmaPageblocks: number }): string {
  let s = `mem=${mc.memKiB}K sysctl.vm.min_free_kbytes=16`;
  if (mc.movablePct) s += ` movablecore=${mc.movablePct}%`;
  if (mc.cmaPageblocks) s += ` cma=${mc.cmaPageblocks * 32}K`;
  return s;
}

function perOrderFree(m: Memmap): number[] {
  const out: number[] = [];
  for (let z = 0; z < MAX_NR_ZONES; z++)
    for (let o = 0; o <= m.maxOrder; o++) {
      let n = 0;
      for (let mt = 0; mt < 6; mt++) n += m.zones[freeAreaCount(m, z, o, mt)]!;
      out.push(n);
    }
  return out;
}

interface Allocation {
  pfn: number;
  order: number;
  movable: boolean;
}

it.prop([machineArb, fc.array(opArb, { maxLength: 60, size: 'max' })], { numRuns: 150 })(
  'allocator-sound: every managed frame is free, cached or in use exactly once',
  (mc, ops) => {
    const m = bootFromSpec({ cmdline: cmdlineFor(mc), geometry: 'mini' }).m;
    const prev = setCurrent({ ...current(), cpu: 0, flags: 0 });
    try {
      drainAllPages(m);
      const boot = perOrderFree(m);
      const live: Allocation[] = [];
      const fail = (why: string) => {
        throw new Error(`${why}\ncmdline: ${cmdlineFor(mc)}`);
      };
      for (const op of ops) {
        if (op.op === 'alloc') {
          current().cpu = op.cpu;
          const saved = op.pin ? memallocPinSave() : 0;
          // __GFP_NORETRY: a bare allocation with no process to kill would otherwise panic in out_of_memory()
          const gfp = (op.order ? op.gfp | __GFP_COMP : op.gfp) | __GFP_NORETRY;
          const pfn = allocPages(m, gfp, op.order);
          const movable = gfpMigratetype(gfp) === MIGRATE_MOVABLE && !op.pin;
          if (op.pin) memallocPinRestore(saved);
          if (pfn === NO_PAGE) continue;
          if (!movable && m.pageZonenum(pfn) === ZONE_MOVABLE)
            fail(`non-movable allocation in ZONE_MOVABLE at pfn ${pfn}`);
          for (let p = pfn; p < pfn + (1 << op.order); p++) {
            if (!movable && m.getPageblockMigratetype(p) === MIGRATE_CMA)
              fail(`non-movable allocation in a CMA pageblock at pfn ${p}`);
          }
          live.push({ pfn, order: op.order, movable });
        } else if (op.op === 'free') {
          if (!live.length) continue;
          current().cpu = op.cpu;
          const [a] = live.splice(op.which % live.length, 1);
          freePages(m, a!.pfn, a!.order);
        } else drainAllPages(m);
        const { census, errors } = checkAllocator(m);
        if (errors.length) fail(errors.slice(0, 5).join('\n'));
        let inUse = 0;
        for (const a of live) {
          inUse += 1 << a.order;
          for (let p = a.pfn; p < a.pfn + (1 << a.order); p++)
            if (census.onList[p]) fail(`allocated pfn ${p} is also on a free list`);
        }
        const used = census.used.reduce((x, y) => x + y, 0);
        if (used !== inUse) fail(`zones account ${used} frames in use, the program holds ${inUse}`);
      }
      for (const a of live) freePages(m, a.pfn, a.order);
      drainAllPages(m);
      expect(perOrderFree(m)).toEqual(boot);
    } finally {
      setCurrent(prev);
    }
  },
);

describe('zone spans and memory block states (checkZonesAndBlocks)', () => {
  const CMD = 'mem=1M movablecore=50% sysctl.vm.min_free_kbytes=16';
  it('hold at boot and across offlining and onlining every ZONE_MOVABLE block, in any order', () => {
    fc.assert(
      fc.property(fc.array(fc.nat(), { maxLength: 12 }), (picks) => {
        const { m } = bootFromSpec({ cmdline: CMD, geometry: 'mini' });
        expect(checkZonesAndBlocks(m)).toEqual([]);
        const blocks = [...Array(m.nrBlocks).keys()].filter((b) => m.blocks[b * MB_STRIDE + MB_ZONE] === ZONE_MOVABLE);
        expect(blocks.length).toBeGreaterThan(1);
        for (const k of picks) {
          const b = blocks[k % blocks.length]!;
          const on = m.blocks[b * MB_STRIDE + MB_STATE] === MEM_ONLINE;
          expect(stateStore(m, b, on ? 'offline' : 'online_movable')).toBe(0);
          expect(checkZonesAndBlocks(m)).toEqual([]);
        }
      }),
      { numRuns: 30 },
    );
  });

  it("numa=fake's interleaved nodes: a boot zone spans other nodes' frames, not its own node's beyond its frames", () => {
    // mem=128M as QEMU pc maps it, two fake nodes: node 0 is pfn 1-16384 and 24576-32768, node 1 between;
    // node 0's ZONE_MOVABLE starts at its zone_movable_pfn 16384, over node 1's frames (free_area_init())
    const { m } = bootFromSpec({
      cmdline: 'mem=128M movablecore=25% numa=fake=2 pinlab.kmem=none',
      geometry: 'x86_64',
    });
    const zb = m.zoneBase(ZONE_MOVABLE); // node 0's
    expect([m.zones[zb + Z_START_PFN], m.zones[zb + Z_SPANNED]]).toEqual([16384, 16384]);
    expect(checkZonesAndBlocks(m)).toEqual([]);
    m.zones[zb + Z_START_PFN] = 8192; // down into node 0's own DMA32 frames: not its frames, not another node's
    m.zones[zb + Z_SPANNED] = 24576;
    expect(checkZonesAndBlocks(m)).toEqual([
      expect.stringMatching(/^zone Movable: spans \[8192, 32768\) but its frames run \[24576, 32768\)/),
    ]);
  });

  it('a span not shrunk, a wrong present count and a block left going-offline are each reported', () => {
    const { m } = bootFromSpec({ cmdline: CMD, geometry: 'mini' });
    const b = [...Array(m.nrBlocks).keys()].reverse().find((x) => m.blocks[x * MB_STRIDE + MB_ZONE] === ZONE_MOVABLE)!;
    expect(stateStore(m, b, 'offline')).toBe(0);
    const zb = m.zoneBase(ZONE_MOVABLE);
    m.zones[zb + Z_SPANNED]! += m.blockPages; // shrink_zone_span() skipped
    expect(checkZonesAndBlocks(m)).toEqual([
      expect.stringMatching(/^zone Movable: spans \[\d+, \d+\) but its frames run/),
    ]);
    m.zones[zb + Z_SPANNED]! -= m.blockPages;
    m.zones[zb + Z_PRESENT]! += 1;
    expect(checkZonesAndBlocks(m)).toEqual([expect.stringMatching(/^zone Movable: present_pages \d+ but \d+ frames/)]);
    m.zones[zb + Z_PRESENT]! -= 1;
    m.blocks[b * MB_STRIDE + MB_STATE] = MEM_GOING_OFFLINE;
    expect(checkZonesAndBlocks(m)).toEqual([
      `memory${b}: state ${MEM_GOING_OFFLINE} (neither online nor offline) with no operation in flight`,
    ]);
    m.blocks[b * MB_STRIDE + MB_STATE] = MEM_ONLINE; // says online, its frames have no zone
    expect(checkZonesAndBlocks(m)).toEqual([
      expect.stringMatching(new RegExp(`^memory${b} is online but pfn \\d+ is in no zone`)),
    ]);
  });
});
