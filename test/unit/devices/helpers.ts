// Shared rig for device-model unit tests: a miniature machine, one process with named mappings, one
// device instance run in-thread, and the checks every model must pass (held pins pinnable and pinned,
// counters back to zero, pin events balanced).
import { boot } from '../../helpers';
import { bprmMmInit, doMmap, PROT_READ, PROT_WRITE, MmapArgs } from '../../../mm/mmap';
import { putUser } from '../../../mm/memory';
import { Memmap, PG_zero } from '../../../mm/memmap';
import { folioIsLongtermPinnable } from '../../../mm/pinnable';
import { folioMaybeDmaPinned } from '../../../mm/rmap';
import { vmstatSnapshot } from '../../../mm/vmstat';
import { lruAddDrainAll } from '../../../mm/swap';
import { drainAllPages } from '../../../mm/page_alloc';
import { checkAllocator } from '../../../properties/allocator_sound';
import { Prng } from '../../../harness/prng';
import { resolveOp, MapTable } from '../../../devices/index';
import { memlockCounters } from '../../../devices/common';
import type { DeviceModel, DeviceEnv, DeviceState, DeviceOp, OpResult, HeldPage } from '../../../devices/device';
import { pfnOf } from '../../../mm/memory';
import type { KernelVariant } from '../../../mm/variants';
export { pfnOf };

export const MINI = 'mini';
/** 256 frames: ZONE_NORMAL 128, ZONE_MOVABLE 128 (user memory faults into ZONE_MOVABLE). */
export const CMD = 'mem=1M movablecore=512K sysctl.vm.min_free_kbytes=16';
export const RW = PROT_READ | PROT_WRITE;
export const PAGE = 4096;

export interface RigOptions {
  cmd?: string;
  /** mappings to create, name -> pages or full mmap arguments (default: buf 16 pages, rw) */
  maps?: Record<string, number | (Omit<MmapArgs, 'nrPages'> & { nrPages: number })>;
  rlimitMemlockPages?: number;
  capIpcLock?: boolean;
  bugs?: string[];
  /** the kernel variant the device follows (env.kernel; default: the thread's variant) */
  kernel?: KernelVariant;
  /** model parameters (env.params) */
  params?: Record<string, number>;
  /** what a preemption point does (default: record the label) */
  onYield?: (label: string) => void;
  /** reuse a machine / process instead of booting one */
  m?: Memmap;
  mm?: number;
}

export interface Rig {
  m: Memmap;
  mm: number;
  maps: MapTable;
  env: DeviceEnv;
  dev: DeviceState;
  yields: string[];
  traces: string[];
  /** what the device reported through env.violation (outside its ops: in notifier callbacks) */
  violations: string[];
  /** step one op, resolving VaddrRefs first */
  run(op: DeviceOp): OpResult;
  /** byte address of page off of a mapping */
  va(map: string, off?: number): number;
}

export function rig(model: DeviceModel, o: RigOptions = {}): Rig {
  const m = o.m ?? boot(o.cmd ?? CMD, MINI);
  const mm = o.mm ?? bprmMmInit(m, { rlimitMemlockPages: o.rlimitMemlockPages, capIpcLock: o.capIpcLock });
  const maps: Record<string, number> = {};
  for (const [name, spec] of Object.entries(o.maps ?? { buf: 16 })) {
    const a: MmapArgs = typeof spec === 'number' ? { nrPages: spec, prot: RW } : spec;
    const v = doMmap(m, mm, a);
    if (v < 0) throw new Error(`rig: mmap ${name} failed: ${v}`);
    maps[name] = v;
  }
  const yields: string[] = [];
  const traces: string[] = [];
  const violations: string[] = [];
  const rng = new Prng(12345);
  const env: DeviceEnv = {
    m,
    mm,
    name: `${model.name}/0`,
    bugs: new Set(o.bugs ?? []),
    rand: (n) => rng.below(n),
    yieldPoint: (label) => {
      yields.push(label);
      o.onYield?.(label);
    },
    trace: (line) => traces.push(line),
    kernel: o.kernel,
    params: o.params,
    violation: (message) => violations.push(message),
  };
  const dev = model.create(env);
  return {
    m,
    mm,
    maps,
    env,
    dev,
    yields,
    traces,
    violations,
    run: (op) => dev.step(resolveOp(op, maps)),
    va: (map, off = 0) => (maps[map]! + off) * PAGE,
  };
}

/** The frame a process page maps now, or -1. */
/** Fill pages [off, off + n) of a mapping with distinct words (faulting them in). */
export function fill(r: Rig, map: string, n: number, base = 1000, off = 0): void {
  for (let i = 0; i < n; i++) expect(putUser(r.m, r.mm, r.maps[map]! + off + i, base + i)).toBe(base + i);
}

/**
 * The no-longterm-pin-in-movable and pinned checks over what a device reports holding: every
 * long-term held frame is long-term pinnable (not ZONE_MOVABLE, CMA or isolated) and carries a pin.
 */
export function checkHeld(m: Memmap, held: HeldPage[]): string[] {
  const errors: string[] = [];
  for (const h of held) {
    const head = m.compoundHead(h.pfn);
    // a read-only pin of untouched memory maps the zero page, which is never counted
    if (m.flags[head]! & PG_zero) continue;
    if (h.longterm && !folioIsLongtermPinnable(m, head))
      errors.push(
        `iova page ${h.iova}: pfn ${h.pfn} is long-term pinned but not pinnable (zone ${m.pageZonenum(h.pfn)})`,
      );
    if (h.longterm && !folioMaybeDmaPinned(m, head)) errors.push(`iova page ${h.iova}: pfn ${h.pfn} holds no pin`);
  }
  return errors;
}

/** After teardown: nothing held, all three memlock counters zero, every FOLL_PIN released, allocator sound. */
export function expectReleased(r: Rig): void {
  expect(r.dev.inspect().held).toEqual([]);
  expect(memlockCounters(r.m, r.mm)).toEqual({ locked_vm: 0, pinned_vm: 0, user_locked_vm: 0 });
  const v = vmstatSnapshot(r.m);
  expect(v.nr_foll_pin_released).toBe(v.nr_foll_pin_acquired);
  lruAddDrainAll(r.m);
  drainAllPages(r.m);
  expect(checkAllocator(r.m).errors).toEqual([]);
}

/** FOLL_PIN acquired minus released: pins held right now. */
export function pinsHeld(m: Memmap): number {
  const v = vmstatSnapshot(m);
  return v.nr_foll_pin_acquired - v.nr_foll_pin_released;
}
