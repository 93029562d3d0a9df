// The OOM killer under concurrency (mm/oom_kill.c, v6.12): one out_of_memory() at a time (oom_lock);
// a victim that has not exited yet is waited for, not joined by a second victim (oom_evaluate_task());
// the victim's memory goes when it exits. The user agent's children survive the OOM killer reaping
// one of them and a later fork reusing its mm slot.
import { boot } from '../../helpers';
import { bprmMmInit, doMmap, dupMm, PROT_READ, PROT_WRITE } from '../../../mm/mmap';
import { putUser } from '../../../mm/memory';
import { allocPages, NO_PAGE } from '../../../mm/page_alloc';
import { GFP_KERNEL, __GFP_NORETRY } from '../../../mm/gfp';
import { oomVictimExit, outOfMemory, MMF_OOM_VICTIM } from '../../../mm/oom_kill';
import { setCurrent, newTask, current } from '../../../mm/sched';
import { Memmap, H_OOM_LOCK, MM_USERS, MM_FLAGS, MM_PID } from '../../../mm/memmap';
import { mmBase } from '../../../mm/mm_types';
import { user as userModel } from '../../../harness/agents/user';

// no ZONE_MOVABLE: the processes' pages are kernel-zone memory, so a victim's exit gives the allocator room
const CMD = 'mem=1M sysctl.vm.min_free_kbytes=16';
const RW = PROT_READ | PROT_WRITE;

const saved = current();
afterEach(() => {
  setCurrent(saved);
});
const kills = () => current().oomKills; // the kernel log of the running task's allocations

/** A process with n written pages. */
function proc(m: Memmap, n: number): number {
  const mm = bprmMmInit(m);
  const v = doMmap(m, mm, { nrPages: n, prot: RW });
  for (let i = 0; i < n; i++) expect(putUser(m, mm, v + i, i)).toBe(i);
  return mm;
}

/** Take the kernel zones down to the min watermark. */
function exhaust(m: Memmap): void {
  while (allocPages(m, GFP_KERNEL | __GFP_NORETRY, 0) !== NO_PAGE);
}

const alive = (m: Memmap, mm: number): boolean => m.mms[mmBase(mm) + MM_USERS]! > 0;

describe('out_of_memory() and its callers', () => {
  it('while another CPU runs the OOM killer (oom_lock held), an allocation that needs it kills nobody and fails', () => {
    const m = boot(CMD, 'mini');
    const a = proc(m, 16);
    const b = proc(m, 16);
    exhaust(m);
    m.header[H_OOM_LOCK] = 1; // another CPU is inside out_of_memory()
    setCurrent(newTask(100, 'b', 1, b));
    expect(allocPages(m, GFP_KERNEL, 0)).toBe(NO_PAGE);
    expect(kills()).toHaveLength(0);
    expect([alive(m, a), alive(m, b)]).toEqual([true, true]);
    m.header[H_OOM_LOCK] = 0;
    expect(allocPages(m, GFP_KERNEL, 0)).not.toBe(NO_PAGE); // with the lock free it kills and gets memory
    expect(kills()).toMatchObject([{ mm: a, self: false }]);
  });

  it('a victim that has not exited yet is waited for: no second process is killed; once it exits, memory is there', () => {
    const m = boot(CMD, 'mini');
    const a = proc(m, 24);
    const b = proc(m, 8);
    exhaust(m);
    setCurrent(newTask(100, 'a', 1, a));
    expect(outOfMemory(m)).toBe(true); // a kills itself: marked, not reaped (it dies on its way out)
    expect(kills()).toMatchObject([{ mm: a, self: true }]);
    setCurrent(newTask(101, 'b', 2, b));
    expect(allocPages(m, GFP_KERNEL, 0)).toBe(NO_PAGE); // selection aborts while a is dying
    expect(kills()).toHaveLength(0);
    expect(alive(m, b)).toBe(true);
    expect(oomVictimExit(m, a)).toBe(true);
    expect(oomVictimExit(m, a)).toBe(false); // once
    expect(alive(m, a)).toBe(false);
    expect(allocPages(m, GFP_KERNEL, 0)).not.toBe(NO_PAGE);
    expect(kills()).toHaveLength(0);
  });
});

describe('the user agent and the OOM killer', () => {
  it('exit_child of a child the OOM killer reaped leaves alone the new child that took its mm slot', () => {
    const m = boot(CMD, 'mini');
    const parent = proc(m, 4);
    setCurrent(newTask(100, 'user', 1, parent));
    const env = {
      m,
      mm: parent,
      name: 'user/0',
      bugs: new Set<string>(),
      rand: () => 0,
      yieldPoint: () => undefined,
      trace: () => undefined,
      maps: [],
      mapGen: () => 0,
      bumpMapGen: () => undefined,
      offlinePasses: 8,
      procMm: parent,
    };
    const user = userModel.create(env);
    expect(user.step({ op: 'fork' }).rc).toBe(0);
    const child = 1 + parent; // the next free slot
    expect(alive(m, child)).toBe(true);
    // the OOM killer takes the child from another CPU and reaps it: the slot is free again
    m.mms[mmBase(child) + MM_FLAGS]! |= MMF_OOM_VICTIM;
    expect(oomVictimExit(m, child)).toBe(true);
    const other = dupMm(m, parent); // someone else's fork takes the slot
    expect(other).toBe(child);
    const pid = m.mms[mmBase(other) + MM_PID];
    expect(user.step({ op: 'exit_child' }).detail).toMatch(/already reaped/);
    expect(alive(m, other)).toBe(true);
    expect(m.mms[mmBase(other) + MM_PID]).toBe(pid);
  });
});
