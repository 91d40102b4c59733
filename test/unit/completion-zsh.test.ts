// zsh completion (completion/_tallow) run by zsh's own completion system: an interactive zsh in a
// pseudo-terminal (zsh/zpty), compinit with the completion directory first in fpath, a line typed
// and Tab pressed. What compsys offers is recorded by wrapping compadd (`compadd -O` lists the
// matches it would add for the typed prefix); a widget bound to ^T records the line after Tab.
// Rule names and banned addresses come from a stand-in program, as in completion.test.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

const ROOT = path.resolve(__dirname, '..', '..', '..');
const DIR = path.join(ROOT, 'completion');

// $1 the completion directory, $2 the output file, then the lines to complete. After each line,
// Tab then ^T; the next line only once ^T's BUFFER= line is in the file (keys are read in order).
const DRIVER = `zmodload zsh/zpty
dir=$1 out=$2; shift 2
n=0
zpty z "zsh -f -i"
step() { zpty -w z "$1"; zpty -r -m z chunk '*READY*' >/dev/null || { print -u2 "no prompt after: $1"; exit 1 } }
step "PS1='READY> '; fpath=($dir \\$fpath); autoload -U compinit; compinit -u -D; zstyle ':completion:*' menu no"
step "compadd() { local -a m; builtin compadd -O m \\"\\$@\\"; print -r -- \\"OFFER=\\\${(j: :)m}\\" >> $out; builtin compadd \\"\\$@\\" }"
step "mark() { print -r -- \\"BUFFER=\\$BUFFER\\" >> $out; BUFFER= }; zle -N mark; bindkey '^T' mark"
for line in "$@"; do
  zpty -n -w z "$line"$'\\t\\x14'
  n=$((n + 1))
  for ((t = 0; t < 400; t++)); do
    (( $(grep -c '^BUFFER=' $out) >= n )) && break
    sleep 0.05
  done
done
zpty -w z 'exit'
zpty -d z
`;

function tmpdir(t: { after(fn: () => void): void }): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tallow-zsh-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** For each line: what compadd was asked to offer (matches of the typed prefix) and the line after Tab. */
function complete(dir: string, lines: string[]): { offered: string[]; buffer: string }[] {
  const driver = path.join(dir, 'drive.zsh');
  const out = path.join(dir, 'out');
  fs.writeFileSync(driver, DRIVER);
  fs.writeFileSync(out, '');
  const r = spawnSync('zsh', ['-f', driver, DIR, out, ...lines], { encoding: 'utf8', timeout: 60_000 });
  assert.equal(r.error, undefined, 'zsh runs (scripts/deps.sh installs it)');
  assert.equal(r.status, 0, r.stderr);
  const res: { offered: string[]; buffer: string }[] = [];
  let offered: string[] = [];
  for (const l of fs.readFileSync(out, 'utf8').split('\n').filter(Boolean)) {
    if (l.startsWith('OFFER=')) offered.push(...l.slice(6).split(' ').filter(Boolean));
    else if (l.startsWith('BUFFER=')) {
      res.push({ offered, buffer: l.slice(7) });
      offered = [];
    } else assert.fail(`unexpected line ${JSON.stringify(l)}`);
  }
  assert.equal(res.length, lines.length, 'one result per line');
  return res;
}

test('zsh completion: subcommands, daemon options, each subcommand\'s options and words', (t) => {
  const r = complete(tmpdir(t), [
    'tallow un',
    'tallow r',
    'tallow --d',
    'tallow --config /etc/x.conf st',
    'tallow status --j',
    'tallow ban 203.0.113.5 --t',
    'tallow allow ',
    'tallow report --format h',
    'tallow ban --time ',
  ]);
  assert.deepEqual(r, [
    { offered: ['unban'], buffer: 'tallow unban ' },
    { offered: ['rules', 'reload', 'report'], buffer: 'tallow r' },
    { offered: ['--dry-run'], buffer: 'tallow --dry-run ' },
    { offered: ['status'], buffer: 'tallow --config /etc/x.conf status ' },
    { offered: ['--json'], buffer: 'tallow status --json ' },
    { offered: ['--time'], buffer: 'tallow ban 203.0.113.5 --time ' },
    { offered: ['add', 'remove', 'list'], buffer: 'tallow allow ' },
    { offered: ['html'], buffer: 'tallow report --format html ' },
    { offered: [], buffer: 'tallow ban --time ' },
  ]);
});

test('zsh completion: rule names and banned addresses from the daemon, asked with the line\'s --config', (t) => {
  const dir = tmpdir(t);
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
  const r = complete(dir, [`${fake} rules --config /etc/t.conf `, `${fake} list --rule p`, `${fake} unban 2`, `${fake} unban 203.0.113.9 `]);
  assert.deepEqual(r.map((x) => x.offered), [['sshd', 'postfix'], ['postfix'], ['203.0.113.9', '2001:db8::/64'], []]);
  assert.equal(r[1].buffer, `${fake} list --rule postfix `);
  assert.deepEqual(fs.readFileSync(calls, 'utf8').split('\n').filter(Boolean), ['rules --config /etc/t.conf', 'rules', 'list']);
});
