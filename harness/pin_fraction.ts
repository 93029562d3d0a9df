// S2 from the review thread: "can standard systems still pin > 80% of memory?" For each kernelcore=
// share, a process maps most of memory (the VMM's guest RAM) and pins it long-term in chunks (as VFIO's
// MAP_DMA does) until a pin fails. Two ways: 'fresh' memory, faulted in by GUP itself inside the
// PF_MEMALLOC_PIN scope (so it is allocated in the kernel zones at once), and 'prefault' memory the
// guest touched before the pin (it sits in ZONE_MOVABLE first and must migrate, and the guest's own
// unpinned pages already fill the kernel zones). Everything pinned must live in the kernel zones, so
// the answer is bounded by kernelcore= minus the watermarks; the pinner ends OOM-killed (v5.13+), or
// on v5.12 pins nearly everything, in ZONE_MOVABLE.

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

/**
 * Long-term pin [vpn, vpn + n) in chunks of `chunk` pages (one VFIO MAP_DMA each) until a pin comes up
 * short, fails, or the pinner is killed. Returns every frame pinned, and the last pin's return value
 * ('all' when every chunk pinned whole).
 */
export function pinChunks(
  m: Memmap,
  mm: number,
  vpn: number,
  n: number,
  chunk: number,
): { pages: number[]; last: number | 'all' } {
  const out: number[] = [];
  for (let off = 0; off < n && !current().fatalSignal; off += chunk) {
    const len = Math.min(chunk, n - off);
    const pages: number[] = new Array(len).fill(-1);
    const rc = pinUserPages(m, mm, vpn + off, len, FOLL_WRITE | FOLL_LONGTERM, pages);
    for (let i = 0; i < rc; i++) out.push(pages[i]!);
    if (rc !== len) return { pages: out, last: rc };
  }
  return { pages: out, last: 'all' };
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
    let end = 'all';
    try {
      const r = pinChunks(m, mm, vpn, nr, o.chunk ?? 512);
      pinned = r.pages;
      if (r.last !== 'all') end = task.fatalSignal ? 'killed' : r.last < 0 ? errname(r.last) : `short ${r.last}`;
    } catch (e) {
      if (!(e instanceof KernelPanic)) throw e;
      end = 'panic';
    }
    const migrated = vmstatSnapshot(m).pgmigrate_success;
    unpinUserPages(m, pinned, pinned.length);
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
