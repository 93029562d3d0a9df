// What the HTML report shows, as plain JSON built from a case and its deterministic run: the failure,
// the kernel variant and its bugs, the property's promise, the actors' ops with their trace positions,
// the scheduler's switches, faults, the folded trace and the machine snapshots (docs/report.md).
import type { Case, CaseResult, Failure } from '../run_case';
import type { MachineSnapshot } from './snapshot';
import { foldTrace } from '../trace';
import { K_OP, K_POINT, K_RET } from '../schedctl';
import { parseVariant, BUGS } from '../../mm/variants';
import { propertyNamed } from '../../properties/index';
import { MIGRATETYPE_NAMES } from '../../mm/mmzone';
import { FRAME_CLASSES } from './snapshot';
import { errname } from '../../mm/errno';

export interface ReportOp {
  actor: number;
  i: number;
  text: string;
  start: number;
  end: number;
  rc: number;
  rcText: string;
  detail: string;
}

export interface ReportFold {
  /** first and last trace position */
  s: number;
  e: number;
  a: number;
  n: number;
  /** the lines of the last repetition, and their trace positions */
  t: string[];
  q: number[];
}

export interface ReportData {
  title: string;
  property: string;
  promise: string;
  reference: string;
  message: string;
  others: string[];
  suite: string;
  seed: number | null;
  path: string | null;
  file: string | null;
  traceHash: string;
  recordedHash: string | null;
  reproduced: boolean | null;
  replay: string;
  variant: { name: string; summary: string; commit: string; bugs: { id: string; commit: string; what: string }[] };
  cmdline: string;
  geometry: string;
  maps: { name: string; pages: number }[];
  actors: { name: string; cpu: number; program: string[] }[];
  schedule: number[];
  faults: string[];
  ops: ReportOp[];
  switches: { seq: number; from: number; to: number }[];
  events: { seq: number; actor: number; text: string }[];
  violation: { seq: number; actor: number };
  maxSeq: number;
  folds: ReportFold[];
  foldsCut: number;
  snapshots: MachineSnapshot[];
  /** the snapshot that shows the machine when the property broke */
  failingSnapshot: number;
  /** memory blocks the failure names (memoryN: a block that would not go offline) */
  badBlocks: number[];
  classes: readonly string[];
  migratetypes: readonly string[];
}

export interface ReportSource {
  cs: Case;
  result: CaseResult;
  failure: Failure;
  suite: string;
  seed?: number;
  path?: string;
  file?: string;
  recordedHash?: string;
  reproduced?: boolean;
  replay: string;
}

/** Folded lines kept in the page; past it, the start of the trace is cut (the end holds the failure). */
const FOLDS_MAX = 6000;

function opArgs(op: Record<string, unknown>): string {
  return Object.entries(op)
    .filter(([k]) => k !== 'op')
    .map(([k, v]) => `${k}=${typeof v === 'object' ? JSON.stringify(v) : String(v)}`)
    .join(' ');
}

/** Each op of each actor with where it began (K_OP) and returned (K_RET) in the trace. */
function reportOps(cs: Case, r: CaseResult): ReportOp[] {
  const out: ReportOp[] = [];
  const starts = new Map<string, number>();
  for (const e of r.ring) if (e.kind === K_OP) starts.set(`${e.actor}:${e.arg}`, e.seq);
  r.actors.forEach((a, k) => {
    if (!a) return;
    const prog = cs.programs[r.names[k]!] ?? [];
    for (const o of a.ops) {
      const op = prog[o.i] ?? { op: o.op };
      out.push({
        actor: k,
        i: o.i,
        text: `${o.op}${opArgs(op) ? ' ' + opArgs(op) : ''}`,
        start: starts.get(`${k}:${o.i}`) ?? o.seq - 1,
        end: o.seq,
        rc: o.rc,
        rcText: o.rc < 0 ? errname(o.rc) : String(o.rc),
        detail: o.detail ?? '',
      });
    }
  });
  // an op a stop cut short: begun, never returned
  for (const e of r.ring) {
    if (e.kind !== K_OP || out.some((o) => o.actor === e.actor && o.i === e.arg)) continue;
    const op = cs.programs[r.names[e.actor]!]?.[e.arg] ?? { op: '?' };
    out.push({
      actor: e.actor,
      i: e.arg,
      text: `${op.op} ${opArgs(op)}`,
      start: e.seq,
      end: -1,
      rc: 0,
      rcText: 'did not return',
      detail: '',
    });
  }
  return out;
}

/** The scheduler's switches: a preemption point of another actor than the one before. */
function switches(r: CaseResult): ReportData['switches'] {
  const out: ReportData['switches'] = [];
  let prev = -1;
  for (const e of r.ring) {
    if (e.kind !== K_POINT && e.kind !== K_OP && e.kind !== K_RET) continue;
    if (prev >= 0 && e.actor !== prev) out.push({ seq: e.seq, from: prev, to: e.actor });
    prev = e.actor;
  }
  return out;
}

/** The snapshot showing the machine when the failure was seen: the last taken at or before it. */
function failingSnapshot(snaps: MachineSnapshot[], seq: number): number {
  let at = 0;
  snaps.forEach((s, k) => {
    if (s.seq <= seq) at = k;
  });
  return at;
}

/** Memory blocks a failure names as not going offline (memoryN in movable-offlinable's messages, or the failure's). */
function badBlocks(f: Failure, all: Failure[]): number[] {
  const named = [f, ...all.filter((g) => g.property === 'movable-offlinable')].flatMap((g) =>
    [...g.message.matchAll(/memory(\d+) \(ZONE_MOVABLE/g)].map((x) => Number(x[1])),
  );
  return [...new Set(named)];
}

export function buildReportData(src: ReportSource): ReportData {
  const { cs, result: r, failure: f } = src;
  const v = parseVariant(cs.variant);
  const prop = propertyNamed(f.property);
  const folds = foldTrace(r.lines).map((x) => ({
    s: x.firstSeq,
    e: x.lines[x.lines.length - 1]!.seq,
    a: x.lines[0]!.actor,
    n: x.count,
    t: x.lines.map((l) => l.text),
    q: x.lines.map((l) => l.seq),
  }));
  const cut = Math.max(0, folds.length - FOLDS_MAX);
  const snaps = r.snapshots ?? [];
  const faults = Object.entries(cs.faults).flatMap(([a, plan]) =>
    Object.entries(plan)
      .filter(([, at]) => at.length)
      .map(([p, at]) => `${a} ${p} at ${p.endsWith('signal') ? 'preemption point' : 'call'} ${at.join(',')}`),
  );
  return {
    title: `${f.property} on ${cs.variant} (${src.suite})`,
    property: f.property,
    promise: prop?.promise ?? '(a failure of the run itself)',
    reference: prop?.reference ?? '',
    message: f.message,
    others: r.failures.filter((g) => g !== f).map((g) => `${g.property}: ${g.message}`),
    suite: src.suite,
    seed: src.seed ?? null,
    path: src.path ?? null,
    file: src.file ?? null,
    traceHash: r.traceHash,
    recordedHash: src.recordedHash ?? null,
    reproduced: src.reproduced ?? null,
    replay: src.replay,
    variant: {
      name: v.name,
      summary: v.summary,
      commit: v.commit,
      bugs: BUGS.filter((b) => v.bugs.has(b.id)).map((b) => ({ id: b.id, commit: b.commit, what: b.what })),
    },
    cmdline: cs.layout.cmdline,
    geometry: cs.layout.geometry ?? 'x86_64',
    maps: cs.layout.maps,
    actors: r.names.map((name, k) => ({
      name,
      cpu: r.cpus[k] ?? 0,
      program: (cs.programs[name] ?? []).map((op, i) => `${i + 1}. ${op.op} ${opArgs(op)}`.trim()),
    })),
    schedule: cs.schedule,
    faults,
    ops: reportOps(cs, r),
    switches: switches(r),
    events: r.lines
      .filter((l) => /^(pinlab_fault|signal_generate|pinlab_violation|pinlab_bug|sched_blocked)/.test(l.text))
      .slice(-2000)
      .map((l) => ({ seq: l.seq, actor: l.actor, text: l.text })),
    violation: { seq: f.seq, actor: f.actor ? r.names.indexOf(f.actor) : -1 },
    maxSeq: r.ring.length ? r.ring[r.ring.length - 1]!.seq + 1 : 1,
    folds: folds.slice(cut),
    foldsCut: cut,
    snapshots: snaps,
    failingSnapshot: failingSnapshot(snaps, f.seq),
    badBlocks: badBlocks(f, r.failures),
    classes: FRAME_CLASSES,
    migratetypes: MIGRATETYPE_NAMES,
  };
}
