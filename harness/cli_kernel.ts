// `pinlab kernel`: run scenario files on a real Linux kernel under QEMU and print the same per-step
// report as `pinlab scenario`; --diff runs the model too and marks every difference. docs/real-kernel.md.
import * as os from 'node:os';
import { UsageError, parse, Io } from './cli';
import { loadScenario, runScenario, ScenarioRun, ScenarioError } from './scenario';
import { compileScenario, kernelMachine, setOfflineTimeout, CompiledScenario } from './kernel_compile';
import { prepare, checkKernelSpec, SetupError, DEBIAN_KERNELS, KernelImage } from './kernel_setup';
import { runOnKernel, KernelRun, formatKernelStep, zonesLine, blocksLine } from './kernel_run';
import { diffRuns, formatDiff, RunDiff } from './kernel_diff';

export const KERNEL_HELP = `usage: pinlab kernel FILE... [--kernel K[,K...]] [--diff] [--json] [--jobs N] [--timeout S]
                    [--offline-timeout S] [--modules DIR] [--load MOD[,MOD]] [--keep]

Boot a real Linux kernel in qemu-system-x86_64 (TCG) with each scenario's machine (QEMU -m from mem=,
the pc machine, the rest of machine.cmdline as the guest's command line), run the steps in a small
static probe (probe/pinlab-probe.c) and print the same per-step report as 'pinlab scenario': the rc or
errno, where the pages are by zone, pins, counters, the final zones and memory blocks. A long-term pin
is an io_uring fixed buffer (IORING_REGISTER_BUFFERS: FOLL_WRITE|FOLL_LONGTERM). Ops and fields the
kernel cannot run (kalloc, fragment, isolate, inject, ...) are refused before anything boots.

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

interface Job { file: string; kernel: string; compiled: CompiledScenario; img?: KernelImage }

export async function cmdKernel(argv: string[], io: Io): Promise<number> {
  const { values, positionals } = parse('kernel', argv, {
    kernel: { type: 'string' }, diff: { type: 'boolean' }, json: { type: 'boolean' }, jobs: { type: 'string' },
    timeout: { type: 'string' }, 'offline-timeout': { type: 'string' }, modules: { type: 'string' }, load: { type: 'string' },
    keep: { type: 'boolean' }, help: { type: 'boolean', short: 'h' },
  });
  if (values.help) { io.out(KERNEL_HELP); return 0; }
  if (!positionals.length) throw new UsageError('kernel: give at least one scenario FILE (see pinlab kernel --help)');
  const num = (name: string, dflt: number, min: number) => {
    const v = values[name];
    if (v === undefined) return dflt;
    const n = Number(v);
    if (!Number.isFinite(n) || n < min) throw new UsageError(`kernel: --${name} '${String(v)}' is not a number >= ${min}`);
    return n;
  };
  const jobs = Math.floor(num('jobs', Math.min(2, os.cpus().length), 1));
  const timeoutMs = num('timeout', 300, 5) * 1000;
  setOfflineTimeout(num('offline-timeout', 10, 0.1) * 1000);
  const kernels = String(values.kernel ?? 'debian:6.12').split(',').filter(Boolean);
  const load = values.load === undefined ? undefined : String(values.load).split(',').filter(Boolean);
  const log = (s: string) => io.err(s + '\n');
  try {
    for (const k of kernels) checkKernelSpec(k);
    // everything refused up front, before any download or boot
    const jobList: Job[] = [];
    for (const file of positionals) {
      const sc = loadScenario(file);
      const compiled = compileScenario(file, sc);
      for (const kernel of kernels) jobList.push({ file, kernel, compiled });
    }
    const images = new Map<string, ReturnType<typeof prepare>>();
    for (const k of kernels) images.set(k, prepare(k, { modules: values.modules as string | undefined, log }));
    for (const j of jobList) {
      const p = images.get(j.kernel)!;
      j.img = p.kernel;
      j.compiled.machine = kernelMachine(j.file, loadScenario(j.file), p.kernel); // the kernel's .config: cma= needs CONFIG_CMA
    }
    // independent guests in parallel, up to --jobs; reports print in the order given
    const runs: (KernelRun | undefined)[] = new Array(jobList.length);
    let next = 0;
    const worker = async () => {
      while (next < jobList.length) {
        const i = next++;
        const j = jobList[i]!;
        runs[i] = await runOnKernel(j.file, j.compiled, j.img!, images.get(j.kernel)!.initramfs, { timeoutMs, keep: values.keep === true, load });
      }
    };
    await Promise.all(Array.from({ length: Math.min(jobs, jobList.length) }, worker));
    let ok = true;
    const docs: unknown[] = [];
    for (let i = 0; i < jobList.length; i++) {
      const j = jobList[i]!;
      const run = runs[i]!;
      let diff: RunDiff | undefined;
      let model: ScenarioRun | undefined;
      const modelLines: string[] = [];
      let modelError: string | undefined;
      if (values.diff) {
        try {
          model = runScenario(j.file, loadScenario(j.file), (l) => modelLines.push(l), run.variant);
          diff = diffRuns(model, modelLines, run, j.compiled.steps.some((s) => s.hold));
          ok &&= diff.same;
        } catch (e) { // the model stopped at a step (say an unpin of a pin that failed under this variant)
          if (!(e instanceof ScenarioError)) throw e;
          modelError = e.message;
          ok = false;
        }
      } else ok &&= run.ok;
      if (values.json) { docs.push(values.diff ? { ...run, model, model_error: modelError, diff: diff && { ...diff, notCompared: Object.fromEntries(diff.notCompared) } } : run); continue; }
      io.out(`# ${j.file} [${j.kernel}: ${run.release}, model ${run.variant}]: ${loadScenario(j.file).machine.cmdline}\n`);
      io.out(`# guest: qemu -M ${j.compiled.machine.machineType} -m ${j.compiled.machine.memMiB}M (TCG), cmdline: ${run.cmdline}\n`);
      for (const w of run.warnings) io.out(`# warning: ${w}\n`);
      for (const w of run.init) io.out(`# init: ${w}\n`);
      if (modelError) io.out(`# model stopped: ${modelError}\n${modelLines.map((l) => `#   model ${l}\n`).join('')}`);
      if (diff) for (const l of formatDiff(diff)) io.out(l + '\n');
      else if (modelError) for (let s = 0; s < run.results.length; s++) for (const l of formatKernelStep(run.results[s]!, run.variant, j.compiled.steps[s]!)) io.out(l + '\n');
      else for (let s = 0; s < run.results.length; s++) for (const l of formatKernelStep(run.results[s]!, run.variant, j.compiled.steps[s]!)) io.out(l + '\n');
      if (run.zones.length) io.out(`# zones: ${zonesLine(run.zones)}\n`);
      if (run.blocks.length) io.out(`# blocks: ${blocksLine(run.blocks)}\n`);
      if (run.error) io.out(`# error: ${run.error}\n`);
      if (!diff) io.out(`# ${run.ok ? 'ok' : 'FAILED'}: ${run.results.filter((r) => r.ok).length}/${j.compiled.steps.length} steps as expected${run.panic ? ' (ended in a kernel panic)' : ''}\n`);
      io.out(`# time: boot ${(run.time.boot_ms / 1000).toFixed(1)} s, steps ${(run.time.steps_ms / 1000).toFixed(1)} s, qemu ${(run.time.wall_ms / 1000).toFixed(1)} s\n`);
    }
    if (values.json) io.out(JSON.stringify(docs.length === 1 ? docs[0] : docs, null, 2) + '\n');
    return ok ? 0 : 1;
  } catch (e) {
    if (e instanceof SetupError) { io.err(`pinlab: kernel: ${e.message}\n`); return 2; }
    throw e;
  }
}
