// pinlab fidelity: the table docs/fidelity.md is written from `pinlab kernel --diff --json` documents;
// the committed table names every shipped scenario, as run or as refused.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fidelityRow, fidelityMarkdown, scenarioFiles, DiffDoc } from '../../harness/cli/fidelity';
import { mainAsync } from '../../harness/cli';

const doc: DiffDoc = {
  file: 'scenarios/kernel/thp-pin.yaml',
  kernel: 'debian:6.12',
  release: '6.12.118+deb12-amd64',
  variant: 'v6.12',
  diff: {
    agree: 8,
    total: 9,
    steps: [
      { step: 5, op: 'pin', differs: {} },
      { step: 6, op: 'vmstat', differs: { nr_foll_pin_released: ['512', '1023'] } },
    ],
    counters: [
      { name: 'pgmigrate_success', model: 512, kernel: 512, compared: true },
      { name: 'thp_split_page', model: 0, kernel: 1, compared: false },
    ],
    blocks: [{ block: 'memory7', model: 'offline', kernel: 'online Movable' }],
  },
};

it('turns a diff document into a row: each differing fact, compared counters and blocks', () => {
  const row = fidelityRow(doc);
  expect(row).toMatchObject({ agree: 8, total: 9 });
  expect(row.differs).toEqual([
    'step 6 vmstat: nr_foll_pin_released: model 512, kernel 1023',
    'memory7: model offline, kernel online Movable',
  ]);
  expect(fidelityRow({ file: 'x.yaml', kernel: 'debian:6.1', error: 'the probe never started' }).error).toBe(
    'the probe never started',
  );
});

it('writes the summary table, the differences per run and the refusals', () => {
  const md = fidelityMarkdown(
    [fidelityRow(doc)],
    [{ file: 'scenarios/fork-cow.yaml', why: "machine.geometry 'mini'" }],
  );
  expect(md).toMatch(/^\| `scenarios\/kernel\/thp-pin.yaml` \| debian:6.12 \| 8\/9 \| 2 \|$/m);
  expect(md).toMatch(/^0 of 1 runs agree on every compared fact\.$/m);
  expect(md).toMatch(/^- step 6 vmstat: nr_foll_pin_released: model 512, kernel 1023$/m);
  expect(md).toMatch(/^\| `scenarios\/fork-cow.yaml` \| machine.geometry 'mini' \|$/m);
});

it('docs/fidelity.md names every shipped scenario (run npm run fidelity after adding one)', () => {
  const table = fs.readFileSync(path.join(__dirname, '../../docs/fidelity.md'), 'utf8');
  const files = scenarioFiles('scenarios');
  expect(files.length).toBeGreaterThan(20);
  expect(files.filter((f) => !table.includes(`\`${f}\``))).toEqual([]);
});

it('refuses a bad kernel in one line, before anything runs', async () => {
  let err = '';
  const code = await mainAsync(['fidelity', '--kernel', 'debian:5.10'], { out: () => {}, err: (s) => void (err += s) });
  expect(code).toBe(2);
  expect(err).toMatch(/^pinlab: fidelity: --kernel: unknown kernel 'debian:5.10'/);
  expect(err.trimEnd().split('\n')).toHaveLength(1);
});
