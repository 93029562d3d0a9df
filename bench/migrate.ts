// Page migration and memory offlining benchmarks: move_pages-style migrations per second (order 0 and
// THP, ZONE_MOVABLE <-> kernel zones) and the time to offline one memory block full of anonymous pages,
// for 128, 256 and 512 MiB blocks (the cost must grow linearly with the block). Every figure is checked
// outside the timed region: the folios really moved, stayed whole (THP), and the process still reads
// what it wrote. Any discrepancy throws.
import { performance } from 'node:perf_hooks';
import { bootFromSpec } from '../harness/layout';
import { Memmap, PG_anon, PG_head, PG_buddy, PG_pcp } from '../mm/memmap';
import { ZONE_MOVABLE } from '../mm/mmzone';
import { bprmMmInit, doMmap, exitMmap, PROT_READ, PROT_WRITE } from '../mm/mmap';
import { getUser, putUser, followPte } from '../mm/memory';
import { migrateRange } from '../mm/migrate';
import { stateStore, stateShow, blockPresent, OfflineReport } from '../mm/memory_hotplug';
import { ptlLock, ptlUnlock } from '../mm/mm_types';
import { folioOrder } from '../mm/page_ref';

type Row = Record<string, string | number>;

const MACHINE = 'mem=5G movablecore=2G';
const MiB = 256; // 4 KiB frames per MiB

function fail(what: string): never {
  throw new Error(`bench: ${what}`);
}

function gc(): void {
  (globalThis as { gc?: () => void }).gc?.();
}

/** The value the benchmark process writes at page i (never 0, so a zeroed page shows). */
function pattern(seed: number, i: number): number {
  return (Math.imul(i + 1, 0x9e3779b1) ^ seed) >>> 0 || 1;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[s.length >> 1]!;
}

function fmtRate(r: number): string {
  if (r >= 1e6) return `${(r / 1e6).toFixed(2)}M`;
  if (r >= 1e3) return `${(r / 1e3).toFixed(1)}k`;
  return String(Math.round(r));
}

interface Proc {
  mm: number;
  v: number;
  n: number;
  seed: number;
}

/** A process that maps n anonymous pages and writes every one of them (faulting them in). */
function writer(m: Memmap, n: number, seed: number): Proc {
  const mm = bprmMmInit(m);
  if (mm < 0) fail(`bprmMmInit: ${mm}`);
  const v = doMmap(m, mm, { nrPages: n, prot: PROT_READ | PROT_WRITE });
  if (v < 0) fail(`doMmap of ${n} pages: ${v}`);
  for (let i = 0; i < n; i++) {
    if (putUser(m, mm, v + i, pattern(seed, i)) < 0) fail(`write fault at page ${i} of ${n} failed`);
  }
  return { mm, v, n, seed };
}

/** Where the process's pages are: how many in ZONE_MOVABLE, how many PMD-mapped, the pfns. */
function survey(m: Memmap, p: Proc): { movable: number; huge: number; pfns: Int32Array } {
  const pfns = new Int32Array(p.n);
  let movable = 0;
  let huge = 0;
  ptlLock(m, p.mm);
  for (let i = 0; i < p.n; i++) {
    const t = followPte(m, p.mm, p.v + i);
    if (!t || t.migrating) {
      ptlUnlock(m, p.mm);
      fail(`page ${i} is not mapped (${t ? 'migration entry' : 'no entry'})`);
    }
    pfns[i] = t.pfn;
    if (m.pageZonenum(t.pfn) === ZONE_MOVABLE) movable++;
    if (t.huge) huge++;
  }
  ptlUnlock(m, p.mm);
  return { movable, huge, pfns };
}

/** Every page reads back what was written (getUser, outside any timed region). */
function checkContent(m: Memmap, p: Proc, when: string): void {
  for (let i = 0; i < p.n; i++) {
    const got = getUser(m, p.mm, p.v + i);
    const want = pattern(p.seed, i);
    if (got !== want) fail(`${when}: page ${i} reads ${got}, wrote ${want}: content lost`);
  }
}

// ---------------------------------------------------------------------------------------------
// migrate: migrateRange() there and back

interface MigrateCase {
  label: string;
  thp: 'never' | 'always';
  pages: number;
  rounds: number;
  warmPages: number;
}

/** One migrateRange() call, timed; the result is checked (all migrated, none failed) before returning. */
function timedMigrate(m: Memmap, p: Proc, to: 'kernel' | 'movable'): number {
  const t0 = performance.now();
  const r = migrateRange(m, p.mm, p.v, p.n, to);
  const s = (performance.now() - t0) / 1000;
  if (r.rc !== 0 || r.migrated !== p.n || r.failed !== 0) {
    fail(`migrateRange(${p.n} pages, '${to}') returned ${JSON.stringify(r)}, expected every page migrated`);
  }
  return s;
}

function checkPlacement(m: Memmap, p: Proc, to: 'kernel' | 'movable', thp: boolean, before: Int32Array): Int32Array {
  const s = survey(m, p);
  const want = to === 'movable' ? p.n : 0;
  if (s.movable !== want)
    fail(`after migrating to '${to}': ${s.movable} of ${p.n} pages in ZONE_MOVABLE, expected ${want}`);
  if (s.huge !== (thp ? p.n : 0))
    fail(`after migrating to '${to}': ${s.huge} of ${p.n} pages PMD-mapped, expected ${thp ? p.n : 0}`);
  for (let i = 0; i < p.n; i++) if (s.pfns[i] === before[i]) fail(`page ${i} did not move (pfn ${before[i]})`);
  checkContent(m, p, `after migrating to '${to}'`);
  return s.pfns;
}

function runMigrateCase(c: MigrateCase): Row[] {
  gc();
  const { m } = bootFromSpec({ cmdline: `${MACHINE} transparent_hugepage=${c.thp}` });
  const thp = c.thp === 'always';
  const folioPages = thp ? 1 << m.pmdOrder : 1;
  // warm up the JIT on a smaller process, then let it go (rmap walks visit every live mm)
  const w = writer(m, c.warmPages, 0x5eed);
  for (let i = 0; i < 3; i++) {
    timedMigrate(m, w, 'kernel');
    timedMigrate(m, w, 'movable');
  }
  checkContent(m, w, 'warm-up');
  exitMmap(m, w.mm);

  const p = writer(m, c.pages, 0xc0ffee);
  const s0 = survey(m, p);
  let pfns = s0.pfns;
  if (s0.movable !== p.n) fail(`${c.label}: only ${s0.movable} of ${p.n} pages faulted into ZONE_MOVABLE`);
  if (s0.huge !== (thp ? p.n : 0)) fail(`${c.label}: ${s0.huge} of ${p.n} pages PMD-mapped after the faults`);
  const secs: Record<'kernel' | 'movable', number[]> = { kernel: [], movable: [] };
  for (let r = 0; r < c.rounds; r++) {
    for (const to of ['kernel', 'movable'] as const) {
      secs[to].push(timedMigrate(m, p, to));
      pfns = checkPlacement(m, p, to, thp, pfns);
    }
  }
  exitMmap(m, p.mm);
  const rows: Row[] = [];
  for (const to of ['kernel', 'movable'] as const) {
    const s = median(secs[to]);
    const folios = p.n / folioPages;
    rows.push({
      case: `${c.label} ${to === 'kernel' ? 'Movable -> kernel' : 'kernel -> Movable'}`,
      pages: p.n,
      folios,
      'ms (median)': +(s * 1000).toFixed(1),
      'folios/s': Math.round(folios / s),
      'pages/s': Math.round(p.n / s),
      'GiB/s': +((p.n * 4096) / 2 ** 30 / s).toFixed(2),
      target: thp ? '' : '>= 1M pages/s',
    });
  }
  return rows;
}

export function migrateRows(): Row[] {
  return [
    // 512 MiB of order-0 pages; 1 GiB of 2 MiB THPs (512 folios)
    ...runMigrateCase({ label: 'order-0', thp: 'never', pages: 512 * MiB, rounds: 7, warmPages: 64 * MiB }),
    ...runMigrateCase({ label: 'THP (2M)', thp: 'always', pages: 1024 * MiB, rounds: 7, warmPages: 128 * MiB }),
  ];
}

// ---------------------------------------------------------------------------------------------
// offline: one ZONE_MOVABLE memory block full of anonymous pages

interface OfflineResult {
  ms: number;
  passes: number;
  used: number;
  folios: number;
}

/** Frames of [start, start + n) that belong to an in-use anonymous folio. */
function countAnonFrames(m: Memmap, start: number, n: number): { used: number; folios: number; free: number } {
  let used = 0;
  let folios = 0;
  let free = 0;
  for (let pfn = start; pfn < start + n; pfn++) {
    const f = m.flags[pfn]!;
    if (f & (PG_buddy | PG_pcp)) {
      free++;
      continue;
    }
    const head = m.compoundHead(pfn);
    if (m.refcount[head]! > 0 && m.flags[head]! & PG_anon) {
      used++;
      if (head === pfn) folios++;
    }
  }
  return { used, folios, free };
}

/**
 * Boot with blockPages-sized memory blocks, fill the top ZONE_MOVABLE block with anonymous pages (the
 * allocator hands ZONE_MOVABLE out from the top, so a block and a bit more fills it), check that it is
 * full, offline it (timed), then check that it went and that every page survived elsewhere.
 */
function offlineOnce(blockPages: number, thp: boolean): OfflineResult {
  // No gc() here: a full collection between two offlines throws away the mm hot paths' optimized code
  // (V8 "weak objects" deopts) and the next offline would time TurboFan recompiling them (see README).
  const { m } = bootFromSpec({
    cmdline: `${MACHINE} transparent_hugepage=${thp ? 'always' : 'never'}`,
    geometry: `x86_64,block_pages=${blockPages}`,
  });
  let b = m.nrBlocks - 1;
  while (b >= 0 && !blockPresent(m, b)) b--;
  const start = b * blockPages;
  for (let pfn = start; pfn < start + blockPages; pfn++)
    if (m.pageZonenum(pfn) !== ZONE_MOVABLE) fail(`block ${b}: pfn ${pfn} not in ZONE_MOVABLE`);
  const p = writer(m, blockPages + 16 * MiB, 0xb10c);
  const c = countAnonFrames(m, start, blockPages);
  if (c.used !== blockPages)
    fail(`block ${b}: only ${c.used} of ${blockPages} frames hold anonymous pages (${c.free} free)`);
  const folioPages = thp ? 1 << m.pmdOrder : 1;
  if (c.folios !== blockPages / folioPages)
    fail(`block ${b}: ${c.folios} folios, expected ${blockPages / folioPages} of ${folioPages} pages`);
  const report: OfflineReport = { reason: '', pfn: -1, passes: 0, failures: [] };
  const t0 = performance.now();
  const rc = stateStore(m, b, 'offline', { report });
  const ms = performance.now() - t0;
  if (rc !== 0)
    fail(
      `offlining block ${b} returned ${rc}: ${report.reason} (pfn ${report.pfn}, ${report.failures.length} failures)`,
    );
  if (stateShow(m, b) !== 'offline') fail(`block ${b} is '${stateShow(m, b)}' after a successful offline`);
  const s = survey(m, p);
  let huge = 0;
  for (let i = 0; i < p.n; i++) {
    const pfn = s.pfns[i]!;
    if (pfn >= start && pfn < start + blockPages) fail(`page ${i} still at pfn ${pfn} in the offline block`);
    if (thp && m.flags[m.compoundHead(pfn)]! & PG_head && folioOrder(m, m.compoundHead(pfn)) === m.pmdOrder) huge++;
  }
  if (thp && huge !== p.n) fail(`${p.n - huge} pages were split out of their THPs by the offline`);
  checkContent(m, p, `after offlining block ${b}`);
  exitMmap(m, p.mm);
  return { ms, passes: report.passes, used: c.used, folios: c.folios };
}

export function offlineRows(): Row[] {
  const sizes = [32768, 65536, 131072];
  const reps = 5;
  // warm up the JIT: every configuration once, then the 128 MiB ones twice more
  for (const thp of [false, true]) for (const bp of [...sizes, sizes[0]!, sizes[0]!]) offlineOnce(bp, thp);
  const rows: Row[] = [];
  for (const thp of [false, true]) {
    let base = 0;
    for (const bp of sizes) {
      const runs: OfflineResult[] = [];
      for (let r = 0; r < reps; r++) runs.push(offlineOnce(bp, thp));
      const ms = median(runs.map((x) => x.ms));
      const per128 = ms / (bp / (128 * MiB));
      if (!base) base = per128;
      rows.push({
        case: `${thp ? 'THP (2M)' : 'order-0'} block ${bp / MiB} MiB`,
        'block pages': bp,
        'used frames': runs[0]!.used,
        folios: runs[0]!.folios,
        passes: runs[0]!.passes,
        'ms (median)': +ms.toFixed(1),
        'ms per 128 MiB': +per128.toFixed(1),
        'vs 128 MiB': +(per128 / base).toFixed(2),
        'pages/s': fmtRate(bp / (ms / 1000)),
      });
    }
  }
  return rows;
}
