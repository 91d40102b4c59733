// bench/firewall: seconds to ban 1,000 / 10,000 / 100,000 addresses per backend, batched through
// the Firewall queue (one `ipset restore` / `nft -f` per batch), against tallow-C's way: one
// `/bin/sh -c "ipset -! add tallow ADDR timeout N"` per address (for nftables the same with
// `nft add element`). Runs in a throw-away network namespace (firewalld: a real one on a private
// dbus), never on the host's firewall.
//   node dist/bench/firewall.js [--runs N] [--backends ipset,nftables,firewalld] [--per-process-10k]
//        [--trickle N] (N bans one by one, 10 ms apart: tool processes and CPU-s with its children)
//        [--million] (1,000,000 bans: time to ban, check, list, probe, and re-fill after a flush)
//        [--idle S] (CPU of the queue with 1,000 bans held, S seconds alone)
//        [--scopes K] (K port scopes and a network scope beside tallow's: set-up, a second set-up,
//        check() with its tool processes, 10,000 bans spread over the scopes vs in one set, list())
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import * as exec from '../src/firewall/exec';
import { Metrics } from '../src/metrics';
import type { Config } from '../src/config';
import type { Family } from '../src/address';
import type { Logger } from '../src/firewall/backend';
import { chooseBackend, Firewall } from '../src/firewall/index';
import { ALL_PORTS, scopeOf, type Scope } from '../src/scope';
import { manyAddresses } from '../test/real/firewall-addresses';
import { baseConfig } from '../test/real/firewall-child';

type Kind = 'ipset' | 'nftables' | 'firewalld';
const quiet: Logger = { info() {}, warn() {}, error() {}, debug() {} };

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

function emptySets(kind: Kind): void {
  const cmds = kind === 'nftables'
    ? [['nft', 'flush', 'set', 'inet', 'tallow', 'tallow'], ['nft', 'flush', 'set', 'inet', 'tallow', 'tallow6']]
    : [['ipset', 'flush', 'tallow'], ['ipset', 'flush', 'tallow6']];
  for (const c of cmds) {
    const r = spawnSync(c[0], c.slice(1));
    if (r.status !== 0) throw new Error(`${c.join(' ')}: ${r.stderr}`);
  }
}

function addresses(n: number): { address: string; family: Family }[] {
  const v4 = Math.min(n, 762);
  return manyAddresses(v4, n - v4);
}

/** tallow-C's way: a shell and a tool per address, one after the other (system(3)). */
function perProcess(kind: Kind, n: number): number {
  const list = addresses(n);
  const t0 = process.hrtime.bigint();
  for (const a of list) {
    const set = a.family === 4 ? 'tallow' : 'tallow6';
    const cmd = kind === 'nftables' ? `/usr/sbin/nft add element inet tallow ${set} { ${a.address} timeout 3600s }` : `/usr/sbin/ipset -! add ${set} ${a.address} timeout 3600`;
    const r = spawnSync('/bin/sh', ['-c', cmd]);
    if (r.status !== 0) throw new Error(`${cmd}: ${r.stderr}`);
  }
  return Number(process.hrtime.bigint() - t0) / 1e9;
}

/** CPU seconds of this process and of its reaped children (/proc/self/stat utime stime cutime cstime). */
function cpu(): { self: number; children: number } {
  const f = readFileSync('/proc/self/stat', 'utf8');
  const w = f.slice(f.lastIndexOf(')') + 2).split(' ').map(Number);
  // Fields 14-17 of stat(5), counted from the state field (3) here.
  return { self: (w[11] + w[12]) / 100, children: (w[13] + w[14]) / 100 };
}

/** Tool processes started so far, where the code counts them (it did not before the sessions). */
function execs(): number | null {
  const f = (exec as { execCount?: () => number }).execCount;
  return f ? f() : null;
}

/** N bans one by one, everyMs apart, as a real-rate attack decides them; then closed so children are reaped. */
async function trickle(kind: Kind, n: number): Promise<Record<string, unknown>> {
  const config: Config = baseConfig({ backend: kind, maxelem: 1_000_000 });
  const metrics = new Metrics();
  const fw = new Firewall(await chooseBackend(config, quiet, false), quiet, { metrics });
  await fw.start();
  emptySets(kind);
  const c0 = cpu();
  const e0 = execs();
  const list = addresses(n);
  const t0 = process.hrtime.bigint();
  for (const a of list) {
    fw.ban([{ ...a, seconds: 3600 }]);
    await new Promise((r) => setTimeout(r, 10));
  }
  await fw.flush();
  const wall = Number(process.hrtime.bigint() - t0) / 1e9;
  const kernel = (await fw.list()).length;
  await fw.close();
  const c1 = cpu();
  const e1 = execs();
  return {
    trickle: n, wall, kernel, batches: metrics.firewallBatches,
    processes: e0 === null || e1 === null ? `~${metrics.firewallBatches} (one per batch)` : e1 - e0,
    cpu_self: c1.self - c0.self, cpu_children: c1.children - c0.children,
  };
}

/** 1,000,000 bans (maxelem 1048576): ban, check, list, probe, and a re-fill after a flush from outside. */
async function million(kind: Kind): Promise<Record<string, unknown>> {
  const config: Config = baseConfig({ backend: kind, maxelem: 1_048_576 });
  const list = manyAddresses(762, 1_000_000 - 762).map((a) => ({ ...a, expiry: Date.now() + 3_600_000 }));
  // probeIntervalMs: this bench also runs against the code before the sessions, which lacks it.
  const opts: Record<string, unknown> = { checkIntervalMs: 3_600_000, probeIntervalMs: 3_600_000, held: () => list };
  const fw = new Firewall(await chooseBackend(config, quiet, false), quiet, opts);
  await fw.start();
  emptySets(kind);
  const time = async (f: () => Promise<unknown>) => {
    const t = process.hrtime.bigint();
    await f();
    return Number(process.hrtime.bigint() - t) / 1e9;
  };
  const out: Record<string, unknown> = { kind, n: list.length };
  out.ban = await time(async () => {
    fw.ban(list.map((a) => ({ address: a.address, family: a.family, seconds: 3600 })));
    await fw.flush();
  });
  out.check = await time(() => fw.backend.check());
  let listed = 0;
  out.list = await time(async () => (listed = (await fw.list()).length));
  out.listed = listed;
  const be = fw.backend as { present?: (s: { address: string; family: 4 | 6 }[]) => Promise<boolean[]> };
  if (be.present) out.probe = await time(() => be.present!(list.slice(0, 3)));
  emptySets(kind);
  // As the periodic check does: notices the emptied sets and re-fills them from `held`.
  out.refill = await time(async () => {
    (fw as unknown as { needsCheck: boolean; suspect: boolean }).needsCheck = true;
    (fw as unknown as { suspect: boolean }).suspect = true;
    (fw as unknown as { schedule(): void }).schedule();
    await new Promise((r) => setTimeout(r, 0));
    await fw.flush();
  });
  out.after_refill = (await fw.list()).length;
  out.rss_mib = process.memoryUsage().rss / 1048576;
  await fw.close();
  emptySets(kind);
  return out;
}

/** CPU of the queue left alone with 1,000 bans held (the daemon's intervals: checks, probes, monitor). */
async function idle(kind: Kind, seconds: number): Promise<Record<string, unknown>> {
  const config: Config = baseConfig({ backend: kind, maxelem: 1_000_000 });
  const held = addresses(1000).map((a) => ({ ...a, expiry: Date.now() + 3_600_000 }));
  // TALLOW_BENCH_PROBE_MS: the probe's interval (A/B of its cost); the daemon's default otherwise.
  const probe = process.env.TALLOW_BENCH_PROBE_MS;
  const opts: Record<string, unknown> = { held: () => held, ...(probe ? { probeIntervalMs: Number(probe) } : {}) };
  const fw = new Firewall(await chooseBackend(config, quiet, false), quiet, opts);
  await fw.start();
  fw.ban(held.map((a) => ({ address: a.address, family: a.family, seconds: 3600 })));
  await fw.flush();
  const e0 = execs();
  const c0 = cpu();
  await new Promise((r) => setTimeout(r, seconds * 1000));
  const mid = cpu();
  await fw.close();
  const c1 = cpu();
  const e1 = execs();
  return { idle_s: seconds, cpu_self: mid.self - c0.self, cpu_children: c1.children - c0.children, processes: e0 === null || e1 === null ? 'n/a' : e1 - e0,
    cpu_pct: ((mid.self - c0.self + c1.children - c0.children) / seconds) * 100 };
}

/** The per-scope cost: K port scopes (ports 1001..1000+K) and a network scope beside tallow's. */
async function scopes(kind: Kind, k: number): Promise<Record<string, unknown>> {
  const config: Config = baseConfig({ backend: kind, maxelem: 1_000_000 });
  const list: Scope[] = [ALL_PORTS, ...Array.from({ length: k }, (_, i) => scopeOf([1001 + i], undefined, false)), scopeOf(undefined, undefined, true)];
  const secs = async (f: () => Promise<unknown>) => {
    const t = process.hrtime.bigint();
    await f();
    return Number(process.hrtime.bigint() - t) / 1e9;
  };
  const out: Record<string, unknown> = { kind, scopes: list.length, sets: list.length * 2 };
  const opts = { checkIntervalMs: 3_600_000, probeIntervalMs: 3_600_000 };
  let fw = new Firewall(await chooseBackend(config, quiet, false, list), quiet, opts);
  out.setup_first = await secs(() => fw.start());
  await fw.close();
  fw = new Firewall(await chooseBackend(config, quiet, false, list), quiet, opts);
  out.setup_again = await secs(() => fw.start());
  const e0 = execs();
  out.check = await secs(() => fw.backend.check());
  out.check_processes = e0 === null ? 'n/a' : execs()! - e0;
  const bans = addresses(10_000);
  out.ban_10000_one_set = await secs(async () => {
    fw.ban(bans.map((a) => ({ ...a, seconds: 3600 })));
    await fw.flush();
  });
  out.ban_10000_spread = await secs(async () => {
    fw.ban(bans.map((a, i) => ({ ...a, seconds: 3600, scope: list[1 + (i % (list.length - 1))].id })));
    await fw.flush();
  });
  let listed = 0;
  out.list = await secs(async () => (listed = (await fw.list()).length));
  out.listed = listed;
  await fw.close();
  return out;
}

async function inside(kind: Kind, runs: number, perProcess10k: boolean): Promise<void> {
  const args = process.argv;
  if (args.includes('--scopes')) {
    process.stdout.write(JSON.stringify(await scopes(kind, Number(args[args.indexOf('--scopes') + 1]))) + '\n');
    return;
  }
  if (args.includes('--idle')) {
    process.stdout.write(JSON.stringify({ kind, ...(await idle(kind, Number(args[args.indexOf('--idle') + 1]))) }) + '\n');
    return;
  }
  if (args.includes('--trickle')) {
    process.stdout.write(JSON.stringify({ kind, ...(await trickle(kind, Number(args[args.indexOf('--trickle') + 1]))) }) + '\n');
    return;
  }
  if (args.includes('--million')) {
    process.stdout.write(JSON.stringify(await million(kind)) + '\n');
    return;
  }
  const config: Config = baseConfig({ backend: kind, maxelem: 1_000_000 });
  const fw = new Firewall(await chooseBackend(config, quiet, false), quiet, { checkIntervalMs: 3_600_000 });
  const t0 = process.hrtime.bigint();
  await fw.start();
  const setup = Number(process.hrtime.bigint() - t0) / 1e9;
  const result: Record<string, unknown> = { kind, setup };
  for (const n of [1000, 10_000, 100_000]) {
    const times: number[] = [];
    const list = addresses(n).map((a) => ({ ...a, seconds: 3600 }));
    for (let i = 0; i < (n === 100_000 ? Math.min(runs, 3) : runs); i++) {
      emptySets(kind);
      const t = process.hrtime.bigint();
      fw.ban(list);
      await fw.flush();
      times.push(Number(process.hrtime.bigint() - t) / 1e9);
    }
    const kernel = (await fw.list()).length;
    if (kernel < n) throw new Error(`${kind}: only ${kernel} of ${n} bans in the kernel`);
    result[`batched_${n}`] = median(times);
  }
  const pp: number[] = [];
  for (let i = 0; i < runs; i++) {
    emptySets(kind);
    pp.push(perProcess(kind, 1000));
  }
  result.per_process_1000 = median(pp);
  if (perProcess10k) {
    emptySets(kind);
    result.per_process_10000 = perProcess(kind, 10_000);
  }
  await fw.close();
  emptySets(kind);
  process.stdout.write(JSON.stringify(result) + '\n');
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const opt = (name: string, def: string) => {
    const i = args.indexOf(name);
    return i >= 0 ? args[i + 1] : def;
  };
  const runs = Number(opt('--runs', '5'));
  const pp10k = args.includes('--per-process-10k');
  if (args[0] === '--inside') return inside(args[1] as Kind, runs, pp10k);
  const { createSandbox } = await import('../test/env/sandbox');
  const kinds = opt('--backends', 'ipset,nftables,firewalld').split(',') as Kind[];
  const rows: Record<string, any>[] = [];
  for (const kind of kinds) {
    const sb = await createSandbox({ network: true, firewalld: kind === 'firewalld' });
    try {
      const extra = args.includes('--trickle') ? ['--trickle', opt('--trickle', '5000')] : args.includes('--million') ? ['--million'] : args.includes('--idle') ? ['--idle', opt('--idle', '60')] : args.includes('--scopes') ? ['--scopes', opt('--scopes', '4')] : [];
      const argv = [process.execPath, __filename, '--inside', kind, '--runs', String(runs), ...(pp10k ? ['--per-process-10k'] : []), ...extra];
      const r = await sb.run(argv, { net: 'server', timeoutMs: 3_600_000 });
      if (r.code !== 0) throw new Error(`${kind}: ${r.stderr.slice(-2000)}`);
      rows.push(JSON.parse(r.stdout.trim().split('\n').pop()!));
      if (extra.length) console.log(JSON.stringify(rows.at(-1)));
    } finally {
      await sb.destroy();
    }
  }
  if (args.includes('--trickle') || args.includes('--million') || args.includes('--idle') || args.includes('--scopes')) return;
  const f = (x: number) => x.toFixed(3);
  console.log(`runs=${runs} (100,000: min(runs,3)); medians in seconds; per-process 10k/100k extrapolated from 1,000 unless measured`);
  console.log('backend    setup   batched 1k  10k     100k    | per-process 1k  10k(extrap)  100k(extrap) | ratio 1k  ratio 10k');
  for (const r of rows) {
    const pp1 = r.per_process_1000 as number;
    const pp10 = (r.per_process_10000 as number | undefined) ?? pp1 * 10;
    console.log(
      `${r.kind.padEnd(10)} ${f(r.setup)}   ${f(r.batched_1000)}      ${f(r.batched_10000)}   ${f(r.batched_100000)}   | ${f(pp1).padStart(8)}      ${f(pp10).padStart(8)}${r.per_process_10000 ? '(m)' : '   '}    ${f(pp1 * 100).padStart(8)}   | ${(pp1 / r.batched_1000).toFixed(0).padStart(6)}x  ${(pp10 / r.batched_10000).toFixed(0).padStart(6)}x`,
    );
  }
  console.log(JSON.stringify(rows));
}

main().catch((e) => {
  console.error(`bench/firewall: ${(e as Error).message}`);
  process.exit(1);
});
