// The timed loop shared by the single-thread and the worker benchmarks: rounds of `batch` allocations
// then `batch` frees, until `pairs` alloc+free pairs are done.
import { performance } from 'node:perf_hooks';
import { Memmap } from '../mm/memmap';
import { allocPages, freePages, NO_PAGE } from '../mm/page_alloc';

export function allocPairs(
  m: Memmap,
  order: number,
  gfp: number,
  pairs: number,
  batch: number,
): { pairs: number; seconds: number } {
  const held = new Int32Array(batch);
  let done = 0;
  const t0 = performance.now();
  while (done < pairs) {
    let n = 0;
    for (; n < batch; n++) {
      const p = allocPages(m, gfp, order);
      if (p === NO_PAGE) break;
      held[n] = p;
    }
    if (n === 0) throw new Error(`bench: order-${order} allocation failed with nothing held`);
    for (let i = 0; i < n; i++) freePages(m, held[i]!, order);
    done += n;
  }
  return { pairs: done, seconds: (performance.now() - t0) / 1000 };
}
