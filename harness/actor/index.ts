// One actor, as its worker thread runs it: attach to the machine and the run's control block, enter this
// thread's context (preemption points, seeded faults, waits, callbacks), run the program one op at a
// time - each op begins at a preemption point, like a system call entry - with the property checks of
// phase 'op' after each, meet the others at quiescence, tear down, and hand back what happened.
// Worker side only. faults.ts, mailbox.ts, checks.ts, quiescence.ts and create.ts hold the parts.
import type { ActorTask, ActorResult, ActorOp } from '../types';
import type { OpResult } from '../../devices/device';
import type { AgentState } from '../agents/agent';
import { Memmap, MM_USERS, MM_FLAGS } from '../../mm/memmap';
import { attachMachine } from '../../mm/mm_init';
import { mmBase } from '../../mm/mm_types';
import { MMF_OOM_VICTIM, oomVictimExit } from '../../mm/oom_kill';
import { newTask, Task } from '../../mm/sched';
import { parseVariant } from '../../mm/variants';
import { errname, ESRCH } from '../../mm/errno';
import { Control, K_OP, K_RET, K_FAULT, K_VIOLATION, C_SEQ } from '../schedctl';
import { ActorScheduler, RunStopped } from '../scheduler';
import { enterContext, leaveContext, ThreadContext } from '../context';
import { actorModel } from '../actors';
import { heldKey, isolatedPageblocks } from '../../properties/no_longterm_pin_in_movable';
import { FaultInjector } from './faults';
import { NotifierMailbox, CtlWait } from './mailbox';
import { ActorChecks } from './checks';
import { dmaIntegrity } from '../../properties/dma_integrity';
import { quiesce } from './quiescence';
import { createActor } from './create';
import { bugSitesSave, bugSitesRestore } from '../../mm/variants';
import { SnapshotLog } from '../report/snapshot';
import { kworkerRuns } from './kworker';

/** Tracepoint lines (mm_migrate_folio) an actor keeps: a pin of a large range migrates one folio a line. */
const TRACEPOINT_LINES_MAX = 16384;

/** Lock acquisitions an actor remembers in free mode (the most recent ones). */
const LOCK_LOG_MAX = 512;

function describeOp(op: ActorOp): string {
  return Object.entries(op)
    .filter(([k]) => k !== 'op')
    .map(([k, v]) => `${k}=${typeof v === 'object' ? JSON.stringify(v) : String(v)}`)
    .join(' ');
}

const showRc = (r: number): string => (r < 0 ? errname(r) : String(r));

/** The process is dead: exited, or chosen by the OOM killer (MMF_OOM_VICTIM). */
function mmIsGone(m: Memmap, mm: number): boolean {
  if (mm < 0) return false;
  const b = mmBase(mm);
  return m.mms[b + MM_USERS] === 0 || (m.mms[b + MM_FLAGS]! & MMF_OOM_VICTIM) !== 0;
}

export function runActor(t: ActorTask): ActorResult {
  return new ActorRun(t).run();
}

class ActorRun {
  private readonly m: Memmap;
  private readonly c: Control;
  private readonly sched: ActorScheduler;
  private readonly res: ActorResult;
  private readonly task: Task;
  private readonly faults: FaultInjector;
  private readonly checks: ActorChecks;
  private readonly mailbox: NotifierMailbox;
  private readonly lockLog = new Int32Array(2 * LOCK_LOG_MAX);
  private lockCount = 0;
  private tracepointLines = 0;
  /** machine snapshots after each op, for the HTML report (det mode only: the machine is still) */
  private readonly snaps: SnapshotLog | null;
  /** the errnos the kind declares per op (errno-contract) */
  private readonly errnos: Record<string, number[]> | null;

  constructor(private readonly t: ActorTask) {
    this.m = attachMachine(t.machine.shape, t.machine.sab);
    this.c = new Control(t.ctlShape, t.ctl);
    this.sched = new ActorScheduler(this.c, t.index, t.machine.sab, t.det);
    this.res = { kind: 'actor', name: t.name, index: t.index, ops: [], violations: [], tally: {}, log: [], held: [] };
    this.task = newTask(100 + t.index, t.name, t.cpu, t.mm);
    this.task.brokenSpinlocks = t.debug?.brokenSpinlocks === true;
    this.faults = new FaultInjector(t.faults);
    this.errnos = actorModel(t.actorKind)?.errnos ?? null;
    this.snaps = t.snapshots && t.det ? new SnapshotLog() : null;
    this.checks = new ActorChecks(t, this.sched, this.res, (text, seq) => this.log(text, seq));
    this.mailbox = new NotifierMailbox(this.c, t.index, t.names, this.waitCtl, (line) => this.log(line));
    this.sched.setServer(() => this.mailbox.serve(this.m));
  }

  /** A log line sits just before the next trace entry. */
  private log(text: string, seq = Atomics.load(this.c.i32, C_SEQ) - 0.5): void {
    this.res.log.push({ seq, text });
  }

  /** Wait while a control word holds value: a blocking decision (det), or serve and sleep a little (free). */
  private readonly waitCtl: CtlWait = (idx, value, reason) => {
    if (this.t.det) {
      this.sched.block(this.c.i32, idx, value, reason);
      return;
    }
    this.sched.serve();
    if (this.sched.stopped()) throw new RunStopped('stopped');
    Atomics.wait(this.c.i32, idx, value, 2);
  };

  /** This thread's context: the mm core's hooks into the scheduler, the fault plan and the mailbox. */
  private context(): Partial<ThreadContext> {
    const { t, sched, faults, task } = this;
    return {
      task,
      variant: parseVariant(t.variant),
      yieldHook: (label) => {
        const sig = faults.signalAt();
        if (sig) {
          task.sigpending = true;
          if (sig === 'fatal-signal') task.fatalSignal = true;
          const what = sig === 'fatal-signal' ? 'sig=9 (SIGKILL)' : 'sig=14 (SIGALRM)';
          this.log(`signal_generate: ${what} at ${label}`, sched.record(K_FAULT, sig, 0));
        }
        sched.point(label);
      },
      traceHook: (text) => {
        const n = ++this.tracepointLines;
        if (n <= TRACEPOINT_LINES_MAX) this.log(text);
        else if (n === TRACEPOINT_LINES_MAX + 1)
          this.log(`pinlab_trace: tracepoint lines past ${TRACEPOINT_LINES_MAX} dropped`);
      },
      faultHook: (point) => {
        if (!faults.fire(point)) return false;
        this.log(`pinlab_fault: ${point} fails`, sched.record(K_FAULT, point, 0));
        return true;
      },
      waitHook: t.det
        ? (a, i, v, reason) => sched.block(a, i, v, reason)
        : (a, i, v) => {
            sched.serve(); // a waiting actor still answers callbacks others wait for
            if (sched.stopped()) throw new RunStopped('stopped');
            Atomics.wait(a, i, v, 2);
          },
      // free mode: the locks this actor takes, by trace position, for the report of a race that does not replay
      lockTrace: t.det
        ? undefined
        : (a, i) => {
            if (a.buffer !== t.machine.sab) return; // a copy of the machine (quiescent checks)
            const k = 2 * (this.lockCount++ % LOCK_LOG_MAX);
            this.lockLog[k] = Atomics.load(this.c.i32, C_SEQ);
            this.lockLog[k + 1] = (a.byteOffset >>> 2) + i;
          },
      deliver: (m, d) => this.mailbox.deliver(m, d),
    };
  }

  run(): ActorResult {
    const saved = enterContext(this.context());
    bugSitesRestore({}); // this actor's own count (the thread ran others before)
    try {
      this.sched.start();
      const actor = createActor(
        this.t,
        this.m,
        this.c,
        (line) => this.log(line),
        (message) => this.checks.violate(dmaIntegrity.name, message),
      );
      for (let k = 0; k < this.t.program.length; k++) this.step(actor, k, this.t.program[k]!);
      if (this.t.quiesce)
        quiesce(
          { c: this.c, m: this.m, det: this.t.det, wait: this.waitCtl, checks: this.checks, scratch: this.t.scratch },
          actor,
        );
      this.teardown(actor);
      this.sched.exit();
    } catch (e) {
      this.failed(e);
    } finally {
      if (this.lockCount) this.res.locks = this.orderedLockLog();
      this.res.bugSites = bugSitesSave();
      if (this.snaps) this.res.snapshots = this.snaps.list;
      leaveContext(saved);
    }
    return this.res;
  }

  private step(actor: AgentState, k: number, op: ActorOp): void {
    const { t, m, sched, task, res } = this;
    sched.point(`op:${op.op}`);
    kworkerRuns(m, (text) => this.log(text));
    const isolatedBefore = t.checkIsolate ? isolatedPageblocks(m) : null;
    const heldBefore = isolatedBefore ? new Set(actor.inspect().held.map(heldKey)) : null;
    const args = describeOp(op);
    this.log(`pinlab_op: ${op.op}${args ? ` ${args}` : ''}`, sched.record(K_OP, `op:${op.op}`, k));
    const pins0 = task.pinsAcquired - task.pinsReleased;
    // the OOM killer took the process: it makes no more system calls (its devices are released at teardown, as exit
    // closes the fds)
    const r: OpResult = mmIsGone(m, t.mm)
      ? { rc: -ESRCH, detail: 'the process was killed by the OOM killer' }
      : actor.step(op);
    // killed while in the kernel: the process exits on its way back to user space
    if (t.mm >= 0 && oomVictimExit(m, t.mm))
      r.detail = `${r.detail ?? ''}${r.detail ? '; ' : ''}OOM-killed: the process exited`;
    const pinsLeft = task.pinsAcquired - task.pinsReleased - pins0;
    task.sigpending = false; // the signal is handled on the way back to user space
    task.fatalSignal = false;
    const seq = sched.record(K_RET, `op:${op.op}`, r.rc);
    res.ops.push({ i: k, op: op.op, rc: r.rc, detail: r.detail, seq });
    this.log(`pinlab_ret: ${op.op} rc=${showRc(r.rc)}${r.detail ? ` ${r.detail}` : ''}`, seq);
    this.snaps?.take(m, seq, t.index, `${t.name} ${op.op} rc=${showRc(r.rc)}`);
    this.checks.opResult(r);
    const held = actor.inspect().held;
    this.checks.op({
      m,
      actor: t.name,
      kind: t.actorKind,
      op,
      rc: r.rc,
      held,
      heldBefore,
      isolatedBefore,
      errnos: this.errnos,
      pinsLeft,
      checked: 0,
    });
  }

  private teardown(actor: AgentState): void {
    const { t, m, sched, res } = this;
    sched.point('op:teardown');
    const held = actor.inspect().held;
    res.held = held.map((h) => ({ pfn: h.pfn, vpn: h.vpn, longterm: h.longterm }));
    this.checks.op({
      m,
      actor: t.name,
      kind: t.actorKind,
      op: null,
      rc: 0,
      held,
      heldBefore: null,
      isolatedBefore: null,
      errnos: null,
      pinsLeft: 0,
      checked: 0,
    });
    const td = actor.teardown();
    res.teardown = { rc: td.rc, detail: td.detail };
    this.snaps?.take(m, Atomics.load(this.c.i32, C_SEQ), t.index, `${t.name} teardown rc=${showRc(td.rc)}`);
    this.log(
      `pinlab_teardown: rc=${showRc(td.rc)}${td.detail ? ` ${td.detail}` : ''}`,
      sched.record(K_RET, 'op:teardown', td.rc),
    );
    this.checks.opResult(td);
  }

  private failed(e: unknown): void {
    if (e instanceof RunStopped) {
      this.res.stopped = e.message;
      return;
    }
    const err = e as Error;
    this.res.error = { name: err?.name ?? 'Error', message: err?.message ?? String(e), stack: err?.stack };
    try {
      this.log(
        `pinlab_bug: ${this.res.error.name}: ${this.res.error.message}`,
        this.sched.record(K_VIOLATION, 'actor-threw', -1),
      );
    } catch {
      /* ring full or gone */
    }
    this.sched.fail();
  }

  /** The lock log ring, oldest first, as [seq, word, seq, word, ...]. */
  private orderedLockLog(): number[] {
    const n = Math.min(this.lockCount, LOCK_LOG_MAX);
    const out: number[] = [];
    for (let j = this.lockCount - n; j < this.lockCount; j++)
      out.push(this.lockLog[2 * (j % LOCK_LOG_MAX)]!, this.lockLog[2 * (j % LOCK_LOG_MAX) + 1]!);
    return out;
  }
}
