// `npm run bench -- soak`: free-running threads on v6.12 (no bug switched on) for every suite, many
// seeds: failures per million cases (a correct kernel must give 0: anything else is a race in the
// simulator), and for races injected on purpose (bug switches whose failure needs two actors to
// interleave), how long the free run takes to catch one and whether the deterministic replay of its
// interleaving reproduces it (harness/free_replay.ts) so that it is shrunk and saved.
//
// Sizes: PINLAB_SOAK_CASES cases per suite (default 2000), PINLAB_SOAK_SEEDS seeds per injected race
// (default 5), PINLAB_SOAK_SUITES a comma-separated list instead of every suite.
import { performance } from 'node:perf_hooks';
import * as fc from 'fast-check';
import { SUITES, suiteCases } from '../harness/suites';
import { PoolHolder, runSuite } from '../harness/runner';
import { replayFreeFailure } from '../harness/free_replay';
import { DEFAULT_VARIANT } from '../mm/variants';

type Row = Record<string, string | number>;

/** Races injected on purpose: each needs two actors interleaved in a particular way. */
export const INJECTED_RACES: { suite: string; kernel: string; bugs?: string[]; what: string }[] = [
  { suite: 'longterm-pin-4', kernel: 'v6.12+R12', what: 'R12: two pinners, an empty migration list counts as success' },
  {
    suite: 'device:rdma-odp',
    kernel: DEFAULT_VARIANT,
    bugs: ['no-seq-retry'],
    what: 'ODP installs a pfn without mmu_interval_read_retry()',
  },
  {
    suite: 'device2:rdma-umem',
    kernel: DEFAULT_VARIANT,
    bugs: ['check-then-add'],
    what: 'two registrations pass the pinned_vm check together',
  },
  {
    suite: 'device:vfio-type1',
    kernel: 'v5.13+R3',
    what: 'R3: re-pin in place after a failed migration (another holder)',
  },
];

function env(name: string, def: number): number {
  const v = Number(process.env[name]);
  return Number.isSafeInteger(v) && v > 0 ? v : def;
}

function progress(s: string): void {
  process.stderr.write(`soak: ${s}\n`);
}

/** Every suite, free mode, v6.12: count failures and try to replay each deterministically. */
async function soakSuites(rows: Row[]): Promise<void> {
  const perSuite = env('PINLAB_SOAK_CASES', 2000);
  const only = process.env.PINLAB_SOAK_SUITES?.split(',').filter(Boolean);
  const names = Object.values(SUITES)
    .filter((s) => !s.hidden && (!only || only.includes(s.name)))
    .map((s) => s.name);
  let total = 0;
  let failed = 0;
  const t0 = performance.now();
  for (const [k, name] of names.entries()) {
    const suite = SUITES[name]!;
    const holder = new PoolHolder(suite.actors.length);
    const seed = 1000 + k;
    const cases = fc.sample(suiteCases(fc, suite, { variant: DEFAULT_VARIANT }), { seed, numRuns: perSuite });
    let failures = 0;
    let replayed = 0;
    let steps = 0;
    const seen: string[] = [];
    const s0 = performance.now();
    try {
      for (const cs of cases) {
        const r = await holder.run(cs, { mode: 'free', seed, checks: suite.checks });
        steps += r.steps;
        if (!r.failures.length) continue;
        failures++;
        const fr = await replayFreeFailure((c2, o) => holder.run(c2, o), cs, r, {
          mode: 'det',
          seed,
          checks: suite.checks,
        });
        if (fr.property) replayed++;
        if (seen.length < 3) seen.push(`${r.failures[0]!.property}: ${r.failures[0]!.message.slice(0, 100)}`);
      }
    } finally {
      await holder.destroy();
    }
    total += cases.length;
    failed += failures;
    const secs = (performance.now() - s0) / 1000;
    rows.push({
      suite: name,
      cases: cases.length,
      steps,
      seconds: +secs.toFixed(1),
      failures,
      'per million': Math.round((failures / cases.length) * 1e6),
      replayed: failures ? `${replayed}/${failures}` : '-',
      first: seen.join(' | ') || '-',
    });
    const left = ((performance.now() - t0) / 1000 / (k + 1)) * (names.length - k - 1);
    progress(
      `${name}: ${cases.length} cases, ${failures} failures (${k + 1}/${names.length} suites, about ${Math.round(left)} s left)`,
    );
  }
  rows.push({
    suite: 'all',
    cases: total,
    steps: '',
    seconds: +((performance.now() - t0) / 1000).toFixed(1),
    failures: failed,
    'per million': Math.round((failed / Math.max(1, total)) * 1e6),
    replayed: '',
    first: '',
  });
}

/** Each injected race, several seeds: time and cases to the first free-mode failure; replayed, shrunk and saved? */
async function soakInjected(rows: Row[]): Promise<void> {
  const seeds = env('PINLAB_SOAK_SEEDS', 5);
  for (const race of INJECTED_RACES) {
    const suite = SUITES[race.suite]!;
    for (let seed = 1; seed <= seeds; seed++) {
      const t0 = performance.now();
      let firstAt = 0;
      const s = await runSuite({
        suite,
        variant: race.kernel,
        seed,
        runs: 3000,
        mode: 'free',
        checkDeterminism: false,
        json: true,
        regressionsDir: null,
        tty: false,
        interrupt: { stopped: false },
        io: { out: () => undefined, err: () => undefined },
        bugs: race.bugs,
        onFirstFailure: () => {
          firstAt = performance.now();
        },
      });
      const f = s.failures[0];
      rows.push({
        race: race.what,
        suite: race.suite,
        kernel: race.kernel + (race.bugs ? ` --bug ${race.bugs.join(',')}` : ''),
        seed,
        'cases to catch': f ? s.cases : `> ${s.cases}`,
        'seconds to catch': f ? +((firstAt - t0) / 1000).toFixed(1) : '-',
        property: f?.property ?? '-',
        replayed: f ? (f.reproduced ? 'yes' : 'no') : '-',
        'shrunk case': f?.reproduced
          ? `${Object.values(f.case.programs).reduce((n, p) => n + p.length, 0)} ops, ${f.case.schedule.filter((x) => x).length} switches`
          : '-',
      });
      progress(
        `${race.what}, seed ${seed}: ${f ? `${f.property} after ${s.cases} cases, replayed: ${f.reproduced}` : 'not caught'}`,
      );
    }
  }
  const caught = rows.filter((r) => r.property !== '-');
  rows.push({
    race: 'all',
    suite: '',
    kernel: '',
    seed: '',
    'cases to catch': '',
    'seconds to catch': '',
    property: `${caught.length} caught`,
    replayed: `${caught.filter((r) => r.replayed === 'yes').length}/${caught.length}`,
    'shrunk case': '',
  });
}

export async function soakRows(): Promise<{ suites: Row[]; injected: Row[] }> {
  const suites: Row[] = [];
  const injected: Row[] = [];
  await soakSuites(suites);
  await soakInjected(injected);
  return { suites, injected };
}
