// Compile the TypeScript sources to dist/ when they are newer than the last build (tsc's CommonJS
// emit; esbuild-style getter exports cost 6x on the mm hot paths). Used by bin/pinlab.js and bin/bench.js.
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const { spawnSync } = require('node:child_process');

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

function ensureBuilt() {
  let built = 0;
  try { built = fs.statSync(stamp).mtimeMs; } catch { /* never built */ }
  if (built >= newestSource()) return;
  const tsc = require.resolve('typescript/bin/tsc', { paths: [root] });
  const r = spawnSync(process.execPath, [tsc, '-p', path.join(root, 'tsconfig.build.json')], { stdio: ['ignore', 'inherit', 'inherit'] });
  if (r.status !== 0) {
    process.stderr.write('pinlab: building dist/ with tsc failed (see above)\n');
    process.exit(1);
  }
  fs.writeFileSync(stamp, new Date().toISOString() + '\n');
}

module.exports = { ensureBuilt, root };
if (require.main === module) ensureBuilt();
