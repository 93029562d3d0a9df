// Shared test helpers: boot a machine from a command line, as the CLI does.
import { bootFromSpec } from '../harness/layout';
import { Memmap } from '../mm/memmap';
import { zoneInfo, ZoneInfo } from '../mm/vmstat';
import { ZONE_NAMES } from '../mm/mmzone';
import { parseVariant, setVariant } from '../mm/variants';
import { lruAddDrainAll } from '../mm/swap';
import { drainAllPages } from '../mm/page_alloc';
import { checkAllocator } from '../properties/allocator_sound';
import { MmuIntervalNotifier, mmuIntervalSetSeq, mmuIntervalNotifierInsert } from '../mm/mmu_notifier';

/** Boot as the CLI does; variant: the kernel variant boot runs under (its release picks the kernel footprint). */
export function boot(cmdline: string, geometry?: string, variant?: string): Memmap {
  if (variant === undefined) return bootFromSpec({ cmdline, geometry }).m;
  return withVariant(variant, () => bootFromSpec({ cmdline, geometry }).m);
}

/** Run fn under a kernel variant ("v6.12+R19"), then put the previous one back. */
export function withVariant<T>(variant: string, fn: () => T): T {
  const prev = setVariant(parseVariant(variant));
  try {
    return fn();
  } finally {
    setVariant(prev);
  }
}

export function zone(m: Memmap, name: (typeof ZONE_NAMES)[number]): ZoneInfo {
  return zoneInfo(m, ZONE_NAMES.indexOf(name));
}

export const MiB = 256; // 4 KiB frames per MiB
export const GiB = 262144;

/** Frames in use once the LRU batches and per-CPU lists are emptied; the allocator must be sound. */
export function usedFrames(m: Memmap): number {
  lruAddDrainAll(m);
  drainAllPages(m);
  const { census, errors } = checkAllocator(m);
  expect(errors).toEqual([]);
  return census.used.reduce((a, b) => a + b, 0);
}

/**
 * An mmu interval subscriber on [v, v + n) that fails the test (naming what loops) instead of letting
 * a zap or a fork loop for ever on a PMD it cannot split: more than 64 invalidations of the range.
 */
export function loopGuard(m: Memmap, mm: number, v: number, n: number, what: string): MmuIntervalNotifier {
  let calls = 0;
  const sub = new MmuIntervalNotifier({
    invalidate: (s, _r, seq) => {
      mmuIntervalSetSeq(s, seq);
      if (++calls > 64) throw new Error(`more than 64 invalidations of the range: ${what} loops`);
      return true;
    },
  });
  expect(mmuIntervalNotifierInsert(sub, m, mm, v, n)).toBe(0);
  return sub;
}
