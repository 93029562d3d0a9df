// pinlab benchmarks: `npm run bench [-- [--write] NAME...]`. Figures go to stdout as plain tables and
// to bench/out/<name>.json (git-ignored); --write updates the committed bench/results/<name>.json
// instead. Progress and estimates go to stderr. Timed here, never in tests.
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as os from 'node:os';
import { performance } from 'node:perf_hooks';
import { bootFromSpec } from '../harness/layout';
import { Memmap } from '../mm/memmap';
import { GFP_HIGHUSER_MOVABLE, GFP_KERNEL, __GFP_COMP } from '../mm/gfp';
import { ActorPool } from '../harness/pool';
import { smpEnabled } from '../mm/atomic';
import { allocPairs } from './alloc_pairs';
import { migrateRows, offlineRows } from './migrate';
import { pinRows } from './pin';
import { schedRows } from './sched';
import { devicesRows } from './devices';
import { mutationRows, mutationTable, replaceTable } from './mutation';
import { soakRows } from './soak';
import { campaignRows, campaignRounds } from './campaign';
import { mmMutantRows, mutantScores } from './mm_mutants';
import { loadPlugin } from '../harness/plugins';
import { BENCH_PLUGIN, AllocBenchTask, AllocBenchResult } from './plugin';
import { Row, formatTable } from './table';
import { Progress, EXPECTED_SECONDS, recordedSeconds } from './progress';

/** What the benchmark running now has recorded: results file name -> rows. */
let results: Record<string, Row[]> = {};

function record(name: string, rows: Row[]): void {
  results[name] = rows;
  process.stdout.write(`\n== ${name} ==\n${formatTable(rows)}`);
}

function rate(n: number, s: number): number {
  return Math.round(n / s);
}

async function benchAlloc(): Promise<void> {
  const rows: Row[] = [];
  const { m } = bootFromSpec({ cmdline: 'mem=5G movablecore=2G' });
  for (const [order, gfp, batch, label] of [
    [0, GFP_HIGHUSER_MOVABLE, 1, 'order-0 alloc,free (pcp hot)'],
    [0, GFP_HIGHUSER_MOVABLE, 64, 'order-0 64 allocs, 64 frees'],
    [0, GFP_KERNEL, 64, 'order-0 GFP_KERNEL 64/64'],
    [9, GFP_HIGHUSER_MOVABLE | __GFP_COMP, 1, 'order-9 THP alloc,free'],
    [9, GFP_HIGHUSER_MOVABLE | __GFP_COMP, 16, 'order-9 16 allocs, 16 frees'],
  ] as [number, number, number, string][]) {
    allocPairs(m, order, gfp, 200_000 >> (order ? 4 : 0), batch); // warm up the JIT
    const r = allocPairs(m, order, gfp, order ? 200_000 : 5_000_000, batch);
    rows.push({
      case: label,
      threads: 1,
      mode: smpEnabled() ? 'SMP' : 'UP',
      pairs: r.pairs,
      'pairs/s': rate(r.pairs, r.seconds),
    });
  }
  const pool = new ActorPool(2);
  try {
    for (const [order, batch] of [
      [0, 1],
      [0, 64],
      [9, 1],
    ] as [number, number][]) {
      for (const threads of [1, 2]) {
        const start = new SharedArrayBuffer(8);
        const gfp = GFP_HIGHUSER_MOVABLE | (order ? __GFP_COMP : 0);
        const pairs = order ? 200_000 : 3_000_000;
        const jobs = [...Array(threads).keys()].map((i) => {
          const t: AllocBenchTask = {
            machine: { sab: m.sab, shape: m.shape },
            cpu: i + 1,
            order,
            gfp,
            pairs,
            batch,
            start,
          };
          return pool.runTask('alloc-bench', t) as Promise<AllocBenchResult>;
        });
        const s32 = new Int32Array(start);
        while (Atomics.load(s32, 1) < threads) await new Promise((r) => setTimeout(r, 1));
        Atomics.store(s32, 0, 1);
        Atomics.notify(s32, 0);
        const rs = await Promise.all(jobs);
        const total = rs.reduce((a, r) => a + r.pairs, 0);
        const secs = Math.max(...rs.map((r) => r.seconds));
        rows.push({
          case: `order-${order} batch ${batch} (workers)`,
          threads,
          mode: 'SMP',
          pairs: total,
          'pairs/s': rate(total, secs),
        });
      }
    }
  } finally {
    await pool.destroy();
  }
  record('alloc', rows);
}

/** Bytes per frame of the buffer's parts, measured from the views: struct page, page tables, shmem slots. */
function frameBytes(m: Memmap): Row {
  const per = (...views: ArrayBufferView[]): number =>
    +(views.reduce((a, v) => a + v.byteLength, 0) / m.nrFrames).toFixed(2);
  return {
    'struct page B/frame': per(m.flags, m.refcount, m.mapcount, m.mapping, m.index, m.content),
    'page tables B/frame': per(m.ptes, m.pteMeta, m.pmds),
    'shmem B/frame': per(m.shmemPages),
    'buffer B/frame': +(m.sab.byteLength / m.nrFrames).toFixed(2),
  };
}

function benchBoot(): void {
  const rows: Row[] = [];
  for (const mem of ['1G', '16G', '64G']) {
    const gc = (globalThis as { gc?: () => void }).gc;
    gc?.();
    const rss0 = process.memoryUsage().rss;
    const t0 = performance.now();
    const { m } = bootFromSpec({ cmdline: `mem=${mem} movablecore=25%` });
    const ms = performance.now() - t0;
    const rss = process.memoryUsage().rss - rss0;
    rows.push({
      machine: `mem=${mem}`,
      frames: m.nrFrames,
      'boot ms': Math.round(ms),
      'buffer MiB': Math.round(m.sab.byteLength / 2 ** 20),
      ...frameBytes(m),
      'RSS growth MiB': Math.round(rss / 2 ** 20),
    });
  }
  record('boot', rows);
}

function benchMigrate(): void {
  record('migrate', migrateRows());
}

function benchOffline(): void {
  record('offline', offlineRows());
}

function benchPin(): void {
  record('pin', pinRows());
}

async function benchSched(): Promise<void> {
  record('sched', await schedRows());
}

async function benchMutation(): Promise<void> {
  const only = process.env.PINLAB_BENCH_ONLY;
  const load = os.loadavg()[0]!.toFixed(1);
  const rows = await mutationRows(only);
  record(only === 'device' ? 'mutation-devices' : 'mutation', rows);
  if (!writeDocs) return;
  // --write: docs/properties.md's tables come from this run alone, each only when all its entries ran
  const kinds = (['kernel', 'device'] as const).filter((k) => !only || only === k);
  if (!kinds.length) {
    process.stderr.write('bench: docs/properties.md not rewritten: PINLAB_BENCH_ONLY ran a subset of the entries\n');
    return;
  }
  const file = path.join(benchDir(), '..', 'docs', 'properties.md');
  const measured =
    `Measured by \`npm run bench -- --write mutation\` on ${new Date().toISOString().slice(0, 10)}, node ` +
    `${process.version}, ${os.cpus().length} CPUs, load average ${load} at the start.`;
  let doc = fs.readFileSync(file, 'utf8');
  for (const k of kinds) doc = replaceTable(doc, k, mutationTable(rows, k, measured));
  fs.writeFileSync(file, doc);
  process.stderr.write(`bench: rewrote the ${kinds.join(' and ')} tables of docs/properties.md\n`);
}

async function benchDevices(): Promise<void> {
  record('devices', await devicesRows());
}

async function benchSoak(): Promise<void> {
  const { suites, injected } = await soakRows();
  record('soak', suites);
  record('soak-injected', injected);
}

const BENCH_HELP = `usage: npm run bench -- [--write] [NAME...]

Runs the benchmarks (all, or the NAMEs given) and prints a table for each; progress, with the time
so far and an estimate of the time left, goes to stderr. Results go to bench/out/<name>.json (not
committed). --write writes the committed bench/results/<name>.json instead. bench/README.md says what
each figure means.
`;

/** bench/ in the source tree: compiled, this file runs from dist/bench/. */
function benchDir(): string {
  return path.basename(path.dirname(__dirname)) === 'dist' ? path.join(__dirname, '..', '..', 'bench') : __dirname;
}

/** The results file a benchmark writes, for its duration estimate (mutation's name depends on its env). */
function resultsName(n: string): string {
  return n === 'mutation' && process.env.PINLAB_BENCH_ONLY === 'device' ? 'mutation-devices' : n;
}

function parseArgs(argv: string[]): { names: string[]; write: boolean } | undefined {
  const names: string[] = [];
  let write = false;
  for (const a of argv) {
    if (a === '--write') write = true;
    else if (a === '--help' || a === '-h') {
      process.stdout.write(BENCH_HELP);
      return undefined;
    } else if (a.startsWith('-')) {
      console.error(`bench: unknown option '${a}' (have: --write, --help)`);
      process.exitCode = 2;
      return undefined;
    } else names.push(a);
  }
  return { names, write };
}

/** --write: committed results, and the docs tables a benchmark owns */
let writeDocs = false;

async function mainBench(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  if (!args) return;
  writeDocs = args.write;
  const all: Record<string, () => void | Promise<void>> = {
    alloc: benchAlloc,
    boot: benchBoot,
    migrate: benchMigrate,
    offline: benchOffline,
    pin: benchPin,
    sched: benchSched,
    devices: benchDevices,
    mutation: benchMutation,
    soak: benchSoak,
    campaign: async () => record('campaign', await campaignRows()),
    'mm-mutants': async () => {
      const rows = await mmMutantRows(path.join(benchDir(), '..'));
      record('mm-mutants', rows);
      record('mm-mutants-score', mutantScores(rows));
    },
  };
  const unknown = args.names.filter((n) => !all[n]);
  if (unknown.length) {
    console.error(`bench: unknown benchmark '${unknown[0]}' (have: ${Object.keys(all).join(', ')})`);
    process.exitCode = 2;
    return;
  }
  loadPlugin(BENCH_PLUGIN); // the yielder actor and the alloc-bench task, here and in every pool's workers
  // benchmarks that never start a worker run first: their single-threaded rows run UP (mm/atomic.ts),
  // which a process gives up for good once it has a worker pool
  const single = ['boot', 'migrate', 'offline', 'pin'];
  const names = (args.names.length ? args.names : Object.keys(all)).sort(
    (a, b) => Number(!single.includes(a)) - Number(!single.includes(b)),
  );
  if (names.includes('campaign'))
    try {
      campaignRounds(); // a bad PINLAB_CAMPAIGN_ROUNDS stops the run before anything starts
    } catch (e) {
      console.error(`bench: ${(e as Error).message}`);
      process.exitCode = 2;
      return;
    }
  const out = path.join(benchDir(), 'out');
  const dir = args.write ? path.join(benchDir(), 'results') : out;
  const estimate = (n: string): number =>
    recordedSeconds([out, path.join(benchDir(), 'results')], resultsName(n)) ?? EXPECTED_SECONDS[n] ?? 60;
  const progress = new Progress(names, estimate);
  fs.mkdirSync(dir, { recursive: true });
  for (const [i, n] of names.entries()) {
    progress.start(i);
    results = {};
    await all[n]!();
    const seconds = +progress.end(i).toFixed(1);
    // each benchmark's files as soon as it ends: an interrupted run keeps what finished
    for (const [file, rows] of Object.entries(results)) {
      // a subset's duration says nothing of the whole benchmark's (recordedSeconds() skips it)
      const only = process.env.PINLAB_BENCH_ONLY;
      const json = JSON.stringify({ node: process.version, seconds, ...(only ? { only } : {}), rows }, null, 2) + '\n';
      fs.writeFileSync(path.join(dir, `${file}.json`), json);
    }
  }
  process.stderr.write(`bench: results in ${path.relative(process.cwd(), dir) || dir}/\n`);
}

void mainBench();
