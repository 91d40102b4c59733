// Webhooks against a real HTTP server the test runs (node:http on 127.0.0.1): the signature and
// token it checks, failures answered 500 and retried with nothing lost and the order kept, a
// receiver that is down during a flood while the bans reach the firewall at once.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac, timingSafeEqual } from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import type { WebhookAction } from '../../src/actions/settings';
import { chatText, WebhookListener, type WebhookEvent } from '../../src/actions/webhook';
import { actionListeners } from '../../src/actions';
import { ConfigError, parseConfig } from '../../src/config';
import { Firewall } from '../../src/firewall/index';
import type { BanEntry, FirewallBackend, KernelBan } from '../../src/firewall/backend';
import { firewallListener } from '../../src/listeners/firewall';
import { addresses, ban, collector, tempDir, waitFor, wire } from './actions-helpers';

const SECRET = 'k3y-for-the-test';
const TOKEN = 'tok-123';

interface Received {
  body: { version: number; node: string; sent: string; events: WebhookEvent[] };
  at: number;
}

/** A receiver as the man page tells one to write it: check the token, recompute the HMAC over the raw body. */
async function receiver(t: { after(fn: () => void): void }, failFirst: number, port = 0): Promise<{ server: http.Server; url: string; got: Received[]; requests: () => number; bad: string[] }> {
  const got: Received[] = [];
  const bad: string[] = [];
  let requests = 0;
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      requests++;
      const raw = Buffer.concat(chunks);
      const want = Buffer.from(`sha256=${createHmac('sha256', SECRET).update(raw).digest('hex')}`);
      const sig = Buffer.from(String(req.headers['x-tallow-signature'] ?? ''));
      if (sig.length !== want.length || !timingSafeEqual(sig, want)) {
        bad.push(`signature ${sig}`);
        res.writeHead(401).end('bad signature');
        return;
      }
      if (req.headers.authorization !== `Bearer ${TOKEN}` || req.headers['content-type'] !== 'application/json') {
        bad.push(`headers ${JSON.stringify(req.headers)}`);
        res.writeHead(401).end();
        return;
      }
      if (requests <= failFirst) {
        res.writeHead(500).end('try later');
        return;
      }
      got.push({ body: JSON.parse(raw.toString('utf8')), at: Date.now() });
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
  t.after(() => server.close());
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`, got, requests: () => requests, bad };
}

function action(url: string, over: Partial<WebhookAction> = {}): WebhookAction {
  return { kind: 'webhook', name: 'hook', where: 't:1', queue: 100_000, timeoutMs: 5000, url, on: ['ban', 'unban'], bearerFile: '', secretFile: '', caFile: '', batch: 200, format: 'tallow', ...over };
}

/** A kernel that takes every element at once and says when. */
class Kernel implements FirewallBackend {
  readonly name = 'fake';
  added = 0;
  lastAt = 0;
  describe() {
    return 'fake';
  }
  async setup() {}
  async check() {
    return true;
  }
  async apply(add: BanEntry[]) {
    this.added += add.length;
    this.lastAt = Date.now();
  }
  async list(): Promise<KernelBan[]> {
    return [];
  }
}

test('webhook: signed batches, 500s retried, nothing lost, nothing twice, order kept', async (t) => {
  const rx = await receiver(t, 3);
  const log = collector();
  const l = new WebhookListener(action(rx.url), { bearer: TOKEN, secret: SECRET, ca: '' }, log);
  const { ledger, events } = wire([l], log);
  const all = addresses(1000);
  for (let i = 0; i < all.length; i += 100) {
    const now = Date.now();
    for (const a of all.slice(i, i + 100)) ledger.ban(ban(a, { seconds: 600 }), now);
    // Some are lifted again: per address the unban comes after its ban.
    for (const a of all.slice(i, i + 10)) ledger.unban(a, 'manual', now);
    await new Promise((r) => setImmediate(r));
  }
  await waitFor('every event at the receiver', () => rx.got.reduce((n, g) => n + g.body.events.length, 0) >= 1100);
  await events.flush(5000);
  assert.deepEqual(rx.bad, []);
  assert.ok(rx.requests() > 3);
  const evs = rx.got.flatMap((g) => g.body.events);
  assert.equal(evs.length, 1100);
  assert.equal(new Set(evs.map((e) => e.id)).size, 1100, 'no event twice');
  for (const g of rx.got) {
    assert.equal(g.body.version, 1);
    assert.equal(g.body.node, os.hostname());
    assert.ok(g.body.events.length <= 200);
  }
  // The order of the bans as made, and per address ban before unban.
  assert.deepEqual(evs.filter((e) => e.type === 'ban').map((e) => e.address), all);
  for (const a of all.filter((_, i) => i % 100 < 10)) assert.deepEqual(evs.filter((e) => e.address === a).map((e) => e.type), ['ban', 'unban'], a);
  const first = evs[0];
  assert.equal(first.family, 4);
  assert.equal(first.network, '203.0.113.1/32');
  assert.equal(first.seconds, 600);
  assert.equal(first.pattern, 'sshd.json#2');
  assert.equal(first.reason, 'threshold');
  assert.equal(first.origin, 'rule');
  assert.equal(first.rule, '');
  assert.equal(Date.parse(first.expires!) - Date.parse(first.time), 600_000);
  assert.equal(evs.find((e) => e.type === 'unban')!.reason, 'manual');
  assert.equal(l.stats.failures, 3);
  assert.match(log.errors.join('\n'), /answered 500: try later/);
  await events.close();
});

test('webhook: receiver down during a flood: bans reach the firewall at once, events arrive once it is back', async (t) => {
  // A port nobody listens on yet.
  const probe = await receiver(t, 0);
  const port = Number(new URL(probe.url).port);
  await new Promise((r) => probe.server.close(r));
  const log = collector();
  const hook = new WebhookListener(action(`http://127.0.0.1:${port}/hook`, { batch: 500 }), { bearer: TOKEN, secret: SECRET, ca: '' }, log);
  const kernel = new Kernel();
  const fw = new Firewall(kernel, log, { checkIntervalMs: 600_000, held: () => ledger.values() });
  await fw.start();
  const { ledger, events } = wire([firewallListener(fw), hook], log);
  const all = addresses(5000);
  for (let i = 0; i < all.length; i += 100) {
    const now = Date.now();
    for (const a of all.slice(i, i + 100)) ledger.ban(ban(a), now);
    await new Promise((r) => setImmediate(r));
  }
  await fw.flush();
  assert.equal(kernel.added, 5000, 'every ban in the kernel while the receiver is down');
  const inKernelAt = kernel.lastAt;
  assert.equal(hook.stats.eventsSent, 0);
  assert.ok(hook.stats.failures >= 1);
  // The receiver comes back on the same port.
  const rx = await receiver(t, 0, port);
  await waitFor('the events after the receiver came back', () => rx.got.reduce((n, g) => n + g.body.events.length, 0) >= 5000);
  assert.ok(rx.got[0].at >= inKernelAt, 'the firewall had every ban before the webhook succeeded');
  const evs = rx.got.flatMap((g) => g.body.events);
  assert.deepEqual(evs.map((e) => e.address), all);
  // Under the flood one request carried many events.
  assert.ok(hook.stats.largestBatch > 100, `largest batch ${hook.stats.largestBatch}`);
  assert.ok(rx.got.every((g) => g.body.events.length <= 500));
  await events.close();
  await fw.close();
});

test('webhook: a receiver that never answers times out and is tried again', async (t) => {
  let requests = 0;
  const server = http.createServer(() => void requests++);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.after(() => {
    server.closeAllConnections();
    server.close();
  });
  const log = collector();
  const l = new WebhookListener(action(`http://127.0.0.1:${(server.address() as AddressInfo).port}/`, { timeoutMs: 200 }), { bearer: '', secret: '', ca: '' }, log);
  const { ledger, events } = wire([l], log);
  ledger.ban(ban('198.51.100.9'), Date.now());
  await waitFor('two tries', () => requests >= 2, 10_000);
  assert.match(log.errors.join('\n'), /no answer from 127\.0\.0\.1:\d+ within 0\.2 s/);
  await events.close();
});

test('webhook: chat format is one escaped text message', () => {
  const e = (address: string, rule: string): WebhookEvent => ({ id: 'x', type: 'ban', time: '', address, family: 4, network: '', rule, pattern: 'p', score: 1, count: 5, reason: 'threshold', seconds: 600, origin: 'rule' });
  const text = chatText('h', [e('203.0.113.1', '<!channel> & co'), ...addresses(30).map((a) => e(a, ''))]);
  assert.match(text, /^tallow on h:\nbanned 203\.0\.113\.1 for 600 s \(threshold; rule &lt;!channel&gt; &amp; co, p, score 1, 5 matches\)/);
  assert.equal(text.split('\n').length, 1 + 20 + 1);
  assert.match(text, /and 11 more$/);
});

test('webhook: token and key files must be private; a bad one stops the start with the action named', (t) => {
  const dir = tempDir(t, 'hook-secret');
  const key = path.join(dir, 'key');
  fs.writeFileSync(key, 'secret\n', { mode: 0o644 });
  const c = parseConfig(`action.ops.url=https://hooks.example.org/tallow\naction.ops.secret_file=${key}\n`, 'tallow.conf');
  assert.throws(() => actionListeners(c, collector()), (e: unknown) => e instanceof ConfigError && /^tallow\.conf:1: action\.ops\.secret_file=.*readable by others \(mode 644\)/.test(e.message));
  fs.chmodSync(key, 0o600);
  const ls = actionListeners(c, collector());
  assert.equal(ls.length, 1);
  assert.equal(ls[0].name, 'action.ops');
});
