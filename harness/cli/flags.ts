// The flags several commands share, each parsed once: a value the command line cannot hold is a
// one-line UsageError naming the flag.
import { parseVariant, VariantError, DEFAULT_VARIANT } from '../../mm/variants';
import { parseGeometry, CmdlineError } from '../../mm/cmdline';
import { own, hasOwnKey } from '../../mm/own';
import { RUN_FAILURES } from '../../properties/index';
import { SUITES, DEFAULT_SUITE, MINI_LAYOUTS, Suite } from '../suites';
import { deviceModelOf, actorKind } from '../actors';
import { setupMachine, CaseError } from '../run_case';
import { pathNamesACase, prepareRegressionsDir } from '../runner';
import { UsageError, shown } from './command';

type Value = string | boolean | undefined;

export const INT_MAX = 2 ** 31 - 1;

/** Integer flags (--seed, --runs, --timeout, --time, --chunk, --jobs): decimal digits only, min..max. */
export function intFlag(name: string, v: Value, min: number, max = INT_MAX): number | undefined {
  if (v === undefined) return undefined;
  const n = typeof v === 'string' && /^-?[0-9]+$/.test(v) ? Number(v) : NaN;
  if (!Number.isSafeInteger(n) || n < min || n > max) {
    throw new UsageError(`--${name}: ${shown(v)} is not an integer ${min}..${max}`);
  }
  return n;
}

/** Seconds and other decimal flags: a plain decimal number, min..max. */
export function decimalFlag(name: string, v: Value, min: number, max = INT_MAX): number | undefined {
  if (v === undefined) return undefined;
  const n = typeof v === 'string' && /^[0-9]+(\.[0-9]+)?$/.test(v) ? Number(v) : NaN;
  if (!(n >= min && n <= max)) throw new UsageError(`--${name}: ${shown(v)} is not a number ${min}..${max}`);
  return n;
}

/** --kernel: a kernel variant (pinlab variants). */
export function kernelFlag(v: Value): string | undefined {
  if (v === undefined) return undefined;
  try {
    parseVariant(v as string);
  } catch (e) {
    if (e instanceof VariantError) throw new UsageError(`--kernel: ${e.message}`);
    throw e;
  }
  return v as string;
}

/** --seed: fast-check's seeds are 32-bit integers. */
export function seedFlag(v: Value): number | undefined {
  return intFlag('seed', v, -(2 ** 31), 2 ** 31 - 1);
}

/** fast-check skips cases to reach a path's first one (about 2 s a million): no further than this. */
const PATH_FIRST_MAX = 1_000_000;

/** --path: fast-check's path, numbers separated by ':' (whether it names a case: checkPath). */
export function pathFlag(v: Value): string | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== 'string' || !/^[0-9]{1,9}(:[0-9]{1,9})*$/.test(v)) {
    throw new UsageError(`--path: ${shown(v)} is not a fast-check path (numbers separated by ':')`);
  }
  if (Number(v.split(':')[0]) > PATH_FIRST_MAX)
    throw new UsageError(`--path: ${shown(v)} starts past case ${PATH_FIRST_MAX}`);
  return v;
}

/** The path must lead to a case of the suite under this seed (generation only, nothing runs). */
export function checkPath(cfg: Parameters<typeof pathNamesACase>[0]): void {
  if (cfg.path !== undefined && !pathNamesACase(cfg)) {
    throw new UsageError(
      `--path: ${shown(cfg.path)} names no case of suite ${cfg.suite.name} with seed ${cfg.seed}` +
        ' (as printed with a failure: --seed and --path together)',
    );
  }
}

/**
 * Where runs save their failures by default: a git-ignored folder. regressions/ holds the committed
 * ones, which npm test replays; moving a file there is a deliberate step.
 */
export const DEFAULT_SAVE_DIR = 'failures';

/** --save DIR, or its older name --regressions DIR (one of them): regressionsFlag() of it. */
export function saveFlag(values: { save?: Value; regressions?: Value }): string | null {
  if (values.save !== undefined && values.regressions !== undefined)
    throw new UsageError('--save and --regressions name the same directory: give one');
  return values.save !== undefined ? regressionsFlag(values.save, 'save') : regressionsFlag(values.regressions);
}

/** --save (--regressions): a directory (created and probed now, before any case runs), or 'none'. */
export function regressionsFlag(v: Value, flag = 'regressions'): string | null {
  const dir = (v as string | undefined) ?? DEFAULT_SAVE_DIR;
  if (dir === 'none') return null;
  if (dir === '') throw new UsageError(`--${flag}: give a directory, or 'none' to save nothing`);
  try {
    prepareRegressionsDir(dir);
  } catch (e) {
    throw new UsageError(`--${flag}: ${(e as Error).message}`);
  }
  return dir;
}

export const visibleSuites = (): string =>
  Object.keys(SUITES)
    .filter((s) => !SUITES[s]!.hidden)
    .join(', ');

/** --suite: a registered suite. */
export function suiteFlag(v: Value): Suite {
  const name = (v as string | undefined) ?? DEFAULT_SUITE;
  const suite = own(SUITES, name);
  if (!suite) throw new UsageError(`--suite: unknown suite '${name}' (suites: ${visibleSuites()})`);
  return suite;
}

/** --cmdline: a command line that boots (mini geometry unless --geometry) and holds the suite's mappings. */
export function cmdlineFlag(v: Value, geometry?: string): string | undefined {
  if (v === undefined) return undefined;
  const cmdline = v as string;
  try {
    setupMachine({
      layout: { ...MINI_LAYOUTS[0]!, cmdline, geometry: geometry ?? MINI_LAYOUTS[0]!.geometry },
      variant: DEFAULT_VARIANT,
      programs: {},
      schedule: [],
      faults: {},
    });
  } catch (e) {
    if (e instanceof CaseError) throw new UsageError(`--cmdline: ${e.message.replace(/^layout: /, '')}`);
    throw e;
  }
  return cmdline;
}

/** --property: names from the suite's properties. */
export function propertyFlag(v: Value, suite: Suite): string[] | undefined {
  if (v === undefined) return undefined;
  const names = String(v)
    .split(',')
    .map((x) => x.trim())
    .filter(Boolean);
  const known = suite.properties.filter((p) => !RUN_FAILURES.includes(p));
  if (!names.length) throw new UsageError('--property: give at least one property name');
  for (const n of names) {
    if (!known.includes(n))
      throw new UsageError(
        `--property: unknown property '${n}' for suite ${suite.name} (properties: ${known.join(', ')})`,
      );
  }
  return names;
}

/** --bug: switches of the suite's device model. */
export function bugFlag(v: Value, suite: Suite): string[] | undefined {
  if (v === undefined) return undefined;
  const model = suite.actors.map((a) => deviceModelOf(actorKind(a))).find((x) => x);
  if (!model) throw new UsageError(`--bug: suite ${suite.name} has no device actor (use --suite device:<model>)`);
  const names = String(v)
    .split(',')
    .map((x) => x.trim())
    .filter(Boolean);
  if (!names.length) throw new UsageError('--bug: give at least one bug switch');
  for (const n of names) {
    if (!hasOwnKey(model.bugs, n))
      throw new UsageError(
        `--bug: ${model.name} has no bug '${n}' (its bugs: ${Object.keys(model.bugs).join(', ') || 'none'})`,
      );
  }
  return names;
}

/** --machines: random or fixed. */
export function machinesFlag(v: Value): 'random' | 'fixed' | undefined {
  if (v === undefined) return undefined;
  if (v !== 'random' && v !== 'fixed') throw new UsageError(`--machines: '${String(v)}' is not random or fixed`);
  return v;
}

/** --geometry (with --cmdline): x86_64 or mini, with key=value overrides (pinlab layout --help). */
export function geometryFlag(v: Value, cmdline: Value): string | undefined {
  if (v === undefined) return undefined;
  if (cmdline === undefined) throw new UsageError('--geometry goes with --cmdline (the machine it shapes)');
  try {
    parseGeometry(v as string);
  } catch (e) {
    if (e instanceof CmdlineError) throw new UsageError(`--geometry: ${e.message.replace(/^geometry: /, '')}`);
    throw e;
  }
  return v as string;
}

/** The flags that shape a suite's cases (run, and replay by seed and path). */
export function caseShapeFlags(values: Record<string, Value>, suite: Suite) {
  const geometry = geometryFlag(values.geometry, values.cmdline);
  return {
    cmdline: cmdlineFlag(values.cmdline, geometry),
    geometry,
    properties: propertyFlag(values.property, suite),
    bugs: bugFlag(values.bug, suite),
    machines: machinesFlag(values.machines),
    swarm: values['no-swarm'] === true ? false : undefined,
  };
}

/** Their option specs, for parse(). */
export const CASE_SHAPE_OPTIONS = {
  cmdline: { type: 'string' },
  geometry: { type: 'string' },
  property: { type: 'string' },
  bug: { type: 'string' },
  machines: { type: 'string' },
  'no-swarm': { type: 'boolean' },
} as const;

/** --html DIR: where HTML reports go (created and probed now, before any case runs). */
export function htmlFlag(v: Value, flag = '--html'): string | undefined {
  if (v === undefined) return undefined;
  if (v === '' || typeof v !== 'string') throw new UsageError(`${flag}: give a directory for the reports`);
  try {
    prepareRegressionsDir(v);
  } catch (e) {
    throw new UsageError(`${flag}: ${(e as Error).message}`);
  }
  return v;
}

/** --trace-lines N: folded trace lines printed around a failure. */
export function traceLinesFlag(v: Value): number | undefined {
  return intFlag('trace-lines', v, 1, 100_000);
}
