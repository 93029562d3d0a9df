// Kernel agents: actors that are not devices but drive the mm core the way user space and kernel
// threads do. Each has the device-model shape (devices/device.ts: step / inspect / teardown), so to
// the harness a device model is just another actor kind.
//
//   user     the process: faults and writes its memory, munmap/remap/MADV_DONTNEED, fork and exit of children;
//            refault (MADV_DONTNEED and touch again) only in the longterm-pin-split-cma suite
//   pinner   pin_user_pages(_fast)(FOLL_LONGTERM [| FOLL_WRITE]) on the process, DMA into the pinned frames, unpin;
//            or a short-term FOLL_PIN held across one preemption point, as O_DIRECT holds it for the I/O
//   hotplug  writes to /sys/devices/system/memory/memoryN/state: offline, online[_kernel|_movable]
//   cma      a cma_alloc() in progress: holds a CMA memory block MIGRATE_ISOLATE across ops (isolate, undo_isolate)
//
// Plus misbehaving actors for the harness's own reliability tests (test-throw, test-exit, test-spin,
// test-lock, test-clock): a simulator bug, a dying worker, a livelock, a deadlock, hidden
// nondeterminism; and `yielder`, which only reaches preemption points (the scheduler benchmark).
import type { DeviceEnv, DeviceState, OpResult, OpField } from '../devices/device';
import type { Memmap as MemmapT } from '../mm/memmap';
import type { ActorOp, MapInfo } from './types';
import { Memmap, MB_STRIDE, MB_ZONE, H_HOTPLUG_LOCK, H_MAGIC, MM_USERS, MM_PID } from '../mm/memmap';
import { mmBase, ptlLock, ptlUnlock } from '../mm/mm_types';
import { atomicRead } from '../mm/atomic';
import { mutexLock, mutexUnlock, waitWhileEqual } from '../mm/locking';
import { current } from '../mm/sched';
import { getUser, putUser, followPte } from '../mm/memory';
import { doMunmap, doMmap, doMadvise, dupMm, exitMmap, MADV_DONTNEED, PROT_READ, PROT_WRITE } from '../mm/mmap';
import { pinUserPages, pinUserPagesFast, unpinUserPagesDirtyLock, newPinReport, FOLL_WRITE, FOLL_LONGTERM, PinReport } from '../mm/gup';
import { stateStore, blockPresent, stateShow, blockStartPfn, OfflineReport } from '../mm/memory_hotplug';
import { findVma } from '../mm/memory';
import { VMA_FLAGS } from '../mm/memmap';
import { VM_READ, VM_WRITE, mmapReadLock, mmapReadUnlock } from '../mm/mm_types';
import { startIsolatePageRange, undoIsolatePageRange } from '../mm/page_isolation';
import { errname, EINVAL, EAGAIN, EBUSY, EINTR, ENOMEM, EFAULT, ENODEV } from '../mm/errno';
import { folioMaybeDmaPinned } from '../mm/rmap';
import { folioIsLongtermPinnable } from '../mm/pinnable';
import { PG_lru } from '../mm/memmap';
import { zoneName, ZONE_MOVABLE, MIGRATE_CMA } from '../mm/mmzone';
import { dmaTargetViolation, deviceWrite } from '../devices/common';

/**
 * What an agent gets besides the DeviceEnv: the process's mappings and their generation words, a
 * seqcount: odd while the user agent unmaps or replaces pages of the mapping, bumped again after.
 */
export interface AgentEnv extends DeviceEnv {
  maps: MapInfo[];
  mapGen(i: number): number;
  bumpMapGen(i: number): void;
  offlinePasses: number;
}

/** Run fn with mapping i's generation odd (an unmap in progress), then even again. */
function unmapping<T>(env: AgentEnv, i: number, fn: () => T): T {
  env.bumpMapGen(i);
  try {
    return fn();
  } finally {
    env.bumpMapGen(i);
  }
}

/** An op's result; `property` names what a violation breaks (default dma-integrity). */
export type AgentResult = OpResult & { property?: string };

export const PROP_ERRNO = 'errno-contract';

/** A finding of a check an agent runs on a quiescent copy of the machine (harness/actor.ts). */
export interface QuiescentFinding { property: string; message: string }

export interface AgentState extends DeviceState {
  /**
   * With every actor between ops (nothing in flight), re-run on a private copy of the machine what
   * ran out of its budget during the run: still no progress with nobody else running is a livelock.
   */
  quiescent?(copy: () => MemmapT): QuiescentFinding[];
  /** how many re-checks quiescent() has queued (0: nothing to run) */
  quiescentWork?(): number;
}

export type AgentFactory = (env: AgentEnv) => AgentState;

/**
 * errno-contract: the errnos each agent op can return - its kernel function's, plus -ESRCH (the OOM
 * killer took the process) and -EINVAL for an op the agent does not know.
 */
export const AGENT_ERRNOS: Record<string, Record<string, number[]>> = {
  user: {
    fork: [-ENOMEM, -EAGAIN], // dup_mm(); -EAGAIN: pinlab's child limit (as RLIMIT_NPROC)
    exit_child: [],
    touch: [-EFAULT, -ENOMEM], // handle_mm_fault(): VM_FAULT_SIGSEGV / VM_FAULT_OOM
    write: [-EFAULT, -ENOMEM],
    munmap: [-EINVAL, -ENOMEM], // do_vmi_munmap(): split_vma() can fail with -ENOMEM
    dontneed: [-EINVAL, -ENOMEM], // madvise_dontneed_free()
    remap: [-EINVAL, -ENOMEM],
    refault: [-EINVAL, -ENOMEM, -EFAULT], // madvise_dontneed_free(), then handle_mm_fault() per page
  },
  pinner: {
    // __gup_longterm_locked(): -EFAULT, -ENOMEM, -EINTR (fatal signal, or pinlab's retry budget); -EBUSY: the agent's slots are full
    pin: [-EFAULT, -ENOMEM, -EINTR, -EBUSY],
    unpin: [],
    dma: [],
  },
  hotplug: {
    // memory_subsys_offline() -> offline_pages(): -EBUSY (unmovable, isolation), -EINTR (signal), -EINVAL, -ENOMEM
    offline: [-EBUSY, -EINTR, -EINVAL, -ENOMEM, -ENODEV],
    online: [-EINVAL, -EBUSY, -ENOMEM, -ENODEV],
  },
  cma: {
    isolate: [-EBUSY], // alloc_contig_range() -> start_isolate_page_range(): an unmovable or already isolated pageblock
    undo_isolate: [],
  },
};

/**
 * The fields of each agent kind's ops (the regression-file schema, harness/case_schema.ts, is built from
 * this): 'map' names a mapping of the case (required), 'nat' a whole number >= 0 (page and block
 * numbers are taken modulo the mapping's size and the number of blocks), 'bool' a flag.
 */
const RANGE: Record<string, OpField> = { map: 'map', page: 'nat', pages: 'nat' };
export const AGENT_OPS: Record<string, Record<string, Record<string, OpField>>> = {
  user: {
    touch: { map: 'map', page: 'nat', write: 'bool', value: 'nat' }, write: { map: 'map', page: 'nat', value: 'nat' },
    munmap: RANGE, dontneed: RANGE, refault: { ...RANGE, value: 'nat' }, remap: { map: 'map' }, fork: {}, exit_child: {},
  },
  pinner: {
    pin: { ...RANGE, fast: 'bool', write: 'bool', longterm: 'bool' }, unpin: { slot: 'nat' },
    dma: { slot: 'nat', page: 'nat', value: 'nat' },
  },
  hotplug: { offline: { block: 'nat' }, online: { block: 'nat', type: ['online', 'online_kernel', 'online_movable'] } },
  cma: { isolate: { block: 'nat' }, undo_isolate: { slot: 'nat' } },
  'test-throw': { noop: {}, throw: { why: 'string' } },
  'test-exit': { noop: {}, exit: {} },
  'test-spin': { noop: {}, spin: { ms: 'nat' } },
  'test-lock': { lock: {}, unlock: {}, wait: {}, yield: {} },
  'test-clock': { tick: {} },
  yielder: { yield: { n: 'nat' } },
};

/** Agents hold at most this many pins / children at once (ops beyond it fail with -EBUSY / -EAGAIN). */
export const PINNER_SLOTS_MAX = 8;
export const USER_CHILDREN_MAX = 2;

function rc(r: number, detail?: string): OpResult {
  return detail === undefined ? { rc: r } : { rc: r, detail };
}

function errOr(r: number, ok: string): string {
  return r < 0 ? errname(r) : ok;
}

function mapOf(env: AgentEnv, name: unknown): { map: MapInfo; i: number } | null {
  const i = env.maps.findIndex((x) => x.name === name);
  return i < 0 ? null : { map: env.maps[i]!, i };
}

function num(op: ActorOp, field: string, def = 0): number {
  const v = op[field];
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0 ? v : def;
}

/** Page range [vpn, vpn + n) inside the mapping: page and pages are taken modulo its size. */
function range(map: MapInfo, op: ActorOp): { vpn: number; n: number } {
  const off = num(op, 'page') % map.pages;
  return { vpn: map.vpn + off, n: Math.max(1, Math.min(num(op, 'pages', 1), map.pages - off)) };
}

// ---------------------------------------------------------------------------------------------

/** The process itself (a VMM or a verbs application): its own memory operations. */
export const userAgent: AgentFactory = (env) => {
  const { m, mm } = env;
  // a child is its mm slot and pid: the OOM killer may reap a child meanwhile, and a later fork take its slot
  const children: { mm: number; pid: number }[] = [];
  const exitChild = (c: { mm: number; pid: number }): string => {
    const b = mmBase(c.mm);
    if (atomicRead(m.mms, b + MM_USERS) === 0 || m.mms[b + MM_PID] !== c.pid) return `child pid ${c.pid} was already reaped by the OOM killer`;
    exitMmap(m, c.mm);
    return `child mm ${c.mm} exited`;
  };
  const step = (op: ActorOp): OpResult => {
    if (op.op === 'fork') {
      if (children.length >= USER_CHILDREN_MAX) return rc(-EAGAIN, 'too many children');
      const child = dupMm(m, mm);
      if (child >= 0) children.push({ mm: child, pid: m.mms[mmBase(child) + MM_PID]! });
      return rc(child < 0 ? child : 0, errOr(child, `child mm ${child}`));
    }
    if (op.op === 'exit_child') {
      const child = children.shift();
      if (child === undefined) return rc(0, 'no child');
      return rc(0, exitChild(child));
    }
    const mp = mapOf(env, op.map);
    if (!mp) return rc(-EINVAL, `no mapping ${String(op.map)}`);
    const { vpn, n } = range(mp.map, op);
    switch (op.op) {
      case 'touch': {
        const write = op.write === true;
        const r = write ? putUser(m, mm, vpn, num(op, 'value', vpn)) : getUser(m, mm, vpn);
        return rc(r < 0 ? r : 0, `${write ? 'write' : 'read'} vpn ${vpn}: ${errOr(r, String(r))}`);
      }
      case 'write': {
        const r = putUser(m, mm, vpn, num(op, 'value'));
        return rc(r < 0 ? r : 0, `vpn ${vpn} = ${errOr(r, String(r))}`);
      }
      case 'munmap': {
        const r = unmapping(env, mp.i, () => doMunmap(m, mm, vpn, n));
        return rc(r, `vpn ${vpn} +${n}: ${errOr(r, 'unmapped')}`);
      }
      case 'dontneed': {
        const r = unmapping(env, mp.i, () => doMadvise(m, mm, vpn, n, MADV_DONTNEED));
        return rc(r, `vpn ${vpn} +${n}: ${errOr(r, 'zapped')}`);
      }
      case 'refault': {
        // MADV_DONTNEED then touch each page again (a balloon or allocator handing memory back and
        // reusing it): inside a THP, zap_pmd_range() splits the PMD and the hole refills with small pages
        const r = unmapping(env, mp.i, () => doMadvise(m, mm, vpn, n, MADV_DONTNEED));
        if (r < 0) return rc(r, `vpn ${vpn} +${n}: ${errname(r)}`);
        for (let k = 0; k < n; k++) {
          const t = putUser(m, mm, vpn + k, num(op, 'value', vpn + k));
          if (t < 0) return rc(t, `vpn ${vpn} +${n}: zapped, refault of vpn ${vpn + k}: ${errname(t)}`);
        }
        return rc(0, `vpn ${vpn} +${n}: zapped and faulted in again`);
      }
      case 'remap': {
        const r = unmapping(env, mp.i, () => {
          const u = doMunmap(m, mm, mp.map.vpn, mp.map.pages);
          return u === 0 ? doMmap(m, mm, { nrPages: mp.map.pages, vpn: mp.map.vpn, prot: PROT_READ | PROT_WRITE }) : u;
        });
        return rc(r < 0 ? r : 0, `${mp.map.name} at vpn ${mp.map.vpn}: ${errOr(r, 'mapped afresh')}`);
      }
      default: return rc(-EINVAL, `unknown op ${op.op}`);
    }
  };
  return {
    step,
    inspect: () => ({ held: [], accounting: { children: children.length } }),
    teardown: () => {
      const n = children.length;
      while (children.length) exitChild(children.shift()!);
      return rc(n, `${n} children exited`);
    },
  };
};

// ---------------------------------------------------------------------------------------------

/** gen: the mapping's generation over the whole pin (even, unchanged), or -1 when an unmap raced with it */
interface Pin { map: number; vpn: number; pfns: number[]; gen: number; write: boolean }

/** A long-term pin that ran out of its retry budget (outcome no-progress), to re-run on a quiescent copy. */
interface StuckPin { vpn: number; n: number; flags: number; fast: boolean }

/** Why a pin or migration could not finish; 'pinned' and 'no target memory' block it legitimately. */
function failureReasons(m: MemmapT, failures: { pfn: number; why: string }[]): { legit: boolean; text: string } {
  let legit = false;
  const parts: string[] = [];
  for (const f of failures.slice(0, 3)) {
    const pinned = f.pfn >= 0 && f.pfn < m.nrFrames && folioMaybeDmaPinned(m, m.compoundHead(f.pfn));
    if (pinned || /no target memory/.test(f.why)) legit = true;
    parts.push(`pfn ${f.pfn}: ${f.why}${pinned ? ' (DMA-pinned)' : ''}`);
  }
  return { legit, text: parts.join('; ') || 'no failure recorded' };
}

/** The pages of a range that are not long-term pinnable, with what keeps them from migrating. */
function describeUnpinnable(m: MemmapT, mm: number, vpn: number, n: number): string {
  const out: string[] = [];
  ptlLock(m, mm);
  try {
    for (let k = 0; k < n && out.length < 3; k++) {
      const t = followPte(m, mm, vpn + k);
      if (!t || t.pfn < 0) continue;
      const head = m.compoundHead(t.pfn);
      if (folioIsLongtermPinnable(m, head)) continue;
      out.push(`pfn ${t.pfn} (${zoneName(m.pageZonenum(t.pfn))}${m.flags[head]! & PG_lru ? '' : ', not on the LRU'}, refcount ${m.refcount[head]}) cannot be isolated or moved`);
    }
  } finally {
    ptlUnlock(m, mm);
  }
  return out.join('; ') || 'every page is pinnable now';
}

function describePin(report: PinReport): string {
  return `${report.outcome}${report.migrated ? `, ${report.migrated} migrated` : ''}${report.retries ? `, ${report.retries} retries` : ''}`;
}

/**
 * A long-term pinner calling mm/gup.ts directly (the pattern of vfio_pin_pages_remote / ib_umem_get
 * without their accounting): pin, DMA through the frames captured at pin time, unpin dirty.
 * A DMA checks the pinning promise: the frame still carries a pin, and, unless the process unmapped
 * or replaced the range since (its generation word), the process still maps that very frame.
 */
export const pinnerAgent: AgentFactory = (env) => {
  const { m, mm } = env;
  const pins: Pin[] = [];
  const stuck: StuckPin[] = [];
  const held = () => pins.flatMap((p) => p.pfns.map((pfn, k) => ({ iova: 0, vpn: p.vpn + k, pfn, longterm: true })));
  const release = (p: Pin): number => {
    unpinUserPagesDirtyLock(m, p.pfns, p.pfns.length, p.write);
    return p.pfns.length;
  };
  const step = (op: ActorOp): OpResult => {
    switch (op.op) {
      case 'pin': {
        const mp = mapOf(env, op.map);
        if (!mp) return rc(-EINVAL, `no mapping ${String(op.map)}`);
        if (pins.length >= PINNER_SLOTS_MAX) return rc(-EBUSY, 'all pin slots in use');
        const { vpn, n } = range(mp.map, op);
        const gen = env.mapGen(mp.i);
        const pages: number[] = new Array(n).fill(-1);
        const report = newPinReport();
        const fast = op.fast === true;
        const flags = (op.write === false ? 0 : FOLL_WRITE) | (op.longterm === false ? 0 : FOLL_LONGTERM);
        const gaveUp = current().gupFaultRetriesExhausted;
        const r = (fast ? pinUserPagesFast : pinUserPages)(m, mm, vpn, n, flags, pages, report);
        const how = describePin(report);
        const call = `${fast ? 'pin_user_pages_fast' : 'pin_user_pages'}(${flags & FOLL_LONGTERM ? 'FOLL_LONGTERM' : 'short-term'}${flags & FOLL_WRITE ? '|FOLL_WRITE' : ''}) vpn ${vpn} +${n}`;
        if (report.outcome === 'no-progress' && stuck.length < 4) stuck.push({ vpn, n, flags, fast });
        if (!(flags & FOLL_LONGTERM)) {
          // a short-term pin (O_DIRECT): held across the I/O, one preemption point, then released dirty
          if (r <= 0) return rc(r, `${call}: ${errOr(r, 'nothing pinned')} (${how})`);
          env.yieldPoint('pinner:short-term-io');
          unpinUserPagesDirtyLock(m, pages, r, (flags & FOLL_WRITE) !== 0);
          return rc(r, `${call}: ${r} pinned for the I/O and released`);
        }
        const stable = gen % 2 === 0 && env.mapGen(mp.i) === gen; // no unmap of the mapping overlapped the pin
        const got = r > 0 ? pages.slice(0, r).filter((p) => p >= 0) : [];
        if (got.length) pins.push({ map: mp.i, vpn, pfns: got, gen: stable ? gen : -1, write: (flags & FOLL_WRITE) !== 0 });
        if (r > n || got.length < r) {
          // __gup_longterm_locked() returns the number of pages it pinned, never more (R9)
          return { rc: r, detail: `${call}: returned ${r} for ${n} requested, ${got.length} pages filled in (${how})`, property: PROP_ERRNO,
            violation: `pin_user_pages vpn ${vpn} +${n} returned ${r} but pinned ${got.length} pages: the caller would use ${r - got.length} pages it does not hold` } as AgentResult;
        }
        // (not when the walk gave up faulting a page in: pinlab's retry bound, docs/simplifications.md)
        if (r === -EFAULT && stable && flags & FOLL_LONGTERM && current().gupFaultRetriesExhausted === gaveUp) {
          // __get_user_pages(): -EFAULT for the first page means no VMA or check_vma_flags() refused it;
          // an anonymous R/W mapping nobody unmapped during the pin faults in (or migrates) instead (R15)
          mmapReadLock(m, mm);
          const vb = findVma(m, mm, vpn);
          const ok = vb >= 0 && (m.vmas[vb + VMA_FLAGS]! & (flags & FOLL_WRITE ? VM_WRITE : VM_READ)) !== 0;
          mmapReadUnlock(m, mm);
          // and still nobody unmapped or remapped it: the VMA read above is the one the pin saw
          if (ok && env.mapGen(mp.i) === gen) {
            return { rc: r, detail: `${call}: -EFAULT (${how})`, property: PROP_ERRNO,
              violation: `pin_user_pages vpn ${vpn} +${n} returned -EFAULT, but a VMA the pin may access maps vpn ${vpn} and nothing unmapped it during the pin: -EFAULT means a bad address` } as AgentResult;
          }
        }
        const where = r > 0 ? ` pfn ${pages.slice(0, r).map((p) => `${p}(${zoneName(m.pageZonenum(p))})`).join(',')}` : '';
        return rc(r, `${call}: ${errOr(r, `${r} pinned`)} (${how})${where}`);
      }
      case 'unpin': {
        if (!pins.length) return rc(0, 'nothing pinned');
        const p = pins.splice(num(op, 'slot') % pins.length, 1)[0]!;
        return rc(release(p), `unpin_user_pages_dirty_lock vpn ${p.vpn} +${p.pfns.length}`);
      }
      case 'dma': {
        if (!pins.length) return rc(0, 'nothing pinned');
        const p = pins[num(op, 'slot') % pins.length]!;
        const k = num(op, 'page') % p.pfns.length;
        const pfn = p.pfns[k]!;
        const vpn = p.vpn + k;
        let violation = dmaTargetViolation(m, pfn, `pinner DMA to vpn ${vpn}`);
        if (!violation && p.gen >= 0 && env.mapGen(p.map) === p.gen) {
          ptlLock(m, mm);
          const t = followPte(m, mm, vpn);
          ptlUnlock(m, mm);
          // a migration entry for our own frame is a migration that will fail (the pin holds a reference)
          if (t && t.pfn !== pfn && env.mapGen(p.map) === p.gen) {
            violation = `vpn ${vpn} is long-term pinned at pfn ${pfn}, but the process now maps pfn ${t.pfn}${t.migrating ? ' (a migration entry)' : ''}: the device DMAs where the process no longer looks`;
          }
        }
        if (!p.write) return { rc: 0, detail: `DMA read pfn ${pfn} (vpn ${vpn}) = ${Atomics.load(m.content, pfn)} (a read-only pin)`, violation };
        deviceWrite(m, pfn, num(op, 'value'));
        return { rc: 0, detail: `DMA write pfn ${pfn} (vpn ${vpn}) = ${num(op, 'value')}`, violation };
      }
      default: return rc(-EINVAL, `unknown op ${op.op}`);
    }
  };
  return {
    step,
    inspect: () => ({ held: held(), accounting: { pinned: pins.reduce((a, p) => a + p.pfns.length, 0) } }),
    teardown: () => {
      let n = 0;
      while (pins.length) n += release(pins.pop()!);
      return rc(n, `${n} pages unpinned`);
    },
    quiescentWork: () => stuck.length,
    quiescent: (copyOf) => stuck.map((s) => {
      const copy = copyOf();
      const pages: number[] = new Array(s.n).fill(-1);
      const report = newPinReport();
      const r = (s.fast ? pinUserPagesFast : pinUserPages)(copy, mm, s.vpn, s.n, s.flags, pages, report);
      if (report.outcome !== 'no-progress') return null;
      const why = report.failures.length ? failureReasons(copy, report.failures) : { text: describeUnpinnable(copy, mm, s.vpn, s.n) };
      return { property: PROP_LIVELOCK, message: `pin_user_pages vpn ${s.vpn} +${s.n} made no progress (${report.retries} rounds, ${errOr(r, String(r))}) ` +
        `and still makes none with every other actor idle: ${why.text}` };
    }).filter((x): x is QuiescentFinding => x !== null),
  };
};

export const PROP_LIVELOCK = 'no-livelock';

// ---------------------------------------------------------------------------------------------

/**
 * The memory hotplug agent: writes memoryN/state of the hot-pluggable blocks - those in ZONE_MOVABLE
 * when the run starts (every block on a machine without one), taken modulo their number. Boot memory of the kernel zones is left alone: on a
 * miniature machine, offlining it leaves the kernel zones below min_free_kbytes' 128K floor and every
 * case ends in an OOM panic that says nothing about pinning (docs/simplifications.md).
 */
export const hotplugAgent: AgentFactory = (env) => {
  const { m } = env;
  const all: number[] = [];
  for (let b = 0; b < m.nrBlocks; b++) if (blockPresent(m, b)) all.push(b);
  const movable = all.filter((b) => m.blocks[b * MB_STRIDE + MB_ZONE] === ZONE_MOVABLE);
  const present = movable.length ? movable : all; // a machine without ZONE_MOVABLE: any block
  const stuck = new Set<number>(); // blocks whose offline ran out of its pass budget
  const step = (op: ActorOp): OpResult => {
    if (!present.length) return rc(-EINVAL, 'no memory blocks');
    const b = present[num(op, 'block') % present.length]!;
    const zone = m.blocks[b * MB_STRIDE + MB_ZONE]!;
    if (op.op === 'offline') {
      const report: OfflineReport = { reason: '', pfn: -1, passes: 0, failures: [] };
      const r = stateStore(m, b, 'offline', { passesMax: env.offlinePasses, report });
      if (r === -EINTR && /budget/.test(report.reason)) stuck.add(b);
      const why = r ? ` (${report.reason}${report.pfn >= 0 ? ` at pfn ${report.pfn}` : ''}, ${report.passes} passes)` : '';
      return rc(r, `memory${b} (${zone >= 0 ? zoneName(zone) : 'no zone'}) offline: ${errOr(r, 'offline')}${why}`);
    }
    if (op.op === 'online') {
      const type = typeof op.type === 'string' ? op.type : 'online';
      const r = stateStore(m, b, type);
      return rc(r, `memory${b} ${type}: ${errOr(r, stateShow(m, b))}`);
    }
    return rc(-EINVAL, `unknown op ${op.op}`);
  };
  const quiescent = (copyOf: () => MemmapT): QuiescentFinding[] => {
    const out: QuiescentFinding[] = [];
    for (const b of stuck) {
      const copy = copyOf();
      if (stateShow(copy, b) !== 'online') continue;
      const report: OfflineReport = { reason: '', pfn: -1, passes: 0, failures: [] };
      const r = stateStore(copy, b, 'offline', { passesMax: env.offlinePasses * 4, report });
      if (r !== -EINTR) continue; // went offline, or failed for a reason it reports at once
      const why = failureReasons(copy, report.failures);
      if (why.legit) continue; // a pin or a full machine blocks it: offline_pages() would wait for the holder
      out.push({ property: PROP_LIVELOCK, message: `memory${b} offline ran out of its ${env.offlinePasses}-pass budget and, with every other actor idle, ` +
        `still makes no progress in ${report.passes} passes: ${why.text}` });
    }
    return out;
  };
  return { step, inspect: () => ({ held: [], accounting: {} }), teardown: () => rc(0), quiescent, quiescentWork: () => stuck.size };
};

/** Isolations the cma agent holds at once (isolate beyond it fails with -EBUSY). */
export const CMA_ISOLATIONS_MAX = 2;

/**
 * A cma_alloc() in progress: alloc_contig_range() holds the range MIGRATE_ISOLATE from
 * start_isolate_page_range() until undo_isolate_page_range() while it migrates the pages out, which
 * can take long; here the window spans the agent's ops (isolate ... undo_isolate), so other actors run
 * inside it. Only CMA memory blocks in the kernel zones (a block with a ZONE_MOVABLE page is excluded:
 * a pin there breaks no-longterm-pin-in-movable anyway, and an isolated pageblock there would no
 * longer look like CMA to movable-offlinable's exemption). The migration itself is not modelled.
 */
export const cmaAgent: AgentFactory = (env) => {
  const { m } = env;
  const blocks: number[] = [];
  for (let b = 0; b < m.nrBlocks; b++) {
    if (!blockPresent(m, b)) continue;
    const start = blockStartPfn(m, b);
    let cma = true;
    for (let pfn = start; pfn < start + m.blockPages && cma; pfn += m.pageblockNrPages) {
      cma = m.getPageblockMigratetype(pfn) === MIGRATE_CMA && m.pageZonenum(pfn) !== ZONE_MOVABLE;
    }
    if (cma) blocks.push(b);
  }
  const held: number[] = []; // blocks this agent holds isolated, oldest first
  const undo = (b: number): void => {
    const start = blockStartPfn(m, b);
    undoIsolatePageRange(m, start, start + m.blockPages, MIGRATE_CMA);
  };
  const step = (op: ActorOp): OpResult => {
    if (op.op === 'isolate') {
      if (!blocks.length) return rc(0, 'no CMA memory block in a kernel zone');
      const b = blocks[num(op, 'block') % blocks.length]!;
      if (held.includes(b) || held.length >= CMA_ISOLATIONS_MAX) return rc(-EBUSY, `memory${b}: ${held.includes(b) ? 'already isolated' : 'isolations in use'}`);
      if (stateShow(m, b) !== 'online') return rc(-EBUSY, `memory${b} is ${stateShow(m, b)}`);
      const start = blockStartPfn(m, b);
      const out = { pfn: -1 };
      const r = startIsolatePageRange(m, start, start + m.blockPages, MIGRATE_CMA, 0, out);
      if (r) return rc(r, `memory${b}: ${errname(r)} at pfn ${out.pfn}`);
      held.push(b);
      return rc(0, `memory${b} (pfn ${start}-${start + m.blockPages - 1}) CMA pageblocks isolated`);
    }
    if (op.op === 'undo_isolate') {
      if (!held.length) return rc(0, 'nothing isolated');
      const b = held.splice(num(op, 'slot') % held.length, 1)[0]!;
      undo(b);
      return rc(0, `memory${b} back to CMA`);
    }
    return rc(-EINVAL, `unknown op ${op.op}`);
  };
  return {
    step,
    inspect: () => ({ held: [], accounting: { isolated: held.length } }),
    teardown: () => {
      const n = held.length;
      while (held.length) undo(held.shift()!);
      return rc(n, `${n} blocks back to CMA`);
    },
  };
};

// ---------------------------------------------------------------------------------------------
// Misbehaving actors for the harness's reliability tests

/** Throws at its op `at` (a simulator bug inside an actor). */
const testThrow: AgentFactory = () => ({
  step: (op) => {
    if (op.op === 'throw') throw new Error(`test-throw: simulated simulator bug at ${String(op.why ?? 'op')}`);
    return rc(0);
  },
  inspect: () => ({ held: [], accounting: {} }),
  teardown: () => rc(0),
});

/** Ends its worker thread (process.exit in a worker ends the thread): the pool must report it. */
const testExit: AgentFactory = () => ({
  step: (op) => {
    if (op.op === 'exit') process.exit(3);
    return rc(0);
  },
  inspect: () => ({ held: [], accounting: {} }),
  teardown: () => rc(0),
});

/** Spins without a preemption point (a livelock): only the run's time budget ends it. */
const testSpin: AgentFactory = () => ({
  step: (op) => {
    if (op.op === 'spin') {
      const end = Number(op.ms ?? 1e9);
      const t0 = process.hrtime.bigint();
      while (Number(process.hrtime.bigint() - t0) / 1e6 < end) { /* no preemption point */ }
    }
    return rc(0);
  },
  inspect: () => ({ held: [], accounting: {} }),
  teardown: () => rc(0),
});

/**
 * Holds mem_hotplug_lock across ops ('lock' / 'unlock') and can wait for a word that never changes
 * ('wait'): with the hotplug agent offlining meanwhile, every actor is blocked - a deadlock to detect.
 */
const testLock: AgentFactory = (env) => ({
  step: (op) => {
    if (op.op === 'lock') mutexLock(env.m.header, H_HOTPLUG_LOCK);
    else if (op.op === 'unlock') mutexUnlock(env.m.header, H_HOTPLUG_LOCK);
    else if (op.op === 'wait') {
      for (let n = 0; n < 100_000; n++) waitWhileEqual(env.m.header, H_MAGIC, env.m.header[H_MAGIC]!, 'test-lock: an event that never comes', 10);
    } else if (op.op === 'yield') env.yieldPoint('test-lock:yield');
    return rc(0, op.op);
  },
  inspect: () => ({ held: [], accounting: {} }),
  teardown: () => rc(0),
});

/**
 * Hidden nondeterminism on purpose: reaches 1 to 3 preemption points depending on the clock, so two
 * runs of one case differ; --check-determinism must say so.
 */
const testClock: AgentFactory = (env) => ({
  step: () => {
    const n = 1 + Number(process.hrtime.bigint() % 3n);
    for (let k = 0; k < n; k++) env.yieldPoint('test-clock:yield');
    return rc(n);
  },
  inspect: () => ({ held: [], accounting: {} }),
  teardown: () => rc(0),
});

/** Reaches n preemption points per op and does nothing else: the scheduler's own cost (bench). */
const yielder: AgentFactory = (env) => ({
  step: (op) => {
    const n = num(op, 'n', 1);
    for (let k = 0; k < n; k++) env.yieldPoint('yielder:yield');
    return rc(n);
  },
  inspect: () => ({ held: [], accounting: {} }),
  teardown: () => rc(0),
});

export const AGENTS: Record<string, AgentFactory> = {
  user: userAgent,
  pinner: pinnerAgent,
  hotplug: hotplugAgent,
  cma: cmaAgent,
  'test-throw': testThrow,
  'test-exit': testExit,
  'test-spin': testSpin,
  'test-lock': testLock,
  'test-clock': testClock,
  yielder,
};

/** Blocks of the machine that are online in ZONE_MOVABLE (for the offlinable check). */
export function movableBlocks(m: Memmap, zoneMovable: number): number[] {
  const out: number[] = [];
  for (let b = 0; b < m.nrBlocks; b++) if (blockPresent(m, b) && stateShow(m, b) === 'online' && m.blocks[b * MB_STRIDE + MB_ZONE] === zoneMovable) out.push(b);
  return out;
}
