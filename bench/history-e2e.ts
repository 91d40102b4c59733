// The history's CPU against the whole daemon (issue 15's "+20% at most"): what an administrator
// pays, journal read included. A sandbox (its own journald, network namespace, ipset backend);
// each round starts two daemons one after the other on fresh state dirs, history=off and the
// default (SQLite), the order turned every round; each is handed the same kind of flood through
// the real journal (logger -f: N failures from N new IPv6 addresses, one failure bans), and the
// CPU of the daemon's process (utime+stime from /proc) is counted from just before the flood
// until the daemon has read every line and gone quiet (no CPU tick for 600 ms: the history's
// write a gather later included). Figure: the median of the rounds' own ratios.
// Usage (root, after `npm run build`): node dist/bench/history-e2e.js [--rounds 9] [--flood 10000]
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createSandbox, sleep, waitFor, type Sandbox } from '../test/env/sandbox';
import { cpuTicks, socketStatus } from './daemon-probe';
import { DaemonProc, writeConfig } from '../test/real/e2e-daemon';

function arg(name: string, def: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : def;
}

const ROUNDS = arg('rounds', 9);
const FLOOD = arg('flood', 10_000);
const TICK = 100; // clock ticks per second (/proc stat units), Linux default

/** One daemon, one flood: the daemon's CPU seconds for it. */
async function flood(sb: Sandbox, round: number, history: boolean): Promise<number> {
  const name = `r${round}-${history ? 'on' : 'off'}`;
  const conf = writeConfig(sb, name, ['expires=3600', 'whitelist=127.0.0.1', 'maxelem=1048576', 'max_records=1000000', `history=${history ? 'sqlite' : 'off'}`]);
  fs.writeFileSync(
    path.join(sb.dir, name, 'patterns', 'sshd.json'),
    JSON.stringify([{ filter: [['SYSLOG_IDENTIFIER=sshd', '_UID=0']], items: [{ ban: 0, score: 1, pattern: '^Failed password for \\S+ from <IP> port <PORT> ssh2$' }] }]),
  );
  // Addresses new to every daemon (a flood of strangers: every one a match row and a ban row).
  const lines: string[] = [];
  const tag = (0x100 + round * 2 + (history ? 1 : 0)).toString(16); // not the sandbox's own 2001:db8::/64
  for (let k = 0; k < FLOOD; k++) lines.push(`Failed password for root from 2001:db8:${tag}:${(k >> 8).toString(16)}::${(k & 255).toString(16)} port ${1024 + k} ssh2`);
  const file = path.join(sb.dir, `${name}.txt`);
  fs.writeFileSync(file, lines.join('\n') + '\n');
  const d = new DaemonProc(sb, ['--config', conf]);
  try {
    await d.ready();
    const pid = d.child.pid!;
    await sleep(1500); // start-up's own work (history open, prune) is not the flood's
    const e0 = (await socketStatus(sb, name)).entries;
    const c0 = cpuTicks(pid);
    await sb.check(['logger', '-t', 'sshd', '-f', file]);
    await waitFor(`${name}: every flood line read`, async () => (await socketStatus(sb, name)).entries - e0 >= FLOOD, 120_000, 200);
    let last = cpuTicks(pid);
    for (;;) {
      await sleep(600);
      const now = cpuTicks(pid);
      if (now === last) break;
      last = now;
    }
    if (!d.has(/ban address=/)) throw new Error(`${name}: no ban logged:\n${d.output.slice(-2000)}`);
    return (last - c0) / TICK;
  } finally {
    await d.stop();
    fs.rmSync(file, { force: true });
  }
}

async function main(): Promise<void> {
  const sb = await createSandbox({ journald: true, network: true });
  try {
    const off: number[] = [];
    const on: number[] = [];
    await flood(sb, 99, true); // warm-up (page cache, journald)
    for (let r = 0; r < ROUNDS; r++) {
      const order = r % 2 === 0 ? [false, true] : [true, false];
      for (const h of order) (h ? on : off).push(await flood(sb, r, h));
      console.log(`  round ${r + 1}: off ${off[r].toFixed(2)} s, on ${on[r].toFixed(2)} s, ${((on[r] / off[r] - 1) * 100).toFixed(0)}%`);
    }
    const sorted = (xs: number[]) => [...xs].sort((a, b) => a - b);
    const med = (xs: number[]) => sorted(xs)[Math.floor(xs.length / 2)];
    const ratios = sorted(on.map((x, i) => x / off[i] - 1));
    const pc = (x: number) => `${x >= 0 ? '+' : ''}${(x * 100).toFixed(0)}%`;
    console.log(
      `whole daemon, ${FLOOD}-ban flood through the journal, ${ROUNDS} paired rounds: CPU off median ${med(off).toFixed(2)} s, on ${med(on).toFixed(2)} s; ` +
        `on over off per round: median ${pc(med(ratios))} (quartiles ${pc(ratios[Math.floor(ratios.length / 4)])}..${pc(ratios[Math.floor((ratios.length * 3) / 4)])}, range ${pc(ratios[0])}..${pc(ratios[ratios.length - 1])})`,
    );
  } finally {
    await sb.destroy();
  }
}

main().catch((e) => {
  console.error(e instanceof Error ? e.message : e);
  process.exit(1);
});
