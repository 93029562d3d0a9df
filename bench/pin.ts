// Long-term pin benchmarks: pin_user_pages_fast(FOLL_LONGTERM | FOLL_WRITE) of 1 GiB at once, for
// pages that are already pinnable (in the kernel zones: the fast path pins them in place) and for
// ZONE_MOVABLE pages that must migrate first (order 0 and THP), and the cost ratio of the two. Every
// run is checked outside the timed region: all pages pinned, none in ZONE_MOVABLE, the process still
// reads what it wrote, and pins balance after the unpin.
import { performance } from 'node:perf_hooks';
import { bootFromSpec } from '../harness/layout';
import { Memmap } from '../mm/memmap';
import { ZONE_MOVABLE } from '../mm/mmzone';
import { bprmMmInit, doMmap, exitMmap, doMadvise, MADV_HUGEPAGE, PROT_READ, PROT_WRITE } from '../mm/mmap';
import { getUser, putUser } from '../mm/memory';
import { pinUserPagesFast, unpinUserPages, FOLL_LONGTERM, FOLL_WRITE, newPinReport } from '../mm/gup';
import { setCurrent, newTask } from '../mm/sched';
import { vmstatSnapshot } from '../mm/vmstat';
import { smpEnable, smpEnabled } from '../mm/atomic';

type Row = Record<string, string | number>;
const GiB = 262144; // 4 KiB pages

function fail(what: string): never {
  throw new Error(`bench pin: ${what}`);
}

function fmtRate(r: number): string {
  return r >= 1e6 ? `${(r / 1e6).toFixed(2)}M` : `${(r / 1e3).toFixed(1)}k`;
}

interface Case {
  label: string;
  cmdline: string;
  thp: boolean;
  migrates: boolean;
  target: string;
}

function runCase(c: Case, reps: number, mode: string): { row: Row; perSec: number } {
  const times: number[] = [];
  const cpus: number[] = []; // process CPU time of the same region: less moved by other work on a shared box
  let migrated = 0;
  let split = 0;
  for (let r = 0; r < reps + 2; r++) {
    const { m } = bootFromSpec({ cmdline: c.cmdline });
    const mm = bprmMmInit(m);
    setCurrent(newTask(1, 'bench', 0, mm));
    const vpn = doMmap(m, mm, { nrPages: GiB, prot: PROT_READ | PROT_WRITE });
    if (c.thp) doMadvise(m, mm, vpn, GiB, MADV_HUGEPAGE);
    for (let i = 0; i < GiB; i++) putUser(m, mm, vpn + i, i + 1);
    const pages: number[] = new Array(GiB).fill(-1);
    const report = newPinReport();
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    const n = pinUserPagesFast(m, mm, vpn, GiB, FOLL_LONGTERM | FOLL_WRITE, pages, report);
    const ms = performance.now() - t0;
    const cpu = process.cpuUsage(c0);
    if (r > 1) {
      times.push(ms);
      cpus.push((cpu.user + cpu.system) / 1000);
    } // the first two runs warm the JIT
    check(m, mm, vpn, n, pages, c);
    migrated = report.migrated;
    split = report.thpSplit;
    unpinUserPages(m, pages, n);
    const vs = vmstatSnapshot(m);
    if (vs.nr_foll_pin_acquired !== vs.nr_foll_pin_released) fail(`${c.label}: pins do not balance`);
    exitMmap(m, mm);
  }
  const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;
  const med = median(times);
  const perSec = GiB / (med / 1000);
  const cpuPerSec = GiB / (median(cpus) / 1000);
  return {
    perSec,
    row: {
      case: c.label,
      mode,
      pages: GiB,
      migrated,
      'THP split': split,
      'ms (median)': +med.toFixed(1),
      'pins/s': fmtRate(perSec),
      'pins/s (CPU)': fmtRate(cpuPerSec),
      target: c.target,
    },
  };
}

function check(m: Memmap, mm: number, vpn: number, n: number, pages: number[], c: Case): void {
  if (n !== GiB) fail(`${c.label}: pinned ${n} of ${GiB}`);
  for (let i = 0; i < n; i++)
    if (m.pageZonenum(pages[i]!) === ZONE_MOVABLE) fail(`${c.label}: page ${i} pinned in ZONE_MOVABLE`);
  for (let i = 0; i < n; i += 4099)
    if (getUser(m, mm, vpn + i) !== i + 1) fail(`${c.label}: page ${i} lost its content`);
  for (let i = 0; i < n; i += 4099)
    if (m.content[pages[i]!] !== i + 1) fail(`${c.label}: pinned frame of page ${i} is not the process's page`);
}

export function pinRows(): Row[] {
  const cases: Case[] = [
    // no ZONE_MOVABLE: anonymous memory faults into the kernel zones and pins in place
    {
      label: 'pinnable order-0 (kernel zones)',
      cmdline: 'mem=4G',
      thp: false,
      migrates: false,
      target: '>= 10M pins/s',
    },
    {
      label: 'pinnable THP (kernel zones)',
      cmdline: 'mem=4G transparent_hugepage=always',
      thp: true,
      migrates: false,
      target: '>= 10M pins/s',
    },
    // ZONE_MOVABLE first: every page migrates to the kernel zones before it is pinned
    {
      label: 'ZONE_MOVABLE order-0 (migrates)',
      cmdline: 'mem=5G movablecore=2G',
      thp: false,
      migrates: true,
      target: '>= 1M pins/s',
    },
    {
      label: 'ZONE_MOVABLE THP (migrates whole)',
      cmdline: 'mem=5G movablecore=2G transparent_hugepage=always',
      thp: true,
      migrates: true,
      target: '>= 1M pins/s',
    },
  ];
  const out: Row[] = [];
  // UP first (this thread is the only one touching the machine: plain accesses, mm/atomic.ts), then SMP
  // (Atomics, as every worker thread runs). A process that already started workers can only run SMP.
  const modes = smpEnabled() ? ['SMP'] : ['UP', 'SMP'];
  for (const mode of modes) {
    if (mode === 'SMP') smpEnable();
    const rates: number[] = [];
    for (const c of cases) {
      const r = runCase(c, 5, mode);
      rates.push(r.perSec);
      out.push(r.row);
    }
    const ratio = (label: string, x: number): Row => ({
      case: label,
      mode,
      pages: '',
      migrated: '',
      'THP split': '',
      'ms (median)': '',
      'pins/s': `${x.toFixed(1)}x`,
      'pins/s (CPU)': '',
      target: '',
    });
    out.push(ratio('cost ratio order-0: migrating / pinnable', rates[0]! / rates[2]!));
    out.push(ratio('cost ratio THP: migrating / pinnable', rates[1]! / rates[3]!));
  }
  return out;
}
