// pinlab replay FILE --scenario: a regression's case as a scenario - the agents' ops as steps in the
// order they started - that loads, runs on the model, and still shows the bug it was saved for.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { loadRegression, replayFile, PoolHolder } from '../../harness/runner';
import { caseToScenario } from '../../harness/export_scenario';
import { loadScenario, runScenario } from '../../harness/scenario';
import { CaseError } from '../../harness/run_case';
import { actorKind, deviceModelOf } from '../../harness/actors';
import { mainAsync } from '../../harness/cli';

const dir = path.join(__dirname, '../../regressions');
const files = fs.readdirSync(dir).filter((f) => f.endsWith('.json'));
const agentOnly = files.filter((f) =>
  Object.keys(loadRegression(path.join(dir, f)).case.programs).every((a) => !deviceModelOf(actorKind(a))),
);

let pool: PoolHolder;
beforeAll(() => {
  pool = new PoolHolder(4);
});
afterAll(async () => {
  await pool.destroy();
});

async function exported(file: string, kernel?: string): Promise<string> {
  const reg = loadRegression(path.join(dir, file));
  const { result } = await replayFile(reg, kernel, undefined, pool);
  return caseToScenario(kernel ? { ...reg.case, variant: kernel } : reg.case, result, file);
}

it('covers the agent suites: most committed regressions have no device actor', () => {
  expect(agentOnly.length).toBeGreaterThan(10);
});

it.each(agentOnly)('%s: the exported scenario loads and runs on the model', async (file) => {
  const yaml = await exported(file);
  const sc = loadScenario(file, yaml);
  const reg = loadRegression(path.join(dir, file));
  expect(sc.machine.cmdline).toBe(reg.case.layout.cmdline);
  expect(sc.steps.length).toBeGreaterThan(reg.case.layout.maps.length + 2);
  expect(() => runScenario(file, sc)).not.toThrow();
});

it('the v5.12 pin that broke no-longterm-pin-in-movable lands in ZONE_MOVABLE in the scenario, not on v6.12', async () => {
  const file = 'longterm-pin-v5.12-no-longterm-pin-in-movable-7.json';
  const pinDetail = (yaml: string): string => {
    const run = runScenario(file, loadScenario(file, yaml));
    return run.results.find((r) => r.op === 'pin')!.detail;
  };
  expect(pinDetail(await exported(file))).toMatch(/pinned \(Movable 1\)/);
  expect(pinDetail(await exported(file, 'v6.12'))).toMatch(/pinned \(Normal 1\)/);
});

it('refuses a case with a device actor in one line', async () => {
  const file = files.find((f) => f.startsWith('device_vfio-type1'))!;
  await expect(exported(file)).rejects.toThrow(CaseError);
  await expect(exported(file)).rejects.toThrow(
    /^--scenario: vfio-type1-0 is a device model; device ops have no scenario form$/,
  );
});

describe('the command line', () => {
  const run = async (argv: string[]): Promise<{ code: number; out: string; err: string }> => {
    let out = '';
    let err = '';
    const code = await mainAsync(argv, { out: (s) => void (out += s), err: (s) => void (err += s) });
    return { code, out, err };
  };
  const reg = path.join(dir, 'longterm-pin-v5.12-no-longterm-pin-in-movable-7.json');

  it('writes the file and says it ran on the model', async () => {
    const out = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'pinlab-export-')), 'case.yaml');
    const r = await run(['replay', reg, '--scenario', out]);
    expect([r.code, r.err]).toEqual([0, '']);
    expect(r.out).toMatch(/^scenario: wrote .*case\.yaml \(\d+ steps\); on the model it runs to the end/);
    expect(loadScenario(out).steps[0]).toMatchObject({ op: 'spawn', proc: 'user' });
  });

  it.each([
    [['replay', '--seed', '1', '--path', '0', '--scenario', 'x.yaml'], /--scenario needs a regression FILE/],
    [['replay', reg, reg, '--scenario', 'x.yaml'], /--scenario takes one FILE and no --json/],
    [
      ['replay', reg, '--scenario', '/nonexistent-dir/x.yaml'],
      /--scenario: cannot write '\/nonexistent-dir\/x\.yaml': ENOENT/,
    ],
  ])('%j: one line, exit 2', async (argv, msg) => {
    const r = await run(argv as string[]);
    expect(r.code).toBe(2);
    expect(r.err.trimEnd().split('\n')).toHaveLength(1);
    expect(r.err).toMatch(msg);
  });
});

it("a file map (MapSpec.file) exports as open_file and mmap fd:, and the scenario's pin sees the file", async () => {
  const file = 'longterm-pin-v5.12-no-longterm-pin-in-movable-7.json';
  const reg = loadRegression(path.join(dir, file));
  const c = {
    ...reg.case,
    variant: 'v6.12',
    layout: { ...reg.case.layout, maps: reg.case.layout.maps.map((x) => ({ ...x, file: 'shared' as const })) },
  };
  const { result } = await replayFile({ ...reg, case: c }, 'v6.12', undefined, pool);
  const yaml = caseToScenario(c, result, file);
  for (const x of c.layout.maps) {
    expect(yaml).toContain(`{ op: open_file, proc: user, kind: file, len: "${x.pages}p", as: ${x.name}_fd }`);
    expect(yaml).toContain(`fd: ${x.name}_fd, shared: true }`);
  }
  const run = runScenario(file, loadScenario(file, yaml));
  // the case's R/W long-term pin of a shared mapping of a file with writeback: 6.5's -EFAULT
  expect(run.results.find((r) => r.op === 'pin')!.result).toBe('-EFAULT');
});
