// `pinlab run` and `pinlab replay` on the command line: bad input is one line and exit 2; a failure is
// printed, saved atomically and replayed exactly; the installed bin exits on its own (no orphan
// threads) after a broken run, and Ctrl-C stops a run cleanly.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawn, spawnSync } from 'node:child_process';
import { mainAsync } from '../../harness/cli';
import { runSuite, replayLine } from '../../harness/runner';
import { KERNEL_MUTATIONS, mutationConfig } from '../../harness/mutations';
import { SELFTEST_PLUGIN } from '../plugins/selftest';

async function run(argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await mainAsync(argv, { out: (s) => (out += s), err: (s) => (err += s) });
  return { code, out, err };
}

let tmp: string;
beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'pinlab-run-'));
});
afterAll(() => {
  fs.rmSync(tmp, { recursive: true, force: true });
});

function writeJson(name: string, doc: unknown): string {
  const f = path.join(tmp, name);
  fs.writeFileSync(f, typeof doc === 'string' ? doc : JSON.stringify(doc));
  return f;
}

const goodCase = {
  layout: {
    cmdline: 'mem=1M movablecore=512K sysctl.vm.min_free_kbytes=16',
    geometry: 'mini',
    maps: [{ name: 'buf', pages: 8 }],
  },
  variant: 'v6.12',
  programs: { 'pinner-0': [{ op: 'pin', map: 'buf', page: 0, pages: 1 }] },
  schedule: [],
  faults: {},
};
const goodFile = {
  suite: 'longterm-pin',
  seed: 1,
  path: '0',
  variant: 'v6.12',
  property: 'pins-balance',
  verdict: 'pass',
  case: goodCase,
};

describe('bad input: one line on stderr, exit 2', () => {
  it.each([
    [
      ['run', '--suite', 'nope'],
      /^pinlab: --suite: unknown suite 'nope' \(suites: longterm-pin, longterm-pin-4, device:/,
    ],
    [['run', '--kernel', 'v9.9'], /^pinlab: --kernel: unknown kernel variant 'v9.9'/],
    [['run', '--kernel', 'v6.12+R99'], /^pinlab: --kernel: unknown bug switch 'R99'/],
    [['run', '--seed', 'x'], /^pinlab: --seed: 'x' is not an integer/],
    [['run', '--runs', '0'], /^pinlab: --runs: '0' is not an integer 1..2147483647/],
    [['run', '--mode', 'fast'], /^pinlab: --mode: 'fast' is not det or free/],
    [['run', '--frobnicate'], /^pinlab: run: Unknown option '--frobnicate'/],
    [['run', 'extra'], /^pinlab: run: unexpected argument 'extra'/],
    [['run', '--cmdline', 'mem=1M bogus=1'], /^pinlab: --cmdline: unknown kernel parameter 'bogus=1'/],
    [['run', '--geometry', 'x86_64'], /^pinlab: --geometry goes with --cmdline \(the machine it shapes\)\n$/],
    [['run', '--cmdline', 'mem=1G', '--geometry', 'arm64'], /^pinlab: --geometry: unknown preset 'arm64'/],
    [['replay', '--seed', '1', '--path', '0', '--geometry', 'x86_64'], /^pinlab: --geometry goes with --cmdline/],
    [['replay'], /^pinlab: replay: give a regression FILE, or --seed N and --path P/],
    [['replay', '--seed', '1', '--path', 'x:y'], /^pinlab: --path: 'x:y' is not a fast-check path/],
    [['replay', '/nonexistent/r.json'], /^pinlab: \/nonexistent\/r.json: no such file\n$/],
    [['replay', '--case', 'ab$c'], /^pinlab: --case: not base64url data/],
    [['replay', '--case', ''], /^pinlab: --case: not base64url data/],
    [['replay', '--case', 'abcd'], /^pinlab: --case: not deflated data/],
    [['replay', '--case', 'abcd', 'r.json'], /^pinlab: replay: --case carries its own regression: give no FILE/],
    [
      ['replay', '--case', 'q1YqLs0sSVWyUsrJz0svSS3K1S3IzFPSUUpOLE5VsjKsBQA', '--seed', '1'],
      /^pinlab: replay: --seed does not go with a --case/,
    ],
    [
      ['replay', '--case', 'q1YqLs0sSVWyUsrJz0svSS3K1S3IzFPSUUpOLE5VsjKsBQA'],
      /^pinlab: case-[0-9a-f]{8}: top level: needs 'seed'/,
    ],
  ])('%j', async (argv, re) => {
    const r = await run(argv as string[]);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(re);
    expect(r.err.trim().split('\n')).toHaveLength(1);
    expect(r.out).toBe('');
  });

  it.each([
    ['not JSON', '{"suite": ', /not JSON/],
    ['not an object', '[1, 2]', /: top level: expected a regression file: .*, got \[1,2\]\n$/],
    ['no seed', { ...goodFile, seed: 'one' }, /: seed: expected a 32-bit seed, got "one"\n$/],
    ['bad verdict', { ...goodFile, verdict: 'maybe' }, /: verdict: expected "fail" or "pass", got "maybe"\n$/],
    ['no case', { ...goodFile, case: undefined }, /: top level: needs 'case'\n$/],
    [
      'unknown actor',
      { ...goodFile, case: { ...goodCase, programs: { 'gpu-0': [] } } },
      /: case\.programs\["gpu-0"\]: unknown actor kind 'gpu' in 'gpu-0'/,
    ],
    [
      'bad schedule',
      { ...goodFile, case: { ...goodCase, schedule: [1, -2] } },
      /: case\.schedule\[1\]: expected a whole number >= 0, got -2\n$/,
    ],
    ['bad variant', { ...goodFile, case: { ...goodCase, variant: 'v1.0' } }, /unknown kernel variant 'v1.0'/],
    [
      'bad cmdline',
      { ...goodFile, case: { ...goodCase, layout: { ...goodCase.layout, cmdline: 'mem=1Q' } } },
      /layout: mem: bad size '1Q'/,
    ],
  ])('a malformed regression file (%s)', async (name, doc, re) => {
    const r = await run(['replay', writeJson(`${name.replace(/ /g, '_')}.json`, doc)]);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(re);
    expect(r.err.trim().split('\n')).toHaveLength(1);
  });
});

describe('run', () => {
  it('--json: verdict, cases, steps and failures[] for a passing suite', async () => {
    const r = await run(['run', '--runs', '12', '--seed', '3', '--json', '--regressions', 'none']);
    expect(r.code).toBe(0);
    const j = JSON.parse(r.out);
    expect(j).toMatchObject({
      verdict: 'pass',
      suite: 'longterm-pin',
      kernel: 'v6.12',
      seed: 3,
      mode: 'det',
      cases: 12,
      failures: [],
    });
    expect(j.steps).toBeGreaterThan(12);
  });

  it('finds v5.12 pinning in ZONE_MOVABLE, prints it, saves it atomically, and replays it exactly', async () => {
    const dir = path.join(tmp, 'regs');
    const r = await run(['run', '--kernel', 'v5.12', '--seed', '2', '--runs', '200', '--regressions', dir]);
    expect(r.code).toBe(1);
    expect(r.out).toMatch(/^# pinlab run --suite longterm-pin --kernel v5.12 --seed 2 --runs 200 --mode det$/m);
    expect(r.out).toMatch(
      /^FAIL no-longterm-pin-in-movable {2}\(suite longterm-pin, kernel v5.12, seed 2, path "[\d:]+", mode det\)$/m,
    );
    expect(r.out).toMatch(/long-term pinned in ZONE_MOVABLE/);
    expect(r.out).toMatch(/^shrunk case:$/m);
    expect(r.out).toMatch(/pinner-0 +1\. pin map=\w+ page=\d+ pages=1/); // shrunk to a single one-page pin
    expect(r.out).toMatch(/^trace around the violation/m);
    const replay = /^replay: pinlab replay (.*)$/m.exec(r.out)![1]!;
    expect(fs.readdirSync(dir)).toEqual([path.basename(replay)]); // no temporary file left
    const doc = JSON.parse(fs.readFileSync(replay, 'utf8'));
    expect(doc).toMatchObject({
      suite: 'longterm-pin',
      seed: 2,
      variant: 'v5.12',
      property: 'no-longterm-pin-in-movable',
      verdict: 'fail',
    });
    const again = await run(['replay', replay]);
    expect(again.code).toBe(1);
    expect(again.out).toMatch(/^reproduced: no-longterm-pin-in-movable, movable-offlinable failed, same trace hash$/m); // the pin also keeps its block online
    const fixed = await run(['replay', replay, '--kernel', 'v6.12']);
    expect(fixed.code).toBe(0);
    expect(fixed.out).toMatch(/^NOT reproduced: every property held$/m);
    const byPath = await run(['replay', '--kernel', 'v5.12', '--seed', '2', '--path', doc.path, '--json']);
    expect(byPath.code).toBe(1);
    expect(JSON.parse(byPath.out).failures[0]).toMatchObject({
      property: 'no-longterm-pin-in-movable',
      seed: 2,
      path: doc.path,
      trace_hash: doc.trace_hash,
    });
  });

  it('the replay line of each kind of failure, and a free failure unsaved replays from --case', async () => {
    // the mutation table's first entry (v5.12, longterm-pin) with every property checked, quietly, from seed 2
    const cfg = mutationConfig({ ...KERNEL_MUTATIONS[0]!, only: false }, 'v5.12', 2, 200);
    const f = (await runSuite(cfg)).failures[0]!;
    const how = { guided: false, reduced: false };
    expect(replayLine(cfg, { ...f, regression: 'x/r.json' }, f.path, how)).toBe('pinlab replay x/r.json');
    expect(replayLine(cfg, f, '3:1', how)).toBe(
      'pinlab replay --suite longterm-pin --kernel v5.12 --seed 2 --path "3:1"',
    );
    expect(replayLine(cfg, f, '3:1', { ...how, reduced: true })).toBe(
      'pinlab run --suite longterm-pin --kernel v5.12 --seed 2 --runs 200',
    );
    const free = { ...cfg, mode: 'free' as const };
    // a race that did not replay deterministically: only the free search again can find it
    expect(replayLine(free, { ...f, reproduced: false }, '3:1', how)).toBe(
      'pinlab run --suite longterm-pin --kernel v5.12 --seed 2 --runs 200 --mode free',
    );
    // one that did, unsaved: its (converted) case goes in the line, and replays as its file would
    const line = replayLine(free, { ...f, reproduced: true }, '3:1', how);
    const data = /^pinlab replay --case ([\w-]+)$/.exec(line)![1]!;
    const again = await run(['replay', '--case', data]);
    expect(again.code).toBe(1);
    expect(again.out).toMatch(/^reproduced: no-longterm-pin-in-movable.* failed, same trace hash$/m);
    const fixed = await run(['replay', '--case', data, '--kernel', 'v6.12', '--json']);
    expect(fixed.code).toBe(0);
    expect(JSON.parse(fixed.out)).toMatchObject({ file: expect.stringMatching(/^case-[0-9a-f]{8}$/) });
  });

  it('--json failures carry property, seed, path and trace hash', async () => {
    const r = await run([
      'run',
      '--kernel',
      'v5.12',
      '--seed',
      '2',
      '--runs',
      '200',
      '--json',
      '--regressions',
      'none',
    ]);
    expect(r.code).toBe(1);
    const j = JSON.parse(r.out);
    expect(j.verdict).toBe('fail');
    expect(j.failures).toHaveLength(1);
    expect(j.failures[0]).toEqual(
      expect.objectContaining({
        property: 'no-longterm-pin-in-movable',
        seed: 2,
        path: expect.stringMatching(/^\d+(:\d+)*$/),
        trace_hash: expect.stringMatching(/^[0-9a-f]{8}$/),
        regression: null,
      }),
    );
  });

  it('--mode free: a failing free run is turned into a schedule and reproduced deterministically', async () => {
    const r = await run([
      'run',
      '--kernel',
      'v5.12',
      '--seed',
      '4',
      '--runs',
      '100',
      '--mode',
      'free',
      '--json',
      '--regressions',
      path.join(tmp, 'free'),
    ]);
    expect(r.code).toBe(1);
    const j = JSON.parse(r.out);
    expect(j.failures[0]).toMatchObject({ property: 'no-longterm-pin-in-movable', reproduced: true });
    expect(fs.existsSync(j.failures[0].regression)).toBe(true);
  });
});

describe('the installed bin', () => {
  const bin = path.join(__dirname, '..', '..', 'bin', 'pinlab.js');

  // the compiled CLI: a machine of 131,072 frames runs ~20x slower inside jest's module sandbox
  it('--geometry x86_64: a real machine layout (e820, DMA zones, the kernel and init) passes on v6.12 and fails on v5.12, replayably', () => {
    const pinlab = (argv: string[]) =>
      spawnSync(process.execPath, [bin, ...argv], { encoding: 'utf8', timeout: 120_000 });
    const machine = ['--cmdline', 'mem=512M movablecore=128M transparent_hugepage=always', '--geometry', 'x86_64'];
    // init's pages migrate when its block goes offline, and it outlives the case: pins-balance follows them
    const ok = pinlab(['run', ...machine, '--seed', '2', '--runs', '40', '--save', 'none']);
    expect(ok.stdout).toMatch(/^40 cases, .* 0 failures: pass$/m);
    expect(ok.status).toBe(0);
    const bad = pinlab(['run', ...machine, '--kernel', 'v5.12', '--seed', '1', '--runs', '200', '--save', 'none']);
    expect(bad.status).toBe(1);
    expect(bad.stdout).toMatch(/machine: mem=512M movablecore=128M transparent_hugepage=always \(geometry x86_64\)/);
    const line = /^replay: pinlab (replay .*)$/m.exec(bad.stdout)![1]!;
    expect(line).toMatch(/ --geometry x86_64$/);
    const argv = line.match(/"[^"]*"|\S+/g)!.map((x) => x.replace(/^"|"$/g, ''));
    const again = pinlab([...argv, '--json']);
    expect(again.status).toBe(1);
    expect(JSON.parse(again.stdout).failures[0].property).toBe('no-longterm-pin-in-movable');
  });

  it('compiled, the actor workers load one bundled file (without plugins) and replay a regression with its recorded hash either way', () => {
    const file = path.join(__dirname, '..', '..', 'regressions', 'device_vfio-type1-v6.12-dma-integrity-15.json');
    const replay = (env: NodeJS.ProcessEnv) => {
      const r = spawnSync(process.execPath, [bin, 'replay', file, '--json'], {
        encoding: 'utf8',
        timeout: 120_000,
        env,
      });
      expect(r.status).toBe(1);
      return JSON.parse(r.stdout) as { trace_hash: string; recorded_trace_hash: string; as_recorded: boolean };
    };
    const bundled = replay({ ...process.env, PINLAB_PLUGINS: '' });
    const plain = replay({ ...process.env, PINLAB_PLUGINS: SELFTEST_PLUGIN });
    expect(bundled).toMatchObject({ as_recorded: true, trace_hash: bundled.recorded_trace_hash });
    expect(plain).toMatchObject({ as_recorded: true, trace_hash: bundled.recorded_trace_hash });
    // the build the runs above used (bin/build.js): the pool's choice of file, before and after a plugin loads
    const dist = path.join(__dirname, '..', '..', 'dist', 'harness');
    /* eslint-disable @typescript-eslint/no-require-imports -- the compiled modules, not the sources */
    const pool = require(path.join(dist, 'pool.js')) as typeof import('../../harness/pool');
    const plugins = require(path.join(dist, 'plugins.js')) as typeof import('../../harness/plugins');
    /* eslint-enable @typescript-eslint/no-require-imports */
    expect(plugins.loadedPlugins()).toEqual([]);
    expect(pool.workerFile().filename).toBe(path.join(dist, 'worker.bundle.js'));
    expect(fs.statSync(path.join(dist, 'worker.bundle.js')).size).toBeGreaterThan(100_000);
    plugins.loadPlugin(SELFTEST_PLUGIN);
    expect(pool.workerFile().filename).toBe(path.join(dist, 'worker.js'));
    // a run that says its workers need no plugin (the mutation searches: harness/mutations.ts) keeps the bundle
    expect(pool.workerFile('worker', []).filename).toBe(path.join(dist, 'worker.bundle.js'));
    expect(pool.workerFile('campaign_worker').filename).toBe(path.join(dist, 'campaign_worker.js'));
  });

  it('exits 1 on its own after a worker dies (the pool is torn down, no thread keeps it alive)', () => {
    const r = spawnSync(
      process.execPath,
      [bin, 'run', '--suite', 'selftest:exit', '--seed', '5', '--regressions', 'none'],
      { encoding: 'utf8', timeout: 120_000, env: { ...process.env, PINLAB_PLUGINS: SELFTEST_PLUGIN } },
    );
    expect(r.signal).toBeNull();
    expect(r.status).toBe(1);
    expect(r.stdout).toMatch(/^FAIL worker-exit {2}\(suite selftest:exit, kernel v6.12, seed 5/m);
    expect(r.stdout).toMatch(/1 failure: fail\n$/);
  });

  it.each([
    ['nope/none', /^pinlab: PINLAB_PLUGINS: plugin 'nope\/none': no file \S+none\.js$/],
    ['../etc/passwd', /^pinlab: PINLAB_PLUGINS: plugin '\.\.\/etc\/passwd': not a path under the pinlab root/],
    ['harness/types', /^pinlab: PINLAB_PLUGINS: plugin 'harness\/types': the module exports no 'plugin' object$/],
    ['test/plugins/selftest,bench/plugin,test/plugins/selftest', null],
  ])('PINLAB_PLUGINS=%s: a bad plugin is one line and exit 2, before any work', (plugins, bad) => {
    const r = spawnSync(
      process.execPath,
      [bin, 'run', '--suite', 'selftest:throw', '--seed', '1', '--regressions', 'none'],
      { encoding: 'utf8', timeout: 120_000, env: { ...process.env, PINLAB_PLUGINS: plugins } },
    );
    if (bad) {
      expect([r.status, r.stdout]).toEqual([2, '']);
      expect(r.stderr.trimEnd().split('\n')).toHaveLength(1);
      expect(r.stderr.trimEnd()).toMatch(bad);
    } else {
      expect(r.status).toBe(1);
      expect(r.stdout).toMatch(/^FAIL actor-threw /m);
    }
  });

  it('without the self-test plugin, selftest suites do not exist', () => {
    const r = spawnSync(process.execPath, [bin, 'run', '--suite', 'selftest:exit'], {
      encoding: 'utf8',
      timeout: 60_000,
      env: { ...process.env, PINLAB_PLUGINS: '' },
    });
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/^pinlab: .*selftest:exit/);
  });

  it('Ctrl-C stops a run cleanly and prints what ran (exit 130)', async () => {
    const child = spawn(process.execPath, [bin, 'run', '--runs', '1000000', '--seed', '6', '--regressions', 'none'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
    });
    child.stderr.on('data', () => undefined);
    await new Promise<void>((resolve) => {
      const poll = setInterval(() => {
        if (out.includes('# pinlab run')) {
          clearInterval(poll);
          resolve();
        }
      }, 50);
    });
    await new Promise((r) => setTimeout(r, 1500));
    child.kill('SIGINT');
    const code = await new Promise<number | null>((resolve) => child.on('exit', (c) => resolve(c)));
    expect(code).toBe(130);
    expect(out).toMatch(/^interrupted: \d+ cases, \d+ steps in [\d.]+ s .*: interrupted$/m);
  });
});
