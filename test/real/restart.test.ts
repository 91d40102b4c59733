// Restart without amnesty (issue 6): real sshd attacked from the client namespace, real journald,
// the built CLI banning in the server namespace's kernel. Bans survive a SIGTERM + start with
// their remaining time (not renewed, not lost); failures logged while the daemon was down count
// once; a corrupt state file is reported, set aside, and the daemon runs.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createSandbox, sleep, waitFor, type Sandbox } from '../env/sandbox';
import { CLI, DaemonProc, SSHD_FILTER, inIpset, ipsetTimeout, writeConfig } from './e2e-daemon';

// Three failed passwords (0.34 each) reach the threshold of 1.0.
const PATTERNS = [{ filter: SSHD_FILTER, items: [{ ban: 0, score: 0.34, pattern: '^Failed password for (?:invalid user )?\\S+ from <IP> port <PORT> ssh2$' }] }];

interface Item {
  address: string;
  remaining: number;
  score: number;
  count: number;
  pattern: string | null;
}

let sb: Sandbox;
const daemons: DaemonProc[] = [];

function start(conf: string): DaemonProc {
  const d = new DaemonProc(sb, ['--config', conf]);
  daemons.push(d);
  return d;
}

async function ctl(conf: string, ...args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return sb.run([process.execPath, CLI, ...args, '--config', conf], { net: 'server', timeoutMs: 20000 });
}

async function list(conf: string): Promise<Item[]> {
  const r = await ctl(conf, 'list', '--json');
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout) as Item[];
}

async function fail(source: string, times: number): Promise<void> {
  for (let i = 0; i < times; i++) {
    const r = await sb.failLogin(source, 'root');
    assert.notEqual(r.code, 0, `ssh from ${source} must fail`);
  }
}

describe('restart keeps bans, records and the journal position', { timeout: 300_000 }, () => {
  before(async () => {
    sb = await createSandbox({ sshd: true });
  });
  after(async () => {
    for (const d of daemons) if (!d.exit) d.kill('SIGKILL');
    await sb?.destroy();
  });

  it('SIGTERM, an attack while down, start: old bans kept with their remaining time, the new address banned, nothing counted twice', async () => {
    const conf = writeConfig(sb, 'restart', ['expires=120', 'threshold=1.0', 'ipv6=1', 'whitelist=127.0.0.1']);
    fs.writeFileSync(path.join(sb.dir, 'restart', 'patterns', 'sshd.json'), JSON.stringify(PATTERNS));
    const a4 = sb.client.extraV4[0]; // 192.0.2.3
    const a6 = sb.client.v6; // 2001:db8::2
    const manual = '203.0.113.77';
    const late = sb.client.extraV4[1]; // 192.0.2.4: attacks while the daemon is down

    let d = start(conf);
    await d.ready();
    await fail(a4, 3);
    await fail(a6, 3);
    await waitFor(`${a4} and ${a6} banned\n${d.output}`, async () => (await inIpset(sb, a4)) && (await inIpset(sb, a6)), 20000);
    const ban = await ctl(conf, 'ban', manual, '--time', '300');
    assert.equal(ban.code, 0, ban.stderr);
    assert.equal(ban.stdout, `banned ${manual} for 300 s (5m 0s)\n`);

    const before = new Map((await list(conf)).map((i) => [i.address, i]));
    assert.deepEqual([...before.keys()].sort(), [a6, a4, manual].sort());
    assert.equal(before.get(a4)!.count, 3);
    const kernelBefore = await ipsetTimeout(sb, a4);
    assert.ok(kernelBefore !== null && kernelBefore > 100, `kernel timeout ${kernelBefore}`);

    d.kill('SIGTERM');
    const exit = await d.wait();
    assert.equal(exit.code, 0, d.output);
    const stopped = Date.now();
    assert.equal(await inIpset(sb, a4), true, 'SIGTERM leaves the bans in the kernel');
    const statusDown = await ctl(conf, 'status');
    assert.equal(statusDown.code, 69, 'not running: exit 69 (EX_UNAVAILABLE)');
    assert.match(statusDown.stderr, /^tallow: the daemon is not running \(no socket at .*tallow\.sock\)\n$/);

    // While down: one failure from a new address (0.34, below the threshold).
    await fail(late, 1);
    await sleep(3000);

    d = start(conf);
    await d.ready();
    await d.waitLine('state restored line', /state restored: 3 records, 3 active bans put back with their remaining time/);
    assert.ok(d.has(/journal: local system journal, starting at saved cursor /), d.output);
    const down = (Date.now() - stopped) / 1000;

    const after1 = new Map((await list(conf)).map((i) => [i.address, i]));
    for (const addr of [a4, a6, manual]) {
      const was = before.get(addr)!;
      const now = after1.get(addr);
      assert.ok(now, `${addr} is still known as banned after the restart:\n${JSON.stringify([...after1.values()])}`);
      // Not renewed: the remaining time went down by (at least) the time the daemon was away.
      assert.ok(now!.remaining <= was.remaining - Math.floor(down) + 1, `${addr}: ${was.remaining} s before, ${now!.remaining} s after ${down.toFixed(1)} s`);
      assert.ok(now!.remaining > 0);
      assert.equal(now!.count, was.count, `${addr}: count not changed by the restart`);
      assert.equal(now!.pattern, was.pattern);
    }
    const kernelAfter = await ipsetTimeout(sb, a4);
    assert.ok(kernelAfter !== null && kernelAfter <= kernelBefore! - Math.floor(down) + 1, `kernel timeout not renewed: ${kernelBefore} -> ${kernelAfter}`);

    // The failure logged while down counted once: two more reach the threshold, one does not.
    assert.equal(await inIpset(sb, late), false);
    await fail(late, 1);
    await sleep(1000);
    assert.equal(await inIpset(sb, late), false, `two failures (0.68) must not ban\n${d.output}`);
    await fail(late, 1);
    await waitFor(`${late} banned after the third failure\n${d.output}`, () => inIpset(sb, late), 15000);
    const after2 = new Map((await list(conf)).map((i) => [i.address, i]));
    assert.equal(after2.get(late)?.count, 3, 'one failure while down + two after: counted once each');
    assert.equal(after2.get(a4)?.count, 3, 'old failures were not replayed');
    assert.equal(d.count(new RegExp(`ban address=${a4.replace(/\./g, '\\.')} `)), 0, 'no second ban line for an old ban');

    // unban lifts the ban and forgets the record: one new failure does not re-ban by old score.
    const ub = await ctl(conf, 'unban', a4);
    assert.equal(ub.code, 0, ub.stderr);
    assert.equal(ub.stdout, `unbanned ${a4}; its record is cleared\n`);
    assert.equal(await inIpset(sb, a4), false);
    await fail(a4, 1);
    await sleep(1000);
    assert.equal(await inIpset(sb, a4), false, 'a cleared record starts from zero');
    d.kill('SIGTERM');
    await d.wait();
  });

  it('bans already in the kernel that the state file does not know are adopted with their remaining time', async () => {
    const conf = writeConfig(sb, 'adopt', ['expires=600', 'ipv6=1', 'whitelist=127.0.0.1']);
    let d = start(conf);
    await d.ready(); // the sets exist now
    d.kill('SIGTERM');
    assert.equal((await d.wait()).code, 0, d.output);
    // As after a crash between a ban and the next save (or an administrator's own ipset add).
    await sb.check(['ipset', 'add', 'tallow', '198.51.100.77', 'timeout', '200', '-exist'], { net: 'server' });
    d = start(conf);
    await d.ready();
    await d.waitLine('adoption line', /firewall: 1 bans found in the kernel adopted with their remaining time/);
    const item = (await list(conf)).find((i) => i.address === '198.51.100.77');
    assert.ok(item, 'tallow list shows the kernel ban');
    assert.ok(item!.remaining > 150 && item!.remaining <= 200, `remaining ${item!.remaining}`);
    const t = await ipsetTimeout(sb, '198.51.100.77');
    assert.ok(t !== null && t <= 200, `kernel timeout not renewed: ${t}`);
    d.kill('SIGTERM');
    await d.wait();
  });

  it('killed (no last save), the last save in its log torn, the sets emptied: the bans of the whole saves come back, one line about the torn one', async () => {
    const conf = writeConfig(sb, 'statelog', ['expires=300', 'ipv6=1', 'whitelist=127.0.0.1']);
    const stateDir = path.join(sb.dir, 'statelog', 'state');
    const log = path.join(stateDir, 'state.log');
    const [first, second] = ['198.51.100.61', '2001:db8::61'];
    // Only this test's bans: the earlier tests' are still in the sets (and would be adopted).
    for (const set of ['tallow', 'tallow6']) await sb.run(['ipset', 'flush', set], { net: 'server' });
    const d = start(conf);
    await d.ready();
    assert.equal((await ctl(conf, 'ban', first, '--time', '200')).code, 0);
    // The first save of a fresh state_dir is a whole snapshot (with or without this ban, as the
    // journal's cursor may have made one already); the next ones append to its log.
    const saved = (file: string, what: string) => fs.existsSync(path.join(stateDir, file)) && fs.readFileSync(path.join(stateDir, file), 'utf8').includes(what);
    await waitFor('the first ban saved', async () => saved('state.json', first) || saved('state.log', first), 10000);
    assert.equal((await ctl(conf, 'ban', second, '--time', '200')).code, 0);
    await waitFor('the second ban appended to state.log', async () => saved('state.log', second), 10000);
    d.kill('SIGKILL');
    await d.wait();
    // As if the crash came while a third save was being appended, and the host rebooted.
    fs.appendFileSync(log, '0123456789abcdef {"saved":17000000');
    await sb.check(['ipset', 'flush', 'tallow'], { net: 'server' });
    await sb.check(['ipset', 'flush', 'tallow6'], { net: 'server' });
    const again = start(conf);
    await again.ready();
    await again.waitLine('the torn save named', /state: state log .*state\.log: its last save was cut short \(a crash while it was written\), dropped; [1-3] saves applied/);
    await again.waitLine('state restored line', /state restored: \d+ records, \d+ active bans put back/);
    assert.ok(!again.has(/\n\s+at /), 'no stack trace');
    // (The earlier cases' sshd failures may reach this daemon's journal too: only ours are asserted.)
    const listed = (await list(conf)).map((i) => i.address);
    assert.ok(listed.includes(first) && listed.includes(second), listed.join(' '));
    await waitFor('both back in the kernel', async () => (await inIpset(sb, first)) && (await inIpset(sb, second)), 10000);
    again.kill('SIGTERM');
    assert.equal((await again.wait()).code, 0);
    assert.deepEqual(fs.readdirSync(stateDir).filter((f) => f.includes('corrupt')), [], 'a torn save is no corruption: nothing set aside');
  });

  for (const [kind, content] of [
    ['truncated', '{"version":1,"saved":1,"cursor":null,\n"records":[\n["192.0.2.9",0.5,1,1,1,0,0,nu'],
    ['garbage', '\u0000\u0001 not json at all \u00ff'],
    ['wrong version', '{"version":99,"saved":1,"cursor":null,"records":[],"bans":[]}\n'],
  ] as const) {
    it(`a ${kind} state file is reported, set aside, and the daemon runs`, async () => {
      const name = `corrupt-${kind.replace(' ', '-')}`;
      const conf = writeConfig(sb, name, ['expires=120', 'ipv6=1']);
      const stateDir = path.join(sb.dir, name, 'state');
      fs.mkdirSync(stateDir, { recursive: true });
      fs.writeFileSync(path.join(stateDir, 'state.json'), content);
      const d = start(conf);
      await d.ready();
      assert.ok(d.has(/state file problem: .*state\.json .*moved aside to .*state\.json\.corrupt-/), d.output);
      assert.ok(!d.has(/\n\s+at /), 'no stack trace');
      const aside = fs.readdirSync(stateDir).filter((f) => f.startsWith('state.json.corrupt-'));
      assert.equal(aside.length, 1, fs.readdirSync(stateDir).join(' '));
      assert.equal(fs.readFileSync(path.join(stateDir, aside[0]), 'utf8'), content, 'the bad file is kept for a look');
      const st = await ctl(conf, 'status');
      assert.equal(st.code, 0, st.stderr);
      // Nothing of the bad file was loaded: every record is of an entry this run matched (the
      // earlier cases' sshd failures can still reach the shared journal after this start).
      const count = (key: string) => Number(new RegExp(`^${key}: +(\\d+)$`, 'm').exec(st.stdout)?.[1] ?? NaN);
      assert.ok(count('records') <= count('matches'), st.stdout);
      d.kill('SIGTERM');
      assert.equal((await d.wait()).code, 0);
      assert.ok(fs.existsSync(path.join(stateDir, 'state.json')), 'a fresh state file is written on stop');
    });
  }
});
