// NUMA nodes (mm/mm_init.ts, mm/page_alloc.ts): numa=fake=N splitting, find_zone_movable_pfns_for_nodes()
// over several nodes (R22's out2 check), zonelists, movable_node with a hotpluggable node, per-node
// zones and hotplug. The expected numbers are worked out by hand from the kernel's algorithms in the
// comments beside them.
import { boot } from '../../helpers';
import { parseCmdline, parseGeometry } from '../../../mm/cmdline';
import { planBoot, planNodes, splitNodesInterleave, findZoneMovablePfnsForNodes, NodePlan } from '../../../mm/mm_init';
import { parseVariant, setVariant } from '../../../mm/variants';
import { Memmap, nodeSpan } from '../../../mm/memmap';
import { MAX_NR_ZONES, ZONE_MOVABLE, ZONE_NORMAL } from '../../../mm/mmzone';
import { zoneInfo, procZoneinfo } from '../../../mm/vmstat';
import { allocPages, freePages, zonelistNodes, NO_PAGE } from '../../../mm/page_alloc';
import { GFP_HIGHUSER_MOVABLE, GFP_KERNEL, __GFP_NORETRY } from '../../../mm/gfp';
import { newTask, setCurrent } from '../../../mm/sched';
import { stateStore, validZonesShow } from '../../../mm/memory_hotplug';
import { checkAllocator } from '../../../properties/allocator_sound';

const MINI = parseGeometry('mini');

function nodesFor(cmdline: string, geometry = 'mini', variant?: string): NodePlan[] {
  const prev = variant ? setVariant(parseVariant(variant)) : null;
  try {
    return planBoot(parseCmdline(cmdline, parseGeometry(geometry))).nodes;
  } finally {
    if (prev) setVariant(prev);
  }
}

/** [zone_movable_pfn of each node] for hand-made nodes */
function zmpFor(cmdline: string, nodes: [number, number][], hotpluggable: number[] = []): number[] {
  const p = parseCmdline(cmdline, MINI);
  const plans: NodePlan[] = nodes.map(([s, e], nid) => ({
    nid,
    memRanges: [[s, e]],
    startPfn: s,
    endPfn: e,
    hotpluggable: hotpluggable.includes(nid),
    zoneMovablePfn: 0,
    zoneSpans: [],
  }));
  findZoneMovablePfnsForNodes(p, plans, []);
  return plans.map((n) => n.zoneMovablePfn);
}

function onCpu<T>(cpu: number, fn: () => T): T {
  const prev = setCurrent(newTask(100 + cpu, 'test', cpu));
  try {
    return fn();
  } finally {
    setCurrent(prev);
  }
}

describe('numa=fake=N: split_nodes_interleave()', () => {
  it('splits a flat range evenly', () => {
    // 128 pages / 2 = 64, a multiple of FAKE_NODE_MIN (8 on mini): no big nodes
    expect(splitNodesInterleave([[0, 128]], 2, 8, 0)).toEqual([[[0, 64]], [[64, 128]]]);
  });
  it('rounds the size down to FAKE_NODE_MIN_SIZE; the last node takes the rest', () => {
    // 100 / 3 = 33 -> big = (33 % 8) * 3 / 8 = 0, size 32; the third node's limit - end = 4 < 32: to 100
    expect(splitNodesInterleave([[0, 100]], 3, 8, 0)).toEqual([[[0, 32]], [[32, 64]], [[64, 100]]]);
  });
  it('gives the remainder to "big" nodes first', () => {
    // 120 / 2 = 60 -> big = (60 % 8) * 2 / 8 = 1, size 56: node 0 gets 56 + 8
    expect(splitNodesInterleave([[0, 120]], 2, 8, 0)).toEqual([[[0, 64]], [[64, 120]]]);
  });
  it('counts only RAM: a node grows over a hole until it holds its share', () => {
    // 3G below the PCI hole, 1G above 4G: RAM 1048576 pages, size 524288. Node 0 [0, 2G); node 1 from 2G
    // needs 524288 pages of RAM: 262144 below 3G, the rest above 4G, so it runs to the end
    const ranges: [number, number][] = [
      [0, 786432],
      [1048576, 1310720],
    ];
    expect(splitNodesInterleave(ranges, 2, 8192, 1 << 20)).toEqual([[[0, 524288]], [[524288, 1310720]]]);
  });
  it('extends a node to 4G when less than FAKE_NODE_MIN_SIZE of DMA32 would be left for the next', () => {
    // RAM 0-(4G-32M) and 4G up: total 2072576 pages, size 1036288 (4G-48M). Node 0 would end 12288 pages
    // below 4G, of which 8192 are the hole: 4096 < 8192 of RAM left, so it ends at 4G
    const ranges: [number, number][] = [
      [0, 1040384],
      [1048576, 2080768],
    ];
    expect(splitNodesInterleave(ranges, 2, 8192, 1 << 20)).toEqual([[[0, 1048576]], [[1048576, 2080768]]]);
  });
  it('disables emulation when a node would get less than FAKE_NODE_MIN_SIZE', () => {
    expect(splitNodesInterleave([[0, 12]], 2, 8, 0)).toBeNull();
    const p = parseCmdline('mem=48K numa=fake=4', MINI);
    const w: string[] = [];
    expect(planNodes(p, [[0, 12]], w)).toHaveLength(1);
    expect(w.join()).toMatch(/NUMA emulation disabled/);
  });
  it('x86_64: numa=fake=2 on mem=2G splits the e820 RAM, holes not counted', () => {
    const nodes = nodesFor('mem=2G numa=fake=2', 'x86_64');
    expect(nodes).toHaveLength(2);
    const ram = nodes.map((n) => n.memRanges.reduce((t, [a, b]) => t + b - a, 0));
    // each node's share is at least size (a multiple of 8192 pages) and node 0 ends on a 32M boundary
    expect(nodes[0]!.endPfn % 8192).toBe(0);
    expect(Math.abs(ram[0]! - ram[1]!)).toBeLessThan(8192 * 2);
    expect(nodes[1]!.startPfn).toBe(nodes[0]!.endPfn);
  });
});

describe('find_zone_movable_pfns_for_nodes() over nodes', () => {
  it('spreads kernelcore evenly (kernelcore_node = required_kernelcore / usable_nodes)', () => {
    // 128 pages, movablecore=128K = 32 pages (already a multiple of MAX_ORDER_NR_PAGES 16): kernelcore 96,
    // 48 per node: node 0 [0, 48) kernel, node 1 [64, 112)
    expect(
      zmpFor('movablecore=128K', [
        [0, 64],
        [64, 128],
      ]),
    ).toEqual([48, 112]);
  });
  it('restarts with one node fewer while kernelcore is left (and drops a ZONE_MOVABLE at the node end)', () => {
    // kernelcore=80 pages over [0,32) and [32,128): pass 1 (40 each) node 0 takes all 32, node 1 40 (to
    // 72); 8 left > usable_nodes 1 -> pass 2 with kernelcore_node 8: node 0 has nothing left (start =
    // zone_movable_pfn 32), node 1 to 80. out2: node 0's 32 is its end -> 0; node 1 stays 80
    expect(
      zmpFor('kernelcore=320K', [
        [0, 32],
        [32, 128],
      ]),
    ).toEqual([0, 80]);
  });
  it('rounds zone_movable_pfn[nid] up to MAX_ORDER_NR_PAGES', () => {
    // kernelcore 50 over [0,64) and [64,128): 25 each -> 25 and 89, rounded up to 32 and 96
    expect(
      zmpFor('kernelcore=200K', [
        [0, 64],
        [64, 128],
      ]),
    ).toEqual([32, 96]);
  });
  it('R22: a small node whose rounded ZONE_MOVABLE start passes its end keeps it with the bug', () => {
    // nodes [0,116) and [116,128), kernelcore=100: pass 1 (50 each) node 0 to 50, node 1 all 12 (to 128),
    // 38 left -> pass 2 (38): node 0 to 88, node 1 nothing. out2: 88 -> 96; node 1: 128 >= 128
    expect(
      zmpFor('kernelcore=400K', [
        [0, 116],
        [116, 128],
      ]),
    ).toEqual([96, 0]);
    const prev = setVariant(parseVariant('v6.12+R22'));
    try {
      expect(
        zmpFor('kernelcore=400K', [
          [0, 116],
          [116, 128],
        ]),
      ).toEqual([96, 128]);
    } finally {
      setVariant(prev);
    }
  });
  it('one node by numa=fake=1 or none: the single-node path', () => {
    expect(nodesFor('mem=512K movablecore=128K numa=fake=1').map((n) => n.zoneMovablePfn)).toEqual([96]);
  });
  it('movable_node: a hotpluggable node becomes all ZONE_MOVABLE, kernelcore= ignored', () => {
    expect(
      zmpFor(
        'movable_node kernelcore=100K',
        [
          [0, 64],
          [64, 128],
        ],
        [1],
      ),
    ).toEqual([0, 64]);
    const nodes = nodesFor('mem=512K numa=fake=2 movable_node pinlab.hotpluggable_node=1');
    expect(nodes[1]!.zoneSpans[ZONE_MOVABLE]).toEqual([64, 128]);
    expect(nodes[1]!.zoneSpans[ZONE_NORMAL]).toEqual([0, 0]);
    expect(nodes[0]!.zoneSpans[ZONE_NORMAL]).toEqual([0, 64]);
  });
  it('per-node zone spans: each node its own Normal and Movable', () => {
    const nodes = nodesFor('mem=512K numa=fake=2 movablecore=128K');
    expect(nodes.map((n) => [n.zoneSpans[ZONE_NORMAL], n.zoneSpans[ZONE_MOVABLE]])).toEqual([
      [
        [0, 48],
        [48, 64],
      ],
      [
        [64, 112],
        [112, 128],
      ],
    ]);
  });
});

describe('a booted two-node machine', () => {
  const m0 = (): Memmap => boot('mem=512K numa=fake=2 movablecore=128K sysctl.vm.min_free_kbytes=16', 'mini');

  it('has per-node zone records, node ids in page->flags, and a sound allocator', () => {
    const m = m0();
    expect(m.nrNodes).toBe(2);
    expect(nodeSpan(m, 1)).toEqual([64, 128]);
    expect(m.pageNid(63)).toBe(0);
    expect(m.pageNid(64)).toBe(1);
    expect(m.pageZone(70)).toBe(MAX_NR_ZONES + ZONE_NORMAL);
    expect(m.pageZonenum(70)).toBe(ZONE_NORMAL);
    const n1 = zoneInfo(m, MAX_NR_ZONES + ZONE_MOVABLE);
    expect([n1.start_pfn, n1.spanned, n1.managed]).toEqual([112, 16, 16]);
    expect(checkAllocator(m).errors).toEqual([]);
    expect(procZoneinfo(m)).toMatch(/Node 1, zone {2}Movable/);
  });

  it('zonelists: the local node first, then the others (node order)', () => {
    const m = m0();
    expect(zonelistNodes(m, 0)).toEqual([0, 1]);
    expect(zonelistNodes(m, 1)).toEqual([1, 0]);
    // CPU 1 is on node 1: its allocations come from node 1 while node 1 has memory; node 1's Movable (16
    // pages) is below its capped min watermark (32), so a movable allocation takes node 1's Normal
    const p = onCpu(1, () => allocPages(m, GFP_HIGHUSER_MOVABLE, 0));
    expect(m.pageNid(p)).toBe(1);
    expect(m.pageZonenum(p)).toBe(ZONE_NORMAL);
    const q = onCpu(0, () => allocPages(m, GFP_KERNEL, 0));
    expect(m.pageNid(q)).toBe(0);
    expect(m.pageZonenum(q)).toBe(ZONE_NORMAL);
    onCpu(1, () => freePages(m, p, 0));
    onCpu(0, () => freePages(m, q, 0));
    expect(checkAllocator(m).errors).toEqual([]);
  });

  it('falls back to the other node when the local one is exhausted, and buddies never merge across nodes', () => {
    const m = m0();
    const got: number[] = [];
    onCpu(1, () => {
      for (;;) {
        const p = allocPages(m, GFP_KERNEL | __GFP_NORETRY, 0);
        if (p === NO_PAGE) break;
        got.push(p);
      }
    });
    expect(got.some((p) => m.pageNid(p) === 0)).toBe(true);
    expect(got.some((p) => m.pageNid(p) === 1)).toBe(true);
    onCpu(1, () => got.forEach((p) => freePages(m, p, 0)));
    expect(checkAllocator(m).errors).toEqual([]);
  });

  it('hotplug: a node-1 block goes offline and back online into node 1', () => {
    const m = m0();
    // memory3 = pfn 96-128: node 1's Normal 96-112 and Movable 112-128 -> spans zones, cannot offline;
    // with blocks of 16 pages node 1's Movable is a block of its own
    const m2 = boot('mem=512K numa=fake=2 movablecore=128K sysctl.vm.min_free_kbytes=16', 'mini,block_pages=16');
    expect(validZonesShow(m2, 7)).toBe('Movable');
    expect(stateStore(m2, 7, 'offline')).toBe(0);
    expect(zoneInfo(m2, MAX_NR_ZONES + ZONE_MOVABLE).spanned).toBe(0);
    expect(stateStore(m2, 7, 'online_movable')).toBe(0);
    expect(m2.pageNid(7 * 16)).toBe(1);
    expect(zoneInfo(m2, MAX_NR_ZONES + ZONE_MOVABLE)).toMatchObject({ start_pfn: 112, spanned: 16, managed: 16 });
    expect(checkAllocator(m2).errors).toEqual([]);
    expect(stateStore(m, 3, 'offline')).toBeLessThan(0);
  });
});
