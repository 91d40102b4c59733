// Issue 17 end to end: one PostgreSQL cluster of the test's own (Unix socket in a temp dir) and
// three daemons (the built CLI), each in a sandbox of its own: its own journald, sshd, kernel
// sets and an attacker namespace. An attacker banned on A is dropped by B and C; one in B's
// allowlist is dropped by C and not by B; `tallow unban --fleet` on C lifts the first everywhere.
// The proof is the kernel's: whether the attacker can still open a TCP connection to port 22.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { PgCluster } from '../env/postgres';
import { createSandbox, waitFor, type Sandbox } from '../env/sandbox';
import { CLI, DaemonProc, inIpset, SSHD_FILTER, writeConfig } from './e2e-daemon';
import { FLEET_DB, fleetDatabase, fleetLines, nodeRole } from './fleet-env';

const PATTERNS = [{ filter: SSHD_FILTER, items: [{ ban: 0, score: 1, pattern: '^Failed password for (?:invalid user )?\\S+ from <IP> port <PORT> ssh2$' }] }];
/** Generous for a shared 2-core machine; the bench measures the real delay (bench/fleet.ts). */
const BOUND_MS = 5000;

interface Node {
  name: string;
  sb: Sandbox;
  conf: string;
  d: DaemonProc;
}

let pg: PgCluster;
const nodes: Node[] = [];

function ctl(n: Node, ...args: string[]): { code: number | null; out: string } {
  const r = spawnSync(process.execPath, [CLI, ...args, '--config', n.conf], { encoding: 'utf8', timeout: 20_000 });
  return { code: r.status, out: r.stdout + r.stderr };
}

function status(n: Node): { fleet: { connected: boolean; lastId: number; ignoredAllowlisted: number; nodesSeen: string[] } } {
  const r = ctl(n, 'status', '--json');
  assert.equal(r.code, 0, r.out);
  return JSON.parse(r.out);
}

describe('three daemons sharing bans through PostgreSQL', { timeout: 300_000 }, () => {
  let a: Node, b: Node, c: Node;

  before(async () => {
    pg = PgCluster.create();
    pg.start();
    fleetDatabase(pg);
    for (const name of ['a', 'b', 'c']) {
      const sb = await createSandbox({ sshd: true });
      const pw = nodeRole(pg, sb.dir, name);
      // B allows the second attacker.
      const allow = name === 'b' ? ['whitelist=127.0.0.1', `whitelist=${sb.client.extraV4[1]}`] : ['whitelist=127.0.0.1'];
      const conf = writeConfig(sb, name, ['backend=ipset', 'expires=600', 'threshold=1.0', 'ipv6=1', 'history=off', ...allow, ...fleetLines(pg, name, pw, ['fleet_max_per_minute=0'])]);
      fs.writeFileSync(path.join(sb.dir, name, 'patterns', 'sshd.json'), JSON.stringify(PATTERNS));
      const d = new DaemonProc(sb, ['--config', conf]);
      nodes.push({ name, sb, conf, d });
    }
    [a, b, c] = nodes;
    for (const n of nodes) {
      await n.d.ready();
      await n.d.waitLine('the fleet connection', /fleet: connected to postgresql tallow_\w@/);
    }
  });
  after(async () => {
    for (const n of nodes) await n.d.stop().catch(() => {});
    for (const n of nodes) await n.sb.destroy();
    await pg?.destroy();
  });

  it('an attacker banned on A is dropped by B and C; the one in B\'s allowlist is dropped by C only', async () => {
    const x = a.sb.client.extraV4[0]; // 192.0.2.3 in every sandbox's attacker namespace
    const y = a.sb.client.extraV4[1]; // 192.0.2.4, in B's allowlist
    for (const n of [b, c]) assert.ok(await n.sb.canConnect(x), `${x} reaches ${n.name} before`);
    assert.notEqual((await a.sb.failLogin(x)).code, 0);
    await waitFor(`${x} in A's kernel\n${a.d.output}`, () => inIpset(a.sb, x), 10_000, 50);
    const t0 = Date.now();
    await waitFor(`${x} in B's and C's kernels`, async () => (await inIpset(b.sb, x)) && (await inIpset(c.sb, x)), BOUND_MS, 50);
    const took = Date.now() - t0;
    for (const n of [b, c]) assert.equal(await n.sb.canConnect(x), false, `${x} dropped by ${n.name} (${took} ms after A)`);
    const list = ctl(c, 'list');
    assert.match(list.out, new RegExp(`^${x.replace(/\./g, '\\.')} +\\S+ +all +remote:a +`, 'm'), list.out);

    assert.notEqual((await a.sb.failLogin(y)).code, 0);
    await waitFor(`${y} in A's and C's kernels`, async () => (await inIpset(a.sb, y)) && (await inIpset(c.sb, y)), 10_000, 50);
    const last = Number(pg.psql('SELECT max(id) FROM tallow_fleet.events', FLEET_DB));
    await waitFor('B has read the row', () => status(b).fleet.lastId >= last, BOUND_MS, 100);
    assert.equal(await inIpset(b.sb, y), false, 'B does not ban an address of its allowlist');
    assert.ok(await b.sb.canConnect(y), `${y} still reaches B`);
    const s = status(b).fleet;
    assert.equal(s.ignoredAllowlisted, 1);
    assert.deepEqual(s.nodesSeen, ['a']);
    const text = ctl(b, 'status');
    assert.match(text.out, /^fleet: +connected since \S+; node b, postgresql tallow_b@/m);
  });

  it('PostgreSQL stopped: A bans at once and says it is disconnected; once it is back B and C get every ban exactly once', async () => {
    const addrs = Array.from({ length: 20 }, (_, i) => `203.0.113.${100 + i}`);
    pg.stop();
    try {
      await waitFor("A's status says disconnected", () => /^fleet: +DISCONNECTED since \S+ /m.test(ctl(a, 'status').out), 15_000, 200);
      for (const x of addrs) {
        const r = ctl(a, 'ban', x, '--time', '600');
        assert.equal(r.code, 0, r.out);
        assert.equal(await inIpset(a.sb, x), true, `${x} in A's kernel while the server is down`);
      }
      assert.equal(status(a).fleet.connected, false);
    } finally {
      pg.start();
    }
    await waitFor('every ban in B and C', async () => {
      for (const n of [b, c]) for (const x of addrs) if (!(await inIpset(n.sb, x))) return false;
      return true;
    }, 60_000, 250);
    for (const n of [b, c]) {
      for (const x of addrs) assert.equal(n.d.count(new RegExp(`(^|\\s)ban address=${x.replace(/\./g, '\\.')}( |$)`)), 1, `${n.name}: ${x} banned once\n${n.d.output.slice(-2000)}`);
    }
    assert.equal(Number(pg.psql(`SELECT count(*) FROM tallow_fleet.events WHERE address LIKE '203.0.113.1%'`, FLEET_DB)), addrs.length, 'each published once');
  });

  it('tallow unban --fleet on C lifts it on A, B and C', async () => {
    const x = a.sb.client.extraV4[0];
    const r = ctl(c, 'unban', x, '--fleet');
    assert.equal(r.code, 0, r.out);
    assert.match(r.out, /asked every node of the fleet to lift 192\.0\.2\.3/);
    await waitFor(`${x} reaches A, B and C again`, async () => {
      for (const n of [a, b, c]) if (await inIpset(n.sb, x)) return false;
      return true;
    }, BOUND_MS, 100);
    for (const n of [a, b, c]) assert.ok(await n.sb.canConnect(x), `${x} reaches ${n.name}`);
  });
});
