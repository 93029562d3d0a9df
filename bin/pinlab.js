#!/usr/bin/env node
// Entry point: runs the compiled CLI from dist/ (rebuilt first when the sources are newer).
'use strict';
const path = require('node:path');
const { ensureBuilt, root } = require('./build');
ensureBuilt();
// A closed pipe (pinlab ... | head) ends the output quietly, as it does for any Unix tool.
process.stdout.on('error', (e) => { if (e.code === 'EPIPE') process.exit(0); throw e; });
const { run } = require(path.join(root, 'dist', 'harness', 'cli.js'));
run(process.argv.slice(2));
