// Device-model benchmarks (`npm run bench -- devices`), issue 6.
//
// 1. DMA ops/s per registered model through the worker pool: one actor per case, run by runCase() on
//    the harness's mini layout, a program of setup ops (map/pin/register) then N DMA ops (writes and
//    reads of the pinned/mapped/registered buffer, or for rdma-odp of the MR its interval notifier
//    covers), then the matching unmap/unpin. Timed: the wall time of runCase() as a whole. A
//    setup-only case (the same program without the DMA ops) is timed too, and subtracted for the
//    "net" column. Every run is checked afterwards: it ended cleanly with no failure (the in-run
//    dma-integrity and no-longterm-pin-in-movable checks, the end-of-run pin balance and allocator
//    checks), every op returned what it should, and every DMA read returned the word written before it.
//
// 2. VFIO_IOMMU_MAP_DMA + UNMAP_DMA cycles/s for vfio-type1 at 4 KiB, 2 MiB and 1 GiB on
//    mem=5G movablecore=2G, in-thread (the main thread calls the model's step(), as the unit tests do).
//    Memory states: fresh (untouched: vaddr_get_pfns() faults the pages in, under PF_MEMALLOC_PIN),
//    prefaulted by the process (in ZONE_MOVABLE: the first MAP_DMA of each range migrates it), and
//    prefaulted and already pinnable (every later MAP_DMA pins in place); with transparent_hugepage=always
//    for 2 MiB and 1 GiB. Checked outside the timed region: held pages pinned, pinnable and the
//    process's pages; FOLL_PIN events balance; mm->locked_vm back to 0; the process still reads its data.
import { performance } from 'node:perf_hooks';
import { ActorPool } from '../harness/pool';
import { runCase, Case } from '../harness/run_case';
import { MINI_LAYOUTS } from '../harness/suites';
import { bootFromSpec } from '../harness/layout';
import { Prng } from '../harness/prng';
import type { ActorOp } from '../harness/types';
import { DEVICE_MODELS } from '../devices/index';
import { vfioType1 } from '../devices/vfio_type1';
import { memlockCounters } from '../devices/common';
import type { DeviceEnv, DeviceState } from '../devices/device';
import { Memmap, PAGE_SIZE, PG_head } from '../mm/memmap';
import { ZONE_MOVABLE } from '../mm/mmzone';
import { bprmMmInit, doMmap, exitMmap, PROT_READ, PROT_WRITE } from '../mm/mmap';
import { getUser, putUser } from '../mm/memory';
import { folioIsLongtermPinnable } from '../mm/pinnable';
import { folioMaybeDmaPinned } from '../mm/rmap';
import { setCurrent, newTask } from '../mm/sched';
import { vmstatSnapshot } from '../mm/vmstat';
import { pfnOf } from '../mm/memory';
import { folioOrder } from '../mm/page_ref';

type Row = Record<string, string | number>;

function fail(what: string): never {
  throw new Error(`bench devices: ${what}`);
}

function fmtRate(r: number): string {
  return r >= 1e6 ? `${(r / 1e6).toFixed(2)}M` : r >= 1e3 ? `${(r / 1e3).toFixed(1)}k` : r.toFixed(1);
}

/** "min-max" of per-case (per-trial) rates. */
function range(rates: number[]): string {
  return `${fmtRate(Math.min(...rates))}-${fmtRate(Math.max(...rates))}`;
}

function fmtBytes(r: number): string {
  return r >= 2 ** 30
    ? `${(r / 2 ** 30).toFixed(2)} GiB/s`
    : r >= 2 ** 20
      ? `${(r / 2 ** 20).toFixed(2)} MiB/s`
      : `${(r / 2 ** 10).toFixed(1)} KiB/s`;
}

// ---------------------------------------------------------------------------------------------
// 1. DMA through the worker pool

/** The harness's mini layout: 256 frames, half ZONE_MOVABLE, a CMA area; the process maps buf (24 pages) and ring. */
const LAYOUT = MINI_LAYOUTS[0]!;
const BUF_PAGES = LAYOUT.maps.find((x) => x.name === 'buf')!.pages;
/** One DMA op moves one 32-bit word: the content word a frame holds (devices/common.ts deviceWrite). */
const DMA_BYTES = 4;
/** DMA ops per case (half writes, half reads); three cases per model and mode. */
const DMA_OPS = 8000;
const CASES = 3;

/** An op and the rc it must return (undefined: any rc >= 0). */
interface Step {
  op: ActorOp;
  rc?: number;
}

/** How a model sets up a buffer of BUF_PAGES pages, DMAs one word into / out of page p, and tears it down. */
interface DmaPlan {
  setup: Step[];
  write(p: number, value: number): Step[];
  read(p: number, value: number): Step[];
  end: Step[];
  /** what one DMA op is, for the README */
  what: string;
}

const buf = (off = 0): { map: string; off: number } => ({ map: 'buf', off });
const LEN = BUF_PAGES * PAGE_SIZE;

const PLANS: Record<string, DmaPlan> = {
  'vfio-type1': {
    what: 'dma_write / dma_read by IOVA through the IOTLB and the domain',
    setup: [{ op: { op: 'map_dma', iova: 0, vaddr: buf(), size: LEN, read: true, write: true }, rc: 0 }],
    write: (p, value) => [{ op: { op: 'dma_write', iova: p * PAGE_SIZE, value }, rc: 0 }],
    read: (p, value) => [{ op: { op: 'dma_read', iova: p * PAGE_SIZE }, rc: value }],
    end: [{ op: { op: 'unmap_dma', iova: 0, size: LEN }, rc: LEN }],
  },
  'vfio-mdev': {
    what: 'dma_write / dma_read through the pages the vendor driver pinned (vfio_pin_pages)',
    setup: [
      { op: { op: 'map_dma', iova: 0, vaddr: buf(), size: LEN, read: true, write: true }, rc: 0 },
      { op: { op: 'pin_pages', iova: 0, npage: BUF_PAGES, write: true }, rc: BUF_PAGES },
    ],
    write: (p, value) => [{ op: { op: 'dma_write', iova: p * PAGE_SIZE, value }, rc: 0 }],
    read: (p, value) => [{ op: { op: 'dma_read', iova: p * PAGE_SIZE }, rc: value }],
    end: [
      { op: { op: 'unpin_pages', iova: 0, npage: BUF_PAGES }, rc: BUF_PAGES },
      { op: { op: 'unmap_dma', iova: 0, size: LEN }, rc: LEN },
    ],
  },
  'iommufd-access': {
    what: 'dma_write / dma_read through iommufd_access_pin_pages() pages',
    setup: [
      { op: { op: 'ioas_map', iova: 0, vaddr: buf(), length: LEN, read: true, write: true }, rc: 0 },
      { op: { op: 'access_pin', iova: 0, length: LEN, write: true }, rc: 0 },
    ],
    write: (p, value) => [{ op: { op: 'dma_write', iova: p * PAGE_SIZE, value }, rc: 0 }],
    read: (p, value) => [{ op: { op: 'dma_read', iova: p * PAGE_SIZE }, rc: value }],
    end: [
      { op: { op: 'access_unpin', iova: 0, length: LEN }, rc: 0 },
      { op: { op: 'ioas_unmap', iova: 0, length: LEN }, rc: LEN },
    ],
  },
  'rdma-umem': {
    what: 'post + complete of a local RDMA write / read through the pinned MR (two actor ops)',
    setup: [
      {
        op: { op: 'reg_mr', vaddr: buf(), length: LEN, access: ['local_write', 'remote_write', 'remote_read'] },
        rc: 0,
      },
    ],
    write: (p, value) => [
      { op: { op: 'post', mr: 0, via: 'lkey', kind: 'write', offset: p * PAGE_SIZE, value }, rc: 1 },
      { op: { op: 'complete' }, rc: 0 },
    ],
    read: (p, value) => [
      { op: { op: 'post', mr: 0, via: 'lkey', kind: 'read', offset: p * PAGE_SIZE }, rc: 1 },
      { op: { op: 'complete' }, rc: value },
    ],
    end: [{ op: { op: 'dereg_mr', mr: 0 }, rc: 0 }],
  },
  'rdma-odp': {
    what: 'rdma_write / rdma_read of one word; the first access of each page faults it in (hmm_range_fault)',
    setup: [{ op: { op: 'reg_mr', vaddr: buf(), len: LEN } }],
    write: (p, value) => [{ op: { op: 'rdma_write', mr: 0, off: p * PAGE_SIZE, value }, rc: 1 }],
    read: (p, value) => [{ op: { op: 'rdma_read', mr: 0, off: p * PAGE_SIZE }, rc: value }],
    end: [{ op: { op: 'dereg_mr', mr: 0 }, rc: 0 }],
  },
  'io_uring-fixed': {
    what: 'READ_FIXED (into the buffer) / WRITE_FIXED (out of it) of one word',
    setup: [{ op: { op: 'register', iovecs: [{ base: buf(), len: LEN }] }, rc: 0 }],
    write: (p, value) => [{ op: { op: 'read_fixed', buf: 0, off: p * PAGE_SIZE, value }, rc: 0 }],
    read: (p, value) => [{ op: { op: 'write_fixed', buf: 0, off: p * PAGE_SIZE }, rc: value }],
    end: [{ op: { op: 'unregister' }, rc: 0 }],
  },
  'example-pinbuf': {
    what: 'dma_write / dma_read into the frames captured at pin time',
    setup: [{ op: { op: 'pin', vaddr: buf(), len: LEN }, rc: BUF_PAGES }],
    write: (p, value) => [{ op: { op: 'dma_write', off: p * PAGE_SIZE, value }, rc: 0 }],
    read: (p, value) => [{ op: { op: 'dma_read', off: p * PAGE_SIZE }, rc: value }],
    end: [{ op: { op: 'release' }, rc: BUF_PAGES }],
  },
};

/** A 31-bit non-zero payload word (a read returns it as a non-negative rc). */
function word(k: number, seed: number): number {
  return (Math.imul(k + 1, 0x9e3779b1) ^ seed) >>> 1 || 1;
}

/** setup, dmaOps DMA ops (write page p, then read it back), end; with the rc each op must return. */
function dmaProgram(plan: DmaPlan, dmaOps: number, seed: number): Step[] {
  const steps = [...plan.setup];
  const r = new Prng(seed);
  for (let k = 0; k < dmaOps / 2; k++) {
    const p = r.below(BUF_PAGES);
    const v = word(k, seed);
    steps.push(...plan.write(p, v), ...plan.read(p, v));
  }
  steps.push(...plan.end);
  return steps;
}

function dmaCase(model: string, steps: Step[]): Case {
  return {
    layout: LAYOUT,
    variant: 'v6.12',
    programs: { [`${model}-0`]: steps.map((s) => s.op) },
    schedule: [],
    faults: {},
  };
}

/** Run one case and check it: a clean end, no failure, every rc as expected. Returns wall seconds and actor ops. */
async function runChecked(
  pool: ActorPool,
  model: string,
  steps: Step[],
  mode: 'det' | 'free',
): Promise<{ s: number; ops: number }> {
  const cs = dmaCase(model, steps);
  const t0 = performance.now();
  const r = await runCase(pool, cs, { mode, seed: 1 });
  const s = (performance.now() - t0) / 1000;
  if (r.failures.length) fail(`${model} (${mode}): ${r.failures[0]!.property}: ${r.failures[0]!.message}`);
  if (r.end !== 'done') fail(`${model} (${mode}): run ended '${r.end}'`);
  const res = r.actors[0];
  if (!res || res.ops.length !== steps.length)
    fail(`${model} (${mode}): ${res?.ops.length ?? 0} of ${steps.length} ops ran`);
  res.ops.forEach((o, i) => {
    const want = steps[i]!.rc;
    if (want === undefined ? o.rc < 0 : o.rc !== want)
      fail(`${model} (${mode}): op ${i} ${o.op} returned ${o.rc}, expected ${want ?? '>= 0'} (${o.detail ?? ''})`);
  });
  if (!res.teardown || res.teardown.rc < 0) fail(`${model} (${mode}): teardown returned ${res.teardown?.rc}`);
  return { s, ops: res.ops.length };
}

async function dmaRows(pool: ActorPool): Promise<Row[]> {
  const rows: Row[] = [];
  for (const model of Object.keys(DEVICE_MODELS)) {
    const plan = PLANS[model];
    if (!plan) {
      rows.push({ bench: 'dma', case: model, note: 'not measured: no DMA program for this model in bench/devices.ts' });
      continue;
    }
    const setupOnly = [...plan.setup, ...plan.end];
    for (const mode of ['det', 'free'] as const) {
      await runChecked(pool, model, dmaProgram(plan, DMA_OPS / 2, 99), mode); // warm the worker's JIT
      let setupS = 0;
      for (let k = 0; k < CASES; k++) setupS += (await runChecked(pool, model, setupOnly, mode)).s;
      let s = 0;
      let actorOps = 0;
      const perCase: number[] = [];
      for (let k = 0; k < CASES; k++) {
        const r = await runChecked(pool, model, dmaProgram(plan, DMA_OPS, k + 1), mode);
        s += r.s;
        actorOps += r.ops - setupOnly.length;
        perCase.push(DMA_OPS / r.s);
      }
      const dmaOps = DMA_OPS * CASES;
      const net = dmaOps / (s - setupS);
      rows.push({
        bench: 'dma',
        case: `${model}, ${mode === 'det' ? 'deterministic' : 'free'}`,
        n: dmaOps,
        unit: `DMA ops (${actorOps} actor ops)`,
        'wall s': +s.toFixed(3),
        'setup-only s': +setupS.toFixed(3),
        '/s': fmtRate(dmaOps / s),
        'net /s': fmtRate(net),
        range: range(perCase),
        'pages/s': '',
        'payload B/s': fmtBytes(net * DMA_BYTES),
        note: plan.what,
      });
    }
  }
  return rows;
}

// ---------------------------------------------------------------------------------------------
// 2. vfio-type1 MAP_DMA + UNMAP_DMA cycles, in-thread

const MACHINE = 'mem=5G movablecore=2G';

interface Vmm {
  m: Memmap;
  mm: number;
  dev: DeviceState;
}

function inThreadEnv(m: Memmap, mm: number): DeviceEnv {
  const rng = new Prng(6);
  return {
    m,
    mm,
    name: 'vfio-type1/0',
    bugs: new Set(),
    rand: (n) => rng.below(n),
    yieldPoint: () => undefined,
    trace: () => undefined,
  };
}

/** A booted machine, the VMM process (RLIMIT_MEMLOCK = what it maps, as libvirt sets it) and a type1 container. */
function bootVmm(thp: boolean, limitPages: number): Vmm {
  const { m } = bootFromSpec({ cmdline: `${MACHINE}${thp ? ' transparent_hugepage=always' : ''}` });
  const mm = bprmMmInit(m, { rlimitMemlockPages: limitPages });
  setCurrent(newTask(1, 'qemu', 0, mm));
  return { m, mm, dev: vfioType1.create(inThreadEnv(m, mm)) };
}

function pinsOutstanding(m: Memmap): number {
  const v = vmstatSnapshot(m);
  return v.nr_foll_pin_acquired - v.nr_foll_pin_released;
}

const mapOp = (vpn: number, pages: number) => ({
  op: 'map_dma',
  iova: 0,
  vaddr: vpn * PAGE_SIZE,
  size: pages * PAGE_SIZE,
  read: true,
  write: true,
});
const unmapOp = (pages: number) => ({ op: 'unmap_dma', iova: 0, size: pages * PAGE_SIZE });

/** With a range mapped at IOVA 0: every page held, pinned, long-term pinnable, the page the process maps, charged. */
function checkMapped(v: Vmm, vpn: number, pages: number, what: string): void {
  const held = v.dev.inspect().held;
  if (held.length !== pages) fail(`${what}: ${held.length} pages held, expected ${pages}`);
  for (let i = 0; i < pages; i++) {
    const h = held[i]!;
    const head = v.m.compoundHead(h.pfn);
    if (h.iova !== i || h.vpn !== vpn + i) fail(`${what}: held page ${i} is iova ${h.iova} vpn ${h.vpn}`);
    if (!folioMaybeDmaPinned(v.m, head)) fail(`${what}: pfn ${h.pfn} holds no pin`);
    if (!folioIsLongtermPinnable(v.m, head))
      fail(`${what}: pfn ${h.pfn} long-term pinned in zone ${v.m.pageZonenum(h.pfn)}`);
    if (pfnOf(v.m, v.mm, vpn + i) !== h.pfn)
      fail(`${what}: iova page ${i} maps pfn ${h.pfn}, the process maps ${pfnOf(v.m, v.mm, vpn + i)}`);
  }
  if (memlockCounters(v.m, v.mm).locked_vm !== pages)
    fail(`${what}: locked_vm ${memlockCounters(v.m, v.mm).locked_vm}, expected ${pages}`);
}

/** Nothing mapped, pins balance, locked_vm 0. */
function checkUnmapped(v: Vmm, pinsBefore: number, what: string): void {
  if (v.dev.inspect().held.length) fail(`${what}: pages still held after UNMAP_DMA`);
  if (pinsOutstanding(v.m) !== pinsBefore)
    fail(`${what}: ${pinsOutstanding(v.m) - pinsBefore} FOLL_PIN(s) not released`);
  if (memlockCounters(v.m, v.mm).locked_vm !== 0)
    fail(`${what}: locked_vm ${memlockCounters(v.m, v.mm).locked_vm} after UNMAP_DMA`);
}

/** The process writes a distinct word into every page of [vpn, vpn + n). */
function prefault(v: Vmm, vpn: number, n: number): void {
  for (let i = 0; i < n; i++) if (putUser(v.m, v.mm, vpn + i, i + 1) !== i + 1) fail(`prefault of page ${i} failed`);
}

/** Pages of [vpn, vpn + n) in ZONE_MOVABLE, and how many of them sit in PMD-size THPs. */
function census(v: Vmm, vpn: number, n: number): { movable: number; thpPages: number; missing: number } {
  let movable = 0;
  let thpPages = 0;
  let missing = 0;
  for (let i = 0; i < n; i++) {
    const pfn = pfnOf(v.m, v.mm, vpn + i);
    if (pfn < 0) {
      missing++;
      continue;
    }
    if (v.m.pageZonenum(pfn) === ZONE_MOVABLE) movable++;
    const head = v.m.compoundHead(pfn);
    if (v.m.flags[head]! & PG_head && folioOrder(v.m, head) === v.m.pmdOrder) thpPages++;
  }
  return { movable, thpPages, missing };
}

/** Cycles run, seconds timed (0 when checked), and the seconds of each timed group of cycles. */
interface CycleResult {
  cycles: number;
  s: number;
  trials: { cycles: number; s: number }[];
  migrated: number;
  thpFaults: number;
}

const gc = (): void => (globalThis as { gc?: () => void }).gc?.(); // bin/bench.js runs node --expose-gc

/**
 * MAP_DMA + UNMAP_DMA of each of `chunks` ranges of `pages` pages from vpn, `passes` times over.
 * `checked`: every cycle's mapping is checked (checkMapped) between the two ioctls and nothing is
 * timed. Otherwise the loop is timed in groups (a pass, or an eighth of one; after a gc(), so the
 * setup's garbage is not counted, the cycles' own is), checking only the ioctls' return values.
 * Either way, afterwards: nothing held, pins balance, locked_vm 0, a FOLL_PIN per page per cycle.
 */
function cycles(
  v: Vmm,
  vpn: number,
  pages: number,
  chunks: number,
  passes: number,
  checked: boolean,
  what: string,
): CycleResult {
  const pinsBefore = pinsOutstanding(v.m);
  const vs0 = vmstatSnapshot(v.m);
  const size = pages * PAGE_SIZE;
  const group = passes > 1 ? chunks : Math.ceil(chunks / 8);
  const trials: { cycles: number; s: number }[] = [];
  let n = 0;
  if (!checked) gc();
  for (let pass = 0; pass < passes; pass++) {
    for (let g = 0; g < chunks; g += group) {
      const t0 = performance.now();
      for (let c = g; c < Math.min(chunks, g + group); c++) {
        const at = vpn + c * pages;
        const rm = v.dev.step(mapOp(at, pages)).rc;
        if (rm !== 0) fail(`${what}: MAP_DMA returned ${rm}`);
        if (checked) checkMapped(v, at, pages, what);
        const ru = v.dev.step(unmapOp(pages)).rc;
        if (ru !== size) fail(`${what}: UNMAP_DMA returned ${ru}`);
      }
      if (!checked) trials.push({ cycles: Math.min(chunks, g + group) - g, s: (performance.now() - t0) / 1000 });
      n += Math.min(chunks, g + group) - g;
    }
  }
  checkUnmapped(v, pinsBefore, what);
  const vs = vmstatSnapshot(v.m);
  if (vs.nr_foll_pin_acquired - vs0.nr_foll_pin_acquired < n * pages)
    fail(`${what}: ${vs.nr_foll_pin_acquired - vs0.nr_foll_pin_acquired} FOLL_PIN events for ${n * pages} pages`);
  return {
    cycles: n,
    s: trials.reduce((a, t) => a + t.s, 0),
    trials,
    migrated: vs.pgmigrate_success - vs0.pgmigrate_success,
    thpFaults: vs.thp_fault_alloc - vs0.thp_fault_alloc,
  };
}

/** One size: `chunks` ranges of `pages` pages; `reps` machines per memory state, the first checked, the rest timed. */
interface SizeCase {
  label: string;
  pages: number;
  thp: boolean;
  chunks: number;
  reps: number;
  steadyPasses: number;
}

function cycleRow(c: SizeCase, memory: string, r: CycleResult, note: string): Row {
  const perCycle = (x: number): string => `${+(x / r.cycles).toFixed(2)}`;
  return {
    bench: 'vfio map+unmap',
    case: `${c.label}${c.thp ? ' thp=always' : ''}: ${memory}`,
    n: r.cycles,
    unit: 'cycles',
    'wall s': +r.s.toFixed(3),
    'setup-only s': '',
    '/s': fmtRate(r.cycles / r.s),
    'net /s': '',
    range: range(r.trials.map((t) => t.cycles / t.s)),
    'pages/s': fmtRate((r.cycles * c.pages) / r.s),
    'payload B/s': '',
    note: `${note}; migrated ${perCycle(r.migrated)}, THP faults ${perCycle(r.thpFaults)} per cycle`,
  };
}

function add(a: CycleResult | null, b: CycleResult): CycleResult {
  return a
    ? {
        cycles: a.cycles + b.cycles,
        s: a.s + b.s,
        trials: [...a.trials, ...b.trials],
        migrated: a.migrated + b.migrated,
        thpFaults: a.thpFaults + b.thpFaults,
      }
    : b;
}

/**
 * The three memory states of one size, each range mapped for the first time on a fresh machine:
 * fresh (never touched: MAP_DMA faults it in), prefaulted by the process (in ZONE_MOVABLE: the first
 * MAP_DMA migrates it), and the same ranges mapped again (pinnable now: pinned in place).
 */
function sizeRows(c: SizeCase): Row[] {
  const span = c.pages * c.chunks;
  const tag = `${c.label}${c.thp ? ' THP' : ''}`;
  const thpNote = (x: { thpPages: number }): string =>
    c.thp ? `, ${Math.round((100 * x.thpPages) / span)}% of pages in THPs` : '';
  let fresh: CycleResult | null = null;
  let first: CycleResult | null = null;
  let steady: CycleResult | null = null;
  const notes = { fresh: '', first: '', steady: '' };
  for (const prefaulted of [false, true]) {
    for (let rep = 0; rep < c.reps; rep++) {
      const checked = rep === 0; // the first machine of each state: every cycle checked, none timed (and the JIT warms)
      const what = `${tag} ${prefaulted ? 'prefaulted' : 'fresh'} (machine ${rep})`;
      const v = bootVmm(c.thp, c.pages);
      const vpn = doMmap(v.m, v.mm, { nrPages: span, prot: PROT_READ | PROT_WRITE });
      if (vpn < 0) fail(`${what}: mmap failed: ${vpn}`);
      const k0 = prefaulted ? (prefault(v, vpn, span), census(v, vpn, span)) : null;
      if (k0 && k0.movable !== span) fail(`${what}: prefaulted ${k0.movable} of ${span} pages into ZONE_MOVABLE`);
      const r = cycles(v, vpn, c.pages, c.chunks, 1, checked, what);
      const k1 = census(v, vpn, span);
      if (k1.missing || k1.movable)
        fail(`${what}: after the first maps ${k1.missing} pages missing, ${k1.movable} in ZONE_MOVABLE`);
      if (prefaulted)
        for (let i = 0; i < span; i += Math.max(1, span >> 10))
          if (getUser(v.m, v.mm, vpn + i) !== i + 1) fail(`${what}: page ${i} lost its data`);
      if (!prefaulted) {
        if (!checked) fresh = add(fresh, r);
        notes.fresh = `faulted in by MAP_DMA, none in ZONE_MOVABLE${thpNote(k1)}`;
      } else {
        if (!checked) first = add(first, r);
        notes.first = `in ZONE_MOVABLE before${thpNote(k0!)}, in the kernel zones after${thpNote(k1)}`;
        if (rep === c.reps - 1) {
          // the same ranges again, now pinnable
          checkedOnce(v, vpn, c.pages, `${what} again`);
          steady = cycles(v, vpn, c.pages, c.chunks, c.steadyPasses, false, `${what} again`);
          if (steady.migrated) fail(`${what} again: ${steady.migrated} pages migrated`);
          notes.steady = `pinnable: pinned in place${thpNote(census(v, vpn, span))}`;
        }
      }
      exitMmap(v.m, v.mm);
    }
  }
  return [
    cycleRow(c, 'fresh', fresh!, notes.fresh),
    cycleRow(c, 'prefaulted, first map', first!, notes.first),
    cycleRow(c, 'prefaulted, mapped again', steady!, notes.steady),
  ];
}

/** One MAP_DMA + UNMAP_DMA of the first range with the full checks, outside any timed region. */
function checkedOnce(v: Vmm, vpn: number, pages: number, what: string): void {
  const before = pinsOutstanding(v.m);
  if (v.dev.step(mapOp(vpn, pages)).rc !== 0) fail(`${what}: MAP_DMA failed`);
  checkMapped(v, vpn, pages, what);
  if (v.dev.step(unmapOp(pages)).rc !== pages * PAGE_SIZE) fail(`${what}: UNMAP_DMA failed`);
  checkUnmapped(v, before, what);
}

function vfioCycleRows(): Row[] {
  const K4 = 1;
  const M2 = 512;
  const G1 = 262144;
  // one checked machine and one timed per state; at 1 GiB one range (the kernel zones, 2 GiB here,
  // hold one pinned 1 GiB range at a time), so the first-map figures are one cycle each
  const cases: SizeCase[] = [
    { label: '4 KiB', pages: K4, thp: false, chunks: 32768, reps: 2, steadyPasses: 4 },
    { label: '2 MiB', pages: M2, thp: false, chunks: 256, reps: 2, steadyPasses: 4 },
    { label: '2 MiB', pages: M2, thp: true, chunks: 256, reps: 2, steadyPasses: 4 },
    { label: '1 GiB', pages: G1, thp: false, chunks: 1, reps: 2, steadyPasses: 3 },
    { label: '1 GiB', pages: G1, thp: true, chunks: 1, reps: 2, steadyPasses: 3 },
  ];
  const saved = setCurrent(newTask(1, 'bench', 0, -1));
  try {
    sizeRows(cases[0]!); // discarded: the JIT takes a few 10k cycles to settle (the first 4096 cost 5-10x the rest)
    return cases.flatMap(sizeRows);
  } finally {
    setCurrent(saved);
  }
}

export async function devicesRows(): Promise<Row[]> {
  const pool = new ActorPool(1);
  let rows: Row[];
  try {
    rows = await dmaRows(pool);
  } finally {
    await pool.destroy();
  }
  return [...rows, ...vfioCycleRows()];
}
