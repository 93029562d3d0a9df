import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { main, mainAsync } from '../harness/cli';

function run(argv: string[]): { code: number; out: string; err: string } {
  let out = '';
  let err = '';
  const code = main(argv, { out: (s) => (out += s), err: (s) => (err += s) });
  return { code, out, err };
}

describe('pinlab command line', () => {
  it('layout prints the kernel views of the default machine', () => {
    const r = run(['layout']);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/^Node 0, zone {2}Movable$/m);
    expect(r.out).toMatch(/Movable zone start for each node\n {2}Node 0: 0x0000000020000000/);
    expect(r.out).toMatch(/Free pages count per migrate type at order/);
    expect(r.out).toMatch(/memory\{4\.\.7\} +online +Movable +1/);
  });

  it('layout --json has the kernel field names', () => {
    const r = run(['layout', '--cmdline', 'mem=1G movablecore=512M', '--json']);
    const j = JSON.parse(r.out);
    expect(j.zones.map((z: { name: string }) => z.name)).toEqual(['DMA', 'DMA32', 'Normal', 'Movable', 'Device']);
    for (const k of ['name', 'start_pfn', 'spanned', 'present', 'managed', 'free'])
      expect(j.zones[3]).toHaveProperty(k);
    for (const k of ['index', 'state', 'zone', 'valid_zones', 'removable']) expect(j.blocks[0]).toHaveProperty(k);
    expect(j.blocks[7]).toMatchObject({
      index: 7,
      state: 'online',
      zone: 'Movable',
      valid_zones: 'Movable',
      removable: 1,
    });
  });

  it('warns where the kernel silently ignores a value', () => {
    const r = run(['layout', '--cmdline', 'mem=1G movablecore=4G']);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/^warning: movablecore covers all of memory/m);
  });

  it.each([
    [['layout', '--cmdline', 'mem=1Q'], /^pinlab: mem: bad size '1Q'/],
    [['layout', '--cmdline', 'bogus=1'], /^pinlab: unknown kernel parameter 'bogus=1'/],
    [['layout', '--geometry', 'tiny'], /^pinlab: geometry: unknown preset 'tiny'/],
    [['layout', '--frobnicate'], /^pinlab: layout: Unknown option '--frobnicate'/],
    [['layout', 'extra'], /^pinlab: layout: unexpected argument 'extra'/],
    [['frob'], /^pinlab: unknown verb 'frob'/],
    [['toString'], /^pinlab: unknown verb 'toString'/],
    [['constructor'], /^pinlab: unknown verb 'constructor'/],
  ])('%j is bad input: one line, exit 2', (argv, re) => {
    const r = run(argv as string[]);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(re);
    expect(r.err.trim().split('\n')).toHaveLength(1);
  });

  it('every verb has --help', () => {
    expect(run(['--help']).out).toMatch(/usage: pinlab <verb>/);
    expect(run(['layout', '--help']).out).toMatch(/usage: pinlab layout/);
  });

  it('the installed bin runs with exit code 2 and no stack trace on bad input', () => {
    const bin = path.join(__dirname, '..', 'bin', 'pinlab.js');
    const r = spawnSync(process.execPath, [bin, 'layout', '--cmdline', 'kernelcore=x'], { encoding: 'utf8' });
    expect(r.status).toBe(2);
    expect(r.stderr).toBe(
      "pinlab: kernelcore: bad size 'x' (expected a number with an optional K, M, G, T, P or E suffix)\n",
    );
  });

  it.each(['toString', 'hasOwnProperty'])(
    'a name of Object.prototype (%s) is an unknown verb, not a crash',
    async (verb) => {
      let err = '';
      const code = await mainAsync([verb], { out: () => undefined, err: (s) => (err += s) });
      expect(code).toBe(2);
      expect(err).toMatch(new RegExp(`^pinlab: unknown verb '${verb}'`));
    },
  );
});
