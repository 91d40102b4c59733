// bench/e2e: the whole daemon against the real thing (sandbox: journald, sshd, kernel sets).
//   1. ban latency: a real sshd failure -> the address in the kernel set, 20 rounds (p50/p95),
//      split into journald receive -> daemon decision (log time stamp) -> kernel set;
//   2. CPU and RSS of the daemon idle for 60 s;
//   3. CPU and RSS while absorbing 10,000 failures/s for 10 s (logger -f as root, tag sshd).
// Usage (root, after `npm run build`): node dist/bench/e2e.js [--rounds 20] [--idle 60] [--flood-seconds 10] [--rate 10000]
//   [--settle S] [--set key=value]...
// --settle waits S seconds after the ready line before the first latency round (release_memory
// gives start-up's pages back 2 s after it: with --settle 5 or more the first round pays for
// reading back what a ban runs); --set adds a tallow.conf line to both daemons (e.g. release_memory=no).
// The bench gives back its own start-up pages first: a production daemon is the only node process,
// and pages this process maps too would stay in the daemon's (the kernel skips shared pages).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { addon } from '../src/addon';
import { releaseStartupPages } from '../src/memory';
import { createSandbox, sleep, waitFor, type Sandbox } from '../test/env/sandbox';
import { cpuTicks, socketStatus } from './daemon-probe';
import { CLI, DaemonProc, SSHD_FILTER, writeConfig } from '../test/real/e2e-daemon';

function arg(name: string, def: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : def;
}

const ROUNDS = arg('rounds', 20);
const IDLE_S = arg('idle', 60);
const FLOOD_S = arg('flood-seconds', 10);
const RATE = arg('rate', 10000);
const SETTLE_S = arg('settle', 0);
const SETS = process.argv.flatMap((a, i) => (a === '--set' ? [process.argv[i + 1]] : []));
const TICK = 100; // clock ticks per second (/proc stat units), Linux default

function pct(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))];
}

function rssMiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

/** CPU % and RSS (mean, max) of `pid` while `during` runs. */
async function measure(pid: number, during: () => Promise<void>): Promise<{ cpu: number; rssMax: number; rssEnd: number; seconds: number }> {
  let rssMax = rssMiB(pid);
  const t0 = process.hrtime.bigint();
  const c0 = cpuTicks(pid);
  const sampler = setInterval(() => (rssMax = Math.max(rssMax, rssMiB(pid))), 250);
  try {
    await during();
  } finally {
    clearInterval(sampler);
  }
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  const cpu = ((cpuTicks(pid) - c0) / TICK / seconds) * 100;
  return { cpu, rssMax, rssEnd: rssMiB(pid), seconds };
}

async function ctl(sb: Sandbox, conf: string, args: string[]): Promise<string> {
  return sb.check([process.execPath, CLI, ...args, '--config', conf], { net: 'server' });
}

async function latency(sb: Sandbox): Promise<void> {
  const conf = writeConfig(sb, 'lat', ['expires=600', 'whitelist=127.0.0.1', ...SETS]);
  // One failure bans (threshold score), so each round measures exactly one line -> one ban.
  fs.writeFileSync(
    path.join(sb.dir, 'lat', 'patterns', 'sshd.json'),
    JSON.stringify([{ filter: SSHD_FILTER, items: [{ ban: 0, score: 1, pattern: '^Failed password for \\S+ from <IP> port <PORT> ssh2$' }] }]),
  );
  const d = new DaemonProc(sb, ['--config', conf]);
  try {
    await d.ready();
    if (SETTLE_S > 0) await sleep(SETTLE_S * 1000);
    const rss0 = rssMiB(d.child.pid!);
    const sources = [...sb.client.extraV4, ...sb.client.extraV6];
    const total: number[] = [];
    const ours: number[] = [];
    const toDecision: number[] = [];
    for (let i = 0; i < ROUNDS; i++) {
      const a = sources[i % sources.length];
      const set = a.includes(':') ? 'tallow6' : 'tallow';
      // A watcher in the server namespace: prints the wall clock (ns) once the kernel holds `a`.
      const watcher = sb.run(['sh', '-c', `while ! ipset -q test ${set} ${a}; do :; done; date +%s%N`], { net: 'server', timeoutMs: 30000 });
      await sleep(50);
      await sb.failLogin(a, 'root');
      const w = await watcher;
      const inKernel = Number(w.stdout.trim()) / 1e6; // ms
      const entries = await sb.journal(['_EXE=/usr/sbin/sshd', '--since', '-60s']);
      const line = entries.reverse().find((e) => String(e.MESSAGE).startsWith(`Failed password for root from ${a} port`));
      if (!line) throw new Error(`no journal entry for ${a}`);
      const received = Number(line.__REALTIME_TIMESTAMP) / 1000; // ms, when journald stored it
      const banLine = [...d.lines].reverse().find((l) => l.includes(`ban address=${a} `));
      const decided = banLine ? Date.parse(banLine.split(' ')[0]) : NaN;
      total.push(inKernel - received);
      toDecision.push(decided - received);
      ours.push(inKernel - decided);
      await ctl(sb, conf, ['unban', a]);
      await waitFor(`${a} unbanned`, async () => (await sb.run(['ipset', '-q', 'test', set, a], { net: 'server' })).code !== 0, 5000);
    }
    const f = (xs: number[]) => `p50 ${pct(xs, 50).toFixed(0)} ms, p95 ${pct(xs, 95).toFixed(0)} ms, max ${Math.max(...xs).toFixed(0)} ms`;
    console.log(`ban latency over ${ROUNDS} rounds (real sshd failure, IPv4 and IPv6, ipset backend)${SETS.length ? `, ${SETS.join(' ')}` : ''}${SETTLE_S ? `, first round ${SETTLE_S} s after ready (RSS then ${rss0.toFixed(1)} MiB)` : ''}:`);
    console.log(`  first round: stored -> kernel ${total[0].toFixed(0)} ms, of which logged the ban -> kernel ${ours[0].toFixed(0)} ms`);
    console.log(`  journald stored the line -> address in the kernel set: ${f(total)}`);
    console.log(`  journald stored the line -> daemon logged the ban:      ${f(toDecision)}  (includes journald's change notification delay)`);
    console.log(`  daemon logged the ban    -> address in the kernel set: ${f(ours)}  (ipset restore, one process)`);
  } finally {
    await d.stop();
  }
}

async function load(sb: Sandbox): Promise<void> {
  const conf = writeConfig(sb, 'load', ['expires=600', 'whitelist=127.0.0.1', 'maxelem=1048576', 'max_records=100000', ...SETS]);
  const d = new DaemonProc(sb, ['--config', conf]);
  try {
    await d.ready();
    const pid = d.child.pid!;
    await sleep(2000);
    const idle = await measure(pid, () => sleep(IDLE_S * 1000));
    console.log(`idle ${idle.seconds.toFixed(0)} s: CPU ${idle.cpu.toFixed(2)} %, RSS ${idle.rssEnd.toFixed(1)} MiB (max ${idle.rssMax.toFixed(1)})`);

    // Failures as sshd words them, from 20,000 IPv6 addresses of 2001:db8::/32 round robin: each
    // address is seen RATE*FLOOD_S/20000 times (score 0.2 each with the shipped patterns).
    const distinct = 20000;
    const chunks: string[] = [];
    let n = 0;
    for (let s = 0; s < FLOOD_S; s++) {
      const lines: string[] = [];
      for (let i = 0; i < RATE; i++, n++) {
        const k = n % distinct;
        lines.push(`Failed password for invalid user u${k} from 2001:db8:ab::${(k >> 8).toString(16)}:${(k & 255).toString(16)} port ${1024 + (n % 60000)} ssh2`);
      }
      const file = path.join(sb.dir, `flood-${s}.txt`);
      fs.writeFileSync(file, lines.join('\n') + '\n');
      chunks.push(file);
    }
    const start0 = (await socketStatus(sb, 'load')).entries;
    let caughtUp = 0;
    const flood = await measure(pid, async () => {
      const t0 = Date.now();
      for (let s = 0; s < chunks.length; s++) {
        // Each second's lines in one logger process (as root: _UID=0, SYSLOG_IDENTIFIER=sshd).
        await sb.check(['logger', '-t', 'sshd', '-f', chunks[s]]);
        const next = t0 + (s + 1) * 1000;
        if (Date.now() < next) await sleep(next - Date.now());
      }
      const sent = Date.now();
      await waitFor('the daemon to read every flood line', async () => {
        return (await socketStatus(sb, 'load')).entries - start0 >= n;
      }, 120000, 200);
      caughtUp = Date.now() - sent;
    });
    const st = await socketStatus(sb, 'load');
    console.log(
      `flood of ${n} failures at ${RATE}/s for ${FLOOD_S} s (${distinct} IPv6 addresses): CPU ${flood.cpu.toFixed(1)} % over ${flood.seconds.toFixed(1)} s, ` +
        `RSS max ${flood.rssMax.toFixed(1)} MiB; all read ${caughtUp} ms after the last line was sent; ` +
        `entries ${st.entries}, matches ${st.matches}, bans active ${st.bansActive}, records ${st.records}`,
    );
    const inKernel = await sb.run(['sh', '-c', 'ipset list tallow6 | grep -c "^2001:db8:ab::"'], { net: 'server' });
    console.log(`  addresses in the kernel set tallow6: ${inKernel.stdout.trim()}`);
  } finally {
    await d.stop();
  }
}

async function main(): Promise<void> {
  releaseStartupPages(addon());
  const sb = await createSandbox({ sshd: true });
  try {
    await latency(sb);
    await load(sb);
  } finally {
    await sb.destroy();
  }
}

main().catch((e) => {
  console.error(e instanceof Error ? e.message : e);
  process.exit(1);
});
