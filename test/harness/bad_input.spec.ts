// Bad user input - a flag, a scenario file, a regression file, a kernel command line - is one line on
// stderr and exit code 2, before any work: never a stack trace, an internal error, a hang, memory
// exhaustion, or silent acceptance. One describe per class of input that once broke that rule.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { mainAsync } from '../../harness/cli';
import { loadPlugin } from '../../harness/plugins';
import { SELFTEST_PLUGIN } from '../plugins/selftest';

loadPlugin(SELFTEST_PLUGIN); // selftest:throw

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
beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'pinlab-bad-'));
});
afterAll(() => {
  fs.rmSync(tmp, { recursive: true, force: true });
});

function file(name: string, text: string): string {
  const f = path.join(tmp, name);
  fs.writeFileSync(f, text);
  return f;
}

const MINI = 'mem=1M movablecore=512K sysctl.vm.min_free_kbytes=16';
export const goodCase = {
  layout: { cmdline: MINI, geometry: 'mini', maps: [{ name: 'buf', pages: 8 }] },
  variant: 'v6.12',
  programs: { 'pinner-0': [{ op: 'pin', map: 'buf', page: 0, pages: 1 }] },
  schedule: [],
  faults: {},
};
export const goodFile = {
  suite: 'longterm-pin',
  seed: 1,
  path: '0',
  variant: 'v6.12',
  property: 'pins-balance',
  verdict: 'pass',
  case: goodCase,
};

describe('names looked up in tables: only their own keys name something', () => {
  it.each([
    [['constructor'], /^pinlab: unknown verb 'constructor'/],
    [['toString'], /^pinlab: unknown verb 'toString'/],
    [['__proto__'], /^pinlab: unknown verb '__proto__'/],
    [['run', '--kernel', 'constructor'], /^pinlab: --kernel: unknown kernel variant 'constructor'/],
    [['run', '--kernel', '__proto__'], /^pinlab: --kernel: unknown kernel variant '__proto__'/],
    [['run', '--kernel', 'hasOwnProperty+R3'], /^pinlab: --kernel: unknown kernel variant 'hasOwnProperty'/],
    [['run', '--suite', 'toString'], /^pinlab: --suite: unknown suite 'toString'/],
    [
      ['run', '--suite', 'device:vfio-type1', '--bug', 'constructor'],
      /^pinlab: --bug: vfio-type1 has no bug 'constructor'/,
    ],
    [['replay', '--seed', '1', '--path', '0', '--suite', 'valueOf'], /^pinlab: --suite: unknown suite 'valueOf'/],
    [['scenario', 'x.yaml', '--kernel', 'valueOf'], /^pinlab: --kernel: unknown kernel variant 'valueOf'/],
    [['pin-fraction', '--kernel', 'constructor'], /^pinlab: --kernel: unknown kernel variant 'constructor'/],
  ])('%j', async (argv, re) => {
    await refused(argv as string[], re);
  });

  it.each(['constructor-0', 'valueOf', '__proto__-0', 'hasOwnProperty-1'])(
    'actor %s in a regression file',
    async (name) => {
      const f = file(
        `actor-${name}.json`,
        JSON.stringify({ ...goodFile, case: { ...goodCase, programs: { [name]: [{ op: 'pin' }] } } }),
      );
      await refused(['replay', f], /unknown actor kind/);
    },
  );
});

describe('--regressions: the directory is checked before anything runs', () => {
  it.each([
    [
      'under /proc',
      '/proc/pinlab-no-such-dir/sub',
      /^pinlab: --regressions: cannot create '\/proc\/pinlab-no-such-dir': ENOENT/,
    ],
    ['through a file', 'FILE/sub', /^pinlab: --regressions: '.*afile' is not a directory$/m],
    ['a dangling link', 'LINK', /^pinlab: --regressions: '.*dangling' is a dangling symbolic link$/m],
    ['empty', '', /^pinlab: --regressions: give a directory, or 'none'/],
  ])('%s', async (_name, dir, re) => {
    const f = file('afile', 'x');
    const link = path.join(tmp, 'dangling');
    if (!fs.existsSync(link) && !isLink(link)) fs.symlinkSync(path.join(tmp, 'nowhere', 'x'), link);
    const d = dir.replace('FILE', f).replace('LINK', link);
    for (const verb of [
      ['run', '--runs', '1'],
      ['campaign', '--time', '1'],
    ]) {
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
    const s = await runSuite({
      suite: SUITES['selftest:throw']!,
      variant: 'v6.12',
      seed: 1,
      runs: 1,
      mode: 'det',
      checkDeterminism: false,
      json: false,
      regressionsDir: path.join(file('afile2', 'x'), 'sub'),
      tty: false,
      interrupt: { stopped: false },
      io: { out: (x) => (out += x), err: (x) => (err += x) },
    });
    expect(s.verdict).toBe('fail');
    expect(out).toMatch(/^FAIL actor-threw/m);
    // the case was reduced past fast-check's path (harness/shrink_ops.ts): the search again regenerates it
    expect(out).toMatch(/^replay: pinlab run --suite selftest:throw --kernel v6.12 --seed 1 --runs 1$/m);
    expect(err).toMatch(/^pinlab: the failure was not saved: '.*afile2' is not a directory$/m);
    expect(s.failures[0]!.saveError).toMatch(/not a directory/);
  });
});

function isLink(p: string): boolean {
  try {
    return fs.lstatSync(p).isSymbolicLink();
  } catch {
    return false;
  }
}

describe('--path and integer flags', () => {
  it.each([
    [['run', '--path', 'x', '--runs', '1'], /^pinlab: --path: 'x' is not a fast-check path/],
    [
      ['replay', '--seed', '1', '--path', '99999:99999'],
      /^pinlab: --path: '99999:99999' names no case of suite longterm-pin with seed 1/,
    ],
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
    [
      'mem=1M sysctl.vm.min_free_kbytes=9999999999',
      /^pinlab: sysctl\.vm\.min_free_kbytes: 9999999999 out of range 0\.\.2147483647/,
    ],
  ])('%s', async (cmdline, re) => {
    await refused(['layout', '--geometry', 'mini', '--cmdline', cmdline], re);
  });

  it.each([
    [
      'mem=1M "movablecore=512K',
      /^warning: unterminated quote in 'movablecore=512K': the rest of the command line is one argument/m,
    ],
    [
      'mem=1M sysctl.vm.min_free_kbytes=99999',
      /^warning: sysctl\.vm\.min_free_kbytes=99999 is more than the kernel zones' 1004K of memory: not clamped/m,
    ],
  ])('%s: a warning, as the kernel takes it', async (cmdline, re) => {
    const r = await cli(['layout', '--geometry', 'mini', '--cmdline', cmdline]);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(re);
  });
});

const MACHINE = `machine: { cmdline: ${MINI}, geometry: mini }\n`;

describe('scenario files: the schema refuses them at load, one line naming the field', () => {
  const STEP1 = '  - { op: spawn, proc: a }\n';
  it.each([
    [
      'cyclic alias',
      `${MACHINE}steps:\n  - { op: spawn, proc: a, oom_score_adj: &x [*x] }\n`,
      /: YAML: the alias \*x is inside the node &x names \(cyclic data\)$/,
    ],
    ['%YAML 9.9', `%YAML 9.9\n---\n${MACHINE}steps: []\n`, /: YAML: Unsupported YAML version 9\.9$/],
    ['an unknown tag', `${MACHINE}steps:\n  - { op: spawn, proc: !foo a }\n`, /: YAML: Unresolved tag: !foo$/],
    [
      'an alias bomb',
      `${MACHINE}a: &a [x, x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n` +
        'c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\nsteps: []\n',
      /: YAML: Excessive alias count/,
    ],
    [
      'oom_score_adj NaN',
      `${MACHINE}steps:\n  - { op: spawn, proc: a, oom_score_adj: .nan }\n`,
      /: step 1 \(spawn\): oom_score_adj: expected an oom_score_adj -1000\.\.1000, got NaN$/,
    ],
    [
      'oom_score_adj 1e308',
      `${MACHINE}steps:\n  - { op: spawn, proc: a, oom_score_adj: 1e308 }\n`,
      /: oom_score_adj: expected an oom_score_adj -1000\.\.1000, got 1e\+308$/,
    ],
    [
      'passes -1',
      `${MACHINE}steps:\n  - { op: offline, block: 4, passes: -1 }\n`,
      /: step 1 \(offline\): passes: expected a number of passes 0\.\.10000, got -1$/,
    ],
    [
      'passes 1e12',
      `${MACHINE}steps:\n  - { op: offline, block: 4, passes: 1e12 }\n`,
      /: passes: expected a number of passes 0\.\.10000, got 1000000000000$/,
    ],
    [
      'an expect key +R99',
      `${MACHINE}steps:\n  - { op: zones, expect: { "+R99": 0 } }\n`,
      /: step 1 \(zones\): expect\["\+R99"\]: '\+R99' names no bug switch/,
    ],
    [
      'an expect key v9.9',
      `${MACHINE}steps:\n  - { op: zones, expect_match: { v9.9: x } }\n`,
      /: expect_match\["v9\.9"\]: 'v9\.9' names no kernel: unknown kernel variant/,
    ],
    [
      'an empty expect map',
      `${MACHINE}steps:\n  - { op: zones, expect: {} }\n`,
      /: step 1 \(zones\): expect: expected a number, .* with at least one key, got \{\}$/,
    ],
    [
      'an unknown errno',
      `${MACHINE}steps:\n  - { op: zones, expect: -EBOGUS }\n`,
      /: expect: expected a number, an errno like -ENOMEM, killed or panic, got "-EBOGUS"$/,
    ],
    [
      'a nested quantifier',
      `${MACHINE}steps:\n  - { op: zones, expect_match: "^(.+)+X$" }\n`,
      /: step 1 \(zones\): expect_match: '\(\.\+\)\+' repeats a group that itself repeats/,
    ],
    [
      'a flag written yes',
      `${MACHINE}steps:\n${STEP1}  - { op: mmap, proc: a, len: 8K, shared: yes }\n`,
      /: step 2 \(mmap\): shared: expected true or false, got "yes"$/,
    ],
    [
      'a size beyond 2^53 bytes',
      `${MACHINE}steps:\n${STEP1}  - { op: mmap, proc: a, len: 16E }\n`,
      /: step 2 \(mmap\): len: expected a size like 4K, .*, got "16E"$/,
    ],
    [
      'a process name with a newline',
      `${MACHINE}steps:\n  - { op: spawn, proc: "a\\nb" }\n`,
      /: step 1 \(spawn\): proc: expected a process name like a, qemu or vm-1, got "a\\nb"$/,
    ],
  ])('%s', async (_name, text, re) => {
    const t0 = Date.now();
    await refused(['scenario', file('s.yaml', text)], re);
    expect(Date.now() - t0).toBeLessThan(5000);
  });

  it('a match that slips past the load check is stopped after 500 ms: exit 2 at that step', async () => {
    const t0 = Date.now();
    const f = file('slow.yaml', `${MACHINE}steps:\n  - { op: zones, expect_match: "^(.|.)*Q$" }\n`);
    const r = await cli(['scenario', f]);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(
      /^pinlab: .*: step 1 \(zones\): expect_match \/\^\(\.\|\.\)\*Q\$\/ ran longer than 500 ms on the step's detail/,
    );
    expect(r.err).toMatch(/ \(catastrophic backtracking\)\n$/);
    expect(Date.now() - t0).toBeLessThan(5000);
  });

  it.each(['/dev/zero', os.tmpdir()])('%s is not a scenario file', async (f) => {
    await refused(['scenario', f], /: not a regular file/);
  });
});

describe("sizes far beyond the machine: the kernel's errno, in time and memory proportional to the machine", () => {
  const steps = [
    '{ op: spawn, proc: a }',
    '{ op: mmap, proc: a, as: buf, len: 8K, populate: true }',
    '{ op: madvise, proc: a, addr: buf, len: 1P, advice: dontneed }',
    '{ op: migrate, proc: a, addr: buf, len: 1P }',
    '{ op: pin, proc: a, addr: buf, len: 256G, as: p }',
    '{ op: pin, proc: a, addr: buf, len: 1P, as: q, fast: false }',
    '{ op: pin_max, proc: a, addr: buf, len: 1P, chunk: 1P, as: r }',
    '{ op: munmap, proc: a, addr: buf, len: 1P }',
    '{ op: mprotect, proc: a, addr: buf, len: 1P, prot: r }',
    '{ op: mmap, proc: a, len: 1P }',
    '{ op: read, proc: a, addr: 1P }',
    '{ op: isolate, proc: a, addr: 1P, as: i }',
    '{ op: spawn, proc: b, memlock: 1P }',
  ];
  it('each step returns what the kernel would', async () => {
    const f = file('big.yaml', `${MACHINE}steps:\n${steps.map((s) => `  - ${s}\n`).join('')}`);
    const rss0 = process.memoryUsage().rss;
    const t0 = Date.now();
    const r = await cli(['scenario', f, '--json']);
    expect(Date.now() - t0).toBeLessThan(5000);
    expect(process.memoryUsage().rss - rss0).toBeLessThan(256 << 20);
    expect(r.code).toBe(0);
    const got = JSON.parse(r.out).results.map((x: { op: string; result: string }) => `${x.op} ${x.result}`);
    expect(got).toEqual([
      'spawn 0',
      'mmap 0',
      'madvise -ENOMEM',
      'migrate 0',
      'pin -EFAULT',
      'pin 2',
      'pin_max 0', // io_pin_pages(): a partial pin is no pin (-EFAULT)
      'munmap -EINVAL',
      'mprotect -ENOMEM',
      'mmap -ENOMEM',
      'read -EFAULT',
      'isolate -EFAULT',
      'spawn 0',
    ]);
  });

  it('offline passes are bounded by the schema: 10000 failing passes stay seconds long', async () => {
    const f = file(
      'passes.yaml',
      `${MACHINE}steps:\n  - { op: spawn, proc: a }\n  - { op: mmap, proc: a, as: buf, len: 8K, populate: true }\n` +
        '  - { op: drain }\n  - { op: isolate, proc: a, addr: buf, as: i }\n  - { op: offline, block: 4, passes: 10000, expect: -EINTR }\n',
    );
    const t0 = Date.now();
    const r = await cli(['scenario', f]);
    expect(r.code).toBe(0);
    // buf sits in the lowest ZONE_MOVABLE block (the allocator hands out the lowest pfns first)
    expect(r.out).toMatch(/offline -> -EINTR \(expected -EINTR: ok\) {2}memory4, 10000 passes/);
    expect(Date.now() - t0).toBeLessThan(5000);
  });
});

describe('regression files: every field is checked before anything runs', () => {
  const withCase = (c: object, top: object = {}): object => ({ ...goodFile, ...top, case: { ...goodCase, ...c } });
  const dev = (model: string, ops: object[]): object => ({
    ...goodFile,
    suite: `device:${model}`,
    case: { ...goodCase, programs: { [`${model}-0`]: ops } },
  });
  it.each([
    [
      'an unknown op',
      withCase({ programs: { 'pinner-0': [{ op: 'frob' }] } }),
      /: case\.programs\["pinner-0"\]\[0\]: unknown op "frob" for pinner \(ops: pin, unpin, dma, get\)$/,
    ],
    [
      'a map the case does not make',
      withCase({ programs: { 'pinner-0': [{ op: 'pin', map: 'nope' }] } }),
      /: case\.programs\["pinner-0"\]\[0\]\.map: expected a mapping of the case \(buf\), got "nope"$/,
    ],
    [
      'a negative page',
      withCase({ programs: { 'pinner-0': [{ op: 'pin', map: 'buf', page: -1 }] } }),
      /\]\[0\]\.page: expected a whole number >= 0, got -1$/,
    ],
    [
      'an unknown field',
      withCase({ programs: { 'pinner-0': [{ op: 'pin', map: 'buf', pgae: 1 }] } }),
      /\]\[0\]: unknown key 'pgae' \(fields: map, page, pages/,
    ],
    [
      'a device op naming no mapping',
      dev('vfio-type1', [{ op: 'map_dma', iova: 0, vaddr: { map: 'nope', off: 0 }, size: 4096 }]),
      /: case\.programs\["vfio-type1-0"\]\[0\]\.vaddr: expected a byte address or \{ map, off, byte \} naming a mapping of the case \(buf\)/,
    ],
    [
      'a device op nobody declared',
      dev('vfio-type1', [{ op: 'pin_pages', iova: 0 }]),
      /: unknown op "pin_pages" for vfio-type1 \(ops: map_dma, unmap_dma, dma_write, dma_read, get_info\)$/,
    ],
    [
      'a malformed iovec',
      dev('io_uring-fixed', [{ op: 'register', iovecs: [null] }]),
      /\]\[0\]\.iovecs\[0\]: expected a mapping, got null$/,
    ],
    [
      'a mapping named twice',
      withCase({
        layout: {
          ...goodCase.layout,
          maps: [
            { name: 'buf', pages: 8 },
            { name: 'buf', pages: 2 },
          ],
        },
      }),
      /: case\.layout\.maps\[1\]\.name: mapping 'buf' named twice$/,
    ],
    [
      'a mapping larger than the address space',
      withCase({ layout: { ...goodCase.layout, maps: [{ name: 'buf', pages: 1e9 }] } }),
      /: case\.layout: mmap of buf \(1000000000 pages\) failed: -ENOMEM$/,
    ],
    [
      'a fault point the actor does not have',
      withCase({ faults: { 'pinner-0': { frob: [1] } } }),
      /: case\.faults\["pinner-0"\]\.frob: 'frob' is not a fault point of pinner-0/,
    ],
    [
      'faults of an actor not in the case',
      withCase({ faults: { 'user-0': {} } }),
      /: case\.faults\["user-0"\]: 'user-0' is not an actor of the case/,
    ],
    [
      'a bug switch named constructor',
      {
        ...dev('vfio-type1', []),
        case: { ...goodCase, programs: { 'vfio-type1-0': [] }, bugs: { 'vfio-type1-0': ['constructor'] } },
      },
      /: case\.bugs\["vfio-type1-0"\]\[0\]: expected a bug switch of vfio-type1/,
    ],
    [
      'an actor the suite does not have',
      withCase({ programs: { 'pinner-3': [] } }),
      /: case\.programs\["pinner-3"\]: not an actor of suite longterm-pin/,
    ],
    ['an unknown suite', withCase({}, { suite: 'toString' }), /: suite: unknown suite "toString"/],
    [
      'a property the suite does not check',
      withCase({}, { property: 'frob' }),
      /: property: "frob" is not a property of suite longterm-pin/,
    ],
    [
      'an edited top-level variant',
      withCase({}, { variant: 'v5.12' }),
      /: variant: 'v5\.12' but case\.variant is 'v6\.12': they must agree/,
    ],
    ['a __proto__ key', JSON.parse('{"__proto__": {"suite": "x"}}'), /: top level: unknown key '__proto__'/],
    ['an unknown top-level key', withCase({}, { frob: 1 }), /: top level: unknown key 'frob'/],
  ])('%s', async (_name, doc, re) => {
    const r = await refused(['replay', file('reg.json', JSON.stringify(doc))], re);
    expect(r).not.toMatch(/internal error|at .*\.ts:/);
  });

  it("every suite's generated cases fit the schema (the op tables are complete)", async () => {
    const fc = await import('fast-check');
    const { SUITES } = await import('../../harness/suites');
    const { parseCase } = await import('../../harness/case_schema');
    for (const suite of Object.values(SUITES)) {
      const cases = fc.sample(suite.arbitrary(fc, { variant: 'v6.12' }), { numRuns: 20, seed: 3 });
      for (const cs of cases) expect(() => parseCase(cs)).not.toThrow();
    }
  });
});

describe('several files: every one is checked before the first runs', () => {
  it('scenario A B, B bad: nothing runs', async () => {
    const a = file('a.yaml', `${MACHINE}steps:\n  - { op: zones }\n`);
    const b = file('b.yaml', 'machine: { cmdline: mem=1M bogus=1, geometry: mini }\nsteps: []\n');
    const r = await cli(['scenario', a, b]);
    expect(r.code).toBe(2);
    expect(r.out).toBe('');
    expect(r.err).toMatch(/b\.yaml: machine: unknown kernel parameter 'bogus=1'/);
  });

  it('replay A B, B bad: nothing runs', async () => {
    const a = file('a.json', JSON.stringify(goodFile));
    const b = file('b.json', JSON.stringify({ ...goodFile, seed: 'x' }));
    const r = await cli(['replay', a, b]);
    expect(r.code).toBe(2);
    expect(r.out).toBe('');
  });
});
