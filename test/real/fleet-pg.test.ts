// The fleet against a real PostgreSQL server (issue 17): a cluster of the test's own, the
// administrator's SQL from tallow.conf(5), one role per node; nodes in this process, each with its
// own ledger (the firewall is the three-node test's business, fleet-nodes.test.ts):
// - a node's role cannot insert a row with another node's name (the SQL error), nor delete live rows;
// - a ban on A reaches B; with quorum 2, C waits for a second node; `unban --fleet` lifts it everywhere;
// - a node stopped while A bans 1,000 addresses catches up at start, with their remaining time;
// - PostgreSQL stopped: A's bans go on at once; after it returns they are published once each.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Client } from 'pg';
import { PgCluster } from '../env/postgres';
import { waitFor } from '../env/sandbox';
import { Allowlist } from '../../src/allowlist';
import { parseConfig } from '../../src/config';
import { Fleet } from '../../src/fleet';
import { Ledger, type LedgerEvent } from '../../src/ledger';
import { Metrics } from '../../src/metrics';
import { MANUAL_NETWORKS } from '../../src/scope';
import { FLEET_DB, fleetDatabase, fleetLines, nodeRole } from './fleet-env';

let pg: PgCluster;
let dir: string;
const pw: Record<string, string> = {};
const nodes: TestNode[] = [];
const quiet = { info() {}, warn() {}, debug() {}, error() {} };

/** One node: a ledger, the fleet on it, every event it emitted. */
class TestNode {
  readonly events: LedgerEvent[] = [];
  readonly ledger: Ledger;
  readonly fleet: Fleet;

  constructor(readonly name: string, extra: string[] = [], allow: string[] = ['127.0.0.1']) {
    this.ledger = new Ledger({ emit: (e) => {
      this.events.push(e);
      this.fleet.listener.handle([e]);
    } });
    const config = parseConfig(fleetLines(pg, name, pw[name], ['fleet_max_per_minute=0', ...extra]).join('\n') + '\n', `${name}.conf`);
    // The every-port sets of networks are made at start when the fleet is on (daemon.ts).
    const scopes = new Map([[MANUAL_NETWORKS.id, MANUAL_NETWORKS]]);
    const host = { ledger: this.ledger, engine: { rules: [], allowlist: new Allowlist(allow) }, scoring: { unban() {} }, metrics: new Metrics(), state: null, scopes: () => scopes };
    this.fleet = new Fleet(host as unknown as ConstructorParameters<typeof Fleet>[0], config, quiet, { retryBaseMs: 200, retryMaxMs: 1000, pollMs: 500 });
    this.fleet.start();
    nodes.push(this);
  }

  ban(address: string, seconds = 600): void {
    const out = this.ledger.ban({ address, family: address.includes(':') ? 6 : 4, origin: 'rule', rule: 'sshd', reason: 'threshold', pattern: 'sshd.json#1', score: 1, count: 5, seconds }, Date.now());
    assert.ok(out.ok);
  }

  has(address: string): string | null {
    return this.ledger.get(address)?.origin ?? null;
  }

  connected(): Promise<void> {
    return waitFor(`${this.name} connected`, () => this.fleet.status().connected, 10_000);
  }

  async stop(): Promise<void> {
    await this.fleet.close();
    nodes.splice(nodes.indexOf(this), 1);
  }
}

function maxId(): number {
  return Number(pg.psql('SELECT coalesce(max(id), 0) FROM tallow_fleet.events', FLEET_DB));
}

describe('fleet through PostgreSQL', { timeout: 300_000 }, () => {
  before(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tallow-fleet-'));
    pg = PgCluster.create();
    pg.start();
    fleetDatabase(pg);
    for (const n of ['a', 'b', 'c']) pw[n] = nodeRole(pg, dir, n);
  });
  after(async () => {
    for (const n of [...nodes]) await n.stop().catch(() => {});
    await pg?.destroy();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it("a node's role cannot insert a row with another node's name, nor delete a live row", async () => {
    const c = new Client({ host: pg.host, database: FLEET_DB, user: 'tallow_a', password: fs.readFileSync(pw.a, 'utf8').trim() });
    await c.connect();
    try {
      const ins = 'INSERT INTO tallow_fleet.events (node, kind, address, family, rule, reason, seconds, since, expiry) VALUES ($1, $2, $3, 4, NULL, $4, 60, 0, $5)';
      const far = Date.now() + 3_600_000;
      await assert.rejects(c.query(ins, ['b', 'ban', '203.0.113.66', 'manual', far]), (e: { code?: string; message: string }) => {
        assert.equal(e.code, '42501');
        assert.equal(e.message, 'new row violates row-level security policy for table "events"');
        return true;
      });
      const ok = await c.query(ins + ' RETURNING id', ['a', 'ban', '203.0.113.66', 'manual', far]);
      assert.equal(ok.rowCount, 1);
      const del = await c.query('DELETE FROM tallow_fleet.events WHERE id = $1', [ok.rows[0].id]);
      assert.equal(del.rowCount, 0, 'a live row is not deleted');
      await assert.rejects(c.query("UPDATE tallow_fleet.events SET node = 'b'"), /permission denied for table events/);
      await assert.rejects(c.query("INSERT INTO tallow_fleet.nodes VALUES ('tallow_a', 'x')"), /permission denied for table nodes/);
      // Cleaned up by the administrator: the next tests count rows.
      pg.psql('DELETE FROM tallow_fleet.events', FLEET_DB);
    } finally {
      await c.end();
    }
  });

  it('a ban on A reaches B as remote:a; with quorum 2, C waits for a second node; unban --fleet on C lifts it on A and B', async () => {
    const a = new TestNode('a');
    const b = new TestNode('b');
    const c = new TestNode('c', ['fleet_quorum=2']);
    await Promise.all([a, b, c].map((n) => n.connected()));
    const x = '203.0.113.10';
    a.ban(x, 600);
    await waitFor('B applies the ban of A', () => b.has(x) === 'remote:a', 10_000);
    const expA = a.ledger.get(x)!.expiry;
    assert.equal(b.ledger.get(x)!.expiry, expA, "B's ban ends when A's does");
    const id = maxId();
    await waitFor('C has read the row', () => c.fleet.status().lastId >= id, 10_000);
    assert.equal(c.has(x), null, 'one node is not a quorum');
    assert.equal(c.fleet.status().quorumWaiting, 1);
    // B learns it on its own (a longer ban of its own rule): its report is the second.
    b.ban(x, 900);
    await waitFor('C applies it once B reports it too', () => c.has(x) === 'remote:b', 10_000);
    // A and B never took their own rows back, nor echoed the remote ones.
    assert.equal(Number(pg.psql(`SELECT count(*) FROM tallow_fleet.events WHERE address = '${x}'`, FLEET_DB)), 2);
    // A takes B's longer ban (a ban never shortens another), and does not publish it again.
    assert.equal(a.has(x), 'remote:b');

    c.fleet.unbanEverywhere(x, 4, Date.now());
    c.ledger.unbanAll(x, 'manual', Date.now());
    await waitFor('A and B lift it', () => a.has(x) === null && b.has(x) === null, 10_000);
    const unbans = a.events.filter((e) => e.kind === 'unban' && e.ban.address === x);
    assert.deepEqual(unbans.map((e) => e.kind === 'unban' && e.reason), ['manual']);
    for (const n of [a, b, c]) await n.stop();
  });

  it("a network banned by hand on A reaches B, which has no rule banning networks, in the every-port sets of networks", async () => {
    const a = new TestNode('a');
    const b = new TestNode('b');
    await Promise.all([a, b].map((n) => n.connected()));
    const net = '198.51.100.0/24';
    assert.ok(a.ledger.ban({ address: net, family: 4, scope: MANUAL_NETWORKS.id, origin: 'manual', rule: null, reason: 'manual', pattern: 'manual', score: 0, count: 0, seconds: 600 }, Date.now()).ok);
    await waitFor('B applies the network', () => b.ledger.get(net, MANUAL_NETWORKS.id)?.origin === 'remote:a', 10_000);
    assert.equal(b.fleet.status().noScope, 0);
    for (const n of [a, b]) await n.stop();
    // The next test counts what a new node catches up with.
    pg.psql('DELETE FROM tallow_fleet.events', FLEET_DB);
  });

  it('a node stopped while A bans 1,000 addresses catches up at start, each with its remaining time', async () => {
    const a = new TestNode('a');
    let b = new TestNode('b');
    await Promise.all([a.connected(), b.connected()]);
    await b.stop();
    const addr = (i: number) => `2001:db8:1::${(i + 1).toString(16)}`;
    for (let i = 0; i < 1000; i++) a.ban(addr(i), 300 + i);
    await waitFor('A published them', () => a.fleet.status().published >= 1000, 20_000);
    b = new TestNode('b');
    await waitFor('B caught up', () => b.ledger.size >= 1000, 20_000, 100);
    for (let i = 0; i < 1000; i++) {
      const mine = a.ledger.get(addr(i))!;
      const got = b.ledger.get(addr(i));
      assert.equal(got?.origin, 'remote:a', addr(i));
      assert.equal(got.expiry, mine.expiry, `${addr(i)}: the same end`);
    }
    assert.equal(b.events.filter((e) => e.kind === 'ban' && e.ban.address.startsWith('2001:db8:1::')).length, 1000, 'each applied once');
    for (const n of [a, b]) await n.stop();
  });

  it('PostgreSQL stopped: bans on A go on at once and wait; after it returns B gets each exactly once', async () => {
    const a = new TestNode('a');
    const b = new TestNode('b');
    await Promise.all([a.connected(), b.connected()]);
    const before = maxId();
    pg.stop();
    await waitFor('A sees the server gone', () => !a.fleet.status().connected, 10_000);
    const addr = (i: number) => `2001:db8:2::${(i + 1).toString(16)}`;
    for (let i = 0; i < 300; i++) a.ban(addr(i));
    // The ledger (and so the firewall queue) had them in the same tick: nothing waited for the server.
    assert.equal([...a.ledger.values()].filter((x) => x.address.startsWith('2001:db8:2::')).length, 300);
    const st = a.fleet.status();
    assert.equal(st.connected, false);
    assert.ok(st.since !== null && st.since <= Date.now());
    assert.equal(st.queued, 300);
    await new Promise((r) => setTimeout(r, 3000));
    pg.start();
    await waitFor('B has every one', () => [...b.ledger.values()].filter((x) => x.address.startsWith('2001:db8:2::')).length === 300, 30_000, 100);
    await waitFor('A has published every one', () => a.fleet.status().queued === 0, 10_000);
    assert.equal(Number(pg.psql(`SELECT count(*) FROM tallow_fleet.events WHERE id > ${before}`, FLEET_DB)), 300, 'each row published once');
    const banEvents = b.events.filter((e) => e.kind === 'ban' && e.ban.address.startsWith('2001:db8:2::'));
    assert.equal(banEvents.length, 300, 'each applied once on B');
    for (const n of [a, b]) await n.stop();
  });
});
