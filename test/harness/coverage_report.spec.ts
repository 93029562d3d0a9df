// harness/coverage_report.ts: npm run coverage's table and its list of functions never entered, from
// istanbul JSON as c8 writes it (made up here: a file of mm/, one of devices/, one outside both).
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import {
  fileRows,
  totals,
  neverEntered,
  tableRows,
  typesOnly,
  onPathRows,
  staleOffPath,
  FileCoverage,
} from '../../harness/coverage_report';
import { OFF_PATH, OffPath } from '../../harness/coverage_scope';

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

  // a.ts off the paths: lines 9-12 (neverUsed: statements 1 and 3, branch 1); b.ts: a function the run entered
  const scoped: Record<string, FileCoverage> = {
    '/r/mm/a.ts': {
      ...final['/r/mm/a.ts']!,
      fnMap: { 0: fn('used', 1), 1: { ...fn('neverUsed', 9), loc: { start: { line: 9 }, end: { line: 12 } } } },
      statementMap: {
        0: { start: { line: 2 } },
        1: { start: { line: 10 } },
        2: { start: { line: 3 } },
        3: { start: { line: 11 } },
      },
      branchMap: { 0: { loc: { start: { line: 2 } } }, 1: { locations: [{ start: { line: 10 } }] } },
    },
    '/r/mm/b.ts': { path: '/r/mm/b.ts', s: { 0: 1 }, b: {}, f: { 0: 1 }, fnMap: { 0: fn('ran', 1) } },
  };
  const list: OffPath[] = [
    { file: 'mm/a.ts', functions: ['neverUsed'], why: 'test' },
    { file: 'mm/b.ts', functions: ['ran', 'gone'], why: 'test' },
    { file: 'mm/absent.ts', functions: ['x'], why: 'a file the run did not load: not checked' },
  ];

  it('leaves the off-path functions, and what is inside them, out of the on-path figures', () => {
    const rows = onPathRows(scoped, '/r', ['mm'], () => false, [list[0]!]);
    expect(rows[0]).toEqual({
      file: 'mm/a.ts',
      statements: { covered: 2, total: 2 },
      branches: { covered: 1, total: 2 },
      functions: { covered: 1, total: 1 },
    });
    expect(neverEntered(scoped, '/r', ['mm'], () => false, list)).toEqual([]);
    expect(neverEntered(scoped, '/r', ['mm'])).toEqual(['mm/a.ts:9 neverUsed']);
  });

  it('reports stale off-path entries: entered by the run, or no such function', () => {
    expect(staleOffPath(scoped, '/r', list)).toEqual([
      'mm/b.ts ran: listed off the paths, but the run entered it',
      'mm/b.ts gone: listed off the paths, but no such function',
    ]);
  });

  it('harness/coverage_scope.ts names real functions of real files, each with a reason', () => {
    const root = path.join(__dirname, '..', '..');
    for (const o of OFF_PATH) {
      const src = fs.readFileSync(path.join(root, o.file), 'utf8');
      expect(o.why.length).toBeGreaterThan(10);
      for (const name of o.functions) {
        if (name === 'get') continue; // tsc's re-export getter: no source of its own
        expect([
          o.file,
          name,
          // a declaration, a method, or a closure bound to a const (V8 names an arrow function after it)
          new RegExp(
            `(function|class) ${name}\\b|^\\s+((private|protected|public|static) )*${name}\\(|const ${name} = \\(`,
            'm',
          ).test(src),
        ]).toEqual([o.file, name, true]);
      }
    }
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
