import { boot, zone, GiB } from '../../helpers';
import {
  stateStore,
  validZonesShow,
  stateShow,
  removableShow,
  zoneForPfnRange,
  MMOP_ONLINE,
  autoMovableCanOnlineMovable,
  registerMemoryNotifier,
} from '../../../mm/memory_hotplug';
import { ZONE_MOVABLE, ZONE_NORMAL } from '../../../mm/mmzone';
import { MEM_GOING_ONLINE } from '../../../mm/memmap';
import { EINVAL, ENODEV, EBUSY } from '../../../mm/errno';
import { checkAllocator } from '../../../properties/allocator_sound';
import { allocPages, freePages } from '../../../mm/page_alloc';
import { GFP_HIGHUSER_MOVABLE } from '../../../mm/gfp';

// 16G of boot memory on QEMU pc: 3G below the PCI hole (blocks 0..23), 13G above 4G (blocks 32..135);
// 1G hot-pluggable after it (blocks 136..143)
const HOT = 136;

describe('memory block onlining (drivers/base/memory.c, mm/memory_hotplug.c)', () => {
  it('contig-zones: hot-added memory next to nothing onlines to the kernel zone by default', () => {
    const m = boot('mem=16G pinlab.hotplug=1G');
    expect(validZonesShow(m, HOT)).toBe('Normal Movable');
    expect(stateStore(m, HOT, 'online')).toBe(0);
    expect(stateShow(m, HOT)).toBe('online');
    expect(validZonesShow(m, HOT)).toBe('Normal');
    expect(zone(m, 'Normal').present).toBe(13 * GiB + 32768);
  });

  it("contig-zones: a block inside ZONE_MOVABLE's span inherits Movable; one merely adjacent does not", () => {
    const m = boot('mem=16G movablecore=4G pinlab.hotplug=1G');
    expect(validZonesShow(m, HOT)).toBe('Normal Movable'); // zone_intersects() needs overlap
    expect(stateStore(m, HOT, 'online_movable')).toBe(0);
    expect(stateStore(m, HOT + 2, 'online_movable')).toBe(0);
    expect(validZonesShow(m, HOT + 1)).toBe('Movable Normal');
    expect(stateStore(m, HOT + 1, 'online')).toBe(0);
    expect(validZonesShow(m, HOT + 1)).toBe('Movable');
  });

  it('movable_node makes Movable the default for blocks outside any zone', () => {
    const m = boot('mem=16G movable_node pinlab.hotplug=1G');
    expect(validZonesShow(m, HOT)).toBe('Movable Normal');
  });

  it('online_movable / online_kernel pick the zone; there is no zone validity check in 6.12', () => {
    const m = boot('mem=16G movablecore=4G pinlab.hotplug=1G');
    expect(stateStore(m, HOT, 'online_movable')).toBe(0);
    // online_kernel on the next block, between Movable blocks: accepted, zones overlap
    expect(stateStore(m, HOT + 2, 'online_movable')).toBe(0);
    expect(stateStore(m, HOT + 1, 'online_kernel')).toBe(0);
    expect(validZonesShow(m, HOT + 1)).toBe('Normal');
    expect(checkAllocator(m).errors).toEqual([]);
  });

  it('online_pages() puts the block at the tail (__free_pages_core FPI_TO_TAIL, __putback_isolated_page, move_to_free_list)', () => {
    // mini: blocks 4..7 are ZONE_MOVABLE (pfn 128..255)
    const m = boot('mem=1M movablecore=512K sysctl.vm.min_free_kbytes=16', 'mini');
    expect(stateStore(m, 4, 'offline')).toBe(0);
    expect(stateStore(m, 4, 'online_movable')).toBe(0);
    // memory4 is back at the tail of the free lists: the zone's older free memory (memory5) goes first
    const p = allocPages(m, GFP_HIGHUSER_MOVABLE, 0);
    expect(p).toBe(5 * m.blockPages);
    freePages(m, p, 0);
    expect(checkAllocator(m).errors).toEqual([]);
  });

  it('newly onlined memory is free, MIGRATE_MOVABLE, and raises managed and the watermarks', () => {
    const m = boot('mem=16G movablecore=4G pinlab.hotplug=1G');
    const before = zone(m, 'Movable');
    expect(stateStore(m, HOT, 'online_movable')).toBe(0);
    const after = zone(m, 'Movable');
    expect(after.managed - before.managed).toBe(32768);
    expect(after.free - before.free).toBe(32768);
    expect(after.pageblocks.Movable - before.pageblocks.Movable!).toBe(64);
    expect(after.pageblocks.Isolate).toBe(0);
    expect(after.high).toBeGreaterThanOrEqual(before.high);
  });

  it('state_store errors: already online, already offline, bad string, no such block', () => {
    const m = boot('mem=16G pinlab.hotplug=1G');
    expect(stateStore(m, 5, 'online')).toBe(-EINVAL);
    expect(stateStore(m, HOT, 'offline')).toBe(-EINVAL);
    expect(stateStore(m, HOT, 'online_sideways')).toBe(-EINVAL);
    expect(stateStore(m, 9999, 'online')).toBe(-ENODEV);
    expect(removableShow(m, 5)).toBe('1');
  });

  it('a MEM_GOING_ONLINE notifier error fails onlining and leaves the block offline', () => {
    const m = boot('mem=16G pinlab.hotplug=1G');
    const unregister = registerMemoryNotifier((_m, action) => (action === MEM_GOING_ONLINE ? -EBUSY : 0));
    try {
      expect(stateStore(m, HOT, 'online')).toBe(-EBUSY);
    } finally {
      unregister();
    }
    expect(stateShow(m, HOT)).toBe('offline');
    expect(zone(m, 'Normal').present).toBe(13 * GiB);
    expect(checkAllocator(m).errors).toEqual([]);
    expect(stateStore(m, HOT, 'online')).toBe(0);
  });

  it('memhp_default_state=online_movable onlines hot-added memory at boot', () => {
    const m = boot('mem=16G pinlab.hotplug=1G memhp_default_state=online_movable');
    for (let b = HOT; b < HOT + 8; b++) expect(validZonesShow(m, b)).toBe('Movable');
  });

  it('auto-movable: MOVABLE while MOVABLE+CMA : KERNEL_EARLY stays within auto_movable_ratio', () => {
    // 16G early kernel memory less the holes (3G below 4G, 13G above); ratio 10%: 12 blocks of 128M
    const m = boot(
      'mem=16G pinlab.hotplug=2G memory_hotplug.online_policy=auto-movable memory_hotplug.auto_movable_ratio=10',
    );
    const zones: number[] = [];
    for (let b = HOT; b < HOT + 16; b++) {
      zones.push(zoneForPfnRange(m, MMOP_ONLINE, b * m.blockPages, m.blockPages));
      expect(stateStore(m, b, 'online')).toBe(0);
    }
    const nMovable = zones.filter((z) => z === ZONE_MOVABLE).length;
    const kernelEarly = zone(m, 'DMA').present + zone(m, 'DMA32').present + 13 * GiB; // present_early_pages
    expect(nMovable).toBe(Math.floor(Math.floor((10 * kernelEarly) / 100) / m.blockPages));
    expect(zones.slice(nMovable).every((z) => z === ZONE_NORMAL)).toBe(true);
    expect(autoMovableCanOnlineMovable(m, m.blockPages)).toBe(false);
  });

  it('auto-movable counts CMA as movable', () => {
    const a = boot(
      'mem=16G pinlab.hotplug=1G memory_hotplug.online_policy=auto-movable memory_hotplug.auto_movable_ratio=1',
    );
    const b = boot(
      'mem=16G cma=128M pinlab.hotplug=1G memory_hotplug.online_policy=auto-movable memory_hotplug.auto_movable_ratio=1',
    );
    expect(zoneForPfnRange(a, MMOP_ONLINE, HOT * a.blockPages, a.blockPages)).toBe(ZONE_MOVABLE);
    expect(zoneForPfnRange(b, MMOP_ONLINE, HOT * b.blockPages, b.blockPages)).toBe(ZONE_NORMAL);
  });

  it('onlining and re-onlining many blocks leaks no frame', () => {
    // pinlab.kmem=none: no running kernel's own memory, so every frame is free after boot
    const m = boot('mem=1G pinlab.hotplug=1G memhp_default_state=online_movable pinlab.kmem=none');
    expect(checkAllocator(m).errors).toEqual([]);
    const { census } = checkAllocator(m);
    expect(census.used.reduce((a, b) => a + b, 0)).toBe(0);
  });
});
