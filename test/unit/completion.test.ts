// bash completion (completion/tallow.bash): subcommands, options, and the daemon's answers (rule
// names from `tallow rules`, banned addresses from `tallow list`), read from a stand-in program
// that prints what the real client prints (test/real/allow.test.ts asks a real daemon).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

const ROOT = path.resolve(__dirname, '..', '..', '..');
const SCRIPT = path.join(ROOT, 'completion', 'tallow.bash');

/** COMPREPLY for these words, the last one being completed. */
function complete(words: string[]): string[] {
  const arr = words.map((w) => `'${w.replace(/'/g, `'\\''`)}'`).join(' ');
  const r = spawnSync('bash', ['-c', `source ${SCRIPT}; COMP_WORDS=(${arr}); COMP_CWORD=${words.length - 1}; _tallow; printf '%s\\n' "\${COMPREPLY[@]}"`], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stderr, '');
  return r.stdout.split('\n').filter(Boolean);
}

test('completion: the brief\'s own check: `tallow un` completes to unban', () => {
  const r = spawnSync('bash', ['-c', `source ${SCRIPT}; COMP_WORDS=(tallow un); COMP_CWORD=1; _tallow; echo "\${COMPREPLY[@]}"`], { encoding: 'utf8' });
  assert.equal(r.stdout, 'unban\n');
});

test('completion: subcommands, daemon options, each subcommand\'s options and words', () => {
  assert.deepEqual(complete(['tallow', 'r']), ['rules', 'reload', 'report']);
  assert.deepEqual(complete(['tallow', '--d']), ['--dry-run']);
  assert.deepEqual(complete(['tallow', '--config', '/etc/x.conf', 'st']), ['status']);
  assert.deepEqual(complete(['tallow', 'status', '--j']), ['--json']);
  assert.deepEqual(complete(['tallow', 'ban', '203.0.113.5', '--t']), ['--time']);
  assert.deepEqual(complete(['tallow', 'allow', '']), ['add', 'remove', 'list']);
  assert.deepEqual(complete(['tallow', 'report', '--format', 'h']), ['html']);
  assert.deepEqual(complete(['tallow', 'ban', '--time', '']), []);
});

test('completion: rule names and banned addresses from the daemon, asked with the line\'s --config', (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tallow-compl-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const fake = path.join(dir, 'tallow');
  const calls = path.join(dir, 'calls');
  // What `tallow rules` and `tallow list` print (formatRules, formatList).
  fs.writeFileSync(
    fake,
    `#!/bin/sh
echo "$*" >> ${calls}
case "$1" in
rules) printf 'rule sshd: enabled\\n  defined in: /x (block 1)\\nrule postfix: disabled\\n  ports:      25\\n' ;;
list) printf 'ADDRESS          RULE  PORTS  REMAINING  SCORE  COUNT  PATTERN\\n203.0.113.9      sshd  22     59s        1.00   2      sshd.json#1\\n2001:db8::/64    -     all    9m 1s      0.00   0      manual\\n' ;;
esac
`,
    { mode: 0o755 },
  );
  assert.deepEqual(complete([fake, 'rules', '--config', '/etc/t.conf', '']), ['sshd', 'postfix']);
  assert.deepEqual(complete([fake, 'list', '--rule', 'p']), ['postfix']);
  assert.deepEqual(complete([fake, 'unban', '2']), ['203.0.113.9', '2001:db8::/64']);
  assert.deepEqual(complete([fake, 'unban', '203.0.113.9', '']), [], 'one address only');
  assert.deepEqual(fs.readFileSync(calls, 'utf8').split('\n').filter(Boolean), ['rules --config /etc/t.conf', 'rules', 'list']);
});
