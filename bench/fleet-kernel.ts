// Fleet propagation kernel to kernel (issue 17): from the moment A's kernel holds a ban to the
// moment C's does. Run as root: npm run build && node dist/bench/fleet-kernel.js [N]
// Three real daemons (the built CLI) in three sandboxes (own journald, own network namespace,
// backend=nftables), one PostgreSQL cluster of its own (test/env/postgres), as the three-node
// test makes them. `nft monitor new elements` runs in A's and in C's namespace; each "add
// element" line is timestamped when it is read (both monitors are read the same way by this
// process, so their common delay cancels out). A is given N bans (default 200) one at a time
// over its control socket, 20 ms apart; each delay is C's timestamp minus A's.
import type { ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { request } from '../src/ctl';
import { PgCluster } from '../test/env/postgres';
import { createSandbox, sleep, type Sandbox } from '../test/env/sandbox';
import { DaemonProc, SSHD_FILTER, writeConfig } from '../test/real/e2e-daemon';
import { fleetDatabase, fleetLines, nodeRole } from '../test/real/fleet-env';

const PATTERNS = [{ filter: SSHD_FILTER, items: [{ ban: 0, score: 1, pattern: '^Failed password for \\S+ from <IP> port <PORT> ssh2$' }] }];

/** `nft monitor` in a sandbox's server namespace: address -> when its element was first seen added. */
function monitor(sb: Sandbox): { seen: Map<string, number>; proc: ChildProcess } {
  const seen = new Map<string, number>();
  // stdbuf: nft's stdout is a pipe here; a line, not a block, at a time.
  const proc = sb.spawn(['stdbuf', '-oL', 'nft', 'monitor', 'new', 'elements'], { net: 'server' });
  let rest = '';
  proc.stdout!.setEncoding('utf8');
  proc.stdout!.on('data', (chunk: string) => {
    const t = performance.now();
    rest += chunk;
    const lines = rest.split('\n');
    rest = lines.pop()!;
    for (const l of lines) for (const m of l.matchAll(/2001:db8:a::[0-9a-f]+/g)) if (!seen.has(m[0])) seen.set(m[0], t);
  });
  proc.stderr!.resume();
  return { seen, proc };
}

async function main(): Promise<void> {
  for (const sig of ['SIGINT', 'SIGTERM'] as const) process.on(sig, () => process.exit(130));
  const n = Number(process.argv[2] ?? 200);
  const pg = PgCluster.create();
  const sbs: Sandbox[] = [];
  const daemons: DaemonProc[] = [];
  const mons: ChildProcess[] = [];
  try {
    pg.start();
    fleetDatabase(pg);
    for (const name of ['a', 'b', 'c']) {
      const sb = await createSandbox({ network: true });
      sbs.push(sb);
      const pw = nodeRole(pg, sb.dir, name);
      const conf = writeConfig(sb, name, ['backend=nftables', 'expires=3600', 'ipv6=1', 'history=off', 'whitelist=127.0.0.1', ...fleetLines(pg, name, pw, ['fleet_max_per_minute=0'])]);
      fs.writeFileSync(path.join(sb.dir, name, 'patterns', 'sshd.json'), JSON.stringify(PATTERNS));
      daemons.push(new DaemonProc(sb, ['--config', conf]));
    }
    for (const d of daemons) {
      await d.ready();
      await d.waitLine('the fleet connection', /fleet: connected to postgresql /);
    }
    const [ma, mc] = [monitor(sbs[0]), monitor(sbs[2])];
    mons.push(ma.proc, mc.proc);
    await sleep(500);
    const sock = path.join(sbs[0].dir, 'a', 'tallow.sock');
    const delays: number[] = [];
    for (let i = 0; i < n; i++) {
      const address = `2001:db8:a::${(i + 1).toString(16)}`;
      const r = await request(sock, { cmd: 'ban', address, seconds: 3600 });
      if (!r.ok) throw new Error(`ban ${address}: ${JSON.stringify(r)}`);
      const t0 = performance.now();
      while (!(ma.seen.has(address) && mc.seen.has(address))) {
        if (performance.now() - t0 > 10_000) throw new Error(`${address} not in both kernels after 10 s (A ${ma.seen.has(address)}, C ${mc.seen.has(address)})`);
        await sleep(2);
      }
      delays.push(mc.seen.get(address)! - ma.seen.get(address)!);
      await sleep(20);
    }
    delays.sort((x, y) => x - y);
    const pct = (p: number) => delays[Math.min(delays.length - 1, Math.floor((p / 100) * delays.length))].toFixed(1);
    const load = fs.readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
    console.log(`propagation A's kernel -> C's kernel (nft monitor), ${n} single bans 20 ms apart: p50 ${pct(50)} ms, p95 ${pct(95)} ms, max ${delays[delays.length - 1].toFixed(1)} ms (load ${load})`);
  } finally {
    for (const m of mons) if (m.exitCode === null) m.kill('SIGKILL');
    for (const d of daemons) await d.stop().catch(() => {});
    for (const sb of sbs) await sb.destroy();
    await pg.destroy();
  }
}

main().catch((e) => {
  console.error(e);
  process.exitCode = 1;
});
