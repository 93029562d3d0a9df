#!/usr/bin/env node
// Entry point: runs the compiled CLI from dist/ (rebuilt first when the sources are newer).
'use strict';
const path = require('node:path');
const { ensureBuilt, root } = require('./build');
ensureBuilt();
const { run } = require(path.join(root, 'dist', 'harness', 'cli.js'));
run(process.argv.slice(2));
