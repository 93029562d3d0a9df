// atomic_t operations on the machine's SharedArrayBuffer (include/linux/atomic.h), and the SMP/UP switch.
//
// Every mm/ read-modify-write of shared state (refcounts, page flags, lock words, counters) goes through
// these. While more than one thread can touch a machine they are Atomics operations (lock-prefixed
// instructions). A thread that is the only one that ever touches any machine (the main thread before it
// starts a worker pool: scenarios, pin-fraction, unit tests, benchmarks) runs them as plain accesses, as an
// x86 kernel running on one CPU patches its LOCK prefixes to NOPs (alternatives_smp_unlock()): same
// results, same order, no bus lock. Worker threads are always SMP; the main thread turns SMP on, for good,
// before any other thread may attach a machine (smpEnable(): harness/pool.ts does it when it makes the pool).
// Sleeping and waking (Atomics.wait/notify) stay in mm/locking.ts as they are.
import { isMainThread } from 'node:worker_threads';

let smp = !isMainThread;

/** smp_init(): from now on other threads may share machines with this one; never undone. */
export function smpEnable(): void {
  smp = true;
}

/** num_online_cpus() > 1, as far as lock prefixes go: this thread may share a machine with another. */
export function smpEnabled(): boolean {
  return smp;
}

/** atomic_fetch_add(): returns the old value. */
export function atomicFetchAdd(a: Int32Array, i: number, v: number): number {
  return smp ? Atomics.add(a, i, v) : upAtomicFetchAdd(a, i, v);
}

/** atomic_fetch_sub() */
export function atomicFetchSub(a: Int32Array, i: number, v: number): number {
  return smp ? Atomics.sub(a, i, v) : upAtomicFetchSub(a, i, v);
}

/** atomic_fetch_or() */
export function atomicFetchOr(a: Int32Array, i: number, v: number): number {
  return smp ? Atomics.or(a, i, v) : upAtomicFetchOr(a, i, v);
}

/** atomic_fetch_andnot() with the mask already inverted */
export function atomicFetchAnd(a: Int32Array, i: number, v: number): number {
  return smp ? Atomics.and(a, i, v) : upAtomicFetchAnd(a, i, v);
}

/** atomic_cmpxchg(): returns the value seen; stored only when it equalled expected (a value read from a). */
export function atomicCmpxchg(a: Int32Array, i: number, expected: number, v: number): number {
  return smp ? Atomics.compareExchange(a, i, expected, v) : upAtomicCmpxchg(a, i, expected, v);
}

/** atomic_xchg() */
export function atomicXchg(a: Int32Array, i: number, v: number): number {
  return smp ? Atomics.exchange(a, i, v) : upAtomicXchg(a, i, v);
}

/** atomic_read() */
export function atomicRead(a: Int32Array, i: number): number {
  return smp ? Atomics.load(a, i) : a[i]!;
}

/** atomic_set(); returns v as Atomics.store does. */
export function atomicSet(a: Int32Array, i: number, v: number): number {
  return smp ? Atomics.store(a, i, v) : upAtomicSet(a, i, v);
}

// ---- page->flags (Uint32Array): kept apart so every function here sees one array type (monomorphic) ----

/** clear_bit()/test_and_clear_bit() on page->flags: atomic_fetch_and(); returns the old flags. */
export function flagsFetchAnd(a: Uint32Array, i: number, v: number): number {
  return smp ? Atomics.and(a, i, v) : upFlagsFetchAnd(a, i, v);
}

/** set_bit()/test_and_set_bit() on page->flags: atomic_fetch_or(); returns the old flags. */
export function flagsFetchOr(a: Uint32Array, i: number, v: number): number {
  return smp ? Atomics.or(a, i, v) : upFlagsFetchOr(a, i, v);
}

/** try_cmpxchg() on page->flags: returns the flags seen; stored only when they equalled expected. */
export function flagsCmpxchg(a: Uint32Array, i: number, expected: number, v: number): number {
  return smp ? Atomics.compareExchange(a, i, expected, v) : upFlagsCmpxchg(a, i, expected, v);
}

/** READ_ONCE(page->flags) where another CPU may be changing them. */
export function flagsRead(a: Uint32Array, i: number): number {
  return smp ? Atomics.load(a, i) : a[i]!;
}

// ---- page->_mapcount (Int16Array): kept apart, as page->flags are, so every function sees one array type ----

/**
 * atomic_inc_return(&page->_mapcount) - 1 and atomic_dec(): returns the old count. pinlab's per-page
 * mapcount is 16 bits (the kernel's is an atomic_t): one page is mapped at most once per VMA, and a machine
 * has at most maxMms * maxVmas VMAs, far below 32767.
 */
export function mapcountFetchAdd(a: Int16Array, i: number, v: number): number {
  return smp ? Atomics.add(a, i, v) : upMapcountFetchAdd(a, i, v);
}

// The UP bodies (plain accesses), out of line so the functions above stay small enough that V8 always
// inlines them: an SMP caller then pays for the flag test and the Atomics operation, nothing more.
function upAtomicFetchAdd(a: Int32Array, i: number, v: number): number {
  const o = a[i]!;
  a[i] = o + v;
  return o;
}

function upAtomicFetchSub(a: Int32Array, i: number, v: number): number {
  const o = a[i]!;
  a[i] = o - v;
  return o;
}

function upAtomicFetchOr(a: Int32Array, i: number, v: number): number {
  const o = a[i]!;
  a[i] = o | v;
  return o;
}

function upAtomicFetchAnd(a: Int32Array, i: number, v: number): number {
  const o = a[i]!;
  a[i] = o & v;
  return o;
}

function upMapcountFetchAdd(a: Int16Array, i: number, v: number): number {
  const o = a[i]!;
  a[i] = o + v;
  return o;
}

function upFlagsFetchAnd(a: Uint32Array, i: number, v: number): number {
  const o = a[i]!;
  a[i] = o & v;
  return o;
}

function upFlagsFetchOr(a: Uint32Array, i: number, v: number): number {
  const o = a[i]!;
  a[i] = o | v;
  return o;
}

function upAtomicCmpxchg(a: Int32Array, i: number, expected: number, v: number): number {
  const o = a[i]!;
  if (o === expected) a[i] = v;
  return o;
}

function upAtomicXchg(a: Int32Array, i: number, v: number): number {
  const o = a[i]!;
  a[i] = v;
  return o;
}

function upAtomicSet(a: Int32Array, i: number, v: number): number {
  a[i] = v;
  return v;
}

function upFlagsCmpxchg(a: Uint32Array, i: number, expected: number, v: number): number {
  const o = a[i]!;
  if (o === expected) a[i] = v;
  return o;
}
