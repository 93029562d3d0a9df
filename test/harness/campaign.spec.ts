// The campaign CI relies on: a fixed plan cut into shards that together are the plan, results that do
// not depend on --jobs or --shard, pinlab merge's verdict over shards, the verdicts (incomplete, not
// exercised), and the JUnit XML read back by a real XML parser.
import { allowedCpus } from '../../harness/affinity';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import fc from 'fast-check';
import { XMLParser } from 'fast-xml-parser';
import { mainAsync } from '../../harness/cli/index';
import {
  campaignPlan,
  shardOf,
  judgeCampaign,
  CAMPAIGN_SCHEMA,
  EXIT_INCOMPLETE,
  type CampaignDoc,
} from '../../harness/campaign';
import { parseCampaignDoc } from '../../harness/campaign_merge';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'pinlab-campaign-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

async function cli(argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await mainAsync(argv, { out: (s) => (out += s), err: (s) => (err += s) });
  return { code, out, err };
}
const readDoc = (f: string): CampaignDoc => parseCampaignDoc(f, fs.readFileSync(f, 'utf8'));
const digests = (d: CampaignDoc): Record<number, string | null> =>
  Object.fromEntries(d.items.map((x) => [x.index, x.digest]));

describe('the plan and its shards', () => {
  it('shards i/n together are the plan, suite run for suite run, each run once', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 40 }), fc.integer(), (n, seed) => {
        const plan = campaignPlan({ seed });
        const parts = Array.from({ length: n }, (_, i) => shardOf(plan, i + 1, n));
        const union = parts.flat().sort((a, b) => a.index - b.index);
        expect(union).toEqual(plan);
        for (const p of parts) expect(p.length).toBeLessThanOrEqual(Math.ceil(plan.length / n));
      }),
      { numRuns: 50 },
    );
  });

  it('the plan is fixed by the seed: suite run i has seed + i', () => {
    const a = campaignPlan({ seed: 7 });
    expect(campaignPlan({ seed: 7 })).toEqual(a);
    a.forEach((x, i) => expect(x.seed).toBe(7 + i));
  });
});

describe('verdicts (judgeCampaign)', () => {
  const base = (): CampaignDoc => {
    const items = campaignPlan({ seed: 1, runs: 2 }).map((x) => ({
      ...x,
      status: 'done' as const,
      cases: 2,
      steps: 10,
      seconds: 0.1,
      digest: '0',
      failures: [],
      coverage: {
        properties: Object.fromEntries(x.properties.map((p) => [p, { cases: 2, seen: 1, checked: 3, ms: 1 }])),
        events: {},
        corpus: {},
      },
    }));
    return {
      schema: CAMPAIGN_SCHEMA,
      kernel: 'v6.12',
      seed: 1,
      runs: 2,
      plan: items.length,
      shards: [1],
      shardCount: 1,
      jobs: 1,
      interrupted: false,
      seconds: 1,
      items,
      verdict: 'pass',
      reasons: [],
      properties: [],
      events: {},
      corpus: {},
    };
  };

  it('pass when every suite run ran and every property saw something', () => {
    expect(judgeCampaign(base()).verdict).toBe('pass');
  });

  it('a property that saw nothing in any case is not exercised, which fails the campaign unless allowed', () => {
    const d = base();
    for (const x of d.items) x.coverage.properties['no-livelock']!.seen = 0;
    const j = judgeCampaign(d);
    expect(j.verdict).toBe('fail');
    expect(j.reasons).toContain('not exercised: no-livelock');
    expect(j.properties.find((p) => p.property === 'no-livelock')!.verdict).toBe('not exercised');
    expect(judgeCampaign(d, { allowUnexercised: true }).verdict).toBe('pass');
  });

  it('a suite run cut short or missing makes it incomplete, never pass; a shard is not judged for exercise', () => {
    const d = base();
    d.items[3] = { ...d.items[3]!, status: 'cut', why: 'time cap' };
    expect(judgeCampaign(d).verdict).toBe('incomplete');
    const shard = base();
    shard.items = shardOf(shard.items, 1, 2);
    shard.shardCount = 2;
    for (const x of shard.items) x.coverage.properties['no-livelock']!.seen = 0;
    const j = judgeCampaign(shard);
    expect(j.verdict).toBe('incomplete');
    expect(j.reasons.join()).toMatch(/suite runs are in no shard given/);
    expect(j.reasons.join()).not.toMatch(/not exercised/);
  });
});

describe('pinlab campaign and pinlab merge', () => {
  const ARGS = ['--seed', '12', '--runs', '2', '--save', 'none'];
  let whole: CampaignDoc;

  beforeAll(async () => {
    const r = await cli(['campaign', ...ARGS, '--jobs', '1', '--json', path.join(tmp, 'whole.json')]);
    expect(r.err).not.toMatch(/Error|at /);
    whole = readDoc(path.join(tmp, 'whole.json'));
  }, 300_000);

  it('prints the seed first and records it', () => {
    expect(whole.seed).toBe(12);
    expect(whole.items.every((x) => x.status === 'done' && x.cases === 2)).toBe(true);
  });

  it('--jobs 2 runs the same cases (the same trace hashes) as --jobs 1', async () => {
    await cli(['campaign', ...ARGS, '--jobs', '2', '--json', path.join(tmp, 'jobs2.json')]);
    const two = readDoc(path.join(tmp, 'jobs2.json'));
    expect(two.jobs).toBe(2);
    expect(digests(two)).toEqual(digests(whole));
  }, 300_000);

  it('--no-affinity leaves the runners unbound and runs the same cases', async () => {
    const r = await cli(['campaign', ...ARGS, '--jobs', '2', '--no-affinity', '--json', path.join(tmp, 'free.json')]);
    expect(r.err).not.toMatch(/bound to CPU/);
    expect(digests(readDoc(path.join(tmp, 'free.json')))).toEqual(digests(whole));
    const cpus = allowedCpus();
    if (process.platform === 'linux' && cpus && cpus.length >= 2) {
      const bound = await cli(['campaign', ...ARGS, '--jobs', '2', '--shard', '1/9']);
      expect(bound.err).toMatch(new RegExp(`2 case runners bound to CPU ${cpus.at(-1)}, ${cpus.at(-2)}`));
    }
  }, 300_000);

  it('shards merged are the unsharded campaign: the same cases, table and verdict', async () => {
    const files = [1, 2, 3].map((i) => path.join(tmp, `shard${i}.json`));
    for (const [k, f] of files.entries()) {
      const r = await cli(['campaign', ...ARGS, '--jobs', '2', '--shard', `${k + 1}/3`, '--json', f]);
      expect(r.out).toMatch(new RegExp(`^shard ${k + 1}/3: `, 'm'));
      expect([0, EXIT_INCOMPLETE]).toContain(r.code); // a shard alone is incomplete
    }
    const partial = await cli(['merge', files[0]!, files[2]!]);
    expect(partial.code).toBe(EXIT_INCOMPLETE);
    expect(partial.out).toMatch(/suite runs are in no shard given/);
    const junit = path.join(tmp, 'merged.xml');
    const merged = await cli(['merge', ...files, '--json', path.join(tmp, 'merged.json'), '--junit', junit]);
    const m = readDoc(path.join(tmp, 'merged.json'));
    expect(digests(m)).toEqual(digests(whole));
    expect(m.verdict).toBe(whole.verdict);
    expect(m.properties.map((p) => [p.property, p.cases, p.seen, p.checked, p.failures, p.verdict])).toEqual(
      whole.properties.map((p) => [p.property, p.cases, p.seen, p.checked, p.failures, p.verdict]),
    );
    expect(merged.code).toBe(whole.verdict === 'pass' ? 0 : 1);
    const dup = await cli(['merge', files[0]!, files[0]!]);
    expect(dup.code).toBe(2);
  }, 300_000);

  it('two cases a suite run are too few to exercise every property: the campaign fails and says which', () => {
    expect(whole.verdict).toBe('fail');
    expect(whole.reasons.join()).toMatch(/^not exercised: /m);
    expect(whole.items.every((x) => x.failures.length === 0)).toBe(true);
  });

  it('--time caps the campaign: what it cut makes it incomplete (exit 3), never pass', async () => {
    const r = await cli([
      'campaign',
      '--seed',
      '3',
      '--runs',
      '100000',
      '--time',
      '1',
      '--save',
      'none',
      '--jobs',
      '2',
    ]);
    expect(r.code).toBe(EXIT_INCOMPLETE);
    expect(r.out).toMatch(/^(cut short \(time cap\): |not run \(time cap\) on )/m);
    expect(r.out).toMatch(/: incomplete \(.*(cut short|not run)\)$/m);
  }, 120_000);

  it('--fail-fast stops at the first suite run that fails: the rest are cut or never run, the verdict is fail', async () => {
    const json = path.join(tmp, 'fast.json');
    const argv = ['campaign', '--kernel', 'v5.12', '--seed', '2', '--runs', '30', '--save', 'none', '--jobs', '1'];
    const r = await cli([...argv, '--fail-fast', '--json', json]);
    expect(r.code).toBe(1);
    const doc = readDoc(json);
    expect(doc.verdict).toBe('fail');
    // one job: a suite run found a failure; of those that did not run to their end (the plan's order is
    // the runners' to choose), at most one was running when it came (cut), the rest never started
    expect(doc.items.some((x) => x.failures.length)).toBe(true);
    const stopped = doc.items.filter((x) => x.status !== 'done');
    expect(stopped.length).toBeGreaterThan(1);
    for (const x of stopped) expect(x.why).toBe('fail fast');
    expect(stopped.filter((x) => x.status === 'cut').length).toBeLessThanOrEqual(1);
    expect(r.out).toMatch(/^not run \(fail fast\) on /m);
  }, 120_000);
});

it('--save and its older name --regressions together are refused, as is a bad --shard', async () => {
  for (const verb of [['campaign'], ['run']]) {
    const r = await cli([...verb, '--save', 'none', '--regressions', 'none']);
    expect(r.code).toBe(2);
    expect(r.err).toBe('pinlab: --save and --regressions name the same directory: give one\n');
  }
  for (const bad of ['0/2', '3/2', '1/0', 'x', '1/']) {
    const r = await cli(['campaign', '--shard', bad, '--save', 'none']);
    expect([r.code, r.err]).toEqual([2, `pinlab: --shard: '${bad}' is not I/N with 1 <= I <= N (e.g. 2/4)\n`]);
  }
});

describe('JUnit XML', () => {
  it('one test case per suite run and property; a failure carries its message and replay line', async () => {
    const junit = path.join(tmp, 'fail.xml');
    const r = await cli([
      'campaign',
      '--kernel',
      'v5.12',
      '--seed',
      '2',
      '--runs',
      '8',
      '--shard',
      '1/4',
      '--save',
      path.join(tmp, 'saved'),
      '--junit',
      junit,
      '--html',
      path.join(tmp, 'html'),
    ]);
    expect(r.code).toBe(1);
    const doc = new XMLParser({ ignoreAttributes: false, isArray: (n) => ['testsuite', 'testcase'].includes(n) }).parse(
      fs.readFileSync(junit, 'utf8'),
    );
    const suites = doc.testsuites.testsuite as { '@_name': string; testcase: Record<string, unknown>[] }[];
    const plan = shardOf(campaignPlan({ seed: 2 }), 1, 4);
    expect(suites.length).toBe(plan.length + 1); // and the campaign's own
    for (const [k, x] of plan.entries()) {
      expect(suites[k]!['@_name']).toBe(`${x.suite} on ${x.shape}`);
      expect(suites[k]!.testcase.map((c) => c['@_name'])).toEqual(expect.arrayContaining([...x.properties]));
    }
    const failures = suites.flatMap((s) => s.testcase).filter((c) => c.failure);
    expect(failures.length).toBeGreaterThan(0);
    const first = failures.find((c) => c['@_name'] === 'no-longterm-pin-in-movable') as {
      failure: { '#text': string };
    };
    // saved under --save, the file named with the case's hash; the replay line names the file
    expect(first.failure['#text']).toMatch(
      /ZONE_MOVABLE[\s\S]*\nreplay: pinlab replay \S*saved\/\S+-v5\.12-no-longterm-pin-in-movable-\d+-[0-9a-f]{8}\.json$/,
    );
    expect(Number(doc.testsuites['@_failures'])).toBe(failures.length);
    // --html: the summary page with its rows and matrix, a report per failure it links to
    const index = fs.readFileSync(path.join(tmp, 'html', 'index.html'), 'utf8');
    expect(index).toMatch(/<h1>pinlab campaign: fail<\/h1>/);
    expect(index).toContain('<td>no-longterm-pin-in-movable</td><td class="FAIL">FAIL</td>');
    const links = [...index.matchAll(/<a href="([^"]+)">/g)].map((m) => m[1]!);
    expect(links.length).toBeGreaterThan(0);
    for (const l of links) expect(fs.existsSync(path.join(tmp, 'html', l))).toBe(true);
  }, 300_000);
});
