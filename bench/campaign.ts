// The campaign benchmark (`npm run bench -- campaign`): the default plan (every suite on every shape,
// default case counts, one seed) with --jobs 1 and --jobs N (the CPUs), each with its case runners
// bound to CPUs (the default) and unbound (--no-affinity): wall time, cases/s, the CPU the process
// used, and the speed-up over --jobs 1 bound, which issue 17 wants at 1.7x or more on a 2-core box.
// Each suite run's digest must match the first row's, or the row says so: results may not depend on
// --jobs or on binding.
import { availableParallelism } from 'node:os';
import { runCampaign, type CampaignDoc } from '../harness/campaign';

type Row = Record<string, string | number>;

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

export async function campaignRows(): Promise<Row[]> {
  const rows: Row[] = [];
  const counts = [...new Set([1, Math.max(2, availableParallelism())])];
  const docs: CampaignDoc[] = [];
  for (const affinity of [true, false])
    for (const jobs of counts) {
      const { d, cpu } = await once(jobs, affinity);
      docs.push(d);
      const cases = d.items.reduce((n, x) => n + x.cases, 0);
      const same = d.items.every((x, k) => x.digest === docs[0]!.items[k]!.digest);
      rows.push({
        jobs,
        runners: affinity ? 'bound' : 'unbound',
        'suite runs': d.items.length,
        cases,
        seconds: +d.seconds.toFixed(1),
        'cases/s': Math.round(cases / d.seconds),
        CPU: `${Math.round(cpu * 100)}%`,
        'speed-up': +(docs[0]!.seconds / d.seconds).toFixed(2),
        verdict: d.verdict,
        'same digests': same ? 'yes' : 'NO',
      });
    }
  return rows;
}
