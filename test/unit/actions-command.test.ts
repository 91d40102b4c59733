// Command actions run real programs the test writes: the argument vector and environment they
// receive, no shell in between, the timeout that kills a hanging one (and what it started), and
// floods of 5,000 bans that reach the program exactly once each, a few runs at a time or in batches.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { CommandListener } from '../../src/actions/command';
import type { CommandAction } from '../../src/actions/settings';
import { parseConfig } from '../../src/config';
import type { Ban } from '../../src/ledger';
import { addresses, ban, collector, program, tempDir, waitFor, wire } from './actions-helpers';

function fromConf(text: string): CommandAction {
  const c = parseConfig(text, 'test.conf');
  const a = c.actionDefs?.[0];
  assert.ok(a && a.kind === 'command', JSON.stringify(c.actionDefs));
  return a;
}

const aBan = (over: Partial<Ban> & Record<string, unknown> = {}): Ban =>
  ({ address: '203.0.113.7', family: 4, since: 1_750_000_000_000, expiry: 1_750_000_600_000, origin: 'rule', reason: 'threshold', pattern: 'sshd.json#2', score: 1.25, count: 5, ...over }) as Ban;

test('command: every placeholder and TALLOW_* variable filled, one argument per word, no shell', async (t) => {
  const dir = tempDir(t, 'cmd-argv');
  const rec = program(dir, 'rec', `#!/bin/sh\nout="${dir}/$TALLOW_EVENT"\nprintf '%s\\0' "$0" "$@" > "$out.argv"\nenv | grep '^TALLOW_' | sort > "$out.env"\n`);
  const a = fromConf(
    [
      `action.rec.ban_command=${rec} --address={address} %s "{rule}" '{pattern}' two\\ words {family} {seconds} {score} {count} {reason} {network} {event} "{unknown_in_quotes"`,
      `action.rec.unban_command=${rec} {address} {reason} {seconds}`,
      '',
    ].join('\n'),
  );
  const log = collector();
  const l = new CommandListener(a, log);
  // A rule name (rules per service, not yet in the ledger) a shell would run: it must stay one inert argument.
  const evil = `x; touch ${dir}/pwned1 $(touch ${dir}/pwned2) \`touch ${dir}/pwned3\` | & > ${dir}/pwned4`;
  const b = aBan({ rule: evil, pattern: `a'b"c $HOME` });
  await l.handle([{ kind: 'ban', ban: b, cause: 'new' }]);
  await l.flush();
  const argv = fs.readFileSync(path.join(dir, 'ban.argv'), 'utf8').split('\0').slice(0, -1);
  assert.deepEqual(argv, [rec, '--address=203.0.113.7', '203.0.113.7', evil, `a'b"c $HOME`, 'two words', '4', '600', '1.25', '5', 'threshold', '203.0.113.7/32', 'ban', '{unknown_in_quotes']);
  for (const f of ['pwned1', 'pwned2', 'pwned3', 'pwned4']) assert.equal(fs.existsSync(path.join(dir, f)), false, `${f}: a shell ran`);
  const env = fs.readFileSync(path.join(dir, 'ban.env'), 'utf8');
  for (const line of ['TALLOW_ADDRESS=203.0.113.7', 'TALLOW_FAMILY=4', 'TALLOW_SECONDS=600', 'TALLOW_SCORE=1.25', 'TALLOW_COUNT=5', 'TALLOW_REASON=threshold', 'TALLOW_NETWORK=203.0.113.7/32', 'TALLOW_EVENT=ban', 'TALLOW_PATTERN=sshd.json#2'.replace('sshd.json#2', `a'b"c $HOME`), `TALLOW_RULE=${evil}`]) {
    assert.ok(env.split('\n').includes(line), `${line} missing in\n${env}`);
  }
  // The unban: its own command, the unban's reason.
  await l.handle([{ kind: 'unban', ban: aBan({ address: '2001:db8::7', family: 6 }), reason: 'manual', at: 1_750_000_100_000 }]);
  await l.flush();
  assert.deepEqual(fs.readFileSync(path.join(dir, 'unban.argv'), 'utf8').split('\0').slice(0, -1), [rec, '2001:db8::7', 'manual', '600']);
  // Restored and adopted bans are not acted on again (restored=1 would).
  fs.rmSync(path.join(dir, 'ban.argv'));
  await l.handle([{ kind: 'ban', ban: b, cause: 'restored' }, { kind: 'ban', ban: b, cause: 'adopted' }]);
  await l.flush();
  assert.equal(fs.existsSync(path.join(dir, 'ban.argv')), false);
  // Something that is not an address never reaches the program.
  await l.handle([{ kind: 'ban', ban: aBan({ address: '-rf /' }), cause: 'new' }]);
  await l.flush();
  assert.equal(fs.existsSync(path.join(dir, 'ban.argv')), false);
  assert.match(log.errors.join('\n'), /not an address/);
  assert.equal(l.stats.runs, 2);
});

test('command: a hanging program is killed at its timeout with what it started; later bans still run; failures logged with output', async (t) => {
  const dir = tempDir(t, 'cmd-hang');
  const done = path.join(dir, 'done');
  const script = program(
    dir,
    'cmd',
    `#!/bin/sh
case "$1" in
  203.0.113.66) sleep 1000 & echo $! > "${dir}/child.pid"; wait ;;
  203.0.113.67) echo "out of luck" ; echo "no such chain" >&2 ; exit 3 ;;
  *) echo "$1" >> "${done}" ;;
esac
`,
  );
  const log = collector();
  const l = new CommandListener({ kind: 'command', name: 'h', where: 't:1', queue: 1000, timeoutMs: 500, ban: [script, '{address}'], unban: null, concurrency: 1, batch: 0, restored: false }, log);
  const { ledger, events } = wire([l], log);
  const now = Date.now();
  for (const a of ['203.0.113.66', '203.0.113.67', '203.0.113.68', '203.0.113.69']) ledger.ban(ban(a), now);
  await events.flush(20_000);
  assert.deepEqual(fs.readFileSync(done, 'utf8').trim().split('\n'), ['203.0.113.68', '203.0.113.69']);
  // The sleep the script started is gone too: the whole process group was killed.
  const child = Number(fs.readFileSync(path.join(dir, 'child.pid'), 'utf8'));
  await waitFor('the hanging child to be killed', () => {
    try {
      process.kill(child, 0);
      return false;
    } catch {
      return true;
    }
  }, 5000);
  assert.equal(l.stats.timeouts, 1);
  assert.equal(l.stats.failures, 2);
  const errs = log.errors.join('\n');
  assert.match(errs, /action\.h: ban 203\.0\.113\.66: killed after the 0\.5 s timeout/);
  assert.match(errs, /action\.h: ban 203\.0\.113\.67: exit 3 .*"stdout":"out of luck","stderr":"no such chain"/);
  await events.close();
});

test('command: 5,000 bans, one run per address, at most N at once: every address exactly once', async (t) => {
  const dir = tempDir(t, 'cmd-flood');
  const out = path.join(dir, 'log');
  const script = program(dir, 'cmd', `#!/bin/sh\necho "$TALLOW_EVENT $1" >> "${out}"\n`);
  const l = new CommandListener({ kind: 'command', name: 'f', where: 't:1', queue: 100_000, timeoutMs: 30_000, ban: [script, '{address}'], unban: null, concurrency: 8, batch: 0, restored: false }, collector());
  const { ledger, events } = wire([l]);
  const all = addresses(5000);
  for (let i = 0; i < all.length; i += 50) {
    const now = Date.now();
    for (const a of all.slice(i, i + 50)) ledger.ban(ban(a), now);
    await new Promise((r) => setImmediate(r));
  }
  await events.flush(300_000);
  const lines = fs.readFileSync(out, 'utf8').trim().split('\n');
  assert.equal(lines.length, 5000);
  assert.deepEqual([...lines].sort(), all.map((a) => `ban ${a}`).sort());
  assert.equal(l.stats.runs, 5000);
  assert.equal(l.stats.failures, 0);
  await events.close();
});

test('command: concurrency is a bound (never above N) and used (above 1)', async (t) => {
  const dir = tempDir(t, 'cmd-conc');
  const out = path.join(dir, 'log');
  const script = program(dir, 'cmd', `#!/bin/sh\necho "start $(date +%s%N)" >> "${out}"\nsleep 0.2\necho "end $(date +%s%N)" >> "${out}"\n`);
  const l = new CommandListener({ kind: 'command', name: 'c', where: 't:1', queue: 1000, timeoutMs: 30_000, ban: [script], unban: null, concurrency: 3, batch: 0, restored: false }, collector());
  const { ledger, events } = wire([l]);
  const now = Date.now();
  for (const a of addresses(15)) ledger.ban(ban(a), now);
  await events.flush(60_000);
  const marks = fs.readFileSync(out, 'utf8').trim().split('\n').map((s) => s.split(' ')).map(([k, ns]) => ({ k, ns: BigInt(ns) }));
  marks.sort((a, b) => (a.ns < b.ns ? -1 : a.ns > b.ns ? 1 : a.k === 'end' ? -1 : 1));
  let now2 = 0;
  let most = 0;
  for (const m of marks) most = Math.max(most, (now2 += m.k === 'start' ? 1 : -1));
  assert.equal(marks.length, 30);
  assert.ok(most <= 3, `at most 3 at once, saw ${most}`);
  assert.ok(most >= 2, `runs overlapped (${most})`);
  await events.close();
});

test('command: runs for one address keep their order (ban, unban, ban...) while others run beside them', async (t) => {
  const dir = tempDir(t, 'cmd-order');
  const out = path.join(dir, 'log');
  // The ban run is slower than the unban run: without the per-address order the unban would finish first.
  const script = program(dir, 'cmd', `#!/bin/sh\n[ "$TALLOW_EVENT" = ban ] && sleep 0.05\necho "$TALLOW_EVENT $1" >> "${out}"\n`);
  const l = new CommandListener({ kind: 'command', name: 'o', where: 't:1', queue: 1000, timeoutMs: 30_000, ban: [script, '{address}'], unban: [script, '{address}'], concurrency: 4, batch: 0, restored: false }, collector());
  const { ledger, events } = wire([l]);
  const some = ['203.0.113.1', '203.0.113.2', '2001:db8::3'];
  for (let round = 0; round < 3; round++) {
    for (const a of some) ledger.ban(ban(a), Date.now());
    for (const a of some) ledger.unban(a, 'manual', Date.now());
  }
  await events.flush(60_000);
  const lines = fs.readFileSync(out, 'utf8').trim().split('\n');
  for (const a of some) assert.deepEqual(lines.filter((s) => s.endsWith(` ${a}`)).map((s) => s.split(' ')[0]), ['ban', 'unban', 'ban', 'unban', 'ban', 'unban'], a);
  await events.close();
});

test('command: batch mode: 5,000 bans and 300 unbans in runs of at most 500 addresses on standard input, each once, in order', async (t) => {
  const dir = tempDir(t, 'cmd-batch');
  const out = path.join(dir, 'log');
  const script = program(dir, 'cmd', `#!/bin/sh\n{ echo "run $1 $TALLOW_EVENT $TALLOW_BATCH"; cat; } >> "${out}"\n`);
  const a = fromConf(`action.fw.ban_command=${script} {event}\naction.fw.unban_command=${script} {event}\naction.fw.batch=500\n`);
  const l = new CommandListener(a, collector());
  const { ledger, events } = wire([l]);
  const all = addresses(5000);
  for (let i = 0; i < all.length; i += 50) {
    const now = Date.now();
    for (const x of all.slice(i, i + 50)) ledger.ban(ban(x), now);
    await new Promise((r) => setImmediate(r));
  }
  for (const x of all.slice(0, 300)) ledger.unban(x, 'manual', Date.now());
  await events.flush(120_000);
  const lines = fs.readFileSync(out, 'utf8').trim().split('\n');
  const got: Record<string, string[]> = { ban: [], unban: [] };
  let runs = 0;
  for (let i = 0; i < lines.length; ) {
    const [, arg, event, n] = lines[i].split(' ');
    assert.equal(arg, event, lines[i]);
    const part = lines.slice(i + 1, i + 1 + Number(n));
    assert.ok(part.length === Number(n) && part.length <= 500 && part.every((s) => !s.startsWith('run ')), `run ${runs}: ${lines[i]}`);
    got[event].push(...part);
    i += 1 + part.length;
    runs++;
  }
  assert.deepEqual(got.ban, all);
  assert.deepEqual(got.unban, all.slice(0, 300));
  assert.ok(runs >= 11 && runs < 200, `${runs} runs`);
  assert.equal(l.stats.addresses, 5300);
  await events.close();
});

test('command: a program that is not there fails each run with a logged reason, and the listener goes on', async (t) => {
  const dir = tempDir(t, 'cmd-missing');
  const log = collector();
  const l = new CommandListener({ kind: 'command', name: 'm', where: 't:1', queue: 1000, timeoutMs: 5000, ban: [path.join(dir, 'nope'), '{address}'], unban: null, concurrency: 2, batch: 0, restored: false }, log);
  await l.handle([{ kind: 'ban', ban: aBan(), cause: 'new' }]);
  await l.flush();
  assert.equal(l.stats.failures, 1);
  assert.match(log.errors.join('\n'), /action\.m: ban 203\.0\.113\.7: could not start: ENOENT/);
});
