// Scripted scenarios: a machine, processes and a list of steps, run deterministically on one thread.
// The format is documented in docs/scenarios.md; YAML or JSON (JSON is YAML). Every step prints its
// result (errno, pages, zones); an `expect:` on a step turns a mismatch into a failed scenario.

import { z } from 'zod';
import { parseYamlText, readInput, valueAt, zodLine, preview, badFileMessage } from './input';
import { patternProblem, boundedTest, MATCH_TIMEOUT_MS } from './match';
import {
  Memmap,
  ND_STRIDE,
  ND_ZONE_MOVABLE_PFN,
  nodeSpan,
  PG_lru,
  PG_anon,
  PG_swapbacked,
  PG_reserved,
} from '../mm/memmap';
import { CmdlineError, parseCmdline, parseGeometry } from '../mm/cmdline';
import {
  ScenarioError,
  Step,
  StepKind,
  ScenarioContext,
  StepResult,
  fail,
  sizePages,
  addrVpn,
  proc,
  prot,
  residency,
  hex,
  FIELD as F,
} from './scenario_ctx';
import { PIN_STEPS, releaseProcess } from './scenario_pin';
import { FILE_STEPS, fileOf, closeProcFiles } from './scenario_file';
import { DEVICE_STEPS, deviceStepProblem, deviceStepProc } from './scenario_dev';
import { bootFromSpec, layoutJson } from './layout';
import {
  bprmMmInit,
  doMmap,
  doMunmap,
  doMprotect,
  doMadvise,
  dupMm,
  exitMmap,
  PROT_WRITE,
  MADV_DONTNEED,
  MADV_HUGEPAGE,
  MADV_NOHUGEPAGE,
  MADV_POPULATE_WRITE,
  MADV_HWPOISON,
  MADV_SOFT_OFFLINE,
  populateRange,
} from '../mm/mmap';
import { getUser, putUser } from '../mm/memory';
import { sysMlock, sysMlock2, sysMunlock, lockedVm, MLOCK_ONFAULT } from '../mm/mlock';
import { deviceRange } from '../mm/memremap';
import { migrateVmaToDevice } from '../mm/migrate_device';
import { stateStore, OfflineReport, blockPresent } from '../mm/memory_hotplug';
import { errname, errnoByName, ESRCH } from '../mm/errno';
import { ZONE_NAMES } from '../mm/mmzone';
import { vmstatSnapshot, zoneInfo } from '../mm/vmstat';
import { drainAllPages } from '../mm/page_alloc';
import { lruAddDrainAll } from '../mm/swap';
import { migrateRange } from '../mm/migrate';
import { newTask, current, type Task } from '../mm/sched';
import { enterContext, leaveContext } from './context';
import { parseVariant, VariantError, DEFAULT_VARIANT, BugSwitch, BUGS } from '../mm/variants';
import { KernelPanic, setOomVictimExitHook } from '../mm/oom_kill';
import { KernelBug } from '../mm/debug';
import { bootWarnings } from '../mm/mm_init';

export { ScenarioError, residency };
export type { Step, StepResult, ScenarioContext };

/** A per-kernel expectation: a value, or { "v5.12": x, "+R3": y, default: z }. */
export type Expectation = number | string | Record<string, number | string>;

export interface Scenario {
  description?: string;
  /** machine.kernel picks the variant; `kernels` runs the scenario once under each */
  machine: { cmdline: string; geometry?: string; kernel?: string };
  kernels?: string[];
  steps: Step[];
}

export interface ScenarioRun {
  file: string;
  kernel: string;
  results: StepResult[];
  ok: boolean;
  /** a kernel panic (the OOM killer found nothing to kill) ends the run early */
  panic?: string;
  layout: ReturnType<typeof layoutJson>;
  vmstat: Record<string, number>;
}

const PROT = F.enum(['rw', 'r', 'w', 'none']);
/** The largest `passes:` of an offline step: 100 times the default, a few seconds on a 128M block. */
export const OFFLINE_PASSES_LIMIT = 10_000;

export const STEP_KINDS: Record<string, StepKind> = {
  spawn: {
    // oom_score_adj: OOM_SCORE_ADJ_MIN..MAX, as oom_score_adj_write() checks
    fields: {
      proc: F.proc,
      memlock: F.memlock,
      cap_ipc_lock: F.bool,
      oom_score_adj: F.int(-1000, 1000, 'an oom_score_adj'),
    },
    required: ['proc'],
    run(ctx, s) {
      if (ctx.procs.has(s.proc as string)) fail(`step ${s.op}`, `process '${s.proc}' exists`);
      const mm = bprmMmInit(ctx.m, {
        rlimitMemlockPages:
          s.memlock === undefined
            ? undefined
            : s.memlock === 'unlimited'
              ? -1
              : s.memlock === 0 || s.memlock === '0'
                ? 0
                : sizePages('memlock', s.memlock),
        // without memlock/cap_ipc_lock the process is root's, as the probe's workers are: CAP_IPC_LOCK
        capIpcLock: s.cap_ipc_lock === true || (s.memlock === undefined && s.cap_ipc_lock === undefined),
        oomScoreAdj: typeof s.oom_score_adj === 'number' ? s.oom_score_adj : 0,
      });
      if (mm >= 0) ctx.procs.set(s.proc as string, mm);
      return { rc: mm < 0 ? mm : 0, detail: mm < 0 ? '' : `mm ${mm}` };
    },
  },
  mmap: {
    fields: {
      proc: F.proc,
      as: F.name,
      len: F.size,
      addr: F.addr,
      prot: PROT,
      shared: F.bool,
      hugetlb: F.bool,
      pfnmap: F.bool,
      populate: F.bool,
      thp: F.bool,
      nothp: F.bool,
      fd: F.name,
    },
    required: ['proc', 'len'],
    run(ctx, s) {
      const mm = proc(ctx, 'mmap', s);
      const nrPages = sizePages('len', s.len);
      const vpn = s.addr === undefined ? undefined : addrVpn(ctx, 'addr', s.addr);
      const p = prot('prot', s.prot);
      const file = s.fd === undefined ? undefined : fileOf(ctx, s); // mmap(..., fd, 0)
      let rc = doMmap(ctx.m, mm, {
        nrPages,
        vpn,
        prot: p,
        shared: s.shared === true,
        hugetlb: s.hugetlb === true || file?.kind === 'hugetlb',
        pfnmap: s.pfnmap === true,
        populate: false,
        inode: file && file.inode >= 0 ? file.inode : undefined,
      });
      if (rc < 0) return { rc, detail: '' };
      const start = rc;
      if (typeof s.as === 'string') ctx.maps.set(s.as, { proc: s.proc as string, vpn: start, nrPages });
      if (s.thp === true) doMadvise(ctx.m, mm, start, nrPages, MADV_HUGEPAGE);
      if (s.nothp === true) doMadvise(ctx.m, mm, start, nrPages, MADV_NOHUGEPAGE);
      if (s.populate === true) {
        rc = populateRange(ctx.m, mm, start, start + nrPages, (p & PROT_WRITE) !== 0);
        if (rc < 0) return { rc, detail: `at ${hex(start)}, populate failed` };
      }
      return { rc: 0, detail: `${hex(start)} ${nrPages} pages; ${residency(ctx.m, mm, start, nrPages)}` };
    },
  },
  touch: {
    fields: { proc: F.proc, addr: F.addr, len: F.size, write: F.bool, value: F.word },
    required: ['proc', 'addr'],
    run(ctx, s) {
      const mm = proc(ctx, 'touch', s);
      const vpn = addrVpn(ctx, 'addr', s.addr);
      const nrPages = rangeLen(ctx, s, vpn);
      const write = s.write !== false;
      for (let i = 0; i < nrPages; i++) {
        const r = write
          ? putUser(ctx.m, mm, vpn + i, typeof s.value === 'number' ? s.value + i : vpn + i)
          : getUser(ctx.m, mm, vpn + i);
        if (r < 0) return { rc: r, detail: `at ${hex(vpn + i)}` };
      }
      return { rc: 0, detail: residency(ctx.m, mm, vpn, nrPages) };
    },
  },
  write: {
    fields: { proc: F.proc, addr: F.addr, value: F.word },
    required: ['proc', 'addr', 'value'],
    run(ctx, s) {
      const mm = proc(ctx, 'write', s);
      const vpn = addrVpn(ctx, 'addr', s.addr);
      const r = putUser(ctx.m, mm, vpn, s.value as number);
      return { rc: r < 0 ? r : 0, detail: r < 0 ? '' : `${hex(vpn)} = ${r}` };
    },
  },
  read: {
    fields: { proc: F.proc, addr: F.addr, value: F.word },
    required: ['proc', 'addr'],
    run(ctx, s) {
      const mm = proc(ctx, 'read', s);
      const vpn = addrVpn(ctx, 'addr', s.addr);
      const r = getUser(ctx.m, mm, vpn);
      if (r < 0) return { rc: r, detail: '' };
      if (typeof s.value === 'number' && r !== s.value >>> 0)
        return { rc: r, detail: `${hex(vpn)} = ${r}, expected ${s.value}`, bad: true };
      return { rc: r, detail: `${hex(vpn)} = ${r}` };
    },
  },
  munmap: {
    fields: { proc: F.proc, addr: F.addr, len: F.size },
    required: ['proc', 'addr'],
    run(ctx, s) {
      const mm = proc(ctx, 'munmap', s);
      const vpn = addrVpn(ctx, 'addr', s.addr);
      const n = rangeLen(ctx, s, vpn);
      return { rc: doMunmap(ctx.m, mm, vpn, n), detail: `${hex(vpn)} ${n} pages` };
    },
  },
  mlock: {
    // mlock(2), or mlock2(MLOCK_ONFAULT) with onfault: true (mm/mlock.ts)
    fields: { proc: F.proc, addr: F.addr, len: F.size, onfault: F.bool },
    required: ['proc', 'addr'],
    run(ctx, s) {
      const mm = proc(ctx, 'mlock', s);
      const vpn = addrVpn(ctx, 'addr', s.addr);
      const n = rangeLen(ctx, s, vpn);
      const rc = s.onfault === true ? sysMlock2(ctx.m, mm, vpn, n, MLOCK_ONFAULT) : sysMlock(ctx.m, mm, vpn, n);
      return { rc, detail: `${lockedVmText(ctx.m, mm)}; ${residency(ctx.m, mm, vpn, n)}` };
    },
  },
  // migrate_to_device: a driver moves the range's small anonymous pages into its device-coherent memory
  // (migrate_vma_setup/pages/finalize(), as lib/test_hmm.c does; the machine needs pinlab.device_coherent=), R17
  migrate_to_device: {
    fields: { proc: F.proc, addr: F.addr, len: F.size },
    required: ['proc', 'addr'],
    run(ctx, s) {
      const mm = proc(ctx, 'migrate_to_device', s);
      const vpn = addrVpn(ctx, 'addr', s.addr);
      const n = rangeLen(ctx, s, vpn);
      if (!deviceRange(ctx.m).pages)
        fail('machine', 'migrate_to_device needs device memory: add pinlab.device_coherent=SIZE');
      const r = migrateVmaToDevice(ctx.m, mm, vpn, n);
      return { rc: 0, detail: `${r.migrated} migrated, ${r.failed} not; ${residency(ctx.m, mm, vpn, n)}` };
    },
  },
  munlock: {
    fields: { proc: F.proc, addr: F.addr, len: F.size },
    required: ['proc', 'addr'],
    run(ctx, s) {
      const mm = proc(ctx, 'munlock', s);
      const vpn = addrVpn(ctx, 'addr', s.addr);
      const n = rangeLen(ctx, s, vpn);
      return { rc: sysMunlock(ctx.m, mm, vpn, n), detail: lockedVmText(ctx.m, mm) };
    },
  },
  mprotect: {
    fields: { proc: F.proc, addr: F.addr, len: F.size, prot: PROT },
    required: ['proc', 'addr', 'prot'],
    run(ctx, s) {
      const mm = proc(ctx, 'mprotect', s);
      const vpn = addrVpn(ctx, 'addr', s.addr);
      const n = rangeLen(ctx, s, vpn);
      return { rc: doMprotect(ctx.m, mm, vpn, n, prot('prot', s.prot)), detail: '' };
    },
  },
  madvise: {
    fields: {
      proc: F.proc,
      addr: F.addr,
      len: F.size,
      advice: F.enum(['dontneed', 'hugepage', 'nohugepage', 'populate_write', 'hwpoison', 'soft_offline']),
    },
    required: ['proc', 'addr', 'advice'],
    run(ctx, s) {
      const mm = proc(ctx, 'madvise', s);
      const vpn = addrVpn(ctx, 'addr', s.addr);
      const n = rangeLen(ctx, s, vpn);
      const advice = {
        dontneed: MADV_DONTNEED,
        hugepage: MADV_HUGEPAGE,
        nohugepage: MADV_NOHUGEPAGE,
        populate_write: MADV_POPULATE_WRITE,
        hwpoison: MADV_HWPOISON,
        soft_offline: MADV_SOFT_OFFLINE,
      }[String(s.advice)];
      if (advice === undefined)
        fail(
          'advice',
          `'${String(s.advice)}' is not dontneed, hugepage, nohugepage, populate_write, hwpoison or soft_offline`,
        );
      return { rc: doMadvise(ctx.m, mm, vpn, n, advice), detail: residency(ctx.m, mm, vpn, n) };
    },
  },
  fork: {
    fields: { proc: F.proc, child: F.proc },
    required: ['proc', 'child'],
    run(ctx, s) {
      const mm = proc(ctx, 'fork', s);
      if (ctx.procs.has(s.child as string)) fail('child', `process '${s.child}' exists`);
      const c = dupMm(ctx.m, mm);
      if (c >= 0) ctx.procs.set(s.child as string, c);
      return { rc: c < 0 ? c : 0, detail: c < 0 ? '' : `child mm ${c}` };
    },
  },
  exit: {
    fields: { proc: F.proc },
    required: ['proc'],
    run(ctx, s) {
      const mm = proc(ctx, 'exit', s);
      exitMmap(ctx.m, mm);
      const released = releaseProcess(ctx, s.proc as string); // exit_files(): its pins and devices go
      closeProcFiles(ctx, s.proc as string); // and its open files
      ctx.procs.delete(s.proc as string);
      for (const [k, v] of ctx.maps) if (v.proc === s.proc) ctx.maps.delete(k);
      return { rc: 0, detail: released ? `${released} pinned pages released with its files` : '' };
    },
  },
  online: {
    fields: { block: F.block, type: F.enum(['online', 'online_kernel', 'online_movable']) },
    required: ['block'],
    run(ctx, s) {
      const b = blockIndex(ctx, s);
      const type = s.type === undefined ? 'online' : String(s.type);
      if (!['online', 'online_kernel', 'online_movable'].includes(type))
        fail('type', `'${type}' is not online, online_kernel or online_movable`);
      return { rc: stateStore(ctx.m, b, type), detail: `memory${b}` };
    },
  },
  offline: {
    // passes: pinlab's retry budget (the kernel retries until a signal); bounded so a step stays seconds long
    fields: { block: F.block, passes: F.int(0, OFFLINE_PASSES_LIMIT, 'a number of passes') },
    required: ['block'],
    run(ctx, s) {
      const b = blockIndex(ctx, s);
      const report: OfflineReport = { reason: '', pfn: -1, passes: 0, failures: [] };
      const rc = stateStore(ctx.m, b, 'offline', {
        report,
        passesMax: typeof s.passes === 'number' ? s.passes : undefined,
      });
      let detail = `memory${b}, ${report.passes} passes`;
      if (rc) {
        detail += `; failed due to ${report.reason}`;
        if (report.pfn >= 0) detail += ` at pfn ${report.pfn}`;
        for (const f of report.failures.slice(0, 4)) detail += `; pfn ${f.pfn}: ${errname(f.rc)} ${f.why}`;
      }
      return { rc, detail };
    },
  },
  migrate: {
    fields: { proc: F.proc, addr: F.addr, len: F.size, to: F.enum(['any', 'kernel', 'movable']) },
    required: ['proc', 'addr'],
    run(ctx, s) {
      const mm = proc(ctx, 'migrate', s);
      const vpn = addrVpn(ctx, 'addr', s.addr);
      const n = rangeLen(ctx, s, vpn);
      const to = s.to === undefined ? 'any' : String(s.to);
      if (!['kernel', 'movable', 'any'].includes(to)) fail('to', `'${to}' is not kernel, movable or any`);
      const r = migrateRange(ctx.m, mm, vpn, n, to as 'kernel' | 'movable' | 'any');
      return { rc: r.rc, detail: `${r.migrated} migrated, ${r.failed} failed; ${residency(ctx.m, mm, vpn, n)}` };
    },
  },
  drain: {
    fields: {},
    required: [],
    run(ctx) {
      lruAddDrainAll(ctx.m);
      drainAllPages(ctx.m);
      return { rc: 0, detail: 'lru_add_drain_all + drain_all_pages' };
    },
  },
  zones: {
    fields: {},
    required: [],
    run(ctx) {
      return { rc: 0, detail: zoneSummary(ctx.m) };
    },
  },
  census: {
    fields: { block: F.block },
    required: ['block'],
    run(ctx, s) {
      const b = blockIndex(ctx, s);
      return { rc: 0, detail: `memory${b}: ${blockCensus(ctx.m, b)}` };
    },
  },
  nodes: {
    fields: {},
    required: [],
    run(ctx) {
      return { rc: 0, detail: nodeSummary(ctx.m) };
    },
  },
  ...DEVICE_STEPS,
  ...FILE_STEPS,
  ...PIN_STEPS,
};

/** mm->locked_vm as the step detail reports it: pages, and /proc/PID/status's VmLck. */
function lockedVmText(m: Memmap, mm: number): string {
  const n = lockedVm(m, mm);
  return `locked_vm ${n} pages (VmLck ${n * 4} kB)`;
}

/** A step's range in pages from vpn: its len:, else to the end of the mapping its addr: names. */
function rangeLen(ctx: ScenarioContext, s: Step, vpn: number): number {
  if (s.len !== undefined) return sizePages('len', s.len);
  if (typeof s.addr === 'string') {
    const map = ctx.maps.get(s.addr);
    if (map) return map.nrPages - (vpn - map.vpn);
  }
  return fail('len', "needs 'len:' unless 'addr:' names a whole mapping");
}

function blockIndex(ctx: ScenarioContext, s: Step): number {
  const b = s.block;
  if (typeof b !== 'number' || !Number.isInteger(b) || !blockPresent(ctx.m, b))
    fail('block', `no memory block ${JSON.stringify(b)}`);
  return b;
}

/**
 * What a memory block's pages hold, as /proc/kpageflags tells it: LRU pages (anonymous, shmem, file) and
 * reserved ones (memblock's allocations, and holes, whose struct pages are PageReserved). The rest in use
 * (slab, page tables) and free pages are not counted (kpageflags marks only a free block's first page).
 */
export function blockCensus(m: Memmap, b: number): string {
  const c = { anon: 0, shmem: 0, file: 0, reserved: 0 };
  const runs: [number, number][] = []; // the reserved runs (offset in the block, pages): memblock's allocations
  for (let pfn = b * m.blockPages; pfn < (b + 1) * m.blockPages && pfn < m.nrFrames; pfn++) {
    const f = m.flags[pfn]!;
    const off = pfn - b * m.blockPages;
    if (f & PG_reserved) {
      const last = runs[runs.length - 1];
      if (last && last[0] + last[1] === off) last[1]++;
      else if (runs.length < 16) runs.push([off, 1]);
    }
    if (f & PG_lru) {
      if (f & PG_anon) c.anon++;
      else if (f & PG_swapbacked) c.shmem++;
      else c.file++;
    } else if (f & PG_reserved) c.reserved++; // holes too: their struct pages are PageReserved
  }
  return censusText(c, runs);
}

/** The census step's words, for the model's counts and the probe's alike (pinlab kernel --diff compares them). */
export function censusText(
  c: { anon: number; shmem: number; file: number; reserved: number },
  runs: [number, number][],
): string {
  const r = runs.map(([a, n]) => `${a}+${n}`).join(' ');
  return `lru anon ${c.anon}, shmem ${c.shmem}, file ${c.file}; reserved ${c.reserved}${r ? ` (${r})` : ''}`;
}

/**
 * One zone in the zones step's words, from /proc/zoneinfo's counters (the model's or the kernel's):
 * "Node N" on a machine of several nodes, and the cma line (zone->cma_pages) when the zone has a CMA area.
 */
export function zoneText(
  node: number | null,
  z: { name: string; free: number; managed: number; min: number; cma?: number },
): string {
  return `${node === null ? '' : `Node ${node} `}${z.name}: free ${z.free}/${z.managed} min ${z.min}${z.cma ? ` cma ${z.cma}` : ''}`;
}

export function zoneSummary(m: Memmap): string {
  const parts: string[] = [];
  for (let z = 0; z < m.nrZones; z++) {
    const zi = zoneInfo(m, z);
    if (!zi.managed && !zi.present) continue;
    parts.push(zoneText(m.nrNodes > 1 ? Math.floor(z / ZONE_NAMES.length) : null, zi));
  }
  return parts.join('; ');
}

/**
 * The `nodes` step: each node's pfns, the boot's zone_movable_pfn[nid] (flagged when it is at or past the
 * node's end: R22) and its zones' spans [start, end).
 */
export function nodeSummary(m: Memmap): string {
  const parts: string[] = [];
  for (let nid = 0; nid < m.nrNodes; nid++) {
    const [start, end] = nodeSpan(m, nid);
    const zmp = m.nodes[nid * ND_STRIDE + ND_ZONE_MOVABLE_PFN]!;
    let s = `node ${nid}: pfn ${start}-${end}, zone_movable_pfn ${zmp}`;
    if (zmp && zmp >= end) s += ' (at or past the node end)';
    const zones: string[] = [];
    for (let z = 0; z < ZONE_NAMES.length; z++) {
      const zi = zoneInfo(m, nid * ZONE_NAMES.length + z);
      if (zi.spanned) zones.push(`${zi.name} ${zi.start_pfn}-${zi.start_pfn + zi.spanned}`);
    }
    parts.push(`${s}; ${zones.join(', ') || 'no zones'}`);
  }
  return parts.join('; ');
}

// ---------------------------------------------------------------------------------------------
// The file's schema (zod), built from STEP_KINDS: every field is declared once, in its step kind.

const expecting = (message: string) => ({ errorMap: () => ({ message }) });

/** A kernel variant name (`pinlab variants`). */
const VARIANT = z.string(expecting('expected a kernel variant like v6.12 or v6.12+R3')).superRefine((k, ctx) => {
  try {
    parseVariant(k);
  } catch (e) {
    if (!(e instanceof VariantError)) throw e;
    ctx.addIssue({ code: 'custom', message: e.message });
  }
});

/** Why a key of a per-kernel map names no kernel, or null: a variant, '+Rn' of a known bug, or 'default'. */
function kernelKeyProblem(k: string): string | null {
  if (k === 'default') return null;
  if (k.startsWith('+')) {
    if (BUGS.some((b) => `+${b.id}` === k)) return null;
    return `'${k}' names no bug switch (${BUGS.map((b) => `+${b.id}`).join(', ')}, or a variant, or default)`;
  }
  try {
    parseVariant(k);
    return null;
  } catch (e) {
    if (!(e instanceof VariantError)) throw e;
    return `'${k}' names no kernel: ${e.message}`;
  }
}

/** v, or a non-empty map from kernel (variant, '+Rn', default) to v. */
function perKernel(v: z.ZodTypeAny, what: string): z.ZodTypeAny {
  return z.unknown().superRefine((x, ctx) => {
    const forward = (r: z.SafeParseReturnType<unknown, unknown>, path: (string | number)[]): void => {
      if (!r.success)
        for (const iss of r.error.issues) ctx.addIssue({ ...iss, path: [...path, ...iss.path] } as z.IssueData);
    };
    if (typeof x !== 'object' || x === null || Array.isArray(x)) {
      forward(v.safeParse(x), []);
      return;
    }
    const keys = Object.keys(x);
    if (!keys.length) {
      ctx.addIssue({ code: 'custom', message: `expected ${what}, or a map from kernel to it with at least one key` });
    }
    for (const k of keys) {
      const why = kernelKeyProblem(k);
      if (why) ctx.addIssue({ code: 'custom', message: why, path: [k] });
      else forward(v.safeParse((x as Record<string, unknown>)[k]), [k]);
    }
  });
}

const EXPECT_WHAT = 'a number, an errno like -ENOMEM, killed or panic';
const expectValue = (v: unknown): boolean =>
  Number.isSafeInteger(v) ||
  (typeof v === 'string' && (errnoByName(v) !== undefined || v === 'killed' || v === 'panic'));
const EXPECT = perKernel(z.custom(expectValue, { message: `expected ${EXPECT_WHAT}` }), EXPECT_WHAT);
const EXPECT_MATCH = perKernel(
  z.string(expecting('expected a regular expression')).superRefine((s, ctx) => {
    const why = patternProblem(s);
    if (why) ctx.addIssue({ code: 'custom', message: why });
  }),
  'a regular expression',
);

function stepSchema(op: string, kind: StepKind): z.AnyZodObject {
  const shape: Record<string, z.ZodTypeAny> = {
    op: z.literal(op),
    expect: EXPECT.optional(),
    expect_match: EXPECT_MATCH.optional(),
  };
  for (const [k, t] of Object.entries(kind.fields)) shape[k] = kind.required.includes(k) ? t : t.optional();
  return z
    .object(shape)
    .strict(`(fields of ${op}: ${Object.keys(kind.fields).join(', ') || 'none'}; expect, expect_match)`);
}

const OPS = Object.keys(STEP_KINDS);
const STEP_ERRORS: z.ZodErrorMap = (issue, ctx) => {
  const op = (ctx.data as { op?: unknown } | undefined)?.op;
  if (issue.code === 'invalid_union_discriminator') {
    return {
      message: `${op === undefined ? "a step needs 'op'" : `unknown op ${preview(op)}`} (ops: ${OPS.join(', ')})`,
    };
  }
  return { message: issue.code === 'invalid_type' ? "a step is a mapping with 'op' and its fields" : ctx.defaultError };
};
const STEP = z.discriminatedUnion(
  'op',
  OPS.map((op) => stepSchema(op, STEP_KINDS[op]!)) as unknown as [z.AnyZodObject, ...z.AnyZodObject[]],
  { errorMap: STEP_ERRORS },
);

const SCENARIO = z
  .object(
    {
      machine: z
        .object(
          {
            cmdline: z.string(expecting('expected a kernel command line')),
            geometry: z.string(expecting('expected a geometry like mini or x86_64,cpus=4')).optional(),
            kernel: VARIANT.optional(),
          },
          expecting('expected a mapping with cmdline (and geometry, kernel)'),
        )
        .strict('(keys: cmdline, geometry, kernel)'),
      steps: z.array(STEP, expecting('expected a list of steps')),
      description: z.string(expecting('expected free text')).optional(),
      kernels: z
        .array(VARIANT, expecting('expected a list of kernel variants'))
        .nonempty('expected at least one kernel variant')
        .max(32)
        .superRefine((ks, ctx) =>
          ks.forEach((k, i) => {
            if (ks.indexOf(k) < i) ctx.addIssue({ code: 'custom', message: `'${k}' is listed twice`, path: [i] });
          }),
        )
        .optional(),
    },
    expecting("expected a mapping with 'machine' and 'steps'"),
  )
  .strict('(keys: machine, steps, description, kernels)');

/** "step 3 (mmap)" for a path into steps[2]. */
function stepHead(path: readonly (string | number)[], doc: unknown): { text: string; used: number } | null {
  if (path[0] !== 'steps' || typeof path[1] !== 'number') return null;
  const op = valueAt(doc, ['steps', path[1], 'op']);
  return {
    text: `step ${path[1] + 1}${typeof op === 'string' && Object.hasOwn(STEP_KINDS, op) ? ` (${op})` : ''}`,
    used: 2,
  };
}

/** Parse and validate a scenario file; any problem is a ScenarioError naming the file, step and field. */
export function loadScenario(file: string, text?: string): Scenario {
  let raw: unknown;
  try {
    raw = parseYamlText(text ?? readInput(file));
  } catch (e) {
    throw new ScenarioError(`${file}: ${badFileMessage(e)}`);
  }
  let r: ReturnType<typeof SCENARIO.safeParse>;
  try {
    r = SCENARIO.safeParse(raw);
  } catch (e) {
    throw new ScenarioError(`${file}: ${badFileMessage(e)}`);
  }
  if (!r.success) throw new ScenarioError(`${file}: ${zodLine(r.error, raw, stepHead)}`);
  const { machine, steps, description, kernels } = r.data;
  const dp = deviceStepProblem(steps as Step[]);
  if (dp) {
    const where = dp.path.length ? `${dp.path.join('.')}: ` : '';
    throw new ScenarioError(`${file}: step ${dp.i + 1} (${(steps[dp.i] as Step).op}): ${where}${dp.msg}`);
  }
  try {
    parseCmdline(machine.cmdline, parseGeometry(machine.geometry)); // the syntax now; what cannot boot, when it boots
  } catch (e) {
    if (e instanceof CmdlineError) throw new ScenarioError(`${file}: machine: ${e.message}`);
    throw e;
  }
  return { description, machine, kernels, steps: steps as Step[] };
}

/** The expectation that applies under a kernel: exact name, then the first '+Rn' the variant has, then 'default'. */
export function expectationFor(e: unknown, kernel: string): number | string | undefined {
  if (typeof e !== 'object' || e === null) return e as number | string | undefined;
  const map = e as Record<string, number | string>;
  if (Object.hasOwn(map, kernel)) return map[kernel];
  const bugs = parseVariant(kernel).bugs;
  for (const k of Object.keys(map)) if (k.startsWith('+') && bugs.has(k.slice(1) as BugSwitch)) return map[k];
  const base = kernel.split('+')[0]!;
  if (Object.hasOwn(map, base)) return map[base];
  return map.default;
}

/** The kernels a scenario runs under: --kernel wins, then `kernels`, then machine.kernel, then the default. */
export function scenarioKernels(sc: Scenario, override?: string): string[] {
  if (override) return [override];
  return sc.kernels ?? [sc.machine.kernel ?? DEFAULT_VARIANT];
}

/** A step's expectations against its outcome: the result string and whether expect/expect_match hold. */
function judgeStep(
  file: string,
  s: Step,
  n: number,
  kernel: string,
  r: StepRun,
  panic: string | undefined,
  selfKilled: boolean,
): { result: string; ok: boolean; exp: number | string | undefined; match: number | string | undefined } {
  const result = panic !== undefined ? 'panic' : r.killed ? 'killed' : r.rc < 0 ? errname(r.rc) : String(r.rc);
  const exp = expectationFor(s.expect, kernel);
  const match = expectationFor(s.expect_match, kernel);
  let ok = !r.bad;
  if (exp !== undefined) {
    ok =
      ok &&
      (exp === 'killed'
        ? selfKilled
        : exp === 'panic'
          ? panic !== undefined
          : typeof exp === 'number'
            ? r.rc === exp && !r.killed // an oops ends the step: no return value
            : result === exp);
  }
  if (typeof match === 'string') {
    const hit = boundedTest(new RegExp(match), r.detail);
    if (hit === null) {
      throw new ScenarioError(
        `${file}: step ${n} (${s.op}): expect_match /${match}/ ran longer than ${MATCH_TIMEOUT_MS} ms` +
          " on the step's detail (catastrophic backtracking)",
      );
    }
    ok = ok && hit;
  }
  return { result, ok, exp, match };
}

/** One step: run it (or -ESRCH for a process the OOM killer took), reap OOM kills, judge and print it. */
function runStep(
  file: string,
  ctx: ScenarioContext,
  task: Task,
  s: Step,
  kernel: string,
): { res: StepResult; panic?: string } {
  const n = ctx.step;
  const who = typeof s.proc === 'string' ? s.proc : deviceStepProc(ctx, s);
  task.mm = who !== undefined ? (ctx.procs.get(who) ?? -1) : -1;
  task.fatalSignal = false;
  let r: StepRun;
  let panic: string | undefined;
  try {
    // a process the OOM killer took is gone: every step naming it fails as a syscall on a dead pid would
    const deadAt = who !== undefined ? ctx.dead.get(who) : undefined;
    r =
      deadAt !== undefined
        ? {
            rc: -ESRCH,
            detail: `${who} was killed by ${ctx.deadBy?.get(who ?? '') ?? 'the OOM killer'} at step ${deadAt}`,
          }
        : STEP_KINDS[s.op]!.run(ctx, s);
  } catch (e) {
    if (e instanceof ScenarioError) throw new ScenarioError(`${file}: step ${n} (${s.op}): ${e.message}`);
    if (e instanceof KernelBug && who !== undefined) {
      r = oopsKills(ctx, who, n, e);
    } else if (e instanceof KernelBug) {
      // BUG() in a write to sysfs or a pin's release: the writing task dies (die(): panic_on_oops is 0)
      r = { rc: 0, detail: `${e.message}; the task that ran it killed`, killed: true };
    } else {
      if (!(e instanceof KernelPanic)) throw e;
      panic = e.message;
      r = { rc: 0, detail: panic };
    }
  }
  const { mms, kills } = reapOomKills(ctx);
  const selfKilled = (task.mm >= 0 && mms.includes(task.mm)) || r.killed === true;
  const { result, ok, exp, match } = judgeStep(file, s, n, kernel, r, panic, selfKilled);
  const res: StepResult = {
    step: n,
    op: s.op,
    proc: who,
    rc: r.rc,
    result,
    detail: r.detail,
    ok,
  };
  ctx.out(formatResult(res, exp, match));
  for (const k of kills)
    ctx.out(
      `      Out of memory: Killed process ${k.pid} (${k.name}) anon-rss:${k.rss * 4}kB, oom_score ${k.badness}${k.reaped ? `; reaped ${k.reaped} pages` : ''}`,
    );
  if (panic !== undefined) ctx.out(`      ${panic}`);
  return { res, panic };
}

/**
 * An oops or BUG() in a process's syscall (die(): panic_on_oops is 0 on Debian): the task is killed where it
 * stood, holding what it held (its mmap_lock, isolated folios); its exit then blocks on that lock, so
 * nothing of it is freed. Later steps naming it are -ESRCH.
 */
function oopsKills(ctx: ScenarioContext, who: string, n: number, e: KernelBug): StepRun {
  ctx.procs.delete(who);
  ctx.dead.set(who, n);
  (ctx.deadBy ??= new Map()).set(who, 'an oops');
  return { rc: 0, detail: `${e.message}; ${who} killed`, killed: true };
}

type StepRun = { rc: number; detail: string; bad?: boolean; killed?: boolean };

/** Run a loaded scenario under one kernel variant. ScenarioError from a step names the step. */
export function runScenario(
  file: string,
  sc: Scenario,
  out: (line: string) => void = () => {},
  kernel = scenarioKernels(sc)[0]!,
): ScenarioRun {
  let variantNow;
  try {
    variantNow = parseVariant(kernel);
  } catch (e) {
    if (e instanceof VariantError) throw new ScenarioError(`--kernel: ${e.message}`);
    throw e;
  }
  const task = newTask(1, 'scenario', 0);
  const faults = new Set<string>();
  const saved = enterContext({ task, variant: variantNow, faultHook: (point) => faults.has(point) });
  let booted;
  try {
    booted = bootFromSpec(sc.machine);
  } catch (e) {
    leaveContext(saved);
    if (e instanceof CmdlineError) throw new ScenarioError(`${file}: machine: ${e.message}`);
    throw e;
  }
  for (const w of bootWarnings.get(booted.m) ?? []) out(`# warning: ${w}`);
  const ctx: ScenarioContext = {
    m: booted.m,
    procs: new Map(),
    maps: new Map(),
    dead: new Map(),
    held: new Map(),
    released: new Map(),
    devs: new Map(),
    devProcs: new Map(),
    step: 0,
    out,
    faults,
    deviceParams: booted.params.deviceParams,
  };
  const results: StepResult[] = [];
  let panic: string | undefined;
  // a victim the OOM killer reaps mid-step releases its pins at once (outOfMemory())
  setOomVictimExitHook((_m, mm) => {
    for (const [name, v] of ctx.procs) if (v === mm) releaseProcess(ctx, name);
  });
  try {
    for (let i = 0; i < sc.steps.length && panic === undefined; i++) {
      ctx.step = i + 1;
      const done = runStep(file, ctx, task, sc.steps[i]!, kernel);
      results.push(done.res);
      panic = done.panic;
    }
  } finally {
    setOomVictimExitHook(null);
    leaveContext(saved);
  }
  return {
    file,
    kernel,
    results,
    ok: results.every((r) => r.ok),
    panic,
    layout: layoutJson(booted.m, booted.params),
    vmstat: vmstatSnapshot(booted.m),
  };
}

interface OomKill {
  pid: number;
  name: string;
  rss: number;
  badness: number;
  reaped: number;
}

/** Move processes the OOM killer took into ctx.dead; returns their mms and the kills to print. */
function reapOomKills(ctx: ScenarioContext): { mms: number[]; kills: OomKill[] } {
  const out: OomKill[] = [];
  const mms: number[] = [];
  const kills = current().oomKills;
  for (const k of kills) {
    for (const [name, mm] of ctx.procs) {
      if (mm !== k.mm) continue;
      ctx.procs.delete(name);
      ctx.dead.set(name, ctx.step);
      if (k.self) exitMmap(ctx.m, mm); // the victim was current: it exits on its way out of the kernel
      releaseProcess(ctx, name); // and its files close (exit_files()): idempotent for a victim released already
      out.push({ pid: k.pid, name, rss: k.rssBefore, badness: k.badness, reaped: k.reaped });
    }
    mms.push(k.mm);
  }
  kills.length = 0;
  return { mms, kills: out };
}

function formatResult(r: StepResult, exp: number | string | undefined, match: number | string | undefined): string {
  const who = r.proc ? `${r.proc}: ` : '';
  const want = [exp !== undefined ? String(exp) : '', typeof match === 'string' ? `/${match}/` : '']
    .filter(Boolean)
    .join(' ');
  const tag = want ? (r.ok ? ` (expected ${want}: ok)` : ` (EXPECTED ${want}: MISMATCH)`) : !r.ok ? ' (MISMATCH)' : '';
  return `[${String(r.step).padStart(3)}] ${who}${r.op} -> ${r.result}${tag}${r.detail ? `  ${r.detail}` : ''}`;
}
