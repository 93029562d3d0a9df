// Mutation evidence: for each property, the kernel variants and device bugs that break it. The test
// suite (test/harness/mutation.spec.ts) runs each entry from a fixed seed through the real harness and
// checks the property fails, the shrunk case is small, and the fixed kernel (or the model without its
// bug) passes the same seed; `npm run bench -- mutation` measures time to first failure and shrunk size
// over 20 random seeds per entry; docs/properties.md has the table.
import { runSuite, RunConfig, RunSummary } from './runner';
import { SUITES } from './suites';
import type { Case } from './run_case';

export interface Mutation {
  /** kernel variant with the bug (device entries: the default kernel) */
  variant: string;
  /** the property it breaks */
  property: string;
  suite: string;
  /** device-model bug switches (device:<model> suites) */
  bugs?: string[];
  /** check only these properties (another one fails first otherwise) */
  only?: boolean;
  /** the same search without the bug: must pass */
  fixed: string;
  /** what the bug is, for the docs table */
  why: string;
  /** a seed the CI test uses */
  seed: number;
  /** cases the CI test allows the search */
  runs: number;
}

export const KERNEL_MUTATIONS: Mutation[] = [
  { variant: 'v5.12', property: 'no-longterm-pin-in-movable', suite: 'longterm-pin', fixed: 'v6.12', seed: 7, runs: 600,
    why: 'before the series: long-term pins stay in ZONE_MOVABLE' },
  { variant: 'v5.12', property: 'movable-offlinable', suite: 'longterm-pin', only: true, fixed: 'v6.12', seed: 7, runs: 600,
    why: 'a pin left in ZONE_MOVABLE keeps its block from going offline' },
  { variant: 'series-v1', property: 'no-livelock', suite: 'longterm-pin', only: true, fixed: 'v5.13', seed: 1, runs: 600,
    why: 'the series as posted: R1 with R5 migrates into ZONE_MOVABLE again, forever' },
  { variant: 'v5.13+R1+R5', property: 'no-livelock', suite: 'longterm-pin', only: true, fixed: 'v5.13+R5', seed: 1, runs: 600,
    why: 'R1 (targets keep __GFP_MOVABLE) needs R5 (scope only on the slow path) to land a target in ZONE_MOVABLE' },
  { variant: 'v5.13+R3', property: 'no-longterm-pin-in-movable', suite: 'longterm-pin-4', only: true, fixed: 'v5.13', seed: 1, runs: 1000,
    why: 'a page another holder pins cannot migrate; R3 pins it in place anyway' },
  { variant: 'v5.13+R4', property: 'no-longterm-pin-in-movable', suite: 'longterm-pin', only: true, fixed: 'v5.13', seed: 1, runs: 1000,
    why: 'an isolation failure (a per-CPU LRU batch) counted as success' },
  { variant: 'v5.13+R6', property: 'no-livelock', suite: 'longterm-pin', only: true, fixed: 'v5.13', seed: 1, runs: 600,
    why: 'ZERO_PAGE in ZONE_MOVABLE (KASLR) treated as unpinnable: it can never be isolated' },
  { variant: 'v5.13', property: 'dma-integrity', suite: 'longterm-pin', only: true, fixed: 'v6.12', seed: 1, runs: 1000,
    why: 'a R/O long-term pin of the zero page goes stale at the first write (COW) until 84209e87c696 (v6.1)' },
  { variant: 'v6.1', property: 'movable-offlinable', suite: 'longterm-pin', only: true, fixed: 'v6.1+-R10', seed: 1, runs: 600,
    why: 'R10: folios isolated and never put back' },
  { variant: 'v6.1', property: 'no-livelock', suite: 'longterm-pin', only: true, fixed: 'v6.1+-R10', seed: 7, runs: 600,
    why: 'R10: a leaked isolation makes every later pin of that page retry forever' },
  { variant: 'v6.12+R9', property: 'errno-contract', suite: 'longterm-pin', only: true, fixed: 'v6.12', seed: 1, runs: 600,
    why: 'returns the pages requested, not the pages pinned' },
  { variant: 'v6.12+R12', property: 'no-longterm-pin-in-movable', suite: 'longterm-pin', only: true, fixed: 'v6.12', seed: 1, runs: 1000,
    why: 'an empty migration list counted as success' },
  { variant: 'v6.12+R14', property: 'errno-contract', suite: 'longterm-pin', only: true, fixed: 'v6.12', seed: 1, runs: 600,
    why: 'the pofs allocation fails: -ENOMEM with the pins still held' },
  { variant: 'v6.12+R14', property: 'pins-balance', suite: 'longterm-pin', only: true, fixed: 'v6.12', seed: 1, runs: 600,
    why: 'the same leak seen at teardown' },
];

/** Device-model bugs, filled in by each model's mutation search (test/harness/device_mutation.spec.ts). */
export const DEVICE_MUTATIONS: Mutation[] = [];

export function mutationConfig(mu: Mutation, variant: string, seed: number, runs: number, bugs = mu.bugs): RunConfig {
  return {
    suite: SUITES[mu.suite]!, variant, seed, runs, mode: 'det', checkDeterminism: false, json: true, regressionsDir: null, tty: false,
    interrupt: { stopped: false }, io: { out: () => undefined, err: () => undefined }, timeoutMs: 10_000,
    properties: mu.only ? [mu.property] : undefined, bugs,
  };
}

export function caseOps(c: Case): number {
  return Object.values(c.programs).reduce((n, p) => n + p.length, 0);
}

export interface MutationRun {
  summary: RunSummary;
  /** cases run and seconds spent until the first failing case (before shrinking) */
  firstCases: number;
  firstSeconds: number;
  /** operations in the shrunk counterexample, or -1 when nothing failed */
  ops: number;
}

/** Search one entry from a seed; reports time to the first failure and the shrunk size. */
export async function runMutation(mu: Mutation, seed: number, runs: number, now: () => number): Promise<MutationRun> {
  const cfg = mutationConfig(mu, mu.variant, seed, runs);
  const t0 = now();
  let firstSeconds = -1;
  let firstCases = -1;
  cfg.onFirstFailure = (cases) => { firstSeconds = (now() - t0) / 1000; firstCases = cases; };
  const summary = await runSuite(cfg);
  const f = summary.failures[0];
  return { summary, firstCases, firstSeconds, ops: f ? caseOps(f.case) : -1 };
}
