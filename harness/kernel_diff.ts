// Model and kernel side by side: each step's comparable facts (the result, who the OOM killer took,
// pages by zone, pinned pages by zone, pages migrated, counters), the final memory blocks and counters.
// Addresses, pfns, free/managed page counts, times and pass counts are not comparable and not compared.

import type { ScenarioRun } from './scenario';
import type { KernelRun } from './kernel_run';

/**
 * Counters whose value is the scenario's own doing on both sides (the rest move with the guest's boot and the probe).
 */
export const COMPARED_COUNTERS = [
  'nr_foll_pin_acquired',
  'nr_foll_pin_released',
  'pgmigrate_success',
  'pgmigrate_fail',
  'thp_migration_success',
  'thp_migration_fail',
  'thp_migration_split',
  'thp_fault_alloc',
  'thp_split_page',
  'oom_kill',
];

export type Facts = Record<string, string>;

function zonesFact(s: string): string {
  // "Movable 12, Normal 4" in a fixed order
  const order = ['DMA', 'DMA32', 'Normal', 'Movable', 'Device'];
  return s
    .split(', ')
    .filter(Boolean)
    .sort((a, b) => order.indexOf(a.split(' ')[0]!) - order.indexOf(b.split(' ')[0]!))
    .join(', ');
}

/** The facts of one step's detail text (both sides print the model's format); skip: counters not compared. */
export function stepFacts(
  op: string,
  result: string,
  detail: string,
  killed: string[],
  skip: Map<string, string> = new Map(),
): Facts {
  const f: Facts = { result };
  if (killed.length) f.killed = [...killed].sort().join(', ');
  const res = /(\d+) pages present(?: \(([^)]*)\))?(?:, (\d+) zero-page)?/.exec(detail);
  if (res && ['mmap', 'touch', 'madvise', 'mlock'].includes(op)) {
    f.present = res[1]!;
    f.zones = zonesFact(res[2] ?? '');
    f['zero-page'] = res[3] ?? '0';
  }
  if (
    op === 'pin' &&
    !/outcome (killed|died|error)/.test(detail) &&
    !result.startsWith('-') &&
    !killed.length &&
    result !== 'panic'
  ) {
    const p = /(\d+) pinned \(([^)]*)\)/.exec(detail);
    f.pinned = p ? `${p[1]} (${zonesFact(p[2]!)})` : '0';
    f.migrated = /(\d+) migrated/.exec(detail)?.[1] ?? '0';
    f['THP split'] = /(\d+) THP split/.exec(detail)?.[1] ?? '0';
  }
  if (op === 'pin_max' && !killed.length && result !== 'panic') {
    const p = /(\d+)\/(\d+) pages pinned \([0-9.]+%; ([^)]*)\)(?:, then (-E[A-Z]+))?/.exec(detail);
    if (p) {
      // how much fits before a chunk fails depends on the kernel zones' free pages, which differ: then only where
      f.then = p[4] ?? 'all pinned';
      const zones = zonesFact(p[3] === 'none' ? '' : p[3]!);
      f.pinned = p[4] ? `in ${zones.replace(/ \d+/g, '') || 'none'}` : `${p[1]}/${p[2]} (${zones})`;
    }
  }
  if (op === 'mlock' || op === 'munlock') f.locked_vm = /locked_vm (\d+) pages/.exec(detail)?.[1] ?? 'unknown';
  if (op === 'unpin') f.unpinned = /(\d+) pages unpinned/.exec(detail)?.[1] ?? detail;
  if (op === 'vmstat') {
    for (const mt of detail.matchAll(/([a-z_]+) (-?\d+|n\/a)/g))
      if (COMPARED_COUNTERS.includes(mt[1]!) && !skip.has(mt[1]!)) f[mt[1]!] = mt[2]!;
  }
  if (op === 'zones') f.zones = [...detail.matchAll(/(\w+): free/g)].map((m) => m[1]).join(', ');
  const info = op === 'call' ? /iova ranges: ([^;]*)(?:; dma_avail (\d+))?/.exec(detail) : null;
  if (info) {
    // VFIO_IOMMU_GET_INFO: the valid IOVA list and the vfio_dma entries left
    f['iova ranges'] = info[1]!;
    f.dma_avail = info[2] ?? 'n/a';
  }
  if (killed.length && f.killed && result !== 'panic') f.result = 'killed';
  return f;
}

export interface StepDiff {
  step: number;
  op: string;
  proc?: string;
  model?: { result: string; detail: string; facts: Facts };
  kernel?: { result: string; detail: string; facts: Facts };
  /** fact name -> [model, kernel], only the ones that differ */
  differs: Record<string, [string, string]>;
}

export interface RunDiff {
  steps: StepDiff[];
  blocks: { block: string; model: string; kernel: string }[];
  counters: { name: string; model: number | null; kernel: number | null; compared: boolean }[];
  /** counters left out of the comparison in this run, and why */
  notCompared: Map<string, string>;
  agree: number;
  total: number;
  same: boolean;
}

/** Which processes the model's OOM killer took at each step, from its printed lines. */
export function modelKills(lines: string[]): Map<number, string[]> {
  const m = new Map<number, string[]>();
  let step = 0;
  for (const l of lines) {
    const s = /^\[\s*(\d+)\]/.exec(l);
    if (s) step = Number(s[1]);
    const k = /Out of memory: Killed process \d+ \(([^)]*)\)/.exec(l);
    if (k) m.set(step, [...(m.get(step) ?? []), k[1]!]);
  }
  return m;
}

/**
 * Counters a run's own steps make incomparable: offline retries by passes in the model and by time on the
 * kernel (pgmigrate_fail counts every retry); a short-term hold is FOLL_PIN in the model, a page reference
 * (vmsplice) on the kernel; after an OOM kill, the pages migrated before memory ran out.
 */
export function incomparable(model: ScenarioRun, kernel: KernelRun, holds: boolean): Map<string, string> {
  const m = new Map<string, string>();
  const retried = [...model.results, ...kernel.results].some((r) => r.op === 'offline' && r.result === '-EINTR');
  if (retried)
    for (const c of ['pgmigrate_fail', 'thp_migration_fail'])
      m.set(c, 'an offline retried until -EINTR: the model counts passes, the kernel time');
  const oom = (model.vmstat as Record<string, number>).oom_kill || kernel.vmstat.oom_kill;
  if (oom) {
    for (const c of ['pgmigrate_success', 'pgmigrate_fail', 'nr_foll_pin_acquired', 'nr_foll_pin_released']) {
      m.set(
        c,
        "memory ran out: how far pinning and migration got first depends on the kernel zones' free pages, which differ",
      );
    }
  }
  if (holds)
    for (const c of ['nr_foll_pin_acquired', 'nr_foll_pin_released'])
      m.set(c, 'a short-term pin (longterm: false) is FOLL_PIN in the model, a vmsplice page reference on the kernel');
  return m;
}

export function diffRuns(model: ScenarioRun, modelLines: string[], kernel: KernelRun, holds = false): RunDiff {
  const kills = modelKills(modelLines);
  const skip = incomparable(model, kernel, holds);
  const n = Math.max(model.results.length, kernel.results.length);
  const steps: StepDiff[] = [];
  let agree = 0;
  for (let i = 0; i < n; i++) {
    const m = model.results[i];
    const k = kernel.results[i];
    const mf = m ? stepFacts(m.op, m.result, m.detail, kills.get(m.step) ?? [], skip) : undefined;
    const kf = k ? stepFacts(k.op, k.result, k.detail, k.killed, skip) : undefined;
    const differs: Record<string, [string, string]> = {};
    if (!mf || !kf) differs.ran = [mf ? 'ran' : 'did not run', kf ? 'ran' : 'did not run'];
    else
      for (const key of new Set([...Object.keys(mf), ...Object.keys(kf)])) {
        if (mf[key] !== kf[key]) differs[key] = [mf[key] ?? '-', kf[key] ?? '-'];
      }
    if (!Object.keys(differs).length) agree++;
    const base = (m ?? k)!;
    steps.push({
      step: base.step,
      op: base.op,
      proc: base.proc,
      differs,
      model: m && mf && { result: m.result, detail: m.detail, facts: mf },
      kernel: k && kf && { result: k.result, detail: k.detail, facts: kf },
    });
  }
  const blocks: RunDiff['blocks'] = [];
  const kb = new Map(kernel.blocks.map((b) => [b.index, `${b.state} ${b.valid_zones}`]));
  const mb = new Map(model.layout.blocks.map((b) => [b.index, `${b.state} ${b.valid_zones}`]));
  for (const i of [...new Set([...mb.keys(), ...kb.keys()])].sort((a, b) => a - b)) {
    const a = mb.get(i) ?? 'absent';
    const b = kb.get(i) ?? 'absent';
    if (a !== b && !kernel.error && !kernel.panic && !model.panic)
      blocks.push({ block: `memory${i}`, model: a, kernel: b });
  }
  const counters: RunDiff['counters'] = [];
  const mv = model.vmstat as Record<string, number>;
  for (const name of Object.keys(mv)) {
    const kv = kernel.vmstat[name];
    counters.push({
      name,
      model: mv[name] ?? null,
      kernel: kv ?? null,
      compared:
        COMPARED_COUNTERS.includes(name) && !skip.has(name) && kv !== undefined && !kernel.panic && !model.panic,
    });
  }
  const counterDiffs = counters.filter((c) => c.compared && c.model !== c.kernel).length;
  return {
    steps,
    blocks,
    counters,
    notCompared: skip,
    agree,
    total: n,
    same: agree === n && !blocks.length && !counterDiffs && !kernel.error,
  };
}

/** The diff as text: '=' a step whose facts agree, '!' one whose facts differ, each difference named. */
export function formatDiff(d: RunDiff): string[] {
  const out: string[] = [];
  for (const s of d.steps) {
    const who = s.proc ? `${s.proc}: ` : '';
    const same = !Object.keys(s.differs).length;
    out.push(`${same ? '=' : '!'} [${String(s.step).padStart(3)}] ${who}${s.op}`);
    if (s.model) out.push(`      model:  -> ${s.model.result}${s.model.detail ? `  ${s.model.detail}` : ''}`);
    if (s.kernel) out.push(`      kernel: -> ${s.kernel.result}${s.kernel.detail ? `  ${s.kernel.detail}` : ''}`);
    for (const [k, [a, b]] of Object.entries(s.differs)) out.push(`      DIFF ${k}: model ${a}, kernel ${b}`);
  }
  for (const b of d.blocks) out.push(`! memory block ${b.block}: model ${b.model}, kernel ${b.kernel}`);
  const cd = d.counters.filter((c) => c.compared);
  const cdiff = cd.filter((c) => c.model !== c.kernel);
  if (!cd.length) out.push('  counters at the end: not compared (a run ended in a kernel panic)');
  else
    out.push(
      `${cdiff.length ? '!' : '='} counters at the end: ${cd.map((c) => `${c.name} ${c.model === c.kernel ? c.model : `model ${c.model} kernel ${c.kernel}`}`).join('; ')}`,
    );
  for (const c of cdiff) out.push(`      DIFF ${c.name}: model ${c.model}, kernel ${c.kernel}`);
  for (const [c, why] of d.notCompared) out.push(`  not compared: ${c} (${why})`);
  out.push(
    `# ${d.same ? 'same' : 'DIFFERENT'}: ${d.agree}/${d.total} steps agree${d.blocks.length ? `, ${d.blocks.length} memory blocks differ` : ''}${cdiff.length ? `, ${cdiff.length} counters differ` : ''}`,
  );
  return out;
}
