// install.sh fails loudly and leaves the previous install as it was (issue 18 point 8). Staged
// with --destdir into a temporary directory: nothing on this machine changes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

const root = path.resolve(__dirname, '..', '..', '..');
const script = path.join(root, 'install.sh');

/** A PATH holding only the tools install.sh needs, node, and (optionally) an npm of our own. */
function toolDir(dir: string, npm: string | null): string {
  const bin = path.join(dir, 'bin');
  fs.mkdirSync(bin, { recursive: true });
  const tools = ['bash', 'sed', 'cat', 'cp', 'mv', 'rm', 'mkdir', 'find', 'chmod', 'head', 'dirname', 'id', 'install', 'seq', 'tr', 'grep', 'wc', 'pwd', 'printf'];
  for (const t of ['node', ...tools]) {
    const where = spawnSync('bash', ['-c', `command -v ${t}`], { encoding: 'utf8' }).stdout.trim();
    if (where.startsWith('/')) fs.symlinkSync(where, path.join(bin, t));
  }
  if (npm !== null) fs.writeFileSync(path.join(bin, 'npm'), npm, { mode: 0o755 });
  return bin;
}

function run(dir: string, bin: string) {
  return spawnSync('bash', [script, '--no-deps', '--no-build', '--destdir', path.join(dir, 'root')], {
    encoding: 'utf8',
    env: { PATH: bin, HOME: dir },
    timeout: 60_000,
  });
}

test('install.sh without npm on PATH names npm, exits 69 and leaves nothing half-built', (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tallow-inst-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const r = run(dir, toolDir(dir, null));
  assert.equal(r.status, 69, r.stdout + r.stderr);
  assert.match(r.stderr, /install\.sh: npm is not installed/);
  assert.equal(fs.existsSync(path.join(dir, 'root/usr/local/lib/tallow.new')), false);
  assert.equal(fs.existsSync(path.join(dir, 'root/usr/local/lib/tallow')), false);
});

test('install.sh whose npm fails names the step, removes the new tree and keeps the previous install', (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tallow-inst-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const previous = path.join(dir, 'root/usr/local/lib/tallow');
  fs.mkdirSync(previous, { recursive: true });
  fs.writeFileSync(path.join(previous, 'marker'), 'the previous install');
  const r = run(dir, toolDir(dir, '#!/bin/sh\necho "npm ERR! broken tree" >&2\nexit 1\n'));
  assert.notEqual(r.status, 0, r.stdout + r.stderr);
  assert.match(r.stderr, /npm ls failed: npm ERR! broken tree/);
  assert.match(r.stderr, /failed while listing the production dependencies .* the previous install, if any, is unchanged/);
  assert.equal(fs.readFileSync(path.join(previous, 'marker'), 'utf8'), 'the previous install');
  assert.equal(fs.existsSync(`${previous}.new`), false);
});
