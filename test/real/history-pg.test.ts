// The history in a real PostgreSQL server (issue 15): a cluster of the test's own (initdb and
// pg_ctl from Debian's postgresql, a Unix socket in a temporary directory, SCRAM passwords),
// a daemon in a sandbox with real kernel sets:
// - the store itself: schema made by tallow at the first connection, rows written once;
// - the server stopped for 20 s during a flood: bans reach the kernel all along; afterwards every
//   ban is in the history exactly once (ample history_queue), or, with a small history_queue,
//   what was stored plus what was counted as dropped is every event, nothing twice;
// - a wrong password: a log line naming history_password_file, and bans go on.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createSandbox, sleep, waitFor, type Sandbox } from '../env/sandbox';
import { PgCluster } from '../env/postgres';
import { PgStore } from '../../src/history/postgres';
import { SCHEMA_VERSION } from '../../src/history/schema';
import { historyFigures } from '../../src/history/figures';
import { CLI, DaemonProc, inIpset, SSHD_FILTER, writeConfig } from './e2e-daemon';

const PATTERNS = [{ filter: SSHD_FILTER, items: [{ ban: 0, score: 1, pattern: '^Failed password for (?:invalid user )?\\S+ from <IP> port <PORT> ssh2$' }] }];

let sb: Sandbox;
let pg: PgCluster;
const daemons: DaemonProc[] = [];
const quiet = { info() {}, warn() {}, debug() {}, error() {} };

/** A database `db` for role `user` (password `pw`). least: the grants tallow.conf(5) documents; else CREATE on the database. */
function database(db: string, user: string, pw: string, least: boolean): void {
  pg.psql(`CREATE ROLE ${user} LOGIN PASSWORD '${pw}'`);
  pg.psql(`CREATE DATABASE ${db} OWNER postgres`);
  pg.psql(`REVOKE ALL ON DATABASE ${db} FROM PUBLIC`);
  pg.psql(`GRANT CONNECT ON DATABASE ${db} TO ${user}`);
  if (least) pg.psql(`CREATE SCHEMA tallow AUTHORIZATION ${user}`, db);
  else pg.psql(`GRANT CREATE ON DATABASE ${db} TO ${user}`);
}

function secret(name: string, pw: string): string {
  const f = path.join(sb.dir, `${name}.secret`);
  fs.writeFileSync(f, pw + '\n', { mode: 0o600 });
  return f;
}

/** Each test's daemon starts on empty kernel sets (else it adopts, and stores, the previous test's bans). */
async function emptyKernel(): Promise<void> {
  for (const set of ['tallow', 'tallow6']) await sb.run(['ipset', 'flush', set], { net: 'server' });
}

function pgConfig(name: string, db: string, user: string, pwFile: string, extra: string[] = []): string {
  const conf = writeConfig(sb, name, [
    'expires=3600', 'threshold=1.0', 'ipv6=1', 'whitelist=127.0.0.1',
    'history=postgresql', `history_host=${pg.host}`, `history_dbname=${db}`, `history_user=${user}`, `history_password_file=${pwFile}`, ...extra,
  ]);
  fs.writeFileSync(path.join(sb.dir, name, 'patterns', 'sshd.json'), JSON.stringify(PATTERNS));
  return conf;
}

async function attack(name: string, lines: string[]): Promise<void> {
  const f = path.join(sb.dir, `${name}-${Date.now()}.txt`);
  fs.writeFileSync(f, lines.join('\n') + '\n');
  const r = await sb.run(['logger', '-t', 'sshd', '-f', f]);
  assert.equal(r.code, 0, r.stderr);
}

async function kernelCount(set: string, prefix: string): Promise<number> {
  const r = await sb.run(['ipset', 'list', set, '-o', 'save'], { net: 'server' });
  return r.stdout.split('\n').filter((l) => l.startsWith(`add ${set} ${prefix}`)).length;
}

async function metric(conf: string, name: string): Promise<number> {
  const r = await sb.run([process.execPath, CLI, 'metrics', '--config', conf], { net: 'server' });
  const m = new RegExp(`^${name.replace(/[{}"=]/g, (c) => `\\${c}`)} (\\S+)$`, 'm').exec(r.stdout);
  return m ? Number(m[1]) : NaN;
}

/**
 * 3,000 addresses, 100 a chunk every 500 ms (~15 s), the server stopped after the 5th chunk for
 * 20 s: the kernel must keep getting bans while it is down.
 */
async function floodWithOutage(prefix: string, conf: string): Promise<{ total: number; duringOutage: number }> {
  const total = 3000;
  const addr = (i: number) => `${prefix}${(i + 1).toString(16)}`;
  const chunks = 30;
  let downAt = -1;
  let beforeDown = 0;
  let duringOutage = 0;
  const stopped = (async () => {
    while (downAt < 0) await sleep(20);
    pg.stop();
    beforeDown = await kernelCount('tallow6', prefix);
    await sleep(20_000);
    duringOutage = (await kernelCount('tallow6', prefix)) - beforeDown;
    pg.start();
  })();
  for (let c = 0; c < chunks; c++) {
    if (c === 5) downAt = Date.now();
    const lines = [];
    for (let i = c * (total / chunks); i < (c + 1) * (total / chunks); i++) lines.push(`Failed password for invalid user u from ${addr(i)} port 4000 ssh2`);
    await attack(`f${prefix}`, lines);
    await sleep(500);
  }
  await stopped;
  await waitFor(`all ${total} in the kernel`, async () => (await kernelCount('tallow6', prefix)) >= total, 60_000, 500);
  void conf;
  return { total, duringOutage };
}

describe('history in PostgreSQL', { timeout: 600_000 }, () => {
  before(async () => {
    pg = PgCluster.create();
    pg.start();
    sb = await createSandbox({ network: true, journald: true });
  });
  after(async () => {
    for (const d of daemons) if (!d.exit) d.kill('SIGKILL');
    await sb?.destroy();
    await pg?.destroy();
  });

  it('the store: schema created by tallow at the first connection, a retried batch stored once', async () => {
    database('store', 'tallow_store', 'pw-store', false);
    const f = secret('store', 'pw-store');
    const store = new PgStore({ url: null, host: pg.host, port: 5432, database: 'store', user: 'tallow_store', sslmode: 'disable', passwordFile: f }, quiet);
    await store.open();
    assert.equal(pg.psql('SELECT version FROM tallow.schema_version', 'store'), String(SCHEMA_VERSION));
    const rows = [
      { kind: 'ban' as const, seq: 1, address: '203.0.113.9', family: 4 as const, since: 1000, expiry: 3_601_000, origin: 'rule', reason: 'threshold', pattern: 'sshd.json#1', score: 1, count: 5, step: 0, cause: 'new' as const },
      { kind: 'match' as const, seq: 2, address: '203.0.113.9', at: 999, pattern: 'sshd.json#1', n: 1 },
      { kind: 'unban' as const, seq: 3, address: '203.0.113.9', since: 1000, at: 3_601_000, reason: 'expired' },
    ];
    await store.write('run1', rows);
    await store.write('run1', rows);
    const bans = await store.bans({ limit: 10 });
    assert.deepEqual(bans.map((b) => [b.address, b.seconds, b.ended, b.endReason]), [['203.0.113.9', 3600, 3_601_000, 'expired']]);
    assert.equal((await store.matches({ limit: 10 })).length, 1);
    // A fleet's ban over that running row (renewed after a restart) moves only its end (SQL.banExtend).
    await store.write('run2', [
      { kind: 'ban', seq: 1, address: '203.0.113.8', family: 4, since: 2000, expiry: 3_602_000, origin: 'rule', reason: 'threshold', pattern: 'sshd.json#1', score: 1, count: 5, step: 2, rule: 'sshd', cause: 'new' },
    ]);
    await store.write('run2b', [
      { kind: 'ban', seq: 1, address: '203.0.113.8', family: 4, since: 3000, expiry: 9_000_000, origin: 'remote:web2', reason: 'threshold', pattern: null, score: 0, count: 0, step: 0, rule: 'sshd', cause: 'renewed', covers: 3_602_000 },
    ]);
    assert.equal(pg.psql("SELECT origin || ' ' || step || ' ' || expiry FROM tallow.bans WHERE address = '203.0.113.8'", 'store'), 'rule 2 9000000');
    await store.write('run3', [{ kind: 'unban', seq: 1, address: '203.0.113.8', since: 2000, at: 3_601_000, reason: 'expired' }]);
    // `tallow status`'s figures through PostgreSQL's dialect (BIGINT as text, the id bisection).
    const fig = await historyFigures(store, 3_602_000);
    assert.deepEqual([fig.day, fig.week, fig.oldest], [{ bans: 2, remoteBans: 0, addressesBanned: 2, repeatBans: 1, matches: 1, addressesMatched: 1 }, { bans: 2, remoteBans: 0, addressesBanned: 2, repeatBans: 1 }, 999]);
    await store.close();
  });

  it('server stopped for 20 s during a flood: bans go on; afterwards every ban is stored exactly once', async () => {
    database('flood', 'tallow', 'pw-flood', false);
    const conf = pgConfig('pgflood', 'flood', 'tallow', secret('flood', 'pw-flood'));
    await emptyKernel();
    const d = new DaemonProc(sb, ['--config', conf]);
    daemons.push(d);
    await d.ready();
    assert.ok(d.has(/history: schema created in postgresql tallow@/), d.output);
    const { total, duringOutage } = await floodWithOutage('2001:db8:e::', conf);
    assert.ok(duringOutage >= 1000, `bans reached the kernel while the server was down: ${duringOutage}`);
    assert.ok(d.has(/history: postgresql .* cannot reach the server \(history_host=/) || d.has(/listener history failed; will retry/), d.output.slice(-3000));
    await waitFor('every ban stored', () => Number(pg.psql('SELECT count(*) FROM tallow.bans', 'flood')) >= total, 90_000, 1000);
    d.kill('SIGTERM');
    assert.equal((await d.wait()).code, 0);
    assert.equal(pg.psql('SELECT count(*), count(DISTINCT address) FROM tallow.bans', 'flood'), `${total}|${total}`);
    assert.equal(pg.psql('SELECT count(*) FROM tallow.matches', 'flood'), String(total));
  });

  it('a small history_queue: past it events are dropped and counted, the rest stored once; least-privilege grants suffice', async () => {
    database('small', 'tallow_small', 'pw-small', true);
    const conf = pgConfig('pgsmall', 'small', 'tallow_small', secret('small', 'pw-small'), ['history_queue=500']);
    await emptyKernel();
    const d = new DaemonProc(sb, ['--config', conf]);
    daemons.push(d);
    await d.ready();
    const { total } = await floodWithOutage('2001:db8:f::', conf);
    assert.ok(d.has(/listener history: queue full, events dropped/), d.output.slice(-3000));
    // Settled: nothing left in the queue.
    await waitFor('the history queue empty', async () => (await metric(conf, 'tallow_listener_queue_length{listener="history"}')) === 0, 90_000, 1000);
    const dropped = await metric(conf, 'tallow_listener_events_dropped_total{listener="history"}');
    d.kill('SIGTERM');
    assert.equal((await d.wait()).code, 0);
    const [bans, distinct] = pg.psql('SELECT count(*), count(DISTINCT address) FROM tallow.bans', 'small').split('|').map(Number);
    const matches = Number(pg.psql('SELECT count(*) FROM tallow.matches', 'small'));
    assert.equal(bans, distinct, 'no ban stored twice');
    assert.ok(dropped > 0, `dropped ${dropped}`);
    // Every event (a match and a ban per address) was stored or counted as dropped.
    assert.equal(bans + matches + dropped, 2 * total, `stored ${bans} bans + ${matches} matches, dropped ${dropped}`);
  });

  it('a wrong password: a clear error naming history_password_file, and bans go on', async () => {
    database('wrong', 'tallow_wrong', 'right-password', false);
    const pwFile = secret('wrong', 'wrong-password');
    const conf = pgConfig('pgwrong', 'wrong', 'tallow_wrong', pwFile);
    await emptyKernel();
    const d = new DaemonProc(sb, ['--config', conf]);
    daemons.push(d);
    await d.ready();
    assert.ok(
      d.has(new RegExp(`history: postgresql tallow_wrong@\\S+/wrong: password refused for the role \\(history_user=tallow_wrong; password from history_password_file=${pwFile.replace(/[.]/g, '\\.')}\\)`)),
      d.output,
    );
    await attack('wrong', ['Failed password for root from 203.0.113.99 port 4000 ssh2']);
    await waitFor('the ban in the kernel', () => inIpset(sb, '203.0.113.99'), 10_000, 100);
    d.kill('SIGTERM');
    assert.equal((await d.wait()).code, 0);
  });
});
