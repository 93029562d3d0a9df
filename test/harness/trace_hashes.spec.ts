// The same cases, the same traces: a fixed set of generated cases from every suite (a fixed seed, 6 cases
// each, deterministic mode) must keep the trace hash and failing properties recorded in
// trace_hashes.json. A refactoring that changes no behaviour leaves them all equal; a change meant to
// alter behaviour updates the file on purpose:
//   PINLAB_UPDATE_TRACE_HASHES=1 npx jest test/harness/trace_hashes.spec.ts
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as fc from 'fast-check';
import { SUITES, suiteCases } from '../../harness/suites';
import { PoolHolder } from '../../harness/runner';
import { DEFAULT_VARIANT } from '../../mm/variants';

const FILE = path.join(__dirname, 'trace_hashes.json');
const SEED = 4242;
const PER_SUITE = 6;
const update = process.env.PINLAB_UPDATE_TRACE_HASHES === '1';
type Entry = { hash: string; failures: string[] };
const recorded: Record<string, Entry> = fs.existsSync(FILE) ? JSON.parse(fs.readFileSync(FILE, 'utf8')) : {};
const now: Record<string, Entry> = {};

let pool: PoolHolder;
beforeAll(() => {
  pool = new PoolHolder(Math.max(...Object.values(SUITES).map((s) => s.actors.length)));
});
afterAll(async () => {
  await pool.destroy();
  if (update) fs.writeFileSync(FILE, JSON.stringify(now, null, 1) + '\n');
});

const suites = Object.values(SUITES)
  .filter((s) => !s.hidden)
  .map((s) => s.name);

it.each(suites)('%s: the fixed cases keep their trace hashes', async (name) => {
  const suite = SUITES[name]!;
  const cases = fc.sample(suiteCases(fc, suite, { variant: DEFAULT_VARIANT }), { seed: SEED, numRuns: PER_SUITE });
  const diffs: string[] = [];
  for (const [k, cs] of cases.entries()) {
    const r = await pool.run(cs, { mode: 'det', seed: SEED, checks: suite.checks });
    const key = `${name}#${k}`;
    now[key] = { hash: r.traceHash, failures: [...new Set(r.failures.map((f) => f.property))].sort() };
    const was = recorded[key];
    if (!update && JSON.stringify(was) !== JSON.stringify(now[key]))
      diffs.push(`${key}: recorded ${JSON.stringify(was)}, now ${JSON.stringify(now[key])}`);
  }
  expect(diffs).toEqual([]);
});
