// The kernel's gup_longterm selftest (tools/testing/selftests/mm/gup_longterm.c) as scenarios
// (scenarios/selftests/gup-longterm-*.yaml, one per backing type): every file holds its expectations
// under each of its kernels; on v6.12 pinlab's verdict for each case is the selftest's (the comment
// before the case says "should work" or "should fail"); and the version difference is not vacuous:
// where the kernels' expectations differ, one kernel's fail under the other.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { loadScenario, runScenario, scenarioKernels, expectationFor, ScenarioRun } from '../harness/scenario';

const DIR = path.join(__dirname, '..', 'scenarios', 'selftests');
const files = fs
  .readdirSync(DIR)
  .filter((f) => f.endsWith('.yaml'))
  .sort();

/** The selftest's verdict per case, from the "# case N: ... -- selftest: should ..." comments. */
function selftestVerdicts(text: string): boolean[] {
  return [...text.matchAll(/^ {2}# case \d+: .* -- selftest: should (work|fail)/gm)].map((mt) => mt[1] === 'work');
}

/** pinlab's verdict per case: the pin or the io_uring register step succeeded. */
function pinlabVerdicts(run: ScenarioRun, registers: Set<number>): boolean[] {
  return run.results.filter((r) => r.op === 'pin' || registers.has(r.step)).map((r) => r.rc >= 0);
}

describe('scenarios/selftests (gup_longterm.c)', () => {
  it('covers memfd, tmpfs, a file with writeback and hugetlb', () => {
    expect(files).toEqual([
      'gup-longterm-file.yaml',
      'gup-longterm-hugetlb.yaml',
      'gup-longterm-memfd.yaml',
      'gup-longterm-tmpfs.yaml',
    ]);
  });

  describe.each(files)('%s', (file) => {
    const full = path.join(DIR, file);
    const text = fs.readFileSync(full, 'utf8');
    const sc = loadScenario(full);
    const kernels = scenarioKernels(sc);
    const runs = new Map(kernels.map((k) => [k, runScenario(full, sc, () => {}, k)] as const));
    const registers = new Set(sc.steps.flatMap((s, i) => (s.op === 'call' && s.call === 'register' ? [i + 1] : [])));

    it('runs under v6.12 and v6.1 and holds every expectation', () => {
      expect(kernels).toEqual(['v6.12', 'v6.1+-R10']);
      for (const [k, r] of runs) expect([k, r.results.filter((x) => !x.ok).map((x) => x.step)]).toEqual([k, []]);
    });

    it("gives the selftest's verdict for each of its ten cases on v6.12", () => {
      const want = selftestVerdicts(text);
      expect(want).toHaveLength(10);
      expect(pinlabVerdicts(runs.get('v6.12')!, registers)).toEqual(want);
    });

    it("each kernel's expectations that differ fail under the other kernel", () => {
      const [a, b] = kernels as [string, string];
      let differing = 0;
      for (const [k, other] of [
        [a, b],
        [b, a],
      ] as const) {
        const run = runs.get(other)!;
        sc.steps.forEach((s, i) => {
          const mine = expectationFor(s.expect, k);
          const theirs = expectationFor(s.expect, other);
          if (mine === undefined || mine === theirs) return;
          differing++;
          const got = run.results[i]!;
          expect([i + 1, got.result]).not.toEqual([i + 1, String(mine)]);
        });
      }
      // the writeback file differs (6.5's GUP check, io_uring's 6.1 VMA check); shmem and hugetlb do not
      expect(differing > 0).toBe(file === 'gup-longterm-file.yaml');
    });
  });
});
