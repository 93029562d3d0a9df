// The regression corpus as scenarios (scenarios/bugs/rN-*.yaml): each file runs green under every one of
// its kernels, names a bug switch that some of its kernels have and some do not, and cannot pass
// vacuously - the fixed kernels' expectations fail under the buggy kernels and vice versa.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { loadScenario, runScenario, scenarioKernels, expectationFor, Scenario, ScenarioRun } from '../harness/scenario';
import { parseVariant, BUGS, BugSwitch } from '../mm/variants';

const DIR = path.join(__dirname, '..', 'scenarios', 'bugs');
const files = fs
  .readdirSync(DIR)
  .filter((f) => f.endsWith('.yaml'))
  .sort();

/** "r12-empty-list-success.yaml" -> "R12" */
function bugOf(file: string): BugSwitch {
  const m = /^r([0-9]+c?)-[a-z0-9-]+\.yaml$/.exec(file);
  if (!m) throw new Error(`${file}: bug scenarios are named rN-<short-name>.yaml`);
  return `R${m[1]}` as BugSwitch;
}

/** The same scenario with every per-kernel expectation resolved for one kernel. */
function expectationsOf(sc: Scenario, kernel: string): Scenario {
  return {
    ...sc,
    steps: sc.steps.map((s) => {
      const t = { ...s };
      const e = expectationFor(s.expect, kernel);
      const mt = expectationFor(s.expect_match, kernel);
      if (e === undefined) delete t.expect;
      else t.expect = e;
      if (mt === undefined) delete t.expect_match;
      else t.expect_match = mt;
      return t;
    }),
  };
}

interface Loaded {
  file: string;
  full: string;
  bug: BugSwitch;
  sc: Scenario;
  fixed: string[];
  buggy: string[];
  runs: Map<string, ScenarioRun>;
}
const cache = new Map<string, Loaded>();

/** Load a file and run it once under each of its kernels (cached across the tests below). */
function load(file: string): Loaded {
  let l = cache.get(file);
  if (l) return l;
  const full = path.join(DIR, file);
  const sc = loadScenario(full);
  const bug = bugOf(file);
  const kernels = scenarioKernels(sc);
  const fixed = kernels.filter((k) => !parseVariant(k).bugs.has(bug));
  const buggy = kernels.filter((k) => parseVariant(k).bugs.has(bug));
  const runs = new Map(kernels.map((k) => [k, runScenario(full, sc, () => {}, k)] as const));
  l = { file, full, bug, sc, fixed, buggy, runs };
  cache.set(file, l);
  return l;
}

describe('scenarios/bugs', () => {
  it('has a scenario for every bug switch the model expresses', () => {
    const covered = new Set(files.map(bugOf));
    for (const b of BUGS) expect([b.id, covered.has(b.id)]).toEqual([b.id, true]);
    expect(files.length).toBe(covered.size); // one file per switch
  });

  describe.each(files)('%s', (file) => {
    it('names its bug, runs under fixed and buggy kernels, and every run holds its expectations', () => {
      const l = load(file);
      expect(BUGS.map((b) => b.id)).toContain(l.bug);
      expect(l.sc.description).toMatch(new RegExp(`\\b${l.bug}\\b`));
      expect(l.fixed.length).toBeGreaterThan(0);
      expect(l.buggy.length).toBeGreaterThan(0);
      for (const [k, r] of l.runs) {
        expect([k, r.results.filter((x) => !x.ok).map((x) => `${x.step} ${x.op}: ${x.result} ${x.detail}`)]).toEqual([
          k,
          [],
        ]);
        expect([k, r.ok, r.panic]).toEqual([k, true, undefined]);
        expect(r.results).toHaveLength(l.sc.steps.length);
      }
    });

    it('some step differs between every fixed and every buggy kernel', () => {
      const l = load(file);
      for (const f of l.fixed) {
        for (const b of l.buggy) {
          const rf = l.runs.get(f)!.results;
          const rb = l.runs.get(b)!.results;
          const differs = rf.some((x, i) => x.result !== rb[i]!.result || x.detail !== rb[i]!.detail);
          expect([f, b, differs]).toEqual([f, b, true]);
        }
      }
    });

    it("the fixed kernels' expectations fail under the buggy kernels, and the reverse", () => {
      const l = load(file);
      for (const f of l.fixed) {
        for (const b of l.buggy) {
          // bug off they pass (the run above); bug on, the same checks catch it
          expect([`${f} checks under ${b}`, runScenario(l.full, expectationsOf(l.sc, f), () => {}, b).ok]).toEqual([
            `${f} checks under ${b}`,
            false,
          ]);
          expect([`${b} checks under ${f}`, runScenario(l.full, expectationsOf(l.sc, b), () => {}, f).ok]).toEqual([
            `${b} checks under ${f}`,
            false,
          ]);
        }
      }
    });

    it('the fixed kernels release every pin they took', () => {
      const l = load(file);
      for (const f of l.fixed) {
        const v = l.runs.get(f)!.vmstat;
        expect([f, v.nr_foll_pin_acquired]).toEqual([f, v.nr_foll_pin_released]);
      }
    });
  });
});
