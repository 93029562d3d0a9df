// layout-sound: each check fails on the layout it guards against (R22's node, a CMA area across two zones,
// a node span that missed a hot-added block, a refusal naming the wrong parameter) and passes on the fixed one.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { bootFromSpec } from '../../harness/layout';
import { loadRegression, replayFile } from '../../harness/runner';
import { checkSetup } from '../../harness/run_case';
import { layoutSound, layoutErrors } from '../../properties/layout_sound';
import { withContext } from '../../harness/context';
import { parseVariant } from '../../mm/variants';
import { CmdlineError } from '../../mm/cmdline';
import {
  Memmap,
  ND_END,
  ND_ZONE_MOVABLE_PFN,
  MB_STRIDE,
  MB_ZONE,
  H_CMA_AREAS,
  H_NR_CMA_AREAS,
  Z_PRESENT,
  Z_WMARK_LOW,
  HS_NR_HUGE_PAGES,
  HS_FREE_HUGE_PAGES,
} from '../../mm/memmap';
import { hstateBase } from '../../mm/hugetlb';
import { ZONE_MOVABLE } from '../../mm/mmzone';

const boot = (cmdline: string, variant = 'v6.12') =>
  withContext({ variant: parseVariant(variant) }, () => bootFromSpec({ cmdline, geometry: 'mini' }));

/** What layout-sound says of a command line: its findings, or those on its refusal. */
function judge(cmdline: string, variant = 'v6.12', geometry = 'mini'): string[] {
  const c = { m: null, params: null, cmdline, refused: null, checked: 0 } as Parameters<typeof layoutSound.atBoot>[0];
  try {
    const b = withContext({ variant: parseVariant(variant) }, () => bootFromSpec({ cmdline, geometry }));
    return layoutSound.atBoot({ ...c, m: b.m, params: b.params });
  } catch (e) {
    if (!(e instanceof CmdlineError)) throw e;
    return layoutSound.atBoot({ ...c, refused: e.message });
  }
}

// R22's own machine (scenarios r22-movable-beyond-node.yaml): node 1 twelve pages, kernelcore spread over both
const R22 = 'mem=512K pinlab.numa_nodes=464K,48K kernelcore=400K sysctl.vm.min_free_kbytes=16';

test('R22: a zone_movable_pfn at the end of a small node fails; the fixed kernel drops it', () => {
  expect(judge(R22, 'v6.12+R22')).toEqual([expect.stringMatching(/^node 1: zone_movable_pfn 128 is outside the node/)]);
  expect(judge(R22, 'v6.12')).toEqual([]);
});

test('the machines the campaign boots are sound, on mini and x86_64 geometries', () => {
  for (const c of [
    'mem=1M movablecore=512K cma=128K@256K sysctl.vm.min_free_kbytes=16 hugepages=2',
    'mem=1M pinlab.numa_nodes=512K,512K pinlab.hotpluggable_node=1 movable_node transparent_hugepage=always',
    'mem=1M movablecore=256K pinlab.hotplug=256K memhp_default_state=online_kernel sysctl.vm.min_free_kbytes=16',
    'mem=1M kernelcore=384K numa=fake=2 sysctl.vm.min_free_kbytes=16',
  ])
    expect([c, judge(c)]).toEqual([c, []]);
  const x86 = 'mem=512M movablecore=128M cma=16M transparent_hugepage=always hugepagesz=2M hugepages=2';
  expect(judge(x86, 'v6.12', 'x86_64')).toEqual([]);
});

test('a CMA area across Normal and Movable is not activated (cma_activate_area()): its pages are plain memory', () => {
  const { m } = boot('mem=1M movablecore=512K cma=64K@480K sysctl.vm.min_free_kbytes=16');
  expect(m.header[H_NR_CMA_AREAS]).toBe(0);
  expect(layoutErrors(m, boot('mem=1M').params)).toEqual([]);
});

test('each kind of inconsistency is reported', () => {
  const cmdline = 'mem=1M movablecore=512K cma=128K@256K sysctl.vm.min_free_kbytes=16';
  // a CMA area whose recorded base is moved into ZONE_MOVABLE's edge: spans two zones
  let b = boot(cmdline);
  b.m.header[H_CMA_AREAS] = 120;
  expect(layoutErrors(b.m, b.params).join('\n')).toMatch(/cma area 0 \(pfn 120-152\) spans zones/);
  // a node whose end misses what its zones span (resize_pgdat_range() not called)
  b = boot(cmdline);
  b.m.nodes[ND_END] = 200;
  expect(layoutErrors(b.m, b.params).join('\n')).toMatch(/node 0 Movable: spans pfn 128-256, outside its node/);
  // a boot block whose mem->zone names another zone than its frames
  b = boot(cmdline);
  b.m.blocks[0 * MB_STRIDE + MB_ZONE] = ZONE_MOVABLE;
  expect(layoutErrors(b.m, b.params).join('\n')).toMatch(/memory0: valid_zones says node 0 Movable, but pfn 0 is in/);
  // zone_movable_pfn off the MAX_ORDER grid, a present count, watermarks out of order, a pool over its ask
  const errs = (cmd: string, edit: (m: Memmap) => void): string => {
    const x = boot(cmd);
    edit(x.m);
    return layoutErrors(x.m, x.params).join('\n');
  };
  expect(errs(cmdline, (m) => (m.nodes[ND_ZONE_MOVABLE_PFN] = 136))).toMatch(/zone_movable_pfn 136 is not aligned/);
  expect(errs(cmdline, (m) => m.zones[m.zoneBase(ZONE_MOVABLE) + Z_PRESENT]!++)).toMatch(
    /node 0 Movable: present_pages 129 but 128 frames name the zone/,
  );
  expect(errs(cmdline, (m) => (m.zones[m.zoneBase(ZONE_MOVABLE) + Z_WMARK_LOW] = 0))).toMatch(
    /watermarks .* out of order/,
  );
  const pool = `${cmdline} hugepages=2`;
  const hb = hstateBase(0);
  expect(errs(pool, (m) => m.header[hb + HS_NR_HUGE_PAGES]!++)).toMatch(
    /nr_hugepages 3 but the command line asked for 2/,
  );
  expect(errs(pool, (m) => m.header[hb + HS_FREE_HUGE_PAGES]!--)).toMatch(/free_hugepages 1 != nr_hugepages 2/);
});

test('onlining a hot-added block grows its node (resize_pgdat_range())', () => {
  for (const state of ['online_kernel', 'online_movable'])
    expect(judge(`mem=512K pinlab.hotplug=32K memhp_default_state=${state} sysctl.vm.min_free_kbytes=8`)).toEqual([]);
});

test('a refusal must be one line naming a parameter of the command line', () => {
  expect(judge('mem=1M default_hugepagesz=-1')).toEqual([]); // "default_hugepagesz: bad size '-1' ..."
  expect(judge('mem=1M kernelcore=101%')).toEqual([]);
  expect(judge('mem=1M frobnicate=1')).toEqual([]);
  const c = { m: null, params: null, cmdline: 'mem=1M default_hugepagesz=-1', checked: 0 };
  expect(layoutSound.atBoot({ ...c, refused: "hugepagesz: bad size '-1'" })).toEqual([
    expect.stringMatching(/names no parameter of the command line/),
  ]);
  expect(layoutSound.atBoot({ ...c, refused: 'default_hugepagesz: bad\nsize' })).toEqual([
    expect.stringMatching(/more than one line/),
  ]);
});
// the boot suite finding R22 from a seed, and passing on the fixed kernel: test/harness/mutation.spec.ts

test("6.12's boot-time gigantic page across the ZONE_MOVABLE split counts wholly in its head's zone: reported", () => {
  // gather_bootmem_prealloc_node(): adjust_managed_page_count(page, pages_per_huge_page(h)) on the head's zone;
  // upstream checks zone intersections since 2025 (hugetlb_bootmem_page_zones_valid()). The boot suite leaves
  // kernelcore=/movablecore= out beside a 1G pool for this reason.
  expect(judge('mem=33280K kernelcore=16640K hugepagesz=1G hugepages=1 sysctl.vm.min_free_kbytes=8')).toEqual([
    expect.stringMatching(/^node 0 Normal: managed 8061 > present 4160/),
  ]);
  expect(judge('mem=33280K hugepagesz=1G hugepages=1 sysctl.vm.min_free_kbytes=8')).toEqual([]);
});

test('a boot suite case the kernel refuses loads and replays as a regression file (its refusal is its outcome)', async () => {
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'pinlab-boot-')), 'refused.json');
  const layout = { cmdline: 'mem=1M default_hugepagesz=-1', geometry: 'mini', maps: [], refusable: true };
  const cs = { layout, variant: 'v6.12', programs: {}, schedule: [], faults: {} };
  const doc = {
    suite: 'boot',
    seed: 1,
    path: '0',
    variant: 'v6.12',
    property: 'layout-sound',
    verdict: 'pass',
    case: cs,
  };
  fs.writeFileSync(file, JSON.stringify(doc));
  const r = await replayFile(loadRegression(file));
  expect([r.asRecorded, r.result.end, r.result.failures]).toEqual([true, 'refused', []]);
  // the same command line in a suite with actors is bad input
  expect(() => checkSetup({ ...cs, layout: { ...layout, refusable: false } })).toThrow(
    /^layout: default_hugepagesz: bad size/,
  );
});
