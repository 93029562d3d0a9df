// Running one generated case (main thread): boot the machine it describes in a SharedArrayBuffer,
// create the process and its mappings, start one actor per program in the pool (one worker thread
// each), await the end of the run without ever blocking the event loop (Atomics.waitAsync), then run
// the property checks of phases 'teardown' and 'exit' (properties/index.ts), which see what the actors
// could not from inside. A case is plain JSON, so it can be saved, replayed and shrunk.
import { performance } from 'node:perf_hooks';
import {
  tallyAdd,
  tallyMerge,
  type ActorOp,
  type ActorResult,
  type ActorTask,
  type FaultPlan,
  type MapInfo,
  type Tally,
} from './types';
import type { ActorPool } from './pool';
import { Memmap } from '../mm/memmap';
import { bootFromSpec } from './layout';
import { parseCmdline, parseGeometry, type BootParams } from '../mm/cmdline';
import { bprmMmInit, doMmap, exitMmap, fileInodeCreate, fileInodePut, PROT_READ, PROT_WRITE } from '../mm/mmap';
import { AS_WRITEBACK } from '../mm/filemap';
import { H_MM_LIVE, MM_USERS } from '../mm/memmap';
import { mmBase } from '../mm/mm_types';
import { newTask } from '../mm/sched';
import { parseVariant } from '../mm/variants';
import { withContext, ThreadContext } from './context';
import { lruAddDrainAll } from '../mm/swap';
import { drainAllPages } from '../mm/page_alloc';
import { errname } from '../mm/errno';
import { vmstatSnapshot, pathSnapshot } from '../mm/vmstat';
import { CmdlineError } from '../mm/cmdline';
import { KernelBug } from '../mm/debug';
import { KernelPanic } from '../mm/oom_kill';
import { bugSitesSave, bugSitesRestore } from '../mm/variants';
import { snapshotPageCounts, PageCounts } from '../properties/pins_balance';
import { propertiesAt, RUN_FAILURES, BootCheck, EndCheck, Phase, Property } from '../properties/index';
import { kernelBug } from '../properties/kernel_bug';
import { deadlock, hang, kernelPanic, actorThrew, workerExit, propertyThrew } from '../properties/run_failures';
import {
  Control,
  C_END,
  C_STOP,
  C_POINTS,
  C_SWITCHES,
  C_DECISION,
  C_ERR_ACTOR,
  C_GO,
  A_STATE,
  A_WAKE,
  A_WAIT_IDX,
  A_WAIT_BUF,
  A_REASON,
  ST_BLOCKED,
  END_RUNNING,
  END_DONE,
  END_ERROR,
  END_DEADLOCK,
  END_STOPPED,
  END_NAMES,
  MODE_DET,
  MODE_FREE,
  C_MODE,
  readRing,
  RingEntry,
  K_VIOLATION,
  C_ORDER_MISMATCH,
  C_ORDER_FIRST_MISMATCH,
  C_ORDER_MISMATCH_LABEL,
} from './schedctl';
import { initDeterministic, OrderEntry } from './scheduler';
import { mergeTrace, traceHash, machineDigest, describeWord, TraceLine } from './trace';
import { actorKind, actorModel, type AnyActorModel } from './actors';
import { takeSnapshot, type MachineSnapshot } from './report/snapshot';
import { own } from '../mm/own';

/** A process mapping the case asks for (anonymous, private, read-write), by name. */
export interface MapSpec {
  name: string;
  pages: number;
  /** a mapping of a file on a filesystem with writeback, MAP_SHARED or MAP_PRIVATE (default: anonymous) */
  file?: 'shared' | 'private';
}

export interface Layout {
  cmdline: string;
  geometry?: string;
  maps: MapSpec[];
  /** the process's RLIMIT_MEMLOCK in pages (-1: RLIM_INFINITY); default 8 MiB (mm_alloc) */
  memlock?: number;
  /**
   * a generated command line the kernel may refuse (the boot suite): a refusal is the case's outcome (end
   * 'refused', judged by the boot properties), not bad input
   */
  refusable?: boolean;
}

/** A generated case: plain JSON data. Actor names are "<kind>-<n>" (kinds: agents and device models). */
export interface Case {
  layout: Layout;
  variant: string;
  programs: Record<string, ActorOp[]>;
  schedule: number[];
  faults: Record<string, FaultPlan>;
  /** device-model bug switches per actor (optional) */
  bugs?: Record<string, string[]>;
}

export interface Failure {
  property: string;
  message: string;
  actor?: string;
  /** trace position of the violation (end-of-run checks use the end of the trace) */
  seq: number;
}

export interface RunOptions {
  mode: 'det' | 'free';
  /** the run's time budget: past it the run is stopped and reported as a hang */
  timeoutMs?: number;
  /** offline_pages() pass budget of the hotplug agent */
  offlinePasses?: number;
  /** seed for device models' traffic choices */
  seed?: number;
  /** set by SIGINT or SIGTERM: the run is stopped and reported as interrupted (not as a failure) */
  interrupt?: { stopped: boolean };
  /** extra end-of-run checks (a suite's own): property name -> errors */
  checks?: Record<string, (m: Memmap) => string[]>;
  /** ring capacity in entries */
  ringCap?: number;
  /** test switches for every actor thread (ActorTask.debug) */
  debug?: ActorTask['debug'];
  /** check only these properties (--property); the run's own failures (deadlock, hang, kernel-bug ...) always count */
  properties?: string[];
  /**
   * deterministic mode: follow this interleaving of a free run (harness/scheduler.ts) instead of the case's schedule
   */
  interleave?: OrderEntry[];
  /** deterministic mode: machine snapshots at boot, after every op and around the end-of-run checks (HTML report) */
  snapshots?: boolean;
}

export interface CaseResult {
  failures: Failure[];
  end: string;
  interrupted: boolean;
  /** preemption points reached (each a scheduling decision in deterministic mode) */
  steps: number;
  /** decisions that handed the CPU to another actor */
  switches: number;
  decisions: number;
  traceHash: string;
  lines: TraceLine[];
  ring: RingEntry[];
  ringLost: number;
  /** the trace's labels by hash */
  labels: Map<number, string>;
  /** the name of a word of the machine buffer by its Int32 index ("mm 0 page_table_lock") */
  wordName: (idx: number) => string;
  names: string[];
  cpus: number[];
  actors: (ActorResult | null)[];
  /** a worker did not give its thread back: the pool must be replaced */
  recyclePool: boolean;
  /** per property: what its checks saw and their time, actors' threads and main thread summed */
  tally: Tally;
  /** the kernel paths the case took: its event counters (/proc/vmstat, PATH_ITEMS) at its end, those not 0 */
  events: Record<string, number>;
  /** how often the actors' ops reached each regression-corpus bug site (mm/variants.ts bugSites) */
  sites: Record<string, number>;
  ms: number;
  /** an interleaving replay: the decisions it took, as a schedule that replays the run without the interleaving */
  scheduleTaken?: number[];
  /** an interleaving replay: points reached where the free run had another label (the replay diverged there) */
  orderMismatch?: { count: number; index: number; expected: string; reached: string };
  /** RunOptions.snapshots: the machine at boot, after each op, after teardown and after exit, by trace position */
  snapshots?: MachineSnapshot[];
}

/** Bad case data (a malformed regression file, an unknown actor kind): one line, exit code 2. */
export class CaseError extends Error {
  constructor(msg: string) {
    super(msg);
    this.name = 'CaseError';
  }
}

export const DEFAULT_TIMEOUT_MS = 60_000;
export const AGENT_OFFLINE_PASSES = 8;
const GRACE_MS = 1_000;
const SCHED_CAP_MIN = 256;
/** Trace ring entries: a free run keeps every point it reached, so its interleaving can be replayed. */
const DET_RING_CAP = 1 << 14;
const FREE_RING_CAP = 1 << 16;

// Booting costs more than a small case, and a fresh SharedArrayBuffer costs more to post to a worker
// than one it has seen: a booted image is kept per command line and copied into a spare buffer (the
// machine is nothing but its buffer), and the buffers of a case that ended cleanly are reused. Only for
// small machines: a large one (a replay of mem=16G) is booted afresh, as pinlab layout boots it, since
// a kept image and its copy would cost twice the machine's memory, all of it touched.
interface BootImage {
  shape: Memmap['shape'];
  image: Uint8Array;
  spare: SharedArrayBuffer | null;
  /** the boot checks' findings on this machine (they read only the boot image) */
  boot: BootFindings;
}
const bootImages = new Map<string, BootImage>();
const BOOT_IMAGES_MAX = 16;
/** Machines up to this size keep a boot image (a mini machine is ~40 KiB; mem=1G with 4K pages ~10 MiB). */
const BOOT_IMAGE_MAX_BYTES = 32 << 20;
/** Machines above this size get a scratch buffer for the movable-offlinable copy (ActorTask.scratch). */
const SCRATCH_MIN_BYTES = BOOT_IMAGE_MAX_BYTES;
const spareControls = new Map<string, SharedArrayBuffer>();

/** What phase 'boot' found: failures (property, message) and what each property checked. */
interface BootFindings {
  failures: { property: string; message: string }[];
  tally: Tally;
  /** the regression-corpus bug sites boot reached (counted for the boot suite's cases only) */
  sites?: Record<string, number>;
}

/** A case's machine as boot left it, or the refusal of its command line (a refusable layout only). */
interface Booted {
  m: Memmap | null;
  refused: string | null;
  /** the kernel panicked booting (out of memory before init): an outcome of the boot suite */
  panic?: string;
  boot: BootFindings;
}

/** Boot images are kept per kernel too: a variant may boot differently (R22). */
const bootKey = (layout: Layout, variant: string): string => `${variant}|${layout.geometry ?? ''}|${layout.cmdline}`;

function bootCached(layout: Layout, variant: string): Booted {
  const key = bootKey(layout, variant);
  let bi = bootImages.get(key);
  if (!bi) {
    let m: Memmap;
    let params: BootParams;
    const saved = bugSitesSave(); // boot's own bug sites, apart from the thread's
    bugSitesRestore({});
    let sites: Record<string, number>;
    try {
      ({ m, params } = bootFromSpec({ cmdline: layout.cmdline, geometry: layout.geometry }));
      sites = bugSitesSave();
    } catch (e) {
      bugSitesRestore(saved);
      if (!layout.refusable) {
        if (e instanceof CmdlineError) throw new CaseError(`layout: ${e.message}`);
        throw e;
      }
      if (e instanceof CmdlineError)
        return { m: null, refused: e.message, boot: bootChecks(layout, null, null, e.message) };
      // a machine too small for the kernel's own memory panics as the kernel does (out of memory at boot)
      if (e instanceof KernelPanic)
        return { m: null, refused: null, panic: e.message, boot: { failures: [], tally: {} } };
      // the kernel broke booting a generated command line: the case's failure, not the harness's
      const err = e as Error;
      const property = e instanceof KernelBug ? kernelBug.name : propertyThrew.name;
      const message = `booting '${layout.cmdline}': ${err?.name}: ${err?.message}`;
      return { m: null, refused: null, boot: { failures: [{ property, message }], tally: {} } };
    }
    bugSitesRestore(saved);
    const boot = { ...bootChecks(layout, m, params, null), sites };
    if (m.sab.byteLength > BOOT_IMAGE_MAX_BYTES) return { m, refused: null, boot };
    if (bootImages.size >= BOOT_IMAGES_MAX) bootImages.clear();
    bi = { shape: m.shape, image: new Uint8Array(m.sab).slice(), spare: null, boot };
    bootImages.set(key, bi);
    return { m, refused: null, boot };
  }
  const sab = bi.spare ?? new SharedArrayBuffer(bi.image.length);
  bi.spare = null;
  new Uint8Array(sab).set(bi.image);
  return { m: new Memmap(bi.shape, sab), refused: null, boot: bi.boot };
}

/** Phase 'boot': every property's atBoot() on the machine just booted, or on its command line's refusal. */
function bootChecks(layout: Layout, m: Memmap | null, params: BootParams | null, refused: string | null): BootFindings {
  const out: BootFindings = { failures: [], tally: {} };
  const c: BootCheck = { m, params, cmdline: layout.cmdline, refused, checked: 0 };
  for (const p of propertiesAt('boot')) {
    if (!p.atBoot) continue;
    c.checked = 0;
    const t0 = performance.now();
    try {
      for (const message of p.atBoot(c).slice(0, 5)) out.failures.push({ property: p.name, message });
    } catch (e) {
      const err = e as Error;
      out.failures.push({ property: propertyThrew.name, message: `${p.name}: ${err?.name}: ${err?.message}` });
    }
    tallyAdd(out.tally, p.name, c.checked, performance.now() - t0);
  }
  return out;
}

/** The buffers of a case that ended cleanly (every worker let go of them) serve the next case. */
function recycle(cs: Case, m: Memmap, c: Control): void {
  const bi = bootImages.get(bootKey(cs.layout, cs.variant));
  if (bi && bi.image.length === m.sab.byteLength) bi.spare = m.sab;
  spareControls.set(JSON.stringify(c.shape), c.sab);
}

function newControl(shape: ConstructorParameters<typeof Control>[0]): Control {
  const key = JSON.stringify(shape);
  const sab = spareControls.get(key);
  if (!sab) return new Control(shape);
  spareControls.delete(key);
  new Int32Array(sab).fill(0);
  const c = new Control(shape, sab);
  c.reset();
  return c;
}

/**
 * Boot the case's machine and make its mappings as runCase() will (a layout that cannot: CaseError). null:
 * a boot suite case (Layout.refusable) whose command line the kernel refuses, which is its outcome.
 */
export function checkSetup(c: Case): { m: Memmap; mm: number; maps: MapInfo[] } | null {
  return withContext(setupContext(c), () => {
    const booted = bootCached(c.layout, c.variant);
    return booted.m ? setupMachine(c, booted) : null;
  });
}

/** The main thread's context while it sets up a case: the case's kernel, a task of its own. */
const setupContext = (c: Case): Partial<ThreadContext> => ({
  variant: parseVariant(c.variant),
  task: newTask(1, 'pinlab', 0, -1),
});

/**
 * Boot the case's machine and create its process and mappings (deterministic, main thread). bootMms: the
 * processes the machine booted with (the x86_64 geometry's init, mm/mm_init.ts bootUserSpace()), a bit per
 * mm slot as H_MM_LIVE; they outlive the case, as init outlives every process.
 */
export function setupMachine(
  c: Case,
  booted: Booted = bootCached(c.layout, c.variant),
): { m: Memmap; mm: number; maps: MapInfo[]; bootMms: number; boot: BootFindings } {
  const m = booted.m;
  if (!m) throw new CaseError(`layout: ${booted.refused ?? booted.boot.failures[0]!.message}`);
  const bootMms = m.header[H_MM_LIVE]!;
  const mm = bprmMmInit(m, { rlimitMemlockPages: c.layout.memlock });
  if (mm < 0) throw new CaseError('layout: no room for the process');
  const maps: MapInfo[] = [];
  for (const s of c.layout.maps) {
    // a file map: open(O_TMPFILE) + ftruncate on a filesystem with writeback, mmap, close (the VMA keeps it)
    const inode = s.file ? fileInodeCreate(m, s.pages, AS_WRITEBACK) : undefined;
    if (inode !== undefined && inode < 0) throw new CaseError(`layout: no file for ${s.name}: ${errname(inode)}`);
    const shared = s.file === 'shared';
    const vpn = doMmap(m, mm, { nrPages: s.pages, prot: PROT_READ | PROT_WRITE, shared, inode });
    if (inode !== undefined) fileInodePut(m, inode);
    if (vpn < 0) throw new CaseError(`layout: mmap of ${s.name} (${s.pages} pages) failed: ${errname(vpn)}`);
    maps.push({ name: s.name, vpn, pages: s.pages });
  }
  return { m, mm, maps, bootMms, boot: booted.boot };
}

function stopRun(c: Control, code: number): void {
  const i = c.i32;
  Atomics.compareExchange(i, C_END, END_RUNNING, code);
  Atomics.store(i, C_STOP, 1);
  for (let a = 0; a < c.nrActors; a++) {
    Atomics.add(i, c.actor(a, A_WAKE), 1);
    Atomics.notify(i, c.actor(a, A_WAKE));
  }
  Atomics.notify(i, C_GO);
  Atomics.notify(i, C_END);
}

type WaitAsync = (
  a: Int32Array,
  i: number,
  v: number,
  t?: number,
) => { async: boolean; value: Promise<string> | string };
const waitAsync = (Atomics as unknown as { waitAsync: WaitAsync }).waitAsync;

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms).unref?.());

/** The counters that say which kernel paths ran: vmstat's events (not the nr_* levels) and the path items. */
function eventCounters(m: Memmap): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries({ ...vmstatSnapshot(m), ...pathSnapshot(m) }))
    if (v && (!k.startsWith('nr_') || k.startsWith('nr_foll_pin'))) out[k] = v;
  return out;
}

/** A case made ready to run: its machine and process, the control block, one model per actor. */
interface Prepared {
  m: Memmap;
  mm: number;
  maps: MapInfo[];
  base: PageCounts;
  /** the event counters (vmstat and path items) at setup: the machine's boot counted some (x86_64) */
  events0: Record<string, number>;
  c: Control;
  order?: OrderEntry[];
  names: string[];
  cpus: number[];
  models: AnyActorModel[];
  scratch?: SharedArrayBuffer;
  /** phase 'boot' on the case's machine */
  boot: BootFindings;
}

function prepareCase(pool: ActorPool, cs: Case, opts: RunOptions): Prepared | Booted {
  const names = Object.keys(cs.programs);
  const n = names.length;
  if (n > pool.threads) throw new CaseError(`${n} actors but the pool has ${pool.threads} threads`);
  let pre: Booted | undefined;
  if (cs.layout.refusable) {
    // the boot suite: a refused command line (or a boot that broke) is the case's outcome
    pre = withContext(setupContext(cs), () => bootCached(cs.layout, cs.variant));
    if (!pre.m) return pre;
  }
  const { m, mm, maps, base, boot } = withContext(setupContext(cs), () => {
    const setup = setupMachine(cs, pre);
    return { ...setup, base: snapshotPageCounts(setup.m, setup.bootMms) };
  });
  const events0 = eventCounters(m);
  const order = opts.mode === 'det' && opts.interleave?.length ? opts.interleave : undefined;
  // an interleaving replay writes every decision into the schedule: room for the points plus the waits between them
  const schedCap = Math.max(SCHED_CAP_MIN, cs.schedule.length, order ? 8 * order.length + 1024 : 0);
  const ringCap = opts.ringCap ?? (opts.mode === 'free' ? FREE_RING_CAP : DET_RING_CAP);
  const c = newControl({ nrActors: n, schedCap, ringCap, orderCap: order?.length ?? 0 });
  c.i32[C_MODE] = opts.mode === 'det' ? MODE_DET : MODE_FREE;
  if (opts.mode === 'det') initDeterministic(c, cs.schedule, order);
  if (n > m.nrCpus - 1)
    throw new CaseError(`${n} actors need ${n + 1} CPUs (one each, CPU 0 is the harness's): add cpus= to the geometry`);
  const cpus = names.map((_, k) => 1 + k);
  // zero-filled on demand: costs only what the copy writes, and nothing when no block needs one
  const scratch = m.sab.byteLength > SCRATCH_MIN_BYTES ? new SharedArrayBuffer(m.sab.byteLength) : undefined;
  const models = names.map((x) => actorModel(actorKind(x)));
  for (const [k, model] of models.entries()) if (!model) throw new CaseError(`'${names[k]}' names no actor kind`);
  return { m, mm, maps, base, events0, c, order, names, cpus, models: models as AnyActorModel[], scratch, boot };
}

/** The actors' tasks on the pool, and what each came back with: a result, or how its worker died. */
interface Started {
  tasks: Promise<void>[];
  results: (ActorResult | null)[];
  crashes: (string | null)[];
  settled(): number;
}

const deviceParamsCache = new Map<string, Record<string, number>>();
/** BootParams.deviceParams of a case's machine (parsed once per command line). */
function deviceParamsOf(cmdline: string, geometry: string | undefined): Record<string, number> {
  const key = `${geometry ?? ''}|${cmdline}`;
  let p = deviceParamsCache.get(key);
  if (!p) {
    p = parseCmdline(cmdline, parseGeometry(geometry)).deviceParams;
    if (deviceParamsCache.size > 256) deviceParamsCache.clear();
    deviceParamsCache.set(key, p);
  }
  return p;
}

function startActors(pool: ActorPool, p: Prepared, cs: Case, opts: RunOptions): Started {
  const { m, c, names, models } = p;
  const results: (ActorResult | null)[] = new Array(names.length).fill(null);
  const crashes: (string | null)[] = new Array(names.length).fill(null);
  let settled = 0;
  // the quiescence barrier (harness/actor/quiescence.ts) needs every actor to reach it: each model says whether it does
  const quiesce = models.every((x) => !x.skipsQuiescence);
  // the device models' parameters from the case's command line (vfio_iommu_type1.dma_entry_limit=, ...)
  const deviceParams = deviceParamsOf(cs.layout.cmdline, cs.layout.geometry);
  const tasks = names.map((name, k) => {
    const t: ActorTask = {
      kind: 'actor',
      machine: { sab: m.sab, shape: m.shape },
      ctl: c.sab,
      ctlShape: c.shape,
      index: k,
      name,
      names,
      actorKind: models[k]!.name,
      cpu: p.cpus[k]!,
      mm: models[k]!.withoutProcess ? -1 : p.mm,
      procMm: p.mm,
      maps: p.maps,
      program: own(cs.programs, name)!,
      variant: cs.variant,
      det: opts.mode === 'det',
      faults: own(cs.faults, name) ?? {},
      bugs: (cs.bugs && own(cs.bugs, name)) ?? [],
      params: deviceParams,
      seed: opts.seed ?? 0,
      offlinePasses: opts.offlinePasses ?? AGENT_OFFLINE_PASSES,
      checkIsolate: opts.mode === 'det',
      debug: opts.debug,
      properties: opts.properties ?? null,
      quiesce,
      scratch: p.scratch,
      snapshots: opts.snapshots === true,
    };
    return pool.run(t).then(
      (r) => {
        results[k] = r;
        settled++;
      },
      (e: Error) => {
        crashes[k] = e?.message ?? String(e);
        settled++;
        stopRun(c, END_STOPPED);
      },
    );
  });
  return { tasks, results, crashes, settled: () => settled };
}

/** Await the end: Atomics.waitAsync on C_END, with the time budget and Ctrl-C checked between rounds. */
async function awaitEnd(
  c: Control,
  opts: RunOptions,
  t0: number,
  budget: number,
): Promise<{ timedOut: boolean; interrupted: boolean }> {
  let timedOut = false;
  let interrupted = false;
  while (Atomics.load(c.i32, C_END) === END_RUNNING) {
    const w = waitAsync(c.i32, C_END, END_RUNNING, 100);
    if (w.async) await w.value;
    if (opts.interrupt?.stopped && !interrupted) {
      interrupted = true;
      stopRun(c, END_STOPPED);
    }
    if (performance.now() - t0 > budget && !timedOut) {
      timedOut = true;
      stopRun(c, END_STOPPED);
    }
  }
  return { timedOut, interrupted };
}

/** The run's own failures: violations the actors reported, throws, dead workers, a deadlock, a hang. */
function runFailures(
  p: Prepared,
  st: Started,
  entries: RingEntry[],
  labels: Map<number, string>,
  hung: string | null,
): Failure[] {
  const { c, m, names } = p;
  const { results } = st;
  const lastSeq = entries.length ? entries[entries.length - 1]!.seq + 1 : 0;
  const failures: Failure[] = [];
  for (const r of results)
    if (r)
      for (const v of r.violations)
        failures.push({ property: v.property, message: v.message, actor: v.actor, seq: v.seq });
  results.forEach((r, k) => {
    // where it threw: the actor's actor-threw entry in the ring
    const at = r?.error
      ? (entries.find((e) => e.actor === k && e.kind === K_VIOLATION && e.arg === -1)?.seq ?? lastSeq)
      : lastSeq;
    const property =
      r?.error?.name === 'KernelBug'
        ? kernelBug.name
        : r?.error?.name === 'KernelPanic'
          ? kernelPanic.name
          : actorThrew.name;
    if (r?.error)
      failures.push({
        property,
        message: `${names[k]}: ${r.error.name}: ${r.error.message}`,
        actor: names[k],
        seq: at,
      });
  });
  st.crashes.forEach((e, k) => {
    if (e !== null)
      failures.push({
        property: workerExit.name,
        message: `${names[k]}: its worker thread died: ${e}`,
        actor: names[k],
        seq: lastSeq,
      });
  });
  const end = Atomics.load(c.i32, C_END);
  if (end === END_DEADLOCK) {
    const who = names
      .map((name, k) => {
        if (c.i32[c.actor(k, A_STATE)] !== ST_BLOCKED) return null;
        const reason = labels.get(c.i32[c.actor(k, A_REASON)]! >>> 0) ?? '?';
        return c.i32[c.actor(k, A_WAIT_BUF)]
          ? `${name} waits for ${reason}`
          : `${name} waits for ${reason} on ${describeWord(m, c.i32[c.actor(k, A_WAIT_IDX)]!)}`;
      })
      .filter(Boolean);
    failures.push({
      property: deadlock.name,
      message: `every unfinished actor is blocked: ${who.join('; ')}`,
      seq: lastSeq,
    });
  }
  if (hung !== null) failures.push({ property: hang.name, message: hung, seq: lastSeq });
  if (end === END_ERROR && !results.some((r) => r?.error) && c.i32[C_ERR_ACTOR]! >= 0) {
    failures.push({
      property: actorThrew.name,
      message: `${names[c.i32[C_ERR_ACTOR]!]} failed and its result was lost`,
      seq: lastSeq,
    });
  }
  return failures;
}

/** Run one case; never throws for what happens inside the run (that is a failure in the result). */
export async function runCase(pool: ActorPool, cs: Case, opts: RunOptions): Promise<CaseResult> {
  const t0 = performance.now();
  const p = prepareCase(pool, cs, opts);
  if (!('c' in p)) return refusedResult(p, opts, t0);
  const { m, c, names, order } = p;
  const snaps: MachineSnapshot[] = [];
  const snap = opts.snapshots
    ? (seq: number, label: string): void => {
        withContext(setupContext(cs), () => snaps.push(takeSnapshot(m, seq, -1, label)));
      }
    : null;
  snap?.(0, 'boot: the machine and the process mappings');
  const st = startActors(pool, p, cs, opts);
  const budget = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  // a case without actors (the boot suite's) has nothing to run: its end-of-run checks follow boot
  if (!names.length) Atomics.store(c.i32, C_END, END_DONE);
  const { timedOut, interrupted } = names.length
    ? await awaitEnd(c, opts, t0, budget)
    : { timedOut: false, interrupted: false };
  await Promise.race([Promise.all(st.tasks), sleep(GRACE_MS)]);
  const recyclePool = st.settled() < names.length;

  const end = Atomics.load(c.i32, C_END);
  const { entries, lost } = readRing(c);
  const labels = c.labels();
  let merged: TraceLine[] | null = null; // built on demand: only a failure prints the trace
  const lines = (): TraceLine[] => (merged ??= mergeTrace(entries, labels, st.results, m));
  const hung = timedOut
    ? `the run did not finish within ${budget} ms (last trace entries: ${lines()
        .slice(-3)
        .map((l) => `${names[l.actor]} ${l.text}`)
        .join(' | ')})`
    : null;
  const failures = runFailures(p, st, entries, labels, hung);
  for (const f of p.boot.failures) failures.push({ ...f, seq: 0 });
  let digest = 0;
  const tally: Tally = tallyMerge({}, p.boot.tally);
  const sites: Record<string, number> = {};
  for (const r of st.results) {
    tallyMerge(tally, r?.tally);
    for (const [k, v] of Object.entries(r?.bugSites ?? {})) sites[k] = (sites[k] ?? 0) + v;
  }
  // the boot suite: what its boot reached (other suites count what their cases did, not boot)
  if (cs.layout.refusable) for (const [k, v] of Object.entries(p.boot.sites ?? {})) sites[k] = (sites[k] ?? 0) + v;
  const events: Record<string, number> = {};
  if (end === END_DONE && !recyclePool) {
    digest = machineDigest(m);
    const seq = entries.length ? entries[entries.length - 1]!.seq + 1 : 0;
    // the case's paths: before the harness's own exit and drains (exitAll()), less what boot counted
    for (const [k, v] of Object.entries(eventCounters(m))) if (v !== p.events0[k]) events[k] = v - (p.events0[k] ?? 0);
    failures.push(...endChecks(m, cs, opts, { base: p.base, seq, scratch: p.scratch, tally, snap }));
  }
  if (opts.properties) {
    const keep = new Set<string>([...opts.properties, ...RUN_FAILURES]);
    for (let k = failures.length - 1; k >= 0; k--) if (!keep.has(failures[k]!.property)) failures.splice(k, 1);
  }
  failures.sort((a, b) => a.seq - b.seq);
  if (!recyclePool && !st.crashes.some((e) => e !== null) && end !== END_STOPPED) recycle(cs, m, c);
  const result = {
    failures,
    end: END_NAMES[end] ?? String(end),
    interrupted,
    steps: c.i32[C_POINTS]!,
    switches: c.i32[C_SWITCHES]!,
    decisions: c.i32[C_DECISION]!,
    traceHash: traceHash(entries, st.results, digest),
    ring: entries,
    ringLost: lost,
    labels,
    names,
    cpus: p.cpus,
    actors: st.results,
    recyclePool,
    tally,
    events,
    sites,
    ms: performance.now() - t0,
    ...(order ? interleaveOutcome(c, order, labels) : {}),
    ...(snap ? { snapshots: mergeSnapshots(snaps, st.results) } : {}),
  } as CaseResult;
  Object.defineProperty(result, 'lines', { get: lines, enumerable: true });
  Object.defineProperty(result, 'wordName', { value: (idx: number) => describeWord(m, idx), enumerable: false });
  return result;
}

/**
 * A boot suite's case whose command line the kernel refused (end 'refused'), that panicked booting (end
 * 'panic') or whose boot broke (end 'error'): nothing ran, and phase 'boot' judged it.
 */
function refusedResult(b: Booted, opts: RunOptions, t0: number): CaseResult {
  const keep = opts.properties ? new Set<string>([...opts.properties, ...RUN_FAILURES]) : null;
  const failures = b.boot.failures.filter((f) => !keep || keep.has(f.property)).map((f) => ({ ...f, seq: 0 }));
  const result = {
    failures,
    end: b.refused !== null ? 'refused' : b.panic ? 'panic' : 'error',
    interrupted: false,
    steps: 0,
    switches: 0,
    decisions: 0,
    traceHash: traceHash([], [], 0),
    ring: [],
    ringLost: 0,
    labels: new Map(),
    names: [],
    cpus: [],
    actors: [],
    recyclePool: false,
    tally: tallyMerge({}, b.boot.tally),
    events: {},
    sites: { ...b.boot.sites },
    ms: performance.now() - t0,
  } as unknown as CaseResult;
  Object.defineProperty(result, 'lines', { value: [], enumerable: true });
  Object.defineProperty(result, 'wordName', { value: (idx: number) => `word ${idx}`, enumerable: false });
  return result;
}

/** The main thread's snapshots and the actors', in trace order. */
function mergeSnapshots(main: MachineSnapshot[], results: (ActorResult | null)[]): MachineSnapshot[] {
  const all = [...main];
  for (const r of results) if (r?.snapshots) all.push(...r.snapshots);
  return all.sort((a, b) => a.seq - b.seq);
}

/** What an interleaving replay did: its decisions as a plain schedule, and where it left the free run's path. */
function interleaveOutcome(
  c: Control,
  order: OrderEntry[],
  labels: Map<number, string>,
): Pick<CaseResult, 'scheduleTaken' | 'orderMismatch'> {
  const i = c.i32;
  const decisions = i[C_DECISION]!;
  const out: Pick<CaseResult, 'scheduleTaken' | 'orderMismatch'> = {};
  if (decisions <= c.schedCap) {
    const sched = Array.from(i.subarray(c.schedBase, c.schedBase + decisions));
    while (sched.length > 1 && sched[sched.length - 1] === 0) sched.pop();
    out.scheduleTaken = sched;
  }
  const count = i[C_ORDER_MISMATCH]!;
  if (count) {
    const k = i[C_ORDER_FIRST_MISMATCH]!;
    const name = (h: number): string => labels.get(h >>> 0) ?? `#${(h >>> 0).toString(16)}`;
    out.orderMismatch = { count, index: k, expected: name(order[k]!.label), reached: name(i[C_ORDER_MISMATCH_LABEL]!) };
  }
  return out;
}

/**
 * End-of-run properties, in the main thread once every actor has torn down: phase 'teardown' with the
 * processes still alive (and the suite's own checks), then every process exits, the LRU batches and
 * per-CPU lists are drained, and phase 'exit'.
 */
function endChecks(
  m: Memmap,
  cs: Case,
  opts: RunOptions,
  at: {
    base: PageCounts;
    seq: number;
    scratch?: SharedArrayBuffer;
    tally: Tally;
    snap?: ((seq: number, label: string) => void) | null;
  },
): Failure[] {
  const { base, seq, scratch, snap } = at;
  const out: Failure[] = [];
  const c: EndCheck = { m, base, scratch, checked: 0 };
  const selected = (p: Property): boolean =>
    !opts.properties || opts.properties.includes(p.name) || p.runFailure === true;
  const check = (property: string, fn: () => string[]): void => {
    c.checked = 0;
    const t0 = performance.now();
    try {
      const errors = fn();
      tallyAdd(at.tally, property, c.checked, performance.now() - t0);
      for (const e of errors.slice(0, 5)) out.push({ property, message: e, seq });
    } catch (e) {
      out.push({
        property: propertyThrew.name,
        message: `${property}: ${(e as Error)?.name}: ${(e as Error)?.message}`,
        seq,
      });
    }
  };
  const phase = (ph: Phase): void => {
    for (const p of propertiesAt(ph).filter(selected)) {
      const fn = ph === 'teardown' ? p.atTeardown : p.atExit;
      if (fn) check(p.name, () => fn(c));
    }
  };
  withContext({ variant: parseVariant(cs.variant), task: newTask(1, 'pinlab-check', 0, -1) }, () => {
    phase('teardown');
    for (const [name, fn] of Object.entries(opts.checks ?? {})) check(name, () => fn(m));
    snap?.(seq, 'after teardown: every actor closed, the processes alive');
    if (exitAll(m, base.bootMms, out, seq)) {
      snap?.(seq + 0.5, 'after exit: every process exited, LRU batches and per-CPU lists drained');
      phase('exit');
    }
  });
  return out;
}

/**
 * Every process the case made exits (not bootMms, the machine's own) and the LRU batches and per-CPU
 * lists drain; false (and a failure) if the mm core broke.
 */
function exitAll(m: Memmap, bootMms: number, out: Failure[], seq: number): boolean {
  try {
    for (let k = 0; k < m.maxMms; k++)
      if (!(bootMms & (1 << k)) && Atomics.load(m.mms, mmBase(k) + MM_USERS)) exitMmap(m, k);
    lruAddDrainAll(m);
    drainAllPages(m);
    return true;
  } catch (e) {
    const err = e as Error;
    const property = e instanceof KernelBug ? kernelBug.name : propertyThrew.name;
    out.push({ property, message: `exit_mmap() and the drains after the run: ${err?.name}: ${err?.message}`, seq });
    return false;
  }
}
