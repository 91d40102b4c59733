// Webhooks between namespaces (issue 16): the built daemon in the sandbox's server namespace
// (ipset, journald) posts to a node:http receiver the test runs in the client namespace, on
// 192.0.2.2 (never 127.0.0.1: the request crosses the veth pair as it would cross a network).
// The receiver checks the bearer token and recomputes the HMAC over the raw body, answers 500 to
// its first requests when told to, and appends what it accepts to a file the test reads. Bans come
// from journal lines (`logger -f`, one ban per line by a rule of the test's with threshold 1).
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createSandbox, waitFor, type Sandbox } from '../env/sandbox';
import { DaemonProc, writeConfig } from './e2e-daemon';

const SECRET = 'k3y-for-the-test';
const TOKEN = 'tok-123';
const PORT = 8080;

// The receiver, as tallow.conf(5) tells one to write it (run in the client namespace).
const RECEIVER = `
const http = require('node:http');
const fs = require('node:fs');
const { createHmac, timingSafeEqual } = require('node:crypto');
const [host, port, failFirst, out, secret, token] = process.argv.slice(2);
let requests = 0;
http.createServer((req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    requests++;
    const raw = Buffer.concat(chunks);
    const want = Buffer.from('sha256=' + createHmac('sha256', secret).update(raw).digest('hex'));
    const sig = Buffer.from(String(req.headers['x-tallow-signature'] || ''));
    const ok = sig.length === want.length && timingSafeEqual(sig, want) && req.headers.authorization === 'Bearer ' + token && req.headers['content-type'] === 'application/json';
    if (!ok) {
      fs.appendFileSync(out, JSON.stringify({ bad: req.headers }) + '\\n');
      return res.writeHead(401).end('bad signature or token');
    }
    if (requests <= Number(failFirst)) {
      fs.appendFileSync(out, JSON.stringify({ refused: requests }) + '\\n');
      return res.writeHead(500).end('try later');
    }
    fs.appendFileSync(out, JSON.stringify({ from: req.socket.remoteAddress, body: JSON.parse(raw.toString('utf8')) }) + '\\n');
    res.writeHead(204).end();
  });
}).listen(Number(port), host, () => process.stdout.write('listening\\n'));
`;

interface Line {
  bad?: unknown;
  refused?: number;
  from?: string;
  body?: { version: number; events: { id: string; type: string; address: string; rule: string }[] };
}

let sb: Sandbox;
let d: DaemonProc | null = null;
let rx: ChildProcess | null = null;

describe('webhook to a receiver in another network namespace', { timeout: 180_000 }, () => {
  let out: string;
  const lines = (): Line[] => (fs.existsSync(out) ? fs.readFileSync(out, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as Line) : []);
  const events = () => lines().flatMap((l) => l.body?.events ?? []);

  /** Starts the receiver in the client namespace; resolves once it listens. */
  async function startReceiver(failFirst: number): Promise<void> {
    const p = sb.spawn([process.execPath, path.join(sb.dir, 'receiver.js'), sb.client.v4, String(PORT), String(failFirst), out, SECRET, TOKEN], { net: 'client' });
    rx = p;
    let said = '';
    p.stdout!.on('data', (b: Buffer) => (said += b.toString()));
    p.stderr!.on('data', (b: Buffer) => (said += b.toString()));
    await waitFor(`the receiver listening (${said})`, () => said.includes('listening') || p.exitCode !== null, 10000);
    assert.ok(said.includes('listening'), said);
  }

  async function stopReceiver(): Promise<void> {
    const p = rx;
    rx = null;
    if (!p || p.exitCode !== null) return;
    const gone = new Promise((r) => p.on('exit', r));
    p.kill('SIGKILL');
    await gone;
  }

  /** One journal line per address, in this order, in one `logger` run. */
  async function attack(addresses: string[]): Promise<void> {
    const file = path.join(sb.dir, `lines-${addresses[0].replace(/:/g, '_')}`);
    fs.writeFileSync(file, addresses.map((a) => `bad login from ${a}\n`).join(''));
    await sb.check(['logger', '-t', 'tallow-app', '-f', file]);
  }

  const inKernel = async (set: string) => {
    const r = await sb.run(['ipset', 'list', set, '-t'], { net: 'server' });
    return Number(/Number of entries: (\d+)/.exec(r.stdout)?.[1] ?? -1);
  };

  before(async () => {
    sb = await createSandbox({ network: true, journald: true });
    out = path.join(sb.dir, 'received.jsonl');
    fs.writeFileSync(path.join(sb.dir, 'receiver.js'), RECEIVER);
    for (const [name, value] of [['token', TOKEN], ['secret', SECRET]]) fs.writeFileSync(path.join(sb.dir, name), `${value}\n`, { mode: 0o600 });
    const conf = writeConfig(sb, 'w', [
      'backend=ipset',
      'threshold=1',
      `action.hook.url=http://${sb.client.v4}:${PORT}/hook`,
      `action.hook.bearer_file=${path.join(sb.dir, 'token')}`,
      `action.hook.secret_file=${path.join(sb.dir, 'secret')}`,
      'action.hook.on=ban',
      'action.hook.batch=500',
      'action.hook.timeout=5',
    ]);
    fs.writeFileSync(path.join(sb.dir, 'w', 'patterns', 'app.json'), JSON.stringify([{ name: 'app', filter: [['SYSLOG_IDENTIFIER=tallow-app']], items: [{ ban: 0, score: 1, pattern: '^bad login from <IP>$' }] }]));
    d = new DaemonProc(sb, ['--config', conf]);
    await d.ready();
  });

  after(async () => {
    await stopReceiver();
    await d?.stop();
    await sb?.destroy();
  });

  it('signed batches cross the namespaces; the first two answered 500 are retried: all 240 bans once each, in order', async () => {
    await startReceiver(2);
    const all = Array.from({ length: 240 }, (_, i) => `203.0.113.${i + 10}`);
    await attack(all);
    await waitFor(`240 events at the receiver\n${d!.output}`, () => events().length >= 240, 30000);
    const ls = lines();
    assert.deepEqual(ls.filter((l) => l.bad), [], 'every request signed and with the token');
    assert.deepEqual(ls.filter((l) => l.refused).map((l) => l.refused), [1, 2]);
    // From the server's address on the veth pair: the request went between namespaces.
    assert.deepEqual([...new Set(ls.filter((l) => l.body).map((l) => l.from))], [sb.server.v4]);
    const evs = events();
    assert.equal(new Set(evs.map((e) => e.id)).size, evs.length, 'no event twice');
    assert.deepEqual(evs.map((e) => e.address), all);
    assert.ok(evs.every((e) => e.type === 'ban' && e.rule === 'app'));
    assert.ok(ls.every((l) => !l.body || (l.body.version === 1 && l.body.events.length <= 500)));
    assert.ok(d!.has(/action\.hook.*failed; will retry.*answered 500: try later/), d!.output);
  });

  it('receiver down during a flood of 2,000 bans: every ban reaches the kernel meanwhile; the events arrive once it is back', async () => {
    await stopReceiver();
    const before = events().length;
    const all = Array.from({ length: 2000 }, (_, i) => `2001:db8:ff::${(i + 1).toString(16)}`);
    await attack(all);
    await waitFor(`2,000 bans in the kernel\n${d!.output}`, async () => (await inKernel('tallow6')) === 2000, 30000);
    await waitFor('a failed try logged', () => d!.has(/action\.hook.*failed; will retry.*(ECONNREFUSED|EHOSTUNREACH|timed out)/), 15000);
    assert.equal(events().length, before, 'nothing arrives while the receiver is down');
    await startReceiver(0);
    await waitFor(`2,000 more events at the receiver\n${d!.output}`, () => events().length >= before + 2000, 60000);
    const evs = events().slice(before);
    assert.equal(new Set(evs.map((e) => e.id)).size, 2000, 'no event twice');
    assert.deepEqual(evs.map((e) => e.address), all);
    assert.deepEqual(lines().filter((l) => l.bad), []);
  });
});
