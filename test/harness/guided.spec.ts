// Coverage-guided generation (harness/guided.ts): features and novelty, splicing that keeps a case one
// the suite could generate, and a guided search that is deterministic from its seed.
import * as fc from 'fast-check';
import { caseFeatures, GuidedCorpus, splice } from '../../harness/guided';
import { runSuite, type RunSummary } from '../../harness/runner';
import { SUITES } from '../../harness/suites';
import { mainAsync } from '../../harness/cli/index';
import type { Case } from '../../harness/run_case';

const suite = SUITES['longterm-pin-split-cma']!;
const arb = suite.arbitrary(fc, { variant: 'v6.12' });

it('features: bug sites, paths in power-of-two buckets, checks that saw something', () => {
  const f = caseFeatures({
    sites: { R10: 1 },
    events: { pgmigrate_success: 5, gup_longterm_retry: 40 },
    tally: { 'pins-balance': { checked: 2, ms: 0 }, 'no-livelock': { checked: 0, ms: 0 } },
  });
  expect(f).toEqual(['site:R10:1', 'path:pgmigrate_success:4', 'path:gup_longterm_retry:7', 'saw:pins-balance:2']);
});

it('a case joins the corpus only when it reached something new', () => {
  const g = new GuidedCorpus();
  const [c1, c2] = fc.sample(arb, { seed: 1, numRuns: 2 });
  expect(g.observe(c1!, { sites: { R10: 1 }, events: {}, tally: {} })).toBe(true);
  expect(g.observe(c2!, { sites: { R10: 1 }, events: {}, tally: {} })).toBe(false);
  expect(g.observe(c2!, { sites: { R10: 2 }, events: {}, tally: {} })).toBe(true);
  expect(g.cases).toEqual([c1, c2]);
});

it('a spliced case takes exactly one component from the fresh case', () => {
  fc.assert(
    fc.property(arb, arb, fc.nat(), (c, fresh, actor) => {
      const same = (a: Case, b: Case, keys: (keyof Case)[]): void => {
        for (const k of keys) expect(a[k]).toEqual(b[k]);
      };
      same(splice(c, fresh, 'schedule', actor), { ...c, schedule: fresh.schedule }, [
        'schedule',
        'faults',
        'layout',
        'programs',
      ]);
      same(splice(c, fresh, 'faults', actor), { ...c, faults: fresh.faults }, [
        'schedule',
        'faults',
        'layout',
        'programs',
      ]);
      const p = splice(c, fresh, 'program', actor);
      const changed = Object.keys(c.programs).filter((n) => p.programs[n] !== c.programs[n]);
      expect(changed.length).toBeLessThanOrEqual(1);
      for (const n of changed) expect(p.programs[n]).toBe(fresh.programs[n]);
    }),
    { numRuns: 30 },
  );
});

describe('a guided search', () => {
  const quiet = { out: () => {}, err: () => {} };
  const run = (guided: boolean): Promise<RunSummary> =>
    runSuite({
      suite,
      variant: 'v6.12',
      seed: 9,
      runs: 60,
      mode: 'det',
      checkDeterminism: false,
      json: true,
      regressionsDir: null,
      tty: false,
      interrupt: { stopped: false },
      io: quiet,
      guided,
    });

  it('is deterministic from its seed, and runs other cases than the blind search', async () => {
    const [a, b, blind] = [await run(true), await run(true), await run(false)];
    expect(a.verdict).toBe('pass');
    expect(a.digest).toBe(b.digest);
    expect(a.digest).not.toBe(blind.digest);
  }, 120_000);

  it('--guided is refused with --mode free and with --path', async () => {
    let err = '';
    const io = { out: () => {}, err: (s: string) => (err += s) };
    expect(await mainAsync(['run', '--guided', '--mode', 'free', '--save', 'none'], io)).toBe(2);
    expect(err).toMatch(/^pinlab: --guided: deterministic mode only/m);
  });
});
