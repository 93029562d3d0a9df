// Compile the TypeScript sources to dist/ when they are newer than the last build (tsc's CommonJS
// emit; esbuild-style getter exports cost 6x on the mm hot paths). Used by bin/pinlab.js and bin/bench.js.
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const { spawn, spawnSync } = require('node:child_process');

const root = path.join(__dirname, '..');
const stamp = path.join(root, 'dist', '.built');
const SOURCES = ['mm', 'devices', 'harness', 'properties', 'bench'];

function newestSource() {
  let newest = fs.statSync(path.join(root, 'tsconfig.json')).mtimeMs;
  const walk = (dir) => {
    let entries;
    try { entries = fs.readdirSync(dir, { withFileTypes: true }); } catch { return; }
    for (const e of entries) {
      const p = path.join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.name.endsWith('.ts')) newest = Math.max(newest, fs.statSync(p).mtimeMs);
    }
  };
  for (const d of SOURCES) walk(path.join(root, d));
  return newest;
}

function upToDate() {
  let built = 0;
  try { built = fs.statSync(stamp).mtimeMs; } catch { /* never built */ }
  return built >= newestSource();
}

function tscArgs() {
  return [require.resolve('typescript/bin/tsc', { paths: [root] }), '-p', path.join(root, 'tsconfig.build.json')];
}

function failed() {
  process.stderr.write('pinlab: building dist/ with tsc failed (see above)\n');
  process.exit(1);
}

function ensureBuilt() {
  if (upToDate()) return;
  const r = spawnSync(process.execPath, tscArgs(), { stdio: ['ignore', 'inherit', 'inherit'] });
  if (r.status !== 0) failed();
  fs.writeFileSync(stamp, new Date().toISOString() + '\n');
}

/**
 * ensureBuilt() that lets signals in (signals: bin/signals.js): on SIGINT or SIGTERM tsc is stopped and
 * the process exits 128 + the signal number with one line; dist/ is built again next time.
 */
function ensureBuiltAsync(signals) {
  if (upToDate()) return Promise.resolve();
  return new Promise((resolve) => {
    const child = spawn(process.execPath, tscArgs(), { stdio: ['ignore', 'inherit', 'inherit'] });
    const undo = signals.onInterrupt(() => child.kill('SIGTERM'));
    child.on('error', (e) => {
      process.stderr.write(`pinlab: cannot run tsc to build dist/: ${e.message}\n`);
      process.exit(1);
    });
    child.on('exit', (code) => {
      undo();
      if (signals.interrupt.stopped) {
        process.stderr.write(`pinlab: interrupted (${signals.interrupt.signal}) while building dist/\n`);
        process.exit(signals.exitCode());
      }
      if (code !== 0) failed();
      fs.writeFileSync(stamp, new Date().toISOString() + '\n');
      resolve();
    });
  });
}

module.exports = { ensureBuilt, ensureBuiltAsync, root };
if (require.main === module) ensureBuilt();
