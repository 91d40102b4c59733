#!/usr/bin/env node
// Runs every compiled test file under dist/test with Node's built-in runner.
// Files are listed here (not passed as a directory) because Node 20 and Node 22
// disagree on how a directory argument to `node --test` is read.
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const { spawnSync } = require('node:child_process');

const root = path.resolve(__dirname, '..');
const groups = process.argv.slice(2).length ? process.argv.slice(2) : ['unit', 'real'];
const files = [];
function walk(dir) {
  if (!fs.existsSync(dir)) return;
  for (const name of fs.readdirSync(dir).sort()) {
    const p = path.join(dir, name);
    if (fs.statSync(p).isDirectory()) walk(p);
    else if (name.endsWith('.test.js')) files.push(p);
  }
}
for (const g of groups) walk(path.join(root, 'dist', 'test', g));
if (files.length === 0) {
  console.error(`run-tests: no compiled test files under dist/test/{${groups.join(',')}}: run "npm run build" first`);
  process.exit(1);
}
// One file at a time: the real-component tests create network and mount namespaces
// and a 2-core machine gives nothing back for running them side by side.
// A per-test timeout turns a hang (a stalled regex, a daemon that never answers) into a failure.
const r = spawnSync(process.execPath, ['--test', '--test-concurrency=1', '--test-timeout=600000', ...files], { stdio: 'inherit' });
process.exit(r.status === null ? 1 : r.status);
