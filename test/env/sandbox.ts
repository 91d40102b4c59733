// A throw-away test environment on this machine (SPEC section 8), leaving the host untouched:
// - a persistent private mount namespace with its own /run, /dev (its /dev/log points at the
//   sandbox's journald) and, when asked, its own journald, /etc/firewalld copy and dbus;
// - a server and a client network namespace joined by a veth pair (documentation addresses);
// - a real sshd in the server namespace;
// - firewalld running for real in the server namespace.
// Everything it starts is ended by PID in destroy(), which also runs at process exit.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

export interface SandboxOptions {
  journald?: boolean;
  network?: boolean;
  sshd?: boolean;
  firewalld?: boolean;
}

export interface RunOptions {
  net?: 'server' | 'client';
  input?: string | Buffer;
  /** run as this user (name or uid), e.g. 'nobody' */
  user?: string;
  timeoutMs?: number;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
}

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface Host {
  v4: string;
  v6: string;
  netns: string;
}

const SERVER_V4 = ['192.0.2.1', '198.51.100.1', '203.0.113.1'];
// The client holds several addresses so one test can play several attackers (ssh -b ADDR).
const CLIENT_V4 = ['192.0.2.2', '192.0.2.3', '192.0.2.4', '192.0.2.5', '198.51.100.2', '198.51.100.3', '203.0.113.2', '203.0.113.3'];
const CLIENT_V6 = ['2001:db8::2', '2001:db8::3', '2001:db8::4'];
// A second IPv6 network on the client, routed from the server: attackers in a /64 that is not the
// server's own (a network ban of 2001:db8::/64 would hold the server's address).
const CLIENT_V6_NET2 = ['2001:db8:0:2::2', '2001:db8:0:2::3', '2001:db8:0:2::99'];

let counter = 0;
const live = new Set<Sandbox>();
process.on('exit', () => {
  for (const sb of live) sb.destroySync();
});

function sh(argv: string[], input?: string): string {
  return execFileSync(argv[0], argv.slice(1), {
    input,
    encoding: 'utf8',
    stdio: ['pipe', 'pipe', 'pipe'],
  });
}

function trySh(argv: string[]): boolean {
  try {
    sh(argv);
    return true;
  } catch {
    return false;
  }
}

function need(tool: string): void {
  if (!fs.existsSync(tool)) throw new Error(`sandbox: ${tool} is missing (install it: scripts/deps.sh)`);
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Poll `probe` until it returns true, or throw `what` after `timeoutMs`. */
export async function waitFor(what: string, probe: () => boolean | Promise<boolean>, timeoutMs = 10000, everyMs = 50): Promise<void> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    if (await probe()) return;
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(everyMs);
  }
}

export class Sandbox {
  readonly id: string;
  readonly dir: string;
  readonly mntns: string;
  server: Host = { v4: SERVER_V4[0], v6: '2001:db8::1', netns: '' };
  client: Host & { extraV4: string[]; extraV6: string[]; net2V6: string[] } = {
    v4: CLIENT_V4[0],
    v6: CLIENT_V6[0],
    netns: '',
    extraV4: CLIENT_V4.slice(1),
    extraV6: CLIENT_V6.slice(1),
    net2V6: CLIENT_V6_NET2,
  };
  /** Where the sandbox's journald writes (inside the mount namespace). */
  readonly journalDir = '/run/log/journal';
  private procs: ChildProcess[] = [];
  private mounted = { dirBind: false, ns: false };
  private destroyed = false;

  private constructor() {
    this.id = `${process.pid}x${counter++}`;
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), `tallow-sb-${this.id}-`));
    this.mntns = path.join(this.dir, 'mnt');
    live.add(this);
  }

  static async create(opts: SandboxOptions = {}): Promise<Sandbox> {
    if (process.getuid && process.getuid() !== 0) throw new Error('sandbox: the real-component tests must run as root (namespaces, firewall)');
    for (const t of ['/usr/bin/unshare', '/usr/bin/nsenter']) need(t);
    const sb = new Sandbox();
    try {
      if (opts.network || opts.sshd || opts.firewalld) sb.makeNetwork();
      sb.makeMountNamespace();
      if (opts.journald || opts.sshd) await sb.startJournald();
      if (opts.sshd) await sb.startSshd();
      if (opts.firewalld) await sb.startFirewalld();
      return sb;
    } catch (e) {
      await sb.destroy();
      throw e;
    }
  }

  private makeNetwork(): void {
    need('/usr/sbin/ip');
    const srv = `tsrv${this.id}`;
    const cli = `tcli${this.id}`;
    sh(['ip', 'netns', 'add', srv]);
    this.server.netns = srv;
    sh(['ip', 'netns', 'add', cli]);
    this.client.netns = cli;
    // Interface names are at most 15 characters.
    const vs = `vs${this.id}`.slice(0, 15);
    const vc = `vc${this.id}`.slice(0, 15);
    sh(['ip', 'link', 'add', vs, 'netns', srv, 'type', 'veth', 'peer', 'name', vc, 'netns', cli]);
    const inNs = (ns: string, argv: string[]) => sh(['ip', '-n', ns, ...argv]);
    for (const ns of [srv, cli]) inNs(ns, ['link', 'set', 'lo', 'up']);
    for (const a of SERVER_V4) inNs(srv, ['addr', 'add', `${a}/24`, 'dev', vs]);
    inNs(srv, ['-6', 'addr', 'add', '2001:db8::1/64', 'dev', vs, 'nodad']);
    for (const a of CLIENT_V4) inNs(cli, ['addr', 'add', `${a}/24`, 'dev', vc]);
    for (const a of CLIENT_V6) inNs(cli, ['-6', 'addr', 'add', `${a}/64`, 'dev', vc, 'nodad']);
    for (const a of CLIENT_V6_NET2) inNs(cli, ['-6', 'addr', 'add', `${a}/64`, 'dev', vc, 'nodad']);
    inNs(srv, ['link', 'set', vs, 'up']);
    inNs(cli, ['link', 'set', vc, 'up']);
    inNs(srv, ['-6', 'route', 'add', '2001:db8:0:2::/64', 'dev', vs]);
  }

  private makeMountNamespace(): void {
    const d = this.dir;
    // A mount namespace kept alive by a bind mount of its nsfs file; the file must sit on a
    // private mount, hence the bind of the sandbox folder onto itself.
    sh(['mount', '--bind', d, d]);
    this.mounted.dirBind = true;
    sh(['mount', '--make-private', d]);
    fs.writeFileSync(this.mntns, '');
    sh(['unshare', `--mount=${this.mntns}`, '--propagation', 'private', 'true']);
    this.mounted.ns = true;
    fs.writeFileSync(
      path.join(d, 'journald.conf'),
      '[Journal]\nStorage=volatile\nRateLimitBurst=0\nRateLimitIntervalSec=0\nReadKMsg=no\n' +
        'ForwardToSyslog=no\nForwardToWall=no\nForwardToConsole=no\nForwardToKMsg=no\nAudit=no\n' +
        'RuntimeMaxUse=64M\n',
    );
    for (const sub of ['hostrun', 'hostdev', 'etc-firewalld']) fs.mkdirSync(path.join(d, sub));
    if (fs.existsSync('/etc/firewalld')) sh(['cp', '-a', '/etc/firewalld/.', path.join(d, 'etc-firewalld')]);
    const script = [
      'set -e',
      // A /run of our own: journald sockets, /run/log/journal, /run/sshd, dbus, firewalld, xtables lock, tallow's socket.
      `mount --rbind /run ${d}/hostrun`,
      'mount -t tmpfs -o mode=755 tmpfs /run',
      'mkdir -p /run/systemd/journal /run/log/journal /run/sshd /run/dbus /run/firewalld /run/lock /run/netns /run/user',
      'chmod 755 /run/sshd',
      `if [ -d ${d}/hostrun/netns ]; then mount --rbind ${d}/hostrun/netns /run/netns; fi`,
      `mount --bind ${d}/journald.conf /etc/systemd/journald.conf`,
      `if [ -d /etc/firewalld ]; then mount --bind ${d}/etc-firewalld /etc/firewalld; fi`,
      'if [ -d /var/log/journal ]; then mount -t tmpfs tmpfs /var/log/journal; fi',
      'if [ -d /var/lib/tallow ]; then mount -t tmpfs tmpfs /var/lib/tallow; fi',
      // A /dev of our own, so /dev/log can point at the sandbox's journald without creating
      // anything in the host's /dev.
      `mount --rbind /dev ${d}/hostdev`,
      'mount -t tmpfs -o mode=755 tmpfs /dev',
      `cp -a ${d}/hostdev/. /dev/ 2>/dev/null || true`,
      `for m in pts shm mqueue hugepages; do if [ -d ${d}/hostdev/$m ]; then mkdir -p /dev/$m; mount --rbind ${d}/hostdev/$m /dev/$m || true; fi; done`,
      'rm -f /dev/log',
      'ln -s /run/systemd/journal/dev-log /dev/log',
    ].join('\n');
    sh(['nsenter', `--mount=${this.mntns}`, '--', 'bash', '-c', script]);
  }

  /** argv prefixed so it runs inside the sandbox (mount ns, optionally a net ns, optionally as a user). */
  wrap(argv: string[], opts: { net?: 'server' | 'client'; user?: string } = {}): string[] {
    const pre = ['nsenter', `--mount=${this.mntns}`];
    if (opts.net) {
      const ns = opts.net === 'server' ? this.server.netns : this.client.netns;
      if (!ns) throw new Error('sandbox: created without network');
      pre.push(`--net=/run/netns/${ns}`);
    }
    pre.push('--');
    if (opts.user !== undefined) {
      const uid = /^\d+$/.test(opts.user) ? opts.user : sh(['id', '-u', opts.user]).trim();
      const gid = /^\d+$/.test(opts.user) ? opts.user : sh(['id', '-g', opts.user]).trim();
      pre.push('setpriv', `--reuid=${uid}`, `--regid=${gid}`, '--clear-groups');
    }
    return [...pre, ...argv];
  }

  spawn(argv: string[], opts: { net?: 'server' | 'client'; user?: string; env?: NodeJS.ProcessEnv; cwd?: string } = {}): ChildProcess {
    const full = this.wrap(argv, opts);
    const child = spawn(full[0], full.slice(1), { env: opts.env ?? process.env, cwd: opts.cwd, stdio: ['pipe', 'pipe', 'pipe'] });
    this.procs.push(child);
    return child;
  }

  run(argv: string[], opts: RunOptions = {}): Promise<RunResult> {
    const child = this.spawn(argv, opts);
    return new Promise((resolve, reject) => {
      const out: Buffer[] = [];
      const err: Buffer[] = [];
      child.stdout!.on('data', (b: Buffer) => out.push(b));
      child.stderr!.on('data', (b: Buffer) => err.push(b));
      let timer: NodeJS.Timeout | undefined;
      if (opts.timeoutMs) {
        timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs);
      }
      child.on('error', reject);
      child.on('close', (code, signal) => {
        if (timer) clearTimeout(timer);
        this.procs = this.procs.filter((p) => p !== child);
        resolve({ code, signal, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8') });
      });
      child.stdin!.on('error', () => {});
      child.stdin!.end(opts.input ?? '');
    });
  }

  /** run(), throwing with its stderr when the exit status is not 0. */
  async check(argv: string[], opts: RunOptions = {}): Promise<string> {
    const r = await this.run(argv, opts);
    if (r.code !== 0) throw new Error(`${argv.join(' ')}: exit ${r.code ?? r.signal}: ${r.stderr.trim()}`);
    return r.stdout;
  }

  private exists(p: string, test = '-e'): Promise<boolean> {
    return this.run(['test', test, p]).then((r) => r.code === 0);
  }

  private async startJournald(): Promise<void> {
    need('/lib/systemd/systemd-journald');
    const j = this.spawn(['/lib/systemd/systemd-journald']);
    j.stdout!.resume();
    j.stderr!.resume();
    let died = '';
    j.on('exit', (c, s) => (died = `journald exited (${c ?? s})`));
    await waitFor('the sandbox journald socket', async () => {
      if (died) throw new Error(died);
      return this.exists('/run/systemd/journal/dev-log', '-S');
    });
    // The journal file exists once journald has opened it.
    await waitFor('the sandbox journal file', async () => {
      const r = await this.run(['sh', '-c', 'ls /run/log/journal/*/system.journal']);
      return r.code === 0;
    });
  }

  /** Log through /dev/log inside the sandbox (as `user` when given: an ordinary process). */
  async logger(tag: string, message: string, user?: string): Promise<void> {
    await this.check(['logger', '-t', tag, '--', message], { user });
  }

  private async startSshd(): Promise<void> {
    need('/usr/sbin/sshd');
    const d = this.dir;
    const key = path.join(d, 'ssh_host_ed25519_key');
    sh(['ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-f', key]);
    const conf = path.join(d, 'sshd_config');
    fs.writeFileSync(
      conf,
      [
        'Port 22',
        'ListenAddress 0.0.0.0',
        'ListenAddress ::',
        `HostKey ${key}`,
        `PidFile ${path.join(d, 'sshd.pid')}`,
        'UsePAM no',
        'PasswordAuthentication yes',
        'KbdInteractiveAuthentication no',
        'PermitRootLogin yes',
        'MaxAuthTries 6',
        'MaxStartups 1000:30:1000',
        'LoginGraceTime 20',
        'LogLevel INFO',
        'SyslogFacility AUTH',
        '',
      ].join('\n'),
    );
    // -D: stay in the foreground (its PID is ours to end); no -e, so it logs through /dev/log.
    const p = this.spawn(['/usr/sbin/sshd', '-D', '-f', conf], { net: 'server' });
    let died = '';
    p.on('exit', (c, s) => (died = `sshd exited (${c ?? s})`));
    let errText = '';
    p.stdout!.resume();
    p.stderr!.on('data', (b: Buffer) => (errText = (errText + b.toString()).slice(-2000)));
    p.on('exit', () => (died += errText ? `: ${errText.trim()}` : ''));
    await waitFor('sshd listening on port 22', async () => {
      if (died) throw new Error(died);
      const r = await this.run(['ss', '-Hltn', 'sport = :22'], { net: 'server' });
      return r.stdout.includes(':22');
    });
  }

  /**
   * One failed password login from the client namespace, from `source` (one of the client's
   * addresses), as `user` with a wrong password. Resolves when ssh has given up.
   */
  async failLogin(source: string, user = 'root', opts: { target?: string; tries?: number } = {}): Promise<RunResult> {
    const v6 = source.includes(':');
    const target = opts.target ?? (v6 ? this.server.v6 : this.server.v4);
    return this.run(
      [
        'sshpass', '-p', 'wrong-password',
        'ssh', '-b', source,
        '-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null',
        '-o', 'PreferredAuthentications=password', '-o', 'PubkeyAuthentication=no',
        '-o', `NumberOfPasswordPrompts=${opts.tries ?? 1}`, '-o', 'ConnectTimeout=3',
        '-o', 'LogLevel=ERROR',
        `${user}@${target}`, 'true',
      ],
      { net: 'client', timeoutMs: 20000 },
    );
  }

  /** Can `source` in the client namespace open a TCP connection to the server's port? */
  async canConnect(source: string, port = 22, timeoutSec = 2): Promise<boolean> {
    const v6 = source.includes(':');
    const target = v6 ? this.server.v6 : this.server.v4;
    const code =
      `const s=require('net').connect({host:${JSON.stringify(target)},port:${port},localAddress:${JSON.stringify(source)}});` +
      `s.setTimeout(${timeoutSec * 1000},()=>{process.exit(3)});s.on('connect',()=>{s.destroy();process.exit(0)});s.on('error',()=>process.exit(2));`;
    const r = await this.run([process.execPath, '-e', code], { net: 'client', timeoutMs: (timeoutSec + 5) * 1000 });
    return r.code === 0;
  }

  private async startFirewalld(): Promise<void> {
    need('/usr/sbin/firewalld');
    need('/usr/bin/dbus-daemon');
    // dbus --fork: the daemon writes its PID to /run/dbus/pid, which destroy() reads to end it.
    await this.check(['dbus-daemon', '--system', '--fork']);
    const fw = this.spawn(['/usr/sbin/firewalld', '--nofork', '--nopid'], { net: 'server' });
    fw.stdout!.resume();
    fw.stderr!.resume();
    let died = '';
    fw.on('exit', (c, s) => (died = `firewalld exited (${c ?? s})`));
    await waitFor(
      'firewall-cmd --state to say running',
      async () => {
        if (died) throw new Error(died);
        const r = await this.run(['firewall-cmd', '--state'], { net: 'server' });
        return r.stdout.trim() === 'running';
      },
      60000,
      250,
    );
  }

  /** Entries of the sandbox journal as JSON objects (journalctl inside the namespace). */
  async journal(args: string[] = []): Promise<Record<string, unknown>[]> {
    const out = await this.check(['journalctl', '--no-pager', '-o', 'json', ...args]);
    return out
      .split('\n')
      .filter((l) => l.trim())
      .map((l) => JSON.parse(l) as Record<string, unknown>);
  }

  private dbusPid(): number | null {
    try {
      const r = execFileSync('nsenter', [`--mount=${this.mntns}`, '--', 'cat', '/run/dbus/pid'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
      const n = Number(r.trim());
      return Number.isInteger(n) && n > 1 ? n : null;
    } catch {
      return null;
    }
  }

  private nsPids(): number[] {
    const pids: number[] = [];
    for (const ns of [this.server.netns, this.client.netns]) {
      if (!ns) continue;
      try {
        for (const l of sh(['ip', 'netns', 'pids', ns]).split('\n')) if (l.trim()) pids.push(Number(l.trim()));
      } catch {
        /* namespace already gone */
      }
    }
    return pids;
  }

  /** End everything started here (by PID), remove the namespaces and mounts. */
  destroySync(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    live.delete(this);
    const pids = new Set<number>();
    if (this.mounted.ns) {
      const d = this.dbusPid();
      if (d) pids.add(d);
    }
    for (const p of this.procs) if (p.pid && p.exitCode === null && p.signalCode === null) pids.add(p.pid);
    // Processes living in our network namespaces (sshd's per-connection children, test daemons)
    // were started by this sandbox, directly or not.
    for (const p of this.nsPids()) pids.add(p);
    for (const p of pids) {
      try {
        process.kill(p, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
    // Give the kernel a moment to reap before unmounting.
    const until = Date.now() + 2000;
    while (Date.now() < until && [...pids].some((p) => fs.existsSync(`/proc/${p}`) && !isZombie(p))) {
      execFileSync('sleep', ['0.05']);
    }
    if (this.server.netns) trySh(['ip', 'netns', 'del', this.server.netns]);
    if (this.client.netns) trySh(['ip', 'netns', 'del', this.client.netns]);
    if (this.mounted.ns) trySh(['umount', this.mntns]);
    if (this.mounted.dirBind) trySh(['umount', '-l', this.dir]);
    fs.rmSync(this.dir, { recursive: true, force: true });
  }

  async destroy(): Promise<void> {
    this.destroySync();
  }
}

function isZombie(pid: number): boolean {
  try {
    return /^\S+ \(.*\) Z/.test(fs.readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

export function createSandbox(opts: SandboxOptions = {}): Promise<Sandbox> {
  return Sandbox.create(opts);
}
