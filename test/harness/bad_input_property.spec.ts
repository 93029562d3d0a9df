// Property: whatever the user gives pinlab - a command line, a scenario file, a regression file - it
// ends with exit 0/1 and a report, or exit 2 and exactly one line on stderr; never an internal error, a
// stack trace, a process warning or more than a few seconds. Inputs are generated as mutations of valid
// ones (wrong types, unknown keys, huge numbers, prototype names, cyclic aliases, bad YAML); where a
// mutation is certainly bad input (an unknown key, a name like `constructor`, `1e3` for an integer) the
// property also demands exit 2, so input that is silently accepted fails it too. The CLI runs in-process
// through mainAsync() with a captured Io; a few real processes check what only a process shows.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import * as fc from 'fast-check';
import { stringify } from 'yaml';
import { mainAsync } from '../../harness/cli';

const MINI = 'mem=1M movablecore=512K sysctl.vm.min_free_kbytes=16';
const NASTY = [
  'constructor',
  '__proto__',
  'toString',
  'valueOf',
  'hasOwnProperty',
  'hasOwnProperty+R3',
  'v6.12+constructor',
  '',
];
const BAD_INTS = ['1e3', '-1', 'x', '', ' 5', '0x10', '99999999999999999999', 'NaN', '1.5'];

let tmp: string;
let aFile: string;
let dangling: string;
const warnings: string[] = [];
const onWarning = (w: Error): void => {
  warnings.push(`${w.name}: ${w.message}`);
};
beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'pinlab-prop-'));
  aFile = path.join(tmp, 'a-file');
  fs.writeFileSync(aFile, 'x');
  dangling = path.join(tmp, 'dangling');
  fs.symlinkSync(path.join(tmp, 'nowhere', 'x'), dangling);
  process.on('warning', onWarning);
});
afterAll(() => {
  process.off('warning', onWarning);
  fs.rmSync(tmp, { recursive: true, force: true });
});

let seq = 0;
function file(ext: string, text: string): string {
  const f = path.join(tmp, `in-${seq++}.${ext}`);
  fs.writeFileSync(f, text);
  return f;
}

/** One input: argv, and whether it is certainly bad input (true: exit 2 required; null: either). */
interface Input {
  argv: string[];
  bad: boolean | null;
}

const MAX_MS = 10_000;

async function check(input: Input): Promise<void> {
  let out = '';
  let err = '';
  const t0 = Date.now();
  const code = await mainAsync(input.argv, { out: (s) => (out += s), err: (s) => (err += s) });
  const ms = Date.now() - t0;
  const what = `${JSON.stringify(input.argv)} -> exit ${code} in ${ms} ms\nstderr: ${err}\nstdout: ${out.slice(0, 400)}`;
  expect({ what, internal: /internal error/.test(err + out) }).toEqual({ what, internal: false });
  expect({ what, trace: /\n\s+at \S+ \(|Error: .*\n\s+at /.test(err + out) }).toEqual({ what, trace: false });
  expect({ what, warnings }).toEqual({ what, warnings: [] });
  expect({ what, slow: ms > MAX_MS }).toEqual({ what, slow: false });
  if (code === 2) {
    expect({ what, oneLine: /^pinlab: [^\n]+\n$/.test(err) }).toEqual({ what, oneLine: true });
  } else {
    expect({ what, code: [0, 1].includes(code), report: out.length > 0 }).toEqual({ what, code: true, report: true });
  }
  if (input.bad === true) expect({ what, code }).toEqual({ what, code: 2 });
  if (input.bad === false) expect({ what, code: code !== 2 }).toEqual({ what, code: true });
}

// ---------------------------------------------------------------------------------------------
// Command lines

const CHEAP_RUN = ['--runs', '1', '--timeout', '3000', '--regressions', 'none'];
const badFlag = (name: string, values: readonly string[]) => fc.constantFrom(...values).map((v) => [name, v]);

function commandLines(): fc.Arbitrary<Input> {
  const seed = fc.integer({ min: 0, max: 1000 }).map(String);
  const regsDir = () => fc.constantFrom('', '/proc/pinlab-no-dir/x', path.join(aFile, 'sub'), dangling);
  const runPoison = fc.oneof(
    badFlag('--kernel', NASTY),
    badFlag('--suite', NASTY),
    badFlag('--runs', BAD_INTS),
    badFlag('--seed', BAD_INTS),
    badFlag('--timeout', BAD_INTS),
    badFlag('--path', ['x', '99999:99999', '0:99999', 'a:b', '1e3', '2000000']),
    badFlag('--cmdline', [
      'mem=1M "',
      'mem=1T',
      `${MINI} sysctl.vm.min_free_kbytes=9999999999`,
      'bogus=1',
      'constructor',
    ]),
    badFlag('--mode', NASTY),
    badFlag('--property', NASTY.filter(Boolean)),
    badFlag('--machines', NASTY),
    regsDir().map((d) => ['--regressions', d]),
    fc.constantFrom(['--suite', 'device:vfio-type1', '--bug', 'constructor'], ['--frobnicate'], ['extra-argument']),
  );
  const runValid = fc.constantFrom(
    [],
    ['--kernel', 'v5.12'],
    ['--path', '0'],
    ['--mode', 'free'],
    ['--suite', 'device:example-pinbuf'],
    ['--machines', 'fixed', '--no-swarm'],
    ['--cmdline', MINI],
    ['--property', 'pins-balance'],
    ['--json'],
  );
  const run = fc
    .tuple(
      seed,
      fc.oneof(
        runPoison.map((p) => ({ p, bad: true })),
        runValid.map((p) => ({ p, bad: false })),
      ),
    )
    .map(([s, { p, bad }]): Input => ({ argv: ['run', '--seed', s, ...CHEAP_RUN, ...p], bad }));
  const replay = fc
    .tuple(
      seed,
      fc.oneof(
        badFlag('--suite', NASTY),
        badFlag('--kernel', NASTY),
        badFlag('--path', ['x', '99999:99999', '0:99999']),
        badFlag('--seed', BAD_INTS),
        badFlag('--cmdline', ['mem=1M "', 'bogus=1']),
      ),
    )
    .map(([s, p]): Input => ({ argv: ['replay', '--seed', s, '--path', '0', '--timeout', '3000', ...p], bad: true }));
  const campaign = fc
    .oneof(
      badFlag('--time', ['1e3', '0', '9999999', 'x']),
      badFlag('--kernel', NASTY),
      badFlag('--runs', BAD_INTS),
      regsDir().map((d) => ['--regressions', d]),
    )
    .map((p): Input => ({
      argv: ['campaign', '--runs', '1', '--time', '1', '--regressions', 'none', ...p],
      bad: true,
    }));
  const pinFraction = fc
    .oneof(
      fc
        .oneof(
          badFlag('--chunk', BAD_INTS),
          badFlag('--kernelcore', ['10,1e1', '0', '100', 'x', '']),
          badFlag('--share', ['1e-1', '2', '0', 'x', '']),
          badFlag('--kernel', NASTY),
        )
        .map((p) => ({ p, bad: true })),
      fc.constant({ p: [] as string[], bad: false }),
    )
    .map(({ p, bad }): Input => ({
      argv: ['pin-fraction', '--cmdline', 'mem=4M', '--geometry', 'mini', '--kernelcore', '50', '--chunk', '64', ...p],
      bad,
    }));
  const layout = fc.oneof(
    fc
      .constantFrom(
        'mem=1M "',
        'mem=1T',
        'mem=1M sysctl.vm.min_free_kbytes=9999999999',
        'bogus=1',
        'mem=1M kernelcore=constructor',
      )
      .map((c): Input => ({ argv: ['layout', '--geometry', 'mini', '--cmdline', c], bad: true })),
    fc
      .constantFrom(MINI, 'mem=1M "movablecore=512K', 'mem=1M sysctl.vm.min_free_kbytes=99999', 'mem=1M movablecore=4M')
      .map((c): Input => ({ argv: ['layout', '--geometry', 'mini', '--cmdline', c], bad: false })),
    fc.constantFrom(...NASTY).map((g): Input => ({ argv: ['layout', '--geometry', `mini,${g}`], bad: true })),
  );
  const verbs = fc.oneof(
    fc.constantFrom(...NASTY.filter(Boolean)).map((v): Input => ({ argv: [v], bad: true })),
    fc
      .constantFrom(['variants'], ['variants', '--json'], ['--help'], ['run', '--help'])
      .map((argv): Input => ({ argv: [...argv], bad: false })),
    fc
      .constantFrom(['variants', 'x'], ['scenario'], ['replay'], ['scenario', '--kernel', 'constructor', 'x.yaml'])
      .map((argv): Input => ({ argv: [...argv], bad: true })),
  );
  return fc.oneof(
    { weight: 3, arbitrary: run },
    replay,
    campaign,
    pinFraction,
    { weight: 2, arbitrary: layout },
    { weight: 2, arbitrary: verbs },
  );
}

// ---------------------------------------------------------------------------------------------
// Documents: mutations of valid ones

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

const NASTY_VALUES: Json[] = [
  null,
  true,
  false,
  0,
  -1,
  1.5,
  1e12,
  1e308,
  '1P',
  '256G',
  '16E',
  'constructor',
  '__proto__',
  '',
  'x'.repeat(300),
  '(.+)+X',
  '^(a|a)*Q$',
  {},
  [],
  { constructor: 1 },
  [[[]]],
  'a\nb',
  -0.5,
];

/** Every path to a value in doc. */
function paths(doc: Json, at: (string | number)[] = []): (string | number)[][] {
  const out: (string | number)[][] = at.length ? [at] : [];
  if (Array.isArray(doc)) doc.forEach((v, i) => out.push(...paths(v, [...at, i])));
  else if (doc && typeof doc === 'object') for (const [k, v] of Object.entries(doc)) out.push(...paths(v, [...at, k]));
  return out;
}

function objectPaths(doc: Json, at: (string | number)[] = []): (string | number)[][] {
  const out: (string | number)[][] = [];
  if (Array.isArray(doc)) doc.forEach((v, i) => out.push(...objectPaths(v, [...at, i])));
  else if (doc && typeof doc === 'object') {
    out.push(at);
    for (const [k, v] of Object.entries(doc)) out.push(...objectPaths(v, [...at, k]));
  }
  return out;
}

function edit(
  doc: Json,
  p: (string | number)[],
  fn: (parent: Record<string | number, Json>, key: string | number) => void,
): Json {
  const copy = JSON.parse(JSON.stringify(doc)) as Json;
  let v = copy as Record<string | number, Json>;
  for (const k of p.slice(0, -1)) v = v[k] as Record<string | number, Json>;
  fn(v, p[p.length - 1]!);
  return copy;
}

const SIZED = ['len', 'size', 'passes', 'oom_score_adj', 'value', 'block', 'pages', 'page', 'iova'];
const HUGE: Json[] = ['1P', '256G', '16E', 1e12, -1, 1e308, 0.5, '4097'];
const PROTO_KEYS = ['constructor', '__proto__', 'toString', 'valueOf', 'frob'];

/** doc with an own key k (even '__proto__') holding v in the object at p. */
function withKey(doc: Json, p: (string | number)[], k: string, v: Json): Json {
  const define = (o: object): void => {
    Object.defineProperty(o, k, { value: v, enumerable: true, writable: true });
  };
  if (p.length) return edit(doc, [...p, k], (o) => define(o));
  const copy = JSON.parse(JSON.stringify(doc)) as object;
  define(copy);
  return copy as Json;
}

/** A mutation of a valid document; bad: true when the result is certainly bad input. */
function mutated(valid: Json, extraBad: Json[] = []): fc.Arbitrary<{ doc: Json; bad: boolean | null }> {
  const all = paths(valid);
  const objs = objectPaths(valid);
  // sizes and counts: where 1P or 1e12 once hung, threw a RangeError or ate the heap
  const sized = all.filter((p) => SIZED.includes(String(p[p.length - 1])));
  const set = (p: (string | number)[], v: Json): Json =>
    edit(valid, p, (o, k) => {
      o[k] = v;
    });
  const drop = (p: (string | number)[]): Json =>
    edit(valid, p, (o, k) => {
      if (Array.isArray(o)) o.splice(k as number, 1);
      else delete o[k];
    });
  return fc.oneof(
    {
      weight: 4,
      arbitrary: fc
        .tuple(fc.constantFrom(...all), fc.constantFrom(...NASTY_VALUES, ...extraBad))
        .map(([p, v]) => ({ doc: set(p, v), bad: null })),
    },
    // every object of these documents is closed (or keyed by kernels, actors, fault points): an extra key is bad
    {
      weight: 2,
      arbitrary: fc
        .tuple(fc.constantFrom(...objs), fc.constantFrom(...PROTO_KEYS), fc.constantFrom(...NASTY_VALUES))
        .map(([p, k, v]) => ({ doc: withKey(valid, p, k, v), bad: true })),
    },
    { weight: 1, arbitrary: fc.constantFrom(...all).map((p) => ({ doc: drop(p), bad: null })) },
    {
      weight: 2,
      arbitrary: fc
        .tuple(fc.constantFrom(...sized), fc.constantFrom(...HUGE))
        .map(([p, v]) => ({ doc: set(p, v), bad: null })),
    },
    { weight: 1, arbitrary: fc.constant({ doc: valid, bad: false }) },
  );
}

const SCENARIO: Json = {
  machine: { cmdline: MINI, geometry: 'mini' },
  kernels: ['v6.12', 'v5.12'],
  steps: [
    { op: 'spawn', proc: 'a', oom_score_adj: 100 },
    { op: 'mmap', proc: 'a', as: 'buf', len: '8K', populate: true },
    { op: 'touch', proc: 'a', addr: 'buf', value: 3 },
    { op: 'pin', proc: 'a', addr: 'buf', len: '8K', as: 'p', expect: 2 },
    { op: 'madvise', proc: 'a', addr: 'buf', advice: 'dontneed' },
    { op: 'migrate', proc: 'a', addr: 'buf', to: 'kernel' },
    { op: 'unpin', pin: 'p' },
    { op: 'offline', block: 7, passes: 3 },
    { op: 'vmstat', expect_match: 'nr_foll_pin_acquired (\\d+)' },
    { op: 'zones', expect: { 'v5.12': 0, '+R3': 0, default: 0 } },
  ],
};

/** YAML text of a document, sometimes broken at the text level in ways that are certainly bad. */
function scenarioText(): fc.Arbitrary<{ text: string; bad: boolean | null }> {
  const doc = mutated(SCENARIO).map(({ doc: d, bad }) => ({ text: stringify(d), bad }));
  const textual = fc
    .tuple(doc, fc.constantFrom('version', 'tag', 'cycle', 'truncate', 'json'))
    .map(([{ text, bad }, how]) => {
      switch (how) {
        case 'version':
          return { text: `%YAML 9.9\n---\n${text}`, bad: true };
        case 'tag':
          return { text: text.replace(/proc: a/, 'proc: !foo a'), bad: /proc: a/.test(text) ? true : bad };
        case 'cycle':
          return { text: text.replace(/passes: \d+/, 'passes: &x [*x]'), bad: /passes: \d+/.test(text) ? true : bad };
        case 'truncate':
          return { text: text.slice(0, Math.floor(text.length / 2)), bad: null };
        default:
          return { text: JSON.stringify(SCENARIO), bad: false };
      }
    });
  return fc.oneof({ weight: 3, arbitrary: doc }, textual);
}

const CASE: Json = {
  layout: { cmdline: MINI, geometry: 'mini', maps: [{ name: 'buf', pages: 8 }] },
  variant: 'v6.12',
  programs: {
    'user-0': [{ op: 'touch', map: 'buf', page: 1, write: true }],
    'pinner-0': [{ op: 'pin', map: 'buf', page: 0, pages: 2 }],
  },
  schedule: [0, 1],
  faults: { 'pinner-0': { 'migrate:isolate': [0] } },
};
const REGRESSION: Json = {
  suite: 'longterm-pin',
  seed: 1,
  path: '0',
  variant: 'v6.12',
  property: 'pins-balance',
  verdict: 'pass',
  case: CASE,
};
const DEVICE_REGRESSION: Json = {
  suite: 'device:vfio-type1',
  seed: 2,
  path: '0',
  variant: 'v6.12',
  property: 'dma-integrity',
  verdict: 'pass',
  case: {
    layout: { cmdline: MINI, geometry: 'mini', maps: [{ name: 'buf', pages: 8 }] },
    variant: 'v6.12',
    programs: {
      'vfio-type1-0': [
        { op: 'map_dma', iova: 0, vaddr: { map: 'buf', off: 0 }, size: 8192, read: true, write: true },
        { op: 'dma_write', iova: 0, value: 5 },
      ],
    },
    schedule: [],
    faults: {},
    bugs: { 'vfio-type1-0': ['no-longterm'] },
  },
};

function regressionText(): fc.Arbitrary<{ text: string; bad: boolean | null }> {
  const doc = fc
    .oneof(mutated(REGRESSION, ['v5.12', 'pinner-7', 'device:vfio-type1']), mutated(DEVICE_REGRESSION, ['v5.12']))
    .map(({ doc: d, bad }) => ({ text: JSON.stringify(d), bad }));
  const renamed = fc
    .tuple(fc.constantFrom('constructor-0', 'valueOf', '__proto__-0', 'toString-1'), fc.constantFrom('actor', 'op'))
    .map(([name, where]) => ({
      text: JSON.stringify(
        where === 'actor'
          ? {
              ...(REGRESSION as object),
              case: { ...(CASE as object), programs: { [name]: [{ op: 'pin', map: 'buf' }] } },
            }
          : { ...(REGRESSION as object), case: { ...(CASE as object), programs: { 'pinner-0': [{ op: name }] } } },
      ),
      bad: true,
    }));
  const truncated = doc.map(({ text }) => ({ text: text.slice(0, Math.floor(text.length / 2)), bad: true }));
  // an edited top-level variant (the header would name one kernel while the case runs another)
  const variant = fc
    .constantFrom('v5.12', 'v6.12+R3', 'v6.1')
    .map((v) => ({ text: JSON.stringify({ ...(REGRESSION as object), variant: v }), bad: true }));
  return fc.oneof({ weight: 4, arbitrary: doc }, renamed, truncated, variant);
}

// ---------------------------------------------------------------------------------------------

const SETTINGS = { interruptAfterTimeLimit: 40_000, markInterruptAsFailure: false };

describe('bad input, any shape of it: exit 0/1 with a report, or exit 2 with one line; never a crash, a hang or silence', () => {
  it('command lines', async () => {
    await fc.assert(fc.asyncProperty(commandLines(), check), { numRuns: 40, ...SETTINGS });
  }, 120_000);

  it('scenario documents', async () => {
    const flags = fc.constantFrom<string[]>([], ['--json'], ['--kernel', 'v6.12+R3']);
    await fc.assert(
      fc.asyncProperty(scenarioText(), flags, async ({ text, bad }, f) => {
        await check({ argv: ['scenario', file('yaml', text), ...f], bad });
      }),
      { numRuns: 150, ...SETTINGS },
    );
  }, 120_000);

  it('regression documents', async () => {
    await fc.assert(
      fc.asyncProperty(regressionText(), async ({ text, bad }) => {
        await check({ argv: ['replay', file('json', text), '--timeout', '3000'], bad });
      }),
      { numRuns: 50, ...SETTINGS },
    );
  }, 120_000);
});

describe('the installed bin: what only a real process shows (a warning printed by Node, a stack trace, a hang)', () => {
  const bin = path.join(__dirname, '..', '..', 'bin', 'pinlab.js');
  it.each([
    ['scenario', 'YAML'],
    ['scenario', 'CYCLE'],
    ['run', '--kernel', 'constructor'],
    ['run', '--runs', '1', '--regressions', '/proc/pinlab-no-dir/x'],
    ['replay', '--seed', '1', '--path', '99999:99999'],
    ['campaign', '--time', '99999999'],
  ])('%s %s', (...argv) => {
    const args = argv.map((a) =>
      a === 'YAML'
        ? file('yaml', `%YAML 9.9\n---\nmachine: { cmdline: ${MINI} }\nsteps: []\n`)
        : a === 'CYCLE'
          ? file('yaml', `machine: { cmdline: ${MINI} }\nsteps:\n  - { op: spawn, proc: a, oom_score_adj: &x [*x] }\n`)
          : a,
    );
    const r = spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8', timeout: 30_000 });
    expect({ signal: r.signal, status: r.status }).toEqual({ signal: null, status: 2 });
    expect(r.stderr).toMatch(/^pinlab: [^\n]+\n$/);
    expect(r.stdout).toBe('');
  });
});
