// Scripted scenarios: a machine, processes and a list of steps, run deterministically on one thread.
// The format is documented in docs/scenarios.md; YAML or JSON (JSON is YAML). Every step prints its
// result (errno, pages, zones); an `expect:` on a step turns a mismatch into a failed scenario.

import * as fs from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { Memmap } from '../mm/memmap';
import { CmdlineError } from '../mm/cmdline';
import { ScenarioError, Step, StepKind, ScenarioContext, StepResult, fail, sizePages, addrVpn, proc, prot, residency, hex } from './scenario_ctx';
import { PIN_STEPS } from './scenario_pin';
import { bootFromSpec, layoutJson } from './layout';
import { mmCreate, doMmap, doMunmap, doMprotect, doMadvise, doFork, exitMmap, PROT_READ, PROT_WRITE, MADV_DONTNEED,
  MADV_HUGEPAGE, MADV_NOHUGEPAGE, MADV_POPULATE_WRITE, populateRange } from '../mm/mmap';
import { userAccess, ptlLock, ptlUnlock, lookupLocked } from '../mm/memory';
import { memoryBlockStore, OfflineReport, blockPresent } from '../mm/memory_hotplug';
import { errname, errnoByName, ESRCH } from '../mm/errno';
import { ZONE_NAMES } from '../mm/mmzone';
import { vmstatSnapshot, zoneInfo } from '../mm/vmstat';
import { drainAllPages } from '../mm/page_alloc';
import { lruAddDrainAll } from '../mm/swap';
import { migrateRange } from '../mm/migrate';
import { setCurrent, newTask } from '../mm/sched';
import { parseVariant, setVariant, VariantError, DEFAULT_VARIANT, BugSwitch } from '../mm/variants';
import { oomKills, KernelPanic } from '../mm/oom_kill';
import { gupFaults } from '../mm/gup';
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

export const STEP_KINDS: Record<string, StepKind> = {
  spawn: {
    fields: { proc: 'string', memlock: 'size', cap_ipc_lock: 'boolean', oom_score_adj: 'number' }, required: ['proc'],
    run(ctx, s) {
      if (ctx.procs.has(s.proc as string)) fail(`step ${s.op}`, `process '${s.proc}' exists`);
      const mm = mmCreate(ctx.m, {
        rlimitMemlockPages: s.memlock === undefined ? undefined : s.memlock === 'unlimited' ? -1 : sizePages('memlock', s.memlock),
        capIpcLock: s.cap_ipc_lock === true, oomScoreAdj: typeof s.oom_score_adj === 'number' ? s.oom_score_adj : 0,
      });
      if (mm >= 0) ctx.procs.set(s.proc as string, mm);
      return { rc: mm < 0 ? mm : 0, detail: mm < 0 ? '' : `mm ${mm}` };
    },
  },
  mmap: {
    fields: { proc: 'string', as: 'string', len: 'size', addr: 'addr', prot: 'string', shared: 'boolean', hugetlb: 'boolean',
      pfnmap: 'boolean', populate: 'boolean', thp: 'boolean', nothp: 'boolean' }, required: ['proc', 'len'],
    run(ctx, s) {
      const mm = proc(ctx, 'mmap', s);
      const nrPages = sizePages('len', s.len);
      const vpn = s.addr === undefined ? undefined : addrVpn(ctx, 'addr', s.addr);
      const p = prot('prot', s.prot);
      let rc = doMmap(ctx.m, mm, { nrPages, vpn, prot: p, shared: s.shared === true, hugetlb: s.hugetlb === true,
        pfnmap: s.pfnmap === true, populate: false });
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
    fields: { proc: 'string', addr: 'addr', len: 'size', write: 'boolean', value: 'number' }, required: ['proc', 'addr'],
    run(ctx, s) {
      const mm = proc(ctx, 'touch', s);
      const vpn = addrVpn(ctx, 'addr', s.addr);
      const nrPages = s.len === undefined ? mapLen(ctx, s.addr, vpn) : sizePages('len', s.len);
      const write = s.write !== false;
      for (let i = 0; i < nrPages; i++) {
        const r = userAccess(ctx.m, mm, vpn + i, write, typeof s.value === 'number' ? s.value + i : vpn + i);
        if (r < 0) return { rc: r, detail: `at ${hex(vpn + i)}` };
      }
      return { rc: 0, detail: residency(ctx.m, mm, vpn, nrPages) };
    },
  },
  write: {
    fields: { proc: 'string', addr: 'addr', value: 'number' }, required: ['proc', 'addr', 'value'],
    run(ctx, s) {
      const mm = proc(ctx, 'write', s);
      const vpn = addrVpn(ctx, 'addr', s.addr);
      const r = userAccess(ctx.m, mm, vpn, true, s.value as number);
      return { rc: r < 0 ? r : 0, detail: r < 0 ? '' : `${hex(vpn)} = ${r}` };
    },
  },
  read: {
    fields: { proc: 'string', addr: 'addr', value: 'number' }, required: ['proc', 'addr'],
    run(ctx, s) {
      const mm = proc(ctx, 'read', s);
      const vpn = addrVpn(ctx, 'addr', s.addr);
      const r = userAccess(ctx.m, mm, vpn, false);
      if (r < 0) return { rc: r, detail: '' };
      if (typeof s.value === 'number' && r !== s.value >>> 0) return { rc: r, detail: `${hex(vpn)} = ${r}, expected ${s.value}`, bad: true };
      return { rc: r, detail: `${hex(vpn)} = ${r}` };
    },
  },
  munmap: {
    fields: { proc: 'string', addr: 'addr', len: 'size' }, required: ['proc', 'addr'],
    run(ctx, s) {
      const mm = proc(ctx, 'munmap', s);
      const vpn = addrVpn(ctx, 'addr', s.addr);
      const n = s.len === undefined ? mapLen(ctx, s.addr, vpn) : sizePages('len', s.len);
      return { rc: doMunmap(ctx.m, mm, vpn, n), detail: `${hex(vpn)} ${n} pages` };
    },
  },
  mprotect: {
    fields: { proc: 'string', addr: 'addr', len: 'size', prot: 'string' }, required: ['proc', 'addr', 'prot'],
    run(ctx, s) {
      const mm = proc(ctx, 'mprotect', s);
      const vpn = addrVpn(ctx, 'addr', s.addr);
      const n = s.len === undefined ? mapLen(ctx, s.addr, vpn) : sizePages('len', s.len);
      return { rc: doMprotect(ctx.m, mm, vpn, n, prot('prot', s.prot)), detail: '' };
    },
  },
  madvise: {
    fields: { proc: 'string', addr: 'addr', len: 'size', advice: 'string' }, required: ['proc', 'addr', 'advice'],
    run(ctx, s) {
      const mm = proc(ctx, 'madvise', s);
      const vpn = addrVpn(ctx, 'addr', s.addr);
      const n = s.len === undefined ? mapLen(ctx, s.addr, vpn) : sizePages('len', s.len);
      const advice = { dontneed: MADV_DONTNEED, hugepage: MADV_HUGEPAGE, nohugepage: MADV_NOHUGEPAGE, populate_write: MADV_POPULATE_WRITE }[String(s.advice)];
      if (advice === undefined) fail('advice', `'${String(s.advice)}' is not dontneed, hugepage, nohugepage or populate_write`);
      return { rc: doMadvise(ctx.m, mm, vpn, n, advice), detail: residency(ctx.m, mm, vpn, n) };
    },
  },
  fork: {
    fields: { proc: 'string', child: 'string' }, required: ['proc', 'child'],
    run(ctx, s) {
      const mm = proc(ctx, 'fork', s);
      if (ctx.procs.has(s.child as string)) fail('child', `process '${s.child}' exists`);
      const c = doFork(ctx.m, mm);
      if (c >= 0) ctx.procs.set(s.child as string, c);
      return { rc: c < 0 ? c : 0, detail: c < 0 ? '' : `child mm ${c}` };
    },
  },
  exit: {
    fields: { proc: 'string' }, required: ['proc'],
    run(ctx, s) {
      const mm = proc(ctx, 'exit', s);
      exitMmap(ctx.m, mm);
      ctx.procs.delete(s.proc as string);
      for (const [k, v] of ctx.maps) if (v.proc === s.proc) ctx.maps.delete(k);
      return { rc: 0, detail: '' };
    },
  },
  online: {
    fields: { block: 'number', type: 'string' }, required: ['block'],
    run(ctx, s) {
      const b = blockIndex(ctx, s);
      const type = s.type === undefined ? 'online' : String(s.type);
      if (!['online', 'online_kernel', 'online_movable'].includes(type)) fail('type', `'${type}' is not online, online_kernel or online_movable`);
      return { rc: memoryBlockStore(ctx.m, b, type), detail: `memory${b}` };
    },
  },
  offline: {
    fields: { block: 'number', passes: 'number' }, required: ['block'],
    run(ctx, s) {
      const b = blockIndex(ctx, s);
      const report: OfflineReport = { reason: '', pfn: -1, passes: 0, failures: [] };
      const rc = memoryBlockStore(ctx.m, b, 'offline', { report, passesMax: typeof s.passes === 'number' ? s.passes : undefined });
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
    fields: { proc: 'string', addr: 'addr', len: 'size', to: 'string' }, required: ['proc', 'addr'],
    run(ctx, s) {
      const mm = proc(ctx, 'migrate', s);
      const vpn = addrVpn(ctx, 'addr', s.addr);
      const n = s.len === undefined ? mapLen(ctx, s.addr, vpn) : sizePages('len', s.len);
      const to = s.to === undefined ? 'any' : String(s.to);
      if (!['kernel', 'movable', 'any'].includes(to)) fail('to', `'${to}' is not kernel, movable or any`);
      const r = migrateRange(ctx.m, mm, vpn, n, to as 'kernel' | 'movable' | 'any');
      return { rc: r.rc, detail: `${r.migrated} migrated, ${r.failed} failed; ${residency(ctx.m, mm, vpn, n)}` };
    },
  },
  drain: {
    fields: {}, required: [],
    run(ctx) {
      lruAddDrainAll(ctx.m);
      drainAllPages(ctx.m);
      return { rc: 0, detail: 'lru_add_drain_all + drain_all_pages' };
    },
  },
  zones: {
    fields: {}, required: [],
    run(ctx) {
      return { rc: 0, detail: zoneSummary(ctx.m) };
    },
  },
  ...PIN_STEPS,
};

function mapLen(ctx: ScenarioContext, addr: unknown, vpn: number): number {
  if (typeof addr === 'string') {
    const map = ctx.maps.get(addr);
    if (map) return map.nrPages - (vpn - map.vpn);
  }
  return fail('len', "needs 'len:' unless 'addr:' names a whole mapping");
}

function blockIndex(ctx: ScenarioContext, s: Step): number {
  const b = s.block;
  if (typeof b !== 'number' || !Number.isInteger(b) || !blockPresent(ctx.m, b)) fail('block', `no memory block ${JSON.stringify(b)}`);
  return b;
}

export function zoneSummary(m: Memmap): string {
  const parts: string[] = [];
  for (let z = 0; z < ZONE_NAMES.length; z++) {
    const zi = zoneInfo(m, z);
    if (!zi.managed && !zi.present) continue;
    parts.push(`${zi.name}: free ${zi.free}/${zi.managed} min ${zi.min}`);
  }
  return parts.join('; ');
}

/** Parse and validate a scenario file; any problem is a ScenarioError naming the file and step. */
export function loadScenario(file: string, text?: string): Scenario {
  let raw: unknown;
  try {
    raw = parseYaml(text ?? fs.readFileSync(file, 'utf8'));
  } catch (e) {
    const msg = (e as Error).message.split('\n')[0];
    throw new ScenarioError(`${file}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : `not valid YAML/JSON: ${msg}`}`);
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new ScenarioError(`${file}: expected a mapping with 'machine' and 'steps'`);
  const r = raw as Record<string, unknown>;
  for (const k of Object.keys(r)) if (!['machine', 'steps', 'description', 'kernels'].includes(k)) throw new ScenarioError(`${file}: unknown top-level key '${k}' (machine, steps, description, kernels)`);
  const machine = r.machine as Record<string, unknown> | undefined;
  if (!machine || typeof machine.cmdline !== 'string') throw new ScenarioError(`${file}: machine.cmdline (a kernel command line) is required`);
  for (const k of Object.keys(machine)) if (!['cmdline', 'geometry', 'kernel'].includes(k)) throw new ScenarioError(`${file}: unknown key 'machine.${k}' (cmdline, geometry, kernel)`);
  if (machine.geometry !== undefined && typeof machine.geometry !== 'string') throw new ScenarioError(`${file}: machine.geometry must be a string`);
  if (machine.kernel !== undefined) checkKernel(file, 'machine.kernel', machine.kernel);
  let kernels: string[] | undefined;
  if (r.kernels !== undefined) {
    if (!Array.isArray(r.kernels) || !r.kernels.length) throw new ScenarioError(`${file}: kernels must be a non-empty list of kernel variants`);
    kernels = r.kernels.map((k, i) => checkKernel(file, `kernels[${i}]`, k));
  }
  if (!Array.isArray(r.steps)) throw new ScenarioError(`${file}: steps must be a list`);
  const steps = r.steps.map((s, i) => validateStep(file, i + 1, s));
  return { description: typeof r.description === 'string' ? r.description : undefined,
    machine: { cmdline: machine.cmdline, geometry: machine.geometry as string | undefined, kernel: machine.kernel as string | undefined }, kernels, steps };
}

function checkKernel(file: string, where: string, k: unknown): string {
  if (typeof k !== 'string') throw new ScenarioError(`${file}: ${where} must be a kernel variant name like v6.12+R3`);
  try { parseVariant(k); } catch (e) {
    if (e instanceof VariantError) throw new ScenarioError(`${file}: ${where}: ${e.message}`);
    throw e;
  }
  return k;
}

function validExpectValue(v: unknown): boolean {
  return typeof v === 'number' || (typeof v === 'string' && (errnoByName(v) !== undefined || v === 'killed' || v === 'panic'));
}

function validateStep(file: string, n: number, s: unknown): Step {
  const where = `${file}: step ${n}`;
  if (typeof s !== 'object' || s === null || Array.isArray(s)) throw new ScenarioError(`${where}: a step is a mapping with 'op'`);
  const st = s as Step;
  if (st.op === undefined) throw new ScenarioError(`${where}: a step needs 'op' (ops: ${Object.keys(STEP_KINDS).join(', ')})`);
  const kind = typeof st.op === 'string' && Object.hasOwn(STEP_KINDS, st.op) ? STEP_KINDS[st.op] : undefined;
  if (!kind) throw new ScenarioError(`${where}: unknown op '${String(st.op)}' (ops: ${Object.keys(STEP_KINDS).join(', ')})`);
  for (const k of Object.keys(st)) {
    if (k === 'op' || k === 'expect' || k === 'expect_match') continue;
    if (!Object.hasOwn(kind.fields, k)) throw new ScenarioError(`${where}: op ${st.op} has no field '${k}' (fields: ${Object.keys(kind.fields).join(', ') || 'none'})`);
    const type = kind.fields[k]!;
    const v = st[k];
    const bad = (type === 'boolean' && typeof v !== 'boolean') || (type === 'number' && typeof v !== 'number')
      || (type === 'string' && typeof v !== 'string') || ((type === 'size' || type === 'addr') && typeof v !== 'string' && typeof v !== 'number');
    if (bad) throw new ScenarioError(`${where}: op ${st.op} field '${k}' must be a ${type === 'addr' ? 'address' : type}, got ${JSON.stringify(v)}`);
  }
  for (const k of kind.required) if (st[k] === undefined) throw new ScenarioError(`${where}: op ${st.op} needs '${k}'`);
  for (const [key, allowed] of [['expect', 'a number, a known errno like -ENOMEM, killed or panic'], ['expect_match', 'a regular expression']] as const) {
    const e = st[key];
    if (e === undefined) continue;
    const values = typeof e === 'object' && e !== null && !Array.isArray(e) ? Object.entries(e) : [['', e] as const];
    for (const [k, v] of values) {
      if (k && k !== 'default' && !/^\+R[0-9]+$/.test(k)) checkKernel(file, `step ${n} ${key} key`, k);
      const ok = key === 'expect' ? validExpectValue(v) : typeof v === 'string' && isRegex(v);
      if (!ok) throw new ScenarioError(`${where}: ${key}${k ? `[${k}]` : ''} must be ${allowed}, got ${JSON.stringify(v)}`);
    }
  }
  return st;
}

function isRegex(s: string): boolean {
  try { new RegExp(s); return true; } catch { return false; }
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

/** Run a loaded scenario under one kernel variant. ScenarioError from a step names the step. */
export function runScenario(file: string, sc: Scenario, out: (line: string) => void = () => {}, kernel = scenarioKernels(sc)[0]!): ScenarioRun {
  let variantNow;
  try { variantNow = parseVariant(kernel); } catch (e) {
    if (e instanceof VariantError) throw new ScenarioError(`--kernel: ${e.message}`);
    throw e;
  }
  const prevVariant = setVariant(variantNow);
  const prevFaults = { ...gupFaults };
  let booted;
  try {
    booted = bootFromSpec(sc.machine);
  } catch (e) {
    setVariant(prevVariant);
    if (e instanceof CmdlineError) throw new ScenarioError(`${file}: machine: ${e.message}`);
    throw e;
  }
  for (const w of bootWarnings.get(booted.m) ?? []) out(`# warning: ${w}`);
  const ctx: ScenarioContext = { m: booted.m, procs: new Map(), maps: new Map(), dead: new Map(), held: new Map(), step: 0, out };
  const task = newTask(1, 'scenario', 0);
  const prev = setCurrent(task);
  const results: StepResult[] = [];
  let panic: string | undefined;
  oomKills.length = 0;
  try {
    for (let i = 0; i < sc.steps.length && panic === undefined; i++) {
      const s = sc.steps[i]!;
      ctx.step = i + 1;
      task.mm = typeof s.proc === 'string' ? ctx.procs.get(s.proc) ?? -1 : -1;
      task.fatalSignal = false;
      let r: { rc: number; detail: string; bad?: boolean };
      try {
        // a process the OOM killer took is gone: every step naming it fails as a syscall on a dead pid would
        const deadAt = typeof s.proc === 'string' ? ctx.dead.get(s.proc) : undefined;
        r = deadAt !== undefined ? { rc: -ESRCH, detail: `${s.proc} was killed by the OOM killer at step ${deadAt}` } : STEP_KINDS[s.op]!.run(ctx, s);
      } catch (e) {
        if (e instanceof ScenarioError) throw new ScenarioError(`${file}: step ${i + 1} (${s.op}): ${e.message}`);
        if (!(e instanceof KernelPanic)) throw e;
        panic = e.message;
        r = { rc: 0, detail: panic };
      }
      const killed = reapOomKills(ctx);
      const selfKilled = task.mm >= 0 && killed.includes(task.mm);
      const result = panic !== undefined ? 'panic' : r.rc < 0 ? errname(r.rc) : String(r.rc);
      const exp = expectationFor(s.expect, kernel);
      const match = expectationFor(s.expect_match, kernel);
      let ok = !r.bad;
      if (exp !== undefined) {
        ok = ok && (exp === 'killed' ? selfKilled : exp === 'panic' ? panic !== undefined : typeof exp === 'number' ? r.rc === exp : result === exp);
      }
      if (typeof match === 'string') ok = ok && new RegExp(match).test(r.detail);
      const res: StepResult = { step: i + 1, op: s.op, proc: typeof s.proc === 'string' ? s.proc : undefined, rc: r.rc, result, detail: r.detail, ok };
      results.push(res);
      out(formatResult(res, exp, match));
      for (const k of lastKills) out(`      Out of memory: Killed process ${k.pid} (${k.name}) anon-rss:${k.rss * 4}kB, oom_score ${k.badness}${k.reaped ? `; reaped ${k.reaped} pages` : ''}`);
      if (panic !== undefined) out(`      ${panic}`);
    }
  } finally {
    setCurrent(prev);
    setVariant(prevVariant);
    Object.assign(gupFaults, prevFaults);
  }
  return { file, kernel, results, ok: results.every((r) => r.ok), panic, layout: layoutJson(booted.m, booted.params), vmstat: vmstatSnapshot(booted.m) };
}

let lastKills: { pid: number; name: string; rss: number; badness: number; reaped: number }[] = [];

/** Move processes the OOM killer took into ctx.dead; returns their mms. */
function reapOomKills(ctx: ScenarioContext): number[] {
  lastKills = [];
  const mms: number[] = [];
  for (const k of oomKills) {
    for (const [name, mm] of ctx.procs) {
      if (mm !== k.mm) continue;
      ctx.procs.delete(name);
      ctx.dead.set(name, ctx.step);
      if (k.self) exitMmap(ctx.m, mm); // the victim was current: it exits on its way out of the kernel
      lastKills.push({ pid: k.pid, name, rss: k.rssBefore, badness: k.badness, reaped: k.reaped });
    }
    mms.push(k.mm);
  }
  oomKills.length = 0;
  return mms;
}

function formatResult(r: StepResult, exp: number | string | undefined, match: number | string | undefined): string {
  const who = r.proc ? `${r.proc}: ` : '';
  const want = [exp !== undefined ? String(exp) : '', typeof match === 'string' ? `/${match}/` : ''].filter(Boolean).join(' ');
  const tag = want ? (r.ok ? ` (expected ${want}: ok)` : ` (EXPECTED ${want}: MISMATCH)`) : !r.ok ? ' (MISMATCH)' : '';
  return `[${String(r.step).padStart(3)}] ${who}${r.op} -> ${r.result}${tag}${r.detail ? `  ${r.detail}` : ''}`;
}
