// Spinlocks on Atomics (kernel/locking/spinlock.c semantics: short, never held across a preemption
// point). 0 = unlocked, 1 = locked, 2 = locked with waiters (futex-style, so a thread whose holder was
// descheduled by the OS parks instead of burning its core).
import { KernelBug } from './debug';

/** A lock held this long is a simulator bug (the kernel's soft-lockup watchdog fires at 20 s). */
export const SPIN_LOCKUP_MS = 10_000;

export function spinLock(a: Int32Array, i: number): void {
  if (Atomics.compareExchange(a, i, 0, 1) === 0) return;
  spinLockSlow(a, i);
}

function spinLockSlow(a: Int32Array, i: number): void {
  for (let n = 0; n < 100; n++) {
    if (Atomics.compareExchange(a, i, 0, 1) === 0) return;
  }
  let waitedMs = 0;
  for (;;) {
    // Announce a waiter, then sleep until the holder's unlock notifies (bounded per round).
    if (Atomics.exchange(a, i, 2) === 0) return;
    const r = Atomics.wait(a, i, 2, 50);
    if (r === 'timed-out') {
      waitedMs += 50;
      if (waitedMs >= SPIN_LOCKUP_MS) throw new KernelBug(`soft lockup: spinlock word ${i} held for ${waitedMs} ms`);
    }
  }
}

export function spinTrylock(a: Int32Array, i: number): boolean {
  return Atomics.compareExchange(a, i, 0, 1) === 0;
}

export function spinUnlock(a: Int32Array, i: number): void {
  if (Atomics.exchange(a, i, 0) === 2) Atomics.notify(a, i, 1);
}

export function spinIsLocked(a: Int32Array, i: number): boolean {
  return Atomics.load(a, i) !== 0;
}
