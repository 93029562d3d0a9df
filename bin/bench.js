#!/usr/bin/env node
'use strict';
const path = require('node:path');
const { ensureBuilt, root } = require('./build');
ensureBuilt();
require(path.join(root, 'dist', 'bench', 'index.js'));
