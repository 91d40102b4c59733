// `tallow allow add|remove|list` against a running daemon (issue 18): the entry is in force at
// once (a ban it covers is lifted from the kernel set), kept in the daemon's drop-in, and still
// there after a restart, when an attacker in that network is not banned while one outside is.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createSandbox, waitFor, type Sandbox } from '../env/sandbox';
import { CLI, DaemonProc, SSHD_FILTER, inIpset, writeConfig } from './e2e-daemon';

// Two failed passwords reach the threshold.
const PATTERNS = [{ filter: SSHD_FILTER, items: [{ ban: 0, score: 0.5, pattern: '^Failed password for \\S+ from <IP> port <PORT> ssh2$' }] }];

let sb: Sandbox;
let conf: string;
let d: DaemonProc;
const daemons: DaemonProc[] = [];

function start(): DaemonProc {
  const p = new DaemonProc(sb, ['--config', conf]);
  daemons.push(p);
  return p;
}

function ctl(...args: string[]) {
  return sb.run([process.execPath, CLI, ...args, '--config', conf], { net: 'server', timeoutMs: 20000 });
}

async function attack(address: string, times: number): Promise<void> {
  for (let i = 0; i < times; i++) await sb.logger('sshd', `Failed password for root from ${address} port 22 ssh2`);
}

describe('tallow allow against a running daemon, across a restart', { timeout: 120_000 }, () => {
  let dropin: string;
  before(async () => {
    sb = await createSandbox({ network: true, journald: true });
    conf = writeConfig(sb, 'allow', ['expires=600', 'ipv6=1']);
    fs.writeFileSync(path.join(sb.dir, 'allow', 'patterns', 'sshd.json'), JSON.stringify(PATTERNS));
    dropin = path.join(sb.dir, 'allow', 'tallow.conf.d', '50-tallow-allow.conf');
    d = start();
    await d.ready();
  });
  after(async () => {
    for (const p of daemons) if (!p.exit) p.kill('SIGKILL');
    await sb?.destroy();
  });

  it('allow add: in force at once, lifts a ban it covers, written to the drop-in (0644)', async () => {
    let r = await ctl('ban', '198.51.100.7');
    assert.equal(r.code, 0, r.stderr);
    assert.equal(await inIpset(sb, '198.51.100.7'), true);
    r = await ctl('allow', 'add', '198.51.100.99/24');
    assert.deepEqual([r.code, r.stderr, r.stdout], [0, '', `allowed 198.51.100.0/24 (kept in ${dropin})\nban lifted: 198.51.100.7 (all ports)\n`]);
    assert.equal(await inIpset(sb, '198.51.100.7'), false, 'the ban is lifted from the kernel set');
    assert.match(fs.readFileSync(dropin, 'utf8'), /^whitelist=198\.51\.100\.0\/24$/m);
    const st = fs.statSync(dropin);
    assert.deepEqual([st.mode & 0o777, st.uid], [0o644, 0]);
    assert.deepEqual(fs.readdirSync(path.dirname(dropin)), ['50-tallow-allow.conf'], 'no temporary file left');
    r = await ctl('allow', 'add', '198.51.100.0/24');
    assert.deepEqual([r.code, r.stdout], [0, '198.51.100.0/24 was already allowed by tallow allow add\n']);
    r = await ctl('allow', 'add', '2001:db8:7::/48');
    assert.equal(r.code, 0, r.stderr);
  });

  it('after a restart: the entry is still there; an attacker in that network is not banned, one outside is', async () => {
    await d.stop();
    assert.equal(d.exit?.code, 0, d.output);
    d = start();
    await d.ready();
    assert.ok(d.has(/allowlist: 6 entries/), d.output); // the 4 defaults + 2 from the drop-in
    const l = await ctl('allow', 'list', '--json');
    assert.equal(l.code, 0, l.stderr);
    const list = JSON.parse(l.stdout) as { entries: string[]; added: string[]; file: string };
    assert.deepEqual(list, { entries: ['127.0.0.0/8', '192.168.', '10.', '::1', '198.51.100.0/24', '2001:db8:7::/48'], added: ['198.51.100.0/24', '2001:db8:7::/48'], file: dropin });
    const text = await ctl('allow', 'list');
    assert.match(text.stdout, /^198\.51\.100\.0\/24\t\(tallow allow add, /m);
    assert.match(text.stdout, /^127\.0\.0\.0\/8$/m);

    // The allowed attacker's lines come first: once the other one is banned, they were read.
    await attack('198.51.100.9', 4);
    await attack('203.0.113.9', 2);
    await waitFor(`203.0.113.9 banned\n${d.output}`, () => inIpset(sb, '203.0.113.9'), 15000);
    assert.equal(await inIpset(sb, '198.51.100.9'), false);
    const banned = JSON.parse((await ctl('list', '--json')).stdout) as { address: string }[];
    assert.deepEqual(banned.map((b) => b.address), ['203.0.113.9']);
  });

  it('bash completion asks this daemon: its rule names and banned addresses', async () => {
    const prog = path.join(sb.dir, 'tallow');
    fs.writeFileSync(prog, `#!/bin/sh\nexec ${process.execPath} ${CLI} "$@"\n`, { mode: 0o755 });
    const complete = async (words: string[]) => {
      const script = `source ${path.join(CLI, '..', '..', '..', 'completion', 'tallow.bash')}; COMP_WORDS=(${words.map((w) => `'${w}'`).join(' ')}); COMP_CWORD=${words.length - 1}; _tallow; printf '%s\\n' "\${COMPREPLY[@]}"`;
      const r = await sb.run(['bash', '-c', script], { net: 'server', timeoutMs: 20000 });
      assert.equal(r.code, 0, r.stderr);
      return r.stdout.split('\n').filter(Boolean);
    };
    assert.deepEqual(await complete([prog, 'unban', '--config', conf, '']), ['203.0.113.9']);
    assert.ok((await complete([prog, 'rules', '--config', conf, ''])).includes('sshd'));
    assert.deepEqual(await complete([prog, 'allow', 'remove', '--config', conf, '2']), ['2001:db8:7::/48']);
  });

  it('allow remove: out of the drop-in and of the running allowlist; entries of tallow.conf are not ours to remove', async () => {
    let r = await ctl('allow', 'remove', '198.51.100.0/24');
    assert.deepEqual([r.code, r.stdout], [0, `removed 198.51.100.0/24 from the allowlist (${dropin})\n`]);
    assert.doesNotMatch(fs.readFileSync(dropin, 'utf8'), /198\.51\.100/);
    r = await ctl('allow', 'remove', '198.51.100.0/24');
    assert.deepEqual([r.code, r.stdout], [0, '198.51.100.0/24 was not added with tallow allow add; nothing changed\n']);
    r = await ctl('allow', 'remove', '127.0.0.0/8');
    assert.equal(r.code, 1);
    assert.match(r.stderr, /^tallow allow remove: 127\.0\.0\.0\/8 was not added with tallow allow add; it comes from \S+ or another drop-in: remove it there\n$/);
    // Now the same network's attacker is banned.
    await attack('198.51.100.10', 2);
    await waitFor(`198.51.100.10 banned\n${d.output}`, () => inIpset(sb, '198.51.100.10'), 15000);
  });

  it('bad usage: exit 64 (EX_USAGE), nothing sent', async () => {
    for (const [args, why] of [
      [['allow', 'add', 'not-an-address'], /allowlist entry 'not-an-address': not a valid address/],
      [['allow', 'add'], /an ADDRESS or NETWORK is needed/],
      [['allow', 'drop', '192.0.2.1'], /unknown action "drop"/],
      [['allow', 'list', 'x'], /unexpected argument "x"/],
    ] as const) {
      const r = await ctl(...args);
      assert.equal(r.code, 64, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, why);
    }
  });
});
