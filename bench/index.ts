// pinlab benchmarks: `npm run bench [-- NAME...]`. Figures go to stdout as a table and to
// bench/results/<name>.json. Timed here, never in tests.
import * as fs from 'node:fs';
import * as path from 'node:path';
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
import { mutationRows } from './mutation';
import { soakRows } from './soak';
import { campaignRows } from './campaign';
import { loadPlugin } from '../harness/plugins';
import { BENCH_PLUGIN, AllocBenchTask, AllocBenchResult } from './plugin';

type Row = Record<string, string | number>;
const results: Record<string, Row[]> = {};

function record(name: string, rows: Row[]): void {
  results[name] = rows;
  console.log(`\n== ${name} ==`);
  console.table(rows);
}

function rate(n: number, s: number): number {
  return Math.round(n / s);
}

async function benchAlloc(): Promise<void> {
  const rows: Row[] = [];
  const { m } = bootFromSpec({ cmdline: 'mem=4G movablecore=2G' });
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
      'bytes/frame': Memmap.bytesPerFrame(),
      'buffer bytes/frame': +(m.sab.byteLength / m.nrFrames).toFixed(2),
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
  record(only === 'device' ? 'mutation-devices' : 'mutation', await mutationRows(only));
}

async function benchDevices(): Promise<void> {
  record('devices', await devicesRows());
}

async function benchSoak(): Promise<void> {
  const { suites, injected } = await soakRows();
  record('soak', suites);
  record('soak-injected', injected);
}

async function mainBench(): Promise<void> {
  loadPlugin(BENCH_PLUGIN); // the yielder actor and the alloc-bench task, here and in every pool's workers
  const which = process.argv.slice(2);
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
  };
  // benchmarks that never start a worker run first: their single-threaded rows run UP (mm/atomic.ts),
  // which a process gives up for good once it has a worker pool
  const single = ['boot', 'migrate', 'offline', 'pin'];
  const names = (which.length ? which : Object.keys(all)).sort(
    (a, b) => Number(!single.includes(a)) - Number(!single.includes(b)),
  );
  for (const n of names) {
    const fn = all[n];
    if (!fn) {
      console.error(`bench: unknown benchmark '${n}' (have: ${Object.keys(all).join(', ')})`);
      process.exitCode = 2;
      return;
    }
    await fn();
  }
  // compiled, this file runs from dist/bench/: the results belong in the source tree's bench/results/
  const dir = path.join(
    path.basename(path.dirname(__dirname)) === 'dist' ? path.join(__dirname, '..', '..', 'bench') : __dirname,
    'results',
  );
  fs.mkdirSync(dir, { recursive: true });
  for (const [n, rows] of Object.entries(results)) {
    fs.writeFileSync(path.join(dir, `${n}.json`), JSON.stringify({ node: process.version, rows }, null, 2) + '\n');
  }
}

void mainBench();
