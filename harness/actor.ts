// One actor, as its worker thread runs it: attach to the machine and the run's control block, install
// this thread's hooks (preemption points, seeded faults, waits), run the program one op at a time -
// each op begins at a preemption point, like a system call entry - check the long-term pins the actor
// holds after every op, tear down, and hand back what happened. Worker side only.
import type { ActorTask, ActorResult, ActorOp, Violation, FaultPlan } from './types';
import type { DeviceEnv, DeviceState, HeldPage } from '../devices/device';
import { Memmap, MM_USERS, MM_FLAGS, PG_zero } from '../mm/memmap';
import { attachMachine } from '../mm/mm_init';
import { mmBase } from '../mm/mm_types';
import { MMF_OOM_VICTIM, oomVictimExit } from '../mm/oom_kill';
import { setCurrent, newTask, setYieldHook, setFaultHook, yieldPoint, Task } from '../mm/sched';
import { setWaitHook, setLockTraceHook } from '../mm/locking';
import { parseVariant, setVariant } from '../mm/variants';
import { ZONE_MOVABLE, MIGRATE_CMA, MIGRATE_ISOLATE } from '../mm/mmzone';
import { errname, ESRCH } from '../mm/errno';
import { vmItem, vmstatRead } from '../mm/vmstat';
import { setMmuNotifierDeliver as setDeliver } from '../mm/mmu_notifier';
import { cloneMachine, movableBlocksOfflinable, formatOfflinable } from '../properties/offlinable';
import { threadId } from 'node:worker_threads';
import { Control, K_OP, K_RET, K_FAULT, K_VIOLATION, C_SEQ, C_QUIESCE, C_QUIESCE_DONE, C_QUIESCE_WORK, A_TID, A_MB_LOCK, A_MB_STATE, A_MB_FROM, A_MB_SUB, A_MB_ARGS,
  A_MB_RESULT, MB_IDLE, MB_PENDING, MB_DONE } from './schedctl';
import { setMmuNotifierDeliver, mmuNotifierDeliverLocal, MmuNotifierDelivery, MMU_NOTIFY_EVENT_NAMES } from '../mm/mmu_notifier';
import { KernelBug } from '../mm/debug';
import { ActorScheduler, RunStopped } from './scheduler';
import { AGENTS, AgentEnv, AgentState, AgentResult, AGENT_ERRNOS, PROP_ERRNO } from './agents';
import { Prng } from './prng';
import { own } from '../mm/own';
import { DEVICE_MODELS, resolveOp, errnoAllowed as deviceErrnoAllowed } from '../devices/index';

export const PROP_PINNABLE = 'no-longterm-pin-in-movable';
export const PROP_DMA = 'dma-integrity';
export const PROP_OFFLINABLE = 'movable-offlinable';
const NR_PIN_ACQUIRED = vmItem('nr_foll_pin_acquired');
const NR_PIN_RELEASED = vmItem('nr_foll_pin_released');

/** errno-contract: may this actor kind's op return rc? Successes and -ESRCH (process killed) always may. */
function errnoAllowed(kind: string, op: string, rc: number): boolean | null {
  if (rc >= 0 || rc === -ESRCH) return true;
  const model = own(DEVICE_MODELS, kind);
  if (model) return deviceErrnoAllowed(model, op, rc);
  const table = own(AGENT_ERRNOS, kind);
  if (!table) return null; // a kind without declarations (the harness's test actors)
  return own(table, op)?.includes(rc) ?? false;
}

/** The fault plan of one actor, counted on its own thread: deterministic in both modes. */
class FaultInjector {
  private readonly plan: FaultPlan;
  private readonly calls = new Map<string, number>();
  private points = 0;
  constructor(plan: FaultPlan) {
    this.plan = plan;
  }
  /** Does this call of the fault point fail? */
  fire(point: string): boolean {
    const at = own(this.plan, point);
    if (!at || !at.length) return false;
    const n = this.calls.get(point) ?? 0;
    this.calls.set(point, n + 1);
    return at.includes(n);
  }
  /** At this actor's preemption point: a signal arriving now? 'fatal-signal' also sets fatal_signal_pending(). */
  signalAt(): 'signal' | 'fatal-signal' | null {
    const k = this.points++;
    if (this.plan['fatal-signal']?.includes(k)) return 'fatal-signal';
    if (this.plan.signal?.includes(k)) return 'signal';
    return null;
  }
}

/** Lock acquisitions an actor remembers in free mode (the most recent ones). */
const LOCK_LOG_MAX = 512;

/** The lock log ring, oldest first, as [seq, word, seq, word, ...]. */
function orderedLockLog(ring: Int32Array, count: number): number[] {
  const n = Math.min(count, LOCK_LOG_MAX);
  const out: number[] = [];
  for (let j = count - n; j < count; j++) out.push(ring[2 * (j % LOCK_LOG_MAX)]!, ring[2 * (j % LOCK_LOG_MAX) + 1]!);
  return out;
}

function heldKey(h: HeldPage): string {
  return `${h.iova}:${h.vpn}:${h.pfn}`;
}

/** Which pageblocks are MIGRATE_ISOLATE now (one byte each). */
function isolatedPageblocks(m: Memmap): Uint8Array {
  const out = new Uint8Array(m.pageblock.length);
  for (let i = 0; i < out.length; i++) out[i] = m.pageblock[i] === MIGRATE_ISOLATE ? 1 : 0;
  return out;
}

function describeOp(op: ActorOp): string {
  return Object.entries(op).filter(([k]) => k !== 'op').map(([k, v]) => `${k}=${typeof v === 'object' ? JSON.stringify(v) : String(v)}`).join(' ');
}

/** The process is dead: exited, or chosen by the OOM killer (MMF_OOM_VICTIM). */
function mmIsGone(m: Memmap, mm: number): boolean {
  if (mm < 0) return false;
  const b = mmBase(mm);
  return m.mms[b + MM_USERS] === 0 || (m.mms[b + MM_FLAGS]! & MMF_OOM_VICTIM) !== 0;
}

export function runActor(t: ActorTask): ActorResult {
  const m = attachMachine(t.machine.shape, t.machine.sab);
  const c = new Control(t.ctlShape, t.ctl);
  const sched = new ActorScheduler(c, t.index, t.machine.sab, t.det);
  const res: ActorResult = { kind: 'actor', name: t.name, index: t.index, ops: [], violations: [], log: [], held: [] };
  const task: Task = newTask(100 + t.index, t.name, t.cpu, t.mm);
  const faults = new FaultInjector(t.faults);
  const seen = new Set<string>();
  const now = (): number => Atomics.load(c.i32, C_SEQ) - 0.5; // a log line sits just before the next entry
  const log = (text: string, seq = now()): void => { res.log.push({ seq, text }); };
  const violate = (property: string, message: string, dedupe = message): void => {
    if (seen.has(`${property}:${dedupe}`) || res.violations.length >= 8) return;
    seen.add(`${property}:${dedupe}`);
    const seq = sched.record(K_VIOLATION, property, res.violations.length);
    const v: Violation = { property, message, actor: t.name, seq };
    res.violations.push(v);
    log(`pinlab_violation: ${property}: ${message}`, seq);
  };

  // ---- mmu notifier callbacks across threads: the invalidating actor asks the subscriber's actor
  // (its mailbox in the control block) and waits for the answer, as the kernel waits for the callback ----
  const i32 = c.i32;
  i32[c.actor(t.index, A_TID)] = threadId;
  /** Wait while a control word holds value: a blocking decision (det), or serve and sleep a little (free). */
  const waitCtl = (idx: number, value: number, reason: string): void => {
    if (t.det) { sched.block(i32, idx, value, reason); return; }
    sched.serve();
    if (sched.stopped()) throw new RunStopped('stopped');
    Atomics.wait(i32, idx, value, 2);
  };
  let serving = false;
  sched.serve = () => {
    const st = c.actor(t.index, A_MB_STATE);
    if (serving || Atomics.load(i32, st) !== MB_PENDING) return;
    serving = true;
    try {
      const a = c.actor(t.index, A_MB_ARGS);
      const d: MmuNotifierDelivery = { subId: i32[c.actor(t.index, A_MB_SUB)]!, owner: threadId, curSeq: i32[a + 5]!,
        range: { mm: i32[a]!, start: i32[a + 1]!, end: i32[a + 2]!, event: i32[a + 3]!, flags: i32[a + 4]! } };
      const from = t.names[i32[c.actor(t.index, A_MB_FROM)]!] ?? '?';
      log(`mmu_notifier_invalidate: ${MMU_NOTIFY_EVENT_NAMES[d.range.event] ?? d.range.event} vpn ${d.range.start}..${d.range.end} for ${from}`);
      i32[c.actor(t.index, A_MB_RESULT)] = mmuNotifierDeliverLocal(m, d) ? 1 : 0;
    } finally {
      serving = false;
      Atomics.store(i32, st, MB_DONE);
      Atomics.notify(i32, st);
    }
  };
  const deliver = (mm2: Memmap, d: MmuNotifierDelivery): boolean => {
    if (d.owner === threadId) return mmuNotifierDeliverLocal(mm2, d);
    let target = -1;
    for (let k = 0; k < c.nrActors; k++) if (i32[c.actor(k, A_TID)] === d.owner) target = k;
    if (target < 0) throw new KernelBug(`mmu notifier: subscription ${d.subId} belongs to thread ${d.owner}, which runs no actor of this run`);
    const who = t.names[target] ?? `actor ${target}`;
    const lock = c.actor(target, A_MB_LOCK);
    const st = c.actor(target, A_MB_STATE);
    while (Atomics.compareExchange(i32, lock, 0, 1) !== 0) waitCtl(lock, 1, `mmu notifier mailbox of ${who}`);
    try {
      const a = c.actor(target, A_MB_ARGS);
      i32[c.actor(target, A_MB_FROM)] = t.index;
      i32[c.actor(target, A_MB_SUB)] = d.subId;
      [d.range.mm, d.range.start, d.range.end, d.range.event, d.range.flags, d.curSeq].forEach((v, k) => { i32[a + k] = v; });
      Atomics.store(i32, st, MB_PENDING);
      Atomics.notify(i32, st);
      while (Atomics.load(i32, st) !== MB_DONE) waitCtl(st, MB_PENDING, `mmu notifier callback of ${who}`);
      return i32[c.actor(target, A_MB_RESULT)] === 1;
    } finally {
      Atomics.store(i32, st, MB_IDLE);
      Atomics.store(i32, lock, 0);
      Atomics.notify(i32, lock);
    }
  };
  const prevDeliver = setMmuNotifierDeliver(deliver);

  const prevTask = setCurrent(task);
  const prevVariant = setVariant(parseVariant(t.variant));
  setYieldHook((label) => {
    const sig = faults.signalAt();
    if (sig) {
      task.sigpending = true;
      if (sig === 'fatal-signal') task.fatalSignal = true;
      log(`signal_generate: ${sig === 'fatal-signal' ? 'sig=9 (SIGKILL)' : 'sig=14 (SIGALRM)'} at ${label}`, sched.record(K_FAULT, sig, 0));
    }
    sched.point(label);
  });
  setFaultHook((point) => {
    if (!faults.fire(point)) return false;
    log(`pinlab_fault: ${point} fails`, sched.record(K_FAULT, point, 0));
    return true;
  });
  // free mode: the locks this actor takes, by trace position, for the report of a race that does not replay
  const lockLog = new Int32Array(2 * LOCK_LOG_MAX);
  let lockCount = 0;
  if (!t.det) {
    setLockTraceHook((a, i) => {
      if (a.buffer !== t.machine.sab) return; // a copy of the machine (quiescent checks)
      const k = 2 * (lockCount++ % LOCK_LOG_MAX);
      lockLog[k] = Atomics.load(c.i32, C_SEQ);
      lockLog[k + 1] = (a.byteOffset >>> 2) + i;
    });
  }
  setWaitHook(t.det ? (a, i, v, reason) => sched.block(a, i, v, reason) : (a, i, v) => {
    sched.serve(); // a waiting actor still answers callbacks others wait for
    if (sched.stopped()) throw new RunStopped('stopped');
    Atomics.wait(a, i, v, 2);
  });
  task.brokenSpinlocks = t.debug?.brokenSpinlocks === true;

  /** Every long-term pin the actor holds must be pinnable; a new one must not sit in a pageblock isolated throughout the op. */
  const checkHeld = (held: HeldPage[], before: Set<string> | null, isoBefore: Uint8Array | null): void => {
    for (const h of held) {
      if (!h.longterm || h.pfn < 0 || h.pfn >= m.nrFrames) continue;
      // the zero page rule: ZERO_PAGE is reserved kernel memory, never migrated or offlined (9afaf30f7a1a):
      // v5.13+ count it pinnable wherever it sits, v6.1+ unshare it before a long-term pin in a COW mapping
      if (m.flags[h.pfn]! & PG_zero) continue;
      const zid = m.pageZonenum(h.pfn);
      const mt = m.getPageblockMigratetype(h.pfn);
      const what = `pfn ${h.pfn} (vpn ${h.vpn}) is long-term pinned`;
      if (zid === ZONE_MOVABLE) violate(PROP_PINNABLE, `${what} in ZONE_MOVABLE: the block cannot go offline while the pin lasts`, `movable ${h.pfn}`);
      else if (mt === MIGRATE_CMA) violate(PROP_PINNABLE, `${what} in a CMA pageblock: cma_alloc() cannot have it back`, `cma ${h.pfn}`);
      else if (isoBefore && before && !before.has(heldKey(h)) && mt === MIGRATE_ISOLATE && isoBefore[h.pfn >>> m.pageblockOrder]) {
        violate(PROP_PINNABLE, `${what} in pageblock ${h.pfn >>> m.pageblockOrder}, which was MIGRATE_ISOLATE before the pin began and still is`, `isolate ${h.pfn}`);
      }
    }
  };

  /** Wait on a control-block counter until it reaches n (a barrier), blocking as the run's mode blocks. */
  const barrier = (slot: number, reason: string): boolean => {
    const last = Atomics.add(i32, slot, 1) === c.nrActors - 1;
    Atomics.notify(i32, slot);
    for (;;) {
      const v = Atomics.load(i32, slot);
      if (v >= c.nrActors) return last;
      waitCtl(slot, v, reason);
    }
  };
  /**
   * Quiescence: every actor has finished its program and none has torn down, so nothing is in flight and
   * every pin still held is a long-term one. The checks run on private copies of the machine (callbacks
   * to devices are not delivered there: an ODP device would comply; no other model subscribes):
   * the actor's own no-livelock re-runs, and, by the last actor to arrive, movable-offlinable with the pins held.
   * The last to arrive runs on without blocking: in deterministic mode it holds the CPU through its checks.
   */
  const quiesce = (a: AgentState): void => {
    if (a.quiescentWork?.()) Atomics.add(i32, C_QUIESCE_WORK, 1);
    const last = barrier(C_QUIESCE, 'quiescence: the other actors are still running their programs');
    const yh = setYieldHook(null);
    const fh = setFaultHook(null);
    const wh = setWaitHook(null);
    const dh = setDeliver(() => true);
    try {
      if (a.quiescent) {
        for (const f of a.quiescent(() => cloneMachine(m))) violate(f.property, f.message);
      }
      // with no pin held anywhere this is the end-of-run check's question, asked there
      if (last && t.checkOfflinable && vmstatRead(m, NR_PIN_ACQUIRED) !== vmstatRead(m, NR_PIN_RELEASED)) {
        for (const f of movableBlocksOfflinable(m, 100, t.scratch)) violate(PROP_OFFLINABLE, `with every actor idle and its long-term pins held, ${formatOfflinable(f)}`, `block ${f.block}`);
      }
    } finally {
      setYieldHook(yh);
      setFaultHook(fh);
      setWaitHook(wh);
      setDeliver(dh);
    }
    // deterministic mode: the last actor's check ran holding the CPU, before anyone could tear down;
    // the second barrier is needed only when another actor has its own checks still to run
    if (!t.det || Atomics.load(i32, C_QUIESCE_WORK) > 0) barrier(C_QUIESCE_DONE, 'quiescence: the other actors are still checking');
  };

  let actor: AgentState | null = null;
  try {
    sched.start();
    actor = createActor(t, m, sched, log);
    for (let k = 0; k < t.program.length; k++) {
      const op = t.program[k]!;
      sched.point(`op:${op.op}`);
      const isoBefore = t.checkIsolate ? isolatedPageblocks(m) : null;
      const before = isoBefore ? new Set(actor.inspect().held.map(heldKey)) : null;
      const seqOp = sched.record(K_OP, `op:${op.op}`, k);
      const args = describeOp(op);
      log(`pinlab_op: ${op.op}${args ? ` ${args}` : ''}`, seqOp);
      // the OOM killer took the process: it makes no more system calls (its devices are released at teardown, as exit closes the fds)
      const pins0 = task.pinsAcquired - task.pinsReleased;
      const r: AgentResult = mmIsGone(m, t.mm) ? { rc: -ESRCH, detail: 'the process was killed by the OOM killer', violation: undefined } : actor.step(op);
      // killed while in the kernel: the process exits on its way back to user space
      if (t.mm >= 0 && oomVictimExit(m, t.mm)) r.detail = `${r.detail ?? ''}${r.detail ? '; ' : ''}OOM-killed: the process exited`;
      const pinsLeft = task.pinsAcquired - task.pinsReleased - pins0;
      task.sigpending = false; // the signal is handled on the way back to user space
      task.fatalSignal = false;
      const seqRet = sched.record(K_RET, `op:${op.op}`, r.rc);
      res.ops.push({ i: k, op: op.op, rc: r.rc, detail: r.detail, seq: seqRet });
      log(`pinlab_ret: ${op.op} rc=${r.rc < 0 ? errname(r.rc) : r.rc}${r.detail ? ` ${r.detail}` : ''}`, seqRet);
      if (r.violation) violate(r.property ?? PROP_DMA, r.violation);
      const allowed = errnoAllowed(t.actorKind, op.op, r.rc);
      if (allowed === false) violate(PROP_ERRNO, `${op.op} returned ${errname(r.rc)}, which its kernel function never returns`, `${op.op} ${r.rc}`);
      if (r.rc < 0 && pinsLeft > 0) {
        violate(PROP_ERRNO, `${op.op} failed with ${errname(r.rc)} but left ${pinsLeft} pins behind (nr_foll_pin_acquired - nr_foll_pin_released grew by ${pinsLeft} on this thread): a failed pin must hold nothing`, `left ${op.op}`);
      }
      checkHeld(actor.inspect().held, before, isoBefore);
    }
    if (t.quiesce) quiesce(actor);
    sched.point('op:teardown');
    const held = actor.inspect().held;
    res.held = held.map((h) => ({ pfn: h.pfn, vpn: h.vpn, longterm: h.longterm }));
    checkHeld(held, null, null);
    const td = actor.teardown();
    res.teardown = { rc: td.rc, detail: td.detail };
    log(`pinlab_teardown: rc=${td.rc < 0 ? errname(td.rc) : td.rc}${td.detail ? ` ${td.detail}` : ''}`, sched.record(K_RET, 'op:teardown', td.rc));
    if (td.violation) violate(PROP_DMA, td.violation);
    sched.exit();
  } catch (e) {
    if (e instanceof RunStopped) res.stopped = e.message;
    else {
      const err = e as Error;
      res.error = { name: err?.name ?? 'Error', message: err?.message ?? String(e), stack: err?.stack };
      try { log(`pinlab_bug: ${res.error.name}: ${res.error.message}`, sched.record(K_VIOLATION, 'actor-threw', -1)); } catch { /* ring full or gone */ }
      sched.fail();
    }
  } finally {
    if (lockCount) res.locks = orderedLockLog(lockLog, lockCount);
    setLockTraceHook(null);
    setYieldHook(null);
    setFaultHook(null);
    setWaitHook(null);
    setMmuNotifierDeliver(prevDeliver);
    setCurrent(prevTask);
    setVariant(prevVariant);
  }
  return res;
}

function createActor(t: ActorTask, m: Memmap, sched: ActorScheduler, log: (s: string) => void): DeviceState {
  const rng = new Prng(t.seed ^ Math.imul(t.index + 1, 0x9e3779b1));
  const mapTable = Object.fromEntries(t.maps.map((x) => [x.name, x.vpn]));
  const env: DeviceEnv = {
    m, mm: t.mm, name: t.name.replace(/-(\d+)$/, '/$1'), bugs: new Set(t.bugs),
    rand: (n) => rng.below(n),
    yieldPoint: (label) => yieldPoint(label), // through this thread's hook (signals are delivered there)
    trace: (line) => log(line),
  };
  const agent = own(AGENTS, t.actorKind);
  if (agent) {
    const c = sched.c;
    const aenv: AgentEnv = {
      ...env, maps: t.maps, offlinePasses: t.offlinePasses,
      mapGen: (i) => Atomics.load(c.i32, c.mapgenBase + i),
      bumpMapGen: (i) => { Atomics.add(c.i32, c.mapgenBase + i, 1); },
    };
    return agent(aenv);
  }
  const model = own(DEVICE_MODELS, t.actorKind);
  if (!model) throw new Error(`unknown actor kind '${t.actorKind}'`);
  const dev = model.create(env);
  // generated device ops name process addresses as { map, off }: resolve them against this run's maps
  return { step: (op) => dev.step(resolveOp(op, mapTable)), inspect: () => dev.inspect(), teardown: () => dev.teardown() };
}
