// CPU affinity for case runners: each campaign runner (--jobs) binds itself and its actor workers to
// one CPU of the process's allowed set once its pool has run a few hundred tasks (ActorPool.bindNow());
// the workers start on every CPU to load their code (startWide(); a new thread takes its creator's mask,
// sched_setaffinity(2)). A case hands the CPU
// from one of its threads to the next hundreds of times (harness/scheduler.ts); bound, those hand-offs
// stay on one core and its caches, where the scheduler would otherwise spread one job's threads over
// both cores and make two jobs wait for each other (bench/README.md). Linux only, through taskset(1)
// on the thread's own id; anywhere else, or when it fails, a runner runs unbound: only time depends on
// this, never a result. Binding waits for the pool's first cases and then does not wait for taskset(1)
// (bindLater()): one run takes 7-20 ms, and a search whose first cases fail would pay several of them.
import * as fs from 'node:fs';
import { execFile, execFileSync } from 'node:child_process';

/** The CPUs this process may run on (Cpus_allowed_list of /proc/self/status), or null where unknown. */
export function allowedCpus(): number[] | null {
  return cpusAllowed('/proc/self/status');
}

/** The process's CPUs as they were when this module loaded, before anything here bound a thread. */
const PROCESS_CPUS = allowedCpus();

/**
 * Start threads (create()) so that they load their code on every CPU of the process, and hand create()
 * the CPU they are to bind to later: the runner's (setRunnerCpu()), or the one CPU the caller is bound
 * to, when it is (create() then runs with the caller's mask widened to the process's: a new thread takes
 * its creator's mask); else null, and nothing changes. Loading four actor workers' code on one core
 * took 230 ms against 140 (bench/README.md).
 */
export function startWide<T>(create: (cpu: number | null) => T): T {
  const mine = threadCpus();
  const bound = mine?.length === 1 && (PROCESS_CPUS?.length ?? 0) > 1;
  // a runner not bound yet (setRunnerCpu()): the threads start on every CPU as it runs now; the pool
  // binds them and the runner later (ActorPool.bindNow())
  if (runnerCpu !== null && !bound) return create(runnerCpu);
  const cpu = bound ? mine[0]! : null;
  if (cpu === null || !bindThisThread(PROCESS_CPUS!)) return create(null);
  try {
    return create(cpu);
  } finally {
    bindThisThread(cpu);
  }
}

/** The calling thread's kernel thread id (the last part of /proc/thread-self), or null. */
export function threadId(): number | null {
  try {
    const tid = Number(fs.readlinkSync('/proc/thread-self').split('/').pop());
    return Number.isInteger(tid) && tid > 0 ? tid : null;
  } catch {
    return null;
  }
}

/** taskset(1)'s arguments that bind the calling thread to a CPU (or a set), or null (no thread id). */
function tasksetArgs(cpu: number | readonly number[]): string[] | null {
  const tid = threadId();
  return tid === null ? null : ['-p', '-c', typeof cpu === 'number' ? String(cpu) : cpu.join(','), String(tid)];
}

/** The CPU this thread's cases run on, which it and its pool's workers bind to (ActorPool.bindNow()); or null. */
let runnerCpu: number | null = null;
/** This thread's bindLater() calls, chained: they apply in the order asked. */
let binding: Promise<boolean> = Promise.resolve(true);

/**
 * Name the CPU this thread (a campaign runner, a single run) runs its cases on, without binding to it
 * yet: startWide() starts the actor workers on every CPU, and the pool binds the thread and them to it
 * after its first tasks (ActorPool.bindNow()).
 */
export function setRunnerCpu(cpu: number | null): void {
  runnerCpu = cpu;
}

/**
 * Bind the calling thread to a CPU (or a set) without waiting for taskset(1); the thread's bindings
 * apply in the order asked. Resolves when this one has (false: not bound).
 */
export function bindLater(cpu: number | readonly number[]): Promise<boolean> {
  const args = tasksetArgs(cpu);
  if (!args) return Promise.resolve(false);
  binding = binding.then(
    () => new Promise<boolean>((resolve) => execFile('taskset', args, { timeout: 5_000 }, (err) => resolve(!err))),
  );
  return binding;
}

/** When this thread's bindLater() calls so far have applied. */
export function bindingSettled(): Promise<boolean> {
  return binding;
}

/** Bind the calling thread to a CPU (or a set); threads it creates from now on inherit it. False: not bound. */
export function bindThisThread(cpu: number | readonly number[]): boolean {
  const args = tasksetArgs(cpu);
  if (!args) return false;
  try {
    execFileSync('taskset', args, { stdio: 'ignore', timeout: 5_000 });
    return true;
  } catch {
    return false;
  }
}

/** The CPU the calling thread last ran on (field 39 of /proc/thread-self/stat), or null. */
export function currentCpu(): number | null {
  try {
    const stat = fs.readFileSync('/proc/thread-self/stat', 'utf8');
    // the fields after the command name, which is in parentheses and may hold spaces: field 3 is [0]
    const cpu = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[39 - 3]);
    return Number.isInteger(cpu) && cpu >= 0 ? cpu : null;
  } catch {
    return null;
  }
}

/**
 * A single runner (pinlab run, the mutation benchmark's searches): the CPU it is on now, when the
 * process may use more than one, or null (nothing to gain). Concurrent pinlab processes are then likely
 * on different CPUs, as the scheduler placed them.
 */
function currentRunnerCpu(): number | null {
  const allowed = allowedCpus();
  const cpu = currentCpu();
  return !allowed || allowed.length < 2 || cpu === null || !allowed.includes(cpu) ? null : cpu;
}

/**
 * Run fn as a runner on the CPU the calling thread is on now (currentRunnerCpu()): the thread and the
 * actor workers of the pool fn starts bind to it after the pool's first tasks (ActorPool.bindNow()).
 * Then the thread gets its mask back.
 */
export async function onCurrentCpu<T>(fn: () => Promise<T>): Promise<T> {
  const cpu = currentRunnerCpu();
  if (cpu === null || runnerCpu !== null) return fn();
  const before = threadCpus();
  setRunnerCpu(cpu);
  try {
    return await fn();
  } finally {
    setRunnerCpu(null);
    await bindingSettled();
    if (before && threadCpus()?.join() !== before.join()) await bindLater(before);
  }
}

/** The CPUs a thread's mask allows now (Cpus_allowed_list of its status), or null where unknown. */
export function threadCpus(tid: number | null = threadId()): number[] | null {
  return tid === null ? null : cpusAllowed(`/proc/self/task/${tid}/status`);
}

/** Cpus_allowed_list of a /proc status file, or null where unreadable. */
function cpusAllowed(statusFile: string): number[] | null {
  let status: string;
  try {
    status = fs.readFileSync(statusFile, 'utf8');
  } catch {
    return null;
  }
  const list = /^Cpus_allowed_list:\s*(\S+)/m.exec(status)?.[1];
  return list ? parseCpuList(list) : null;
}

function parseCpuList(list: string): number[] | null {
  const cpus: number[] = [];
  for (const part of list.split(',')) {
    const [lo, hi] = part.split('-').map(Number);
    if (lo === undefined || !Number.isInteger(lo)) return null;
    for (let c = lo; c <= (hi ?? lo); c++) cpus.push(c);
  }
  return cpus.length ? cpus : null;
}

/**
 * The CPUs for case runners 0..jobs-1, or none: runners are bound only when each can have a CPU of its
 * own (more jobs than CPUs are left to the scheduler). Runners take the allowed CPUs from the last one
 * down, leaving the first (where the main thread and interrupts usually run) to the last runner.
 */
export function runnerCpus(jobs: number, allowed: readonly number[] | null): number[] {
  return allowed && jobs >= 1 && jobs <= allowed.length ? allowed.slice(-jobs).reverse() : [];
}
