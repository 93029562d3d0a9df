// The default campaign (`npm start` = `pinlab campaign`): a fixed plan of suite runs - every registered
// suite (the agents' and one per device model) on each machine shape - against one kernel variant. Suite
// run i has seed base + i and a fixed case count, so the plan is the same on every machine; it runs on
// --jobs case runners (threads, each with its own machines and actor workers), can be cut into --shard
// i/n, and ends with a verdict a CI can trust (judgeCampaign()): pass only when every planned suite run
// ran to its end, no property failed, and every property had something to check.
import { performance } from 'node:perf_hooks';
import { availableParallelism } from 'node:os';
import { SUITES, Suite } from './suites';
import { mergeCoverage, type Coverage, type FailureReport } from './runner';
import { PROMISES } from '../properties/index';
import { CampaignJobs, type JobItem, type JobResult } from './campaign_jobs';
import type { Io } from './io';
import type { Interrupt } from './signals';

/**
 * Machine shapes the campaign adds to each suite's own: miniature ones (mini geometry; the suites' maps
 * must fit), and one real x86_64 machine as `pinlab kernel` boots it under QEMU (e820 map, ZONE_DMA and
 * DMA32, the kernel's own memory, init), whose cases cost ~20x a mini one's: it runs runsFactor x the
 * suite's own case count.
 */
export interface CampaignShape {
  name: string;
  cmdline?: string;
  /** the geometry of cmdline's machine (default mini) */
  geometry?: string;
  /** cases per suite run: this many times the suite's own count (default CAMPAIGN_RUNS_FACTOR) */
  runsFactor?: number;
}
export const CAMPAIGN_SHAPES: CampaignShape[] = [
  { name: 'random mini machines' }, // harness/suites.ts machineArb(): ZONE_MOVABLE splits, CMA, THP, hugetlb, hot-plug, KASLR
  {
    name: 'small ZONE_MOVABLE',
    // blocks onlined as plain "online" get the zone auto_movable_zone_for_pfn() picks (virtio-mem's set-up)
    cmdline: 'mem=1M movablecore=256K sysctl.vm.min_free_kbytes=16 memory_hotplug.online_policy=auto-movable',
  },
  {
    name: 'larger ZONE_MOVABLE, THP',
    cmdline: 'mem=1M movablecore=640K cma=64K sysctl.vm.min_free_kbytes=16 transparent_hugepage=always',
  },
  {
    // QEMU's `-numa node,mem=512K` twice with the second node hotpluggable in the SRAT: movable_node puts all
    // of node 1 in ZONE_MOVABLE, the set-up that lets a whole node be unplugged
    name: 'movable_node, a hotpluggable NUMA node',
    cmdline:
      'mem=1M pinlab.numa_nodes=512K,512K pinlab.hotpluggable_node=1 movable_node sysctl.vm.min_free_kbytes=16 transparent_hugepage=always',
    runsFactor: 10,
  },
  {
    name: 'x86_64 512M, QEMU pc',
    cmdline: 'mem=512M movablecore=128M cma=16M transparent_hugepage=always hugepagesz=2M hugepages=2',
    geometry: 'x86_64',
    runsFactor: 1,
  },
];

/** Each suite run of the default plan runs this many times the suite's own case count. */
export const CAMPAIGN_RUNS_FACTOR = 20;

/** Time budget of one case in the campaign (a case past it fails as a hang). */
export const CAMPAIGN_CASE_TIMEOUT_MS = 10_000;

/** The schema of the campaign's JSON (docs/campaign.md); `pinlab merge` reads only this one. */
export const CAMPAIGN_SCHEMA = 'pinlab-campaign/1';

/** Exit code of an incomplete campaign: planned work did not run (--time, a missing shard). */
export const EXIT_INCOMPLETE = 3;

export interface CampaignOptions {
  variant: string;
  seed: number;
  /** cases per suite run (default: CAMPAIGN_RUNS_FACTOR x the suite's own count) */
  runs?: number;
  /** a cap: after this many seconds running suite runs are cut and no more start (verdict incomplete) */
  timeSec?: number;
  /** case runners in parallel (default: the CPUs) */
  jobs?: number;
  /** run only shard index (1-based) of count */
  shard?: { index: number; count: number };
  /** a property with nothing to check is not a failure */
  allowUnexercised?: boolean;
  /** stop at the first suite run that finds a failure: running ones are cut, waiting ones never start */
  failFast?: boolean;
  /** bind each case runner to a CPU of its own when there are enough (default true; harness/affinity.ts) */
  affinity?: boolean;
  regressionsDir: string | null;
  tty: boolean;
  interrupt: Interrupt;
  io: Io;
}

/** One suite run of the plan, as it ran (or why it did not). */
export interface CampaignItem extends JobItem {
  /** done: ran all its cases; cut: stopped part way (signal, --time); not run: never started */
  status: 'done' | 'cut' | 'not run';
  why?: 'interrupted' | 'time cap' | 'fail fast';
  cases: number;
  steps: number;
  seconds: number;
  digest: string | null;
  failures: FailureReport[];
  coverage: Coverage;
}

/** A property's row: its cases, the cases whose checks saw something, its checks' time, its verdict. */
export interface PropertyRow {
  property: string;
  cases: number;
  seen: number;
  checked: number;
  failures: number;
  ms: number;
  verdict: 'pass' | 'FAIL' | 'not exercised' | 'incomplete' | 'interrupted' | 'not run';
}

/** The campaign as JSON (CAMPAIGN_SCHEMA): what `--json` writes and `pinlab merge` reads and writes. */
export interface CampaignDoc {
  schema: string;
  kernel: string;
  seed: number;
  /** --runs, when it replaced the default case counts */
  runs: number | null;
  /** suite runs in the whole (unsharded) plan */
  plan: number;
  /** the shards this document covers (1-based), of count; [1] of 1 for a whole campaign */
  shards: number[];
  shardCount: number;
  jobs: number;
  interrupted: boolean;
  seconds: number;
  items: CampaignItem[];
  /** judgeCampaign()'s */
  verdict: 'pass' | 'fail' | 'incomplete' | 'interrupted';
  reasons: string[];
  properties: PropertyRow[];
  events: Coverage['events'];
  /** the regression corpus's bug sites the cases reached (R1...), summed over items */
  corpus: Coverage['corpus'];
}

export function campaignSuites(): Suite[] {
  return Object.values(SUITES).filter((s) => !s.hidden);
}

/** The whole plan: every suite on the first shape, those not campaignFirstShapeOnly on the others. */
export function campaignPlan(o: { seed: number; runs?: number }): JobItem[] {
  const suites = campaignSuites();
  const pairs = CAMPAIGN_SHAPES.flatMap((shape, k) =>
    suites.filter((suite) => k === 0 || !suite.campaignFirstShapeOnly).map((suite) => ({ suite, shape })),
  );
  return pairs.map(({ suite, shape }, index) => ({
    index,
    suite: suite.name,
    shape: shape.name,
    cmdline: shape.cmdline ?? null,
    geometry: shape.geometry ?? null,
    seed: (o.seed + index) | 0,
    runs: o.runs ?? suite.runs * (shape.runsFactor ?? CAMPAIGN_RUNS_FACTOR),
    properties: suite.properties,
  }));
}

/** Shard index of count (1-based): every count-th suite run, so each shard gets a mix of suites and shapes. */
export function shardOf<T extends { index: number }>(plan: T[], index: number, count: number): T[] {
  return plan.filter((x) => x.index % count === index - 1);
}

/** "16 suites, 9 of them on 3 machine shapes, the rest on the first" */
export function campaignShapeNote(): string {
  const suites = campaignSuites();
  const all = suites.filter((s) => !s.campaignFirstShapeOnly).length;
  return `${suites.length} suites, ${all} of them on ${CAMPAIGN_SHAPES.length} machine shapes, the rest on the first`;
}

export function defaultJobs(): number {
  return Math.max(1, availableParallelism());
}

const emptyCoverage = (): Coverage => ({ properties: {}, events: {}, corpus: {} });

function notRunItem(x: JobItem, why: CampaignItem['why']): CampaignItem {
  return {
    ...x,
    status: 'not run',
    why,
    cases: 0,
    steps: 0,
    seconds: 0,
    digest: null,
    failures: [],
    coverage: emptyCoverage(),
  };
}

function itemOf(x: JobItem, r: JobResult, why: CampaignItem['why']): CampaignItem {
  const s = r.summary!;
  return {
    ...x,
    status: s.interrupted ? 'cut' : 'done',
    ...(s.interrupted ? { why } : {}),
    cases: s.cases,
    steps: s.steps,
    seconds: s.seconds,
    digest: s.digest,
    failures: s.failures,
    coverage: s.coverage,
  };
}

/** Run the plan (or a shard of it) on the job runners; the document, judged. */
export async function runCampaign(o: CampaignOptions): Promise<CampaignDoc> {
  const t0 = performance.now();
  const whole = campaignPlan(o);
  const shard = o.shard ?? { index: 1, count: 1 };
  const plan = shardOf(whole, shard.index, shard.count);
  const jobs = Math.max(1, Math.min(o.jobs ?? defaultJobs(), plan.length || 1));
  const items = new Map<number, CampaignItem>();
  const pool = new CampaignJobs(jobs, o.interrupt, o.affinity ?? true);
  if (pool.cpus.length)
    o.io.err(`pinlab: ${jobs} case runner${jobs === 1 ? '' : 's'} bound to CPU ${pool.cpus.join(', ')}\n`);
  let capped = false;
  const cap = o.timeSec
    ? setTimeout(() => {
        capped = true;
        pool.stopAll();
      }, o.timeSec * 1000)
    : null;
  let failedFast = false;
  const why = (): CampaignItem['why'] =>
    o.interrupt.stopped ? 'interrupted' : capped ? 'time cap' : failedFast ? 'fail fast' : undefined;
  let done = 0;
  try {
    await pool.runAll(
      plan,
      {
        variant: o.variant,
        regressionsDir: o.regressionsDir,
        timeoutMs: CAMPAIGN_CASE_TIMEOUT_MS,
      },
      (x, r) => {
        const item = itemOf(x, r, why());
        items.set(x.index, item);
        if (o.failFast && item.failures.length && !failedFast) {
          failedFast = true;
          pool.stopAll();
        }
        done++;
        reportItem(o, item, done, plan.length);
      },
    );
  } finally {
    if (cap) clearTimeout(cap);
    await pool.destroy();
  }
  const doc: CampaignDoc = {
    schema: CAMPAIGN_SCHEMA,
    kernel: o.variant,
    seed: o.seed,
    runs: o.runs ?? null,
    plan: whole.length,
    shards: [shard.index],
    shardCount: shard.count,
    jobs,
    interrupted: o.interrupt.stopped,
    seconds: (performance.now() - t0) / 1000,
    items: plan.map((x) => items.get(x.index) ?? notRunItem(x, why() ?? 'interrupted')),
    verdict: 'pass',
    reasons: [],
    properties: [],
    events: {},
    corpus: {},
  };
  return judgeCampaign(doc, { allowUnexercised: o.allowUnexercised });
}

/** One finished suite run: a progress line on stderr, its failures on stdout. */
function reportItem(o: CampaignOptions, x: CampaignItem, done: number, total: number): void {
  const state = x.status === 'done' ? (x.failures.length ? 'fail' : 'pass') : `cut short (${x.why})`;
  const line = `[${done}/${total}] ${x.suite} on ${x.shape}: ${x.cases} cases, ${x.steps} steps, ${x.seconds.toFixed(1)} s, ${state}`;
  o.io.err(o.tty ? `\r\x1b[K${line}\n` : `pinlab: ${line}\n`);
  for (const f of x.failures) {
    o.io.out(`FAIL ${f.property} (${x.suite}, ${x.shape}): ${f.message}\n  replay: ${f.replay}\n`);
    if (f.saveError) o.io.err(`pinlab: the failure was not saved: ${f.saveError}\n`);
  }
}

/**
 * The verdict of a campaign document (a run, a shard, or shards merged), with its reasons, the property
 * rows and the kernel paths reached. fail: a property failed, or (the whole plan covered) a promise had
 * nothing to check in any case ("not exercised"); interrupted: a signal stopped it; incomplete: planned
 * suite runs did not run to their end (--time, a shard missing); pass: none of these.
 */
export function judgeCampaign(doc: CampaignDoc, o: { allowUnexercised?: boolean } = {}): CampaignDoc {
  const rows = propertyRows(doc.items);
  const sum = emptyCoverage();
  for (const x of doc.items) mergeCoverage(sum, x.coverage);
  const reasons: string[] = [];
  const failed = doc.items.filter((x) => x.failures.length);
  if (failed.length) reasons.push(`${failed.length} suite run${failed.length === 1 ? '' : 's'} found a failure`);
  const missing = doc.plan - doc.items.length;
  const short = doc.items.filter((x) => x.status !== 'done');
  const cut = short.filter((x) => x.status === 'cut').length;
  if (missing > 0) reasons.push(`${missing} of ${doc.plan} suite runs are in no shard given`);
  if (cut) reasons.push(`${cut} suite run${cut === 1 ? '' : 's'} cut short`);
  if (short.length > cut) reasons.push(`${short.length - cut} not run`);
  const complete = missing <= 0 && !short.length;
  const promises = new Set(PROMISES);
  const idle = rows.filter((r) => promises.has(r.property) && r.cases > 0 && r.seen === 0);
  // a shard alone may never meet what another shard exercises: only the whole plan is judged for it
  const judged = complete && !o.allowUnexercised;
  for (const r of rows) {
    if (r.failures) r.verdict = 'FAIL';
    else if (r.cases === 0) r.verdict = 'not run';
    else if (!complete) r.verdict = doc.interrupted ? 'interrupted' : 'incomplete';
    else if (idle.includes(r)) r.verdict = 'not exercised';
  }
  if (idle.length && judged) reasons.push(`not exercised: ${idle.map((r) => r.property).join(', ')}`);
  let verdict: CampaignDoc['verdict'] = 'pass';
  if (failed.length || (idle.length && judged)) verdict = 'fail';
  else if (doc.interrupted) verdict = 'interrupted';
  else if (!complete) verdict = 'incomplete';
  return { ...doc, verdict, reasons, properties: rows, events: sum.events, corpus: sum.corpus };
}

function propertyRows(items: CampaignItem[]): PropertyRow[] {
  const rows = new Map<string, PropertyRow>();
  const row = (p: string): PropertyRow => {
    let r = rows.get(p);
    if (!r) rows.set(p, (r = { property: p, cases: 0, seen: 0, checked: 0, failures: 0, ms: 0, verdict: 'pass' }));
    return r;
  };
  for (const x of items) {
    for (const p of x.properties) row(p);
    for (const [p, c] of Object.entries(x.coverage.properties)) {
      const r = row(p);
      r.cases += c.cases;
      r.seen += c.seen;
      r.checked += c.checked;
      r.ms += c.ms;
    }
    for (const f of x.failures) row(f.property).failures++;
  }
  return [...rows.values()];
}
