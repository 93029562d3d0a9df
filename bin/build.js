// Compile the TypeScript sources to dist/ when they are newer than the last build (tsc's CommonJS
// emit; esbuild-style getter exports cost 6x on the mm hot paths). Used by bin/pinlab.js and bin/bench.js.
// Then the actor worker's code, as tsc emitted it, is bundled into one file (esbuild keeps each module's
// CommonJS exports as they are): a worker thread loads one file instead of ~90, 60-80 ms sooner a run.
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const { spawn, spawnSync } = require('node:child_process');

const root = path.join(__dirname, '..');
const stamp = path.join(root, 'dist', '.built');
/** The actor workers' code in one file (harness/pool.ts workerFile()); a worker with plugins loads dist/ instead. */
const WORKER_BUNDLE = path.join(root, 'dist', 'harness', 'worker.bundle.js');
const SOURCES = ['mm', 'devices', 'harness', 'properties', 'bench', 'test/plugins']; // test/plugins: PINLAB_PLUGINS

/** Every file under dir (relative to root) whose name passes keep. */
function filesUnder(dir, keep, out = []) {
  let entries;
  try {
    entries = fs.readdirSync(path.join(root, dir), { withFileTypes: true });
  } catch {
    return out;
  }
  for (const e of entries) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) filesUnder(p, keep, out);
    else if (keep(e.name)) out.push(p);
  }
  return out;
}

const isSource = (name) => name.endsWith('.ts') && !name.endsWith('.spec.ts') && !name.endsWith('.d.ts');

function sources() {
  return SOURCES.flatMap((d) => filesUnder(d, isSource)).sort();
}

/** The stamp holds the source list of the last build: a file added, deleted or renamed rebuilds too. */
function upToDate() {
  let built = 0;
  let list = '';
  try {
    built = fs.statSync(stamp).mtimeMs;
    list = fs.readFileSync(stamp, 'utf8');
  } catch {
    /* never built */
  }
  const src = sources();
  if (list !== src.join('\n') + '\n' || (hasWorker(src) && !fs.existsSync(WORKER_BUNDLE))) return false;
  let newest = fs.statSync(path.join(root, 'tsconfig.json')).mtimeMs;
  for (const p of src) newest = Math.max(newest, fs.statSync(path.join(root, p)).mtimeMs);
  return built >= newest;
}

/**
 * tsc never deletes what it emitted for a source that is gone: remove it, or a stale dist/harness/x.js
 * would shadow a new folder harness/x/. Then bundle the worker and write the stamp.
 */
function finishBuild() {
  const src = sources();
  const have = new Set(src.map((p) => p.replace(/\.ts$/, '')));
  for (const p of SOURCES.flatMap((d) => filesUnder(path.join('dist', d), (n) => /\.(js|js\.map|d\.ts)$/.test(n)))) {
    const base = path.relative('dist', p).replace(/\.(js|js\.map|d\.ts)$/, '');
    if (!have.has(base)) fs.rmSync(path.join(root, p), { force: true });
  }
  if (hasWorker(src)) bundleWorker();
  fs.writeFileSync(stamp, src.join('\n') + '\n');
}

/** Whether the sources have an actor worker to bundle (a project without one builds as tsc leaves it). */
const hasWorker = (src) => src.includes(path.join('harness', 'worker.ts'));

/** dist/harness/worker.js and everything it imports, in one file (no plugins: those load at run time). */
function bundleWorker() {
  try {
    const esbuild = require(require.resolve('esbuild', { paths: [root] }));
    esbuild.buildSync({
      entryPoints: [path.join(root, 'dist', 'harness', 'worker.js')],
      outfile: WORKER_BUNDLE,
      bundle: true,
      platform: 'node',
      format: 'cjs',
      target: 'node20',
      sourcemap: true,
      logLevel: 'silent',
    });
  } catch (e) {
    process.stderr.write(`pinlab: bundling dist/harness/worker.js failed: ${e.message.split('\n')[0]}\n`);
    process.exit(1);
  }
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
  finishBuild();
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
      finishBuild();
      resolve();
    });
  });
}

module.exports = { ensureBuilt, ensureBuiltAsync, root };
if (require.main === module) ensureBuilt();
