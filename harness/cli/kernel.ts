// pinlab kernel: run scenario files on a real Linux kernel under QEMU and print the same per-step
// report as pinlab scenario; --diff runs the model too and marks every difference. docs/real-kernel.md.
import * as os from 'node:os';
import { loadScenario, runScenario, ScenarioRun, ScenarioError } from '../scenario';
import { compileScenario, kernelMachine, setOfflineTimeout, CompiledScenario } from '../kernel_compile';
import { prepare, checkKernelSpec, SetupError, DEBIAN_KERNELS, KernelImage } from '../kernel_setup';
import { runOnKernel, KernelRun, formatKernelStep, zonesLine, blocksLine } from '../kernel_run';
import { diffRuns, formatDiff, RunDiff } from '../kernel_diff';
import { Command, Flags, Io, parse, UsageError } from './command';
import { intFlag, decimalFlag } from './flags';

const KERNEL_HELP = `usage: pinlab kernel FILE... [--kernel K[,K...]] [--diff] [--json] [--jobs N] [--timeout S]
                    [--offline-timeout S] [--modules DIR] [--load MOD[,MOD]] [--keep]

Boot a real Linux kernel in qemu-system-x86_64 (TCG) with each scenario's machine (QEMU -m from mem=,
-M from pinlab.machine=pc|q35, default pc; the rest of machine.cmdline as the guest's command line), run the steps in a small
static probe (probe/pinlab-probe.c) and print the same per-step report as 'pinlab scenario': the rc or
errno, where the pages are by zone, pins, counters, the final zones and memory blocks. A long-term pin
is an io_uring fixed buffer (IORING_REGISTER_BUFFERS: FOLL_WRITE|FOLL_LONGTERM). Device steps run on
real drivers: vfio-type1 on QEMU's edu behind its intel-iommu (q35, vfio-pci), rdma-umem on rdma_rxe
over an e1000, io-uring-fixed on its own ring. Ops and fields the kernel cannot run (kalloc, fragment,
isolate, inject, DMA through edu, RDMA work requests, ...) are refused before anything boots.

First use installs qemu-system-x86, busybox-static and gcc with apt-get when missing (as root) and
fetches the kernel package; downloads and builds are cached in .cache/. docs/real-kernel.md has more.

options:
  --kernel K        ${DEBIAN_KERNELS.join(', ')} (Debian's linux-image-*-amd64-unsigned packages, fetched
                    with apt-get download), or a path to your own bzImage; a comma list runs each
                    (default debian:6.12)
  --diff            run the model as well (the kernel variant matching the kernel's version) and print
                    both, each step marked '=' (its comparable facts agree) or '!' (a DIFF line per fact)
  --json            one JSON document per run (an array for several): results[], zones, blocks,
                    vmstat, time; with --diff also the model's run and the diff
  --jobs N          QEMU guests at once (default: the number of cores, at most 2)
  --timeout S       seconds a guest may run (default 300)
  --offline-timeout S  seconds an offline may retry before a signal ends it (-EINTR; default 10)
  --modules DIR     the modules tree of a --kernel PATH (lib/modules/RELEASE or a staging root)
  --load MOD,...    modules to insmod before the probe runs (dependencies found and loaded first)
  --keep            keep each guest's console log, results and initramfs (the path is printed)
  -h, --help        this text
Exit code 0 when every step's expect: held on the kernel (with --diff: when the model and the kernel
agree on every comparable fact), 1 when not or when a guest failed, 2 for bad input or a missing tool.
`;

export interface Job {
  file: string;
  kernel: string;
  compiled: CompiledScenario;
  img?: KernelImage;
  initramfs?: string;
}

export interface KernelOptions {
  jobs: number;
  timeoutMs: number;
  keep: boolean;
  load?: string[];
  diff: boolean;
  json: boolean;
}

function options(values: Flags): KernelOptions {
  setOfflineTimeout((decimalFlag('offline-timeout', values['offline-timeout'], 0.1) ?? 10) * 1000);
  return {
    jobs: intFlag('jobs', values.jobs, 1) ?? Math.min(2, os.cpus().length),
    timeoutMs: (decimalFlag('timeout', values.timeout, 5) ?? 300) * 1000,
    keep: values.keep === true,
    diff: values.diff === true,
    json: values.json === true,
    load: values.load === undefined ? undefined : String(values.load).split(',').filter(Boolean),
  };
}

/** Every file and kernel checked up front, before any download or boot; then the kernels fetched and built. */
export function plan(files: string[], kernels: string[], modules: string | undefined, io: Io): Job[] {
  for (const k of kernels) checkKernelSpec(k);
  const jobs: Job[] = [];
  for (const file of files) {
    const compiled = compileScenario(file, loadScenario(file));
    for (const kernel of kernels) jobs.push({ file, kernel, compiled });
  }
  const images = new Map(kernels.map((k) => [k, prepare(k, { modules, log: (s: string) => io.err(s + '\n') })]));
  for (const j of jobs) {
    const p = images.get(j.kernel)!;
    j.img = p.kernel;
    j.initramfs = p.initramfs;
    // the kernel's .config: cma= needs CONFIG_CMA
    j.compiled.machine = kernelMachine(j.file, loadScenario(j.file), p.kernel);
  }
  return jobs;
}

/** Independent guests in parallel, up to --jobs; the runs in the order given. */
export async function runJobs(jobs: Job[], o: KernelOptions): Promise<KernelRun[]> {
  const runs: KernelRun[] = new Array(jobs.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < jobs.length) {
      const i = next++;
      const j = jobs[i]!;
      runs[i] = await runOnKernel(j.file, j.compiled, j.img!, j.initramfs!, {
        timeoutMs: o.timeoutMs,
        keep: o.keep,
        load: o.load,
      });
    }
  };
  await Promise.all(Array.from({ length: Math.min(o.jobs, jobs.length) }, worker));
  return runs;
}

/** The model's run of the same file under the kernel's variant, set beside the kernel's (--diff). */
interface ModelSide {
  model?: ScenarioRun;
  lines: string[];
  error?: string;
  diff?: RunDiff;
}

function modelSide(j: Job, run: KernelRun): ModelSide {
  const lines: string[] = [];
  try {
    const model = runScenario(j.file, loadScenario(j.file), (l) => lines.push(l), run.variant);
    return {
      model,
      lines,
      diff: diffRuns(
        model,
        lines,
        run,
        j.compiled.steps.some((s) => s.hold),
      ),
    };
  } catch (e) {
    // the model stopped at a step (say an unpin of a pin that failed under this variant)
    if (!(e instanceof ScenarioError)) throw e;
    return { lines, error: e.message };
  }
}

function report(j: Job, run: KernelRun, side: ModelSide | null, io: Io): void {
  io.out(`# ${j.file} [${j.kernel}: ${run.release}, model ${run.variant}]: ${loadScenario(j.file).machine.cmdline}\n`);
  io.out(
    `# guest: qemu -M ${j.compiled.machine.machineType} -m ${j.compiled.machine.memMiB}M (TCG), cmdline: ${run.cmdline}\n`,
  );
  for (const w of run.warnings) io.out(`# warning: ${w}\n`);
  for (const w of run.init) io.out(`# init: ${w}\n`);
  if (side?.error) io.out(`# model stopped: ${side.error}\n${side.lines.map((l) => `#   model ${l}\n`).join('')}`);
  if (side?.diff) for (const l of formatDiff(side.diff)) io.out(l + '\n');
  else
    for (let s = 0; s < run.results.length; s++)
      for (const l of formatKernelStep(run.results[s]!, run.variant, j.compiled.steps[s]!)) io.out(l + '\n');
  if (run.zones.length) io.out(`# zones: ${zonesLine(run.zones)}\n`);
  if (run.blocks.length) io.out(`# blocks: ${blocksLine(run.blocks)}\n`);
  if (run.error) io.out(`# error: ${run.error}\n`);
  if (!side?.diff) {
    const asExpected = run.results.filter((r) => r.ok).length;
    io.out(
      `# ${run.ok ? 'ok' : 'FAILED'}: ${asExpected}/${j.compiled.steps.length} steps as expected${run.panic ? ' (ended in a kernel panic)' : ''}\n`,
    );
  }
  const t = run.time;
  io.out(
    `# time: boot ${(t.boot_ms / 1000).toFixed(1)} s, steps ${(t.steps_ms / 1000).toFixed(1)} s, qemu ${(t.wall_ms / 1000).toFixed(1)} s\n`,
  );
}

function jsonDoc(run: KernelRun, side: ModelSide | null): unknown {
  if (!side) return run;
  const diff = side.diff && { ...side.diff, notCompared: Object.fromEntries(side.diff.notCompared) };
  return { ...run, model: side.model, model_error: side.error, diff };
}

async function kernelCommand(argv: string[], io: Io): Promise<number> {
  const { values, positionals } = parse('kernel', argv, {
    kernel: { type: 'string' },
    diff: { type: 'boolean' },
    json: { type: 'boolean' },
    jobs: { type: 'string' },
    timeout: { type: 'string' },
    'offline-timeout': { type: 'string' },
    modules: { type: 'string' },
    load: { type: 'string' },
    keep: { type: 'boolean' },
  });
  if (values.help) {
    io.out(KERNEL_HELP);
    return 0;
  }
  if (!positionals.length) throw new UsageError('kernel: give at least one scenario FILE (see pinlab kernel --help)');
  const o = options(values);
  const kernels = String(values.kernel ?? 'debian:6.12')
    .split(',')
    .filter(Boolean);
  try {
    const jobs = plan(positionals, kernels, values.modules as string | undefined, io);
    const runs = await runJobs(jobs, o);
    let ok = true;
    const docs: unknown[] = [];
    for (const [i, j] of jobs.entries()) {
      const run = runs[i]!;
      const side = o.diff ? modelSide(j, run) : null;
      ok &&= side ? !side.error && side.diff!.same : run.ok;
      if (o.json) docs.push(jsonDoc(run, side));
      else report(j, run, side, io);
    }
    if (o.json) io.out(JSON.stringify(docs.length === 1 ? docs[0] : docs, null, 2) + '\n');
    return ok ? 0 : 1;
  } catch (e) {
    if (e instanceof SetupError) {
      io.err(`pinlab: kernel: ${e.message}\n`);
      return 2;
    }
    throw e;
  }
}

export const kernel: Command = {
  name: 'kernel',
  summary: 'run scenario files on a real Linux kernel under QEMU; --diff sets the model beside it',
  help: () => KERNEL_HELP,
  run: kernelCommand,
};
