// What a pinlab command is, and the parsing every command shares. One file per command in harness/cli/,
// each exporting a Command; harness/cli/index.ts lists them. Bad input is a UsageError: one line on
// stderr and exit code 2.
import { parseArgs } from 'node:util';
import type { Io } from '../io';

export type { Io };

export interface Command {
  /** the verb: pinlab <name> */
  name: string;
  /** one line for pinlab --help */
  summary: string;
  /** the text of pinlab <name> --help */
  help(): string;
  /** runs the command: the exit code (0 ok, 1 a property failed or a run broke; bad input throws UsageError) */
  run(argv: string[], io: Io): number | Promise<number>;
  /** it computes without yielding to the event loop: a signal ends the process instead of stopping it */
  sync?: boolean;
}

export class UsageError extends Error {
  constructor(msg: string) {
    super(msg);
    this.name = 'UsageError';
  }
}

export type Flags = Record<string, string | boolean | undefined>;
export type OptionSpec = Record<string, { type: 'string' | 'boolean'; short?: string }>;

/** -h and --help, which every command takes. */
export const HELP: OptionSpec = { help: { type: 'boolean', short: 'h' } };

/** A value from the command line, quoted for a message, cut short when long. */
export function shown(v: unknown): string {
  const s = String(v);
  return `'${s.length > 60 ? `${s.slice(0, 57)}...` : s}'`;
}

/** An error's message as one line (a bad file's name or value may hold newlines). */
export function oneLine(s: string): string {
  return s.replace(/\s*\n\s*/g, ' ').trim();
}

/** util.parseArgs, strict, with -h/--help; any mistake becomes a one-line UsageError naming the verb. */
export function parse(verb: string, argv: string[], options: OptionSpec): { values: Flags; positionals: string[] } {
  try {
    const r = parseArgs({ args: argv, options: { ...options, ...HELP }, allowPositionals: true, strict: true });
    return { values: r.values as Flags, positionals: r.positionals };
  } catch (e) {
    throw new UsageError(`${verb}: ${(e as Error).message.split(/\. |\n/)[0]}`);
  }
}

/** A command that takes no FILE: the first positional is refused. */
export function noPositionals(verb: string, positionals: string[], hint = `see pinlab ${verb} --help`): void {
  if (positionals.length) throw new UsageError(`${verb}: unexpected argument '${positionals[0]}' (${hint})`);
}
