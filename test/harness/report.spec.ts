// The report's parts without a browser: trace folding (presentation only), the terminal's folded
// window, the report's data for a committed regression (snapshots, offending frames, the migration
// lines), a self-contained page, and `pinlab report`'s bad input (one line, exit 2).
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { mainAsync } from '../../harness/cli';
import { foldTrace, formatTraceWindow, TraceLine } from '../../harness/trace';
import { loadRegression, PoolHolder } from '../../harness/runner';
import { regressionSource, reportHtml, buildReportData } from '../../harness/report/index';

const ROOT = path.join(__dirname, '..', '..');
const reg = (name: string): string => path.join('regressions', name);

async function cli(argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await mainAsync(argv, { out: (s) => (out += s), err: (s) => (err += s) });
  return { code, out, err };
}

const L = (seq: number, actor: number, text: string): TraceLine => ({ seq, actor, text });

describe('foldTrace', () => {
  it('folds a line repeated back to back, and a repeated block of lines with varying pfns', () => {
    const lines: TraceLine[] = [L(0, 0, 'pinlab_op: pin')];
    let seq = 1;
    for (let k = 0; k < 19; k++) lines.push(L(seq++, 0, 'sched_yield: gup:after-collect'));
    for (let k = 0; k < 5; k++) {
      lines.push(L(seq++, 0, 'sched_yield: migrate:copy'));
      lines.push(L(seq++, 0, `mm_migrate_folio: pfn ${240 + k} (Movable) -> pfn ${241 + k} (Movable)`));
    }
    lines.push(L(seq, 1, 'sched_yield: migrate:copy'));
    const folds = foldTrace(lines);
    expect(folds.map((f) => [f.count, f.lines.length])).toEqual([
      [1, 1],
      [19, 1],
      [5, 2],
      [1, 1],
    ]);
    // the last round is shown, and every line is accounted for
    expect(folds[2]!.lines[1]!.text).toContain('pfn 244 (Movable) -> pfn 245');
    expect(folds[2]!.firstSeq).toBe(20);
    expect(folds.reduce((n, f) => n + f.count * f.lines.length, 0)).toBe(lines.length);
  });

  it('prints "N x" lines and keeps to --trace-lines', () => {
    const lines = [L(0, 0, 'a: x'), ...Array.from({ length: 19 }, (_, k) => L(k + 1, 0, 'sched_yield: y'))];
    for (let k = 0; k < 40; k++) lines.push(L(20 + k, k % 2, `e: ${k}`));
    const text = formatTraceWindow(lines, 20, ['user-0', 'pinner-0'], [1, 2], 30);
    expect(text.some((t) => t.includes('19 x sched_yield: y (from 0.000001)'))).toBe(true);
    expect(formatTraceWindow(lines, 40, ['user-0', 'pinner-0'], [1, 2], 5)).toHaveLength(5);
  });
});

describe('report data of committed regressions', () => {
  let pool: PoolHolder;
  beforeAll(() => {
    pool = new PoolHolder(4);
  });
  afterAll(async () => {
    await pool.destroy();
  });

  it('a pin in ZONE_MOVABLE: the failing snapshot lists its pfn, the page is self-contained and small', async () => {
    const file = reg('longterm-pin-v5.12-no-longterm-pin-in-movable-7.json');
    const src = await regressionSource(file, loadRegression(path.join(ROOT, file)), { holder: pool });
    const pfn = Number(/pfn (\d+)/.exec(src.failure.message)![1]);
    const d = buildReportData(src);
    expect(src.reproduced).toBe(true);
    expect(d.traceHash).toBe(d.recordedHash);
    expect(d.snapshots.length).toBeGreaterThan(2);
    expect(d.snapshots[d.failingSnapshot]!.bad).toContain(pfn);
    expect(d.snapshots[0]!.bad).toEqual([]); // at boot nothing is pinned
    const html = reportHtml(src);
    expect(html.length).toBeLessThan(1 << 20);
    expect(html).not.toMatch(/(src|href)\s*=\s*["']?(https?:|\/\/)/i);
    expect(html).toContain(`pinlab replay ${file}`);
  });

  it('a page migrated every round: the trace and the message say where it moved', async () => {
    const file = reg('longterm-pin-v5.13+R1+R5-no-livelock-1.json');
    const src = await regressionSource(file, loadRegression(path.join(ROOT, file)), { holder: pool });
    expect(src.failure.message).toMatch(
      /moved 64 times .* to pfn \d+ \(Movable\), and the migration target was allocated in ZONE_MOVABLE/,
    );
    expect(
      src.result.lines.filter((l) => /^mm_migrate_folio: pfn \d+ \(Movable\) -> pfn \d+ \(Movable\)/.test(l.text)),
    ).toHaveLength(64);
    const d = buildReportData(src);
    expect(d.folds.some((f) => f.n === 64 && f.t.some((t) => t.startsWith('mm_migrate_folio')))).toBe(true);
  });
});

describe('pinlab report: bad input is one line, exit 2', () => {
  let tmp: string;
  beforeAll(() => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'pinlab-report-'));
  });
  afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

  it.each([
    [['report'], /^pinlab: report: give one FILE.json/],
    [['report', '/nonexistent/x.json'], /x\.json: no such file/],
    [['report', 'regressions/longterm-pin-v6.1-no-livelock-7.json', '-o', '/'], /-o '\/' is a directory/],
    [['report', 'README.md'], /README\.md: not JSON/],
    [['report', '/dev/zero'], /not a regular file/],
    [
      ['report', 'regressions/longterm-pin-v6.1-no-livelock-7.json', '-o', '/proc/x/r.html'],
      /^pinlab: -o: cannot create/,
    ],
    [['run', '--html', ''], /--html: give a directory/],
    [['replay', '--trace-lines', 'x', 'regressions/longterm-pin-v6.1-no-livelock-7.json'], /--trace-lines: 'x' is not/],
  ])('%j', async (argv, re) => {
    const r = await cli(argv);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(re);
    expect(r.err.trim().split('\n')).toHaveLength(1);
  });

  it('a run result without a saved failure is refused; one with a regression file is reported', async () => {
    const bare = path.join(tmp, 'run.json');
    fs.writeFileSync(bare, JSON.stringify({ verdict: 'fail', failures: [{ property: 'x', regression: null }] }));
    const r = await cli(['report', bare]);
    expect([r.code, r.err.trim()]).toEqual([2, expect.stringMatching(/no saved failure/)]);
    const ok = path.join(tmp, 'run2.json');
    fs.writeFileSync(
      ok,
      JSON.stringify({ failures: [{ regression: reg('longterm-pin-v5.12-no-longterm-pin-in-movable-7.json') }] }),
    );
    const out = path.join(tmp, 'r.html');
    const r2 = await cli(['report', ok, '-o', out]);
    expect([r2.code, r2.out]).toEqual([
      0,
      expect.stringMatching(/^report: wrote .*r\.html \(\d+ KiB\): no-longterm-pin-in-movable reproduced/),
    ]);
    expect(fs.readFileSync(out, 'utf8')).toMatch(/^<!DOCTYPE html>/);
  });
});
