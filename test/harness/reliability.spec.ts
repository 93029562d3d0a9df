// When a run breaks - an actor throws, a worker thread dies, an actor spins forever, a property check
// throws, hidden nondeterminism - the harness reports it with the seed and the trace, tears the pool
// down (or replaces it), and neither hangs nor leaves threads behind.
import * as fs from 'node:fs';
import { PoolHolder, runSuite, RunConfig, describeCase } from '../../harness/runner';
import { Case } from '../../harness/run_case';
import { SUITES, MINI_LAYOUTS } from '../../harness/suites';
import { loadPlugin } from '../../harness/plugins';
import { SELFTEST_PLUGIN } from '../plugins/selftest';

loadPlugin(SELFTEST_PLUGIN); // the selftest:* suites and their misbehaving actors

let pool: PoolHolder;
beforeAll(() => {
  pool = new PoolHolder(3);
});
afterAll(async () => {
  await pool.destroy();
});

const L = MINI_LAYOUTS[0]!;
const touch = [
  { op: 'touch', map: 'buf', page: 0, write: true },
  { op: 'touch', map: 'buf', page: 1, write: true },
];
const healthy: Case = {
  layout: L,
  variant: 'v6.12',
  schedule: [1, 1, 1],
  faults: {},
  programs: {
    'user-0': touch,
    'pinner-0': [
      { op: 'pin', map: 'buf', page: 0, pages: 2 },
      { op: 'unpin', slot: 0 },
    ],
  },
};

async function stillWorks(): Promise<void> {
  const r = await pool.run(healthy, { mode: 'det' });
  expect(r.end).toBe('done');
  expect(r.failures).toEqual([]);
}

function io(): { out: string; err: string; io: RunConfig['io'] } {
  const o = {
    out: '',
    err: '',
    io: {
      out: (s: string) => {
        o.out += s;
      },
      err: (s: string) => {
        o.err += s;
      },
    },
  };
  return o;
}

function cfg(suite: string, extra: Partial<RunConfig> = {}): RunConfig {
  return {
    suite: SUITES[suite]!,
    variant: 'v6.12',
    seed: 77,
    runs: 1,
    mode: 'det',
    checkDeterminism: false,
    json: false,
    regressionsDir: null,
    tty: false,
    interrupt: { stopped: false },
    io: io().io,
    ...extra,
  };
}

describe('a broken run is a reported failure, not a crash or a hang', () => {
  it('an actor that throws: actor-threw with its message and trace; the others unwind', async () => {
    const cs: Case = {
      layout: L,
      variant: 'v6.12',
      schedule: [1, 1, 1, 1],
      faults: {},
      programs: { 'user-0': touch, 'test-throw-0': [{ op: 'noop' }, { op: 'throw', why: 'here' }] },
    };
    const r = await pool.run(cs, { mode: 'det' });
    expect(r.end).toBe('error');
    expect(r.failures.map((f) => f.property)).toEqual(['actor-threw']);
    expect(r.failures[0]!.message).toBe('test-throw-0: Error: test-throw: simulated simulator bug at here');
    expect(r.lines.some((l) => /pinlab_bug: Error: test-throw/.test(l.text))).toBe(true);
    expect(r.actors[0]!.stopped ?? 'finished').toMatch(/stopped|finished/);
    await stillWorks();
  });

  it('a worker thread that exits: worker-exit, and the pool replaces it', async () => {
    const cs: Case = {
      layout: L,
      variant: 'v6.12',
      schedule: [],
      faults: {},
      programs: { 'user-0': touch, 'test-exit-0': [{ op: 'exit' }] },
    };
    const r = await pool.run(cs, { mode: 'det' });
    expect(r.failures.map((f) => f.property)).toEqual(['worker-exit']);
    expect(r.failures[0]!.message).toMatch(/test-exit-0: its worker thread died: .*exited with code/);
    expect(r.end).toBe('stopped');
    await stillWorks();
  });

  it('an actor that never reaches a preemption point: hang after the time budget; the pool is replaced', async () => {
    const before = pool.pool;
    const cs: Case = {
      layout: L,
      variant: 'v6.12',
      schedule: [],
      faults: {},
      programs: { 'user-0': touch, 'test-spin-0': [{ op: 'spin', ms: 3_600_000 }] },
    };
    const r = await pool.run(cs, { mode: 'det', timeoutMs: 1500 });
    expect(r.failures.map((f) => f.property)).toEqual(['hang']);
    expect(r.failures[0]!.message).toMatch(/did not finish within 1500 ms.*test-spin-0 pinlab_op: spin/);
    expect(r.recyclePool).toBe(true);
    expect(pool.pool).not.toBe(before);
    await stillWorks();
  });

  it('a property check that throws: property-threw, named', async () => {
    const r = await pool.run(healthy, {
      mode: 'det',
      checks: {
        'broken-check': () => {
          throw new Error('no such field');
        },
      },
    });
    expect(r.failures).toEqual([
      { property: 'property-threw', message: 'broken-check: Error: no such field', seq: expect.any(Number) },
    ]);
  });

  it('runSuite prints the failure with its seed, the case, the trace and a replay line', async () => {
    const o = io();
    const s = await runSuite(cfg('selftest:throw', { io: o.io }));
    expect(s.verdict).toBe('fail');
    expect(s.failures[0]).toMatchObject({ property: 'actor-threw', seed: 77, path: '0' });
    expect(o.out).toMatch(/^FAIL actor-threw {2}\(suite selftest:throw, kernel v6.12, seed 77, path "0", mode det\)$/m);
    // the noop does not matter to the failure: shrinking past fast-check drops it (harness/shrink_ops.ts)
    expect(o.out).toMatch(/test-throw-0 {2}1\. throw\n/);
    expect(o.out).toMatch(/test-throw-0 {2}\[002\] \.\.\.\. +0\.\d{6}: pinlab_bug: Error: test-throw/);
    // a case reduced past fast-check's path: the search again regenerates it
    expect(o.out).toMatch(/^replay: pinlab run --suite selftest:throw --kernel v6.12 --seed 77 --runs \d+$/m);
  });

  it('--check-determinism catches an actor that reads the clock, and passes an honest suite', async () => {
    const bad = await runSuite(cfg('selftest:clock', { checkDeterminism: true, runs: 5 }));
    expect(bad.failures.map((f) => f.property)).toEqual(['determinism']);
    expect(bad.failures[0]!.message).toMatch(/gave trace hashes [0-9a-f]{8} and [0-9a-f]{8}: hidden nondeterminism/);
    const good = await runSuite(cfg('longterm-pin', { checkDeterminism: true, runs: 15 }));
    expect(good.verdict).toBe('pass');
  });

  it('an interrupted run stops at once and reports what ran', async () => {
    const interrupt = { stopped: false };
    const running = runSuite(cfg('longterm-pin', { runs: 20_000, interrupt }));
    await new Promise((r) => setTimeout(r, 1500));
    interrupt.stopped = true;
    const s = await running;
    expect(s.verdict).toBe('interrupted');
    expect(s.cases).toBeGreaterThan(0);
    expect(s.cases).toBeLessThan(20_000);
  });
});

// Idle workers must keep their event loop: in Atomics.wait, the loader's async cache writes (tsx) never
// finished and every pool left one open file per module behind, until a long test run hit EMFILE.
const openFiles = (): number => fs.readdirSync('/proc/self/fd').length;
(fs.existsSync('/proc/self/fd') ? it : it.skip)('suite runs leave no open files behind', async () => {
  const run = (seed: number) => runSuite(cfg('device:vfio-type1', { seed, runs: 3, mode: 'free' }));
  await run(1);
  const before = openFiles();
  for (let seed = 2; seed < 6; seed++) await run(seed);
  expect(openFiles() - before).toBeLessThan(8);
});

describe('describeCase', () => {
  it("lists each actor's steps, the schedule and the faults", () => {
    const text = describeCase({
      ...healthy,
      faults: { 'pinner-0': { 'migrate:isolate': [2], signal: [] }, 'user-0': { 'fatal-signal': [4] } },
    });
    expect(text).toMatch(/user-0 {4}1\. touch map=buf page=0 write=true/);
    expect(text).toMatch(/pinner-0 {2}1\. pin map=buf page=0 pages=2\n {12}2\. unpin slot=0/);
    expect(text).toMatch(/schedule: \[1,1,1\] \(3 preemption choices\)/);
    expect(text).toMatch(/faults: {3}pinner-0 migrate:isolate at call 2; user-0 fatal-signal at preemption point 4$/m);
  });
});
