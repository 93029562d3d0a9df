// Kernel memory outside the slab caches (mm/slab.ts): kmalloc_large, kvmalloc's vmalloc fallback,
// __get_free_page - all from the buddy with the caller's GFP flags.
import { boot, zone } from '../../helpers';
import { kmalloc, kvmalloc, kvfree, kbufPages, getOrder, getFreePage, KMALLOC_MAX_CACHE_SIZE } from '../../../mm/slab';
import {
  GFP_KERNEL,
  GFP_KERNEL_ACCOUNT,
  GFP_ATOMIC,
  __GFP_MEMALLOC,
  __GFP_NOWARN,
  __GFP_NORETRY,
} from '../../../mm/gfp';
import { allocPages, freePages, NO_PAGE } from '../../../mm/page_alloc';
import { ZONE_MOVABLE } from '../../../mm/mmzone';
import { Memmap } from '../../../mm/memmap';
import { checkAllocator } from '../../../properties/allocator_sound';

/** The kernel zones' free memory left as order-0 pages only: take it all, give back every odd pfn. */
function fragmentKernelZones(m: Memmap): number[] {
  const all: number[] = [];
  for (;;) {
    const pfn = allocPages(m, GFP_KERNEL | __GFP_MEMALLOC | __GFP_NOWARN | __GFP_NORETRY, 0);
    if (pfn === NO_PAGE) break;
    all.push(pfn);
  }
  const keep = all.filter((p) => p % 2 === 0);
  for (const p of all) if (p % 2) freePages(m, p, 0);
  return keep;
}

describe('kernel memory from the buddy (mm/slab.ts)', () => {
  it('get_order() and the slab-cache bound', () => {
    expect([1, 4096, 4097, 8192, 8224, 16384, 16385].map(getOrder)).toEqual([0, 0, 1, 1, 2, 2, 3]);
    expect(KMALLOC_MAX_CACHE_SIZE).toBe(8192);
  });

  it('an io_mapped_ubuf of 512 bvecs (8224 bytes) is an order-2 kmalloc_large from the kernel zones; kvfree gives it back', () => {
    const m = boot('mem=1G movablecore=512M');
    const before = zone(m, 'DMA32').free + zone(m, 'DMA32').pcp_count;
    const b = kvmalloc(m, 32 + 16 * 512, GFP_KERNEL_ACCOUNT)!;
    expect(b.order).toBe(2);
    expect(kbufPages(b)).toBe(4);
    expect(m.pageZonenum(b.pfns[0]!)).not.toBe(ZONE_MOVABLE);
    expect(zone(m, 'DMA32').free + zone(m, 'DMA32').pcp_count).toBe(before - 4);
    kvfree(m, b);
    expect(zone(m, 'DMA32').free + zone(m, 'DMA32').pcp_count).toBe(before);
    expect(checkAllocator(m).errors).toEqual([]);
  });

  it('kvmalloc() falls back to vmalloc order-0 pages when no order-2 block is left; GFP_ATOMIC cannot', () => {
    const m = boot('mem=1G movablecore=512M');
    const held = fragmentKernelZones(m);
    expect(held.length).toBeGreaterThan(0);
    const b = kvmalloc(m, 8224, GFP_KERNEL)!;
    expect(b.order).toBe(-1); // vmalloc
    expect(b.pfns.length).toBe(3);
    expect(b.pfns.every((p) => m.pageZonenum(p) !== ZONE_MOVABLE)).toBe(true);
    expect(kvmalloc(m, 8224, GFP_ATOMIC)).toBeNull(); // gfpflags_allow_blocking(): no vmalloc fallback
    kvfree(m, b);
    for (const p of held) freePages(m, p, 0);
    expect(checkAllocator(m).errors).toEqual([]);
  });

  it('small objects come from slab caches pinlab does not model: no frames; __get_free_page is one page', () => {
    const m = boot('mem=1G movablecore=512M');
    const small = kmalloc(m, 128, GFP_KERNEL)!;
    expect(kbufPages(small)).toBe(0);
    const p = getFreePage(m, GFP_KERNEL)!;
    expect(kbufPages(p)).toBe(1);
    kvfree(m, p);
    kvfree(m, small);
    expect(checkAllocator(m).errors).toEqual([]);
  });
});
