// The mmu notifier mailbox (harness/actor/mailbox.ts): an invalidation on one actor's thread reaches a
// subscription of another actor's thread through the control block, and the owner runs the callback when it
// serves. An owner that holds a lock its callbacks take (an ODP umem_mutex) runs none until it lets go: the
// kernel's invalidator would sleep on the lock, and here the callback could only take it a second time.
import { boot } from '../helpers';
import { bprmMmInit, doMmap, PROT_READ, PROT_WRITE } from '../../mm/mmap';
import { putUser } from '../../mm/memory';
import {
  MmuIntervalNotifier,
  mmuIntervalNotifierInsert,
  mmuIntervalNotifierRemove,
  mmuNotifierCallbackLockTaken,
  mmuNotifierCallbackLockReleased,
  mmuNotifierCallbackLocksReset,
  MMU_NOTIFY_CLEAR,
} from '../../mm/mmu_notifier';
import { NotifierMailbox } from '../../harness/actor/mailbox';
import {
  Control,
  A_MB_STATE,
  A_MB_SUB,
  A_MB_ARGS,
  A_MB_RESULT,
  A_MB_FROM,
  MB_PENDING,
  MB_DONE,
} from '../../harness/schedctl';

describe('mmu notifier mailbox', () => {
  it("an owner holding a callback lock answers no callback until it lets go; a new run's mailbox starts clear", () => {
    const m = boot('mem=1M movablecore=512K sysctl.vm.min_free_kbytes=16', 'mini');
    const mm = bprmMmInit(m);
    const v = doMmap(m, mm, { nrPages: 4, prot: PROT_READ | PROT_WRITE });
    for (let i = 0; i < 4; i++) putUser(m, mm, v + i, i + 1);
    const calls: number[] = [];
    const sub = new MmuIntervalNotifier({
      invalidate: (_s, r) => {
        calls.push(r.start);
        return true;
      },
    });
    expect(mmuIntervalNotifierInsert(sub, m, mm, v, 4)).toBe(0);
    const c = new Control({ nrActors: 2, schedCap: 4, ringCap: 16, orderCap: 0 });
    const lines: string[] = [];
    const box = new NotifierMailbox(
      c,
      0,
      ['rdma-odp-0', 'hotplug-0'],
      () => undefined,
      (l) => lines.push(l),
    );
    // what deliver() on the hotplug actor's thread leaves in actor 0's mailbox
    const post = (vpn: number): void => {
      c.i32[c.actor(0, A_MB_FROM)] = 1;
      c.i32[c.actor(0, A_MB_SUB)] = sub.id;
      const a = c.actor(0, A_MB_ARGS);
      [mm, vpn, vpn + 1, MMU_NOTIFY_CLEAR, 1, 3].forEach((x, k) => (c.i32[a + k] = x));
      Atomics.store(c.i32, c.actor(0, A_MB_STATE), MB_PENDING);
    };
    try {
      post(v + 1);
      mmuNotifierCallbackLockTaken(); // the device took its umem_mutex
      box.serve(m); // e.g. while it waits for a page table lock under it
      expect(calls).toEqual([]);
      expect(c.i32[c.actor(0, A_MB_STATE)]).toBe(MB_PENDING);
      mmuNotifierCallbackLockReleased();
      box.serve(m);
      expect(calls).toEqual([v + 1]);
      expect(c.i32[c.actor(0, A_MB_STATE)]).toBe(MB_DONE);
      expect(c.i32[c.actor(0, A_MB_RESULT)]).toBe(1);
      expect(lines).toEqual([`mmu_notifier_invalidate: clear vpn ${v + 1}..${v + 2} for hotplug-0`]);
      // a run that ended in a KernelBug with the lock held must not leave the next run's actor deaf
      mmuNotifierCallbackLockTaken();
      const next = new NotifierMailbox(
        c,
        0,
        ['rdma-odp-0', 'hotplug-0'],
        () => undefined,
        () => undefined,
      );
      post(v + 2);
      next.serve(m);
      expect(calls).toEqual([v + 1, v + 2]);
    } finally {
      mmuNotifierCallbackLocksReset();
      mmuIntervalNotifierRemove(sub);
    }
  });
});
