// The default campaign (`npm start` = `pinlab campaign`): every registered suite - the agents' and one
// per device model - against one kernel variant on a handful of miniature machine shapes, bounded in
// time, ending with a table per property (cases, steps, verdict, time) and the replay line of every
// failure. It is `pinlab run` in a loop; failures are shrunk and saved exactly as `pinlab run` does.
import { performance } from 'node:perf_hooks';
import { SUITES, Suite } from './suites';
import { runSuite, RunSummary } from './runner';
import type { Io } from './io';
import type { Interrupt } from './signals';

/** Machine shapes the campaign adds to each suite's own (mini geometry; the suites' maps must fit). */
export const CAMPAIGN_SHAPES: { name: string; cmdline?: string }[] = [
  { name: 'random mini machines' }, // harness/suites.ts machineArb(): ZONE_MOVABLE splits, CMA, THP, hugetlb, hot-plug, KASLR
  { name: 'small ZONE_MOVABLE', cmdline: 'mem=1M movablecore=256K sysctl.vm.min_free_kbytes=16' },
  {
    name: 'larger ZONE_MOVABLE, THP',
    cmdline: 'mem=1M movablecore=640K cma=64K sysctl.vm.min_free_kbytes=16 transparent_hugepage=always',
  },
];

/** The default campaign runs each suite this many times its own case count: about a minute on 2 cores. */
export const CAMPAIGN_RUNS_FACTOR = 10;

/** Time budget of one case in the campaign (a case past it fails as a hang). */
export const CAMPAIGN_CASE_TIMEOUT_MS = 10_000;

export interface CampaignOptions {
  variant: string;
  seed: number;
  /** cases per suite and shape (default: CAMPAIGN_RUNS_FACTOR x the suite's own count) */
  runs?: number;
  /** stop starting new suite runs after this many seconds */
  timeSec: number;
  regressionsDir: string | null;
  tty: boolean;
  interrupt: Interrupt;
  io: Io;
}

/**
 * A property's verdict over the campaign: FAIL (a suite run found a failure), pass (every suite run that
 * checks it ran, or was skipped for the time budget, and it held), interrupted (it held in what ran, but a
 * signal cut a run that checks it short or kept one from starting), not run (no case checked it).
 */
export interface PropertyRow {
  property: string;
  cases: number;
  steps: number;
  verdict: 'pass' | 'FAIL' | 'interrupted' | 'not run';
  seconds: number;
}

export interface CampaignResult {
  /** fail when a failure was found, even if the campaign was then interrupted (interrupted says so) */
  verdict: 'pass' | 'fail' | 'interrupted';
  interrupted: boolean;
  /** cut: a signal stopped this run before its last case */
  runs: { suite: string; shape: string; summary: RunSummary; cut: boolean }[];
  /** suite runs never started, and why */
  notRun: { suite: string; shape: string; why: 'interrupted' | 'time budget' }[];
  properties: PropertyRow[];
  skipped: number;
  seconds: number;
}

/** "16 suites, 9 of them on 3 machine shapes" */
export function campaignShapeNote(): string {
  const suites = campaignSuites();
  const all = suites.filter((s) => !s.campaignFirstShapeOnly).length;
  return `${suites.length} suites, ${all} of them on ${CAMPAIGN_SHAPES.length} machine shapes, the rest on the first`;
}

export function campaignSuites(): Suite[] {
  return Object.values(SUITES).filter((s) => !s.hidden);
}

export async function runCampaign(o: CampaignOptions): Promise<CampaignResult> {
  const t0 = performance.now();
  const runs: CampaignResult['runs'] = [];
  const suites = campaignSuites();
  const plan = CAMPAIGN_SHAPES.flatMap((shape, k) =>
    suites.filter((suite) => k === 0 || !suite.campaignFirstShapeOnly).map((suite) => ({ suite, shape })),
  );
  let skipped = 0;
  const notRun: CampaignResult['notRun'] = [];
  const quiet: Io = { out: () => {}, err: () => {} };
  // a hard stop at twice the budget: a suite run still searching or shrinking is interrupted (its
  // failures so far are kept), so the campaign always ends
  const deadline = { stopped: false };
  const timer = setTimeout(() => {
    deadline.stopped = true;
  }, o.timeSec * 2000);
  const stop = {
    get stopped() {
      return o.interrupt.stopped || deadline.stopped;
    },
    set stopped(v: boolean) {
      o.interrupt.stopped = v;
    },
  };
  try {
    for (let i = 0; i < plan.length; i++) {
      const { suite, shape } = plan[i]!;
      const elapsed = (performance.now() - t0) / 1000;
      if (o.interrupt.stopped || elapsed >= o.timeSec) {
        skipped = plan.length - i;
        const why = o.interrupt.stopped ? 'interrupted' : 'time budget';
        for (const p of plan.slice(i)) notRun.push({ suite: p.suite.name, shape: p.shape.name, why });
        break;
      }
      const label = `${suite.name} on ${shape.name}`;
      if (o.tty) o.io.err(`\r\x1b[K[${i + 1}/${plan.length}] ${label}`);
      const summary = await runSuite({
        suite,
        variant: o.variant,
        cmdline: shape.cmdline,
        seed: (o.seed + i) | 0,
        runs: o.runs ?? suite.runs * CAMPAIGN_RUNS_FACTOR,
        mode: 'det',
        checkDeterminism: false,
        json: true,
        regressionsDir: o.regressionsDir,
        tty: false,
        interrupt: stop,
        io: quiet,
        timeoutMs: CAMPAIGN_CASE_TIMEOUT_MS,
      });
      runs.push({ suite: suite.name, shape: shape.name, summary, cut: summary.interrupted && o.interrupt.stopped });
      const line = `[${i + 1}/${plan.length}] ${label}: ${summary.cases} cases, ${summary.steps} steps, ${summary.seconds.toFixed(1)} s, ${summary.verdict}`;
      if (o.tty) o.io.err(`\r\x1b[K${line}\n`);
      else o.io.err(`pinlab: ${line}\n`);
      for (const f of summary.failures) {
        o.io.out(`FAIL ${f.property} (${suite.name}, ${shape.name}): ${f.message}\n  replay: ${f.replay}\n`);
        if (f.saveError) o.io.err(`pinlab: the failure was not saved: ${f.saveError}\n`);
      }
    }
  } finally {
    clearTimeout(timer);
  }
  if (deadline.stopped && !o.interrupt.stopped)
    o.io.err('pinlab: campaign: hard time limit reached, the last suite run was cut short\n');
  const props = new Map<string, PropertyRow>();
  for (const s of suites)
    for (const p of s.properties)
      if (!props.has(p)) props.set(p, { property: p, cases: 0, steps: 0, verdict: 'not run', seconds: 0 });
  // properties that a run a signal cut short, or kept from starting, would have checked
  const incomplete = new Set<string>();
  for (const x of [...runs.filter((r) => r.cut), ...notRun.filter((n) => n.why === 'interrupted')])
    for (const p of SUITES[x.suite]!.properties) incomplete.add(p);
  for (const r of runs) {
    const suite = SUITES[r.suite]!;
    for (const p of suite.properties) {
      const row = props.get(p)!;
      row.cases += r.summary.cases;
      row.steps += r.summary.steps;
      row.seconds += r.summary.seconds;
      if (row.verdict === 'not run' && r.summary.cases) row.verdict = incomplete.has(p) ? 'interrupted' : 'pass';
    }
    for (const f of r.summary.failures) {
      const row = props.get(f.property) ?? { property: f.property, cases: 0, steps: 0, verdict: 'pass', seconds: 0 };
      row.verdict = 'FAIL';
      props.set(f.property, row);
    }
  }
  const failed = runs.some((r) => r.summary.verdict === 'fail' || r.summary.failures.length > 0);
  return {
    verdict: failed ? 'fail' : o.interrupt.stopped ? 'interrupted' : 'pass',
    interrupted: o.interrupt.stopped,
    runs,
    notRun,
    properties: [...props.values()],
    skipped,
    seconds: (performance.now() - t0) / 1000,
  };
}

export function formatCampaign(r: CampaignResult, variant: string): string {
  const lines = [`\nproperty                     cases   steps   verdict       time`];
  for (const p of r.properties) {
    lines.push(
      `${p.property.padEnd(28)} ${String(p.cases).padStart(6)} ${String(p.steps).padStart(7)}   ${p.verdict.padEnd(11)} ${p.seconds.toFixed(1).padStart(5)} s`,
    );
  }
  const cut = r.runs.filter((x) => x.cut);
  const byShape = new Map<string, string[]>();
  for (const n of r.notRun)
    if (n.why === 'interrupted') byShape.set(n.shape, [...(byShape.get(n.shape) ?? []), n.suite]);
  if (cut.length || byShape.size) lines.push('');
  for (const x of cut) lines.push(`cut short (interrupted): ${x.suite} on ${x.shape}, after ${x.summary.cases} cases`);
  for (const [shape, names] of byShape) lines.push(`not run (interrupted) on ${shape}: ${names.join(', ')}`);
  const cases = r.runs.reduce((n, x) => n + x.summary.cases, 0);
  const steps = r.runs.reduce((n, x) => n + x.summary.steps, 0);
  const budget = r.notRun.filter((n) => n.why === 'time budget').length;
  const interrupted = r.notRun.length - budget;
  lines.push(
    `\n${r.runs.length} suite runs (${campaignShapeNote()}${budget ? `, ${budget} skipped: time budget` : ''}` +
      `${interrupted ? `, ${interrupted} not run: interrupted` : ''}), ` +
      `${cases} cases, ${steps} steps in ${r.seconds.toFixed(1)} s, kernel ${variant}: ${r.verdict}${r.interrupted && r.verdict !== 'interrupted' ? ' (interrupted)' : ''}`,
  );
  return lines.join('\n') + '\n';
}
