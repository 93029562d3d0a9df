// `npm run coverage` (bin/coverage.js): the campaign's V8 coverage of mm/ and devices/, from the istanbul
// JSON c8 writes (coverage/coverage-final.json, already mapped back to the .ts sources), as one row per
// file and the list of functions never entered. docs/coverage.md.
import * as path from 'node:path';

/** The part of an istanbul file coverage object that the report reads. */
export interface FileCoverage {
  path: string;
  s: Record<string, number>;
  b: Record<string, number[]>;
  f: Record<string, number>;
  fnMap: Record<string, { name: string; decl?: { start: { line: number } }; loc: { start: { line: number } } }>;
}

export interface Count {
  covered: number;
  total: number;
}

export interface FileRow {
  file: string;
  statements: Count;
  branches: Count;
  functions: Count;
}

const pct = (c: Count): string => (c.total ? `${((100 * c.covered) / c.total).toFixed(1)}%` : '-');
const frac = (c: Count): string => `${c.covered}/${c.total}`;

function count(xs: number[]): Count {
  return { covered: xs.filter((x) => x > 0).length, total: xs.length };
}

function add(a: Count, b: Count): Count {
  return { covered: a.covered + b.covered, total: a.total + b.total };
}

/**
 * True for tsc output with no code (a module of types and interfaces only): c8 --all counts every line
 * of such a never-loaded file as missed, so the report leaves it out.
 */
export function typesOnly(js: string): boolean {
  const code = js
    .replace(/\/\*[\s\S]*?\*\//g, '')
    .replace(/\/\/.*$/gm, '')
    .replace(/^"use strict";$/m, '')
    .replace(/^Object\.defineProperty\(exports, "__esModule", \{ value: true \}\);$/m, '');
  return code.trim() === '';
}

/** Source files (relative to root, '/'-separated) under the folders, less those skip() names. */
function pick(
  final: Record<string, FileCoverage>,
  root: string,
  folders: readonly string[],
  skip: (file: string) => boolean,
): [string, FileCoverage][] {
  const out: [string, FileCoverage][] = [];
  for (const fc of Object.values(final)) {
    const file = path.relative(root, fc.path).split(path.sep).join('/');
    if (folders.some((d) => file.startsWith(d + '/')) && !skip(file)) out.push([file, fc]);
  }
  return out;
}

/** Files under the given folders (relative to root), sorted, one row each. */
export function fileRows(
  final: Record<string, FileCoverage>,
  root: string,
  folders: readonly string[],
  skip: (file: string) => boolean = () => false,
): FileRow[] {
  const rows: FileRow[] = [];
  for (const [file, fc] of pick(final, root, folders, skip)) {
    rows.push({
      file,
      statements: count(Object.values(fc.s)),
      branches: count(Object.values(fc.b).flat()),
      functions: count(Object.values(fc.f)),
    });
  }
  return rows.sort((a, b) => a.file.localeCompare(b.file));
}

/** Per-folder totals, then the grand total. */
export function totals(rows: readonly FileRow[], folders: readonly string[]): FileRow[] {
  const zero = (): Count => ({ covered: 0, total: 0 });
  const sum = (file: string, rs: readonly FileRow[]): FileRow =>
    rs.reduce(
      (t, r) => ({
        file,
        statements: add(t.statements, r.statements),
        branches: add(t.branches, r.branches),
        functions: add(t.functions, r.functions),
      }),
      { file, statements: zero(), branches: zero(), functions: zero() },
    );
  return [
    ...folders.map((d) =>
      sum(
        `${d}/ (all)`,
        rows.filter((r) => r.file.startsWith(d + '/')),
      ),
    ),
    sum('all', rows),
  ];
}

/** The rows as the table prints them: percentages with the counts beside them. */
export function tableRows(rows: readonly FileRow[]): Record<string, string>[] {
  return rows.map((r) => ({
    file: r.file,
    statements: pct(r.statements),
    '(stmts)': frac(r.statements),
    branches: pct(r.branches),
    '(branches)': frac(r.branches),
    functions: pct(r.functions),
    '(functions)': frac(r.functions),
  }));
}

/** `file:line name` of every function never entered, in file and line order. */
export function neverEntered(
  final: Record<string, FileCoverage>,
  root: string,
  folders: readonly string[],
  skip: (file: string) => boolean = () => false,
): string[] {
  const out: { file: string; line: number; name: string }[] = [];
  for (const [file, fc] of pick(final, root, folders, skip)) {
    for (const [id, n] of Object.entries(fc.f)) {
      if (n > 0) continue;
      const fn = fc.fnMap[id]!;
      out.push({ file, line: (fn.decl ?? fn.loc).start.line, name: fn.name });
    }
  }
  out.sort((a, b) => a.file.localeCompare(b.file) || a.line - b.line);
  return out.map((x) => `${x.file}:${x.line} ${x.name}`);
}
