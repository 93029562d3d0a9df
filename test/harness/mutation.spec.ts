// Mutation evidence: each property is seen to fail on a kernel variant that has the bug it guards
// against, through the real harness (actors in worker threads, fast-check search and shrinking), and
// the fixed kernel passes the same search. Seeds are fixed so CI is deterministic; `npm run bench --
// mutation` measures time-to-failure from 20 random seeds per entry. The shrunk counterexamples stay small.
import { performance } from 'node:perf_hooks';
import { runSuite } from '../../harness/runner';
import { CORE_PROPERTIES } from '../../harness/suites';
import { RUN_FAILURES } from '../../properties/index';
import { KERNEL_MUTATIONS, mutationConfig, runMutation } from '../../harness/mutations';

const label = KERNEL_MUTATIONS.map((mu) => [`${mu.variant} breaks ${mu.property} (${mu.why})`, mu] as const);

describe('every property fails on a kernel variant with the bug it guards against', () => {
  it.each(label)(
    '%s',
    async (_name, mu) => {
      const r = await runMutation(mu, mu.seed, mu.runs, () => performance.now());
      const s = r.summary;
      expect(s.verdict).toBe('fail');
      expect(s.failures.map((f) => f.property)).toEqual([mu.property]);
      expect(r.ops).toBeGreaterThan(0);
      expect(r.ops).toBeLessThanOrEqual(10); // shrunk to a small counterexample
      const f = s.failures[0]!;
      // fast-check's path to the case, or the search again when dropOps() reduced it past fast-check's shrink
      const search = `--suite ${mu.suite} --kernel ${mu.variant} --seed ${mu.seed}`;
      const byPath = f.replay.startsWith(`pinlab replay ${search} --path "`);
      const again = f.replay.startsWith(`pinlab run ${search} --runs ${mu.runs}`);
      expect([f.replay, byPath || again]).toEqual([f.replay, true]);
      if (mu.only) expect(f.replay).toContain(`--property ${mu.property}`);
      // the same search on the kernel without the bug holds
      const fixed = await runSuite(mutationConfig(mu, mu.fixed, mu.seed, Math.min(mu.runs, 300)));
      expect([mu.fixed, fixed.failures.map((x) => `${x.property}: ${x.message}`)]).toEqual([mu.fixed, []]);
    },
    180_000,
  );

  it("covers every property of the core suites, and the issue's required variants", () => {
    const broken = new Set(KERNEL_MUTATIONS.map((mu) => mu.property));
    // allocator-sound has no kernel variant: it is broken by the harness's brokenSpinlocks switch
    // (test/integration/free_stress.spec.ts)
    const props = CORE_PROPERTIES.filter((p) => !RUN_FAILURES.includes(p) && p !== 'allocator-sound');
    expect(props.filter((p) => !broken.has(p))).toEqual([]);
    const variants = KERNEL_MUTATIONS.map((mu) => mu.variant);
    for (const r of ['R1', 'R3', 'R4', 'R5', 'R6']) expect(variants.some((v) => v.split('+').includes(r))).toBe(true);
    expect(
      [...new Set(KERNEL_MUTATIONS.filter((mu) => mu.variant === 'v5.12').map((mu) => mu.property))].sort(),
    ).toEqual(['movable-offlinable', 'no-longterm-pin-in-movable']);
  });
});
