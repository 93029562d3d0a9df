// pinlab replay: reproduce a failure from a regression file, or regenerate a case from a seed and a
// fast-check path. Exit codes as pinlab run's.
import { DEFAULT_VARIANT } from '../../mm/variants';
import {
  runSuite,
  summaryLine,
  summaryJson,
  loadRegression,
  inlineRegressionText,
  replayFile,
  formatFailure,
  RegressionFile,
} from '../runner';
import { withInterrupt, signalExitCode } from '../signals';
import { Command, Io, parse, UsageError } from './command';
import {
  intFlag,
  kernelFlag,
  seedFlag,
  pathFlag,
  checkPath,
  suiteFlag,
  caseShapeFlags,
  CASE_SHAPE_OPTIONS,
  htmlFlag,
  traceLinesFlag,
} from './flags';
import { runExitCode, htmlReports } from './run';
import { replayedSource, reportHtml, writeHtml, reportName } from '../report/index';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { caseToScenario } from '../export_scenario';
import { fnv1a } from '../schedctl';
import { loadScenario, runScenario } from '../scenario';

const REPLAY_HELP = `usage: pinlab replay FILE... [--kernel VARIANT] [--json] [--trace-lines N] [--html DIR]
       pinlab replay --case DATA [--kernel VARIANT] [--json] [--trace-lines N] [--html DIR] [--scenario OUT.yaml]
       pinlab replay FILE --scenario OUT.yaml [--kernel VARIANT]
       pinlab replay --seed N --path P [--suite NAME] [--kernel VARIANT] [--cmdline "..." [--geometry G]] [--json]
                     [--property P[,P]] [--bug NAME[,NAME]] [--machines random|fixed] [--no-swarm]

Reproduce a failure: run a regression file's case deterministically (the schedule, the faults and the
programs are in the file) and report whether the recorded property fails again and whether the trace
hash matches; --kernel runs the same case under another variant (a fixed kernel should pass). With
--seed and --path, regenerate the case from fast-check's seed and path instead. --case DATA is a
regression file carried in the replay line itself: pinlab run prints it for a free run's failure that
replayed deterministically when no file was saved (--save none, or the write failed).
With --scenario, write the case as a scenario file instead (the agents' ops as steps, in the order they
started in the replay; '-' for stdout), run it on the model, and say so: take it to a real kernel that
has the bug with pinlab kernel OUT.yaml --kernel PATH-TO-BZIMAGE (pinlab variants says which releases).
Device actors have no scenario form and are refused.
--trace-lines N prints N trace lines around the failure (default 30; repeated lines and rounds folded);
--html DIR also writes each replayed failure as an HTML report in DIR (docs/report.md).
Exit code: 1 when a property fails (as recorded for a regression), 0 when none does, 130 (143) when
Ctrl-C (SIGTERM) stopped the replay first.
`;

type ReplayValues = Parameters<typeof caseShapeFlags>[0] & { seed?: string; path?: string; suite?: string };

/** --seed N --path P: regenerate the case from fast-check's seed and path and run it once. */
/** --trace-lines and --html */
interface Presentation {
  traceLines?: number;
  htmlDir?: string;
}

function replayPath(
  values: ReplayValues,
  kernel: string | undefined,
  timeoutMs: number | undefined,
  json: boolean,
  io: Io,
  pres: Presentation,
): Promise<number> {
  if (values.seed === undefined || values.path === undefined) {
    throw new UsageError('replay: give a regression FILE, or --seed N and --path P (see pinlab replay --help)');
  }
  const suite = suiteFlag(values.suite);
  const seed = seedFlag(values.seed)!;
  const path = pathFlag(values.path)!;
  const shape = caseShapeFlags(values, suite);
  const variant = kernel ?? DEFAULT_VARIANT;
  checkPath({ suite, variant, seed, path, ...shape });
  return withInterrupt(async (interrupt) => {
    const summary = await runSuite({
      suite,
      variant,
      seed,
      runs: 1,
      mode: 'det',
      checkDeterminism: false,
      path,
      json,
      regressionsDir: null,
      timeoutMs,
      tty: false,
      interrupt,
      io,
      traceLines: pres.traceLines,
      ...shape,
    });
    if (json) io.out(JSON.stringify(summaryJson(summary), null, 2) + '\n');
    else io.out(summaryLine(summary));
    if (pres.htmlDir) await htmlReports(summary, pres.htmlDir, timeoutMs, interrupt, io);
    return runExitCode(summary, interrupt);
  });
}

type Replayed = Awaited<ReturnType<typeof replayFile>>;
const failedList = (r: Replayed['result']): string => [...new Set(r.failures.map((g) => g.property))].join(', ');

/** One regression file's replay as JSON. */
function replayDoc(
  file: string,
  reg: RegressionFile,
  kernel: string | undefined,
  { result, asRecorded }: Replayed,
): unknown {
  const cut = result.interrupted;
  return {
    file,
    suite: reg.suite,
    kernel: kernel ?? reg.variant,
    property: reg.property,
    recorded_verdict: reg.verdict,
    verdict: result.failures.length ? 'fail' : cut ? 'interrupted' : 'pass',
    as_recorded: cut && !result.failures.length ? null : asRecorded,
    trace_hash: result.traceHash,
    recorded_trace_hash: reg.trace_hash ?? null,
    failures: result.failures.map((f) => ({ property: f.property, message: f.message, actor: f.actor ?? null })),
  };
}

/** One regression file's replay as text: the failure, then reproduced or not and the trace hash. */
function replayText(
  file: string,
  reg: RegressionFile,
  kernel: string | undefined,
  { result, asRecorded, sameHash }: Replayed,
  traceLines?: number,
): string {
  let out = `# replay ${file}: suite ${reg.suite}, kernel ${kernel ?? reg.variant}, recorded: ${reg.property} ${reg.verdict === 'fail' ? 'fails' : 'holds'} (seed ${reg.seed}, path "${reg.path}")\n`;
  const f = result.failures.find((g) => g.property === reg.property) ?? result.failures[0];
  if (f)
    out += formatFailure(
      f,
      kernel ? { ...reg.case, variant: kernel } : reg.case,
      result,
      `(replayed from ${file})`,
      undefined,
      traceLines,
    );
  // a run the signal stopped is not a verdict either way (a failure it saw before the stop still counts)
  if (result.interrupted) {
    return (
      out +
      `interrupted: the replay was stopped${result.failures.length ? ` after ${failedList(result)} failed` : ''}\n`
    );
  }
  const hash =
    sameHash === null
      ? ''
      : sameHash
        ? ', same trace hash'
        : `, trace hash ${result.traceHash} differs from the recorded ${reg.trace_hash}`;
  return (
    out +
    `${asRecorded ? 'reproduced' : 'NOT reproduced'}: ${result.failures.length ? `${failedList(result)} failed` : 'every property held'}${hash}\n`
  );
}

/** FILE...: each regression file's case, deterministically; exit 1 when any property fails. */
/**
 * --scenario OUT: the replayed case as a scenario file (harness/export_scenario.ts), then run on the
 * model to show it loads and runs; '-' writes it to stdout.
 */
function exportScenario(
  out: string,
  file: string,
  reg: RegressionFile,
  kernel: string | undefined,
  replayed: Replayed,
  io: Io,
): void {
  const cs = kernel ? { ...reg.case, variant: kernel } : reg.case;
  const yaml = caseToScenario(cs, replayed.result, `${reg.property} on ${cs.variant}, from ${path.basename(file)}`);
  if (out === '-') return void io.out(yaml);
  try {
    fs.writeFileSync(out, yaml);
  } catch (e) {
    throw new UsageError(
      `--scenario: cannot write '${out}': ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`,
    );
  }
  const sc = loadScenario(out, yaml);
  const run = runScenario(out, sc);
  const bad = run.results.filter((r) => !r.ok).length;
  io.out(
    `scenario: wrote ${out} (${sc.steps.length} steps); on the model ${run.panic ? `it panics: ${run.panic}` : `it runs to the end${bad ? `, ${bad} steps mismatched` : ''}`} (pinlab scenario ${out}; pinlab kernel ${out} --diff)\n`,
  );
}

function replayFiles(
  regs: { file: string; reg: RegressionFile }[],
  kernel: string | undefined,
  timeoutMs: number | undefined,
  json: boolean,
  io: Io,
  pres: Presentation,
  scenarioOut?: string,
): Promise<number> {
  return withInterrupt(async (interrupt) => {
    const docs: unknown[] = [];
    let anyFail = false;
    for (const { file, reg } of regs) {
      if (interrupt.stopped) {
        if (json) docs.push({ file, verdict: 'interrupted' });
        continue;
      }
      const replayed = await replayFile(reg, kernel, timeoutMs, undefined, interrupt, pres.htmlDir !== undefined);
      anyFail ||= replayed.result.failures.length > 0;
      if (pres.htmlDir !== undefined && !replayed.result.interrupted) {
        const out = reportName(pres.htmlDir, file);
        writeHtml(out, reportHtml(replayedSource(file, reg, replayed, { kernel })));
        io.err(`report: wrote ${out}\n`);
      }
      if (scenarioOut !== undefined) exportScenario(scenarioOut, file, reg, kernel, replayed, io);
      else if (json) docs.push(replayDoc(file, reg, kernel, replayed));
      else io.out(replayText(file, reg, kernel, replayed, pres.traceLines));
    }
    if (scenarioOut !== undefined) return interrupt.stopped ? signalExitCode(interrupt) : 0;
    if (json) io.out(JSON.stringify(docs.length === 1 ? docs[0] : docs, null, 2) + '\n');
    if (anyFail) return 1;
    return interrupt.stopped ? signalExitCode(interrupt) : 0;
  });
}

/** The name `pinlab replay --case DATA` goes by in its output and --html report: case-<hash of DATA>. */
const inlineName = (data: string): string => `case-${fnv1a(data).toString(16).padStart(8, '0')}`;

async function replayCommand(argv: string[], io: Io): Promise<number> {
  const { values, positionals } = parse('replay', argv, {
    suite: { type: 'string' },
    kernel: { type: 'string' },
    seed: { type: 'string' },
    path: { type: 'string' },
    json: { type: 'boolean' },
    timeout: { type: 'string' },
    scenario: { type: 'string' },
    'trace-lines': { type: 'string' },
    html: { type: 'string' },
    case: { type: 'string' },
    ...CASE_SHAPE_OPTIONS,
  });
  if (values.help) {
    io.out(REPLAY_HELP);
    return 0;
  }
  const kernel = kernelFlag(values.kernel);
  const timeoutMs = intFlag('timeout', values.timeout, 1);
  const json = values.json === true;
  const pres: Presentation = { traceLines: traceLinesFlag(values['trace-lines']), htmlDir: htmlFlag(values.html) };
  if (typeof values.case === 'string' && positionals.length)
    throw new UsageError('replay: --case carries its own regression: give no FILE with it');
  // the inline form names no file: messages and --html's report name it by a hash of the data
  const inline = typeof values.case === 'string' ? inlineRegressionText(values.case) : null;
  const files = inline === null ? positionals : [inlineName(values.case as string)];
  if (!files.length) {
    if (values.scenario !== undefined) throw new UsageError('replay: --scenario needs a regression FILE');
    return replayPath(values, kernel, timeoutMs, json, io, pres);
  }
  if (values.scenario !== undefined && (files.length > 1 || json)) {
    throw new UsageError('replay: --scenario takes one FILE and no --json');
  }
  if (values.scenario === '') throw new UsageError('replay: --scenario needs a file name (or - for stdout)');
  for (const f of [
    'seed',
    'path',
    'suite',
    'cmdline',
    'geometry',
    'property',
    'bug',
    'machines',
    'no-swarm',
  ] as const) {
    if (values[f] === undefined) continue;
    throw new UsageError(
      `replay: --${f} does not go with a ${inline === null ? 'FILE' : '--case'} (it carries its suite, seed, path and case; --kernel and --timeout apply)`,
    );
  }
  const regs = files.map((file) => ({ file, reg: loadRegression(file, inline ?? undefined) }));
  return replayFiles(regs, kernel, timeoutMs, json, io, pres, values.scenario as string | undefined);
}

export const replay: Command = {
  name: 'replay',
  summary: 'reproduce a failure from a regression file, its --case line, or --seed and --path',
  help: () => REPLAY_HELP,
  run: replayCommand,
};
