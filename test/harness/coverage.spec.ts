// What a run reports it checked and reached (harness/runner.ts Coverage): per property the cases whose
// checks saw something, the kernel paths (vmstat events and pinlab's path counters) and the regression
// corpus's bug sites the actors' ops reached, bug on or off.
import { runSuite, type RunSummary } from '../../harness/runner';
import { SUITES } from '../../harness/suites';

const quiet = { out: () => {}, err: () => {} };
function run(suite: string, variant: string, runs: number, properties?: string[]): Promise<RunSummary> {
  return runSuite({
    suite: SUITES[suite]!,
    variant,
    seed: 4,
    runs,
    mode: 'det',
    checkDeterminism: false,
    json: true,
    regressionsDir: null,
    tty: false,
    interrupt: { stopped: false },
    io: quiet,
    properties,
  });
}

describe('coverage of a suite run', () => {
  let s: RunSummary;
  beforeAll(async () => {
    s = await run('longterm-pin', 'v6.12', 60);
  }, 120_000);

  it('every property the suite checks ran on every case; some saw something', () => {
    for (const p of SUITES['longterm-pin']!.properties) expect(s.coverage.properties[p]?.cases).toBe(s.cases);
    const pin = s.coverage.properties['no-longterm-pin-in-movable']!;
    expect(pin.seen).toBeGreaterThan(0);
    expect(pin.seen).toBeLessThan(s.cases); // cases that never pinned had nothing to check
    expect(pin.checked).toBeGreaterThanOrEqual(pin.seen);
    expect(s.coverage.properties['deadlock']!.seen).toBe(0);
  });

  it('the pins taken are the pins pins-balance saw come back', () => {
    expect(s.coverage.properties['pins-balance']!.checked).toBe(s.coverage.events['nr_foll_pin_acquired']!.total);
  });

  it('kernel paths: long-term pins migrated (MR_LONGTERM_PIN), no nr_* level among the events', () => {
    expect(s.coverage.events['migrate_reason_longterm_pin']?.cases).toBeGreaterThan(0);
    expect(s.coverage.events['nr_isolated_anon']).toBeUndefined();
    expect(Object.keys(s.coverage.events).every((k) => !k.startsWith('nr_') || k.startsWith('nr_foll_pin'))).toBe(true);
  });

  it("bug sites: v6.12's collect path asks for R10 and R21 in every case that collected; v5.13's sites are not on it", () => {
    expect(s.coverage.corpus['R10']?.cases).toBeGreaterThan(0);
    expect(s.coverage.corpus['R21']?.cases).toBe(s.coverage.corpus['R10']?.cases);
    expect(s.coverage.corpus['R3']).toBeUndefined(); // checkAndMigrateV513()'s re-pin
  });
});

it("v5.13 reaches its own collect loop's site (R2's compound step) and not v6.1+'s (R10)", async () => {
  const s = await run('longterm-pin', 'v5.13', 60, ['pins-balance']);
  expect(s.coverage.corpus['R2']?.cases).toBeGreaterThan(0);
  expect(s.coverage.corpus['R10']).toBeUndefined();
  expect(Object.keys(s.coverage.properties)).toEqual(['pins-balance']); // --property: only what it checks
}, 120_000);
