// SIGINT and SIGTERM, sent for real to the installed bin: a failure found before the signal is kept (also
// mid-shrink), SIGTERM ends a run as Ctrl-C does, a second signal ends the process at once, a signal that
// comes before the CLI has loaded (or while dist/ is built) is remembered, verbs that never yield still
// die at Ctrl-C, and an interrupted campaign says what it did not run.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawn, spawnSync, ChildProcess } from 'node:child_process';
import { mainAsync } from '../../harness/cli';
import { adoptProcessSignals } from '../../harness/signals';
import { SELFTEST_PLUGIN } from '../plugins/selftest';
import { campaignPlan } from '../../harness/campaign';

/** suite runs in the default plan */
const PLAN = campaignPlan({ seed: 1 }).length;

const root = path.join(__dirname, '..', '..');
const bin = path.join(root, 'bin', 'pinlab.js');

let tmp: string;
beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'pinlab-signals-'));
});
afterAll(() => {
  fs.rmSync(tmp, { recursive: true, force: true });
});

interface Child {
  child: ChildProcess;
  out: () => string;
  err: () => string;
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null; at: number }>;
}

/** The bin's environment: with the self-test plugin (selftest:* suites). */
const env = { ...process.env, PINLAB_PLUGINS: SELFTEST_PLUGIN };

function start(args: string[], binPath = bin): Child {
  const child = spawn(process.execPath, [binPath, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env });
  let out = '';
  let err = '';
  child.stdout!.on('data', (d: Buffer) => {
    out += d.toString();
  });
  child.stderr!.on('data', (d: Buffer) => {
    err += d.toString();
  });
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null; at: number }>((resolve) => {
    child.on('exit', (code, signal) => resolve({ code, signal, at: Date.now() }));
  });
  return { child, out: () => out, err: () => err, exit };
}

/** Resolves once cond() holds (polled every 20 ms); fails the test after ms. */
async function until(cond: () => boolean, ms: number, what: string): Promise<void> {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > ms) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('signals to a run', () => {
  it('Ctrl-C while shrinking keeps the smallest failing case so far: printed, saved, replayable (exit 1)', async () => {
    const dir = path.join(tmp, 'shrink');
    // selftest:shrink fails at its first case; each case then takes 250 ms, so shrinking takes seconds
    const c = start(['run', '--suite', 'selftest:shrink', '--seed', '1', '--regressions', dir]);
    await until(() => /^pinlab: 3\/1 cases/m.test(c.err()), 30_000, 'the second shrink step');
    c.child.kill('SIGINT');
    const { code } = await c.exit;
    const out = c.out();
    expect(code).toBe(1);
    expect(out).toMatch(
      /^FAIL actor-threw {2}\(suite selftest:shrink, kernel v6.12, seed 1, path "0(:\d+)+", mode det\)$/m,
    );
    expect(out).toMatch(
      /^shrinking interrupted after \d+ steps?: the case is smaller than found but maybe not minimal$/m,
    );
    expect(out).toMatch(/^case \(smallest failing so far\):$/m);
    expect(out).toMatch(/^trace around the violation/m);
    expect(out).toMatch(/^interrupted: \d+ cases, \d+ steps in [\d.]+ s .*, 1 failure: fail$/m);
    const file = /^replay: pinlab replay (.*)$/m.exec(out)![1]!;
    const doc = JSON.parse(fs.readFileSync(file, 'utf8'));
    expect(doc).toMatchObject({
      suite: 'selftest:shrink',
      seed: 1,
      property: 'actor-threw',
      verdict: 'fail',
      shrinking_interrupted_after: expect.any(Number),
    });
    expect(doc.shrinking_interrupted_after).toBeGreaterThanOrEqual(1);
    const steps = Number(/after (\d+) step/.exec(out)![1]);
    expect(doc.shrinking_interrupted_after).toBe(steps);
    expect(doc.path.split(':')).toHaveLength(steps + 1);
    // the saved case is the one printed, and it fails again with the same trace
    const again = spawnSync(process.execPath, [bin, 'replay', file], { encoding: 'utf8', timeout: 60_000, env });
    expect(again.status).toBe(1);
    expect(again.stdout).toMatch(/^reproduced: actor-threw failed, same trace hash$/m);
  });

  it('SIGTERM ends a run as Ctrl-C does: the running case stopped, the summary printed, exit 143', async () => {
    const c = start(['run', '--runs', '1000000', '--seed', '6', '--regressions', 'none']);
    await until(
      () => /^pinlab: \d+\/1000000 cases/m.test(c.err()) || c.out().includes('# pinlab run'),
      30_000,
      'the run to start',
    );
    await sleep(500);
    c.child.kill('SIGTERM');
    const { code, signal } = await c.exit;
    expect(signal).toBeNull();
    expect(code).toBe(143);
    expect(c.out()).toMatch(/^interrupted: \d+ cases, \d+ steps in [\d.]+ s .*, 0 failures: interrupted$/m);
  });

  it('a second Ctrl-C ends the process at once, while the first is still stopping the run', async () => {
    // the actor spins without a preemption point: stopping cleanly takes the 1 s grace and a thread kill
    const c = start(['run', '--suite', 'selftest:hang', '--seed', '1', '--regressions', 'none']);
    await until(() => c.out().includes('# pinlab run'), 30_000, 'the run to start');
    await sleep(500);
    c.child.kill('SIGINT');
    await sleep(150);
    const sent = Date.now();
    c.child.kill('SIGINT');
    const { code, signal, at } = await c.exit;
    expect({ code, signal }).toEqual({ code: null, signal: 'SIGINT' }); // the default action: killed by the signal
    expect(at - sent).toBeLessThan(800);
    expect(c.out()).not.toMatch(/^interrupted:/m);
  });

  it('a verb that computes without yielding (pin-fraction) still dies at Ctrl-C, at once', async () => {
    const c = start(['pin-fraction']); // ~2 s of work on one thread
    await sleep(700);
    const sent = Date.now();
    c.child.kill('SIGINT');
    const { code, signal, at } = await c.exit;
    expect(at - sent).toBeLessThan(1000);
    // killed by the signal; or, if it came before the verb started, remembered and reported in one line
    if (signal === null) {
      expect(code).toBe(130);
      expect(c.err()).toBe('pinlab: interrupted (SIGINT)\n');
    } else expect(signal).toBe('SIGINT');
    expect(c.out()).not.toMatch(/kernelcore=90%|^ +90%/m);
  });

  it('an interrupted campaign names the suite runs it cut short or did not run, and its verdict is interrupted (exit 130)', async () => {
    const c = start(['campaign', '--seed', '1', '--regressions', 'none']);
    await until(() => c.out().includes('# pinlab campaign'), 30_000, 'the campaign to start');
    await sleep(1000);
    c.child.kill('SIGINT');
    const { code } = await c.exit;
    const out = c.out();
    expect(code).toBe(130);
    expect(out).toMatch(/^not run \(interrupted\) on small ZONE_MOVABLE: longterm-pin, longterm-pin-4, device:/m);
    expect(out).toMatch(/^not run \(interrupted\) on larger ZONE_MOVABLE, THP: /m);
    expect(out).toMatch(
      new RegExp(
        `^\\d+ of ${PLAN} suite runs .*, \\d+ cases, \\d+ steps in [\\d.]+ s on \\d jobs?, kernel v6.12, seed 1: interrupted \\(.*\\d+ not run\\)$`,
        'm',
      ),
    );
    const rows = out.split('\n').filter((l) => /^[a-z-]+ +\d+ +\d+ +\d+ +\d+ +\S/.test(l));
    expect(rows.length).toBeGreaterThan(5);
    for (const row of rows) expect(row).toMatch(/ (interrupted|not run)$/); // no property "passes" a campaign that stopped early
  });
});

describe('a signal that came before the run started (bin/pinlab.js remembers it)', () => {
  const signals = (signal: 'SIGINT' | 'SIGTERM') => ({
    interrupt: { stopped: true, signal },
    release: () => undefined,
  });
  async function run(
    argv: string[],
    signal: 'SIGINT' | 'SIGTERM',
  ): Promise<{ code: number; out: string; err: string }> {
    let out = '';
    let err = '';
    adoptProcessSignals(signals(signal));
    try {
      const code = await mainAsync(argv, { out: (s) => (out += s), err: (s) => (err += s) });
      return { code, out, err };
    } finally {
      adoptProcessSignals(null);
    }
  }

  it('run stops before its first case: interrupted, 130 for SIGINT, 143 for SIGTERM', async () => {
    const a = await run(['run', '--runs', '1000', '--seed', '1', '--regressions', 'none'], 'SIGINT');
    expect(a.code).toBe(130);
    expect(a.out).toMatch(/^interrupted: 0 cases, 0 steps in [\d.]+ s .*, 0 failures: interrupted$/m);
    const b = await run(['run', '--runs', '1000', '--seed', '1', '--regressions', 'none', '--json'], 'SIGTERM');
    expect(b.code).toBe(143);
    expect(JSON.parse(b.out)).toMatchObject({ verdict: 'interrupted', interrupted: true, cases: 0, failures: [] });
  });

  it('replay FILE replays nothing and says so', async () => {
    const file = path.join(root, 'regressions', 'longterm-pin-v5.12-no-longterm-pin-in-movable-7.json');
    const r = await run(['replay', file, '--json'], 'SIGINT');
    expect(r.code).toBe(130);
    expect(JSON.parse(r.out)).toEqual({ file, verdict: 'interrupted' });
  });

  it('campaign runs no suite and lists them all as not run', async () => {
    const r = await run(['campaign', '--seed', '1', '--regressions', 'none'], 'SIGINT');
    expect(r.code).toBe(130);
    expect(r.out).toMatch(/^not run \(interrupted\) on random mini machines: longterm-pin, /m);
    expect(r.out).toMatch(
      new RegExp(`^0 of ${PLAN} suite runs .*, 0 cases, 0 steps .*: interrupted \\(${PLAN} not run\\)$`, 'm'),
    );
  });
});

describe('bin/pinlab.js before the CLI: the build and the load', () => {
  // A copy of bin/ over a one-file project whose CLI takes 1.5 s to load and reports what it was handed.
  let proj: string;
  const FAKE_CLI = `
const t0 = Date.now();
while (Date.now() - t0 < 1500) { /* a slow load */ }
export function run(argv: string[], signals: { interrupt: { stopped: boolean; signal: string | null }; exitCode(): number }): void {
  process.stdout.write(\`run \${argv.join(' ')}: stopped=\${signals.interrupt.stopped} signal=\${signals.interrupt.signal}\\n\`);
  process.exitCode = signals.interrupt.stopped ? signals.exitCode() : 0;
}
`;
  beforeAll(() => {
    proj = path.join(tmp, 'proj');
    fs.mkdirSync(path.join(proj, 'bin'), { recursive: true });
    fs.mkdirSync(path.join(proj, 'harness', 'cli'), { recursive: true });
    for (const f of ['pinlab.js', 'build.js', 'signals.js'])
      fs.copyFileSync(path.join(root, 'bin', f), path.join(proj, 'bin', f));
    fs.writeFileSync(
      path.join(proj, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: {
          target: 'ES2022',
          module: 'commonjs',
          strict: true,
          types: ['node'],
          skipLibCheck: true,
          noEmit: true,
        },
        include: ['harness'],
      }),
    );
    fs.writeFileSync(
      path.join(proj, 'tsconfig.build.json'),
      JSON.stringify({
        extends: './tsconfig.json',
        compilerOptions: { noEmit: false, outDir: 'dist', rootDir: '.' },
        include: ['harness'],
      }),
    );
    fs.writeFileSync(path.join(proj, 'harness', 'cli', 'index.ts'), FAKE_CLI);
    fs.symlinkSync(path.join(root, 'node_modules'), path.join(proj, 'node_modules'));
  });

  it('a signal during the build stops tsc and exits 130 with one line; the next start builds again', async () => {
    const c = start(['x'], path.join(proj, 'bin', 'pinlab.js'));
    await sleep(400); // tsc takes a few seconds to start and check even one file
    c.child.kill('SIGINT');
    const { code, signal } = await c.exit;
    expect({ code, signal }).toEqual({ code: 130, signal: null });
    expect(c.err()).toBe('pinlab: interrupted (SIGINT) while building dist/\n');
    expect(c.out()).toBe('');
    expect(fs.existsSync(path.join(proj, 'dist', '.built'))).toBe(false);
    const again = spawnSync(process.execPath, [path.join(proj, 'bin', 'pinlab.js'), 'y'], {
      encoding: 'utf8',
      timeout: 60_000,
    });
    expect(again.stdout).toBe('run y: stopped=false signal=null\n');
    expect(again.status).toBe(0);
  });

  it('a signal while the CLI loads is handed to it: the run starts stopped (exit 143 for SIGTERM)', async () => {
    if (!fs.existsSync(path.join(proj, 'dist', '.built')))
      spawnSync(process.execPath, [path.join(proj, 'bin', 'build.js')], { timeout: 60_000 });
    const c = start(['z'], path.join(proj, 'bin', 'pinlab.js'));
    await sleep(500);
    c.child.kill('SIGTERM');
    const { code, signal } = await c.exit;
    expect({ code, signal }).toEqual({ code: 143, signal: null });
    expect(c.out()).toBe('run z: stopped=true signal=SIGTERM\n');
  });

  it('two signals while the CLI loads: the second one ends the process', async () => {
    const c = start(['w'], path.join(proj, 'bin', 'pinlab.js'));
    await sleep(500);
    c.child.kill('SIGINT');
    await sleep(100);
    c.child.kill('SIGINT');
    const { code, signal } = await c.exit;
    expect({ code, signal }).toEqual({ code: null, signal: 'SIGINT' });
    expect(c.out()).toBe('');
  });
});
