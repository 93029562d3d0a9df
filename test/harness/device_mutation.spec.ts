// Issue 7: every buggy variant of every device model breaks a property through the harness - the
// model runs as an actor in its worker thread next to the process and the hotplug agent, fast-check
// searches and shrinks - and the same search without the bug holds. Seeds are fixed (CI is
// deterministic); each entry's seed finds its bug early, so the file stays well under a minute and a half.
import { performance } from 'node:perf_hooks';
import { runSuite } from '../../harness/runner';
import { SUITES } from '../../harness/suites';
import { DEVICE_MUTATIONS, mutationConfig, runMutation, Mutation } from '../../harness/mutations';
import { DEVICE_MODELS } from '../../devices/index';

/** "device:rdma-umem" / "device2:rdma-umem" -> "rdma-umem" */
const modelOf = (mu: Mutation): string => mu.suite.replace(/^device2?:/, '');

describe('every device bug breaks a property through the harness', () => {
  it('has one entry per bug switch of every registered model, on device suites of the default kernel', () => {
    const want = Object.values(DEVICE_MODELS)
      .flatMap((d) => Object.keys(d.bugs).map((b) => `${d.name} ${b}`))
      .sort();
    const have = DEVICE_MUTATIONS.map((mu) => `${modelOf(mu)} ${(mu.bugs ?? []).join(',')}`).sort();
    expect(have).toEqual(want);
    for (const mu of DEVICE_MUTATIONS) {
      expect(SUITES[mu.suite]).toBeDefined();
      expect(mu.suite).toMatch(/^device2?:/);
      expect([mu.variant, mu.fixed]).toEqual(['v6.12', 'v6.12']);
      expect(mu.bugs).toHaveLength(1);
    }
  });

  const label = DEVICE_MUTATIONS.map(
    (mu) => [`${modelOf(mu)} ${mu.bugs!.join(',')} breaks ${mu.property} (${mu.suite}, seed ${mu.seed})`, mu] as const,
  );
  it.each(label)(
    '%s',
    async (_name, mu) => {
      const r = await runMutation(mu, mu.seed, mu.runs, () => performance.now());
      const s = r.summary;
      expect([s.verdict, s.failures.map((f) => f.property)]).toEqual(['fail', [mu.property]]);
      expect(r.ops).toBeGreaterThan(0);
      expect(r.ops).toBeLessThanOrEqual(10); // shrunk to a small counterexample
      const f = s.failures[0]!;
      expect(f.case.bugs).toBeDefined();
      expect(f.replay).toContain(`--suite ${mu.suite}`);
      expect(f.replay).toContain(`--bug ${mu.bugs!.join(',')}`);
      // the same search with the model's bug switched off holds
      const fixed = await runSuite(mutationConfig(mu, mu.fixed, mu.seed, mu.runs, []));
      expect([fixed.verdict, fixed.failures.map((x) => `${x.property}: ${x.message}`)]).toEqual(['pass', []]);
      expect(fixed.cases).toBe(mu.runs);
    },
    120_000,
  );
});
