// Kernel memory a driver takes for its own bookkeeping: kmalloc() of more than a slab cache holds
// (__kmalloc_large_node(), mm/slub.c), kvmalloc() with its vmalloc fallback (__kvmalloc_node_noprof(),
// mm/util.c; vm_area_alloc_pages(), mm/vmalloc.c) and __get_free_page(). All of it comes from the buddy
// with the caller's GFP flags, so it lands in the kernel zones, counts against their watermarks and can
// fail; the caller turns a failure into -ENOMEM as the kernel does.
//
// Simplified (docs/simplifications.md): objects of KMALLOC_MAX_CACHE_SIZE or less come from slab caches,
// which pinlab does not model (they take no frames here); vmalloc's own page tables and vmap_area are
// not counted.

import { Memmap, PAGE_SHIFT, PAGE_SIZE } from './memmap';
import { allocPages, freePages, NO_PAGE } from './page_alloc';
import {
  __GFP_COMP,
  __GFP_NOFAIL,
  __GFP_NORETRY,
  __GFP_NOWARN,
  __GFP_RETRY_MAYFAIL,
  __GFP_DIRECT_RECLAIM,
} from './gfp';

/** KMALLOC_MAX_CACHE_SIZE with SLUB on x86_64: two pages; larger kmalloc()s go to the page allocator. */
export const KMALLOC_MAX_CACHE_SIZE = 2 * PAGE_SIZE;

/** Memory one allocation holds: a compound block (order >= 0) or vmalloc's order-0 pages. */
export interface KBuf {
  size: number;
  /** the block's first pfn (kmalloc_large, __get_free_page), or each vmalloc page */
  pfns: number[];
  /** the block's order; -1 for vmalloc pages; -2 for a slab object (no frames) */
  order: number;
}

/** get_order(): the smallest order whose block holds size bytes. */
export function getOrder(size: number): number {
  let order = 0;
  while (PAGE_SIZE << order < size) order++;
  return order;
}

/** kmalloc(): a slab object up to KMALLOC_MAX_CACHE_SIZE (no frames: see above), else __kmalloc_large_node(). */
export function kmalloc(m: Memmap, size: number, gfp: number): KBuf | null {
  if (size <= KMALLOC_MAX_CACHE_SIZE) return { size, pfns: [], order: -2 };
  const order = getOrder(size);
  if (order > m.maxOrder) return null;
  const pfn = allocPages(m, gfp | __GFP_COMP, order);
  return pfn === NO_PAGE ? null : { size, pfns: [pfn], order };
}

/**
 * kvmalloc(): kmalloc() first, for more than a page without retrying hard and without warnings
 * (kmalloc_gfp_adjust()), then vmalloc's order-0 pages with the caller's flags; null when neither works
 * or the caller cannot sleep.
 */
export function kvmalloc(m: Memmap, size: number, gfp: number): KBuf | null {
  let kgfp = gfp;
  if (size > PAGE_SIZE) {
    kgfp |= __GFP_NOWARN;
    if (!(kgfp & __GFP_RETRY_MAYFAIL)) kgfp |= __GFP_NORETRY;
    kgfp &= ~__GFP_NOFAIL;
  }
  const b = kmalloc(m, size, kgfp);
  if (b || size <= PAGE_SIZE) return b;
  if (!(gfp & __GFP_DIRECT_RECLAIM)) return null; // gfpflags_allow_blocking()
  return vmalloc(m, size, gfp);
}

/** __vmalloc_node(): size rounded up to pages, each its own order-0 allocation; all or nothing. */
export function vmalloc(m: Memmap, size: number, gfp: number): KBuf | null {
  const n = (size + PAGE_SIZE - 1) >> PAGE_SHIFT;
  const pfns: number[] = [];
  for (let i = 0; i < n; i++) {
    const pfn = allocPages(m, gfp, 0);
    if (pfn === NO_PAGE) {
      for (const p of pfns) freePages(m, p, 0);
      return null;
    }
    pfns.push(pfn);
  }
  return { size, pfns, order: -1 };
}

/** __get_free_page(): one order-0 page. */
export function getFreePage(m: Memmap, gfp: number): KBuf | null {
  const pfn = allocPages(m, gfp, 0);
  return pfn === NO_PAGE ? null : { size: PAGE_SIZE, pfns: [pfn], order: 0 };
}

/** kvfree() / kfree() / free_page(): give the frames back. */
export function kvfree(m: Memmap, b: KBuf | null | undefined): void {
  if (!b) return;
  if (b.order >= 0) freePages(m, b.pfns[0]!, b.order);
  else if (b.order === -1) for (const p of b.pfns) freePages(m, p, 0);
  b.pfns = [];
}

/** Frames a buffer holds (what it costs the kernel zones). */
export function kbufPages(b: KBuf | null | undefined): number {
  if (!b) return 0;
  return b.order >= 0 ? 1 << b.order : b.order === -1 ? b.pfns.length : 0;
}
