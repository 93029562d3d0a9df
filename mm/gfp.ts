// GFP flags and the zone table (include/linux/gfp_types.h, include/linux/gfp.h).
import {
  ZONE_DMA,
  ZONE_DMA32,
  ZONE_MOVABLE,
  ZONE_NORMAL,
  MIGRATE_MOVABLE,
  MIGRATE_RECLAIMABLE,
  MIGRATE_UNMOVABLE,
} from './mmzone';
import { KernelBug } from './debug';

export const __GFP_DMA = 0x01;
export const __GFP_HIGHMEM = 0x02;
export const __GFP_DMA32 = 0x04;
export const __GFP_MOVABLE = 0x08;
export const __GFP_RECLAIMABLE = 0x10;
export const __GFP_HIGH = 0x20;
export const __GFP_IO = 0x40;
export const __GFP_FS = 0x80;
export const __GFP_ZERO = 0x100;
export const __GFP_DIRECT_RECLAIM = 0x400;
export const __GFP_KSWAPD_RECLAIM = 0x800;
export const __GFP_NOWARN = 0x2000;
export const __GFP_RETRY_MAYFAIL = 0x4000;
export const __GFP_NOFAIL = 0x8000;
export const __GFP_NORETRY = 0x10000;
export const __GFP_MEMALLOC = 0x20000;
export const __GFP_COMP = 0x40000;
export const __GFP_NOMEMALLOC = 0x80000;
export const __GFP_HARDWALL = 0x100000;
export const __GFP_THISNODE = 0x200000;
export const __GFP_ACCOUNT = 0x400000; // charged to the caller's memcg (not modelled: no memcg)

export const GFP_ZONEMASK = __GFP_DMA | __GFP_HIGHMEM | __GFP_DMA32 | __GFP_MOVABLE;
export const __GFP_RECLAIM = __GFP_DIRECT_RECLAIM | __GFP_KSWAPD_RECLAIM;

export const GFP_ATOMIC = __GFP_HIGH | __GFP_KSWAPD_RECLAIM;
export const GFP_KERNEL = __GFP_RECLAIM | __GFP_IO | __GFP_FS;
export const GFP_KERNEL_ACCOUNT = GFP_KERNEL | __GFP_ACCOUNT;
export const GFP_NOWAIT = __GFP_KSWAPD_RECLAIM;
export const GFP_DMA = __GFP_DMA;
export const GFP_DMA32 = __GFP_DMA32;
export const GFP_USER = GFP_KERNEL | __GFP_HARDWALL;
export const GFP_HIGHUSER = GFP_USER | __GFP_HIGHMEM;
export const GFP_HIGHUSER_MOVABLE = GFP_HIGHUSER | __GFP_MOVABLE;
export const GFP_TRANSHUGE_LIGHT =
  (GFP_HIGHUSER_MOVABLE | __GFP_COMP | __GFP_NOMEMALLOC | __GFP_NOWARN) & ~__GFP_RECLAIM;
export const GFP_TRANSHUGE = GFP_TRANSHUGE_LIGHT | __GFP_DIRECT_RECLAIM;

/**
 * gfp_zone(): the highest zone a mask may use (GFP_ZONE_TABLE). Only __GFP_MOVABLE together with
 * __GFP_HIGHMEM reaches ZONE_MOVABLE; __GFP_MOVABLE alone stops at ZONE_NORMAL. x86-64 has no
 * ZONE_HIGHMEM, so __GFP_HIGHMEM alone means ZONE_NORMAL.
 */
export function gfpZone(gfp: number): number {
  switch (gfp & GFP_ZONEMASK) {
    case 0:
      return ZONE_NORMAL;
    case __GFP_DMA:
      return ZONE_DMA;
    case __GFP_HIGHMEM:
      return ZONE_NORMAL;
    case __GFP_DMA32:
      return ZONE_DMA32;
    case __GFP_MOVABLE:
      return ZONE_NORMAL;
    case __GFP_MOVABLE | __GFP_DMA:
      return ZONE_DMA;
    case __GFP_MOVABLE | __GFP_HIGHMEM:
      return ZONE_MOVABLE;
    case __GFP_MOVABLE | __GFP_DMA32:
      return ZONE_DMA32;
    default:
      throw new KernelBug(`gfp_zone: bad zone bits 0x${(gfp & GFP_ZONEMASK).toString(16)}`);
  }
}

/** gfp_migratetype() */
export function gfpMigratetype(gfp: number): number {
  if (gfp & __GFP_MOVABLE) return MIGRATE_MOVABLE;
  if (gfp & __GFP_RECLAIMABLE) return MIGRATE_RECLAIMABLE;
  return MIGRATE_UNMOVABLE;
}
