// mmu interval notifiers (mm/mmu_notifier.ts): the sequence protocol, every invalidation hook in the mm
// core with its range and event, non-blockable ranges, deferred insert/remove, and that a machine
// without subscriptions never pays for them. One test runs an invalidation on a second thread.
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import { smpEnable } from '../../../mm/atomic';
import { boot } from '../../helpers';
import {
  bprmMmInit,
  doMmap,
  doMunmap,
  doMadvise,
  doMprotect,
  dupMm,
  exitMmap,
  MADV_DONTNEED,
  PROT_READ,
  PROT_WRITE,
} from '../../../mm/mmap';
import { getUser, putUser, followPte, zapPageRange } from '../../../mm/memory';
import { migrateRange } from '../../../mm/migrate';
import { stateStore } from '../../../mm/memory_hotplug';
import {
  Memmap,
  MNG_NR_SUBS,
  MNG_BLIND,
  MN_STRIDE,
  MNG_SLOTS,
  MMU_NOTIFIER_SUBS_MAX,
  MM_USERS,
} from '../../../mm/memmap';
import { mmBase, ptlLock, ptlUnlock } from '../../../mm/mm_types';
import { EAGAIN, EINVAL, ENOMEM, EOVERFLOW } from '../../../mm/errno';
import { KernelBug, warnings } from '../../../mm/debug';
import {
  MmuIntervalNotifier,
  MmuNotifierRange,
  mmuIntervalNotifierInsert,
  mmuIntervalNotifierRemove,
  mmuIntervalReadBegin,
  mmuIntervalReadRetry,
  mmuIntervalCheckRetry,
  mmuIntervalSetSeq,
  mmuNotifierSeq,
  mmuNotifierInvalidateRangeStart,
  mmuNotifierInvalidateRangeEnd,
  mmuNotifierInvalidateRangeStartNonblock,
  mmuNotifierRangeBlockable,
  mmuNotifierBlindStart,
  BLIND_RANGE,
  setMmuNotifierDeliver,
  mmHasNotifiers,
  mmuNotifierNrSubscriptions,
  mmuIntervalNotifiers,
  mmuIntervalNotifierMmAlive,
  MMU_NOTIFY_CLEAR,
  MMU_NOTIFY_UNMAP,
  MMU_NOTIFY_RELEASE,
  MMU_NOTIFY_PROTECTION_VMA,
  MMU_NOTIFY_PROTECTION_PAGE,
  MMU_NOTIFY_EVENT_NAMES,
} from '../../../mm/mmu_notifier';
import { vaPages } from '../../../mm/pgtable';
import { setWaitHook } from '../../../mm/locking';
import { threadId } from 'node:worker_threads';

const MINI = 'mini';
const CMD = 'mem=1M movablecore=512K sysctl.vm.min_free_kbytes=16';
const RW = PROT_READ | PROT_WRITE;

interface Call {
  event: string;
  start: number;
  end: number;
  blockable: boolean;
  curSeq: number;
  mmSeq: number;
}

/** A subscriber that records every callback (and what the PTEs said at that moment) and acknowledges it. */
class Recorder {
  calls: Call[] = [];
  /** pfn mapped at `watch` when each callback ran (-1: none, -2: migration entry) */
  seenPfn: number[] = [];
  watch = -1;
  answer: (r: Readonly<MmuNotifierRange>) => boolean = () => true;
  readonly sub: MmuIntervalNotifier;
  constructor(
    readonly m: Memmap,
    readonly mm: number,
  ) {
    this.sub = new MmuIntervalNotifier({
      invalidate: (sub, r, curSeq) => {
        this.calls.push({
          event: MMU_NOTIFY_EVENT_NAMES[r.event]!,
          start: r.start,
          end: r.end,
          blockable: mmuNotifierRangeBlockable(r),
          curSeq,
          mmSeq: mmuNotifierSeq(m, sub.mm),
        });
        if (this.watch >= 0) this.seenPfn.push(pfnAt(m, mm, this.watch));
        const ok = this.answer(r);
        if (ok) mmuIntervalSetSeq(sub, curSeq);
        return ok;
      },
    });
  }
  insert(start: number, n: number): number {
    return mmuIntervalNotifierInsert(this.sub, this.m, this.mm, start, n);
  }
  events(): string[] {
    return this.calls.map((c) => `${c.event} ${c.start}+${c.end - c.start}`);
  }
}

function pfnAt(m: Memmap, mm: number, vpn: number): number {
  ptlLock(m, mm);
  const t = followPte(m, mm, vpn);
  ptlUnlock(m, mm);
  return !t ? -1 : t.migrating ? -2 : t.pfn;
}

function lookupLockedHuge(m: Memmap, mm: number, vpn: number): boolean {
  ptlLock(m, mm);
  const t = followPte(m, mm, vpn);
  ptlUnlock(m, mm);
  return !!t && t.huge;
}

function setup(cmd = CMD, n = 8): { m: Memmap; mm: number; v: number } {
  const m = boot(cmd, MINI);
  const mm = bprmMmInit(m);
  const v = doMmap(m, mm, { nrPages: n, prot: RW });
  for (let i = 0; i < n; i++) putUser(m, mm, v + i, 100 + i);
  return { m, mm, v };
}

describe('mmu interval notifiers (mm/mmu_notifier.c)', () => {
  it('mmu_interval_notifier_insert: errnos, a table per mm, the per-mm limit', () => {
    const { m, mm, v } = setup();
    const r = new Recorder(m, mm);
    expect(r.insert(v, 0)).toBe(-EOVERFLOW); // length == 0
    expect(r.insert(-1, 4)).toBe(-EOVERFLOW); // wraps
    expect(r.insert(0x7fffffff, 4)).toBe(-EOVERFLOW);
    const dead = bprmMmInit(m);
    m.mms[mmBase(dead) + MM_USERS] = 0;
    expect(mmuIntervalNotifierInsert(new MmuIntervalNotifier(r.sub.ops), m, dead, v, 4)).toBe(-EINVAL);
    expect(warnings).toContain('mmu_interval_notifier_insert on an mm without users');
    expect(mmHasNotifiers(m, mm)).toBe(false);
    expect(r.insert(v, 4)).toBe(0);
    expect(() => r.insert(v, 4)).toThrow(KernelBug); // inserting the same subscription twice
    expect(mmHasNotifiers(m, mm)).toBe(true);
    expect(mmuNotifierSeq(m, mm)).toBe(2); // subscriptions->invalidate_seq starts at 2
    const more: MmuIntervalNotifier[] = [];
    for (let i = 1; i < MMU_NOTIFIER_SUBS_MAX; i++) {
      const s = new MmuIntervalNotifier(r.sub.ops);
      expect(mmuIntervalNotifierInsert(s, m, mm, v + (i % 8), 1)).toBe(0);
      more.push(s);
    }
    expect(mmuIntervalNotifierInsert(new MmuIntervalNotifier(r.sub.ops), m, mm, v, 1)).toBe(-ENOMEM);
    expect(mmuNotifierNrSubscriptions(m)).toBe(MMU_NOTIFIER_SUBS_MAX);
    for (const s of more) mmuIntervalNotifierRemove(s);
    mmuIntervalNotifierRemove(r.sub);
    expect(mmuNotifierNrSubscriptions(m)).toBe(0);
    expect(mmuIntervalNotifiers(m, mm)).toEqual([]);
    expect(() => mmuIntervalReadBegin(r.sub)).toThrow(KernelBug); // use after remove
  });

  it('read_begin / read_retry / set_seq: a collision is seen exactly when an invalidation hit the range', () => {
    const { m, mm, v } = setup();
    const r = new Recorder(m, mm);
    expect(r.insert(v, 4)).toBe(0);
    const s0 = mmuIntervalReadBegin(r.sub);
    expect(s0).toBe(1); // odd, and not the mm's seq: not invalidating
    expect(mmuIntervalReadRetry(r.sub, s0)).toBe(false);
    // an invalidation elsewhere in the mm: no callback, the mm's seq stays even, no collision
    zapPageRange(m, mm, v + 4, v + 8);
    expect(r.calls).toEqual([]);
    expect(mmuNotifierSeq(m, mm)).toBe(2);
    expect(mmuIntervalReadRetry(r.sub, s0)).toBe(false);
    // one that hits: during the callback the mm's seq is odd and equals cur_seq; after range_end it is even again
    zapPageRange(m, mm, v + 3, v + 5);
    expect(r.calls).toEqual([{ event: 'clear', start: v + 3, end: v + 5, blockable: true, curSeq: 3, mmSeq: 3 }]);
    expect(mmuNotifierSeq(m, mm)).toBe(4);
    expect(mmuIntervalReadRetry(r.sub, s0)).toBe(true);
    expect(mmuIntervalCheckRetry(r.sub, s0)).toBe(true);
    const s1 = mmuIntervalReadBegin(r.sub);
    expect(s1).toBe(3);
    expect(mmuIntervalReadRetry(r.sub, s1)).toBe(false);
    // nested ranges (a zap that splits a THP inside it): the seq goes even only at the outer end
    const outer = mmuNotifierInvalidateRangeStart(m, mm, v, v + 1, MMU_NOTIFY_CLEAR);
    const inner = mmuNotifierInvalidateRangeStart(m, mm, v + 1, v + 2, MMU_NOTIFY_CLEAR);
    expect(mmuNotifierSeq(m, mm)).toBe(5);
    mmuNotifierInvalidateRangeEnd(m, inner);
    expect(mmuNotifierSeq(m, mm)).toBe(5);
    mmuNotifierInvalidateRangeEnd(m, outer);
    expect(mmuNotifierSeq(m, mm)).toBe(6);
    expect(r.calls.map((c) => c.curSeq)).toEqual([3, 5, 5]);
    expect(() => mmuNotifierInvalidateRangeEnd(m, outer)).toThrow(KernelBug); // an end without a start
  });

  it('zap (MADV_DONTNEED: CLEAR, munmap: UNMAP) calls back with the range before the PTEs go', () => {
    const { m, mm, v } = setup();
    const r = new Recorder(m, mm);
    expect(r.insert(v, 8)).toBe(0);
    r.watch = v + 2;
    const pfn = pfnAt(m, mm, v + 2);
    expect(doMadvise(m, mm, v + 2, 2, MADV_DONTNEED)).toBe(0);
    expect(r.seenPfn).toEqual([pfn]); // still mapped while the callback ran
    expect(pfnAt(m, mm, v + 2)).toBe(-1);
    expect(doMunmap(m, mm, v + 6, 2)).toBe(0);
    expect(r.events()).toEqual([`clear ${v + 2}+2`, `unmap ${v + 6}+2`]);
    expect(r.calls.every((c) => c.blockable)).toBe(true);
  });

  it('exit_mmap: MMU_NOTIFY_RELEASE over the whole address space, then UNMAP per VMA; the subscription outlives the mm', () => {
    const { m, mm, v } = setup();
    const r = new Recorder(m, mm);
    expect(r.insert(v, 8)).toBe(0);
    expect(mmuIntervalNotifierMmAlive(r.sub)).toBe(true);
    exitMmap(m, mm);
    expect(r.events()).toEqual([`release 0+${vaPages(m)}`, `unmap ${v}+8`]);
    expect(mmuIntervalNotifierMmAlive(r.sub)).toBe(false); // umem->owning_mm has no users left
    // the slot is reused by a new process: it starts without notifiers, and its first insert drops the dead table
    const mm2 = bprmMmInit(m);
    expect(mm2).toBe(mm);
    expect(mmHasNotifiers(m, mm2)).toBe(false);
    const w = doMmap(m, mm2, { nrPages: 8, prot: RW });
    doMadvise(m, mm2, w, 8, MADV_DONTNEED);
    expect(r.calls).toHaveLength(2); // nothing delivered to the dead mm's subscriber
    const r2 = new Recorder(m, mm2);
    expect(r2.insert(w, 8)).toBe(0);
    expect(mmuNotifierNrSubscriptions(m)).toBe(1);
    mmuIntervalNotifierRemove(r.sub); // the stale handle just goes away
    expect(mmuIntervalNotifiers(m, mm2)).toHaveLength(1);
    mmuIntervalNotifierRemove(r2.sub);
    expect(mmuNotifierNrSubscriptions(m)).toBe(0);
  });

  it('COW: fork write-protects the parent (PROTECTION_PAGE), the first write copies one page (wp_page_copy: CLEAR)', () => {
    const { m, mm, v } = setup();
    const r = new Recorder(m, mm);
    expect(r.insert(v, 8)).toBe(0);
    const child = dupMm(m, mm);
    expect(child).toBeGreaterThanOrEqual(0);
    expect(r.events()).toEqual([`protection_page ${v}+8`]);
    r.watch = v + 5;
    const old = pfnAt(m, mm, v + 5);
    expect(putUser(m, mm, v + 5, 55)).toBe(55);
    expect(r.events()).toEqual([`protection_page ${v}+8`, `clear ${v + 5}+1`]);
    expect(r.seenPfn).toEqual([old]);
    expect(pfnAt(m, mm, v + 5)).not.toBe(old);
    expect(getUser(m, child, v + 5)).toBe(105);
    // the child's COW break is the child's mm: no callback here
    expect(putUser(m, child, v + 6, 66)).toBe(66);
    expect(r.calls).toHaveLength(2);
    // a shared mapping is not write-protected by fork
    const sh = doMmap(m, mm, { nrPages: 2, prot: RW, shared: true });
    putUser(m, mm, sh, 1);
    const r2 = new Recorder(m, mm);
    expect(r2.insert(sh, 2)).toBe(0);
    dupMm(m, mm);
    expect(r2.calls).toEqual([]);
  });

  it('mprotect dropping PROT_WRITE: PROTECTION_VMA', () => {
    const { m, mm, v } = setup();
    const r = new Recorder(m, mm);
    expect(r.insert(v, 8)).toBe(0);
    expect(doMprotect(m, mm, v + 1, 3, PROT_READ)).toBe(0);
    expect(r.events()).toEqual([`protection_vma ${v + 1}+3`]);
    expect(r.calls[0]!.event).toBe(MMU_NOTIFY_EVENT_NAMES[MMU_NOTIFY_PROTECTION_VMA]);
  });

  it('migration (try_to_migrate_one: CLEAR) calls back per folio before the PTE becomes a migration entry', () => {
    const { m, mm, v } = setup();
    const r = new Recorder(m, mm);
    expect(r.insert(v + 2, 2)).toBe(0);
    r.watch = v + 2;
    const old = pfnAt(m, mm, v + 2);
    expect(migrateRange(m, mm, v, 8, 'kernel').migrated).toBe(8);
    expect(r.events().sort()).toEqual([`clear ${v + 2}+1`, `clear ${v + 3}+1`].sort());
    expect(r.seenPfn).toContain(old); // the old page was still mapped when the device was told
    expect(pfnAt(m, mm, v + 2)).not.toBe(old);
    expect(getUser(m, mm, v + 2)).toBe(102);
  });

  it('offlining a block migrates its pages: each mapped page of the subscriber is invalidated first', () => {
    const { m, mm, v } = setup(CMD, 4);
    const r = new Recorder(m, mm);
    expect(r.insert(v, 4)).toBe(0);
    const blocks = new Set([0, 1, 2, 3].map((i) => Math.floor(pfnAt(m, mm, v + i) / m.blockPages)));
    for (const b of blocks) expect(stateStore(m, b, 'offline')).toBe(0);
    expect(r.events().sort()).toEqual([0, 1, 2, 3].map((i) => `clear ${v + i}+1`).sort());
    for (let i = 0; i < 4; i++) expect(getUser(m, mm, v + i)).toBe(100 + i);
  });

  it('THP: splitting the PMD (__split_huge_pmd) invalidates the whole PMD, nested in a partial zap or before a VMA split', () => {
    const m = boot(`${CMD} transparent_hugepage=always`, MINI);
    const mm = bprmMmInit(m);
    const v = doMmap(m, mm, { nrPages: 8, prot: RW });
    putUser(m, mm, v, 1); // one PMD-sized folio
    expect(lookupLockedHuge(m, mm, v)).toBe(true);
    const r = new Recorder(m, mm);
    expect(r.insert(v, 8)).toBe(0);
    expect(doMadvise(m, mm, v + 2, 3, MADV_DONTNEED)).toBe(0);
    expect(r.events()).toEqual([`clear ${v + 2}+3`, `clear ${v}+8`]);
    expect(r.calls[1]!.curSeq).toBe(r.calls[0]!.curSeq); // nested in the same write side
    const w = doMmap(m, mm, { nrPages: 8, prot: RW });
    putUser(m, mm, w, 1);
    const r2 = new Recorder(m, mm);
    expect(r2.insert(w, 8)).toBe(0);
    expect(doMunmap(m, mm, w + 2, 3)).toBe(0); // __split_vma() splits the PMD first, then unmap_vmas()
    expect(r2.events()).toEqual([`clear ${w}+8`, `unmap ${w + 2}+3`]);
  });

  it('hugetlb: a write to a private hugetlb page shared with a child copies it (hugetlb_wp: CLEAR of the huge page)', () => {
    const m = boot(`${CMD} hugepages=4`, MINI);
    const mm = bprmMmInit(m);
    const v = doMmap(m, mm, { nrPages: 8, prot: RW, hugetlb: true });
    putUser(m, mm, v, 7);
    const r = new Recorder(m, mm);
    expect(r.insert(v, 8)).toBe(0);
    const child = dupMm(m, mm);
    expect(child).toBeGreaterThanOrEqual(0);
    expect(putUser(m, mm, v + 3, 9)).toBe(9);
    expect(r.events()).toEqual([`protection_page ${v}+8`, `clear ${v}+8`]);
    expect(getUser(m, child, v)).toBe(7);
  });

  it('non-blockable ranges: a refusing subscriber gives -EAGAIN and nothing stays open; a blockable refusal only warns', () => {
    const { m, mm, v } = setup();
    const a = new Recorder(m, mm);
    const b = new Recorder(m, mm);
    // rxe/mlx5: `if (!mmu_notifier_range_blockable(range)) return false`
    a.answer = (r) => mmuNotifierRangeBlockable(r);
    expect(a.insert(v, 8)).toBe(0);
    expect(b.insert(v, 8)).toBe(0);
    const s = mmuIntervalReadBegin(a.sub);
    const nb = mmuNotifierInvalidateRangeStartNonblock(m, mm, v, v + 1, MMU_NOTIFY_UNMAP);
    expect(nb).toEqual({ rc: -EAGAIN, range: null });
    expect(mmuNotifierSeq(m, mm) & 1).toBe(0); // out_would_block ran inv_end
    expect(mmuIntervalReadRetry(a.sub, s)).toBe(false); // a did not set its seq
    const ok = mmuNotifierInvalidateRangeStart(m, mm, v, v + 1, MMU_NOTIFY_CLEAR);
    mmuNotifierInvalidateRangeEnd(m, ok);
    expect(mmuIntervalReadRetry(a.sub, s)).toBe(true);
    // a subscriber that refuses a blockable range: WARN_ON, and the others are still called
    const c = new Recorder(m, mm);
    c.answer = () => false;
    expect(c.insert(v, 8)).toBe(0);
    const before = b.calls.length;
    zapPageRange(m, mm, v, v + 1);
    expect(b.calls.length).toBe(before + 1);
    expect(warnings.some((w) => w.includes('refused a blockable clear range'))).toBe(true);
    // with nobody refusing, a non-blockable start succeeds and must be ended
    mmuIntervalNotifierRemove(a.sub);
    mmuIntervalNotifierRemove(c.sub);
    const nb2 = mmuNotifierInvalidateRangeStartNonblock(m, mm, v, v + 1, MMU_NOTIFY_UNMAP);
    expect(nb2.rc).toBe(0);
    expect(b.calls[b.calls.length - 1]!.blockable).toBe(false);
    mmuNotifierInvalidateRangeEnd(m, nb2.range);
    expect(mmuNotifierSeq(m, mm) & 1).toBe(0);
  });

  it('insert during an invalidation is deferred to its end; read_begin or remove from inside a callback is a deadlock', () => {
    const { m, mm, v } = setup();
    const a = new Recorder(m, mm);
    const late = new Recorder(m, mm);
    expect(a.insert(v, 8)).toBe(0);
    let during: ReturnType<typeof mmuIntervalNotifiers> = [];
    let lateSeq = 0;
    a.answer = () => {
      expect(late.insert(v, 8)).toBe(0);
      during = mmuIntervalNotifiers(m, mm);
      lateSeq = during.find((s) => s.id === late.sub.id)!.seq;
      return true;
    };
    zapPageRange(m, mm, v, v + 1);
    expect(during.find((s) => s.id === late.sub.id)!.state).toBe('deferred-insert');
    expect(lateSeq).toBe(3); // the current (odd) seq: read_begin would wait for the end
    expect(late.calls).toEqual([]); // not called for the range it missed
    expect(mmuIntervalNotifiers(m, mm).every((s) => s.state === 'tree')).toBe(true);
    expect(mmuIntervalReadBegin(late.sub)).toBe(3); // after the end: no wait
    // a subscription inserted by a callback has the running seq: reading it there would wait for ourselves
    a.answer = () => {
      const x = new Recorder(m, mm);
      x.insert(v, 1);
      mmuIntervalReadBegin(x.sub);
      return true;
    };
    expect(() => zapPageRange(m, mm, v, v + 1)).toThrow(
      /mmu_interval_read_begin: waits for an invalidation of mm \d+ that this thread is running/,
    );
    // "It cannot be called from any ops callback" (mmu_interval_notifier_remove)
    const f = setup();
    const b = new Recorder(f.m, f.mm);
    expect(b.insert(f.v, 8)).toBe(0);
    b.answer = () => {
      mmuIntervalNotifierRemove(b.sub);
      return true;
    };
    expect(() => zapPageRange(f.m, f.mm, f.v, f.v + 1)).toThrow(
      /mmu_interval_notifier_remove: waits for an invalidation/,
    );
  });

  it("no subscriptions: every hook returns at once and never delivers; another mm's subscriptions cost this mm nothing", () => {
    const m = boot(CMD, MINI);
    const prev = setMmuNotifierDeliver(() => {
      throw new Error('delivered without a subscription');
    });
    try {
      const run = (mm: number): void => {
        const v = doMmap(m, mm, { nrPages: 8, prot: RW });
        for (let i = 0; i < 8; i++) putUser(m, mm, v + i, i);
        const child = dupMm(m, mm);
        putUser(m, mm, v, 1);
        expect(doMprotect(m, mm, v, 2, PROT_READ)).toBe(0);
        expect(migrateRange(m, mm, v, 8, 'kernel').migrated).toBeGreaterThan(0);
        expect(doMadvise(m, mm, v + 2, 2, MADV_DONTNEED)).toBe(0);
        expect(doMunmap(m, mm, v + 4, 2)).toBe(0);
        exitMmap(m, child);
      };
      const mm = bprmMmInit(m);
      run(mm);
      const blind = mmuNotifierInvalidateRangeStart(m, mm, 0, 8, MMU_NOTIFY_CLEAR);
      expect(blind).toBe(BLIND_RANGE);
      expect(m.mmuNotifiers[MNG_BLIND]).toBe(1);
      mmuNotifierInvalidateRangeEnd(m, blind);
      exitMmap(m, mm);
      // the whole notifier region is untouched: every blind start above had its end
      expect(m.mmuNotifiers.every((x) => x === 0)).toBe(true);
      // a subscriber on mm A: work on mm B neither delivers nor touches B's table
      const a = bprmMmInit(m);
      const va = doMmap(m, a, { nrPages: 2, prot: RW });
      setMmuNotifierDeliver(prev);
      const r = new Recorder(m, a);
      expect(r.insert(va, 2)).toBe(0);
      setMmuNotifierDeliver(() => {
        throw new Error('delivered to the wrong mm');
      });
      const b = bprmMmInit(m);
      run(b);
      const tb = MNG_SLOTS + b * MN_STRIDE;
      expect([...m.mmuNotifiers.subarray(tb, tb + MN_STRIDE)].every((x) => x === 0)).toBe(true);
      expect(m.mmuNotifiers[MNG_NR_SUBS]).toBe(1);
    } finally {
      setMmuNotifierDeliver(prev);
    }
  });

  it("an mm's first registration waits for the invalidations that found nobody to tell (mm_take_all_locks())", () => {
    const { m, mm, v } = setup();
    const waits: string[] = [];
    // a migration or COW on another CPU checked for subscribers before this registration and found none: its
    // PTE change is still to come; the registration must not return (and let the device read the old PTE)
    // before that invalidation ends
    const walker = mmuNotifierInvalidateRangeStart(m, mm, v, v + 1, MMU_NOTIFY_CLEAR);
    expect(walker).toBe(BLIND_RANGE);
    const prev = setWaitHook((_a, _i, _value, reason) => {
      waits.push(reason);
      mmuNotifierInvalidateRangeEnd(m, walker); // the walker finishes while the registration waits
    });
    try {
      const rec = new Recorder(m, mm);
      expect(rec.insert(v, 2)).toBe(0);
      expect(waits).toEqual(['mmu_notifier_register (mm_take_all_locks)']);
      expect(m.mmuNotifiers[MNG_BLIND]).toBe(0);
      // with the table there, later invalidations of the mm tell the subscriber (no blind start), and a
      // second registration on the mm does not wait even while a blind invalidation of another mm runs
      const other = bprmMmInit(m);
      const blindOther = mmuNotifierInvalidateRangeStart(m, other, 0, 1, MMU_NOTIFY_CLEAR);
      expect(blindOther).toBe(BLIND_RANGE);
      const r = mmuNotifierInvalidateRangeStart(m, mm, v, v + 1, MMU_NOTIFY_CLEAR);
      expect(r).not.toBe(BLIND_RANGE);
      mmuNotifierInvalidateRangeEnd(m, r);
      expect(rec.events()).toEqual([`clear ${v}+1`]);
      expect(new Recorder(m, mm).insert(v + 4, 2)).toBe(0);
      expect(waits).toHaveLength(1);
      mmuNotifierInvalidateRangeEnd(m, blindOther);
    } finally {
      setWaitHook(prev);
    }
    // an mm with a subscriber, or a machine with one: nothing blind, nothing counted
    expect(mmuNotifierBlindStart(m, mm)).toBe(false);
    expect(mmuNotifierBlindStart(m, -1)).toBe(false);
    expect(m.mmuNotifiers[MNG_BLIND]).toBe(0);
  });

  it('the default delivery refuses a subscriber of another thread, and names the fix', () => {
    const { m, mm, v } = setup();
    const r = new Recorder(m, mm);
    expect(r.insert(v, 8)).toBe(0);
    const prev = setMmuNotifierDeliver((mm2, d) => {
      expect(d.owner).toBe(threadId);
      expect(d.range).toMatchObject({ mm, start: v, end: v + 1, event: MMU_NOTIFY_CLEAR });
      return prev(mm2, { ...d, subId: d.subId + 1000 }); // as if it were someone else's
    });
    try {
      expect(() => zapPageRange(m, mm, v, v + 1)).toThrow(/belongs to thread .*setMmuNotifierDeliver/);
    } finally {
      setMmuNotifierDeliver(prev);
    }
  });
});

describe('across threads (the subscription table is in the shared buffer)', () => {
  // The worker runs an invalidation on the same machine; its delivery hook stands in for the harness's
  // (it acknowledges the callback after a pause, without the subscriber's closure).
  const workerCode = `
    const { workerData, parentPort } = require('node:worker_threads');
    const { Memmap } = require(${JSON.stringify(path.resolve(__dirname, '../../../mm/memmap'))});
    const mn = require(${JSON.stringify(path.resolve(__dirname, '../../../mm/mmu_notifier'))});
    const { zapPageRange } = require(${JSON.stringify(path.resolve(__dirname, '../../../mm/memory'))});
    const m = new Memmap(workerData.shape, workerData.sab);
    const ctl = new Int32Array(workerData.ctl);
    const seen = [];
    if (workerData.hook) mn.setMmuNotifierDeliver((_m, d) => {
      seen.push([d.subId, d.owner, d.range.event, d.range.start, d.range.end]);
      Atomics.store(ctl, 0, 1); Atomics.notify(ctl, 0);
      Atomics.wait(ctl, 1, 0, 300); // the subscriber's thread does its part meanwhile
      return true;
    });
    try { zapPageRange(m, workerData.mm, workerData.v, workerData.v + 1); parentPort.postMessage({ seen, seq: mn.mmuNotifierSeq(m, workerData.mm) }); }
    catch (e) { parentPort.postMessage({ error: String(e && e.message) }); }
  `;
  function runWorker(data: object): Promise<{ seen?: number[][]; seq?: number; error?: string }> {
    smpEnable(); // this thread now shares a machine with the worker (mm/atomic.ts)
    const w = new Worker(workerCode, { eval: true, workerData: data, execArgv: ['--require', 'tsx/cjs'] });
    return new Promise((resolve, reject) => {
      w.once('message', (msg) => {
        resolve(msg);
        void w.terminate();
      });
      w.once('error', reject);
    });
  }

  it("a worker sees this thread's subscription; read_begin and remove here wait for its invalidation to end", async () => {
    const { m, mm, v } = setup();
    const r = new Recorder(m, mm);
    expect(r.insert(v, 8)).toBe(0);
    const ctl = new SharedArrayBuffer(8);
    const c = new Int32Array(ctl);
    const done = runWorker({ shape: m.shape, sab: m.sab, ctl, mm, v, hook: true });
    // wait until the worker is inside the callback (the mm's seq is odd), then subscribe and read here
    for (let i = 0; i < 200 && Atomics.load(c, 0) === 0; i++) await new Promise((res) => setTimeout(res, 10));
    expect(Atomics.load(c, 0)).toBe(1);
    const odd = mmuNotifierSeq(m, mm);
    expect(odd & 1).toBe(1);
    const late = new Recorder(m, mm);
    expect(late.insert(v, 8)).toBe(0); // deferred: the tree may not change while invalidating
    const s = mmuIntervalReadBegin(late.sub); // sleeps until the worker's range_end
    expect(s).toBe(odd);
    expect(mmuNotifierSeq(m, mm)).toBe(odd + 1);
    const res = await done;
    expect(res.error).toBeUndefined();
    expect(res.seen).toEqual([[r.sub.id, threadId, MMU_NOTIFY_CLEAR, v, v + 1]]);
    expect(res.seq).toBe(odd + 1);
    expect(mmuIntervalNotifiers(m, mm).map((x) => x.state)).toEqual(['tree', 'tree']);
    // remove during a worker's invalidation: deferred, and it returns only once the callback cannot run any more
    Atomics.store(c, 0, 0);
    const done2 = runWorker({ shape: m.shape, sab: m.sab, ctl, mm, v, hook: true });
    for (let i = 0; i < 200 && Atomics.load(c, 0) === 0; i++) await new Promise((res) => setTimeout(res, 10));
    mmuIntervalNotifierRemove(late.sub);
    expect(mmuNotifierSeq(m, mm) & 1).toBe(0);
    expect(mmuIntervalNotifiers(m, mm)).toHaveLength(1);
    expect((await done2).seen).toHaveLength(2);
  });

  it('without a cross-thread delivery hook the worker fails loudly instead of skipping the callback', async () => {
    const { m, mm, v } = setup();
    const r = new Recorder(m, mm);
    expect(r.insert(v, 8)).toBe(0);
    const res = await runWorker({ shape: m.shape, sab: m.sab, ctl: new SharedArrayBuffer(8), mm, v, hook: false });
    expect(res.error).toMatch(/kernel BUG: mmu notifier: subscription \d+ belongs to thread \d+/);
    expect(r.calls).toEqual([]);
  });
});

describe('event names', () => {
  it('follow enum mmu_notifier_event', () => {
    expect(MMU_NOTIFY_EVENT_NAMES[MMU_NOTIFY_UNMAP]).toBe('unmap');
    expect(MMU_NOTIFY_EVENT_NAMES[MMU_NOTIFY_RELEASE]).toBe('release');
    expect(MMU_NOTIFY_EVENT_NAMES[MMU_NOTIFY_PROTECTION_PAGE]).toBe('protection_page');
  });
});
