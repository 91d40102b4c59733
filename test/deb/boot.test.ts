// The .deb under a real systemd (issue 18 point 1), run on demand (minutes, not in `npm test`):
//
//   sudo node --test dist/test/deb/boot.test.js        (or: node scripts/run-tests.js deb)
//
// A Debian trixie root made by debootstrap from Debian's own packages (trixie's nodejs is 20)
// is cached under test/deb/.cache/ keyed by suite, mirror and package list; each run boots a
// throw-away overlay of it with systemd-nspawn (no machined, no udev here: reached with nsenter
// through its PID 1), a veth pair to an attacker namespace, 192.0.2.0/24 only. The host's /etc,
// units and firewall are never touched; the container, namespace and overlay go away after.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

const root = path.resolve(__dirname, '..', '..', '..');
const SUITE = 'trixie';
const MIRROR = process.env.TALLOW_DEB_MIRROR ?? 'http://deb.debian.org/debian';
// What the package Depends on (nodejs, libsystemd0, ipset+iptables as the firewall), systemd as
// PID 1, and an sshd to attack.
const PACKAGES = ['systemd', 'systemd-sysv', 'dbus', 'nodejs', 'ipset', 'iptables', 'openssh-server', 'procps'];
const CONTAINER_IP = '192.0.2.1';
const ATTACKER_IP = '192.0.2.66';

type Run = { status: number | null; stdout: string; stderr: string };

/** The cached root for this package list, made by debootstrap when absent (about 5 minutes). */
function debianRoot(): string {
  const key = createHash('sha256').update(JSON.stringify({ SUITE, MIRROR, variant: 'minbase', PACKAGES })).digest('hex').slice(0, 12);
  const cache = process.env.TALLOW_DEB_CACHE ?? path.join(root, 'test', 'deb', '.cache');
  const dir = path.join(cache, `${SUITE}-${key}`);
  if (fs.existsSync(path.join(dir, 'usr/bin/node'))) return dir;
  fs.mkdirSync(cache, { recursive: true });
  const tmp = `${dir}.tmp-${process.pid}`;
  fs.rmSync(tmp, { recursive: true, force: true });
  const r = spawnSync('debootstrap', ['--variant=minbase', `--include=${PACKAGES.join(',')}`, SUITE, tmp, MIRROR], { encoding: 'utf8', timeout: 1_800_000 });
  if (r.status !== 0) {
    fs.rmSync(tmp, { recursive: true, force: true });
    assert.fail(`debootstrap ${SUITE} failed (exit ${r.status}):\n${(r.stdout + r.stderr).slice(-3000)}`);
  }
  fs.renameSync(tmp, dir);
  return dir;
}

function sh(cmd: string, args: string[], timeout = 120_000): Run {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout });
  return { status: r.status, stdout: r.stdout ?? '', stderr: r.stderr ?? String(r.error ?? '') };
}

async function until<T>(what: string, probe: () => T | undefined | false, ms = 60_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = probe();
    if (v) return v;
    if (Date.now() > end) assert.fail(`gave up waiting ${ms / 1000}s for ${what}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

/**
 * What an earlier run of this test left when it was killed before its cleanup (SIGKILL, a
 * runner's timeout): its container (named after that run's pid, which no longer runs), the
 * attacker's namespace, the overlay and its directory. Only names this test makes are touched.
 */
async function sweepStale(): Promise<string[]> {
  const swept: string[] = [];
  for (const p of fs.readdirSync('/proc').filter((x) => /^\d+$/.test(x))) {
    let argv: string[];
    try {
      argv = fs.readFileSync(`/proc/${p}/cmdline`, 'utf8').split('\0');
    } catch {
      continue;
    }
    const owner = argv[0].endsWith('systemd-nspawn') ? /^--machine=tallowdeb(\d+)$/.exec(argv.find((a) => a.startsWith('--machine=')) ?? '')?.[1] : undefined;
    if (!owner || Number(owner) === process.pid || alive(Number(owner))) continue;
    process.kill(Number(p), 'SIGTERM');
    for (let i = 0; i < 120 && alive(Number(p)); i++) await new Promise((r) => setTimeout(r, 250));
    if (alive(Number(p))) process.kill(Number(p), 'SIGKILL');
    swept.push(`container tallowdeb${owner} (systemd-nspawn ${p})`);
  }
  for (const n of sh('ip', ['netns', 'list']).stdout.split('\n').map((l) => /^tdebatk(\d+)\b/.exec(l)?.[1]).filter((x): x is string => !!x)) {
    if (Number(n) === process.pid || alive(Number(n))) continue;
    spawnSync('ip', ['netns', 'del', `tdebatk${n}`]);
    swept.push(`namespace tdebatk${n}`);
  }
  for (const line of fs.readFileSync('/proc/mounts', 'utf8').split('\n')) {
    const m = new RegExp(`^overlay (${os.tmpdir().replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}/tallow-debboot-(\\d+)-[^/ ]+)/m overlay `).exec(line);
    if (!m || Number(m[2]) === process.pid || alive(Number(m[2]))) continue;
    spawnSync('umount', [`${m[1]}/m`]);
    fs.rmSync(m[1], { recursive: true, force: true });
    swept.push(`overlay ${m[1]}/m`);
  }
  return swept;
}

test('the .deb installs, runs, bans, survives reload and restart, and removes and purges cleanly under systemd', { timeout: 2_400_000 }, async (t) => {
  assert.equal(process.getuid?.(), 0, 'run as root: debootstrap, overlays, systemd-nspawn, namespaces');
  for (const tool of ['debootstrap', 'systemd-nspawn', 'nsenter', 'sshpass', 'ssh', 'ip']) {
    assert.equal(sh('sh', ['-c', `command -v ${tool}`]).status, 0, `${tool} is needed (bash scripts/deps.sh installs it)`);
  }
  const swept = await sweepStale();
  if (swept.length) t.diagnostic(`left by an earlier run that was killed, removed: ${swept.join(', ')}`);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `tallow-debboot-${process.pid}-`));
  const machine = `tallowdeb${process.pid}`;
  const ns = `tdebatk${process.pid}`;
  const merged = path.join(dir, 'm');
  let nspawn: ChildProcess | undefined;
  let mounted = false;
  t.after(async () => {
    if (nspawn?.pid && nspawn.exitCode === null) {
      // SIGTERM: an orderly poweroff of the container; SIGKILL if it hangs.
      const gone = new Promise((r) => nspawn!.once('exit', r));
      nspawn.kill('SIGTERM');
      const timer = setTimeout(() => nspawn?.kill('SIGKILL'), 30_000);
      await gone;
      clearTimeout(timer);
    }
    spawnSync('ip', ['netns', 'del', ns]);
    if (mounted) spawnSync('umount', [merged]);
    fs.rmSync(dir, { recursive: true, force: true });
    fs.rmSync(`/run/systemd/nspawn/propagate/${machine}`, { recursive: true, force: true });
  });

  const started = Date.now();
  const base = debianRoot();
  t.diagnostic(`root ${base} ready after ${((Date.now() - started) / 1000).toFixed(0)} s`);

  const built = sh('bash', [path.join(root, 'scripts/build-deb.sh'), '--out', dir], 300_000);
  assert.equal(built.status, 0, built.stdout + built.stderr);
  const deb = fs.readdirSync(dir).find((f) => f.endsWith('.deb'));
  assert.ok(deb, 'build-deb.sh made a .deb');

  for (const d of ['up', 'work', 'm']) fs.mkdirSync(path.join(dir, d));
  execFileSync('mount', ['-t', 'overlay', 'overlay', '-o', `lowerdir=${base},upperdir=${dir}/up,workdir=${dir}/work`, merged]);
  mounted = true;
  fs.copyFileSync(path.join(dir, deb), path.join(merged, 'root', deb));

  const bootLog = fs.openSync(path.join(dir, 'boot.log'), 'w');
  // Host's systemd-nspawn is 252 on cgroup v1 (hybrid); trixie's systemd needs the unified
  // hierarchy. --keep-unit: there is no systemd on the host to make a scope.
  nspawn = spawn('systemd-nspawn', ['-b', '--register=no', '--keep-unit', '--private-network', '--console=read-only', `--machine=${machine}`, '-D', merged], {
    env: { ...process.env, SYSTEMD_NSPAWN_UNIFIED_HIERARCHY: '1' },
    stdio: ['ignore', bootLog, bootLog],
  });
  const bootText = () => fs.readFileSync(path.join(dir, 'boot.log'), 'utf8').slice(-3000);
  // The container's PID 1: nspawn's child whose PID in its own namespace is 1.
  const pid1 = await until('the container\'s PID 1', () => {
    assert.equal(nspawn!.exitCode, null, `systemd-nspawn exited:\n${bootText()}`);
    for (const p of fs.readdirSync('/proc').filter((n) => /^\d+$/.test(n))) {
      try {
        const status = fs.readFileSync(`/proc/${p}/status`, 'utf8');
        // Once it has exec'd systemd (before, it is nspawn's own child setting up the container).
        if (new RegExp(`^PPid:\\s+${nspawn!.pid}$`, 'm').test(status) && /^NSpid:\s+\d+\s+1$/m.test(status) && /^Name:\s+systemd$/m.test(status)) return p;
      } catch {
        /* gone */
      }
    }
    return undefined;
  });
  const inC = (cmd: string, timeout = 120_000): Run => sh('nsenter', ['-t', pid1, '-a', 'sh', '-c', cmd], timeout);
  // systemctl answers once PID 1 listens on its private socket; --wait then waits for the boot.
  const running = await until('systemd in the container to finish booting', () => {
    const r = inC('systemctl is-system-running --wait', 180_000);
    return /^(running|degraded)$/m.test(r.stdout) ? r : undefined;
  }, 180_000);
  assert.match(running.stdout, /^(running|degraded)$/m, `${running.stdout}${running.stderr}\n${bootText()}`);
  t.diagnostic(`booted after ${((Date.now() - started) / 1000).toFixed(0)} s: ${running.stdout.trim()}`);

  // The attacker's namespace, joined to the container by a veth pair made inside it.
  execFileSync('ip', ['netns', 'add', ns]);
  execFileSync('ip', ['-n', ns, 'link', 'add', 'atk0', 'type', 'veth', 'peer', 'name', 'host0', 'netns', pid1]);
  execFileSync('ip', ['-n', ns, 'addr', 'add', `${ATTACKER_IP}/24`, 'dev', 'atk0']);
  execFileSync('ip', ['-n', ns, 'link', 'set', 'atk0', 'up']);
  for (const c of [['addr', 'add', `${CONTAINER_IP}/24`, 'dev', 'host0'], ['link', 'set', 'host0', 'up'], ['link', 'set', 'lo', 'up']]) {
    execFileSync('nsenter', ['-t', pid1, '-n', 'ip', ...c]);
  }
  const port22 = () => sh('ip', ['netns', 'exec', ns, 'timeout', '3', 'bash', '-c', `</dev/tcp/${CONTAINER_IP}/22`]).status === 0;
  await until('sshd in the container answering on port 22', port22);

  // dpkg -i under the running systemd: postinst enables and starts the unit.
  const inst = inC(`dpkg -i /root/${deb}`, 300_000);
  assert.equal(inst.status, 0, inst.stdout + inst.stderr);
  assert.equal(inC('systemctl is-enabled tallow').stdout.trim(), 'enabled');
  // Type=notify: "active (running)" only after READY=1; "activating" until then.
  const state = await until('tallow.service active', () => {
    const s = inC('systemctl show tallow -p ActiveState -p SubState -p Type -p ExecMainPID');
    return /ActiveState=active/.test(s.stdout) ? s.stdout : undefined;
  });
  assert.match(state, /SubState=running/);
  assert.match(state, /Type=notify/);
  const firstPid = /ExecMainPID=(\d+)/.exec(state)![1];
  assert.match(inC('systemctl show tallow -p ExecStart').stdout, /path=\/usr\/sbin\/tallow/);
  t.diagnostic(`installed and running after ${((Date.now() - started) / 1000).toFixed(0)} s`);

  // Under the unit's sandbox (SystemCallFilter=@system-service, CapabilityBoundingSet without
  // CAP_FOWNER, RestrictAddressFamilies): start-up's pages are given back 2 s after READY=1 (madvise),
  // and firewall changes come from the kernel's netlink group, with no `nft monitor` process.
  const unitLog = () => inC('journalctl -u tallow --no-pager -o cat').stdout;
  const released = await until('start-up pages given back', () => /memory: gave back pages only start-up used: resident [\d.]+ -> [\d.]+ MiB.*/.exec(unitLog())?.[0], 30_000);
  t.diagnostic(released);
  assert.doesNotMatch(unitLog(), /not given back|noticed by the periodic check only/);
  assert.notEqual(inC('pgrep -x nft').status, 0, 'no nft process');

  // The attack: wrong passwords for root from the attacker's namespace (0.5 each, ban at 1.0).
  const attack = () =>
    sh('ip', ['netns', 'exec', ns, 'sshpass', '-p', 'wrong-password', 'ssh', '-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null', '-o', 'PubkeyAuthentication=no',
      '-o', 'PreferredAuthentications=password', '-o', 'NumberOfPasswordPrompts=1', '-o', 'ConnectTimeout=3', `root@${CONTAINER_IP}`, 'true'], 20_000);
  const inSet = () => inC('ipset list tallow').stdout.includes(ATTACKER_IP);
  for (let i = 0; i < 4 && !inSet(); i++) attack();
  await until(`${ATTACKER_IP} in the container's ipset "tallow"`, inSet, 30_000);
  assert.match(inC('iptables -S INPUT').stdout, /-A INPUT -m set --match-set tallow src -j DROP/);
  assert.equal(port22(), false, 'the banned attacker can no longer reach port 22');
  const listed = () => inC('tallow list').stdout.includes(ATTACKER_IP);
  assert.ok(listed(), `tallow list shows the ban:\n${inC('tallow list').stdout}`);
  assert.match(inC('journalctl -u tallow --no-pager -o cat').stdout, new RegExp(`ban.*${ATTACKER_IP.replace(/\./g, '\\.')}`));

  // A rule deleted by hand (iptables-nft, as trixie's iptables is) is put back at once: the kernel's
  // notification wakes the daemon (the periodic check is 30 s away at most; this waits 10 s).
  const dropRule = '-m set --match-set tallow src -j DROP';
  assert.equal(inC(`iptables -w -D INPUT ${dropRule}`).status, 0);
  await until('the DROP rule put back', () => inC('iptables -S INPUT').stdout.includes(`-A INPUT ${dropRule}`), 10_000);

  // reload (SIGHUP through ExecReload=): same process, ban kept.
  assert.equal(inC('systemctl reload tallow').status, 0);
  await until('tallow active after reload', () => inC('systemctl is-active tallow').stdout.trim() === 'active');
  assert.equal(/ExecMainPID=(\d+)/.exec(inC('systemctl show tallow -p ExecMainPID').stdout)?.[1], firstPid, 'reload keeps the process');
  await until('the ban listed after reload', listed, 30_000);
  assert.ok(inSet(), 'still in the kernel set after reload');

  // restart: a new process restores the ban from its state file.
  assert.equal(inC('systemctl restart tallow', 180_000).status, 0);
  const secondPid = await until('tallow active again after restart', () => {
    const s = inC('systemctl show tallow -p ActiveState -p ExecMainPID').stdout;
    const pid = /ExecMainPID=(\d+)/.exec(s)?.[1];
    return /ActiveState=active/.test(s) && pid && pid !== firstPid ? pid : undefined;
  });
  await until('the ban listed after restart', listed, 30_000);
  assert.ok(inSet(), 'still in the kernel set after restart');

  // The administrator's changes, then dpkg -r: stopped, program gone, /etc and state kept.
  assert.equal(inC("echo '# edited by the administrator' >> /etc/tallow.conf && echo '[]' > /etc/tallow/local.json").status, 0);
  const rm = inC('dpkg -r tallow', 180_000);
  assert.equal(rm.status, 0, rm.stdout + rm.stderr);
  assert.notEqual(inC(`kill -0 ${secondPid}`).status, 0, 'the daemon was stopped');
  assert.notEqual(inC("pgrep -f '^/usr/bin/node /usr/lib/tallow/'").status, 0, 'no tallow process is left');
  assert.match(inC("dpkg-query -W -f='${Status}' tallow").stdout, /deinstall ok config-files/);
  assert.equal(inC('test -e /usr/sbin/tallow || test -e /usr/lib/tallow || test -e /lib/systemd/system/tallow.service').status, 1, 'program and unit removed');
  assert.match(inC('cat /etc/tallow.conf').stdout, /# edited by the administrator/);
  assert.equal(inC('test -f /etc/tallow/local.json && test -d /var/lib/tallow').status, 0, '/etc/tallow and the state are kept');

  // dpkg -P: the configuration, the administrator's rules, the state and the enable link go.
  const purge = inC('dpkg -P tallow', 180_000);
  assert.equal(purge.status, 0, purge.stdout + purge.stderr);
  for (const p of ['/etc/tallow.conf', '/etc/tallow', '/var/lib/tallow', '/etc/systemd/system/multi-user.target.wants/tallow.service', '/etc/systemd/system/tallow.service']) {
    assert.equal(inC(`test -e ${p} || test -L ${p}`).status, 1, `${p} is gone after purge`);
  }
  assert.notEqual(inC('dpkg-query -W -f=\'${Status}\' tallow').stdout, 'deinstall ok config-files');
  t.diagnostic(`done after ${((Date.now() - started) / 1000).toFixed(0)} s`);
});
