// A private copy of the machine, for checks that try something (offline every block, re-run a stuck
// pin) without touching the run.
import { Memmap } from '../mm/memmap';

/** Machines above this size are copied page by page, skipping pages of zeros (cloneMachine()). */
const SPARSE_COPY_MIN_BYTES = 1 << 20;
const COPY_PAGE = 4096;
const COPY_WINDOW = 1 << 30; // a Buffer view spans at most 4 GiB
const ZERO_PAGE = Buffer.alloc(COPY_PAGE);

/**
 * A private copy of the machine, in `into` (a buffer of the same size, e.g. the previous copy) or a new
 * SharedArrayBuffer. A large machine is copied a 4 KiB page at a time and pages that are zero on both
 * sides are skipped: a fresh buffer is zero-filled on demand, so what the machine never wrote (most
 * page tables, shmem slots, the counts of free frames) costs the copy no memory.
 */
export function cloneMachine(m: Memmap, into?: SharedArrayBuffer): Memmap {
  const n = m.sab.byteLength;
  if (into && into.byteLength !== n)
    throw new Error(`cloneMachine: buffer is ${into.byteLength} bytes, the machine ${n}`);
  const sab = into ?? new SharedArrayBuffer(n);
  if (n < SPARSE_COPY_MIN_BYTES) {
    new Uint8Array(sab).set(new Uint8Array(m.sab));
    return new Memmap(m.shape, sab);
  }
  for (let w = 0; w < n; w += COPY_WINDOW) {
    const len = Math.min(COPY_WINDOW, n - w);
    const src = Buffer.from(m.sab, w, len);
    const dst = Buffer.from(sab, w, len);
    for (let p = 0; p < len; p += COPY_PAGE) {
      const e = Math.min(p + COPY_PAGE, len);
      if (src.compare(ZERO_PAGE, 0, e - p, p, e) !== 0) src.copy(dst, p, p, e);
      else if (into && dst.compare(ZERO_PAGE, 0, e - p, p, e) !== 0) dst.fill(0, p, e);
    }
  }
  return new Memmap(m.shape, sab);
}
