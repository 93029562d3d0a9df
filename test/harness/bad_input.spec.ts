// Bad user input - a flag, a scenario file, a regression file, a kernel command line - is one line on
// stderr and exit code 2, before any work: never a stack trace, an internal error, a hang, memory
// exhaustion, or silent acceptance. One describe per class of input that once broke that rule.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { mainAsync } from '../../harness/cli';

export async function cli(argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await mainAsync(argv, { out: (s) => (out += s), err: (s) => (err += s) });
  return { code, out, err };
}

/** Exit 2, exactly one line on stderr matching re. */
async function refused(argv: string[], re: RegExp): Promise<string> {
  const r = await cli(argv);
  expect({ code: r.code, err: r.err.replace(/\n$/, '') }).toEqual({ code: 2, err: expect.stringMatching(re) });
  expect(r.err.endsWith('\n') && r.err.split('\n').length === 2).toBe(true);
  return r.err;
}

let tmp: string;
beforeAll(() => { tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'pinlab-bad-')); });
afterAll(() => { fs.rmSync(tmp, { recursive: true, force: true }); });

function file(name: string, text: string): string {
  const f = path.join(tmp, name);
  fs.writeFileSync(f, text);
  return f;
}

const MINI = 'mem=1M movablecore=512K sysctl.vm.min_free_kbytes=16';
export const goodCase = {
  layout: { cmdline: MINI, geometry: 'mini', maps: [{ name: 'buf', pages: 8 }] },
  variant: 'v6.12', programs: { 'pinner-0': [{ op: 'pin', map: 'buf', page: 0, pages: 1 }] }, schedule: [], faults: {},
};
export const goodFile = { suite: 'longterm-pin', seed: 1, path: '0', variant: 'v6.12', property: 'pins-balance', verdict: 'pass', case: goodCase };

describe('names looked up in tables: only their own keys name something', () => {
  it.each([
    [['constructor'], /^pinlab: unknown verb 'constructor'/],
    [['toString'], /^pinlab: unknown verb 'toString'/],
    [['__proto__'], /^pinlab: unknown verb '__proto__'/],
    [['run', '--kernel', 'constructor'], /^pinlab: --kernel: unknown kernel variant 'constructor'/],
    [['run', '--kernel', '__proto__'], /^pinlab: --kernel: unknown kernel variant '__proto__'/],
    [['run', '--kernel', 'hasOwnProperty+R3'], /^pinlab: --kernel: unknown kernel variant 'hasOwnProperty'/],
    [['run', '--suite', 'toString'], /^pinlab: --suite: unknown suite 'toString'/],
    [['run', '--suite', 'device:vfio-type1', '--bug', 'constructor'], /^pinlab: --bug: vfio-type1 has no bug 'constructor'/],
    [['replay', '--seed', '1', '--path', '0', '--suite', 'valueOf'], /^pinlab: --suite: unknown suite 'valueOf'/],
    [['scenario', 'x.yaml', '--kernel', 'valueOf'], /^pinlab: --kernel: unknown kernel variant 'valueOf'/],
    [['pin-fraction', '--kernel', 'constructor'], /^pinlab: --kernel: unknown kernel variant 'constructor'/],
  ])('%j', async (argv, re) => {
    await refused(argv as string[], re);
  });

  it.each(['constructor-0', 'valueOf', '__proto__-0', 'hasOwnProperty-1'])('actor %s in a regression file', async (name) => {
    const f = file(`actor-${name}.json`, JSON.stringify({ ...goodFile, case: { ...goodCase, programs: { [name]: [{ op: 'pin' }] } } }));
    await refused(['replay', f], /unknown actor kind/);
  });
});

describe('--regressions: the directory is checked before anything runs', () => {
  it.each([
    ['under /proc', '/proc/pinlab-no-such-dir/sub', /^pinlab: --regressions: cannot create '\/proc\/pinlab-no-such-dir': ENOENT/],
    ['through a file', 'FILE/sub', /^pinlab: --regressions: '.*afile' is not a directory$/m],
    ['a dangling link', 'LINK', /^pinlab: --regressions: '.*dangling' is a dangling symbolic link$/m],
    ['empty', '', /^pinlab: --regressions: give a directory, or 'none'/],
  ])('%s', async (_name, dir, re) => {
    const f = file('afile', 'x');
    const link = path.join(tmp, 'dangling');
    if (!fs.existsSync(link) && !isLink(link)) fs.symlinkSync(path.join(tmp, 'nowhere', 'x'), link);
    const d = dir.replace('FILE', f).replace('LINK', link);
    for (const verb of [['run', '--runs', '1'], ['campaign', '--time', '1']]) {
      const t0 = Date.now();
      await refused([...verb, '--regressions', d], re);
      expect(Date.now() - t0).toBeLessThan(5000);
    }
    expect((await cli(['run', '--runs', '1', '--regressions', d])).out).toBe(''); // nothing ran
  });

  it('a failure that cannot be saved is still printed with its replay line, and a note says so', async () => {
    const { runSuite } = await import('../../harness/runner');
    const { SUITES } = await import('../../harness/suites');
    let out = '';
    let err = '';
    const s = await runSuite({ suite: SUITES['selftest:throw']!, variant: 'v6.12', seed: 1, runs: 1, mode: 'det', checkDeterminism: false, json: false,
      regressionsDir: path.join(file('afile2', 'x'), 'sub'), tty: false, interrupt: { stopped: false }, io: { out: (x) => (out += x), err: (x) => (err += x) } });
    expect(s.verdict).toBe('fail');
    expect(out).toMatch(/^FAIL actor-threw/m);
    expect(out).toMatch(/^replay: pinlab replay --suite selftest:throw --kernel v6.12 --seed 1 --path "\d[\d:]*"$/m);
    expect(err).toMatch(/^pinlab: the failure was not saved: '.*afile2' is not a directory$/m);
    expect(s.failures[0]!.saveError).toMatch(/not a directory/);
  });
});

function isLink(p: string): boolean {
  try { return fs.lstatSync(p).isSymbolicLink(); } catch { return false; }
}

describe('--path and integer flags', () => {
  it.each([
    [['run', '--path', 'x', '--runs', '1'], /^pinlab: --path: 'x' is not a fast-check path/],
    [['replay', '--seed', '1', '--path', '99999:99999'], /^pinlab: --path: '99999:99999' names no case of suite longterm-pin with seed 1/],
    [['replay', '--seed', '1', '--path', '2000000'], /^pinlab: --path: '2000000' starts past case 1000000/],
    [['run', '--runs', '1e3'], /^pinlab: --runs: '1e3' is not an integer 1\.\.2147483647$/],
    [['pin-fraction', '--chunk', '1e3'], /^pinlab: --chunk: '1e3' is not an integer 1\.\.2147483647$/],
    [['pin-fraction', '--kernelcore', '10,1e1'], /^pinlab: --kernelcore: '1e1' is not an integer 1\.\.99$/],
    [['run', '--seed', '4294967296'], /^pinlab: --seed: '4294967296' is not an integer -2147483648\.\.2147483647$/],
    [['run', '--timeout', ' 5'], /^pinlab: --timeout: ' 5' is not an integer/],
    [['campaign', '--time', '9999999'], /^pinlab: --time: '9999999' is not an integer 1\.\.1000000$/],
    [['replay', 'f.json', '--bug', 'x'], /^pinlab: replay: --bug does not go with a FILE/],
  ])('%j', async (argv, re) => {
    await refused(argv as string[], re);
  });
});

describe('kernel command lines', () => {
  it.each([
    ['mem=1M "', /^pinlab: an empty argument in the command line \(a lone '"'\)/],
    ['mem=1M sysctl.vm.min_free_kbytes=9999999999', /^pinlab: sysctl\.vm\.min_free_kbytes: 9999999999 out of range 0\.\.2147483647/],
  ])('%s', async (cmdline, re) => {
    await refused(['layout', '--geometry', 'mini', '--cmdline', cmdline], re);
  });

  it.each([
    ['mem=1M "movablecore=512K', /^warning: unterminated quote in 'movablecore=512K': the rest of the command line is one argument/m],
    ['mem=1M sysctl.vm.min_free_kbytes=99999', /^warning: sysctl\.vm\.min_free_kbytes=99999 is more than the kernel zones' 1004K of memory: not clamped/m],
  ])('%s: a warning, as the kernel takes it', async (cmdline, re) => {
    const r = await cli(['layout', '--geometry', 'mini', '--cmdline', cmdline]);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(re);
  });
});
