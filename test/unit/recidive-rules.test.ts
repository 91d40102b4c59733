// Repeat offenders per rule (issue 15.3): bantime_increment, bantime_max and recidive_window as
// rule keys of a patterns block or an override block, tallow.conf's values when a rule gives none;
// steps counted per score pool (a rule with a policy of its own counts its own bans; tallow's
// policy-free files share one count, as before). Fake clock through BanSteps and the ledger; then
// a real daemon (backend=none, the real SQLite history in state_dir) across a restart.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseConfig, type Config } from '../../src/config';
import type { ListItem } from '../../src/control-results';
import { Daemon } from '../../src/daemon';
import type { JournalEntry } from '../../src/journal';
import { Ledger } from '../../src/ledger';
import { Log } from '../../src/log';
import { parsePatternFile, PatternError } from '../../src/patterns';
import { BanSteps, stepOptions } from '../../src/recidive';
import { resolveRules } from '../../src/rules';
import type { Rule } from '../../src/rule';
import type { BanDecision } from '../../src/tracker';

const H = 3_600_000;
const T0 = Date.UTC(2026, 10, 20, 0, 0, 0);
const item = { ban: 0, score: 1, pattern: '^fail <IP>$' };
const block = (extra: Record<string, unknown>) => ({ filter: '_SYSTEMD_UNIT=a.service', items: [item], ...extra });
const parse = (doc: unknown, name = 'x.json') => parsePatternFile(JSON.stringify(doc), name, `/etc/tallow/${name}`);

function rulesOf(...files: [string, unknown][]): Rule[] {
  return resolveRules(files.flatMap(([name, doc]) => parse(doc, name)), { threshold: 1, expires: 600 }).rules;
}

/** Decisions of the named rules -> steps -> ledger, as daemon.process wires them; returns [seconds, step] per ban. */
function world(c: Config, rules: Rule[]) {
  const steps = new BanSteps(stepOptions(c), rules);
  const feed = steps.listener();
  const ledger = new Ledger({ emit: (e) => feed.handle([e]) });
  const bantime = new Map(rules.map((r) => [r.name, r.bantime]));
  const ban = (rule: string, address: string, now: number): [number, number] => {
    ledger.expire(now);
    const d: BanDecision = { action: 'ban', address, family: 4, seconds: bantime.get(rule)!, score: 1, count: 1, pattern: `${rule}.json#1`, reason: 'threshold', scope: '', rule };
    const out = ledger.ban({ ...steps.apply(d, now), origin: 'rule' }, now);
    assert.ok(out.ok, `${rule} ${address} at +${(now - T0) / H} h`);
    return [Math.round((out.ban.expiry - out.ban.since) / 1000), out.ban.step ?? 0];
  };
  return { steps, ban };
}

test('per rule: a second ban of rule X doubles while the first ban of rule Y is not stepped; each rule its own window and cap', () => {
  const rules = rulesOf(
    ['x.json', [block({ name: 'X', bantime: 600, bantime_max: '30m' })]],
    ['y.json', [block({ name: 'Y', bantime: 600, recidive_window: 3600 })]],
  );
  const w = world(parseConfig('bantime_increment=2\nrecidive_window=1d\nbantime_max=1w\n', 'tallow.conf'), rules);
  const A = '203.0.113.10';
  assert.deepEqual(w.ban('X', A, T0), [600, 0]);
  assert.deepEqual(w.ban('X', A, T0 + 1 * H), [1200, 1], 'X again: twice as long');
  assert.deepEqual(w.ban('Y', A, T0 + 2 * H), [600, 0], "Y's first ban of the address: not stepped by X's");
  assert.deepEqual(w.ban('Y', A, T0 + 2.5 * H), [1200, 1], 'Y within its own window of 1 h');
  assert.deepEqual(w.ban('X', A, T0 + 3 * H), [1800, 2], "X's bantime_max (30m) caps 2400 s; tallow.conf's 1w does not apply to X");
  assert.deepEqual(w.ban('Y', A, T0 + 4 * H), [600, 0], "past Y's recidive_window (1 h; tallow.conf's 1 d would step it)");
  assert.deepEqual(w.ban('X', A, T0 + 20 * H), [1800, 3], 'X keeps tallow.conf\'s window of 1 d');
});

test('per rule: a list 1h,6h,1d (the last repeating), from a block or an override block; a rule may turn it off; others keep tallow.conf\'s', () => {
  const rules = rulesOf(
    ['mail.json', [block({ name: 'mail', bantime_increment: ['1h', '6h', 86400] })]],
    ['web.json', [block({ name: 'web', bantime: 600 })]],
    ['quiet.json', [block({ name: 'quiet', bantime: 600 })]],
    // An override from another file (how an administrator changes a shipped rule).
    ['local.json', [{ name: 'quiet', bantime_increment: 'off' }]],
  );
  assert.deepEqual(rules.map((r) => [r.name, r.pool, r.increment ?? 'conf']), [
    ['mail', 'mail', { kind: 'list', seconds: [3600, 21600, 86400] }],
    ['web', 'web', 'conf'],
    ['quiet', 'quiet', { kind: 'off' }],
  ]);
  const w = world(parseConfig('bantime_increment=3\nrecidive_window=1w\n', 'tallow.conf'), rules);
  const B = '198.51.100.20';
  const mail = [0, 2, 9, 40, 70].map((h) => w.ban('mail', B, T0 + h * H));
  assert.deepEqual(mail, [[3600, 0], [21600, 1], [86400, 2], [86400, 3], [86400, 4]]);
  assert.deepEqual([0, 1, 2].map((h) => w.ban('web', B, T0 + 100 * H + h * H)), [[600, 0], [1800, 1], [5400, 2]], "tallow.conf's factor 3");
  assert.deepEqual([0, 1].map((h) => w.ban('quiet', B, T0 + 110 * H + h * H)), [[600, 0], [600, 0]], 'off for this rule');
});

test("rules without a policy of their own (tallow's files) count together in the shared pool, as before", () => {
  const rules = rulesOf(['sshd.json', [block({})]], ['dovecot.json', [block({})]]);
  assert.deepEqual(rules.map((r) => [r.name, r.pool]), [['sshd', ''], ['dovecot', '']]);
  const w = world(parseConfig('bantime_increment=2\n', 'tallow.conf'), rules);
  assert.deepEqual(w.ban('sshd', '192.0.2.30', T0), [600, 0]);
  assert.deepEqual(w.ban('dovecot', '192.0.2.30', T0 + H), [1200, 1]);
  assert.equal(w.steps.stepFor('192.0.2.30', T0 + 2 * H), 2);
});

test('bad bantime_increment, bantime_max, recidive_window on a block: `file: block N: message`, PatternError exit 78', () => {
  const BAD: [Record<string, unknown>, string][] = [
    [{ bantime_increment: 1 }, '"bantime_increment": expected a factor above 1 (e.g. 2), a list of durations (e.g. 1h,6h,1d,1w) or off, got \'1\''],
    [{ bantime_increment: '1h,30m' }, '"bantime_increment": steps must not get shorter (\'30m\' after 3600 s) in \'1h,30m\''],
    [{ bantime_increment: ['1h', 'soon'] }, '"bantime_increment": \'soon\' is not a duration (like 30m, 6h, 1d, 1w; at most 2147483 s) in \'1h,soon\''],
    [{ bantime_increment: [] }, '"bantime_increment": expected a factor (e.g. 2), durations (e.g. "1h,6h,1d" or ["1h", "6h", "1d"]) or "off", got []'],
    [{ bantime_increment: { factor: 2 } }, '"bantime_increment": expected a factor (e.g. 2), durations (e.g. "1h,6h,1d" or ["1h", "6h", "1d"]) or "off", got {"factor":2}'],
    [{ bantime_max: 'forever' }, '"bantime_max": expected a duration (whole seconds, or text such as "6h", "1d", "1w") up to 2147483 s, got "forever"'],
    [{ bantime_max: 2147484 }, '"bantime_max": expected a duration (whole seconds, or text such as "6h", "1d", "1w") up to 2147483 s, got 2147484'],
    [{ recidive_window: 0 }, '"recidive_window": expected a duration (whole seconds, or text such as "6h", "1d", "1w") up to 315360000 s, got 0'],
    [{ recidive_window: 1.5 }, '"recidive_window": expected a duration (whole seconds, or text such as "6h", "1d", "1w") up to 315360000 s, got 1.5'],
    [{ action: 'notify', bantime_increment: 2 }, '"bantime_increment": a rule with "action": "notify" never scores or bans; leave it out'],
  ];
  for (const [extra, message] of BAD) {
    assert.throws(
      () => parse([block({}), block(extra)], 'bad.json'),
      (e: unknown) => e instanceof PatternError && e.exitCode === 78 && e.message === `/etc/tallow/bad.json: block 2: ${message}`,
      `${JSON.stringify(extra)} -> ${message}`,
    );
  }
  // Two blocks of one rule may not disagree (the override's file and block are named).
  assert.throws(
    () => rulesOf(['a.json', [block({ name: 'a' })]], ['b.json', [{ name: 'a', bantime_max: '1d' }]], ['c.json', [{ name: 'a', bantime_max: '2d' }]]),
    (e: unknown) => e instanceof PatternError && e.message === '/etc/tallow/c.json: block 1: "bantime_max" is 172800 here but 86400 in /etc/tallow/b.json (block 1): both override rule "a"',
  );
});

// A real daemon (backend=none: no firewall; the real SQLite history in state_dir), in process.
async function daemon(dir: string, lines: string[]): Promise<Daemon> {
  const log = new Log({ journal: false, timestamps: false, write: (_l, s) => lines.push(s) });
  return Daemon.start({ configFile: path.join(dir, 'tallow.conf'), explicitConfig: true, journalDir: path.join(dir, 'journal'), dryRun: false, log, shippedPatterns: path.join(dir, 'shipped') });
}

test('through the daemon and its SQLite history: steps per rule in the ban line and `list`, continued after a restart', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `tallow-steps-${process.pid}-`));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const shipped = path.join(dir, 'shipped');
  const local = path.join(dir, 'local');
  for (const d of [shipped, local, path.join(dir, 'journal')]) fs.mkdirSync(d);
  const SSHD = '/usr/sbin/sshd';
  const SMTPD = '/usr/lib/postfix/sbin/smtpd';
  fs.writeFileSync(path.join(shipped, 'sshd.json'), JSON.stringify([{ name: 'sshd', filter: `_EXE=${SSHD}`, threshold: 1, bantime: 600, ports: [22], protocol: 'tcp', items: [{ ban: 0, score: 1, pattern: '^Failed password for \\S+ from <IP> port <PORT> ssh2$' }] }]));
  fs.writeFileSync(path.join(shipped, 'postfix.json'), JSON.stringify([{ name: 'postfix', filter: `_EXE=${SMTPD}`, threshold: 1, bantime: 600, ports: [25], protocol: 'tcp', items: [{ ban: 0, score: 1, pattern: '^warning: unknown\\[<IP>\\]: SASL LOGIN authentication failed: .*$' }] }]));
  // The administrator's override: postfix's repeat offenders by a list of their own.
  fs.writeFileSync(path.join(local, 'postfix-steps.json'), JSON.stringify([{ name: 'postfix', bantime_increment: '1h,6h,1d' }]));
  fs.writeFileSync(path.join(dir, 'tallow.conf'), [`patterns_dir=${local}`, `state_dir=${dir}/state`, `socket=${dir}/run/sock`, 'backend=none', 'expires=60', 'bantime_increment=2', ''].join('\n'));
  let seq = 0;
  const entry = (message: string, exe: string): JournalEntry => ({ cursor: `c${seq++}`, realtime: Date.now() * 1000, fields: { MESSAGE: message, _EXE: exe } });
  const sshd = (a: string) => entry(`Failed password for root from ${a} port 4242 ssh2`, SSHD);
  const postfix = (a: string) => entry(`warning: unknown[${a}]: SASL LOGIN authentication failed: UGFzc3dvcmQ6`, SMTPD);
  const A = '203.0.113.77';
  const listed = async (d: Daemon) => {
    const r = (await d.handle({ cmd: 'list' })) as { ok: true; result: ListItem[] };
    return r.result.map((i) => [i.rule, i.step ?? 0, i.remaining > (i.rule === 'sshd' ? 0 : 3000) ? Math.round(i.remaining / 600) * 600 : i.remaining]).sort();
  };

  const lines: string[] = [];
  const d1 = await daemon(dir, lines);
  t.after(() => d1.stop());
  d1.process([sshd(A)]);
  await d1.handle({ cmd: 'unban', address: A });
  d1.process([sshd(A), postfix(A)]);
  assert.deepEqual(await listed(d1), [['postfix', 0, 3600], ['sshd', 1, 1200]], 'sshd stepped, postfix not\n' + lines.join('\n'));
  assert.ok(lines.some((l) => /\bban\b.*address=203\.0\.113\.77 seconds=1200 .*step=1/.test(l)), lines.join('\n'));
  await d1.events.flush(10_000);
  await d1.stop();

  // Restart without the state file: the steps come from the history alone.
  fs.rmSync(path.join(dir, 'state', 'state.json'));
  const d2 = await daemon(dir, lines);
  t.after(() => d2.stop());
  assert.deepEqual(await listed(d2), [], 'nothing restored');
  d2.process([sshd(A), postfix(A)]);
  assert.deepEqual(await listed(d2), [['postfix', 1, 21600], ['sshd', 2, 2400]]);
  assert.ok(lines.some((l) => /\bban\b.*address=203\.0\.113\.77 seconds=21600 .*step=1/.test(l)), lines.join('\n'));
});
