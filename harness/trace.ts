// Traces: decoding the run's ring, the ftrace-like text a failure prints, the trace hash (the
// determinism self-check), and turning a free run's trace into a deterministic schedule.
//
//   pinner-0  [002] ....     0.000123: sched_yield: gup:after-collect
//
// The "timestamp" is the trace sequence number in microseconds: in deterministic mode it is the
// same on every run, so two traces of one case can be diffed line by line.
import { Memmap, PG_head } from '../mm/memmap';
import { MM_STRIDE, PCP_STRIDE } from '../mm/memmap';
import { MAX_NR_ZONES, zoneName } from '../mm/mmzone';
import type { ActorResult } from './types';
import type { OrderEntry } from './scheduler';
import { RingEntry, K_POINT, K_OP, K_RET, K_BLOCK, K_EXIT, K_FAULT, K_VIOLATION, fnvInt } from './schedctl';

export interface TraceLine {
  seq: number;
  actor: number;
  text: string;
}

const MM_SLOTS = ['mm_users', 'mmap_lock', 'page_table_lock', 'nr_vmas', 'locked_vm', 'pinned_vm'];

/** Which field of the machine an Int32 index of its buffer is (for wait reasons and deadlock reports). */
export function describeWord(m: Memmap, idx: number): string {
  const views: [string, Int32Array | Uint32Array][] = [
    ['header', m.header],
    ['zones', m.zones],
    ['pcp', m.pcp],
    ['blocks', m.blocks],
    ['flags', m.flags],
    ['refcount', m.refcount],
    ['mms', m.mms],
    ['vmas', m.vmas],
    ['pmds', m.pmds],
    ['ptes', m.ptes],
    ['shmemPages', m.shmemPages],
    ['lru', m.lru],
    ['mmuNotifiers', m.mmuNotifiers],
    ['mlock', m.mlock],
  ];
  for (const [name, v] of views) {
    const first = v.byteOffset >>> 2;
    if (idx < first || idx >= first + v.length) continue;
    const k = idx - first;
    if (name === 'mms') return `mm ${Math.floor(k / MM_STRIDE)} ${MM_SLOTS[k % MM_STRIDE] ?? `slot ${k % MM_STRIDE}`}`;
    if (name === 'header' && k === 3) return 'mem_hotplug_lock';
    if (name === 'zones') {
      const zh = Math.floor(k / m.zoneStride); // a zone handle: node zh / MAX_NR_ZONES
      const zn = `${zoneName(zh % MAX_NR_ZONES)}${zh >= MAX_NR_ZONES ? ` node ${Math.floor(zh / MAX_NR_ZONES)}` : ''}`;
      return k % m.zoneStride === 0 ? `zone ${zn} zone->lock` : `zone ${zn} word ${k % m.zoneStride}`;
    }
    if (name === 'pcp') {
      const rec = Math.floor(k / PCP_STRIDE);
      // node 0's records first (cpu-major), then the other nodes' (pcpBase())
      const n0 = m.nrCpus * MAX_NR_ZONES;
      const per = m.nrZones - MAX_NR_ZONES;
      const cpu = rec < n0 ? Math.floor(rec / MAX_NR_ZONES) : Math.floor((rec - n0) / per);
      const zh = rec < n0 ? rec % MAX_NR_ZONES : MAX_NR_ZONES + ((rec - n0) % per);
      return `cpu ${cpu} zone ${zoneName(zh % MAX_NR_ZONES)}${zh >= MAX_NR_ZONES ? ` node ${Math.floor(zh / MAX_NR_ZONES)}` : ''} pcp${k % PCP_STRIDE === 0 ? '->lock' : ` word ${k % PCP_STRIDE}`}`;
    }
    if (name === 'lru' || name === 'mlock') {
      const stride = m.shape.lruBatch + 2;
      const batch = name === 'lru' ? 'lru_add' : 'mlock';
      return `cpu ${Math.floor(k / stride)} ${batch} folio batch${k % stride === 0 ? ' lock' : ` word ${k % stride}`}`;
    }
    if (name === 'ptes') return `pte slot ${k} (table ${k >>> m.pmdOrder})`;
    if (name === 'pmds') return `pmd slot ${k} (mm ${Math.floor(k / m.vaPmds)})`;
    return `${name}[${k}]`;
  }
  return `word ${idx}`;
}

/** Text for one ring entry, when the actor's own log has nothing richer for it. */
function entryText(e: RingEntry, label: string, m: Memmap | null): string {
  switch (e.kind) {
    case K_POINT:
      return `sched_yield: ${label}`;
    case K_BLOCK:
      return e.arg < 0
        ? `sched_blocked: ${label}`
        : `sched_blocked: ${label} on ${m ? describeWord(m, e.arg) : `word ${e.arg}`}`;
    case K_EXIT:
      return 'sched_exit';
    case K_OP:
      return `pinlab_op: ${label.replace(/^op:/, '')} (#${e.arg})`;
    case K_RET:
      return `pinlab_ret: ${label.replace(/^op:/, '')} rc=${e.arg}`;
    case K_FAULT:
      return `pinlab_fault: ${label}`;
    case K_VIOLATION:
      return `pinlab_violation: ${label}`;
    default:
      return `? kind ${e.kind} ${label}`;
  }
}

/**
 * The merged trace: ring entries (yields, blocks, exits) with the actors' own log lines, which carry
 * the details of ops, faults and violations; an actor that died leaves only its ring entries.
 */
export function mergeTrace(
  entries: RingEntry[],
  labels: Map<number, string>,
  results: (ActorResult | null)[],
  m: Memmap | null,
): TraceLine[] {
  const lines: TraceLine[] = [];
  const logged = new Set<number>();
  results.forEach((r, a) => {
    if (!r) return;
    for (const l of r.log) {
      lines.push({ seq: l.seq, actor: a, text: l.text });
      if (Number.isInteger(l.seq)) logged.add(l.seq);
    }
  });
  for (const e of entries) {
    if (logged.has(e.seq)) continue;
    if (results[e.actor] && (e.kind === K_OP || e.kind === K_RET || e.kind === K_FAULT || e.kind === K_VIOLATION))
      continue;
    lines.push({
      seq: e.seq,
      actor: e.actor,
      text: entryText(e, labels.get(e.label) ?? `#${e.label.toString(16)}`, m),
    });
  }
  return lines.sort((a, b) => a.seq - b.seq);
}

/** ftrace's text format: comm, [cpu], flags, timestamp, event. */
export function formatLine(l: TraceLine, names: string[], cpus: number[]): string {
  const comm = (names[l.actor] ?? `actor-${l.actor}`).padStart(12);
  const cpu = String(cpus[l.actor] ?? 0).padStart(3, '0');
  const ts = (Math.max(0, Math.floor(l.seq + 0.5)) / 1e6).toFixed(6).padStart(12);
  return `${comm}  [${cpu}] .... ${ts}: ${l.text}`;
}

/**
 * The trace hash: every ring entry (sequence, actor, kind, label, argument), every op's result, and
 * a digest of the machine at the end. Equal for two runs of one case in deterministic mode.
 */
export function traceHash(entries: RingEntry[], results: (ActorResult | null)[], stateDigest: number): string {
  let h = 0x811c9dc5;
  for (const e of entries) {
    h = fnvInt(h, e.seq);
    h = fnvInt(h, e.actor | (e.kind << 8));
    h = fnvInt(h, e.label);
    h = fnvInt(h, e.arg);
  }
  for (const r of results) {
    if (!r) {
      h = fnvInt(h, -1);
      continue;
    }
    for (const o of r.ops) h = fnvInt(h, o.rc);
    h = fnvInt(h, r.violations.length);
  }
  h = fnvInt(h, stateDigest);
  return h.toString(16).padStart(8, '0');
}

/** A digest of the machine's struct pages, pageblocks and memory blocks: fnvInt() over every word, in order. */
export function machineDigest(m: Memmap): number {
  let h = 0x811c9dc5;
  h = fnvWords(h, m.flags);
  h = fnvWords(h, m.refcount);
  h = fnvWords(h, m.mapcount);
  h = fnvPincount(h, m);
  h = fnvWords(h, m.content);
  h = fnvWords(h, m.pageblock);
  h = fnvWords(h, m.blocks);
  return h;
}

const FNV_PRIME = 0x01000193; // fnvInt()'s

/**
 * fnvInt() folded over a's words, the same value, faster: a run of n zero words (most of a large
 * machine's struct page fields) only multiplies by FNV_PRIME^(4n) mod 2^32 (fnvInt() xors in zero
 * bytes), one exponentiation.
 */
function fnvWords(h: number, a: Int32Array | Uint32Array | Int16Array | Uint8Array): number {
  const n = a.length;
  let i = 0;
  while (i < n) {
    const x = a[i]!;
    if (x === 0) {
      let j = i + 1;
      while (j < n && a[j] === 0) j++;
      h = Math.imul(h, primePow(4 * (j - i)));
      i = j;
      continue;
    }
    // fnvInt(h, x) unrolled: calling it here halves the digest's speed (0.85 s against 0.45 s at 128G)
    h = Math.imul(h ^ (x & 0xff), FNV_PRIME);
    h = Math.imul(h ^ ((x >>> 8) & 0xff), FNV_PRIME);
    h = Math.imul(h ^ ((x >>> 16) & 0xff), FNV_PRIME);
    h = Math.imul(h ^ ((x >>> 24) & 0xff), FNV_PRIME);
    i++;
  }
  return h >>> 0;
}

/**
 * fnvWords() over the _pincount word every frame had before they moved into page[1] (pincountAt()):
 * non-zero only at a large folio's head and page[1], so a walk of the heads gives the same value,
 * and every trace hash stays what it was.
 */
function fnvPincount(h: number, m: Memmap): number {
  let next = 0; // the first word not folded in yet
  const word = (i: number, x: number): void => {
    if (x === 0) return;
    h = fnvInt(Math.imul(h, primePow(4 * (i - next))), x);
    next = i + 1;
  };
  for (let pfn = 0; pfn < m.nrFrames; pfn++) {
    if (!(m.flags[pfn]! & PG_head)) continue;
    word(pfn, m.mapping[pfn + 1]!);
    word(pfn + 1, m.index[pfn + 1]!);
    pfn += (1 << m.pageOrder(pfn)) - 1;
  }
  return Math.imul(h, primePow(4 * (m.nrFrames - next))) >>> 0;
}

/** FNV_PRIME^e mod 2^32 (square and multiply). */
function primePow(e: number): number {
  let r = 1;
  let b = FNV_PRIME;
  while (e > 0) {
    if (e & 1) r = Math.imul(r, b);
    b = Math.imul(b, b);
    e >>>= 1;
  }
  return r;
}

/**
 * A free run's interleaving, for a deterministic replay that follows it (harness/scheduler.ts): every
 * preemption point (and exit) the actors reached. The replay runs each actor from one of its points
 * to the next as one step, and the free run says only when such a step ended (the point) and when it
 * began (the actor's previous point), not when in between it touched what the others touched. So two
 * orders: 'end' puts the steps in the order they ended (the points as reached), 'start' in the order
 * they began. Null when the ring wrapped and the start of the run is lost.
 */
export function interleavingFromTrace(
  entries: RingEntry[],
  lost: number,
  by: 'end' | 'start' = 'end',
): OrderEntry[] | null {
  if (lost > 0) return null;
  const points = entries.filter((e) => e.kind === K_POINT || e.kind === K_EXIT);
  if (by === 'start') {
    // the step ending at a point began at the actor's previous point; every actor's first step at the start line
    const prev = new Map<number, number>();
    const keyed = points.map((e, k) => {
      const start = prev.get(e.actor) ?? -1;
      prev.set(e.actor, k);
      return { e, start, k };
    });
    keyed.sort((a, b) => a.start - b.start || a.k - b.k);
    return keyed.map(({ e }) => ({ actor: e.actor, label: e.label }));
  }
  return points.map((e) => ({ actor: e.actor, label: e.label }));
}

/** Consecutive repeats of one line or block of lines (a retry loop), shown once with a count. */
export interface Fold {
  /** the last repetition's lines (the one nearest what follows) */
  lines: TraceLine[];
  /** how many times the block ran (1: not folded) */
  count: number;
  /** where the first repetition began */
  firstSeq: number;
}

/** Blocks up to this many lines fold (a migration round is about ten). */
const FOLD_PERIOD_MAX = 12;

/** Two lines are the same step when actor and text agree, pfns aside (a migration moves another page each round). */
const foldKey = (l: TraceLine): string => `${l.actor}|${l.text.replace(/pfn \d+/g, 'pfn #')}`;

/** Fold repeated lines and repeated blocks of lines (presentation only: the trace and its hash are unchanged). */
export function foldTrace(lines: TraceLine[]): Fold[] {
  const keys = lines.map(foldKey);
  const same = (a: number, b: number, k: number): boolean => {
    for (let j = 0; j < k; j++) if (keys[a + j] !== keys[b + j]) return false;
    return true;
  };
  const out: Fold[] = [];
  let i = 0;
  while (i < lines.length) {
    let best = { k: 1, reps: 1 };
    for (let k = 1; k <= FOLD_PERIOD_MAX && i + 2 * k <= lines.length; k++) {
      let reps = 1;
      while (i + (reps + 1) * k <= lines.length && same(i, i + reps * k, k)) reps++;
      if (reps >= 2 && reps * k > best.reps * best.k) best = { k, reps };
    }
    const last = i + (best.reps - 1) * best.k;
    out.push({ lines: lines.slice(last, last + best.k), count: best.reps, firstSeq: lines[i]!.seq });
    i += best.reps * best.k;
  }
  return out;
}

/** The folds around position seq: `before` up to it, `after` past it. */
export function foldWindow(folds: Fold[], seq: number, before = 24, after = 6): Fold[] {
  let at = folds.findIndex((f) => f.lines[f.lines.length - 1]!.seq > seq);
  if (at < 0) at = folds.length;
  return folds.slice(Math.max(0, at - before), at + after);
}

const stamp = (seq: number): string => (Math.max(0, Math.floor(seq + 0.5)) / 1e6).toFixed(6);

/** A fold as text lines: "19 x sched_yield: ..." for one repeated line, a header then the block for more. */
export function formatFold(f: Fold, names: string[], cpus: number[]): string[] {
  if (f.count === 1) return f.lines.map((l) => formatLine(l, names, cpus));
  if (f.lines.length === 1) {
    const l = f.lines[0]!;
    return [formatLine({ ...l, text: `${f.count} x ${l.text} (from ${stamp(f.firstSeq)})` }, names, cpus)];
  }
  const head = `${' '.repeat(12)}  ${f.count} x the ${f.lines.length} lines below (from ${stamp(f.firstSeq)}; the last time shown):`;
  return [head, ...f.lines.map((l) => formatLine(l, names, cpus))];
}

/** The trace around seq, folded, as text lines: about `total` folds, a fifth of them after seq. */
export function formatTraceWindow(
  lines: TraceLine[],
  seq: number,
  names: string[],
  cpus: number[],
  total = 30,
): string[] {
  const after = Math.min(6, Math.floor(total / 5));
  return foldWindow(foldTrace(lines), seq, total - after, after).flatMap((f) => formatFold(f, names, cpus));
}
