// A real nginx (Debian's package) in a sandbox's server network namespace, with HTTP basic auth on
// every path, its error log sent to the sandbox's journald, and run in a cgroup named like a
// systemd unit's (`tallow-ID.slice/nginx.service`) so that journald records
// _SYSTEMD_UNIT=nginx.service as it does under systemd: the shipped nginx rule's `unit` then
// selects its lines. A second real service beside sshd for the rules tests (issue 14): the attacker
// in the client namespace fails basic auth, and reaches (or not) the ports nginx listens on.
//
// Nothing outside the sandbox is touched but a temp folder (config, htpasswd, pid, temp paths) and
// the cgroup, both removed by stop(), or at exit if a test died first.
import { execFileSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { waitFor, type Sandbox } from '../env/sandbox';

export const NGINX = '/usr/sbin/nginx';

export interface NginxOptions {
  /** TCP ports to listen on, IPv4 and IPv6 (default [80]). */
  ports?: number[];
  /** Accounts in the htpasswd file (default alice / right-password). */
  users?: Record<string, string>;
  /**
   * Where the error log goes: 'syslog' (`error_log syslog:server=unix:/dev/log,nohostname`, the
   * default) or 'stderr' (`error_log stderr`, nginx's stderr connected to the journal by
   * systemd-cat, as systemd connects a service's stderr).
   */
  errorLog?: 'syslog' | 'stderr';
}

export interface HttpRequest {
  user?: string;
  password?: string;
  /** a raw Authorization header value instead of user/password (e.g. crafted Basic credentials) */
  authorization?: string;
  path?: string;
  /** extra request headers, "Name: value" */
  headers?: string[];
  port?: number;
  timeoutSec?: number;
}

const live = new Set<NginxService>();
process.on('exit', () => {
  for (const n of live) n.cleanupSync();
});

/** The cgroup v2 hierarchy journald reads units from (mounted on /sys/fs/cgroup, or /sys/fs/cgroup/unified in hybrid mode). */
function cgroup2Root(): string {
  for (const line of fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const [pre, post] = line.split(' - ');
    if (post?.startsWith('cgroup2 ')) return pre.split(' ')[4];
  }
  throw new Error('nginx-service: no cgroup2 hierarchy mounted (journald would record no _SYSTEMD_UNIT)');
}

export class NginxService {
  /** the master process (its workers are its children) */
  readonly pid: number;
  readonly ports: number[];
  readonly users: Record<string, string>;
  readonly errorLog: 'syslog' | 'stderr';
  /** the htpasswd file's path as nginx logs it in "was not found in" */
  readonly htpasswd: string;
  private exited: Promise<void>;
  private done = false;
  private stderr = '';

  private constructor(
    readonly sb: Sandbox,
    private readonly dir: string,
    private readonly cgroup: string,
    private readonly child: ChildProcess,
    opts: Required<NginxOptions>,
  ) {
    this.pid = child.pid!;
    this.ports = opts.ports;
    this.users = opts.users;
    this.errorLog = opts.errorLog;
    this.htpasswd = path.join(dir, 'htpasswd');
    child.stdout!.resume();
    child.stderr!.on('data', (b: Buffer) => (this.stderr = (this.stderr + b.toString()).slice(-4000)));
    this.exited = new Promise((res) => child.on('exit', () => res()));
  }

  static async start(sb: Sandbox, options: NginxOptions = {}): Promise<NginxService> {
    if (!fs.existsSync(NGINX)) throw new Error(`${NGINX} is missing (Debian package nginx; scripts/deps.sh installs it)`);
    const opts: Required<NginxOptions> = { ports: options.ports ?? [80], users: options.users ?? { alice: 'right-password' }, errorLog: options.errorLog ?? 'syslog' };
    // Workers run as nobody: the folder is theirs to read (a sandbox folder is 0700).
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), `tallow-nginx-${process.pid}-`));
    fs.chmodSync(dir, 0o755);
    fs.mkdirSync(path.join(dir, 'www'));
    fs.mkdirSync(path.join(dir, 'tmp'));
    fs.writeFileSync(path.join(dir, 'www', 'index.html'), 'ok\n');
    const lines = Object.entries(opts.users).map(([u, p]) => `${u}:${execFileSync('openssl', ['passwd', '-apr1', p], { encoding: 'utf8' }).trim()}`);
    fs.writeFileSync(path.join(dir, 'htpasswd'), lines.join('\n') + '\n', { mode: 0o644 });
    const errorLog = opts.errorLog === 'syslog' ? 'syslog:server=unix:/dev/log,nohostname' : 'stderr';
    const listen = opts.ports.map((p) => `    listen ${p};\n    listen [::]:${p};\n`).join('');
    const tmp = (k: string) => `  ${k}_temp_path ${path.join(dir, 'tmp', k)};\n`;
    fs.writeFileSync(
      path.join(dir, 'nginx.conf'),
      `daemon off;\nmaster_process on;\nworker_processes 1;\npid ${path.join(dir, 'nginx.pid')};\nerror_log ${errorLog} info;\n` +
        'events { worker_connections 64; }\n' +
        `http {\n  access_log off;\n${['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map(tmp).join('')}` +
        `  server {\n${listen}    server_name test.example;\n    root ${path.join(dir, 'www')};\n` +
        `    location / {\n      auth_basic "tallow test";\n      auth_basic_user_file ${path.join(dir, 'htpasswd')};\n    }\n  }\n}\n`,
    );
    const cgroup = path.join(cgroup2Root(), `tallow-${sb.id}.slice`, 'nginx.service');
    fs.mkdirSync(cgroup, { recursive: true });
    // -e: the error log nginx uses before it reads its configuration (never /var/log/nginx).
    const nginx = [NGINX, '-e', 'stderr', '-p', dir, '-c', path.join(dir, 'nginx.conf')];
    const argv = opts.errorLog === 'stderr' ? ['systemd-cat', '--identifier=nginx', ...nginx] : nginx;
    const quoted = argv.map((a) => `'${a}'`).join(' ');
    const child = sb.spawn(['sh', '-c', `echo $$ > '${path.join(cgroup, 'cgroup.procs')}' && exec ${quoted}`], { net: 'server' });
    const n = new NginxService(sb, dir, cgroup, child, opts);
    live.add(n);
    try {
      await waitFor(`nginx listening on ${opts.ports.join(', ')}`, async () => {
        if (child.exitCode !== null || child.signalCode !== null) throw new Error(`nginx exited (${child.exitCode ?? child.signalCode}): ${n.stderr.trim()}`);
        const out = (await sb.run(['ss', '-Hltn'], { net: 'server' })).stdout;
        return opts.ports.every((p) => out.includes(`0.0.0.0:${p} `) && out.includes(`[::]:${p} `));
      });
    } catch (e) {
      await n.stop();
      throw e;
    }
    return n;
  }

  /** One HTTP request from the client namespace, from `source`: the status code, 0 when no answer came. */
  async request(source: string, r: HttpRequest = {}): Promise<number> {
    const v6 = source.includes(':');
    const host = v6 ? `[${this.sb.server.v6}]` : this.sb.server.v4;
    const argv = ['curl', '-s', '-o', '/dev/null', '-w', '%{http_code}', '-g', '--path-as-is', '--interface', source, '--max-time', String(r.timeoutSec ?? 5)];
    if (r.user !== undefined) argv.push('-u', `${r.user}:${r.password ?? ''}`);
    if (r.authorization !== undefined) argv.push('-H', `Authorization: ${r.authorization}`);
    for (const h of r.headers ?? []) argv.push('-H', h);
    argv.push(`http://${host}:${r.port ?? this.ports[0]}${r.path ?? '/'}`);
    const res = await this.sb.run(argv, { net: 'client', timeoutMs: ((r.timeoutSec ?? 5) + 5) * 1000 });
    return Number(res.stdout.trim()) || 0;
  }

  /** A failed basic-auth request (a wrong password for alice unless `user` is given): the status, 401 when nginx refused it. */
  failAuth(source: string, user = 'alice'): Promise<number> {
    return this.request(source, { user, password: 'wrong-password' });
  }

  /** Graceful stop (SIGQUIT), SIGKILL after 5 s; then the folder and the cgroup go. */
  async stop(): Promise<void> {
    if (!this.done && this.child.exitCode === null && this.child.signalCode === null) {
      this.child.kill('SIGQUIT');
      const t = setTimeout(() => this.child.kill('SIGKILL'), 5000);
      await this.exited;
      clearTimeout(t);
    }
    // Workers leave the cgroup a moment after the master is reaped.
    await waitFor('nginx\'s cgroup to empty', () => this.cgroupEmpty(), 5000).catch(() => {});
    this.cleanupSync();
  }

  private cgroupEmpty(): boolean {
    try {
      return fs.readFileSync(path.join(this.cgroup, 'cgroup.procs'), 'utf8').trim() === '';
    } catch {
      return true;
    }
  }

  /** Remove the folder and the cgroup (a cgroup with processes left cannot be: they are killed first). */
  cleanupSync(): void {
    if (this.done) return;
    this.done = true;
    live.delete(this);
    try {
      for (const p of fs.readFileSync(path.join(this.cgroup, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean)) {
        try {
          process.kill(Number(p), 'SIGKILL'); // ours: only nginx was started in this cgroup
        } catch {
          /* gone */
        }
      }
    } catch {
      /* no cgroup */
    }
    for (let i = 0; i < 50; i++) {
      try {
        fs.rmdirSync(this.cgroup);
        break;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'ENOENT') break;
        execFileSync('sleep', ['0.05']);
      }
    }
    try {
      fs.rmdirSync(path.dirname(this.cgroup));
    } catch {
      /* already gone, or still busy: reported by the test that created it */
    }
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}
