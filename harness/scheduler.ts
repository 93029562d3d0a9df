// The scheduler, as each actor thread runs it (worker side; imports no pool or CLI code).
//
// Deterministic mode: exactly one actor holds the token (C_TOKEN). At every scheduling decision - a
// preemption point, a wait that would block, an actor's exit - the holder reads the next choice c
// from the schedule (0 once the schedule runs out), lists the runnable actors in rotation order
// starting with itself, and hands the token to entry c % count: choice 0 keeps running, so a schedule
// of zeros (or none) means no preemption, and shrinking a schedule means fewer preemptions. The
// hand-off is direct: store the token, bump the next actor's wake word, notify it; then wait on its
// own wake word. A blocked actor (waiting while a word of the machine holds a value) is skipped
// until that word changes; when no actor can run and not all have finished, the run is a deadlock.
//
// Free mode: no token; threads race. Every preemption point appends (sequence from Atomics.add,
// actor, label) to the trace ring: the interleaving that ran.
//
// Interleaving replay (deterministic mode following a free run): the control block holds the free
// run's preemption points in the order they were reached. Each actor keeps a cursor on its own next
// point there; at every decision the CPU goes to the candidate whose next point came first in the free
// run, so every actor runs from one of its points to the next in the order the free run did. A blocked
// actor is skipped as usual, and an actor with no points left yields to the others (choice 0). The
// choice taken at each decision is written back into the schedule, so the replay becomes an ordinary
// schedule that needs no interleaving (and shrinks like one).
//
// Every wait is bounded (WAIT_ROUND_MS rounds) and rechecks C_STOP: the main thread stops a run
// (time budget, a dead worker, Ctrl-C) by setting it, and every actor unwinds with RunStopped.
import {
  Control,
  C_TOKEN,
  C_END,
  C_STOP,
  C_DECISION,
  C_DONE,
  C_SCHED_LEN,
  C_READY,
  C_GO,
  C_ERR_ACTOR,
  C_SWITCHES,
  C_POINTS,
  A_STATE,
  A_WAKE,
  A_WAIT_IDX,
  A_WAIT_VAL,
  A_REASON,
  A_POINTS,
  A_WAIT_BUF,
  A_MB_STATE,
  MB_PENDING,
  ST_RUNNABLE,
  ST_BLOCKED,
  ST_DONE,
  END_RUNNING,
  END_DONE,
  END_ERROR,
  END_DEADLOCK,
  K_POINT,
  K_BLOCK,
  K_EXIT,
  fnv1a,
  C_ORDER_LEN,
  C_ORDER_MISMATCH,
  C_ORDER_FIRST_MISMATCH,
  C_ORDER_MISMATCH_LABEL,
  A_ORDER_CUR,
  ORDER_ENTRY,
} from './schedctl';

/** Thrown inside an actor when the run was stopped (or deadlocked) under it: unwind, report nothing. */
export class RunStopped extends Error {
  constructor(why: string) {
    super(why);
    this.name = 'RunStopped';
  }
}

const WAIT_ROUND_MS = 100;
/** Interleaving replay: how far ahead among an actor's own points a mismatched label is looked for. */
const ORDER_RESYNC_POINTS = 8;
/** A wait for the token or the start line this long means the main thread is gone: give up. */
const WAIT_MAX_MS = 600_000;

type Decision = 'self' | 'handed' | 'end' | 'deadlock';

export class ActorScheduler {
  readonly c: Control;
  readonly me: number;
  readonly det: boolean;
  private readonly i: Int32Array;
  private readonly n: number;
  private readonly machine32: Int32Array;
  private readonly machineSab: SharedArrayBuffer;
  private readonly labels = new Map<string, number>();
  private readonly cand: Int32Array;
  private server: () => void = () => undefined;

  constructor(c: Control, me: number, machineSab: SharedArrayBuffer, det: boolean) {
    this.c = c;
    this.i = c.i32;
    this.me = me;
    this.n = c.nrActors;
    this.det = det;
    this.machineSab = machineSab;
    // >>> 2 would wrap above 4 GiB
    this.machine32 = new Int32Array(machineSab, 0, Math.floor(machineSab.byteLength / 4));
    this.cand = new Int32Array(this.n);
  }

  /** What to run for other actors (its mmu notifier mailbox): called whenever this actor has the CPU. */
  setServer(fn: () => void): void {
    this.server = fn;
  }

  /** Run whatever another actor asked of this one. */
  serve(): void {
    this.server();
  }

  /** The label's hash, published in the shared table the first time this thread uses it. */
  hash(label: string): number {
    let h = this.labels.get(label);
    if (h === undefined) {
      h = fnv1a(label);
      this.labels.set(label, h);
      this.c.publishLabel(h, label);
    }
    return h;
  }

  record(kind: number, label: string, arg: number): number {
    return this.c.record(this.me, kind, this.hash(label), arg);
  }

  stopped(): boolean {
    return Atomics.load(this.i, C_STOP) !== 0;
  }

  /** Wait for the first token (det) or for every actor to reach the start line (free). */
  start(): void {
    if (this.det) {
      this.waitToken();
      return;
    }
    const i = this.i;
    if (Atomics.add(i, C_READY, 1) + 1 === this.n) {
      Atomics.store(i, C_GO, 1);
      Atomics.notify(i, C_GO);
      return;
    }
    for (let waited = 0; Atomics.load(i, C_GO) === 0; waited += WAIT_ROUND_MS) {
      if (this.stopped()) throw new RunStopped('stopped before start');
      if (waited > WAIT_MAX_MS) throw new RunStopped('start line: the other actors never came');
      Atomics.wait(i, C_GO, 0, WAIT_ROUND_MS);
    }
  }

  /** A preemption point: record it; in deterministic mode, a scheduling decision. */
  point(label: string): void {
    const h = this.hash(label);
    this.c.record(this.me, K_POINT, h, 0);
    if (this.det && this.i[C_ORDER_LEN]) this.orderReached(h);
    Atomics.add(this.i, this.c.actor(this.me, A_POINTS), 1);
    Atomics.add(this.i, C_POINTS, 1);
    if (!this.det) {
      if (this.stopped()) throw new RunStopped('stopped');
      this.serve();
      return;
    }
    if (this.decide() === 'handed') this.waitToken();
    this.serve();
  }

  /**
   * Deterministic mode's wait: this actor cannot go on while a[idx] === value. Marked blocked on
   * that word, it hands the CPU on; it runs again once the word has changed and the schedule picks it.
   */
  block(a: Int32Array, idx: number, value: number, reason: string): void {
    const inControl = a.buffer === this.c.sab;
    if (a.buffer !== this.machineSab && !inControl)
      throw new Error(`scheduler: a wait on a word outside the machine and control buffers (${reason})`);
    if (Atomics.load(a, idx) !== value) return;
    const i = this.i;
    const me = this.me;
    i[this.c.actor(me, A_WAIT_BUF)] = inControl ? 1 : 0;
    i[this.c.actor(me, A_WAIT_IDX)] = (a.byteOffset >>> 2) + idx;
    i[this.c.actor(me, A_WAIT_VAL)] = value;
    i[this.c.actor(me, A_REASON)] = this.hash(reason);
    Atomics.store(i, this.c.actor(me, A_STATE), ST_BLOCKED);
    // < 0: a control word
    this.record(K_BLOCK, reason, inControl ? -1 - ((a.byteOffset >>> 2) + idx) : (a.byteOffset >>> 2) + idx);
    const d = this.decide();
    if (d === 'deadlock') throw new RunStopped('deadlock');
    if (d === 'handed') this.waitToken();
    Atomics.store(i, this.c.actor(me, A_STATE), ST_RUNNABLE);
    this.serve(); // picked while blocked: to run a callback another actor waits for (the caller re-checks its wait)
  }

  /** The actor finished its program (and teardown): a last decision hands the CPU on. */
  exit(): void {
    const i = this.i;
    this.record(K_EXIT, 'exit', 0);
    if (this.det && i[C_ORDER_LEN]) this.orderReached(this.hash('exit'));
    Atomics.store(i, this.c.actor(this.me, A_STATE), ST_DONE);
    const done = Atomics.add(i, C_DONE, 1) + 1;
    if (!this.det) {
      if (done === this.n) this.end(END_DONE);
      return;
    }
    this.decide();
  }

  /** The actor threw: end the run; everyone else unwinds. */
  fail(): void {
    Atomics.compareExchange(this.i, C_ERR_ACTOR, -1, this.me); // the first actor to fail is the one reported
    this.end(END_ERROR);
  }

  private end(code: number): void {
    const i = this.i;
    if (Atomics.compareExchange(i, C_END, END_RUNNING, code) === END_RUNNING && code !== END_DONE) {
      Atomics.store(i, C_STOP, 1);
      for (let a = 0; a < this.n; a++) {
        Atomics.add(i, this.c.actor(a, A_WAKE), 1);
        Atomics.notify(i, this.c.actor(a, A_WAKE));
      }
      Atomics.notify(i, C_GO);
    }
    Atomics.notify(i, C_END);
  }

  private cleared(a: number): boolean {
    const i = this.i;
    const words = i[this.c.actor(a, A_WAIT_BUF)] ? i : this.machine32;
    return Atomics.load(words, i[this.c.actor(a, A_WAIT_IDX)]!) !== i[this.c.actor(a, A_WAIT_VAL)];
  }

  /** One scheduling decision by the token holder. */
  private decide(): Decision {
    const i = this.i;
    const c = this.c;
    const me = this.me;
    if (Atomics.load(i, C_STOP)) throw new RunStopped('stopped');
    const d = i[C_DECISION]!;
    i[C_DECISION] = d + 1;
    const choice = d < i[C_SCHED_LEN]! ? i[c.schedBase + d]! : 0;
    let count = 0;
    for (let k = 0; k < this.n; k++) {
      const a = (me + k) % this.n;
      let st = i[c.actor(a, A_STATE)]!;
      if (st === ST_BLOCKED && this.cleared(a)) {
        st = ST_RUNNABLE;
        Atomics.store(i, c.actor(a, A_STATE), ST_RUNNABLE);
      }
      // a blocked actor that another actor asked to run a callback may run for that (and block again)
      if (st === ST_RUNNABLE || (st === ST_BLOCKED && Atomics.load(i, c.actor(a, A_MB_STATE)) === MB_PENDING))
        this.cand[count++] = a;
    }
    if (count === 0) {
      if (Atomics.load(i, C_DONE) === this.n) {
        this.end(END_DONE);
        return 'end';
      }
      this.end(END_DEADLOCK);
      return 'deadlock';
    }
    let pick = (choice >>> 0) % count;
    if (i[C_ORDER_LEN]) {
      pick = this.orderPick(count);
      if (d < c.schedCap) i[c.schedBase + d] = pick; // the decision as a schedule choice (run_case reads them back)
    }
    const next = this.cand[pick]!;
    if (next === me) return 'self';
    i[C_SWITCHES]!++;
    Atomics.store(i, C_TOKEN, next);
    Atomics.add(i, c.actor(next, A_WAKE), 1);
    Atomics.notify(i, c.actor(next, A_WAKE), 1);
    return 'handed';
  }

  /** Interleaving replay: the candidate whose next point came first in the free run (0 when none has one left). */
  private orderPick(count: number): number {
    const i = this.i;
    let best = 0;
    let bestAt = i[C_ORDER_LEN]!;
    for (let k = 0; k < count; k++) {
      const at = i[this.c.actor(this.cand[k]!, A_ORDER_CUR)]!;
      if (at < bestAt) {
        bestAt = at;
        best = k;
      }
    }
    return best;
  }

  /**
   * Interleaving replay: this actor reached its next point. Where the free run had another label there,
   * the mismatch is noted and the cursor resynchronises: on the same label a few points further on
   * (the free run passed points this run skipped), else on the next point.
   */
  private orderReached(labelHash: number): void {
    const i = this.i;
    const c = this.c;
    const len = i[C_ORDER_LEN]!;
    const cur = c.actor(this.me, A_ORDER_CUR);
    let k = i[cur]!;
    if (k >= len) return;
    if (i[c.orderBase + k * ORDER_ENTRY + 1]! >>> 0 !== labelHash) {
      if (i[C_ORDER_MISMATCH]!++ === 0) {
        i[C_ORDER_FIRST_MISMATCH] = k;
        i[C_ORDER_MISMATCH_LABEL] = labelHash;
      }
      for (let j = this.orderNext(k), n = 0; j < len && n < ORDER_RESYNC_POINTS; j = this.orderNext(j), n++) {
        if (i[c.orderBase + j * ORDER_ENTRY + 1]! >>> 0 === labelHash) {
          k = j;
          break;
        }
      }
    }
    i[cur] = this.orderNext(k);
  }

  /** The order index of this actor's point after index k (C_ORDER_LEN: none). */
  private orderNext(k: number): number {
    const i = this.i;
    const len = i[C_ORDER_LEN]!;
    for (k++; k < len && i[this.c.orderBase + k * ORDER_ENTRY] !== this.me; k++);
    return k;
  }

  private waitToken(): void {
    const i = this.i;
    const wake = this.c.actor(this.me, A_WAKE);
    for (let waited = 0; ; waited += WAIT_ROUND_MS) {
      const g = Atomics.load(i, wake);
      if (Atomics.load(i, C_TOKEN) === this.me && !Atomics.load(i, C_STOP)) return;
      if (Atomics.load(i, C_STOP)) throw new RunStopped('stopped');
      if (waited > WAIT_MAX_MS) throw new RunStopped('no token for 10 minutes: the main thread is gone');
      Atomics.wait(i, wake, g, WAIT_ROUND_MS);
    }
  }
}

/** A preemption point of a free run, in the order the points were reached (the interleaving). */
export interface OrderEntry {
  actor: number;
  label: number;
}

/**
 * Main thread: the first decision (rotation from actor 0) hands the token to the first runner. With an
 * interleaving, the first runner is the free run's first, every actor's cursor is put on its first
 * point, and the decisions taken are written into the schedule as they are made.
 */
export function initDeterministic(c: Control, schedule: readonly number[], order?: readonly OrderEntry[]): void {
  const i = c.i32;
  const n = Math.min(schedule.length, c.schedCap);
  for (let k = 0; k < n; k++) i[c.schedBase + k] = schedule[k]! >>> 0;
  i[C_SCHED_LEN] = n;
  let first = n ? (schedule[0]! >>> 0) % c.nrActors : 0;
  if (order?.length) {
    const len = Math.min(order.length, c.orderCap);
    for (let a = 0; a < c.nrActors; a++) i[c.actor(a, A_ORDER_CUR)] = len;
    for (let k = len - 1; k >= 0; k--) {
      const e = order[k]!;
      i[c.orderBase + k * ORDER_ENTRY] = e.actor;
      i[c.orderBase + k * ORDER_ENTRY + 1] = e.label;
      i[c.actor(e.actor, A_ORDER_CUR)] = k;
    }
    i[C_ORDER_LEN] = len;
    first = order[0]!.actor;
    i[c.schedBase] = first;
    i[C_SCHED_LEN] = c.schedCap;
  }
  i[C_DECISION] = 1;
  Atomics.store(i, C_TOKEN, first);
}

export { fnv1a };
