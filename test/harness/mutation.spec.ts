// Mutation evidence: each property is seen to fail on a kernel variant that has the bug it guards
// against, through the real harness (actors in worker threads, fast-check search and shrinking), and
// holds on the fixed kernel with the same seed. Seeds are fixed so CI is deterministic; `npm run bench --
// mutation` measures time-to-failure from fresh seeds. The shrunk counterexamples stay small.
import { runSuite, RunConfig } from '../../harness/runner';
import { SUITES } from '../../harness/suites';

function cfg(variant: string, seed: number, runs: number): RunConfig {
  return { suite: SUITES['longterm-pin']!, variant, seed, runs, mode: 'det', checkDeterminism: false, json: true,
    regressionsDir: null, tty: false, interrupt: { stopped: false }, io: { out: () => {}, err: () => {} }, timeoutMs: 10_000 };
}

function ops(c: { programs: Record<string, unknown[]> }): number {
  return Object.values(c.programs).reduce((n, p) => n + p.length, 0);
}

// [variant, the property it breaks, seed]
const BREAKS: [string, string, number][] = [
  ['v5.12', 'no-longterm-pin-in-movable', 7], // pins stay in ZONE_MOVABLE (before the series)
  ['series-v1', 'no-longterm-pin-in-movable', 11], // the series as posted (R1..R6, R8)
  ['v5.13+R4', 'no-longterm-pin-in-movable', 11], // an isolation failure counted as success
  ['v6.12+R12', 'no-longterm-pin-in-movable', 7], // an empty migration list counted as success
  ['v6.12+R14', 'pins-balance', 11], // -ENOMEM with the pins still held
  ['v6.1', 'movable-offlinable', 7], // R10: folios isolated and never put back: the block never offlines
];

describe('every property fails on the variant with the bug it guards against', () => {
  it.each(BREAKS)('%s breaks %s', async (variant, property, seed) => {
    const s = await runSuite(cfg(variant, seed, 600));
    expect(s.verdict).toBe('fail');
    expect(s.failures.map((f) => f.property)).toEqual([property]);
    const f = s.failures[0]!;
    expect(ops(f.case)).toBeLessThanOrEqual(10); // shrunk to a small counterexample
    expect(f.replay).toMatch(new RegExp(`^pinlab replay --suite longterm-pin --kernel ${variant.replace(/[+.]/g, '\\$&')} --seed ${seed} --path "`));
  }, 120_000);

  it('the fixed kernel passes the same seeds', async () => {
    for (const seed of [7, 11]) {
      const s = await runSuite(cfg('v6.12', seed, 300));
      expect([seed, s.failures.map((f) => `${f.property}: ${f.message}`)]).toEqual([seed, []]);
    }
  }, 120_000);
});
