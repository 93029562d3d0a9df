// CPU affinity for case runners: each campaign runner (--jobs) binds itself to one CPU of the
// process's allowed set, and its actor workers bind to the same CPU once they have loaded their code
// (startWide(); a new thread takes its creator's mask, sched_setaffinity(2)). A case hands the CPU
// from one of its threads to the next hundreds of times (harness/scheduler.ts); bound, those hand-offs
// stay on one core and its caches, where the scheduler would otherwise spread one job's threads over
// both cores and make two jobs wait for each other (bench/README.md). Linux only, through taskset(1)
// on the thread's own id; anywhere else, or when it fails, a runner runs unbound: only time depends on
// this, never a result.
import * as fs from 'node:fs';
import { execFileSync } from 'node:child_process';

/** The CPUs this process may run on (Cpus_allowed_list of /proc/self/status), or null where unknown. */
export function allowedCpus(): number[] | null {
  return cpusAllowed('/proc/self/status');
}

/** The process's CPUs as they were when this module loaded, before anything here bound a thread. */
const PROCESS_CPUS = allowedCpus();

/**
 * Start threads (create()) so that they load their code on every CPU of the process and then bind
 * themselves to the one CPU the caller is bound to: create() runs with the caller's mask widened to the
 * process's (a new thread takes its creator's mask), and gets that CPU to hand to the threads, or null
 * when the caller is not bound to one CPU (then nothing changes). Loading four actor workers' code on
 * one core instead took 230 ms against 140 (bench/README.md).
 */
export function startWide<T>(create: (cpu: number | null) => T): T {
  const mine = threadCpus();
  const cpu = mine?.length === 1 && (PROCESS_CPUS?.length ?? 0) > 1 ? mine[0]! : null;
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

/** Bind the calling thread to a CPU (or a set); threads it creates from now on inherit it. False: not bound. */
export function bindThisThread(cpu: number | readonly number[]): boolean {
  const tid = threadId();
  if (tid === null) return false;
  const list = typeof cpu === 'number' ? String(cpu) : cpu.join(',');
  try {
    execFileSync('taskset', ['-p', '-c', list, String(tid)], { stdio: 'ignore', timeout: 5_000 });
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
 * A single runner (pinlab run, the mutation benchmark's searches): bind the calling thread, and so the
 * actor workers it starts later, to the CPU it is on now, when the process may use more than one.
 * Concurrent pinlab processes are then likely on different CPUs, as the scheduler placed them. The
 * CPU bound to, or null (nothing to gain, or not possible here).
 */
function bindToCurrentCpu(): number | null {
  const allowed = allowedCpus();
  const cpu = currentCpu();
  if (!allowed || allowed.length < 2 || cpu === null || !allowed.includes(cpu)) return null;
  return bindThisThread(cpu) ? cpu : null;
}

/** Run fn with the calling thread bound as bindToCurrentCpu() does, then give it back its mask. */
export async function onCurrentCpu<T>(fn: () => Promise<T>): Promise<T> {
  const before = threadCpus();
  const cpu = bindToCurrentCpu();
  try {
    return await fn();
  } finally {
    if (cpu !== null && before) bindThisThread(before);
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
