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

it("longterm-pin-move's ops export: the hugetlb and shared mappings, the pins of them, move_pages, mprotect, mlock, cma_alloc()", async () => {
  const reg = loadRegression(path.join(dir, 'longterm-pin-move-v6.12-shmem-truncate-frozen.json'));
  const c = {
    ...reg.case,
    layout: {
      ...reg.case.layout,
      cmdline: 'mem=1M movablecore=512K cma=128K@256K sysctl.vm.min_free_kbytes=16 hugepages=2',
    },
    schedule: [],
    programs: {
      'user-0': [
        { op: 'hugetlb', page: 9, write: true, value: 5 },
        { op: 'shared', page: 2, write: false, locked: true },
        { op: 'move_pages', map: 'buf', page: 0, pages: 2, to: 'kernel', of: 'shared' },
        { op: 'mprotect', map: 'buf', page: 4, pages: 2, write: false },
        { op: 'mlock', map: 'buf', page: 0, pages: 1, how: 'onfault', of: 'map' },
        { op: 'migrate_to_device', map: 'ring', page: 0, pages: 1 },
      ],
      'pinner-0': [
        { op: 'pin', map: 'buf', page: 1, pages: 2, fast: false, of: 'hugetlb' },
        { op: 'pin', map: 'buf', page: 0, pages: 1, fast: true, write: false, of: 'shared' },
      ],
      'cma-0': [
        { op: 'alloc', block: 0 },
        { op: 'isolate', block: 0 },
        { op: 'release', slot: 0 },
        { op: 'isolate', block: 0 },
      ],
    },
  };
  const { result } = await replayFile({ ...reg, case: c }, undefined, undefined, pool);
  const yaml = caseToScenario(c, result, 'move');
  for (const step of [
    '{ op: mmap, proc: user, as: hugetlb, len: "8p", hugetlb: true }',
    '{ op: write, proc: user, addr: hugetlb+4K, value: 5 }',
    '{ op: mmap, proc: user, as: shared, len: "8p", shared: true }',
    '{ op: mlock, proc: user, addr: shared, len: "8p" }',
    '{ op: read, proc: user, addr: shared+8K }',
    '{ op: migrate, proc: user, addr: shared, len: "2p", to: kernel }',
    '{ op: mprotect, proc: user, addr: buf+16K, len: "2p", prot: r }',
    '{ op: mlock, proc: user, addr: buf, len: "1p", onfault: true }',
    '# migrate_to_device: no device-coherent memory',
    '{ op: pin, proc: user, addr: hugetlb+4K, len: "2p", as: p1, fast: false }',
    '{ op: pin, proc: user, addr: shared, len: "1p", as: p2, fast: true, write: false }',
    '{ op: alloc_contig_range, block: 2, as: cma2 }',
    '# isolate memory2: the agent holds it or its slots are full (-EBUSY)',
    '{ op: free_contig_range, as: cma2 }',
    '{ op: isolate_range, block: 2, as: cma2_2 }',
  ])
    expect(yaml).toContain(step);
  const run = runScenario('move', loadScenario('move', yaml));
  // both pins as in the replay: the hugetlb folio and the shmem page migrated out of ZONE_MOVABLE first
  const pins = run.results.filter((r) => r.op === 'pin');
  expect(run.results.filter((r) => r.op.endsWith('_range')).map((r) => r.result)).toEqual(['0', '0', '0']);
  expect(pins.map((r) => r.result)).toEqual(['2', '1']);
  expect(pins[0]!.detail).toMatch(/2 pinned \(Normal 2\); 8 migrated/);
  expect(pins[1]!.detail).toMatch(/1 pinned \(Normal 1\)/);
  expect(result.actors.find((a) => a?.name === 'pinner-0')!.ops.map((o) => o.rc)).toEqual([2, 1]);
});
