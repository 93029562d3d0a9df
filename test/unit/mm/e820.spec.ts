import { boot, zone, GiB, MiB } from '../../helpers';
import { layoutJson, layoutText } from '../../../harness/layout';
import { parseCmdline, parseGeometry } from '../../../mm/cmdline';
import {
  bootE820,
  e820PrintTable,
  e820RangeRemove,
  e820UpdateTable,
  qemuE820,
  qemuRam,
  trimBiosRange,
  memblockRanges,
  E820_TYPE_RAM,
  E820_TYPE_RESERVED,
} from '../../../mm/e820';
import { stateStore, validZonesShow } from '../../../mm/memory_hotplug';
import { EINVAL } from '../../../mm/errno';
import { planBoot } from '../../../mm/mm_init';
import { X86_64 } from '../../../mm/memmap';
import { checkAllocator } from '../../../properties/allocator_sound';

const plan = (cmdline: string) => planBoot(parseCmdline(cmdline, { ...X86_64 }));
const json = (cmdline: string) => layoutJson(boot(cmdline), parseCmdline(cmdline, parseGeometry(undefined)));

describe("QEMU's e820 map (SeaBIOS on pc and q35, as Debian 6.12 prints it)", () => {
  it('pc, -m 1026M with mem=1024M: the BIOS-e820 and user lines of the boot log', () => {
    const e = bootE820('pc', qemuRam(GiB * 4096, 'pc').ramBytes, [{ kind: 'limit', bytes: 1 << 30 }]);
    expect(e820PrintTable(e.firmware, 'BIOS-e820')).toBe(
      [
        'BIOS-e820: [mem 0x0000000000000000-0x000000000009fbff] usable',
        'BIOS-e820: [mem 0x000000000009fc00-0x000000000009ffff] reserved',
        'BIOS-e820: [mem 0x00000000000f0000-0x00000000000fffff] reserved',
        'BIOS-e820: [mem 0x0000000000100000-0x00000000401dffff] usable',
        'BIOS-e820: [mem 0x00000000401e0000-0x00000000401fffff] reserved',
        'BIOS-e820: [mem 0x00000000fffc0000-0x00000000ffffffff] reserved',
        'BIOS-e820: [mem 0x000000fd00000000-0x000000ffffffffff] reserved',
        '',
      ].join('\n'),
    );
    expect(e820PrintTable(e.user!, 'user')).toMatch(/user: \[mem 0x0000000000100000-0x000000003fffffff\] usable\n/);
    // trim_bios_range(): pfn 0 reserved, 640K-1M never RAM; memblock_trim_memory() drops the partial page
    expect(e.memRanges).toEqual([
      [1, 0x9f],
      [0x100, 0x40000],
    ]);
  });
  it('pc splits RAM at 3G once it reaches 3.5G; q35 at 2G once it reaches 2.75G (MMCONFIG at 0xb0000000)', () => {
    const ram = (m: 'pc' | 'q35', bytes: number) =>
      qemuE820(m, bytes)
        .filter((x) => x.type === E820_TYPE_RAM)
        .map((x) => [x.addr, x.addr + x.size]);
    expect(ram('pc', 6 * 2 ** 30)).toEqual([
      [0, 0x9fc00],
      [0x100000, 0xbffe0000],
      [2 ** 32, 0x1c0000000],
    ]);
    expect(ram('pc', 3.25 * 2 ** 30)[1]).toEqual([0x100000, 0xcffe0000]);
    expect(ram('q35', 6 * 2 ** 30)[2]).toEqual([2 ** 32, 0x200000000]);
    expect(ram('q35', 2.5 * 2 ** 30)).toHaveLength(2);
    expect(qemuE820('q35', 6 * 2 ** 30)).toContainEqual({
      addr: 0xb0000000,
      size: 0x10000000,
      type: E820_TYPE_RESERVED,
    });
  });
  it('trim_bios_range: pfn 0 becomes reserved, RAM in 640K-1M is removed', () => {
    const t = [{ addr: 0, size: 0x200000, type: E820_TYPE_RAM }];
    trimBiosRange(t);
    expect(t).toEqual([
      { addr: 0, size: 0x1000, type: E820_TYPE_RESERVED },
      { addr: 0x1000, size: 0x9f000, type: E820_TYPE_RAM },
      { addr: 0x100000, size: 0x100000, type: E820_TYPE_RAM },
    ]);
    expect(memblockRanges(t)).toEqual([
      [1, 0xa0],
      [0x100, 0x200],
    ]);
  });
  it('e820__update_table: the larger type wins an overlap; e820__range_remove splits an entry', () => {
    const t = [
      { addr: 0, size: 0x10000, type: E820_TYPE_RAM },
      { addr: 0x4000, size: 0x1000, type: E820_TYPE_RESERVED },
    ];
    e820UpdateTable(t);
    expect(t.map((x) => x.type)).toEqual([E820_TYPE_RAM, E820_TYPE_RESERVED, E820_TYPE_RAM]);
    e820RangeRemove(t, 0x8000, 0x1000, E820_TYPE_RAM);
    expect(t.map((x) => [x.addr, x.size])).toEqual([
      [0, 0x4000],
      [0x4000, 0x1000],
      [0x5000, 0x3000],
      [0x9000, 0x7000],
    ]);
  });
});

describe('pinlab layout prints the boot log', () => {
  it('mem=1G kernelcore=512M: as Debian 6.12 on QEMU pc -m 1026M prints it', () => {
    const text = layoutText(boot('mem=1G kernelcore=512M'), parseCmdline('mem=1G kernelcore=512M', X86_64));
    expect(text).toContain(
      [
        'Zone ranges:',
        '  DMA      [mem 0x0000000000001000-0x0000000000ffffff]',
        '  DMA32    [mem 0x0000000001000000-0x000000003fffffff]',
        '  Normal   empty',
        '  Device   empty',
        'Movable zone start for each node',
        '  Node 0: 0x0000000020400000',
        'Early memory node ranges',
        '  node   0: [mem 0x0000000000001000-0x000000000009efff]',
        '  node   0: [mem 0x0000000000100000-0x000000003fffffff]',
      ].join('\n'),
    );
    expect(text).toContain('BIOS-e820: [mem 0x0000000000000000-0x000000000009fbff] usable\n');
    expect(text).toContain('user: [mem 0x0000000000100000-0x000000003fffffff] usable\n');
  });
});

describe('parse_memmap_one (arch/x86/kernel/e820.c)', () => {
  it('nn$ss reserves a range of RAM: a hole in memblock, fewer present pages', () => {
    const p = plan('mem=1G memmap=64M$0x10000000');
    expect(p.memRanges).toEqual([
      [1, 0x9f],
      [0x100, 256 * MiB],
      [320 * MiB, GiB],
    ]);
    const j = json('mem=1G memmap=64M$0x10000000');
    expect(j.e820!.user).toContainEqual({ addr: 0x10000000, size: 64 << 20, type: E820_TYPE_RESERVED });
    const dma32 = j.zones[1]!;
    expect(dma32.spanned - dma32.present).toBe(64 * MiB);
  });
  it('nn#ss is ACPI data and nn!ss persistent memory: neither is RAM', () => {
    const a = plan('mem=1G memmap=4M#0x20000000');
    const b = plan('mem=1G memmap=4M!0x20000000');
    expect(a.memRanges).toEqual(b.memRanges);
    expect(a.memRanges[2]).toEqual([512 * MiB + 4 * MiB, GiB]);
    const text = layoutText(boot('mem=1G memmap=4M!0x20000000'), parseCmdline('mem=1G memmap=4M!0x20000000', X86_64));
    expect(text).toMatch(/user: \[mem 0x0000000020000000-0x00000000203fffff\] persistent \(type 12\)/);
  });
  it('nn@ss adds RAM; nn alone is an address limit like mem=', () => {
    // the SeaBIOS tables above 1G stay reserved: RAM added over them wins nothing there (type 2 > type 1)
    expect(plan('mem=1G memmap=256M@0x100000000').memRanges[2]).toEqual([4 * GiB, 4 * GiB + 256 * MiB]);
    expect(plan('mem=1G memmap=512M').memRanges[1]).toEqual([0x100, 512 * MiB]);
  });
});

describe('zones and memory blocks follow the map', () => {
  it('mem=1G kernelcore=512M: memory4 straddles DMA32 and Movable, so valid_zones none and offline -EINVAL', () => {
    const m = boot('mem=1G kernelcore=512M');
    expect(zone(m, 'Movable').start_pfn).toBe(0x20400);
    expect(validZonesShow(m, 4)).toBe('none');
    expect(stateStore(m, 4, 'offline')).toBe(-EINVAL);
    expect(validZonesShow(m, 5)).toBe('Movable');
    expect(checkAllocator(m).errors).toEqual([]);
  });
  it('mem=6G: the blocks of the PCI hole (3G-4G) are not present; Normal is all above 4G', () => {
    const m = boot('mem=6G');
    const j = layoutJson(m, parseCmdline('mem=6G', X86_64));
    const idx = j.blocks.map((b) => b.index);
    expect(idx).toContain(23);
    expect(idx.filter((b) => b >= 24 && b < 32)).toEqual([]);
    expect(idx[idx.length - 1]).toBe(55);
    expect(zone(m, 'Normal')).toMatchObject({ start_pfn: 4 * GiB, spanned: 3 * GiB, present: 3 * GiB });
    expect(zone(m, 'DMA32')).toMatchObject({ spanned: 4 * GiB - 4096, present: 3 * GiB - 32 - 4096 });
    // block 23 ends in SeaBIOS's reserved 128K: a hole, so it cannot go offline (offline_pages)
    expect(stateStore(m, 23, 'offline')).toBe(-EINVAL);
    expect(checkAllocator(m).errors).toEqual([]);
  });
  it('a miniature machine stays one flat range from pfn 0', () => {
    const p = planBoot(parseCmdline('mem=512K', parseGeometry('mini')));
    expect(p.memRanges).toEqual([[0, 128]]);
    expect(p.e820).toBeNull();
    expect(() => parseCmdline('memmap=1K$0', parseGeometry('mini'))).toThrow(/no e820 map/);
  });
});
