// pinlab replay: reproduce a failure from a regression file, or regenerate a case from a seed and a
// fast-check path. Exit codes as pinlab run's.
import { DEFAULT_VARIANT } from '../../mm/variants';
import { runSuite, summaryLine, summaryJson, loadRegression, replayFile, formatFailure } from '../runner';
import { withInterrupt, signalExitCode } from '../signals';
import { Command, Io, parse, UsageError } from './command';
import { intFlag, kernelFlag, seedFlag, pathFlag, checkPath, suiteFlag, caseShapeFlags, CASE_SHAPE_OPTIONS } from './flags';
import { runExitCode } from './run';

const REPLAY_HELP = `usage: pinlab replay FILE... [--kernel VARIANT] [--json]
       pinlab replay --seed N --path P [--suite NAME] [--kernel VARIANT] [--cmdline "..."] [--json]
                     [--property P[,P]] [--bug NAME[,NAME]] [--machines random|fixed] [--no-swarm]

Reproduce a failure: run a regression file's case deterministically (the schedule, the faults and the
programs are in the file) and report whether the recorded property fails again and whether the trace
hash matches; --kernel runs the same case under another variant (a fixed kernel should pass). With
--seed and --path, regenerate the case from fast-check's seed and path instead.
Exit code: 1 when a property fails (as recorded for a regression), 0 when none does, 130 (143) when
Ctrl-C (SIGTERM) stopped the replay first.
`;

async function replayCommand(argv: string[], io: Io): Promise<number> {
  const { values, positionals } = parse('replay', argv, {
    suite: { type: 'string' }, kernel: { type: 'string' }, seed: { type: 'string' }, path: { type: 'string' }, json: { type: 'boolean' },
    timeout: { type: 'string' }, ...CASE_SHAPE_OPTIONS,
  });
  if (values.help) { io.out(REPLAY_HELP); return 0; }
  const kernel = kernelFlag(values.kernel);
  const timeoutMs = intFlag('timeout', values.timeout, 1);
  const json = values.json === true;
  if (!positionals.length) {
    if (values.seed === undefined || values.path === undefined) throw new UsageError('replay: give a regression FILE, or --seed N and --path P (see pinlab replay --help)');
    const suite = suiteFlag(values.suite);
    const seed = seedFlag(values.seed)!;
    const path = pathFlag(values.path)!;
    const shape = caseShapeFlags(values, suite);
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

export const replay: Command = {
  name: 'replay',
  summary: 'reproduce a failure from a regressions/*.json file, or from --seed and --path',
  help: () => REPLAY_HELP,
  run: replayCommand,
};
