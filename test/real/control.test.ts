// The control socket of a running daemon (issue 6): each command through the built CLI, checked
// against the kernel set; every kind of bad request sent raw to the socket (the daemon must answer
// or hang up and keep running); permission denied for an ordinary user; "not running" after stop.
// Issue 18: status/list --json, list --rule, ban NETWORK and --rule, unban --all, reload (and a
// refused one, exit 78), get/set, version; every bad usage exits 64, not running 69, denied 77.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { createSandbox, type Sandbox } from '../env/sandbox';
import { CLI, DaemonProc, inIpset, ipsetTimeout, ROOT, writeConfig } from './e2e-daemon';

let sb: Sandbox;
let d: DaemonProc;
let conf: string;
let sock: string;

async function ctl(...args: string[]) {
  return sb.run([process.execPath, CLI, ...args, '--config', conf], { net: 'server', timeoutMs: 20000 });
}

/** Raw bytes to the daemon's socket; the lines it answers, and whether it hung up. */
function raw(data: string | Buffer, opts: { lines?: number; end?: boolean } = {}): Promise<{ lines: string[]; closed: boolean }> {
  const want = opts.lines ?? 1;
  return new Promise((resolve, reject) => {
    const c = net.createConnection(sock);
    let buf = '';
    let closed = false;
    const t = setTimeout(() => {
      c.destroy();
      reject(new Error(`no answer; got ${JSON.stringify(buf.slice(0, 200))}`));
    }, 10000);
    const done = () => {
      clearTimeout(t);
      c.destroy();
      resolve({ lines: buf.split('\n').filter(Boolean), closed });
    };
    c.setEncoding('utf8');
    c.on('connect', () => (opts.end ? c.end(data) : c.write(data)));
    c.on('data', (s: string) => {
      buf += s;
      if (want > 0 && buf.split('\n').length - 1 >= want) done();
    });
    c.on('end', () => {
      closed = true;
      done();
    });
    c.on('error', done);
  });
}

describe('control socket against a running daemon', { timeout: 180_000 }, () => {
  before(async () => {
    sb = await createSandbox({ network: true, journald: true });
    conf = writeConfig(sb, 'control', ['expires=600', 'ipv6=1']);
    sock = path.join(sb.dir, 'control', 'tallow.sock');
    // A rule with its own ports and policy (shipped, off): switched on, for --rule and set.
    fs.writeFileSync(path.join(sb.dir, 'control', 'patterns', 'scanners-on.json'), JSON.stringify([{ name: 'sshd-scanners', enabled: true }]));
    d = new DaemonProc(sb, ['--config', conf]);
    await d.ready();
  });
  after(async () => {
    if (d && !d.exit) d.kill('SIGKILL');
    await sb?.destroy();
  });

  it('the socket is root-only', () => {
    const st = fs.statSync(sock);
    assert.ok(st.isSocket());
    assert.equal(st.mode & 0o777, 0o600);
    assert.equal(st.uid, 0);
  });

  it('status', async () => {
    const r = await ctl('status');
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^version: +\d+\.\d+\.\d+$/m);
    assert.match(r.stdout, /^backend: +ipset$/m);
    assert.match(r.stdout, /^bans active: +0$/m);
    assert.match(r.stdout, /^uptime: +\d+s$/m);
  });

  it('ban, list, unban: in and out of the kernel set', async () => {
    let r = await ctl('ban', '203.0.113.5', '--time', '60');
    assert.deepEqual([r.code, r.stdout, r.stderr], [0, 'banned 203.0.113.5 for 60 s (1m 0s)\n', '']);
    assert.equal(await inIpset(sb, '203.0.113.5'), true);
    const left = await ipsetTimeout(sb, '203.0.113.5');
    assert.ok(left !== null && left <= 60 && left > 50, `kernel timeout ${left}`);

    r = await ctl('ban', '2001:DB8:0:0::99');
    assert.deepEqual([r.code, r.stdout], [0, 'banned 2001:db8::99 for 600 s (10m 0s)\n']);
    assert.equal(await inIpset(sb, '2001:db8::99'), true);

    r = await ctl('ban', '::ffff:198.51.100.9', '--time', '30');
    assert.deepEqual([r.code, r.stdout], [0, 'banned 198.51.100.9 for 30 s (30s)\n']);
    assert.equal(await inIpset(sb, '198.51.100.9'), true);

    r = await ctl('list');
    assert.equal(r.code, 0, r.stderr);
    const rows = r.stdout.trimEnd().split('\n');
    // Manual bans: no rule, every port.
    assert.match(rows[0], /^ADDRESS +RULE +PORTS +REMAINING +SCORE +COUNT +PATTERN$/);
    assert.match(rows[1], /^2001:db8::99 +- +all +(9m \d+s|10m 0s) +0\.00 +0 +manual$/);
    // Times left: whatever the machine's load made of them, below what was asked.
    assert.match(rows[2], /^203\.0\.113\.5 +- +all +(\d+s|1m 0s) +0\.00 +0 +manual$/);
    assert.match(rows[3], /^198\.51\.100\.9 +- +all +\d+s +0\.00 +0 +manual$/);
    assert.equal(rows.length, 4);

    r = await ctl('unban', '203.0.113.5');
    assert.deepEqual([r.code, r.stdout], [0, 'unbanned 203.0.113.5; its record is cleared\n']);
    assert.equal(await inIpset(sb, '203.0.113.5'), false);
    r = await ctl('unban', '203.0.113.5');
    assert.deepEqual([r.code, r.stdout], [0, '203.0.113.5 was not banned; its record (if any) is cleared\n']);

    const j = await ctl('list', '--json');
    assert.deepEqual(
      (JSON.parse(j.stdout) as { address: string }[]).map((i) => i.address).sort(),
      ['198.51.100.9', '2001:db8::99'],
    );
    const st = await ctl('status');
    assert.match(st.stdout, /^bans active: +2$/m);
  });

  it('bad input through the CLI: exit 64 with a message, nothing sent', async () => {
    for (const [args, why] of [
      [['ban', '203.0.113.0/33'], /is not a valid network/],
      [['ban', 'not-an-address'], /is not an IPv4 or IPv6 address/],
      [['ban', '203.0.113.6', '--time=-5'], /--time must be a duration/],
      [['ban', '203.0.113.6', '--time', '-5'], /--time needs a value/],
      [['ban', '203.0.113.6', '--rule'], /--rule needs a value \(RULE\)/],
      [['ban'], /ADDRESS\|NETWORK is needed/],
      [['unban'], /ADDRESS\|NETWORK \(or --all\) is needed/],
      [['unban', '--all', '203.0.113.6'], /not both/],
      [['list', '--rule'], /--rule needs a value/],
      [['status', '--json=1'], /--json takes no value/],
      [['status', '--frob'], /unknown option --frob/],
      [['reload', 'now'], /unexpected argument "now"/],
      [['get'], /KEY is needed/],
      [['get', 'sshd.ports'], /"sshd\.ports" is not a setting/],
      [['set', 'sshd.bantime'], /KEY VALUE is needed/],
      [['set', 'sshd.bantime', 'forever'], /bantime: expected a duration/],
      [['set', 'sshd.threshold', '0'], /threshold: expected a score above 0/],
    ] as const) {
      const r = await ctl(...args);
      assert.equal(r.code, 64, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, why);
      assert.equal(r.stdout, '');
    }
    assert.equal(await inIpset(sb, '203.0.113.6'), false, 'nothing was banned');
    assert.equal(await inIpset(sb, '2001:db8::99'), true, 'nothing was lifted');
  });

  it('status --json and version', async () => {
    const r = await ctl('status', '--json');
    assert.equal(r.code, 0, r.stderr);
    const s = JSON.parse(r.stdout) as { version: string; pid: number; backend: string; bansActive: number };
    const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { version: string };
    assert.equal(s.version, pkg.version);
    assert.equal(s.pid, d.child.pid);
    assert.equal(s.backend, 'ipset');
    const v = await ctl('version');
    assert.equal(v.code, 0, v.stderr);
    assert.match(v.stdout, new RegExp(`^tallow ${pkg.version.replace(/\./g, '\\.')}\ndaemon: tallow ${pkg.version.replace(/\./g, '\\.')} \\(pid ${d.child.pid}, up \\d+(?:m \\d+)?s\\)\n$`));
  });

  it('ban NETWORK and --rule, list --rule, unban --all: in and out of the kernel sets', async () => {
    // A known start: whatever the tests before left is lifted.
    assert.equal((await ctl('unban', '--all')).code, 0);
    assert.deepEqual(JSON.parse((await ctl('list', '--json')).stdout), []);

    // The server's own networks are refused (it would cut itself off); the client's second one is not.
    let r = await ctl('ban', '198.51.100.77/24', '-t', '2m');
    assert.deepEqual([r.code, r.stdout, r.stderr], [1, '', 'tallow ban: 198.51.100.0/24 was not banned: own address\n']);
    r = await ctl('ban', '2001:db8:0:2::77/64', '-t', '2m');
    assert.deepEqual([r.code, r.stdout, r.stderr], [0, 'banned 2001:db8:0:2::/64 for 120 s (2m 0s)\n', '']);
    // A network is one entry of the hash:net set: an address inside it is in the set.
    assert.equal((await sb.run(['ipset', 'test', 'tallow6_net', '2001:db8:0:2::200'], { net: 'server' })).code, 0);
    assert.equal((await sb.run(['ipset', 'test', 'tallow6_net', '2001:db8:0:3::1'], { net: 'server' })).code, 1);

    r = await ctl('ban', '203.0.113.20', '--rule', 'sshd-scanners');
    assert.deepEqual([r.code, r.stdout, r.stderr], [0, 'banned 203.0.113.20 for 600 s (10m 0s) on ports 22/tcp (rule sshd-scanners)\n', '']);
    assert.equal((await sb.run(['ipset', 'test', 'tallow_p22t', '203.0.113.20'], { net: 'server' })).code, 0);
    assert.equal(await inIpset(sb, '203.0.113.20'), false, 'not on every port');
    r = await ctl('ban', '203.0.113.20', '--time', '90');
    assert.equal(r.code, 0, r.stderr);
    assert.equal(await inIpset(sb, '203.0.113.20'), true);

    r = await ctl('list', '--rule', 'sshd-scanners');
    assert.equal(r.code, 0, r.stderr);
    const rows = r.stdout.trimEnd().split('\n');
    assert.equal(rows.length, 2, r.stdout);
    assert.match(rows[1], /^203\.0\.113\.20 +sshd-scanners +22\/tcp +(9m \d+s|10m 0s) +0\.00 +0 +manual$/);
    const j = JSON.parse((await ctl('list', '-j', '-r', 'sshd-scanners')).stdout) as { address: string; rule: string; ports: string }[];
    assert.deepEqual(j.map((i) => [i.address, i.rule, i.ports]), [['203.0.113.20', 'sshd-scanners', '22/tcp']]);
    assert.deepEqual(JSON.parse((await ctl('list', '--json')).stdout).map((i: { address: string }) => i.address).sort(), ['2001:db8:0:2::/64', '203.0.113.20', '203.0.113.20']);
    r = await ctl('list', '--rule', 'postfix');
    assert.deepEqual([r.code, r.stdout], [0, 'no bans of rule postfix\n']);
    r = await ctl('list', '--rule', 'nosuch');
    assert.equal(r.code, 1);
    assert.match(r.stderr, /^tallow list: no rule named "nosuch" \(rules: .*sshd.*\)\n$/);
    r = await ctl('ban', '203.0.113.21', '--rule', 'postfix');
    assert.deepEqual([r.code, r.stderr], [1, 'tallow ban: rule postfix is disabled: its ports have no sets to ban in\n']);

    r = await ctl('unban', '--all');
    assert.deepEqual([r.code, r.stdout, r.stderr], [0, 'unbanned everything: 3 bans of 2 addresses and networks; their records are cleared\n', '']);
    assert.equal(await inIpset(sb, '203.0.113.20'), false);
    assert.equal((await sb.run(['ipset', 'test', 'tallow_p22t', '203.0.113.20'], { net: 'server' })).code, 1);
    assert.equal((await sb.run(['ipset', 'test', 'tallow6_net', '2001:db8:0:2::200'], { net: 'server' })).code, 1);
    assert.deepEqual([(await ctl('list')).stdout, (await ctl('unban', '-a')).stdout], ['no addresses are banned\n', 'no bans to lift\n']);
  });

  it('get and set a rule\'s threshold, bantime, findtime; reload goes back to the files', async () => {
    let r = await ctl('get', 'sshd.bantime');
    assert.deepEqual([r.code, r.stdout, r.stderr], [0, "sshd.bantime = 600 (10m 0s)  (tallow.conf's shared score (threshold and expires))\n", '']);
    r = await ctl('set', 'sshd.bantime', '2h');
    assert.deepEqual([r.code, r.stdout, r.stderr], [0, 'sshd.bantime: 600 (10m 0s) -> 7200 (2h 0m 0s) (until the next reload or restart)\n  rule sshd policy changed: bantime 600 -> 7200, scores shared -> its own\n', '']);
    r = await ctl('get', 'sshd.bantime');
    assert.equal(r.stdout, 'sshd.bantime = 7200 (2h 0m 0s)  (set at runtime: lost at the next reload or restart)\n');
    // The daemon runs the new value: a ban in the rule's name lasts its bantime.
    r = await ctl('ban', '203.0.113.30', '--rule', 'sshd');
    assert.equal(r.stdout, 'banned 203.0.113.30 for 7200 s (2h 0m 0s) on ports all (rule sshd)\n');
    const left = await ipsetTimeout(sb, '203.0.113.30');
    assert.ok(left !== null && left > 7100 && left <= 7200, `kernel timeout ${left}`);
    r = await ctl('set', 'sshd-scanners.threshold', '2.5');
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^sshd-scanners\.threshold: 1 -> 2\.5 /);
    r = await ctl('set', 'sshd-scanners.findtime', '15m');
    assert.equal(r.code, 0, r.stderr);
    const rules = JSON.parse((await ctl('rules', 'sshd-scanners', '--json')).stdout) as { threshold: number; findtime: number; bantime: number; pool: string }[];
    assert.deepEqual(rules.map((x) => [x.threshold, x.findtime, x.bantime, x.pool]), [[2.5, 900, 600, 'sshd-scanners']]);
    for (const [args, why] of [
      [['set', 'nosuch.bantime', '1h'], /^tallow set: no rule named "nosuch" \(rules: /],
      [['get', 'nosuch.threshold'], /^tallow get: no rule named "nosuch"/],
      [['set', 'sshd-logins.threshold', '2'], /^tallow set: rule sshd-logins has "action": "notify": it never scores or bans/],
    ] as const) {
      r = await ctl(...args);
      assert.equal(r.code, 1, args.join(' '));
      assert.match(r.stderr, why);
    }

    r = await ctl('reload');
    assert.equal(r.code, 0, r.stderr + d.output);
    const lines = r.stdout.trimEnd().split('\n');
    assert.equal(lines[0], `reloaded ${conf} and the patterns`);
    assert.deepEqual(lines.slice(1).sort(), [
      '  rule sshd policy changed: bantime 7200 -> 600, scores its own -> shared',
      '  rule sshd-scanners policy changed: threshold 2.5 -> 1, findtime 900 -> 600',
      '  settings made with tallow set dropped: sshd.bantime, sshd-scanners.threshold, sshd-scanners.findtime',
    ]);
    assert.equal((await ctl('get', 'sshd.bantime')).stdout, "sshd.bantime = 600 (10m 0s)  (tallow.conf's shared score (threshold and expires))\n");
    await d.waitLine('the reload logged', /tallow reload: reloading configuration and patterns/);
    assert.equal(await inIpset(sb, '203.0.113.30'), true, 'bans stay through a reload');
  });

  it('reload of a configuration with an error: exit 78 with its file:line, the old one runs on', async () => {
    const good = fs.readFileSync(conf, 'utf8');
    fs.writeFileSync(conf, good + 'expires=60\ntreshold=3\n');
    try {
      const r = await ctl('reload', '--socket', sock);
      assert.equal(r.stdout, '');
      assert.match(r.stderr, new RegExp(`^tallow reload: reload refused, still running the previous configuration: ${conf.replace(/[.]/g, '\\.')}:\\d+: unknown key 'treshold'.*\\n$`));
      assert.equal(r.code, 78);
    } finally {
      fs.writeFileSync(conf, good);
    }
    assert.equal((await ctl('get', 'sshd.bantime')).stdout.startsWith('sshd.bantime = 600 '), true, 'expires=60 was not taken');
    assert.match((await ctl('status')).stdout, /^bans active: +1$/m);
    assert.equal(d.exit, null, d.output);
  });

  it('every kind of bad request sent raw: answered with an error, the daemon keeps running', async () => {
    const bad: [string, RegExp][] = [
      ['{"cmd":"ban","address":"203.0.113.7"', /not valid JSON/],
      ['[]', /must be a JSON object/],
      ['{"cmd":"shutdown"}', /unknown command/],
      ['{"cmd":"ban","address":"203.0.113.0/33"}', /not a valid network/],
      ['{"cmd":"ban","address":"203.0.113.7","seconds":-1}', /"seconds" must be a whole number/],
      ['{"cmd":"ban","address":"203.0.113.7","seconds":1e12}', /"seconds" must be a whole number/],
      ['{"cmd":"unban","address":42}', /"address" must be a string/],
      ['{"cmd":"ban","address":"203.0.113.7","extra":1}', /unexpected field/],
    ];
    for (const [req, why] of bad) {
      const r = await raw(req + '\n');
      assert.equal(r.lines.length, 1, req);
      const res = JSON.parse(r.lines[0]);
      assert.equal(res.ok, false, req);
      assert.match(res.error, why, req);
    }
    // Oversized: an error line, then the daemon hangs up.
    const big = await raw('{"cmd":"status","pad":"' + 'x'.repeat(100 * 1024) + '"}\n', { lines: 0 });
    assert.equal(big.closed, true);
    assert.match(JSON.parse(big.lines[0]).error, /request longer than/);
    // Disconnecting mid-request, and right after a full request.
    for (const part of ['{"cmd":"ba', '{"cmd":"ban","address":"203.0.113.8","seconds":5}\n']) {
      const c = net.createConnection(sock);
      await new Promise<void>((r) => c.on('connect', () => r()));
      c.write(part);
      c.destroy();
    }
    // Many clients at once.
    const many = await Promise.all(Array.from({ length: 100 }, () => raw('{"cmd":"status"}\n')));
    assert.ok(many.every((m) => m.lines.length === 1), 'every client got one line');
    assert.ok(many.filter((m) => JSON.parse(m.lines[0]).ok).length >= 32);
    // Still alive and serving.
    const st = await ctl('status');
    assert.equal(st.code, 0, st.stderr + d.output);
    assert.equal(d.exit, null, d.output);
    assert.equal(await inIpset(sb, '203.0.113.7'), false, 'no bad request banned anything');
  });

  it('a network banned by hand survives a restart, in the kernel and in the list, and is lifted after it', async () => {
    let r = await ctl('ban', '2001:db8:0:2::/64', '--time', '10m');
    assert.equal(r.code, 0, r.stderr);
    d.kill('SIGTERM');
    assert.equal((await d.wait()).code, 0, d.output);
    d = new DaemonProc(sb, ['--config', conf]);
    await d.ready();
    const items = JSON.parse((await ctl('list', '--json')).stdout) as { address: string; origin: string; remaining: number }[];
    const net = items.find((i) => i.address === '2001:db8:0:2::/64');
    assert.ok(net && net.origin === 'manual' && net.remaining > 500, `${JSON.stringify(items)}\n${d.output}`);
    assert.equal((await sb.run(['ipset', 'test', 'tallow6_net', '2001:db8:0:2::9'], { net: 'server' })).code, 0);
    r = await ctl('unban', '2001:db8:0:2::/64');
    assert.deepEqual([r.code, r.stdout], [0, 'unbanned 2001:db8:0:2::/64; its record is cleared\n']);
    assert.equal((await sb.run(['ipset', 'test', 'tallow6_net', '2001:db8:0:2::9'], { net: 'server' })).code, 1);
  });

  it('an ordinary user is refused (exit 77)', async () => {
    // Let nobody reach the socket's directory, so the refusal comes from the socket's own mode.
    fs.chmodSync(sb.dir, 0o711);
    fs.chmodSync(path.dirname(sock), 0o755);
    const r = await sb.run([process.execPath, CLI, 'status', '--socket', sock], { net: 'server', user: 'nobody', timeoutMs: 20000 });
    assert.equal(r.stderr, `tallow: permission denied on ${sock} (run as root)\n`);
    assert.equal(r.code, 77);
    const v = await sb.run([process.execPath, CLI, 'version', '--socket', sock], { net: 'server', user: 'nobody', timeoutMs: 20000 });
    assert.equal(v.code, 0, v.stderr);
    assert.match(v.stdout, /^daemon: unknown \(permission denied on .* \(run as root\)\)$/m);
  });

  it('after SIGTERM: the socket is gone and the client says the daemon is not running (exit 69)', async () => {
    d.kill('SIGTERM');
    assert.equal((await d.wait()).code, 0, d.output);
    assert.equal(fs.existsSync(sock), false);
    for (const cmd of ['list', 'reload', 'status', 'unban --all', 'get sshd.bantime']) {
      const r = await ctl(...cmd.split(' '));
      assert.equal(r.code, 69, cmd);
      assert.equal(r.stderr, `tallow: the daemon is not running (no socket at ${sock})\n`);
    }
    const v = await ctl('version');
    assert.deepEqual([v.code, v.stdout.split('\n')[1]], [0, 'daemon: not running']);
  });
});
