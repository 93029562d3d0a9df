#!/usr/bin/env node
// Entry point: runs the compiled CLI from dist/ (rebuilt first when the sources are newer).
'use strict';
// Signals first: a Ctrl-C or SIGTERM from here on is remembered, not fatal (bin/signals.js).
const signals = require('./signals');
signals.install();
const path = require('node:path');
const { ensureBuiltAsync, root } = require('./build');
// A closed pipe (pinlab ... | head) ends the output quietly, as it does for any Unix tool.
process.stdout.on('error', (e) => {
  if (e.code === 'EPIPE') process.exit(0);
  throw e;
});
void ensureBuiltAsync(signals).then(() => {
  const { run } = require(path.join(root, 'dist', 'harness', 'cli', 'index.js'));
  // a turn of the event loop first: a signal that came while the CLI loaded is seen before it starts
  setImmediate(() => run(process.argv.slice(2), signals));
});
