#!/usr/bin/env node
// Entry point: loads the TypeScript sources through tsx (no build step), then runs the CLI.
'use strict';
require('tsx/cjs');
const { main } = require('../harness/cli.ts');
const code = main(process.argv.slice(2), {
  out: (s) => process.stdout.write(s),
  err: (s) => process.stderr.write(s),
});
process.exitCode = typeof code === 'number' ? code : 0;
