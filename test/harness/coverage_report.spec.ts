// harness/coverage_report.ts: npm run coverage's table and its list of functions never entered, from
// istanbul JSON as c8 writes it (made up here: a file of mm/, one of devices/, one outside both).
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { fileRows, totals, neverEntered, tableRows, typesOnly, FileCoverage } from '../../harness/coverage_report';

const fn = (name: string, line: number): FileCoverage['fnMap'][string] => ({
  name,
  decl: { start: { line } },
  loc: { start: { line } },
});

const final: Record<string, FileCoverage> = {
  '/r/mm/a.ts': {
    path: '/r/mm/a.ts',
    s: { 0: 1, 1: 0, 2: 5, 3: 2 },
    b: { 0: [1, 0], 1: [3] },
    f: { 0: 1, 1: 0 },
    fnMap: { 0: fn('used', 1), 1: fn('neverUsed', 9) },
  },
  '/r/devices/d.ts': {
    path: '/r/devices/d.ts',
    s: { 0: 0, 1: 0 },
    b: {},
    f: { 0: 0 },
    fnMap: { 0: fn('(empty-report)', 1) },
  },
  '/r/harness/h.ts': { path: '/r/harness/h.ts', s: { 0: 1 }, b: {}, f: {}, fnMap: {} },
};

describe('coverage report', () => {
  it('counts statements, branches and functions per file of mm/ and devices/', () => {
    const rows = fileRows(final, '/r', ['mm', 'devices']);
    expect(rows.map((r) => r.file)).toEqual(['devices/d.ts', 'mm/a.ts']);
    expect(rows[1]).toEqual({
      file: 'mm/a.ts',
      statements: { covered: 3, total: 4 },
      branches: { covered: 2, total: 3 },
      functions: { covered: 1, total: 2 },
    });
    const t = totals(rows, ['mm', 'devices']);
    expect(t.map((r) => [r.file, r.statements.covered, r.statements.total])).toEqual([
      ['mm/ (all)', 3, 4],
      ['devices/ (all)', 0, 2],
      ['all', 3, 6],
    ]);
    expect(tableRows(rows)[1]).toMatchObject({ statements: '75.0%', '(stmts)': '3/4', branches: '66.7%' });
    expect(tableRows(rows)[0]).toMatchObject({ branches: '-' });
  });

  it('lists the functions never entered, and leaves out what skip() names', () => {
    expect(neverEntered(final, '/r', ['mm', 'devices'])).toEqual([
      'devices/d.ts:1 (empty-report)',
      'mm/a.ts:9 neverUsed',
    ]);
    const skip = (f: string): boolean => f === 'devices/d.ts';
    expect(neverEntered(final, '/r', ['mm', 'devices'], skip)).toEqual(['mm/a.ts:9 neverUsed']);
    expect(fileRows(final, '/r', ['mm', 'devices'], skip).map((r) => r.file)).toEqual(['mm/a.ts']);
  });

  it('knows tsc output with no code', () => {
    const empty =
      '"use strict";\n// types\n/** doc */\nObject.defineProperty(exports, "__esModule", { value: true });\n//# sourceMappingURL=d.js.map\n';
    expect(typesOnly(empty)).toBe(true);
    expect(typesOnly(empty + 'exports.X = 1;\n')).toBe(false);
  });
});

describe('npm run coverage (bin/coverage.js)', () => {
  const bin = path.join(__dirname, '..', '..', 'bin', 'coverage.js');
  const out = path.join(os.tmpdir(), `pinlab-coverage-spec-${process.pid}`);
  const none = path.join(os.tmpdir(), `pinlab-coverage-spec-${process.pid}-none`);
  afterAll(() => fs.rmSync(out, { recursive: true, force: true }));

  it("bad campaign input: the campaign's one line, exit 2, no report", () => {
    const r = spawnSync(process.execPath, [bin, '--kernel', 'nope', '--out', out], { encoding: 'utf8' });
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/^pinlab: --kernel: unknown kernel variant 'nope'/m);
    expect(r.stderr).not.toMatch(/at .*\.js:\d+/); // no stack trace
    expect(r.stdout).not.toMatch(/== coverage/);
  });

  it('--report-only without a run: one line, exit 2', () => {
    const r = spawnSync(process.execPath, [bin, '--report-only', '--out', none], { encoding: 'utf8' });
    expect(r.status).toBe(2);
    expect(r.stderr.trim()).toBe(`coverage: no report in ${none} (ENOENT)`);
  });
});
