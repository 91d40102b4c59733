// The report from a real PostgreSQL server (a cluster of the test's own, as history-pg.test.ts):
// the same SQL as for SQLite must give the same figures, the same text and the same page. The
// fixed day of test/unit/report-fixture.ts goes into both stores; report.test.ts proves the
// SQLite side against a text written by hand. Then with a `rule` column added (rules per
// service) and a `logins` table, and through `tallow report` with history=postgresql.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import Database from 'better-sqlite3';
import { PgCluster } from '../env/postgres';
import { PgStore } from '../../src/history/postgres';
import { SqliteStore } from '../../src/history/sqlite';
import type { HistoryStore } from '../../src/history/store';
import { buildReport } from '../../src/report';
import { reportRun } from '../../src/report/cli';
import { fixtureRows, P, UNTIL } from '../unit/report-fixture';

const quiet = { info() {}, warn() {}, debug() {}, error() {} };
let pg: PgCluster;
let dir: string;

describe('report from PostgreSQL', { timeout: 180_000 }, () => {
  before(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tallow-report-pg-'));
    pg = PgCluster.create();
    pg.start();
    pg.psql("CREATE ROLE tallow LOGIN PASSWORD 'pw-report'");
    pg.psql('CREATE DATABASE report OWNER postgres');
    pg.psql('GRANT CREATE, CONNECT ON DATABASE report TO tallow');
  });
  after(async () => {
    await pg?.destroy();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('the same figures, text and page as from SQLite; then with a rule column and logins', async () => {
    const secret = path.join(dir, 'pw.secret');
    fs.writeFileSync(secret, 'pw-report\n', { mode: 0o600 });
    const pgStore = new PgStore({ url: null, host: pg.host, port: 5432, database: 'report', user: 'tallow', sslmode: 'disable', passwordFile: secret }, quiet);
    const file = path.join(dir, 'history.sqlite');
    const lite = new SqliteStore(file, quiet);
    for (const s of [pgStore, lite] as HistoryStore[]) await s.write('r', fixtureRows());
    const both = async () => {
      const opts = { host: 'gate.example', now: UNTIL };
      return [await buildReport(pgStore, P, UNTIL, opts), await buildReport(lite, P, UNTIL, opts)];
    };
    let [a, b] = await both();
    assert.deepEqual(a.data, b.data);
    assert.equal(a.text, b.text);
    assert.equal(a.html, b.html);
    assert.equal(a.data.totals.current.bans, 11);

    // Rules per service: the rule column (history schema 3) in both; the logins table (schema 4).
    pg.psql("UPDATE tallow.bans SET rule = 'ssh-strict' WHERE pattern = 'sshd.json#2'", 'report');
    pg.psql(`INSERT INTO tallow.logins (at, address, username, method, fingerprint, rule) VALUES (${P + 3_600_000}, '198.51.100.3', 'alice', 'publickey', 'SHA256:abc', 'ssh-logins')`, 'report');
    pg.psql('GRANT SELECT ON tallow.logins TO tallow', 'report');
    const db = new Database(file);
    db.exec("UPDATE bans SET rule = 'ssh-strict' WHERE pattern = 'sshd.json#2'");
    db.prepare('INSERT INTO logins (at, address, username, method, fingerprint, rule) VALUES (?, ?, ?, ?, ?, ?)').run(P + 3_600_000, '198.51.100.3', 'alice', 'publickey', 'SHA256:abc', 'ssh-logins');
    db.close();
    [a, b] = await both();
    assert.equal(a.data.rulesFrom, 'rule');
    assert.equal(a.data.rules[0].rule, 'ssh-strict');
    assert.equal(a.data.logins.total, 1);
    assert.deepEqual(a.data, b.data);
    assert.equal(a.text, b.text);
    await pgStore.close();
    await lite.close();

    // The command, reading PostgreSQL with the daemon's settings.
    const conf = path.join(dir, 'tallow.conf');
    fs.writeFileSync(conf, [`state_dir=${dir}/state`, 'history=postgresql', `history_host=${pg.host}`, 'history_dbname=report', 'history_user=tallow', `history_password_file=${secret}`, ''].join('\n'));
    const out: string[] = [];
    const err: string[] = [];
    const code = await reportRun(['--since', '2026-03-10T06:00Z', '--until', '2026-03-11T06:00Z', '--config', conf], { out: (s) => void out.push(s), err: (s) => void err.push(s) });
    assert.equal(code, 0, err.join(''));
    assert.equal(out.join(''), b.text.replace('gate.example', os.hostname()));
  });
});
