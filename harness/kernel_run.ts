// Boot a kernel in qemu-system-x86_64 (TCG) with a compiled scenario and turn the probe's JSON lines
// into the same per-step report as `pinlab scenario`: rc or errno, where the pages are by zone,
// counters, the final zones and memory blocks. docs/real-kernel.md describes the pieces.

import * as fs from 'node:fs';
import { performance } from 'node:perf_hooks';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawn } from 'node:child_process';
import { CompiledScenario, COUNTERS } from './kernel_compile';
import { cpioNewc, KernelImage, moduleClosure } from './kernel_setup';
import { censusText, expectationFor, zoneText } from './scenario';
import { errname, ESRCH } from '../mm/errno';

export interface KernelStepResult {
  step: number;
  op: string;
  proc?: string;
  /** null when the process died inside the step (its syscall never returned) */
  rc: number | null;
  result: string;
  detail: string;
  ok: boolean;
  /** scenario processes the OOM killer took during this step */
  killed: string[];
  /** kernel log lines of the step: OOM kills, offline failures */
  log: string[];
  /** the probe's line for the step: addresses, residency, counters' deltas, VmLck/VmPin, time */
  raw: Record<string, unknown>;
}

export interface KernelZone {
  name: string;
  start_pfn: number;
  spanned: number;
  present: number;
  managed: number;
  free: number;
  min: number;
  /** pages on the per-CPU lists (the pagesets' count: lines), not in free */
  pcp?: number;
  /** zoneinfo's "cma": the zone's CMA area pages (zone->cma_pages) */
  cma?: number;
  /** the zone's node ("Node N, zone ...") */
  node?: number;
}
export interface KernelBlock {
  index: number;
  state: string;
  valid_zones: string;
}

export interface KernelRun {
  file: string;
  kernel: string;
  release: string;
  /** the model variant whose expectations applied */
  variant: string;
  cmdline: string;
  qemu: string[];
  warnings: string[];
  /** what the guest's /init said: modules loaded or not */
  init: string[];
  results: KernelStepResult[];
  ok: boolean;
  panic?: string;
  /** the run did not finish: QEMU timed out or the probe broke */
  error?: string;
  zones: KernelZone[];
  blocks: KernelBlock[];
  /** counters' change from the probe's start to its end (those this kernel has) */
  vmstat: Record<string, number>;
  thp?: string;
  time: { boot_ms: number; steps_ms: number; wall_ms: number };
}

export interface RunOptions {
  timeoutMs: number;
  keep?: boolean;
  /** module names to insmod before the probe runs, dependencies first */
  load?: string[];
}

/** qemu-system-x86_64's arguments for a run (TCG: this host has no usable KVM). */
export function qemuArgs(
  c: CompiledScenario,
  kernel: KernelImage,
  initrd: string,
  consoleFile: string,
  resultFile: string,
): string[] {
  return [
    '-M',
    c.machine.machineType,
    '-accel',
    'tcg',
    '-cpu',
    'qemu64',
    '-m',
    `${c.machine.memMiB}M`,
    '-smp',
    '1',
    '-nodefaults',
    '-no-user-config',
    '-display',
    'none',
    '-monitor',
    'none',
    '-no-reboot',
    '-kernel',
    kernel.bzImage,
    '-initrd',
    initrd,
    '-append',
    c.machine.cmdline,
    '-serial',
    `file:${consoleFile}`,
    '-serial',
    `file:${resultFile}`,
    ...(c.machine.devices ?? []),
  ];
}

/** How long a guest that ran every step may take to power off before QEMU is stopped. */
const POWEROFF_GRACE_MS = 15_000;

/** Boot, run, collect. Never throws for what the guest does; SetupError for a missing QEMU. */
export async function runOnKernel(
  file: string,
  c: CompiledScenario,
  kernel: KernelImage,
  baseInitrd: string,
  opts: RunOptions,
): Promise<KernelRun> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pinlab-kernel-'));
  const consoleFile = path.join(dir, 'console.log');
  const resultFile = path.join(dir, 'results.jsonl');
  const initrd = path.join(dir, 'initrd.cpio');
  const extra: { name: string; data?: Buffer; mode?: number; dir?: boolean }[] = [
    { name: 'prog.txt', data: Buffer.from(c.program) },
  ];
  // --load's modules, then the device steps' (vfio-pci and vfio_iommu_type1 for vfio-type1)
  const load = [...(opts.load ?? []), ...(c.modules ?? [])];
  if (load.length) {
    if (!kernel.modulesDir) throw new Error(`--load: ${kernel.spec} has no modules directory (give --modules DIR)`);
    const mods = moduleClosure(kernel.modulesDir, load);
    for (const m of mods) extra.push({ name: `lib/modules/${m.name}.ko`, data: m.data });
    // one line a module: its name, then what insmod is to set (the machine's module parameters)
    const args = c.machine.moduleArgs ?? {};
    const list = mods.map((m) => [m.name, args[m.name] ?? ''].join(' ').trim());
    extra.push({ name: 'modules.list', data: Buffer.from(list.join('\n') + '\n') });
  }
  // the kernel unpacks concatenated archives in turn: the cached base, then this run's program
  fs.writeFileSync(initrd, Buffer.concat([fs.readFileSync(baseInitrd), cpioNewc(extra)]));
  const args = qemuArgs(c, kernel, initrd, consoleFile, resultFile);
  const t0 = performance.now(); // the guest's wall time, for the report only
  const exit = await new Promise<{ code: number | null; timedOut: boolean; spawnError?: string; stuck?: boolean }>(
    (resolve) => {
      const q = spawn('qemu-system-x86_64', args, { stdio: ['ignore', 'ignore', 'pipe'] });
      let stderr = '';
      q.stderr.on('data', (d: Buffer) => {
        stderr += d.toString();
      });
      let timedOut = false;
      const timer = setTimeout(() => {
        timedOut = true;
        q.kill('SIGKILL');
      }, opts.timeoutMs);
      // once the probe has written its end record, the guest has POWEROFF_GRACE_MS to power off: a task an
      // oops killed while it held a device's lock (an offline) blocks device_shutdown() for good
      let endSeen = 0;
      let stuck = false;
      let size = 0;
      const poll = setInterval(() => {
        if (!endSeen) {
          const now = fs.existsSync(resultFile) ? fs.statSync(resultFile).size : 0;
          if (now !== size && fs.readFileSync(resultFile, 'utf8').includes('{"end":')) endSeen = performance.now();
          size = now;
        } else if (performance.now() - endSeen > POWEROFF_GRACE_MS && !stuck) {
          stuck = true;
          q.kill('SIGKILL');
        }
      }, 250);
      const done = (): void => {
        clearTimeout(timer);
        clearInterval(poll);
      };
      q.on('error', (e) => {
        done();
        resolve({ code: null, timedOut: false, spawnError: e.message });
      });
      q.on('exit', (code) => {
        done();
        if (stuck) {
          resolve({ code: 0, timedOut: false, stuck: true });
          return;
        }
        resolve({
          code,
          timedOut,
          spawnError: code !== 0 && !timedOut && stderr.trim() ? stderr.trim().split('\n').pop() : undefined,
        });
      });
    },
  );
  const wall = Math.round(performance.now() - t0);
  const lines = fs.existsSync(resultFile) ? fs.readFileSync(resultFile, 'utf8').split(/\r?\n/) : [];
  const consoleText = fs.existsSync(consoleFile) ? fs.readFileSync(consoleFile, 'latin1') : '';
  if (!opts.keep) fs.rmSync(dir, { recursive: true, force: true });
  const run = buildReport(file, c, kernel, lines, consoleText);
  run.qemu = ['qemu-system-x86_64', ...args];
  run.time.wall_ms = wall;
  if (exit.spawnError && !run.error) run.error = `qemu-system-x86_64: ${exit.spawnError}`;
  if (exit.timedOut && !run.error) run.error = `timed out after ${Math.round(opts.timeoutMs / 1000)} s (--timeout)`;
  if (exit.stuck) {
    run.warnings.push(
      `the guest did not power off within ${POWEROFF_GRACE_MS / 1000} s of its last step (stopped): a task the kernel killed holds a lock shutdown needs; the console has its trace`,
    );
  }
  if (opts.keep) run.warnings.push(`kept ${dir}`);
  return run;
}

/** What the report accumulates over the steps: counters, pins, guest pids, the processes killed. */
interface ReportState {
  totals: Record<string, number>;
  pinPages: Map<string, number>;
  /** guest pid -> scenario process */
  pids: Map<number, string>;
  seenKilled: Set<string>;
  /** pins whose process died inside the pinning step */
  diedPins: Set<string>;
}

/** The probe's JSON records, and /init's own notes (a module that did not load). */
function parseProbeLines(lines: string[]): { recs: Record<string, unknown>[]; initLines: string[] } {
  const recs: Record<string, unknown>[] = [];
  const initLines: string[] = [];
  for (const l of lines) {
    if (l.startsWith('pinlab-init: ')) initLines.push(l.slice(13).trim());
    const i = l.indexOf('{');
    if (i < 0) continue;
    try {
      recs.push(JSON.parse(l.slice(i)) as Record<string, unknown>);
    } catch {
      /* a line cut short by a panic */
    }
  }
  return { recs, initLines };
}

/** The step a panic cut short: its OOM kills are on the console (pr_err, shown even with quiet). */
function panicResult(
  st: CompiledScenario['steps'][number],
  n: number,
  panicMsg: string,
  consoleText: string,
  state: ReportState,
  variant: string,
): KernelStepResult {
  const ok = expectationFor(st.expect, variant) === 'panic';
  const log = [...consoleText.matchAll(/Out of memory: Killed process \d+ \([^)]*\)[^\r\n]*/g)].map((m) => m[0]);
  const killed = log
    .map((l) => state.pids.get(Number(/Killed process (\d+)/.exec(l)![1])))
    .filter((x): x is string => x !== undefined && !state.seenKilled.has(x));
  return {
    step: n,
    op: st.op,
    proc: st.proc,
    rc: 0,
    result: 'panic',
    detail: `Kernel panic - not syncing: ${panicMsg}`,
    ok,
    killed,
    log: log.filter((l) => killed.some((k) => l.includes(`(${k.slice(0, 15)})`))),
    raw: {},
  };
}

/** One step's record as a result: rc (null when the process died in it), the detail, its expectation met or not. */
function stepResult(
  st: CompiledScenario['steps'][number],
  n: number,
  r: Record<string, unknown>,
  state: ReportState,
  variant: string,
): KernelStepResult {
  const d = (r.d ?? {}) as Record<string, number>;
  for (const [k, v] of Object.entries(d)) state.totals[k] = (state.totals[k] ?? 0) + v;
  const killed = (r.killed ?? []) as string[];
  for (const k of killed) state.seenKilled.add(k);
  if ((st.op === 'spawn' || st.op === 'fork') && r.rc === 0 && typeof r.aux === 'number')
    state.pids.set(r.aux, st.op === 'spawn' ? st.proc! : st.child!);
  const log = (r.log ?? []) as string[];
  let rc: number | null = typeof r.rc === 'number' ? r.rc : null;
  let detail: string;
  let bad = false;
  if (typeof r.error === 'string') {
    detail = `probe: ${r.error}`;
    bad = true;
  } else if (r.gone !== undefined) {
    rc = -ESRCH;
    detail = `${st.proc} was killed by the OOM killer at step ${r.gone}`;
  } else if (rc === null) {
    const how = killed.includes(st.proc ?? '') ? 'killed' : 'died';
    detail =
      st.op === 'pin' || st.op === 'pin_max' // the pinner taken by the OOM killer while its pin migrated pages
        ? `${r.addr ?? ''} ${(st.len ?? 0) / 4096} pages: outcome ${how}${typeof r.pinned === 'number' ? `; ${r.pinned} pinned before` : ''}${d.pgmigrate_success ? `; ${d.pgmigrate_success} migrated` : ''}`
        : `${st.proc} was ${how === 'killed' ? 'killed by the OOM killer' : 'ended by a signal'} inside the step`;
  } else {
    detail = stepDetail(st, r, rc, state.totals, state.pinPages, state.diedPins);
    if (st.op === 'call' && st.call === 'get_info' && rc > 0) rc = 0; // the ioctl's 0; the probe's rc counted ranges
  }
  if (rc === null && st.pin) state.diedPins.add(st.pin);
  if (rc !== null && st.op === 'read' && st.value !== undefined && rc >= 0 && rc >>> 0 !== st.value) {
    detail += `, expected ${st.value}`;
    bad = true;
  }
  // a sysfs write whose task died inside it: an oops (the model's KernelBug in that step kills its task too)
  const writerKilled = typeof r.writer_killed === 'number';
  if (writerKilled) detail += `; the writing task was killed inside the write (signal ${String(r.writer_killed)})`;
  const result = writerKilled
    ? 'killed'
    : rc === null
      ? killed.includes(st.proc ?? '')
        ? 'killed'
        : 'died'
      : rc < 0
        ? errname(rc)
        : String(rc);
  const exp = expectationFor(st.expect, variant);
  const match = expectationFor(st.expect_match, variant);
  let ok = !bad;
  if (exp !== undefined) {
    const self = st.proc !== undefined && killed.includes(st.proc);
    ok =
      ok &&
      (exp === 'killed'
        ? self || writerKilled
        : exp === 'panic'
          ? false
          : typeof exp === 'number'
            ? rc === exp && !writerKilled
            : result === exp);
  }
  if (typeof match === 'string') ok = ok && new RegExp(match).test(detail);
  return { step: n, op: st.op, proc: st.proc, rc, result, detail, ok, killed, log, raw: r };
}

/** The probe's lines (and the console, for a panic) as a report. Exported for the host tests. */
export function buildReport(
  file: string,
  c: CompiledScenario,
  kernel: Pick<KernelImage, 'spec' | 'release' | 'variant'>,
  lines: string[],
  consoleText = '',
): KernelRun {
  const { recs, initLines } = parseProbeLines(lines);
  const hello = recs.find((r) => r.hello) as
    { uptime_ms?: number; counters?: string[]; release?: string; thp?: string; zones?: KernelZone[] } | undefined;
  const end = recs.find((r) => r.end !== undefined) as
    { ms?: number; vmstat?: Record<string, number>; zones?: KernelZone[]; blocks?: KernelBlock[] } | undefined;
  const stepRecs = new Map<number, Record<string, unknown>>();
  for (const r of recs) if (typeof r.step === 'number') stepRecs.set(r.step, r);
  const run: KernelRun = {
    file,
    kernel: kernel.spec,
    release: hello?.release ?? kernel.release,
    variant: kernel.variant,
    cmdline: c.machine.cmdline,
    qemu: [],
    warnings: [...c.machine.warnings],
    init: initLines,
    results: [],
    ok: true,
    zones: end?.zones ?? [],
    blocks: end?.blocks ?? [],
    vmstat: end?.vmstat ?? {},
    thp: hello?.thp,
    time: { boot_ms: hello?.uptime_ms ?? 0, steps_ms: end?.ms ?? 0, wall_ms: 0 },
  };
  // rdma-umem: the probe's rdma link add before the first step
  const link = recs.find((r) => typeof r.rxelink === 'number')?.rxelink as number | undefined;
  if (link !== undefined)
    run.init.push(`rdma link add rxe0 type rxe netdev eth0: ${link < 0 ? `failed, ${errname(link)}` : 'ok'}`);
  const have = new Set(hello?.counters ?? COUNTERS);
  const state: ReportState = {
    totals: Object.fromEntries([...have].map((k) => [k, 0])),
    pinPages: new Map(),
    pids: new Map(),
    seenKilled: new Set(),
    diedPins: new Set(),
  };
  const panicMsg = /Kernel panic - not syncing: ([^\r\n]*)/.exec(consoleText)?.[1]?.trim();
  if (!hello) {
    run.ok = false;
    run.error = panicMsg
      ? `kernel panic before the probe started: ${panicMsg}`
      : `the probe never started (${lastConsoleLine(consoleText)})`;
    return run;
  }
  for (let i = 0; i < c.steps.length; i++) {
    const st = c.steps[i]!;
    const r = stepRecs.get(i + 1);
    if (!r) {
      if (panicMsg) {
        run.panic = panicMsg;
        run.results.push(panicResult(st, i + 1, panicMsg, consoleText, state, kernel.variant));
      } else if (!end) run.error = `no result for step ${i + 1} (${st.op}): ${lastConsoleLine(consoleText)}`;
      break;
    }
    run.results.push(stepResult(st, i + 1, r, state, kernel.variant));
  }
  if (!end && !run.panic && !run.error) run.error = `the probe did not finish: ${lastConsoleLine(consoleText)}`;
  run.ok = !run.error && run.results.length === c.steps.length && run.results.every((x) => x.ok);
  return run;
}

function lastConsoleLine(s: string): string {
  const l = s
    .split(/\r?\n/)
    .map((x) =>
      x
        .replace(/\x1b\[[0-9;?]*[A-Za-z]/g, '') /* eslint-disable-line no-control-regex -- ANSI escapes */
        .trim(),
    )
    .filter(Boolean);
  return l.length ? `console: ${l[l.length - 1]!.slice(0, 160)}` : 'no console output';
}

interface Res {
  present: number;
  zero: number;
  zones: Record<string, number>;
  unknown?: number;
}

/** "16 pages present (Movable 12, Normal 4), 2 zero-page", as residency() in the model prints it. */
export function residencyText(res: Res | undefined): string {
  if (!res) return '';
  const order = ['DMA', 'DMA32', 'Normal', 'Movable', 'Device'];
  const zones = Object.entries(res.zones)
    .sort((a, b) => order.indexOf(a[0]) - order.indexOf(b[0]))
    .map(([z, c]) => `${z} ${c}`);
  if (res.unknown) zones.push(`${res.unknown} in no zone`);
  return `${res.present} pages present${zones.length ? ` (${zones.join(', ')})` : ''}${res.zero ? `, ${res.zero} zero-page` : ''}`;
}

function zonesText(res: Res | undefined): string {
  if (!res) return 'none';
  const order = ['DMA', 'DMA32', 'Normal', 'Movable', 'Device'];
  return (
    Object.entries(res.zones)
      .sort((a, b) => order.indexOf(a[0]) - order.indexOf(b[0]))
      .map(([z, c]) => `${z} ${c}`)
      .join(', ') || 'none'
  );
}

/** mm->locked_vm from the VmLck (kB) the probe read after the step, in the model's words. */
function vmLckText(r: Record<string, unknown>): string {
  const kb = (r.vm as { VmLck?: number } | undefined)?.VmLck;
  return typeof kb === 'number' ? `locked_vm ${kb / 4} pages (VmLck ${kb} kB)` : 'locked_vm unknown';
}

/** A step's detail in the model's words (docs/scenarios.md), from what the probe measured. */
function stepDetail(
  st: CompiledScenario['steps'][number],
  r: Record<string, unknown>,
  rc: number,
  totals: Record<string, number>,
  pinPages: Map<string, number>,
  diedPins: Set<string>,
): string {
  const res = r.res as Res | undefined;
  const addr = typeof r.addr === 'string' ? r.addr : '';
  const pages = (st.len ?? 0) / 4096;
  const d = (r.d ?? {}) as Record<string, number>;
  switch (st.op) {
    case 'spawn':
      return rc < 0 ? '' : `pid ${r.aux}`;
    case 'mmap':
      if (rc < 0) return typeof r.aux === 'number' && r.aux ? `at ${addr}, populate failed` : '';
      return `${addr} ${pages} pages; ${residencyText(res)}`;
    case 'touch':
      return rc < 0 ? `at 0x${Number(r.aux).toString(16)}` : residencyText(res);
    case 'write':
      return rc < 0 ? '' : `${addr} = ${st.value ?? 0}`;
    case 'read':
      return rc < 0 ? '' : `${addr} = ${rc}`;
    case 'munmap':
      return `${addr} ${pages} pages`;
    case 'mprotect':
      return '';
    case 'madvise':
      // MADV_HWPOISON: memory_failure(MF_ACTION_REQUIRED) signals the caller; the probe notes it (aux 1)
      return (r.aux === 1 ? 'SIGBUS (BUS_MCEERR_AR); ' : '') + residencyText(res);
    case 'mlock':
      return `${vmLckText(r)}; ${residencyText(res)}`;
    case 'munlock':
      return vmLckText(r);
    case 'fork':
      return rc < 0 ? '' : `child pid ${r.aux}`;
    case 'exit':
      return '';
    case 'online':
      return `memory${st.block}`;
    case 'offline': {
      let s = `memory${st.block}, ${r.ms} ms`;
      if (rc < 0) {
        const log = (r.log ?? []) as string[];
        const why = log.map((l) => /failed due to (.*)$/.exec(l)?.[1]).find(Boolean);
        if (why) s += `; failed due to ${why}`;
        if (rc === -110) s += '; the write did not return within the time limit';
        for (const l of log) {
          const mt = /(migrating|failed to isolate) pfn ([0-9a-f]+)(?: failed ret:(-?\d+))?/.exec(l);
          if (mt)
            s += `; pfn ${parseInt(mt[2]!, 16)}: ${mt[1] === 'migrating' ? `migration failed (ret ${mt[3]})` : 'isolation failed'}`;
          if ((s.match(/; pfn /g) ?? []).length >= 4) break;
        }
      }
      return s;
    }
    case 'pin': {
      const parts = [`outcome ${rc > 0 ? 'pinned' : 'error'}`];
      if (rc > 0) {
        parts.push(`${rc} pinned (${zonesText(res)})`);
        pinPages.set(st.pin!, rc);
      }
      if (d.pgmigrate_success) parts.push(`${d.pgmigrate_success} migrated`);
      if (d.thp_migration_split) parts.push(`${d.thp_migration_split} THP split`);
      if (d.pgmigrate_fail) parts.push(`${d.pgmigrate_fail} failed to migrate`);
      return `${addr} ${pages} pages: ${parts.join('; ')}`;
    }
    case 'pin_max': {
      pinPages.set(st.pin!, rc);
      const last = Number(r.aux);
      return `${rc}/${pages} pages pinned (${((100 * rc) / pages).toFixed(1)}%; ${rc > 0 ? zonesText(res) : 'none'})${last < 0 ? `, then ${errname(last)}` : ''}`;
    }
    case 'unpin':
      if (r.aux === -1)
        return diedPins.has(st.pin!)
          ? `not pinned: its process died and io_uring released the buffers with it`
          : 'not pinned';
      return rc < 0 ? '' : `${pinPages.get(st.pin!) ?? 0} pages unpinned`;
    case 'vmstat':
      return (st.items ?? []).map((it) => `${it} ${it in totals ? totals[it] : 'n/a'}`).join('; ');
    case 'open':
    case 'call':
    case 'close':
      return deviceDetail(st, r, rc);
    case 'census': {
      if (r.census === undefined) return '';
      const c = r.census as { anon: number; shmem: number; file: number; reserved: number; runs?: [number, number][] };
      return `memory${st.block}: ${censusText(c, c.runs ?? [])}`;
    }
    case 'zones': {
      return zonesDetail((r.zones ?? []) as KernelZone[]);
    }
  }
  return '';
}

/** The zones step's line; on a machine of several nodes each zone is named with its node, as the model's is. */
function zonesDetail(zs: KernelZone[]): string {
  const numa = new Set(zs.map((z) => z.node ?? 0)).size > 1;
  return zs
    .filter((z) => z.managed || z.present)
    .map((z) => zoneText(numa ? (z.node ?? 0) : null, z))
    .join('; ');
}

/** open, call, close of a device: what the probe measured, in the model's words where it has them. */
function deviceDetail(st: CompiledScenario['steps'][number], r: Record<string, unknown>, rc: number): string {
  const res = r.res as Res | undefined;
  const pages = (st.len ?? 0) / 4096;
  const d = (r.d ?? {}) as Record<string, number>;
  switch (st.op) {
    case 'open':
      if (rc < 0) return '';
      if (st.device === 'io-uring-fixed') return 'io_uring ring set up';
      return st.device === 'rdma-umem'
        ? 'rxe0 on eth0: ucontext and PD allocated'
        : `vfio-pci edu in iommu group ${r.aux}; container set to VFIO_TYPE1v2_IOMMU`;
    case 'call': {
      if (st.call === 'dereg_mr' || st.call === 'unregister') return '';
      if (st.call === 'register') {
        if (rc < 0) return '';
        const vm = r.vm as { VmPin?: number } | undefined;
        const parts = [res ? `registered: ${residencyText(res)}` : 'registered'];
        if (d.pgmigrate_success) parts.push(`${d.pgmigrate_success} migrated`);
        if (vm?.VmPin !== undefined) parts.push(`pinned_vm ${vm.VmPin / 4} pages`);
        return parts.join('; ');
      }
      if (st.call === 'reg_mr') {
        if (rc < 0) return '';
        const vm = r.vm as { VmPin?: number } | undefined;
        const parts = [`mr ${rc}: lkey 0x${Number(r.aux).toString(16)}, ${residencyText(res)}`];
        if (d.pgmigrate_success) parts.push(`${d.pgmigrate_success} migrated`);
        if (vm?.VmPin !== undefined) parts.push(`pinned_vm ${vm.VmPin / 4} pages`);
        return parts.join('; ');
      }
      if (st.call === 'get_info') {
        // VFIO_IOMMU_GET_INFO: the IOVA-range capability's ranges (the probe's "iova") and DMA_AVAIL's count (aux)
        if (rc < 0) return '';
        const ranges = (r.iova as [string, string][] | undefined) ?? [];
        const avail = Number(r.aux) >= 0 ? `; dma_avail ${r.aux}` : '';
        return `iova ranges: ${ranges.map(([a, b]) => `${a}-${b}`).join(', ') || 'none (no IOMMU domain)'}${avail}`;
      }
      const iova = `0x${(st.iova ?? 0).toString(16)}`;
      if (st.call === 'unmap_dma') return rc < 0 ? '' : `${rc} bytes unmapped`;
      if (rc < 0) return '';
      const vm = r.vm as { VmLck?: number } | undefined;
      const parts = [`${iova}+0x${(pages * 4096).toString(16)} pinned and mapped: ${residencyText(res)}`];
      if (d.pgmigrate_success) parts.push(`${d.pgmigrate_success} migrated`);
      if (vm?.VmLck !== undefined) parts.push(`locked_vm ${vm.VmLck / 4} pages`);
      return parts.join('; ');
    }
    case 'close':
      if (rc < 0) return '';
      return st.device === 'rdma-umem'
        ? 'uverbs context closed'
        : st.device === 'io-uring-fixed'
          ? 'ring closed'
          : 'container released';
  }
  return '';
}

/** One step as `pinlab scenario` prints it. */
export function formatKernelStep(
  r: KernelStepResult,
  variant: string,
  st: CompiledScenario['steps'][number],
): string[] {
  const who = r.proc ? `${r.proc}: ` : '';
  const exp = expectationFor(st.expect, variant);
  const match = expectationFor(st.expect_match, variant);
  const want = [exp !== undefined ? String(exp) : '', typeof match === 'string' ? `/${match}/` : '']
    .filter(Boolean)
    .join(' ');
  const tag = want ? (r.ok ? ` (expected ${want}: ok)` : ` (EXPECTED ${want}: MISMATCH)`) : !r.ok ? ' (MISMATCH)' : '';
  const out = [`[${String(r.step).padStart(3)}] ${who}${r.op} -> ${r.result}${tag}${r.detail ? `  ${r.detail}` : ''}`];
  for (const l of r.log) {
    const k = /Killed process (\d+) \(([^)]*)\).*?anon-rss:(\d+)kB.*?oom_score_adj:(-?\d+)/.exec(l);
    if (k) out.push(`      Out of memory: Killed process ${k[1]} (${k[2]}) anon-rss:${k[3]}kB, oom_score_adj ${k[4]}`);
    // the kernel's own report of corruption: bad_page(), BUG(), WARN()
    else if (/^(BUG|WARNING|kernel BUG|Oops)\b/.test(l)) out.push(`      ${l.trim().replace(/\s+/g, ' ')}`);
  }
  if (r.result === 'panic') out.push(`      ${r.detail}`);
  return out;
}

export function zonesLine(zones: KernelZone[]): string {
  return zones
    .filter((z) => z.managed || z.present)
    .map((z) => `${z.name} free ${z.free}/${z.managed}`)
    .join('; ');
}

export function blocksLine(blocks: KernelBlock[]): string {
  return blocks.map((b) => `memory${b.index} ${b.state} ${b.valid_zones}`).join(', ');
}
