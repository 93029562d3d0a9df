// The campaign benchmark (`npm run bench -- campaign`): the default plan (every suite on every shape,
// default case counts, one seed) with --jobs 1 and --jobs N (the CPUs): wall time, cases/s and the
// speed-up, which issue 17 wants at 1.7x or more on a 2-core box. Each suite run's digest must match
// between the two, or the row says so: results may not depend on --jobs.
import { availableParallelism } from 'node:os';
import { runCampaign, type CampaignDoc } from '../harness/campaign';

type Row = Record<string, string | number>;

const SEED = 1;

async function once(jobs: number): Promise<CampaignDoc> {
  return runCampaign({
    variant: 'v6.12',
    seed: SEED,
    jobs,
    regressionsDir: null,
    tty: false,
    interrupt: { stopped: false },
    io: { out: () => {}, err: () => {} },
  });
}

export async function campaignRows(): Promise<Row[]> {
  const rows: Row[] = [];
  const counts = [...new Set([1, Math.max(2, availableParallelism())])];
  const docs: CampaignDoc[] = [];
  for (const jobs of counts) {
    const d = await once(jobs);
    docs.push(d);
    const cases = d.items.reduce((n, x) => n + x.cases, 0);
    const same = d.items.every((x, k) => x.digest === docs[0]!.items[k]!.digest);
    rows.push({
      jobs,
      'suite runs': d.items.length,
      cases,
      seconds: +d.seconds.toFixed(1),
      'cases/s': Math.round(cases / d.seconds),
      'speed-up': +(docs[0]!.seconds / d.seconds).toFixed(2),
      verdict: d.verdict,
      'same digests as --jobs 1': same ? 'yes' : 'NO',
    });
  }
  return rows;
}
