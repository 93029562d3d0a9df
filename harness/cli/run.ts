// pinlab run: a property suite over actors in worker threads. Exit codes: 0 the properties held, 1 a
// property failed or a run broke (also when a signal then cut the run or its shrinking short), 2 bad
// input (one line), 130 interrupted by Ctrl-C (SIGINT), 143 by SIGTERM.
import { onCurrentCpu } from '../affinity';
import { randomInt } from 'node:crypto';
import { DEFAULT_VARIANT } from '../../mm/variants';
import { DEFAULT_SUITE } from '../suites';
import { runSuite, summaryLine, summaryJson, RunConfig, RunSummary, shapeFlags } from '../runner';
import { withInterrupt, signalExitCode, Interrupt } from '../signals';
import { Command, Io, parse, noPositionals, UsageError } from './command';
import {
  intFlag,
  kernelFlag,
  seedFlag,
  pathFlag,
  checkPath,
  saveFlag,
  DEFAULT_SAVE_DIR,
  suiteFlag,
  caseShapeFlags,
  CASE_SHAPE_OPTIONS,
  visibleSuites,
  htmlFlag,
  traceLinesFlag,
} from './flags';
import { writeRunReports } from '../report/index';

const RUN_HELP = `usage: pinlab run [--suite NAME] [--kernel VARIANT] [--cmdline "..." [--geometry G]] [--seed N] [--runs N]
                 [--mode det|free] [--check-determinism] [--json] [--timeout MS] [--save DIR]
                 [--property P[,P]] [--bug NAME[,NAME]] [--machines random|fixed] [--no-swarm] [--guided]
                 [--trace-lines N] [--html DIR]

Run a property suite: fast-check generates cases (a machine, one program per actor, a schedule, seeded
faults), each actor runs in its own worker thread on the shared machine, and the properties are checked
during and after the run. A failure is shrunk and printed (the property, the case as steps per actor, the
trace around the violation, one replay line) and saved as failures/<name>.json (--save).

options:
  --suite NAME         the suite (default ${DEFAULT_SUITE}); suites: ${visibleSuites()}
  --kernel VARIANT     kernel variant (default ${DEFAULT_VARIANT}; pinlab variants lists them, e.g. v5.12, v6.12+R12)
  --cmdline "..."      replace the suite's machine command line (mini geometry unless --geometry)
  --geometry G         the geometry of --cmdline's machine: mini (default) or x86_64, the real layout as
                       pinlab kernel boots it under QEMU (e820 map, ZONE_DMA/DMA32, the kernel's own
                       memory, init); key=value overrides as in pinlab layout (cases cost ~20x a mini one's)
  --seed N             fast-check seed (default: a random one, printed)
  --runs N             cases to run (default: the suite's)
  --mode det|free      det (default): one actor runs at a time, switched at preemption points by the case's
                       schedule, all of the run's threads bound to the CPU it starts on (Linux); free:
                       threads race on every CPU, and a failing run's trace is replayed deterministically
  --check-determinism  run every case twice and fail if the trace hashes differ
  --json               one JSON document: verdict, cases, steps, failures[] {property, seed, path, trace_hash}
  --timeout MS         time budget of one case (default 60000); past it the case fails as a hang
  --save DIR           where failures are saved (default ${DEFAULT_SAVE_DIR}/, git-ignored; created and checked
                       before the run; 'none' to save nothing; --regressions DIR is the same). regressions/
                       holds the committed ones, which npm test replays: moving one there is deliberate
  --path P             with --seed: run only fast-check's path P (as printed with a failure; it must name a case)
  --property P[,P]     check only these properties (docs/properties.md); deadlock, hang and the other
                       failures of the run itself are always reported
  --bug NAME[,NAME]    turn on a device model's bug switch in a device:<model> suite (pinlab variants
                       lists kernel bugs; each model's switches are in docs/adding-a-device.md)
  --machines M         random (default): generated mini machines (kernelcore/movablecore splits, CMA, THP,
                       hugetlb pools, hot-plugged blocks, KASLR); fixed: the two fixed mini layouts
  --no-swarm           every case may use every operation kind (default: swarm testing, a random subset)
  --guided             coverage-guided: a case that reached a new bug site or kernel path joins a corpus,
                       and half the cases splice a corpus case with a fresh one (docs/campaign.md). Det
                       mode only; a failure replays from its saved file, or by running the search again
  --trace-lines N      trace lines printed around a failure (default 30; repeated lines and rounds folded)
  --html DIR           also write each failure as an HTML report in DIR (memory map, timeline, trace:
                       docs/report.md)
  -h, --help           this text

Ctrl-C (or SIGTERM) stops the run and prints what ran; a failure found so far, even one still being
shrunk, is printed and saved. A second Ctrl-C ends the process at once.
Exit code 0 when the properties held, 1 when one failed (even if a signal then stopped the run), 2 on
bad input, 130 when Ctrl-C stopped the run (143 for SIGTERM).
`;

/** A run's exit code: 1 when a failure was found (interrupted or not), 128 + signal when a signal ended it, else 0. */
export function runExitCode(s: RunSummary, interrupt: Interrupt): number {
  if (s.failures.length || s.verdict === 'fail') return 1;
  return s.interrupted ? signalExitCode(interrupt) : 0;
}

/** --html DIR: each failure's report (its case replayed with machine snapshots); one line each on stderr. */
export async function htmlReports(
  summary: RunSummary,
  dir: string,
  timeoutMs: number | undefined,
  interrupt: Interrupt,
  io: Io,
): Promise<void> {
  for (const file of await writeRunReports(summary, dir, { timeoutMs, interrupt })) io.err(`report: wrote ${file}\n`);
}

async function runCommand(argv: string[], io: Io): Promise<number> {
  const { values, positionals } = parse('run', argv, {
    suite: { type: 'string' },
    kernel: { type: 'string' },
    seed: { type: 'string' },
    runs: { type: 'string' },
    mode: { type: 'string' },
    json: { type: 'boolean' },
    'check-determinism': { type: 'boolean' },
    timeout: { type: 'string' },
    regressions: { type: 'string' },
    save: { type: 'string' },
    path: { type: 'string' },
    guided: { type: 'boolean' },
    'trace-lines': { type: 'string' },
    html: { type: 'string' },
    ...CASE_SHAPE_OPTIONS,
  });
  if (values.help) {
    io.out(RUN_HELP);
    return 0;
  }
  noPositionals('run', positionals);
  const suite = suiteFlag(values.suite);
  const variant = kernelFlag(values.kernel) ?? DEFAULT_VARIANT;
  const mode = (values.mode as string | undefined) ?? 'det';
  if (mode !== 'det' && mode !== 'free') throw new UsageError(`--mode: '${mode}' is not det or free`);
  const seed = seedFlag(values.seed) ?? randomInt(2 ** 31 - 1);
  const runs = intFlag('runs', values.runs, 1) ?? suite.runs;
  const timeoutMs = intFlag('timeout', values.timeout, 1);
  const path = pathFlag(values.path);
  const json = values.json === true;
  const shape = caseShapeFlags(values, suite);
  checkPath({ suite, variant, seed, path, ...shape });
  const guided = values.guided === true;
  if (guided && (mode !== 'det' || path !== undefined))
    throw new UsageError(
      '--guided: deterministic mode only, and not with --path (a guided case needs the cases before it)',
    );
  const regressionsDir = saveFlag(values);
  const traceLines = traceLinesFlag(values['trace-lines']);
  const htmlDir = htmlFlag(values.html);
  if (!json) {
    io.out(
      `# pinlab run --suite ${suite.name} --kernel ${variant} --seed ${seed} --runs ${runs} --mode ${mode}` +
        `${shapeFlags(shape)}${guided ? ' --guided' : ''}${values['check-determinism'] ? ' --check-determinism' : ''}${values.path ? ` --path "${values.path as string}"` : ''}\n`,
    );
  }
  return withInterrupt(async (interrupt) => {
    const suiteRun = (): Promise<RunSummary> =>
      runSuite({
        suite,
        variant,
        seed,
        runs,
        mode,
        checkDeterminism: values['check-determinism'] === true,
        path,
        json,
        regressionsDir,
        timeoutMs,
        tty: !json && process.stderr.isTTY === true,
        interrupt,
        io,
        guided,
        traceLines,
        ...shape,
      } satisfies RunConfig);
    // one actor runs at a time: keep its hand-offs on one core (harness/affinity.ts); free runs race on all
    const summary = mode === 'det' ? await onCurrentCpu(suiteRun) : await suiteRun();
    if (json) io.out(JSON.stringify(summaryJson(summary), null, 2) + '\n');
    else io.out(summaryLine(summary));
    if (htmlDir) await htmlReports(summary, htmlDir, timeoutMs, interrupt, io);
    return runExitCode(summary, interrupt);
  });
}

export const run: Command = {
  name: 'run',
  summary: 'run a property suite: actors in worker threads, seeded schedules and faults (docs/harness.md)',
  help: () => RUN_HELP,
  run: runCommand,
};
