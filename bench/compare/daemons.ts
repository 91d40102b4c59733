// The daemons compared by bench/compare, each configured for the same job: sshd's failed
// passwords from the journal (entries from _EXE=/usr/sbin/sshd, or SYSLOG_IDENTIFIER=sshd with
// _UID=0), ban on the 5th failure, ban time and detection window longer than the run, bans in a
// kernel ipset of the daemon's network namespace.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { ChildProcess } from 'node:child_process';
import type { Sandbox } from '../../test/env/sandbox';
import { Cgroup, nowMs } from './measure';

export interface RunningDaemon {
  child: ChildProcess;
  cg: Cgroup;
  /** Everything the daemon printed (stdout+stderr, and its log file when it has one), last 64 KiB. */
  output(): string;
  exited(): string | null;
}

export interface DaemonDef {
  name: 'tallow' | 'fail2ban' | 'sshguard';
  /** The kernel sets bans land in (IPv4, IPv6). */
  sets: [string, string];
  /** Write configuration into `dir` (a host path visible in the sandbox) and bind it in place. */
  prepare(sb: Sandbox, dir: string): Promise<void>;
  argv(dir: string): string[];
  env?: NodeJS.ProcessEnv;
  /** Resolves once the daemon says (or shows) that it is reading the journal. */
  ready(sb: Sandbox, d: RunningDaemon, dir: string): Promise<boolean>;
  version(): string;
}

function firstLine(file: string, re: RegExp): string {
  try {
    const m = re.exec(fs.readFileSync(file, 'utf8'));
    return m ? m[1] : '?';
  } catch {
    return '?';
  }
}

/** The source match, as journalctl and fail2ban write it ("+" is OR, adjacent terms AND). */
const JOURNAL_MATCH = '_EXE=/usr/sbin/sshd + SYSLOG_IDENTIFIER=sshd _UID=0';
const BAN_SECONDS = 86400;

/** profileDir: run node with --cpu-prof, profiles written there when the daemon stops. */
export function tallowDef(repo: string, profileDir?: string): DaemonDef {
  return {
    name: 'tallow',
    sets: ['tallow', 'tallow6'],
    async prepare(_sb, dir) {
      fs.mkdirSync(path.join(dir, 'tallow-state'), { recursive: true });
      fs.mkdirSync(path.join(dir, 'tallow-patterns'), { recursive: true });
      // The shipped sshd patterns and source match (filter), with the weights made equal to the
      // peers' job: every failure line scores 0.2 (threshold 1.0: the 5th bans) and none bans at
      // once. Shipped tallow weights score "Failed password for root" 0.5 with an instant 30 s
      // throttle ban, which would ban the 4-failure addresses and is not what fail2ban and
      // sshguard are configured to do here. Same name as the shipped file: it overrides it.
      const shipped = JSON.parse(fs.readFileSync(path.join(repo, 'patterns/sshd.json'), 'utf8')) as { items: { ban: number; score: number }[] }[];
      for (const group of shipped) for (const item of group.items) Object.assign(item, { ban: 0, score: 0.2 });
      fs.writeFileSync(path.join(dir, 'tallow-patterns/sshd.json'), JSON.stringify(shipped, null, 2));
      fs.writeFileSync(
        path.join(dir, 'tallow.conf'),
        [
          'backend=ipset',
          `expires=${BAN_SECONDS}`,
          'threshold=1.0',
          'ipv6=1',
          'maxelem=262144',
          'whitelist=127.0.0.1',
          'whitelist=::1',
          `state_dir=${dir}/tallow-state`,
          `patterns_dir=${dir}/tallow-patterns`,
          'socket=/run/tallow-bench.sock',
          '',
        ].join('\n'),
      );
    },
    argv: (dir) => [
      process.execPath,
      ...(profileDir ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}`] : []),
      path.join(repo, 'dist/src/cli.js'),
      '--config',
      path.join(dir, 'tallow.conf'),
    ],
    async ready(_sb, d) {
      return /journal: .*starting at/.test(d.output());
    },
    version() {
      try {
        return 'tallow ' + (JSON.parse(fs.readFileSync(path.join(repo, 'package.json'), 'utf8')) as { version: string }).version + ' (this tree)';
      } catch {
        return 'tallow (this tree)';
      }
    },
  };
}

export function fail2banDef(): DaemonDef {
  return {
    name: 'fail2ban',
    sets: ['f2b-sshd', 'f2b-sshd6'],
    async prepare(sb, dir) {
      const conf = path.join(dir, 'fail2ban');
      fs.cpSync('/etc/fail2ban', conf, { recursive: true });
      // Debian's jail.d enables sshd with its own settings; ours alone must hold.
      fs.rmSync(path.join(conf, 'jail.d'), { recursive: true, force: true });
      fs.mkdirSync(path.join(conf, 'jail.d'));
      fs.writeFileSync(
        path.join(conf, 'fail2ban.local'),
        [
          '[Definition]',
          'loglevel = INFO',
          `logtarget = ${dir}/fail2ban.log`,
          'socket = /run/fail2ban/fail2ban.sock',
          'pidfile = /run/fail2ban/fail2ban.pid',
          // Its database as on a default install, but on the sandbox's tmpfs.
          'dbfile = /run/fail2ban/fail2ban.sqlite3',
          '',
        ].join('\n'),
      );
      fs.writeFileSync(
        path.join(conf, 'jail.local'),
        [
          '[DEFAULT]',
          'ignoreip = 127.0.0.1/8 ::1',
          'usedns = no',
          '',
          '[sshd]',
          'enabled = true',
          'backend = systemd',
          `journalmatch = ${JOURNAL_MATCH}`,
          'maxretry = 5',
          `findtime = ${BAN_SECONDS}`,
          `bantime = ${BAN_SECONDS}`,
          'banaction = iptables-ipset-proto6-allports',
          'banaction_allports = iptables-ipset-proto6-allports',
          '',
        ].join('\n'),
      );
      await sb.check(['mount', '--bind', conf, '/etc/fail2ban']);
      await sb.check(['mkdir', '-p', '/run/fail2ban']);
    },
    argv: () => ['fail2ban-server', '-f', '-x'],
    async ready(_sb, _d, dir) {
      try {
        return /Jail 'sshd' started/.test(fs.readFileSync(path.join(dir, 'fail2ban.log'), 'utf8'));
      } catch {
        return false;
      }
    },
    version: () => 'fail2ban ' + firstLine('/usr/lib/python3/dist-packages/fail2ban/version.py', /version = "([^"]+)"/),
  };
}

export function sshguardDef(): DaemonDef {
  return {
    name: 'sshguard',
    sets: ['sshguard4', 'sshguard6'],
    async prepare(sb, dir) {
      const conf = path.join(dir, 'sshguard.conf');
      fs.writeFileSync(path.join(dir, 'sshguard-whitelist'), '127.0.0.1\n::1\n');
      // sshguard scores 10 per attack and blocks when the score reaches THRESHOLD (checked by
      // bench: 4 failures stay unblocked, the 5th blocks), so 5 failures = 50.
      fs.writeFileSync(
        conf,
        [
          'BACKEND="/usr/libexec/sshguard/sshg-fw-ipset"',
          `LOGREADER="LANG=C journalctl -afb -p info -n1 -o cat ${JOURNAL_MATCH}"`,
          'THRESHOLD=50',
          `BLOCK_TIME=${BAN_SECONDS}`,
          `DETECTION_TIME=${BAN_SECONDS}`,
          `WHITELIST_FILE=${dir}/sshguard-whitelist`,
          '',
        ].join('\n'),
      );
      // The sshguard script reads this fixed path.
      await sb.check(['mount', '--bind', conf, '/etc/sshguard/sshguard.conf']);
    },
    argv: () => ['/usr/sbin/sshguard'],
    async ready(sb, d) {
      if (!d.cg.comms().includes('journalctl')) return false;
      const r = await sb.run(['ipset', 'list', '-n'], { net: 'server' });
      return r.stdout.includes('sshguard4');
    },
    version: () => 'sshguard ' + firstLine('/usr/sbin/sshguard', /version="([^"]+)"/),
  };
}

/**
 * Start `def` in the sandbox's server namespace, in a new cgroup (so every process it spawns is
 * counted) and a new session (sshguard's script ends with `kill 0`, its whole process group).
 */
export function startDaemon(sb: Sandbox, def: DaemonDef, dir: string, cgName: string, logFile: string): RunningDaemon {
  const cg = new Cgroup(cgName);
  const out = fs.openSync(logFile, 'w');
  let tail = '';
  let exit: string | null = null;
  const keep = (b: Buffer) => {
    fs.writeSync(out, b);
    tail = (tail + b.toString('utf8')).slice(-65536);
  };
  const child = sb.spawn(
    ['setsid', 'sh', '-c', 'echo $$ > "$0/cgroup.procs" && exec "$@"', cg.dir, ...def.argv(dir)],
    { net: 'server', env: { ...process.env, ...def.env } },
  );
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  child.on('exit', (c, s) => {
    exit = `exited with ${c ?? s}`;
    try {
      fs.closeSync(out);
    } catch {
      /* closed */
    }
  });
  return { child, cg, output: () => tail, exited: () => exit };
}

export async function waitReady(sb: Sandbox, def: DaemonDef, d: RunningDaemon, dir: string, timeoutMs = 60000): Promise<number> {
  const t0 = nowMs();
  for (;;) {
    const ex = d.exited();
    if (ex) throw new Error(`${def.name} ${ex} before it was ready:\n${d.output().slice(-3000)}`);
    if (await def.ready(sb, d, dir)) return nowMs() - t0;
    if (nowMs() - t0 > timeoutMs) throw new Error(`${def.name} not ready after ${timeoutMs} ms:\n${d.output().slice(-3000)}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** SIGTERM, then SIGKILL after 10 s; the sandbox ends whatever is left in its namespaces. */
export async function stopDaemon(d: RunningDaemon): Promise<void> {
  if (d.exited()) return;
  const done = new Promise<void>((r) => d.child.once('exit', () => r()));
  d.child.kill('SIGTERM');
  const t = setTimeout(() => d.child.kill('SIGKILL'), 10000);
  await done;
  clearTimeout(t);
}
