// The asynchronous verbs of the command line: `pinlab run` (property suites over actors in worker
// threads) and `pinlab replay` (a regression file, or a seed and fast-check path). Exit codes: 0 the
// properties held, 1 a property failed or a run broke (also when a signal then cut the run or its
// shrinking short), 2 bad input (one line), 130 interrupted by Ctrl-C (SIGINT), 143 by SIGTERM.
import { randomInt } from 'node:crypto';
import { UsageError, parse, Io, intFlag, shown } from './cli';

const PATH_FIRST_MAX = 1_000_000;
import { parseVariant, VariantError, DEFAULT_VARIANT } from '../mm/variants';
import { SUITES, DEFAULT_SUITE, MINI_LAYOUTS, Suite } from './suites';
import { RUN_FAILURES } from './run_case';
import { DEVICE_MODELS } from '../devices/index';
import { runSuite, summaryLine, summaryJson, loadRegression, replayFile, formatFailure, RunConfig, RunSummary, shapeFlags, pathNamesACase,
  prepareRegressionsDir } from './runner';
import { setupMachine, CaseError, actorKind } from './run_case';
import { withInterrupt, signalExitCode, Interrupt } from './signals';
import { own, hasOwnKey } from '../mm/own';

export const RUN_HELP = `usage: pinlab run [--suite NAME] [--kernel VARIANT] [--cmdline "..."] [--seed N] [--runs N]
                 [--mode det|free] [--check-determinism] [--json] [--timeout MS] [--regressions DIR]
                 [--property P[,P]] [--bug NAME[,NAME]] [--machines random|fixed] [--no-swarm]

Run a property suite: fast-check generates cases (a machine, one program per actor, a schedule, seeded
faults), each actor runs in its own worker thread on the shared machine, and the properties are checked
during and after the run. A failure is shrunk and printed (the property, the case as steps per actor, the
trace around the violation, one replay line) and saved as regressions/<name>.json.

options:
  --suite NAME         the suite (default ${DEFAULT_SUITE}); suites: ${Object.keys(SUITES).filter((s) => !SUITES[s]!.hidden).join(', ')}
  --kernel VARIANT     kernel variant (default ${DEFAULT_VARIANT}; pinlab variants lists them, e.g. v5.12, v6.12+R12)
  --cmdline "..."      replace the suite's machine command line (mini geometry)
  --seed N             fast-check seed (default: a random one, printed)
  --runs N             cases to run (default: the suite's)
  --mode det|free      det (default): one actor runs at a time, switched at preemption points by the case's
                       schedule; free: threads race, and a failing run's trace is replayed deterministically
  --check-determinism  run every case twice and fail if the trace hashes differ
  --json               one JSON document: verdict, cases, steps, failures[] {property, seed, path, trace_hash}
  --timeout MS         time budget of one case (default 60000); past it the case fails as a hang
  --regressions DIR    where failures are saved (default regressions, created and checked before the run;
                       'none' to save nothing)
  --path P             with --seed: run only fast-check's path P (as printed with a failure; it must name a case)
  --property P[,P]     check only these properties (docs/properties.md); deadlock, hang and the other
                       failures of the run itself are always reported
  --bug NAME[,NAME]    turn on a device model's bug switch in a device:<model> suite (pinlab variants
                       lists kernel bugs; each model's switches are in docs/adding-a-device.md)
  --machines M         random (default): generated mini machines (kernelcore/movablecore splits, CMA, THP,
                       hugetlb pools, hot-plugged blocks, KASLR); fixed: the two fixed mini layouts
  --no-swarm           every case may use every operation kind (default: swarm testing, a random subset)
  -h, --help           this text

Ctrl-C (or SIGTERM) stops the run and prints what ran; a failure found so far, even one still being
shrunk, is printed and saved. A second Ctrl-C ends the process at once.
Exit code 0 when the properties held, 1 when one failed (even if a signal then stopped the run), 2 on
bad input, 130 when Ctrl-C stopped the run (143 for SIGTERM).
`;

export const REPLAY_HELP = `usage: pinlab replay FILE... [--kernel VARIANT] [--json]
       pinlab replay --seed N --path P [--suite NAME] [--kernel VARIANT] [--cmdline "..."] [--json]
                     [--property P[,P]] [--bug NAME[,NAME]] [--machines random|fixed] [--no-swarm]

Reproduce a failure: run a regression file's case deterministically (the schedule, the faults and the
programs are in the file) and report whether the recorded property fails again and whether the trace
hash matches; --kernel runs the same case under another variant (a fixed kernel should pass). With
--seed and --path, regenerate the case from fast-check's seed and path instead.
Exit code: 1 when a property fails (as recorded for a regression), 0 when none does, 130 (143) when
Ctrl-C (SIGTERM) stopped the replay first.
`;

/** --seed: fast-check's seeds are 32-bit integers. */
export function seedFlag(v: string | boolean | undefined): number | undefined {
  return intFlag('seed', v, -(2 ** 31), 2 ** 31 - 1);
}

/** --path: fast-check's path, numbers separated by ':' (whether it names a case: checkPath). */
export function pathFlag(v: string | boolean | undefined): string | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== 'string' || !/^[0-9]{1,9}(:[0-9]{1,9})*$/.test(v)) {
    throw new UsageError(`--path: ${shown(v)} is not a fast-check path (numbers separated by ':')`);
  }
  // the first number is the index of the failing case: fast-check skips that many cases to reach it (about 2 s a million)
  if (Number(v.split(':')[0]) > PATH_FIRST_MAX) throw new UsageError(`--path: ${shown(v)} starts past case ${PATH_FIRST_MAX}`);
  return v;
}

/** The path must lead to a case of the suite under this seed (generation only, nothing runs). */
function checkPath(cfg: Parameters<typeof pathNamesACase>[0]): void {
  if (cfg.path !== undefined && !pathNamesACase(cfg)) {
    throw new UsageError(`--path: ${shown(cfg.path)} names no case of suite ${cfg.suite.name} with seed ${cfg.seed}`
      + ' (as printed with a failure: --seed and --path together)');
  }
}

/** --regressions: a directory (created and probed now, before any case runs), or 'none'. */
export function regressionsFlag(v: string | boolean | undefined): string | null {
  const dir = (v as string | undefined) ?? 'regressions';
  if (dir === 'none') return null;
  if (dir === '') throw new UsageError("--regressions: give a directory, or 'none' to save nothing");
  try {
    prepareRegressionsDir(dir);
  } catch (e) {
    throw new UsageError(`--regressions: ${(e as Error).message}`);
  }
  return dir;
}

export function kernelFlag(v: string | boolean | undefined): string | undefined {
  if (v === undefined) return undefined;
  try {
    parseVariant(v as string);
  } catch (e) {
    if (e instanceof VariantError) throw new UsageError(`--kernel: ${e.message}`);
    throw e;
  }
  return v as string;
}

function suiteFlag(v: string | boolean | undefined): string {
  const name = (v as string | undefined) ?? DEFAULT_SUITE;
  if (!own(SUITES, name)) throw new UsageError(`--suite: unknown suite '${name}' (suites: ${Object.keys(SUITES).filter((s) => !SUITES[s]!.hidden).join(', ')})`);
  return name;
}

function cmdlineFlag(v: string | boolean | undefined): string | undefined {
  if (v === undefined) return undefined;
  const cmdline = v as string;
  try {
    setupMachine({ layout: { ...MINI_LAYOUTS[0]!, cmdline }, variant: DEFAULT_VARIANT, programs: {}, schedule: [], faults: {} });
  } catch (e) {
    if (e instanceof CaseError) throw new UsageError(`--cmdline: ${e.message.replace(/^layout: /, '')}`);
    throw e;
  }
  return cmdline;
}

/** --property: names from the suite's properties. */
export function propertyFlag(v: string | boolean | undefined, suite: Suite): string[] | undefined {
  if (v === undefined) return undefined;
  const names = String(v).split(',').map((x) => x.trim()).filter(Boolean);
  const known = suite.properties.filter((p) => !RUN_FAILURES.includes(p));
  if (!names.length) throw new UsageError('--property: give at least one property name');
  for (const n of names) if (!known.includes(n)) throw new UsageError(`--property: unknown property '${n}' for suite ${suite.name} (properties: ${known.join(', ')})`);
  return names;
}

/** --bug: switches of the suite's device model. */
export function bugFlag(v: string | boolean | undefined, suite: Suite): string[] | undefined {
  if (v === undefined) return undefined;
  const model = suite.actors.map((a) => own(DEVICE_MODELS, actorKind(a))).find((x) => x);
  if (!model) throw new UsageError(`--bug: suite ${suite.name} has no device actor (use --suite device:<model>)`);
  const names = String(v).split(',').map((x) => x.trim()).filter(Boolean);
  if (!names.length) throw new UsageError('--bug: give at least one bug switch');
  for (const n of names) if (!hasOwnKey(model.bugs, n)) throw new UsageError(`--bug: ${model.name} has no bug '${n}' (its bugs: ${Object.keys(model.bugs).join(', ') || 'none'})`);
  return names;
}

export function machinesFlag(v: string | boolean | undefined): 'random' | 'fixed' | undefined {
  if (v === undefined) return undefined;
  if (v !== 'random' && v !== 'fixed') throw new UsageError(`--machines: '${String(v)}' is not random or fixed`);
  return v;
}

/** A run's exit code: 1 when a failure was found (interrupted or not), 128 + signal when a signal ended it, else 0. */
export function runExitCode(s: RunSummary, interrupt: Interrupt): number {
  if (s.failures.length || s.verdict === 'fail') return 1;
  return s.interrupted ? signalExitCode(interrupt) : 0;
}

export async function cmdRun(argv: string[], io: Io): Promise<number> {
  const { values, positionals } = parse('run', argv, {
    suite: { type: 'string' }, kernel: { type: 'string' }, cmdline: { type: 'string' }, seed: { type: 'string' }, runs: { type: 'string' },
    mode: { type: 'string' }, json: { type: 'boolean' }, 'check-determinism': { type: 'boolean' }, timeout: { type: 'string' },
    regressions: { type: 'string' }, path: { type: 'string' }, property: { type: 'string' }, bug: { type: 'string' }, machines: { type: 'string' },
    'no-swarm': { type: 'boolean' }, help: { type: 'boolean', short: 'h' },
  });
  if (values.help) { io.out(RUN_HELP); return 0; }
  if (positionals.length) throw new UsageError(`run: unexpected argument '${positionals[0]}' (see pinlab run --help)`);
  const suite = SUITES[suiteFlag(values.suite)]!;
  const variant = kernelFlag(values.kernel) ?? DEFAULT_VARIANT;
  const mode = (values.mode as string | undefined) ?? 'det';
  if (mode !== 'det' && mode !== 'free') throw new UsageError(`--mode: '${mode}' is not det or free`);
  const cmdline = cmdlineFlag(values.cmdline);
  const seed = seedFlag(values.seed) ?? randomInt(2 ** 31 - 1);
  const runs = intFlag('runs', values.runs, 1) ?? suite.runs;
  const timeoutMs = intFlag('timeout', values.timeout, 1);
  const path = pathFlag(values.path);
  const json = values.json === true;
  const shape = { cmdline, properties: propertyFlag(values.property, suite), bugs: bugFlag(values.bug, suite), machines: machinesFlag(values.machines),
    swarm: values['no-swarm'] === true ? false : undefined };
  checkPath({ suite, variant, seed, path, ...shape });
  const regressionsDir = regressionsFlag(values.regressions);
  if (!json) {
    io.out(`# pinlab run --suite ${suite.name} --kernel ${variant} --seed ${seed} --runs ${runs} --mode ${mode}` +
      `${shapeFlags(shape)}${values['check-determinism'] ? ' --check-determinism' : ''}${values.path ? ` --path "${values.path as string}"` : ''}\n`);
  }
  return withInterrupt(async (interrupt) => {
    const summary = await runSuite({
      suite, variant, seed, runs, mode, checkDeterminism: values['check-determinism'] === true, path,
      json, regressionsDir, timeoutMs, tty: !json && process.stderr.isTTY === true, interrupt, io, ...shape,
    } satisfies RunConfig);
    if (json) io.out(JSON.stringify(summaryJson(summary), null, 2) + '\n');
    else io.out(summaryLine(summary));
    return runExitCode(summary, interrupt);
  });
}

export async function cmdReplay(argv: string[], io: Io): Promise<number> {
  const { values, positionals } = parse('replay', argv, {
    suite: { type: 'string' }, kernel: { type: 'string' }, cmdline: { type: 'string' }, seed: { type: 'string' }, path: { type: 'string' },
    json: { type: 'boolean' }, timeout: { type: 'string' }, property: { type: 'string' }, bug: { type: 'string' }, machines: { type: 'string' },
    'no-swarm': { type: 'boolean' }, help: { type: 'boolean', short: 'h' },
  });
  if (values.help) { io.out(REPLAY_HELP); return 0; }
  const kernel = kernelFlag(values.kernel);
  const timeoutMs = intFlag('timeout', values.timeout, 1);
  const json = values.json === true;
  if (!positionals.length) {
    if (values.seed === undefined || values.path === undefined) throw new UsageError('replay: give a regression FILE, or --seed N and --path P (see pinlab replay --help)');
    const suite = SUITES[suiteFlag(values.suite)]!;
    const seed = seedFlag(values.seed)!;
    const path = pathFlag(values.path)!;
    const shape = { cmdline: cmdlineFlag(values.cmdline), properties: propertyFlag(values.property, suite), bugs: bugFlag(values.bug, suite),
      machines: machinesFlag(values.machines), swarm: values['no-swarm'] === true ? false : undefined };
    const variant = kernel ?? DEFAULT_VARIANT;
    checkPath({ suite, variant, seed, path, ...shape });
    return withInterrupt(async (interrupt) => {
      const summary = await runSuite({
        suite, variant, seed, runs: 1, mode: 'det', checkDeterminism: false, path,
        json, regressionsDir: null, timeoutMs, tty: false, interrupt, io, ...shape,
      });
      if (json) io.out(JSON.stringify(summaryJson(summary), null, 2) + '\n');
      else io.out(summaryLine(summary));
      return runExitCode(summary, interrupt);
    });
  }
  for (const f of ['seed', 'path', 'suite', 'cmdline', 'property', 'bug', 'machines', 'no-swarm'] as const) {
    if (values[f] === undefined) continue;
    throw new UsageError(`replay: --${f} does not go with a FILE (the file carries its suite, seed, path and case; --kernel and --timeout apply)`);
  }
  const regs = positionals.map((f) => ({ file: f, reg: loadRegression(f) }));
  return withInterrupt(async (interrupt) => {
    const docs: unknown[] = [];
    let anyFail = false;
    for (const { file, reg } of regs) {
      if (interrupt.stopped) {
        if (json) docs.push({ file, verdict: 'interrupted' });
        continue;
      }
      const { result, asRecorded, sameHash } = await replayFile(reg, kernel, timeoutMs, undefined, interrupt);
      // a run the signal stopped is not a verdict either way (a failure it saw before the stop still counts)
      const cut = result.interrupted;
      anyFail ||= result.failures.length > 0;
      const variant = kernel ?? reg.variant;
      if (json) {
        docs.push({ file, suite: reg.suite, kernel: variant, property: reg.property, recorded_verdict: reg.verdict,
          verdict: result.failures.length ? 'fail' : cut ? 'interrupted' : 'pass', as_recorded: cut && !result.failures.length ? null : asRecorded,
          trace_hash: result.traceHash, recorded_trace_hash: reg.trace_hash ?? null,
          failures: result.failures.map((f) => ({ property: f.property, message: f.message, actor: f.actor ?? null })) });
        continue;
      }
      io.out(`# replay ${file}: suite ${reg.suite}, kernel ${variant}, recorded: ${reg.property} ${reg.verdict === 'fail' ? 'fails' : 'holds'} (seed ${reg.seed}, path "${reg.path}")\n`);
      const f = result.failures.find((g) => g.property === reg.property) ?? result.failures[0];
      if (f) io.out(formatFailure(f, kernel ? { ...reg.case, variant: kernel } : reg.case, result, `(replayed from ${file})`));
      if (cut) {
        io.out(`interrupted: the replay was stopped${result.failures.length ? ` after ${[...new Set(result.failures.map((g) => g.property))].join(', ')} failed` : ''}\n`);
        continue;
      }
      const hash = sameHash === null ? '' : sameHash ? ', same trace hash' : `, trace hash ${result.traceHash} differs from the recorded ${reg.trace_hash}`;
      io.out(`${asRecorded ? 'reproduced' : 'NOT reproduced'}: ${result.failures.length ? `${[...new Set(result.failures.map((g) => g.property))].join(', ')} failed` : 'every property held'}${hash}\n`);
    }
    if (json) io.out(JSON.stringify(docs.length === 1 ? docs[0] : docs, null, 2) + '\n');
    if (anyFail) return 1;
    return interrupt.stopped ? signalExitCode(interrupt) : 0;
  });
}

export const ASYNC_VERBS: Record<string, (argv: string[], io: Io) => Promise<number>> = {
  run: cmdRun,
  replay: cmdReplay,
};
