// The fleet's costs (issue 17). Run as root (a PostgreSQL cluster of its own in a temporary
// directory, as the tests make it): npm run build && node dist/bench/fleet.js
// Three nodes, each a process of its own with its own ledger and fleet link (as in the daemon;
// no firewall: the kernel's own delay is bench/firewall's), one PostgreSQL over its Unix socket:
//  1. propagation: A bans one address at a time (every 20 ms, 200 times); the delay from A's
//     ledger event to C's (the firewall queue sees both in the same tick): p50, p95, max; the
//     same delay kernel to kernel, with real daemons and firewalls, is bench/fleet-kernel.ts's;
//  2. a burst of 10,000 bans on A in one tick: time until C holds all, rows/s, CPU of each node
//     and of the PostgreSQL server over the burst.
import { fork, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

type Msg = { t: number } & Record<string, unknown>;

async function child(): Promise<void> {
  const [node, host, pwFile] = process.argv.slice(3);
  const { parseConfig } = await import('../src/config');
  const { Allowlist } = await import('../src/allowlist');
  const { Fleet } = await import('../src/fleet');
  const { Ledger } = await import('../src/ledger');
  const { Metrics } = await import('../src/metrics');
  const { fleetLines } = await import('../test/real/fleet-env');
  const send = (m: Record<string, unknown>) => process.send!({ ...m, t: Date.now() });
  // The parent gone (stopped, or failed): nothing left to measure.
  process.on('disconnect', () => process.exit(0));
  let got = 0;
  let burst = 0;
  let fleet: InstanceType<typeof Fleet> | null = null;
  const ledger = new Ledger({
    emit: (e) => {
      fleet!.listener.handle([e]);
      if (e.kind === 'ban' && e.ban.origin !== 'rule') {
        got++;
        if (e.ban.address.startsWith('2001:db8:a::')) send({ got: e.ban.address });
        else if (++burst % Number(process.env.BURST ?? 10_000) === 0) send({ burst });
      }
    },
  });
  const quiet = { info() {}, warn() {}, debug() {}, error() {} };
  const pg = { host } as { host: string };
  const config = parseConfig(fleetLines(pg as never, node, pwFile, ['fleet_max_per_minute=0', 'fleet_queue=1000000']).join('\n') + '\n', `${node}.conf`);
  const host2 = { ledger, engine: { rules: [], allowlist: new Allowlist(['127.0.0.1']) }, scoring: { unban() {} }, metrics: new Metrics(), state: null };
  fleet = new Fleet(host2 as never, config, quiet);
  fleet.start();
  const wait = setInterval(() => {
    if (fleet!.status().connected) {
      clearInterval(wait);
      send({ connected: true });
    }
  }, 20);
  process.on('message', (m: { ban?: string[]; seconds?: number; cpu?: boolean; quit?: boolean }) => {
    if (m.ban) {
      const now = Date.now();
      for (const address of m.ban) ledger.ban({ address, family: 6, origin: 'rule', rule: 'sshd', reason: 'threshold', pattern: 'sshd.json#1', score: 1, count: 5, seconds: m.seconds ?? 3600 }, now);
      send({ banned: m.ban.length });
    }
    if (m.cpu) send({ cpu: process.cpuUsage() });
    if (m.quit) void fleet!.close().then(() => process.exit(0));
  });
}

class Peer {
  readonly proc: ChildProcess;
  private waiters: { want: (m: Msg) => boolean; done: (m: Msg) => void }[] = [];
  constructor(readonly name: string, host: string, pw: string) {
    this.proc = fork(__filename, ['child', name, host, pw], { stdio: 'inherit' });
    this.proc.on('message', (m: Msg) => {
      for (const w of [...this.waiters]) if (w.want(m)) {
        this.waiters.splice(this.waiters.indexOf(w), 1);
        w.done(m);
      }
    });
  }
  next(want: (m: Msg) => boolean): Promise<Msg> {
    return new Promise((done) => this.waiters.push({ want, done }));
  }
  send(m: Record<string, unknown>): void {
    this.proc.send(m);
  }
  async cpu(): Promise<number> {
    const p = this.next((m) => m.cpu !== undefined);
    this.send({ cpu: true });
    const c = (await p).cpu as { user: number; system: number };
    return (c.user + c.system) / 1000;
  }
}

/** CPU ms of the PostgreSQL server: the postmaster and its children. */
function pgCpuMs(dataDir: string): number {
  const pm = Number(fs.readFileSync(path.join(dataDir, 'postmaster.pid'), 'utf8').split('\n')[0]);
  const tick = 100; // USER_HZ
  let total = 0;
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${d}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      const ppid = Number(f[1]);
      if (Number(d) !== pm && ppid !== pm) continue;
      total += ((Number(f[11]) + Number(f[12])) * 1000) / tick;
    } catch {
      /* gone */
    }
  }
  return total;
}

async function main(): Promise<void> {
  // Stopped by a signal: exit through 'exit', whose handler stops the cluster (test/env/postgres).
  for (const sig of ['SIGINT', 'SIGTERM'] as const) process.on(sig, () => process.exit(130));
  const { PgCluster } = await import('../test/env/postgres');
  const { fleetDatabase, nodeRole } = await import('../test/real/fleet-env');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tallow-bench-fleet-'));
  const pg = PgCluster.create();
  const peers: Peer[] = [];
  try {
    pg.start();
    fleetDatabase(pg);
    for (const n of ['a', 'b', 'c']) peers.push(new Peer(n, pg.host, nodeRole(pg, dir, n)));
    await Promise.all(peers.map((p) => p.next((m) => m.connected === true)));
    const [a, , c] = peers;

    // 1. propagation, one ban at a time
    const delays: number[] = [];
    for (let i = 0; i < 200; i++) {
      const address = `2001:db8:a::${(i + 1).toString(16)}`;
      const atC = c.next((m) => m.got === address);
      const atA = a.next((m) => m.banned === 1);
      a.send({ ban: [address] });
      const [ta, tc] = [(await atA).t, (await atC).t];
      delays.push(tc - ta);
      await new Promise((r) => setTimeout(r, 20));
    }
    delays.sort((x, y) => x - y);
    const pct = (p: number) => delays[Math.min(delays.length - 1, Math.floor((p / 100) * delays.length))];
    console.log(`propagation A -> C, 200 single bans: p50 ${pct(50)} ms, p95 ${pct(95)} ms, max ${delays[delays.length - 1]} ms`);

    // 2. a burst of 10,000
    const N = Number(process.env.BURST ?? 10_000);
    const addrs = Array.from({ length: N }, (_, i) => `2001:db8:b:${((i >> 12) + 1).toString(16)}::${((i & 0xfff) + 1).toString(16)}`);
    const cpu0 = await Promise.all(peers.map((p) => p.cpu()));
    const pg0 = pgCpuMs(pg.data);
    const allAtC = c.next((m) => m.burst === N);
    const atA = a.next((m) => m.banned === N);
    a.send({ ban: addrs });
    const ta = (await atA).t;
    const tc = (await allAtC).t;
    const cpu1 = await Promise.all(peers.map((p) => p.cpu()));
    const pg1 = pgCpuMs(pg.data);
    const s = (tc - ta) / 1000;
    console.log(`burst of ${N} bans on A: C holds all after ${s.toFixed(2)} s (${Math.round(N / s)} rows/s)`);
    console.log(`CPU over the burst: ${peers.map((p, i) => `${p.name} ${Math.round(cpu1[i] - cpu0[i])} ms`).join(', ')}, PostgreSQL ${Math.round(pg1 - pg0)} ms`);
    for (const p of peers) p.send({ quit: true });
    await Promise.all(peers.map((p) => new Promise((r) => p.proc.once('exit', r))));
  } finally {
    for (const p of peers) if (p.proc.exitCode === null) p.proc.kill('SIGKILL');
    await pg.destroy();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

if (process.argv[2] === 'child') void child();
else
  main().catch((e) => {
    console.error(e);
    process.exitCode = 1;
  });
