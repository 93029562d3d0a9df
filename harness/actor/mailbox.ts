// mmu notifier callbacks across threads. A subscription belongs to the thread of the actor that
// registered it; an actor whose invalidation reaches another actor's subscription writes the range into
// that actor's mailbox in the control block and waits for the answer, as the kernel waits for the
// callback (mmu_notifier_invalidate_range_start()). The owner answers whenever it has the CPU
// (ActorScheduler.serve()), including while it is itself blocked.
import { threadId } from 'node:worker_threads';
import type { Memmap } from '../../mm/memmap';
import {
  mmuNotifierDeliverLocal,
  mmuNotifierCallbacksServable,
  mmuNotifierCallbackLocksReset,
  MmuNotifierDelivery,
  MMU_NOTIFY_EVENT_NAMES,
} from '../../mm/mmu_notifier';
import { KernelBug } from '../../mm/debug';
import {
  Control,
  A_TID,
  A_MB_LOCK,
  A_MB_STATE,
  A_MB_FROM,
  A_MB_SUB,
  A_MB_ARGS,
  A_MB_RESULT,
  MB_IDLE,
  MB_PENDING,
  MB_DONE,
} from '../schedctl';

/** Wait while a control word holds value, as the run's mode waits (harness/actor/index.ts). */
export type CtlWait = (idx: number, value: number, reason: string) => void;

/** Words of a mailbox's arguments: the range (mm, start, end, event, flags) and the subscriber's sequence. */
const ARG_WORDS = 6;

export class NotifierMailbox {
  private serving = false;

  constructor(
    private readonly c: Control,
    private readonly me: number,
    private readonly names: readonly string[],
    private readonly wait: CtlWait,
    private readonly log: (line: string) => void,
  ) {
    c.i32[c.actor(me, A_TID)] = threadId;
    mmuNotifierCallbackLocksReset(); // a run before this one may have ended holding one
  }

  /** Answer a callback another actor left in this actor's mailbox, if any. */
  serve(m: Memmap): void {
    const { c } = this;
    const i32 = c.i32;
    const st = c.actor(this.me, A_MB_STATE);
    // not while this actor holds a lock its callbacks take: the invalidator keeps waiting, as it would sleep on it
    if (this.serving || !mmuNotifierCallbacksServable() || Atomics.load(i32, st) !== MB_PENDING) return;
    this.serving = true;
    try {
      const a = c.actor(this.me, A_MB_ARGS);
      const d: MmuNotifierDelivery = {
        subId: i32[c.actor(this.me, A_MB_SUB)]!,
        owner: threadId,
        curSeq: i32[a + 5]!,
        range: { mm: i32[a]!, start: i32[a + 1]!, end: i32[a + 2]!, event: i32[a + 3]!, flags: i32[a + 4]! },
      };
      const from = this.names[i32[c.actor(this.me, A_MB_FROM)]!] ?? '?';
      const event = MMU_NOTIFY_EVENT_NAMES[d.range.event] ?? d.range.event;
      this.log(`mmu_notifier_invalidate: ${event} vpn ${d.range.start}..${d.range.end} for ${from}`);
      i32[c.actor(this.me, A_MB_RESULT)] = mmuNotifierDeliverLocal(m, d) ? 1 : 0;
    } finally {
      this.serving = false;
      Atomics.store(i32, st, MB_DONE);
      Atomics.notify(i32, st);
    }
  }

  /** Deliver an invalidation to the subscription's owner: here, or through its mailbox. */
  deliver(m: Memmap, d: MmuNotifierDelivery): boolean {
    if (d.owner === threadId) return mmuNotifierDeliverLocal(m, d);
    const { c } = this;
    const i32 = c.i32;
    let target = -1;
    for (let k = 0; k < c.nrActors; k++) if (i32[c.actor(k, A_TID)] === d.owner) target = k;
    if (target < 0)
      throw new KernelBug(
        `mmu notifier: subscription ${d.subId} belongs to thread ${d.owner}, which runs no actor of this run`,
      );
    const who = this.names[target] ?? `actor ${target}`;
    const lock = c.actor(target, A_MB_LOCK);
    const st = c.actor(target, A_MB_STATE);
    while (Atomics.compareExchange(i32, lock, 0, 1) !== 0) this.wait(lock, 1, `mmu notifier mailbox of ${who}`);
    try {
      const a = c.actor(target, A_MB_ARGS);
      i32[c.actor(target, A_MB_FROM)] = this.me;
      i32[c.actor(target, A_MB_SUB)] = d.subId;
      const args = [d.range.mm, d.range.start, d.range.end, d.range.event, d.range.flags, d.curSeq];
      for (let k = 0; k < ARG_WORDS; k++) i32[a + k] = args[k]!;
      Atomics.store(i32, st, MB_PENDING);
      Atomics.notify(i32, st);
      while (Atomics.load(i32, st) !== MB_DONE) this.wait(st, MB_PENDING, `mmu notifier callback of ${who}`);
      return i32[c.actor(target, A_MB_RESULT)] === 1;
    } finally {
      Atomics.store(i32, st, MB_IDLE);
      Atomics.store(i32, lock, 0);
      Atomics.notify(i32, lock);
    }
  }
}
