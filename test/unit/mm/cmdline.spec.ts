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
  ])('%s is a CmdlineError', (cmdline, re) => {
    expect(() => plan(cmdline)).toThrow(CmdlineError);
    expect(() => plan(cmdline)).toThrow(re);
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
    expect(p.zoneMovablePfn).toBe(800 * MiB);
    expect(p.warnings.join('\n')).toMatch(/kernelcore .* is at least its value/);
  });
  it('percentages are of all memory', () => {
    expect(plan('mem=1G kernelcore=50%').zoneMovablePfn).toBe(512 * MiB);
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
    const p = plan('mem=16G kernelcore=5G');
    expect(p.zoneMovablePfn).toBe(5 * GiB);
    expect(p.zoneSpans[2]).toEqual([4 * GiB, 5 * GiB]);
    expect(p.zoneSpans[3]).toEqual([5 * GiB, 16 * GiB]);
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
