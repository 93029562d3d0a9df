// `npm run coverage` (bin/coverage.js): the campaign's V8 coverage of mm/ and devices/, from the istanbul
// JSON c8 writes (coverage/coverage-final.json, already mapped back to the .ts sources), as one row per
// file and the list of functions never entered. docs/coverage.md.
import * as path from 'node:path';
import { OFF_PATH, OffPath, offPathFunctions } from './coverage_scope';

/** The part of an istanbul file coverage object that the report reads. */
export interface FileCoverage {
  path: string;
  s: Record<string, number>;
  b: Record<string, number[]>;
  f: Record<string, number>;
  fnMap: Record<string, { name: string; decl?: { start: { line: number } }; loc: Span }>;
  statementMap?: Record<string, Span>;
  branchMap?: Record<string, { loc?: Span; locations?: Span[] }>;
}

interface Span {
  start: { line: number };
  end?: { line: number };
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
  list: readonly OffPath[] = [],
): string[] {
  const out: { file: string; line: number; name: string }[] = [];
  for (const [file, fc] of pick(final, root, folders, skip)) {
    const names = offPathFunctions(file, list);
    for (const [id, n] of Object.entries(fc.f)) {
      if (n > 0 || names.has(fc.fnMap[id]!.name)) continue;
      const fn = fc.fnMap[id]!;
      out.push({ file, line: (fn.decl ?? fn.loc).start.line, name: fn.name });
    }
  }
  out.sort((a, b) => a.file.localeCompare(b.file) || a.line - b.line);
  return out.map((x) => `${x.file}:${x.line} ${x.name}`);
}

/** The line ranges of the file's off-path functions (harness/coverage_scope.ts). */
function offPathSpans(file: string, fc: FileCoverage, list: readonly OffPath[]): [number, number][] {
  const names = offPathFunctions(file, list);
  return Object.values(fc.fnMap)
    .filter((fn) => names.has(fn.name))
    .map((fn) => [fn.loc.start.line, fn.loc.end?.line ?? fn.loc.start.line]);
}

/**
 * As fileRows(), less the off-path functions and every statement and branch inside them: the figures
 * on the default variant's paths.
 */
export function onPathRows(
  final: Record<string, FileCoverage>,
  root: string,
  folders: readonly string[],
  skip: (file: string) => boolean = () => false,
  list: readonly OffPath[] = OFF_PATH,
): FileRow[] {
  const rows: FileRow[] = [];
  for (const [file, fc] of pick(final, root, folders, skip)) {
    const spans = offPathSpans(file, fc, list);
    const off = (line: number): boolean => spans.some(([a, b]) => line >= a && line <= b);
    const names = offPathFunctions(file, list);
    const s = Object.entries(fc.s).filter(([k]) => !off(fc.statementMap?.[k]?.start.line ?? -1));
    const b = Object.entries(fc.b).filter(([k]) => {
      const loc = fc.branchMap?.[k]?.loc ?? fc.branchMap?.[k]?.locations?.[0];
      return !off(loc?.start.line ?? -1);
    });
    const f = Object.entries(fc.f).filter(([k]) => !names.has(fc.fnMap[k]!.name));
    rows.push({
      file,
      statements: count(s.map(([, n]) => n)),
      branches: count(b.flatMap(([, n]) => n)),
      functions: count(f.map(([, n]) => n)),
    });
  }
  return rows.sort((a, b) => a.file.localeCompare(b.file));
}

/**
 * The list's stale entries: an off-path function the run entered (it is on a path after all), or one
 * the coverage data does not have (renamed or removed). Files the data lacks are not checked.
 */
export function staleOffPath(
  final: Record<string, FileCoverage>,
  root: string,
  list: readonly OffPath[] = OFF_PATH,
): string[] {
  const out: string[] = [];
  const byFile = new Map(pick(final, root, [...new Set(list.map((o) => o.file.split('/')[0]!))], () => false));
  for (const o of list) {
    const fc = byFile.get(o.file);
    if (!fc) continue;
    for (const name of o.functions) {
      const fns = Object.entries(fc.fnMap).filter(([, fn]) => fn.name === name);
      if (!fns.length) out.push(`${o.file} ${name}: listed off the paths, but no such function`);
      else if (fns.some(([k]) => fc.f[k]! > 0))
        out.push(`${o.file} ${name}: listed off the paths, but the run entered it`);
    }
  }
  return out;
}
