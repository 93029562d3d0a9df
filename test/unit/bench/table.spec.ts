// bench/table.ts and bench/progress.ts: the benchmarks' plain tables and their progress lines (no timing).
import { formatTable, formatCell, median } from '../../../bench/table';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Progress, clock, recordedSeconds } from '../../../bench/progress';

describe('bench table', () => {
  it('aligns numbers right and text left, with no quotes or index column', () => {
    const t = formatTable([
      { case: 'order-0', 'pairs/s': 7_900_000 },
      { case: 'order-9 THP', 'pairs/s': 248_000.5 },
    ]);
    expect(t).toBe(
      ['case           pairs/s', '-----------  ---------', 'order-0      7,900,000', 'order-9 THP  248,000.5', ''].join(
        '\n',
      ),
    );
  });

  it('takes the columns of every row, in order of first appearance', () => {
    const t = formatTable([{ a: 1 }, { b: 'x', a: 22 }]);
    expect(t.split('\n')[0]).toBe(' a  b');
    expect(t.split('\n')[2]).toBe(' 1');
    expect(t.split('\n')[3]).toBe('22  x');
    expect(formatCell(NaN)).toBe('NaN');
    expect(formatTable([])).toBe('(no rows)\n');
  });
});

describe('bench progress', () => {
  it('estimates the time left from the benchmarks not yet done', () => {
    const lines: string[] = [];
    const p = new Progress(
      ['boot', 'mutation'],
      (n) => (n === 'boot' ? 5 : 600),
      (l) => lines.push(l),
    );
    p.start(0);
    p.end(0);
    p.start(1);
    expect(lines[0]).toMatch(/^bench: \[1\/2\] boot started \(expect ~5\.0 s\); elapsed 0\.0 s, ~10:05 left$/);
    expect(lines[1]).toMatch(/^bench: \[1\/2\] boot done in 0\.\d s; elapsed 0\.\d s, ~10:00 left$/);
    expect(lines[2]).toMatch(/^bench: \[2\/2\] mutation started \(expect ~10:00\)/);
    expect(clock(3725)).toBe('1:02:05');
    expect(clock(25.4)).toBe('25 s');
    expect(clock(0.44)).toBe('0.4 s');
    expect(clock(61)).toBe('1:01');
  });
});

describe('bench estimates', () => {
  it("take a whole run's recorded duration, never a subset's (PINLAB_BENCH_ONLY)", () => {
    const out = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-out-'));
    const results = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-results-'));
    fs.writeFileSync(path.join(results, 'mutation.json'), JSON.stringify({ seconds: 1249, rows: [] }));
    expect(recordedSeconds([out, results], 'mutation')).toBe(1249);
    fs.writeFileSync(path.join(out, 'mutation.json'), JSON.stringify({ seconds: 84, only: 'R20', rows: [] }));
    expect(recordedSeconds([out, results], 'mutation')).toBe(1249);
    fs.writeFileSync(path.join(out, 'mutation.json'), JSON.stringify({ seconds: 1300, rows: [] }));
    expect(recordedSeconds([out, results], 'mutation')).toBe(1300);
    fs.rmSync(out, { recursive: true });
    fs.rmSync(results, { recursive: true });
  });
});

describe('bench median', () => {
  it('takes the middle one, or the mean of the middle two, of an unsorted list', () => {
    expect(median([3, 1, 2])).toBe(2);
    expect(median([1.66, 1.42, 1.82, 1.45])).toBeCloseTo(1.555, 10);
    expect(median([])).toBeNaN();
  });
});
