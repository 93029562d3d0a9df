// The device model API. One file per model under devices/, registered in devices/index.ts. A model
// is an actor: the harness runs each instance in its own worker thread, feeding it operations (its
// "ioctls" and its DMA traffic) one step at a time, against the shared mm core. docs/adding-a-device.md
// walks through writing one.
//
// Everything that crosses threads is plain data: operations are JSON-able records, results are numbers
// (>= 0 or a negative errno) plus a detail string. A model's own state (its IOMMU table, its pins) lives
// in JS objects inside its worker; what properties need from it is reported through `inspect()`.
//
// Addresses. Operation fields are in bytes, as in the uapi structs (iova, size, vaddr, length,
// offset), so misalignment errnos can be expressed. A process address in a *generated* operation is
// a VaddrRef `{ map: 'buf', off: 3 }` (page 3 of the mapping the user agent created under the name
// 'buf', plus `byte` bytes); resolveOp() in devices/index.ts replaces every VaddrRef, at any depth, by
// the byte address `(start vpn of 'buf' + off) * PAGE_SIZE + byte` before the op reaches step(). So
// step() only ever sees numbers, and tests may pass byte addresses directly.

import type * as fcType from 'fast-check';
import type { Memmap } from '../mm/memmap';
import type { PropertyName } from '../properties/index';
import { variant, type KernelVariant } from '../mm/variants';

/** A process address in a generated op: page `off` of mapping `map`, plus `byte` bytes (default 0). */
export interface VaddrRef {
  map: string;
  off: number;
  byte?: number;
}

/** One operation for a device actor: `{ op: 'map_dma', iova: 0, vaddr: { map: 'buf', off: 0 }, size: 32768 }` ... */
export interface DeviceOp {
  op: string;
  [field: string]: unknown;
}

export interface OpResult {
  /** >= 0 on success (a count or 0), else a negative kernel errno */
  rc: number;
  /** ftrace-like one-line detail: what was pinned/mapped/written */
  detail?: string;
  /** the device found a broken promise itself (DMA read back a wrong word, a pin it holds moved): a property failure */
  violation?: string;
  /** the property the violation breaks (default dma-integrity) */
  property?: PropertyName;
}

/** What the harness gives a device instance. */
export interface DeviceEnv {
  m: Memmap;
  /** the process (mm id) whose memory the device is attached to (the VMM / the verbs user) */
  mm: number;
  /** a name for traces: "vfio-type1/0" */
  name: string;
  /** the buggy behaviours switched on for this instance (names from the model's `bugs`) */
  bugs: ReadonlySet<string>;
  /** deterministic randomness for traffic choices, drawn from the run's seed */
  rand(n: number): number;
  /** a preemption point (harness/ scheduler); a no-op when run in-thread */
  yieldPoint(label: string): void;
  /** trace line (ftrace-like), kept in the run's trace ring */
  trace(line: string): void;
  /** the kernel variant the device runs under (default: this thread's variant(), see kernelOf()) */
  kernel?: KernelVariant;
  /** model parameters (module parameters like vfio's dma_entry_limit); each model documents its own */
  params?: Readonly<Record<string, number>>;
  /**
   * a promise the device saw broken outside its own ops, in a notifier callback it ran for another
   * thread's invalidation (dma-integrity); when absent, nothing is reported
   */
  violation?(message: string): void;
}

/** A generated program as a suite runs it: its ops tied together by the model's link(), if it has one. */
export function linkProgram(model: Pick<ActorModel, 'link'>, ops: DeviceOp[]): DeviceOp[] {
  return model.link ? model.link(ops) : ops;
}

/** The variant a device model follows: env.kernel, else the thread's variant (mm/variants.ts). */
export function kernelOf(env: DeviceEnv): KernelVariant {
  return env.kernel ?? variant();
}

/** A long-term pin or mapping a device holds, for properties (no-longterm-pin-in-movable, dma-integrity). */
export interface HeldPage {
  /** device address (iova / lkey offset / buffer index + offset), in pages */
  iova: number;
  /** process virtual page the pin came from */
  vpn: number;
  /** frame the device's IOMMU table points at */
  pfn: number;
  /** a FOLL_LONGTERM pin (false: a callback-revocable or no-pin mapping) */
  longterm: boolean;
}

export interface DeviceState {
  /** run one operation; never throws for bad arguments (that is an errno) */
  step(op: DeviceOp): OpResult;
  /** everything the device maps now */
  inspect(): { held: HeldPage[]; accounting: Record<string, number> };
  /** close the device fd: unpin and unaccount everything; returns what it released */
  teardown(): OpResult;
}

/** Shape hints for generators: how big the process's mappings are, in pages. */
export interface GenShape {
  /** mapping names the user agent creates, with sizes in pages */
  maps: { name: string; pages: number }[];
  /** largest range a single op should cover, in pages */
  maxPages: number;
}

/**
 * The type of an op field, for the regression-file schema (harness/case_schema.ts): 'int' a number
 * (a value the uapi cannot hold is the model's errno, -EINVAL), 'nat' a whole number >= 0, 'bool',
 * 'string', 'map' a mapping of the case (every field but a 'map' one may be left out), 'map?' one that
 * may be left out, 'vaddr' a VaddrRef naming one (or a byte address), a list of
 * strings (one of them), `{ list }` a list of values, `{ record }` a record with these fields.
 */
export type OpField =
  | 'int'
  | 'nat'
  | 'bool'
  | 'string'
  | 'map'
  | 'map?'
  | 'vaddr'
  | readonly string[]
  | { list: OpField }
  | { record: Readonly<Record<string, OpField>> };

/**
 * An actor kind: a device model (devices/) or a kernel agent (harness/agents/). A case names its actors
 * "<kind>-<n>"; the harness runs each in its own worker thread.
 */
export interface ActorModel<E extends DeviceEnv = DeviceEnv, S extends DeviceState = DeviceState> {
  /** registry name, e.g. 'vfio-type1', 'pinner' */
  name: string;
  /** one line for --help and docs */
  summary: string;
  /** the kernel file(s) the model follows */
  source: string;
  /** a fresh instance attached to env.mm */
  create(env: E): S;
  /** fast-check arbitrary of this model's operations */
  arbitrary(fc: typeof fcType, shape: GenShape): fcType.Arbitrary<DeviceOp>;
  /**
   * ties a generated program's ops to each other (common.ts linkOps(): a pin into an earlier map); the ops
   * arbitrary() draws may carry a `ref` field for it, which this removes
   */
  link?(program: DeviceOp[]): DeviceOp[];
  /**
   * op name -> the negative errnos that op can return (its kernel function's); the errno-contract property checks every
   * result against it
   */
  errnos: Record<string, number[]>;
  /** op name -> its fields (the same op names as errnos): a regression file may use only these */
  ops: Record<string, Record<string, OpField>>;
  /** the op kinds swarm testing picks among, in this order (default: the keys of errnos) */
  opKinds?: readonly string[];
  /**
   * the op kinds that charge the process's memlock counters (with what they need first): the device and device2
   * suites keep them in every swarm subset (device2 exists to race two charges on one mm)
   */
  charges?: readonly string[];
  /**
   * the op kind that makes what its other ops use (a DMA mapping, an MR, a registered buffer): three generated
   * programs in four open with one (syzkaller creates a call's resource before the call)
   */
  setup?: string;
  /** the seeded fault points its ops can meet: a case's fault plan for the actor draws from these */
  faultPoints: readonly string[];
  /** the most ops a generated program of this kind holds */
  programLength: number;
  /** why it stays out of the quiescence barrier (absent: it joins, and the quiescence checks see its pins) */
  skipsQuiescence?: string;
  /** it works on no process of the case: its task has no mm (the hotplug admin writes sysfs from a shell of its own) */
  withoutProcess?: boolean;
}

export interface DeviceModel extends ActorModel {
  /** buggy-variant switches this model can turn on, each with one line of what it does */
  bugs: Record<string, string>;
}
