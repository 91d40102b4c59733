// Control socket server: permissions, stale sockets, and every kind of bad request or bad client.
// The server must answer or hang up, never crash, and keep serving the next client.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { ControlServer, MAX_BAN_SECONDS, MAX_CLIENTS, type ControlResponse } from '../../src/control';
import type { ControlRequest } from '../../src/control-requests';

function tmpdir(t: { after(fn: () => void): void }): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), `tallow-control-${process.pid}-`));
  t.after(() => fs.rmSync(d, { recursive: true, force: true }));
  return d;
}

interface Served {
  server: ControlServer;
  sock: string;
  seen: ControlRequest[];
}

async function serve(t: { after(fn: () => Promise<void> | void): void }, handler?: (r: ControlRequest) => Promise<ControlResponse>): Promise<Served> {
  const sock = path.join(tmpdir(t), 'run', 'tallow.sock');
  const seen: ControlRequest[] = [];
  const server = await ControlServer.listen(sock, async (req) => {
    seen.push(req);
    if (handler) return handler(req);
    return { ok: true, result: { echo: req } };
  });
  t.after(() => server.close());
  return { server, sock, seen };
}

/** Send raw bytes, collect every line the server writes until it closes or `lines` arrived. */
function exchange(sock: string, data: string | Buffer, lines = 1, timeoutMs = 3000, halfClose = false): Promise<{ lines: string[]; closed: boolean }> {
  return new Promise((resolve, reject) => {
    const c = net.createConnection(sock);
    let buf = '';
    let closedByServer = false;
    const timer = setTimeout(() => {
      c.destroy();
      reject(new Error(`no ${lines} line(s) within ${timeoutMs} ms; got ${JSON.stringify(buf)}`));
    }, timeoutMs);
    const done = (): void => {
      clearTimeout(timer);
      c.destroy();
      resolve({ lines: buf.split('\n').filter((l) => l !== ''), closed: closedByServer });
    };
    c.setEncoding('utf8');
    c.on('connect', () => (halfClose ? c.end(data) : c.write(data)));
    c.on('data', (d: string) => {
      buf += d;
      if (buf.split('\n').length - 1 >= lines && lines > 0) done();
    });
    c.on('end', () => {
      closedByServer = true;
      done();
    });
    c.on('error', () => done());
  });
}

async function ask(sock: string, req: unknown): Promise<ControlResponse> {
  const r = await exchange(sock, (typeof req === 'string' ? req : JSON.stringify(req)) + '\n');
  assert.equal(r.lines.length, 1, `one answer line, got ${JSON.stringify(r.lines)}`);
  return JSON.parse(r.lines[0]);
}

test('socket is 0600, its missing directory is created 0700, close removes it', async (t) => {
  const { server, sock } = await serve(t);
  assert.equal(fs.statSync(sock).mode & 0o777, 0o600);
  assert.ok(fs.statSync(sock).isSocket());
  assert.equal(fs.statSync(path.dirname(sock)).mode & 0o777, 0o700);
  await server.close();
  assert.equal(fs.existsSync(sock), false);
});

test('a stale socket is replaced; a live one, or a plain file, is refused', async (t) => {
  const dir = tmpdir(t);
  const sock = path.join(dir, 'tallow.sock');
  // A stale socket: bound, then the process "died" without unlinking (simulated by a server
  // whose handle is closed while the file stays).
  const stale = net.createServer();
  await new Promise<void>((r) => stale.listen(sock, r));
  // Node unlinks on close(); keep a copy of the inode by hard-linking it back afterwards.
  fs.linkSync(sock, sock + '.keep');
  await new Promise<void>((r) => stale.close(() => r()));
  fs.renameSync(sock + '.keep', sock);
  assert.ok(fs.lstatSync(sock).isSocket());
  const s1 = await ControlServer.listen(sock, async () => ({ ok: true, result: 1 }));
  assert.deepEqual(await ask(sock, { cmd: 'status' }), { ok: true, result: 1 });
  await assert.rejects(ControlServer.listen(sock, async () => ({ ok: true, result: 2 })), /another tallow is already listening on/);
  assert.deepEqual(await ask(sock, { cmd: 'status' }), { ok: true, result: 1 }, 'the live daemon keeps its socket');
  await s1.close();
  const plain = path.join(dir, 'plain');
  fs.writeFileSync(plain, 'keep me');
  await assert.rejects(ControlServer.listen(plain, async () => ({ ok: true, result: 0 })), /exists and is not a socket/);
  assert.equal(fs.readFileSync(plain, 'utf8'), 'keep me');
});

test('valid requests reach the handler, addresses canonical', async (t) => {
  const { sock, seen } = await serve(t);
  assert.deepEqual(await ask(sock, { cmd: 'status' }), { ok: true, result: { echo: { cmd: 'status' } } });
  await ask(sock, { cmd: 'list' });
  await ask(sock, { cmd: 'ban', address: '203.0.113.9' });
  await ask(sock, { cmd: 'ban', address: '2001:DB8:0:0::9', seconds: 60 });
  await ask(sock, { cmd: 'unban', address: '::ffff:198.51.100.7' });
  await ask(sock, { cmd: 'ban', address: '192.0.2.1', seconds: MAX_BAN_SECONDS });
  // A network banned by a rule's ban prefix: lifted by its text, canonical, host bits cleared.
  await ask(sock, { cmd: 'unban', address: '2001:DB8:0:0:5::/64' });
  await ask(sock, { cmd: 'unban', address: '198.51.100.77/24' });
  await ask(sock, { cmd: 'unban', address: '198.51.100.77/32' });
  await ask(sock, { cmd: 'rules' });
  await ask(sock, { cmd: 'rules', name: 'sshd.json#1' });
  // Issue 18: networks banned by hand, a rule's ports, every ban lifted, reload, get and set.
  await ask(sock, { cmd: 'ban', address: '203.0.113.77/24', rule: 'sshd', seconds: 60 });
  await ask(sock, { cmd: 'ban', address: '2001:db8::/48' });
  await ask(sock, { cmd: 'unban', all: true });
  await ask(sock, { cmd: 'list', rule: 'postfix' });
  await ask(sock, { cmd: 'reload' });
  await ask(sock, { cmd: 'get', key: 'sshd.threshold' });
  await ask(sock, { cmd: 'set', key: 'sshd.bantime', value: '2h' });
  await ask(sock, { cmd: 'set', key: 'sshd#2.threshold', value: 2.5 });
  await ask(sock, { cmd: 'set', key: 'my.rule.findtime', value: 600 });
  assert.deepEqual(seen.slice(11), [
    { cmd: 'ban', address: '203.0.113.0/24', rule: 'sshd', seconds: 60 },
    { cmd: 'ban', address: '2001:db8::/48' },
    { cmd: 'unban', all: true },
    { cmd: 'list', rule: 'postfix' },
    { cmd: 'reload' },
    { cmd: 'get', key: 'sshd.threshold' },
    { cmd: 'set', key: 'sshd.bantime', value: 7200 },
    { cmd: 'set', key: 'sshd#2.threshold', value: 2.5 },
    { cmd: 'set', key: 'my.rule.findtime', value: 600 },
  ]);
  assert.deepEqual(seen.slice(0, 11), [
    { cmd: 'status' },
    { cmd: 'list' },
    { cmd: 'ban', address: '203.0.113.9' },
    { cmd: 'ban', address: '2001:db8::9', seconds: 60 },
    { cmd: 'unban', address: '198.51.100.7' },
    { cmd: 'ban', address: '192.0.2.1', seconds: MAX_BAN_SECONDS },
    { cmd: 'unban', address: '2001:db8::/64' },
    { cmd: 'unban', address: '198.51.100.0/24' },
    { cmd: 'unban', address: '198.51.100.77' },
    { cmd: 'rules' },
    { cmd: 'rules', name: 'sshd.json#1' },
  ]);
});

const refused: [string, unknown, RegExp][] = [
  ['malformed JSON', '{"cmd":"status"', /not valid JSON/],
  ['JSON that is not an object', '[1,2]', /must be a JSON object/],
  ['a JSON string', '"status"', /must be a JSON object/],
  ['null', 'null', /must be a JSON object/],
  ['no cmd', { address: '192.0.2.1' }, /missing "cmd"/],
  ['unknown cmd', { cmd: 'shutdown' }, /unknown command "shutdown"/],
  ['cmd inherited from Object', { cmd: 'constructor' }, /unknown command "constructor"/],
  ['unexpected field', { cmd: 'status', verbose: true }, /unexpected field "verbose"/],
  ['ban without address', { cmd: 'ban' }, /"address" must be a string/],
  ['ban with a number as address', { cmd: 'ban', address: 3221225985 }, /"address" must be a string/],
  ['not an address', { cmd: 'ban', address: 'example.org' }, /"example.org" is not an IPv4 or IPv6 address/],
  ['a bad CIDR on ban', { cmd: 'ban', address: '203.0.113.0/33' }, /not a valid network/],
  ['a rule name that is no word on ban', { cmd: 'ban', address: '192.0.2.1', rule: 'a b' }, /"rule" must be a rule name/],
  ['a rule on unban', { cmd: 'unban', address: '192.0.2.1', rule: 'sshd' }, /unexpected field "rule"/],
  ['all that is not true', { cmd: 'unban', all: 1 }, /"all" must be true/],
  ['all and an address', { cmd: 'unban', all: true, address: '192.0.2.1' }, /not both/],
  ['list of a rule that is a number', { cmd: 'list', rule: 3 }, /"rule" must be a rule name/],
  ['reload with a field', { cmd: 'reload', file: '/etc/passwd' }, /unexpected field "file"/],
  ['get of no key', { cmd: 'get' }, /is not a setting/],
  ['get of a key that is not settable', { cmd: 'get', key: 'sshd.ports' }, /"sshd.ports" is not a setting/],
  ['get of a key with no rule', { cmd: 'get', key: '.bantime' }, /is not a setting/],
  ['set without a value', { cmd: 'set', key: 'sshd.bantime' }, /bantime: expected a duration/],
  ['set of a zero threshold', { cmd: 'set', key: 'sshd.threshold', value: 0 }, /threshold: expected a score above 0/],
  ['set of a negative threshold as text', { cmd: 'set', key: 'sshd.threshold', value: '-1' }, /threshold: expected a score above 0/],
  ['set of a fractional bantime', { cmd: 'set', key: 'sshd.bantime', value: 1.5 }, /bantime: expected a duration/],
  ['set of a findtime too long', { cmd: 'set', key: 'sshd.findtime', value: MAX_BAN_SECONDS + 1 }, /findtime: expected a duration/],
  ['set of a bantime of nothing', { cmd: 'set', key: 'sshd.bantime', value: '0s' }, /bantime: expected a duration/],
  ['a bad network on unban', { cmd: 'unban', address: '2001:db8::/129' }, /not a valid network/],
  ['a mapped network on unban', { cmd: 'unban', address: '::ffff:192.0.2.0/120' }, /not a valid network/],
  ['rules with a name that is no word', { cmd: 'rules', name: 'a b' }, /"name" must be a rule name/],
  ['rules with a number for a name', { cmd: 'rules', name: 7 }, /"name" must be a rule name/],
  ['rules with another field', { cmd: 'rules', address: '192.0.2.1' }, /unexpected field "address"/],
  ['an address with a port', { cmd: 'unban', address: '203.0.113.9:22' }, /not an IPv4 or IPv6 address/],
  ['an address with a zone', { cmd: 'ban', address: 'fe80::1%eth0' }, /not an IPv4 or IPv6 address/],
  ['an empty address', { cmd: 'ban', address: '' }, /not an IPv4 or IPv6 address/],
  ['negative seconds', { cmd: 'ban', address: '192.0.2.1', seconds: -5 }, /"seconds" must be a whole number from 1/],
  ['zero seconds', { cmd: 'ban', address: '192.0.2.1', seconds: 0 }, /"seconds" must be a whole number/],
  ['fractional seconds', { cmd: 'ban', address: '192.0.2.1', seconds: 1.5 }, /"seconds" must be a whole number/],
  ['seconds as text', { cmd: 'ban', address: '192.0.2.1', seconds: '60' }, /"seconds" must be a whole number/],
  ['seconds too large', { cmd: 'ban', address: '192.0.2.1', seconds: MAX_BAN_SECONDS + 1 }, /"seconds" must be a whole number/],
  ['seconds on unban', { cmd: 'unban', address: '192.0.2.1', seconds: 5 }, /unexpected field "seconds"/],
];

test('every kind of bad request is refused with a message and never reaches the handler', async (t) => {
  const { sock, seen } = await serve(t);
  for (const [name, req, why] of refused) {
    const res = await ask(sock, req);
    assert.equal(res.ok, false, name);
    assert.match((res as { error: string }).error, why, name);
  }
  assert.deepEqual(seen, []);
  assert.equal((await ask(sock, { cmd: 'status' })).ok, true, 'still serving');
});

test('a bad line does not end the connection: pipelined requests are answered in order', async (t) => {
  const { sock } = await serve(t);
  const r = await exchange(sock, 'garbage\n\n{"cmd":"list"}\n{"cmd":"nope"}\n{"cmd":"status"}\n', 4);
  const res = r.lines.map((l) => JSON.parse(l));
  assert.equal(res.length, 4);
  assert.equal(res[0].ok, false);
  assert.deepEqual(res[1], { ok: true, result: { echo: { cmd: 'list' } } });
  assert.equal(res[2].ok, false);
  assert.deepEqual(res[3], { ok: true, result: { echo: { cmd: 'status' } } });
});

test('a last request without a newline is answered when the client ends', async (t) => {
  const { sock } = await serve(t);
  const r = await exchange(sock, '{"cmd":"status"}', 0, 3000, true);
  assert.deepEqual(r.lines.map((l) => JSON.parse(l)), [{ ok: true, result: { echo: { cmd: 'status' } } }]);
});

test('handler errors become {ok:false,error}; a handler returning nothing too', async (t) => {
  const { sock } = await serve(t, async (req) => {
    if (req.cmd === 'ban') throw new Error('firewall said no');
    if (req.cmd === 'list') return undefined as unknown as ControlResponse;
    return { ok: false, error: 'not today' };
  });
  assert.deepEqual(await ask(sock, { cmd: 'ban', address: '192.0.2.9' }), { ok: false, error: 'firewall said no' });
  assert.deepEqual(await ask(sock, { cmd: 'list' }), { ok: false, error: 'internal error: no response' });
  assert.deepEqual(await ask(sock, { cmd: 'status' }), { ok: false, error: 'not today' });
});

test('an oversized request gets an error line and the connection is closed', async (t) => {
  const { sock, seen } = await serve(t);
  // 70 KiB without a newline, and 70 KiB inside one JSON line: both refused.
  for (const data of ['x'.repeat(70 * 1024), JSON.stringify({ cmd: 'ban', address: '1'.repeat(70 * 1024) }) + '\n']) {
    const r = await exchange(sock, data, 0);
    assert.equal(r.closed, true, 'server hangs up');
    assert.equal(r.lines.length, 1);
    assert.match(JSON.parse(r.lines[0]).error, /request longer than 65536 bytes/);
  }
  assert.deepEqual(seen, []);
  assert.equal((await ask(sock, { cmd: 'status' })).ok, true, 'still serving');
});

test('clients disconnecting mid-request or before the answer do not disturb the server', async (t) => {
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const { sock, seen } = await serve(t, async (req) => {
    if (req.cmd === 'list') await gate; // answer only after the client is gone
    return { ok: true, result: req.cmd };
  });
  // Half a line, then gone.
  const a = net.createConnection(sock);
  await new Promise<void>((r) => a.on('connect', () => r()));
  a.write('{"cmd":"sta');
  a.destroy();
  // A full request, then gone before the (slow) answer: the late write must not throw.
  const b = net.createConnection(sock);
  await new Promise<void>((r) => b.on('connect', () => r()));
  b.write('{"cmd":"list"}\n');
  while (!seen.some((r) => r.cmd === 'list')) await new Promise((r) => setTimeout(r, 5));
  b.destroy();
  await new Promise((r) => setTimeout(r, 50));
  release();
  await new Promise((r) => setTimeout(r, 50));
  assert.deepEqual(await ask(sock, { cmd: 'status' }), { ok: true, result: 'status' });
  assert.deepEqual(seen.map((r) => r.cmd), ['list', 'status'], 'the half request never reached the handler');
});

test(`many clients at once: each is answered or told to retry, and the server keeps serving`, async (t) => {
  const { sock } = await serve(t, async (req) => {
    await new Promise((r) => setTimeout(r, 20));
    return { ok: true, result: req.cmd };
  });
  const n = MAX_CLIENTS + 36;
  const results = await Promise.all(Array.from({ length: n }, () => exchange(sock, '{"cmd":"status"}\n', 1, 10000)));
  let answered = 0;
  let busy = 0;
  for (const r of results) {
    assert.equal(r.lines.length, 1);
    const res = JSON.parse(r.lines[0]);
    if (res.ok) answered++;
    else {
      assert.match(res.error, /too many control connections/);
      busy++;
    }
  }
  assert.equal(answered + busy, n);
  assert.ok(answered >= MAX_CLIENTS / 2, `answered ${answered}`);
  assert.equal((await ask(sock, { cmd: 'status' })).ok, true);
});

test('deeply nested JSON gets an error reply, and the connection keeps working', async (t) => {
  const { sock, seen } = await serve(t);
  const deep = (n: number): string => '['.repeat(n) + ']'.repeat(n);
  // Nested where a message would quote it ("seconds"), and as the whole request.
  const lines = [
    `{"cmd":"ban","address":"192.0.2.1","seconds":${deep(10000)}}`,
    `{"cmd":${deep(5000)}}`,
    deep(30000),
    '{"cmd":"status"}',
  ];
  const r = await exchange(sock, lines.join('\n') + '\n', 4);
  const res = r.lines.map((l) => JSON.parse(l));
  assert.equal(res.length, 4);
  for (const x of res.slice(0, 3)) assert.match(x.error, /^malformed request: nested deeper than 8 levels at line 1, column \d+$/);
  assert.deepEqual(res[3], { ok: true, result: { echo: { cmd: 'status' } } });
  assert.deepEqual(seen, [{ cmd: 'status' }]);
});

test('the request deadline is not extended by bytes that do not finish a request', async (t) => {
  const sock = path.join(tmpdir(t), 'tallow.sock');
  const server = await ControlServer.listen(sock, async (req) => ({ ok: true, result: req.cmd }), { requestTimeoutMs: 300 });
  t.after(() => server.close());
  // One byte every 100 ms (or a blank line, which asks nothing): an idle timer would never fire;
  // the deadline does, at about 300 ms.
  for (const byte of ['{', '\n']) {
    const dribbler = net.createConnection(sock);
    await new Promise<void>((r) => dribbler.on('connect', () => r()));
    const started = Date.now();
    const drip = setInterval(() => dribbler.write(byte), 100);
    t.after(() => clearInterval(drip));
    const closedAfter = await new Promise<number>((resolve) => {
      const giveUp = setTimeout(() => resolve(Infinity), 2000);
      dribbler.on('close', () => { clearTimeout(giveUp); resolve(Date.now() - started); });
      dribbler.on('error', () => {});
    });
    clearInterval(drip);
    dribbler.destroy();
    assert.ok(closedAfter >= 250 && closedAfter < 1000, `the client dribbling ${JSON.stringify(byte)} was cut off after ${closedAfter} ms`);
  }

  // Whole requests each within the deadline keep a connection open for longer than one deadline.
  const c = net.createConnection(sock);
  t.after(() => c.destroy());
  c.setEncoding('utf8');
  let got = '';
  c.on('data', (d: string) => (got += d));
  await new Promise<void>((r) => c.on('connect', () => r()));
  for (let i = 0; i < 5; i++) {
    c.write('{"cmd":"status"}\n');
    await new Promise((r) => setTimeout(r, 150));
  }
  assert.equal(c.destroyed, false, 'a client that keeps asking is served');
  assert.equal(got, '{"ok":true,"result":"status"}\n'.repeat(5));
});

test('a client that sends without reading is paused, costs bounded memory, and gets every answer once it reads', async (t) => {
  const sock = path.join(tmpdir(t), 'tallow.sock');
  let served = 0;
  const big = 'x'.repeat(1000); // about 1 KiB per answer
  const server = await ControlServer.listen(sock, async () => {
    served++;
    return { ok: true, result: big };
  });
  t.after(() => server.close());
  const n = 20_000;
  const c = net.createConnection(sock);
  t.after(() => c.destroy());
  await new Promise<void>((r) => c.on('connect', () => r()));
  c.pause(); // never read, for now
  c.write('{"cmd":"status"}\n'.repeat(n));
  await new Promise((r) => setTimeout(r, 700));
  // Without backpressure all 20,000 answers (20 MB) would be queued by now. With it, the server
  // stops at what the socket buffers hold plus MAX_QUEUED_REPLY_BYTES.
  assert.ok(served < 1000, `served ${served} requests to a client that reads nothing`);
  const before = served;
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(served, before, 'and then waits');
  // Now read: every answer arrives, in order, none lost.
  let lines = 0;
  let rest = '';
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`only ${lines} of ${n} answers`)), 20_000);
    c.setEncoding('utf8');
    c.on('data', (d: string) => {
      const parts = (rest + d).split('\n');
      rest = parts.pop()!;
      for (const p of parts) {
        assert.equal(p, `{"ok":true,"result":"${big}"}`);
        lines++;
      }
      if (lines === n) {
        clearTimeout(timer);
        resolve();
      }
    });
    c.resume();
  });
  assert.equal(served, n);
});

const asRoot = { skip: process.geteuid?.() !== 0 ? 'needs root (chown)' : false };

test("an existing socket directory others can write, or another user's, is refused", asRoot, async (t) => {
  const base = tmpdir(t);
  const dir = path.join(base, 'run');
  fs.mkdirSync(dir, { mode: 0o700 });
  const sock = path.join(dir, 'tallow.sock');
  const handler = async (): Promise<ControlResponse> => ({ ok: true, result: 0 });
  fs.chmodSync(dir, 0o777);
  await assert.rejects(ControlServer.listen(sock, handler), {
    message: `control socket directory ${dir}: writable by group and others (mode 0777) (chmod go-w ${dir}); refusing to use it`,
  });
  fs.chmodSync(dir, 0o755);
  fs.chownSync(dir, 65534, 65534);
  await assert.rejects(ControlServer.listen(sock, handler), (e: Error & { exitCode?: number }) => {
    assert.match(e.message, new RegExp(`^control socket directory ${dir}: owned by uid 65534, not uid 0`));
    assert.equal(e.exitCode, 78);
    return true;
  });
  assert.equal(fs.existsSync(sock), false, 'nothing was created in it');
  fs.chownSync(dir, 0, 0);
  const s = await ControlServer.listen(sock, handler);
  await s.close();
});
