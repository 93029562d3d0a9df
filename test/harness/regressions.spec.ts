// Every committed regression (regressions/*.json) replays to its recorded verdict, with its recorded
// trace hash: the case is in the file, so this holds even after the generators change.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { loadRegression, replayFile, PoolHolder } from '../../harness/runner';

const dir = path.join(__dirname, '..', '..', 'regressions');
const files = fs.existsSync(dir)
  ? fs
      .readdirSync(dir)
      .filter((f) => f.endsWith('.json'))
      .sort()
  : [];

let pool: PoolHolder;
beforeAll(() => {
  pool = new PoolHolder(4);
});
afterAll(async () => {
  await pool.destroy();
});

it('there is at least one committed regression, found with --kernel v5.12', () => {
  expect(files.some((f) => loadRegression(path.join(dir, f)).variant === 'v5.12')).toBe(true);
});

describe.each(files)('%s', (file) => {
  it('replays to its recorded verdict and trace hash', async () => {
    const reg = loadRegression(path.join(dir, file));
    const { result, asRecorded, sameHash } = await replayFile(reg, undefined, undefined, pool);
    if (reg.verdict === 'fail') expect(result.failures.map((f) => f.property)).toContain(reg.property);
    else expect(result.failures).toEqual([]);
    expect(asRecorded).toBe(true);
    if (reg.trace_hash) expect(sameHash).toBe(true);
  });
});
