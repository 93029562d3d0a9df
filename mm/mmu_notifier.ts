// MMU interval notifiers (mm/mmu_notifier.c, include/linux/mmu_notifier.h, v6.12): how a device that
// mirrors a process's page tables without pinning (RDMA ODP, HMM users) learns that PTEs are about to
// change, and the collision-retry sequence it uses to install device PTEs safely.
//
// The mm core brackets every change of a present PTE that a mirror may have copied with
// mmuNotifierInvalidateRangeStart() / ...End(): zap (MADV_DONTNEED, munmap, exit), wp_page_copy (COW),
// __split_huge_pmd, change_protection (mprotect), copy_page_range (fork's write-protect) and
// try_to_migrate_one (migration, THP split, hence offlining and long-term-pin migration). Each
// subscription whose [start, end) intersects gets ops.invalidate() before the PTEs change; the callback
// must stop the device using the old pages before it returns.
//
// Shared state: subscriptions live in the machine's SharedArrayBuffer (Memmap.mmuNotifiers, one
// struct mmu_notifier_subscriptions per mm slot), so an invalidation on any thread sees every
// subscriber. A subscription's callback is a JS closure and lives only in the thread that inserted it;
// delivery goes through a replaceable hook (setMmuNotifierDeliver) so the harness can run a callback
// on the subscriber's own thread and wait for it. The default delivers in the invoking thread and
// fails loudly (KernelBug) for a subscriber that lives elsewhere.
//
// Simplified: only the interval flavour (no mmu_notifier_register()/ops->invalidate_range_start
// hlist users, no clear_young); at most MMU_NOTIFIER_SUBS_MAX subscriptions per mm (-ENOMEM beyond,
// the kernel's interval tree is unbounded); registration takes the table lock, not mmap_lock +
// mm_take_all_locks: instead an mm's first registration waits for the invalidations that found no
// subscriber to tell (MNG_BLIND, mmuNotifierBlindStart()). Ranges are in pages (vpn), half-open [start, end).

import { atomicFetchAdd, atomicFetchSub, atomicRead, atomicSet } from './atomic';
import { threadId } from 'node:worker_threads';
import {
  Memmap,
  MM_PID,
  MM_USERS,
  MNG_NR_SUBS,
  MNG_NEXT_ID,
  MNG_BLIND,
  MNG_SLOTS,
  MN_LOCK,
  MN_SEQ,
  MN_ACTIVE,
  MN_HAS_ITREE,
  MN_PID,
  MN_NR_SLOTS,
  MN_HDR,
  MN_STRIDE,
  MNS_STATE,
  MNS_START,
  MNS_END,
  MNS_SEQ,
  MNS_ID,
  MNS_OWNER,
  MNS_STRIDE,
  MMU_NOTIFIER_SUBS_MAX,
} from './memmap';
import { mmBase } from './mm_types';
import { spinLock, spinUnlock, waitWhileEqual, SPIN_LOCKUP_MS } from './locking';
import { bug, vmWarnOnOnce } from './debug';
import { EAGAIN, EINVAL, ENOMEM, EOVERFLOW } from './errno';
import { vaPages } from './pgtable';

// enum mmu_notifier_event (include/linux/mmu_notifier.h)
export const MMU_NOTIFY_UNMAP = 0;
export const MMU_NOTIFY_CLEAR = 1;
export const MMU_NOTIFY_PROTECTION_VMA = 2;
export const MMU_NOTIFY_PROTECTION_PAGE = 3;
export const MMU_NOTIFY_SOFT_DIRTY = 4;
export const MMU_NOTIFY_RELEASE = 5;
export const MMU_NOTIFY_MIGRATE = 6;
export const MMU_NOTIFY_EXCLUSIVE = 7;
export const MMU_NOTIFY_EVENT_NAMES = [
  'unmap',
  'clear',
  'protection_vma',
  'protection_page',
  'soft_dirty',
  'release',
  'migrate',
  'exclusive',
] as const;
const MMU_NOTIFIER_RANGE_BLOCKABLE = 1 << 0;

/** How long read_begin() / remove() may wait for an invalidation on another thread to end. */
const MMU_NOTIFIER_WAIT_MS_MAX = SPIN_LOCKUP_MS;
const WAIT_SLICE_MS = 50;

// subscription slot states (MNS_STATE)
const SUB_FREE = 0;
const SUB_IN_TREE = 1;
const SUB_DEFERRED_INSERT = 2; // hlist on deferred_list, not yet in the tree
const SUB_DEFERRED_REMOVE = 3; // in the tree, removal deferred to the last inv_end

/** struct mmu_notifier_range: plain data, so the harness can hand it to another thread. */
export interface MmuNotifierRange {
  mm: number;
  start: number;
  end: number;
  event: number;
  flags: number;
}

/**
 * What range_start returns for an invalidation that found no subscriber to tell: its range_end only lets
 * a first registration that waits for it go (mmuNotifierBlindStart()).
 */
export const BLIND_RANGE: Readonly<MmuNotifierRange> = Object.freeze({ mm: -1, start: 0, end: 0, event: 0, flags: 0 });

/** Nobody to tell: no subscription on mm, or (mm < 0) none on the machine. */
function nobodyToTell(m: Memmap, mm: number): boolean {
  return mm < 0 ? atomicRead(m.mmuNotifiers, MNG_NR_SUBS) === 0 : !mmHasNotifiers(m, mm);
}

/**
 * An invalidation that finds nobody to tell on mm (mm < 0: on the machine) counts itself in MNG_BLIND
 * from before its second look to its range_end, so that a registration cannot slip in between the
 * check and the PTE change: mmu_notifier_register()'s mm_take_all_locks() waits for every rmap walker
 * (anon_vma and i_mmap locks) and mmap_lock holder of the mm, which pinlab does not model. Returns true
 * (counted; end with mmuNotifierBlindEnd()) when there is nobody to tell; false: tell the subscribers.
 */
export function mmuNotifierBlindStart(m: Memmap, mm: number): boolean {
  if (!nobodyToTell(m, mm)) return false;
  atomicFetchAdd(m.mmuNotifiers, MNG_BLIND, 1);
  if (nobodyToTell(m, mm)) return true;
  mmuNotifierBlindEnd(m); // a registration came between the two looks
  return false;
}

/** The end of a blind invalidation (mmuNotifierBlindStart()). */
export function mmuNotifierBlindEnd(m: Memmap): void {
  if (atomicFetchSub(m.mmuNotifiers, MNG_BLIND, 1) === 1) Atomics.notify(m.mmuNotifiers, MNG_BLIND);
}

/** mm_take_all_locks() of a first registration: wait until no blind invalidation runs (bounded). */
function waitBlindDrained(m: Memmap): void {
  const t = m.mmuNotifiers;
  let waitedMs = 0;
  for (let v = atomicRead(t, MNG_BLIND); v !== 0; v = atomicRead(t, MNG_BLIND)) {
    if (waitWhileEqual(t, MNG_BLIND, v, 'mmu_notifier_register (mm_take_all_locks)', WAIT_SLICE_MS)) continue;
    waitedMs += WAIT_SLICE_MS;
    if (waitedMs >= MMU_NOTIFIER_WAIT_MS_MAX)
      bug(`mmu_notifier_register: invalidations still running after ${waitedMs} ms`);
  }
}

/** mmu_notifier_range_blockable() */
export function mmuNotifierRangeBlockable(r: Readonly<MmuNotifierRange>): boolean {
  return (r.flags & MMU_NOTIFIER_RANGE_BLOCKABLE) !== 0;
}

/** struct mmu_interval_notifier_ops */
export interface MmuIntervalNotifierOps {
  /**
   * Called before PTEs in the intersection of the subscription and range change. Must return true
   * once the device no longer uses the old pages (after mmuIntervalSetSeq(sub, curSeq) under the
   * subscriber's own lock); may return false only for a non-blockable range it cannot serve now.
   */
  invalidate(sub: MmuIntervalNotifier, range: Readonly<MmuNotifierRange>, curSeq: number): boolean;
}

/** struct mmu_interval_notifier: the subscriber's handle, local to the thread that inserted it. */
export class MmuIntervalNotifier {
  m: Memmap | null = null;
  mm = -1;
  start = 0;
  end = 0;
  /** machine-wide id (0 = not inserted) */
  id = 0;
  /** slot in the mm's table */
  slot = -1;
  /** pid of the mm at insert time: the mm is gone when the slot's MM_PID differs or MM_USERS is 0 */
  pid = 0;
  constructor(readonly ops: MmuIntervalNotifierOps) {}
}

/** One callback to run: what a cross-thread delivery hook needs to route and run it. */
export interface MmuNotifierDelivery {
  subId: number;
  /** threadId of the thread that inserted the subscription (its callback lives there) */
  owner: number;
  range: Readonly<MmuNotifierRange>;
  curSeq: number;
}
export type MmuNotifierDeliver = (m: Memmap, d: MmuNotifierDelivery) => boolean;

// ---- per-thread state ----
const localSubs = new Map<number, MmuIntervalNotifier>();
/** invalidations this thread has open per mm (between range_start and range_end), for deadlock checks */
const openByMachine = new WeakMap<Memmap, number[]>();
function openHere(m: Memmap): number[] {
  let a = openByMachine.get(m);
  if (!a) openByMachine.set(m, (a = new Array<number>(m.maxMms).fill(0)));
  return a;
}

/**
 * Locks this thread holds that its own callbacks take (an ODP umem_mutex). While one is held the harness
 * does not run this thread's callbacks for other threads: the kernel's invalidator would sleep on the
 * lock until the holder lets go, and here the callback can only run on the holder's thread.
 */
let callbackLocksHeld = 0;
export function mmuNotifierCallbackLockTaken(): void {
  callbackLocksHeld++;
}
export function mmuNotifierCallbackLockReleased(): void {
  callbackLocksHeld--;
}
/** A new run on this thread holds none (a run that ended in a KernelBug may have left one counted). */
export function mmuNotifierCallbackLocksReset(): void {
  callbackLocksHeld = 0;
}
/** May the harness run this thread's callbacks for other threads now (no callback lock held)? */
export function mmuNotifierCallbacksServable(): boolean {
  return callbackLocksHeld === 0;
}

/** Run a callback whose subscription lives in this thread (the harness calls it on the owner's thread). */
export function mmuNotifierDeliverLocal(_m: Memmap, d: MmuNotifierDelivery): boolean {
  const sub = localSubs.get(d.subId);
  if (!sub)
    bug(
      `mmu notifier: subscription ${d.subId} belongs to thread ${d.owner}, not ${threadId}; install a cross-thread delivery (setMmuNotifierDeliver)`,
    );
  return sub.ops.invalidate(sub, d.range, d.curSeq);
}

let deliver: MmuNotifierDeliver = mmuNotifierDeliverLocal;

/** Replace how callbacks are delivered (the harness routes them to the owner's worker). Returns the previous hook. */
export function setMmuNotifierDeliver(fn: MmuNotifierDeliver): MmuNotifierDeliver {
  const prev = deliver;
  deliver = fn;
  return prev;
}

function tableBase(mm: number): number {
  return MNG_SLOTS + mm * MN_STRIDE;
}
function subBase(mm: number, slot: number): number {
  return tableBase(mm) + MN_HDR + slot * MNS_STRIDE;
}

/** mm_has_notifiers(): the mm slot has a subscription table, and it is this mm's (not a dead one's). */
export function mmHasNotifiers(m: Memmap, mm: number): boolean {
  const b = tableBase(mm);
  const t = m.mmuNotifiers;
  return atomicRead(t, b + MN_HAS_ITREE) !== 0 && t[b + MN_PID] === m.mms[mmBase(mm) + MM_PID];
}

/** Live subscriptions on the machine (all mms). */
export function mmuNotifierNrSubscriptions(m: Memmap): number {
  return atomicRead(m.mmuNotifiers, MNG_NR_SUBS);
}

/** The mm's invalidate_seq (for tests and traces): even when idle, odd while a subscriber is being invalidated. */
export function mmuNotifierSeq(m: Memmap, mm: number): number {
  return atomicRead(m.mmuNotifiers, tableBase(mm) + MN_SEQ);
}

function isInvalidating(t: Int32Array, b: number): boolean {
  return (t[b + MN_SEQ]! & 1) !== 0;
}

/** Sleep until the mm's invalidate_seq is no longer seq (wait_event on subscriptions->wq), bounded. */
function waitSeqReleased(m: Memmap, mm: number, seq: number, who: string): void {
  if (openHere(m)[mm]! > 0) bug(`${who}: waits for an invalidation of mm ${mm} that this thread is running (deadlock)`);
  const i = tableBase(mm) + MN_SEQ;
  let waitedMs = 0;
  while (atomicRead(m.mmuNotifiers, i) === seq) {
    if (waitWhileEqual(m.mmuNotifiers, i, seq, who, WAIT_SLICE_MS)) continue; // the harness may park the actor here
    waitedMs += WAIT_SLICE_MS;
    if (waitedMs >= MMU_NOTIFIER_WAIT_MS_MAX) bug(`${who}: invalidation of mm ${mm} did not end in ${waitedMs} ms`);
  }
}

// ---------------------------------------------------------------------------------------------
// The write side: invalidate_range_start / end

interface Hit {
  slot: number;
  id: number;
  owner: number;
}

/** mn_itree_inv_start_range(): count the range as active; the subscriptions it intersects, with cur_seq. */
function mnItreeInvStartRange(m: Memmap, r: MmuNotifierRange): { hits: Hit[]; curSeq: number } {
  const t = m.mmuNotifiers;
  const b = tableBase(r.mm);
  const hits: Hit[] = [];
  spinLock(t, b + MN_LOCK);
  t[b + MN_ACTIVE]!++;
  const n = t[b + MN_NR_SLOTS]!;
  for (let s = 0; s < n; s++) {
    const sb = subBase(r.mm, s);
    const st = t[sb + MNS_STATE]!;
    if (st !== SUB_IN_TREE && st !== SUB_DEFERRED_REMOVE) continue;
    if (t[sb + MNS_START]! >= r.end || r.start >= t[sb + MNS_END]!) continue;
    hits.push({ slot: s, id: t[sb + MNS_ID]!, owner: t[sb + MNS_OWNER]! });
  }
  if (hits.length) atomicSet(t, b + MN_SEQ, t[b + MN_SEQ]! | 1);
  const curSeq = t[b + MN_SEQ]!;
  spinUnlock(t, b + MN_LOCK);
  return { hits, curSeq };
}

/** mn_itree_inv_end(): the last active range of an invalidating mm makes the seq even and runs the deferred list. */
function mnItreeInvEnd(m: Memmap, mm: number): void {
  const t = m.mmuNotifiers;
  const b = tableBase(mm);
  spinLock(t, b + MN_LOCK);
  if (--t[b + MN_ACTIVE]! > 0 || !isInvalidating(t, b)) {
    spinUnlock(t, b + MN_LOCK);
    return;
  }
  atomicSet(t, b + MN_SEQ, (t[b + MN_SEQ]! + 1) | 0);
  const n = t[b + MN_NR_SLOTS]!;
  for (let s = 0; s < n; s++) {
    const sb = subBase(mm, s);
    if (t[sb + MNS_STATE] === SUB_DEFERRED_INSERT) t[sb + MNS_STATE] = SUB_IN_TREE;
    else if (t[sb + MNS_STATE] === SUB_DEFERRED_REMOVE) freeSlot(m, sb);
  }
  spinUnlock(t, b + MN_LOCK);
  Atomics.notify(t, b + MN_SEQ); // wake_up_all(&subscriptions->wq)
}

function freeSlot(m: Memmap, sb: number): void {
  m.mmuNotifiers[sb + MNS_STATE] = SUB_FREE;
  m.mmuNotifiers[sb + MNS_ID] = 0;
  atomicFetchSub(m.mmuNotifiers, MNG_NR_SUBS, 1);
}

/** mn_itree_invalidate(): call every intersecting subscriber. -EAGAIN when one refused a non-blockable range. */
function mnItreeInvalidate(m: Memmap, r: MmuNotifierRange): number {
  const { hits, curSeq } = mnItreeInvStartRange(m, r);
  for (const h of hits) {
    if (deliver(m, { subId: h.id, owner: h.owner, range: r, curSeq })) continue;
    if (mmuNotifierRangeBlockable(r)) {
      // WARN_ON(mmu_notifier_range_blockable(range)): ignored
      vmWarnOnOnce(true, `mmu_interval_notifier ${h.id} refused a blockable ${MMU_NOTIFY_EVENT_NAMES[r.event]} range`);
      continue;
    }
    mnItreeInvEnd(m, r.mm); // out_would_block: the caller must not call range_end
    return -EAGAIN;
  }
  return 0;
}

function rangeInit(mm: number, start: number, end: number, event: number, flags: number): MmuNotifierRange {
  return { mm, start, end, event, flags };
}

/**
 * mmu_notifier_range_init() + mmu_notifier_invalidate_range_start(): tell every subscriber of
 * [start, end) in mm that its PTEs are about to change; returns once they all acknowledged. When the
 * mm has no notifiers it returns BLIND_RANGE, at the cost of two loads and an atomic count that a first
 * registration waits out (mmuNotifierBlindStart()). Pair with mmuNotifierInvalidateRangeEnd() once the
 * PTEs are changed.
 */
export function mmuNotifierInvalidateRangeStart(
  m: Memmap,
  mm: number,
  start: number,
  end: number,
  event: number,
): MmuNotifierRange | null {
  if (mmuNotifierBlindStart(m, mm)) return BLIND_RANGE;
  const r = rangeInit(mm, start, end, event, MMU_NOTIFIER_RANGE_BLOCKABLE);
  openHere(m)[mm]!++;
  mnItreeInvalidate(m, r);
  return r;
}

/**
 * mmu_notifier_invalidate_range_start_nonblock() (the OOM reaper's): rc -EAGAIN when a subscriber
 * cannot serve the range without sleeping; then nothing is open and range_end must not be called.
 */
export function mmuNotifierInvalidateRangeStartNonblock(
  m: Memmap,
  mm: number,
  start: number,
  end: number,
  event: number,
): { rc: number; range: MmuNotifierRange | null } {
  if (mmuNotifierBlindStart(m, mm)) return { rc: 0, range: BLIND_RANGE };
  const r = rangeInit(mm, start, end, event, 0);
  openHere(m)[mm]!++;
  const rc = mnItreeInvalidate(m, r);
  if (rc) {
    openHere(m)[mm]!--;
    return { rc, range: null };
  }
  return { rc: 0, range: r };
}

/** mmu_notifier_invalidate_range_end(): the PTEs have changed; readers may proceed (null: nothing was started). */
export function mmuNotifierInvalidateRangeEnd(m: Memmap, r: MmuNotifierRange | null): void {
  if (!r) return;
  if (r === BLIND_RANGE) return mmuNotifierBlindEnd(m);
  if (!(openHere(m)[r.mm]! > 0)) bug(`mmu_notifier_invalidate_range_end without a start on mm ${r.mm}`);
  openHere(m)[r.mm]!--;
  mnItreeInvEnd(m, r.mm);
}

/**
 * __mmu_notifier_release() / mn_itree_release() from exit_mmap(): every subscriber of the mm hears
 * MMU_NOTIFY_RELEASE over the whole address space. Subscriptions stay until their owners remove them.
 */
export function mmuNotifierRelease(m: Memmap, mm: number): void {
  if (!mmHasNotifiers(m, mm)) return;
  const r = rangeInit(mm, 0, vaPages(m), MMU_NOTIFY_RELEASE, MMU_NOTIFIER_RANGE_BLOCKABLE);
  openHere(m)[mm]!++;
  const { hits, curSeq } = mnItreeInvStartRange(m, r);
  for (const h of hits) {
    const ok = deliver(m, { subId: h.id, owner: h.owner, range: r, curSeq });
    vmWarnOnOnce(!ok, `mmu_interval_notifier ${h.id} refused MMU_NOTIFY_RELEASE`);
  }
  openHere(m)[mm]!--;
  mnItreeInvEnd(m, mm);
}

// ---------------------------------------------------------------------------------------------
// Subscriptions: insert / remove

/** mmu_notifier_register(NULL, mm): give the mm a table (a dead mm's in this slot is reset); true when new. */
function mmuNotifierRegisterItree(m: Memmap, mm: number): boolean {
  const t = m.mmuNotifiers;
  const b = tableBase(mm);
  const pid = m.mms[mmBase(mm) + MM_PID]!;
  if (t[b + MN_HAS_ITREE] && t[b + MN_PID] === pid) return false;
  if (t[b + MN_HAS_ITREE]) {
    // the dead mm's subscriptions go with its mm_struct
    for (let s = 0; s < t[b + MN_NR_SLOTS]!; s++)
      if (t[subBase(mm, s) + MNS_STATE] !== SUB_FREE) freeSlot(m, subBase(mm, s));
    t.fill(0, b + MN_HDR, b + MN_STRIDE);
  }
  t[b + MN_PID] = pid;
  t[b + MN_ACTIVE] = 0;
  t[b + MN_NR_SLOTS] = 0;
  atomicSet(t, b + MN_SEQ, 2); // subscriptions->invalidate_seq = 2
  atomicSet(t, b + MN_HAS_ITREE, 1);
  return true;
}

/**
 * mmu_interval_notifier_insert(): watch [start, start + nrPages) of mm. Returns 0, -EOVERFLOW (empty
 * or wrapping range), -EINVAL (the mm has no users: WARN_ON in the kernel) or -ENOMEM (the mm's
 * table is full). Inserted during an invalidation, the subscription may only enter the tree at its
 * end; either way the caller must establish device PTEs through mmuIntervalReadBegin().
 */
export function mmuIntervalNotifierInsert(
  sub: MmuIntervalNotifier,
  m: Memmap,
  mm: number,
  start: number,
  nrPages: number,
): number {
  if (sub.id) bug(`mmu_interval_notifier_insert: subscription ${sub.id} is already inserted`);
  if (
    !Number.isSafeInteger(start) ||
    !Number.isSafeInteger(nrPages) ||
    nrPages === 0 ||
    start < 0 ||
    nrPages < 0 ||
    start + nrPages > 0x7fffffff
  )
    return -EOVERFLOW;
  if (vmWarnOnOnce(m.mms[mmBase(mm) + MM_USERS]! <= 0, 'mmu_interval_notifier_insert on an mm without users'))
    return -EINVAL;
  const t = m.mmuNotifiers;
  const b = tableBase(mm);
  spinLock(t, b + MN_LOCK);
  const first = mmuNotifierRegisterItree(m, mm);
  let slot = -1;
  for (let s = 0; s < MMU_NOTIFIER_SUBS_MAX && slot < 0; s++) if (t[subBase(mm, s) + MNS_STATE] === SUB_FREE) slot = s;
  if (slot < 0) {
    spinUnlock(t, b + MN_LOCK);
    return -ENOMEM;
  }
  const sb = subBase(mm, slot);
  const id = atomicFetchAdd(t, MNG_NEXT_ID, 1) + 1;
  t[sb + MNS_START] = start;
  t[sb + MNS_END] = start + nrPages;
  t[sb + MNS_ID] = id;
  t[sb + MNS_OWNER] = threadId;
  if (t[b + MN_ACTIVE]! > 0) {
    // an invalidation of unknown range is running: the new range counts as invalidated
    if (isInvalidating(t, b)) t[sb + MNS_STATE] = SUB_DEFERRED_INSERT;
    else {
      atomicSet(t, b + MN_SEQ, t[b + MN_SEQ]! | 1);
      t[sb + MNS_STATE] = SUB_IN_TREE;
    }
    atomicSet(t, sb + MNS_SEQ, t[b + MN_SEQ]!);
  } else {
    vmWarnOnOnce(isInvalidating(t, b), 'mmu notifier seq odd with no active invalidation');
    atomicSet(t, sb + MNS_SEQ, (t[b + MN_SEQ]! - 1) | 0); // odd, and not the current seq
    t[sb + MNS_STATE] = SUB_IN_TREE;
  }
  if (slot >= t[b + MN_NR_SLOTS]!) t[b + MN_NR_SLOTS] = slot + 1;
  atomicFetchAdd(t, MNG_NR_SUBS, 1);
  spinUnlock(t, b + MN_LOCK);
  Object.assign(sub, { m, mm, start, end: start + nrPages, id, slot, pid: m.mms[mmBase(mm) + MM_PID]! });
  localSubs.set(id, sub);
  // the mm's first subscription: invalidations that checked before it and found nobody change their PTEs
  // before this returns and the caller reads them (mm_take_all_locks())
  if (first) waitBlindDrained(m);
  return 0;
}

/** The subscription's slot base, or -1 when its table was reset (its mm died and the slot was reused). */
function liveSlot(sub: MmuIntervalNotifier): number {
  const m = sub.m;
  if (!m || !sub.id) bug('mmu interval notifier used before insert or after remove');
  const sb = subBase(sub.mm, sub.slot);
  return m.mmuNotifiers[sb + MNS_ID] === sub.id ? sb : -1;
}

/**
 * mmu_interval_notifier_remove(): once it returns, the callback is not running and will not be
 * called again. Waits for a running invalidation of the mm to end (never call it from a callback).
 */
export function mmuIntervalNotifierRemove(sub: MmuIntervalNotifier): void {
  const sb = liveSlot(sub);
  const m = sub.m!;
  const t = m.mmuNotifiers;
  const b = tableBase(sub.mm);
  let seq = 0;
  let wait = false;
  if (sb >= 0) {
    spinLock(t, b + MN_LOCK);
    if (isInvalidating(t, b)) {
      if (t[sb + MNS_STATE] === SUB_DEFERRED_INSERT)
        freeSlot(m, sb); // never reached the tree
      else {
        t[sb + MNS_STATE] = SUB_DEFERRED_REMOVE;
        seq = t[b + MN_SEQ]!;
        wait = true;
      }
    } else {
      vmWarnOnOnce(t[sb + MNS_STATE] !== SUB_IN_TREE, 'mmu_interval_notifier_remove of a subscription not in the tree');
      freeSlot(m, sb);
    }
    spinUnlock(t, b + MN_LOCK);
  }
  if (wait) waitSeqReleased(m, sub.mm, seq, 'mmu_interval_notifier_remove');
  localSubs.delete(sub.id);
  sub.id = 0;
  sub.slot = -1;
}

// ---------------------------------------------------------------------------------------------
// The read side: mmu_interval_read_begin / read_retry / check_retry / set_seq

/**
 * mmu_interval_read_begin(): start a collision-retry section. If an invalidation covering this
 * subscription is running, waits for it to end (bounded; a KernelBug when this thread runs it).
 */
export function mmuIntervalReadBegin(sub: MmuIntervalNotifier): number {
  const sb = liveSlot(sub);
  if (sb < 0) return 0;
  const m = sub.m!;
  const t = m.mmuNotifiers;
  const b = tableBase(sub.mm);
  spinLock(t, b + MN_LOCK);
  const seq = t[sb + MNS_SEQ]!;
  const invalidating = seq === t[b + MN_SEQ];
  spinUnlock(t, b + MN_LOCK);
  if (invalidating) waitSeqReleased(m, sub.mm, seq, 'mmu_interval_read_begin');
  return seq;
}

/** mmu_interval_read_retry(): under the subscriber's lock, true when an invalidation hit since read_begin. */
export function mmuIntervalReadRetry(sub: MmuIntervalNotifier, seq: number): boolean {
  const sb = liveSlot(sub);
  return sb < 0 || atomicRead(sub.m!.mmuNotifiers, sb + MNS_SEQ) !== seq;
}

/** mmu_interval_check_retry(): the lockless early check (may miss a collision read_retry catches). */
export function mmuIntervalCheckRetry(sub: MmuIntervalNotifier, seq: number): boolean {
  return mmuIntervalReadRetry(sub, seq);
}

/** mmu_interval_set_seq(): from the invalidate callback, under the subscriber's lock. */
export function mmuIntervalSetSeq(sub: MmuIntervalNotifier, curSeq: number): void {
  const sb = liveSlot(sub);
  if (sb >= 0) atomicSet(sub.m!.mmuNotifiers, sb + MNS_SEQ, curSeq);
}

/** Whether the subscription's mm is still the process it was inserted on (mmget_not_zero on umem->owning_mm). */
export function mmuIntervalNotifierMmAlive(sub: MmuIntervalNotifier): boolean {
  const m = sub.m;
  if (!m || !sub.id) return false;
  const b = mmBase(sub.mm);
  return m.mms[b + MM_USERS]! > 0 && m.mms[b + MM_PID] === sub.pid && liveSlot(sub) >= 0;
}

/** The mm's subscriptions as /sys-like records (debugging, tests): [start, end), seq, state. */
export function mmuIntervalNotifiers(
  m: Memmap,
  mm: number,
): { id: number; start: number; end: number; seq: number; state: string }[] {
  if (!mmHasNotifiers(m, mm)) return [];
  const t = m.mmuNotifiers;
  const out = [];
  const names = ['free', 'tree', 'deferred-insert', 'deferred-remove'];
  for (let s = 0; s < t[tableBase(mm) + MN_NR_SLOTS]!; s++) {
    const sb = subBase(mm, s);
    if (t[sb + MNS_STATE] === SUB_FREE) continue;
    out.push({
      id: t[sb + MNS_ID]!,
      start: t[sb + MNS_START]!,
      end: t[sb + MNS_END]!,
      seq: t[sb + MNS_SEQ]!,
      state: names[t[sb + MNS_STATE]!]!,
    });
  }
  return out;
}
