// What a property is: one promise of the kernel, the phases of a run at which it is checked, and its
// checks. One file per property in properties/, each listed once in properties/index.ts; the harness
// calls the registry at its hook points and knows no property by name (docs/adding-a-property.md).
//
// Phases of a run (docs/harness.md):
//   boot        main thread, once per command line: the machine just booted (or the command line
//               refused), before the process exists
//   op          in the actor's own worker thread, right after each of its ops, and once more just
//               before its teardown (op: null) - the moment a broken promise can be seen
//   quiescence  every actor has finished its program and none has torn down: nothing is in flight and
//               every pin still held is a long-term one; checks run on private copies of the machine
//   teardown    main thread, every actor torn down (devices closed), the processes still alive
//   exit        main thread, every process exited and the LRU batches and per-CPU lists drained
import type { Memmap } from '../mm/memmap';
import type { BootParams } from '../mm/cmdline';
import type { ActorOp } from '../harness/types';
import type { HeldPage } from '../devices/device';
import type { PageCounts } from './pins_balance';

export type Phase = 'boot' | 'op' | 'quiescence' | 'teardown' | 'exit';

/** A broken promise as a check reports it; dedupe names it among its kind (default: the message). */
export interface Finding {
  message: string;
  dedupe?: string;
}

/**
 * Coverage: a check adds to `checked` what it had to look at (the harness zeroes it before each check
 * and sums it per property). A property whose checks never add anything over a campaign is "not
 * exercised": it held only because nothing put it to the test.
 */
export interface Checked {
  checked: number;
}

/** What a boot check sees (main thread): the machine just booted, or the refusal of its command line. */
export interface BootCheck extends Checked {
  /** the booted machine and its parsed command line; null when the command line was refused */
  m: Memmap | null;
  params: BootParams | null;
  cmdline: string;
  /** the one-line error that refused the command line (a CmdlineError's message), or null */
  refused: string | null;
}

/** What an op-phase check sees (in the actor's thread). */
export interface OpCheck extends Checked {
  m: Memmap;
  /** the actor ("pinner-0") and its kind ("pinner") */
  actor: string;
  kind: string;
  /** the op just run, or null: the actor is about to tear down */
  op: ActorOp | null;
  rc: number;
  /** what the actor holds now: long-term pins, device mappings */
  held: HeldPage[];
  /** deterministic mode: what it held and which pageblocks were MIGRATE_ISOLATE before the op began */
  heldBefore: ReadonlySet<string> | null;
  isolatedBefore: Uint8Array | null;
  /** the errnos the kind declares per op (null: a kind that declares none, the harness's test actors) */
  errnos: Record<string, number[]> | null;
  /** FOLL_PIN references the op left on the actor's task (acquired minus released during the op) */
  pinsLeft: number;
}

/** What a quiescence check sees (in each actor's thread, every actor idle). */
export interface QuiescentCheck extends Checked {
  m: Memmap;
  /** a private copy of the machine (a fresh one per call), to try things on without touching the run */
  copy(): Memmap;
  /** this actor arrived last: machine-wide checks run here, once */
  last: boolean;
  /** the actor's own re-checks of what ran out of its budget during the run (no-livelock) */
  recheck?(copy: () => Memmap): Finding[];
  /** how many of the actor's outcomes recheck() runs again */
  rechecks: number;
  /** scratch buffer for large copies (reused between checks) */
  scratch?: SharedArrayBuffer;
}

/** What a teardown- or exit-phase check sees (main thread). */
export interface EndCheck extends Checked {
  m: Memmap;
  /** every frame's refcount, _pincount and _mapcount before the actors ran */
  base: PageCounts;
  scratch?: SharedArrayBuffer;
}

export interface Property<N extends string = string> {
  name: N;
  /** the promise, in one sentence */
  promise: string;
  /** where the kernel makes it: a function, a document, a commit */
  reference: string;
  /** when it is checked; a property reported by the actors themselves (a device's DMA) lists 'op' */
  phases: readonly Phase[];
  /** the run itself broke (deadlock, hang, a throw): reported whatever --property selects */
  runFailure?: boolean;
  /**
   * its quiescence check is costly (offlining every block on a copy): run only when selected (--property).
   * The other in-thread checks always run, and the harness drops what was not selected at the end.
   */
  costly?: boolean;
  atBoot?(c: BootCheck): string[];
  afterOp?(c: OpCheck): Finding[];
  atQuiescence?(c: QuiescentCheck): Finding[];
  atTeardown?(c: EndCheck): string[];
  atExit?(c: EndCheck): string[];
}
