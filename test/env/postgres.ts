// A throw-away PostgreSQL server for the tests (SPEC section 8): Debian's binaries, a cluster of
// its own in a temporary directory made by initdb as the postgres user, listening only on a Unix
// socket in that directory (no TCP), password (SCRAM) authentication. Stopped and removed by
// destroy(), which also runs at process exit, so a failing test leaves nothing behind.
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

const live = new Set<PgCluster>();
process.on('exit', () => {
  for (const c of live) c.destroySync();
});

/** The newest /usr/lib/postgresql/N/bin. */
export function pgBin(): string {
  const root = '/usr/lib/postgresql';
  const versions = fs.existsSync(root) ? fs.readdirSync(root).filter((v) => fs.existsSync(path.join(root, v, 'bin', 'initdb'))) : [];
  if (!versions.length) throw new Error('PostgreSQL is missing: /usr/lib/postgresql/*/bin/initdb (install it: scripts/deps.sh)');
  versions.sort((a, b) => Number(b) - Number(a));
  return path.join(root, versions[0], 'bin');
}

export const SUPERUSER_PASSWORD = 'superuser-secret-for-tests';

export class PgCluster {
  readonly bin = pgBin();
  readonly data: string;
  private running = false;

  private constructor(readonly dir: string) {
    this.data = path.join(dir, 'data');
  }

  /** initdb in a new temporary directory; not started. */
  static create(): PgCluster {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tallow-pg-'));
    const c = new PgCluster(dir);
    live.add(c);
    fs.chmodSync(dir, 0o755);
    const pw = path.join(dir, 'superuser.pw');
    fs.writeFileSync(pw, SUPERUSER_PASSWORD + '\n', { mode: 0o600 });
    execFileSync('chown', ['postgres:postgres', dir, pw]);
    c.asPostgres(['initdb', '-D', c.data, '-U', 'postgres', '--auth-local=scram-sha-256', '--auth-host=reject', `--pwfile=${pw}`, '-E', 'UTF8', '--no-sync']);
    return c;
  }

  /** The socket directory: `history_host` for tallow, `-h` for psql. */
  get host(): string {
    return this.dir;
  }

  private asPostgres(argv: string[], timeoutMs = 60_000): string {
    const r = spawnSync('runuser', ['-u', 'postgres', '--', path.join(this.bin, argv[0]), ...argv.slice(1)], { encoding: 'utf8', timeout: timeoutMs });
    if (r.status !== 0) throw new Error(`${argv[0]} failed (${r.status ?? r.signal}): ${r.stderr}${r.stdout}${this.logTail()}`);
    return r.stdout;
  }

  private logTail(): string {
    try {
      return '\nserver log:\n' + fs.readFileSync(path.join(this.dir, 'server.log'), 'utf8').slice(-2000);
    } catch {
      return '';
    }
  }

  start(): void {
    // No TCP at all; fsync off: a test server, its data thrown away after.
    this.asPostgres(['pg_ctl', '-D', this.data, '-l', path.join(this.dir, 'server.log'), '-w', '-t', '60', '-o', `-k ${this.dir} -c listen_addresses='' -c fsync=off`, 'start']);
    this.running = true;
  }

  stop(): void {
    this.asPostgres(['pg_ctl', '-D', this.data, '-m', 'fast', '-w', 'stop']);
    this.running = false;
  }

  /** One SQL command as the superuser; rows as `a|b` lines. */
  psql(sql: string, db = 'postgres'): string {
    const r = spawnSync(path.join(this.bin, 'psql'), ['-h', this.dir, '-U', 'postgres', '-d', db, '-v', 'ON_ERROR_STOP=1', '-At', '-c', sql], {
      encoding: 'utf8',
      env: { ...process.env, PGPASSWORD: SUPERUSER_PASSWORD },
      timeout: 30_000,
    });
    if (r.status !== 0) throw new Error(`psql failed: ${r.stderr}`);
    return r.stdout.trim();
  }

  destroySync(): void {
    if (!live.has(this)) return;
    live.delete(this);
    if (this.running) {
      spawnSync('runuser', ['-u', 'postgres', '--', path.join(this.bin, 'pg_ctl'), '-D', this.data, '-m', 'immediate', '-w', 'stop'], { timeout: 30_000 });
    }
    // Whatever pg_ctl did, no postmaster of ours outlives the test.
    try {
      const pid = Number(fs.readFileSync(path.join(this.data, 'postmaster.pid'), 'utf8').split('\n')[0]);
      if (pid > 1) process.kill(pid, 'SIGKILL');
    } catch {
      /* no pid file: not running */
    }
    fs.rmSync(this.dir, { recursive: true, force: true });
  }

  async destroy(): Promise<void> {
    this.destroySync();
  }
}
