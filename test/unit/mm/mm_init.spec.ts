import { boot, zone, GiB, MiB } from '../../helpers';
import { layoutJson } from '../../../harness/layout';
import { parseCmdline, parseGeometry } from '../../../mm/cmdline';
import { Memmap, H_MIN_FREE_KBYTES, PG_hugetlb, nodeSpan } from '../../../mm/memmap';
import { ZONE_MOVABLE, MIGRATE_CMA } from '../../../mm/mmzone';
import { checkAllocator } from '../../../properties/allocator_sound';
import { stateStore } from '../../../mm/memory_hotplug';
import { hstates } from '../../../mm/hugetlb';

const json = (cmdline: string, geometry?: string) => {
  const params = parseCmdline(cmdline, parseGeometry(geometry));
  return layoutJson(boot(cmdline, geometry), params);
};

describe('boot: zones (free_area_init, memblock_free_all)', () => {
  it('mem=1G movablecore=512M: DMA, DMA32 up to 512M, Movable above; reservations in DMA32', () => {
    const m = boot('mem=1G movablecore=512M');
    // as Debian 6.12's /proc/zoneinfo on QEMU pc: pfn 0 and 640K-1M are no RAM (trim_bios_range), the
    // first 1M is memblock-reserved (reserve_real_mode): present 3998, managed 3840
    expect(zone(m, 'DMA')).toMatchObject({ start_pfn: 1, spanned: 4095, present: 3998, managed: 3840 });
    const dma32 = zone(m, 'DMA32');
    expect(dma32).toMatchObject({ start_pfn: 4096, spanned: 512 * MiB - 4096, present: 512 * MiB - 4096 });
    // the kernel image and the early allocations below it stay memblock-reserved (Debian 6.12: 9557 pages)
    expect(dma32.managed).toBe(dma32.present - 9557);
    expect(zone(m, 'Normal')).toMatchObject({ spanned: 0, present: 0, managed: 0 });
    // top-down: the memmap (64 bytes per 4K frame of 1G = 16M), the dentry and inode hashes (1M + 512K
    // for ~1G of nr_kernel_pages) and 125 pages of other early allocations land at the top, in ZONE_MOVABLE
    const mov = zone(m, 'Movable');
    expect(mov).toMatchObject({
      start_pfn: 512 * MiB,
      spanned: 512 * MiB,
      managed: 512 * MiB - 4096 - 256 - 128 - 125,
    });
    // the running kernel's own memory is in the kernel zones; in ZONE_MOVABLE only the guest's user space:
    // init's initramfs in tmpfs (714 pages) and its own pages (42)
    expect(mov.managed - mov.free - mov.pcp_count).toBe(714 + 42);
    expect(checkAllocator(m).errors).toEqual([]);
  });

  it("managed pages as Debian's kernels report them on QEMU pc (mem=1G movablecore=768M)", () => {
    // /proc/zoneinfo of debian:6.12 (6.12.118) and debian:6.1 (6.1.0-57), read with pinlab kernel
    const m = boot('mem=1G movablecore=768M');
    expect([zone(m, 'DMA').managed, zone(m, 'DMA32').managed, zone(m, 'Movable').managed]).toEqual([
      3840, 51883, 192003,
    ]);
    const m61 = boot('mem=1G movablecore=768M', undefined, 'v6.1');
    expect([zone(m61, 'DMA').managed, zone(m61, 'DMA32').managed, zone(m61, 'Movable').managed]).toEqual([
      3840, 50122, 192006,
    ]);
  });

  it('the booted kernel keeps its own memory in the kernel zones: the DMA atomic pools, then slab and the rest', () => {
    const on = boot('mem=2G movablecore=1G');
    const off = boot('mem=2G movablecore=1G pinlab.kmem=none');
    expect(zone(off, 'DMA32').free).toBe(zone(off, 'DMA32').managed);
    // dma_atomic_pool_init(): 128K per GiB, rounded up to an order: 64 pages each for ~2G; the GFP_DMA one in DMA
    expect(zone(on, 'DMA').managed - zone(on, 'DMA').free).toBe(64);
    const used = zone(on, 'DMA32').managed - zone(on, 'DMA32').free - zone(on, 'DMA32').pcp_count;
    const totalram = (['DMA', 'DMA32', 'Movable'] as const).reduce((t, z) => t + zone(on, z).managed, 0);
    // and init's two PTE tables (pte_alloc_one(): GFP_PGTABLE_USER, a kernel zone)
    expect(used).toBe(2 * 64 + 4280 + Math.round((161 * totalram) / 262144) + 2);
    const mov = zone(on, 'Movable');
    expect(mov.managed - mov.free - mov.pcp_count).toBe(714 + 42); // the guest's user space
    const movOff = zone(off, 'Movable');
    expect(movOff.free).toBe(movOff.managed);
  });

  it('boot memory is handed out in MAX_ORDER blocks of MIGRATE_MOVABLE pageblocks', () => {
    const j = json('mem=1G movablecore=512M pinlab.kmem=none'); // no running kernel or user space yet
    const mov = j.zones[ZONE_MOVABLE]!;
    // less what memblock took from the top (4605 pages: the memmap, the hashes, early allocations)
    expect(mov.free_area.Movable![10]).toBe(Math.floor((512 * MiB - 4605) / 1024));
    expect(mov.pageblocks.Movable).toBe(256);
  });

  it('watermarks follow __setup_per_zone_wmarks (THP off: min_free_kbytes = sqrt(lowmem_kbytes * 16))', () => {
    const m = boot('mem=1G movablecore=512M transparent_hugepage=never');
    const lowmemKbytes = (zone(m, 'DMA').managed + zone(m, 'DMA32').managed) * 4;
    const minFree = Math.floor(Math.sqrt(lowmemKbytes * 16));
    expect(m.header[H_MIN_FREE_KBYTES]).toBe(minFree);
    const pagesMin = minFree >> 2;
    const lowmem = zone(m, 'DMA').managed + zone(m, 'DMA32').managed;
    const dma32 = zone(m, 'DMA32');
    const tmp = Math.floor((pagesMin * dma32.managed) / lowmem);
    expect(dma32.min).toBe(tmp);
    expect(dma32.low).toBe(tmp + Math.max(tmp >> 2, Math.floor((dma32.managed * 10) / 10000)));
    // ZONE_MOVABLE: clamp(managed / 1024, SWAP_CLUSTER_MAX, 128)
    expect(zone(m, 'Movable').min).toBe(Math.min(128, Math.max(32, Math.floor(zone(m, 'Movable').managed / 1024))));
  });

  it('THP raises min_free_kbytes to 2 + 9 pageblocks per kernel zone, at most 5% of lowmem (set_recommended_min_free_kbytes)', () => {
    const m = boot('mem=16G movablecore=8G');
    // 3 kernel zones (DMA, DMA32, Normal): 11 * 512 * 3 pages = 16896 pages = 67584 kB
    expect(m.header[H_MIN_FREE_KBYTES]).toBe(67584);
  });

  it('below 512M, THP is off and min_free_kbytes is the sqrt rule', () => {
    const m = boot('mem=256M');
    const lowmemKbytes = (zone(m, 'DMA').managed + zone(m, 'DMA32').managed) * 4;
    expect(m.header[H_MIN_FREE_KBYTES]).toBe(Math.floor(Math.sqrt(lowmemKbytes * 16)));
  });

  it('lowmem_reserve: lower zones protect managed(higher)/ratio; ratio 0 for Movable', () => {
    const m = boot('mem=1G movablecore=512M');
    const dma32 = zone(m, 'DMA32').managed;
    const mov = zone(m, 'Movable').managed;
    expect(zone(m, 'DMA').protection).toEqual([
      0,
      Math.floor(dma32 / 256),
      Math.floor(dma32 / 256),
      Math.floor((dma32 + mov) / 256),
      Math.floor((dma32 + mov) / 256),
    ]);
    expect(zone(m, 'DMA32').protection).toEqual([0, 0, 0, Math.floor(mov / 256), Math.floor(mov / 256)]);
    expect(zone(m, 'Movable').protection).toEqual([0, 0, 0, 0, 0]);
  });

  it('cma= makes MIGRATE_CMA pageblocks that are managed and counted in cma', () => {
    const m = boot('mem=16G kernelcore=5G cma=256M');
    const n = zone(m, 'Normal');
    expect(n.cma).toBe(256 * MiB);
    expect(n.pageblocks.CMA).toBe(128);
    expect(n.nr_free_cma).toBe(256 * MiB);
    expect(m.getPageblockMigratetype(4 * GiB)).toBe(MIGRATE_CMA);
    expect(checkAllocator(m).errors).toEqual([]);
  });

  it('hugepages=: 2M pages come from the buddy with GFP_HIGHUSER_MOVABLE, so ZONE_MOVABLE first', () => {
    const j = json('mem=1G movablecore=512M hugepages=8');
    expect(j.hugetlb).toEqual([{ page_size: 2 << 20, nr_hugepages: 8, free_hugepages: 8 }]);
    const m = boot('mem=1G movablecore=512M hugepages=8');
    let inMovable = 0;
    for (let p = 0; p < m.nrFrames; p += 512)
      if (m.flags[p]! & PG_hugetlb && m.pageZonenum(p) === ZONE_MOVABLE) inMovable++;
    expect(inMovable).toBe(8);
  });

  it('hugepagesz=1G: gigantic pages come from memblock, top-down, after the memmap', () => {
    // hugepages_setup() runs after setup_arch(), so sparse_init() already took the top of RAM for the
    // memmap. QEMU pc with 4G: RAM to 3G - 128K, then 4G-5G with the memmap at its top; [2G, 3G) ends in
    // SeaBIOS's reserved tables; [0, 1G) holds the kernel image. Debian 6.12 on the same machine (-cpu
    // qemu64,+pdpe1gb) says the same: "HugeTLB: allocating 2 of page size 1.00 GiB failed.  Only
    // allocated 1 hugepages."
    const j = json('mem=4G hugepagesz=1G hugepages=2');
    expect(j.hugetlb).toEqual([{ page_size: 1 << 30, nr_hugepages: 1, free_hugepages: 1 }]);
    expect(j.warnings).toContain('HugeTLB: allocating 2 of page size 1.00 GiB failed.  Only allocated 1 hugepages.');
    const m = boot('mem=4G hugepagesz=1G hugepages=2');
    expect(m.flags[4 * GiB]! & PG_hugetlb).toBeFalsy();
    expect(m.flags[2 * GiB]! & PG_hugetlb).toBeFalsy();
    expect(m.flags[1 * GiB]! & PG_hugetlb).toBeTruthy();
  });

  it('too many hugepages: allocates what it can and warns as the kernel does', () => {
    const j = json('mem=512K hugepages=100 sysctl.vm.min_free_kbytes=16', 'mini');
    expect(j.hugetlb[0]!.nr_hugepages).toBeLessThan(100);
    expect(j.warnings.join('\n')).toMatch(
      /HugeTLB: allocating 100 of page size 32.00 KiB failed\. {2}Only allocated \d+ hugepages\./,
    );
  });

  it('boots a 16G machine with hot-pluggable memory above it, offline until onlined', () => {
    const j = json('mem=16G pinlab.hotplug=1G');
    const hot = j.blocks.filter((b) => !b.boot);
    expect(hot.length).toBe(8);
    expect(hot.every((b) => b.state === 'offline' && b.valid_zones === 'Normal Movable')).toBe(true);
    expect(hot[0]!.start_pfn).toBe(17 * GiB); // QEMU pc: 3G below 4G, 13G above it
  });

  it('below 4G, hot-pluggable memory sits above 4G as on x86 (a hole between)', () => {
    const j = json('mem=1G pinlab.hotplug=256M');
    expect(j.blocks.filter((b) => !b.boot).map((b) => b.start_pfn)).toEqual([4 * GiB, 4 * GiB + 128 * MiB]);
    expect(j.blocks.length).toBe(8 + 2);
  });

  it('block 0 spans DMA and DMA32, so it shows valid_zones none', () => {
    const j = json('mem=1G');
    expect(j.blocks[0]).toMatchObject({ index: 0, state: 'online', valid_zones: 'none', removable: 1 });
    expect(j.blocks[1]).toMatchObject({ valid_zones: 'DMA32' });
  });

  it('a miniature machine boots', () => {
    const m: Memmap = boot('mem=512K movablecore=256K', 'mini');
    expect(m.nrFrames).toBe(128);
    expect(zone(m, 'Normal')).toMatchObject({ start_pfn: 0, spanned: 64, present: 64, managed: 61 });
    expect(zone(m, 'Movable')).toMatchObject({ start_pfn: 64, spanned: 64, managed: 64 });
    expect(checkAllocator(m).errors).toEqual([]);
  });
});

describe('boot: what the boot suite found (layout-sound)', () => {
  it('a CMA area across Normal and Movable is not activated (cma_activate_area()): no area, its pages plain memory', () => {
    const j = json('mem=1M movablecore=512K cma=64K@480K sysctl.vm.min_free_kbytes=16', 'mini');
    expect(j.cma_areas).toEqual([]);
    expect(j.warnings).toContainEqual(expect.stringMatching(/^CMA area cma could not be activated: pfn 120-136/));
    expect(j.zones.map((z) => z.cma)).toEqual([0, 0, 0, 0, 0]);
    // one zone: activated
    expect(json('mem=1M movablecore=512K cma=64K@384K sysctl.vm.min_free_kbytes=16', 'mini').cma_areas).toEqual([
      { base_pfn: 96, count: 16 },
    ]);
  });

  it('onlining a hot-added block grows its node (resize_pgdat_range())', () => {
    const m = boot('mem=512K pinlab.hotplug=32K memhp_default_state=online_kernel sysctl.vm.min_free_kbytes=8', 'mini');
    expect(nodeSpan(m, 0)).toEqual([0, 160]);
    expect(zone(m, 'Normal')).toMatchObject({ start_pfn: 0, spanned: 160 });
  });

  it('default_hugepagesz= is named in its own errors', () => {
    expect(() => parseCmdline('mem=1M default_hugepagesz=-1', parseGeometry('mini'))).toThrow(
      /^default_hugepagesz: bad size '-1'/,
    );
    expect(() => parseCmdline('mem=1M default_hugepagesz=4M', parseGeometry('mini'))).toThrow(
      /^default_hugepagesz: unsupported page size 4M/,
    );
  });
});

describe('gigantic pages (hugepagesz=1G: a PUD, 4096 mini frames)', () => {
  it('a boot-time gigantic page never spans two nodes (memblock regions are split at node boundaries)', () => {
    // nodes at pfn 0-1430, 1430-4160, 4160-8320 (the last takes the rest): both 4096-aligned places cross one
    const j = json('mem=33280K pinlab.numa_nodes=5720K,10920K,520K hugepagesz=1G hugepages=1', 'mini');
    expect(j.hugetlb.map((h) => h.nr_hugepages)).not.toContain(1);
    for (const n of j.nodes!) for (const z of n.zones) expect(z.managed).toBeLessThanOrEqual(z.present);
    // a node with room for one: node 1 is 4250-12544
    const m = boot('mem=49M pinlab.numa_nodes=17000K hugepagesz=1G hugepages=1', 'mini');
    const heads = [...Array(m.nrFrames).keys()].filter((p) => m.flags[p]! & PG_hugetlb && m.compoundHead(p) === p);
    expect(heads).toEqual([8192]);
  });

  it('offlining a block inside a free gigantic page dissolves the whole page (dissolve_free_hugetlb_folios())', () => {
    const m = boot('mem=33280K hugepagesz=1G hugepages=1 sysctl.vm.min_free_kbytes=8', 'mini');
    expect(stateStore(m, 129, 'offline')).toBe(0); // pfn 4128-4160, inside the page at 4096
    expect(
      json('mem=33280K hugepagesz=1G hugepages=1 sysctl.vm.min_free_kbytes=8', 'mini').hugetlb[0]!.nr_hugepages,
    ).toBe(1);
    expect(hstates(m).map((h) => h.nr)).toEqual([0]); // dissolved: the pool is empty
    expect(checkAllocator(m).errors).toEqual([]);
  });
});

it("numa=fake's interleaved nodes: each zone's present pages are its own node's (__absent_pages_in_range(nid))", () => {
  // QEMU pc's 192M with three fake nodes: node 0 gets two intervals and spans node 1's and node 2's frames
  const j = json('mem=192M numa=fake=3 pinlab.kmem=none', 'x86_64');
  expect(j.nodes!.map((n) => [n.start_pfn, n.end_pfn])).toEqual([
    [1, 49152],
    [16384, 32768],
    [32768, 40960],
  ]);
  const present = j.nodes!.flatMap((n) => n.zones).reduce((a, z) => a + z.present, 0);
  const ram = j.memory_ranges.reduce((a, [s, e]) => a + e - s, 0);
  expect(present).toBe(ram);
});

it("a memmap= hole among numa=fake's interleaved nodes: each node's RAM keeps its own zone's links (memmap_init())", () => {
  const j = json('mem=224M memmap=32M#56M numa=fake=3', 'x86_64');
  for (const n of j.nodes!)
    for (const z of n.zones) expect([n.nid, z.name, z.managed <= z.present]).toEqual([n.nid, z.name, true]);
  const present = j.nodes!.flatMap((n) => n.zones).reduce((a, z) => a + z.present, 0);
  expect(present).toBe(j.memory_ranges.reduce((a, [s, e]) => a + e - s, 0));
});
