// The pinlab command line: the commands, one file each in harness/cli/, and the process entry. Every
// command has --help; bad input is one line on stderr and exit code 2.
import { CmdlineError } from '../../mm/cmdline';
import { VariantError } from '../../mm/variants';
import { ScenarioError } from '../scenario';
import { loadPlugins, PluginError } from '../plugins';
import { CaseError } from '../run_case';
import { adoptProcessSignals, signalExitCode, ProcessSignals } from '../signals';
import { Command, Io, UsageError, oneLine } from './command';
import { layout } from './layout';
import { scenario } from './scenario';
import { variants } from './variants';
import { run as runCmd } from './run';
import { replay } from './replay';
import { campaign, merge } from './campaign';
import { pinFraction } from './pin_fraction';
import { kernel } from './kernel';
import { properties } from './properties';
import { devices } from './devices';
import { fidelity } from './fidelity';
import { report } from './report';

export type { Io };
export { UsageError };

/** In the order pinlab --help lists them. */
export const COMMANDS: readonly Command[] = [
  layout,
  scenario,
  variants,
  properties,
  devices,
  runCmd,
  replay,
  report,
  campaign,
  merge,
  pinFraction,
  kernel,
  fidelity,
];

const BY_NAME = new Map(COMMANDS.map((c) => [c.name, c]));

function mainHelp(): string {
  const width = Math.max(...COMMANDS.map((c) => c.name.length)) + 2;
  return `usage: pinlab <verb> [options]

Simulated Linux memory manager for long-term pinning, ZONE_MOVABLE, CMA and memory offlining.

verbs:
${COMMANDS.map((c) => `  ${c.name.padEnd(width)} ${c.summary}\n`).join('')}
Run 'pinlab <verb> --help' for a verb's options. With no verb, pinlab runs the main job: the default
property campaign (pinlab campaign).
`;
}

/** Bad input: one line on stderr, exit code 2. */
function badInput(e: unknown): e is Error {
  return (
    e instanceof UsageError ||
    e instanceof CmdlineError ||
    e instanceof ScenarioError ||
    e instanceof CaseError ||
    e instanceof VariantError ||
    e instanceof PluginError
  );
}

/** The command argv names (null: pinlab --help); an unknown verb is a UsageError. */
function commandOf(argv: string[]): Command | null {
  if (argv.length === 0) return campaign; // no verb: the main job, the default property campaign
  const verb = argv[0]!;
  if (verb === '--help' || verb === '-h' || verb === 'help') return null;
  const cmd = BY_NAME.get(verb);
  if (!cmd)
    throw new UsageError(
      `unknown verb '${verb}' (verbs: ${COMMANDS.map((c) => c.name).join(', ')}; see pinlab --help)`,
    );
  return cmd;
}

function reportBadInput(e: unknown, io: Io): number {
  if (!badInput(e)) throw e;
  io.err(`pinlab: ${oneLine(e.message)}\n`);
  return 2;
}

/** Runs a command that computes without yielding (layout, scenario, ...); returns the exit code. */
export function main(argv: string[], io: Io): number {
  try {
    const cmd = commandOf(argv);
    if (!cmd) {
      io.out(mainHelp());
      return 0;
    }
    if (!cmd.sync) throw new UsageError(`${cmd.name}: runs asynchronously (call mainAsync)`);
    return cmd.run(argv.slice(1), io) as number;
  } catch (e) {
    return reportBadInput(e, io);
  }
}

/** Any command: resolves to the exit code (0 ok, 1 a property failed or a run broke, 2 bad input). */
export async function mainAsync(argv: string[], io: Io): Promise<number> {
  try {
    const cmd = commandOf(argv);
    if (!cmd) {
      io.out(mainHelp());
      return 0;
    }
    return await cmd.run(argv.slice(1), io);
  } catch (e) {
    if (badInput(e)) return reportBadInput(e, io);
    io.err(`pinlab: internal error: ${oneLine(String((e as Error)?.message ?? e))}\n`);
    return 1;
  }
}

/**
 * The process entry (bin/pinlab.js): stdout/stderr and the exit code. signals: the handlers bin/pinlab.js
 * installed before anything else (a signal that came since is in signals.interrupt).
 */
export function run(argv: string[], signals?: ProcessSignals): void {
  const io: Io = { out: (s) => process.stdout.write(s), err: (s) => process.stderr.write(s) };
  adoptProcessSignals(signals ?? null);
  try {
    loadPlugins(process.env.PINLAB_PLUGINS); // before any command: their suites and actor kinds are names it may take
  } catch (e) {
    if (!(e instanceof PluginError)) throw e;
    signals?.release();
    process.exitCode = reportBadInput(new PluginError(`PINLAB_PLUGINS: ${e.message}`), io);
    return;
  }
  let sync = false;
  try {
    sync = commandOf(argv)?.sync === true;
  } catch {
    /* an unknown verb: mainAsync reports it */
  }
  if (signals && sync) {
    // a command that computes without yielding never sees a signal: it ends the process instead
    if (signals.interrupt.stopped) {
      io.err(`pinlab: interrupted (${signals.interrupt.signal ?? 'SIGINT'})\n`);
      process.exitCode = signalExitCode(signals.interrupt);
      return;
    }
    signals.release();
  }
  void mainAsync(argv, io).then((code) => {
    process.exitCode = code;
  });
}
