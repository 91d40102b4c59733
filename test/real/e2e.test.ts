// End to end, as an administrator runs it (SPEC sections 2, 7, 8): a real sshd in a server
// network namespace, attacked by a real ssh client from a client namespace, logging through a
// real journald in a private mount namespace; the built CLI reads that journal and bans in the
// server namespace's kernel firewall. The proof of a ban is the kernel's: the set holds the
// address and the attacker's next TCP connection fails.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createSandbox, sleep, waitFor, type Sandbox } from '../env/sandbox';
import { CLI, DaemonProc, SSHD_FILTER, inIpset, ipsetTimeout, writeConfig } from './e2e-daemon';

// Test patterns (override the shipped sshd.json through patterns_dir): two failed passwords
// reach the threshold; user "shortban" gets an instant 2 s ban.
const TEST_PATTERNS = [
  {
    filter: SSHD_FILTER,
    items: [
      { ban: 2, score: 0.1, pattern: '^Failed password for (?:invalid user )?shortban from <IP> port <PORT> ssh2$' },
      { ban: 0, score: 0.5, pattern: '^Failed password for (?:invalid user )?\\S+ from <IP> port <PORT> ssh2$' },
    ],
  },
];

let sb: Sandbox;
const daemons: DaemonProc[] = [];

function start(args: string[]): DaemonProc {
  const d = new DaemonProc(sb, args);
  daemons.push(d);
  return d;
}

async function fail(source: string, times: number, user = 'root'): Promise<void> {
  for (let i = 0; i < times; i++) {
    const r = await sb.failLogin(source, user);
    assert.notEqual(r.code, 0, `ssh from ${source} as ${user} must fail`);
  }
}

async function waitBanned(d: DaemonProc, address: string, timeoutMs = 15000): Promise<void> {
  await waitFor(`${address} in the kernel set\n${d.output}`, () => inIpset(sb, address), timeoutMs, 50);
}

describe('tallow end to end', { timeout: 240_000 }, () => {
  before(async () => {
    sb = await createSandbox({ sshd: true });
  });
  after(async () => {
    for (const d of daemons) if (!d.exit) d.kill('SIGKILL');
    await sb?.destroy();
  });

  describe('one daemon (ipset backend, test patterns, expires=60)', () => {
    let d: DaemonProc;
    let conf: string;
    const attacker4 = () => sb.client.extraV4[0]; // 192.0.2.3
    const attacker6 = () => sb.client.v6; // 2001:db8::2
    const allowed4 = () => sb.client.v4; // 192.0.2.2, allowlisted
    const allowed6 = () => sb.client.extraV6[0]; // 2001:db8::3, allowlisted
    const lines = () => ['expires=60', 'threshold=1.0', 'ipv6=1', `whitelist=${sb.client.v4}`, 'whitelist=2001:db8::3/128', 'whitelist=127.0.0.1'];

    before(async () => {
      conf = writeConfig(sb, 'a', lines());
      fs.writeFileSync(path.join(sb.dir, 'a', 'patterns', 'sshd.json'), JSON.stringify(TEST_PATTERNS, null, 2));
      d = start(['--config', conf]);
      await d.ready();
    });

    it('prints a start-up summary', () => {
      assert.ok(d.has(/tallow \d+\.\d+\.\d+ starting config=\S*a\/tallow\.conf/), d.output);
      assert.ok(d.has(/patterns sshd\.json: 2 loaded/), d.output);
      assert.ok(d.has(/allowlist: 3 entries/), d.output);
      assert.ok(d.has(/firewall ready backend=ipset/), d.output);
      assert.ok(d.has(/journal: local system journal, starting at tail/), d.output);
      // The line that says it is ready comes last: after the firewall, the saved state and the
      // control socket (a client that sees it can talk to a daemon that is banning).
      const at = (re: RegExp) => d.lines.findIndex((l) => re.test(l));
      const ready = at(/journal: .* starting at /);
      for (const before of [/firewall ready/, /control socket listening/, /allowlist: /]) assert.ok(at(before) >= 0 && at(before) < ready, `${before} before the ready line:\n${d.output}`);
    });

    it('bans an IPv4 attacker at the threshold: in the kernel set, next TCP connect fails', async () => {
      assert.equal(await sb.canConnect(attacker4()), true, 'before the ban the attacker reaches port 22');
      await fail(attacker4(), 1);
      await sleep(700);
      assert.equal(await inIpset(sb, attacker4()), false, 'one failure (score 0.5) is below the threshold');
      await fail(attacker4(), 1);
      await waitBanned(d, attacker4());
      const left = await ipsetTimeout(sb, attacker4());
      assert.ok(left !== null && left > 50 && left <= 60, `kernel timeout ~expires, got ${left}`);
      assert.equal(await sb.canConnect(attacker4()), false, 'after the ban the attacker cannot connect');
      await d.waitLine('ban log line', new RegExp(`^\\S+ info: ban address=${attacker4().replace(/\./g, '\\.')} seconds=60 score=1 count=2 pattern=sshd\\.json#\\d+ reason=threshold`));
    });

    it('bans an IPv6 attacker the same way', async () => {
      assert.equal(await sb.canConnect(attacker6()), true);
      await fail(attacker6(), 2);
      await waitBanned(d, attacker6());
      assert.equal(await sb.canConnect(attacker6()), false);
      assert.equal(await sb.canConnect(sb.client.extraV6[1]), true, 'another IPv6 address still connects');
    });

    it('never bans allowlisted clients, and not below the threshold', async () => {
      await fail(allowed4(), 3);
      await fail(allowed6(), 3);
      const below = sb.client.extraV4[3]; // 198.51.100.2
      await fail(below, 1);
      // A sentinel banned after them proves the daemon has read past their failures.
      const sentinel = sb.client.extraV4[1];
      await fail(sentinel, 2);
      await waitBanned(d, sentinel);
      assert.equal(await inIpset(sb, allowed4()), false);
      assert.equal(await inIpset(sb, allowed6()), false);
      assert.equal(await inIpset(sb, below), false);
      assert.equal(await sb.canConnect(allowed4()), true);
      assert.equal(await sb.canConnect(below), true);
      assert.equal(d.count(new RegExp(`ban address=(${allowed4().replace(/\./g, '\\.')}|2001:db8::3|198\\.51\\.100\\.2) `)), 0, d.output);
    });

    it('an instant short ban expires by itself (kernel timeout) and the daemon logs the unban', async () => {
      const a = sb.client.extraV4[4]; // 198.51.100.3
      await fail(a, 1, 'shortban');
      await waitBanned(d, a);
      const left = await ipsetTimeout(sb, a);
      assert.ok(left !== null && left <= 2, `instant ban of 2 s, kernel says ${left}`);
      await d.waitLine('instant ban log', new RegExp(`ban address=${a.replace(/\./g, '\\.')} seconds=2 .*reason=instant`));
      await waitFor(`${a} to leave the kernel set`, async () => !(await inIpset(sb, a)), 6000, 100);
      assert.equal(await sb.canConnect(a), true);
      await d.waitLine('unban log', new RegExp(`unban address=${a.replace(/\./g, '\\.')} reason=expired`), 5000);
    });

    it('answers `tallow list` and `tallow status` over the control socket', async () => {
      const list = await sb.run([process.execPath, CLI, 'list', '--json', '--config', conf], { net: 'server' });
      assert.equal(list.code, 0, list.stderr);
      const items = JSON.parse(list.stdout) as { address: string; remaining: number; count: number }[];
      const mine = items.find((i) => i.address === attacker4());
      assert.ok(mine, list.stdout);
      assert.equal(mine!.count, 2);
      assert.ok(mine!.remaining > 0 && mine!.remaining <= 60);
      const st = await sb.run([process.execPath, CLI, 'status', '--config', conf], { net: 'server' });
      assert.equal(st.code, 0, st.stderr);
      assert.match(st.stdout, /ipset/);
    });

    it('SIGHUP with a valid config applies it (new allowlist entry) and keeps the records', async () => {
      const newly = sb.client.extraV4[2]; // 192.0.2.5
      fs.writeFileSync(conf, fs.readFileSync(conf, 'utf8') + `whitelist=${newly}\n`);
      d.kill('SIGHUP');
      await d.waitLine('reload', /configuration reloaded: allowlist 4 entries/);
      await fail(newly, 2);
      const sentinel = sb.client.extraV4[5]; // 203.0.113.2
      await fail(sentinel, 2);
      await waitBanned(d, sentinel);
      assert.equal(await inIpset(sb, newly), false, 'allowlisted by the reloaded config');
    });

    it('SIGHUP with a broken config is refused; the old one keeps running', async () => {
      const good = fs.readFileSync(conf, 'utf8');
      fs.writeFileSync(conf, good + 'no_such_key=1\n');
      d.kill('SIGHUP');
      await d.waitLine('refusal', /^E .*error: reload refused, still running the previous configuration: .*tallow\.conf:\d+: unknown key 'no_such_key'/);
      fs.writeFileSync(conf, good);
      const a = sb.client.extraV4[6]; // 203.0.113.3
      await fail(a, 2);
      await waitBanned(d, a);
      assert.equal(d.exit, null, 'still running');
    });

    it('SIGTERM stops cleanly (exit 0) and leaves the bans in the kernel', async () => {
      d.kill('SIGTERM');
      const e = await d.wait();
      assert.equal(e.code, 0, d.output);
      assert.ok(d.has(/stopped; bans stay in the firewall/), d.output);
      assert.equal(await inIpset(sb, attacker4()), true);
      assert.equal(await inIpset(sb, attacker6()), true);
      assert.equal(await sb.canConnect(attacker4()), false);
      assert.ok(fs.existsSync(path.join(sb.dir, 'a', 'state', 'state.json')), 'state saved on stop');
    });
  });

  describe('shipped patterns', () => {
    it('a forged `logger -t sshd` line from an ordinary user bans nothing; from root (as sshd logs) it bans', async () => {
      const conf = writeConfig(sb, 'b', ['expires=60', 'whitelist=127.0.0.1']);
      const d = start(['--config', conf]);
      await d.ready();
      assert.ok(d.has(/patterns sshd\.json: \d+ loaded path=\S*\/patterns\/sshd\.json/), d.output);
      const forged = '203.0.113.50';
      const real = '203.0.113.51';
      for (let i = 0; i < 5; i++) await sb.logger('sshd', `Failed password for root from ${forged} port 22 ssh2`, 'nobody');
      // The same words with uid 0 pass the filter (SYSLOG_IDENTIFIER=sshd and _UID=0): the control.
      await sb.logger('sshd', `Failed password for root from ${real} port 22 ssh2`);
      await waitBanned(d, real);
      assert.equal(await inIpset(sb, forged), false, `forged line banned ${forged}:\n${d.output}`);
      assert.equal(d.count(/ban address=203\.0\.113\.50 /), 0);
      d.kill('SIGTERM');
      assert.equal((await d.wait()).code, 0);
    });

    it("a forged line from sshd's own binary run by an ordinary user (LD_PRELOAD) bans nothing; a real attack does", async () => {
      // sshd is not setuid: any user can run it with a preloaded library that logs whatever it
      // likes, and journald then records _EXE=/usr/sbin/sshd with that user's _UID.
      const lib = path.join(sb.dir, 'forge');
      fs.mkdirSync(lib, { mode: 0o755 });
      fs.chmodSync(sb.dir, 0o755); // nobody must be able to load the library
      const src = path.join(lib, 'forge.c');
      fs.writeFileSync(
        src,
        `#include <syslog.h>
#include <unistd.h>
#include <systemd/sd-journal.h>
__attribute__((constructor)) static void forge(void) {
  openlog("sshd", LOG_PID, LOG_AUTH);
  for (int i = 0; i < 5; i++) syslog(LOG_INFO, "Failed password for root from 203.0.113.60 port 22 ssh2");
  for (int i = 0; i < 5; i++) sd_journal_send("MESSAGE=Failed password for root from 203.0.113.61 port 22 ssh2", "SYSLOG_IDENTIFIER=sshd", NULL);
  sleep(1); /* stay alive so journald can read /proc/PID/exe and record _EXE */
}
`,
      );
      await sb.check(['gcc', '-shared', '-fPIC', '-o', path.join(lib, 'forge.so'), src, '-lsystemd']);
      const conf = writeConfig(sb, 'preload', ['expires=60', 'whitelist=127.0.0.1']);
      const d = start(['--config', conf]);
      await d.ready();
      // `env` after the switch to nobody: the library must be loaded by sshd only, not by the
      // sandbox's own wrappers that still run as root.
      await sb.run(['env', `LD_PRELOAD=${path.join(lib, 'forge.so')}`, '/usr/sbin/sshd', '-V'], { user: 'nobody' });
      // The forgery reached the journal as sshd's binary (so the test means something).
      const forged = (await sb.journal(['MESSAGE=Failed password for root from 203.0.113.61 port 22 ssh2'])).concat(
        await sb.journal(['MESSAGE=Failed password for root from 203.0.113.60 port 22 ssh2']),
      );
      assert.equal(forged.length, 10, `forged entries: ${JSON.stringify(forged)}`);
      for (const e of forged) assert.ok(e._EXE === '/usr/sbin/sshd' && e._UID !== '0', `forged entry: ${JSON.stringify(e)}`);
      // A real attack through the real sshd, logged after the forgery, is banned: the daemon read past it.
      const real = sb.client.extraV4[3]; // 198.51.100.2: a root failure is an instant ban
      await fail(real, 1);
      await waitBanned(d, real);
      for (const a of ['203.0.113.60', '203.0.113.61']) {
        assert.equal(await inIpset(sb, a), false, `forged line banned ${a}:\n${d.output}`);
        assert.equal(d.count(new RegExp(`ban address=${a.replace(/\./g, '\\.')} `)), 0, d.output);
      }
      d.kill('SIGTERM');
      assert.equal((await d.wait()).code, 0);
    });
  });

  describe('under journald', () => {
    it('logs bans as structured entries: journalctl -t tallow TALLOW_ACTION=ban lists them', async () => {
      const conf = writeConfig(sb, 'j', ['expires=60', 'whitelist=127.0.0.1']);
      fs.writeFileSync(path.join(sb.dir, 'j', 'patterns', 'sshd.json'), JSON.stringify(TEST_PATTERNS));
      // As systemd runs it: stdout is a journal stream and JOURNAL_STREAM names it.
      const script = `JOURNAL_STREAM=$(stat -L -c %d:%i /proc/$$/fd/1) exec ${process.execPath} ${CLI} --config ${conf}`;
      const child = sb.spawn(['systemd-cat', '-t', 'tallow-stream', 'sh', '-c', script], { net: 'server' });
      try {
        await waitFor('the start-up summary in the journal', async () => (await sb.journal(['-t', 'tallow'])).some((e) => /starting at/.test(String(e.MESSAGE))), 20000, 100);
        const v4 = '198.51.100.3';
        await fail(v4, 2);
        await waitFor('a TALLOW_ACTION=ban entry', async () => (await sb.journal(['-t', 'tallow', 'TALLOW_ACTION=ban'])).some((e) => e.TALLOW_ADDRESS === v4), 15000, 100);
        const bans = await sb.journal(['-t', 'tallow', 'TALLOW_ACTION=ban']);
        const e = bans.find((x) => x.TALLOW_ADDRESS === v4)!;
        assert.equal(e.TALLOW_SECONDS, '60');
        assert.equal(e.TALLOW_SCORE, '1');
        assert.match(String(e.TALLOW_PATTERN), /^sshd\.json#\d+$/);
        assert.equal(e.PRIORITY, '6');
        assert.equal(e.SYSLOG_IDENTIFIER, 'tallow');
        assert.match(String(e.MESSAGE), /^ban address=198\.51\.100\.3 seconds=60 /);
        // Nothing of it went to the plain stream.
        assert.equal((await sb.journal(['-t', 'tallow-stream'])).length, 0);
      } finally {
        child.kill('SIGTERM');
        await new Promise((r) => child.once('exit', r));
      }
    });
  });

  describe('--dry-run', () => {
    it('logs what it would ban and touches no firewall', async () => {
      const conf = writeConfig(sb, 'c', ['expires=60', 'whitelist=127.0.0.1']);
      fs.writeFileSync(path.join(sb.dir, 'c', 'patterns', 'sshd.json'), JSON.stringify(TEST_PATTERNS));
      // Rules and sets as the earlier daemons left them: the dry run must not add to them.
      const rules = async () =>
        (await sb.check(['iptables', '-S'], { net: 'server' })) + (await sb.check(['ip6tables', '-S'], { net: 'server' })) + (await sb.check(['ipset', 'list', '-n'], { net: 'server' }));
      const before = await rules();
      const d = start(['--config', conf, '--dry-run']);
      await d.ready();
      const a = sb.client.extraV6[1]; // 2001:db8::4
      await fail(a, 2);
      await d.waitLine('dry-run ban', /dry run: would ban address=2001:db8::4 seconds=60/);
      assert.ok(d.has(/info: ban address=2001:db8::4 seconds=60/), d.output);
      assert.equal(await inIpset(sb, a), false);
      assert.equal(await sb.canConnect(a), true);
      assert.equal(await rules(), before);
      assert.ok(!fs.existsSync(path.join(sb.dir, 'c', 'state', 'state.json')), 'a dry run writes no state');
      d.kill('SIGINT');
      assert.equal((await d.wait()).code, 0);
    });
  });

  describe('bad start-up input: one line on stderr, the documented exit status, no stack trace', () => {
    async function startFails(args: string[], status: number, message: RegExp): Promise<void> {
      const r = await sb.run([process.execPath, CLI, ...args], { net: 'server', timeoutMs: 60000 });
      assert.equal(r.code, status, `exit status for ${args.join(' ')}: ${r.stdout}\n${r.stderr}`);
      const errLines = r.stderr.trim().split('\n');
      assert.equal(errLines.length, 1, `one line on stderr, got:\n${r.stderr}`);
      assert.match(errLines[0], message);
      assert.doesNotMatch(r.stderr + r.stdout, /\n\s+at /, 'no stack trace');
    }

    it('unknown key: file:line, exit 78', async () => {
      const conf = writeConfig(sb, 'bad1', ['expires=60', 'bantime=10']);
      await startFails(['--config', conf], 78, /^tallow: \S+tallow\.conf:\d+: unknown key 'bantime'/);
    });

    it('bad value: exit 78', async () => {
      const conf = writeConfig(sb, 'bad2', ['expires=soon']);
      await startFails(['--config', conf], 78, /^tallow: \S+tallow\.conf:\d+: expires: /);
    });

    it('missing --config file: exit 78', async () => {
      await startFails(['--config', path.join(sb.dir, 'nope.conf')], 78, /^tallow: \S+nope\.conf: cannot read: ENOENT/);
    });

    it('unreadable patterns directory and a broken patterns file: exit 78', async () => {
      const conf = writeConfig(sb, 'bad3', ['patterns_dir=/proc/self/status/x']);
      await startFails(['--config', conf], 78, /^tallow: .*\/proc\/self\/status\/x/);
      const conf2 = writeConfig(sb, 'bad4', []);
      fs.writeFileSync(path.join(sb.dir, 'bad4', 'patterns', 'mine.json'), '[{"filter": "_EXE=/x", "items": [{"score": "a lot"}]}');
      await startFails(['--config', conf2], 78, /^tallow: \S*mine\.json: /);
    });

    it('no firewall tool: exit 69', async () => {
      const conf = writeConfig(sb, 'bad5', ['ipt_path=/nonexistent', 'nft_path=/nonexistent', 'fwcmd_path=/nonexistent']);
      await startFails(['--config', conf], 69, /^tallow: no firewall backend available/);
    });

    it('a journal directory that does not exist: exit 1', async () => {
      const conf = writeConfig(sb, 'bad6', []);
      await startFails(['--config', conf, '--journal-dir', path.join(sb.dir, 'no-journal')], 1, /^tallow: .*no-journal/);
    });

    it('bad usage: exit 64', async () => {
      await startFails(['--frobnicate'], 64, /^tallow: unknown option --frobnicate/);
    });
  });
});
