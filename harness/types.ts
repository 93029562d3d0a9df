// The main thread <-> worker protocol, typed once (types only; both sides `import type` it).
import type { MemmapShape } from '../mm/memmap';

/** How a worker attaches to the machine: the buffer plus the shape that fixes its layout. */
export interface MachineHandle {
  sab: SharedArrayBuffer;
  shape: MemmapShape;
}

/** Allocator hammer: random alloc/free on one CPU, claiming each frame in a shared owner map. */
export interface AllocHammerTask {
  kind: 'alloc-hammer';
  machine: MachineHandle;
  /** Int32 per frame: 0 = not held by a hammer, else the holder's id */
  owner: SharedArrayBuffer;
  cpu: number;
  id: number;
  ops: number;
  seed: number;
  gfps: number[];
  maxOrder: number;
  /** allocations held at once before the hammer starts freeing */
  holdMax: number;
}

export interface AllocHammerResult {
  allocs: number;
  frees: number;
  failures: number;
  /** frames found already owned by another hammer when handed out: must be empty */
  doubles: string[];
}

/** Benchmark: alloc+free pairs of one order on one CPU, for a fixed count. */
export interface AllocBenchTask {
  kind: 'alloc-bench';
  machine: MachineHandle;
  cpu: number;
  order: number;
  gfp: number;
  pairs: number;
  /** pages held at once: each round allocates batch blocks, then frees them */
  batch: number;
  /** Int32 barrier word: workers start together */
  start: SharedArrayBuffer;
}

export interface AllocBenchResult {
  pairs: number;
  seconds: number;
}

export type WorkerTask = AllocHammerTask | AllocBenchTask;
export type WorkerResult = AllocHammerResult | AllocBenchResult;
