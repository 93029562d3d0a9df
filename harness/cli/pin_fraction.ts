// pinlab pin-fraction: how much of memory can be pinned long-term for each kernelcore= share.
import { DEFAULT_VARIANT } from '../../mm/variants';
import { bootFromSpec } from '../layout';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  pinFractionTable,
  formatPinFraction,
  pinFractionScenario,
  PIN_FRACTION_STEP,
  PinFractionCompare,
  formatPinFractionCompare,
} from '../pin_fraction';
import { loadScenario, runScenario } from '../scenario';
import { prepare, SetupError, DEBIAN_KERNELS } from '../kernel_setup';
import { KernelRun } from '../kernel_run';
import { Io } from '../io';
import { plan, runJobs } from './kernel';
import { totalramPages } from '../../mm/page_alloc';
import { parseVariant, setVariant } from '../../mm/variants';
import { Command, parse, noPositionals, UsageError } from './command';
import { intFlag, kernelFlag } from './flags';

const PIN_FRACTION_HELP = `usage: pinlab pin-fraction [--cmdline "mem=1G"] [--geometry G] [--kernel V] [--kernelcore 10,20,...]
                           [--share 0.9] [--chunk PAGES] [--json] [--real K[,K...]]

"Can standard systems still pin > 80% of memory?" For each kernelcore= share (appended to --cmdline), a process
maps --share of managed memory and pins it long-term in --chunk pages (default 512, a 2M MAP_DMA) until a pin
fails: once with fresh memory (GUP faults it in, inside PF_MEMALLOC_PIN: straight into the kernel zones) and
once prefaulted (the guest touched it first: it sits in ZONE_MOVABLE and must migrate, and its unpinned pages
already fill the kernel zones). Prints the pinned share of managed memory and how the pinning ended.

--real K (${DEBIAN_KERNELS.join(', ')} or a bzImage path; a comma list runs each) runs every row on that
real kernel under QEMU as pinlab kernel does (each chunk an io_uring fixed buffer; a boot for each way)
and prints the model's share, the kernel's and
the difference in MiB. The model runs the same scenario under the kernel's variant.
`;

export const pinFraction: Command = {
  name: 'pin-fraction',
  summary: 'how much of memory can be pinned long-term for each kernelcore= share (S2)',
  help: () => PIN_FRACTION_HELP,
  sync: true,
  run(argv, io) {
    const { values, positionals } = parse('pin-fraction', argv, {
      cmdline: { type: 'string' },
      geometry: { type: 'string' },
      kernel: { type: 'string' },
      kernelcore: { type: 'string' },
      share: { type: 'string' },
      chunk: { type: 'string' },
      json: { type: 'boolean' },
      real: { type: 'string' },
    });
    noPositionals('pin-fraction', positionals);
    if (values.help) {
      io.out(PIN_FRACTION_HELP);
      return 0;
    }
    const kernel = kernelFlag(values.kernel);
    const base = (values.cmdline as string | undefined) ?? 'mem=1G';
    if (/\b(kernelcore|movablecore)=/.test(base))
      throw new UsageError(
        'pin-fraction: --cmdline must not set kernelcore= or movablecore= (the verb varies kernelcore=)',
      );
    const pcts = ((values.kernelcore as string | undefined) ?? '10,20,30,40,50,60,70,80,90')
      .split(',')
      .map((x) => intFlag('kernelcore', x, 1, 99)!);
    const shareText = values.share as string | undefined;
    const decimal = shareText !== undefined && shareText !== '' && /^(0|1)?(\.[0-9]+)?$/.test(shareText);
    const share = shareText === undefined ? 0.9 : decimal ? Number(shareText) : NaN;
    if (!(share > 0 && share <= 1)) throw new UsageError(`--share: '${String(shareText)}' is not a fraction in (0, 1]`);
    const chunk = intFlag('chunk', values.chunk, 1) ?? 512;
    bootFromSpec({ cmdline: `${base} kernelcore=${pcts[0]}%`, geometry: values.geometry as string | undefined }); // validate once
    if (values.real !== undefined) {
      if (values.geometry !== undefined) throw new UsageError('pin-fraction: --real runs the x86_64 geometry only');
      const kernels = String(values.real).split(',').filter(Boolean);
      if (!kernels.length) throw new UsageError('--real: name a kernel (debian:6.12, debian:6.1 or a bzImage path)');
      return realRows(base, pcts, share, chunk, kernels, values.json === true, io);
    }
    const rows = pinFractionTable(pcts, {
      base,
      geometry: values.geometry as string | undefined,
      kernel,
      share,
      chunk,
    });
    if (values.json)
      io.out(JSON.stringify({ cmdline: base, kernel: kernel ?? DEFAULT_VARIANT, share, chunk, rows }, null, 2) + '\n');
    else
      io.out(
        `# ${base} kernelcore=N%, kernel ${kernel ?? DEFAULT_VARIANT}, mapping ${share * 100}% of managed memory, pinned in ${chunk}-page chunks\n${formatPinFraction(rows)}`,
      );
    return 0;
  },
};

/** Managed pages of a model boot of cmdline under variant (what the kernel's zoneinfo says too). */
function managedPages(cmdline: string, variant: string): number {
  const prev = setVariant(parseVariant(variant));
  try {
    return totalramPages(bootFromSpec({ cmdline }).m);
  } finally {
    setVariant(prev);
  }
}

/** Pages a pin_max step pinned: its rc, or (the pinner killed inside it) the chunks registered before. */
function kernelPinned(run: KernelRun, step: number): number | null {
  const r = run.results[step - 1];
  if (!r) return null;
  if (typeof r.rc === 'number') return r.rc >= 0 ? r.rc : 0;
  return typeof r.raw.pinned === 'number' ? r.raw.pinned : null;
}

async function realRows(
  base: string,
  pcts: number[],
  share: number,
  chunk: number,
  kernels: string[],
  json: boolean,
  io: Io,
): Promise<number> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pinlab-pin-fraction-'));
  try {
    const out: { kernel: string; variant: string; rows: PinFractionCompare[] }[] = [];
    for (const k of kernels) {
      const variant = prepare(k, { log: (s: string) => io.err(s + '\n') }).kernel.variant;
      const files = pcts.flatMap((pct) => {
        const managed = managedPages(`${base} kernelcore=${pct}%`, variant);
        return [false, true].map((prefault) => {
          const file = path.join(
            dir,
            `${k.replace(/[^a-z0-9.]+/gi, '_')}-kc${pct}-${prefault ? 'prefault' : 'fresh'}.yaml`,
          );
          fs.writeFileSync(file, pinFractionScenario(base, pct, Math.floor(managed * share), chunk, prefault));
          return { pct, managed, file };
        });
      });
      const jobs = plan(
        files.map((f) => f.file),
        [k],
        undefined,
        io,
      );
      const runs = await runJobs(jobs, {
        jobs: Math.min(2, os.cpus().length),
        timeoutMs: 300_000,
        keep: false,
        diff: false,
        json: false,
      });
      const pinned = (i: number) => {
        const f = files[i]!;
        const model = runScenario(f.file, loadScenario(f.file), () => {}, runs[i]!.variant);
        return {
          model: Math.max(0, model.results[PIN_FRACTION_STEP - 1]?.rc ?? 0),
          kernel: kernelPinned(runs[i]!, PIN_FRACTION_STEP),
        };
      };
      const rows = pcts.map((pct, r) => ({
        kernelcore: pct,
        managed: files[2 * r]!.managed,
        mapped: Math.floor(files[2 * r]!.managed * share),
        fresh: pinned(2 * r),
        prefault: pinned(2 * r + 1),
      }));
      out.push({ kernel: k, variant: runs[0]?.variant ?? variant, rows });
    }
    if (json) io.out(JSON.stringify({ cmdline: base, share, chunk, runs: out }, null, 2) + '\n');
    else
      for (const o of out)
        io.out(
          `# ${base} kernelcore=N%, model ${o.variant} beside ${o.kernel}, mapping ${share * 100}% of managed memory, pinned in ${chunk}-page chunks\n${formatPinFractionCompare(o.rows, o.kernel)}`,
        );
    return 0;
  } catch (e) {
    if (e instanceof SetupError) {
      io.err(`pinlab: pin-fraction: ${e.message}\n`);
      return 2;
    }
    throw e;
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
