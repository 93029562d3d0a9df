// `pinlab run` and `pinlab replay`: fast-check drives the cases of a suite through runCase(), shrinks a
// failure (toward fewer ops, smaller ranges, fewer preemptions and faults), prints it - the property,
// the shrunk case as steps per actor, the trace around the violation, one replay line - and writes a
// regression file (atomically: a temporary file, then rename) that `pinlab replay FILE` reproduces.
import * as fs from 'node:fs';
import * as zlib from 'node:zlib';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import * as fc from 'fast-check';
import { ActorPool } from './pool';
import { runCase, checkSetup, Case, CaseResult, CaseError, Failure, RunOptions } from './run_case';
import { parseRegression } from './case_schema';
import { readInput, badFileMessage } from './input';
import { Suite, SUITES, suiteCases } from './suites';
import { formatTraceWindow } from './trace';
import { replayFreeFailure, FreeReplay } from './free_replay';
import type { Interrupt } from './signals';
import type { Io } from './io';
import { own } from '../mm/own';
import { fnv1a } from './schedctl';
import { GuidedCorpus } from './guided';
import { dropOps } from './shrink_ops';

/** A free run's first failure and its deterministic replay. */
type FreeFound = FreeReplay & { result: CaseResult; failure: Failure };

export type { Io };

export interface RunConfig {
  suite: Suite;
  variant: string;
  cmdline?: string;
  /** the geometry of --cmdline's machine (default mini) */
  geometry?: string;
  seed: number;
  runs: number;
  mode: 'det' | 'free';
  checkDeterminism: boolean;
  /** replay one fast-check path (with seed) instead of a search */
  path?: string;
  json: boolean;
  /** where regression files go (null: do not write) */
  regressionsDir: string | null;
  timeoutMs?: number;
  /** show a progress bar (a TTY) */
  tty: boolean;
  /** set by SIGINT/SIGTERM (or the campaign's deadline): the run stops, keeping any failure found */
  interrupt: Interrupt;
  io: Io;
  /** called when the search first meets a failing case (before shrinking) */
  onFirstFailure?: (cases: number) => void;
  /** check only these properties (--property); the run's own failures always count */
  properties?: string[];
  /** device-model bug switches for the suite's device actor (--bug) */
  bugs?: string[];
  /** generated machines (default random) or the fixed mini layouts (--machines fixed) */
  machines?: 'random' | 'fixed';
  /** swarm testing (default on; --no-swarm) */
  swarm?: boolean;
  /** coverage-guided generation (harness/guided.ts; deterministic mode only) */
  guided?: boolean;
  /** a pool to use and leave running (the campaign's runners keep one across suite runs), if it has threads enough */
  pool?: PoolHolder;
  /** the plugins the run's own pool loads in its workers (default: every plugin this thread has loaded) */
  plugins?: readonly string[];
  /** trace lines (folded) printed around a failure (--trace-lines; default 30) */
  traceLines?: number;
}

/** The flags that shape generation and checking, as a replay line must repeat them. */
export function shapeFlags(
  cfg: Pick<RunConfig, 'cmdline' | 'geometry' | 'properties' | 'bugs' | 'machines' | 'swarm'>,
): string {
  return (
    `${cfg.cmdline ? ` --cmdline "${cfg.cmdline}"` : ''}${cfg.geometry ? ` --geometry ${cfg.geometry}` : ''}${cfg.properties ? ` --property ${cfg.properties.join(',')}` : ''}` +
    `${cfg.bugs?.length ? ` --bug ${cfg.bugs.join(',')}` : ''}${cfg.machines === 'fixed' ? ' --machines fixed' : ''}${cfg.swarm === false ? ' --no-swarm' : ''}`
  );
}

/**
 * The one line that reproduces a failure. A saved one: its file. A guided search's case depends on the
 * cases before it, and a case dropOps() reduced is not one fast-check's path names: the search again,
 * which is deterministic, regenerates them. A free run's failure replayed deterministically is a case no
 * search regenerates (its schedule came from the race): unsaved, the line carries the case itself
 * (`pinlab replay --case`). One that did not replay has no deterministic replay: the line is the free
 * search again, which may or may not race the same way.
 */
export function replayLine(
  cfg: Pick<RunConfig, 'suite' | 'variant' | 'seed' | 'runs' | 'mode'> & Parameters<typeof shapeFlags>[0],
  rep: Omit<FailureReport, 'replay'>,
  pathStr: string,
  how: { guided: boolean; reduced: boolean },
): string {
  if (rep.regression) return `pinlab replay ${rep.regression}`;
  const search = `pinlab run --suite ${cfg.suite.name} --kernel ${cfg.variant} --seed ${cfg.seed} --runs ${cfg.runs}`;
  if (cfg.mode === 'free')
    return rep.reproduced ? `pinlab replay --case ${inlineRegression(rep)}` : `${search} --mode free${shapeFlags(cfg)}`;
  if (how.guided || how.reduced) return `${search}${how.guided ? ' --guided' : ''}${shapeFlags(cfg)}`;
  return `pinlab replay --suite ${cfg.suite.name} --kernel ${cfg.variant} --seed ${cfg.seed} --path "${pathStr}"${shapeFlags(cfg)}`;
}

export interface FailureReport {
  property: string;
  message: string;
  suite: string;
  variant: string;
  seed: number;
  path: string;
  trace_hash: string;
  /** the regression file written, if any */
  regression?: string;
  replay: string;
  /** free mode: did the deterministic replay of the converted schedule fail the same way? */
  reproduced?: boolean;
  case: Case;
  /** the properties the run checked (--property), when not all */
  properties?: string[];
  /** shrinking was interrupted after this many steps: the case is smaller than found but maybe not minimal */
  shrinkInterrupted?: number;
  /** why the regression file could not be written (the replay line then does without it: replayLine()) */
  saveError?: string;
}

/**
 * A property's coverage over a run: the cases that ran its checks, those in which they saw something,
 * what they saw (Checked, properties/property.ts) and their time.
 */
export interface PropertyCoverage {
  cases: number;
  seen: number;
  checked: number;
  ms: number;
}

/** What a run's cases checked and reached (summed by the campaign and `pinlab merge`). */
export interface Coverage {
  properties: Record<string, PropertyCoverage>;
  /** kernel event counters (/proc/vmstat names): the sum over cases and the cases that took the path */
  events: Record<string, { total: number; cases: number }>;
  /** regression-corpus bug sites (R1...) reached by the cases' ops, bug on or off: as events */
  corpus: Record<string, { total: number; cases: number }>;
}

/** Add one case's tally and events to a coverage; every property of props ran its checks on it. */
export function coverCase(
  cov: Coverage,
  r: Pick<CaseResult, 'tally' | 'events' | 'sites'>,
  props: readonly string[],
): void {
  for (const p of props) (cov.properties[p] ??= { cases: 0, seen: 0, checked: 0, ms: 0 }).cases++;
  for (const [p, t] of Object.entries(r.tally ?? {})) {
    const e = cov.properties[p];
    if (!e) continue; // checked in the actors' threads but not selected
    if (t.checked > 0) e.seen++;
    e.checked += t.checked;
    e.ms += t.ms;
  }
  countIn(cov.events, r.events);
  countIn(cov.corpus, r.sites);
}

type Counts = Record<string, { total: number; cases: number }>;

function addCount(into: Counts, k: string, total: number, cases: number): void {
  const e = (into[k] ??= { total: 0, cases: 0 });
  e.total += total;
  e.cases += cases;
}

/** One case's counters: each one not 0 is a case that took the path. */
function countIn(into: Counts, from: Record<string, number> | undefined): void {
  for (const [k, v] of Object.entries(from ?? {})) addCount(into, k, v, 1);
}

/** Sum coverages into the first. */
export function mergeCoverage(into: Coverage, from: Coverage): Coverage {
  for (const [p, t] of Object.entries(from.properties)) {
    const e = (into.properties[p] ??= { cases: 0, seen: 0, checked: 0, ms: 0 });
    e.cases += t.cases;
    e.seen += t.seen;
    e.checked += t.checked;
    e.ms += t.ms;
  }
  for (const key of ['events', 'corpus'] as const)
    for (const [k, v] of Object.entries(from[key] ?? {})) addCount(into[key], k, v.total, v.cases);
  return into;
}

export interface RunSummary {
  /** fail when a failure was found, even if the run was then interrupted (interrupted says so) */
  verdict: 'pass' | 'fail' | 'interrupted';
  interrupted: boolean;
  suite: string;
  kernel: string;
  seed: number;
  mode: string;
  cases: number;
  steps: number;
  seconds: number;
  steps_per_s: number;
  failures: FailureReport[];
  coverage: Coverage;
  /** the cases' trace hashes, in order, hashed (fnv1a): equal digests, equal runs (for --jobs, --shard) */
  digest: string;
}

/** The pool of a run, replaced when a worker does not come back from a stopped case. */
export class PoolHolder {
  pool: ActorPool;
  constructor(
    readonly threads: number,
    private readonly plugins?: readonly string[],
  ) {
    this.pool = new ActorPool(threads, plugins);
  }
  async run(cs: Case, opts: RunOptions): Promise<CaseResult> {
    const r = await runCase(this.pool, cs, opts);
    if (r.recyclePool) {
      const old = this.pool;
      this.pool = new ActorPool(this.threads, this.plugins);
      await old.destroy().catch(() => undefined);
    }
    return r;
  }
  async destroy(): Promise<void> {
    await this.pool.destroy();
  }
}

/** The case as readable steps per actor. */
export function describeCase(cs: Case): string {
  const lines: string[] = [];
  lines.push(
    `  machine: ${cs.layout.cmdline}${cs.layout.geometry ? ` (geometry ${cs.layout.geometry})` : ''}; maps ${cs.layout.maps.map((x) => `${x.name}[${x.pages}]${x.file ? ` (${x.file} file)` : ''}`).join(' ') || 'none'}`,
  );
  lines.push(`  kernel:  ${cs.variant}`);
  const w = Math.max(...Object.keys(cs.programs).map((n) => n.length));
  for (const [name, prog] of Object.entries(cs.programs)) {
    if (!prog.length) {
      lines.push(`  ${name.padEnd(w)}  (no ops)`);
      continue;
    }
    prog.forEach((op, k) => {
      const args = Object.entries(op)
        .filter(([f]) => f !== 'op')
        .map(([f, v]) => `${f}=${typeof v === 'object' ? JSON.stringify(v) : String(v)}`)
        .join(' ');
      lines.push(`  ${(k ? '' : name).padEnd(w)}  ${k + 1}. ${op.op}${args ? ' ' + args : ''}`);
    });
  }
  const pre = cs.schedule.filter((x) => x !== 0).length;
  lines.push(
    `  schedule: ${cs.schedule.length ? `[${cs.schedule.join(',')}] (${pre} preemption choices)` : '[] (no preemption: each actor runs to its end)'}`,
  );
  const faults = Object.entries(cs.faults).flatMap(([a, plan]) =>
    Object.entries(plan)
      .filter(([, at]) => at.length)
      .map(([p, at]) => `${a} ${p} at ${p.endsWith('signal') ? 'preemption point' : 'call'} ${at.join(',')}`),
  );
  lines.push(`  faults:   ${faults.length ? faults.join('; ') : 'none'}`);
  return lines.join('\n');
}

function safeName(s: string): string {
  return s.replace(/[^A-Za-z0-9_.+-]+/g, '_');
}

/** The fs error of e as "ENOTDIR (not a directory)". */
function fsWhy(e: unknown): string {
  const err = e as NodeJS.ErrnoException;
  const what = /^[A-Z]+: ([^,]*)/.exec(err?.message ?? '')?.[1];
  return err?.code ? `${err.code}${what ? ` (${what})` : ''}` : String(err?.message ?? e);
}

/**
 * mkdir -p, one component at a time: fs.mkdirSync(dir, {recursive}) loops for ever (and Ctrl-C cannot
 * stop it) where mkdir() answers ENOENT under a parent that exists (/proc). Throws one line naming the
 * component that is not a directory, a dangling link, or cannot be created.
 */
export function mkdirs(dir: string): void {
  const abs = path.resolve(dir);
  const { root } = path.parse(abs);
  let cur = root;
  for (const part of abs.slice(root.length).split(path.sep).filter(Boolean)) {
    cur = path.join(cur, part);
    let st: fs.Stats;
    try {
      st = fs.statSync(cur);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT')
        throw new Error(`cannot use '${cur}': ${fsWhy(e)}`, { cause: e });
      let link = false;
      try {
        link = fs.lstatSync(cur).isSymbolicLink();
      } catch {
        /* nothing there */
      }
      if (link) throw new Error(`'${cur}' is a dangling symbolic link`, { cause: e });
      try {
        fs.mkdirSync(cur);
      } catch (e2) {
        throw new Error(`cannot create '${cur}': ${fsWhy(e2)}`, { cause: e2 });
      }
      continue;
    }
    if (!st.isDirectory()) throw new Error(`'${cur}' is not a directory`);
  }
}

/** The regressions directory, made and probed with a test file before a run: a run never ends unable to save. */
export function prepareRegressionsDir(dir: string): void {
  mkdirs(dir);
  const probe = path.join(dir, `.pinlab-probe.${process.pid}.tmp`);
  try {
    fs.closeSync(fs.openSync(probe, 'wx'));
    fs.unlinkSync(probe);
  } catch (e) {
    throw new Error(`cannot write in '${dir}': ${fsWhy(e)}`, { cause: e });
  }
}

/** A regression file's document (its name aside): what `pinlab replay` reads back. */
function regressionDoc(
  rep: Omit<FailureReport, 'regression' | 'replay'>,
): Omit<RegressionFile, 'name'> & Record<string, unknown> {
  return {
    suite: rep.suite,
    seed: rep.seed,
    path: rep.path,
    variant: rep.variant,
    property: rep.property,
    verdict: 'fail',
    message: rep.message,
    trace_hash: rep.trace_hash,
    ...(rep.reproduced !== undefined ? { reproduced: rep.reproduced } : {}),
    ...(rep.shrinkInterrupted !== undefined ? { shrinking_interrupted_after: rep.shrinkInterrupted } : {}),
    ...(rep.properties ? { properties: rep.properties } : {}),
    case: rep.case,
  };
}

/** Write a regression file atomically (temporary file, fsync'd, then renamed). */
export function writeRegression(dir: string, rep: Omit<FailureReport, 'regression' | 'replay'>): string {
  mkdirs(dir);
  // the case's hash in the name: two runs' failures never overwrite each other silently
  const hash = fnv1a(JSON.stringify(rep.case)).toString(16).padStart(8, '0');
  const name = safeName(`${rep.suite}-${rep.variant}-${rep.property}-${rep.seed}-${hash}`);
  const file = path.join(dir, `${name}.json`);
  const tmp = `${file}.${process.pid}.tmp`;
  const doc = { name, ...regressionDoc(rep) };
  try {
    const fd = fs.openSync(tmp, 'w');
    try {
      fs.writeSync(fd, JSON.stringify(doc, null, 2) + '\n');
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    fs.renameSync(tmp, file);
  } catch (e) {
    try {
      fs.unlinkSync(tmp);
    } catch {
      /* never created */
    }
    throw new Error(`cannot write '${file}': ${fsWhy(e)}`, { cause: e });
  }
  return file;
}

/** What an interrupted shrink left: the last failing case fast-check reached. */
export function shrinkInterruptedNote(steps: number): string {
  return steps
    ? `shrinking interrupted after ${steps} step${steps === 1 ? '' : 's'}: the case is smaller than found but maybe not minimal`
    : 'shrinking interrupted before its first step: the case is as found, not shrunk';
}

/** The failure as text: property, shrunk case, trace around the violation. */
export function formatFailure(
  f: Failure,
  cs: Case,
  r: CaseResult,
  header: string,
  shrinkInterrupted?: number,
  traceLines?: number,
): string {
  const out: string[] = [];
  out.push(`FAIL ${f.property}  ${header}`);
  out.push(`  ${f.message}`);
  const others = r.failures.filter((g) => g !== f);
  if (others.length)
    out.push(`  (and ${others.length} more: ${[...new Set(others.map((g) => g.property))].join(', ')})`);
  if (shrinkInterrupted !== undefined) out.push(shrinkInterruptedNote(shrinkInterrupted));
  out.push(shrinkInterrupted === undefined ? 'shrunk case:' : 'case (smallest failing so far):');
  out.push(describeCase(cs));
  out.push(
    `trace around the violation (${r.steps} preemption points, ${r.switches} switches, trace hash ${r.traceHash}):`,
  );
  // repeated lines and retry rounds folded with a count (the trace and its hash are unchanged)
  out.push(...formatTraceWindow(r.lines, f.seq, r.names, r.cpus, traceLines));
  return out.join('\n') + '\n';
}

function progressLine(done: number, total: number, steps: number, secs: number, width = 30): string {
  const fill = Math.round((done / Math.max(1, total)) * width);
  return `[${'#'.repeat(fill)}${' '.repeat(width - fill)}] ${done}/${total} cases, ${steps} steps, ${Math.round(steps / Math.max(secs, 1e-3))} steps/s`;
}

/**
 * Interrupted (SIGINT, SIGTERM, the campaign's deadline): fast-check's own interrupt, the precondition
 * failure its interruptAfterTimeLimit returns, ends the search or the shrinking at once; fast-check keeps
 * the last failing case it reached.
 */
function stop(): never {
  throw new fc.PreconditionFailure(true);
}

/** Does fast-check's path lead to a case of the suite under this seed? Generation only: nothing runs. */
export function pathNamesACase(
  cfg: Pick<RunConfig, 'suite' | 'variant' | 'seed' | 'path' | 'cmdline' | 'geometry' | 'bugs' | 'machines' | 'swarm'>,
): boolean {
  const { variant, cmdline, geometry, bugs, machines, swarm } = cfg;
  const arb = suiteCases(fc, cfg.suite, { variant, cmdline, geometry, bugs, machines, swarm });
  try {
    return (
      fc.check(
        fc.property(arb, () => true),
        { seed: cfg.seed, numRuns: 1, path: cfg.path },
      ).numRuns > 0
    );
  } catch {
    return false; // fast-check: "Unable to replay, got invalid path"
  }
}

/**
 * One `pinlab run`: fast-check's search over the suite's cases, the free-mode replay of a race, the
 * shrinking and the report of the first failure. Counts cases and steps for the progress line.
 */
class SuiteRun {
  private readonly holder: PoolHolder;
  private readonly t0 = performance.now();
  private readonly arb: fc.Arbitrary<Case>;
  /** the guided search's corpus (--guided) */
  readonly guide: GuidedCorpus | null;
  cases = 0;
  steps = 0;
  readonly coverage: Coverage = { properties: {}, events: {}, corpus: {} };
  private digest = 0x811c9dc5;
  /** the properties each case checks: the suite's, or those --property selects */
  private readonly checked: readonly string[];
  private lastPlain = 0;
  /** the property of the first failure: shrinking keeps to it */
  private target: string | null = null;
  /** bad input met while running (a CaseError): ends the search, reported by run() */
  private fatal: Error | null = null;
  private freeFound: FreeFound | null = null;
  /** the last failing run of the target property (the shrunk case's result, usually) */
  private lastFail: { cs: Case; r: CaseResult } | null = null;
  /** the reported case came from dropOps(): no fast-check path regenerates it */
  private reduced = false;

  constructor(private readonly cfg: RunConfig) {
    const threads = cfg.suite.actors.length;
    this.holder = cfg.pool && cfg.pool.threads >= threads ? cfg.pool : new PoolHolder(threads, cfg.plugins);
    this.checked = cfg.properties ?? cfg.suite.properties;
    const base = suiteCases(fc, cfg.suite, {
      variant: cfg.variant,
      cmdline: cfg.cmdline,
      geometry: cfg.geometry,
      bugs: cfg.bugs,
      machines: cfg.machines,
      swarm: cfg.swarm,
    });
    this.guide = cfg.guided && cfg.mode === 'det' ? new GuidedCorpus() : null;
    this.arb = this.guide ? this.guide.arbitrary(fc, base) : base;
  }

  private opts(mode: 'det' | 'free'): RunOptions {
    const { cfg } = this;
    return {
      mode,
      timeoutMs: cfg.timeoutMs,
      seed: cfg.seed,
      interrupt: cfg.interrupt,
      checks: cfg.suite.checks,
      properties: cfg.properties,
    };
  }

  private progress(): void {
    const { cfg, cases, steps } = this;
    const secs = (performance.now() - this.t0) / 1000;
    if (cfg.tty) cfg.io.err(`\r${progressLine(cases, cfg.runs, steps, secs)}`);
    else if (!cfg.json && cases - this.lastPlain >= Math.max(1, Math.ceil(cfg.runs / 10))) {
      this.lastPlain = cases;
      cfg.io.err(`pinlab: ${cases}/${cfg.runs} cases, ${steps} steps\n`);
    }
  }

  /** One deterministic run (twice with --check-determinism: the trace hashes must agree). */
  private async runDet(cs: Case): Promise<CaseResult> {
    const r = await this.holder.run(cs, this.opts('det'));
    this.cases++;
    this.steps += r.steps;
    coverCase(this.coverage, r, this.checked);
    this.digest = fnv1a(r.traceHash, this.digest);
    this.guide?.observe(cs, r);
    if (this.cfg.checkDeterminism && !r.interrupted && r.end !== 'stopped') {
      const again = await this.holder.run(cs, this.opts('det'));
      this.steps += again.steps;
      if (again.traceHash !== r.traceHash) {
        r.failures.push({
          property: 'determinism',
          seq: 0,
          message: `the same case ran twice gave trace hashes ${r.traceHash} and ${again.traceHash}: hidden nondeterminism`,
        });
      }
    }
    return r;
  }

  /** Does r fail the target property (the first failure's, once there is one)? */
  private failing(r: CaseResult, cs: Case): boolean {
    if (!r.failures.length) return false;
    if (this.target === null) {
      this.target = r.failures[0]!.property;
      this.cfg.onFirstFailure?.(this.cases);
    }
    const hit = r.failures.some((f) => f.property === this.target);
    if (hit) this.lastFail = { cs, r };
    return hit;
  }

  /** The shrunk case's result: the last failing run of that very case, else a fresh run. */
  private resultOf(cs: Case): Promise<CaseResult> {
    const lf = this.lastFail;
    return lf && lf.cs === cs ? Promise.resolve(lf.r) : this.runDet(cs);
  }

  /** A property body: stops on Ctrl-C, keeps bad input (CaseError) for the report, shows progress. */
  private async guard(fn: () => Promise<boolean>): Promise<boolean> {
    if (this.fatal) return true;
    if (this.cfg.interrupt.stopped) stop();
    try {
      return await fn();
    } catch (e) {
      if (e instanceof CaseError) {
        this.fatal = e;
        return true;
      }
      throw e;
    } finally {
      this.progress();
    }
  }

  /** A deterministic case; one the interrupt cut short counts as not run. */
  private readonly detCase = (cs: Case): Promise<boolean> =>
    this.guard(async () => {
      const r = await this.runDet(cs);
      if (this.cfg.interrupt.stopped) stop();
      return !this.failing(r, cs);
    });

  /** free mode: threads race; the first failure is turned into a schedule and replayed deterministically */
  private readonly freeCase = (cs: Case): Promise<boolean> =>
    this.guard(async () => {
      const { cfg } = this;
      if (this.freeFound) return true;
      const r = await this.holder.run(cs, this.opts('free'));
      this.cases++;
      this.steps += r.steps;
      coverCase(this.coverage, r, this.checked);
      this.digest = fnv1a(r.traceHash, this.digest);
      if (cfg.interrupt.stopped) stop();
      if (!r.failures.length) return true;
      cfg.onFirstFailure?.(this.cases);
      const fr = await replayFreeFailure((c2, o) => this.holder.run(c2, o), cs, r, this.opts('det'));
      if (cfg.interrupt.stopped && fr.property === null) fr.why = 'the deterministic replay was interrupted';
      this.freeFound = {
        result: r,
        failure: r.failures.find((g) => g.property === fr.property) ?? r.failures[0]!,
        ...fr,
      };
      return false;
    });

  private async search(): Promise<fc.RunDetails<[Case]>> {
    const { cfg } = this;
    try {
      const body = cfg.mode === 'det' ? this.detCase : this.freeCase;
      return await fc.check(fc.asyncProperty(this.arb, body), {
        seed: cfg.seed,
        numRuns: cfg.runs,
        path: cfg.path,
        endOnFailure: cfg.mode === 'free' || cfg.path !== undefined,
      });
    } finally {
      if (cfg.tty) cfg.io.err('\n');
    }
  }

  /**
   * A free run's failure: said whether it replays deterministically; if it does, the converted case is
   * shrunk as a fast-check example. The case to report, its result and failure.
   */
  private async freeFailure(
    ff: FreeFound,
    found: Case,
    shrink: { interrupted?: number },
  ): Promise<{ cs: Case; r: CaseResult; f: Failure }> {
    const reproduced = ff.property !== null;
    if (!this.cfg.json) {
      this.cfg.io.out(
        reproduced
          ? `free run failed (${ff.failure.property}); replayed deterministically along its interleaving (a schedule of ${ff.converted!.schedule.length} decisions), it fails the same way\n`
          : `free run failed (${ff.failure.property}); it does NOT replay deterministically: ${ff.why}\n`,
      );
    }
    if (!reproduced || !ff.converted) return { cs: found, r: ff.result, f: ff.failure };
    this.target = ff.failure.property;
    const cs = await this.shrinkFrom(ff.converted, shrink);
    // interrupted before the converted case ran again: its replay's run is the result
    const r = cs === ff.converted && ff.replay && this.lastFail === null ? ff.replay : await this.resultOf(cs);
    return { cs, r, f: r.failures.find((g) => g.property === ff.failure.property) ?? r.failures[0] ?? ff.failure };
  }

  /**
   * After fast-check's shrink (of a deterministic case, or of a free failure's deterministic replay):
   * ops dropped one at a time along the failing run's interleaving (harness/shrink_ops.ts), then
   * fast-check shrinks what is left (its schedule above all) from there. Null when no op could go.
   */
  private async dropOps(
    cs: Case,
    r: CaseResult,
    shrink: { interrupted?: number },
  ): Promise<{ cs: Case; r: CaseResult } | null> {
    const { cfg } = this;
    const target = this.target;
    const fails = (x: CaseResult): boolean => x.failures.some((g) => g.property === target);
    if (target === null || !fails(r)) return null;
    const runOne = async (c: Case, o: RunOptions): Promise<CaseResult> => {
      const x = await this.holder.run(c, o);
      this.cases++;
      this.steps += x.steps;
      return x;
    };
    const fewer = await dropOps(runOne, this.opts('det'), cs, r, fails, () => cfg.interrupt.stopped);
    if (!fewer || cfg.interrupt.stopped) return fewer;
    this.reduced = true;
    const c = await this.shrinkFrom(fewer.cs, shrink);
    return c === fewer.cs ? fewer : { cs: c, r: await this.resultOf(c) };
  }

  /** fast-check's shrink of a failing case that no path of this search names: the smallest case it reached. */
  private async shrinkFrom(example: Case, shrink: { interrupted?: number }): Promise<Case> {
    const shrunk = await fc.check(fc.asyncProperty(this.arb, this.detCase), {
      seed: this.cfg.seed,
      numRuns: 1,
      examples: [[example]],
    });
    if (shrunk.interrupted) shrink.interrupted = shrunk.failed ? shrunk.numShrinks : 0;
    return shrunk.failed && shrunk.counterexample !== null ? shrunk.counterexample[0] : example;
  }

  /** The failure fast-check found: shrunk, saved as a regression file, printed. */
  private async report(details: fc.RunDetails<[Case]>): Promise<FailureReport> {
    const { cfg } = this;
    const pathStr = details.counterexamplePath ?? '';
    // interrupted while shrinking: the counterexample is the last failing case fast-check reached
    const shrink: { interrupted?: number } = { interrupted: details.interrupted ? details.numShrinks : undefined };
    const header = `(suite ${cfg.suite.name}, kernel ${cfg.variant}, seed ${cfg.seed}, path "${pathStr}", mode ${cfg.mode})`;
    const ff = cfg.mode === 'free' ? this.freeFound : null;
    const reproduced = ff ? ff.property !== null : undefined;
    let found: { cs: Case; r: CaseResult; f: Failure };
    if (ff) {
      found = await this.freeFailure(ff, details.counterexample![0], shrink);
      // a free failure replayed deterministically is an ordinary case from here on (its file replays it)
      const fewer = reproduced && !shrink.interrupted ? await this.dropOps(found.cs, found.r, shrink) : null;
      if (fewer) found = { ...fewer, f: fewer.r.failures.find((g) => g.property === found.f.property) ?? found.f };
    } else {
      let cs = details.counterexample![0];
      let r = await this.resultOf(cs);
      const fewer = details.interrupted ? null : await this.dropOps(cs, r, shrink);
      if (fewer) ({ cs, r } = fewer);
      found = {
        cs,
        r,
        f: r.failures.find((g) => g.property === this.target) ??
          r.failures[0] ?? {
            property: this.target ?? 'unknown',
            message: 'the failure did not recur when the shrunk case was run again',
            seq: 0,
          },
      };
    }
    const { cs, r, f } = found;
    const rep: FailureReport = {
      property: f.property,
      message: f.message,
      suite: cfg.suite.name,
      variant: cfg.variant,
      seed: cfg.seed,
      path: pathStr,
      trace_hash: r.traceHash,
      replay: '',
      reproduced,
      case: cs,
      properties: cfg.properties,
      shrinkInterrupted: shrink.interrupted,
    };
    if (cfg.regressionsDir && (cfg.mode === 'det' || reproduced)) {
      try {
        rep.regression = writeRegression(cfg.regressionsDir, rep);
      } catch (e) {
        rep.saveError = (e as Error).message;
      }
    }
    rep.replay = replayLine(cfg, rep, pathStr, { guided: this.guide !== null, reduced: this.reduced });
    if (!cfg.json) {
      cfg.io.out(formatFailure(f, cs, r, header, shrink.interrupted, cfg.traceLines));
      cfg.io.out(`replay: ${rep.replay}\n`);
    }
    if (rep.saveError) cfg.io.err(`pinlab: the failure was not saved: ${rep.saveError}\n`);
    return rep;
  }

  async run(): Promise<RunSummary> {
    const { cfg } = this;
    const failures: FailureReport[] = [];
    try {
      const details = await this.search();
      if (this.fatal) throw this.fatal;
      // interrupted before any failure: fast-check reports none (or, with no case passed yet, one without a
      // counterexample)
      if (details.failed && details.counterexample !== null) failures.push(await this.report(details));
    } finally {
      if (this.holder !== cfg.pool) await this.holder.destroy();
    }
    const seconds = (performance.now() - this.t0) / 1000;
    return {
      verdict: failures.length ? 'fail' : cfg.interrupt.stopped ? 'interrupted' : 'pass',
      interrupted: cfg.interrupt.stopped,
      suite: cfg.suite.name,
      kernel: cfg.variant,
      seed: cfg.seed,
      mode: cfg.mode,
      cases: this.cases,
      steps: this.steps,
      seconds,
      steps_per_s: Math.round(this.steps / Math.max(seconds, 1e-6)),
      failures,
      coverage: this.coverage,
      digest: (this.digest >>> 0).toString(16).padStart(8, '0'),
    };
  }
}

/** Run a suite; returns the summary (the caller prints JSON or the summary line and picks the exit code). */
export function runSuite(cfg: RunConfig): Promise<RunSummary> {
  return new SuiteRun(cfg).run();
}

export function summaryLine(s: RunSummary): string {
  const rate = s.steps_per_s >= 1000 ? `${(s.steps_per_s / 1000).toFixed(1)}k` : String(s.steps_per_s);
  return (
    `${s.interrupted ? 'interrupted: ' : ''}${s.cases} cases, ${s.steps} steps in ${s.seconds.toFixed(1)} s (${rate} steps/s), ` +
    `${s.failures.length} failure${s.failures.length === 1 ? '' : 's'}: ${s.verdict}\n`
  );
}

export function summaryJson(s: RunSummary): unknown {
  return {
    verdict: s.verdict,
    interrupted: s.interrupted,
    suite: s.suite,
    kernel: s.kernel,
    seed: s.seed,
    mode: s.mode,
    cases: s.cases,
    steps: s.steps,
    seconds: +s.seconds.toFixed(3),
    steps_per_s: s.steps_per_s,
    failures: s.failures.map((f) => ({
      property: f.property,
      message: f.message,
      seed: f.seed,
      path: f.path,
      trace_hash: f.trace_hash,
      regression: f.regression ?? null,
      replay: f.replay,
      ...(f.reproduced !== undefined ? { reproduced: f.reproduced } : {}),
      ...(f.shrinkInterrupted !== undefined ? { shrinking_interrupted_after: f.shrinkInterrupted } : {}),
      ...(f.saveError ? { save_error: f.saveError } : {}),
    })),
  };
}

// ---------------------------------------------------------------------------------------------
// Replay

/** `pinlab replay --case DATA`: a regression file's document, deflated, in base64url (one shell word). */
export function inlineRegression(rep: Omit<FailureReport, 'regression' | 'replay'>): string {
  return zlib.deflateRawSync(JSON.stringify(regressionDoc(rep))).toString('base64url');
}

/** The document an inline regression (inlineRegression()) carries, as JSON text; bad data is a CaseError. */
export function inlineRegressionText(data: string): string {
  if (!/^[A-Za-z0-9_-]+$/.test(data))
    throw new CaseError('--case: not base64url data (pinlab run prints it after --case)');
  try {
    return zlib.inflateRawSync(Buffer.from(data, 'base64url'), { maxOutputLength: INLINE_MAX_BYTES }).toString('utf8');
  } catch (e) {
    const why =
      (e as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE'
        ? `larger than ${INLINE_MAX_BYTES >> 20} MiB`
        : 'not deflated data';
    throw new CaseError(`--case: ${why} (the data is cut short or was not printed by pinlab run)`);
  }
}
const INLINE_MAX_BYTES = 16 << 20;

export interface RegressionFile {
  name?: string;
  suite: string;
  seed: number;
  path: string;
  variant: string;
  property: string;
  verdict: 'fail' | 'pass';
  trace_hash?: string;
  /** the properties checked when it was found (all when absent) */
  properties?: string[];
  case: Case;
}

/**
 * Read and check a regression file; bad files are CaseError (one line, exit 2), before anything runs:
 * every field against the schema (harness/case_schema.ts), and the case's machine booted with its
 * mappings made.
 */
export function loadRegression(file: string, inline?: string): RegressionFile {
  let text: string;
  try {
    text = inline ?? readInput(file);
  } catch (e) {
    throw new CaseError(`${file}: ${(e as Error).message}`);
  }
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    throw new CaseError(`${file}: not JSON (${badFileMessage(e).split('\n')[0]})`);
  }
  let reg: RegressionFile;
  try {
    reg = parseRegression(doc);
  } catch (e) {
    throw new CaseError(`${file}: ${badFileMessage(e)}`);
  }
  try {
    checkSetup(reg.case);
  } catch (e) {
    if (e instanceof CaseError) throw new CaseError(`${file}: case.${e.message}`);
    throw e;
  }
  return reg;
}

export interface ReplayResult {
  result: CaseResult;
  /** the recorded property failed again (or, for a "pass" file, nothing failed) */
  asRecorded: boolean;
  sameHash: boolean | null;
}

/** Run a regression file's case deterministically (optionally under another kernel variant). */
export async function replayFile(
  reg: RegressionFile,
  variant?: string,
  timeoutMs?: number,
  shared?: PoolHolder,
  interrupt?: Interrupt,
  snapshots = false,
): Promise<ReplayResult> {
  const cs: Case = variant ? { ...reg.case, variant } : reg.case;
  const suite = own(SUITES, reg.suite);
  const threads = Object.keys(cs.programs).length;
  const holder = shared && shared.threads >= threads ? shared : new PoolHolder(threads);
  try {
    // the run's seed also seeds the devices' traffic choices (DeviceEnv.rand), as it did in the search
    const result = await holder.run(cs, {
      mode: 'det',
      timeoutMs,
      checks: suite?.checks,
      properties: reg.properties,
      seed: reg.seed,
      interrupt,
      snapshots,
    });
    const failed = result.failures.some((f) => f.property === reg.property);
    const asRecorded = reg.verdict === 'fail' ? failed : result.failures.length === 0;
    return { result, asRecorded, sameHash: reg.trace_hash && !variant ? reg.trace_hash === result.traceHash : null };
  } finally {
    if (holder !== shared) await holder.destroy();
  }
}
