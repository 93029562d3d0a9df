// The campaign benchmark (`npm run bench -- campaign`): the default plan (every suite on every shape,
// default case counts, one seed) with --jobs 1 and --jobs N (the CPUs): wall time, cases/s, the CPU the
// process used, and the speed-up of --jobs N over --jobs 1, which issue 17 wants at 1.7x or more on a
// 2-core box. The bound pair (the default) runs PINLAB_CAMPAIGN_ROUNDS times (default 3), the order
// turned round every other round (1,N then N,1), and the speed-up is taken within a round: the shared box
// drifts by a third over minutes (bench/README.md), more than any two runs far apart can tell. Then one
// unbound pair (--no-affinity). Each suite run's digest must match the first row's, or the row says so:
// results may not depend on --jobs or on binding.
import { availableParallelism } from 'node:os';
import { runCampaign, type CampaignDoc } from '../harness/campaign';
import { median, type Row } from './table';

const SEED = 1;

async function once(jobs: number, affinity: boolean): Promise<{ d: CampaignDoc; cpu: number }> {
  const u0 = process.cpuUsage(); // every thread of the process
  const d = await runCampaign({
    variant: 'v6.12',
    seed: SEED,
    jobs,
    affinity,
    regressionsDir: null,
    tty: false,
    interrupt: { stopped: false },
    io: { out: () => {}, err: () => {} },
  });
  const u = process.cpuUsage(u0);
  return { d, cpu: (u.user + u.system) / 1e6 / d.seconds };
}

/** PINLAB_CAMPAIGN_ROUNDS: how many bound pairs (1 to 20). */
export function campaignRounds(env: NodeJS.ProcessEnv = process.env): number {
  const v = env.PINLAB_CAMPAIGN_ROUNDS;
  if (v === undefined || v === '') return 3;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1 || n > 20)
    throw new Error(`PINLAB_CAMPAIGN_ROUNDS=${v}: not a whole number of rounds from 1 to 20`);
  return n;
}

/**
 * The runs in order: [round, jobs, bound]; round k of the bound pairs runs --jobs N first when k is even, and the
 * unbound pair comes last as round `rounds + 1` (each speed-up is over its own round's --jobs 1).
 */
export function campaignOrder(rounds: number, n: number): [number, number, boolean][] {
  const out: [number, number, boolean][] = [];
  for (let k = 1; k <= rounds; k++) {
    const pair = k % 2 ? [1, n] : [n, 1];
    for (const jobs of pair) out.push([k, jobs, true]);
  }
  out.push([rounds + 1, 1, false], [rounds + 1, n, false]);
  return out;
}

export async function campaignRows(rounds = campaignRounds()): Promise<Row[]> {
  const n = Math.max(2, availableParallelism());
  const runs: { round: number; jobs: number; bound: boolean; d: CampaignDoc; cpu: number }[] = [];
  const order = campaignOrder(rounds, n);
  for (const [k, [round, jobs, bound]] of order.entries()) {
    const { d, cpu } = await once(jobs, bound);
    runs.push({ round, jobs, bound, d, cpu });
    const what = bound ? `round ${round} of ${rounds}` : 'unbound';
    process.stderr.write(
      `campaign: run ${k + 1}/${order.length} (${what}, --jobs ${jobs}): ${d.seconds.toFixed(1)} s\n`,
    );
  }
  const first = runs[0]!.d;
  const ones = new Map(runs.filter((r) => r.jobs === 1).map((r) => [r.round, r.d.seconds]));
  const rows: Row[] = runs.map(({ round, jobs, bound, d, cpu }) => {
    const cases = d.items.reduce((k, x) => k + x.cases, 0);
    const same = d.items.every((x, k) => x.digest === first.items[k]!.digest);
    return {
      round: bound ? round : 'unbound',
      jobs,
      'suite runs': d.items.length,
      cases,
      seconds: +d.seconds.toFixed(1),
      'cases/s': Math.round(cases / d.seconds),
      CPU: `${Math.round(cpu * 100)}%`,
      'speed-up': +(ones.get(round)! / d.seconds).toFixed(2),
      verdict: d.verdict,
      'same digests': same ? 'yes' : 'NO',
    };
  });
  const ups = runs.filter((r) => r.bound && r.jobs === n).map((r) => ones.get(r.round)! / r.d.seconds);
  rows.push({
    round: `median of ${ups.length}`,
    jobs: n,
    'suite runs': '',
    cases: '',
    seconds: '',
    'cases/s': '',
    CPU: '',
    'speed-up': +median(ups).toFixed(2),
    verdict: '',
    'same digests': '',
  });
  return rows;
}
