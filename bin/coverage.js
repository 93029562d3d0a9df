#!/usr/bin/env node
// `npm run coverage [-- CAMPAIGN OPTIONS]`: the default campaign under c8 (V8 coverage, worker threads
// included: NODE_V8_COVERAGE reaches every worker), reported per .ts file of mm/ and devices/ through
// dist/'s source maps, with the functions never entered. docs/coverage.md.
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const { spawnSync } = require('node:child_process');
const { ensureBuilt, root } = require('./build');

const FOLDERS = ['mm', 'devices'];
const DEFAULTS = { '--seed': '1', '--time': '600', '--kernel': 'v6.12', '--regressions': 'none' };
const HELP = `usage: npm run coverage -- [--out DIR] [--report-only] [CAMPAIGN OPTIONS]

Runs 'pinlab campaign' under c8 and prints the coverage of mm/ and devices/ per .ts file (statements,
branches, functions) and every function never entered. Campaign defaults:
  ${Object.entries(DEFAULTS)
    .map(([k, v]) => `${k} ${v}`)
    .join(' ')}
Other options go to the campaign (pinlab campaign --help). --out DIR (default coverage/) gets c8's
JSON and HTML reports; --report-only prints the report of the last run there again. Exit code: the
campaign's (2 on bad input, without a report). docs/coverage.md.
`;

function parseArgs(argv) {
  const args = [...argv];
  let out = path.join(root, 'coverage');
  const k = args.indexOf('--out');
  if (k >= 0) {
    if (!args[k + 1] || args[k + 1].startsWith('-')) {
      process.stderr.write('coverage: --out needs a directory\n');
      process.exit(2);
    }
    out = path.resolve(args[k + 1]);
    args.splice(k, 2);
  }
  for (const [opt, v] of Object.entries(DEFAULTS))
    if (!args.some((a) => a === opt || a.startsWith(opt + '='))) args.push(opt, v);
  return { out, args };
}

function main() {
  const argv = process.argv.slice(2);
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(HELP);
    return 0;
  }
  const reportOnly = argv.includes('--report-only');
  const { out, args } = parseArgs(argv.filter((a) => a !== '--report-only'));
  ensureBuilt();
  if (reportOnly) return report(out, 0);
  fs.rmSync(out, { recursive: true, force: true });
  const c8 = require.resolve('c8/bin/c8.js', { paths: [root] });
  const include = FOLDERS.flatMap((d) => ['--include', `dist/${d}/**`]);
  process.stderr.write(`coverage: pinlab campaign ${args.join(' ')}\n`);
  const r = spawnSync(
    process.execPath,
    [
      c8,
      '--all',
      ...include,
      '--temp-directory',
      path.join(out, 'tmp'),
      '--report-dir',
      out,
      '--reporter=json',
      '--reporter=html',
      process.execPath,
      path.join(root, 'bin', 'pinlab.js'),
      'campaign',
      ...args,
    ],
    { cwd: root, stdio: ['ignore', 'inherit', 'inherit'] },
  );
  if (r.status === 2 || r.status === null) return r.status ?? 1; // bad input (the campaign said so) or killed
  return report(out, r.status);
}

/** The table and the functions never entered, from c8's coverage-final.json in out; returns status. */
function report(out, status) {
  const report = require(path.join(root, 'dist', 'harness', 'coverage_report.js'));
  const { formatTable } = require(path.join(root, 'dist', 'bench', 'table.js'));
  let final;
  try {
    final = JSON.parse(fs.readFileSync(path.join(out, 'coverage-final.json'), 'utf8'));
  } catch (e) {
    process.stderr.write(`coverage: no report in ${out} (${e.code ?? e.message})\n`);
    return 2;
  }
  // modules of types only compile to no code: not counted (docs/coverage.md)
  const skip = (file) => {
    try {
      return report.typesOnly(fs.readFileSync(path.join(root, 'dist', file.replace(/\.ts$/, '.js')), 'utf8'));
    } catch {
      return false;
    }
  };
  const rows = report.fileRows(final, root, FOLDERS, skip);
  process.stdout.write(`\n== coverage of ${FOLDERS.map((d) => d + '/').join(' and ')} ==\n`);
  process.stdout.write(formatTable(report.tableRows([...rows, ...report.totals(rows, FOLDERS)])));
  const never = report.neverEntered(final, root, FOLDERS, skip);
  process.stdout.write(`\n== functions never entered (${never.length}) ==\n${never.join('\n')}\n`);
  // the same less the functions harness/coverage_scope.ts puts off the default variant's paths
  const { OFF_PATH } = require(path.join(root, 'dist', 'harness', 'coverage_scope.js'));
  const on = report.onPathRows(final, root, FOLDERS, skip, OFF_PATH);
  const offFns = OFF_PATH.reduce((n, o) => n + o.functions.length, 0);
  process.stdout.write(
    `\n== on the default variant's paths (less the ${offFns} functions of harness/coverage_scope.ts) ==\n`,
  );
  process.stdout.write(formatTable(report.tableRows(report.totals(on, FOLDERS))));
  const gaps = report.neverEntered(final, root, FOLDERS, skip, OFF_PATH);
  process.stdout.write(`\n== on the paths, never entered (${gaps.length}) ==\n${gaps.join('\n')}\n`);
  const stale = report.staleOffPath(final, root, OFF_PATH);
  if (stale.length) process.stdout.write(`\n== stale entries of harness/coverage_scope.ts ==\n${stale.join('\n')}\n`);
  process.stderr.write(`coverage: reports in ${path.relative(process.cwd(), out) || out}/ (index.html)\n`);
  return status;
}

process.exitCode = main();
