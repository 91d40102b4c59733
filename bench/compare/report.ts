// Results of bench/compare: JSON (everything) and a Markdown table (the headline figures).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { percentile } from './measure';

export interface FloodResult {
  attackers: number;
  below: number;
  lines: number;
  writerSeconds: number;
  /** From the last line written until every attacker was in the kernel set; null: not reached. */
  secondsBehind: number | null;
  /** From the last line written until a minimal sd-journal follower saw it (journald's floor). */
  journaldFloorSeconds: number | null;
  banned: number;
  falseBans: number;
  /** Daemon and everything it spawned, from the writer's start to 1 s after the last ban. */
  cpuSeconds: number;
  /** Living processes at the end, own CPU seconds since they started, by name (sshguard is a pipeline). */
  cpuByProcess?: Record<string, number>;
  peakRssMiB: number;
  complete: boolean;
}

export interface LatencyResult {
  /** ms from the 5th line written to the address in the kernel set; null: not banned in 10 s. */
  rounds: (number | null)[];
  /** ms from the 5th line written to a minimal sd-journal follower seeing it (journald's floor). */
  floor: (number | null)[];
  /** The first attack, written as soon as the daemon said it was reading the journal. */
  startup: { banned: boolean; ms: number | null };
}

export interface IdleResult {
  seconds: number;
  cpuSeconds: number;
  cpuPercent: number;
  rssMiB: number;
  processes: number;
}

export interface Results {
  date: string;
  command: string;
  machine: { host: string; cpu: string; memMiB: number; kernel: string; os: string; node: string };
  options: { attackers: number[]; below: number; rate: number; rounds: number; idleSeconds: number; timeoutSeconds: number };
  daemons: Record<string, { version: string; flood: FloodResult[]; latency: LatencyResult | null; idle: IdleResult | null; errors: string[] }>;
  totalSeconds?: number;
}

const f = (x: number | null | undefined, digits = 1): string => (x === null || x === undefined || !Number.isFinite(x) ? '–' : x.toFixed(digits));

export function markdown(r: Results): string {
  const names = Object.keys(r.daemons);
  const out: string[] = [];
  const day = r.date.slice(0, 10);
  out.push(`### tallow vs fail2ban vs sshguard (${day})`, '');
  out.push(
    `Machine: ${r.machine.cpu}, ${Math.round(r.machine.memMiB / 1024)} GiB, ${r.machine.os}, kernel ${r.machine.kernel}, Node ${r.machine.node}. ` +
      `Versions: ${names.map((n) => r.daemons[n].version).join(', ')}.`,
    '',
    `Command: \`sudo ${r.command}\``,
    '',
  );
  const row = (cells: string[]) => out.push(`| ${cells.join(' | ')} |`);
  row(['', ...names]);
  row(['---', ...names.map(() => '---:')]);
  for (const m of r.options.attackers) {
    const fl = (n: string) => r.daemons[n].flood.find((x) => x.attackers === m);
    const lines = fl(names.find((n) => fl(n)) ?? names[0]);
    const head = `flood ${m.toLocaleString('en-US')} x 5${lines ? ` (+${lines.below.toLocaleString('en-US')} x 4; writer ${f(lines.writerSeconds)} s)` : ''}`;
    row([`${head}: s behind last line until all banned`, ...names.map((n) => {
      const x = fl(n);
      if (!x) return 'error';
      return x.complete ? f(x.secondsBehind, 2) : `not done: ${x.banned.toLocaleString('en-US')}/${m.toLocaleString('en-US')} after ${r.options.timeoutSeconds} s`;
    })]);
    row(['… journald floor: s until an sd-journal follower sees the last line', ...names.map((n) => f(fl(n)?.journaldFloorSeconds, 2))]);
    row(['… false bans', ...names.map((n) => (fl(n) ? String(fl(n)!.falseBans) : '–'))]);
    // A flood that timed out was still being worked on: its CPU is a lower bound.
    row(['… CPU s (daemon + children)', ...names.map((n) => (fl(n) && !fl(n)!.complete ? '≥ ' : '') + f(fl(n)?.cpuSeconds, 2))]);
    row(['… peak RSS MiB', ...names.map((n) => f(fl(n)?.peakRssMiB))]);
  }
  if (names.some((n) => r.daemons[n].latency)) {
    const lat = (n: string) => r.daemons[n].latency?.rounds.filter((x): x is number => x !== null) ?? [];
    const flo = (n: string) => r.daemons[n].latency?.floor.filter((x): x is number => x !== null) ?? [];
    row([`latency, ${r.options.rounds} rounds: p50 / p95 ms (5th line → kernel set)`, ...names.map((n) => {
      const l = r.daemons[n].latency;
      if (!l) return 'error';
      const x = lat(n);
      const missed = l.rounds.length - x.length;
      return `${f(percentile(x, 50))} / ${f(percentile(x, 95))}${missed ? ` (${missed} missed)` : ''}`;
    })]);
    row(['… journald floor p50 (sd-journal follower, same rounds)', ...names.map((n) => f(percentile(flo(n), 50)))]);
    row(['… p50 over the floor', ...names.map((n) => f(percentile(lat(n), 50) - percentile(flo(n), 50)))]);
    row(['attack right after start-up banned', ...names.map((n) => {
      const s = r.daemons[n].latency?.startup;
      return s ? (s.banned ? `yes (${f(s.ms, 0)} ms)` : '**no**') : '–';
    })]);
  }
  if (names.some((n) => r.daemons[n].idle)) {
    row([`idle ${r.options.idleSeconds} s: CPU %`, ...names.map((n) => f(r.daemons[n].idle?.cpuPercent, 3))]);
    row(['… RSS MiB (all its processes)', ...names.map((n) => {
      const i = r.daemons[n].idle;
      return i ? `${f(i.rssMiB)}${i.processes > 1 ? ` (${i.processes} proc.)` : ''}` : '–';
    })]);
  }
  out.push('');
  const errs = names.flatMap((n) => r.daemons[n].errors.map((e) => `- ${n}: ${e.split('\n')[0]}`));
  if (errs.length) out.push('Errors:', ...errs, '');
  out.push(
    `Flood lines written at ${r.options.rate ? `${r.options.rate.toLocaleString('en-US')} lines/s` : 'full speed'} through syslog(3) by a program bind-mounted at /usr/sbin/sshd ` +
      `(journald records _EXE=/usr/sbin/sshd, _UID=0). Each daemon runs alone in a fresh sandbox (own journald, own network namespace); ` +
      `CPU is its cgroup's (the daemon and every process it spawned), from the writer's start to 1 s after the last ban.`,
    '',
  );
  return out.join('\n');
}

/** Write compare-<date>.json and .md into `dir`; returns their paths. */
export function writeReport(r: Results, dir: string): [string, string] {
  fs.mkdirSync(dir, { recursive: true });
  const stamp = r.date.slice(0, 16).replace(/[:T]/g, '-');
  const json = path.join(dir, `compare-${stamp}.json`);
  const md = path.join(dir, `compare-${stamp}.md`);
  fs.writeFileSync(json, JSON.stringify(r, null, 2) + '\n');
  fs.writeFileSync(md, markdown(r));
  return [json, md];
}
