// bench/compare: tallow (this tree), fail2ban and sshguard on the very same workload, each in turn
// in a fresh sandbox (private mount namespace with its own journald, server network namespace for
// the firewall). See bench/README.md ("compare") for what is measured and how to run it.
//
//   sudo node dist/bench/compare/run.js [--quick] [--attackers 10000,50000] [--scenarios A,B,C]
//        [--daemons tallow,fail2ban,sshguard] [--rate 20000] [--rounds 20] [--idle 60] [--out DIR] [--profile]
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { addon } from '../../src/addon';
import { releaseStartupPages } from '../../src/memory';
import { createSandbox, sleep, waitFor, type Sandbox } from '../../test/env/sandbox';
import { fail2banDef, sshguardDef, startDaemon, stopDaemon, tallowDef, waitReady, type DaemonDef, type RunningDaemon } from './daemons';
import { IpsetSession, RssSampler, nowMs, percentile, setMembers } from './measure';
import { attackers, belowThreshold, failureLine, floodPlan, latencyAddress } from './workload';
import { writeReport, type Results, type FloodResult, type LatencyResult, type IdleResult } from './report';

const REPO = path.resolve(__dirname, '../../..');
const SRC = path.join(REPO, 'bench/compare');

interface Options {
  attackers: number[];
  below: number;
  scenarios: Set<string>;
  daemons: string[];
  rate: number;
  rounds: number;
  idle: number;
  timeout: number;
  out: string;
  profile: boolean;
}

const HELP = `Usage: sudo node dist/bench/compare/run.js [OPTIONS]
  --quick               2,000 attackers, 10 latency rounds, 20 s idle
  --attackers N[,N..]   flood sizes (default 10000,50000), each x 5 failures, plus --below addresses x 4
  --below N             addresses failing 4 times, must not be banned (default 1000)
  --scenarios A,B,C     A flood, B latency (+ attack right after start), C idle (default all)
  --daemons LIST        tallow,fail2ban,sshguard (default all three)
  --rate N              lines per second written in the flood (default 20000; 0 = as fast as journald takes)
  --rounds N            latency rounds (default 20)
  --idle S              idle seconds measured (default 60)
  --timeout S           give up a flood S seconds after the last line (default 120)
  --out DIR             results folder (default bench/results)
  --profile             run tallow under node --cpu-prof (profiles beside the daemon logs)
`;

function parseOptions(argv: string[]): Options {
  const o: Options = {
    attackers: [10000, 50000],
    below: 1000,
    scenarios: new Set(['A', 'B', 'C']),
    daemons: ['tallow', 'fail2ban', 'sshguard'],
    rate: 20000,
    rounds: 20,
    idle: 60,
    timeout: 120,
    out: path.join(REPO, 'bench/results'),
    profile: false,
  };
  const num = (flag: string, v: string | undefined): number => {
    const n = Number(v);
    if (v === undefined || !Number.isFinite(n) || n < 0) fail(`${flag}: expected a number, got '${v ?? ''}'`);
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    switch (a) {
      case '--quick':
        o.attackers = [2000];
        o.rounds = 10;
        o.idle = 20;
        break;
      case '--attackers':
        o.attackers = (argv[++i] ?? '').split(',').map((s) => num(a, s));
        break;
      case '--below':
        o.below = num(a, argv[++i]);
        break;
      case '--scenarios':
        o.scenarios = new Set((argv[++i] ?? '').toUpperCase().split(','));
        for (const s of o.scenarios) if (!['A', 'B', 'C'].includes(s)) fail(`--scenarios: unknown scenario '${s}' (A, B, C)`);
        break;
      case '--daemons':
        o.daemons = (argv[++i] ?? '').split(',');
        for (const d of o.daemons) if (!['tallow', 'fail2ban', 'sshguard'].includes(d)) fail(`--daemons: unknown daemon '${d}'`);
        break;
      case '--rate':
        o.rate = num(a, argv[++i]);
        break;
      case '--rounds':
        o.rounds = num(a, argv[++i]);
        break;
      case '--idle':
        o.idle = num(a, argv[++i]);
        break;
      case '--timeout':
        o.timeout = num(a, argv[++i]);
        break;
      case '--out':
        o.out = path.resolve(argv[++i] ?? fail('--out: missing folder'));
        break;
      case '--profile':
        o.profile = true;
        break;
      case '--help':
      case '-h':
        process.stdout.write(HELP);
        process.exit(0);
        break;
      default:
        fail(`unknown option '${a}'\n${HELP}`);
    }
  }
  return o;
}

function fail(msg: string): never {
  process.stderr.write(`bench/compare: ${msg}\n`);
  process.exit(64);
}

function log(msg: string): void {
  process.stderr.write(`[${new Date().toISOString().slice(11, 19)}] ${msg}\n`);
}

function sh(argv: string[]): string {
  return execFileSync(argv[0], argv.slice(1), { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

/** Install the peers (Debian packages) if missing, without letting their services start on the host. */
function ensurePeers(daemons: string[]): void {
  const pkgs: string[] = [];
  if (daemons.includes('fail2ban') && !fs.existsSync('/usr/bin/fail2ban-server')) pkgs.push('fail2ban', 'python3-systemd');
  if (daemons.includes('sshguard') && !fs.existsSync('/usr/sbin/sshguard')) pkgs.push('sshguard');
  for (const t of ['/usr/bin/gcc', '/usr/include/systemd/sd-journal.h', '/usr/sbin/ipset', '/usr/bin/stdbuf']) {
    if (!fs.existsSync(t)) pkgs.push({ '/usr/bin/gcc': 'gcc', '/usr/include/systemd/sd-journal.h': 'libsystemd-dev', '/usr/sbin/ipset': 'ipset', '/usr/bin/stdbuf': 'coreutils' }[t]!);
  }
  if (pkgs.length === 0) return;
  const policy = '/usr/sbin/policy-rc.d';
  let made = false;
  let ok = false;
  try {
    ok = fs.existsSync(policy) && /exit 101/.test(fs.readFileSync(policy, 'utf8'));
  } catch {
    ok = false;
  }
  if (!ok) {
    if (fs.existsSync(policy)) fail(`${policy} exists but does not deny service starts (exit 101); install ${pkgs.join(' ')} by hand first`);
    fs.writeFileSync(policy, '#!/bin/sh\n# bench/compare: no service starts while installing peers\nexit 101\n', { mode: 0o755 });
    made = true;
  }
  try {
    log(`installing ${pkgs.join(' ')} (services kept from starting by ${policy})`);
    execFileSync('apt-get', ['install', '-y', '--no-install-recommends', ...pkgs], {
      stdio: ['ignore', 'inherit', 'inherit'],
      env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
    });
  } finally {
    if (made) fs.rmSync(policy, { force: true });
  }
}

/** Compile the writer and the journald-floor reader into `dir`. */
function compileTools(dir: string): { writer: string; jfloor: string } {
  const writer = path.join(dir, 'writer');
  const jfloor = path.join(dir, 'jfloor');
  sh(['gcc', '-O2', '-Wall', '-o', writer, path.join(SRC, 'writer.c')]);
  sh(['gcc', '-O2', '-Wall', '-o', jfloor, path.join(SRC, 'jfloor.c'), '-lsystemd']);
  return { writer, jfloor };
}

function machine(): Results['machine'] {
  const cpus = os.cpus();
  return {
    host: os.hostname(),
    cpu: `${cpus.length} x ${cpus[0]?.model ?? '?'}`,
    memMiB: Math.round(os.totalmem() / 1048576),
    kernel: os.release(),
    os: (() => {
      try {
        return /PRETTY_NAME="([^"]+)"/.exec(fs.readFileSync('/etc/os-release', 'utf8'))?.[1] ?? '?';
      } catch {
        return '?';
      }
    })(),
    node: process.version,
  };
}

interface Ctx {
  opts: Options;
  tools: { writer: string; jfloor: string };
  work: string;
  logs: string;
}

/**
 * The sandbox's journald, started here rather than by createSandbox: with files big enough that
 * journald does not rotate during a flood (the sandbox's 64 MiB cap means 8 MiB files, rotated
 * every ~140,000 entries). Rotation is a test of its own: fail2ban 1.0.2 stopped reading at the
 * rotation and sshguard's `journalctl -f` died with "Bad message" in a first run (bench/README.md).
 */
async function startJournald(sb: Sandbox): Promise<void> {
  // createSandbox bound this file over /etc/systemd/journald.conf in the namespace; rewriting it
  // in place (same inode) changes what the namespace sees.
  fs.writeFileSync(
    path.join(sb.dir, 'journald.conf'),
    '[Journal]\nStorage=volatile\nRateLimitBurst=0\nRateLimitIntervalSec=0\nReadKMsg=no\n' +
      'ForwardToSyslog=no\nForwardToWall=no\nForwardToConsole=no\nForwardToKMsg=no\nAudit=no\n' +
      'RuntimeMaxUse=2G\nRuntimeMaxFileSize=1G\n',
  );
  const j = sb.spawn(['/lib/systemd/systemd-journald']);
  j.stdout!.resume();
  j.stderr!.resume();
  let died = '';
  j.on('exit', (c, sig) => (died = `journald exited (${c ?? sig})`));
  await waitFor('the sandbox journald', async () => {
    if (died) throw new Error(died);
    const r = await sb.run(['sh', '-c', 'test -S /run/systemd/journal/dev-log && ls /run/log/journal/*/system.journal']);
    return r.code === 0;
  });
}

/** A fresh sandbox with the writer in place of /usr/sbin/sshd and `def` running and ready. */
async function setUp(ctx: Ctx, def: DaemonDef, tag: string, quiet = false): Promise<{ sb: Sandbox; d: RunningDaemon; dir: string; readyMs: number }> {
  const sb = await createSandbox({ network: true });
  try {
    await startJournald(sb);
    await sb.check(['mount', '--bind', ctx.tools.writer, '/usr/sbin/sshd']);
    // A real sshd logs these when it starts, before any attack. Without them (quiet: true) the
    // daemon starts on a journal holding no sshd entry at all, the case of the start-up check
    // (journalctl -f -n1 then shows only the last of the first new entries: sshguard misses).
    if (!quiet) await write(sb, ['Server listening on 0.0.0.0 port 22.', 'Server listening on :: port 22.'], 0, 0);
    const dir = path.join(sb.dir, 'daemon');
    fs.mkdirSync(dir);
    await def.prepare(sb, dir);
    const d = startDaemon(sb, def, dir, `tallow-bench-${process.pid}-${def.name}-${tag}`, path.join(ctx.logs, `${def.name}-${tag}.log`));
    try {
      const readyMs = await waitReady(sb, def, d, dir);
      return { sb, d, dir, readyMs };
    } catch (e) {
      await stopDaemon(d);
      await sb.destroy();
      await d.cg.remove();
      throw e;
    }
  } catch (e) {
    await sb.destroy();
    throw e;
  }
}

async function tearDown(sb: Sandbox, d: RunningDaemon, def: DaemonDef, dir: string, ctx: Ctx, tag: string): Promise<void> {
  await stopDaemon(d);
  // fail2ban logs to a file in the sandbox folder; keep it with the others.
  const f2b = path.join(dir, 'fail2ban.log');
  if (fs.existsSync(f2b)) fs.copyFileSync(f2b, path.join(ctx.logs, `${def.name}-${tag}.fail2ban.log`));
  await sb.destroy();
  await d.cg.remove();
}

/** Run the writer inside the sandbox (as /usr/sbin/sshd, root) on `lines`; its first/last write times. */
async function write(sb: Sandbox, lines: string[], rate: number, lingerMs: number): Promise<{ first: number; last: number }> {
  const plan = path.join(sb.dir, `plan-${process.hrtime.bigint()}.txt`);
  fs.writeFileSync(plan, lines.join('\n') + '\n');
  const r = await sb.run(['/usr/sbin/sshd', '-r', String(rate), '-l', String(lingerMs), plan], { timeoutMs: 3600_000 });
  fs.rmSync(plan, { force: true });
  const m = /first (\d+) last (\d+) lines (\d+)/.exec(r.stdout);
  if (r.code !== 0 || !m) throw new Error(`writer failed (${r.code ?? r.signal}): ${r.stderr.trim()}`);
  if (Number(m[3]) !== lines.length) throw new Error(`writer wrote ${m[3]} of ${lines.length} lines`);
  return { first: Number(m[1]) / 1000, last: Number(m[2]) / 1000 };
}

async function flood(ctx: Ctx, def: DaemonDef, m: number): Promise<FloodResult> {
  const tag = `A${m}`;
  const att = attackers(m);
  const below = belowThreshold(ctx.opts.below);
  const lines = floodPlan(att, below, 5);
  const { sb, d, dir } = await setUp(ctx, def, tag);
  const res: FloodResult = {
    attackers: m, below: below.length, lines: lines.length, writerSeconds: NaN, secondsBehind: null, banned: 0,
    journaldFloorSeconds: null, falseBans: 0, cpuSeconds: NaN, peakRssMiB: NaN, complete: false,
  };
  try {
    await sleep(2000);
    const list = new IpsetSession(sb, 'list');
    const rss = new RssSampler(d.cg);
    const floor = await startFloor(sb, ctx, lines[lines.length - 1]);
    const cpu0 = d.cg.cpuSeconds();
    const w = write(sb, lines, ctx.opts.rate, 500);
    let last: number | null = null;
    void w.then((t) => (last = t.last), () => {});
    const attSet = new Set(att);
    let doneAt: number | null = null;
    const sets = def.sets;
    // Poll the kernel's entry count every 50 ms; confirm membership when the count is reached.
    for (;;) {
      const c = await list.counts();
      const n = (c.get(sets[0]) ?? 0) + (c.get(sets[1]) ?? 0);
      const t = nowMs();
      res.banned = n;
      if (last !== null && n >= m) {
        const members = await setMembers(sb, [...sets]);
        if (att.every((a) => members.has(a))) {
          doneAt = t;
          break;
        }
      }
      if (d.exited()) throw new Error(`${def.name} ${d.exited()} during the flood:\n${d.output().slice(-3000)}`);
      if (last !== null && t - last > ctx.opts.timeout * 1000) break;
      await sleep(50);
    }
    const wt = await w;
    res.writerSeconds = (wt.last - wt.first) / 1000;
    // Let the daemon finish what it was doing, then count.
    await sleep(1000);
    res.cpuSeconds = d.cg.cpuSeconds() - cpu0;
    res.cpuByProcess = d.cg.cpuByName();
    res.peakRssMiB = rss.stop() / 1024;
    const members = await setMembers(sb, [...sets]);
    res.banned = att.filter((a) => members.has(a)).length;
    res.falseBans = [...members].filter((a) => !attSet.has(a)).length;
    res.complete = doneAt !== null;
    res.secondsBehind = doneAt !== null ? (doneAt - wt.last) / 1000 : null;
    const fl = floor.seen.get(lines[lines.length - 1]);
    res.journaldFloorSeconds = fl !== undefined ? (fl - wt.last) / 1000 : null;
    floor.stop();
    list.close();
    log(`${def.name} flood ${m}: ${res.complete ? `all banned ${res.secondsBehind!.toFixed(2)} s after the last line` : `${res.banned}/${m} banned at timeout`}, ` +
      `journald floor ${res.journaldFloorSeconds?.toFixed(2) ?? '?'} s, false ${res.falseBans}, CPU ${res.cpuSeconds.toFixed(2)} s, peak RSS ${res.peakRssMiB.toFixed(1)} MiB, writer ${res.writerSeconds.toFixed(1)} s`);
  } finally {
    await tearDown(sb, d, def, dir, ctx, tag);
  }
  return res;
}

/**
 * A minimal sd-journal follower (jfloor.c) in the sandbox: when it saw each new sshd entry
 * (ms, by message). With `only`, it watches for that one message and exits.
 */
async function startFloor(sb: Sandbox, ctx: Ctx, only?: string): Promise<{ seen: Map<string, number>; stop(): void }> {
  const jf = sb.spawn(only === undefined ? [ctx.tools.jfloor] : [ctx.tools.jfloor, only]);
  const seen = new Map<string, number>();
  let jbuf = '';
  await new Promise<void>((resolve, reject) => {
    jf.on('exit', (c) => reject(new Error(`jfloor exited (${c})`)));
    jf.stdout!.setEncoding('utf8');
    jf.stdout!.on('data', (s: string) => {
      jbuf += s;
      let i;
      while ((i = jbuf.indexOf('\n')) >= 0) {
        const l = jbuf.slice(0, i);
        jbuf = jbuf.slice(i + 1);
        if (l === 'ready') resolve();
        const m = /^(\d+) (.*)$/.exec(l);
        if (m) seen.set(m[2], Number(m[1]) / 1000);
      }
    });
    jf.stderr!.resume();
  });
  return { seen, stop: () => void jf.kill('SIGKILL') };
}

/** Rounds of one fresh address failing 5 times: ms from the 5th line to the kernel set. */
async function latency(ctx: Ctx, def: DaemonDef): Promise<LatencyResult> {
  const tag = 'B';
  const { sb, d, dir } = await setUp(ctx, def, tag, true);
  const res: LatencyResult = { rounds: [], floor: [], startup: { banned: false, ms: null } };
  try {
    const probe = new IpsetSession(sb, 'test');
    // journald's own notification delay, seen by a minimal sd-journal follower beside the daemon.
    const jf = await startFloor(sb, ctx);
    const seen = jf.seen;

    const round = async (n: number): Promise<{ ms: number | null; floorMs: number | null }> => {
      const addr = latencyAddress(n);
      const set = addr.includes(':') ? def.sets[1] : def.sets[0];
      const lines = [0, 1, 2, 3, 4].map((k) => failureLine(addr, 1000 + n, k));
      const st: { bannedAt: number | null; stop: boolean } = { bannedAt: null, stop: false };
      const poll = (async () => {
        while (!st.stop) {
          if (await probe.test(set, addr)) {
            st.bannedAt = nowMs();
            return;
          }
          await sleep(2);
        }
      })();
      const w = await write(sb, lines, 0, 300);
      const end = w.last + 10000;
      while (st.bannedAt === null && nowMs() < end) await sleep(5);
      st.stop = true;
      await poll;
      const fl = seen.get(lines[4]);
      return { ms: st.bannedAt !== null ? st.bannedAt - w.last : null, floorMs: fl !== undefined ? fl - w.last : null };
    };

    // An attack that starts right after the daemon said it is up, on a quiet journal.
    const s = await round(0);
    res.startup = { banned: s.ms !== null, ms: s.ms };
    await sleep(1000);
    for (let n = 1; n <= ctx.opts.rounds; n++) {
      const r = await round(n);
      res.rounds.push(r.ms);
      res.floor.push(r.floorMs);
      await sleep(300);
    }
    probe.close();
    jf.stop();
    const ok = res.rounds.filter((x): x is number => x !== null);
    const fl = res.floor.filter((x): x is number => x !== null);
    log(`${def.name} latency: startup attack ${res.startup.banned ? `banned in ${res.startup.ms!.toFixed(1)} ms` : 'MISSED'}; ` +
      `p50 ${percentile(ok, 50).toFixed(1)} ms p95 ${percentile(ok, 95).toFixed(1)} ms (${ok.length}/${res.rounds.length} banned); journald floor p50 ${percentile(fl, 50).toFixed(1)} ms`);
  } finally {
    await tearDown(sb, d, def, dir, ctx, tag);
  }
  return res;
}

async function idle(ctx: Ctx, def: DaemonDef): Promise<IdleResult> {
  const tag = 'C';
  const { sb, d, dir } = await setUp(ctx, def, tag);
  try {
    await sleep(5000);
    const cpu0 = d.cg.cpuSeconds();
    const t0 = nowMs();
    await sleep(ctx.opts.idle * 1000);
    const cpu = d.cg.cpuSeconds() - cpu0;
    const secs = (nowMs() - t0) / 1000;
    const res: IdleResult = { seconds: secs, cpuSeconds: cpu, cpuPercent: (cpu / secs) * 100, rssMiB: d.cg.sumStatusKiB('VmRSS') / 1024, processes: d.cg.pids().length };
    log(`${def.name} idle ${secs.toFixed(0)} s: CPU ${res.cpuPercent.toFixed(3)} %, RSS ${res.rssMiB.toFixed(1)} MiB in ${res.processes} processes`);
    return res;
  } finally {
    await tearDown(sb, d, def, dir, ctx, tag);
  }
}

async function main(): Promise<void> {
  const opts = parseOptions(process.argv.slice(2));
  if (process.getuid?.() !== 0) fail('run as root (namespaces, firewall, cgroups, apt-get)');
  // This process's own start-up pages go first: pages of the node binary it maps too would stay in
  // tallow's RSS when tallow gives back its own (the kernel keeps shared pages); in production the
  // daemon is the only node process.
  releaseStartupPages(addon());
  if (opts.daemons.includes('tallow') && !fs.existsSync(path.join(REPO, 'dist/src/cli.js'))) fail(`${REPO}/dist/src/cli.js is missing: run \`npm run build\` first`);
  ensurePeers(opts.daemons);
  const work = fs.mkdtempSync(path.join(os.tmpdir(), `tallow-bench-${process.pid}-`));
  const logs = path.join(work, 'logs');
  fs.mkdirSync(logs);
  const ctx: Ctx = { opts, tools: compileTools(work), work, logs };
  const defs: DaemonDef[] = opts.daemons.map((n) => (n === 'tallow' ? tallowDef(REPO, opts.profile ? logs : undefined) : n === 'fail2ban' ? fail2banDef() : sshguardDef()));
  const started = new Date();
  const results: Results = {
    date: started.toISOString(),
    command: `node dist/bench/compare/run.js ${process.argv.slice(2).join(' ')}`.trim(),
    machine: machine(),
    options: { attackers: opts.attackers, below: opts.below, rate: opts.rate, rounds: opts.rounds, idleSeconds: opts.idle, timeoutSeconds: opts.timeout },
    daemons: {},
  };
  log(`daemon logs in ${logs}`);
  for (const def of defs) {
    const r: Results['daemons'][string] = { version: def.version(), flood: [], latency: null, idle: null, errors: [] };
    results.daemons[def.name] = r;
    const attempt = async (what: string, f: () => Promise<void>) => {
      try {
        await f();
      } catch (e) {
        const msg = `${what}: ${(e as Error).message}`;
        r.errors.push(msg.slice(0, 2000));
        log(`${def.name} ${msg}`);
      }
    };
    if (opts.scenarios.has('A')) for (const m of opts.attackers) await attempt(`flood ${m}`, async () => void r.flood.push(await flood(ctx, def, m)));
    if (opts.scenarios.has('B')) await attempt('latency', async () => void (r.latency = await latency(ctx, def)));
    if (opts.scenarios.has('C')) await attempt('idle', async () => void (r.idle = await idle(ctx, def)));
  }
  results.totalSeconds = (Date.now() - started.getTime()) / 1000;
  const files = writeReport(results, opts.out);
  log(`results: ${files.join(', ')}`);
  process.stdout.write(fs.readFileSync(files[1], 'utf8'));
}

process.on('SIGINT', () => process.exit(130));
process.on('SIGTERM', () => process.exit(143));
main().catch((e) => {
  process.stderr.write(`bench/compare: ${(e as Error).message}\n`);
  process.exit(1);
});
