// Other nodes' bans (the fleet, origin remote:NODE) and this node's repeat-offender count: a
// remote ban protects this node for its time but counts towards neither this node's per-pool
// steps (bantime_increment) nor its recidive rule (recidive_bans); neither live (ledger events)
// nor after a restart (the history keeps remote bans, the start-up queries leave them out).
// Each test also shows the same bans made here DO count, so it fails if remote ones counted.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { parseConfig } from '../../src/config';
import { SqliteStore } from '../../src/history/sqlite';
import { Ledger, type Ban } from '../../src/ledger';
import { HistoryListener } from '../../src/listeners/history';
import { Metrics } from '../../src/metrics';
import { BanSteps, stepOptions } from '../../src/recidive';
import type { BanDecision } from '../../src/tracker';
import { collect, tmpdir } from './history-helpers';

const H = 3_600_000;
const T0 = Date.UTC(2026, 10, 20, 0, 0, 0);
const X = '203.0.113.77';
const conf = () => parseConfig(['expires=600', 'bantime_increment=2', 'recidive_window=1d', 'recidive_bans=3', 'recidive_bantime=2d'].join('\n'), 'tallow.conf');

function world(emit: (e: Parameters<ConstructorParameters<typeof Ledger>[0]['emit']>[0]) => void = () => {}) {
  const steps = new BanSteps(stepOptions(conf()));
  const feed = steps.listener();
  const bans: Ban[] = [];
  const ledger = new Ledger({
    emit: (e) => {
      feed.handle([e]);
      emit(e);
      if (e.kind === 'ban') bans.push(e.ban);
    },
  });
  /** Another node's sshd ban, as Fleet.ban applies it. */
  const remote = (now: number, node = 'a', reason: 'threshold' | 'instant' = 'threshold') => {
    ledger.expire(now);
    const out = ledger.ban({ address: X, family: 4, scope: '', rule: 'sshd', origin: `remote:${node}`, reason, pattern: null, score: 0, count: 0, seconds: 600 }, now);
    assert.ok(out.ok);
  };
  /** This node's own sshd threshold ban, stepped, then the recidive rule, as daemon.process does. */
  const local = (now: number): Ban => {
    ledger.expire(now);
    const d: BanDecision = { action: 'ban', address: X, family: 4, seconds: 600, score: 1, count: 3, pattern: 'sshd.json#1', reason: 'threshold', scope: '', rule: 'sshd' };
    const out = ledger.ban({ ...steps.apply(d, now), origin: 'rule' }, now);
    assert.ok(out.ok);
    const r = steps.recidive(out.ban, now, ledger.get(X, ''));
    if (r) ledger.ban(r, now + 1);
    return out.ban;
  };
  const recidives = () => bans.filter((b) => b.reason === 'recidive');
  return { steps, ledger, remote, local, recidives };
}

test("remote bans do not step this node's count nor count for its recidive rule; its own bans do", () => {
  const w = world();
  // Three nodes' threshold and instant bans of X, each over before the next.
  w.remote(T0, 'a');
  w.remote(T0 + H, 'b');
  w.remote(T0 + 2 * H, 'c', 'instant');
  assert.equal(w.steps.stepFor(X, T0 + 3 * H, 'sshd'), 0);
  assert.equal(w.steps.countFor(X, T0 + 3 * H), 0);
  // X now fails here: a first ban of this node, its plain bantime, no recidive ban.
  const first = w.local(T0 + 3 * H);
  assert.deepEqual([first.step ?? 0, (first.expiry - first.since) / 1000], [0, 600]);
  assert.deepEqual(w.recidives(), []);
  // The same count made of this node's own bans does step and does reach recidive_bans=3.
  const second = w.local(T0 + 4 * H);
  assert.deepEqual([second.step, (second.expiry - second.since) / 1000], [1, 1200]);
  w.local(T0 + 5 * H);
  assert.deepEqual(w.recidives().map((b) => [b.rule, b.count]), [['recidive', 3]]);
});

test('after a restart: remote bans in the history are left out of the steps and the recidive count', async (t) => {
  const dir = tmpdir(t);
  const log = collect();
  const file = path.join(dir, 'history.sqlite');
  const opts = { log, metrics: new Metrics(), matches: true, matchesPerHour: 60, days: 90, maxQueue: 1000 };
  const h1 = new HistoryListener({ store: new SqliteStore(file, log), ...opts });
  const w1 = world((e) => void h1.handle([e]));
  w1.remote(T0, 'a');
  w1.remote(T0 + H, 'b');
  // And one of this node's own, at the start: the latest own ban, older than the remote ones.
  const own = new HistoryListener({ store: new SqliteStore(path.join(dir, 'own.sqlite'), log), ...opts });
  const w2 = world((e) => void own.handle([e]));
  w2.local(T0);
  w2.local(T0 + H);
  await new Promise((r) => setImmediate(r));
  await h1.close();
  await own.close();

  const now = T0 + 3 * H;
  const load = async (f: string) => {
    const fresh = new BanSteps(stepOptions(conf()));
    const h = new HistoryListener({ store: new SqliteStore(f, log), ...opts });
    t.after(() => h.close());
    await h.start(now - 86_400_000, (bans) => fresh.load(bans, now), (bans) => fresh.loadRecent(bans, now));
    return fresh;
  };
  const remoteOnly = await load(file);
  assert.deepEqual([remoteOnly.stepFor(X, now, 'sshd'), remoteOnly.countFor(X, now)], [0, 0], 'remote bans: nothing counted');
  const ownOnly = await load(path.join(dir, 'own.sqlite'));
  assert.deepEqual([ownOnly.stepFor(X, now, 'sshd'), ownOnly.countFor(X, now)], [2, 2], "this node's own: counted");
});
