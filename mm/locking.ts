// Kernel locks on Atomics over the shared buffer. Every wait is bounded, and every wait goes through
// one hook so the harness's deterministic scheduler can park the waiting actor (marked blocked on
// the word) and run another one instead of letting it sleep while the holder never gets the CPU.
//
//   spinlock (kernel/locking/spinlock.c): 0 unlocked, 1 locked, 2 locked with waiters (futex-style,
//     so a thread whose holder was descheduled by the OS parks instead of burning its core). Never
//     held across a preemption point.
//   mutex (kernel/locking/mutex.c): the same word protocol, held across preemption points (sleeps).
//   rw_semaphore (kernel/locking/rwsem.c): 0 free, n > 0 readers, -1 a writer. mmap_lock is one.
//   waitWhileEqual(): wait_event() on a word (a migration entry to go away, an acknowledgement).
import { atomicCmpxchg, atomicFetchSub, atomicRead, atomicXchg } from './atomic';
import { KernelBug } from './debug';
import { current } from './sched';

/** A lock held this long is a simulator bug (the kernel's soft-lockup watchdog fires at 20 s). */
export const SPIN_LOCKUP_MS = 10_000;
/** A sleeping lock (mutex, rwsem) waited on this long is a hung task (hung_task_timeout_secs: 120). */
const HUNG_TASK_MS = 60_000;
const WAIT_ROUND_MS = 50;

/**
 * How a thread waits while a[i] === value. Without a hook it sleeps on the word (Atomics.wait, one
 * bounded round); the harness installs a hook per actor thread (deterministic mode). The hook returns
 * when the actor may run again; the caller re-checks its condition either way.
 */
export type WaitHook = (a: Int32Array, i: number, value: number, reason: string) => void;
let waitHook: WaitHook | null = null;

export function setWaitHook(h: WaitHook | null): WaitHook | null {
  const prev = waitHook;
  waitHook = h;
  return prev;
}

/**
 * Told of every lock this thread takes (a[i] is the lock word). The harness installs one in free mode
 * to name, when a race does not replay deterministically, the locks two racing actors both took.
 */
export type LockTraceHook = (a: Int32Array, i: number) => void;
let lockTrace: LockTraceHook | null = null;

export function setLockTraceHook(h: LockTraceHook | null): LockTraceHook | null {
  const prev = lockTrace;
  lockTrace = h;
  return prev;
}

/** One bounded wait while a[i] === value (wait_event() round); returns false if it timed out. */
export function waitWhileEqual(a: Int32Array, i: number, value: number, reason: string, timeoutMs = 1): boolean {
  if (waitHook !== null) {
    waitHook(a, i, value, reason);
    return true;
  }
  return Atomics.wait(a, i, value, timeoutMs) !== 'timed-out';
}

// ---- spinlock ----

export function spinLock(a: Int32Array, i: number): void {
  if (atomicCmpxchg(a, i, 0, 1) !== 0 && !current().brokenSpinlocks) lockSlow(a, i, SPIN_LOCKUP_MS, 'spinlock');
  if (lockTrace !== null) lockTrace(a, i);
}

/** The contended path shared by spinlocks and mutexes: mark waiters (2), sleep until unlock notifies. */
function lockSlow(a: Int32Array, i: number, limitMs: number, what: string): void {
  if (waitHook === null) {
    for (let n = 0; n < 100; n++) if (atomicCmpxchg(a, i, 0, 1) === 0) return;
  }
  let waitedMs = 0;
  for (;;) {
    if (atomicXchg(a, i, 2) === 0) return;
    if (waitHook !== null) {
      waitHook(a, i, 2, what);
      continue;
    }
    if (Atomics.wait(a, i, 2, WAIT_ROUND_MS) === 'timed-out') {
      waitedMs += WAIT_ROUND_MS;
      if (waitedMs >= limitMs)
        throw new KernelBug(
          `${what === 'spinlock' ? 'soft lockup' : 'hung task'}: ${what} word ${i} held for ${waitedMs} ms`,
        );
    }
  }
}

export function spinTrylock(a: Int32Array, i: number): boolean {
  if (atomicCmpxchg(a, i, 0, 1) !== 0) return false;
  if (lockTrace !== null) lockTrace(a, i);
  return true;
}

export function spinUnlock(a: Int32Array, i: number): void {
  const old = atomicXchg(a, i, 0);
  // CONFIG_DEBUG_SPINLOCK's spin_bug(lock, "already unlocked"): an unlock without its lock
  if (old === 0) throw new KernelBug('spin_unlock: lock already unlocked');
  if (old === 2) Atomics.notify(a, i, 1);
}

// ---- mutex (sleeping; may be held across preemption points) ----

/** mutex_lock() */
export function mutexLock(a: Int32Array, i: number): void {
  if (atomicCmpxchg(a, i, 0, 1) !== 0) lockSlow(a, i, HUNG_TASK_MS, 'mutex');
  if (lockTrace !== null) lockTrace(a, i);
}

/** mutex_trylock() */
export function mutexTrylock(a: Int32Array, i: number): boolean {
  return spinTrylock(a, i);
}

/** mutex_unlock() */
export function mutexUnlock(a: Int32Array, i: number): void {
  const v = atomicXchg(a, i, 0);
  if (v === 0) throw new KernelBug(`mutex_unlock: word ${i} was not locked`);
  if (v === 2) Atomics.notify(a, i, 1);
}

// ---- rw_semaphore ----

function rwsemWait(a: Int32Array, i: number, seen: number, what: string, waited: { ms: number }): void {
  if (waitHook !== null) {
    waitHook(a, i, seen, what);
    return;
  }
  if (Atomics.wait(a, i, seen, WAIT_ROUND_MS) === 'timed-out') {
    waited.ms += WAIT_ROUND_MS;
    if (waited.ms >= HUNG_TASK_MS)
      throw new KernelBug(`hung task: ${what} on word ${i} (value ${seen}) for ${waited.ms} ms`);
  }
}

/** down_read(): shares the semaphore with other readers; waits while a writer holds it. */
export function downRead(a: Int32Array, i: number): void {
  const waited = { ms: 0 };
  for (;;) {
    const v = atomicRead(a, i);
    if (v >= 0) {
      if (atomicCmpxchg(a, i, v, v + 1) !== v) continue;
      if (lockTrace !== null) lockTrace(a, i);
      return;
    }
    rwsemWait(a, i, v, 'rwsem (read)', waited);
  }
}

/** up_read(): the last reader wakes a waiting writer. */
export function upRead(a: Int32Array, i: number): void {
  const v = atomicFetchSub(a, i, 1);
  if (v <= 0) throw new KernelBug(`up_read: word ${i} had ${v} readers`);
  if (v === 1) Atomics.notify(a, i);
}

/** down_write(): waits until no reader and no writer holds it. */
export function downWrite(a: Int32Array, i: number): void {
  const waited = { ms: 0 };
  for (;;) {
    const v = atomicCmpxchg(a, i, 0, -1);
    if (v === 0) break;
    rwsemWait(a, i, v, 'rwsem (write)', waited);
  }
  if (lockTrace !== null) lockTrace(a, i);
}

/** down_write_trylock() */
export function downWriteTrylock(a: Int32Array, i: number): boolean {
  if (atomicCmpxchg(a, i, 0, -1) !== 0) return false;
  if (lockTrace !== null) lockTrace(a, i);
  return true;
}

/** up_write() */
export function upWrite(a: Int32Array, i: number): void {
  const v = atomicXchg(a, i, 0);
  if (v !== -1) throw new KernelBug(`up_write: word ${i} was ${v}, not write-locked`);
  Atomics.notify(a, i);
}
