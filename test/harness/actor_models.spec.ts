// Every actor kind is a model with one shape (devices/device.ts ActorModel): its ops and their errnos
// name the same ops, its fault points exist in the mm core, and it joins the quiescence barrier unless
// it says why not. A new agent or device is held to this as soon as it is registered.
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as fc from 'fast-check';
import { actorKinds, actorModel, actorKind } from '../../harness/actors';
import { loadPlugin } from '../../harness/plugins';
import { SELFTEST_PLUGIN } from '../plugins/selftest';
import { BENCH_PLUGIN } from '../../bench/plugin';
import { SUITES } from '../../harness/suites';
import { PoolHolder } from '../../harness/runner';

const core = actorKinds(); // the agents and device models
loadPlugin(SELFTEST_PLUGIN);
loadPlugin(BENCH_PLUGIN);
const kinds = actorKinds(); // and the plugins' actors, held to the same shape

/**
 * The fault points the mm core offers: faultPoint('...') calls, plus the signals the harness delivers at preemption
 * points.
 */
function mmFaultPoints(): Set<string> {
  const dir = path.join(__dirname, '../../mm');
  const out = new Set(['signal', 'fatal-signal']);
  for (const f of fs.readdirSync(dir)) {
    for (const mt of fs.readFileSync(path.join(dir, f), 'utf8').matchAll(/faultPoint\('([^']+)'\)/g)) out.add(mt[1]!);
  }
  return out;
}

describe('actor models', () => {
  it.each(kinds)('%s: its ops, errnos, op kinds and fault points agree', (kind) => {
    const model = actorModel(kind)!;
    expect(Object.keys(model.ops).sort()).toEqual(Object.keys(model.errnos).sort());
    for (const k of model.opKinds ?? []) expect(Object.keys(model.ops)).toContain(k);
    const known = mmFaultPoints();
    expect(model.faultPoints.filter((p) => !known.has(p))).toEqual([]);
    expect(model.programLength).toBeGreaterThan(0);
    for (const op of fc.sample(model.arbitrary(fc, { maps: [{ name: 'buf', pages: 24 }], maxPages: 8 }), {
      numRuns: 30,
      seed: 1,
    })) {
      expect(Object.keys(model.ops)).toContain(op.op);
    }
  });

  it("every agent and device joins quiescence; only the plugins' self-test and bench actors stay out, saying why", () => {
    expect(core.filter((k) => actorModel(k)!.skipsQuiescence !== undefined)).toEqual([]);
    const out = kinds.filter((k) => actorModel(k)!.skipsQuiescence !== undefined);
    expect(out.sort()).toEqual(kinds.filter((k) => !core.includes(k)).sort());
    expect(out).toContain('test-throw');
    expect(out).toContain('yielder');
    for (const k of out) expect(actorModel(k)!.skipsQuiescence!.length).toBeGreaterThan(10);
  });

  it('an actor name names its kind: "vfio-type1-0" is vfio-type1, an unknown kind is refused', () => {
    expect(actorKind('vfio-type1-0')).toBe('vfio-type1');
    expect(actorKind('cma-12')).toBe('cma');
    expect(() => actorKind('frob-0')).toThrow(/names no actor kind/);
  });
});

describe('quiescence', () => {
  let pool: PoolHolder;
  beforeAll(() => {
    pool = new PoolHolder(Math.max(...Object.values(SUITES).map((s) => s.actors.length))); // longterm-pin-get: 5
  });
  afterAll(async () => {
    await pool.destroy();
  });

  it.each(
    Object.values(SUITES)
      .filter((s) => !s.hidden && s.actors.length) // the boot suite has no actors
      .map((s) => s.name),
  )('%s: every actor meets the others at the barrier', async (name) => {
    const suite = SUITES[name]!;
    const [cs] = fc.sample(suite.arbitrary(fc, { variant: 'v6.12' }), { numRuns: 1, seed: 5 });
    const r = await pool.run(cs!, { mode: 'det', seed: 5 });
    expect(r.failures).toEqual([]);
    // in deterministic mode every actor but the last to arrive blocks at the barrier
    const waits = [...r.labels.values()].filter((l) => l.startsWith('quiescence: the other actors are still running'));
    expect(waits).toHaveLength(1);
    const blocked = new Set(
      r.lines.filter((l) => l.text.includes('quiescence: the other actors are still running')).map((l) => l.actor),
    );
    expect(blocked.size).toBe(Object.keys(cs!.programs).length - 1);
  });
});
