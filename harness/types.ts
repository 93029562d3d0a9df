// The main thread <-> worker protocol, typed once (types only; both sides `import type` it).
import type { MemmapShape } from '../mm/memmap';
import type { ControlShape } from './schedctl';
import type { MachineSnapshot } from './report/snapshot';

/** How a worker attaches to the machine: the buffer plus the shape that fixes its layout. */
export interface MachineHandle {
  sab: SharedArrayBuffer;
  shape: MemmapShape;
}

// ---- actors (harness/actor/): one per device instance or kernel agent, one per worker thread ----

/** One operation of an actor's program (a DeviceOp: plain JSON). */
export interface ActorOp {
  op: string;
  [field: string]: unknown;
}

/** A process mapping the main thread created before the actors start (anonymous, private, RW). */
export interface MapInfo {
  name: string;
  vpn: number;
  pages: number;
}

/**
 * Seeded fault points for one actor: fault point -> the 0-based calls of that point (on this actor's
 * thread) that fail. 'signal' / 'fatal-signal' list this actor's preemption points at which a signal
 * arrives (pending until the op returns). docs/harness.md lists the points.
 */
export type FaultPlan = Record<string, number[]>;

export interface ActorTask {
  kind: 'actor';
  machine: MachineHandle;
  /** the run's control block (harness/schedctl.ts) and the shape that fixes its layout */
  ctl: SharedArrayBuffer;
  ctlShape: ControlShape;
  index: number;
  /** "pinner-0", "vfio-type1-0": the actor kind, a dash, the instance number */
  name: string;
  /** every actor's name, by index (for traces and wait reasons) */
  names: string[];
  actorKind: string;
  cpu: number;
  /** the process (mm id) the actor works on */
  mm: number;
  /** the case's process, even for an actor that works on none (whose /proc/PID/pagemap the admin reads) */
  procMm: number;
  maps: MapInfo[];
  program: ActorOp[];
  /** kernel variant spec ("v6.12", "v5.12+R3") */
  variant: string;
  det: boolean;
  faults: FaultPlan;
  /** device-model bug switches for this instance */
  bugs: string[];
  /** what the case's command line sets for device models (BootParams.deviceParams) */
  params?: Record<string, number>;
  seed: number;
  /** offline_pages() pass budget for the hotplug agent */
  offlinePasses: number;
  /** check new long-term pins against pageblocks isolated since before the op (deterministic mode) */
  checkIsolate: boolean;
  /** --property: the costly checks run only when selected; null: every property */
  properties: string[] | null;
  /** a large machine: a buffer of its size for the quiescence checks' copies, which the end-of-run checks reuse */
  scratch?: SharedArrayBuffer;
  /** meet the other actors at the quiescence barrier after the program (no actor of the run skips it) */
  quiesce: boolean;
  /** take a machine snapshot after each op (the HTML report's memory map; deterministic mode) */
  snapshots?: boolean;
  /** test switches: brokenSpinlocks makes this thread's spinlocks exclude nothing (mm/locking.ts lockingDebug) */
  debug?: { brokenSpinlocks?: boolean };
}

/** A property the actor found broken in-thread (at the moment it could see it). */
export interface Violation {
  property: string;
  message: string;
  actor: string;
  /** trace sequence number of the check */
  seq: number;
}

export interface OpRecord {
  i: number;
  op: string;
  rc: number;
  detail?: string;
  seq: number;
}

/** A line for the trace: its position (trace sequence, fractional for lines between entries) and text. */
export interface LogLine {
  seq: number;
  text: string;
}

/** Per property: what its checks had to look at (Checked, properties/property.ts) and the time they took. */
export type Tally = Record<string, { checked: number; ms: number }>;

/** Add what a check saw and its time to a tally. */
export function tallyAdd(t: Tally, property: string, checked: number, ms: number): void {
  const e = (t[property] ??= { checked: 0, ms: 0 });
  e.checked += checked;
  e.ms += ms;
}

/** Sum tallies into the first. */
export function tallyMerge(into: Tally, from: Tally | undefined): Tally {
  for (const [p, e] of Object.entries(from ?? {})) tallyAdd(into, p, e.checked, e.ms);
  return into;
}

export interface ActorResult {
  kind: 'actor';
  name: string;
  index: number;
  ops: OpRecord[];
  violations: Violation[];
  /** the checks run in this thread, per property */
  tally: Tally;
  /** how often its ops reached each bug switch's site (mm/variants.ts bugSites), bug on or off */
  bugSites?: Record<string, number>;
  log: LogLine[];
  /** long-term pins the actor held at the end of its program (before teardown) */
  held: { pfn: number; vpn: number; longterm: boolean }[];
  teardown?: { rc: number; detail?: string };
  /** the actor threw: a KernelBug (BUG_ON) or a simulator bug */
  error?: { name: string; message: string; stack?: string };
  /** the run stopped under it (deadlock, another actor failed, the main thread stopped it) */
  stopped?: string;
  /** machine snapshots after its ops (ActorTask.snapshots) */
  snapshots?: MachineSnapshot[];
  /** free mode: the last locks it took, as [trace position, machine word index] pairs, oldest first */
  locks?: number[];
}

/** A plugin's worker task (harness/plugins.ts): its name and its data, structured-cloned. */
export interface PluginTask {
  kind: 'plugin';
  task: string;
  data: unknown;
}

export type WorkerTask = ActorTask | PluginTask;

/** What an actor pool's workers start with (harness/pool.ts, worker.ts). */
export interface WorkerData {
  /** the plugins the pool's thread loaded */
  plugins: string[];
  /** the CPU to bind to (the pool's runner's), or null: stay as started */
  cpu: number | null;
  /** an Int32 the pool sets to 1 when its workers are to bind to cpu (ActorPool.bindNow()) */
  bind: SharedArrayBuffer;
}
