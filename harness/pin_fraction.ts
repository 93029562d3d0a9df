// S2 from the review thread: "can standard systems still pin > 80% of memory?" For each kernelcore=
// share, a process maps most of memory (the VMM's guest RAM) and pins it long-term in 2 MiB chunks (as
// VFIO's MAP_DMA does; each chunk an io_uring fixed buffer, as `pinlab kernel` runs it) until a pin
// fails. Two ways: 'fresh' memory, faulted in by GUP itself inside the PF_MEMALLOC_PIN scope (so it is
// allocated in the kernel zones at once), and 'prefault' memory the guest touched before the pin (it
// sits in ZONE_MOVABLE first and must migrate, and the guest's own unpinned pages already fill the
// kernel zones). Everything pinned must live in the kernel zones, so the answer is bounded by
// kernelcore= minus the watermarks and the kernel's own memory; the pinner ends OOM-killed (v5.13+),
// or on v5.12 pins nearly everything, in ZONE_MOVABLE.

import { bootFromSpec } from './layout';
import { ZONE_NAMES, ZONE_MOVABLE } from '../mm/mmzone';
import { Memmap, Z_MANAGED } from '../mm/memmap';
import { bprmMmInit, doMmap, populateRange, PROT_READ, PROT_WRITE } from '../mm/mmap';
import { pinUserPages, unpinUserPages, FOLL_WRITE, FOLL_LONGTERM } from '../mm/gup';
import { parseVariant, setVariant } from '../mm/variants';
import { setCurrent, newTask, current } from '../mm/sched';
import { KernelPanic } from '../mm/oom_kill';
import { errname } from '../mm/errno';
import { vmstatSnapshot } from '../mm/vmstat';
import { KBuf, kvfree } from '../mm/slab';
import { ENOMEM } from '../mm/errno';
import { imuAlloc } from '../devices/io_uring_fixed';

/**
 * Long-term pin [vpn, vpn + n) in chunks of `chunk` pages until a pin comes up short, fails, or the
 * pinner is killed. Each chunk is what `pinlab kernel` runs: an io_uring fixed buffer, whose
 * io_mapped_ubuf is kvmalloc()ed once its pages are pinned (-ENOMEM, the chunk unpinned, when that
 * fails). Returns every frame pinned, the buffers' kernel memory, and the last pin's return value
 * ('all' when every chunk pinned whole).
 */
export function pinChunks(
  m: Memmap,
  mm: number,
  vpn: number,
  n: number,
  chunk: number,
): { pages: number[]; kmem: KBuf[]; last: number | 'all' } {
  const out: number[] = [];
  const kmem: KBuf[] = [];
  for (let off = 0; off < n && !current().fatalSignal; off += chunk) {
    const len = Math.min(chunk, n - off);
    const pages: number[] = new Array(len).fill(-1);
    const rc = pinUserPages(m, mm, vpn + off, len, FOLL_WRITE | FOLL_LONGTERM, pages);
    if (rc !== len) {
      // io_pin_pages(): a partial pin is released
      if (rc > 0) unpinUserPages(m, pages, rc);
      return { pages: out, kmem, last: rc };
    }
    const imu = imuAlloc(m, len);
    if (!imu) {
      unpinUserPages(m, pages, len);
      return { pages: out, kmem, last: -ENOMEM };
    }
    kmem.push(imu);
    for (let i = 0; i < rc; i++) out.push(pages[i]!);
  }
  return { pages: out, kmem, last: 'all' };
}

export interface PinFractionRow {
  kernelcore: number;
  /** managed pages of the whole machine */
  managed: number;
  /** managed pages below ZONE_MOVABLE */
  kernelManaged: number;
  /** pages the process mapped (and, with prefault, touched) */
  mapped: number;
  prefault: boolean;
  pinned: number;
  /** pinned / managed, in percent */
  pct: number;
  /** how the last pin ended: an errno, 'killed' (OOM killer took the pinner) or 'all' */
  end: string;
  migrated: number;
}

export interface PinFractionOptions {
  /** kernel command line before kernelcore= (default "mem=1G") */
  base?: string;
  geometry?: string;
  kernel?: string;
  /** share of managed memory the process maps (default 0.9) */
  share?: number;
  /** touch the mapping before pinning it (default false: GUP faults it in) */
  prefault?: boolean;
  /** pin chunk, pages (default 512: a 2M MAP_DMA) */
  chunk?: number;
}

/** One row: boot with kernelcore=pct%, touch, pin chunk by chunk until a pin fails. */
export function pinFraction(pct: number, o: PinFractionOptions = {}): PinFractionRow {
  const prevVariant = setVariant(parseVariant(o.kernel ?? 'v6.12'));
  const task = newTask(1, 'qemu', 0);
  const prevTask = setCurrent(task);
  try {
    const { m } = bootFromSpec({ cmdline: `${o.base ?? 'mem=1G'} kernelcore=${pct}%`, geometry: o.geometry });
    let managed = 0;
    let kernelManaged = 0;
    for (let z = 0; z < ZONE_NAMES.length; z++) {
      const n = m.zones[m.zoneBase(z) + Z_MANAGED]!;
      managed += n;
      if (z !== ZONE_MOVABLE) kernelManaged += n;
    }
    const mm = bprmMmInit(m);
    task.mm = mm;
    const nr = Math.floor(managed * (o.share ?? 0.9));
    const vpn = doMmap(m, mm, { nrPages: nr, prot: PROT_READ | PROT_WRITE });
    if (o.prefault && (populateRange(m, mm, vpn, vpn + nr, true) < 0 || task.fatalSignal)) {
      // the guest could not even touch that much: report it rather than pin
      return {
        kernelcore: pct,
        managed,
        kernelManaged,
        mapped: nr,
        prefault: true,
        pinned: 0,
        pct: 0,
        end: task.fatalSignal ? 'killed prefaulting' : 'prefault failed',
        migrated: 0,
      };
    }
    let pinned: number[] = [];
    let kmem: KBuf[] = [];
    let end = 'all';
    try {
      const r = pinChunks(m, mm, vpn, nr, o.chunk ?? 512);
      pinned = r.pages;
      kmem = r.kmem;
      if (r.last !== 'all') end = task.fatalSignal ? 'killed' : r.last < 0 ? errname(r.last) : `short ${r.last}`;
    } catch (e) {
      if (!(e instanceof KernelPanic)) throw e;
      end = 'panic';
    }
    const migrated = vmstatSnapshot(m).pgmigrate_success;
    unpinUserPages(m, pinned, pinned.length);
    for (const b of kmem) kvfree(m, b);
    return {
      kernelcore: pct,
      managed,
      kernelManaged,
      mapped: nr,
      prefault: !!o.prefault,
      pinned: pinned.length,
      pct: (100 * pinned.length) / managed,
      end,
      migrated,
    };
  } finally {
    setCurrent(prevTask);
    setVariant(prevVariant);
  }
}

export interface PinFractionPair {
  kernelcore: number;
  fresh: PinFractionRow;
  prefault: PinFractionRow;
}

/** The S2 table: for each kernelcore= share, the pinnable fraction of fresh and of prefaulted memory. */
export function pinFractionTable(pcts: number[], o: PinFractionOptions = {}): PinFractionPair[] {
  return pcts.map((p) => ({
    kernelcore: p,
    fresh: pinFraction(p, { ...o, prefault: false }),
    prefault: pinFraction(p, { ...o, prefault: true }),
  }));
}

export function formatPinFraction(rows: PinFractionPair[]): string {
  const pct = (x: number) => `${x.toFixed(1)}%`;
  const lines = ['kernelcore  kernel zones  pinned (fresh)  ended by  pinned (prefaulted)  migrated  ended by'];
  for (const { kernelcore, fresh: f, prefault: p } of rows) {
    lines.push(
      `${`${kernelcore}%`.padStart(10)}  ${pct((100 * f.kernelManaged) / f.managed).padStart(12)}  ${pct(f.pct).padStart(14)}  ${f.end.padEnd(8)}  ${pct(p.pct).padStart(19)}  ${String(p.migrated).padStart(8)}  ${p.end}`,
    );
  }
  return lines.join('\n') + '\n';
}

/**
 * One way of one kernelcore= row as a scenario file for `pinlab kernel`: a process maps `pages` (touching
 * them first when prefault) and pins them in chunks until a pin fails or the OOM killer takes it. Each
 * way boots on its own: on the kernel a killed pinner's buffers go back only when io_uring's exit work
 * runs (io_ring_exit_work(), a workqueue), so a second pinner in the same boot would race it.
 */
export function pinFractionScenario(
  base: string,
  pct: number,
  pages: number,
  chunkPages: number,
  prefault: boolean,
): string {
  const len = `${pages * 4}K`;
  return [
    `description: pin-fraction row, ${base} kernelcore=${pct}%, ${prefault ? 'prefaulted' : 'fresh'} (pinlab pin-fraction --real)`,
    `machine: { cmdline: "${base} kernelcore=${pct}%" }`,
    'steps:',
    '  - { op: spawn, proc: vmm }',
    `  - { op: mmap, proc: vmm, len: ${len}, as: guest${prefault ? ', populate: true' : ''} }`,
    `  - { op: pin_max, proc: vmm, addr: guest, len: ${len}, chunk: ${chunkPages * 4}K, as: dma }`,
    '  - { op: vmstat, items: oom_kill pgmigrate_success }',
    '',
  ].join('\n');
}

/** The pin_max step of pinFractionScenario() (1-based). */
export const PIN_FRACTION_STEP = 3;

/** Model and kernel side by side for one row: pages pinned each way. */
export interface PinFractionCompare {
  kernelcore: number;
  managed: number;
  mapped: number;
  fresh: { model: number; kernel: number | null };
  prefault: { model: number; kernel: number | null };
}

export function formatPinFractionCompare(rows: PinFractionCompare[], kernel: string): string {
  const mib = (p: number) => (p * 4) / 1024;
  const cell = (m: number, k: number | null, managed: number) =>
    k === null
      ? `${((100 * m) / managed).toFixed(1)}%  ?`.padStart(24)
      : `${((100 * m) / managed).toFixed(1)}% ${((100 * k) / managed).toFixed(1)}% ${(mib(m - k) >= 0 ? '+' : '') + mib(m - k).toFixed(0)}M`.padStart(
          24,
        );
  const lines = [`kernelcore  fresh: model ${kernel.padEnd(11)} diff  prefaulted: model ${kernel.padEnd(11)} diff`];
  for (const r of rows)
    lines.push(
      `${`${r.kernelcore}%`.padStart(10)}  ${cell(r.fresh.model, r.fresh.kernel, r.managed)}  ${cell(r.prefault.model, r.prefault.kernel, r.managed)}`,
    );
  return lines.join('\n') + '\n';
}
