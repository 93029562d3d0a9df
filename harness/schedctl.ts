// The run's control block: one SharedArrayBuffer beside the machine's, shared by the main thread and
// every actor thread. It holds the scheduler's state (the token, who is blocked on what, the schedule),
// the trace ring and the label table. Named slots, as piscina's symbols.ts names its Int32 fields.
//
//   header   C_* slots (Int32)
//   actors   MAX_ACTORS records of A_STRIDE slots: state, wake word, what a blocked actor waits for
//   mapgen   one generation word per process mapping (bumped by the user agent before it unmaps)
//   schedule the case's schedule: choice indices, one per scheduling decision
//   order    an interleaving to follow (deterministic replay of a free run): ORDER_ENTRY Int32 per
//            preemption point reached in the free run, in the order reached: actor, label hash
//   ring     RING_ENTRY Int32 per trace entry: seq, actor | kind << 8, label hash, arg
//   labels   label hash -> text (LABELS_MAX records of hash, char offset, length), then the chars

/** At most this many actors per run (each runs on its own CPU; CPU 0 is the main thread's). */
export const MAX_ACTORS = 15;
export const MAX_MAPS = 8;
/** generation words: the case's mappings', then the user agent's two scratch mappings' (harness/agents/agent.ts) */
export const MAPGEN_SLOTS = MAX_MAPS + 2;

// ---- header slots ----
export const C_TOKEN = 0; // deterministic mode: the actor holding the CPU
export const C_END = 1; // END_*: why the run ended (END_RUNNING while it runs)
export const C_STOP = 2; // 1: every actor unwinds at its next scheduling point or wait
export const C_DECISION = 3; // scheduling decisions taken so far (index into the schedule)
export const C_SEQ = 4; // next trace sequence number (Atomics.add)
export const C_DONE = 5; // actors that finished
export const C_NR_ACTORS = 6;
export const C_SCHED_LEN = 7;
export const C_MODE = 8; // MODE_DET / MODE_FREE
export const C_READY = 9; // free mode: actors at the start line
export const C_GO = 10; // free mode: 1 once every actor is at the start line
export const C_LABEL_LOCK = 11;
export const C_LABEL_COUNT = 12;
export const C_LABEL_CHARS = 13;
export const C_ERR_ACTOR = 14; // the actor that ended the run with an error, or -1
export const C_RING_CAP = 15;
export const C_SWITCHES = 16; // decisions that handed the CPU to another actor (preemptions)
export const C_POINTS = 17; // preemption points reached (free mode counts them here)
export const C_QUIESCE = 18; // actors that finished their program (quiescence barrier, harness/actor/quiescence.ts)
export const C_QUIESCE_DONE = 19; // actors done with the quiescent checks
export const C_QUIESCE_WORK = 20; // actors with quiescent re-checks to run (no-livelock)
export const C_ORDER_LEN = 21; // entries of the interleaving to follow (0: follow the schedule alone)
export const C_ORDER_MISMATCH = 22; // points reached where the interleaving had another label
export const C_ORDER_FIRST_MISMATCH = 23; // the order index of the first of them (-1: none)
export const C_ORDER_MISMATCH_LABEL = 24; // the label hash reached there instead
export const C_HDR = 32;

// ---- per-actor slots ----
export const A_STATE = 0; // ST_*
export const A_WAKE = 1; // futex word: bumped when the token is handed to this actor
export const A_WAIT_IDX = 2; // blocked: the Int32 index (into the machine buffer) it waits on
export const A_WAIT_VAL = 3; // blocked: it waits while that word holds this value
export const A_REASON = 4; // blocked: label hash of why ("spinlock", "rwsem (write)", "migration entry")
export const A_POINTS = 5; // preemption points this actor reached
export const A_WAIT_BUF = 6; // blocked: 0 = the word is in the machine buffer, 1 = in this control block
export const A_TID = 7; // the worker's threadId (mmu notifier callbacks are routed by it)
// the actor's mailbox: another actor asks it to run one of its mmu notifier callbacks and waits
export const A_MB_LOCK = 8; // one requester at a time
export const A_MB_STATE = 9; // MB_IDLE / MB_PENDING / MB_DONE
export const A_MB_FROM = 10; // requesting actor
export const A_MB_SUB = 11; // subscription id
export const A_MB_ARGS = 12; // mm, start, end, event, flags, cur_seq (6 words)
export const A_MB_RESULT = 18; // 1 = the callback returned true
// interleaving replay: the order index of this actor's next point (C_ORDER_LEN: none left)
export const A_ORDER_CUR = 19;
export const A_STRIDE = 20;
export const MB_IDLE = 0;
export const MB_PENDING = 1;
export const MB_DONE = 2;

export const ST_RUNNABLE = 0;
export const ST_BLOCKED = 1;
export const ST_DONE = 2;

export const END_RUNNING = 0;
export const END_DONE = 1; // every actor finished its program
export const END_ERROR = 2; // an actor threw (a KernelBug, a simulator bug)
export const END_DEADLOCK = 3; // every unfinished actor blocked
export const END_STOPPED = 4; // the main thread stopped the run (worker died, time budget, Ctrl-C)
export const END_NAMES = ['running', 'done', 'error', 'deadlock', 'stopped'];

export const MODE_DET = 0;
export const MODE_FREE = 1;

// ---- trace ring entry kinds (the byte above the actor index) ----
export const K_POINT = 0; // a preemption point (a scheduling decision in deterministic mode)
export const K_OP = 1; // an op starts; arg = its index in the actor's program
export const K_RET = 2; // an op returned; arg = rc
export const K_BLOCK = 3; // blocked; label = the wait reason, arg = the word index
export const K_EXIT = 4; // the actor finished (a scheduling decision too)
export const K_FAULT = 5; // a seeded fault fired; label = the fault point
export const K_VIOLATION = 6; // a property check failed in the actor; arg = index into its violations
export const KIND_NAMES = ['point', 'op', 'ret', 'block', 'exit', 'fault', 'violation'];
export const RING_ENTRY = 4;
export const ORDER_ENTRY = 2;

export const LABELS_MAX = 1024;
const LABEL_CHARS_MAX = 32768;

/** FNV-1a, 32 bits: label hashes and the trace hash. */
export function fnv1a(s: string, h = 0x811c9dc5): number {
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

export function fnvInt(h: number, x: number): number {
  for (let k = 0; k < 4; k++) {
    h ^= (x >>> (8 * k)) & 0xff;
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

export interface ControlShape {
  nrActors: number;
  schedCap: number;
  ringCap: number;
  /** entries of the interleaving region (0 unless the run follows a free run's interleaving) */
  orderCap: number;
}

/** Typed views over the control buffer; the same object shape on every thread. */
export class Control {
  readonly sab: SharedArrayBuffer;
  readonly i32: Int32Array;
  readonly chars: Uint16Array;
  readonly nrActors: number;
  readonly actorBase: number;
  readonly mapgenBase: number;
  readonly schedBase: number;
  readonly schedCap: number;
  readonly orderBase: number;
  readonly orderCap: number;
  readonly ringBase: number;
  readonly ringCap: number;
  readonly labelBase: number;

  constructor(shape: ControlShape, sab?: SharedArrayBuffer) {
    this.nrActors = shape.nrActors;
    this.schedCap = shape.schedCap;
    this.ringCap = shape.ringCap;
    this.orderCap = shape.orderCap;
    this.actorBase = C_HDR;
    this.mapgenBase = this.actorBase + MAX_ACTORS * A_STRIDE;
    this.schedBase = this.mapgenBase + MAPGEN_SLOTS;
    this.orderBase = this.schedBase + shape.schedCap;
    this.ringBase = this.orderBase + shape.orderCap * ORDER_ENTRY;
    this.labelBase = this.ringBase + shape.ringCap * RING_ENTRY;
    const ints = this.labelBase + LABELS_MAX * 3;
    const bytes = ints * 4 + LABEL_CHARS_MAX * 2;
    this.sab = sab ?? new SharedArrayBuffer(bytes);
    if (this.sab.byteLength !== bytes)
      throw new Error(`control: buffer is ${this.sab.byteLength} bytes, shape needs ${bytes}`);
    this.i32 = new Int32Array(this.sab, 0, ints);
    this.chars = new Uint16Array(this.sab, ints * 4, LABEL_CHARS_MAX);
    if (!sab) this.reset();
  }

  /** The header of a fresh run (a recycled buffer is zero-filled first). */
  reset(): void {
    this.i32[C_NR_ACTORS] = this.nrActors;
    this.i32[C_RING_CAP] = this.ringCap;
    this.i32[C_ERR_ACTOR] = -1;
    this.i32[C_ORDER_FIRST_MISMATCH] = -1;
  }

  get shape(): ControlShape {
    return { nrActors: this.nrActors, schedCap: this.schedCap, ringCap: this.ringCap, orderCap: this.orderCap };
  }

  actor(a: number, slot: number): number {
    return this.actorBase + a * A_STRIDE + slot;
  }

  /** Intern a label in the shared table (first sight per thread; the caller caches). */
  publishLabel(hash: number, text: string): void {
    const c = this.i32;
    while (Atomics.compareExchange(c, C_LABEL_LOCK, 0, 1) !== 0) Atomics.wait(c, C_LABEL_LOCK, 1, 1);
    try {
      const n = c[C_LABEL_COUNT]!;
      for (let k = 0; k < n; k++) if (c[this.labelBase + 3 * k] === hash) return;
      const off = c[C_LABEL_CHARS]!;
      if (n >= LABELS_MAX || off + text.length > this.chars.length) return;
      for (let k = 0; k < text.length; k++) this.chars[off + k] = text.charCodeAt(k);
      c[this.labelBase + 3 * n] = hash;
      c[this.labelBase + 3 * n + 1] = off;
      c[this.labelBase + 3 * n + 2] = text.length;
      c[C_LABEL_CHARS] = off + text.length;
      c[C_LABEL_COUNT] = n + 1;
    } finally {
      Atomics.store(c, C_LABEL_LOCK, 0);
      Atomics.notify(c, C_LABEL_LOCK);
    }
  }

  /** Every published label (main thread, after the run). */
  labels(): Map<number, string> {
    const out = new Map<number, string>();
    const c = this.i32;
    for (let k = 0; k < c[C_LABEL_COUNT]!; k++) {
      const off = c[this.labelBase + 3 * k + 1]!;
      const len = c[this.labelBase + 3 * k + 2]!;
      out.set(c[this.labelBase + 3 * k]! >>> 0, String.fromCharCode(...this.chars.subarray(off, off + len)));
    }
    return out;
  }

  /** Append a trace entry; returns its sequence number. */
  record(actor: number, kind: number, labelHash: number, arg: number): number {
    const seq = Atomics.add(this.i32, C_SEQ, 1);
    const o = this.ringBase + (seq % this.ringCap) * RING_ENTRY;
    this.i32[o] = seq;
    this.i32[o + 1] = actor | (kind << 8);
    this.i32[o + 2] = labelHash;
    this.i32[o + 3] = arg;
    return seq;
  }
}

/** One decoded trace-ring entry. */
export interface RingEntry {
  seq: number;
  actor: number;
  kind: number;
  label: number;
  arg: number;
}

/** The ring in sequence order (the last ringCap entries if it wrapped). Main thread, after the run. */
export function readRing(c: Control): { entries: RingEntry[]; lost: number } {
  const total = Atomics.load(c.i32, C_SEQ);
  const first = Math.max(0, total - c.ringCap);
  const entries: RingEntry[] = [];
  for (let seq = first; seq < total; seq++) {
    const o = c.ringBase + (seq % c.ringCap) * RING_ENTRY;
    if (c.i32[o] !== seq) continue; // reserved but never written (a thread died mid-append)
    const w = c.i32[o + 1]!;
    entries.push({ seq, actor: w & 0xff, kind: (w >>> 8) & 0xff, label: c.i32[o + 2]! >>> 0, arg: c.i32[o + 3]! });
  }
  return { entries, lost: first };
}
