// The control socket of a running daemon (issue 6): each command through the built CLI, checked
// against the kernel set; every kind of bad request sent raw to the socket (the daemon must answer
// or hang up and keep running); permission denied for an ordinary user; "not running" after stop.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { createSandbox, type Sandbox } from '../env/sandbox';
import { CLI, DaemonProc, inIpset, ipsetTimeout, writeConfig } from './e2e-daemon';

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
    assert.match(rows[2], /^203\.0\.113\.5 +- +all +(59s|1m 0s) +0\.00 +0 +manual$/);
    assert.match(rows[3], /^198\.51\.100\.9 +- +all +(29|30)s +0\.00 +0 +manual$/);
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

  it('bad input through the CLI: exit 2 with a message, nothing sent', async () => {
    for (const [args, why] of [
      [['ban', '203.0.113.0/24'], /is a network \(CIDR\)/],
      [['ban', 'not-an-address'], /is not an IPv4 or IPv6 address/],
      [['ban', '203.0.113.6', '--time', '-5'], /--time must be a whole number/],
      [['unban'], /an ADDRESS is needed/],
    ] as const) {
      const r = await ctl(...args);
      assert.equal(r.code, 2, args.join(' '));
      assert.match(r.stderr, why);
    }
  });

  it('every kind of bad request sent raw: answered with an error, the daemon keeps running', async () => {
    const bad: [string, RegExp][] = [
      ['{"cmd":"ban","address":"203.0.113.7"', /not valid JSON/],
      ['[]', /must be a JSON object/],
      ['{"cmd":"shutdown"}', /unknown command/],
      ['{"cmd":"ban","address":"203.0.113.0/24"}', /CIDR/],
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

  it('an ordinary user is refused (exit 4)', async () => {
    // Let nobody reach the socket's directory, so the refusal comes from the socket's own mode.
    fs.chmodSync(sb.dir, 0o711);
    fs.chmodSync(path.dirname(sock), 0o755);
    const r = await sb.run([process.execPath, CLI, 'status', '--socket', sock], { net: 'server', user: 'nobody', timeoutMs: 20000 });
    assert.equal(r.stderr, `tallow: permission denied on ${sock} (run as root)\n`);
    assert.equal(r.code, 4);
  });

  it('after SIGTERM: the socket is gone and the client says the daemon is not running (exit 3)', async () => {
    d.kill('SIGTERM');
    assert.equal((await d.wait()).code, 0, d.output);
    assert.equal(fs.existsSync(sock), false);
    const r = await ctl('list');
    assert.equal(r.code, 3);
    assert.equal(r.stderr, `tallow: the daemon is not running (no socket at ${sock})\n`);
  });
});
