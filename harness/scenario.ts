// Scripted scenarios: a machine, processes and a list of steps, run deterministically on one thread.
// The format is documented in docs/scenarios.md; YAML or JSON (JSON is YAML). Every step prints its
// result (errno, pages, zones); an `expect:` on a step turns a mismatch into a failed scenario.

import * as fs from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { Memmap, PAGE_SIZE, PG_zero } from '../mm/memmap';
import { memparse, CmdlineError } from '../mm/cmdline';
import { bootFromSpec, layoutJson } from './layout';
import { mmCreate, doMmap, doMunmap, doMprotect, doMadvise, doFork, exitMmap, PROT_READ, PROT_WRITE, MADV_DONTNEED,
  MADV_HUGEPAGE, MADV_NOHUGEPAGE, MADV_POPULATE_WRITE, populateRange } from '../mm/mmap';
import { userAccess, ptlLock, ptlUnlock, lookupLocked } from '../mm/memory';
import { memoryBlockStore, OfflineReport, blockPresent } from '../mm/memory_hotplug';
import { errname, errnoByName } from '../mm/errno';
import { ZONE_NAMES } from '../mm/mmzone';
import { vmstatSnapshot, zoneInfo } from '../mm/vmstat';
import { drainAllPages } from '../mm/page_alloc';
import { lruAddDrainAll } from '../mm/swap';
import { migrateRange } from '../mm/migrate';
import { setCurrent, current } from '../mm/sched';

export class ScenarioError extends Error {
  constructor(msg: string) {
    super(msg);
    this.name = 'ScenarioError';
  }
}

export type Step = Record<string, unknown> & { op: string };

export interface Scenario {
  machine: { cmdline: string; geometry?: string };
  steps: Step[];
}

export interface StepResult {
  step: number;
  op: string;
  proc?: string;
  rc: number;
  /** errno name for rc < 0, else the value */
  result: string;
  detail: string;
  ok: boolean;
}

export interface ScenarioRun {
  file: string;
  results: StepResult[];
  ok: boolean;
  layout: ReturnType<typeof layoutJson>;
  vmstat: Record<string, number>;
}

/** The state a scenario's steps share: the machine, named processes and named mappings. */
export interface ScenarioContext {
  m: Memmap;
  procs: Map<string, number>;
  /** name -> first vpn and length in pages */
  maps: Map<string, { proc: string; vpn: number; nrPages: number }>;
  out: (line: string) => void;
}

/** A step kind: validates its fields (throwing ScenarioError) and runs. */
export interface StepKind {
  fields: Record<string, 'string' | 'number' | 'size' | 'addr' | 'boolean' | 'any'>;
  required: string[];
  run(ctx: ScenarioContext, s: Step): { rc: number; detail: string; bad?: boolean };
}

function fail(where: string, what: string): never {
  throw new ScenarioError(`${where}: ${what}`);
}

/** A size: bytes with K/M/G, a number of bytes, or "Np" pages; must be whole pages. */
export function sizePages(where: string, v: unknown): number {
  let bytes: number;
  if (typeof v === 'number') bytes = v;
  else if (typeof v === 'string' && /^[0-9]+p$/.test(v)) bytes = Number(v.slice(0, -1)) * PAGE_SIZE;
  else if (typeof v === 'string') {
    try { bytes = memparse('size', v); } catch { fail(where, `bad size '${v}' (bytes with K/M/G, or Np for pages)`); }
  } else fail(where, `bad size ${JSON.stringify(v)}`);
  if (!Number.isSafeInteger(bytes) || bytes <= 0 || bytes % PAGE_SIZE) fail(where, `size ${JSON.stringify(v)} is not a positive whole number of 4K pages`);
  return bytes / PAGE_SIZE;
}

/** An address: a mapping name with an optional +offset ("buf+8K"), or a hex/decimal byte address. */
export function addrVpn(ctx: ScenarioContext, where: string, v: unknown): number {
  if (typeof v === 'number') return checkAligned(where, v);
  if (typeof v !== 'string') fail(where, `bad address ${JSON.stringify(v)}`);
  const mt = /^([A-Za-z_][A-Za-z0-9_]*)(?:\+(.+))?$/.exec(v);
  if (mt) {
    const map = ctx.maps.get(mt[1]!);
    if (!map) fail(where, `unknown mapping '${mt[1]}' (name one with 'as:' on an mmap step)`);
    const off = mt[2] === undefined ? 0 : offsetBytes(where, mt[2]);
    return map.vpn + checkAligned(where, off);
  }
  return checkAligned(where, offsetBytes(where, v));
}

function offsetBytes(where: string, s: string): number {
  if (/^[0-9]+p$/.test(s)) return Number(s.slice(0, -1)) * PAGE_SIZE;
  try { return memparse('address', s); } catch { return fail(where, `bad address or offset '${s}'`); }
}

function checkAligned(where: string, bytes: number): number {
  if (!Number.isSafeInteger(bytes) || bytes < 0 || bytes % PAGE_SIZE) fail(where, `address ${bytes} is not page aligned`);
  return bytes / PAGE_SIZE;
}

function proc(ctx: ScenarioContext, where: string, s: Step): number {
  const name = s.proc;
  if (typeof name !== 'string') fail(where, "needs 'proc:' (a process name)");
  const mm = ctx.procs.get(name);
  if (mm === undefined) fail(where, `unknown process '${name}' (create it with 'op: spawn' or 'op: fork')`);
  return mm;
}

function prot(where: string, v: unknown): number {
  if (v === undefined) return PROT_READ | PROT_WRITE;
  if (v === 'none') return 0;
  if (typeof v !== 'string' || !/^r?w?$/.test(v)) fail(where, `prot '${String(v)}' is not one of r, rw, w, none`);
  return (v.includes('r') ? PROT_READ : 0) | (v.includes('w') ? PROT_WRITE : 0);
}

/** "16 pages (Movable 12, Normal 4)": where the range's present pages live. */
export function residency(m: Memmap, mm: number, vpn: number, nrPages: number): string {
  const byZone = new Array(ZONE_NAMES.length).fill(0);
  let present = 0;
  let zero = 0;
  ptlLock(m, mm);
  for (let v = vpn; v < vpn + nrPages; v++) {
    const t = lookupLocked(m, mm, v);
    if (!t || t.migrating) continue;
    if (m.flags[t.pfn]! & PG_zero) { zero++; continue; }
    present++;
    byZone[m.pageZonenum(t.pfn)]++;
  }
  ptlUnlock(m, mm);
  const zones = byZone.map((n, z) => (n ? `${ZONE_NAMES[z]} ${n}` : '')).filter(Boolean);
  return `${present} pages present${zones.length ? ` (${zones.join(', ')})` : ''}${zero ? `, ${zero} zero-page` : ''}`;
}

const hex = (vpn: number) => '0x' + (vpn * PAGE_SIZE).toString(16);

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
  for (const k of Object.keys(r)) if (!['machine', 'steps', 'description'].includes(k)) throw new ScenarioError(`${file}: unknown top-level key '${k}' (machine, steps, description)`);
  const machine = r.machine as Record<string, unknown> | undefined;
  if (!machine || typeof machine.cmdline !== 'string') throw new ScenarioError(`${file}: machine.cmdline (a kernel command line) is required`);
  for (const k of Object.keys(machine)) if (!['cmdline', 'geometry'].includes(k)) throw new ScenarioError(`${file}: unknown key 'machine.${k}' (cmdline, geometry)`);
  if (machine.geometry !== undefined && typeof machine.geometry !== 'string') throw new ScenarioError(`${file}: machine.geometry must be a string`);
  if (!Array.isArray(r.steps)) throw new ScenarioError(`${file}: steps must be a list`);
  const steps = r.steps.map((s, i) => validateStep(file, i + 1, s));
  return { machine: { cmdline: machine.cmdline, geometry: machine.geometry as string | undefined }, steps };
}

function validateStep(file: string, n: number, s: unknown): Step {
  const where = `${file}: step ${n}`;
  if (typeof s !== 'object' || s === null || Array.isArray(s)) throw new ScenarioError(`${where}: a step is a mapping with 'op'`);
  const st = s as Step;
  if (st.op === undefined) throw new ScenarioError(`${where}: a step needs 'op' (ops: ${Object.keys(STEP_KINDS).join(', ')})`);
  const kind = typeof st.op === 'string' && Object.hasOwn(STEP_KINDS, st.op) ? STEP_KINDS[st.op] : undefined;
  if (!kind) throw new ScenarioError(`${where}: unknown op '${String(st.op)}' (ops: ${Object.keys(STEP_KINDS).join(', ')})`);
  for (const k of Object.keys(st)) {
    if (k === 'op' || k === 'expect') continue;
    if (!Object.hasOwn(kind.fields, k)) throw new ScenarioError(`${where}: op ${st.op} has no field '${k}' (fields: ${Object.keys(kind.fields).join(', ') || 'none'})`);
    const type = kind.fields[k]!;
    const v = st[k];
    const bad = (type === 'boolean' && typeof v !== 'boolean') || (type === 'number' && typeof v !== 'number')
      || (type === 'string' && typeof v !== 'string') || ((type === 'size' || type === 'addr') && typeof v !== 'string' && typeof v !== 'number');
    if (bad) throw new ScenarioError(`${where}: op ${st.op} field '${k}' must be a ${type === 'addr' ? 'address' : type}, got ${JSON.stringify(v)}`);
  }
  for (const k of kind.required) if (st[k] === undefined) throw new ScenarioError(`${where}: op ${st.op} needs '${k}'`);
  if (st.expect !== undefined && typeof st.expect !== 'number' && !(typeof st.expect === 'string' && errnoByName(st.expect) !== undefined)) {
    throw new ScenarioError(`${where}: expect must be a number or a known errno like -ENOMEM, got ${JSON.stringify(st.expect)}`);
  }
  return st;
}

/** Run a loaded scenario. ScenarioError from a step (a bad address, an unknown name) names the step. */
export function runScenario(file: string, sc: Scenario, out: (line: string) => void = () => {}): ScenarioRun {
  let booted;
  try {
    booted = bootFromSpec(sc.machine);
  } catch (e) {
    if (e instanceof CmdlineError) throw new ScenarioError(`${file}: machine: ${e.message}`);
    throw e;
  }
  const ctx: ScenarioContext = { m: booted.m, procs: new Map(), maps: new Map(), out };
  const prev = setCurrent({ ...current(), pid: 1, comm: 'scenario', cpu: 0, flags: 0, sigpending: false, fatalSignal: false });
  const results: StepResult[] = [];
  try {
    sc.steps.forEach((s, i) => {
      let r: { rc: number; detail: string; bad?: boolean };
      try {
        r = STEP_KINDS[s.op]!.run(ctx, s);
      } catch (e) {
        if (e instanceof ScenarioError) throw new ScenarioError(`${file}: step ${i + 1} (${s.op}): ${e.message}`);
        throw e;
      }
      const result = r.rc < 0 ? errname(r.rc) : String(r.rc);
      let ok = !r.bad;
      if (s.expect !== undefined) ok = ok && (typeof s.expect === 'number' ? r.rc === s.expect : result === s.expect);
      const res: StepResult = { step: i + 1, op: s.op, proc: typeof s.proc === 'string' ? s.proc : undefined, rc: r.rc, result, detail: r.detail, ok };
      results.push(res);
      out(formatResult(res, s));
    });
  } finally {
    setCurrent(prev);
  }
  return { file, results, ok: results.every((r) => r.ok), layout: layoutJson(booted.m, booted.params), vmstat: vmstatSnapshot(booted.m) };
}

function formatResult(r: StepResult, s: Step): string {
  const who = r.proc ? `${r.proc}: ` : '';
  const exp = s.expect !== undefined ? (r.ok ? ` (expected ${s.expect}: ok)` : ` (EXPECTED ${s.expect}: MISMATCH)`) : !r.ok ? ' (MISMATCH)' : '';
  return `[${String(r.step).padStart(3)}] ${who}${r.op} -> ${r.result}${exp}${r.detail ? `  ${r.detail}` : ''}`;
}
