import { memparse, parseCmdline, parseGeometry, CmdlineError } from '../../../mm/cmdline';
import { planBoot } from '../../../mm/mm_init';
import { X86_64 } from '../../../mm/memmap';
import { GiB, MiB } from '../../helpers';

const plan = (cmdline: string) => planBoot(parseCmdline(cmdline, { ...X86_64 }));

describe('memparse (lib/cmdline.c)', () => {
  it('takes K/M/G/T suffixes in either case, hex and octal', () => {
    expect(memparse('mem', '512K')).toBe(512 * 1024);
    expect(memparse('mem', '1g')).toBe(1 << 30);
    expect(memparse('mem', '2T')).toBe(2 * 2 ** 40);
    expect(memparse('mem', '0x1000')).toBe(4096);
    expect(memparse('mem', '010')).toBe(8);
  });
  it.each(['1Q', 'G', '', '1.5G', '-1M'])('rejects %p with a line naming the parameter', (v) => {
    expect(() => memparse('mem', v)).toThrow(/^mem: bad size/);
  });
});

describe('parseCmdline', () => {
  it.each([
    ['foo=1', /unknown kernel parameter 'foo=1'/],
    ['mem=0', /mem: size 0/],
    ['kernelcore=101%', /kernelcore: 101% is more than 100%/],
    ['kernelcore=mirror', /mirror/],
    ['memhp_default_state=sideways', /memhp_default_state/],
    ['memory_hotplug.online_policy=random', /online_policy/],
    ['hugepagesz=4M hugepages=2', /hugepagesz: unsupported page size 4M/],
    ['transparent_hugepage=sometimes', /transparent_hugepage/],
    ['movable_node=1', /movable_node: takes no value/],
    ['cma=10%', /cma: percentages/],
    ['mem=64K', /mem: 65536 bytes is too small/],
    ['memmap=1G%0x100000-1+2', /memmap: .* % form/],
    ['memmap=1Gx', /memmap: bad size/],
    ['pinlab.machine=isapc', /pinlab.machine: 'isapc' is not pc or q35/],
    ['pinlab.kmem=maybe', /pinlab.kmem: 'maybe' is not debian or none/],
    ['vfio_iommu_type1.dma_entry_limit=-1', /vfio_iommu_type1.dma_entry_limit: expected a non-negative integer/],
    ['vfio_iommu_type1.dma_entry_limit=4294967296', /does not fit a uint/],
    ['pinlab.iommu_aw_bits=40', /pinlab.iommu_aw_bits: '40' is not 39 or 48/],
    ['memmap=exactmap', /no usable RAM left/],
    ['memmap=4M$20M', /memmap: the kernel image and memmap \(16384K-.*\) are not all usable RAM/],
  ])('%s is a CmdlineError', (cmdline, re) => {
    expect(() => plan(cmdline)).toThrow(CmdlineError);
    expect(() => plan(cmdline)).toThrow(re);
  });
  it("takes the device models' parameters: a module's (vfio_iommu_type1.dma_entry_limit=) and the IOMMU's width", () => {
    expect(parseCmdline('mem=1G', { ...X86_64 }).deviceParams).toEqual({});
    const p = parseCmdline('vfio_iommu_type1.dma_entry_limit=7 pinlab.iommu_aw_bits=48', { ...X86_64 });
    expect(p.deviceParams).toEqual({ dma_entry_limit: 7, addr_width: 48 });
  });

  it('takes min_free_kbytes= as the sysctl, with a warning that it is not a boot parameter', () => {
    const p = parseCmdline('min_free_kbytes=4096', { ...X86_64 });
    expect(p.minFreeKbytes).toBe(4096);
    expect(p.warnings.join('\n')).toMatch(/not a kernel boot parameter/);
  });
  it('parses geometry presets and overrides', () => {
    expect(parseGeometry('mini')).toMatchObject({ pageblockOrder: 3, maxOrder: 4, blockPages: 32 });
    expect(parseGeometry('mini,cpus=2,block_pages=64')).toMatchObject({ nrCpus: 2, blockPages: 64 });
    expect(() => parseGeometry('mini,block_pages=8')).toThrow(
      /block_pages 8 must be a power of two of at least MAX_ORDER_NR_PAGES/,
    );
    expect(() => parseGeometry('mini,colour=red')).toThrow(/unknown key 'colour'/);
  });
});

describe('find_zone_movable_pfns_for_nodes (mm/mm_init.c)', () => {
  it('rounds the start of ZONE_MOVABLE up to MAX_ORDER_NR_PAGES', () => {
    // kernelcore=101M: DMA's 16M counts as kernelcore; DMA32 keeps the rest; 101M rounds up to 104M
    expect(plan('mem=1G kernelcore=101M').zoneMovablePfn).toBe(104 * MiB);
  });
  it('movablecore= is rounded up to MAX_ORDER_NR_PAGES and taken from the top', () => {
    expect(plan('mem=1G movablecore=301M').zoneMovablePfn).toBe(GiB - 304 * MiB);
  });
  it('with both, kernelcore is at least its value', () => {
    const p = plan('mem=1G kernelcore=800M movablecore=512M');
    // 800M of present pages span 800M plus the 98 pages of holes below 1M: rounded up to 804M
    expect(p.zoneMovablePfn).toBe(804 * MiB);
    expect(p.warnings.join('\n')).toMatch(/kernelcore .* is at least its value/);
  });
  it('percentages are of present pages (early_calculate_totalpages)', () => {
    // 50% of 262046 present pages = 131023, over the holes below 1M: 131121, rounded up to 516M
    expect(plan('mem=1G kernelcore=50%').zoneMovablePfn).toBe(516 * MiB);
    expect(plan('mem=1G movablecore=25%').zoneMovablePfn).toBe(768 * MiB);
  });
  it('movablecore covering all memory creates no ZONE_MOVABLE (kernelcore becomes 0)', () => {
    const p = plan('mem=1G movablecore=2G');
    expect(p.zoneMovablePfn).toBe(0);
    expect(p.warnings.join('\n')).toMatch(/no ZONE_MOVABLE/);
  });
  it('kernelcore covering all memory creates no ZONE_MOVABLE', () => {
    expect(plan('mem=1G kernelcore=1G').zoneMovablePfn).toBe(0);
  });
  it('no ZONE_MOVABLE beyond the end of the node once rounded (2022 fix)', () => {
    const p = plan('mem=1G kernelcore=1022M');
    expect(p.zoneMovablePfn).toBe(0);
    expect(p.zoneSpans[3]).toEqual([0, 0]);
  });
  it('above 4G, ZONE_MOVABLE is carved from Normal and DMA/DMA32 count as kernelcore (9afaf30f7a1a layout)', () => {
    // QEMU pc: 3G below the PCI hole (less 128K of SeaBIOS tables and the holes below 1M), 13G above 4G
    const p = plan('mem=16G kernelcore=5G');
    const below4g = 158 + (3 * GiB - 32 - 256);
    expect(p.memRanges).toEqual([
      [1, 0x9f],
      [256, 3 * GiB - 32],
      [4 * GiB, 17 * GiB],
    ]);
    expect(p.zoneMovablePfn).toBe(Math.ceil((4 * GiB + 5 * GiB - below4g) / 1024) * 1024);
    expect(p.zoneMovablePfn).toBe(6 * GiB + 4 * MiB);
    expect(p.zoneSpans[2]).toEqual([4 * GiB, 6 * GiB + 4 * MiB]);
    expect(p.zoneSpans[3]).toEqual([6 * GiB + 4 * MiB, 17 * GiB]);
  });
  it('below 4G, ZONE_MOVABLE is carved from DMA32', () => {
    const p = plan('mem=1G movablecore=512M');
    expect(p.zoneSpans[1]).toEqual([16 * MiB, 512 * MiB]);
    expect(p.zoneSpans[2]).toEqual([0, 0]);
    expect(p.zoneSpans[3]).toEqual([512 * MiB, GiB]);
  });
  it('movable_node ignores kernelcore/movablecore', () => {
    const p = plan('mem=1G movablecore=512M movable_node');
    expect(p.zoneMovablePfn).toBe(0);
    expect(p.warnings.join('\n')).toMatch(/movable_node/);
  });
});

describe('find_zone_movable_pfns_for_nodes over the e820 map (as Debian 6.12 boots on QEMU pc)', () => {
  // the kernel's boot log: "Movable zone start for each node / Node 0: 0x0000000020400000" (kernelcore=512M)
  // and 0x000000002d400000 (movablecore=300M), on QEMU -m 1026M with mem=1024M
  it('kernelcore=512M counts present pages, so ZONE_MOVABLE starts one MAX_ORDER block above 512M', () => {
    expect(plan('mem=1G kernelcore=512M').zoneMovablePfn).toBe(0x20400);
  });
  it('movablecore=300M leaves 262046 - 76800 present pages to the kernel', () => {
    expect(plan('mem=1G movablecore=300M').zoneMovablePfn).toBe(0x2d400);
  });
  it('on q35 above 2.75G, RAM splits at 2G and the rest sits above 4G', () => {
    const p = plan('mem=6G pinlab.machine=q35 movablecore=1G');
    expect(p.memRanges).toEqual([
      [1, 0x9f],
      [256, 2 * GiB - 32],
      [4 * GiB, 8 * GiB],
    ]);
    expect(p.zoneMovablePfn).toBe(7 * GiB);
  });
});

describe('cma_declare_contiguous_nid (mm/cma.c)', () => {
  it('places the area bottom-up from 4G when memory extends above it', () => {
    expect(plan('mem=16G cma=256M').cmaAreas).toEqual([{ basePfn: 4 * GiB, count: 256 * MiB }]);
  });
  it('places it top-down below the end of memory otherwise', () => {
    expect(plan('mem=1G cma=64M').cmaAreas).toEqual([{ basePfn: GiB - 64 * MiB, count: 64 * MiB }]);
  });
  it('honours a fixed base and rounds the size to pageblocks', () => {
    expect(plan('mem=1G cma=3M@256M').cmaAreas).toEqual([{ basePfn: 256 * MiB, count: 4 * MiB }]);
  });
  it('rejects a fixed base that is not pageblock aligned', () => {
    expect(() => plan('mem=1G cma=4M@1M')).toThrow(/not aligned to a pageblock/);
  });
  it('fails softly (warning, no area) when the fixed range is taken', () => {
    const p = plan('mem=1G cma=4M@16M');
    expect(p.cmaAreas).toEqual([]);
    expect(p.warnings.join('\n')).toMatch(/EBUSY/);
  });
});
